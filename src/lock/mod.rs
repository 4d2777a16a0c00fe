//! The advisory lock (DESIGN.md §3): a session-level lock taken on one connection reserved from
//! the pool for the whole command. A keeper thread owns that connection, so no work statement can
//! ever run on it; it watches the lock while work runs and performs the verified unlock.

pub mod holder;

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::connection::stop::{Stop, StopReason};
use crate::connection::{Database, PooledClient};
use crate::error::{Error, Result};
pub use crate::lock::holder::Holder;
use crate::progress::Reporter;
use postgres::Client;
use postgres::error::SqlState;
use postgres::types::Type;

/// Set by dbtool in a seed command's environment to the key of the lock it holds meanwhile.
pub const LOCK_HELD_ENV: &str = "DBTOOL_LOCK_HELD";

/// How often the keeper checks that its session still holds the lock.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// How often a waiter polls the lock.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How often a waiter says who holds the lock.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Refuses a Citus worker node (DESIGN.md §9), exit 2: its advisory lock and its `dbtool.meta`
/// are its own, so a dbtool pointed at the coordinator would not see its lock, and what `status`,
/// `fingerprint` or `lock status` read there would be the worker's, not the database's. Every
/// command that takes the lock or reads what dbtool keeps calls it before anything else.
pub fn refuse_if_citus_worker(client: &mut Client) -> Result<()> {
    let read_error =
        |e: postgres::Error| Error::Work(crate::connection::describe_sql_error(&e, None));
    let citus: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('pg_catalog.pg_dist_local_group') IS NOT NULL",
            &[],
        )
        .map_err(read_error)?
        .get(0);
    if !citus {
        return Ok(());
    }
    let group: i32 = client
        .query_one("SELECT groupid FROM pg_catalog.pg_dist_local_group", &[])
        .map_err(read_error)?
        .get(0);
    if group == 0 {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "this server is a Citus worker node (group {group}), not the coordinator: its advisory \
         lock and its dbtool.meta are its own, so a dbtool pointed at the coordinator would not \
         see its lock, and what it reads there is the worker's, not the database's; nothing was \
         changed. Point DATABASE_URL at the Citus coordinator"
    )))
}

/// PostgreSQL shows a bigint advisory key as classid = high 32 bits, objid = low 32 bits.
fn key_halves(key: i64) -> (i64, i64) {
    let bits = key as u64;
    ((bits >> 32) as i64, (bits & 0xffff_ffff) as i64)
}

const HOLDERS_SQL: &str = "
    SELECT a.pid, coalesce(a.application_name, ''), pg_catalog.host(a.client_addr),
           pg_catalog.to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
           a.state, a.query
      FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
       AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
       AND l.classid::bigint = $1 AND l.objid::bigint = $2
     ORDER BY a.backend_start";

/// Who holds the lock `key` in the current database now (any connection can ask).
pub fn holders(client: &mut Client, key: i64) -> Result<Vec<Holder>, postgres::Error> {
    let (hi, lo) = key_halves(key);
    Ok(client
        .query(HOLDERS_SQL, &[&hi, &lo])?
        .iter()
        .map(|row| Holder {
            pid: row.get(0),
            application_name: row.get(1),
            client_addr: row.get(2),
            since: row.get(3),
            state: row.get(4),
            query: row.get(5),
        })
        .collect())
}

fn lock_error(e: postgres::Error) -> Error {
    Error::Unreachable(format!(
        "the lock connection failed: {}",
        crate::connection::describe_sql_error(&e, None)
    ))
}

/// How many times the work connection and the lock connection each ask for their backend's pid
/// before the lock is taken.
const PROBE_ROUNDS: usize = 3;

