//! One file per command, each its whole flow in the order the README tells it. What several
//! commands share lives here: loading a profile, confirmation, the lock around the work,
//! phases, and printing results.

pub mod completions;
pub mod fingerprint;
pub mod init;
pub mod lock_status;
pub mod migrate;
pub mod profiles;
pub mod protect;
pub mod reset;
pub mod seed;
pub mod status;
pub mod wait;

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use postgres::Client;

use crate::cli::{IfLocked, ProfileArgs};
use crate::config::Config;
use crate::connection::{Database, describe_sql_error};
use crate::error::{Error, Result};
use crate::load::seed_code::SeedCode;
use crate::lock::{Acquired, AdvisoryLock};
use crate::plan::{Plan, SeedPlan};
use crate::progress::Reporter;
use crate::record::meta;
use crate::spec::profile::{self, Profile};
use crate::spec::{self, Dataset, Spec};
use crate::unit::Unit;

fn read_error(e: postgres::Error) -> Error {
    let message = format!(
        "reading the database failed: {}",
        describe_sql_error(&e, None)
    );
    // The server answered: a role that may not read is configuration, not an unreachable server.
    if crate::connection::explain_privilege(&e).is_some() {
        return Error::Usage(message);
    }
    // Nor is a statement it answered with an error (a statement timeout, a lock timeout): only
    // a lost connection or a server going away is.
    let gone = e.as_db_error().is_none_or(|db| {
        let code = db.code().code();
        code.starts_with("08") || code.starts_with("57P")
    });
    if gone {
        Error::Unreachable(message)
    } else {
        Error::Work(message)
    }
}

fn meta_error(e: postgres::Error) -> Error {
    Error::Work(format!(
        "updating dbtool.meta failed: {}",
        describe_sql_error(&e, None)
    ))
}

fn print_result<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) {
    let mut stdout = std::io::stdout().lock();
    let _ = if json {
        writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(value).expect("results serialize")
        )
    } else {
        write!(stdout, "{}", text())
    };
}

/// `--dry-run`: what the command would do, on stdout, for the configured database and schema.
fn print_plan(config: &Config, plan: Plan) {
    let plan = Plan {
        database: config.target().to_string(),
        schema: config.schema.clone(),
        ..plan
    };
    print!("{}", plan.render());
}

/// A profile and the spec it seeds, loaded and validated before any connection opens.
struct Seeding {
    profile: Profile,
    spec: Spec,
    seed: u64,
    /// The inference version, when the spec was inferred from the schema (no seeds/seed.toml).
    inferred: Option<u32>,
}

