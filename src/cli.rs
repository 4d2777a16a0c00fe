//! The command line, as clap derives: nothing here is validated beyond its type (see config.rs).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "dbtool",
    version = env!("DBTOOL_LONG_VERSION"),
    about = "Reset, migrate and seed a PostgreSQL database as one unit, serialized by an advisory lock"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Drop the application's objects, migrate, seed: one locked unit
    Reset(ResetArgs),
    /// Apply pending migrations, under the lock
    Migrate(MigrateArgs),
    /// Truncate the seeded tables and seed them, under the lock
    Seed(SeedArgs),
    /// Server, database, lock holder, migrations, protection and the last reset
    Status(JsonOutput),
    /// Per-table row count and content digest, and one overall digest
    Fingerprint(JsonOutput),
    /// The advisory lock
    #[command(subcommand)]
    Lock(LockCommand),
    /// Wait until the database accepts connections (up to --wait-for-db, default 60s here)
    Wait,
    /// List the profiles with their expected row counts per table
    Profiles(JsonOutput),
    /// Write seeds/seed.toml and profiles/dev.toml and ci.toml from the migrated schema
    /// (under the lock, changing nothing)
    Init(InitArgs),
    /// Mark the database so that reset and seed refuse it
    Protect,
    /// Remove the mark set by protect
    Unprotect,
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Who holds the lock now: pid, application_name, client address, since, state
    Status(JsonOutput),
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub confirm: Confirmation,
    /// Drop and migrate only
    #[arg(long)]
    pub skip_seed: bool,
    /// Always drop and migrate (never the warm path, which restores what the unchanged
    /// migrations left instead of running them again)
    #[arg(long)]
    pub cold: bool,
    #[command(flatten)]
    pub dry_run: DryRun,
    /// Exit 0 and change nothing when the last reset used the same profile, seed, migrations and
    /// seed spec and finished within DURATION
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub skip_if_reset_within: Option<Duration>,
    /// Load over N work connections: faster on many cores, but not all or nothing (a failure
    /// leaves the schema whole and empty, the reset marked unfinished)
    #[arg(long, value_name = "N")]
    pub parallel: Option<u32>,
    /// A team's own seed program, run under the lock after the generated rows and SQL seed
    /// files, with DATABASE_URL, SEED_PROFILE and DBTOOL_SEED set (overrides the profile's
    /// `seed_command`; makes the reset not all or nothing)
    #[arg(long, value_name = "CMD")]
    pub seed_command: Option<String>,
    /// The first reset of a database that holds objects and no record of a dbtool reset drops
    /// them only when this names the database (with --yes; a terminal asks instead)
    #[arg(long, value_name = "DATABASE")]
    pub adopt: Option<String>,
    #[command(flatten)]
    pub create: CreateDatabase,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub dry_run: DryRun,
    #[command(flatten)]
    pub create: CreateDatabase,
}

