//! dbtool: reset, migrate and seed a PostgreSQL database as one unit, serialized across every
//! process and host by a session advisory lock. `run` is the only place that orders the stages:
//! cli -> config -> plan -> lock -> drop / migrate / seed -> report.

pub mod calendar;
pub mod cli;
pub mod config;
pub mod constraints;
pub mod copy;
pub mod db;
pub mod digest;
pub mod drop;
pub mod error;
pub mod fingerprint;
pub mod lock;
pub mod meta;
pub mod migrate;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod seed;
pub mod spec;
pub mod status;
pub mod stop;

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::CommandFactory;
use serde_json::json;

use cli::{Cli, Command, IfLocked, LockCommand, ProfileArgs};
use config::{Config, Output};
use db::{Database, describe_sql_error};
use error::{Error, Result};
use lock::{Acquired, AdvisoryLock};
use migrate::Migrations;
use plan::{Plan, SeedPlan};
use profile::Profile;
use progress::Reporter;
use spec::{Dataset, Spec};
use stop::Stop;

/// Runs a parsed command line and returns the process exit code.
pub fn execute(cli: Cli) -> i32 {
    let (output, verbosity) = config::output_of(&cli.global);
    let reporter = Reporter::new(output, verbosity);
    let stop = Stop::default();
    match run(&cli, &stop, &reporter) {
        Ok(()) => 0,
        Err(e) => {
            if let Error::LockLost(why) = &e {
                reporter.lock_lost(why);
            }
            reporter.error(&e.to_string(), e.code());
            e.code()
        }
    }
}

fn run(cli: &Cli, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let config = Config::from_cli(cli)?;
    stop.install_signal_handlers(config.output == Output::Json)?;
    if let Some(target) = &config.target {
        reporter.debug(format!(
            "{} as {:?}: pool {} (1 lock + {} work), lock key {} ({}), schema {}",
            target,
            config.application_name(),
            config.pool_size,
            workers(&config),
            config.lock_key.value,
            config.lock_key.text,
            config.schema
        ));
    }
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "dbtool",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Profiles(out) => profiles(&config, out.json),
        Command::Wait => {
            let target = config.target();
            db::wait_until_ready(
                &config.connection_config(),
                target,
                config.wait_for_db,
                reporter,
            )?;
            println!("{target} accepts connections");
            Ok(())
        }
        Command::Status(out) => {
            let db = Database::connect(&config, stop, reporter)?;
            let migrations = Migrations::load(&config.paths.migrations).ok();
            let status = status::gather(&mut *db.work()?, &config, migrations.as_ref())
                .map_err(read_error)?;
            print_result(out.json, &status, || status.render());
            Ok(())
        }
        Command::Lock(LockCommand::Status(out)) => {
            let db = Database::connect(&config, stop, reporter)?;
            let status = status::lock_status(&mut *db.work()?, &config).map_err(read_error)?;
            print_result(out.json, &status, || status.render());
            Ok(())
        }
        Command::Fingerprint(out) => {
            let db = Database::connect(&config, stop, reporter)?;
            let fp = fingerprint::compute(&db, &config.schema, workers(&config))?;
            print_result(out.json, &fp, || fp.render());
            Ok(())
        }
        Command::Migrate(args) => migrate_command(&config, args.dry_run, stop, reporter),
        Command::Reset(args) => reset(&config, args, stop, reporter),
        Command::Seed(args) => seed_command(&config, args, stop, reporter),
        Command::Protect => protect(&config, true, stop, reporter),
        Command::Unprotect => protect(&config, false, stop, reporter),
    }
}

