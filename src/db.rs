//! Connections: the first connection with retry and backoff, the r2d2 pool, session settings and
//! application_name, and work connections whose statements can be cancelled from another thread.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, NoTls};
use r2d2::{CustomizeConnection, Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;
use serde_json::json;

use crate::config::{Config, Target};
use crate::error::{Error, Result};
use crate::progress::Reporter;
use crate::stop::{Registration, Stop};

pub type Manager = PostgresConnectionManager<NoTls>;
pub type PooledClient = PooledConnection<Manager>;

/// Session settings every pooled connection starts with. Fixed time zone and styles make the
/// server's text of every value (and so the fingerprint) independent of the server's defaults.
#[derive(Debug)]
struct SessionSettings {
    sql: String,
}

impl CustomizeConnection<Client, postgres::Error> for SessionSettings {
    fn on_acquire(&self, client: &mut Client) -> Result<(), postgres::Error> {
        client.batch_execute(&self.sql)
    }
}

/// The pool of a command, with the stop switch its work connections register with.
pub struct Database {
    pool: Pool<Manager>,
    pub stop: Stop,
    pub target: Target,
}

impl Database {
    /// Waits for the server (up to `--wait-for-db`), then builds the pool. Nothing is changed.
    pub fn connect(config: &Config, stop: &Stop, reporter: &Reporter) -> Result<Self> {
        let target = config.target().clone();
        let pg = config.connection_config();
        wait_until_ready(&pg, &target, config.wait_for_db, reporter)?;

        let sql = session_settings(config);
        let pool = Pool::builder()
            .max_size(config.pool_size)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(30))
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .connection_customizer(Box::new(SessionSettings { sql }))
            .build_unchecked(PostgresConnectionManager::new(pg, NoTls));
        Ok(Database {
            pool,
            stop: stop.clone(),
            target,
        })
    }

    /// A connection for the lock: it never runs work (lock.rs owns it).
    pub fn reserve(&self) -> Result<PooledClient> {
        self.pool.get().map_err(|e| self.pool_error(e))
    }

    /// A work connection: its statements are cancelled when the lock is lost or a signal comes.
    pub fn work(&self) -> Result<WorkClient> {
        self.stop.check()?;
        let client = self.pool.get().map_err(|e| self.pool_error(e))?;
        self.registered(client)
    }

    /// A work connection if one is idle in the pool now, without waiting or connecting.
    pub fn try_work(&self) -> Option<WorkClient> {
        self.registered(self.pool.try_get()?).ok()
    }

    fn registered(&self, client: PooledClient) -> Result<WorkClient> {
        let registration = self.stop.register(client.cancel_token())?;
        Ok(WorkClient {
            client,
            _registration: registration,
        })
    }

    /// Runs `f` over `items` on up to `workers` work connections at once, each item once, and
    /// returns the results in item order. The first error stops the rest from starting.
    pub fn parallel<T: Sync, R: Send>(
        &self,
        items: &[T],
        workers: usize,
        f: impl Fn(&mut Client, &T) -> Result<R> + Sync,
    ) -> Result<Vec<R>> {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<R>>> = Mutex::new(items.iter().map(|_| None).collect());
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        let failed = || failure.lock().unwrap_or_else(|e| e.into_inner()).is_some();
        std::thread::scope(|scope| {
            for _ in 0..workers.clamp(1, items.len().max(1)) {
                scope.spawn(|| {
                    let outcome = (|| -> Result<()> {
                        let mut client = self.work()?;
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= items.len() || failed() {
                                return Ok(());
                            }
                            let value = f(&mut client, &items[i])?;
                            results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(value);
                        }
                    })();
                    if let Err(e) = outcome {
                        failure
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(self.stop.explain(e));
        }
        Ok(results
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .map(|r| r.expect("every item ran"))
            .collect())
    }

    fn pool_error(&self, e: r2d2::Error) -> Error {
        self.stop.explain(Error::Unreachable(format!(
            "cannot open a connection to {}: {e}",
            self.target
        )))
    }
}

/// The settings every connection starts with, and that a migration which changes them (`SET
/// search_path`, pg_dump's `set_config('search_path', '', false)`) gets back afterwards. Fixed time
/// zone and styles make the server's text of every value (and so the fingerprint) independent of
/// the server's defaults. On PostgreSQL >= 14 the server checks every second that dbtool is still
/// there, so a killed dbtool's transaction is rolled back within seconds even inside a long
/// index build.
pub fn session_settings(config: &Config) -> String {
    // Objects are created in the application's schema; extensions usually live in public.
    let search_path = if config.schema == "public" {
        "public".to_string()
    } else {
        format!("{}, public", quote_ident(&config.schema))
    };
    let mut sql = format!(
        "SET search_path TO {search_path}; SET TIME ZONE 'UTC'; SET datestyle TO 'ISO, MDY'; \
         SET intervalstyle TO 'postgres'; SET extra_float_digits TO 1; \
         SELECT set_config('client_connection_check_interval', '1000', false) \
          WHERE current_setting('server_version_num')::int >= 140000;"
    );
    if let Some(timeout) = config.statement_timeout {
        sql.push_str(&format!(
            " SET statement_timeout TO {};",
            timeout.as_millis()
        ));
    }
    sql
}

/// A pooled connection registered for cancellation.
pub struct WorkClient {
    client: PooledClient,
    _registration: Registration,
}

impl Deref for WorkClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for WorkClient {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// Connects once, retrying with exponential backoff while the failure can heal (connection
/// refused, server starting up or shutting down) and `wait` has not run out.
pub fn wait_until_ready(
    pg: &postgres::Config,
    target: &Target,
    wait: Duration,
    reporter: &Reporter,
) -> Result<()> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let error = match pg.connect(NoTls) {
            Ok(_) => {
                if attempts > 1 {
                    reporter.info(
                        "database-ready",
                        format!(
                            "{target} accepts connections after {:.1}s",
                            start.elapsed().as_secs_f64()
                        ),
                        json!({ "waited_ms": start.elapsed().as_millis() as u64 }),
                    );
                }
                return Ok(());
            }
            Err(e) => e,
        };
        let (can_heal, why) = describe_connect_error(&error);
        let left = wait.saturating_sub(start.elapsed());
        if !can_heal || left.is_zero() {
            let waited = if attempts > 1 {
                format!(" (gave up after {:.0}s)", start.elapsed().as_secs_f64())
            } else if can_heal {
                " (pass --wait-for-db DURATION to wait for it)".to_string()
            } else {
                String::new()
            };
            return Err(Error::Unreachable(format!(
                "cannot connect to {target}: {why}{waited}"
            )));
        }
        if attempts == 1 {
            reporter.info(
                "database-waiting",
                format!("waiting for {target}: {why}"),
                json!({}),
            );
        }
        std::thread::sleep(delay.min(left));
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Whether a failed connection attempt can heal by waiting, and what to tell the user.
fn describe_connect_error(error: &postgres::Error) -> (bool, String) {
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        let can_heal = *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::TOO_MANY_CONNECTIONS;
        let hint = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            "; check the user and password in DATABASE_URL"
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            "; create the database first or fix its name in DATABASE_URL"
        } else {
            ""
        };
        return (can_heal, format!("{}{hint}", db.message()));
    }
    // Not a server message: a socket error (refused, reset, timed out) can heal.
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return (true, io.to_string());
        }
        source = inner.source();
    }
    (error.is_closed(), error.to_string())
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The server's message for a failed statement, with its position as line and column of `sql`
/// when the server gives one.
pub fn describe_sql_error(error: &postgres::Error, sql: Option<&str>) -> String {
    let Some(db) = error.as_db_error() else {
        return error.to_string();
    };
    let mut text = format!("{}: {}", db.severity(), db.message());
    if let (Some(postgres::error::ErrorPosition::Original(pos)), Some(sql)) = (db.position(), sql) {
        let (line, column) = line_and_column(sql, *pos as usize);
        text.push_str(&format!(" (line: {line}, column: {column})"));
    }
    if let Some(detail) = db.detail() {
        text.push_str(&format!("; {detail}"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    if let Some(lacks) = explain_privilege(error) {
        text.push_str(&format!("; {lacks}"));
    }
    text
}

/// What the role lacks, for errors the server reports without saying what to do: a missing
/// privilege or ownership, or a server that only reads.
pub fn explain_privilege(error: &postgres::Error) -> Option<String> {
    use postgres::error::SqlState;
    let db = error.as_db_error()?;
    let message = db.message();
    if *db.code() == SqlState::READ_ONLY_SQL_TRANSACTION {
        return Some(
            "the server accepts only reads here (a hot standby, or default_transaction_read_only \
             is on for this database or role): point DATABASE_URL at the primary (add \
             target_session_attrs=read-write) or turn default_transaction_read_only off"
                .to_string(),
        );
    }
    if *db.code() != SqlState::INSUFFICIENT_PRIVILEGE {
        return None;
    }
    let object = |prefix: &str| message.strip_prefix(prefix).map(str::trim);
    Some(
        if let Some(database) = object("permission denied for database") {
            format!(
                "the role lacks CREATE on database {database}, which dbtool needs for its own schema \
             `dbtool` (and for the application's schema when it does not exist yet): \
             GRANT CREATE ON DATABASE {database} TO the role, or create those schemas for it"
            )
        } else if let Some(schema) = object("permission denied for schema") {
            format!(
                "the role lacks USAGE or CREATE on schema {schema}: GRANT USAGE, CREATE ON SCHEMA \
             {schema} TO the role, or run dbtool as the schema's owner"
            )
        } else if message.starts_with("must be owner of") {
            "only an object's owner may drop or alter it: run dbtool as the role that owns the \
         application's objects (the one the migrations ran as)"
                .to_string()
        } else {
            "the role lacks a privilege this step needs: run dbtool as the role that owns the \
         application's schema and objects, or GRANT it what the message names"
                .to_string()
        },
    )
}

/// The 1-based line and column of a 1-based character position.
fn line_and_column(sql: &str, position: usize) -> (usize, usize) {
    let before: String = sql.chars().take(position.saturating_sub(1)).collect();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_become_lines_and_columns() {
        let sql = "CREATE TABLE a (id int);\nSELEC 1;";
        assert_eq!(line_and_column(sql, 1), (1, 1));
        assert_eq!(line_and_column(sql, 26), (2, 1));
        assert_eq!(line_and_column(sql, 28), (2, 3));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("public"), "\"public\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