#[derive(Debug, Args)]
pub struct CreateDatabase {
    /// Create the database when it does not exist (the role needs CREATEDB); a terminal asks
    #[arg(long)]
    pub create_database: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite seeds/seed.toml and the profiles if they exist
    #[arg(long)]
    pub force: bool,
    /// Print the spec and profiles on stdout instead of writing them
    #[arg(long)]
    pub stdout: bool,
    /// Read the schema as the database has it now, instead of running the migrations (in a
    /// transaction rolled back)
    #[arg(long)]
    pub from_database: bool,
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub confirm: Confirmation,
    #[command(flatten)]
    pub dry_run: DryRun,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The profile to seed (profiles/NAME.toml)
    #[arg(long, env = "SEED_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// Overrides the profile's seed
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct Confirmation {
    /// Skip the confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct DryRun {
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct JsonOutput {
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IfLocked {
    /// Exit 3
    Fail,
    /// Warn and exit 0
    Skip,
}

/// The layout of the migrations directory: which tool wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MigrationsFormat {
    /// Recognise the layout from the directory's files
    Auto,
    /// V{n}__{name}.sql
    Refinery,
    /// drizzle-kit: {tag}.sql and meta/_journal.json
    Drizzle,
    /// {timestamp}_{name}/migration.sql and migration_lock.toml
    Prisma,
    /// {version}_{name}.up.sql / .down.sql
    GolangMigrate,
    /// {version}_{name}.sql with -- +goose Up / Down
    Goose,
    /// {timestamp}_{name}.sql with -- migrate:up / down
    Dbmate,
    /// {timestamp}_{name}.sql (or .up.sql / .down.sql)
    Sqlx,
    /// V{version}__{name}.sql (V1.1__, V1_1__), R__{name}.sql
    Flyway,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Progress bars on a terminal, text lines otherwise
    Auto,
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// postgres://user:password@host:port/database or key=value pairs; PG* variables fill the gaps
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Connections in the pool: one holds the lock, the rest do the work (>= 2)
    #[arg(long, env = "DBTOOL_POOL_SIZE", global = true, default_value_t = 6)]
    pub pool_size: u32,

    /// An i64 (decimal or 0x hex) or a name hashed to one (FNV-1a 64)
    #[arg(long, env = "DBTOOL_LOCK_KEY", global = true, default_value = "dbtool")]
    pub lock_key: String,

    /// How long to wait for the lock; 0 = one try
    #[arg(long, env = "DBTOOL_LOCK_TIMEOUT", global = true, default_value = "10m", value_parser = parse_duration)]
    pub lock_timeout: Duration,

    /// When the lock was not acquired: exit 3 (fail) or warn and exit 0 (skip)
    #[arg(long, env = "DBTOOL_IF_LOCKED", global = true, value_enum, default_value_t = IfLocked::Fail)]
    pub if_locked: IfLocked,

    /// Retry the first connection with backoff for this long [default: 0, 60s for `wait`]
    #[arg(long, env = "DBTOOL_WAIT_FOR_DB", global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub wait_for_db: Option<Duration>,

    /// A DROP blocked longer than this fails and names the blocking sessions
    #[arg(long, env = "DBTOOL_DDL_LOCK_TIMEOUT", global = true, default_value = "30s", value_parser = parse_duration)]
    pub ddl_lock_timeout: Duration,

    /// statement_timeout for work statements [default: none]
    #[arg(long, env = "DBTOOL_STATEMENT_TIMEOUT", global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub statement_timeout: Option<Duration>,

    /// A seed command still running after this long is stopped (its whole process group) and
    /// the reset or seed fails (exit 7)
    #[arg(long, env = "DBTOOL_SEED_COMMAND_TIMEOUT", global = true, default_value = "1h", value_parser = parse_duration)]
    pub seed_command_timeout: Duration,

    /// The application's schema
    #[arg(long, env = "DBTOOL_SCHEMA", global = true, default_value = "public")]
    pub schema: String,

    #[arg(
        long,
        env = "DBTOOL_MIGRATIONS_DIR",
        global = true,
        default_value = "migrations"
    )]
    pub migrations_dir: PathBuf,

    /// The tool that wrote the migrations directory; auto recognises it from its files
    #[arg(long, env = "DBTOOL_MIGRATIONS_FORMAT", global = true, value_enum, default_value_t = MigrationsFormat::Auto)]
    pub migrations_format: MigrationsFormat,

    #[arg(long, env = "DBTOOL_SEEDS_DIR", global = true, default_value = "seeds")]
    pub seeds_dir: PathBuf,

