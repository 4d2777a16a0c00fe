//! Seeding: rows stream into the database with COPY, parents before children; memory stays flat
//! because rows are generated as they are sent. Atomic loads run on the unit's one connection,
//! inside its transaction; `--parallel` loads spread the COPYs over several work connections.

pub mod catalog;
pub mod constraints;
pub mod copy;
pub mod digest;
pub mod empty;
pub mod fit;
mod md5_lanes;
pub mod partitions;
pub mod seed_code;
pub mod sequences;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::Client;

use crate::connection::stop::Stop;
use crate::connection::{Database, describe_sql_error};
use crate::error::{Error, Result};
use crate::load::digest::{Digester, Fields, RowText, Sum};
use crate::plan::{Chunk, SeedPlan, TableLoad};
use crate::progress::{Reporter, TableProgress};
use crate::spec::Dataset;
use catalog::LoadedTable;
use constraints::Deferred;
use copy::{ColumnType, RowEncoder};
use partitions::Routing;
use sequences::{Sent, SentMaxima, Sequences};

/// Rows between two progress updates.
const PROGRESS_EVERY: u64 = 2_000;
/// Bytes of COPY data the row producer hands to the connection's thread at a time.
const COPY_BUFFER: usize = 64 * 1024;

/// Per seeded table, its digest (src/load/digest.rs) computed from the rows as they were sent, where
/// the client could know the server's text of every row.
pub type ClientDigests = BTreeMap<String, Sum>;

/// Where the COPYs run.
pub enum Connections<'a> {
    /// The unit's connection, inside its transaction.
    One {
        client: &'a mut Client,
        stop: &'a Stop,
        /// Every seeded table was created or truncated in this transaction.
        freeze: bool,
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
            Connections::One { client, stop, .. } => items
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

    /// A connection to read the catalog on: the unit's own (only it sees the new tables).
    fn catalog<R>(&mut self, f: impl FnOnce(&mut Client) -> Result<R>) -> Result<R> {
        match self {
            Connections::One { client, .. } => f(client),
            Connections::Pool { db, .. } => {
                let mut client = db.work()?;
                f(&mut client)
            }
        }
    }

    /// Threads that generate one chunk's rows at once: on the one connection, as many as there
    /// are cores (the server's backend takes its share); over the pool, one per connection.
    fn generators(&self) -> usize {
        match self {
            Connections::One { .. } => generation_threads(),
            Connections::Pool { .. } => 1,
        }
    }

    /// COPY FREEZE (no hint-bit writes afterwards, so the application's first reads after a
    /// reset are not slower) needs a table created or truncated in the current transaction:
    /// the atomic load's, unless something committed in between.
    fn can_freeze(&self) -> bool {
        matches!(self, Connections::One { freeze: true, .. })
    }
}

/// Overrides how many threads generate the rows of an atomic load (benchmarks and tests): a
/// positive number. The rows are the same whatever it is.
pub const GENERATION_THREADS_ENV: &str = "DBTOOL_GENERATION_THREADS";

