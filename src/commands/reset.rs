//! `dbtool reset`: under the lock, one transaction drops the application's objects, runs the
//! migrations, loads the seed data, rebuilds keys and indexes, moves the sequences, records the
//! reset in dbtool.meta and commits. A failure anywhere before the commit leaves the database
//! exactly as it was.

use std::io::IsTerminal;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use super::{
    Finished, Seeding, all_or_nothing, answer, confirm, connect_or_create, drop_phase,
    first_reset_refused, locked, mark_unfinished, meta_error, migrate_phase, phase, print_plan,
    read_error, refuse_if_protected, rfc3339, run_seed_code, unix_now, unrecorded_objects, workers,
};
use crate::cli::ResetArgs;
use crate::config::Config;
use crate::connection::Early;
use crate::connection::stop::Stop;
use crate::drop::{self, privileges};
use crate::error::{Error, Result};
use crate::load as seed;
use crate::load::seed_code::{SeedCode, SeedCommand};
use crate::migrations::Migrations;
use crate::plan::{Plan, SeedPlan};
use crate::progress::Reporter;
use crate::record::{fingerprint, meta, warm};
use crate::spec::Dataset;
use crate::unit::Unit;

/// How a reset that held the lock ended.
enum Outcome {
    /// `--skip-if-reset-within`: the last reset is recent and the same.
    Skipped,
    /// `--skip-seed`: dropped and migrated.
    Migrated,
    Seeded {
        rows: u64,
        fingerprint: String,
    },
}

/// What is loaded and validated before any connection opens.
struct Inputs<'a> {
    seeding: &'a Seeding,
    data: Dataset<'a>,
    plan: SeedPlan,
    code: SeedCode,
    finished: Finished<'a>,
}

