//! All or nothing (DESIGN.md §3 invariant 10): a reset or seed that fails, is killed, or is
//! refused leaves the whole database, dbtool.meta included, exactly as it was; readers see the
//! old data or the new, never a part.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::{ProjectCopy, TestDb, changes_nothing, wait_until};

fn reset_with(db: &TestDb, project: &ProjectCopy, extra: &[&str]) -> crate::support::Run {
    let mut args = vec!["reset", "--profile", "dev", "--yes"];
    args.extend_from_slice(extra);
    db.run_in(project, &args)
}

#[test]
fn a_failure_in_any_phase_leaves_the_whole_database_as_it_was() {
    let db = TestDb::new("atomic_phases");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();

    // drop: a session holds a lock on a table for longer than --ddl-lock-timeout.
    let mut reader = db.client();
    let mut tx = reader.transaction().unwrap();
    tx.execute("SELECT 1 FROM clients LIMIT 1", &[]).unwrap();
    let project = ProjectCopy::new();
    let stderr = changes_nothing(&db, 7, || {
        reset_with(&db, &project, &["--ddl-lock-timeout", "1s"])
    });
    assert!(stderr.contains("ddl-lock-timeout"), "{stderr}");
    tx.rollback().unwrap();

    // migrate, load, rebuild, sequences: a migration that fails, or that the data breaks.
    let cases = [
        (
            "migrate",
            "CREATE TABLE loyalty (id int);\nSELEC 1;\n",
            6,
            "line: 2",
        ),
        (
            "load",
            "ALTER TABLE invoice_line_items ADD CONSTRAINT small_orders CHECK (quantity < 2);\n",
            7,
            "small_orders",
        ),
        (
            "rebuild",
            "CREATE UNIQUE INDEX one_line_per_quantity ON invoice_line_items (quantity);\n",
            7,
            "one_line_per_quantity",
        ),
        (
            "sequences",
            "ALTER TABLE clients ALTER COLUMN id SET MAXVALUE 5;\n",
            7,
            "sequences",
        ),
    ];
    for (phase, sql, code, named) in cases {
        let project = ProjectCopy::new();
        project.write("migrations/V90__injected.sql", sql);
        let stderr = changes_nothing(&db, code, || reset_with(&db, &project, &[]));
        assert!(stderr.contains(named), "{phase}: {stderr}");
        assert!(stderr.contains("rolled back"), "{phase}: {stderr}");
    }

    // record: dbtool.meta refuses the new record (a trigger outside the application's schema).
    db.client()
        .batch_execute(
            "CREATE SCHEMA guard;
             CREATE FUNCTION guard.no_record() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'no new record today'; END $$;
             CREATE TRIGGER no_record BEFORE INSERT OR UPDATE ON dbtool.meta
               FOR EACH ROW EXECUTE FUNCTION guard.no_record();",
        )
        .unwrap();
    let stderr = changes_nothing(&db, 7, || reset_with(&db, &ProjectCopy::new(), &[]));
    assert!(stderr.contains("no new record today"), "{stderr}");
    db.client()
        .batch_execute("DROP SCHEMA guard CASCADE")
        .unwrap();
    db.run(&["reset", "--profile", "dev", "--yes"]).success();
}

#[test]
fn a_seed_that_fails_midway_leaves_every_row_as_it_was() {
    let db = TestDb::new("atomic_seed");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    // A statement that always outlasts the timeout (no race with how fast the machine is).
    let slow = ProjectCopy::new();
    slow.write("seeds/zz_slow.sql", "SELECT pg_sleep(30);\n");
    let stderr = changes_nothing(&db, 7, || {
        db.run_in(
            &slow,
            &[
                "seed",
                "--profile",
                "demo",
                "--yes",
                "--statement-timeout",
                "100ms",
            ],
        )
    });
    assert!(stderr.contains("statement timeout"), "{stderr}");
    // A value outside an enum is found from the catalog before anything changes (exit 2).
    let project = ProjectCopy::new();
    let spec = std::fs::read_to_string(project.path("seeds/seed.toml")).unwrap();
    project.write(
        "seeds/seed.toml",
        &spec.replace(
            "\"paid\", \"open\", \"draft\", \"void\"",
            "\"paid\", \"open\", \"draft\", \"gone\"",
        ),
    );
    let stderr = changes_nothing(&db, 2, || {
        db.run_in(&project, &["seed", "--profile", "ci", "--yes"])
    });
    assert!(stderr.contains("gone"), "{stderr}");
    // A value the column rejects only when it arrives: named by table, column and row.
    db.client()
        .batch_execute(
            "TRUNCATE clients CASCADE; ALTER TABLE clients ALTER COLUMN email TYPE varchar(12)",
        )
        .unwrap();
    let stderr = changes_nothing(&db, 7, || db.run(&["seed", "--profile", "ci", "--yes"]));
    for named in ["clients", "column email", "row 0", "too long"] {
        assert!(stderr.contains(named), "{named}: {stderr}");
    }
}