/// Threads that generate an atomic load's rows: `GENERATION_THREADS_ENV`, else one per core.
pub fn generation_threads() -> usize {
    std::env::var(GENERATION_THREADS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
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
    set_aside_keeping(client, data, plan, schema, &[])
}

/// `set_aside`, but the keys and indexes of `keys_in_place` stay.
fn set_aside_keeping(
    client: &mut Client,
    data: &Dataset,
    plan: &SeedPlan,
    schema: &str,
    keys_in_place: &[String],
) -> Result<Deferred> {
    let triggers_off: Vec<String> = plan
        .tables
        .iter()
        .filter(|t| data.spec.tables[t.index].disable_triggers)
        .map(|t| t.table.clone())
        .collect();
    constraints::defer(client, schema, &tables(plan), keys_in_place, &triggers_off)
}

/// The tables whose keys and indexes an atomic load leaves in place: below
/// KEYS_IN_PLACE_BELOW rows, keeping a table's indexes up to date row by row costs less than
/// dropping and rebuilding them. Foreign keys are set aside whatever the size: checking them
/// row by row costs far more than one validating pass.
fn small_tables(plan: &SeedPlan) -> Vec<String> {
    plan.tables
        .iter()
        .filter(|t| t.rows < KEYS_IN_PLACE_BELOW)
        .map(|t| t.table.clone())
        .collect()
}

/// Measured (median of 15 dev resets, 7 demo resets): the dev profile (no table above 2,454
/// rows) ~140 -> ~126 ms with every table's keys in place; the demo profile loses ~70 ms when
/// its 11k- and 20k-row tables keep theirs, and neither gains nor loses with a 10,000 limit.
const KEYS_IN_PLACE_BELOW: u64 = 5_000;

/// Inside the unit's transaction: sets keys and indexes aside, loads every table, rebuilds
/// them, and moves the sequences past the seeded values. Nobody outside sees any of it until
/// the unit commits. `freeze`: every seeded table was created or truncated in this same
/// transaction. Returns the digests of the tables whose rows the client could digest as sent.
pub fn load_atomic(
    client: &mut Client,
    stop: &Stop,
    freeze: bool,
    data: &Dataset,
    plan: &SeedPlan,
    schema: &str,
    reporter: &Reporter,
) -> Result<ClientDigests> {
    let deferred = set_aside_keeping(client, data, plan, schema, &small_tables(plan))?;
    let sequences =
        Sequences::before_load(client, schema, &tables(plan)).map_err(sequence_error)?;
    let (digests, sent) = load_levels(
        &mut Connections::One {
            client,
            stop,
            freeze,
        },
        data,
        plan,
        schema,
        &sequences,
        reporter,
    )?;
    rebuild(reporter, || constraints::restore(client, &deferred))?;
    sequences.advance(client, &sent).map_err(sequence_error)?;
    Ok(digests)
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
) -> Result<ClientDigests> {
    let loaded = Sequences::before_load(&mut *db.work()?, schema, &tables(plan))
        .map_err(sequence_error)
        .and_then(|sequences| {
            let (digests, sent) = load_levels(
                &mut Connections::Pool { db, workers },
                data,
                plan,
                schema,
                &sequences,
                reporter,
            )?;
            rebuild(reporter, || {
                constraints::restore_parallel(db, deferred, workers)
            })?;
            sequences
                .advance(&mut *db.work()?, &sent)
                .map_err(sequence_error)?;
            Ok(digests)
        });
    if loaded.is_err() {
        // Not after a lost lock: without the lock, dbtool changes nothing more. The next
        // migrate or seed repairs from the unfinished mark instead.
        if !matches!(
            db.stop.reason(),
            Some(crate::connection::stop::StopReason::LockLost(_))
        ) {
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
    }
    loaded
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
    sequences: &Sequences,
    reporter: &Reporter,
) -> Result<(ClientDigests, SentMaxima)> {
    let levels = plan
        .tables
        .iter()
        .map(|t| t.level)
        .max()
        .map_or(0, |l| l + 1);
    // One catalog query for every table (nothing a level loads changes what the next reads).
    let catalog = connections.catalog(|client| {
        catalog::read(client, schema, &tables(plan)).map_err(|e| {
            Error::Work(format!(
                "seeding failed: reading the seeded tables' columns: {}",
                describe_sql_error(&e, None)
            ))
        })
    })?;
    // Partitioned tables whose rows the client can route to their partitions.
    let routings = connections.catalog(|client| {
        partitions::read(client, schema, &tables(plan), data, |name| {
            let load = plan.tables.iter().find(|t| t.table == name)?;
            let found = catalog.get(name)?;
            let types = copy::spec_column_types(data, load.index, &found.columns);
            let binary = copy::parses_on_client(data, load.index, &types);
            Some((load.index, types, binary))
        })
        .map_err(|e| {
            Error::Work(format!(
                "seeding failed: reading the partitions of the seeded tables: {}",
                describe_sql_error(&e, None)
            ))
        })
    })?;
    let mut routed: Vec<(&String, &Routing)> = routings.iter().collect();
    routed.sort_by_key(|(table, _)| *table);
    for (table, routing) in routed {
        let freeze = if connections.can_freeze() {
            " with COPY FREEZE"
        } else {
            ""
        };
        reporter.info(
            "partitions",
            format!(
                "{table}: rows go straight to its {} partitions{freeze}",
                routing.partitions.len()
            ),
            serde_json::json!({ "table": table, "partitions": routing.partitions.len() }),
        );
    }
    // A trigger or a rule that may insert into other tables: every sequence's position is read
    // back with `max`, and every table is digested by the server. (One that may change a
    // table's own rows: that table's, see `noted` and `row_text`.)
    let written_by_triggers = catalog.values().any(|t| t.writes_elsewhere);
    let none = Sequences::default();
    let sequences = if written_by_triggers {
        &none
    } else {
        sequences
    };
    let mut digests = ClientDigests::new();
    let mut sent = SentMaxima::new();
    for level in 0..levels {
        let loads: Vec<&TableLoad> = plan.tables.iter().filter(|t| t.level == level).collect();
        digests.extend(load_level(
            connections,
            data,
            &loads,
            &Read {
                catalog: &catalog,
                routings: &routings,
                sequences,
                written_by_triggers,
            },
            schema,
            &mut sent,
            reporter,
        )?);
    }
    Ok((digests, sent))
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
    /// A partitioned table's partitions that its rows are routed to, with their COPYs.
    routing: Option<(Routing, Vec<String>)>,
    /// The integer columns that sequences feed (the spec's column, its type, its name), and
    /// the largest value of each sent so far.
    noted: Vec<(usize, ColumnType, String)>,
    sent: Mutex<Vec<Sent>>,
}

impl Table<'_> {
    /// Adds a chunk's digest to the table's; `None` (a value the client could not digest) leaves
    /// the table to the server's digest.
    fn add_digest(&self, digest: Option<Sum>) {
        let mut table_sum = self.sum.lock().expect("no chunk panicked");
        match (digest, table_sum.as_mut()) {
            (Some(sum), Some(total)) => total.merge(sum),
            _ => *table_sum = None,
        }
    }
}

/// What a load read about its tables before the first COPY: their columns, the partitions
/// their rows go to, the columns that sequences feed.
struct Read<'a> {
    catalog: &'a HashMap<String, LoadedTable>,
    routings: &'a HashMap<String, Routing>,
    sequences: &'a Sequences,
    /// A trigger or rule on a seeded table may write to the others: the client's digest of
    /// the rows it sent may not be a table's.
    written_by_triggers: bool,
}

