//! Mistakes a new user makes on the first day (issue 13): each is caught before connecting where
//! it can be, or before anything changes, in one clear line with the documented exit code.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use crate::support::{ProjectCopy, Run, TestDb, dbtool_command};

/// Nothing listens here: a command that tried to connect would exit 5, not 2.
const NOWHERE: &str = "postgres://alice:s3cret-pw@127.0.0.1:1/nowhere?connect_timeout=1";

/// dbtool against NOWHERE with a project copy's files.
fn offline(project: &ProjectCopy, args: &[&str]) -> Run {
    Run::of(
        dbtool_command()
            .env("DATABASE_URL", NOWHERE)
            .args(args)
            .args(project.dirs()),
    )
}

fn one_error_line(run: &Run) -> &str {
    let lines: Vec<&str> = run.stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "one error line expected:\n{}", run.stderr);
    lines[0]
}

// ---- limits that belong to the configuration, not the server ----

#[test]
fn system_schemas_are_refused_before_connecting() {
    let project = ProjectCopy::new();
    for schema in ["pg_catalog", "information_schema", "pg_toast", "pg_temp_3"] {
        offline(
            &project,
            &["--schema", schema, "reset", "--profile", "ci", "--yes"],
        )
        .code(2)
        .stderr_has("system schema");
        offline(&project, &["--schema", schema, "status"]).code(2);
    }
}

#[test]
fn a_schema_longer_than_63_bytes_is_refused_before_connecting() {
    let project = ProjectCopy::new();
    let long = "s".repeat(64);
    offline(
        &project,
        &["--schema", &long, "reset", "--profile", "ci", "--yes"],
    )
    .code(2)
    .stderr_has("at most 63 bytes");
}

#[test]
fn timeouts_postgresql_cannot_take_are_refused_naming_the_flag_and_the_largest_value() {
    let project = ProjectCopy::new();
    for flag in ["--ddl-lock-timeout", "--statement-timeout"] {
        let run = offline(
            &project,
            &[flag, "30d", "reset", "--profile", "ci", "--yes"],
        );
        run.code(2).stderr_has(flag).stderr_has("2147483647 ms");
    }
    // The largest value itself is fine (and then the missing server is what fails).
    offline(&project, &["--statement-timeout", "24d", "status"]).code(5);
}

#[test]
fn migration_versions_outside_refinerys_range_say_the_range() {
    let project = ProjectCopy::new();
    project.write("migrations/V2147483648__too_far.sql", "SELECT 1;");
    // Read as refinery's (auto reads such a folder as Flyway's, which takes any width).
    offline(&project, &["--migrations-format", "refinery", "migrate"])
        .code(2)
        .stderr_has("V2147483648__too_far.sql")
        .stderr_has("0 to 2147483647");
}

#[test]
fn spec_values_of_the_wrong_shape_are_refused_before_connecting() {
    let cases = [
        // A table or an array where a scalar goes.
        (
            r#"quantity    = { gen = "int", min = 1, max = 2 }"#,
            r#"quantity    = { gen = "int", min = [1], max = 2 }"#,
            "quantity",
        ),
        (
            r#"name = "clients""#,
            "name = \"clients\"\ncount = { n = 5 }",
            "seed.toml:",
        ),
        // A constant that is not one value.
        (
            r#"notes     = { gen = "pick", file = "data/notes.txt", null = 0.85 }"#,
            r#"notes     = { gen = "constant", value = ["a", "b"] }"#,
            "constant",
        ),
        (
            r#"notes     = { gen = "pick", file = "data/notes.txt", null = 0.85 }"#,
            r#"notes     = { gen = "constant", value = { text = "a" } }"#,
            "constant",
        ),
    ];
    for (from, to, named) in cases {
        let project = ProjectCopy::new();
        project.edit("seeds/seed.toml", from, to);
        let run = offline(&project, &["reset", "--profile", "ci", "--yes"]);
        run.code(2).stderr_has(named);
        one_error_line(&run);
    }
}

#[test]
fn per_with_three_numbers_is_refused() {
    let project = ProjectCopy::new();
    project.edit(
        "profiles/dev.toml",
        "tip_splits = [0, 2]",
        "tip_splits = [0, 2, 5]",
    );
    offline(&project, &["reset", "--profile", "dev", "--yes"])
        .code(2)
        .stderr_has("per.tip_splits = [0, 2, 5]")
        .stderr_has("two numbers");
}

