//! Loading the way pg_restore does: primary keys, unique constraints, secondary indexes and
//! foreign keys touching the seeded tables are set aside before the COPYs and rebuilt after
//! them, each in one pass instead of row by row. The definitions come from the catalog
//! (pg_get_constraintdef, pg_get_indexdef), so the schema afterwards is exactly the one before;
//! every constraint is validated and every index built again. The atomic load leaves the keys
//! and indexes of small tables in place (seed.rs, KEYS_IN_PLACE_BELOW), where updating them
//! row by row costs less than dropping and rebuilding them; foreign keys always go and come back.
//!
//! In the atomic reset and seed, setting aside and rebuilding happen inside the one transaction,
//! so nobody ever sees a table without its keys. With `--parallel` they cannot: what was set
//! aside is recorded with the unfinished mark (dbtool.meta), and a failed load is repaired
//! (`repair`) right away, or by the next migrate or seed when dbtool could not do it (kill -9).

use postgres::{Client, GenericClient};
use serde::{Deserialize, Serialize};

use crate::connection::{Database, describe_sql_error};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// PRIMARY KEY or UNIQUE
    Key,
    Index,
    ForeignKey,
}

/// One object set aside: enough to drop it, to tell whether it exists, and to put it back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetAside {
    pub kind: Kind,
    /// `"schema"."table"`
    pub table: String,
    /// The constraint's quoted name, or the index's schema-qualified quoted name.
    pub name: String,
    /// The constraint's definition, or the index's CREATE INDEX statement.
    pub definition: String,
    /// On a partitioned table: a foreign key there cannot be added NOT VALID (PostgreSQL
    /// before 18), so it is added validated.
    #[serde(default)]
    pub partitioned: bool,
}

impl SetAside {
    fn drop_sql(&self) -> String {
        match self.kind {
            Kind::Index => format!("DROP INDEX {}", self.name),
            Kind::Key | Kind::ForeignKey => {
                format!("ALTER TABLE {} DROP CONSTRAINT {}", self.table, self.name)
            }
        }
    }

    /// The statement that puts it back; a foreign key optionally without validating the rows.
    fn create_sql(&self, validate: bool) -> String {
        match self.kind {
            Kind::Index => self.definition.clone(),
            Kind::Key => format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {}",
                self.table, self.name, self.definition
            ),
            Kind::ForeignKey => format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {}{}",
                self.table,
                self.name,
                self.definition,
                if validate || self.partitioned {
                    ""
                } else {
                    " NOT VALID"
                }
            ),
        }
    }
}

/// What was set aside, in the order it must come back: keys, indexes, foreign keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Deferred {
    pub entries: Vec<SetAside>,
    /// The seeded tables, `"schema"."table"`: what a repair empties.
    pub tables: Vec<String>,
    /// Tables whose own triggers are off for the load (the spec's `disable_triggers`).
    #[serde(default)]
    pub triggers_off: Vec<String>,
}

impl Deferred {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn of(&self, kind: Kind) -> impl Iterator<Item = &SetAside> {
        self.entries.iter().filter(move |e| e.kind == kind)
    }
}

/// The seeded tables and, for a partitioned one, its partitions at every level: their keys and
/// indexes are set aside and rebuilt like a plain table's.
const SEEDED_SQL: &str = "
    WITH RECURSIVE seeded(oid) AS (
        SELECT k.oid FROM pg_class k JOIN pg_namespace kn ON kn.oid = k.relnamespace
         WHERE kn.nspname = $1 AND k.relname = ANY($2) AND k.relkind IN ('r', 'p')
        UNION
        SELECT i.inhrelid FROM pg_inherits i JOIN seeded s ON i.inhparent = s.oid
    )";

// Keys that a view depends on (a view grouping by a primary key) stay in place: dropping them
// would fail, and the load works with them. A partition's copy of its parent's key or foreign
// key (conparentid) goes and comes back with the parent's.
const CONSTRAINTS_SQL: &str = "
    SELECT c.contype::text, format('%I.%I', n.nspname, t.relname), format('%I', c.conname),
           pg_catalog.pg_get_constraintdef(c.oid), n.nspname::text, t.relname::text, t.relkind = 'p'
      FROM pg_constraint c
      JOIN pg_class t ON t.oid = c.conrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE c.contype IN ('p', 'u', 'f') AND c.conparentid = 0
       AND (c.conrelid IN (SELECT oid FROM seeded)
            OR (c.contype = 'f' AND c.confrelid IN (SELECT oid FROM seeded)))
       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.refclassid = 'pg_constraint'::regclass AND d.refobjid = c.oid
                          AND d.classid = 'pg_rewrite'::regclass)
     ORDER BY c.conname";

