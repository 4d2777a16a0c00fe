//! Faults (DESIGN.md §3, invariants 6-8): whatever happens to the process, its connections or
//! the server, dbtool never reports success for unfinished work, never leaves a lock or a backend
//! behind, and never hangs.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    Run, TestDb, TestServer, dbtool_command, free_port, server_command, server_dir, wait_until,
};

/// A reset big enough (about 1.2 million rows) that faults land while it seeds.
fn start_big_reset(db: &TestDb, extra: &[&str]) -> Child {
    db.dbtool()
        .args(["reset", "--profile", "bench", "--yes"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dbtool")
}

/// Waits until a dbtool backend of `db` is running a COPY: the reset is seeding.
fn wait_for_seeding(db: &TestDb, child: &mut Child) {
    let seeding = wait_until(Duration::from_secs(60), || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "dbtool ended before seeding"
        );
        db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name LIKE 'dbtool%' AND query LIKE 'COPY%' AND state = 'active'",
        ) > 0
    });
    assert!(seeding, "the reset never started seeding");
}

fn lock_holder_pid(db: &TestDb) -> i32 {
    db.client()
        .query_one(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .unwrap()
        .get(0)
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn finish(child: Child, started: Instant) -> Run {
    Run::from_output(child.wait_with_output().unwrap(), started.elapsed())
}

/// No lock and no dbtool backend within five seconds.
fn assert_clean(db: &TestDb) {
    assert!(
        db.eventually(Duration::from_secs(5), |db| db.advisory_locks() == 0
            && db.dbtool_backends() == 0),
        "locks {} dbtool backends {}",
        db.advisory_locks(),
        db.dbtool_backends()
    );
}

#[test]
fn kill_9_mid_seed_frees_the_lock_and_the_next_reset_succeeds() {
    let db = TestDb::new("kill9");
    let mut child = start_big_reset(&db, &[]);
    wait_for_seeding(&db, &mut child);
    signal(&child, "KILL");
    let _ = child.wait();
    assert_clean(&db);
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
}

#[test]
fn sigterm_and_sigint_mid_seed_cancel_release_and_exit_143_130() {
    for (name, code) in [("TERM", 143), ("INT", 130)] {
        let db = TestDb::new(&format!("sig{name}"));
        let mut child = start_big_reset(&db, &[]);
        wait_for_seeding(&db, &mut child);
        let sent = Instant::now();
        signal(&child, name);
        let run = finish(child, sent);
        run.code(code).stderr_has("interrupted");
        // "Within a few seconds"; a stop that hung would never end, and a loaded machine
        // must not fail the test.
        assert!(
            run.elapsed < Duration::from_secs(30),
            "took {:?}",
            run.elapsed
        );
        assert_clean(&db);
        assert!(
            run.stderr.contains("lock") && run.stderr.contains("released"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_terminated_lock_backend_stops_the_work_with_exit_8() {
    let db = TestDb::new("fenced");
    let mut child = start_big_reset(&db, &[]);
    wait_for_seeding(&db, &mut child);
    let holder = lock_holder_pid(&db);
    let killed = Instant::now();
    db.client()
        .execute("SELECT pg_terminate_backend($1)", &[&holder])
        .unwrap();
    let run = finish(child, killed);
    run.code(8).stderr_has("lock was lost");
    // A watchdog that never fired would never end; 30 s is for a loaded machine.
    assert!(
        run.elapsed < Duration::from_secs(30),
        "took {:?}",
        run.elapsed
    );
    assert_clean(&db);
}

#[test]
fn a_blocked_drop_times_out_with_exit_7_naming_the_blocker() {
    let db = TestDb::new("ddl_timeout");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let before = db.overall_fingerprint();
    let mut blocker = db.client();
    blocker
        .batch_execute(
            "SET application_name = 'report-job'; BEGIN; LOCK TABLE staff IN ACCESS SHARE MODE;",
        )
        .unwrap();
    let pid: i32 = blocker
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let reset = [
        "reset",
        "--profile",
        "ci",
        "--yes",
        "--ddl-lock-timeout",
        "2s",
    ];
    let run = db.run(&reset);
    run.code(7)
        .stderr_has(&format!("pid {pid}"))
        .stderr_has("report-job");
    assert!(run.elapsed < Duration::from_secs(10));
    // A pool of two has no connection to spare for sampling: the lock holders are named.
    let small = [&reset[..], &["--pool-size", "2"]].concat();
    db.run(&small).code(7).stderr_has(&format!("pid {pid}"));
    blocker.batch_execute("ROLLBACK").unwrap();
    assert_eq!(
        db.overall_fingerprint(),
        before,
        "the drop rolled back whole"
    );
    assert_eq!(db.advisory_locks(), 0);
    db.run(&reset).success();
}

#[test]
fn statement_timeout_applies_to_work_statements() {
    let db = TestDb::new("statement_timeout");
    let run = Run::of(db.dbtool().args([
        "reset",
        "--profile",
        "bench",
        "--yes",
        "--statement-timeout",
        "100ms",
    ]));
    run.code(7).stderr_has("statement timeout");
    assert_eq!(db.advisory_locks(), 0);
}

#[test]
fn a_server_that_starts_late_is_waited_for() {
    let server = TestServer::init();
    let url = server.url();
    let started = Instant::now();
    let child = dbtool_command()
        .env("DATABASE_URL", &url)
        .args(["reset", "--profile", "ci", "--yes", "--wait-for-db", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    server.start();
    let run = finish(child, started);
    run.success();
    assert!(run.elapsed >= Duration::from_secs(3));
}

#[test]
fn a_server_restart_mid_seed_is_a_clean_failure_and_the_next_reset_succeeds() {
    let server = TestServer::init();
    server.start();
    let db = TestDb {
        name: "postgres".into(),
        url: server.url(),
    };
    let mut child = start_big_reset(&db, &[]);
    wait_for_seeding(&db, &mut child);
    let restarted = Instant::now();
    server.restart();
    let run = finish(child, restarted);
    assert_ne!(
        run.code, 0,
        "success after a restart mid-seed:\n{}",
        run.stderr
    );
    run.no_crash();
    assert!(
        run.elapsed < Duration::from_secs(30),
        "took {:?}",
        run.elapsed
    );
    db.run(&["reset", "--profile", "ci", "--yes", "--wait-for-db", "30s"])
        .success();
    std::mem::forget(db); // the server goes away with its directory
}

/// PgBouncer in front of the test server, in the given pool mode.
struct Bouncer {
    port: u16,
    dir: tempfile::TempDir,
}

impl Bouncer {
    fn start(mode: &str) -> Self {
        let binary = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("pgbouncer is needed for this test; scripts/test.sh installs Debian's package");
        let admin = postgres::Config::from_str_url(&crate::support::admin_url());
        let dir = server_dir();
        let port = free_port();
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host={} port={} user=postgres\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = any\npool_mode = {mode}\nmax_client_conn = 200\n\
                 default_pool_size = 20\nignore_startup_parameters = extra_float_digits,options\n\
                 pidfile = {}\nlogfile = {}\n",
                admin.0,
                admin.1,
                dir.path().join("pgbouncer.pid").display(),
                dir.path().join("pgbouncer.log").display(),
            ),
        )
        .unwrap();
        let _ = std::process::Command::new("chmod")
            .args(["a+r", &ini.display().to_string()])
            .status();
        let out = server_command(std::path::Path::new(binary))
            .arg("-d")
            .arg(&ini)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pgbouncer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }));
        Bouncer { port, dir }
    }

    fn url(&self, db: &TestDb) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, db.name)
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("pgbouncer.pid")) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", pid.trim()])
                .status();
        }
    }
}

