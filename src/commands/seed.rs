//! `dbtool seed`: under the lock, one transaction truncates the seeded tables, loads them,
//! rebuilds their keys and indexes, moves the sequences, runs the SQL seed files and records
//! the result; a failure before the commit leaves every row as it was.

use std::time::{Instant, SystemTime};

use serde_json::json;

use super::{
    Finished, Seeding, all_or_nothing, confirm, locked, phase, print_plan, refuse_if_protected,
    repair_if_needed, run_seed_code,
};
use crate::cli::SeedArgs;
use crate::config::Config;
use crate::connection::stop::Stop;
use crate::connection::{Database, Early, describe_sql_error, quote_ident};
use crate::drop::privileges;
use crate::error::{Error, Result};
use crate::load as seed;
use crate::load::empty::{Emptied, empty, sequential_if_sharded};
use crate::load::seed_code::SeedCode;
use crate::migrations::Migrations;
use crate::plan::{Plan, SeedPlan};
use crate::progress::Reporter;
use crate::record::fingerprint;
use crate::unit::Unit;

pub fn run(config: &Config, args: &SeedArgs, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    // The connections open while the files are read.
    let early = Early::for_change(config, args.dry_run.dry_run, args.confirm.yes);
    let seeding =
        match super::init::seeding_without_spec(config, &args.profile, None, stop, reporter)? {
            Some(inferred) => inferred,
            None => Seeding::load(config, &args.profile)?,
        };
    let data = seeding.dataset()?;
    let plan = SeedPlan::new(&data, &seeding.profile.name);
    let code = SeedCode::load(
        &config.paths.seeds,
        &config.schema,
        seeding.profile.seed_command.as_deref(),
    )?;
    if !args.dry_run.dry_run {
        confirm(
            config,
            args.confirm.yes,
            "seed",
            Some(&seeding.profile.name),
        )?;
    }
    let db = Database::connect_early(config, stop, reporter, early)?;
    if args.dry_run.dry_run {
        let notes = seeding.notes_now(&db, &config.schema);
        print_plan(
            config,
            Plan {
                seed: Some(plan),
                notes,
                ..Plan::default()
            },
        );
        return Ok(());
    }
    // Seeded data equals a reset's with the same migrations: recorded so, it lets
    // --skip-if-reset-within skip a reset that would produce it again.
    let finished = Finished {
        command: "seed",
        seeding: &seeding,
        started,
        started_at,
        migrations_digest: Migrations::load(
            &config.paths.migrations,
            config.paths.migrations_format,
        )
        .map(|m| m.files.digest())
        .map_or_else(|_| String::new(), |d| format!("{d:016x}")),
        spec_digest: seeding.digest(&code)?,
    };
    let not_atomic = code.command.as_ref().map(|c| {
        format!(
            "the seed command `{}` runs on connections of its own",
            c.command
        )
    });
    let done = locked(config, &db, reporter, || {
        all_or_nothing(
            &db,
            config,
            started_at,
            reporter,
            "seed",
            not_atomic.as_deref(),
            || {
                let mut unit = Unit::begin(&db, config.ddl_lock_timeout)?;
                sequential_if_sharded(unit.client())
                    .map_err(|e| Error::Work(describe_sql_error(&e, None)))?;
                // Before dbtool.meta is read: a role without rights there hears what it lacks.
                privileges::check_seed(unit.client(), &config.schema, &seed::tables(&plan))?;
                refuse_if_protected(unit.client(), "seed")?;
                repair_if_needed(unit.client(), config, reporter)?;
                // The seeded tables are emptied below: what they hold now is not kept.
                seeding.check_against(unit.client(), &config.schema, &plan, reporter)?;
                let emptied = phase(reporter, "truncate", || {
                    truncate(unit.client(), &config.schema, &plan)
                })?;
                let sent = phase(reporter, "seed", || {
                    seed::load_atomic(
                        unit.client(),
                        &db.stop,
                        // COPY FREEZE needs the tables truncated in this transaction.
                        emptied == Emptied::Truncated,
                        &data,
                        &plan,
                        &config.schema,
                        reporter,
                    )
                })?;
                let mut unit =
                    run_seed_code(unit, &db, config, &seeding, &code, started_at, reporter)?;
                // The digests of the rows as sent hold unless the seed code changed rows after.
                let known = if code.is_empty() {
                    sent
                } else {
                    seed::ClientDigests::new()
                };
                let fingerprint = phase(reporter, "fingerprint", || {
                    fingerprint::compute_in(unit.client(), &config.schema, &known)
                })?;
                phase(reporter, "record", || {
                    finished.record(unit.client(), config, &fingerprint.overall)
                })?;
                unit.commit()
            },
        )
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

/// Empties the seeded tables (and, as CASCADE does, the tables that refer to them) inside the
/// unit.
fn truncate(client: &mut postgres::Client, schema: &str, plan: &SeedPlan) -> Result<Emptied> {
    let tables: Vec<String> = seed::tables(plan)
        .iter()
        .map(|t| format!("{}.{}", quote_ident(schema), quote_ident(t)))
        .collect();
    empty(client, &tables)
        .map_err(|e| Error::Work(format!("truncate failed: {}", describe_sql_error(&e, None))))
}
