//! Flags and environment resolved into one validated `Config`, before any connection opens.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Cli, Command, GlobalArgs, IfLocked, LockCommand, LogFormat};
use crate::error::{Error, Result};

pub use crate::connection::conninfo::Target;
use crate::connection::conninfo::{ProcessEnvironment, Source};

/// dbtool's own schema (`dbtool.meta`): never dropped, never a target.
pub const DBTOOL_SCHEMA: &str = "dbtool";

/// How output is rendered on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Bars,
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// Where the files of the project live.
#[derive(Debug, Clone)]
pub struct Paths {
    pub migrations: PathBuf,
    /// `--migrations-format`: who wrote the migrations directory (auto = recognise it).
    pub migrations_format: crate::cli::MigrationsFormat,
    pub seeds: PathBuf,
    pub profiles: PathBuf,
}

/// The advisory lock's key, as the user gave it and as the i64 PostgreSQL sees.
#[derive(Debug, Clone)]
pub struct LockKey {
    pub text: String,
    pub value: i64,
}

impl LockKey {
    /// Decimal, `0x` hex, or a name hashed with FNV-1a 64 (stable across versions and machines).
    pub fn parse(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(Error::usage("--lock-key must not be empty"));
        }
        let numeric = if let Some(hex) = trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"))
        {
            Some(
                u64::from_str_radix(hex, 16)
                    .map(|v| v as i64)
                    .map_err(|_| {
                        Error::usage(format!("--lock-key {text:?} is not a 64-bit hex number"))
                    })?,
            )
        } else if trimmed.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            Some(trimmed.parse::<i64>().map_err(|_| {
                Error::usage(format!("--lock-key {text:?} is not a 64-bit integer"))
            })?)
        } else {
            None
        };
        let value = numeric.unwrap_or_else(|| fnv1a64(trimmed.as_bytes()) as i64);
        Ok(LockKey {
            text: trimmed.to_string(),
            value,
        })
    }
}

/// FNV-1a, 64 bit: the documented hash for lock-key names and content digests.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Everything the rest of the program needs from the command line and the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// The command's name as it appears in application_name (`reset`, `lock status`...).
    pub command: &'static str,
    pub target: Option<Target>,
    pub pool_size: u32,
    pub lock_key: LockKey,
    pub lock_timeout: Duration,
    pub if_locked: IfLocked,
    pub wait_for_db: Duration,
    pub ddl_lock_timeout: Duration,
    pub statement_timeout: Option<Duration>,
    pub seed_command_timeout: Duration,
    pub schema: String,
    pub paths: Paths,
    pub output: Output,
    pub verbosity: Verbosity,
}

impl Config {
    pub fn from_cli(cli: &Cli) -> Result<Self> {
        let g = &cli.global;
        let command = command_name(&cli.command);
        let needs_database = !matches!(
            cli.command,
            Command::Profiles(_) | Command::Completions { .. }
        );
        if needs_database && g.pool_size < 2 {
            return Err(Error::usage(format!(
                "--pool-size {} is too small: one connection holds the lock and the work needs at \
                 least one more, so the pool must have at least 2 connections",
                g.pool_size
            )));
        }
        let target = if needs_database {
            Some(resolve_target(g.database_url.as_deref())?)
        } else {
            None
        };
        check_schema(&g.schema)?;
        check_server_duration("--ddl-lock-timeout", g.ddl_lock_timeout)?;
        if let Some(timeout) = g.statement_timeout {
            check_server_duration("--statement-timeout", timeout)?;
        }
        let wait_default = if matches!(cli.command, Command::Wait) {
            Duration::from_secs(60)
        } else {
            Duration::ZERO
        };
        let (output, verbosity) = output_of(g);
        Ok(Config {
            command,
            target,
            pool_size: g.pool_size,
            lock_key: LockKey::parse(&g.lock_key)?,
            lock_timeout: g.lock_timeout,
            if_locked: g.if_locked,
            wait_for_db: g.wait_for_db.unwrap_or(wait_default),
            ddl_lock_timeout: g.ddl_lock_timeout,
            statement_timeout: g.statement_timeout.filter(|d| !d.is_zero()),
            seed_command_timeout: g.seed_command_timeout,
            schema: g.schema.clone(),
            paths: Paths {
                migrations: g.migrations_dir.clone(),
                migrations_format: g.migrations_format,
                seeds: g.seeds_dir.clone(),
                profiles: g.profiles_dir.clone(),
            },
            output,
            verbosity,
        })
    }