/// The tables of one level (none refers to another) load together, their chunks spread over
/// the connections; each table reports when its last chunk is in.
fn load_level(
    connections: &mut Connections,
    data: &Dataset,
    loads: &[&TableLoad],
    read: &Read,
    schema: &str,
    sent: &mut SentMaxima,
    reporter: &Reporter,
) -> Result<Vec<(String, Sum)>> {
    let started = Instant::now();
    let freeze = connections.can_freeze();
    let tables: Vec<Table> = loads
        .iter()
        .map(|load| {
            let found = read.catalog.get(&load.table).ok_or_else(|| {
                Error::Work(format!(
                    "seeding {} failed: the table is not in schema {schema}",
                    load.table
                ))
            })?;
            let types = copy::spec_column_types(data, load.index, &found.columns);
            let row_text = if found.rewritten || read.written_by_triggers {
                None
            } else {
                RowText::new(data, load.index, &found.columns)
            };
            // A partition was created or truncated with its parent: it takes FREEZE, the
            // partitioned parent does not.
            let routing = read.routings.get(&load.table).map(|routing| {
                let statements = routing
                    .partitions
                    .iter()
                    .map(|p| partitions::copy_statement(data, load.index, p, freeze))
                    .collect();
                (routing.clone(), statements)
            });
            let freeze = freeze && found.plain;
            let noted: Vec<(usize, ColumnType, String)> = read
                .sequences
                .columns_of(&load.table)
                .into_iter()
                .filter(|_| !found.rewritten)
                .filter_map(|name| {
                    let c = data.spec.tables[load.index]
                        .columns
                        .iter()
                        .position(|c| c.name == name)?;
                    matches!(
                        types[c],
                        ColumnType::Int2 | ColumnType::Int4 | ColumnType::Int8
                    )
                    .then(|| (c, types[c], name.to_string()))
                })
                .collect();
            Ok(Table {
                load,
                encoder: RowEncoder::for_table(data, load.index, types, schema, freeze),
                sum: Mutex::new(row_text.is_some().then(Sum::default)),
                row_text,
                progress: reporter.table(&load.table, load.rows),
                chunks_left: AtomicUsize::new(load.chunks.len()),
                routing,
                sent: Mutex::new(vec![Sent::default(); noted.len()]),
                noted,
            })
        })
        .collect::<Result<_>>()?;
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
    let generators = connections.generators();
    match connections {
        // The chunks' rows are generated ahead of the COPYs that send them (see `Lookahead`).
        Connections::One { client, .. } => {
            let lookahead = Lookahead::default();
            std::thread::scope(|scope| {
                let (lookahead, jobs, stop) = (&lookahead, &jobs, &stop);
                scope.spawn(move || {
                    // Closes the queue however this thread ends, so the writer never waits for it.
                    let _closing = lookahead.closing();
                    for (i, (table, chunk)) in jobs.iter().enumerate() {
                        if !lookahead.room_for(i) {
                            break;
                        }
                        lookahead.push(produce(data, table, chunk, stop, generators));
                    }
                });
                let generated = jobs.iter().map(|&(table, chunk)| {
                    let produced = lookahead.take().ok_or_else(|| {
                        Error::Work(format!(
                            "seeding {} failed: its rows stopped",
                            table.load.table
                        ))
                    })?;
                    Ok((table, chunk, produced))
                });
                let sent = send_produced(client, data, generated, true, stop, &finished);
                // Stops the generating thread if the COPYs stopped first.
                lookahead.close();
                sent.map_err(|e| stop.explain(e))
            })?;
        }
        // Each pool connection generates its own chunk's rows.
        Connections::Pool { .. } => {
            connections.run(&jobs, |client, &(table, chunk)| {
                stop.check()?;
                if table.routing.is_some() {
                    let produced = produce(data, table, chunk, &stop, generators);
                    let generated = std::iter::once(Ok((table, chunk, produced)));
                    send_produced(client, data, generated, false, &stop, &finished)
                } else {
                    copy_chunk(client, data, table, chunk, &stop, generators)?;
                    if table.chunks_left.fetch_sub(1, Ordering::AcqRel) == 1 {
                        finished(table);
                    }
                    Ok(())
                }
            })?;
        }
    }
    for t in &tables {
        let maxima = t.sent.lock().expect("no chunk panicked");
        sent.insert(
            t.load.table.clone(),
            t.noted
                .iter()
                .map(|(_, _, name)| name.clone())
                .zip(maxima.iter().copied())
                .collect(),
        );
    }
    Ok(tables
        .into_iter()
        .filter_map(|t| {
            let sum = t.sum.into_inner().expect("no chunk panicked")?;
            Some((t.load.table.clone(), sum))
        })
        .collect())
}

