//! What operators see and rely on: guards, dry runs, status, logs, CronJob switches.

use std::process::Stdio;
use std::time::Duration;

use crate::support::{Run, TestDb, dbtool_command, with_database};

#[test]
fn without_a_terminal_reset_and_seed_need_yes() {
    let db = TestDb::new("needs_yes");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let before = db.overall_fingerprint();
    db.run(&["reset", "--profile", "ci"])
        .code(4)
        .stderr_has("--yes");
    db.run(&["seed", "--profile", "ci"]).code(4);
    assert_eq!(db.overall_fingerprint(), before);
}

#[test]
fn a_protected_database_refuses_reset_and_seed_until_unprotected() {
    let db = TestDb::new("protected");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let before = db.overall_fingerprint();
    db.run(&["protect"]).success();
    db.run(&["reset", "--profile", "ci", "--yes"])
        .code(4)
        .stderr_has("protected");
    db.run(&["seed", "--profile", "ci", "--yes"]).code(4);
    assert_eq!(db.overall_fingerprint(), before);
    let status = db.status();
    assert!(status["protected"].is_object());
    db.run(&["unprotect"]).success();
    db.run(&["reset", "--profile", "dev", "--yes"]).success();
    assert_eq!(db.scalar("SELECT count(*) FROM clients"), 100);
}

#[test]
fn dry_run_changes_nothing_and_predicts_the_counts() {
    let db = TestDb::new("dry_run");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let before = db.overall_fingerprint();
    let plan = db.run(&["reset", "--profile", "dev", "--dry-run"]);
    plan.success();
    assert_eq!(db.overall_fingerprint(), before);
    assert!(plan.stdout.contains("table"), "{}", plan.stdout);
    assert!(plan.stdout.contains("V1__staff_and_services"));
    db.run(&["reset", "--profile", "dev", "--yes"]).success();
    for t in db.fingerprint()["tables"].as_array().unwrap() {
        let line = format!(
            "{:<24} {:>10}",
            t["table"].as_str().unwrap(),
            t["rows"].as_i64().unwrap()
        );
        assert!(
            plan.stdout.contains(&line),
            "{line:?} not in\n{}",
            plan.stdout
        );
    }
    db.run(&["seed", "--profile", "ci", "--dry-run"]).success();
    db.run(&["migrate", "--dry-run"]).success();
    assert_eq!(db.scalar("SELECT count(*) FROM clients"), 100);
}

#[test]
fn json_logs_are_one_object_a_line_with_the_documented_events() {
    let db = TestDb::new("json_logs");
    let run = db.run(&["reset", "--profile", "ci", "--yes", "--log-format", "json"]);
    run.success();
    let mut events = Vec::new();
    for line in run.stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        events.push(v["event"].as_str().expect("an event field").to_string());
    }
    for wanted in [
        "lock-acquired",
        "lock-released",
        "phase-started",
        "phase-finished",
        "table-seeded",
        "done",
    ] {
        assert!(
            events.iter().any(|e| e == wanted),
            "{wanted} missing: {events:?}"
        );
    }
    let (holder, pid) = db.hold_lock();
    let waited = db.run(&["migrate", "--lock-timeout", "1s", "--log-format", "json"]);
    waited.code(3);
    let lines: Vec<serde_json::Value> = waited
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let waiting = lines
        .iter()
        .find(|l| l["event"] == "lock-waiting")
        .expect("a lock-waiting event");
    assert_eq!(waiting["holder_pid"], pid);
    assert!(waiting["waited_ms"].is_u64());
    assert_eq!(lines.last().unwrap()["exit_code"], 3);
    drop(holder);

    let failed = db.run(&["seed", "--profile", "nope", "--yes", "--log-format", "json"]);
    failed.code(2);
    let last: serde_json::Value =
        serde_json::from_str(failed.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "error");
    assert_eq!(last["exit_code"], 2);
    // A usage error too.
    let usage = db.run(&["--log-format", "json", "reset", "--bogus-flag"]);
    usage.code(2);
    for line in usage.stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["exit_code"], 2);
    }
}

