//! `reset --profile dev`: the documented data, identical every time, serialized across
//! processes.

use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{ProjectCopy, Run, TestDb, dbtool_command, wait_until};

#[test]
fn dev_reset_seeds_the_documented_rows_and_repeats_them_exactly() {
    let db = TestDb::new("dev_reset");
    db.run(&["reset", "--profile", "dev", "--yes"]).success();

    assert_eq!(db.scalar("SELECT count(*) FROM staff"), 4);
    assert_eq!(
        db.scalar("SELECT count(*) FROM staff WHERE role = 'manager'"),
        1
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM staff WHERE role = 'receptionist'"),
        1
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM staff WHERE role = 'groomer'"),
        2
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM staff WHERE email IN ('manager@groomly.test', 'frontdesk@groomly.test', 'groomer1@groomly.test', 'groomer2@groomly.test')"),
        4,
        "the known logins"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM services"), 10);
    assert_eq!(db.scalar("SELECT count(*) FROM clients"), 100);
    assert_eq!(db.scalar("SELECT count(*) FROM invoices"), 1000);
    assert_eq!(db.scalar("SELECT count(*) FROM grooming_visits"), 1000);
    // 1-3 pets per client, 1-4 line items and 0-2 tip splits per invoice.
    let per = |sql: &str| -> (i64, i64) {
        let row = db.client().query_one(sql, &[]).unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(
        per(
            "SELECT min(n), max(n) FROM (SELECT count(p.id) n FROM clients c LEFT JOIN pets p ON p.client_id = c.id GROUP BY c.id) x"
        ),
        (1, 3)
    );
    assert_eq!(
        per(
            "SELECT min(n), max(n) FROM (SELECT count(l.line_no) n FROM invoices i LEFT JOIN invoice_line_items l ON l.invoice_id = i.id GROUP BY i.id) x"
        ),
        (1, 4)
    );
    assert_eq!(
        per(
            "SELECT min(n), max(n) FROM (SELECT count(t.split_no) n FROM invoices i LEFT JOIN tip_splits t ON t.invoice_id = i.id GROUP BY i.id) x"
        ),
        (0, 2)
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM tip_splits t JOIN staff s ON s.id = t.groomer_id WHERE s.role <> 'groomer'"),
        0,
        "tips go to groomers"
    );

    let first = db.fingerprint();
    db.run(&["reset", "--profile", "dev", "--yes"]).success();
    assert_eq!(
        db.fingerprint(),
        first,
        "a second reset gives identical data"
    );
    assert_eq!(db.advisory_locks(), 0, "no lock is left behind");
}

#[test]
fn pool_of_one_is_refused_before_any_connection_opens() {
    // Nothing listens on port 1: exit 2 (not 5) proves that no connection was attempted.
    let run = Run::of(
        dbtool_command()
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
            .args(["reset", "--profile", "dev", "--yes", "--pool-size", "1"]),
    );
    run.code(2)
        .stderr_has("one connection holds the lock")
        .stderr_has("at least 2");

    let db = TestDb::new("pool_of_one");
    db.run(&["reset", "--profile", "dev", "--yes", "--pool-size", "1"])
        .code(2);
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        0,
        "the database is untouched"
    );
    let via_env = db.run_with_env(&[("DBTOOL_POOL_SIZE", "1")], &["migrate"]);
    via_env.code(2);
}

impl TestDb {
    fn run_with_env(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut cmd = self.dbtool();
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::of(cmd.args(args))
    }
}

#[test]
fn concurrent_resets_and_seeds_serialize_and_end_with_a_lone_resets_data() {
    let lone = TestDb::new("lone_reset");
    lone.run(&["reset", "--profile", "dev", "--yes"]).success();
    let expected = lone.overall_fingerprint();

    let db = TestDb::new("racing_resets");
    db.run(&["reset", "--profile", "dev", "--yes"]).success();
    // Every process waits for the lock before any gets it: they race for it at once, however
    // the machine schedules their start.
    let (holder, _) = db.hold_lock();
    let start = Instant::now();
    let children: Vec<_> = (0..8)
        .map(|i| {
            let args: &[&str] = if i < 6 {
                &["reset", "--profile", "dev", "--yes"]
            } else {
                &["seed", "--profile", "dev", "--yes"]
            };
            let mut child = db
                .dbtool()
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn dbtool");
            let stderr = Arc::new(Mutex::new(Vec::new()));
            let mut pipe = child.stderr.take().unwrap();
            let sink = stderr.clone();
            let reader = std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().extend_from_slice(&buffer[..n]);
                }
            });
            (child, stderr, reader)
        })
        .collect();
    let all_waiting = wait_until(Duration::from_secs(120), || {
        children.iter().all(|(_, stderr, _)| {
            String::from_utf8_lossy(&stderr.lock().unwrap()).contains("waiting for the lock")
        })
    });
    assert!(all_waiting, "not every process reached the lock");
    drop(holder);
    let runs: Vec<Run> = children
        .into_iter()
        .map(|(child, stderr, reader)| {
            let mut output = child.wait_with_output().unwrap();
            reader.join().unwrap();
            output.stderr = stderr.lock().unwrap().clone();
            Run::from_output(output, start.elapsed())
        })
        .collect();
    for run in &runs {
        run.success();
        assert!(
            !run.stderr.contains("duplicate key"),
            "duplicate key: {}",
            run.stderr
        );
    }
    let waited = runs
        .iter()
        .filter(|r| r.stderr.contains("waiting for the lock"))
        .count();
    assert!(waited > 0, "eight processes at once: some must have waited");
    assert_eq!(db.overall_fingerprint(), expected);
    assert_eq!(db.advisory_locks(), 0);
}