    /// The target of a command that needs one (checked in `from_cli`).
    pub fn target(&self) -> &Target {
        self.target
            .as_ref()
            .expect("from_cli requires a database for every command that connects")
    }

    /// `host 127.0.0.1, port 5432, database app, schema public`: what a command that changes data
    /// names in its first line of output.
    pub fn describe_target(&self) -> String {
        let t = self.target();
        format!(
            "host {}, port {}, database {}, schema {}",
            t.host(),
            t.port(),
            t.database(),
            self.schema
        )
    }

    /// `dbtool <command> <host>:<pid>`, so pg_stat_activity shows who is working.
    pub fn application_name(&self) -> String {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let mut name = format!("dbtool {} {}:{}", self.command, host, std::process::id());
        // The user's own application_name (a CronJob's name) stays visible beside ours.
        if let Some(theirs) = self
            .target
            .as_ref()
            .and_then(|t| t.application_name.as_deref())
        {
            name.push_str(&format!(" ({theirs})"));
        }
        // PostgreSQL truncates application_name to 63 bytes; keep it on a char boundary.
        let mut end = name.len().min(63);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name[..end].to_string()
    }
}

/// Loads the `.env` file of the working directory (or the nearest directory above it, as
/// dotenvy finds it), without overriding variables already set. A line dotenvy cannot parse
/// stops it from reading every line after it, so that is an error naming the file and the line;
/// the line itself is not shown, as it may hold a password.
pub fn load_env_file() -> Result<()> {
    let Ok(cwd) = std::env::current_dir() else {
        return Ok(());
    };
    let Some(path) = cwd
        .ancestors()
        .map(|dir| dir.join(".env"))
        .find(|path| path.is_file())
    else {
        return Ok(());
    };
    match dotenvy::from_path(&path) {
        Ok(()) => Ok(()),
        Err(dotenvy::Error::LineParse(line, _)) => {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let first = line.lines().next().unwrap_or("").trim();
            let number = text
                .lines()
                .position(|l| l.trim() == first)
                .or_else(|| {
                    text.lines()
                        .position(|l| !first.is_empty() && l.contains(first))
                })
                .map_or_else(String::new, |i| format!(":{}", i + 1));
            Err(Error::usage(format!(
                "{}{number}: this line is not NAME=value, so dotenvy stops reading the file there; \
                 fix or remove it (quote values with spaces or # in them)",
                path.display()
            )))
        }
        Err(e) => Err(Error::usage(format!("cannot read {}: {e}", path.display()))),
    }
}

/// PostgreSQL's longest identifier (NAMEDATALEN - 1); a longer name is silently truncated.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// The application's schema: a name PostgreSQL keeps as given, and not one that belongs to the
/// system or to dbtool (dropping "everything" in `information_schema` is never what was meant).
pub fn check_schema(schema: &str) -> Result<()> {
    if schema.trim().is_empty() || schema == DBTOOL_SCHEMA {
        return Err(Error::usage(format!(
            "--schema {schema:?} is not allowed: name the application's schema (the `{}` schema belongs to dbtool)",
            DBTOOL_SCHEMA
        )));
    }
    if schema.starts_with("pg_") || schema == "information_schema" {
        return Err(Error::usage(format!(
            "--schema {schema:?} is a PostgreSQL system schema (pg_catalog, information_schema, \
             pg_toast, pg_temp* and every pg_* name are the server's): name the application's schema"
        )));
    }
    if schema.len() > MAX_IDENTIFIER_BYTES {
        return Err(Error::usage(format!(
            "--schema {schema:?} is {} bytes long; PostgreSQL names are at most {MAX_IDENTIFIER_BYTES} bytes",
            schema.len()
        )));
    }
    if schema.contains('\0') {
        return Err(Error::usage(format!(
            "--schema {schema:?} contains a NUL character, which PostgreSQL names cannot hold"
        )));
    }
    Ok(())
}

/// PostgreSQL keeps timeouts as a 32-bit count of milliseconds.
pub const MAX_SERVER_DURATION: Duration = Duration::from_millis(i32::MAX as u64);

