//! Dropping the application's objects: every table, view, materialized view, sequence, type,
//! function, collation and text search object of the schema that no extension owns, inside the
//! unit's transaction, whose lock waits `--ddl-lock-timeout` bounds. The schema, its owner, its
//! grants and its extensions stay.

pub mod privileges;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, GenericClient};

use crate::connection::{Database, describe_sql_error};
use crate::error::{Error, Result};

/// One object to drop.
#[derive(Debug, Clone)]
pub struct Object {
    pub kind: String,
    pub name: String,
    /// A table's rows, counted up to `ROWS_COUNTED_UP_TO` + 1 (`count_rows`); None: not counted.
    pub rows: Option<u64>,
}

/// Counting stops here: a first reset names what it would drop without reading a huge table whole.
pub const ROWS_COUNTED_UP_TO: u64 = 1_000_000;

impl Object {
    /// `table public.customers (1000 rows)`; `(more than 1000000 rows)` past the count's bound.
    pub fn describe(&self) -> String {
        match self.rows {
            Some(0) | None => format!("{} {}", self.kind, self.name),
            Some(n) if n > ROWS_COUNTED_UP_TO => {
                format!(
                    "{} {} (more than {ROWS_COUNTED_UP_TO} rows)",
                    self.kind, self.name
                )
            }
            Some(1) => format!("{} {} (1 row)", self.kind, self.name),
            Some(n) => format!("{} {} ({n} rows)", self.kind, self.name),
        }
    }
}

/// Fills in the row count of every table (and materialized view) in `objects`.
pub fn count_rows(
    client: &mut impl GenericClient,
    objects: &mut [Object],
) -> Result<(), postgres::Error> {
    for object in objects
        .iter_mut()
        .filter(|o| o.kind == "table" || o.kind == "materialized view")
    {
        // The name is format('%I.%I'), quoted by the server itself.
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM {} LIMIT {}) rows",
            object.name,
            ROWS_COUNTED_UP_TO + 1
        );
        match client.query_one(&sql, &[]) {
            Ok(row) => object.rows = Some(row.get::<_, i64>(0) as u64),
            // A materialized view that was never refreshed cannot be read: it holds nothing.
            Err(e) if e.code() == Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The application's objects of schema `$1` (kind, name, drop order, owner): every table, view,
/// materialized view, foreign table, sequence, function, type (enum, domain, composite, range,
/// shell), collation and text search configuration, dictionary, parser or template that no
/// extension owns, less what goes with something else (a serial column's sequence goes with its
/// table; a range type's constructor functions go with the type). privileges.rs checks ownership
/// of the same list.
macro_rules! objects_sql {
    () => {
        "
WITH ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e')
SELECT kind, name, ord, owner FROM (
    SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                          WHEN 'f' THEN 'foreign table' WHEN 'S' THEN 'sequence' ELSE 'table' END AS kind,
           format('%I.%I', n.nspname, c.relname) AS name,
           CASE c.relkind WHEN 'v' THEN 1 WHEN 'm' THEN 2 WHEN 'f' THEN 3 WHEN 'S' THEN 5 ELSE 4 END AS ord,
           c.relowner AS owner
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND NOT c.relispartition
       AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)
       AND NOT (c.relkind = 'S' AND EXISTS (
                SELECT 1 FROM pg_depend d
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
    UNION ALL
    SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
           format('%I.%I(%s)', n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)),
           6, p.proowner
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = $1
       AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_proc'::regclass AND ext.objid = p.oid)
       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'i')
    UNION ALL
    SELECT CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END,
           format('%I.%I', n.nspname, t.typname), 7, t.typowner
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = $1
       AND (t.typtype IN ('e', 'd', 'r')
            OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')
            OR (t.typtype = 'p' AND NOT t.typisdefined))
       AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_type'::regclass AND ext.objid = t.oid)
    UNION ALL
    SELECT o.kind, format('%I.%I', n.nspname, o.name), o.ord, o.owner
      FROM (SELECT 'collation', collname, collnamespace, 8, collowner, 'pg_collation'::regclass, oid
              FROM pg_collation
            UNION ALL
            SELECT 'text search configuration', cfgname, cfgnamespace, 9, cfgowner, 'pg_ts_config'::regclass, oid
              FROM pg_ts_config
            UNION ALL
            SELECT 'text search dictionary', dictname, dictnamespace, 10, dictowner, 'pg_ts_dict'::regclass, oid
              FROM pg_ts_dict
            UNION ALL
            -- parsers and templates have no owner: only a superuser creates or drops them
            SELECT 'text search parser', prsname, prsnamespace, 11, 10::oid, 'pg_ts_parser'::regclass, oid
              FROM pg_ts_parser
            UNION ALL
            SELECT 'text search template', tmplname, tmplnamespace, 12, 10::oid, 'pg_ts_template'::regclass, oid
              FROM pg_ts_template
           ) o (kind, name, namespace, ord, owner, catalog, oid)
      JOIN pg_namespace n ON n.oid = o.namespace
     WHERE n.nspname = $1
       AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = o.catalog AND ext.objid = o.oid)
) objects"
    };
}
pub(crate) use objects_sql;

const INVENTORY_SQL: &str = concat!(objects_sql!(), " ORDER BY ord, name");