#[test]
fn reset_drops_only_the_schemas_own_objects_and_keeps_extensions_grants_and_other_schemas() {
    let db = TestDb::new("drop_scope");
    db.client()
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS pgcrypto;
             GRANT CREATE ON SCHEMA public TO PUBLIC;
             CREATE SCHEMA other;
             CREATE TABLE other.keep (id int PRIMARY KEY);
             INSERT INTO other.keep VALUES (1);
             CREATE TABLE leftover (id int);
             CREATE VIEW leftover_view AS SELECT id FROM leftover;
             CREATE MATERIALIZED VIEW leftover_mv AS SELECT id FROM leftover;
             CREATE SEQUENCE leftover_seq;
             CREATE TYPE leftover_enum AS ENUM ('a');
             CREATE DOMAIN leftover_domain AS int CHECK (VALUE > 0);
             CREATE TYPE leftover_composite AS (a int, b text);
             CREATE FUNCTION leftover_fn() RETURNS int LANGUAGE sql AS 'SELECT 1';",
        )
        .unwrap();
    let run = db.run(&["reset", "--profile", "ci", "--yes", "--dry-run"]);
    for kind in [
        "table",
        "view",
        "materialized view",
        "sequence",
        "type",
        "domain",
        "function",
    ] {
        assert!(
            run.stdout.contains(&format!("  {kind} ")),
            "{kind} in\n{}",
            run.stdout
        );
    }
    for named in [
        "view public.leftover_view",
        "materialized view public.leftover_mv",
        "sequence public.leftover_seq",
        "type public.leftover_enum",
        "domain public.leftover_domain",
        "type public.leftover_composite",
        "function public.leftover_fn()",
    ] {
        assert!(run.stdout.contains(named), "{named} in\n{}", run.stdout);
    }
    // Objects that no dbtool reset made: the first reset needs the database named (§4).
    db.run(&["reset", "--profile", "ci", "--yes"])
        .code(4)
        .stderr_has("table public.leftover");
    db.run(&["reset", "--profile", "ci", "--yes", "--adopt", &db.name])
        .success();
    let gone = db.scalar(
        "SELECT (SELECT count(*) FROM pg_class WHERE relname LIKE 'leftover%')
              + (SELECT count(*) FROM pg_type WHERE typname LIKE 'leftover%')
              + (SELECT count(*) FROM pg_proc WHERE proname LIKE 'leftover%')",
    );
    assert_eq!(gone, 0, "every object of the schema was dropped");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'"),
        1
    );
    assert_eq!(db.scalar("SELECT count(*) FROM other.keep"), 1);
    assert_eq!(
        db.scalar("SELECT has_schema_privilege('public', 'public', 'CREATE')::int::bigint"),
        1,
        "the schema's grants stay"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' AND proname = 'gen_random_bytes'"),
        1,
        "extension functions stay"
    );
}

