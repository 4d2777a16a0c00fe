//! `dbtool.meta`: what dbtool records in the database itself (the last reset of each schema,
//! protection). The `dbtool` schema is never dropped.

use postgres::Client;
use postgres::types::Type;
use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = crate::config::DBTOOL_SCHEMA;
const PROTECTED: &str = "protected";

/// The last reset (or seed: the same data as a reset of its profile and seed) of a schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastReset {
    /// `reset` or `seed`.
    #[serde(default = "reset_command")]
    pub command: String,
    pub schema: String,
    pub profile: String,
    pub seed: u64,
    pub fingerprint: String,
    pub dbtool_version: String,
    pub host: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: u64,
    /// FNV-1a digests of the migration files and of the seed spec and profile files.
    pub migrations_digest: String,
    pub spec_digest: String,
    /// Seconds since 1970 when it finished, for `--skip-if-reset-within`.
    pub finished_unix: u64,
    /// With no seeds/seed.toml: the version of the inference that wrote the spec it seeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_version: Option<u32>,
}

fn reset_command() -> String {
    "reset".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Protection {
    pub since: String,
    pub by: String,
}

/// A reset or seed that gave up atomicity (`--parallel`, a `-- no-transaction` migration, a seed
/// command), committed part of its work, and has not finished (it failed, was killed, or is
/// still running). An atomic reset never leaves one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Unfinished {
    pub command: String,
    pub by: String,
    pub started_at: String,
    /// Keys and indexes a `--parallel` load set aside: the next migrate or seed puts them back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_aside: Option<crate::load::constraints::Deferred>,
}

/// That dbtool has reset a schema, kept for good (a `--skip-seed` reset forgets its last reset
/// but not this): a reset of a schema with objects and no such record is a first reset (§4).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Owned {
    pub since: String,
    pub by: String,
    /// The database's name when the first reset dropped objects dbtool had not made (`--adopt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted: Option<String>,
}

fn owned_key(schema: &str) -> String {
    format!("owned:{schema}")
}

fn last_reset_key(schema: &str) -> String {
    format!("last_reset:{schema}")
}

fn unfinished_key(schema: &str) -> String {
    format!("unfinished:{schema}")
}

fn exists(client: &mut Client) -> Result<bool, postgres::Error> {
    Ok(client
        .query_typed_one(
            "SELECT pg_catalog.to_regclass('dbtool.meta') IS NOT NULL",
            &[],
        )?
        .get(0))
}

/// Creates the schema and table; call under the lock.
pub fn ensure(client: &mut Client) -> Result<(), postgres::Error> {
    if exists(client)? {
        return Ok(());
    }
    client.batch_execute("CREATE SCHEMA IF NOT EXISTS dbtool")?;
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS dbtool.meta (
             key        text PRIMARY KEY,
             value      jsonb NOT NULL,
             updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
         )",
    )
}

fn read<T: for<'de> Deserialize<'de>>(
    client: &mut Client,
    key: &str,
) -> Result<Option<T>, postgres::Error> {
    if !exists(client)? {
        return Ok(None);
    }
    let row = client.query_typed_opt(
        "SELECT value::text FROM dbtool.meta WHERE key = $1",
        &[(&key, Type::TEXT)],
    )?;
    Ok(row.and_then(|r| serde_json::from_str(&r.get::<_, String>(0)).ok()))
}

/// Removes a key; nothing to do when dbtool.meta does not exist yet.
fn remove(client: &mut Client, key: &str) -> Result<(), postgres::Error> {
    if exists(client)? {
        client.execute_typed(
            "DELETE FROM dbtool.meta WHERE key = $1",
            &[(&key, Type::TEXT)],
        )?;
    }
    Ok(())
}

fn write<T: Serialize>(client: &mut Client, key: &str, value: &T) -> Result<(), postgres::Error> {
    ensure(client)?;
    let json = serde_json::to_string(value).expect("meta values serialize");
    client.execute_typed(
        "INSERT INTO dbtool.meta (key, value) VALUES ($1, $2::text::jsonb)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()",
        &[(&key, Type::TEXT), (&json, Type::TEXT)],
    )?;
    Ok(())
}

/// A key of dbtool.meta by name (the warm path's record).
pub fn read_key<T: for<'de> Deserialize<'de>>(
    client: &mut Client,
    key: &str,
) -> Result<Option<T>, postgres::Error> {
    read(client, key)
}

