//! The warm path (DESIGN.md §4): what the migrations left, recorded at a cold reset so that the
//! next reset with the same migration files and an unchanged catalog can restore it instead of
//! dropping and migrating again.
//!
//! A cold reset records, right after its migrations and inside its transaction: a digest of the
//! schema's catalog, the rows the migrations left in each table (COPY text, in `dbtool.warm_rows`),
//! and the position of every sequence of the schema (in `dbtool.meta`, key `warm:<schema>`). A
//! warm reset compares, truncates every table of the schema, copies those rows back (parents
//! before children) and moves the sequences back; what follows (load, sequences, record) is the
//! cold path's. Anything the record cannot restore exactly means no record, hence the cold path.

use std::collections::BTreeSet;

use postgres::Client;
use postgres::types::Type;
use serde::{Deserialize, Serialize};

use crate::connection::{describe_sql_error, quote_ident};
use crate::error::{Error, Result};

fn sql_error(e: postgres::Error) -> Error {
    Error::Work(format!(
        "the warm path's record: {}",
        describe_sql_error(&e, None)
    ))
}

fn copy_error(e: std::io::Error) -> Error {
    Error::Work(format!("the warm path's record: copying rows failed: {e}"))
}

/// A table with more rows than this after the migrations: no warm record (the copy would cost
/// more than the migrations it saves).
pub const MAX_ROWS_PER_TABLE: i64 = 10_000;
/// At most this many bytes of migration rows (COPY text) in all.
pub const MAX_BYTES: usize = 8 << 20;

fn key(schema: &str) -> String {
    format!("warm:{schema}")
}

/// What a cold reset recorded for the warm path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub dbtool_version: String,
    pub migrations_format: String,
    pub migrations_digest: String,
    pub catalog_digest: String,
    /// Every sequence of the schema after the migrations: name, last value, is_called.
    pub sequences: Vec<(String, i64, bool)>,
    /// The tables holding rows after the migrations, in the order they are restored.
    pub tables: Vec<String>,
}

/// One query: an md5 over the ordered catalog rows of the schema that a cold reset re-creates
/// (tables, columns, types, constraints, indexes, functions, triggers, views, sequences, rules,
/// policies, comments, owners and grants), and the role that would re-create them. No OIDs:
/// the load rebuilds keys and indexes, with new OIDs and the same definitions.
const CATALOG_DIGEST: &str = r#"
WITH ns AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
SELECT pg_catalog.md5(coalesce(pg_catalog.string_agg(line, E'\n' ORDER BY line COLLATE "C"), ''))
FROM (
  SELECT 'user ' || current_user
  UNION ALL
  SELECT concat_ws(' ', 'rel', c.relname, c.relkind, pg_catalog.pg_get_userbyid(c.relowner),
         c.relacl::text, c.relpersistence, c.relreplident, c.relrowsecurity, c.relforcerowsecurity,
         c.relispartition, pg_catalog.pg_get_expr(c.relpartbound, c.oid), c.reloptions::text,
         pg_catalog.obj_description(c.oid, 'pg_class'),
         CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END,
         CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END,
         CASE WHEN c.relkind = 'i' THEN pg_catalog.pg_get_indexdef(c.oid) END,
         (SELECT concat_ws(' ', s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmax,
                 s.seqmin, s.seqcache, s.seqcycle)
            FROM pg_catalog.pg_sequence s WHERE s.seqrelid = c.oid),
         (SELECT pg_catalog.string_agg(concat_ws(':', r.relname, d.refobjsubid, d.deptype), ','
                 ORDER BY r.relname, d.refobjsubid)
            FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class r ON r.oid = d.refobjid
           WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
             AND d.refclassid = 'pg_catalog.pg_class'::regclass AND c.relkind = 'S'),
         (SELECT pg_catalog.string_agg(p.relname, ',' ORDER BY p.relname)
            FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
           WHERE i.inhrelid = c.oid))
    FROM pg_catalog.pg_class c WHERE c.relnamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT concat_ws(' ', 'col', c.relname, a.attnum, a.attname,
         pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
         a.attgenerated, a.attisdropped, a.attcollation, a.attacl::text, a.attoptions::text,
         pg_catalog.pg_get_expr(d.adbin, d.adrelid), pg_catalog.col_description(c.oid, a.attnum))
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE c.relnamespace = (SELECT oid FROM ns) AND a.attnum > 0
  UNION ALL
  SELECT concat_ws(' ', 'con', co.conname, c.relname, t.typname,
         pg_catalog.pg_get_constraintdef(co.oid), co.convalidated, co.conislocal,
         pg_catalog.obj_description(co.oid, 'pg_constraint'))
    FROM pg_catalog.pg_constraint co
    LEFT JOIN pg_catalog.pg_class c ON c.oid = co.conrelid
    LEFT JOIN pg_catalog.pg_type t ON t.oid = co.contypid
   WHERE co.connamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT concat_ws(' ', 'type', t.typname, t.typtype, pg_catalog.pg_get_userbyid(t.typowner),
         t.typacl::text, t.typnotnull, t.typdefault,
         CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END,
         (SELECT pg_catalog.string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
            FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid),
         (SELECT pg_catalog.string_agg(concat_ws(':', a.attname,
                 pg_catalog.format_type(a.atttypid, a.atttypmod)), ',' ORDER BY a.attnum)
            FROM pg_catalog.pg_attribute a
           WHERE a.attrelid = t.typrelid AND t.typtype = 'c' AND a.attnum > 0),
         pg_catalog.obj_description(t.oid, 'pg_type'))
    FROM pg_catalog.pg_type t WHERE t.typnamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT concat_ws(' ', 'fn', p.proname, p.prokind,
         pg_catalog.pg_get_function_identity_arguments(p.oid),
         pg_catalog.pg_get_function_result(p.oid), l.lanname, p.provolatile, p.prosecdef,
         p.proleakproof, p.proisstrict, p.proparallel, p.proconfig::text,
         pg_catalog.pg_get_userbyid(p.proowner), p.proacl::text, pg_catalog.md5(p.prosrc),
         p.probin, pg_catalog.obj_description(p.oid, 'pg_proc'))
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang
   WHERE p.pronamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT concat_ws(' ', 'trigger', c.relname, t.tgname, t.tgenabled,
         pg_catalog.pg_get_triggerdef(t.oid))
    FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace = (SELECT oid FROM ns) AND NOT t.tgisinternal
  UNION ALL
  SELECT concat_ws(' ', 'rule', r.rulename, c.relname, pg_catalog.pg_get_ruledef(r.oid))
    FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
   WHERE c.relnamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT concat_ws(' ', 'policy', p.polname, c.relname, p.polcmd, p.polpermissive,
         p.polroles::text, pg_catalog.pg_get_expr(p.polqual, p.polrelid),
         pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid))
    FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
   WHERE c.relnamespace = (SELECT oid FROM ns)
) AS catalog(line)
"#;

