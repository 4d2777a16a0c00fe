//! Migrations as real projects write them (collected from public repositories: Flyway, sqlx,
//! diesel, goose and golang-migrate sets, pg_dump outputs): objects the drop must remove so the
//! next reset can create them again, statements that must be refused before anything changes,
//! and files that end the transaction in ways no check sees.

use crate::support::{ProjectCopy, TestDb, changes_nothing};

fn reset(db: &TestDb, project: &ProjectCopy) -> crate::support::Run {
    db.run_in(project, &["reset", "--profile", "ci", "--yes"])
}

/// Resets twice (the second reset drops what the first created) and compares the schema.
#[track_caller]
fn resets_twice_to_the_same_schema(db: &TestDb, project: &ProjectCopy) {
    reset(db, project).success();
    let first = db.dump(&["--schema-only", "--schema", "public"]);
    reset(db, project).success();
    assert_eq!(db.dump(&["--schema-only", "--schema", "public"]), first);
}

#[test]
fn range_types_collations_text_search_objects_and_shell_types_are_dropped_and_created_again() {
    let db = TestDb::new("real_objects");
    let project = ProjectCopy::new();
    // codenautas/type-store's time_range.sql, launchbadge/realworld-axum-sqlx's collation,
    // golang/pkgsite's text search configuration, pgadmin4's schema-diff fixture's parser and
    // template; a shell type completed later.
    project.write(
        "migrations/V90__kinds.sql",
        "CREATE TYPE floatrange AS RANGE (subtype = float8);\n\
         CREATE COLLATION case_insensitive (provider = icu, locale = 'und-u-ks-level2', deterministic = false);\n\
         CREATE TABLE tags (name text COLLATE case_insensitive PRIMARY KEY, span floatrange);\n\
         CREATE TEXT SEARCH DICTIONARY simple_english (TEMPLATE = pg_catalog.simple, STOPWORDS = english);\n\
         CREATE TEXT SEARCH CONFIGURATION docs (COPY = pg_catalog.english);\n\
         ALTER TEXT SEARCH CONFIGURATION docs ALTER MAPPING FOR asciiword WITH simple_english;\n\
         CREATE TYPE later;\n\
         CREATE TEXT SEARCH PARSER words (START = prsd_start, GETTOKEN = prsd_nexttoken, \
           END = prsd_end, LEXTYPES = prsd_lextype);\n\
         CREATE TEXT SEARCH TEMPLATE plain (LEXIZE = dsimple_lexize);\n",
    );
    resets_twice_to_the_same_schema(&db, &project);
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace \
             WHERE n.nspname = 'public'"
        ),
        1
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_ts_config WHERE cfgname = 'docs'"),
        1
    );
}

#[test]
fn a_column_named_begin_cannot_hide_a_commit_from_the_checks() {
    let db = TestDb::new("real_begin_column");
    reset(&db, &ProjectCopy::new()).success();
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__period.sql",
        "CREATE TABLE period (id int, begin date);\n\
         CREATE OR REPLACE VIEW v_period AS SELECT id, begin FROM period;\n\
         COMMIT;\n\
         SELECT 1/0;\n",
    );
    let stderr = changes_nothing(&db, 6, || reset(&db, &project));
    assert!(stderr.contains("V90__period.sql:3"), "{stderr}");
}

#[test]
fn a_commit_the_checks_cannot_see_is_reported_as_such_never_as_a_rollback() {
    let db = TestDb::new("real_hidden_commit");
    // With standard_conforming_strings off the server reads 'a\'' as one string; dbtool's
    // checks read SQL as PostgreSQL's default does, and see no COMMIT in this file.
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE \"{}\" SET standard_conforming_strings = off",
            db.name
        ))
        .unwrap();
    let project = ProjectCopy::new();
    reset(&db, &project).success();
    project.write(
        "migrations/V90__legacy.sql",
        "SELECT 'a\\''; COMMIT; SELECT 'b\\'';\n",
    );
    let run = reset(&db, &project);
    run.code(6).stderr_has("ended the transaction");
    assert!(
        !run.stderr.contains("was rolled back"),
        "claims a rollback:\n{}",
        run.stderr
    );
    let status = db.status();
    assert!(status["unfinished"].is_object(), "{status}");
    assert!(status["last_reset"].is_null(), "{status}");
}

