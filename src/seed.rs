//! Seeding: rows stream into the database with COPY over the work connections in parallel,
//! parents before children; memory stays flat because rows are generated as they are sent.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use postgres::Client;

use crate::constraints;
use crate::copy::{self, RowEncoder};
use crate::db::{Database, describe_sql_error};
use crate::digest::{RowText, Sum};
use crate::error::{Error, Result};
use crate::plan::{Chunk, SeedPlan, TableLoad};
use crate::progress::{Reporter, TableProgress};
use crate::spec::{Dataset, RowValues};
use crate::stop::Stop;

/// Rows between two progress updates.
const PROGRESS_EVERY: u64 = 2_000;
/// Bytes of COPY data the row producer hands to the connection's thread at a time.
const COPY_BUFFER: usize = 64 * 1024;
const BUFFERS_IN_FLIGHT: usize = 4;

/// Per seeded table, its digest (src/digest.rs) computed from the rows as they were sent, where
/// the client could know the server's text of every row.
pub type ClientDigests = BTreeMap<String, Sum>;

/// Loads every table of the plan with keys, indexes and foreign keys set aside, rebuilds them,
/// then moves sequences past the seeded values.
pub fn seed(
    db: &Database,
    data: &Dataset,
    plan: &SeedPlan,
    schema: &str,
    workers: usize,
    reporter: &Reporter,
) -> Result<ClientDigests> {
    let tables: Vec<String> = plan.tables.iter().map(|t| t.table.clone()).collect();
    let deferred = constraints::defer(&mut *db.work()?, schema, &tables)?;
    let levels = plan
        .tables
        .iter()
        .map(|t| t.level)
        .max()
        .map_or(0, |l| l + 1);
    let mut digests = ClientDigests::new();
    let loaded: Result<()> = (0..levels).try_for_each(|level| {
        let loads: Vec<&TableLoad> = plan.tables.iter().filter(|t| t.level == level).collect();
        digests.extend(load_level(db, data, &loads, schema, workers, reporter)?);
        Ok(())
    });
    // Put the schema back even when the load failed, unless we are being stopped.
    if db.stop.reason().is_none() && !deferred.is_empty() {
        reporter.phase_started("rebuild");
        let started = Instant::now();
        let rebuilt = constraints::restore(db, &deferred, workers);
        if loaded.is_ok() {
            rebuilt?;
            reporter.phase_finished("rebuild", started.elapsed(), "keys, indexes, foreign keys");
        }
    }
    loaded?;
    let mut client = db.work()?;
    advance_sequences(&mut client, schema, &tables).map_err(|e| {
        Error::Work(format!(
            "moving sequences failed: {}",
            describe_sql_error(&e, None)
        ))
    })?;
    Ok(digests)
}

/// One table of a level, as its chunks load.
struct Table<'a> {
    load: &'a TableLoad,
    encoder: RowEncoder,
    /// `None` when the client cannot know the server's text of its rows.
    row_text: Option<RowText>,
    /// The chunks' digests so far; `None` once a value did not parse on the client.
    sum: Mutex<Option<Sum>>,
    progress: TableProgress,
    chunks_left: AtomicUsize,
}

/// The tables of one level (none refers to another) load together, their chunks spread over
/// the work connections; each table reports when its last chunk is in.
fn load_level(
    db: &Database,
    data: &Dataset,
    loads: &[&TableLoad],
    schema: &str,
    workers: usize,
    reporter: &Reporter,
) -> Result<Vec<(String, Sum)>> {
    let started = Instant::now();
    let mut catalog = db.work()?;
    let tables: Vec<Table> = loads
        .iter()
        .map(|load| {
            let failed = |e: postgres::Error| {
                Error::Work(format!(
                    "seeding {} failed: {}",
                    load.table,
                    describe_sql_error(&e, None)
                ))
            };
            let columns = copy::table_columns(&mut catalog, schema, &load.table).map_err(failed)?;
            let types = copy::spec_column_types(data, load.index, &columns);
            let row_text =
                RowText::for_loaded_table(&mut catalog, schema, data, load.index, &columns)
                    .map_err(failed)?;
            Ok(Table {
                load,
                encoder: RowEncoder::for_table(data, load.index, types, schema, false),
                sum: Mutex::new(row_text.is_some().then(Sum::default)),
                row_text,
                progress: reporter.table(&load.table, load.rows),
                chunks_left: AtomicUsize::new(load.chunks.len()),
            })
        })
        .collect::<Result<_>>()?;
    drop(catalog);
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
    db.parallel(&jobs, workers, |client, (table, chunk)| {
        copy_chunk(client, data, table, chunk, &db.stop)?;
        if table.chunks_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            finished(table);
        }
        Ok(())
    })?;
    Ok(tables
        .into_iter()
        .filter_map(|t| {
            let sum = t.sum.into_inner().expect("no chunk panicked")?;
            Some((t.load.table.clone(), sum))
        })
        .collect())
}