/// Streams one chunk's rows through one COPY. Without `finish` the server aborts the COPY.
///
/// A pool connection's way (the one connection's is `Lookahead`): rows are generated and
/// encoded on threads of their own while this one writes the COPY stream, so the client's CPU
/// overlaps its socket writes and the server's work. With `generators` > 1 the chunk's roots are
/// split into that many consecutive parts generated at once; their buffers are written in order,
/// so the rows and their keys are exactly those of one generator. Memory is bounded by the chunk.
fn copy_chunk(
    client: &mut Client,
    data: &Dataset,
    table: &Table,
    chunk: &Chunk,
    stop: &Stop,
    generators: usize,
) -> Result<()> {
    let (load, encoder) = (table.load, &table.encoder);
    let fail = |e: postgres::Error| rejected(data, load, chunk, &e);
    let mut writer = client.copy_in(encoder.statement()).map_err(fail)?;
    let write_failed =
        |e: std::io::Error| Error::Work(format!("seeding {} failed: {e}", load.table));
    let (written, produced) = generate_in_order(
        data,
        load.index,
        chunk,
        generators,
        |roots, first_index, ends, full| {
            // The writer has gone: it failed, and says why.
            let gone = |_| Error::Work(format!("seeding {} failed", load.table));
            generate(data, table, roots, first_index, ends, stop, |b| {
                full.send(b).map_err(gone)
            })
        },
        |buffer| writer.write_all(&buffer).map_err(write_failed),
    );
    // On an error the writer drops unfinished, which aborts the COPY. A write error explains a
    // producer's failed send, so it comes first.
    written?;
    let sums = produced.into_iter().collect::<Result<Vec<_>>>()?;
    writer.finish().map_err(fail)?;
    table.add_digest(digest::merged(sums));
    Ok(())
}

/// Generates one chunk's rows on `threads` threads and hands their bytes to `write` in key
/// order: the chunk's roots are split into that many consecutive parts, each generated at once
/// by `part(roots, first_index, (first, last), sender)`, which sends its buffers; the buffers of
/// one part are written before any of the next, so the stream is byte for byte that of one
/// generator. Memory is bounded by the chunk. Returns the write's result (a write error
/// explains a part's failed send, so it comes first) and each part's result, in order.
pub fn generate_in_order<R: Send>(
    data: &Dataset,
    table: usize,
    chunk: &Chunk,
    threads: usize,
    part: impl Fn(Range<u64>, u64, (bool, bool), &std::sync::mpsc::Sender<Vec<u8>>) -> Result<R> + Sync,
    mut write: impl FnMut(Vec<u8>) -> Result<()>,
) -> (Result<()>, Vec<Result<R>>) {
    let parts = split(data, table, chunk, threads);
    let part = &part;
    std::thread::scope(|scope| {
        let last = parts.len() - 1;
        let (producers, receivers): (Vec<_>, Vec<_>) = parts
            .iter()
            .enumerate()
            .map(|(k, (roots, first_index))| {
                let (full, receive) = std::sync::mpsc::channel::<Vec<u8>>();
                let producer = scope
                    .spawn(move || part(roots.clone(), *first_index, (k == 0, k == last), &full));
                (producer, receive)
            })
            .unzip();
        let written: Result<()> = receivers
            .iter()
            .try_for_each(|receive| receive.iter().try_for_each(&mut write));
        // Unblocks producers whose sends would now fail.
        drop(receivers);
        let produced: Vec<_> = producers
            .into_iter()
            .map(|p| p.join().expect("the row producer does not panic"))
            .collect();
        (written, produced)
    })
}