fn read_error(e: postgres::Error) -> Error {
    Error::Unreachable(format!(
        "reading the database failed: {}",
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

/// `--dry-run`: what the command would do, on stdout.
fn print_plan(
    config: &Config,
    drop: Option<Vec<drop::Object>>,
    migrations: Vec<String>,
    seed: Option<SeedPlan>,
) {
    let plan = Plan {
        database: config.target().to_string(),
        schema: config.schema.clone(),
        drop,
        migrations,
        seed,
    };
    print!("{}", plan.render());
}

/// A profile and the spec it seeds, loaded and validated before any connection opens.
struct Seeding {
    profile: Profile,
    spec: Spec,
    seed: u64,
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
        })
    }

    fn dataset(&self) -> Result<Dataset<'_>> {
        Dataset::new(&self.spec, &self.profile, self.seed)
    }

    /// Changes when the spec, its files or the profile change.
    fn digest(&self) -> Result<u64> {
        let mut files = self.spec.files.clone();
        files.extend(self.profile.files.iter().cloned());
        spec::files_digest(&files)
    }
}

fn profiles(config: &Config, json: bool) -> Result<()> {
    let spec = Spec::load(&config.paths.seeds)?;
    let mut listed = Vec::new();
    for profile in Profile::load_all(&config.paths.profiles)? {
        let plan = SeedPlan::new(&Dataset::new(&spec, &profile, profile.seed)?, &profile.name);
        listed.push((profile, plan));
    }
    let as_json: Vec<_> = listed
        .iter()
        .map(|(profile, plan)| {
            json!({
                "name": profile.name,
                "description": profile.description,
                "seed": profile.seed,
                "total_rows": plan.total_rows(),
                "tables": plan.tables.iter().map(|t| (t.table.clone(), json!(t.rows))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    print_result(json, &as_json, || {
        let mut out = String::new();
        for (profile, plan) in &listed {
            out.push_str(&format!(
                "{} (seed {}, {} rows): {}\n",
                profile.name,
                profile.seed,
                plan.total_rows(),
                profile.description
            ));
            for t in &plan.tables {
                out.push_str(&format!("  {:<24} {:>10}\n", t.table, t.rows));
            }
        }
        out
    });
    Ok(())
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

/// Takes the lock, checks it means something, runs `work`, and releases the lock on the same
/// connection whatever happened. `Ok(None)`: the lock was busy and `--if-locked skip` was set.
fn locked<T>(
    config: &Config,
    db: &Database,
    reporter: &Reporter,
    work: impl FnOnce() -> Result<T>,
) -> Result<Option<T>> {
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
    let value = f()?;
    reporter.phase_finished(name, started.elapsed(), "");
    Ok(value)
}

fn meta_error(e: postgres::Error) -> Error {
    Error::Work(format!(
        "updating dbtool.meta failed: {}",
        describe_sql_error(&e, None)
    ))
}

/// Records, before the data is replaced, that a replacement is under way.
fn mark_unfinished(
    client: &mut postgres::Client,
    config: &Config,
    started_at: SystemTime,
) -> Result<()> {
    let unfinished = meta::Unfinished {
        command: config.command.to_string(),
        by: config.application_name(),
        started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
    };
    meta::mark_unfinished(client, &config.schema, &unfinished).map_err(meta_error)
}

fn refuse_if_protected(client: &mut postgres::Client, action: &str) -> Result<()> {
    if let Some(p) = meta::protection(client).map_err(read_error)? {
        return Err(Error::Refused(format!(
            "the database is protected (since {} by {}): {action} refused, nothing was changed; \
             run `dbtool unprotect` first if you really mean it",
            p.since, p.by
        )));
    }
    Ok(())
}

/// How a reset that held the lock ended.
enum ResetOutcome {
    /// `--skip-if-reset-within`: the last reset is recent and the same.
    Skipped,
    /// `--skip-seed`: dropped and migrated.
    Migrated,
    Seeded {
        rows: u64,
        fingerprint: String,
    },
}

fn reset(config: &Config, args: &cli::ResetArgs, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let migrations = Migrations::load(&config.paths.migrations)?;
    let seeding = if args.skip_seed {
        None
    } else {
        Some(Seeding::load(config, &args.profile)?)
    };
    let data = seeding.as_ref().map(Seeding::dataset).transpose()?;
    let seed_plan = seeding
        .as_ref()
        .zip(data.as_ref())
        .map(|(s, d)| SeedPlan::new(d, &s.profile.name));
    let profile_name = seeding.as_ref().map(|s| s.profile.name.as_str());
    if !args.dry_run.dry_run {
        confirm(config, args.confirm.yes, "reset", profile_name)?;
    }
    let db = Database::connect(config, stop, reporter)?;
    if args.dry_run.dry_run {
        let objects = drop::inventory(&mut *db.work()?, &config.schema).map_err(read_error)?;
        print_plan(config, Some(objects), migrations.names(), seed_plan);
        return Ok(());
    }
    let digests = match &seeding {
        Some(s) => Some((
            format!("{:016x}", spec::files_digest(&migrations.files)?),
            format!("{:016x}", s.digest()?),
        )),
        None => None,
    };
    let outcome = locked(config, &db, reporter, || {
        let mut client = db.work()?;
        refuse_if_protected(&mut client, "reset")?;
        if let (Some(within), Some(s), Some((m, d))) =
            (args.skip_if_reset_within, &seeding, &digests)
            && meta::unfinished(&mut client, &config.schema)
                .map_err(read_error)?
                .is_none()
            && let Some(last) = meta::last_reset(&mut client, &config.schema).map_err(read_error)?
        {
            let age = unix_now().saturating_sub(last.finished_unix);
            if last.profile == s.profile.name
                && last.seed == s.seed
                && &last.migrations_digest == m
                && &last.spec_digest == d
                && Duration::from_secs(age) <= within
            {
                reporter.info(
                    "skipped",
                    format!(
                        "skipped: the last reset (profile {}, seed {}) finished {age}s ago, within --skip-if-reset-within",
                        last.profile, last.seed
                    ),
                    json!({ "age_s": age }),
                );
                return Ok(ResetOutcome::Skipped);
            }
        }
        phase(reporter, "preflight", || {
            let columns = migrate::preflight(&mut client, &migrations)?;
            if let Some(s) = &seeding {
                spec::check_against_schema(&s.spec, &config.schema, &columns)?;
            }
            Ok(())
        })?;
        mark_unfinished(&mut client, config, started_at)?;
        phase(reporter, "drop", || {
            drop::drop_all(&db, &mut client, &config.schema, config.ddl_lock_timeout)
        })?;
        phase(reporter, "migrate", || {
            migrate::run(&mut client, &migrations, &config.schema)
        })?;
        let (Some(data), Some(plan), Some(s), Some((m, d))) =
            (&data, &seed_plan, &seeding, &digests)
        else {
            meta::clear_unfinished(&mut client, &config.schema).map_err(meta_error)?;
            return Ok(ResetOutcome::Migrated);
        };
        drop(client);
        let sent = phase(reporter, "seed", || {
            seed::seed(&db, data, plan, &config.schema, workers(config), reporter)
        })?;
        let fp = phase(reporter, "record", || {
            let fp = fingerprint::compute_knowing(&db, &config.schema, workers(config), &sent)?;
            let record = meta::LastReset {
                schema: config.schema.clone(),
                profile: s.profile.name.clone(),
                seed: s.seed,
                fingerprint: fp.overall.clone(),
                dbtool_version: env!("CARGO_PKG_VERSION").to_string(),
                host: gethostname::gethostname().to_string_lossy().into_owned(),
                started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
                finished_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                duration_ms: started.elapsed().as_millis() as u64,
                migrations_digest: m.clone(),
                spec_digest: d.clone(),
                finished_unix: unix_now(),
            };
            meta::record_reset(&mut *db.work()?, &record).map_err(meta_error)?;
            Ok(fp)
        })?;
        Ok(ResetOutcome::Seeded {
            rows: plan.total_rows(),
            fingerprint: fp.overall,
        })
    })?;
    match outcome {
        None | Some(ResetOutcome::Skipped) => {}
        Some(ResetOutcome::Migrated) => reporter.done(
            "reset done (--skip-seed: nothing seeded)",
            started.elapsed(),
            json!({}),
        ),
        Some(ResetOutcome::Seeded { rows, fingerprint }) => reporter.done(
            &format!("reset done: {rows} rows seeded, fingerprint {fingerprint}"),
            started.elapsed(),
            json!({ "rows": rows, "fingerprint": fingerprint }),
        ),
    }
    Ok(())
}

fn seed_command(
    config: &Config,
    args: &cli::SeedArgs,
    stop: &Stop,
    reporter: &Reporter,
) -> Result<()> {
    let started = Instant::now();
    let seeding = Seeding::load(config, &args.profile)?;
    let data = seeding.dataset()?;
    let plan = SeedPlan::new(&data, &seeding.profile.name);
    if !args.dry_run.dry_run {
        confirm(
            config,
            args.confirm.yes,
            "seed",
            Some(&seeding.profile.name),
        )?;
    }
    let db = Database::connect(config, stop, reporter)?;
    if args.dry_run.dry_run {
        print_plan(config, None, Vec::new(), Some(plan));
        return Ok(());
    }
    let done = locked(config, &db, reporter, || {
        let mut client = db.work()?;
        refuse_if_protected(&mut client, "seed")?;
        let columns = migrate::schema_columns(&mut *client, &config.schema).map_err(read_error)?;
        spec::check_against_schema(&seeding.spec, &config.schema, &columns)?;
        phase(reporter, "truncate", || {
            truncate(&mut client, config, &plan)
        })?;
        drop(client);
        phase(reporter, "seed", || {
            seed::seed(&db, &data, &plan, &config.schema, workers(config), reporter)
        })?;
        // Seeded data is not a reset's: leave no last reset that no longer describes it.
        meta::clear_unfinished(&mut *db.work()?, &config.schema).map_err(meta_error)
    })?;
    if done.is_some() {
        reporter.done(
            &format!("seed done: {} rows", plan.total_rows()),
            started.elapsed(),
            json!({ "rows": plan.total_rows() }),
        );
    }
    Ok(())
}

fn truncate(client: &mut postgres::Client, config: &Config, plan: &SeedPlan) -> Result<()> {
    let tables: Vec<String> = plan
        .tables
        .iter()
        .map(|t| {
            format!(
                "{}.{}",
                db::quote_ident(&config.schema),
                db::quote_ident(&t.table)
            )
        })
        .collect();
    let fail = |e: postgres::Error| {
        Error::Work(format!("truncate failed: {}", describe_sql_error(&e, None)))
    };
    let mut tx = client.transaction().map_err(fail)?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout TO {}; TRUNCATE {} RESTART IDENTITY CASCADE",
        config.ddl_lock_timeout.as_millis().max(1),
        tables.join(", ")
    ))
    .map_err(fail)?;
    tx.commit().map_err(fail)
}

fn migrate_command(config: &Config, dry_run: bool, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let started = Instant::now();
    let migrations = Migrations::load(&config.paths.migrations)?;
    let db = Database::connect(config, stop, reporter)?;
    if dry_run {
        let applied = migrate::applied(&mut *db.work()?, &config.schema).map_err(read_error)?;
        let pending = migrate::compare(&migrations, &applied).pending;
        print_plan(config, None, pending, None);
        return Ok(());
    }
    let applied = locked(config, &db, reporter, || {
        phase(reporter, "migrate", || {
            migrate::run(&mut *db.work()?, &migrations, &config.schema)
        })
    })?;
    if let Some(applied) = applied {
        reporter.done(
            &format!("migrate done: {} applied", applied.len()),
            started.elapsed(),
            json!({ "applied": applied }),
        );
    }
    Ok(())
}

fn protect(config: &Config, on: bool, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let db = Database::connect(config, stop, reporter)?;
    let done = locked(config, &db, reporter, || {
        let mut client = db.work()?;
        let protection = on.then(|| meta::Protection {
            since: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            by: config.application_name(),
        });
        meta::set_protection(&mut client, protection.as_ref()).map_err(|e| {
            Error::Work(format!(
                "updating dbtool.meta failed: {}",
                describe_sql_error(&e, None)
            ))
        })
    })?;
    if done.is_some() {
        let state = if on { "protected" } else { "unprotected" };
        reporter.done(
            &format!("{} {state}", config.target()),
            Duration::ZERO,
            json!({ "protected": on }),
        );
    }
    Ok(())
}

/// Every connection but the lock's does work.
fn workers(config: &Config) -> usize {
    (config.pool_size as usize).saturating_sub(1).max(1)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
