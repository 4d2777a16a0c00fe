//! Seeding: rows stream into the database with COPY, parents before children; memory stays flat
//! because rows are generated as they are sent. Atomic loads run on the unit's one connection,
//! inside its transaction; `--parallel` loads spread the COPYs over several work connections.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use postgres::Client;

use crate::constraints::{self, Deferred};
use crate::db::{Database, describe_sql_error, quote_ident};
use crate::error::{Error, Result};
use crate::plan::{Chunk, SeedPlan, TableLoad};
use crate::progress::{Reporter, TableProgress};
use crate::spec::{Dataset, RowValues};
use crate::stop::Stop;

/// Rows between two progress updates.
const PROGRESS_EVERY: u64 = 2_000;

/// Where the COPYs run.
pub enum Connections<'a> {
    /// The unit's connection, inside its transaction.
    One {
        client: &'a mut Client,
        stop: &'a Stop,
    },
    /// Work connections of the pool, each COPY committed on its own.
    Pool { db: &'a Database, workers: usize },
}

impl Connections<'_> {
    /// Runs `f` over `items`, in order on the one connection or in parallel over the pool.
    fn run<T: Sync, R: Send>(
        &mut self,
        items: &[T],
        f: impl Fn(&mut Client, &T) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        match self {
            Connections::One { client, stop } => items
                .iter()
                .map(|item| f(client, item).map_err(|e| stop.explain(e)))
                .collect(),
            Connections::Pool { db, workers } => db.parallel(items, *workers, f),
        }
    }

    fn stop(&self) -> &Stop {
        match self {
            Connections::One { stop, .. } => stop,
            Connections::Pool { db, .. } => &db.stop,
        }
    }
}

/// The seeded tables' names, in load order.
pub fn tables(plan: &SeedPlan) -> Vec<String> {
    plan.tables.iter().map(|t| t.table.clone()).collect()
}

/// Sets the seeded tables' keys, indexes and foreign keys aside (and their own triggers off,
/// where the spec says so) inside the caller's transaction.
pub fn set_aside(
    client: &mut Client,
    data: &Dataset,
    plan: &SeedPlan,
    schema: &str,
) -> Result<Deferred> {
    let triggers_off: Vec<String> = plan
        .tables
        .iter()
        .filter(|t| data.spec.tables[t.index].disable_triggers)
        .map(|t| t.table.clone())
        .collect();
    constraints::defer(client, schema, &tables(plan), &triggers_off)
}

/// Inside the unit's transaction: sets keys and indexes aside, loads every table, rebuilds
/// them, and moves the sequences past the seeded values. Nobody outside sees any of it until
/// the unit commits.
pub fn load_atomic(
    client: &mut Client,
    stop: &Stop,
    data: &Dataset,
    plan: &SeedPlan,
    schema: &str,
    reporter: &Reporter,
) -> Result<()> {
    let deferred = set_aside(client, data, plan, schema)?;
    load_levels(
        &mut Connections::One { client, stop },
        data,
        plan,
        schema,
        reporter,
    )?;
    rebuild(reporter, || constraints::restore(client, &deferred))?;
    advance_sequences(client, schema, &tables(plan)).map_err(sequence_error)
}

fn sequence_error(e: postgres::Error) -> Error {
    Error::Work(format!(
        "moving sequences failed: {}",
        describe_sql_error(&e, None)
    ))
}