pub fn catalog_digest(
    client: &mut Client,
    schema: &str,
) -> std::result::Result<String, postgres::Error> {
    Ok(client
        .query_typed_one(CATALOG_DIGEST, &[(&schema, Type::TEXT)])?
        .get(0))
}

/// Per table of the schema: its name, how many rows it holds (up to the limit + 1), whether it
/// has triggers of its own, the columns a COPY writes, and the tables it references. One query.
const TABLES: &str = r#"
SELECT c.relname, c.relkind::text,
       CASE WHEN c.relkind = 'r' THEN
         (pg_catalog.xpath('/row/n/text()', pg_catalog.query_to_xml(
            pg_catalog.format('SELECT count(*) AS n FROM (SELECT 1 FROM %I.%I LIMIT %s) x',
                              $1::text, c.relname, $2::int8 + 1), false, true, '')))[1]::text::int8
       ELSE 0 END,
       EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal),
       coalesce((SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
                   FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                    AND a.attgenerated = ''), ''),
       ARRAY(SELECT r.relname FROM pg_catalog.pg_constraint co
               JOIN pg_catalog.pg_class r ON r.oid = co.confrelid
              WHERE co.contype = 'f' AND co.conrelid = c.oid AND r.relnamespace = c.relnamespace
                AND r.oid <> c.oid)
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
   AND c.relkind IN ('r', 'p', 'm')
 ORDER BY c.relname
"#;

struct Table {
    name: String,
    kind: String,
    rows: i64,
    triggers: bool,
    columns: String,
    references: Vec<String>,
}

fn tables(client: &mut Client, schema: &str) -> std::result::Result<Vec<Table>, postgres::Error> {
    Ok(client
        .query_typed(
            TABLES,
            &[(&schema, Type::TEXT), (&MAX_ROWS_PER_TABLE, Type::INT8)],
        )?
        .iter()
        .map(|r| Table {
            name: r.get(0),
            kind: r.get(1),
            rows: r.get(2),
            triggers: r.get(3),
            columns: r.get(4),
            references: r.get(5),
        })
        .collect())
}

const SEQUENCES: &str = "SELECT c.relname, coalesce(pg_catalog.pg_sequence_last_value(c.oid), s.seqstart), \
     pg_catalog.pg_sequence_last_value(c.oid) IS NOT NULL \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid \
     WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1) \
     ORDER BY c.relname";

