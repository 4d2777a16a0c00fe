//! Migrations read at run time: idempotent, extensible, strict about names and history.

use crate::support::{ProjectCopy, TestDb};

fn migrate(db: &TestDb, project: &ProjectCopy) -> crate::support::Run {
    db.run_in(project, &["migrate"])
}

#[test]
fn migrate_is_idempotent_and_records_refinery_history() {
    let db = TestDb::new("migrate_twice");
    db.run(&["migrate"]).success();
    assert_eq!(
        db.scalar("SELECT count(*) FROM dbtool.refinery_schema_history_public"),
        5
    );
    let again = db.run(&["migrate"]);
    again.success().stderr_has("0 applied");
    assert_eq!(
        db.scalar("SELECT count(*) FROM dbtool.refinery_schema_history_public"),
        5
    );
    assert!(
        db.run(&["migrate", "--dry-run"])
            .success()
            .stdout
            .contains("migrate: 0 to apply")
    );
}

#[test]
fn a_new_file_in_another_directory_applies_at_run_time() {
    let db = TestDb::new("migrate_extra");
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__loyalty_points.sql",
        "ALTER TABLE clients ADD COLUMN loyalty_points integer NOT NULL DEFAULT 0;\n",
    );
    migrate(&db, &project).success();
    assert_eq!(
        db.scalar("SELECT count(*) FROM information_schema.columns WHERE table_name = 'clients' AND column_name = 'loyalty_points'"),
        1
    );
}

#[test]
fn a_changed_applied_migration_exits_6() {
    let db = TestDb::new("migrate_divergent");
    db.run(&["migrate"]).success();
    let project = ProjectCopy::new();
    let v1 = project.path("migrations/V1__staff_and_services.sql");
    let text = std::fs::read_to_string(&v1).unwrap();
    std::fs::write(
        &v1,
        format!("{text}\nCREATE INDEX staff_last_name_idx ON staff (last_name);\n"),
    )
    .unwrap();
    migrate(&db, &project)
        .code(6)
        .stderr_has("V1__staff_and_services");
}

#[test]
fn a_missing_applied_migration_exits_6() {
    let db = TestDb::new("migrate_missing");
    db.run(&["migrate"]).success();
    let project = ProjectCopy::new();
    std::fs::remove_file(project.path("migrations/V4__grooming_visits.sql")).unwrap();
    migrate(&db, &project).code(6).stderr_has("missing");
}

#[test]
fn a_badly_named_file_exits_2_and_changes_nothing() {
    let db = TestDb::new("migrate_badname");
    let project = ProjectCopy::new();
    project.write("migrations/add_loyalty.sql", "SELECT 1;\n");
    migrate(&db, &project).code(2).stderr_has("add_loyalty.sql");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        0
    );
    let project = ProjectCopy::new();
    project.write("migrations/V90_missing_underscore.sql", "SELECT 1;\n");
    migrate(&db, &project).code(2);
}

#[test]
fn an_sql_error_exits_6_with_line_and_column() {
    let db = TestDb::new("migrate_sqlerror");
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__broken.sql",
        "CREATE TABLE loyalty (id int);\nSELEC 1;\n",
    );
    let run = migrate(&db, &project);
    run.code(6)
        .stderr_has("V90__broken")
        .stderr_has("line: 2, column: 1");
    // migrate is one transaction: the good migrations before it were rolled back with it.
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        0
    );
}

#[test]
fn a_failing_no_transaction_migration_names_its_line_and_what_it_committed() {
    let db = TestDb::new("migrate_outside_fails");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__outside.sql",
        "-- no-transaction\nCREATE TABLE nt_a (id int);\nCREATE TABLE nt_b (id int);\n\nSELECT 1 / 0;\n",
    );
    let run = db.run_in(&project, &["migrate"]);
    run.code(6)
        .stderr_has("statement 3 of 3 at line 5")
        .stderr_has("division by zero")
        .stderr_has("(line 2, line 3)")
        .stderr_has("undo those statements");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_class WHERE relname IN ('nt_a', 'nt_b')"),
        2
    );
}