/// `--parallel`: the keys and indexes were set aside and committed (`deferred`); loads over the
/// pool's work connections and rebuilds in parallel. A failure empties the seeded tables and
/// puts every key, index and foreign key back before it is reported.
pub fn load_parallel(
    db: &Database,
    workers: usize,
    deferred: &Deferred,
    data: &Dataset,
    plan: &SeedPlan,
    schema: &str,
    reporter: &Reporter,
) -> Result<()> {
    let loaded = load_levels(
        &mut Connections::Pool { db, workers },
        data,
        plan,
        schema,
        reporter,
    )
    .and_then(|()| {
        rebuild(reporter, || {
            constraints::restore_parallel(db, deferred, workers)
        })
    })
    .and_then(|()| {
        advance_sequences(&mut *db.work()?, schema, &tables(plan)).map_err(sequence_error)
    });
    if let Err(e) = loaded {
        // Not after a lost lock: without the lock, dbtool changes nothing more. The next
        // migrate or seed repairs from the unfinished mark instead.
        if !matches!(db.stop.reason(), Some(crate::stop::StopReason::LockLost(_))) {
            reporter.warn(
                "repair",
                "the load failed: emptying the seeded tables and putting their keys, indexes and foreign keys back",
                serde_json::json!({}),
            );
            // A connection of its own: the work connections were cancelled if a signal came.
            let mut client = db.reserve()?;
            let fail = |e: postgres::Error| Error::Work(describe_sql_error(&e, None));
            let mut tx = client.transaction().map_err(fail)?;
            constraints::repair(&mut tx, deferred)?;
            tx.commit().map_err(fail)?;
        }
        return Err(e);
    }
    Ok(())
}

fn rebuild(reporter: &Reporter, f: impl FnOnce() -> Result<()>) -> Result<()> {
    reporter.phase_started("rebuild");
    let started = Instant::now();
    f()?;
    reporter.phase_finished("rebuild", started.elapsed(), "keys, indexes, foreign keys");
    Ok(())
}

/// Tables of one dependency level load together, every level after the levels it refers to.
fn load_levels(
    connections: &mut Connections,
    data: &Dataset,
    plan: &SeedPlan,
    schema: &str,
    reporter: &Reporter,
) -> Result<()> {
    let levels = plan
        .tables
        .iter()
        .map(|t| t.level)
        .max()
        .map_or(0, |l| l + 1);
    (0..levels).try_for_each(|level| {
        let loads: Vec<&TableLoad> = plan.tables.iter().filter(|t| t.level == level).collect();
        load_level(connections, data, &loads, schema, reporter)
    })
}

/// The tables of one level (none refers to another) load together, their chunks spread over
/// the connections; each table reports when its last chunk is in.
fn load_level(
    connections: &mut Connections,
    data: &Dataset,
    loads: &[&TableLoad],
    schema: &str,
    reporter: &Reporter,
) -> Result<()> {
    struct Table<'a> {
        load: &'a TableLoad,
        copy: String,
        progress: TableProgress,
        chunks_left: AtomicUsize,
    }
    let started = Instant::now();
    let tables: Vec<Table> = loads
        .iter()
        .map(|load| {
            let spec = &data.spec.tables[load.index];
            let columns: Vec<String> = spec.columns.iter().map(|c| quote_ident(&c.name)).collect();
            Table {
                load,
                copy: format!(
                    "COPY {}.{} ({}) FROM STDIN",
                    quote_ident(schema),
                    quote_ident(&spec.name),
                    columns.join(", ")
                ),
                progress: reporter.table(&load.table, load.rows),
                chunks_left: AtomicUsize::new(load.chunks.len()),
            }
        })
        .collect();
    let finished = |table: &Table| {
        table.progress.finish();
        reporter.table_seeded(&table.load.table, table.load.rows, started.elapsed());
    };
    for table in tables.iter().filter(|t| t.load.chunks.is_empty()) {
        finished(table);
    }
    let jobs: Vec<(&Table, &Chunk)> = tables
        .iter()
        .flat_map(|t| t.load.chunks.iter().map(move |c| (t, c)))
        .collect();
    let stop = connections.stop().clone();
    connections.run(&jobs, |client, (table, chunk)| {
        copy_chunk(
            client,
            data,
            table.load,
            chunk,
            &table.copy,
            &stop,
            &table.progress,
        )?;
        if table.chunks_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            finished(table);
        }
        Ok(())
    })?;
    Ok(())
}