#[test]
fn status_and_lock_status_name_the_last_reset_and_the_holder() {
    let db = TestDb::new("status");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let status = db.status();
    assert_eq!(status["last_reset"]["profile"], "ci");
    assert_eq!(status["last_reset"]["seed"], 7);
    assert_eq!(status["lock"]["held"], false);
    assert_eq!(status["migrations"]["pending"].as_array().unwrap().len(), 0);
    assert_eq!(status["migrations"]["applied"].as_array().unwrap().len(), 5);

    let (_holder, pid) = db.hold_lock();
    let lock: serde_json::Value =
        serde_json::from_str(&db.run(&["lock", "status", "--json"]).success().stdout).unwrap();
    assert_eq!(lock["held"], true);
    assert_eq!(lock["holders"][0]["pid"], pid);
    assert_eq!(lock["holder"]["pid"], pid);
    assert!(
        db.run(&["lock", "status"])
            .success()
            .stdout
            .contains(&pid.to_string())
    );
    assert!(
        db.run(&["status"])
            .success()
            .stdout
            .contains(&format!("pid {pid}"))
    );
}

#[test]
fn every_connection_dbtool_opens_is_named_dbtool() {
    let db = TestDb::new("app_names");
    let mut watcher = db.client();
    watcher
        .batch_execute("SET application_name = 'test-observer'")
        .unwrap();
    let mut child = db
        .dbtool()
        .args(["reset", "--profile", "demo", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    while child.try_wait().unwrap().is_none() {
        for row in watcher
            .query(
                "SELECT coalesce(application_name, '') FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()
                    AND backend_type = 'client backend'",
                &[],
            )
            .unwrap()
        {
            seen.insert(row.get::<_, String>(0));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.wait().unwrap().success());
    assert!(!seen.is_empty(), "saw dbtool's connections");
    for name in &seen {
        assert!(name.starts_with("dbtool reset "), "{name:?}");
    }
}

#[test]
fn skip_if_reset_within_skips_a_repeat_but_not_another_seed() {
    let db = TestDb::new("skip_within");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    db.client()
        .execute(
            "UPDATE clients SET first_name = 'Changed' WHERE id = 1",
            &[],
        )
        .unwrap();
    let skipped = db.run(&[
        "reset",
        "--profile",
        "ci",
        "--yes",
        "--skip-if-reset-within",
        "10m",
    ]);
    skipped.success().stderr_has("skipped");
    assert_eq!(
        db.text("SELECT first_name FROM clients WHERE id = 1"),
        "Changed"
    );
    db.run(&[
        "reset",
        "--profile",
        "ci",
        "--yes",
        "--seed",
        "8",
        "--skip-if-reset-within",
        "10m",
    ])
    .success();
    assert_ne!(
        db.text("SELECT first_name FROM clients WHERE id = 1"),
        "Changed"
    );
}

#[test]
fn a_password_in_the_url_appears_in_no_output() {
    let db = TestDb::new("password");
    // The test server trusts local connections, so any password is accepted and ignored.
    let secret = "s3cr3t-Pa55word";
    let url = db
        .url
        .replacen("://postgres@", &format!("://postgres:{secret}@"), 1);
    assert!(
        url.contains(secret),
        "the test URL names the postgres user: {url}"
    );
    let dead = with_database("postgres://postgres:s3cr3t-Pa55word@127.0.0.1:1/x", "x");
    let mut runs = Vec::new();
    for args in [
        &["reset", "--profile", "ci", "--yes", "--log-format", "json"][..],
        &["reset", "--profile", "ci", "--yes", "-v"],
        &["status"],
        &["status", "--json"],
        &["lock", "status"],
        &["fingerprint"],
        &["reset", "--profile", "ci", "--dry-run"],
        &["reset", "--profile", "nope", "--yes"],
    ] {
        runs.push(Run::of(
            dbtool_command().env("DATABASE_URL", &url).args(args),
        ));
    }
    runs.push(Run::of(
        dbtool_command().env("DATABASE_URL", &dead).arg("status"),
    ));
    runs.push(Run::of(dbtool_command().args([
        "--database-url",
        &url,
        "--pool-size",
        "1",
        "status",
    ])));
    for run in &runs {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "the password leaked:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

#[test]
fn a_terminal_shows_progress_bars() {
    let db = TestDb::new("pty");
    let binary = crate::support::binary();
    let command = format!(
        "{} reset --profile ci --yes --log-format auto",
        binary.display()
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(crate::support::project_dir())
        .env("DATABASE_URL", &db.url)
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .stdin(Stdio::null())
        .output()
        .expect("script(1) runs a pseudo-terminal (scripts/test.sh installs bsdutils)");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}");
    assert!(
        screen.contains("20/20 rows"),
        "no bar for clients:\n{screen}"
    );
    assert!(screen.contains("[="), "no bar drawn:\n{screen}");
    assert!(screen.contains("reset done"), "{screen}");
}

#[test]
fn completions_are_printed_for_a_shell() {
    let run = Run::of(dbtool_command().args(["completions", "bash"]));
    run.success();
    assert!(run.stdout.contains("dbtool"));
}

/// Runs dbtool on a pseudo-terminal with `input` typed at it; returns the exit code and screen.
fn on_terminal(db: &TestDb, args: &str, input: &str) -> (i32, String) {
    use std::io::Write;
    let command = format!("{} {args}", crate::support::binary().display());
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(crate::support::project_dir())
        .env("DATABASE_URL", &db.url)
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) runs a pseudo-terminal");
    std::thread::sleep(Duration::from_millis(500));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn on_a_terminal_reset_asks_first_and_no_is_the_default() {
    let db = TestDb::new("confirm");
    let (code, screen) = on_terminal(&db, "reset --profile ci", "\n");
    assert_eq!(code, 4, "{screen}");
    assert!(screen.contains("[y/N]"), "{screen}");
    assert!(
        screen.contains(&db.name) && screen.contains("profile ci"),
        "{screen}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        0
    );
    let (code, screen) = on_terminal(&db, "reset --profile ci", "y\n");
    assert_eq!(code, 0, "{screen}");
    assert_eq!(db.scalar("SELECT count(*) FROM clients"), 20);
}

#[test]
fn dotenv_fills_in_what_the_environment_does_not_say() {
    let db = TestDb::new("dotenv");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "DATABASE_URL={}\nSEED_PROFILE=ci\nDBTOOL_POOL_SIZE=3\n",
            db.url
        ),
    )
    .unwrap();
    let project = crate::support::project_dir();
    let dirs = [
        "--migrations-dir",
        &project.join("migrations").display().to_string(),
        "--seeds-dir",
        &project.join("seeds").display().to_string(),
        "--profiles-dir",
        &project.join("profiles").display().to_string(),
    ]
    .map(String::from);
    let mut cmd = dbtool_command();
    cmd.current_dir(dir.path())
        .args(["reset", "--yes"])
        .args(&dirs);
    Run::of(&mut cmd).success();
    assert_eq!(
        db.scalar("SELECT count(*) FROM clients"),
        20,
        "SEED_PROFILE=ci from .env"
    );
    // The environment wins over .env.
    let mut cmd = dbtool_command();
    cmd.current_dir(dir.path())
        .env("SEED_PROFILE", "dev")
        .args(["reset", "--yes"])
        .args(&dirs);
    Run::of(&mut cmd).success();
    assert_eq!(db.scalar("SELECT count(*) FROM clients"), 100);
}

#[test]
fn a_reset_that_fails_midway_leaves_the_last_reset_and_its_data_as_they_were() {
    let db = TestDb::new("unfinished");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let before = db.status();
    let fingerprint = db.overall_fingerprint();
    let project = crate::support::ProjectCopy::new();
    // A check that the seeded data breaks: the load fails after the drop and the migrations.
    project.write(
        "migrations/V90__small_orders.sql",
        "ALTER TABLE invoice_line_items ADD CONSTRAINT small_orders CHECK (quantity < 2);\n",
    );
    db.run_in(&project, &["reset", "--profile", "dev", "--yes"])
        .code(7)
        .stderr_has("small_orders");
    let after = db.status();
    assert!(after["unfinished"].is_null(), "{after}");
    assert_eq!(after["last_reset"], before["last_reset"]);
    assert_eq!(db.overall_fingerprint(), fingerprint);
    // So a CronJob's rerun may skip: the data is the last reset's.
    db.run(&[
        "reset",
        "--profile",
        "ci",
        "--yes",
        "--skip-if-reset-within",
        "1h",
    ])
    .success()
    .stderr_has("skipped");
}
