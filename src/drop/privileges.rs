//! What the connected role may not do to the schema, found before anything changes. A managed
//! database gives the application an owner role that is no superuser: a reset works as long as
//! that role owns (or is a member of the owner of) every object it drops, may create in the
//! schema, and may write dbtool's own records. Otherwise the reset would stop half-way on a bare
//! `permission denied`; this names the object and the privilege instead.

use postgres::GenericClient;

use crate::connection::describe_sql_error;
use crate::error::{Error, Result};

/// A privilege the current role lacks, and on what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// `table public.clients`, `schema public`...
    pub object: String,
    /// `ownership (owned by legacy_owner)`, `CREATE`...
    pub privilege: String,
}

/// Objects of `schema` a drop would remove (as drop.rs lists them) that the current role may not
/// drop, because it is neither their owner nor a member of the owning role.
const NOT_DROPPABLE_SQL: &str = concat!(
    "SELECT kind || ' ' || name, 'ownership (owned by ' || pg_catalog.pg_get_userbyid(owner) || ')' FROM (",
    crate::drop::objects_sql!(),
    ") listed WHERE NOT pg_catalog.pg_has_role(current_user, owner, 'MEMBER') ORDER BY 1"
);

/// Everything the current role lacks to reset `schema`: dropping its objects, creating in it
/// (migrations), and keeping dbtool's records (schema `dbtool`).
pub fn missing_for_reset(
    client: &mut impl GenericClient,
    schema: &str,
) -> Result<Vec<Missing>, postgres::Error> {
    let row = client.query_one(
        "SELECT pg_catalog.current_setting('is_superuser') = 'on', c, u FROM (
             SELECT pg_catalog.has_schema_privilege(n.oid, 'CREATE') c, pg_catalog.has_schema_privilege(n.oid, 'USAGE') u
               FROM pg_namespace n WHERE n.nspname = $1
             UNION ALL SELECT true, true LIMIT 1) p",
        &[&schema],
    )?;
    // A superuser lacks nothing here; the ownership query is a costly plan (~3 ms) to find that.
    if row.get::<_, bool>(0) {
        return Ok(Vec::new());
    }
    let mut missing: Vec<Missing> = client
        .query(NOT_DROPPABLE_SQL, &[&schema])?
        .iter()
        .map(|r| Missing {
            object: r.get(0),
            privilege: r.get(1),
        })
        .collect();
    for (allowed, privilege) in [(row.get::<_, bool>(1), "CREATE"), (row.get(2), "USAGE")] {
        if !allowed {
            missing.push(Missing {
                object: format!("schema {schema}"),
                privilege: privilege.into(),
            });
        }
    }
    missing.extend(missing_for_records(client)?);
    Ok(missing)
}

/// What the current role lacks to keep dbtool's records: create the `dbtool` schema (CREATE on
/// the database) when it is not there, else write its `meta` table.
pub fn missing_for_records(
    client: &mut impl GenericClient,
) -> Result<Vec<Missing>, postgres::Error> {
    let row = client.query_one(
        "SELECT pg_catalog.to_regnamespace('dbtool') IS NOT NULL,
                pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE'),
                COALESCE(pg_catalog.has_schema_privilege(pg_catalog.to_regnamespace('dbtool'), 'USAGE')
                         AND CASE WHEN pg_catalog.to_regclass('dbtool.meta') IS NULL
                                  THEN pg_catalog.has_schema_privilege(pg_catalog.to_regnamespace('dbtool'), 'CREATE')
                                  ELSE pg_catalog.has_table_privilege(pg_catalog.to_regclass('dbtool.meta'), 'SELECT, INSERT, UPDATE, DELETE')
                             END,
                         false),
                pg_catalog.current_database()",
        &[],
    )?;
    let (exists, may_create, may_write, database): (bool, bool, bool, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    Ok(match (exists, may_create, may_write) {
        (false, false, _) => vec![Missing {
            object: format!("database {database}"),
            privilege: "CREATE (to create the schema dbtool)".into(),
        }],
        (true, _, false) => vec![Missing {
            object: "schema dbtool and its table meta".into(),
            privilege: "USAGE on the schema and SELECT, INSERT, UPDATE, DELETE on the table".into(),
        }],
        _ => Vec::new(),
    })
}

/// What the current role lacks to seed `tables` of `schema`: emptying and loading each table
/// (TRUNCATE, INSERT; a truncate cascades, and RESTART IDENTITY needs its sequences' UPDATE
/// right, which ownership of the table gives), and keeping dbtool's records.
pub fn missing_for_seed(
    client: &mut impl GenericClient,
    schema: &str,
    tables: &[String],
) -> Result<Vec<Missing>, postgres::Error> {
    let names: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "{}.{}",
                crate::connection::quote_ident(schema),
                crate::connection::quote_ident(t)
            )
        })
        .collect();
    let mut missing: Vec<Missing> = client
        .query(
            "SELECT 'table ' || (SELECT format('%I.%I', n.nspname, c.relname)
                                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                  WHERE c.oid = t::regclass),
                    pg_catalog.array_to_string(ARRAY(SELECT p FROM unnest(ARRAY['TRUNCATE', 'INSERT', 'SELECT']) p
                                           WHERE NOT pg_catalog.has_table_privilege(t::regclass, p)), ', ')
               FROM unnest($1::text[]) t
              WHERE pg_catalog.to_regclass(t) IS NOT NULL
                AND NOT (pg_catalog.has_table_privilege(t::regclass, 'TRUNCATE')
                         AND pg_catalog.has_table_privilege(t::regclass, 'INSERT')
                         AND pg_catalog.has_table_privilege(t::regclass, 'SELECT'))
              ORDER BY 1",
            &[&names],
        )?
        .iter()
        .map(|r| Missing {
            object: r.get(0),
            privilege: r.get(1),
        })
        .collect();
    missing.extend(missing_for_records(client)?);
    Ok(missing)
}

/// Fails (exit 7) before anything changes when the current role cannot reset `schema`.
pub fn check_reset(client: &mut impl GenericClient, schema: &str) -> Result<()> {
    let missing = missing_for_reset(client, schema);
    refuse(client, "reset", schema, missing)
}

/// Fails (exit 7) before anything changes when the current role cannot seed `tables`.
pub fn check_seed(client: &mut impl GenericClient, schema: &str, tables: &[String]) -> Result<()> {
    let missing = missing_for_seed(client, schema, tables);
    refuse(client, "seed", schema, missing)
}

fn refuse(
    client: &mut impl GenericClient,
    action: &str,
    schema: &str,
    missing: Result<Vec<Missing>, postgres::Error>,
) -> Result<()> {
    let missing = missing.map_err(|e| {
        Error::Work(format!(
            "checking privileges failed: {}",
            describe_sql_error(&e, None)
        ))
    })?;
    if missing.is_empty() {
        return Ok(());
    }
    let role: String = client
        .query_one("SELECT current_user::text", &[])
        .map(|r| r.get(0))
        .unwrap_or_default();
    const SHOWN: usize = 5;
    let mut list: Vec<String> = missing
        .iter()
        .take(SHOWN)
        .map(|m| format!("{} on {}", m.privilege, m.object))
        .collect();
    if missing.len() > SHOWN {
        list.push(format!("and {} more", missing.len() - SHOWN));
    }
    Err(Error::Work(format!(
        "role {role} cannot {action} schema {schema}: it lacks {}; nothing was changed. Run the \
         {action} as the owner of these objects, or have their owner run ALTER ... OWNER TO {role} \
         (or GRANT the privilege)",
        list.join("; ")
    )))
}