impl Seeding {
    fn load(config: &Config, args: &ProfileArgs) -> Result<Self> {
        let name = args
            .profile
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty());
        let Some(name) = name else {
            let known = profile::names(&config.paths.profiles)
                .map(|n| n.join(", "))
                .unwrap_or_default();
            return Err(Error::usage(format!(
                "no profile given: pass --profile NAME or set SEED_PROFILE (profiles: {known})"
            )));
        };
        let profile = Profile::load(&config.paths.profiles, name)?;
        let spec = Spec::load(&config.paths.seeds)?;
        let seed = args.seed.unwrap_or(profile.seed);
        Ok(Seeding {
            profile,
            spec,
            seed,
            inferred: None,
        })
    }

    fn dataset(&self) -> Result<Dataset<'_>> {
        crate::load::fit::check_counts(&self.spec, &self.profile)?;
        Dataset::new(&self.spec, &self.profile, self.seed)
    }

    /// Changes when the spec, its files, the profile, the SQL seed files or the seed command
    /// change.
    fn digest(&self, code: &SeedCode) -> Result<String> {
        let mut files = self.spec.files.clone();
        files.extend(&self.profile.files);
        files.extend(&code.sql.read);
        let digest = files.digest();
        Ok(match &code.command {
            None => format!("{digest:016x}"),
            Some(c) => format!(
                "{:016x}",
                crate::config::fnv1a64(format!("{digest:016x} {}", c.command).as_bytes())
            ),
        })
    }

    /// The spec against the tables the migrations created, names and types (inside the unit's
    /// transaction, so a mismatch changes nothing).
    /// For `--dry-run`: what the spec leaves to the database, as the schema is now (nothing
    /// before the first migration, or where the spec does not fit the schema yet).
    fn notes_now(&self, db: &Database, schema: &str) -> Vec<String> {
        let Ok(mut client) = db.work() else {
            return Vec::new();
        };
        let Ok(columns) = crate::migrations::schema_columns(&mut *client, schema) else {
            return Vec::new();
        };
        let Ok(facts) = crate::load::catalog::schema_facts(&mut client, schema) else {
            return Vec::new();
        };
        match spec::check_against_schema(&self.spec, schema, &columns, &facts) {
            Ok(notes) => notes.into_iter().map(|n| n.message().to_string()).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    /// Warns about what the spec leaves to the database: columns a trigger fills, values the
    /// database invents on every reset, tables left out. Returns the tables that hold rows now.
    fn check_against(
        &self,
        client: &mut Client,
        schema: &str,
        plan: &SeedPlan,
        reporter: &Reporter,
    ) -> Result<Vec<String>> {
        let columns = crate::migrations::schema_columns(client, schema).map_err(read_error)?;
        let facts = crate::load::catalog::schema_facts(client, schema).map_err(read_error)?;
        for note in spec::check_against_schema(&self.spec, schema, &columns, &facts)? {
            report_note(reporter, &note);
        }
        crate::load::fit::check_types(&self.spec, plan, &columns)?;
        Ok(facts
            .tables
            .into_iter()
            .filter_map(|(table, rows)| rows.then_some(table))
            .collect())
    }
}

fn report_note(reporter: &Reporter, note: &spec::SchemaNote) {
    match note {
        spec::SchemaNote::FilledByTrigger(m) => {
            reporter.info("filled-by-trigger", m.clone(), serde_json::json!({}))
        }
        spec::SchemaNote::Volatile(m) => {
            reporter.warn("not-deterministic", m.clone(), serde_json::json!({}))
        }
        spec::SchemaNote::LeftOut(m) => {
            reporter.warn("tables-left-out", m.clone(), serde_json::json!({}))
        }
    }
}

/// reset and seed change data: a person confirms on a terminal; elsewhere `--yes` is required.
fn confirm(config: &Config, yes: bool, action: &str, profile: Option<&str>) -> Result<()> {
    if yes {
        return Ok(());
    }
    let target = config.target();
    let what = format!(
        "{action} database {} on {}:{} (schema {}{})",
        target.database(),
        target.host(),
        target.port(),
        config.schema,
        profile.map_or_else(String::new, |p| format!(", profile {p}"))
    );
    if !std::io::stdin().is_terminal() {
        return Err(Error::Refused(format!(
            "refusing to {what} without confirmation: there is no terminal to ask on; pass --yes"
        )));
    }
    eprint!("{what}? Its data will be replaced. [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    match answer.trim().to_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Error::Refused("not confirmed; nothing was changed".into())),
    }
}

/// Connects; a database that does not exist yet is created when `--create-database` asks for it
/// or a person says so on a terminal. Elsewhere its absence is exit 5, naming the flag.
fn connect_or_create(
    config: &Config,
    stop: &crate::connection::stop::Stop,
    reporter: &Reporter,
    early: crate::connection::Early,
    create: bool,
) -> Result<Database> {
    match Database::connect_early(config, stop, reporter, early) {
        Err(Error::NoDatabase(why)) => {
            let target = config.target();
            let wanted = create
                || (std::io::stdin().is_terminal()
                    && ask(&format!(
                        "database {} does not exist on {}:{}; create it? [y/N] ",
                        target.database(),
                        target.host(),
                        target.port()
                    )));
            if !wanted {
                return Err(Error::NoDatabase(why));
            }
            crate::connection::create_database(config, reporter)?;
            Database::connect(config, stop, reporter)
        }
        other => other,
    }
}

fn ask(question: &str) -> bool {
    matches!(answer(question).to_lowercase().as_str(), "y" | "yes")
}

/// Asks on stderr, reads one line from the terminal.
fn answer(question: &str) -> String {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    answer.trim().to_string()
}

/// §4, first reset: the schema's objects, with the rows of its tables, when it holds objects
/// and no dbtool reset of it is on record; `None` when a reset is recorded or nothing is there.
fn unrecorded_objects(
    client: &mut Client,
    schema: &str,
) -> Result<Option<Vec<crate::drop::Object>>> {
    if meta::reset_recorded(client, schema).map_err(read_error)? {
        return Ok(None);
    }
    let mut objects = crate::drop::inventory(client, schema).map_err(read_error)?;
    if objects.is_empty() {
        return Ok(None);
    }
    crate::drop::count_rows(client, &mut objects).map_err(read_error)?;
    Ok(Some(objects))
}

/// The refusal of a first reset: one line naming the objects, tables holding data first.
fn first_reset_refused(config: &Config, objects: &[crate::drop::Object], why: &str) -> Error {
    const NAMED: usize = 12;
    let target = config.target();
    let mut shown: Vec<&crate::drop::Object> = objects.iter().collect();
    shown.sort_by_key(|o| std::cmp::Reverse(o.rows.unwrap_or(0) > 0));
    let mut named: Vec<String> = shown.iter().take(NAMED).map(|o| o.describe()).collect();
    if objects.len() > NAMED {
        named.push(format!(
            "and {} more (`dbtool reset --dry-run` lists them all)",
            objects.len() - NAMED
        ));
    }
    Error::Refused(format!(
        "refusing the first reset of database {} on {}:{} (schema {}): no dbtool reset is \
         recorded for it, and it holds {} object(s) that a reset would drop: {}. {why}; nothing \
         was changed. If these may go, run the reset again with --adopt {} (and --yes); later \
         resets need only --yes",
        target.database(),
        target.host(),
        target.port(),
        config.schema,
        objects.len(),
        named.join(", "),
        target.database(),
    ))
}

/// Takes the lock, checks it means something, runs `work`, and releases the lock on the same
/// connection whatever happened. `Ok(None)`: the lock was busy and `--if-locked skip` was set.
fn locked<T>(
    config: &Config,
    db: &Database,
    reporter: &Reporter,
    work: impl FnOnce() -> Result<T>,
) -> Result<Option<T>> {
    reporter.info(
        "target",
        format!("{}: {}", config.command, db.describe_target(&config.schema)),
        serde_json::json!({
            "host": db.target.host(),
            "port": db.target.port(),
            "database": db.target.database(),
            "schema": config.schema,
        }),
    );
    let lock =
        match AdvisoryLock::acquire(db, config.lock_key.value, config.lock_timeout, reporter)? {
            Acquired::Held(lock) => lock,
            Acquired::Busy { holder, waited } => {
                let busy = Error::LockBusy {
                    holder: holder.clone().map(Box::new),
                    waited,
                };
                if config.if_locked == IfLocked::Skip {
                    reporter.lock_busy(
                        holder.as_ref(),
                        &format!("{busy}; skipping, as --if-locked skip asks"),
                    );
                    return Ok(None);
                }
                return Err(busy);
            }
        };
    db.stop.arm(true);
    let result = (|| {
        lock.verify_from(&mut *db.work()?)?;
        work()
    })()
    .map_err(|e| db.stop.explain(e));
    let released = lock.release(reporter);
    db.stop.arm(false);
    match (result, released) {
        (Ok(value), Ok(())) => Ok(Some(value)),
        (Ok(_), Err(lost)) => Err(lost),
        (Err(e), _) => Err(e),
    }
}

fn phase<T>(reporter: &Reporter, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    reporter.phase_started(name);
    let started = Instant::now();
    let value = f().map_err(|e| e.in_step(name))?;
    reporter.phase_finished(name, started.elapsed(), "");
    Ok(value)
}

/// The migrate phase inside `unit`: every pending migration, the session's settings restored
/// after each file.
/// Drops the application's objects and the migration histories the reset rebuilds (dbtool's
/// and the team's tool's), so that the migrations that follow run from the first.
fn drop_phase(
    db: &crate::connection::Database,
    unit: &mut Unit,
    migrations: &crate::migrations::Migrations,
    config: &Config,
    reporter: &Reporter,
) -> Result<()> {
    phase(reporter, "drop", || {
        crate::drop::drop_all(db, unit.client(), &config.schema, config.ddl_lock_timeout)?;
        crate::migrations::forget_history(unit.client(), migrations, &config.schema)
    })
}

fn migrate_phase(
    unit: &mut Unit,
    migrations: &crate::migrations::Migrations,
    config: &Config,
    reporter: &Reporter,
) -> Result<Vec<String>> {
    phase(reporter, "migrate", || {
        crate::migrations::run(
            unit,
            migrations,
            &config.schema,
            &crate::connection::session_settings(config),
        )
    })
}

fn refuse_if_protected(client: &mut Client, action: &str) -> Result<()> {
    if let Some(p) = meta::protection(client).map_err(read_error)? {
        return Err(Error::Refused(format!(
            "the database is protected (since {} by {}): {action} refused, nothing was changed; \
             run `dbtool unprotect` first if you really mean it",
            p.since, p.by
        )));
    }
    Ok(())
}

/// Records, committed before the data is replaced, that a reset which gave up atomicity is
/// under way; `set_aside` is what a `--parallel` load set aside.
fn mark_unfinished(
    client: &mut Client,
    config: &Config,
    started_at: SystemTime,
    set_aside: Option<crate::load::constraints::Deferred>,
) -> Result<()> {
    let unfinished = meta::Unfinished {
        command: config.command.to_string(),
        by: config.application_name(),
        started_at: rfc3339(started_at),
        set_aside,
    };
    meta::mark_unfinished(client, &config.schema, &unfinished).map_err(meta_error)
}

/// A `--parallel` reset killed during its load left keys and indexes set aside: put them back
/// (emptying the seeded tables) before anything else, inside the caller's transaction.
fn repair_if_needed(client: &mut Client, config: &Config, reporter: &Reporter) -> Result<()> {
    let Some(mut unfinished) = meta::unfinished(client, &config.schema).map_err(read_error)? else {
        return Ok(());
    };
    let Some(set_aside) = unfinished.set_aside.take() else {
        return Ok(());
    };
    reporter.warn(
        "repair",
        format!(
            "an unfinished {} ({}, started {}) left keys and indexes set aside: emptying the \
             seeded tables and putting them back",
            unfinished.command, unfinished.by, unfinished.started_at
        ),
        serde_json::json!({}),
    );
    crate::load::constraints::repair(client, &set_aside)?;
    meta::mark_unfinished(client, &config.schema, &unfinished).map_err(meta_error)
}

/// Runs a reset's or seed's work under the lock. When the user gave atomicity up (`not_atomic`
/// says how), says so before anything starts; otherwise, when the work fails, says that its
/// transaction was rolled back (the error itself follows as the last line), but only where that
/// was verified (see `Ledger`): else it says that part may be committed and marks the command
/// unfinished.
fn all_or_nothing<T>(
    db: &Database,
    config: &Config,
    started_at: SystemTime,
    reporter: &Reporter,
    command: &str,
    not_atomic: Option<&str>,
    work: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if let Some(why) = not_atomic {
        reporter.warn(
            "not-atomic",
            format!(
                "this {command} is not all or nothing: {why}. A failure leaves every key and \
                 index in place but the data partial, and the {command} marked unfinished"
            ),
            serde_json::json!({}),
        );
    }
    let result = work();
    if result.is_err() && db.ledger.any_began() {
        if db.ledger.all_rolled_back() && !matches!(result, Err(Error::TransactionEnded(_))) {
            reporter.warn(
                "rolled-back",
                "the transaction was rolled back: the database, dbtool.meta included, is as it was",
                serde_json::json!({}),
            );
        } else if not_atomic.is_none() {
            // Best effort: the connection that failed may be gone, so a new one records it.
            let marked = db
                .work()
                .and_then(|mut client| mark_unfinished(&mut client, config, started_at, None));
            reporter.warn(
                "not-rolled-back",
                format!(
                    "the rollback of this {command} could not be verified (the transaction \
                     dbtool began may have ended before it): part of it may be committed (what \
                     ran before the failure), so the database may not be as it was; {}",
                    match marked {
                        Ok(()) => format!("the {command} is marked unfinished"),
                        Err(e) => format!("marking the {command} unfinished failed too: {e}"),
                    }
                ),
                serde_json::json!({}),
            );
        }
    }
    result
}

/// After the generated rows: the SQL seed files inside the unit, then the seed command. The
/// command runs on connections of its own, so the unit commits first (with the unfinished mark:
/// whoever sees the data sees the mark) and a new one opens after it.
fn run_seed_code(
    mut unit: Unit,
    db: &Database,
    config: &Config,
    seeding: &Seeding,
    code: &SeedCode,
    started_at: SystemTime,
    reporter: &Reporter,
) -> Result<Unit> {
    if !code.sql.is_empty() {
        phase(reporter, "seed-sql", || {
            code.sql
                .run(unit.client(), &crate::connection::session_settings(config))
        })?;
    }
    let Some(command) = &code.command else {
        return Ok(unit);
    };
    mark_unfinished(unit.client(), config, started_at, None)?;
    unit.commit()?;
    phase(reporter, "seed-command", || {
        command.run(config, db, &seeding.profile.name, seeding.seed, reporter)
    })?;
    Unit::begin(db, config.ddl_lock_timeout)
}

/// What a finished reset or seed records in dbtool.meta.
struct Finished<'a> {
    /// `reset` or `seed`
    command: &'static str,
    seeding: &'a Seeding,
    started: Instant,
    started_at: SystemTime,
    migrations_digest: String,
    spec_digest: String,
}

impl Finished<'_> {
    /// Records it (and clears the unfinished mark) inside the unit, just before its commit.
    fn record(&self, client: &mut Client, config: &Config, fingerprint: &str) -> Result<()> {
        let record = meta::LastReset {
            command: self.command.into(),
            schema: config.schema.clone(),
            profile: self.seeding.profile.name.clone(),
            seed: self.seeding.seed,
            fingerprint: fingerprint.to_string(),
            dbtool_version: env!("CARGO_PKG_VERSION").to_string(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            started_at: rfc3339(self.started_at),
            finished_at: rfc3339(SystemTime::now()),
            duration_ms: self.started.elapsed().as_millis() as u64,
            migrations_digest: self.migrations_digest.clone(),
            spec_digest: self.spec_digest.clone(),
            finished_unix: unix_now(),
            inference_version: self.seeding.inferred,
        };
        meta::record_reset(client, &record).map_err(meta_error)
    }
}

/// Every connection but the lock's does work.
fn workers(config: &Config) -> usize {
    (config.pool_size as usize).saturating_sub(1).max(1)
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