#[test]
fn another_schema_is_reset_without_touching_public() {
    let db = TestDb::new("other_schema");
    db.client()
        .batch_execute("CREATE TABLE untouched (id int); INSERT INTO untouched VALUES (7);")
        .unwrap();
    db.run(&["reset", "--profile", "ci", "--yes", "--schema", "app"])
        .success();
    assert_eq!(db.scalar("SELECT count(*) FROM app.clients"), 20);
    assert_eq!(db.scalar("SELECT count(*) FROM untouched"), 1);
    db.run(&["reset", "--profile", "ci", "--yes", "--schema", "app"])
        .success();
    db.run(&["status", "--schema", "app"]).success();
    db.run(&["reset", "--profile", "ci", "--yes", "--schema", "dbtool"])
        .code(2);
}

#[test]
fn skip_seed_drops_and_migrates_only() {
    let db = TestDb::new("skip_seed");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let run = db.run(&["reset", "--yes", "--skip-seed"]);
    run.success().stderr_has("nothing seeded");
    assert_eq!(db.scalar("SELECT count(*) FROM clients"), 0);
    assert_eq!(
        db.scalar("SELECT count(*) FROM dbtool.refinery_schema_history_public"),
        5
    );
    let status = db.status();
    assert!(status["unfinished"].is_null(), "{status}");
}

#[test]
fn an_enum_label_a_migration_adds_is_seeded_on_every_server_version() {
    // PostgreSQL before 17 refuses a label in the transaction that added it ("unsafe use of new
    // value"): there a cold reset commits its migrations before it seeds, and says so.
    let db = TestDb::new("enum_label");
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__client_source.sql",
        "CREATE TYPE client_source AS ENUM ('trello');\n\
         ALTER TABLE clients ADD COLUMN source client_source NOT NULL DEFAULT 'trello';",
    );
    project.write(
        "migrations/V91__github.sql",
        "ALTER TYPE client_source ADD VALUE 'github';",
    );
    project.edit(
        "seeds/seed.toml",
        "name = \"clients\"\n[tables.columns]\n",
        "name = \"clients\"\n[tables.columns]\nsource = { gen = \"cycle\", values = [\"trello\", \"github\"] }\n",
    );
    let before_17 = db.scalar("SELECT current_setting('server_version_num')::bigint / 10000") < 17;
    let plan = db.run_in(&project, &["reset", "--profile", "dev", "--dry-run"]);
    assert_eq!(
        plan.success()
            .stdout
            .contains("a cold reset commits the migrations before the seed"),
        before_17,
        "{}",
        plan.stdout
    );
    let mut fingerprints = Vec::new();
    for path in ["cold path", "warm path"] {
        let run = db.run_in(&project, &["reset", "--yes", "--profile", "dev"]);
        run.success().stderr_has(path);
        let committed = run.stderr.contains("the migrations commit before the seed");
        assert_eq!(
            committed,
            before_17 && path == "cold path",
            "{}",
            run.stderr
        );
        assert!(db.scalar("SELECT count(*) FROM clients WHERE source = 'github'") > 0);
        assert!(db.status()["unfinished"].is_null());
        fingerprints.push(db.overall_fingerprint());
    }
    assert_eq!(fingerprints[0], fingerprints[1]);
}
