//! Flags and environment resolved into one validated `Config`, before any connection opens.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Cli, Command, GlobalArgs, IfLocked, LockCommand, LogFormat};
use crate::error::{Error, Result};

pub use crate::conninfo::Target;
use crate::conninfo::{ProcessEnvironment, Source};

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
        if g.schema.trim().is_empty() || g.schema == crate::meta::SCHEMA {
            return Err(Error::usage(format!(
                "--schema {:?} is not allowed: name the application's schema (the `{}` schema belongs to dbtool)",
                g.schema,
                crate::meta::SCHEMA
            )));
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
            schema: g.schema.clone(),
            paths: Paths {
                migrations: g.migrations_dir.clone(),
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
}
