//! What a load reads from the catalog about the tables it seeds, in one query for all of them:
//! each table's columns and their types, whether COPY FREEZE may load it, and whether a trigger
//! or rule may change its rows on their way in (then only the server can digest them).

use std::collections::HashMap;

use postgres::Client;

use crate::load::copy::ColumnType;

/// One seeded table, as the catalog describes it now.
#[derive(Debug, Clone, Default)]
pub struct LoadedTable {
    /// Every column, in attnum order, with its type.
    pub columns: Vec<(String, ColumnType)>,
    /// Not partitioned, not foreign: the kind COPY FREEZE accepts.
    pub plain: bool,
    /// A trigger on INSERT that is on (COPY fires those: `tgtype & 4`, TRIGGER_TYPE_INSERT), or
    /// a rule, may change the rows on their way in.
    pub rewritten: bool,
    /// Such a trigger that runs a function of the application's (not one of the
    /// server's own, like `tsvector_update_trigger`, which only fill the row), or a rule: it
    /// may write to other tables as rows come in.
    pub writes_elsewhere: bool,
}

const TABLES_SQL: &str = "
    SELECT c.relname::text, c.relkind = 'r',
           EXISTS (SELECT FROM pg_trigger WHERE tgrelid = c.oid AND NOT tgisinternal
                                            AND tgenabled <> 'D' AND tgtype & 4 <> 0)
           OR EXISTS (SELECT FROM pg_rewrite WHERE ev_class = c.oid),
           EXISTS (SELECT FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid
                    WHERE tg.tgrelid = c.oid AND NOT tg.tgisinternal AND tg.tgenabled <> 'D'
                      AND tg.tgtype & 4 <> 0
                      AND p.pronamespace <> 'pg_catalog'::regnamespace)
           OR EXISTS (SELECT FROM pg_rewrite WHERE ev_class = c.oid),
           a.attname::text, t.typname::text, t.typtype::text,
           t.typnamespace = 'pg_catalog'::regnamespace, a.atttypmod
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_type t ON t.oid = a.atttypid
     WHERE n.nspname = $1 AND c.relname = ANY($2)
     ORDER BY c.relname, a.attnum";

/// The tables of `tables` that exist in `schema`, by name.
pub fn read(
    client: &mut Client,
    schema: &str,
    tables: &[String],
) -> Result<HashMap<String, LoadedTable>, postgres::Error> {
    let mut found: HashMap<String, LoadedTable> = HashMap::new();
    for row in client.query(TABLES_SQL, &[&schema, &tables])? {
        let table = found.entry(row.get(0)).or_default();
        table.plain = row.get(1);
        table.rewritten = row.get(2);
        table.writes_elsewhere = row.get(3);
        let Some(name) = row.get::<_, Option<String>>(4) else {
            continue;
        };
        let (typname, typtype): (String, String) = (row.get(5), row.get(6));
        table.columns.push((
            name,
            ColumnType::from_catalog(&typname, &typtype, row.get(7), row.get(8)),
        ));
    }
    Ok(found)
}

/// The columns of one table, in attnum order, with their types (none if there is no such table).
pub fn table_columns(
    client: &mut Client,
    schema: &str,
    table: &str,
) -> Result<Vec<(String, ColumnType)>, postgres::Error> {
    Ok(read(client, schema, &[table.to_string()])?
        .remove(table)
        .map(|t| t.columns)
        .unwrap_or_default())
}

/// Tables with an enabled BEFORE INSERT row trigger (tgtype bits: ROW 1, BEFORE 2, INSERT 4).
const INSERT_TRIGGERS_SQL: &str = "
    SELECT c.relname::text, pg_catalog.string_agg(pg_catalog.quote_ident(t.tgname), ', ' ORDER BY t.tgname)
      FROM pg_catalog.pg_trigger t
      JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND NOT t.tgisinternal AND t.tgenabled <> 'D'
       AND t.tgtype::integer & 7 = 7
     GROUP BY c.relname";

/// Defaults that the database computes anew on every reset (E'' strings: the patterns' backslashes
/// mean the same whatever `standard_conforming_strings` says): a volatile function (but the
/// sequences' `nextval`, which a reset restarts) or the clock, which is stable within a
/// transaction but differs between resets.
const VOLATILE_DEFAULTS_SQL: &str = r"
    WITH defaults AS (
        SELECT c.relname::text AS tab, a.attname::text AS col, a.attnum,
               pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS def
          FROM pg_catalog.pg_attrdef d
          JOIN pg_catalog.pg_class c ON c.oid = d.adrelid
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND NOT a.attisdropped AND a.attgenerated = ''
    )
    SELECT tab, col, def FROM defaults
     WHERE def ~* E'\\m(now|current_timestamp|current_date|current_time|localtimestamp|localtime|transaction_timestamp|statement_timestamp)\\M'
        OR EXISTS (SELECT FROM pg_catalog.regexp_matches(def, E'([A-Za-z_][A-Za-z0-9_$]*)\\s*\\(', 'g') AS m(name)
                     JOIN pg_catalog.pg_proc p ON p.proname = pg_catalog.lower(m.name[1])
                    WHERE p.provolatile = 'v' AND p.proname NOT IN ('nextval', 'setval'))
     ORDER BY tab, attnum";

/// The schema's tables, without partitions and without the migration tools' history tables.
const TABLES_OF_SCHEMA_SQL: &str = "
    SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relname::text
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND c.relname NOT IN ('refinery_schema_history', '__drizzle_migrations', '_prisma_migrations',
                             'schema_migrations', 'goose_db_version', '_sqlx_migrations',
                             'flyway_schema_history')
     ORDER BY 2";

/// What the spec check needs to know beyond the columns (see `SchemaFacts`).
pub fn schema_facts(
    client: &mut Client,
    schema: &str,
) -> Result<crate::spec::SchemaFacts, postgres::Error> {
    let mut facts = crate::spec::SchemaFacts::default();
    for row in client.query(INSERT_TRIGGERS_SQL, &[&schema])? {
        let (table, triggers): (String, String) = (row.get(0), row.get(1));
        facts
            .insert_triggers
            .insert(table, triggers.split(", ").map(String::from).collect());
    }
    for row in client.query(VOLATILE_DEFAULTS_SQL, &[&schema])? {
        facts.volatile_defaults.push(crate::spec::VolatileDefault {
            table: row.get(0),
            column: row.get(1),
            default: row.get(2),
        });
    }
    let tables = client.query(TABLES_OF_SCHEMA_SQL, &[&schema])?;
    if !tables.is_empty() {
        // Whether each holds rows, in one round trip (`SELECT 1`: Citus cannot plan a select of
        // no columns from a distributed table).
        let probes: Vec<String> = tables
            .iter()
            .map(|t| format!("EXISTS (SELECT 1 FROM {})", t.get::<_, String>(0)))
            .collect();
        let row = client.query_one(&format!("SELECT ARRAY[{}]", probes.join(", ")), &[])?;
        let holds: Vec<bool> = row.get(0);
        facts.tables = tables
            .iter()
            .zip(holds)
            .map(|(t, rows)| (t.get(1), rows))
            .collect();
    }
    Ok(facts)
}