/// Checks, before the lock is taken, that the lock connection keeps one server session of its
/// own (DESIGN.md §9). Behind a proxy that pools transactions, each statement runs on whichever
/// server session is free, most often the one the previous statement left, so the two connections
/// asking in turn meet on one backend, or the lock connection's backend changes. Refused here,
/// nothing is left behind; `verify_from` checks again once the lock is held.
fn probe_sessions(lock: &mut Client, work: &mut Client, lock_pid: i32) -> Result<()> {
    for _ in 0..PROBE_ROUNDS {
        let work_pid = backend_pid(work)
            .map_err(|e| Error::Work(crate::connection::describe_sql_error(&e, None)))?;
        if work_pid == lock_pid {
            return Err(shared_backend(work_pid));
        }
        let again = backend_pid(lock).map_err(lock_error)?;
        if again != lock_pid {
            return Err(Error::SharedBackend(format!(
                "the lock connection's statements ran on backend pid {lock_pid}, then on {again}: \
                 its server session changes between statements, as behind PgBouncer with \
                 pool_mode=transaction; nothing was changed"
            )));
        }
    }
    Ok(())
}

/// The connection's backend pid, in one simple-protocol round trip (no prepared statement).
fn backend_pid(client: &mut Client) -> Result<i32, postgres::Error> {
    Ok(client
        .simple_query("SELECT pg_catalog.pg_backend_pid()")?
        .iter()
        .find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
            _ => None,
        })
        .unwrap_or_default())
}

fn shared_backend(pid: i32) -> Error {
    Error::SharedBackend(format!(
        "two client connections share one server session (backend pid {pid}), as behind \
         PgBouncer with pool_mode=transaction"
    ))
}

/// The outcome of trying to take the lock.
pub enum Acquired {
    Held(AdvisoryLock),
    /// Not acquired within `--lock-timeout`.
    Busy {
        holder: Option<Holder>,
        waited: Duration,
    },
}

enum Request {
    Release(mpsc::Sender<Result<bool, String>>),
}

/// The held lock. Dropping it without `release` still unlocks (best effort), so every exit
/// path gives the lock back; a connection that cannot unlock is broken and r2d2 discards it.
pub struct AdvisoryLock {
    key: i64,
    backend_pid: i32,
    requests: Option<mpsc::Sender<Request>>,
    keeper: Option<JoinHandle<()>>,
}

impl AdvisoryLock {
    /// Takes the lock, polling until `timeout` (zero: one try) and reporting the holder.
    pub fn acquire(
        db: &Database,
        key: i64,
        timeout: Duration,
        reporter: &Reporter,
    ) -> Result<Acquired> {
        if std::env::var(LOCK_HELD_ENV).is_ok_and(|held| held == key.to_string()) {
            return Err(Error::Work(format!(
                "this dbtool runs inside the seed command of a reset that holds lock {key} until \
                 the command ends: taking the lock again would wait forever. A seed command \
                 must not run dbtool reset, seed or migrate against the same database"
            )));
        }
        // The work connection opens (and takes its session settings) while this one opens; the
        // two then probe their sessions, and it waits in the pool for the work.
        let (lock, work) = std::thread::scope(|scope| {
            let work = std::thread::Builder::new()
                .name("open-work".into())
                .spawn_scoped(scope, || db.work())
                .ok();
            let lock = Self::open(db);
            (lock, work.and_then(|work| work.join().ok()))
        });
        let (mut conn, backend_pid, server) = lock?;
        // A work connection that failed to open is the work's to report, when it asks for one.
        if let Some(Ok(mut work)) = work {
            probe_sessions(&mut conn, &mut work, backend_pid)?;
        }
        let start = Instant::now();
        let mut last_report: Option<Instant> = None;
        loop {
            db.stop.check()?;
            // One round trip a try (no separate prepare).
            let got: bool = conn
                .query_typed_one(
                    "SELECT pg_catalog.pg_try_advisory_lock($1)",
                    &[(&key, Type::INT8)],
                )
                .map_err(|e| match e.code() {
                    Some(&SqlState::UNDEFINED_FUNCTION | &SqlState::FEATURE_NOT_SUPPORTED) => {
                        Error::Usage(format!(
                            "the server has no session advisory lock (pg_try_advisory_lock: {}): \
                             dbtool serializes its work with one, so it refuses this server ({server}); \
                             nothing was changed. Point DATABASE_URL at PostgreSQL or a Citus coordinator",
                            crate::connection::describe_sql_error(&e, None)
                        ))
                    }
                    _ => lock_error(e),
                })?
                .get(0);
            if got {
                break;
            }
            let holder = holders(&mut conn, key)
                .map_err(lock_error)?
                .into_iter()
                .next();
            let waited = start.elapsed();
            if waited >= timeout {
                return Ok(Acquired::Busy { holder, waited });
            }
            if last_report.is_none_or(|t| t.elapsed() >= REPORT_INTERVAL) {
                reporter.lock_waiting(holder.as_ref(), waited);
                last_report = Some(Instant::now());
            }
            std::thread::sleep(POLL_INTERVAL.min(timeout - waited));
        }
        reporter.lock_acquired(key, start.elapsed());
        let (requests, inbox) = mpsc::channel();
        let stop = db.stop.clone();
        let keeper = std::thread::Builder::new()
            .name("lock-keeper".into())
            .spawn(move || keep(conn, key, backend_pid, inbox, stop))
            .map_err(|e| Error::Internal(e.into()))?;
        Ok(Acquired::Held(AdvisoryLock {
            key,
            backend_pid,
            requests: Some(requests),
            keeper: Some(keeper),
        }))
    }