/// Streams one chunk's rows through one COPY. Without `finish` the server aborts the COPY.
fn copy_chunk(
    client: &mut Client,
    data: &Dataset,
    load: &TableLoad,
    chunk: &Chunk,
    copy: &str,
    stop: &Stop,
    progress: &TableProgress,
) -> Result<()> {
    stop.check()?;
    let fail = |e: postgres::Error| rejected(data, load, chunk, &e);
    let mut writer = client.copy_in(copy).map_err(fail)?;
    let columns = data.spec.tables[load.index].columns.len();
    let mut line = String::with_capacity(512);
    let mut index = chunk.first_index;
    let mut unreported = 0;
    let generated = data.for_each_row(load.index, chunk.roots.clone(), &mut |mut row| {
        row.index = Some(index);
        index += 1;
        let mut values = RowValues::new(data, load.index, row);
        line.clear();
        for c in 0..columns {
            if c > 0 {
                line.push('\t');
            }
            match values.get(c)? {
                None => line.push_str("\\N"),
                Some(text) => escape_copy_text(&mut line, text),
            }
        }
        line.push('\n');
        writer
            .write_all(line.as_bytes())
            .map_err(|e| Error::Work(format!("seeding {} failed: {e}", load.table)))?;
        unreported += 1;
        if unreported == PROGRESS_EVERY {
            progress.inc(unreported);
            unreported = 0;
            // Stop generating as soon as the lock is lost or a signal comes.
            stop.check()?;
        }
        Ok(())
    });
    // On an error the writer drops unfinished, which aborts the COPY.
    generated?;
    writer.finish().map_err(fail)?;
    progress.inc(unreported);
    Ok(())
}

/// A row the server rejected, named by table, column, row key and (for a fixed row) its CSV
/// file and line: the server's context says `COPY clients, line 3, column email: "..."`.
fn rejected(data: &Dataset, load: &TableLoad, chunk: &Chunk, e: &postgres::Error) -> Error {
    let what = describe_sql_error(e, None);
    let context = e.as_db_error().and_then(|db| db.where_()).unwrap_or("");
    let line: Option<u64> = context
        .split(", ")
        .find_map(|part| part.strip_prefix("line ")?.split(':').next()?.parse().ok());
    let column = context
        .split(", ")
        .find_map(|part| part.strip_prefix("column ")?.split(':').next())
        .map(str::to_string);
    let Some(line) = line else {
        return Error::Work(format!("seeding {} failed: {what}", load.table));
    };
    let key = chunk.first_index + line - 1;
    let table = &data.spec.tables[load.index];
    let fixed = table
        .fixed
        .as_ref()
        .filter(|f| (key as usize) < f.rows.len())
        .map(|f| {
            format!(
                " (fixed row from {} line {})",
                f.file.display(),
                f.lines.get(key as usize).copied().unwrap_or(0)
            )
        })
        .unwrap_or_default();
    Error::Work(format!(
        "seeding {}{} failed at row {key}{fixed}: {what}",
        load.table,
        column.map_or_else(String::new, |c| format!(", column {c}")),
    ))
}

/// COPY text format: backslash, tab, newline and carriage return are escaped.
fn escape_copy_text(out: &mut String, text: &str) {
    if !text.contains(['\\', '\t', '\n', '\r']) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Moves every sequence behind a serial or identity column of `tables` past the column's
/// largest value, so that the application's own inserts do not collide with seeded rows.
pub fn advance_sequences(
    client: &mut Client,
    schema: &str,
    tables: &[String],
) -> Result<(), postgres::Error> {
    let rows = client.query(
        "SELECT format('%I.%I', n.nspname, c.relname), format('%I', a.attname),
                pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname)
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relname = ANY($2) AND a.attnum > 0 AND NOT a.attisdropped
            AND pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) IS NOT NULL",
        &[&schema, &tables],
    )?;
    for row in rows {
        let (table, column, sequence): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        client.execute(
            &format!(
                "SELECT setval($1::text::regclass, m) FROM (SELECT max({column})::bigint AS m FROM {table}) x \
                 WHERE m IS NOT NULL"
            ),
            &[&sequence],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::escape_copy_text;

    #[test]
    fn copy_text_escapes_its_delimiters() {
        let mut out = String::new();
        escape_copy_text(&mut out, "a\tb\\c\nd\re");
        assert_eq!(out, "a\\tb\\\\c\\nd\\re");
    }
}