pub fn run(config: &Config, args: &ResetArgs, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    // The connections open while the files are read.
    let early = Early::for_change(config, args.dry_run.dry_run, args.confirm.yes);
    let migrations = Migrations::load(&config.paths.migrations, config.paths.migrations_format)?;
    migrations.check_all(&config.schema)?;
    let parallel = parallel_workers(config, args)?;
    let seeding = if args.skip_seed {
        None
    } else {
        match super::init::seeding_without_spec(
            config,
            &args.profile,
            Some(&migrations),
            stop,
            reporter,
        )? {
            Some(inferred) => Some(inferred),
            None => Some(Seeding::load(config, &args.profile)?),
        }
    };
    let inputs = match &seeding {
        Some(seeding) => {
            let data = seeding.dataset()?;
            let plan = SeedPlan::new(&data, &seeding.profile.name);
            let code = SeedCode::load(
                &config.paths.seeds,
                &config.schema,
                args.seed_command
                    .as_deref()
                    .or(seeding.profile.seed_command.as_deref()),
            )?;
            let finished = Finished {
                command: "reset",
                seeding,
                started,
                started_at,
                migrations_digest: format!("{:016x}", migrations.files.digest()),
                spec_digest: seeding.digest(&code)?,
            };
            Some(Inputs {
                seeding,
                data,
                plan,
                code,
                finished,
            })
        }
        None => None,
    };
    if !args.dry_run.dry_run {
        confirm(
            config,
            args.confirm.yes,
            "reset",
            seeding.as_ref().map(|s| s.profile.name.as_str()),
        )?;
    }
    let create = args.create.create_database && !args.dry_run.dry_run;
    let db = connect_or_create(config, stop, reporter, early, create)?;
    let not_atomic = atomicity_given_up(
        &migrations,
        parallel,
        inputs.as_ref().and_then(|i| i.code.command.as_ref()),
    );
    let migrations_digest = format!("{:016x}", migrations.files.digest());
    let cold_because = cold_because(args, seeding.as_ref(), not_atomic.as_deref());
    let enum_labels = match &inputs {
        Some(_) => new_enum_labels_need_a_commit(&db, &migrations)?,
        None => None,
    };
    if args.dry_run.dry_run {
        let (objects, first_reset) = {
            let mut client = db.work()?;
            match unrecorded_objects(&mut client, &config.schema)? {
                Some(objects) => (objects, true),
                None => (
                    drop::inventory(&mut *client, &config.schema).map_err(read_error)?,
                    false,
                ),
            }
        };
        let mut notes = match &inputs {
            Some(i) if !objects.is_empty() => i.seeding.notes_now(&db, &config.schema),
            _ => Vec::new(),
        };
        let path = choose_path(
            &mut *db.work()?,
            config,
            &migrations,
            &migrations_digest,
            cold_because.clone(),
        )?;
        notes.push(match path {
            Ok(_) => "path: warm (the migration files and the schema's catalog are unchanged \
                      since the last cold reset: no drop, no migrations; their rows and \
                      sequence positions are restored)"
                .to_string(),
            Err(why) => format!("path: cold (drop and migrate): {why}"),
        });
        if let Some(why) = &enum_labels {
            notes.push(format!(
                "{why}: a cold reset commits the migrations before the seed"
            ));
        }
        print_plan(
            config,
            Plan {
                drop: Some(objects),
                first_reset: first_reset.then(|| config.target().database()),
                migrations_format: migrations.format_name().to_string(),
                migrations: migrations.names(),
                seed: inputs.map(|i| i.plan),
                notes,
                ..Plan::default()
            },
        );
        return Ok(());
    }
    let adopted = adopt(config, args, &mut *db.work()?).map_err(Error::before_any_change)?;
    let outcome = locked(config, &db, reporter, || {
        all_or_nothing(
            &db,
            config,
            started_at,
            reporter,
            "reset",
            not_atomic.as_deref(),
            || {
                let mut unit = Unit::begin(&db, config.ddl_lock_timeout)?;
                // Before dbtool.meta is read: a role without rights there hears what it lacks.
                privileges::check_reset(unit.client(), &config.schema)?;
                refuse_if_protected(unit.client(), "reset")?;
                // Asked before the lock; checked again under it, in case objects appeared since.
                if !adopted
                    && let Some(objects) = unrecorded_objects(unit.client(), &config.schema)?
                {
                    return Err(first_reset_refused(
                        config,
                        &objects,
                        "Objects appeared after the check before the lock",
                    ));
                }
                if let (Some(within), Some(inputs)) = (args.skip_if_reset_within, &inputs)
                    && recent_reset(unit.client(), config, inputs, within, reporter)?
                {
                    return Ok(Outcome::Skipped);
                }
                if not_atomic.is_some() {
                    // Committed with the first thing that commits (a -- no-transaction
                    // migration, the parallel load, the seed command); a failure before that
                    // rolls it back with the rest, and the database is as it was.
                    mark_unfinished(unit.client(), config, started_at, None)?;
                }
                let path = choose_path(
                    unit.client(),
                    config,
                    &migrations,
                    &migrations_digest,
                    cold_because.clone(),
                )?;
                let mut committed_midway = false;
                match path {
                    Ok(record) => {
                        reporter.info(
                            "path",
                            "warm path: the migration files and the schema's catalog are \
                             unchanged since the last cold reset; restoring what the migrations \
                             left",
                            json!({ "path": "warm" }),
                        );
                        phase(reporter, "restore", || {
                            drop::watching_locks(
                                &db,
                                unit.client(),
                                &config.schema,
                                config.ddl_lock_timeout,
                                "warm path's truncate",
                                |client| warm::empty_tables(client, &config.schema),
                            )?;
                            warm::restore(unit.client(), &config.schema, &record)
                        })?;
                    }
                    Err(why) => {
                        reporter.info(
                            "path",
                            format!("cold path (drop and migrate): {why}"),
                            json!({ "path": "cold", "why": why }),
                        );
                        warm::forget(unit.client(), &config.schema).map_err(meta_error)?;
                        let since = warm::transaction_id(unit.client())?;
                        drop_phase(&db, &mut unit, &migrations, config, reporter)?;
                        if let Err(error) = migrate_phase(&mut unit, &migrations, config, reporter)
                        {
                            if matches!(error, Error::TransactionEnded(_)) {
                                // The drop may be committed and the session is in autocommit:
                                // best effort, `status` says this reset did not finish.
                                let _ = mark_unfinished(unit.client(), config, started_at, None);
                            }
                            return Err(error);
                        }
                        if not_atomic.is_none() {
                            record_warm(
                                unit.client(),
                                config,
                                &migrations,
                                &migrations_digest,
                                since,
                                reporter,
                            )?;
                        }
                        if let Some(why) = &enum_labels {
                            reporter.warn(
                                "not-atomic",
                                format!(
                                    "{why}: the migrations commit before the seed, so this \
                                     reset is not all or nothing, and it is marked unfinished \
                                     until it completes (a warm reset, which runs no \
                                     migrations, is one transaction again)"
                                ),
                                json!({}),
                            );
                            if not_atomic.is_none() {
                                mark_unfinished(unit.client(), config, started_at, None)?;
                            }
                            unit.commit()?;
                            unit = Unit::begin(&db, config.ddl_lock_timeout)?;
                            committed_midway = true;
                        }
                    }
                }
                let owned = meta::Owned {
                    since: rfc3339(started_at),
                    by: config.application_name(),
                    adopted: adopted.then(|| config.target().database()),
                };
                meta::record_owned(unit.client(), &config.schema, &owned).map_err(meta_error)?;
                let Some(inputs) = &inputs else {
                    // The data is gone: no last reset describes it any more.
                    meta::forget_reset(unit.client(), &config.schema).map_err(meta_error)?;
                    unit.commit()?;
                    return Ok(Outcome::Migrated);
                };
                let holding_rows = inputs.seeding.check_against(
                    unit.client(),
                    &config.schema,
                    &inputs.plan,
                    reporter,
                )?;
                let sent = match parallel {
                    None => phase(reporter, "seed", || {
                        seed::load_atomic(
                            unit.client(),
                            &db.stop,
                            // The tables were created (cold) or truncated (warm) in this very
                            // transaction, unless a -- no-transaction migration or new enum
                            // labels committed in between.
                            migrations.outside_transaction().is_empty() && !committed_midway,
                            &inputs.data,
                            &inputs.plan,
                            &config.schema,
                            reporter,
                        )
                    })?,
                    Some(workers) => {
                        let deferred = seed::set_aside(
                            unit.client(),
                            &inputs.data,
                            &inputs.plan,
                            &config.schema,
                        )?;
                        mark_unfinished(unit.client(), config, started_at, Some(deferred.clone()))?;
                        unit.commit()?;
                        let sent = phase(reporter, "seed", || {
                            seed::load_parallel(
                                &db,
                                workers,
                                &deferred,
                                &inputs.data,
                                &inputs.plan,
                                &config.schema,
                                reporter,
                            )
                        })?;
                        unit = Unit::begin(&db, config.ddl_lock_timeout)?;
                        sent
                    }
                };
                let mut unit = run_seed_code(
                    unit,
                    &db,
                    config,
                    inputs.seeding,
                    &inputs.code,
                    started_at,
                    reporter,
                )?;
                // The digests of the rows as sent hold unless the table held rows already (the
                // migrations inserted them) or the seed code changed rows after.
                let mut known = sent;
                known.retain(|table, _| inputs.code.is_empty() && !holding_rows.contains(table));
                let fingerprint = phase(reporter, "fingerprint", || {
                    if parallel.is_some() || inputs.code.command.is_some() {
                        // Committed already: every work connection sees it.
                        fingerprint::compute_knowing(&db, &config.schema, workers(config), &known)
                    } else {
                        fingerprint::compute_in(unit.client(), &config.schema, &known)
                    }
                })?;
                phase(reporter, "record", || {
                    inputs
                        .finished
                        .record(unit.client(), config, &fingerprint.overall)
                })?;
                phase(reporter, "commit", || unit.commit())?;
                Ok(Outcome::Seeded {
                    rows: inputs.plan.total_rows(),
                    fingerprint: fingerprint.overall,
                })
            },
        )
    })
    .map_err(|e| super::init::explain_failure(e, seeding.as_ref()))?;
    match outcome {
        None | Some(Outcome::Skipped) => {}
        Some(Outcome::Migrated) => reporter.done(
            "reset done (--skip-seed: nothing seeded)",
            started.elapsed(),
            json!({}),
        ),
        Some(Outcome::Seeded { rows, fingerprint }) => reporter.done(
            &format!("reset done: {rows} rows seeded, fingerprint {fingerprint}"),
            started.elapsed(),
            json!({ "rows": rows, "fingerprint": fingerprint }),
        ),
    }
    Ok(())
}