    /// The lock's connection, its statement timeout off, its backend's pid and the server's
    /// version: one round trip after the session settings.
    fn open(db: &Database) -> Result<(PooledClient, i32, String)> {
        let mut conn = db.reserve()?;
        // --statement-timeout is for work statements; the lock's own must never time out.
        let answer = conn
            .simple_query(
                "SELECT pg_catalog.pg_backend_pid(), pg_catalog.version(), \
                 pg_catalog.set_config('statement_timeout', '0', false)",
            )
            .map_err(lock_error)?;
        let row = answer
            .iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .ok_or_else(|| Error::Unreachable("the lock connection answered no row".into()))?;
        let backend_pid = row
            .get(0)
            .and_then(|pid| pid.parse::<i32>().ok())
            .ok_or_else(|| {
                Error::Unreachable("the lock connection answered no backend pid".into())
            })?;
        let server = row.get(1).unwrap_or_default().to_string();
        Ok((conn, backend_pid, server))
    }

    /// Checks, before any change, that the lock means something (DESIGN.md §9): a work
    /// connection must run on another backend and must see the lock held by the lock
    /// connection's backend in `pg_locks`. Behind a transaction-pooling proxy, or on an engine
    /// whose `pg_try_advisory_lock` answers true without locking, a check fails. A Citus worker
    /// is refused: its advisory locks are its own, unseen by a dbtool pointed at the coordinator.
    pub fn verify_from(&self, work: &mut Client) -> Result<()> {
        let (hi, lo) = key_halves(self.key);
        let read_error =
            |e: postgres::Error| Error::Work(crate::connection::describe_sql_error(&e, None));
        // One unnamed statement, parsed and run in one round trip: behind a transaction
        // pooler, a prepared statement's execution may land on another server session.
        let row = work
            .query_typed_one(
                "SELECT pg_catalog.pg_backend_pid(), EXISTS (
                    SELECT 1 FROM pg_catalog.pg_locks l
                     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                       AND l.pid = $1 AND l.classid::bigint = $2 AND l.objid::bigint = $3),
                        pg_catalog.version(),
                        pg_catalog.to_regclass('pg_catalog.pg_dist_local_group') IS NOT NULL",
                &[
                    (&self.backend_pid, Type::INT4),
                    (&hi, Type::INT8),
                    (&lo, Type::INT8),
                ],
            )
            .map_err(read_error)?;
        let work_pid: i32 = row.get(0);
        let visible: bool = row.get(1);
        let server: String = row.get(2);
        if row.get::<_, bool>(3) {
            refuse_if_citus_worker(work)?;
        }
        if work_pid == self.backend_pid {
            return Err(shared_backend(work_pid));
        }
        if !visible {
            return Err(Error::SharedBackend(format!(
                "pg_try_advisory_lock answered true on backend pid {}, but pg_locks shows no such \
                 lock held by that backend: either the server only imitates the lock (it is \
                 {server}) or a proxy that pools transactions (PgBouncer with \
                 pool_mode=transaction) stands in between; nothing was changed",
                self.backend_pid
            )));
        }
        Ok(())
    }

    /// Unlocks on the lock's own connection and checks the answer: `false` means the lock was
    /// not held any more, which is exit 8, never success.
    pub fn release(mut self, reporter: &Reporter) -> Result<()> {
        let answer = self.unlock();
        match answer {
            Ok(true) => {
                reporter.lock_released(self.key);
                Ok(())
            }
            Ok(false) => Err(Error::LockLost(
                "pg_advisory_unlock answered false: this session no longer held the lock".into(),
            )),
            Err(why) => Err(Error::LockLost(why)),
        }
    }

    fn unlock(&mut self) -> Result<bool, String> {
        let Some(requests) = self.requests.take() else {
            return Err("the lock was already released".into());
        };
        let (reply, answer) = mpsc::channel();
        let result = match requests.send(Request::Release(reply)) {
            Ok(()) => answer
                .recv()
                .unwrap_or_else(|_| Err("the lock keeper stopped".into())),
            Err(_) => Err("the lock keeper stopped".into()),
        };
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
        result
    }
}