    #[arg(
        long,
        env = "DBTOOL_PROFILES_DIR",
        global = true,
        default_value = "profiles"
    )]
    pub profiles_dir: PathBuf,

    /// auto = progress bars on a terminal, text lines otherwise
    #[arg(long, env = "DBTOOL_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,

    /// Errors and warnings only
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More detail
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Parses the command line; on a usage error, exits 2 with clap's message (passwords masked), as
/// one JSON object when `--log-format json` (or DBTOOL_LOG_FORMAT=json) asked for JSON lines on
/// stderr. Arguments that are not UTF-8 are a usage error like any other, never a panic.
pub fn parse() -> Cli {
    let args: Vec<OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let message = mask_passwords(&e.render().to_string());
            if wants_json_lines(&args) {
                let first = message
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                eprintln!(
                    "{}",
                    serde_json::json!({ "event": "error", "level": "error", "message": first, "exit_code": 2 })
                );
            } else {
                eprint!("{message}");
            }
            std::process::exit(2);
        }
    }
}

fn wants_json_lines(args: &[OsString]) -> bool {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // The flag wins over the environment, as in clap; the last flag wins over earlier ones.
    let flag =
        args.iter()
            .enumerate()
            .rev()
            .find_map(|(i, a)| match a.strip_prefix("--log-format") {
                Some("") => args.get(i + 1).cloned(),
                Some(value) => value.strip_prefix('=').map(String::from),
                None => None,
            });
    flag.or_else(|| std::env::var_os("DBTOOL_LOG_FORMAT").map(|v| v.to_string_lossy().into_owned()))
        .is_some_and(|v| v == "json")
}

/// `text` with every password it may hold replaced by `***`: the user info of URLs
/// (`postgres://user:secret@host`) and `password=` settings of key=value strings and URL queries.
/// clap repeats the offending argument in its messages, and that argument may be a URL.
pub fn mask_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '\'' | '"' | '`'))
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) if authority[..at].contains(':') => {
                let user = &authority[..at].split_once(':').expect("checked").0;
                out.push_str(user);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    mask_password_settings(&out)
}

fn mask_password_settings(text: &str) -> String {
    const KEY: &str = "password=";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    while let Some(found) = lower[from..].find(KEY) {
        let value_start = from + found + KEY.len();
        out.push_str(&text[from..value_start]);
        let value = &text[value_start..];
        let len = if let Some(quoted) = value.strip_prefix('\'') {
            // libpq quoting: 'it''s' or 'a\'b'
            let mut chars = quoted.char_indices().peekable();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '\'' if chars.peek().is_some_and(|&(_, next)| next == '\'') => {
                        chars.next();
                    }
                    '\'' => {
                        end = i + 1;
                        break;
                    }
                    _ => {}
                }
            }
            1 + end
        } else {
            value
                .find(|c: char| c.is_whitespace() || matches!(c, '&' | '"' | '`' | '\''))
                .unwrap_or(value.len())
        };
        out.push_str("***");
        from = value_start + len;
    }
    out.push_str(&text[from..]);
    out
}

/// Human durations (`30s`, `10m`, `1h 30m`); a bare `0` means zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (use a duration such as 30s, 10m or 1h)"))
}

#[cfg(test)]
mod tests {
    use super::mask_passwords;

    #[test]
    fn passwords_are_masked_in_urls_and_settings() {
        assert_eq!(
            mask_passwords("unexpected argument 'postgres://alice:s3cret@db:5432/app' found"),
            "unexpected argument 'postgres://alice:***@db:5432/app' found"
        );
        assert_eq!(
            mask_passwords("postgresql://bob:p@ss:w0rd@h/db?sslmode=disable"),
            "postgresql://bob:***@h/db?sslmode=disable"
        );
        assert_eq!(
            mask_passwords("host=h user=u password=hunter2 dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
        assert_eq!(
            mask_passwords("host=h PASSWORD='it''s secret' dbname=d"),
            "host=h PASSWORD=*** dbname=d"
        );
        assert_eq!(
            mask_passwords("postgres://h/db?user=u&password=x1&sslmode=prefer"),
            "postgres://h/db?user=u&password=***&sslmode=prefer"
        );
        assert_eq!(mask_passwords("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(mask_passwords("no url here"), "no url here");
    }
}
