//! Loading the way pg_restore does: primary keys, unique constraints, secondary indexes and
//! foreign keys touching the seeded tables are set aside before the COPYs and rebuilt after
//! them, each in one pass instead of row by row. The definitions come from the catalog
//! (pg_get_constraintdef, pg_get_indexdef), so the schema afterwards is exactly the one before;
//! every constraint is validated and every index built again.

use postgres::Client;

use crate::db::{Database, describe_sql_error};
use crate::error::{Error, Result};

/// What was set aside, as the statements that put it back, in the order they must run.
#[derive(Debug, Default)]
pub struct Deferred {
    /// ALTER TABLE ... ADD CONSTRAINT ... PRIMARY KEY / UNIQUE
    keys: Vec<String>,
    /// CREATE INDEX ...
    indexes: Vec<String>,
    /// ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID
    foreign_keys: Vec<String>,
    /// ALTER TABLE ... VALIDATE CONSTRAINT ...: these lock lightly, so they run in parallel
    validations: Vec<String>,
}

impl Deferred {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.indexes.is_empty() && self.foreign_keys.is_empty()
    }
}

const CONSTRAINTS_SQL: &str = "
    SELECT c.contype::text, format('%I.%I', n.nspname, t.relname), format('%I', c.conname),
           pg_get_constraintdef(c.oid)
      FROM pg_constraint c
      JOIN pg_class t ON t.oid = c.conrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE c.contype IN ('p', 'u', 'f')
       AND (c.conrelid IN (SELECT k.oid FROM pg_class k JOIN pg_namespace kn ON kn.oid = k.relnamespace
                            WHERE kn.nspname = $1 AND k.relname = ANY($2) AND k.relkind = 'r')
            OR (c.contype = 'f' AND c.confrelid IN (
                SELECT k.oid FROM pg_class k JOIN pg_namespace kn ON kn.oid = k.relnamespace
                 WHERE kn.nspname = $1 AND k.relname = ANY($2) AND k.relkind = 'r')))
     ORDER BY c.conname";

const INDEXES_SQL: &str = "
    SELECT format('%I.%I', n.nspname, ic.relname), pg_get_indexdef(i.indexrelid)
      FROM pg_index i
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE n.nspname = $1 AND t.relname = ANY($2) AND t.relkind = 'r'
       AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
     ORDER BY ic.relname";

/// Drops the keys, indexes and foreign keys of `tables` (in one transaction) and returns what
/// puts them back.
pub fn defer(client: &mut Client, schema: &str, tables: &[String]) -> Result<Deferred> {
    let fail = |e: postgres::Error| {
        Error::Work(format!(
            "setting indexes aside for the load failed: {}",
            describe_sql_error(&e, None)
        ))
    };
    let mut tx = client.transaction().map_err(fail)?;
    let mut deferred = Deferred::default();
    let mut drops_fk = Vec::new();
    let mut drops_key = Vec::new();
    for row in tx
        .query(CONSTRAINTS_SQL, &[&schema, &tables])
        .map_err(fail)?
    {
        let (kind, table, name, definition): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let drop = format!("ALTER TABLE {table} DROP CONSTRAINT {name}");
        if kind == "f" {
            drops_fk.push(drop);
            deferred.foreign_keys.push(format!(
                "ALTER TABLE {table} ADD CONSTRAINT {name} {definition} NOT VALID"
            ));
            deferred
                .validations
                .push(format!("ALTER TABLE {table} VALIDATE CONSTRAINT {name}"));
        } else {
            drops_key.push(drop);
            deferred.keys.push(format!(
                "ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"
            ));
        }
    }
    let mut drops_index = Vec::new();
    for row in tx.query(INDEXES_SQL, &[&schema, &tables]).map_err(fail)? {
        drops_index.push(format!("DROP INDEX {}", row.get::<_, String>(0)));
        deferred.indexes.push(row.get(1));
    }
    let drops: Vec<String> = drops_fk
        .into_iter()
        .chain(drops_key)
        .chain(drops_index)
        .collect();
    if !drops.is_empty() {
        tx.batch_execute(&drops.join(";\n")).map_err(fail)?;
    }
    tx.commit().map_err(fail)?;
    Ok(deferred)
}

/// Rebuilds what `defer` set aside: keys and indexes in one parallel pass, foreign keys added without
/// validation and then validated in parallel (validation takes no lock that conflicts with
/// another validation, so this cannot deadlock).
pub fn restore(db: &Database, deferred: &Deferred, workers: usize) -> Result<()> {
    let run = |client: &mut Client, statement: &String| {
        client.batch_execute(statement).map_err(|e| {
            Error::Work(format!(
                "rebuilding after the load failed: {} ({statement})",
                describe_sql_error(&e, None)
            ))
        })
    };
    // Each builds on one table: they may wait for each other, never deadlock.
    let builds: Vec<String> = deferred
        .keys
        .iter()
        .chain(&deferred.indexes)
        .cloned()
        .collect();
    db.parallel(&builds, workers, run)?;
    // Adding without validation only writes the catalog: one round trip for all of them.
    if !deferred.foreign_keys.is_empty() {
        db.parallel(&[deferred.foreign_keys.join(";\n")], 1, run)?;
    }
    db.parallel(&deferred.validations, workers, run)?;
    Ok(())
}
