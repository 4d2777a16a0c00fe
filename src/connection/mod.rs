//! Connections: the first connection with retry and backoff, the r2d2 pool, session settings and
//! application_name, and work connections whose statements can be cancelled from another thread.

pub mod conninfo;
pub mod stop;
pub mod tls;

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::Client;
use postgres::error::SqlState;
use r2d2::{CustomizeConnection, ManageConnection, Pool, PooledConnection};
use serde_json::json;

use crate::config::{Config, Target};
use crate::connection::conninfo::{Endpoint, SslMode};
use crate::connection::stop::{Registration, Stop};
use crate::connection::tls::LazyTls;
use crate::error::{Error, Result};
use crate::progress::Reporter;
use postgres::config::Host;

pub type PooledClient = PooledConnection<Connector>;

/// Session settings every pooled connection starts with. Fixed time zone and styles make the
/// server's text of every value (and so the fingerprint) independent of the server's defaults.
#[derive(Debug)]
struct SessionSettings {
    statements: Vec<String>,
}

impl CustomizeConnection<Client, ConnectError> for SessionSettings {
    fn on_acquire(&self, client: &mut Client) -> Result<(), ConnectError> {
        execute_each(client, &self.statements).map_err(ConnectError::Driver)
    }
}

/// Runs `statements` one per query (DESIGN.md §9: a Citus coordinator hands a query's whole text
/// on to its workers, so no query carries two statements).
pub fn execute_each(client: &mut Client, statements: &[String]) -> Result<(), postgres::Error> {
    statements.iter().try_for_each(|s| client.batch_execute(s))
}

/// The pool of a command, with the stop switch its work connections register with.
pub struct Database {
    pool: Pool<Connector>,
    pub stop: Stop,
    pub target: Target,
    /// What the command's transactions (`unit::Unit`) did, for what a failure may claim.
    pub ledger: std::sync::Arc<Ledger>,
}

/// What this command's transactions did: whether any committed, and whether the last one that
/// ended without a commit was verifiably rolled back (the transaction it began, still open, then
/// `ROLLBACK` answered). Only then may a failure say the database is as it was.
#[derive(Default)]
pub struct Ledger {
    began: std::sync::atomic::AtomicBool,
    committed: std::sync::atomic::AtomicBool,
    unverified: std::sync::atomic::AtomicBool,
}