/// Chunks' rows generated ahead of the one connection's COPYs, in the order they are sent, by a
/// thread of their own: the client's generation overlaps the server's COPY instead of
/// alternating with it, and neither waits on the other at each chunk's edge. At most
/// `LOOKAHEAD` chunks wait, so memory stays bounded by one more chunk's encoded rows.
#[derive(Default)]
struct Lookahead {
    state: Mutex<Waiting>,
    changed: Condvar,
}

/// Chunks generated ahead of the one being sent. Two were no faster within the noise, and took
/// the load profile's peak RSS past twice the dev reset's (bench: 19.4 MB against 9.6 MB).
const LOOKAHEAD: usize = 1;

#[derive(Default)]
struct Waiting {
    chunks: VecDeque<Vec<Result<Part>>>,
    /// Chunks the writer has taken.
    taken: usize,
    closed: bool,
}

impl Lookahead {
    fn state(&self) -> MutexGuard<'_, Waiting> {
        self.state.lock().expect("no chunk panicked")
    }

    /// Waits until job `job` may be generated; `false` once the queue is closed.
    fn room_for(&self, job: usize) -> bool {
        let mut state = self.state();
        while !state.closed && job >= state.taken + LOOKAHEAD {
            state = self.changed.wait(state).expect("no chunk panicked");
        }
        !state.closed
    }

    fn push(&self, chunk: Vec<Result<Part>>) {
        self.state().chunks.push_back(chunk);
        self.changed.notify_all();
    }

    /// The next chunk's rows, once generated; `None` if the generating thread stopped first.
    fn take(&self) -> Option<Vec<Result<Part>>> {
        let mut state = self.state();
        loop {
            if let Some(chunk) = state.chunks.pop_front() {
                state.taken += 1;
                self.changed.notify_all();
                return Some(chunk);
            }
            if state.closed {
                return None;
            }
            state = self.changed.wait(state).expect("no chunk panicked");
        }
    }

    fn close(&self) {
        self.state().closed = true;
        self.changed.notify_all();
    }

    /// Closes the queue when dropped.
    fn closing(&self) -> impl Drop + '_ {
        struct Closing<'a>(&'a Lookahead);
        impl Drop for Closing<'_> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        Closing(self)
    }
}

/// A chunk's rows, generated into memory: its parts at once on `generators` threads, each into
/// its buffers in order (a plain table's) or its rows into their partitions' buffers (a routed
/// table's), with its digest. The COPY stream's start and end are `send_produced`'s.
fn produce(
    data: &Dataset,
    table: &Table,
    chunk: &Chunk,
    stop: &Stop,
    generators: usize,
) -> Vec<Result<Part>> {
    let parts = split(data, table.load.index, chunk, generators);
    std::thread::scope(|scope| {
        let producers: Vec<_> = parts
            .iter()
            .map(|(roots, first_index)| {
                let roots = roots.clone();
                scope.spawn(move || match &table.routing {
                    Some((routing, _)) => {
                        generate_routed(data, table, routing, roots, *first_index, stop)
                    }
                    None => {
                        let mut buffers = Vec::new();
                        let ends = (false, false);
                        let sum = generate(data, table, roots, *first_index, ends, stop, |b| {
                            buffers.push(b);
                            Ok(())
                        })?;
                        Ok((buffers, sum))
                    }
                })
            })
            .collect();
        producers
            .into_iter()
            .map(|p| p.join().expect("the row producer does not panic"))
            .collect()
    })
}