fn ensure_rows_table(client: &mut Client) -> std::result::Result<(), postgres::Error> {
    super::meta::ensure(client)?;
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS dbtool.warm_rows (
             schema_name text NOT NULL,
             position    int  NOT NULL,
             table_name  text NOT NULL,
             columns     text NOT NULL,
             data        bytea NOT NULL,
             PRIMARY KEY (schema_name, position)
         )",
    )
}

/// Forgets the warm record of a schema (a cold reset starts with it: until it records its own,
/// the schema's state is not one the record describes).
pub fn forget(client: &mut Client, schema: &str) -> std::result::Result<(), postgres::Error> {
    super::meta::remove_key(client, &key(schema))?;
    let exists: bool = client
        .query_typed_one("SELECT to_regclass('dbtool.warm_rows') IS NOT NULL", &[])?
        .get(0);
    if exists {
        client.execute_typed(
            "DELETE FROM dbtool.warm_rows WHERE schema_name = $1",
            &[(&schema, Type::TEXT)],
        )?;
    }
    Ok(())
}

/// The transaction's id, before the drop: what the migrations change outside the schema has a
/// newer `xmin`.
pub fn transaction_id(client: &mut Client) -> Result<i64> {
    Ok(client
        .query_typed_one("SELECT pg_catalog.txid_current() % 4294967296", &[])
        .map_err(sql_error)?
        .get(0))
}

/// Something the migrations changed outside the schema (catalog rows written since `since`, by
/// this transaction, or rows of other schemas' tables): the warm path would not redo it, so
/// there is no warm record. `excluded`: schemas dbtool itself writes (the histories). Toast and
/// temporary schemas are the server's own (PostgreSQL 13 gives every toast table a row type).
/// `pg_database` and `pg_db_role_setting` are shared by the server's databases: only this
/// database's rows count (another session creating a database meanwhile is not a migration).
const OUTSIDE: &str = r#"
WITH since AS (SELECT pg_catalog.age($2::text::xid) AS age)
SELECT what FROM (
  SELECT 'schema ' || nspname, xmin FROM pg_catalog.pg_namespace
   WHERE nspname <> $1 AND nspname <> ALL($3::text[]) AND nspname !~ '^pg_(toast|temp_|toast_temp_)'
  UNION ALL
  SELECT 'relation ' || n.nspname || '.' || c.relname, c.xmin
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname <> $1 AND n.nspname <> ALL($3::text[]) AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
  UNION ALL
  SELECT 'function ' || n.nspname || '.' || p.proname, p.xmin
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
   WHERE n.nspname <> $1 AND n.nspname <> ALL($3::text[]) AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
  UNION ALL
  SELECT 'type ' || n.nspname || '.' || t.typname, t.xmin
    FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
   WHERE n.nspname <> $1 AND n.nspname <> ALL($3::text[]) AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
  UNION ALL
  SELECT 'extension ' || extname, xmin FROM pg_catalog.pg_extension
  UNION ALL
  SELECT 'database ' || datname, xmin FROM pg_catalog.pg_database
   WHERE datname = pg_catalog.current_database()
  UNION ALL
  SELECT 'settings of the database or a role', s.xmin FROM pg_catalog.pg_db_role_setting s
   WHERE s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database
                                WHERE datname = pg_catalog.current_database()))
  UNION ALL
  SELECT 'event trigger ' || evtname, xmin FROM pg_catalog.pg_event_trigger
) AS changed(what, xmin)
WHERE pg_catalog.age(changed.xmin) <= (SELECT age FROM since)
UNION ALL
SELECT 'rows of ' || schemaname || '.' || relname FROM pg_catalog.pg_stat_xact_user_tables
 WHERE schemaname <> $1 AND schemaname <> ALL($3::text[])
   AND n_tup_ins + n_tup_upd + n_tup_del > 0
LIMIT 1
"#;

