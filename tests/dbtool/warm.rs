//! The warm path (DESIGN.md §4): with the migration files and the schema's catalog unchanged
//! since the last cold reset, a reset restores what the migrations left instead of dropping and
//! migrating, and its result is byte-identical to a cold reset's.

use crate::support::{ProjectCopy, TestDb};

fn reset(db: &TestDb, project: &ProjectCopy, extra: &[&str]) -> String {
    let mut args = vec!["reset", "--profile", "dev", "--yes"];
    let dirs = project.dirs();
    args.extend(dirs.iter().map(String::as_str));
    args.extend(extra);
    db.run(&args).success().stderr.clone()
}

/// The application's schema and data, and the migration histories without their timestamps.
fn state(db: &TestDb) -> String {
    let mut state = db.dump(&["-n", "public"]);
    let mut client = db.client();
    for row in client
        .query(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
             WHERE schemaname = 'dbtool' AND tablename NOT IN ('meta', 'warm_rows') ORDER BY 1",
            &[],
        )
        .unwrap()
    {
        let table: String = row.get(0);
        let rows: String = client
            .query_one(
                &format!(
                    "SELECT coalesce(string_agg(concat_ws(' ', version, name, checksum), E'\\n' \
                     ORDER BY version), '') FROM {table}"
                ),
                &[],
            )
            .unwrap()
            .get(0);
        state.push_str(&format!("\n{table}\n{rows}"));
    }
    state
}

#[track_caller]
fn assert_path(stderr: &str, path: &str) {
    assert!(stderr.contains(&format!("{path} path")), "{stderr}");
}

fn warm_equals_cold(db: &TestDb, project: &ProjectCopy) {
    assert_path(&reset(db, project, &[]), "cold");
    assert_path(&reset(db, project, &[]), "warm");
    // A warm reset after a warm reset is warm: the load leaves the catalog as it found it.
    assert_path(&reset(db, project, &[]), "warm");
    let warm = state(db);
    let fingerprint = db.overall_fingerprint();
    assert_path(&reset(db, project, &["--cold"]), "cold");
    assert_eq!(
        state(db),
        warm,
        "a warm reset's dump differs from a cold reset's"
    );
    assert_eq!(db.overall_fingerprint(), fingerprint);
}

#[test]
fn warm_reset_of_the_example_app_dumps_exactly_as_a_cold_reset() {
    let db = TestDb::new("warm_example");
    warm_equals_cold(&db, &ProjectCopy::new());
}

#[test]
fn warm_reset_restores_the_rows_and_sequences_the_migrations_left() {
    let db = TestDb::new("warm_migration_rows");
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__reference_data.sql",
        "CREATE TABLE plans (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
         INSERT INTO plans (name) VALUES ('basic'), ('plus'), ('premium');
         UPDATE plans SET name = 'standard' WHERE name = 'basic';
         SELECT setval('plans_id_seq', 40);
         CREATE TABLE plan_prices (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             plan_id int NOT NULL REFERENCES plans,
             cents int NOT NULL,
             euros numeric GENERATED ALWAYS AS (cents / 100.0) STORED
         );
         INSERT INTO plan_prices (plan_id, cents) SELECT id, id * 1000 FROM plans;
         CREATE SEQUENCE ticket_no START 1000;
         SELECT nextval('ticket_no'), nextval('ticket_no');
         CREATE SEQUENCE untouched_no;
         CREATE TABLE empty_audit (id serial PRIMARY KEY, note text);",
    );
    warm_equals_cold(&db, &project);
    assert_eq!(db.scalar("SELECT count(*) FROM plan_prices"), 3);
    assert_eq!(db.scalar("SELECT nextval('ticket_no')"), 1002);
    assert_eq!(db.scalar("SELECT nextval('plans_id_seq')"), 41);
}

#[test]
fn a_schema_changed_by_hand_takes_the_cold_path_and_says_why() {
    let db = TestDb::new("warm_changed_by_hand");
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__function.sql",
        "CREATE FUNCTION visit_label(v text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'visit ' || v $$;",
    );
    reset(&db, &project, &[]);
    let changes = [
        "ALTER TABLE clients ADD COLUMN nickname text",
        "DROP INDEX pets_client_id_idx",
        "CREATE OR REPLACE FUNCTION visit_label(v text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'Visit ' || v $$",
    ];
    for change in changes {
        assert_path(&reset(&db, &project, &[]), "warm");
        db.client().batch_execute(change).unwrap();
        let dirs = project.dirs();
        let mut status = vec!["status", "--json"];
        status.extend(dirs.iter().map(String::as_str));
        let status: serde_json::Value =
            serde_json::from_str(&db.run(&status).success().stdout).unwrap();
        let next = status["next_reset"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(next.contains("catalog digest differs"), "{change}: {next}");
        let stderr = reset(&db, &project, &[]);
        assert_path(&stderr, "cold");
        assert!(
            stderr.contains("catalog digest differs"),
            "{change}: {stderr}"
        );
    }
    // The cold reset undid the change; a dry run says the next reset is warm.
    let dirs = project.dirs();
    let mut args = vec!["reset", "--profile", "dev", "--yes", "--dry-run"];
    args.extend(dirs.iter().map(String::as_str));
    let plan = db.run(&args).success().stdout.clone();
    assert!(plan.contains("path: warm"), "{plan}");
    args.push("--cold");
    let plan = db.run(&args).success().stdout.clone();
    assert!(
        plan.contains("path: cold (drop and migrate): --cold"),
        "{plan}"
    );
}

#[test]
fn changed_migration_files_take_the_cold_path() {
    let db = TestDb::new("warm_changed_files");
    let project = ProjectCopy::new();
    reset(&db, &project, &[]);
    project.write(
        "migrations/V90__more.sql",
        "CREATE TABLE notes (id serial PRIMARY KEY);",
    );
    let stderr = reset(&db, &project, &[]);
    assert_path(&stderr, "cold");
    assert!(stderr.contains("the migration files changed"), "{stderr}");
    assert_eq!(db.scalar("SELECT count(*) FROM notes"), 0);
}
