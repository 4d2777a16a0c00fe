//! A team's own seed code, run under the same lock after the generated rows: SQL files
//! (`seeds/*.sql`, in name order) inside the reset's transaction, and a seed command (a program
//! of the team's own: `npm run seed`, `bin/rails db:seed`) on its own connections.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use postgres::Client;
use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};
use serde_json::json;

use crate::config::Config;
use crate::connection::conninfo::{RootCert, Tls};
use crate::connection::{Database, describe_sql_error, describe_sql_error_in, execute_each};
use crate::error::{Error, Result};
use crate::files::ReadFiles;
use crate::lock::LOCK_HELD_ENV;
use crate::migrations::statements::{self, Batch, Plan};
use crate::progress::Reporter;

/// The seed code of a reset or seed: its SQL files and, optionally, its command.
pub struct SeedCode {
    pub sql: SeedSql,
    pub command: Option<SeedCommand>,
}

impl SeedCode {
    /// No SQL files and no command: nothing changes rows after the generated ones.
    pub fn is_empty(&self) -> bool {
        self.sql.is_empty() && self.command.is_none()
    }

    /// `command`: `--seed-command`, else the profile's `seed_command`.
    pub fn load(seeds_dir: &Path, schema: &str, command: Option<&str>) -> Result<Self> {
        Ok(SeedCode {
            sql: SeedSql::load(seeds_dir, schema)?,
            command: command
                .filter(|c| !c.trim().is_empty())
                .map(|c| SeedCommand {
                    command: c.to_string(),
                }),
        })
    }
}

/// The SQL seed files of the seeds directory.
pub struct SeedSql {
    files: Vec<(PathBuf, Batch)>,
    /// What was read, for the change digest.
    pub read: ReadFiles,
}

impl SeedSql {
    /// Reads `seeds/*.sql` and refuses, before connecting, a statement that cannot run inside
    /// the reset's transaction.
    pub fn load(seeds_dir: &Path, schema: &str) -> Result<Self> {
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(seeds_dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "sql"))
                .collect(),
            Err(_) => Vec::new(),
        };
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        let mut read = ReadFiles::default();
        for path in paths {
            let sql = read
                .read_to_string(&path)
                .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?;
            let text = match statements::plan(&sql, schema) {
                Ok(Plan::InTransaction(batch)) => batch,
                Ok(Plan::Outside(_)) => {
                    return Err(Error::usage(format!(
                        "{}: a seed file runs inside the reset's transaction; `{}` is for migrations only",
                        path.display(),
                        statements::NO_TRANSACTION
                    )));
                }
                Err(r) => {
                    return Err(Error::usage(format!(
                        "{}:{}: statement `{}` {}; a seed file runs inside the reset's transaction",
                        path.display(),
                        r.line,
                        r.statement.lines().next().unwrap_or(""),
                        r.why
                    )));
                }
            };
            files.push((path, text));
        }
        Ok(SeedSql { files, read })
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Runs every file inside the caller's transaction, one statement a query, the session
    /// settings restored after each file; an error names the file and the line of its
    /// statement (and the column where the server gives a position).
    pub fn run(&self, client: &mut Client, session: &[String]) -> Result<()> {
        for (path, batch) in &self.files {
            let failed = |line: usize, what: String| {
                Error::Work(format!(
                    "seed file {}:{line} failed: {what}",
                    path.display()
                ))
            };
            for (at, statement) in batch.statements() {
                client.batch_execute(statement).map_err(|e| {
                    let line = 1 + batch.sql.chars().take(at).filter(|&c| c == '\n').count();
                    failed(
                        line,
                        describe_sql_error_in(&e, Some(&batch.sql), |o| at + o),
                    )
                })?;
            }
            execute_each(client, session).map_err(|e| failed(1, describe_sql_error(&e, None)))?;
        }
        Ok(())
    }
}

/// A seed program, run while dbtool holds the lock, after drop, migrate and the generated rows.
pub struct SeedCommand {
    pub command: String,
}

/// How long a stopped seed command gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