/// Resets `ci`, then runs a reset with the project copy's broken spec: refused with exit 2
/// naming `table` and `column`, and the database is as it was.
fn refused_before_anything_changes(project: &ProjectCopy, label: &str, table: &str, column: &str) {
    let db = TestDb::new(label);
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let before = db.overall_fingerprint();
    let run = db.run_in(project, &["reset", "--profile", "ci", "--yes"]);
    run.code(2)
        .stderr_has(&format!("table {table}, column {column}"));
    one_error_line(&run);
    assert_eq!(db.overall_fingerprint(), before, "the reset changed data");
    let run = db.run_in(project, &["seed", "--profile", "ci", "--yes"]);
    run.code(2)
        .stderr_has(&format!("table {table}, column {column}"));
    assert_eq!(db.overall_fingerprint(), before, "the seed changed data");
}

#[test]
fn an_int_range_past_integer_is_refused_from_the_catalog() {
    let project = ProjectCopy::new();
    project.edit(
        "seeds/seed.toml",
        r#"quantity    = { gen = "int", min = 1, max = 2 }"#,
        r#"quantity    = { gen = "int", min = 1, max = 3000000000 }"#,
    );
    refused_before_anything_changes(
        &project,
        "int_past_integer",
        "invoice_line_items",
        "quantity",
    );
}

#[test]
fn a_serial_start_near_the_types_maximum_is_refused_from_the_catalog() {
    let project = ProjectCopy::new();
    // staff.id is an integer; ci seeds 4 staff, so the last id would be 2147483648.
    project.edit(
        "seeds/seed.toml",
        "id         = { gen = \"serial\" }\nfirst_name",
        "id         = { gen = \"serial\", start = 2147483645 }\nfirst_name",
    );
    refused_before_anything_changes(&project, "serial_near_max", "staff", "id");
}

#[test]
fn a_value_outside_an_enum_is_refused_from_the_catalog() {
    let project = ProjectCopy::new();
    project.edit(
        "seeds/seed.toml",
        r#"values = ["paid", "open", "draft", "void"]"#,
        r#"values = ["paid", "open", "draft", "refunded"]"#,
    );
    refused_before_anything_changes(&project, "outside_enum", "invoices", "status");
}

#[test]
fn a_generated_column_in_the_spec_is_refused_from_the_catalog() {
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__generated.sql",
        "ALTER TABLE pets ADD COLUMN name_length integer GENERATED ALWAYS AS (length(name)) STORED;",
    );
    project.edit(
        "seeds/seed.toml",
        r#"weight_kg  = { gen = "decimal", min = 1.5, max = 45, scale = 2, null = 0.05 }"#,
        "weight_kg  = { gen = \"decimal\", min = 1.5, max = 45, scale = 2, null = 0.05 }\n\
         name_length = { gen = \"int\", min = 1, max = 9 }",
    );
    let db = TestDb::new("generated_column");
    db.run_in(&project, &["reset", "--skip-seed", "--yes"])
        .success();
    let run = db.run_in(&project, &["seed", "--profile", "ci", "--yes"]);
    run.code(2)
        .stderr_has("table pets, column name_length")
        .stderr_has("generated column");
    let run = db.run_in(&project, &["reset", "--profile", "ci", "--yes"]);
    run.code(2).stderr_has("generated column");
    assert_eq!(db.scalar("SELECT count(*) FROM pets"), 0);
}

#[test]
fn huge_counts_and_serials_past_bigint_are_refused_at_once_before_connecting() {
    for count in ["1000000000000", "9223372036854775807"] {
        let project = ProjectCopy::new();
        project.edit(
            "profiles/dev.toml",
            "clients = 100",
            &format!("clients = {count}"),
        );
        let started = Instant::now();
        offline(&project, &["reset", "--profile", "dev", "--dry-run"])
            .code(2)
            .stderr_has("clients");
        let run = offline(&project, &["profiles"]);
        run.code(2).stderr_has("dev");
        assert!(run.stdout.contains("ci (seed"), "{}", run.stdout);
        // Not a speed target: planning 10^12 rows would take hours, so finishing at all within
        // a bound that a busy 2-core machine meets (listing the load profile's 5.8M rows
        // included) shows the count was refused before it was planned.
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "took {:?}",
            started.elapsed()
        );
    }
    let project = ProjectCopy::new();
    project.edit(
        "seeds/seed.toml",
        "id        = { gen = \"serial\" }\nstatus    = { gen = \"choice\"",
        "id        = { gen = \"serial\", start = 9223372036854775000 }\nstatus    = { gen = \"choice\"",
    );
    offline(&project, &["reset", "--profile", "dev", "--yes"])
        .code(2)
        .stderr_has("table invoices, column id")
        .stderr_has("largest bigint");
}

