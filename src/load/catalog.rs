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
    /// A trigger that is on, or a rule, may change the rows on their way in.
    pub rewritten: bool,
}

const TABLES_SQL: &str = "
    SELECT c.relname::text, c.relkind = 'r',
           EXISTS (SELECT FROM pg_trigger WHERE tgrelid = c.oid AND NOT tgisinternal
                                            AND tgenabled <> 'D')
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
        let Some(name) = row.get::<_, Option<String>>(3) else {
            continue;
        };
        let (typname, typtype): (String, String) = (row.get(4), row.get(5));
        table.columns.push((
            name,
            ColumnType::from_catalog(&typname, &typtype, row.get(6), row.get(7)),
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