/// §4, first reset: whether the drop of objects that no dbtool reset made is confirmed, by
/// `--adopt DATABASE` or by a person typing the database's name on a terminal. `false` when
/// there is nothing of the kind (then the check under the lock must find nothing either).
fn adopt(config: &Config, args: &ResetArgs, client: &mut postgres::Client) -> Result<bool> {
    let database = config.target().database();
    let Some(objects) = unrecorded_objects(client, &config.schema)? else {
        return Ok(false);
    };
    match args.adopt.as_deref() {
        Some(named) if named == database => return Ok(true),
        Some(named) => {
            return Err(first_reset_refused(
                config,
                &objects,
                &format!("--adopt names database {named}, not {database}"),
            ));
        }
        None => {}
    }
    if !std::io::stdin().is_terminal() {
        return Err(first_reset_refused(
            config,
            &objects,
            "--yes alone does not drop them",
        ));
    }
    eprintln!(
        "No dbtool reset is recorded for database {database} (schema {}). A reset drops:",
        config.schema
    );
    for o in &objects {
        eprintln!("  {}", o.describe());
    }
    if answer(&format!(
        "Type the database's name ({database}) to drop them, anything else to stop: "
    )) == database
    {
        return Ok(true);
    }
    Err(first_reset_refused(config, &objects, "Not confirmed"))
}