// A partition's copy of its parent's index (attached: in pg_inherits) goes and comes back with
// the parent's.
const INDEXES_SQL: &str = "
    SELECT format('%I.%I', n.nspname, t.relname), format('%I.%I', n.nspname, ic.relname),
           pg_catalog.pg_get_indexdef(i.indexrelid), t.relname::text
      FROM pg_index i
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE i.indrelid IN (SELECT oid FROM seeded)
       AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
       AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indexrelid
                          AND d.deptype = 'n')
     ORDER BY ic.relname";

fn failed(what: &str) -> impl Fn(postgres::Error) -> Error + '_ {
    move |e| Error::Work(format!("{what} failed: {}", describe_sql_error(&e, None)))
}

/// Drops the keys, indexes and foreign keys of `tables` inside the caller's transaction, turns
/// off the application's own triggers of `triggers_off` (audit or notify triggers that must not
/// fire for seed data), and returns what puts all of it back. The keys and indexes of
/// `keys_in_place` (a subset of `tables`) stay: only the foreign keys touching them go.
pub fn defer(
    client: &mut Client,
    schema: &str,
    tables: &[String],
    keys_in_place: &[String],
    triggers_off: &[String],
) -> Result<Deferred> {
    let fail = failed("setting keys and indexes aside for the load");
    let qualified = |t: &String| {
        format!(
            "{}.{}",
            crate::connection::quote_ident(schema),
            crate::connection::quote_ident(t)
        )
    };
    let mut deferred = Deferred {
        entries: Vec::new(),
        tables: tables.iter().map(qualified).collect(),
        triggers_off: triggers_off.iter().map(qualified).collect(),
    };
    let stays = |table: String| keys_in_place.contains(&table);
    let mut foreign_keys = Vec::new();
    for row in client
        .query(
            &format!("{SEEDED_SQL} {CONSTRAINTS_SQL}"),
            &[&schema, &tables],
        )
        .map_err(&fail)?
    {
        let kind: String = row.get(0);
        let entry = SetAside {
            kind: if kind == "f" {
                Kind::ForeignKey
            } else {
                Kind::Key
            },
            table: row.get(1),
            name: row.get(2),
            definition: row.get(3),
            partitioned: row.get(6),
        };
        if entry.kind == Kind::ForeignKey {
            foreign_keys.push(entry);
        } else if !(row.get::<_, String>(4) == schema && stays(row.get(5))) {
            deferred.entries.push(entry);
        }
    }
    // When every table keeps its keys and indexes, only foreign keys are set aside.
    let indexes = if tables.iter().all(|t| keys_in_place.contains(t)) {
        Vec::new()
    } else {
        client
            .query(&format!("{SEEDED_SQL} {INDEXES_SQL}"), &[&schema, &tables])
            .map_err(&fail)?
    };
    for row in indexes {
        if !stays(row.get(3)) {
            // A partitioned table's index comes back on every partition: pg_get_indexdef says
            // `ON ONLY`, which would build it on the parent alone.
            let definition: String = row.get(2);
            deferred.entries.push(SetAside {
                kind: Kind::Index,
                table: row.get(0),
                name: row.get(1),
                definition: definition.replacen(" ON ONLY ", " ON ", 1),
                partitioned: false,
            });
        }
    }
    deferred.entries.extend(foreign_keys);
    // Foreign keys first: they depend on the keys they reference.
    let drops: Vec<String> = deferred
        .of(Kind::ForeignKey)
        .chain(deferred.of(Kind::Key))
        .chain(deferred.of(Kind::Index))
        .map(SetAside::drop_sql)
        .collect();
    let drops: Vec<String> = drops
        .into_iter()
        .chain(
            deferred
                .triggers_off
                .iter()
                .map(|t| format!("ALTER TABLE {t} DISABLE TRIGGER USER")),
        )
        .collect();
    for sql in &drops {
        client.batch_execute(sql).map_err(&fail)?;
    }
    Ok(deferred)
}

