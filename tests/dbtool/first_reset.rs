//! §4 "First reset": a database that holds objects and no record of a dbtool reset is not reset
//! on `--yes` alone; a database that does not exist is created only when asked.

use crate::support::{TestDb, admin_url, dbtool_command, with_database};

/// A table of 1,000 customers, a view and an empty table: what someone else's database holds.
fn foreign_objects(db: &TestDb) {
    db.client()
        .batch_execute(
            "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
             INSERT INTO customers SELECT g, 'customer ' || g FROM generate_series(1, 1000) g;
             CREATE VIEW big_customers AS SELECT * FROM customers WHERE id > 900;
             CREATE TABLE audit_log (at timestamptz);",
        )
        .unwrap();
}

#[test]
fn first_reset_of_foreign_tables_is_refused_on_yes_alone_naming_tables_and_rows() {
    let db = TestDb::new("first_reset_refused");
    foreign_objects(&db);
    let before = db.dump_all();
    let run = db.run(&["reset", "--profile", "ci", "--yes"]);
    run.code(4)
        .stderr_has("no dbtool reset is recorded")
        .stderr_has("table public.customers (1000 rows)")
        .stderr_has("view public.big_customers")
        .stderr_has("table public.audit_log")
        .stderr_has(&format!("--adopt {}", db.name));
    // One clear line: the refusal names everything on it.
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("customers (1000 rows)"), "{}", run.stderr);
    assert_eq!(db.dump_all(), before, "nothing changed");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'dbtool'"),
        0,
        "not even dbtool.meta"
    );

    // --adopt naming another database is no confirmation of this one.
    db.run(&["reset", "--profile", "ci", "--yes", "--adopt", "postgres"])
        .code(4)
        .stderr_has("--adopt names database postgres");
    assert_eq!(db.dump_all(), before, "nothing changed");
}

#[test]
fn first_reset_with_adopt_drops_them_and_later_resets_need_only_yes() {
    let db = TestDb::new("first_reset_adopt");
    foreign_objects(&db);
    db.run(&["reset", "--profile", "ci", "--yes", "--adopt", &db.name])
        .success();
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_class WHERE relname = 'customers'"),
        0
    );
    assert_eq!(
        db.text("SELECT value->>'adopted' FROM dbtool.meta WHERE key = 'owned:public'"),
        db.name
    );
    // Recorded: --yes suffices, also after a --skip-seed reset forgot the last reset.
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    db.run(&["reset", "--skip-seed", "--yes"]).success();
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
}

#[test]
fn dry_run_names_every_object_and_says_a_first_reset_needs_adopt() {
    let db = TestDb::new("first_reset_dry_run");
    foreign_objects(&db);
    let run = db.run(&["reset", "--profile", "ci", "--dry-run"]);
    run.success();
    for line in [
        "drop: 3 objects",
        "  view public.big_customers",
        "  table public.customers (1000 rows)",
        "  table public.audit_log",
        &format!("needs --adopt {}", db.name),
    ] {
        assert!(run.stdout.contains(line), "{line:?} in\n{}", run.stdout);
    }
    db.run(&["reset", "--profile", "ci", "--yes", "--adopt", &db.name])
        .success();
    let run = db.run(&["reset", "--profile", "ci", "--dry-run"]);
    assert!(
        run.stdout.contains("  table public.clients"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("--adopt"), "{}", run.stdout);
}

#[test]
fn empty_schema_needs_no_extra_confirmation() {
    let db = TestDb::new("first_reset_empty");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
}

#[test]
fn reset_create_database_creates_a_missing_database_and_resets_it() {
    let name = format!("t_created_{}", std::process::id());
    let url = with_database(&admin_url(), &name);
    let mut admin = postgres::Client::connect(&admin_url(), postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\""))
        .unwrap();
    let run = crate::support::Run::of(dbtool_command().env("DATABASE_URL", &url).args([
        "reset",
        "--profile",
        "ci",
        "--yes",
        "--create-database",
    ]));
    run.success()
        .stderr_has(&format!("created database {name}"));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let staff: i64 = client
        .query_one("SELECT count(*) FROM staff", &[])
        .unwrap()
        .get(0);
    assert!(staff > 0);
    drop(client);
    admin
        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .unwrap();
}

#[test]
fn missing_database_without_the_flag_and_terminal_is_exit_5_naming_the_flag() {
    let name = format!("t_missing_{}", std::process::id());
    let url = with_database(&admin_url(), &name);
    for command in [&["reset", "--profile", "ci", "--yes"][..], &["migrate"]] {
        crate::support::Run::of(dbtool_command().env("DATABASE_URL", &url).args(command))
            .code(5)
            .stderr_has(&format!("database \"{name}\" does not exist"))
            .stderr_has("--create-database");
    }
    let mut admin = postgres::Client::connect(&admin_url(), postgres::NoTls).unwrap();
    let exists: bool = admin
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert!(!exists, "not created without the flag");
}

#[test]
fn create_database_without_createdb_says_what_the_role_lacks() {
    let db = TestDb::new("no_createdb");
    let role = format!("{}_role", db.name);
    db.client()
        .batch_execute(&format!(
            "CREATE ROLE \"{role}\" LOGIN PASSWORD 'pw' NOCREATEDB"
        ))
        .unwrap();
    let url = with_database(&admin_url(), &format!("{}_missing", db.name));
    let authority = url.find("://").unwrap() + 3;
    let host = &url[authority..][url[authority..].find('@').map_or(0, |i| i + 1)..];
    let url = format!("postgres://{role}:pw@{host}");
    crate::support::Run::of(
        dbtool_command()
            .env("DATABASE_URL", &url)
            .args(["migrate", "--create-database"]),
    )
    .code(2)
    .stderr_has("may not create it")
    .stderr_has("CREATEDB");
    db.client()
        .batch_execute(&format!("DROP ROLE \"{role}\""))
        .unwrap();
}