trait HostPort {
    fn from_str_url(url: &str) -> (String, u16);
}

impl HostPort for postgres::Config {
    /// The host and port of a postgres:// URL.
    fn from_str_url(url: &str) -> (String, u16) {
        let config: postgres::Config = url.parse().expect("TEST_DATABASE_URL parses");
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".into(),
        };
        (host, config.get_ports().first().copied().unwrap_or(5432))
    }
}

#[test]
fn a_transaction_pooling_proxy_is_refused_and_session_pooling_works() {
    let db = TestDb::new("bouncer");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let before = db.overall_fingerprint();

    // Each command, twice: the refusal must not depend on which server session the proxy hands
    // out, and must leave no lock behind on the proxy's server sessions.
    let transaction = Bouncer::start("transaction");
    for args in [
        &["reset", "--profile", "dev", "--yes"][..],
        &["seed", "--profile", "dev", "--yes"],
        &["migrate"],
    ]
    .iter()
    .flat_map(|args| [args, args])
    {
        let run = Run::of(
            dbtool_command()
                .env("DATABASE_URL", transaction.url(&db))
                .args(*args),
        );
        run.code(2)
            .stderr_has("pool_mode=transaction")
            .stderr_has("DATABASE_URL");
        assert_eq!(db.overall_fingerprint(), before, "data unchanged");
        assert_eq!(db.advisory_locks(), 0, "no lock left on a server session");
    }
    drop(transaction);

    let session = Bouncer::start("session");
    Run::of(
        dbtool_command()
            .env("DATABASE_URL", session.url(&db))
            .args(["reset", "--profile", "dev", "--yes"]),
    )
    .success();
    assert_eq!(db.scalar("SELECT count(*) FROM clients"), 100);
}

#[test]
fn a_second_signal_exits_at_once_when_the_graceful_stop_is_stuck() {
    let db = TestDb::new("sig_twice");
    let mut child = start_big_reset(&db, &[]);
    wait_for_seeding(&db, &mut child);
    // Freeze the backend that holds the lock: the unlock of a graceful stop now hangs.
    let holder = lock_holder_pid(&db).to_string();
    let kill = |args: &[&str]| {
        assert!(
            std::process::Command::new("kill")
                .args(args)
                .status()
                .unwrap()
                .success()
        );
    };
    kill(&["-STOP", &holder]);
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(1500));
    let stuck = child.try_wait().unwrap().is_none();
    let second = Instant::now();
    if stuck {
        signal(&child, "TERM");
    }
    let run = finish(child, second);
    kill(&["-CONT", &holder]);
    assert!(
        stuck,
        "the graceful stop should have waited for the frozen backend:\n{}",
        run.stderr
    );
    assert_eq!(run.code, 143, "{}", run.stderr);
    run.stderr_has("exiting now");
    // The graceful stop waits for the frozen backend forever: any bound tells them apart.
    assert!(
        run.elapsed < Duration::from_secs(30),
        "took {:?}",
        run.elapsed
    );
    assert_clean(&db);
}
