//! The advisory lock as other sessions see it: busy, skip, timeout, waiting, release.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Run, TestDb};

#[test]
fn a_held_lock_fails_fast_skips_or_times_out() {
    let db = TestDb::new("lock_held");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let before = db.overall_fingerprint();
    let (holder, pid) = db.hold_lock();

    let busy = db.run(&["reset", "--profile", "dev", "--yes", "--lock-timeout", "0"]);
    busy.code(3).stderr_has(&format!("pid {pid}"));
    assert!(busy.elapsed < Duration::from_secs(5), "one try, no waiting");

    let skipped = db.run(&[
        "reset",
        "--profile",
        "dev",
        "--yes",
        "--lock-timeout",
        "0",
        "--if-locked",
        "skip",
    ]);
    skipped.success().stderr_has("lock");

    let timed = db.run(&["migrate", "--lock-timeout", "2s"]);
    timed.code(3).stderr_has(&format!("pid {pid}"));
    assert!(
        timed.elapsed >= Duration::from_millis(1900) && timed.elapsed < Duration::from_secs(8),
        "waited {:?}, expected about 2s",
        timed.elapsed
    );
    assert_eq!(db.overall_fingerprint(), before, "nothing changed");
    drop(holder);
    assert!(db.eventually(Duration::from_secs(5), |db| db.advisory_locks() == 0));
}

#[test]
fn a_waiter_reports_the_holder_and_proceeds_when_it_ends() {
    let db = TestDb::new("lock_waiter");
    let (holder, pid) = db.hold_lock();
    let start = Instant::now();
    let waiter = db
        .dbtool()
        .args(["reset", "--profile", "ci", "--yes", "--lock-timeout", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        0,
        "the waiter has not started work"
    );
    drop(holder);
    let run = Run::from_output(waiter.wait_with_output().unwrap(), start.elapsed());
    run.success()
        .stderr_has("waiting for the lock")
        .stderr_has(&format!("pid {pid}"));
    assert_eq!(db.scalar("SELECT count(*) FROM clients"), 20);
    assert_eq!(db.advisory_locks(), 0, "no advisory lock remains");
}

#[test]
fn every_command_leaves_no_lock_and_no_backend_behind() {
    let db = TestDb::new("lock_left");
    for args in [
        &["reset", "--profile", "ci", "--yes"][..],
        &["migrate"],
        &["seed", "--profile", "ci", "--yes"],
        &["status"],
        &["lock", "status"],
        &["fingerprint"],
        &["protect"],
        &["unprotect"],
    ] {
        db.run(args).success();
        assert_eq!(db.advisory_locks(), 0, "after {args:?}");
        assert!(
            db.eventually(Duration::from_secs(3), |db| db.dbtool_backends() == 0),
            "a dbtool backend outlived {args:?}"
        );
    }
    // A failing command releases too.
    db.run(&["reset", "--profile", "nope", "--yes"]).code(2);
    assert_eq!(db.advisory_locks(), 0);
}

#[test]
fn lock_keys_separate_locks_and_databases_never_block_each_other() {
    let db = TestDb::new("lock_keys");
    let other = TestDb::new("lock_keys_other");
    let (_holder, _) = db.hold_lock();
    // Another database on the same server: its own advisory lock namespace.
    other
        .run(&["reset", "--profile", "ci", "--yes", "--lock-timeout", "0"])
        .success();
    // Another key on the same database.
    for key in ["12345", "0x7f", "my-team"] {
        db.run(&["migrate", "--lock-timeout", "0", "--lock-key", key])
            .success();
    }
    db.run(&["migrate", "--lock-key", "12x"]).code(2);
}