/// Streams one chunk's rows through one COPY. Without `finish` the server aborts the COPY.
fn copy_chunk(
    client: &mut Client,
    data: &Dataset,
    table: &Table,
    chunk: &Chunk,
    stop: &Stop,
) -> Result<()> {
    let (load, encoder, progress) = (table.load, &table.encoder, &table.progress);
    // The chunk's own digest, merged into the table's at the end: chunks finish in any order.
    let mut row_text = table.row_text.as_ref();
    let mut sum = Sum::default();
    let mut text = Vec::new();
    stop.check()?;
    let fail = |e: postgres::Error| {
        Error::Work(format!(
            "seeding {} failed: {}",
            load.table,
            describe_sql_error(&e, None)
        ))
    };
    let mut writer = client.copy_in(encoder.statement()).map_err(fail)?;
    let write_failed =
        |e: std::io::Error| Error::Work(format!("seeding {} failed: {e}", load.table));
    // Rows are generated and encoded on a thread of their own while this one writes the COPY
    // stream, so the client's CPU overlaps its socket writes (and the server's work, where cores
    // allow). Buffers of about COPY_BUFFER bytes; a few in flight bound the memory.
    let (full, receive) = std::sync::mpsc::sync_channel::<Vec<u8>>(BUFFERS_IN_FLIGHT);
    let (produced, written) = std::thread::scope(|scope| {
        let producer = scope.spawn(move || -> Result<(Option<&RowText>, Sum)> {
            let mut buffer = Vec::with_capacity(COPY_BUFFER + 512);
            encoder.begin(&mut buffer);
            let mut index = chunk.first_index;
            let mut unreported = 0;
            data.for_each_row(load.index, chunk.roots.clone(), &mut |mut row| {
                row.index = Some(index);
                index += 1;
                let mut values = RowValues::new(data, load.index, row);
                if let Some(rt) = row_text
                    && !rt.add(&mut values, &mut text, &mut sum)?
                {
                    row_text = None;
                }
                encoder.row(&mut values, &mut buffer).map_err(|e| match e {
                    Error::Work(m) => Error::Work(format!("seeding {}: {m}", load.table)),
                    e => e,
                })?;
                if buffer.len() >= COPY_BUFFER {
                    let next = Vec::with_capacity(COPY_BUFFER + 512);
                    // The writer has gone: it failed, and says why.
                    full.send(std::mem::replace(&mut buffer, next))
                        .map_err(|_| Error::Work(format!("seeding {} failed", load.table)))?;
                }
                unreported += 1;
                if unreported == PROGRESS_EVERY {
                    progress.inc(unreported);
                    unreported = 0;
                    // Stop generating as soon as the lock is lost or a signal comes.
                    stop.check()?;
                }
                Ok(())
            })?;
            encoder.end(&mut buffer);
            full.send(buffer)
                .map_err(|_| Error::Work(format!("seeding {} failed", load.table)))?;
            progress.inc(unreported);
            Ok((row_text, sum))
        });
        let written: Result<()> = receive
            .iter()
            .try_for_each(|buffer| writer.write_all(&buffer).map_err(write_failed));
        // Unblocks a producer waiting to send after a failed write.
        drop(receive);
        (
            producer.join().expect("the row producer does not panic"),
            written,
        )
    });
    // On an error the writer drops unfinished, which aborts the COPY. A write error explains a
    // producer's failed send, so it comes first.
    written?;
    let (row_text, sum) = produced?;
    writer.finish().map_err(fail)?;
    let mut table_sum = table.sum.lock().expect("no chunk panicked");
    match (row_text, table_sum.as_mut()) {
        (Some(_), Some(total)) => total.merge(sum),
        _ => *table_sum = None,
    }
    Ok(())
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