impl Drop for AdvisoryLock {
    fn drop(&mut self) {
        if self.requests.is_some() {
            let _ = self.unlock();
        }
    }
}

/// The keeper: owns the lock connection, checks every `WATCH_INTERVAL` that its backend still
/// holds the lock, stops the work when it does not, and unlocks on request.
fn keep(
    mut conn: PooledClient,
    key: i64,
    backend_pid: i32,
    inbox: mpsc::Receiver<Request>,
    stop: Stop,
) {
    let (hi, lo) = key_halves(key);
    let mut lost: Option<String> = None;
    loop {
        match inbox.recv_timeout(WATCH_INTERVAL) {
            Ok(Request::Release(reply)) => {
                let answer = match &lost {
                    Some(why) => Err(why.clone()),
                    None => conn
                        .query_one("SELECT pg_catalog.pg_advisory_unlock($1)", &[&key])
                        .map(|row| row.get::<_, bool>(0))
                        .map_err(|e| format!("the unlock failed: {e}")),
                };
                let _ = reply.send(answer);
                return;
            }
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) if lost.is_none() => {
                let check = conn.query_one(
                    "SELECT pg_catalog.pg_backend_pid() = $1 AND EXISTS (
                        SELECT 1 FROM pg_catalog.pg_locks l
                         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                           AND l.pid = pg_catalog.pg_backend_pid()
                           AND l.classid::bigint = $2 AND l.objid::bigint = $3)",
                    &[&backend_pid, &hi, &lo],
                );
                let why = match check {
                    Ok(row) if row.get::<_, bool>(0) => None,
                    Ok(_) => Some(format!(
                        "backend pid {backend_pid} no longer holds advisory lock {key}"
                    )),
                    Err(e) => Some(format!(
                        "the lock connection (backend pid {backend_pid}) failed: {e}"
                    )),
                };
                if let Some(why) = why {
                    stop.trigger(StopReason::LockLost(why.clone()));
                    lost = Some(why);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::key_halves;

    #[test]
    fn key_halves_match_pg_locks_columns() {
        assert_eq!(key_halves(42), (0, 42));
        assert_eq!(key_halves(-1), (0xffff_ffff, 0xffff_ffff));
        assert_eq!(key_halves(1 << 32), (1, 0));
    }
}
