//! A team's own seed code under the lock: SQL seed files inside the reset's transaction, and a
//! seed command (its own program) after the generated rows.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{ProjectCopy, Run, TestDb, binary, changes_nothing, wait_until};

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
    // An error only running finds (the server gives no position) still names its line.
    project.write("seeds/91_broken.sql", "SELECT 1;\n\nSELECT 1 / 0;\n");
    let stderr = changes_nothing(&db, 7, || {
        db.run_in(&project, &["reset", "--profile", "ci", "--yes"])
    });
    assert!(stderr.contains("91_broken.sql:3 failed"), "{stderr}");
    assert!(stderr.contains("division by zero"), "{stderr}");
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

/// Whether process `pid` still runs (a zombie runs nothing).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest.trim_start());
        !state.starts_with('Z') && !state.starts_with('X')
    })
}

/// A seed command whose shell starts a program in the background and waits for it: the
/// program's pid goes to `pid_file`.
fn background_command(pid_file: &std::path::Path) -> String {
    format!(
        "sleep 600 & echo $! > {}; psql -X -q \"$DATABASE_URL\" -c 'SELECT pg_sleep(600)' & wait",
        pid_file.display()
    )
}

fn background_pid(pid_file: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()
}

fn seed_command_sessions(db: &TestDb) -> i64 {
    db.scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()",
    )
}

#[test]
fn sigterm_stops_the_seed_commands_whole_process_group_and_sessions_before_the_unlock() {
    let db = TestDb::new("seed_command_sigterm");
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let mut child = db
        .dbtool()
        .args(["reset", "--profile", "ci", "--yes", "--seed-command"])
        .arg(background_command(&pid_file))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(120), || {
            assert!(child.try_wait().unwrap().is_none(), "dbtool ended early");
            background_pid(&pid_file).is_some() && seed_command_sessions(&db) > 0
        }),
        "the seed command never started"
    );
    let program = background_pid(&pid_file).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let run = Run::from_output(child.wait_with_output().unwrap(), Duration::ZERO);
    run.code(143);
    // dbtool waited for them before it released the lock and exited.
    assert!(
        !running(program),
        "the seed command's program outlived dbtool"
    );
    assert_eq!(seed_command_sessions(&db), 0, "{}", run.stderr);
    assert_eq!(db.advisory_locks(), 0);
}

#[test]
fn a_seed_command_past_its_timeout_is_stopped_whole_with_exit_7() {
    let db = TestDb::new("seed_command_timeout");
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let run = db.run(&[
        "reset",
        "--profile",
        "ci",
        "--yes",
        "--seed-command-timeout",
        "1s",
        "--seed-command",
        &format!("sleep 600 & echo $! > {}; wait", pid_file.display()),
    ]);
    run.code(7).stderr_has("--seed-command-timeout");
    let program = background_pid(&pid_file).expect("the command ran");
    assert!(
        !running(program),
        "the seed command's program outlived dbtool"
    );
    db.assert_unfinished_and_never_skipped();
}

#[test]
fn seed_command_output_that_is_not_utf8_is_relayed_and_its_password_masked() {
    let db = TestDb::new("seed_command_output");
    // The test server trusts local connections, so any password is accepted and ignored.
    let secret = "s3cr3t-Pa55word";
    let url = db
        .url
        .replacen("://postgres@", &format!("://postgres:{secret}@"), 1);
    assert!(url.contains(secret), "{url}");
    // More than a pipe holds after the bytes that are not UTF-8: a reader that stopped there
    // would kill the command with a broken pipe.
    let command = "printf 'bad \\377 byte\\n'; yes 0123456789abcdef | head -n 20000; \
                   echo \"url $DATABASE_URL\"; echo finished-writing";
    let run = Run::of(
        crate::support::dbtool_command()
            .env("DATABASE_URL", &url)
            .args([
                "reset",
                "--profile",
                "ci",
                "--yes",
                "--seed-command",
                command,
            ]),
    );
    run.success()
        .stderr_has("seed command: bad \u{fffd} byte")
        .stderr_has("seed command: finished-writing")
        .stderr_has("seed command: url postgres://postgres:****@");
    assert!(!run.stderr.contains(secret), "the password leaked");
}