#[test]
fn a_bad_fixed_row_names_its_csv_file_and_line_and_changes_nothing() {
    let db = TestDb::new("atomic_fixed");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let project = ProjectCopy::new();
    let csv = std::fs::read_to_string(project.path("seeds/data/staff.csv")).unwrap();
    let mut lines: Vec<String> = csv.lines().map(String::from).collect();
    lines[2] = lines[2].replace("2021-06-14", "2021-02-30");
    project.write("seeds/data/staff.csv", &(lines.join("\n") + "\n"));
    let stderr = changes_nothing(&db, 7, || reset_with(&db, &project, &[]));
    for named in ["staff", "column hired_on", "staff.csv line 3", "2021-02-30"] {
        assert!(stderr.contains(named), "{named}: {stderr}");
    }
}

/// A small deterministic generator for the kill moments, so a failure can be replayed.
fn moments(seed: u64, count: usize, max_ms: u64) -> Vec<u64> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % max_ms
        })
        .collect()
}

#[test]
fn kill_9_at_any_moment_leaves_the_old_data_or_the_new() {
    let db = TestDb::new("atomic_kill");
    let reference = TestDb::new("atomic_kill_ref");
    reference
        .run(&["reset", "--profile", "demo", "--yes"])
        .success();
    let demo = reference.overall_fingerprint();
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let ci = db.overall_fingerprint();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill moments from seed {seed}");
    let mut old = ci.clone();
    for (i, delay) in moments(seed, 10, 3000).into_iter().enumerate() {
        let (profile, new) = if i % 2 == 0 {
            ("demo", &demo)
        } else {
            ("ci", &ci)
        };
        let mut child = db
            .dbtool()
            .args(["reset", "--profile", profile, "--yes"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert!(
            db.eventually(Duration::from_secs(5), |db| db.dbtool_backends() == 0
                && db.advisory_locks() == 0),
            "kill after {delay} ms: a dbtool backend or the lock outlived the process"
        );
        let now = db.overall_fingerprint();
        assert!(
            now == old || &now == new,
            "kill after {delay} ms: the data is neither the old ({old}) nor the new ({new}): {now}"
        );
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_constraint WHERE NOT convalidated"),
            0
        );
        old = now;
    }
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    assert_eq!(db.overall_fingerprint(), ci);
}

#[test]
fn readers_never_see_an_error_or_a_partial_data_set() {
    let db = TestDb::new("atomic_readers");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let counts = |profile: &str| {
        let run = db.run(&["profiles", "--json"]);
        let all: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let p = all
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == profile)
            .unwrap()
            .clone();
        (
            p["tables"]["clients"].as_i64().unwrap(),
            p["tables"]["invoice_line_items"].as_i64().unwrap(),
        )
    };
    let allowed = [counts("ci"), counts("dev")];
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        let mut client = db.client();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let row = client.query_one(
                    "SELECT (SELECT count(*) FROM clients), (SELECT count(*) FROM invoice_line_items)",
                    &[],
                );
                seen.push(row.map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1))));
            }
            seen
        })
    };
    for profile in ["dev", "ci", "dev", "ci"] {
        db.run(&["reset", "--profile", profile, "--yes"]).success();
    }
    done.store(true, Ordering::Relaxed);
    let seen = reader.join().unwrap();
    assert!(seen.len() > 4, "the reader ran {} queries", seen.len());
    for result in seen {
        let pair = result.expect("a reader's query failed during a reset");
        assert!(allowed.contains(&pair), "a partial data set: {pair:?}");
    }
}

/// The example's schema as pg_dump writes it (what Rails' structure.sql and schema dumps look
/// like): every name qualified with public, search_path emptied, psql restrict lines.
fn structure_sql(quoted: bool) -> String {
    let db = TestDb::new("atomic_structure");
    db.run(&["migrate"]).success();
    let out = std::process::Command::new(crate::support::pg_dump())
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--schema",
            "public",
            "--exclude-table",
            "refinery_schema_history",
            &db.url,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let sql = String::from_utf8(out.stdout).unwrap();
    // The pg_dump is the newest (scripts/test.sh); the server's own would not write a setting
    // the server lacks.
    let sql = if db.scalar("SELECT current_setting('server_version_num')::bigint") < 170_000 {
        sql.lines()
            .filter(|l| !l.starts_with("SET transaction_timeout"))
            .map(|l| format!("{l}\n"))
            .collect()
    } else {
        sql
    };
    if quoted {
        sql.replace("public.", "\"public\".")
    } else {
        sql
    }
}

