//! `dbtool migrate`: the pending migrations, under the lock, in one transaction (a
//! `-- no-transaction` file commits what came before it and runs on its own).

use std::time::Instant;

use serde_json::json;

use super::{connect_or_create, locked, migrate_phase, print_plan, repair_if_needed};
use crate::cli::MigrateArgs;
use crate::config::Config;
use crate::connection::Early;
use crate::connection::stop::Stop;
use crate::error::Result;
use crate::migrations::{self, Migrations};
use crate::plan::Plan;
use crate::progress::Reporter;
use crate::unit::Unit;

pub fn run(config: &Config, args: &MigrateArgs, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let dry_run = args.dry_run.dry_run;
    let started = Instant::now();
    // The connections open while the files are read; migrate asks no one to confirm.
    let early = Early::for_change(config, dry_run, true);
    let migrations = Migrations::load(&config.paths.migrations, config.paths.migrations_format)?;
    let create = args.create.create_database && !dry_run;
    let db = connect_or_create(config, stop, reporter, early, create)?;
    if dry_run {
        let pending = migrations::pending(&mut *db.work()?, &migrations, &config.schema)?;
        print_plan(
            config,
            Plan {
                migrations_format: migrations.format_name().to_string(),
                migrations: pending,
                ..Plan::default()
            },
        );
        return Ok(());
    }
    let applied = locked(config, &db, reporter, || {
        let mut unit = Unit::begin(&db, config.ddl_lock_timeout)?;
        repair_if_needed(unit.client(), config, reporter)?;
        let applied = migrate_phase(&mut unit, &migrations, config, reporter)?;
        unit.commit()?;
        Ok(applied)
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