// ---- files outside the project ----

#[test]
fn data_files_must_lie_inside_the_seeds_directory() {
    for (from, to) in [
        (
            r#"file = "data/notes.txt""#,
            r#"file = "../../../../etc/shadow""#,
        ),
        (r#"fixed = "data/staff.csv""#, r#"fixed = "/etc/passwd""#),
    ] {
        let project = ProjectCopy::new();
        project.edit("seeds/seed.toml", from, to);
        offline(&project, &["reset", "--profile", "ci", "--dry-run"])
            .code(2)
            .stderr_has("inside the seeds directory");
    }
    // A symbolic link inside the directory that leads out of it.
    let project = ProjectCopy::new();
    std::os::unix::fs::symlink("/etc/hostname", project.path("seeds/data/outside.txt")).unwrap();
    project.edit(
        "seeds/seed.toml",
        r#"file = "data/notes.txt""#,
        r#"file = "data/outside.txt""#,
    );
    offline(&project, &["reset", "--profile", "ci", "--dry-run"])
        .code(2)
        .stderr_has("leads outside the seeds directory");
}

// ---- messages that mislead ----

#[test]
fn extends_of_a_missing_profile_names_the_profile_that_says_so() {
    let project = ProjectCopy::new();
    project.write(
        "profiles/child.toml",
        "extends = \"nosuch\"\n[counts]\nclients = 5\n",
    );
    offline(&project, &["reset", "--profile", "child", "--yes"])
        .code(2)
        .stderr_has("child.toml: extends = \"nosuch\"")
        .stderr_has("nosuch.toml");
    // `profiles` lists the others and says which one it could not load.
    let run = offline(&project, &["profiles"]);
    run.code(2).stderr_has("child");
    for listed in ["ci (seed", "dev (seed", "demo (seed"] {
        assert!(run.stdout.contains(listed), "{listed}:\n{}", run.stdout);
    }
    assert!(!run.stdout.contains("child"), "{}", run.stdout);
}

#[test]
fn a_directory_named_like_a_profile_file_is_named() {
    let project = ProjectCopy::new();
    std::fs::create_dir(project.path("profiles/staging.toml")).unwrap();
    offline(&project, &["reset", "--profile", "staging", "--yes"])
        .code(2)
        .stderr_has("staging.toml is a directory");
    let run = offline(&project, &["profiles"]);
    run.code(2).stderr_has("staging.toml is a directory");
    assert!(run.stdout.contains("dev (seed"), "{}", run.stdout);
}

#[test]
fn a_bare_toml_datetime_epoch_is_the_same_epoch_as_the_quoted_one() {
    let project = ProjectCopy::new();
    project.edit(
        "profiles/dev.toml",
        r#"epoch = "2025-01-01T00:00:00Z""#,
        "epoch = 2025-01-01T00:00:00Z",
    );
    let db = TestDb::new("bare_epoch");
    db.run(&["reset", "--profile", "dev", "--yes"]).success();
    let quoted = db.overall_fingerprint();
    db.run_in(&project, &["reset", "--profile", "dev", "--yes"])
        .success();
    assert_eq!(db.overall_fingerprint(), quoted);
    // A time of day alone is not an epoch, and says so.
    project.edit(
        "profiles/dev.toml",
        "epoch = 2025-01-01T00:00:00Z",
        "epoch = 07:30:00",
    );
    offline(&project, &["reset", "--profile", "dev", "--yes"])
        .code(2)
        .stderr_has("without a date");
}

#[test]
fn undo_migration_files_are_refused_saying_what_dbtool_does_with_them() {
    let project = ProjectCopy::new();
    project.write(
        "migrations/U4__drop_visits.sql",
        "DROP TABLE grooming_visits;",
    );
    offline(&project, &["migrate"])
        .code(2)
        .stderr_has("U4__drop_visits.sql")
        .stderr_has("no undo migrations");
}

#[test]
fn a_new_migration_below_an_applied_one_is_called_out_of_order() {
    let db = TestDb::new("out_of_order");
    let project = ProjectCopy::new();
    db.run_in(&project, &["reset", "--profile", "ci", "--yes"])
        .success();
    project.write("migrations/V0__late.sql", "CREATE TABLE late (id int);");
    let run = db.run_in(&project, &["migrate"]);
    run.code(6)
        .stderr_has("out-of-order new migration: V0__late")
        .stderr_has("V5__visits_billing_details");
    assert!(!run.stderr.contains("missing"), "{}", run.stderr);
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'late'"),
        0
    );
}

