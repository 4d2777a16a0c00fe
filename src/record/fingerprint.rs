//! Per-table row count and digest of the rows (src/load/digest.rs, `version`), computed by the
//! server, and one overall digest (DESIGN.md §5). A reset that knows a table's digest from the
//! rows it sent passes it in and spares the server that table's scan.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use postgres::Client;
use postgres::types::Type;
use serde::Serialize;

use crate::connection::{Database, describe_sql_error};
use crate::error::{Error, Result};
use crate::load::digest::{self, Sum};
use crate::migrations::formats::HISTORY_TABLES;

#[derive(Debug, Clone, Serialize)]
pub struct TableDigest {
    pub table: String,
    pub rows: i64,
    pub digest: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fingerprint {
    /// The digest's definition (src/load/digest.rs): fingerprints of different versions differ for
    /// the same data.
    pub version: u32,
    pub schema: String,
    pub tables: Vec<TableDigest>,
    /// md5 of one `table rows digest` line per table, in table-name order.
    pub overall: String,
    /// Set when the lock was held while the digest was taken (see `status::in_progress`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<String>,
}

impl Fingerprint {
    pub fn render(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            out.push_str(&format!("{:<28} {:>10} {}\n", t.table, t.rows, t.digest));
        }
        out.push_str(&format!("{:<28} {:>10} {}\n", "overall", "", self.overall));
        if let Some(note) = &self.in_progress {
            out.push_str(&format!("in progress: {note}\n"));
        }
        out
    }
}

/// Base tables of the schema (without the migration tools' history tables) with their size in
/// pages.
fn tables(client: &mut Client, schema: &str) -> Result<Vec<(String, i64)>, postgres::Error> {
    // One round trip (no separate prepare), as for each table's digest.
    let rows = client.query_typed(
        "SELECT c.relname::text, c.relpages::bigint
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            AND c.relname <> ALL($2)
          ORDER BY c.relname",
        &[
            (&schema, Type::TEXT),
            (&HISTORY_TABLES.as_slice(), Type::TEXT_ARRAY),
        ],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The server's digest of one table.
fn digest_table(client: &mut Client, schema: &str, table: &str) -> Result<TableDigest> {
    let row = client
        .query_typed_one(&digest::server_query(schema, table), &[])
        .map_err(read_failed)?;
    Ok(TableDigest {
        table: table.to_string(),
        rows: row.get(0),
        digest: row.get(1),
    })
}

/// The tables of `schema` whose digest is not in `known` (those go straight into `digests`),
/// largest first.
fn to_digest(
    client: &mut Client,
    schema: &str,
    known: &BTreeMap<String, Sum>,
    digests: &mut Vec<TableDigest>,
) -> Result<Vec<String>> {
    let mut tables = tables(client, schema).map_err(read_failed)?;
    tables.retain(|(table, _)| match known.get(table) {
        Some(sum) => {
            digests.push(TableDigest {
                table: table.clone(),
                rows: sum.rows as i64,
                digest: sum.hex(),
            });
            false
        }
        None => true,
    });
    tables.sort_by_key(|t| std::cmp::Reverse(t.1));
    Ok(tables.into_iter().map(|(t, _)| t).collect())
}

/// Digests the tables in parallel over `workers` work connections, largest first.
pub fn compute(db: &Database, schema: &str, workers: usize) -> Result<Fingerprint> {
    compute_knowing(db, schema, workers, &BTreeMap::new())
}

/// Digests the tables on one connection: inside the unit's transaction, where only that
/// connection sees the new rows. The tables in `known` (the load computed them from the rows it
/// sent) need no scan.
pub fn compute_in(
    client: &mut Client,
    schema: &str,
    known: &BTreeMap<String, Sum>,
) -> Result<Fingerprint> {
    let mut digests = Vec::new();
    for table in to_digest(client, schema, known, &mut digests)? {
        digests.push(digest_table(client, schema, &table)?);
    }
    Ok(Fingerprint::new(schema, digests))
}

/// `compute`, taking the digests of the tables in `known` as given (a reset computed them from
/// the rows it sent) and asking the server only for the others.
pub fn compute_knowing(
    db: &Database,
    schema: &str,
    workers: usize,
    known: &BTreeMap<String, Sum>,
) -> Result<Fingerprint> {
    let mut digests = Vec::new();
    let tables = to_digest(&mut *db.work()?, schema, known, &mut digests)?;
    digests.extend(db.parallel(&tables, workers, |client, table| {
        digest_table(client, schema, table)
    })?);
    Ok(Fingerprint::new(schema, digests))
}

impl Fingerprint {
    fn new(schema: &str, mut digests: Vec<TableDigest>) -> Self {
        digests.sort_by(|a, b| a.table.cmp(&b.table));
        let lines: String = digests
            .iter()
            .map(|d| format!("{} {} {}\n", d.table, d.rows, d.digest))
            .collect();
        let overall: String = Md5::digest(lines.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Fingerprint {
            version: digest::VERSION,
            schema: schema.to_string(),
            tables: digests,
            overall,
            in_progress: None,
        }
    }
}

fn read_failed(e: postgres::Error) -> Error {
    Error::Work(format!(
        "computing the fingerprint failed: {}",
        describe_sql_error(&e, None)
    ))
}
