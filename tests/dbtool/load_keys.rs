//! Keys and indexes during an atomic load: small tables keep theirs (cheaper than dropping and
//! rebuilding them), large ones have them set aside and rebuilt in one batch; either way the
//! schema ends exactly as the migrations made it, and a row that breaks a key fails the whole
//! reset, naming the row or the statement.

use crate::support::{ProjectCopy, TestDb, changes_nothing};

/// The dev profile with enough invoices that invoice_line_items (about 2.5 lines an invoice)
/// passes 5,000 rows, the size from which an atomic load sets a table's keys aside.
const LARGER_DEV: &str = r#"description = "dev, with more than 5,000 invoice lines"
seed = 42
epoch = "2025-01-01T00:00:00Z"

[counts]
staff = 4
services = 10
clients = 100
invoices = 2500
grooming_visits = 2500

[per]
invoice_line_items = [1, 4]
tip_splits = [0, 2]
"#;

const UNIQUE_QUANTITY: &str =
    "CREATE UNIQUE INDEX one_line_per_quantity ON invoice_line_items (quantity);\n";

fn schema_of(db: &TestDb) -> String {
    db.dump(&[
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "-n",
        "public",
    ])
}

#[test]
fn a_seeded_reset_ends_with_the_schema_the_migrations_made() {
    let db = TestDb::new("load_keys_schema");
    let project = ProjectCopy::new();
    project.write("profiles/larger.toml", LARGER_DEV);
    db.run(&["reset", "--skip-seed", "--yes"]).success();
    let migrated = schema_of(&db);
    for profile in ["dev", "larger"] {
        db.run_in(&project, &["reset", "--profile", profile, "--yes"])
            .success();
        assert_eq!(schema_of(&db), migrated, "after a {profile} reset");
    }
    assert!(
        db.scalar("SELECT count(*) FROM invoice_line_items") > 5_000,
        "the larger profile must pass the set-aside size"
    );
}

#[test]
fn a_small_table_keeps_its_keys_and_a_duplicate_names_its_row() {
    let db = TestDb::new("load_keys_small");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let project = ProjectCopy::new();
    project.write("migrations/V90__unique_quantity.sql", UNIQUE_QUANTITY);
    let stderr = changes_nothing(&db, 7, || {
        db.run_in(&project, &["reset", "--profile", "dev", "--yes"])
    });
    assert!(
        stderr.contains("seeding invoice_line_items failed at row"),
        "{stderr}"
    );
    assert!(stderr.contains("one_line_per_quantity"), "{stderr}");
    assert!(stderr.contains("rolled back"), "{stderr}");
}

#[test]
fn a_large_tables_failed_rebuild_names_the_statement() {
    let db = TestDb::new("load_keys_large");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let project = ProjectCopy::new();
    project.write("profiles/larger.toml", LARGER_DEV);
    project.write("migrations/V90__unique_quantity.sql", UNIQUE_QUANTITY);
    let stderr = changes_nothing(&db, 7, || {
        db.run_in(&project, &["reset", "--profile", "larger", "--yes"])
    });
    assert!(
        stderr.contains("rebuilding after the load failed"),
        "{stderr}"
    );
    // The batch failed; the statements ran again one by one to name the one that failed.
    assert!(
        stderr.contains("(CREATE UNIQUE INDEX one_line_per_quantity ON public.invoice_line_items"),
        "{stderr}"
    );
    assert!(stderr.contains("rolled back"), "{stderr}");
}