#[test]
fn a_failed_migrate_after_a_no_transaction_file_keeps_its_history_and_says_what_was_committed() {
    let db = TestDb::new("real_no_transaction_history");
    let project = ProjectCopy::new();
    reset(&db, &project).success();
    // golang/pkgsite: an index built concurrently, then a later migration that fails.
    project.write(
        "migrations/V90__notes.sql",
        "CREATE TABLE notes (id int);\n",
    );
    project.write(
        "migrations/V91__notes_index.sql",
        "-- no-transaction\nCREATE INDEX CONCURRENTLY notes_id ON notes (id);\n",
    );
    project.write("migrations/V92__broken.sql", "SELECT 1/0;\n");
    db.run_in(&project, &["migrate"])
        .code(6)
        .stderr_has("Committed before it: V90__notes, V91__notes_index");
    let applied = "SELECT count(*) FROM dbtool.refinery_schema_history_public WHERE version >= 90";
    assert_eq!(
        db.scalar(applied),
        2,
        "the index exists, so its history row must"
    );
    project.write("migrations/V92__broken.sql", "SELECT 1;\n");
    db.run_in(&project, &["migrate"]).success();
    assert_eq!(db.scalar(applied), 3);
}

#[test]
fn set_role_and_session_authorization_end_with_their_file() {
    let db = TestDb::new("real_set_role");
    let role = format!("{}_app", db.name);
    db.client()
        .batch_execute(&format!(
            "CREATE ROLE \"{role}\" NOLOGIN; GRANT CREATE, USAGE ON SCHEMA public TO \"{role}\""
        ))
        .unwrap();
    let project = ProjectCopy::new();
    // pg_dump --use-set-session-authorization writes the first; schema files often the second.
    project.write(
        "migrations/V90__as_app.sql",
        &format!(
            "SET SESSION AUTHORIZATION \"{role}\";\nCREATE TABLE app_notes (id int);\n\
             SET ROLE \"{role}\";\n"
        ),
    );
    // Succeeds only if the history row and the seeded rows are written as dbtool's own role:
    // the file's role may not write to tables it does not own.
    reset(&db, &project).success();
    assert_eq!(
        db.text("SELECT tableowner FROM pg_tables WHERE tablename = 'app_notes'"),
        role
    );
    db.client()
        .batch_execute(&format!(
            "DROP TABLE app_notes; REVOKE ALL ON SCHEMA public FROM \"{role}\"; DROP ROLE \"{role}\""
        ))
        .unwrap();
}

#[test]
fn files_dbtool_cannot_run_as_written_are_refused_with_their_line_and_nothing_changes() {
    let db = TestDb::new("real_refused");
    let project = ProjectCopy::new();
    reset(&db, &project).success();
    // shannonnonshan/StreamLand's manual migration; a pg_dump with data.
    for (file, sql, line, says) in [
        (
            "V90__fresh.sql",
            "-- start over\nDROP SCHEMA public CASCADE;\nCREATE SCHEMA public;\n",
            2,
            "history table",
        ),
        (
            "V90__dump.sql",
            "CREATE TABLE t (a int, b text);\nCOPY public.t (a, b) FROM stdin;\n1\tO'Brien\n\\.\n",
            2,
            "psql",
        ),
    ] {
        let path = format!("migrations/{file}");
        project.write(&path, sql);
        let stderr = changes_nothing(&db, 6, || reset(&db, &project));
        assert!(stderr.contains(&format!("{file}:{line}")), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        std::fs::remove_file(project.path(&path)).unwrap();
    }
}

#[test]
fn a_byte_order_mark_is_ignored_and_a_kept_extension_is_no_error_but_a_kept_schema_is() {
    let db = TestDb::new("real_bom_kept");
    let project = ProjectCopy::new();
    // bubunyo/kong-auth-service: CREATE EXTENSION without IF NOT EXISTS, which every reset
    // after the first (the drop keeps extensions) would otherwise refuse.
    project.write(
        "migrations/V90__bom.sql",
        "\u{feff}CREATE TABLE marked (id int);\nCREATE EXTENSION pgcrypto;\n",
    );
    resets_twice_to_the_same_schema(&db, &project);
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'"),
        1
    );
    // An error after it on the same line is placed in the file as written.
    let line = "CREATE EXTENSION pgcrypto; SELECT nope;";
    project.write("migrations/V91__after.sql", &format!("SELECT 1;\n{line}\n"));
    let stderr = changes_nothing(&db, 6, || reset(&db, &project));
    let column = line.find("nope").unwrap() + 1;
    assert!(
        stderr.contains(&format!("(line: 2, column: {column})")),
        "{stderr}"
    );
    // lemmy's `utils` schema: a reset keeps other schemas, and says so.
    project.write("migrations/V91__after.sql", "CREATE SCHEMA utils;\n");
    reset(&db, &project).success();
    let stderr = changes_nothing(&db, 6, || reset(&db, &project));
    assert!(
        stderr.contains("V91__after") && stderr.contains("other schemas, and what earlier runs"),
        "{stderr}"
    );
}