impl SeedCommand {
    /// Runs the command with `DATABASE_URL`, `SEED_PROFILE`, `DBTOOL_SEED` and `DBTOOL_LOCK_HELD`
    /// in its environment, relaying its output (the connection's password masked); a non-zero
    /// exit is exit 7. It runs in a process group of its own, and nothing of it outlives this
    /// call, so nothing of it works without the lock: a signal, `--seed-command-timeout` or a
    /// program that waits for dbtool's own advisory lock (seen in pg_locks under the
    /// application_name given to it through PGAPPNAME) stops the whole group, and its server
    /// sessions are ended before the lock is released; so are processes it leaves running.
    pub fn run(
        &self,
        config: &Config,
        db: &Database,
        profile: &str,
        seed: u64,
        reporter: &Reporter,
    ) -> Result<()> {
        let app_name = format!("{} seed-command", config.application_name());
        let app_name: String = app_name.chars().take(63).collect();
        let endpoint = db.target.endpoint_config(0, &app_name);
        let masks = Masks::of(&endpoint);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .env("DATABASE_URL", url_with_password(&endpoint, &db.target.tls))
            .env("SEED_PROFILE", profile)
            .env("DBTOOL_SEED", seed.to_string())
            .env(LOCK_HELD_ENV, config.lock_key.value.to_string())
            .env("PGAPPNAME", &app_name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                Error::Work(format!(
                    "cannot start the seed command `{}`: {e}",
                    self.command
                ))
            })?;
        let group = Group {
            id: Pid::from_child(&child),
        };
        let (lines, output) = mpsc::channel::<String>();
        let relays: Vec<_> = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        .map(|stream| {
            let lines = lines.clone();
            std::thread::spawn(move || relay(stream, &lines))
        })
        .collect();
        drop(lines);
        let relay_output = || {
            while let Ok(line) = output.try_recv() {
                reporter.info(
                    "seed-command-output",
                    format!("seed command: {}", masks.apply(&line)),
                    json!({}),
                );
            }
        };
        let started = Instant::now();
        let mut last_check = Instant::now();
        let mut watcher = db.work()?;
        let stopped = |child: &mut std::process::Child, watcher: &mut Client, error: Error| {
            group.stop(child);
            end_sessions(watcher, &app_name);
            error
        };
        let status = loop {
            relay_output();
            if let Some(status) = child.try_wait().map_err(|e| Error::Work(e.to_string()))? {
                break status;
            }
            if let Err(e) = db.stop.check() {
                return Err(stopped(&mut child, &mut watcher, e));
            }
            if started.elapsed() >= config.seed_command_timeout {
                let error = Error::Work(format!(
                    "the seed command `{}` was still running after {} \
                     (--seed-command-timeout): it was stopped, its whole process group; the \
                     reset stays marked unfinished",
                    self.command,
                    humantime::format_duration(config.seed_command_timeout)
                ));
                return Err(stopped(&mut child, &mut watcher, error));
            }
            if last_check.elapsed() >= Duration::from_millis(500) {
                last_check = Instant::now();
                if let Some(pid) = waiting_for_our_lock(&mut watcher, config, &app_name) {
                    let error = Error::Work(format!(
                        "the seed command `{}` waits for dbtool's own advisory lock (its backend \
                         pid {pid}), which this reset holds while the command runs: it would wait \
                         forever, so it was stopped. A seed program run by dbtool must not take \
                         the lock itself ({LOCK_HELD_ENV} is set in its environment)",
                        self.command
                    ));
                    return Err(stopped(&mut child, &mut watcher, error));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The shell is done; what it started and left running must not go on without the lock.
        if group.alive() {
            reporter.warn(
                "seed-command-leftovers",
                "the seed command left processes running in its process group: they are stopped",
                json!({}),
            );
            group.stop(&mut child);
        }
        end_sessions(&mut watcher, &app_name);
        for relay in relays {
            let _ = relay.join();
        }
        relay_output();
        if !status.success() {
            return Err(Error::Work(format!(
                "the seed command `{}` failed ({status}) after {:.1}s; the reset stays marked \
                 unfinished",
                self.command,
                started.elapsed().as_secs_f64()
            )));
        }
        Ok(())
    }
}

/// Sends each line of `stream` (bytes that are not UTF-8 shown as U+FFFD) until it closes: the
/// pipe stays read to its end, so the program never dies of a broken pipe.
fn relay(stream: Box<dyn std::io::Read + Send>, lines: &mpsc::Sender<String>) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let _ = lines.send(text.trim_end_matches(['\n', '\r']).to_string());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The connection's password as it may appear in a seed command's output: as given, and
/// percent-encoded as in the `DATABASE_URL` the command received.
struct Masks(Vec<String>);

impl Masks {
    fn of(pg: &postgres::Config) -> Self {
        let Some(password) = pg.get_password() else {
            return Masks(Vec::new());
        };
        let plain = String::from_utf8_lossy(password).into_owned();
        let mut masks = vec![encode(&plain), plain];
        masks.retain(|m| !m.is_empty());
        // The longer first, so that a form containing the other is masked whole.
        masks.sort_by_key(|m| std::cmp::Reverse(m.len()));
        masks.dedup();
        Masks(masks)
    }

    fn apply(&self, line: &str) -> String {
        self.0.iter().fold(line.to_string(), |line, secret| {
            line.replace(secret, "****")
        })
    }
}

/// The seed command's process group (its id is the shell's pid).
struct Group {
    id: Pid,
}

impl Group {
    /// Whether a process of the group still runs (zombies, which run nothing, do not count).
    fn alive(&self) -> bool {
        if test_kill_process_group(self.id).is_err() {
            return false;
        }
        // A member may be a zombie that nobody reaps yet (no init process in a container): on
        // Linux, /proc tells the running ones.
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return true;
        };
        entries.filter_map(|e| e.ok()).any(|entry| {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                return false;
            };
            // pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
            let Some((_, after)) = stat.rsplit_once(')') else {
                return false;
            };
            let mut fields = after.split_whitespace();
            let state = fields.next().unwrap_or("Z");
            let pgrp = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
            pgrp == Some(self.id.as_raw_nonzero().get()) && !matches!(state, "Z" | "X")
        })
    }