/// Sends generated chunks (`produce`) through `client`, in order: a plain table's rows through
/// one COPY, a routed table's through one COPY per partition that has rows. Then `finished`
/// hears of each table whose last chunk is in.
///
/// With `span` (the one connection, where nothing commits between chunks) a COPY stays open
/// from a chunk to the next while their rows go to the same place, up to `SPAN`, and a
/// routed chunk sends its partitions starting with the one the open COPY is on (the last
/// partition of one chunk is the first of the next): each COPY costs the server about a
/// millisecond to start and end (PostgreSQL 15 releases a batch's tuple slots one by one), and
/// at each end the stream drains and the server waits for the next statement. A partition still
/// holds its rows in the order loading through the parent gives.
fn send_produced<'t>(
    client: &mut Client,
    data: &Dataset,
    mut chunks: impl Iterator<Item = Result<(&'t Table<'t>, &'t Chunk, Vec<Result<Part>>)>>,
    span: bool,
    stop: &Stop,
    finished: &impl Fn(&Table),
) -> Result<()> {
    // The pieces of the chunk being sent, in order, and where the last COPY went.
    let mut queue: VecDeque<Piece> = VecDeque::new();
    let mut last_place = None;
    loop {
        if queue.is_empty() {
            match chunks.next() {
                Some(generated) => queue = pieces(generated?, last_place)?,
                None => return Ok(()),
            }
        }
        let first = queue.pop_front().expect("a chunk has a piece");
        let (table, target) = (first.table, first.target);
        let place = (std::ptr::from_ref(table), target);
        last_place = Some(place);
        stop.check()?;
        let statement = match &table.routing {
            Some((_, statements)) => statements.get(target),
            None => None,
        }
        .map_or(table.encoder.statement(), String::as_str);
        let failed = |e: postgres::Error, rows: &Chunk| match &table.routing {
            None => rejected(data, table.load, rows, &e),
            Some((routing, _)) => Error::Work(format!(
                "seeding {} failed (COPY into {}): {}",
                table.load.table,
                routing.partitions.get(target).unwrap_or(&table.load.table),
                describe_sql_error(&e, None)
            )),
        };
        // The rows this COPY sent (a plain table's are consecutive: an error's line names one).
        let mut rows = Chunk {
            roots: 0..0,
            first_index: first.first_index,
            rows: 0,
        };
        let mut writer = client.copy_in(statement).map_err(|e| failed(e, &rows))?;
        let write_failed =
            |e: std::io::Error| Error::Work(format!("seeding {} failed: {e}", table.load.table));
        let mut edge = Vec::new();
        table.encoder.begin(&mut edge);
        writer.write_all(&edge).map_err(write_failed)?;
        let (mut piece, mut bytes, mut done, opened) = (first, 0, None, Instant::now());
        loop {
            // Each buffer goes as it is written: the next chunk may be taken below, and the
            // rows sent are not kept beside it.
            for buffer in std::mem::take(&mut piece.buffers) {
                writer.write_all(&buffer).map_err(write_failed)?;
                bytes += buffer.len();
            }
            rows.rows += piece.rows;
            if queue.is_empty() {
                // The chunk is sent: the next one goes on in this COPY if it starts here.
                let last = piece.table.chunks_left.fetch_sub(1, Ordering::AcqRel) == 1;
                if last {
                    done = Some(piece.table);
                }
                if last || !span || bytes >= SPAN.0 || opened.elapsed() >= SPAN.1 {
                    break;
                }
                match chunks.next() {
                    Some(generated) => queue = pieces(generated?, last_place)?,
                    None => break,
                }
                stop.check()?;
            }
            let goes_on = queue
                .front()
                .is_some_and(|p| (std::ptr::from_ref(p.table), p.target) == place);
            if !goes_on {
                break;
            }
            piece = queue.pop_front().expect("a next piece");
        }
        edge.clear();
        table.encoder.end(&mut edge);
        writer.write_all(&edge).map_err(write_failed)?;
        writer.finish().map_err(|e| failed(e, &rows))?;
        if let Some(table) = done {
            finished(table);
        }
    }
}

/// The bytes and the time after which a COPY kept open from chunk to chunk (`send_produced`)
/// ends at the next chunk's edge: each statement stays short (`--statement-timeout` bounds each
/// one, and the next chunk's rows may still be being generated while it is open).
const SPAN: (usize, Duration) = (32 << 20, Duration::from_secs(1));

/// Rows of one chunk bound for one place (`send_produced`): a plain table, or one of a routed
/// table's partitions (the parent last).
struct Piece<'t> {
    table: &'t Table<'t>,
    target: usize,
    buffers: Vec<Vec<u8>>,
    /// The table position of the chunk's first row, and its rows (a plain table's piece is
    /// the whole chunk; a partition's rows are not consecutive in the table).
    first_index: u64,
    rows: u64,
}

/// A generated chunk as the pieces to send, in order: partitions with rows in their order, or
/// in reverse when the last COPY went to the last of them (so it goes on). Adds the chunk's
/// digest to its table's.
fn pieces<'t>(
    (table, chunk, produced): (&'t Table<'t>, &'t Chunk, Vec<Result<Part>>),
    last_place: Option<(*const Table<'t>, usize)>,
) -> Result<VecDeque<Piece<'t>>> {
    let places = table.routing.as_ref().map_or(1, |(_, s)| s.len() + 1);
    let mut targets: Vec<Vec<Vec<u8>>> = vec![Vec::new(); places];
    let mut sums = Vec::new();
    for part in produced {
        let (buffers, sum) = part?;
        if table.routing.is_some() {
            for (target, buffer) in buffers.into_iter().enumerate() {
                if !buffer.is_empty() {
                    targets[target].push(buffer);
                }
            }
        } else {
            targets[0].extend(buffers);
        }
        sums.push(sum);
    }
    table.add_digest(digest::merged(sums));
    let mut order: Vec<usize> = (0..places).filter(|&t| !targets[t].is_empty()).collect();
    if order.is_empty() {
        order.push(0);
    }
    if let Some(place) = last_place
        && order.len() > 1
        && place == (std::ptr::from_ref(table), order[order.len() - 1])
    {
        order.reverse();
    }
    let routed = table.routing.is_some();
    Ok(order
        .into_iter()
        .map(|target| Piece {
            table,
            target,
            buffers: std::mem::take(&mut targets[target]),
            first_index: chunk.first_index,
            rows: if routed { 0 } else { chunk.rows },
        })
        .collect())
}