#[test]
fn a_dotenv_line_dotenvy_cannot_parse_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "DBTOOL_SCHEMA=app\n# a comment\nexport PGPASSWORD hunter2-secret\nDBTOOL_POOL_SIZE=3\n",
    )
    .unwrap();
    let run = Run::of(
        dbtool_command()
            .current_dir(dir.path())
            .env("DATABASE_URL", NOWHERE)
            .arg("status"),
    );
    run.code(2).stderr_has(".env:3:");
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    one_error_line(&run);
}

#[test]
fn toml_errors_are_one_line_and_the_snippet_comes_with_verbose() {
    let project = ProjectCopy::new();
    project.edit("profiles/dev.toml", "clients = 100", "clients = = 100");
    let run = offline(&project, &["reset", "--profile", "dev", "--yes"]);
    run.code(2).stderr_has("dev.toml:8:");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(!run.stderr.contains("clients = = 100"), "{}", run.stderr);
    let verbose = offline(&project, &["-v", "reset", "--profile", "dev", "--yes"]);
    verbose.code(2).stderr_has("clients = = 100");
    let json = offline(
        &project,
        &["--log-format", "json", "reset", "--profile", "dev", "--yes"],
    );
    json.code(2);
    assert_eq!(json.stderr.lines().count(), 1, "{}", json.stderr);
    let event: serde_json::Value = serde_json::from_str(&json.stderr).unwrap();
    assert!(
        event["message"].as_str().unwrap().contains("dev.toml:8:"),
        "{event}"
    );
    assert!(!event["message"].as_str().unwrap().contains('\n'));
    assert!(
        event["detail"]
            .as_str()
            .unwrap()
            .contains("clients = = 100")
    );
}

#[test]
fn a_non_utf8_argument_is_exit_2_and_never_prints_the_password() {
    let mut url = b"postgres://alice:s3cret-pw@127.0.0.1:1/db".to_vec();
    url.push(0xff);
    let url = OsStr::from_bytes(&url);
    for args in [
        vec![OsStr::new("--database-url"), url, OsStr::new("status")],
        vec![OsStr::new("status"), url],
        vec![
            OsStr::new("--schema"),
            OsStr::from_bytes(b"app\xff"),
            OsStr::new("status"),
        ],
    ] {
        let run = Run::of(dbtool_command().args(&args));
        run.code(2);
        assert!(!run.stderr.contains("s3cret-pw"), "{}", run.stderr);
        let run = Run::of(
            dbtool_command()
                .args(&args)
                .env("DBTOOL_LOG_FORMAT", "json"),
        );
        run.code(2);
        assert!(!run.stderr.contains("s3cret-pw"), "{}", run.stderr);
        serde_json::from_str::<serde_json::Value>(run.stderr.trim()).expect("one JSON object");
    }
    // A URL given where no argument goes is repeated by clap: masked.
    let run = Run::of(dbtool_command().args(["status", "postgres://alice:s3cret-pw@h/db"]));
    run.code(2).stderr_has("postgres://alice:***@h/db");
    assert!(!run.stderr.contains("s3cret-pw"), "{}", run.stderr);
}

