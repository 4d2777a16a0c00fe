//! `dbtool init`: under the lock, in a transaction it rolls back, drop and migrate (or, with
//! `--from-database`, read the schema as it is), infer a seed spec from the schema, and write
//! seeds/seed.toml and profiles/dev.toml and ci.toml. Nothing in the database changes.
//!
//! A reset with no seeds/seed.toml seeds from the same inference (`seeding_without_spec`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::{Seeding, drop_phase, locked, migrate_phase, phase, read_error};
use crate::cli::{InitArgs, ProfileArgs};
use crate::config::Config;
use crate::connection::Database;
use crate::connection::stop::Stop;
use crate::error::{Error, Result};
use crate::files::ReadFiles;
use crate::infer::{self, Failure, INFERENCE_VERSION, Written};
use crate::migrations::Migrations;
use crate::progress::Reporter;
use crate::unit::Unit;

pub fn run(config: &Config, args: &InitArgs, stop: &Stop, reporter: &Reporter) -> Result<()> {
    let started = Instant::now();
    let targets = targets(config);
    if !args.stdout
        && !args.force
        && let Some((path, _)) = targets.iter().find(|(p, _)| p.exists())
    {
        return Err(Error::usage(format!(
            "{} exists: dbtool init never overwrites a file without --force (or print the \
             inferred spec with --stdout)",
            path.display()
        )));
    }
    let migrations = if args.from_database {
        None
    } else {
        Some(load_migrations(config)?)
    };
    let db = Database::connect(config, stop, reporter)?;
    let Some(written) = locked(config, &db, reporter, || {
        infer_in(&db, config, migrations.as_ref(), reporter)
    })?
    else {
        return Ok(());
    };
    if args.stdout {
        for (path, pick) in &targets {
            println!("# ---- {}\n{}", path.display(), pick(&written));
        }
    } else {
        for (path, pick) in &targets {
            write_file(path, pick(&written))?;
        }
    }
    let what = if args.stdout { "printed" } else { "wrote" };
    reporter.done(
        &format!(
            "init done: {what} {} (inference version {INFERENCE_VERSION}); edit them, then `dbtool reset --profile dev`",
            targets
                .iter()
                .map(|(p, _)| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        started.elapsed(),
        json!({ "inference_version": INFERENCE_VERSION }),
    );
    Ok(())
}

type Pick = fn(&Written) -> &str;

fn targets(config: &Config) -> [(PathBuf, Pick); 3] {
    [
        (config.paths.seeds.join("seed.toml"), |w| &w.seed),
        (config.paths.profiles.join("dev.toml"), |w| &w.dev),
        (config.paths.profiles.join("ci.toml"), |w| &w.ci),
    ]
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    let fail = |e: std::io::Error| Error::usage(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    std::fs::write(path, text).map_err(fail)
}

/// The migrations, refused when one would commit on its own: a transaction rolled back could
/// not take it back.
fn load_migrations(config: &Config) -> Result<Migrations> {
    let migrations = Migrations::load(&config.paths.migrations, config.paths.migrations_format)?;
    migrations.check_all(&config.schema)?;
    let outside = migrations.outside_transaction();
    if !outside.is_empty() {
        return Err(Error::usage(format!(
            "{} run(s) outside a transaction (-- no-transaction), so the schema cannot be read \
             from migrations rolled back afterwards: reset or migrate first, then pass --from-database",
            outside.join(", ")
        )));
    }
    Ok(migrations)
}

/// Under the lock: a transaction that drops and migrates (unless `migrations` is None), reads
/// the catalog, infers, and is rolled back.
fn infer_in(
    db: &Database,
    config: &Config,
    migrations: Option<&Migrations>,
    reporter: &Reporter,
) -> Result<Written> {
    let mut unit = Unit::begin(db, config.ddl_lock_timeout)?;
    let origin = match migrations {
        Some(migrations) => {
            if let Some(p) = crate::record::meta::protection(unit.client()).map_err(read_error)? {
                return Err(Error::Refused(format!(
                    "the database is protected (since {} by {}): init would drop and migrate in \
                     a transaction it rolls back, which locks its tables meanwhile; pass \
                     --from-database to read the schema as it is, nothing was changed",
                    p.since, p.by
                )));
            }
            drop_phase(db, &mut unit, migrations, config, reporter)?;
            migrate_phase(&mut unit, migrations, config, reporter)?;
            format!("the migrations ({})", config.paths.migrations.display())
        }
        None => format!("the database {}", db.target.database()),
    };
    let written = phase(reporter, "infer", || {
        infer::infer(unit.client(), &config.schema, &origin, migrations.is_some()).map_err(|f| {
            match f {
                Failure::Read(e) => read_error(e),
                Failure::Cannot(why) => Error::usage(format!("cannot infer a seed spec: {why}")),
            }
        })
    })?;
    // Dropping the unit rolls the drop and the migrations back.
    drop(unit);
    for (table, why) in &written.skipped {
        reporter.info(
            "inferred-skip",
            format!("not seeded: {table} ({why})"),
            json!({ "table": table, "why": why }),
        );
    }
    Ok(written)
}

/// A reset with no seeds/seed.toml: the spec and profiles `dbtool init` would write, inferred
/// under the lock from the migrations, then loaded as if they had been written. Says so in one
/// line. `None` when the spec file exists.
/// `migrations` None (`seed`): the schema as the database has it.
pub(super) fn seeding_without_spec(
    config: &Config,
    args: &ProfileArgs,
    migrations: Option<&Migrations>,
    stop: &Stop,
    reporter: &Reporter,
) -> Result<Option<Seeding>> {
    let spec_file = config.paths.seeds.join("seed.toml");
    if spec_file.exists() {
        return Ok(None);
    }
    if let Some(migrations) = migrations
        && !migrations.outside_transaction().is_empty()
    {
        // Profiles written by hand (seed commands alone) still seed without a spec.
        let profile = args.profile.as_deref().unwrap_or("dev");
        if config
            .paths
            .profiles
            .join(format!("{profile}.toml"))
            .exists()
        {
            return Ok(None);
        }
        return Err(Error::usage(format!(
            "no {}: a reset without a spec seeds from one inferred from the migrations, which \
             runs them in a scratch transaction it rolls back, but {} run(s) outside a \
             transaction (-- no-transaction, or its tool runs it so) and cannot; run `dbtool \
             reset --skip-seed`, then `dbtool init --from-database` to write the spec from the \
             migrated database",
            spec_file.display(),
            migrations.outside_transaction().join(", ")
        )));
    }
    let db = Database::connect(config, stop, reporter)?;
    let Some(written) = locked(config, &db, reporter, || {
        infer_in(&db, config, migrations, reporter)
    })?
    else {
        return Err(Error::usage(
            "no seeds/seed.toml and the lock is busy: cannot infer a spec now",
        ));
    };
    reporter.info(
        "inferred-spec",
        format!(
            "no {}: seeding from the schema as `dbtool init` would write it (inference version \
             {INFERENCE_VERSION}, profiles dev and ci); run `dbtool init` to write it and edit it",
            spec_file.display()
        ),
        json!({ "inference_version": INFERENCE_VERSION }),
    );
    let dir = std::env::temp_dir().join(format!("dbtool-inferred-{}", std::process::id()));
    let mut inferred = config.clone();
    inferred.paths.seeds = dir.join("seeds");
    inferred.paths.profiles = dir.join("profiles");
    let loaded = (|| {
        for (path, pick) in targets(&inferred) {
            write_file(&path, pick(&written))?;
        }
        Seeding::load(&inferred, args)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let mut seeding = loaded.map_err(|e| match e {
        Error::Usage(m) => Error::Usage(format!(
            "the spec inferred from the schema does not load: {m}; run `dbtool init --stdout` to see it"
        )),
        other => other,
    })?;
    // The change digest is of the inferred text, not of a temporary file's name.
    let mut files = ReadFiles::default();
    files.remember(
        Path::new("(inferred seeds/seed.toml)"),
        format!("{INFERENCE_VERSION}\n{}", written.seed).as_bytes(),
    );
    seeding.spec.files = files;
    let mut files = ReadFiles::default();
    files.remember(
        Path::new("(inferred profiles)"),
        format!("{}\n{}", written.dev, written.ci).as_bytes(),
    );
    seeding.profile.files = files;
    seeding.inferred = Some(INFERENCE_VERSION);
    Ok(Some(seeding))
}

/// A reset that seeded from an inferred spec and failed while loading: the spec is dbtool's
/// guess, so the message says where to correct it.
pub(super) fn explain_failure(error: Error, seeding: Option<&Seeding>) -> Error {
    match (error, seeding.and_then(|s| s.inferred)) {
        (Error::Work(message), Some(_)) => Error::Work(format!(
            "{message}; the seed spec was inferred from the schema (there is no seeds/seed.toml): \
             run `dbtool init` and edit the table and column named above in seeds/seed.toml \
             (`disable_triggers = true` for a trigger that rejects rows)"
        )),
        (error, _) => error,
    }
}