/// Right after a cold reset's migrations, inside its transaction: records what they left.
/// `Ok(Err(why))`: nothing recorded, the next reset takes the cold path for that reason.
pub fn record(
    client: &mut Client,
    schema: &str,
    migrations_format: &str,
    migrations_digest: &str,
    since: i64,
    excluded: &[String],
) -> Result<std::result::Result<(), String>> {
    let mut excluded = excluded.to_vec();
    excluded.push(crate::config::DBTOOL_SCHEMA.to_string());
    if let Some(row) = client
        .query_typed_opt(
            OUTSIDE,
            &[
                (&schema, Type::TEXT),
                (&since.to_string(), Type::TEXT),
                (&excluded, Type::TEXT_ARRAY),
            ],
        )
        .map_err(sql_error)?
    {
        let what: String = row.get(0);
        return Ok(Err(format!(
            "the migrations changed {what}, outside schema {schema}"
        )));
    }
    let all = tables(client, schema).map_err(sql_error)?;
    if let Some(m) = all.iter().find(|t| t.kind == "m") {
        return Ok(Err(format!(
            "materialized view {} holds data the migrations computed",
            m.name
        )));
    }
    let filled: Vec<&Table> = all.iter().filter(|t| t.rows > 0).collect();
    if let Some(big) = filled.iter().find(|t| t.rows > MAX_ROWS_PER_TABLE) {
        return Ok(Err(format!(
            "the migrations left more than {MAX_ROWS_PER_TABLE} rows in {}",
            big.name
        )));
    }
    if let Some(t) = filled.iter().find(|t| t.triggers) {
        return Ok(Err(format!(
            "table {} holds rows the migrations inserted and has triggers of its own",
            t.name
        )));
    }
    let Some(order) = parents_first(&filled) else {
        return Ok(Err(
            "tables the migrations filled reference each other in a cycle".into(),
        ));
    };
    let mut data = Vec::with_capacity(order.len());
    let mut bytes = 0;
    for t in &order {
        let mut rows = Vec::new();
        let mut reader = client
            .copy_out(&format!(
                "COPY {}.{} ({}) TO STDOUT",
                quote_ident(schema),
                quote_ident(&t.name),
                t.columns
            ))
            .map_err(sql_error)?;
        std::io::Read::read_to_end(&mut reader, &mut rows).map_err(copy_error)?;
        drop(reader);
        bytes += rows.len();
        if bytes > MAX_BYTES {
            return Ok(Err(format!(
                "the migrations left more than {} MB of rows",
                MAX_BYTES >> 20
            )));
        }
        data.push(rows);
    }
    let sequences = client
        .query_typed(SEQUENCES, &[(&schema, Type::TEXT)])
        .map_err(sql_error)?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect::<Vec<(String, i64, bool)>>();
    if sequences.iter().any(|(name, _, _)| name.contains('$')) {
        return Ok(Err("a sequence's name holds a `$`".into()));
    }
    let record = Record {
        dbtool_version: env!("CARGO_PKG_VERSION").to_string(),
        migrations_format: migrations_format.to_string(),
        migrations_digest: migrations_digest.to_string(),
        catalog_digest: catalog_digest(client, schema).map_err(sql_error)?,
        sequences,
        tables: order.iter().map(|t| t.name.clone()).collect(),
    };
    if !order.is_empty() {
        ensure_rows_table(client).map_err(sql_error)?;
        // One statement for every table's rows.
        let names: Vec<&str> = order.iter().map(|t| t.name.as_str()).collect();
        let columns: Vec<&str> = order.iter().map(|t| t.columns.as_str()).collect();
        client
            .execute_typed(
                "INSERT INTO dbtool.warm_rows (schema_name, position, table_name, columns, data)
                 SELECT $1, r.position - 1, r.table_name, r.columns, r.data
                   FROM unnest($2::text[], $3::text[], $4::bytea[])
                        WITH ORDINALITY AS r(table_name, columns, data, position)",
                &[
                    (&schema, Type::TEXT),
                    (&names, Type::TEXT_ARRAY),
                    (&columns, Type::TEXT_ARRAY),
                    (&data, Type::BYTEA_ARRAY),
                ],
            )
            .map_err(sql_error)?;
    }
    super::meta::write_key(client, &key(schema), &record).map_err(sql_error)?;
    Ok(Ok(()))
}

/// The tables in an order where each comes after the tables it references; `None` for a cycle.
fn parents_first<'a>(tables: &[&'a Table]) -> Option<Vec<&'a Table>> {
    let names: BTreeSet<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::with_capacity(tables.len());
    while order.len() < tables.len() {
        let ready: Vec<&Table> = tables
            .iter()
            .filter(|t| !placed.contains(t.name.as_str()))
            .filter(|t| {
                t.references
                    .iter()
                    .all(|r| !names.contains(r.as_str()) || placed.contains(r.as_str()))
            })
            .copied()
            .collect();
        if ready.is_empty() {
            return None;
        }
        for t in ready {
            placed.insert(&t.name);
            order.push(t);
        }
    }
    Some(order)
}

/// The recorded warm state, if any.
pub fn read(
    client: &mut Client,
    schema: &str,
) -> std::result::Result<Option<Record>, postgres::Error> {
    super::meta::read_key(client, &key(schema))
}

