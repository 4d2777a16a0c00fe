//! A team's own seed code under the lock: SQL seed files inside the reset's transaction, and a
//! seed command (its own program) after the generated rows.

use std::time::Duration;

use crate::support::{ProjectCopy, TestDb, binary, changes_nothing};

const EXTRA_SERVICE: &str =
    "INSERT INTO services (name, duration_minutes, price) VALUES ('Teeth brushing', 15, 12.00);";

#[test]
fn sql_seed_files_run_inside_the_resets_transaction() {
    let db = TestDb::new("seed_sql");
    let project = ProjectCopy::new();
    project.write(
        "seeds/90_extra.sql",
        &format!("BEGIN;\n{EXTRA_SERVICE}\nCOMMIT;\n"),
    );
    db.run_in(&project, &["reset", "--profile", "dev", "--yes"])
        .success();
    assert_eq!(db.scalar("SELECT count(*) FROM services"), 11);
    // seed runs them too, after its own rows.
    db.run_in(&project, &["seed", "--profile", "ci", "--yes"])
        .success();
    assert_eq!(db.scalar("SELECT count(*) FROM services"), 11);

    // An error in a seed file rolls the whole reset back.
    project.write(
        "seeds/91_broken.sql",
        "SELECT 1;\nINSERT INTO nowhere VALUES (1);\n",
    );
    let stderr = changes_nothing(&db, 7, || {
        db.run_in(&project, &["reset", "--profile", "ci", "--yes"])
    });
    assert!(stderr.contains("91_broken.sql"), "{stderr}");
    assert!(stderr.contains("line: 2"), "{stderr}");
}

#[test]
fn a_seed_command_runs_under_the_lock_with_the_database_in_its_environment() {
    let db = TestDb::new("seed_command_ok");
    let command = format!(
        "psql -X -q \"$DATABASE_URL\" -c \"{EXTRA_SERVICE}\" && \
         psql -X -qtA \"$DATABASE_URL\" -c \"SELECT 'locked by ' || count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())\" && \
         echo \"seeded $SEED_PROFILE $DBTOOL_SEED\""
    );
    db.run(&[
        "reset",
        "--profile",
        "dev",
        "--yes",
        "--seed-command",
        &command,
    ])
    .success()
    .stderr_has("not all or nothing")
    .stderr_has("seed command: locked by 1")
    .stderr_has("seed command: seeded dev 42");
    assert_eq!(db.scalar("SELECT count(*) FROM services"), 11);
    let status = db.status();
    assert!(status["unfinished"].is_null(), "{status}");
    assert_eq!(status["last_reset"]["profile"], "dev");
    assert_eq!(db.advisory_locks(), 0);
}

#[test]
fn a_failing_seed_command_exits_7_and_leaves_the_reset_unfinished() {
    let db = TestDb::new("seed_command_fails");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let run = db.run(&[
        "reset",
        "--profile",
        "dev",
        "--yes",
        "--seed-command",
        "echo loading; echo 'no such table' >&2; exit 3",
    ]);
    run.code(7)
        .stderr_has("seed command: loading")
        .stderr_has("seed command: no such table")
        .stderr_has("exit status: 3");
    db.assert_unfinished_and_never_skipped();
    assert!(status_is_finished(&db));
}

fn status_is_finished(db: &TestDb) -> bool {
    let status = db.status();
    status["unfinished"].is_null() && status["last_reset"].is_object()
}

#[test]
fn a_seed_command_that_waits_for_the_lock_itself_fails_instead_of_hanging() {
    let db = TestDb::new("seed_command_lock");
    // A program of its own that takes the same advisory lock.
    let run = db.run(&[
        "reset",
        "--profile",
        "ci",
        "--yes",
        "--seed-command",
        "psql -X -q \"$DATABASE_URL\" -c \"SELECT pg_advisory_lock($DBTOOL_LOCK_HELD)\"",
    ]);
    run.code(7)
        .stderr_has("waits for dbtool's own advisory lock");
    assert!(run.elapsed < Duration::from_secs(20), "{:?}", run.elapsed);
    assert!(db.eventually(Duration::from_secs(5), |db| db.advisory_locks() == 0));

    // dbtool itself, run by the seed command.
    let run = db.run(&[
        "reset",
        "--profile",
        "ci",
        "--yes",
        "--seed-command",
        &format!("{} seed --profile ci --yes", binary().display()),
    ]);
    run.code(7).stderr_has("would wait forever");
    assert!(run.elapsed < Duration::from_secs(20), "{:?}", run.elapsed);
}