/// A part of a chunk, generated: its encoded rows (a plain table's in buffers in order, a routed
/// table's one buffer per partition and the parent's last) and its digest.
type Part = (Vec<Vec<u8>>, Option<Sum>);

/// `generate` for a routed table: the rows of `roots`, encoded, one buffer per partition and a
/// last one for the parent (no stream's start or end: one COPY may take several parts' rows).
fn generate_routed(
    data: &Dataset,
    table: &Table,
    routing: &Routing,
    roots: Range<u64>,
    first_index: u64,
    stop: &Stop,
) -> Result<Part> {
    let parent = routing.partitions.len();
    let mut buffers = vec![Vec::new(); parent + 1];
    let sum = each_row(data, table, roots, first_index, stop, |values, seen| {
        let target = routing.route(values)?.unwrap_or(parent);
        table
            .encoder
            .row_seen(values, &mut buffers[target], seen)
            .map_err(|e| encoding_failed(table.load, e))
    })?;
    Ok((buffers, sum))
}

/// What `each_row` hands each row's encoder: it calls it with each value it sends (binary COPY).
type Seen<'s> = &'s mut dyn FnMut(usize, ColumnType, &copy::Value);

/// Walks the rows of `roots`: hands each to `encode`, digests it (while the client can digest
/// the table) and notes the values that sequences must pass, reports progress and checks for a
/// stop (the lock lost, a signal) every `PROGRESS_EVERY` rows. Returns the rows' digest.
///
/// A binary COPY hands on the values it sends, so each cell is converted once; a text COPY's
/// rows are read again for the digest and the sequences.
fn each_row<'d>(
    data: &'d Dataset,
    table: &Table,
    roots: Range<u64>,
    first_index: u64,
    stop: &Stop,
    mut encode: impl FnMut(&mut crate::spec::RowValues<'d>, Seen) -> Result<()>,
) -> Result<Option<Sum>> {
    let mut row_text = table.row_text.as_ref();
    let mut digester = Digester::default();
    let mut text = Vec::new();
    let mut unreported = 0;
    let mut sent = vec![Sent::default(); table.noted.len()];
    let binary = table.encoder.is_binary();
    let columns = data.spec.tables[table.load.index].columns.len();
    let mut fields = Fields::new(columns);
    // Per spec column, its place in `sent` if sequences feed it.
    let mut noted = vec![None; columns];
    for (k, (column, _, _)) in table.noted.iter().enumerate() {
        noted[*column] = Some(k);
    }
    data.for_each_row_values(table.load.index, roots, first_index, &mut |values| {
        if binary {
            fields.clear();
            let digesting = row_text.is_some();
            encode(values, &mut |column, ty, value| {
                if digesting {
                    fields.push(column, ty, value);
                }
                if let Some(k) = noted[column] {
                    sent[k].take(value);
                }
            })?;
            if let Some(rt) = row_text {
                rt.add_fields(&fields, &mut text, &mut digester);
            }
        } else {
            for ((column, ty, _), largest) in table.noted.iter().zip(sent.iter_mut()) {
                largest.add(values, *column, *ty);
            }
            if let Some(rt) = row_text
                && !rt.add(values, &mut text, &mut digester)?
            {
                row_text = None;
            }
            encode(values, &mut |_, _, _| {})?;
        }
        unreported += 1;
        if unreported == PROGRESS_EVERY {
            table.progress.inc(unreported);
            unreported = 0;
            stop.check()?;
        }
        Ok(())
    })?;
    table.progress.inc(unreported);
    let mut maxima = table.sent.lock().expect("no chunk panicked");
    for (total, part) in maxima.iter_mut().zip(sent) {
        total.merge(part);
    }
    Ok(row_text.map(|_| digester.finish()))
}

/// An encoding error, named with its table.
fn encoding_failed(load: &TableLoad, e: Error) -> Error {
    match e {
        Error::Work(m) => Error::Work(format!("seeding {}: {m}", load.table)),
        e => e,
    }
}