/// `--parallel N`: N work connections besides the lock's, so the pool needs N + 1.
fn parallel_workers(config: &Config, args: &ResetArgs) -> Result<Option<usize>> {
    let Some(n) = args.parallel else {
        return Ok(None);
    };
    if n < 2 {
        return Err(Error::usage(format!(
            "--parallel {n} is not a parallel load: pass 2 or more, or leave it out for the \
             atomic (one transaction) reset"
        )));
    }
    if n + 1 > config.pool_size {
        return Err(Error::usage(format!(
            "--parallel {n} needs {} connections ({n} loading + 1 holding the lock), but \
             --pool-size is {}: raise --pool-size or lower --parallel",
            n + 1,
            config.pool_size
        )));
    }
    Ok(Some((n as usize).min(workers(config))))
}

/// Why this reset cannot be one transaction, if it cannot.
fn atomicity_given_up(
    migrations: &Migrations,
    parallel: Option<usize>,
    command: Option<&SeedCommand>,
) -> Option<String> {
    let mut why = Vec::new();
    let outside = migrations.outside_transaction();
    if !outside.is_empty() {
        why.push(format!(
            "{} run(s) outside the transaction (-- no-transaction, or its tool runs it so)",
            outside.join(", ")
        ));
    }
    if let Some(n) = parallel {
        why.push(format!("--parallel {n} loads over {n} connections"));
    }
    if let Some(command) = command {
        why.push(format!(
            "the seed command `{}` runs on connections of its own",
            command.command
        ));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// PostgreSQL before 17 refuses to use an enum label in the transaction that added it (`unsafe
/// use of new value`): when a migration adds one, a cold reset commits its migrations before it
/// seeds. Why, when it must.
fn new_enum_labels_need_a_commit(
    db: &crate::connection::Database,
    migrations: &Migrations,
) -> Result<Option<String>> {
    let files = migrations.adding_enum_labels();
    if files.is_empty() {
        return Ok(None);
    }
    let version: i32 = db
        .work()?
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int",
            &[],
        )
        .map_err(read_error)?
        .get(0);
    Ok((version < 170_000).then(|| {
        format!(
            "PostgreSQL {} cannot use an enum label in the transaction that added it, and {} \
             adds one",
            version / 10_000,
            files.join(", ")
        )
    }))
}

/// `--skip-if-reset-within`: the last reset used the same profile, seed, migrations and spec,
/// finished recently, and nothing unfinished came after it.
fn recent_reset(
    client: &mut postgres::Client,
    config: &Config,
    inputs: &Inputs,
    within: Duration,
    reporter: &Reporter,
) -> Result<bool> {
    if meta::unfinished(client, &config.schema)
        .map_err(read_error)?
        .is_some()
    {
        return Ok(false);
    }
    let Some(last) = meta::last_reset(client, &config.schema).map_err(read_error)? else {
        return Ok(false);
    };
    let age = unix_now().saturating_sub(last.finished_unix);
    let same = last.profile == inputs.seeding.profile.name
        && last.seed == inputs.seeding.seed
        && last.migrations_digest == inputs.finished.migrations_digest
        && last.spec_digest == inputs.finished.spec_digest;
    if !same || Duration::from_secs(age) > within {
        return Ok(false);
    }
    reporter.info(
        "skipped",
        format!(
            "skipped: the last reset (profile {}, seed {}) finished {age}s ago, within --skip-if-reset-within",
            last.profile, last.seed
        ),
        json!({ "age_s": age }),
    );
    Ok(true)
}

/// After a cold reset's migrations: what the warm path of the next reset needs. Optional: a
/// failure to record (a privilege the role lacks, say) is rolled back to before it and reported,
/// and the next reset is cold too.
fn record_warm(
    client: &mut postgres::Client,
    config: &Config,
    migrations: &Migrations,
    migrations_digest: &str,
    since: i64,
    reporter: &Reporter,
) -> Result<()> {
    client
        .batch_execute("SAVEPOINT dbtool_warm")
        .map_err(meta_error)?;
    let recorded = warm::record(
        client,
        &config.schema,
        migrations.format_name(),
        migrations_digest,
        since,
        &migrations.history_schemas_outside(&config.schema),
    );
    let why = match recorded {
        Ok(Ok(())) => None,
        Ok(Err(why)) => Some(why),
        Err(e) => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT dbtool_warm")
                .map_err(meta_error)?;
            Some(format!("recording it failed: {e}"))
        }
    };
    client
        .batch_execute("RELEASE SAVEPOINT dbtool_warm")
        .map_err(meta_error)?;
    if let Some(why) = why {
        reporter.info(
            "warm-not-recorded",
            format!("the next reset takes the cold path too: {why}"),
            json!({ "why": why }),
        );
    }
    Ok(())
}

/// Why this reset takes the cold path whatever the database holds, if it does.
fn cold_because(
    args: &ResetArgs,
    seeding: Option<&Seeding>,
    not_atomic: Option<&str>,
) -> Option<String> {
    if args.cold {
        return Some("--cold".into());
    }
    if let Some(why) = not_atomic {
        return Some(why.to_string());
    }
    match seeding {
        None => Some("--skip-seed".into()),
        Some(s) if s.inferred.is_some() => {
            Some("the seed spec is inferred from the schema (no seeds/seed.toml)".into())
        }
        Some(_) => None,
    }
}

/// The warm path's record when it may run, or why the cold path runs.
fn choose_path(
    client: &mut postgres::Client,
    config: &Config,
    migrations: &Migrations,
    migrations_digest: &str,
    cold_because: Option<String>,
) -> Result<std::result::Result<warm::Record, String>> {
    if let Some(why) = cold_because {
        return Ok(Err(why));
    }
    warm::next(
        client,
        &config.schema,
        migrations.format_name(),
        migrations_digest,
    )
    .map_err(read_error)
}