fn rebuild_error(statement: &str, e: &postgres::Error) -> Error {
    Error::Work(format!(
        "rebuilding after the load failed: {} ({statement})",
        describe_sql_error(e, None)
    ))
}

/// The statements that turn the application's triggers back on.
fn triggers_on(deferred: &Deferred) -> Vec<String> {
    deferred
        .triggers_off
        .iter()
        .map(|t| format!("ALTER TABLE {t} ENABLE TRIGGER USER"))
        .collect()
}

/// Rebuilds what `defer` set aside on one connection, inside the caller's transaction: a foreign
/// key added there is validated at once, in one pass. One statement per query, so that an error
/// names the statement that failed.
pub fn restore(client: &mut Client, deferred: &Deferred) -> Result<()> {
    let statements: Vec<String> = deferred
        .entries
        .iter()
        .map(|e| e.create_sql(true))
        .chain(triggers_on(deferred))
        .collect();
    for sql in &statements {
        client
            .batch_execute(sql)
            .map_err(|e| rebuild_error(sql, &e))?;
    }
    Ok(())
}

/// `--parallel`: keys and indexes in one parallel pass; foreign keys added without validation
/// (a catalog write) and then validated in parallel (validations take no lock that conflicts
/// with another validation, so this cannot deadlock).
pub fn restore_parallel(db: &Database, deferred: &Deferred, workers: usize) -> Result<()> {
    let run = |client: &mut Client, sql: &String| {
        client
            .batch_execute(sql)
            .map_err(|e| rebuild_error(sql, &e))
    };
    let builds: Vec<String> = deferred
        .of(Kind::Key)
        .chain(deferred.of(Kind::Index))
        .map(|e| e.create_sql(true))
        .collect();
    db.parallel(&builds, workers, run)?;
    let adds: Vec<String> = deferred
        .of(Kind::ForeignKey)
        .map(|e| e.create_sql(false))
        .chain(triggers_on(deferred))
        .collect();
    if !adds.is_empty() {
        // Together or not at all, on one connection.
        db.parallel(&[adds], 1, |client, adds: &Vec<String>| {
            let mut tx = client
                .transaction()
                .map_err(|e| rebuild_error("BEGIN", &e))?;
            for sql in adds {
                tx.batch_execute(sql).map_err(|e| rebuild_error(sql, &e))?;
            }
            tx.commit().map_err(|e| rebuild_error("COMMIT", &e))
        })?;
    }
    let validations: Vec<String> = deferred
        .of(Kind::ForeignKey)
        .filter(|e| !e.partitioned)
        .map(|e| format!("ALTER TABLE {} VALIDATE CONSTRAINT {}", e.table, e.name))
        .collect();
    db.parallel(&validations, workers, run)?;
    Ok(())
}

/// After a failed `--parallel` load: empties the seeded tables and puts back whatever is still
/// missing, inside the caller's transaction, so that the schema has every key, index and foreign
/// key, valid.
pub fn repair(tx: &mut impl GenericClient, deferred: &Deferred) -> Result<()> {
    let fail = failed("putting the keys and indexes back after the failed load");
    if !deferred.tables.is_empty() {
        tx.batch_execute(&format!("TRUNCATE {}", deferred.tables.join(", ")))
            .map_err(&fail)?;
    }
    for entry in &deferred.entries {
        let exists: bool = match entry.kind {
            Kind::Index => tx.query_one("SELECT pg_catalog.to_regclass($1) IS NOT NULL", &[&entry.name]),
            Kind::Key | Kind::ForeignKey => tx.query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                                 WHERE conrelid = $1::text::regclass AND pg_catalog.format('%I', conname) = $2)",
                &[&entry.table, &entry.name],
            ),
        }
        .map_err(&fail)?
        .get(0);
        if exists {
            // A foreign key left NOT VALID by an interrupted validation is validated now.
            if entry.kind == Kind::ForeignKey {
                tx.batch_execute(&format!(
                    "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                    entry.table, entry.name
                ))
                .map_err(&fail)?;
            }
        } else {
            tx.batch_execute(&entry.create_sql(true)).map_err(&fail)?;
        }
    }
    for sql in triggers_on(deferred) {
        tx.batch_execute(&sql).map_err(&fail)?;
    }
    Ok(())
}