#[test]
fn privilege_errors_name_the_step_and_what_the_role_lacks() {
    let db = TestDb::new("privileges");
    let role = format!("weak_{}", std::process::id());
    let mut admin = db.client();
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; \
             GRANT CREATE ON DATABASE \"{}\" TO {role}; REVOKE CREATE ON SCHEMA public FROM PUBLIC;",
            db.name
        ))
        .unwrap();
    let as_role = db.url.replacen("://", &format!("://{role}@"), 1);
    let as_role = match as_role.split_once('@') {
        Some((head, rest)) if rest.contains('@') => {
            format!("{head}@{}", rest.split_once('@').unwrap().1)
        }
        _ => as_role,
    };
    let run = Run::of(dbtool_command().env("DATABASE_URL", &as_role).args([
        "reset",
        "--profile",
        "ci",
        "--yes",
    ]));
    // Found before anything changes, naming the schema and the privilege.
    run.code(7)
        .stderr_has("cannot reset schema public")
        .stderr_has("lacks CREATE on schema public");
    // A database that only reads: the step and the reason.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET default_transaction_read_only = on",
            db.name
        ))
        .unwrap();
    let run = db.run(&["reset", "--profile", "ci", "--yes"]);
    assert!(run.code == 6 || run.code == 7, "{run:?}");
    run.no_crash()
        .stderr_has("failed: ")
        .stderr_has("accepts only reads");
    admin
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" RESET default_transaction_read_only",
            db.name
        ))
        .unwrap();
    // A role that may not read what status reads: configuration (2), not an unreachable server (5).
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let run = Run::of(dbtool_command().env("DATABASE_URL", &as_role).arg("status"));
    run.code(2)
        .stderr_has("reading the database failed")
        .stderr_has("permission denied");
    admin
        .batch_execute(&format!(
            "REASSIGN OWNED BY {role} TO CURRENT_USER; DROP OWNED BY {role}; DROP ROLE {role};"
        ))
        .unwrap();
}

#[test]
fn fingerprint_and_status_say_when_the_lock_is_held() {
    let db = TestDb::new("lock_held_reads");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let free: serde_json::Value =
        serde_json::from_str(&db.run(&["fingerprint", "--json"]).success().stdout).unwrap();
    assert!(free.get("in_progress").is_none(), "{free}");
    let (holder, pid) = db.hold_lock();
    let held = db.run(&["fingerprint", "--json"]);
    held.success().stderr_has("the lock is held");
    let held: serde_json::Value = serde_json::from_str(&held.stdout).unwrap();
    let note = held["in_progress"].as_str().expect("in_progress");
    assert!(note.contains(&format!("pid {pid}")), "{note}");
    assert_eq!(held["overall"], free["overall"]);
    let text = db.run(&["fingerprint"]);
    text.success();
    assert!(
        text.stdout.contains("in progress: the lock is held"),
        "{}",
        text.stdout
    );
    let status = db.run(&["status"]);
    status.success();
    assert!(status.stdout.contains("in progress"), "{}", status.stdout);
    assert!(
        status.stdout.contains(&format!("pid {pid}")),
        "{}",
        status.stdout
    );
    let status = db.status();
    assert!(status["in_progress"].is_string(), "{status}");
    drop(holder);
    assert!(db.eventually(Duration::from_secs(5), |db| db.advisory_locks() == 0));
    let status = db.status();
    assert!(status.get("in_progress").is_none(), "{status}");
}

#[test]
fn dates_outside_the_years_postgresql_reads_as_written_are_refused_before_connecting() {
    let project = ProjectCopy::new();
    project.edit(
        "seeds/seed.toml",
        r#"created_at = { gen = "timestamp", from = "-1095d", to = "-1d" }"#,
        r#"created_at = { gen = "timestamp", from = "-300000000y", to = "-1d" }"#,
    );
    offline(&project, &["reset", "--profile", "ci", "--yes"])
        .code(2)
        .stderr_has("table clients, column created_at")
        .stderr_has("years 1 to 9999");
}

#[test]
fn parallel_below_2_is_refused_before_connecting() {
    let project = ProjectCopy::new();
    for n in ["0", "1"] {
        offline(
            &project,
            &["reset", "--profile", "dev", "--yes", "--parallel", n],
        )
        .code(2)
        .stderr_has("pass 2 or more");
    }
}

#[test]
fn a_statement_timeout_is_the_statements_failure_not_an_unreachable_server() {
    let db = TestDb::new("read_timeout");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let before = db.dump_all();
    // A session that holds dbtool.meta: every read of it waits, past any statement timeout.
    let mut holder = db.client();
    holder
        .batch_execute("BEGIN; LOCK TABLE dbtool.meta IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    db.run(&["status", "--statement-timeout", "300ms"])
        .code(7)
        .stderr_has("statement timeout");
    db.run(&[
        "reset",
        "--profile",
        "ci",
        "--yes",
        "--statement-timeout",
        "300ms",
    ])
    .code(7)
    .stderr_has("statement timeout")
    .stderr_has("as it was");
    holder.batch_execute("ROLLBACK").unwrap();
    assert_eq!(db.dump_all(), before);
}