impl Ledger {
    pub fn began(&self) {
        self.began.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// A `COMMIT` was sent (whatever it answered: a lost answer may still have committed).
    pub fn committed(&self) {
        self.committed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// A transaction ended without a verified rollback.
    pub fn unverified(&self) {
        self.unverified
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Nothing committed, and every transaction begun was verifiably rolled back.
    pub fn all_rolled_back(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        !self.committed.load(SeqCst) && !self.unverified.load(SeqCst)
    }

    /// Whether any transaction began.
    pub fn any_began(&self) -> bool {
        self.began.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Database {
    /// Waits for the server (up to `--wait-for-db`), then builds the pool. Nothing is changed.
    pub fn connect(config: &Config, stop: &Stop, reporter: &Reporter) -> Result<Self> {
        Self::connect_early(config, stop, reporter, Early::none())
    }

    /// `connect`, taking the connections `early` started as the first attempt and the pool's
    /// first connections.
    pub fn connect_early(
        config: &Config,
        stop: &Stop,
        reporter: &Reporter,
        early: Early,
    ) -> Result<Self> {
        let connector = wait_until(config, reporter, early)?;
        stop.use_tls(connector.tls.clone());
        let target = connector.target.clone();

        let statements = vec![connection_settings(config)];
        let pool = Pool::builder()
            .max_size(config.pool_size)
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(30))
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .connection_customizer(Box::new(SessionSettings { statements }))
            .build_unchecked(connector);
        Ok(Database {
            pool,
            stop: stop.clone(),
            target,
            ledger: std::sync::Arc::default(),
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

    /// `host db-b, port 5432, database app, schema public`: the server actually connected (with
    /// several hosts, the one that answered), for the first line of a command that changes data.
    pub fn describe_target(&self, schema: &str) -> String {
        format!(
            "host {}, port {}, database {}, schema {}",
            self.target.host(),
            self.target.port(),
            self.target.database(),
            schema
        )
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
pub fn session_settings(config: &Config) -> Vec<String> {
    // A migration's SET ROLE / SET SESSION AUTHORIZATION (pg_dump --use-set-session-authorization
    // writes them) ends with its file too, as Flyway does it; on a new connection both are no-ops
    // (so `SessionSettings` leaves them out).
    vec![
        "RESET SESSION AUTHORIZATION".to_string(),
        "RESET ROLE".to_string(),
        connection_settings(config),
    ]
}

/// The settings themselves as one statement (one round trip, one statement per query for a
/// Citus coordinator): `set_config(name, value, false)` is `SET name TO value`.
fn connection_settings(config: &Config) -> String {
    // Objects are created in the application's schema; extensions usually live in public.
    let search_path = if config.schema == "public" {
        "public".to_string()
    } else {
        format!("{}, public", quote_ident(&config.schema))
    };
    let mut settings = vec![
        ("search_path", search_path),
        ("TimeZone", "UTC".to_string()),
        ("DateStyle", "ISO, MDY".to_string()),
        ("IntervalStyle", "postgres".to_string()),
        ("extra_float_digits", "1".to_string()),
    ];
    if let Some(timeout) = config.statement_timeout {
        settings.push(("statement_timeout", timeout.as_millis().to_string()));
    }
    let mut columns: Vec<String> = settings
        .iter()
        .map(|(name, value)| {
            format!(
                "pg_catalog.set_config('{name}', '{}', false)",
                value.replace('\'', "''")
            )
        })
        .collect();
    columns.push(
        "CASE WHEN pg_catalog.current_setting('server_version_num')::int >= 140000 THEN \
         pg_catalog.set_config('client_connection_check_interval', '1000', false) END"
            .to_string(),
    );
    format!("SELECT {}", columns.join(", "))
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

/// Why one attempt to connect failed.
#[derive(Debug)]
pub enum ConnectError {
    Driver(postgres::Error),
    /// The whole start-up (TCP, TLS handshake, authentication) did not finish in time.
    TimedOut(Duration),
    /// The thread that bounds an attempt could not start (the system is out of threads).
    NoThread(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Driver(e) => std::fmt::Display::fmt(e, f),
            ConnectError::TimedOut(d) => write!(
                f,
                "the server did not finish the start-up (TLS handshake, authentication) within connect_timeout {}s",
                d.as_secs()
            ),
            ConnectError::NoThread(why) => write!(f, "cannot start a connection attempt: {why}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Driver(e) => Some(e),
            ConnectError::TimedOut(_) | ConnectError::NoThread(_) => None,
        }
    }
}

/// How every connection of a command is opened: the resolved target, the TLS connector its
/// sslmode asks for, and dbtool's application_name. It is the pool's connection manager.
#[derive(Clone)]
pub struct Connector {
    pub target: Target,
    pub tls: LazyTls,
    application_name: String,
    /// Connections opened before the pool asked for them, handed out first, in order: the one
    /// that found the server ready, then any `Database::open_ahead` started.
    ahead: Arc<Mutex<VecDeque<Ahead>>>,
}

/// A connection opened ahead of the pool.
enum Ahead {
    Open(Box<Client>),
    Opening(Receiver<Result<Client, ConnectError>>),
}

/// Connections a command starts opening before it needs them, while it reads its files: the
/// server's fork and the authentication overlap the client's work instead of following it.
/// Only to a single endpoint (with several, which one answers is not known yet). An attempt's
/// failure is the first attempt's failure of `wait_until_ready`; a later one's is forgotten, and
/// the pool connects again when it needs that connection.
pub struct Early {
    connector: Option<Connector>,
    attempts: VecDeque<Receiver<Result<Client, ConnectError>>>,
}

impl Early {
    pub fn none() -> Self {
        Early {
            connector: None,
            attempts: VecDeque::new(),
        }
    }

    /// For a command that changes data: the lock's and the work's connections (a dry run takes
    /// no lock: one), but none before a person has confirmed.
    pub fn for_change(config: &Config, dry_run: bool, confirmed: bool) -> Self {
        match (dry_run, confirmed) {
            (true, _) => Self::start(config, 1),
            (false, true) => Self::start(config, 2),
            (false, false) => Self::none(),
        }
    }

    /// Starts `connections` attempts at once, each on a thread of its own. Settings that do not
    /// resolve start nothing: their error comes when the command connects, as without this.
    pub fn start(config: &Config, connections: usize) -> Self {
        let Ok(connector) = Connector::new(config) else {
            return Self::none();
        };
        if connector.target.endpoints.len() != 1 {
            return Self::none();
        }
        let attempts = (0..connections)
            .map_while(|_| {
                let (sender, receiver) = std::sync::mpsc::channel();
                let attempt = connector.clone();
                std::thread::Builder::new()
                    .name("connect-early".into())
                    .spawn(move || {
                        let _ = sender.send(attempt.connect_endpoint(0));
                    })
                    .ok()?;
                Some(receiver)
            })
            .collect();
        Early {
            connector: Some(connector),
            attempts,
        }
    }
}

impl Connector {
    pub fn new(config: &Config) -> Result<Self> {
        let target = config.target().clone();
        let tls = LazyTls::new(&target.tls)?;
        Ok(Connector {
            target,
            tls,
            application_name: config.application_name(),
            ahead: Arc::default(),
        })
    }

    fn ahead(&self, connection: Ahead) {
        self.ahead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(connection);
    }

    /// The next connection opened ahead, if one is there and it opened; else the caller connects.
    fn take_ahead(&self) -> Option<Client> {
        let next = self
            .ahead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()?;
        let client = match next {
            Ahead::Open(client) => *client,
            // A failed attempt is made again by the caller, which reports its own failure.
            Ahead::Opening(receiver) => receiver.recv().ok()?.ok()?,
        };
        (!client.is_closed()).then_some(client)
    }

    /// Connects to the endpoint `index`, the whole start-up bounded by connect_timeout.
    fn connect_endpoint(&self, index: usize) -> Result<Client, ConnectError> {
        let pg = self.target.endpoint_config(index, &self.application_name);
        let timeout = self.target.connect_timeout;
        match bounded(&pg, &self.tls, timeout) {
            // sslmode=allow: plain first, TLS when the server turns plain connections away.
            Err(ConnectError::Driver(e))
                if self.target.tls.mode == SslMode::Allow && e.as_db_error().is_some() =>
            {
                let mut pg = pg;
                pg.ssl_mode(postgres::config::SslMode::Require);
                bounded(&pg, &self.tls, timeout)
            }
            other => other,
        }
    }

    /// Tries the endpoints in order (libpq's order) and returns the first that answers, or
    /// every endpoint's failure.
    fn connect_any(&self) -> std::result::Result<(usize, Client), Vec<ConnectError>> {
        let mut failures = Vec::new();
        for index in 0..self.target.endpoints.len() {
            match self.connect_endpoint(index) {
                Ok(client) => return Ok((index, client)),
                Err(e) => failures.push(e),
            }
        }
        Err(failures)
    }

    /// This connector narrowed to one endpoint: every connection of a command goes to the
    /// server that answered first, so that the lock and the work are on the same server.
    fn pinned(&self, index: usize) -> Connector {
        Connector {
            target: self.target.pinned(index),
            ..self.clone()
        }
    }
}

impl ManageConnection for Connector {
    type Connection = Client;
    type Error = ConnectError;

    fn connect(&self) -> Result<Client, ConnectError> {
        match self.take_ahead() {
            Some(client) => Ok(client),
            None => self.connect_endpoint(0),
        }
    }

    fn is_valid(&self, client: &mut Client) -> Result<(), ConnectError> {
        client
            .simple_query("")
            .map(|_| ())
            .map_err(ConnectError::Driver)
    }

    fn has_broken(&self, client: &mut Client) -> bool {
        client.is_closed()
    }
}

/// The driver's own connect_timeout covers only the TCP connect: a server that accepts and never
/// answers would hold the TLS handshake or the authentication forever. So the attempt runs on a
/// thread that we stop waiting for when the time is up; its socket closes when the process ends.
fn bounded(
    pg: &postgres::Config,
    tls: &LazyTls,
    timeout: Option<Duration>,
) -> Result<Client, ConnectError> {
    let Some(timeout) = timeout else {
        return pg.connect(tls.clone()).map_err(ConnectError::Driver);
    };
    let (sender, receiver) = std::sync::mpsc::channel();
    let (attempt_pg, attempt_tls) = (pg.clone(), tls.clone());
    let spawned = std::thread::Builder::new()
        .name("connect".into())
        .spawn(move || {
            let _ = sender.send(attempt_pg.connect(attempt_tls));
        });
    // Never an unbounded attempt: without a thread there is no bound, so no attempt.
    if let Err(e) = spawned {
        return Err(ConnectError::NoThread(e.to_string()));
    }
    match receiver.recv_timeout(timeout) {
        Ok(result) => result.map_err(ConnectError::Driver),
        Err(_) => Err(ConnectError::TimedOut(timeout)),
    }
}

/// Connects once, retrying with exponential backoff while the failure can heal (connection
/// refused, server starting up or shutting down, no answer in time) and `--wait-for-db` has not
/// run out. Returns the connector pinned to the server that answered.
pub fn wait_until_ready(config: &Config, reporter: &Reporter) -> Result<Connector> {
    wait_until(config, reporter, Early::none())
}

fn wait_until(config: &Config, reporter: &Reporter, mut early: Early) -> Result<Connector> {
    let connector = match early.connector.take() {
        Some(connector) => connector,
        None => Connector::new(config)?,
    };
    let target = &connector.target;
    for warning in &target.warnings {
        reporter.warn("connection-warning", warning.clone(), json!({}));
    }
    reporter.debug(format!("connecting with {}", target.explain()));
    let wait = config.wait_for_db;
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let attempt = match early.attempts.pop_front() {
            Some(started) => match started.recv() {
                Ok(Ok(client)) => Ok((0, client)),
                Ok(Err(e)) => {
                    // The others failed alike, or will: a retry is a new attempt.
                    early.attempts.clear();
                    Err(vec![e])
                }
                Err(_) => connector.connect_any(),
            },
            None => connector.connect_any(),
        };
        let failures = match attempt {
            Ok((index, client)) => {
                let pinned = connector.pinned(index);
                // The pool's first connections: not opened a second time.
                pinned.ahead(Ahead::Open(Box::new(client)));
                for started in early.attempts.drain(..) {
                    pinned.ahead(Ahead::Opening(started));
                }
                if attempts > 1 {
                    reporter.info(
                        "database-ready",
                        format!(
                            "{} accepts connections after {:.1}s",
                            pinned.target,
                            start.elapsed().as_secs_f64()
                        ),
                        json!({ "waited_ms": start.elapsed().as_millis() as u64 }),
                    );
                }
                reporter.debug(format!("connected to {}", pinned.target));
                return Ok(pinned);
            }
            Err(failures) => failures,
        };
        let described: Vec<(bool, String)> = failures
            .iter()
            .map(|e| describe_connect_error(e, target))
            .collect();
        let can_heal = described.iter().any(|(heal, _)| *heal);
        let why = if described.len() == 1 {
            described[0].1.clone()
        } else {
            target
                .endpoints
                .iter()
                .zip(&described)
                .map(|(endpoint, (_, why))| format!("{endpoint}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let left = wait.saturating_sub(start.elapsed());
        if !can_heal || left.is_zero() {
            let waited = if attempts > 1 {
                format!(" (gave up after {:.0}s)", start.elapsed().as_secs_f64())
            } else if can_heal {
                " (pass --wait-for-db DURATION to wait for it)".to_string()
            } else {
                String::new()
            };
            let nothing_given = if target.anything_given {
                ""
            } else {
                " (no DATABASE_URL, --database-url or PGHOST was given, so libpq's default was tried)"
            };
            let message = format!("cannot connect to {target}{nothing_given}: {why}{waited}");
            let no_database = failures.iter().all(|e| {
                matches!(e, ConnectError::Driver(e)
                    if e.code() == Some(&SqlState::INVALID_CATALOG_NAME))
            });
            return Err(if no_database {
                Error::NoDatabase(message)
            } else {
                Error::Unreachable(message)
            });
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

/// Whether a failed connection attempt can heal by waiting, and what to tell the user: the
/// driver's cause in one line, with the hint that fits it.
fn describe_connect_error(error: &ConnectError, target: &Target) -> (bool, String) {
    let error = match error {
        ConnectError::TimedOut(_) => {
            return (
                true,
                format!(
                    "{error}; the server may be overloaded or something other than PostgreSQL listens there (raise connect_timeout if it is just slow)"
                ),
            );
        }
        ConnectError::NoThread(_) => return (true, error.to_string()),
        ConnectError::Driver(e) => e,
    };
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        let message = db.message();
        let can_heal = *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::TOO_MANY_CONNECTIONS;
        // PostgreSQL 13 ends the message with "SSL off" / "SSL on" instead.
        let hint = if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            && (message.contains("no encryption") || message.ends_with("SSL off"))
        {
            "; the server accepts only encrypted connections: use sslmode=require, or verify-full with sslrootcert pointing at the server's CA"
        } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            && (message.contains("SSL encryption") || message.ends_with("SSL on"))
        {
            "; the server accepts only unencrypted connections from here: use sslmode=prefer or disable"
        } else if *code == SqlState::INVALID_PASSWORD {
            "; check the password (in a URL, percent-encode the characters @:/?# in it: @ is %40)"
        } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            "; check the user name and the server's pg_hba.conf"
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            "; `dbtool reset` and `dbtool migrate` create it with --create-database, or fix its name in the connection string (or PGDATABASE)"
        } else {
            ""
        };
        return (can_heal, format!("{message}{hint}"));
    }
    let text = one_line(error);
    if text.contains("password missing") {
        let hint = if target.has_password() {
            ""
        } else {
            ": put it in the URL (percent-encoded), PGPASSWORD, or ~/.pgpass (PGPASSFILE) with mode 0600"
        };
        return (
            false,
            format!("the server asks for a password and none was given{hint}"),
        );
    }
    if text.contains("certificate verify failed") {
        let reason = text.rsplit(": ").next().unwrap_or_default();
        let hint = if reason.contains("hostname mismatch") || reason.contains("IP address mismatch")
        {
            "; connect by a host name the certificate carries, or use sslmode=verify-ca to check the chain only"
        } else {
            "; point sslrootcert at the CA certificate that signed the server's certificate"
        };
        return (
            false,
            format!("the server's certificate did not verify ({reason}){hint}"),
        );
    }
    if text.contains("server does not support TLS") {
        return (
            false,
            format!(
                "{text}; sslmode {} needs TLS: enable ssl on the server or use sslmode=prefer",
                target.tls.mode.as_str()
            ),
        );
    }
    if text.contains("TLS") || text.contains("SSL") {
        return (false, text);
    }
    // Not a server message: a socket error (refused, reset, timed out) can heal.
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            if let (
                std::io::ErrorKind::NotFound,
                Some(Endpoint {
                    host: Host::Unix(dir),
                    port,
                    ..
                }),
            ) = (io.kind(), target.endpoints.first())
            {
                return (
                    true,
                    format!(
                        "no server socket {}/.s.PGSQL.{port} ({io}); is the server running, and is this its socket directory?",
                        dir.display()
                    ),
                );
            }
            return (true, io.to_string());
        }
        source = inner.source();
    }
    (error.is_closed(), text)
}

/// An error and its causes in one line (OpenSSL's messages carry newlines).
fn one_line(error: &postgres::Error) -> String {
    crate::connection::conninfo::with_causes(error)
}

/// `--create-database`: as the same role, on the server's maintenance database (`postgres`, else
/// `template1`), checks that the role may create databases, then creates the target's database.
pub fn create_database(config: &Config, reporter: &Reporter) -> Result<()> {
    let mut connector = Connector::new(config)?;
    let name = connector.target.database();
    let mut client = None;
    let mut why = String::new();
    for maintenance in ["postgres", "template1"] {
        connector.target.base.dbname(maintenance);
        match connector.connect_any() {
            Ok((_, c)) => {
                client = Some(c);
                break;
            }
            Err(failures) => {
                why = failures
                    .iter()
                    .map(|e| describe_connect_error(e, &connector.target).1)
                    .collect::<Vec<_>>()
                    .join("; ");
            }
        }
    }
    let target = &connector.target;
    let Some(mut client) = client else {
        return Err(Error::Unreachable(format!(
            "cannot create database {name}: connecting to {target} (database postgres or \
             template1) failed: {why}"
        )));
    };
    let read = |e: postgres::Error| {
        Error::Unreachable(format!(
            "cannot create database {name}: {}",
            describe_sql_error(&e, None)
        ))
    };
    let row = client
        .query_one(
            "SELECT current_user::text, r.rolcreatedb OR r.rolsuper
               FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .map_err(read)?;
    let (role, may): (String, bool) = (row.get(0), row.get(1));
    if !may {
        return Err(Error::Usage(format!(
            "database {name} does not exist and role {role} may not create it (it has neither \
             CREATEDB nor superuser): ask an administrator to run `CREATE DATABASE {} OWNER \
             {}` or `ALTER ROLE {} CREATEDB`, then retry",
            quote_ident(&name),
            quote_ident(&role),
            quote_ident(&role),
        )));
    }
    match client.batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name))) {
        Ok(()) => {}
        // Someone else created it meanwhile: what was asked for is there.
        Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
        Err(e) => {
            return Err(Error::Work(format!(
                "creating database {name} failed: {}",
                describe_sql_error(&e, None)
            )));
        }
    }
    reporter.info(
        "database-created",
        format!("created database {name} on {target} (owner {role})"),
        json!({ "database": name, "owner": role }),
    );
    Ok(())
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The server's message for a failed statement, with its position as line and column of `sql`
/// when the server gives one.
pub fn describe_sql_error(error: &postgres::Error, sql: Option<&str>) -> String {
    describe_sql_error_in(error, sql, |offset| offset)
}

/// `describe_sql_error` for a statement the server ran as a changed copy of `sql`: `offset_in_sql`
/// maps a 0-based character offset in what ran to one in `sql`.
pub fn describe_sql_error_in(
    error: &postgres::Error,
    sql: Option<&str>,
    offset_in_sql: impl Fn(usize) -> usize,
) -> String {
    let Some(db) = error.as_db_error() else {
        return error.to_string();
    };
    let mut text = format!("{}: {}", db.severity(), db.message());
    if let (Some(postgres::error::ErrorPosition::Original(pos)), Some(sql)) = (db.position(), sql) {
        let offset = offset_in_sql((*pos as usize).saturating_sub(1));
        let (line, column) = line_and_column(sql, offset + 1);
        text.push_str(&format!(" (line: {line}, column: {column})"));
    }
    if let Some(detail) = db.detail() {
        text.push_str(&format!("; {}", detail.trim_end_matches('.')));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    if let Some(lacks) = explain_privilege(error) {
        text.push_str(&format!("; {lacks}"));
    }
    if db.code() == &postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION {
        // dbtool stops at the first error it reads, so the transaction was aborted between
        // two statements: the server log then shows a statement timeout with no statement.
        text.push_str(
            "; the transaction was aborted between two statements, most likely by the \
             statement timeout expiring just as the previous statement finished (the server \
             raises it after the statement completed); a longer --statement-timeout avoids it",
        );
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
    privilege_hint(message, db.hint().is_some())
}

/// What to do about an `insufficient_privilege` error with this message (`hinted`: the server
/// gave a hint of its own).
fn privilege_hint(message: &str, hinted: bool) -> Option<String> {
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
        } else if let Some(role) = object("must be member of role")
            // PostgreSQL 16 and later word the same refusal so.
            .or_else(|| object("must be able to SET ROLE"))
        {
            format!(
                "a statement hands an object to role {role} (OWNER TO, as pg_dump writes it), which \
             the role running dbtool is not a member of: leave the OWNER TO out (pg_dump \
             --no-owner), or GRANT {role} TO the role"
            )
        } else if hinted {
            // The server said what to do ("Must be superuser to create this extension.").
            return None;
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
    fn a_refused_role_change_is_explained_in_every_server_wording() {
        for message in [
            "must be member of role \"app_owner\"",   // PostgreSQL 13-15
            "must be able to SET ROLE \"app_owner\"", // PostgreSQL 16 and later
        ] {
            let hint = privilege_hint(message, false).unwrap();
            assert!(
                hint.contains("role \"app_owner\"") && hint.contains("--no-owner"),
                "{message}: {hint}"
            );
        }
        // PostgreSQL 16 adds a detail but no hint; a hint of the server's own would not hide it.
        let hint = privilege_hint("must be able to SET ROLE \"x\"", true).unwrap();
        assert!(hint.contains("GRANT \"x\" TO the role"), "{hint}");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("public"), "\"public\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