pub fn write_key<T: Serialize>(
    client: &mut Client,
    key: &str,
    value: &T,
) -> Result<(), postgres::Error> {
    write(client, key, value)
}

pub fn remove_key(client: &mut Client, key: &str) -> Result<(), postgres::Error> {
    remove(client, key)
}

/// What the warm path's choice reads, in one round trip when dbtool.meta exists (two in all):
/// the schema's unfinished reset, its last reset, the key `warm` (the warm record), and whether
/// the database has the Citus extension.
#[allow(clippy::type_complexity)]
pub fn warm_inputs<W: for<'de> Deserialize<'de>>(
    client: &mut Client,
    schema: &str,
    warm: &str,
) -> Result<(Option<Unfinished>, Option<LastReset>, Option<W>, bool), postgres::Error> {
    const CITUS: &str = "EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')";
    if !exists(client)? {
        let citus: bool = client
            .query_typed_one(&format!("SELECT {CITUS}"), &[])?
            .get(0);
        return Ok((None, None, None, citus));
    }
    let keys = [
        unfinished_key(schema),
        last_reset_key(schema),
        warm.to_string(),
    ];
    let row = client.query_typed_one(
        &format!(
            "SELECT (SELECT value::text FROM dbtool.meta WHERE key = $1),
                    (SELECT value::text FROM dbtool.meta WHERE key = $2),
                    (SELECT value::text FROM dbtool.meta WHERE key = $3), {CITUS}"
        ),
        &[
            (&keys[0], Type::TEXT),
            (&keys[1], Type::TEXT),
            (&keys[2], Type::TEXT),
        ],
    )?;
    fn parsed<T: for<'de> Deserialize<'de>>(value: Option<String>) -> Option<T> {
        value.and_then(|v| serde_json::from_str(&v).ok())
    }
    Ok((
        parsed(row.get(0)),
        parsed(row.get(1)),
        parsed(row.get(2)),
        row.get(3),
    ))
}

pub fn last_reset(client: &mut Client, schema: &str) -> Result<Option<LastReset>, postgres::Error> {
    read(client, &last_reset_key(schema))
}

/// Before the data is replaced: the last reset no longer describes it until this one finishes.
pub fn mark_unfinished(
    client: &mut Client,
    schema: &str,
    unfinished: &Unfinished,
) -> Result<(), postgres::Error> {
    write(client, &unfinished_key(schema), unfinished)?;
    remove(client, &last_reset_key(schema))
}

pub fn unfinished(
    client: &mut Client,
    schema: &str,
) -> Result<Option<Unfinished>, postgres::Error> {
    read(client, &unfinished_key(schema))
}

/// A successful reset: recorded, and no longer unfinished.
pub fn record_reset(client: &mut Client, reset: &LastReset) -> Result<(), postgres::Error> {
    write(client, &last_reset_key(&reset.schema), reset)?;
    clear_unfinished(client, &reset.schema)
}

pub fn clear_unfinished(client: &mut Client, schema: &str) -> Result<(), postgres::Error> {
    remove(client, &unfinished_key(schema))
}

/// The data was dropped and nothing seeded: no reset describes the schema any more.
pub fn forget_reset(client: &mut Client, schema: &str) -> Result<(), postgres::Error> {
    remove(client, &last_reset_key(schema))?;
    clear_unfinished(client, schema)
}

/// Whether a dbtool reset of `schema` is on record: ownership, or (from before ownership was
/// recorded) a last or unfinished reset.
pub fn reset_recorded(client: &mut Client, schema: &str) -> Result<bool, postgres::Error> {
    Ok(read::<Owned>(client, &owned_key(schema))?.is_some()
        || last_reset(client, schema)?.is_some()
        || unfinished(client, schema)?.is_some())
}

/// Inside a reset's transaction: from now on `schema` is dbtool's; the first record stays.
pub fn record_owned(
    client: &mut Client,
    schema: &str,
    owned: &Owned,
) -> Result<(), postgres::Error> {
    if read::<Owned>(client, &owned_key(schema))?.is_some() {
        return Ok(());
    }
    write(client, &owned_key(schema), owned)
}

pub fn protection(client: &mut Client) -> Result<Option<Protection>, postgres::Error> {
    read(client, PROTECTED)
}

pub fn set_protection(
    client: &mut Client,
    protection: Option<&Protection>,
) -> Result<(), postgres::Error> {
    match protection {
        Some(p) => write(client, PROTECTED, p),
        None => remove(client, PROTECTED),
    }
}
