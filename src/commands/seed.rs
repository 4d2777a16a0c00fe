//! `dbtool seed`: under the lock, one transaction truncates the seeded tables, loads them,
//! rebuilds their keys and indexes, moves the sequences and records the result; a failure
//! before the commit leaves every row as it was.

use std::time::{Instant, SystemTime};

use serde_json::json;

use super::{
    Seeding, confirm, locked, mark_unfinished, meta_error, phase, print_plan, refuse_if_protected,
    repair_if_needed, rfc3339, rolled_back_on_error, unix_now,
};
use crate::cli::SeedArgs;
use crate::config::Config;
use crate::db::{self, Database, describe_sql_error, quote_ident};
use crate::error::{Error, Result};
use crate::migrate::Migrations;
use crate::plan::SeedPlan;
use crate::progress::Reporter;
use crate::seed_code::{SeedCommand, SeedSql};
use crate::stop::Stop;
use crate::unit::Unit;
use crate::{fingerprint, meta, seed, spec};

pub fn run(config: &Config, args: &SeedArgs, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let started = Instant::now();
    let started_at = SystemTime::now();
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
    // Seeded data equals a reset's with the same migrations: recorded so, it lets
    // --skip-if-reset-within skip a reset that would produce it again.
    let migrations_digest = Migrations::load(&config.paths.migrations)
        .and_then(|m| spec::files_digest(&m.files))
        .map_or_else(|_| String::new(), |d| format!("{d:016x}"));
    let sql = SeedSql::load(&config.paths.seeds, &config.schema)?;
    let command = seeding
        .profile
        .seed_command
        .clone()
        .filter(|c| !c.trim().is_empty())
        .map(|command| SeedCommand { command });
    let spec_digest = seeding.digest(sql.paths(), command.as_ref())?;
    if let Some(command) = &command {
        reporter.warn(
            "not-atomic",
            format!(
                "this seed is not all or nothing: the seed command `{}` runs on connections of \
                 its own. A failure leaves the seed marked unfinished",
                command.command
            ),
            json!({}),
        );
    }
    let done = locked(config, &db, reporter, || {
        rolled_back_on_error(reporter, command.is_none(), || {
            let mut unit = Unit::begin(&db, config.ddl_lock_timeout)?;
            refuse_if_protected(unit.client(), "seed")?;
            repair_if_needed(unit.client(), config, reporter)?;
            seeding.check_against(unit.client(), &config.schema, &plan)?;
            phase(reporter, "truncate", || {
                truncate(unit.client(), &config.schema, &plan)
            })?;
            phase(reporter, "seed", || {
                seed::load_atomic(
                    unit.client(),
                    &db.stop,
                    &data,
                    &plan,
                    &config.schema,
                    reporter,
                )
            })?;
            if !sql.is_empty() {
                phase(reporter, "seed-sql", || {
                    sql.run(unit.client(), &db::session_settings(config))
                })?;
            }
            if let Some(command) = &command {
                // Committed together with the data: whoever sees the one sees the other.
                mark_unfinished(unit.client(), config, started_at, None)?;
                unit.commit()?;
                phase(reporter, "seed-command", || {
                    command.run(config, &db, &seeding.profile.name, seeding.seed, reporter)
                })?;
                unit = Unit::begin(&db, config.ddl_lock_timeout)?;
            }
            let fingerprint = phase(reporter, "fingerprint", || {
                fingerprint::compute_in(unit.client(), &config.schema)
            })?;
            phase(reporter, "record", || {
                let record = meta::LastReset {
                    command: "seed".into(),
                    schema: config.schema.clone(),
                    profile: seeding.profile.name.clone(),
                    seed: seeding.seed,
                    fingerprint: fingerprint.overall.clone(),
                    dbtool_version: env!("CARGO_PKG_VERSION").to_string(),
                    host: gethostname::gethostname().to_string_lossy().into_owned(),
                    started_at: rfc3339(started_at),
                    finished_at: rfc3339(SystemTime::now()),
                    duration_ms: started.elapsed().as_millis() as u64,
                    migrations_digest: migrations_digest.clone(),
                    spec_digest: spec_digest.clone(),
                    finished_unix: unix_now(),
                };
                meta::record_reset(unit.client(), &record).map_err(meta_error)
            })?;
            unit.commit()
        })
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

/// Empties the seeded tables (and, by CASCADE, the tables that refer to them) inside the unit.
fn truncate(client: &mut postgres::Client, schema: &str, plan: &SeedPlan) -> Result<()> {
    let tables: Vec<String> = seed::tables(plan)
        .iter()
        .map(|t| format!("{}.{}", quote_ident(schema), quote_ident(t)))
        .collect();
    client
        .batch_execute(&format!(
            "TRUNCATE {} RESTART IDENTITY CASCADE",
            tables.join(", ")
        ))
        .map_err(|e| Error::Work(format!("truncate failed: {}", describe_sql_error(&e, None))))
}