#[test]
fn migrations_that_qualify_names_or_wrap_themselves_in_begin_commit_reset_cleanly() {
    let golden = {
        let db = TestDb::new("atomic_golden");
        db.run(&["reset", "--profile", "dev", "--yes"]).success();
        db.overall_fingerprint()
    };
    for (quoted, wrapped) in [(false, false), (true, true)] {
        let db = TestDb::new("atomic_dumped");
        let project = ProjectCopy::new();
        for entry in std::fs::read_dir(project.path("migrations")).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let mut sql = structure_sql(quoted);
        if wrapped {
            sql = format!("BEGIN;\n{sql}\nCOMMIT;\n");
        }
        project.write("migrations/V1__structure.sql", &sql);
        db.run_in(&project, &["reset", "--profile", "dev", "--yes"])
            .success();
        assert_eq!(db.overall_fingerprint(), golden);
        // Twice: the second reset drops what the first created.
        db.run_in(&project, &["reset", "--profile", "dev", "--yes"])
            .success();
        assert_eq!(
            db.scalar(
                "SELECT count(*) FROM pg_namespace WHERE nspname NOT IN ('public', 'dbtool') \
                 AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
            ),
            0
        );
    }
}

#[test]
fn create_index_concurrently_is_refused_before_anything_changes_unless_marked() {
    let db = TestDb::new("atomic_concurrently");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let project = ProjectCopy::new();
    let sql = "CREATE INDEX CONCURRENTLY clients_by_email ON clients (email);\n";
    project.write(
        "migrations/V90__index.sql",
        &format!("-- an index\n\n{sql}"),
    );
    let stderr = changes_nothing(&db, 6, || reset_with(&db, &project, &[]));
    assert!(stderr.contains("V90__index.sql:3"), "{stderr}");
    assert!(stderr.contains("-- no-transaction"), "{stderr}");
    let stderr = changes_nothing(&db, 6, || db.run_in(&project, &["migrate"]));
    assert!(stderr.contains("CONCURRENTLY"), "{stderr}");

    project.write(
        "migrations/V90__index.sql",
        &format!("-- no-transaction\n{sql}"),
    );
    let run = reset_with(&db, &project, &[]);
    run.success().stderr_has("not all or nothing");
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE c.relname = 'clients_by_email' AND i.indisvalid"
        ),
        1
    );
    let status = db.status();
    assert!(status["unfinished"].is_null(), "{status}");
    assert_eq!(status["last_reset"]["profile"], "dev");
}

fn keys_and_indexes(db: &TestDb) -> (i64, i64, i64) {
    (
        db.scalar(
            "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
             WHERE n.nspname = 'public' AND c.contype IN ('p', 'u', 'f')",
        ),
        db.scalar("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'"),
        db.scalar("SELECT count(*) FROM pg_constraint WHERE NOT convalidated"),
    )
}

#[test]
fn a_parallel_reset_loads_the_same_data_and_a_failure_leaves_the_schema_whole() {
    let db = TestDb::new("atomic_parallel");
    db.run(&["reset", "--profile", "dev", "--yes"]).success();
    let golden = db.overall_fingerprint();
    let whole = keys_and_indexes(&db);
    assert_eq!(whole.2, 0);
    db.run(&["reset", "--profile", "dev", "--yes", "--parallel", "3"])
        .success()
        .stderr_has("not all or nothing");
    assert_eq!(db.overall_fingerprint(), golden);
    assert_eq!(keys_and_indexes(&db), whole);

    db.run(&["reset", "--profile", "dev", "--yes", "--parallel", "9"])
        .code(2)
        .stderr_has("--pool-size");

    // A failure during the parallel load: every key, index and foreign key back and valid, the
    // seeded tables empty, the reset marked unfinished and never skipped over.
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__small_orders.sql",
        "ALTER TABLE invoice_line_items ADD CONSTRAINT small_orders CHECK (quantity < 2);\n",
    );
    reset_with(&db, &project, &["--parallel", "2"])
        .code(7)
        .stderr_has("small_orders");
    assert_eq!(keys_and_indexes(&db), whole);
    assert_eq!(db.scalar("SELECT count(*) FROM invoice_line_items"), 0);
    db.assert_unfinished_and_never_skipped();
    assert_eq!(db.overall_fingerprint(), golden);
}