/// A chunk's roots in up to `parts` consecutive ranges, each with its first row's index.
fn split(data: &Dataset, table: usize, chunk: &Chunk, parts: usize) -> Vec<(Range<u64>, u64)> {
    let roots = chunk.roots.clone();
    let step = (roots.end - roots.start)
        .div_ceil(parts.max(1) as u64)
        .max(1);
    let mut out = Vec::new();
    let (mut start, mut first_index) = (roots.start, chunk.first_index);
    while start < roots.end || out.is_empty() {
        let end = (start + step).min(roots.end);
        out.push((start..end, first_index));
        if out.len() < parts {
            first_index += data.count_rows(table, start..end);
        }
        start = end;
        if start >= roots.end {
            break;
        }
    }
    out
}

/// Generates and encodes the rows of `roots`, handing `send` buffers of about COPY_BUFFER bytes;
/// the first part starts the COPY stream and the last ends it. Returns the part's digest, or `None`
/// when the client could not know the server's text of a row.
fn generate(
    data: &Dataset,
    table: &Table,
    roots: Range<u64>,
    first_index: u64,
    (first, last): (bool, bool),
    stop: &Stop,
    mut send: impl FnMut(Vec<u8>) -> Result<()>,
) -> Result<Option<Sum>> {
    let encoder = &table.encoder;
    let mut buffer = Vec::with_capacity(COPY_BUFFER + 512);
    if first {
        encoder.begin(&mut buffer);
    }
    let sum = each_row(data, table, roots, first_index, stop, |values, seen| {
        encoder
            .row_seen(values, &mut buffer, seen)
            .map_err(|e| encoding_failed(table.load, e))?;
        if buffer.len() >= COPY_BUFFER {
            let next = Vec::with_capacity(COPY_BUFFER + 512);
            send(std::mem::replace(&mut buffer, next))?;
        }
        Ok(())
    })?;
    if last {
        encoder.end(&mut buffer);
    }
    send(buffer)?;
    Ok(sum)
}

/// A row the server rejected, named by table, column, row key and (for a fixed row) its CSV
/// file and line: the server's context says `COPY clients, line 3, column email: "..."`.
fn rejected(data: &Dataset, load: &TableLoad, chunk: &Chunk, e: &postgres::Error) -> Error {
    let what = describe_sql_error(e, None);
    let context = e.as_db_error().and_then(|db| db.where_()).unwrap_or("");
    let column = context
        .split(", ")
        .find_map(|part| part.strip_prefix("column ")?.split(':').next())
        .map(str::to_string);
    // A cancel (a statement timeout) stops the COPY wherever it is: no row is at fault.
    let cancelled = e.code() == Some(&postgres::error::SqlState::QUERY_CANCELED);
    let Some(key) = rejected_row(chunk, context).filter(|_| !cancelled) else {
        return Error::Work(format!("seeding {} failed: {what}", load.table));
    };
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
    // A value the server rejects without naming a column came out of an expression it evaluates
    // over the row (a generated column, a default, a CHECK), not from a generated cell as sent.
    let evaluated = column.is_none()
        && e.code()
            .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"));
    Error::Work(format!(
        "seeding {}{} failed at row {key}{fixed}: {what}{}",
        load.table,
        column.map_or_else(String::new, |c| format!(", column {c}")),
        if evaluated {
            " (no column of the row as sent: an expression the server computes from the row's \
             values, a generated column, a default or a CHECK, refused them; generate the \
             columns it reads as it expects them)"
        } else {
            ""
        }
    ))
}

/// The row key of the row the server's COPY context names (`COPY t, line 3, ...`: the chunk's
/// third row). Line 0 (the COPY failed before its first row arrived, a statement timeout for
/// one) and a line past the chunk name no row.
fn rejected_row(chunk: &Chunk, context: &str) -> Option<u64> {
    let line: u64 = context
        .split(", ")
        .find_map(|part| part.strip_prefix("line ")?.split(':').next()?.parse().ok())?;
    let offset = line.checked_sub(1).filter(|&o| o < chunk.rows)?;
    chunk.first_index.checked_add(offset)
}

#[cfg(test)]
mod rejected_row_tests {
    use super::*;

    fn chunk() -> Chunk {
        Chunk {
            roots: 0..10,
            first_index: 100,
            rows: 10,
        }
    }

    #[test]
    fn a_copy_line_names_the_row_of_its_chunk() {
        let context = "COPY clients, line 3, column email: \"x\"";
        assert_eq!(rejected_row(&chunk(), context), Some(102));
    }

    #[test]
    fn line_zero_or_past_the_chunk_names_no_row() {
        // A statement timeout before the first row arrived: the server says line 0.
        assert_eq!(rejected_row(&chunk(), "COPY clients, line 0"), None);
        assert_eq!(rejected_row(&chunk(), "COPY clients, line 11"), None);
        assert_eq!(rejected_row(&chunk(), "COPY clients"), None);
    }
}