/// A duration dbtool hands to PostgreSQL (`SET lock_timeout`, `SET statement_timeout`) must be one
/// the server accepts; otherwise the failure would come after the drop, or not at all.
pub fn check_server_duration(flag: &str, duration: Duration) -> Result<()> {
    if duration > MAX_SERVER_DURATION {
        return Err(Error::usage(format!(
            "{flag} {} is longer than PostgreSQL accepts: the largest is {} ({} ms, about 24.8 days)",
            humantime::format_duration(duration),
            humantime::format_duration(MAX_SERVER_DURATION),
            MAX_SERVER_DURATION.as_millis()
        )));
    }
    Ok(())
}

/// The connection string from `--database-url` or `DATABASE_URL` (clap merges them: the
/// environment tells which), completed by the libpq variables and defaults.
fn resolve_target(given: Option<&str>) -> Result<Target> {
    let from_env = std::env::var("DATABASE_URL").ok();
    let conninfo = given.map(|text| {
        let source = if from_env.as_deref() == Some(text) {
            Source::DatabaseUrl
        } else {
            Source::Flag
        };
        (text, source)
    });
    Target::resolve(conninfo, &ProcessEnvironment)
}

/// How stderr is rendered, known even when the rest of the configuration is not valid.
pub fn output_of(g: &GlobalArgs) -> (Output, Verbosity) {
    let output = match g.log_format {
        LogFormat::Json => Output::Json,
        LogFormat::Text => Output::Text,
        LogFormat::Auto if std::io::stderr().is_terminal() => Output::Bars,
        LogFormat::Auto => Output::Text,
    };
    let verbosity = if g.quiet {
        Verbosity::Quiet
    } else if g.verbose > 0 {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    (output, verbosity)
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Reset(_) => "reset",
        Command::Migrate(_) => "migrate",
        Command::Seed(_) => "seed",
        Command::Status(_) => "status",
        Command::Fingerprint(_) => "fingerprint",
        Command::Lock(LockCommand::Status(_)) => "lock-status",
        Command::Wait => "wait",
        Command::Profiles(_) => "profiles",
        Command::Init(_) => "init",
        Command::Protect => "protect",
        Command::Unprotect => "unprotect",
        Command::Completions { .. } => "completions",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_key_accepts_decimal_hex_and_names() {
        assert_eq!(LockKey::parse("42").unwrap().value, 42);
        assert_eq!(LockKey::parse("-7").unwrap().value, -7);
        assert_eq!(LockKey::parse("0xff").unwrap().value, 255);
        assert_eq!(LockKey::parse("0xffffffffffffffff").unwrap().value, -1);
        // FNV-1a 64 of "dbtool", pinned: changing it would split old and new dbtools onto two locks.
        assert_eq!(
            LockKey::parse("dbtool").unwrap().value,
            fnv1a64(b"dbtool") as i64
        );
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert!(LockKey::parse("12x").is_err());
        assert!(LockKey::parse("0xzz").is_err());
    }

    #[test]
    fn system_long_and_dbtool_schemas_are_refused() {
        for bad in [
            "pg_catalog",
            "information_schema",
            "pg_toast",
            "pg_temp_3",
            "pg_toast_temp_1",
            "dbtool",
            "",
            " ",
        ] {
            assert!(check_schema(bad).is_err(), "{bad:?} accepted");
        }
        let long = "s".repeat(64);
        let message = check_schema(&long).unwrap_err().to_string();
        assert!(message.contains("64 bytes"), "{message}");
        assert!(check_schema(&"s".repeat(63)).is_ok());
        // Multi-byte characters count as bytes, as PostgreSQL counts them.
        assert!(check_schema(&"é".repeat(32)).is_err());
        assert!(check_schema("public").is_ok());
        assert!(check_schema("app").is_ok());
    }

    #[test]
    fn durations_past_int_max_milliseconds_name_the_flag_and_the_limit() {
        let limit = Duration::from_millis(i32::MAX as u64);
        assert!(check_server_duration("--statement-timeout", limit).is_ok());
        let message = check_server_duration("--ddl-lock-timeout", Duration::from_secs(30 * 86_400))
            .unwrap_err()
            .to_string();
        assert!(message.contains("--ddl-lock-timeout"), "{message}");
        assert!(message.contains("2147483647 ms"), "{message}");
        assert!(message.contains("24days 20h 31m 23s 647ms"), "{message}");
    }
}