#[test]
fn a_parallel_reset_killed_mid_load_is_repaired_by_the_next_migrate() {
    let db = TestDb::new("atomic_parallel_kill");
    db.run(&["reset", "--profile", "dev", "--yes"]).success();
    let whole = keys_and_indexes(&db);
    let mut child = db
        .dbtool()
        .args(["reset", "--profile", "demo", "--yes", "--parallel", "2"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the load has started (its keys are set aside), then kill.
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || {
            db.scalar("SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'") < whole.1
        }),
        "the parallel load never set the keys aside"
    );
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("killed after {:?}", started.elapsed());
    assert!(db.eventually(Duration::from_secs(5), |db| db.dbtool_backends() == 0));
    db.run(&["migrate"])
        .success()
        .stderr_has("putting them back");
    assert_eq!(keys_and_indexes(&db), whole);
}

#[test]
fn a_migration_that_changes_search_path_or_drops_its_schema_cannot_break_the_reset() {
    let db = TestDb::new("atomic_search_path");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let fingerprint = db.overall_fingerprint();
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__elsewhere.sql",
        "CREATE SCHEMA IF NOT EXISTS reporting;\nSET search_path TO reporting;\n\
         CREATE TABLE daily (day date);\nSELECT pg_catalog.set_config('search_path', '', false);\n",
    );
    reset_with(&db, &project, &[]).success();
    assert_eq!(db.scalar("SELECT count(*) FROM reporting.daily"), 0);
    assert_eq!(
        db.scalar("SELECT count(*) FROM dbtool.refinery_schema_history_public"),
        6
    );

    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__start_over.sql",
        "DROP SCHEMA public CASCADE;\nCREATE SCHEMA public;\n",
    );
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let stderr = changes_nothing(&db, 6, || reset_with(&db, &project, &[]));
    // Refused before it runs, by its line; were it hidden from the checks, the history
    // check after the file would catch it.
    assert!(
        stderr.contains("V90__start_over.sql:1") && stderr.contains("history table"),
        "{stderr}"
    );
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__start_over.sql",
        "DO $$ BEGIN EXECUTE 'DROP SCHEMA public CASCADE'; END $$;\nCREATE SCHEMA public;\n",
    );
    let stderr = changes_nothing(&db, 6, || reset_with(&db, &project, &[]));
    // refinery's history is in schema dbtool now: the schema itself is what it dropped.
    assert!(stderr.contains("dropped schema public"), "{stderr}");
    assert_eq!(db.overall_fingerprint(), fingerprint);
}

#[test]
fn a_no_transaction_marker_after_a_byte_order_mark_is_not_all_or_nothing_and_never_claims_as_it_was()
 {
    let db = TestDb::new("atomic_bom");
    db.run(&["reset", "--profile", "dev", "--yes"]).success();
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__outside.sql",
        "\u{feff}-- no-transaction\nCREATE TABLE outside_marker (id int);\n",
    );
    project.write("migrations/V91__fails.sql", "SELECT 1 / 0;\n");
    let run = reset_with(&db, &project, &[]);
    run.code(6).stderr_has("not all or nothing");
    assert!(!run.stderr.contains("as it was"), "{}", run.stderr);
    // What ran before the marked file is committed, and the reset says it did not finish.
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_class WHERE relname = 'outside_marker'"),
        1
    );
    db.assert_unfinished_and_never_skipped();
}

#[test]
fn a_parallel_reset_that_fails_before_any_change_leaves_no_unfinished_mark() {
    let db = TestDb::new("atomic_parallel_refused");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    // A reader the drop waits for, past --ddl-lock-timeout.
    let mut reader = db.client();
    reader
        .batch_execute("BEGIN; LOCK TABLE clients IN ACCESS SHARE MODE")
        .unwrap();
    let stderr = changes_nothing(&db, 7, || {
        db.run(&[
            "reset",
            "--profile",
            "dev",
            "--yes",
            "--parallel",
            "3",
            "--ddl-lock-timeout",
            "300ms",
        ])
    });
    assert!(stderr.contains("as it was"), "{stderr}");
    reader.batch_execute("ROLLBACK").unwrap();
    let status = db.status();
    assert!(status["unfinished"].is_null(), "{status}");
    assert_eq!(status["last_reset"]["profile"], "ci");
}