/// Kinds whose DROP takes one name at a time.
const ONE_PER_DROP: &[&str] = &[
    "collation",
    "text search configuration",
    "text search dictionary",
    "text search parser",
    "text search template",
];

/// What a drop would remove, in drop order.
pub fn inventory(
    client: &mut impl GenericClient,
    schema: &str,
) -> Result<Vec<Object>, postgres::Error> {
    Ok(client
        .query(INVENTORY_SQL, &[&schema])?
        .iter()
        .map(|r| Object {
            kind: r.get(0),
            name: r.get(1),
            rows: None,
        })
        .collect())
}

/// Drops everything `inventory` lists, inside the caller's transaction. Returns how many objects went.
/// While it runs, a spare work connection (when the pool has one) samples pg_blocking_pids of the
/// drop, so that a lock timeout names exactly the sessions it waited for.
pub fn drop_all(
    db: &Database,
    client: &mut Client,
    schema: &str,
    ddl_lock_timeout: Duration,
) -> Result<usize> {
    watching_locks(db, client, schema, ddl_lock_timeout, "drop", |client| {
        drop_objects(client, schema)
    })
}

/// Runs `work` (which starts with `SAVEPOINT dbtool_drop`) while a spare work connection samples
/// the sessions blocking it, so that a lock timeout names them: the drop, and the warm path's
/// truncate.
pub fn watching_locks<T>(
    db: &Database,
    client: &mut Client,
    schema: &str,
    ddl_lock_timeout: Duration,
    what: &str,
    work: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
) -> Result<T> {
    let fail = |e: postgres::Error| {
        Error::Work(format!("{what} failed: {}", describe_sql_error(&e, None)))
    };
    let drop_pid: i32 = client
        .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
        .map_err(fail)?
        .get(0);
    let done = AtomicBool::new(false);
    let sampled: Mutex<Option<String>> = Mutex::new(None);
    let dropped = std::thread::scope(|scope| {
        if let Some(mut watcher) = db.try_work() {
            let (done, sampled) = (&done, &sampled);
            scope.spawn(move || {
                while !done.load(Ordering::Acquire) {
                    if let Ok(rows) = watcher.query(BLOCKED_BY_SQL, &[&drop_pid])
                        && !rows.is_empty()
                    {
                        *sampled.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(describe_sessions(&rows));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        let dropped = work(client);
        done.store(true, Ordering::Release);
        dropped
    });
    match dropped {
        Ok(n) => Ok(n),
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
            // Back to before the drop, so this connection can still ask who held the locks.
            let _ = client.batch_execute("ROLLBACK TO SAVEPOINT dbtool_drop");
            let sampled = sampled.into_inner().unwrap_or_else(|e| e.into_inner());
            let who = sampled.unwrap_or_else(|| lock_holders(client, schema));
            Err(Error::Work(format!(
                "the {what} waited longer than --ddl-lock-timeout {} for locks held by {who}; \
                 nothing was changed. End those sessions (or raise --ddl-lock-timeout) and retry",
                humantime::format_duration(ddl_lock_timeout),
            )))
        }
        Err(e) => Err(fail(e)),
    }
}

fn drop_objects(client: &mut Client, schema: &str) -> Result<usize, postgres::Error> {
    client.batch_execute("SAVEPOINT dbtool_drop")?;
    let objects = inventory(client, schema)?;
    let mut i = 0;
    while i < objects.len() {
        let kind = &objects[i].kind;
        let names: Vec<&str> = objects[i..]
            .iter()
            .take_while(|o| &o.kind == kind)
            .take(if ONE_PER_DROP.contains(&kind.as_str()) {
                1
            } else {
                usize::MAX
            })
            .map(|o| o.name.as_str())
            .collect();
        i += names.len();
        client.batch_execute(&format!(
            "DROP {} IF EXISTS {} CASCADE",
            kind.to_uppercase(),
            names.join(", ")
        ))?;
    }
    client.batch_execute("RELEASE SAVEPOINT dbtool_drop")?;
    Ok(objects.len())
}

/// The sessions a backend waits for.
const BLOCKED_BY_SQL: &str = "
    SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
           extract(epoch FROM now() - coalesce(a.xact_start, a.backend_start))::bigint
      FROM pg_stat_activity a
     WHERE a.pid = ANY (pg_catalog.pg_blocking_pids($1))
     ORDER BY a.pid";

/// When no spare connection could watch the drop: the sessions holding locks on the schema's
/// relations, which is what a DROP of them waits for.
fn lock_holders(client: &mut Client, schema: &str) -> String {
    let rows = client.query(
        "SELECT DISTINCT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
                extract(epoch FROM now() - coalesce(a.xact_start, a.backend_start))::bigint
           FROM pg_locks l
           JOIN pg_stat_activity a ON a.pid = l.pid
           JOIN pg_class c ON c.oid = l.relation
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE l.granted AND n.nspname = $1 AND a.pid <> pg_catalog.pg_backend_pid()
          ORDER BY a.pid",
        &[&schema],
    );
    match rows {
        Ok(rows) if !rows.is_empty() => describe_sessions(&rows),
        _ => "other sessions (they ended before they could be named)".to_string(),
    }
}

/// `pid 123 (report-job, idle in transaction, for 42s), ...`
fn describe_sessions(rows: &[postgres::Row]) -> String {
    rows.iter()
        .map(|r| {
            format!(
                "pid {} ({}, {}, for {}s)",
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, i64>(3)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