/// Whether the next reset of the schema may take the warm path (before what its flags and files
/// say): `Ok(record)`, or why not.
pub fn next(
    client: &mut Client,
    schema: &str,
    migrations_format: &str,
    migrations_digest: &str,
) -> std::result::Result<std::result::Result<Record, String>, postgres::Error> {
    // One round trip for the three keys and the Citus check.
    let (unfinished, last_reset, record, citus) =
        super::meta::warm_inputs(client, schema, &key(schema))?;
    if let Some(u) = unfinished {
        return Ok(Err(format!(
            "an unfinished {} ({}, started {}) came after the last reset",
            u.command, u.by, u.started_at
        )));
    }
    if last_reset.is_none() {
        return Ok(Err("no finished reset is recorded".into()));
    }
    if citus {
        return Ok(Err(
            "the database is distributed with Citus, which cannot restart its sequences where \
             the migrations left them"
                .into(),
        ));
    }
    check(client, schema, record, migrations_format, migrations_digest)
}

/// Whether the warm path may run: `Ok(record)`, or why not.
fn check(
    client: &mut Client,
    schema: &str,
    record: Option<Record>,
    migrations_format: &str,
    migrations_digest: &str,
) -> std::result::Result<std::result::Result<Record, String>, postgres::Error> {
    let Some(record) = record else {
        return Ok(Err("no warm record of a cold reset".into()));
    };
    if record.dbtool_version != env!("CARGO_PKG_VERSION") {
        return Ok(Err(format!(
            "dbtool {} recorded the last cold reset",
            record.dbtool_version
        )));
    }
    if record.migrations_format != migrations_format
        || record.migrations_digest != migrations_digest
    {
        return Ok(Err("the migration files changed".into()));
    }
    if catalog_digest(client, schema)? != record.catalog_digest {
        return Ok(Err(format!(
            "the schema {schema} changed since the last cold reset (its catalog digest differs)"
        )));
    }
    Ok(Ok(record))
}

/// Inside the reset's transaction, first: every table of the schema emptied (under
/// `SAVEPOINT dbtool_drop`, for the lock watch of `drop::watching_locks`).
pub fn empty_tables(client: &mut Client, schema: &str) -> std::result::Result<(), postgres::Error> {
    client.batch_execute("SAVEPOINT dbtool_drop")?;
    // Names only: counting rows (as `tables` does) would cost a query per table.
    let names: Vec<String> = client
        .query_typed(
            "SELECT pg_catalog.format('%I.%I', $1::text, c.relname) FROM pg_catalog.pg_class c
              WHERE c.relnamespace =
                    (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
                AND c.relkind IN ('r', 'p') ORDER BY c.relname",
            &[(&schema, Type::TEXT)],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !names.is_empty() {
        client.batch_execute(&format!("TRUNCATE TABLE {}", names.join(", ")))?;
    }
    Ok(())
}

/// Then: the migrations' rows copied back parents first, every sequence where the migrations
/// left it. `ALTER SEQUENCE ... RESTART` gives each sequence new storage in this transaction, so
/// that this and the load's `setval` roll back with it (a plain `setval` would not).
pub fn restore(client: &mut Client, schema: &str, record: &Record) -> Result<()> {
    if !record.tables.is_empty() {
        let rows = client
            .query_typed(
                "SELECT table_name, columns, data FROM dbtool.warm_rows WHERE schema_name = $1
                 ORDER BY position",
                &[(&schema, Type::TEXT)],
            )
            .map_err(sql_error)?;
        for row in rows {
            let table: String = row.get(0);
            let columns: String = row.get(1);
            let data: Vec<u8> = row.get(2);
            let mut writer = client
                .copy_in(&format!(
                    "COPY {}.{} ({columns}) FROM STDIN",
                    quote_ident(schema),
                    quote_ident(&table)
                ))
                .map_err(sql_error)?;
            std::io::Write::write_all(&mut writer, &data).map_err(copy_error)?;
            writer.finish().map_err(sql_error)?;
        }
    }
    if !record.sequences.is_empty() {
        let mut block = String::from("DO $dbtool_warm$ BEGIN\n");
        for (name, value, called) in &record.sequences {
            let sequence = format!("{}.{}", quote_ident(schema), quote_ident(name));
            block.push_str(&format!(
                "ALTER SEQUENCE {sequence} RESTART WITH {value};\n"
            ));
            if *called {
                block.push_str(&format!(
                    "PERFORM pg_catalog.setval({}::regclass, {value}, true);\n",
                    quote_literal(&sequence)
                ));
            }
        }
        block.push_str("END $dbtool_warm$");
        client.batch_execute(&block).map_err(sql_error)?;
    }
    Ok(())
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