    /// SIGTERM to every process of the group, SIGKILL to what still runs after `STOP_GRACE`;
    /// returns once none runs (the shell reaped).
    fn stop(&self, shell: &mut std::process::Child) {
        let _ = kill_process_group(self.id, Signal::TERM);
        let asked = Instant::now();
        while asked.elapsed() < STOP_GRACE {
            let _ = shell.try_wait();
            if !self.alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = kill_process_group(self.id, Signal::KILL);
        let _ = shell.wait();
        // SIGKILL cannot be caught: what is left is dying and runs no more of its code.
        let killed = Instant::now();
        while self.alive() && killed.elapsed() < STOP_GRACE {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Ends the server sessions the seed command opened (they carry its application_name): a
/// statement it sent before it was stopped must not run on after the lock is released.
fn end_sessions(client: &mut Client, app_name: &str) {
    // Terminates every such session each time round, until none is left: the cancel that a
    // signal sends to the work in flight may land on one of these queries instead.
    let ending = Instant::now();
    while ending.elapsed() < STOP_GRACE {
        let left = client.query_one(
            "SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity
              WHERE application_name = $1 AND pid <> pg_catalog.pg_backend_pid()",
            &[&app_name],
        );
        if left.is_ok_and(|row| row.get::<_, i64>(0) == 0) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A backend of the seed command that waits (not granted) for the lock dbtool holds.
fn waiting_for_our_lock(client: &mut Client, config: &Config, app_name: &str) -> Option<i32> {
    let key = config.lock_key.value as u64;
    let (hi, lo) = ((key >> 32) as i64, (key & 0xffff_ffff) as i64);
    client
        .query_opt(
            "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objsubid = 1
                AND l.classid::bigint = $1 AND l.objid::bigint = $2
                AND l.database = (SELECT oid FROM pg_database WHERE datname = pg_catalog.current_database())
                AND a.application_name = $3
              LIMIT 1",
            &[&hi, &lo, &app_name],
        )
        .ok()
        .flatten()
        .map(|row| row.get(0))
}

/// The connection dbtool uses (the endpoint that answered) as a URL a seed program's driver
/// understands, password and TLS settings included (it goes only into the child's environment,
/// never into any output).
fn url_with_password(pg: &postgres::Config, tls: &Tls) -> String {
    use postgres::config::Host;
    let user = pg.get_user().map(encode).unwrap_or_default();
    let password = pg
        .get_password()
        .map(|p| format!(":{}", encode(&String::from_utf8_lossy(p))))
        .unwrap_or_default();
    let at = if user.is_empty() { "" } else { "@" };
    let host = match pg.get_hosts().first() {
        Some(Host::Tcp(h)) if h.contains(':') => format!("[{h}]"),
        Some(Host::Tcp(h)) => encode(h),
        Some(Host::Unix(p)) => encode(&p.display().to_string()),
        None => String::new(),
    };
    let port = pg
        .get_ports()
        .first()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let db = pg.get_dbname().map(encode).unwrap_or_default();
    let mut query = vec![format!("sslmode={}", tls.mode.as_str())];
    match &tls.root_cert {
        Some(RootCert::File(path)) => query.push(format!(
            "sslrootcert={}",
            encode(&path.display().to_string())
        )),
        Some(RootCert::System) => query.push("sslrootcert=system".into()),
        None => {}
    }
    for (key, path) in [("sslcert", &tls.cert), ("sslkey", &tls.key)] {
        if let Some(path) = path {
            query.push(format!("{key}={}", encode(&path.display().to_string())));
        }
    }
    format!(
        "postgres://{user}{password}{at}{host}{port}/{db}?{}",
        query.join("&")
    )
}

/// Percent-encodes all but the unreserved characters of a URL.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
