//! `dbtool init` and a reset with no spec: the schema's own description (types, keys, CHECKs,
//! enums, triggers, partitions) turned into a seed spec, on the example application and on
//! public schemas as their projects write them (tests/fixtures/init, each file naming its
//! origin and license).

use std::path::Path;

use crate::support::{ProjectCopy, Run, TestDb, project_dir};

/// A project holding one migration (a fixture) and no spec or profiles.
fn project_of(fixture: &str) -> ProjectCopy {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("migrations")).unwrap();
    let sql = std::fs::read_to_string(
        project_dir()
            .join("tests/fixtures/init")
            .join(format!("{fixture}.sql")),
    )
    .expect("fixture");
    std::fs::write(dir.path().join("migrations/V1__schema.sql"), sql).unwrap();
    ProjectCopy { dir }
}

/// The example application without its spec and profiles.
fn example_without_spec() -> ProjectCopy {
    let project = ProjectCopy::new();
    std::fs::remove_file(project.path("seeds").join("seed.toml")).unwrap();
    for profile in std::fs::read_dir(project.path("profiles")).unwrap() {
        std::fs::remove_file(profile.unwrap().path()).unwrap();
    }
    project
}

fn reset(db: &TestDb, project: &ProjectCopy) -> Run {
    db.run_in(project, &["reset", "--profile", "dev", "--yes"])
}

/// Every constraint of the schema holds: the reset rebuilt and validated them all.
#[track_caller]
fn every_constraint_valid(db: &TestDb) {
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
             WHERE n.nspname = 'public' AND NOT c.convalidated"
        ),
        0
    );
}

/// Tables of the fingerprint with no rows, but for migration tools' history tables.
fn empty_tables(db: &TestDb) -> Vec<String> {
    let fingerprint = db.fingerprint();
    fingerprint["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter(|t| t["rows"].as_u64() == Some(0))
        .map(|t| t["table"].as_str().unwrap().to_string())
        .filter(|t| !["schema_migrations", "refinery_schema_history"].contains(&t.as_str()))
        .collect()
}

/// `init`, then two resets: both succeed, every constraint holds, every table has rows, and the
/// two resets are byte-identical.
#[track_caller]
fn inits_and_resets_twice_identically(label: &str, project: &ProjectCopy) {
    let db = TestDb::new(label);
    db.run_in(project, &["init"]).success();
    assert!(project.path("seeds").join("seed.toml").exists());
    reset(&db, project).success();
    every_constraint_valid(&db);
    assert_eq!(empty_tables(&db), Vec::<String>::new(), "tables left empty");
    let first = db.overall_fingerprint();
    reset(&db, project).success();
    assert_eq!(db.overall_fingerprint(), first);
}

#[test]
fn example_app_without_its_spec_inits_and_resets_to_the_same_data_as_a_reset_without_a_spec() {
    let db = TestDb::new("init_example");
    let project = example_without_spec();
    // No spec: the reset infers one, says so, and records the inference version.
    let run = reset(&db, &project);
    run.success()
        .stderr_has("seeding from the schema as `dbtool init` would write it")
        .stderr_has("run `dbtool init`");
    every_constraint_valid(&db);
    assert_eq!(empty_tables(&db), Vec::<String>::new());
    let inferred = db.overall_fingerprint();
    assert_eq!(
        inferred, "ee6df84025f06adbc8fc58e66e8df432",
        "what a reset without a spec seeds changed: that is a new INFERENCE_VERSION \
         (src/infer/mod.rs) and a new golden here, never a silent change"
    );
    assert_eq!(db.status()["last_reset"]["inference_version"], 2);
    reset(&db, &project).success();
    assert_eq!(db.overall_fingerprint(), inferred, "two resets differ");

    // The written spec is the one the reset inferred: the same data.
    db.run_in(&project, &["init"]).success();
    for file in ["seeds/seed.toml", "profiles/dev.toml", "profiles/ci.toml"] {
        assert!(project.dir.path().join(file).exists(), "{file} not written");
    }
    let spec = std::fs::read_to_string(project.path("seeds").join("seed.toml")).unwrap();
    assert!(spec.contains("# clients: counted"), "{spec}");
    assert!(spec.contains("per = \"invoices\""), "{spec}");
    let run = reset(&db, &project);
    run.success();
    assert!(!run.stderr.contains("seeding from the schema"));
    assert_eq!(db.overall_fingerprint(), inferred);
    assert!(db.status()["last_reset"]["inference_version"].is_null());
    db.run_in(&project, &["reset", "--profile", "ci", "--yes"])
        .success();
    every_constraint_valid(&db);
}

#[test]
fn init_never_overwrites_without_force_and_prints_with_stdout() {
    let db = TestDb::new("init_force");
    let project = ProjectCopy::new();
    let spec = project.path("seeds").join("seed.toml");
    let before = std::fs::read_to_string(&spec).unwrap();
    db.run_in(&project, &["init"])
        .code(2)
        .stderr_has("seed.toml exists")
        .stderr_has("--force");
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), before);
    let run = db.run_in(&project, &["init", "--stdout"]);
    run.success();
    assert!(run.stdout.contains("[[tables]]") && run.stdout.contains("[counts]"));
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), before);
    db.run_in(&project, &["init", "--force"]).success();
    assert_ne!(std::fs::read_to_string(&spec).unwrap(), before);
}

#[test]
fn init_changes_nothing_and_reads_an_already_migrated_database_the_same() {
    let db = TestDb::new("init_nothing");
    let project = ProjectCopy::new();
    db.run_in(&project, &["reset", "--profile", "ci", "--yes"])
        .success();
    let before = db.dump_all();
    let from_migrations = db.run_in(&project, &["init", "--stdout"]);
    from_migrations.success();
    let from_database = db.run_in(&project, &["init", "--stdout", "--from-database"]);
    from_database.success();
    assert_eq!(db.dump_all(), before, "init changed the database");
    // Only the first line (where the schema came from) differs.
    let body = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("written by `dbtool init`"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&from_migrations.stdout), body(&from_database.stdout));
}

macro_rules! public_schema {
    ($test:ident, $fixture:literal) => {
        #[test]
        fn $test() {
            inits_and_resets_twice_identically($fixture, &project_of($fixture));
        }
    };
}

public_schema!(sqlx_app_with_uuid_keys_and_clock_defaults, "sqlx_social");
public_schema!(
    rails_structure_sql_with_sequences_and_no_foreign_keys,
    "rails_structure"
);
public_schema!(prisma_app_with_quoted_names_and_a_one_to_one, "prisma_blog");
public_schema!(drizzle_app_with_do_blocks_and_an_enum, "drizzle_cities");
public_schema!(
    pg_dump_of_pagila_with_partitions_domains_and_triggers,
    "pagila"
);
public_schema!(checks_enums_and_a_self_reference, "docs_checks_enums");
public_schema!(arrays_ranges_json_and_identity, "docs_arrays_ranges_json");

/// Junction tables need `distinct = true` refs, which the seed-language branch adds.
#[test]
fn junction_tables_draw_each_pair_once() {
    let project = project_of("docs_junction");
    inits_and_resets_twice_identically("docs_junction", &project);
    let spec = std::fs::read_to_string(project.path("seeds").join("seed.toml")).unwrap();
    assert!(spec.contains("distinct = true"), "{spec}");
    assert!(
        spec.contains("unique = [[\"actor_id\", \"film_id\"]]"),
        "{spec}"
    );
}

#[test]
fn the_self_reference_points_at_earlier_rows_and_the_partition_key_fits_its_partitions() {
    let db = TestDb::new("init_shapes");
    let project = project_of("docs_checks_enums");
    reset(&db, &project).success();
    assert_eq!(
        db.scalar("SELECT count(*) FROM tree WHERE parent_id >= node_id"),
        0
    );
    assert!(db.scalar("SELECT count(*) FROM tree WHERE parent_id IS NOT NULL") > 0);
    assert_eq!(
        db.scalar("SELECT count(*) FROM products WHERE price <= discounted_price"),
        0
    );
    let db = TestDb::new("init_partitions");
    let project = project_of("pagila");
    reset(&db, &project).success();
    assert_eq!(
        db.scalar("SELECT count(*) FROM (SELECT DISTINCT tableoid FROM payment) p"),
        3,
        "payments land in every partition"
    );
}

/// A schema dbtool cannot infer: one clear line naming what to edit, exit 2, nothing written,
/// the database as it was; the same for a reset without a spec.
#[track_caller]
fn cannot_infer(label: &str, migration: &str, expected: &[&str]) {
    let db = TestDb::new(label);
    let project = example_without_spec();
    for old in std::fs::read_dir(project.path("migrations")).unwrap() {
        std::fs::remove_file(old.unwrap().path()).unwrap();
    }
    std::fs::write(project.path("migrations").join("V1__schema.sql"), migration).unwrap();
    db.client()
        .batch_execute("CREATE TABLE keep_me (id int); INSERT INTO keep_me VALUES (1)")
        .unwrap();
    let before = db.dump_all();
    for args in [&["init"][..], &["reset", "--profile", "dev", "--yes"][..]] {
        let run = db.run_in(&project, args);
        run.code(2);
        for needle in expected {
            run.stderr_has(needle);
        }
        let errors: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains(" error "))
            .collect();
        assert_eq!(errors.len(), 1, "{}", run.stderr);
        assert_eq!(db.dump_all(), before, "{args:?} changed the database");
        assert!(!Path::new(&project.path("seeds").join("seed.toml")).exists());
    }
}

#[test]
fn an_empty_schema_is_refused_with_one_line() {
    cannot_infer(
        "init_empty",
        "CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 42';\n",
        &["no tables", "nothing to seed"],
    );
}

#[test]
fn a_cycle_of_not_null_keys_is_refused_naming_its_columns() {
    cannot_infer(
        "init_cycle",
        "CREATE TABLE teams (id int PRIMARY KEY, captain_id int NOT NULL);\n\
         CREATE TABLE players (id int PRIMARY KEY, team_id int NOT NULL REFERENCES teams);\n\
         ALTER TABLE teams ADD FOREIGN KEY (captain_id) REFERENCES players DEFERRABLE INITIALLY DEFERRED;\n",
        &[
            "players.team_id -> teams",
            "teams.captain_id -> players",
            "NOT NULL",
        ],
    );
}

#[test]
fn a_check_calling_a_function_is_refused_naming_the_table_and_column() {
    cannot_infer(
        "init_check_call",
        "CREATE FUNCTION is_isbn(text) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT length($1) = 13';\n\
         CREATE TABLE books (id serial PRIMARY KEY, isbn text NOT NULL CHECK (is_isbn(isbn)));\n",
        &["table books, column isbn", "books_isbn_check", "is_isbn"],
    );
}

#[test]
fn a_reset_without_a_spec_that_a_trigger_rejects_says_where_to_edit() {
    let db = TestDb::new("init_trigger");
    let project = example_without_spec();
    project.write(
        "migrations/V9__guard.sql",
        "CREATE FUNCTION no_test_clients() RETURNS trigger LANGUAGE plpgsql AS $$\n\
         BEGIN RAISE EXCEPTION 'clients are created by the sign-up flow only'; END $$;\n\
         CREATE TRIGGER guard BEFORE INSERT ON clients FOR EACH ROW EXECUTE FUNCTION no_test_clients();\n",
    );
    let before = db.dump_all();
    let run = reset(&db, &project);
    run.code(7)
        .stderr_has("clients are created by the sign-up flow only")
        .stderr_has("run `dbtool init` and edit")
        .stderr_has("disable_triggers = true");
    assert_eq!(db.dump_all(), before);
    // The written spec names the trigger, so the fix is one line.
    db.run_in(&project, &["init"]).success();
    let spec = std::fs::read_to_string(project.path("seeds").join("seed.toml")).unwrap();
    assert!(
        spec.contains("trigger guard runs on every row loaded"),
        "{spec}"
    );
    let fixed = spec.replace(
        "name = \"clients\"\n",
        "name = \"clients\"\ndisable_triggers = true\n",
    );
    std::fs::write(project.path("seeds").join("seed.toml"), fixed).unwrap();
    reset(&db, &project).success();
}

#[test]
fn a_cycle_through_a_nullable_key_is_broken_by_leaving_it_null() {
    let db = TestDb::new("init_nullable_cycle");
    let project = example_without_spec();
    project.write(
        "migrations/V9__teams.sql",
        "CREATE TABLE teams (id int PRIMARY KEY, name text NOT NULL, captain_id int);\n\
         CREATE TABLE players (id int PRIMARY KEY, team_id int NOT NULL REFERENCES teams, \
           first_name text NOT NULL);\n\
         ALTER TABLE teams ADD FOREIGN KEY (captain_id) REFERENCES players;\n",
    );
    db.run_in(&project, &["init"]).success();
    let spec = std::fs::read_to_string(project.path("seeds").join("seed.toml")).unwrap();
    assert!(spec.contains("closes a cycle of references"), "{spec}");
    reset(&db, &project).success();
    every_constraint_valid(&db);
    assert!(db.scalar("SELECT count(*) FROM players") > 0);
    assert_eq!(
        db.scalar("SELECT count(*) FROM teams WHERE captain_id IS NOT NULL"),
        0
    );
}

#[test]
fn a_protected_database_is_read_as_it_is_only_when_asked() {
    let db = TestDb::new("init_protected");
    let project = ProjectCopy::new();
    db.run_in(&project, &["reset", "--profile", "ci", "--yes"])
        .success();
    db.run(&["protect"]).success();
    let before = db.dump_all();
    db.run_in(&project, &["init", "--stdout"])
        .code(4)
        .stderr_has("--from-database");
    db.run_in(&project, &["init", "--stdout", "--from-database"])
        .success();
    assert_eq!(db.dump_all(), before);
}

#[test]
fn a_seed_without_a_spec_infers_from_the_database_and_matches_the_reset() {
    let db = TestDb::new("init_seed");
    let project = example_without_spec();
    reset(&db, &project).success();
    let after_reset = db.overall_fingerprint();
    db.run_in(&project, &["seed", "--profile", "dev", "--yes"])
        .success()
        .stderr_has("seeding from the schema");
    assert_eq!(db.overall_fingerprint(), after_reset);
}

/// A project whose one migration is `sql` (no spec, no profiles).
fn project_with(sql: &str) -> ProjectCopy {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("migrations")).unwrap();
    std::fs::write(dir.path().join("migrations/V1__schema.sql"), sql).unwrap();
    ProjectCopy { dir }
}

/// Rows the migrations insert are reference data: not generated again (their keys would
/// collide), and children point at them; init says so. Found on harbor, measure and cloak.
#[test]
fn rows_the_migrations_insert_are_kept_and_referenced_not_generated_again() {
    let sql = "CREATE TABLE kinds (id serial PRIMARY KEY, name text NOT NULL);\n\
               INSERT INTO kinds (name) VALUES ('built-in'), ('custom');\n\
               CREATE TABLE items (id serial PRIMARY KEY, kind_id int NOT NULL REFERENCES kinds (id), \
               label text NOT NULL);\n";
    // A reset with no spec infers it the same way.
    let db = TestDb::new("init_reference_rows");
    let project = project_with(sql);
    reset(&db, &project).success();
    assert_eq!(db.scalar("SELECT count(*) FROM kinds"), 2);
    assert!(db.scalar("SELECT count(*) FROM items") > 0);
    assert_eq!(
        db.scalar("SELECT count(DISTINCT kind_id) FROM items"),
        2,
        "items point at both rows the migrations inserted"
    );
    let project = project_with(sql);
    let run = db.run_in(&project, &["init"]);
    run.success()
        .stderr_has("not seeded: kinds (the migrations insert 2 row(s): reference data");
    let spec = std::fs::read_to_string(project.path("seeds").join("seed.toml")).unwrap();
    assert!(!spec.contains("name = \"kinds\""), "{spec}");
    assert!(spec.contains("values = [\"1\", \"2\"]"), "{spec}");
    let first = db.overall_fingerprint();
    reset(&db, &project).success();
    reset(&db, &project).success();
    every_constraint_valid(&db);
    assert_eq!(db.scalar("SELECT count(*) FROM kinds"), 2);
    assert_eq!(
        db.overall_fingerprint(),
        first,
        "init's spec seeds as the reset inferred"
    );

    // Every table filled by the migrations: a spec of nothing to generate, not "no tables".
    let project = project_with(
        "CREATE TABLE users (id uuid PRIMARY KEY, name text NOT NULL);\n\
         INSERT INTO users VALUES ('00000000-0000-0000-0000-000000000001', 'admin');\n",
    );
    db.run_in(&project, &["init"])
        .success()
        .stderr_has("not seeded: users");
    reset(&db, &project).success();
    assert_eq!(db.scalar("SELECT count(*) FROM users"), 1);
}

/// Shapes for which init wrote a spec its own validator refused (exit 2), from real projects:
/// a junction to a table generated per parent, a one-to-one table keyed by its composite
/// foreign key, a position unique with the key to the parent, a key over two small enums, words
/// unique with the key to the parent (homarr), a varchar key with a sequence's default
/// (quickwit), an enum unique with the key to the parent, a key holding a one-day partition's
/// key (hatchet); an implication CHECK (rallly), one case of a tagged union (hatchet) and an
/// xid8 key (permify) init refused; a partitioned table with no partition is left empty.
#[test]
fn what_init_writes_for_junctions_one_to_ones_positions_and_enum_pairs_loads() {
    let project = project_with(
        "CREATE TABLE board (id varchar(64) PRIMARY KEY);\n\
         CREATE TABLE item (id varchar(64) PRIMARY KEY, board_id varchar(64) NOT NULL REFERENCES board (id) ON DELETE CASCADE);\n\
         CREATE TABLE integration (id varchar(64) PRIMARY KEY);\n\
         CREATE TABLE integration_item (item_id varchar(64) NOT NULL REFERENCES item (id) ON DELETE CASCADE,\n\
           integration_id varchar(64) NOT NULL REFERENCES integration (id) ON DELETE CASCADE,\n\
           PRIMARY KEY (item_id, integration_id));\n\
         CREATE TABLE message (chat_id bigint NOT NULL, message_id bigint NOT NULL, PRIMARY KEY (chat_id, message_id));\n\
         CREATE TABLE flagged (chat_id bigint NOT NULL, message_id bigint NOT NULL, PRIMARY KEY (chat_id, message_id),\n\
           FOREIGN KEY (chat_id, message_id) REFERENCES message (chat_id, message_id) ON DELETE CASCADE);\n\
         CREATE TABLE nar_files (id bigserial PRIMARY KEY);\n\
         CREATE TABLE chunks (id bigserial PRIMARY KEY);\n\
         CREATE TABLE nar_file_chunks (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n\
           nar_file_id bigint NOT NULL REFERENCES nar_files (id) ON DELETE CASCADE,\n\
           chunk_id bigint NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,\n\
           chunk_index bigint NOT NULL, UNIQUE (nar_file_id, chunk_index));\n\
         CREATE TYPE role AS ENUM ('Administrator', 'Collaborator', 'SystemAdministrator');\n\
         CREATE TYPE permission AS ENUM ('ManageTeam');\n\
         CREATE TABLE roles_permissions (role role NOT NULL, permission permission NOT NULL,\n\
           PRIMARY KEY (role, permission));\n\
         CREATE TABLE item_secret (item_id varchar(64) NOT NULL REFERENCES item (id) ON DELETE CASCADE,\n\
           kind text NOT NULL, value text NOT NULL, PRIMARY KEY (item_id, kind));\n\
         CREATE TABLE shards (index_uid varchar(64) NOT NULL REFERENCES board (id) ON DELETE CASCADE,\n\
           source_id text NOT NULL, shard_id bigserial, PRIMARY KEY (index_uid, source_id, shard_id));\n\
         ALTER TABLE shards ALTER COLUMN shard_id TYPE varchar(255);\n\
         CREATE TABLE events (id serial PRIMARY KEY, all_day boolean NOT NULL, time_zone text,\n\
           CHECK (NOT all_day OR time_zone IS NULL));\n\
         CREATE TABLE transactions (id xid8 DEFAULT pg_current_xact_id() NOT NULL, tenant_id text NOT NULL,\n\
           PRIMARY KEY (tenant_id, id));\n\
         CREATE TYPE vcs AS ENUM ('GITHUB');\n\
         CREATE TABLE board_vcs (id uuid PRIMARY KEY, board_id varchar(64) NOT NULL REFERENCES board (id) ON DELETE CASCADE,\n\
           vcs vcs NOT NULL, UNIQUE (vcs, board_id));\n\
         CREATE TYPE auth AS ENUM ('BASIC', 'KEY');\n\
         CREATE TABLE hooks (id serial PRIMARY KEY, kind auth NOT NULL, username text, key text,\n\
           CHECK ((kind = 'BASIC' AND username IS NOT NULL) OR (kind = 'KEY' AND key IS NOT NULL)));\n\
         CREATE TABLE dags (id bigint NOT NULL, inserted_at timestamptz NOT NULL, status text NOT NULL,\n\
           PRIMARY KEY (inserted_at, id, status)) PARTITION BY RANGE (inserted_at);\n\
         CREATE TABLE dags_day PARTITION OF dags FOR VALUES FROM ('2026-12-07') TO ('2026-12-08');\n\
         CREATE TABLE failures (id bigint GENERATED ALWAYS AS IDENTITY, at timestamptz NOT NULL,\n\
           PRIMARY KEY (at, id)) PARTITION BY RANGE (at);\n",
    );
    let db = TestDb::new("init_validator_shapes");
    db.run_in(&project, &["init"])
        .success()
        .stderr_has("not seeded: failures (partitioned, with no partition yet");
    reset(&db, &project).success();
    every_constraint_valid(&db);
    assert_eq!(empty_tables(&db), vec!["failures".to_string()]);
    let first = db.overall_fingerprint();
    reset(&db, &project).success();
    assert_eq!(db.overall_fingerprint(), first);
    assert_eq!(
        db.scalar("SELECT count(*) FROM board_vcs"),
        db.scalar("SELECT count(*) FROM board"),
        "one vcs per board: the enum has one label"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM roles_permissions"), 3);
    assert_eq!(
        db.scalar("SELECT count(*) FROM nar_file_chunks WHERE chunk_index NOT BETWEEN 1 AND 4"),
        0,
        "chunk_index is the row's position under its file"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM flagged"),
        db.scalar("SELECT count(*) FROM message")
    );
}

/// A table a trigger function inserts into is the trigger's: not seeded (its keys collided).
#[test]
fn a_table_a_trigger_fills_is_left_to_the_trigger() {
    let db = TestDb::new("init_trigger_table");
    let project = project_with(
        "CREATE TABLE history (id serial PRIMARY KEY, user_id bigint NOT NULL);\n\
         CREATE TABLE total_history_count_user (id serial PRIMARY KEY, user_id bigint, total bigint);\n\
         CREATE FUNCTION user_history_count() RETURNS trigger LANGUAGE plpgsql AS $$\n\
         BEGIN\n\
           UPDATE total_history_count_user SET total = total + 1 WHERE user_id = NEW.user_id;\n\
           IF NOT FOUND THEN INSERT INTO public.total_history_count_user (user_id, total) VALUES (NEW.user_id, 1); END IF;\n\
           RETURN NEW;\n\
         END $$;\n\
         CREATE TRIGGER tg_user_history_count AFTER INSERT ON history FOR EACH ROW EXECUTE PROCEDURE user_history_count();\n",
    );
    db.run_in(&project, &["init"]).success().stderr_has(
        "not seeded: total_history_count_user (trigger tg_user_history_count on history",
    );
    reset(&db, &project).success();
    assert!(db.scalar("SELECT count(*) FROM history") > 0);
    assert_eq!(
        db.scalar("SELECT count(*) FROM total_history_count_user"),
        db.scalar("SELECT count(DISTINCT user_id) FROM history"),
        "the trigger's rows, and no others"
    );
}

/// A text column a generated column casts to json holds JSON, with the keys it reads.
#[test]
fn a_text_column_cast_to_json_by_a_generated_column_holds_json() {
    let db = TestDb::new("init_json_text");
    let project = project_with(
        "CREATE TABLE splits (split_id varchar(50) PRIMARY KEY, split_metadata_json text NOT NULL,\n\
           split_size_bytes bigint GENERATED ALWAYS AS (((split_metadata_json::json -> 'footer_offsets') ->> 'end')::bigint) STORED);\n",
    );
    reset(&db, &project).success();
    assert!(db.scalar("SELECT count(*) FROM splits") > 0);
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM splits WHERE json_typeof(split_metadata_json::json) <> 'object'"
        ),
        0
    ); // It holds the keys the generated column reads (quickwit's is NOT NULL there).
    assert_eq!(
        db.scalar("SELECT count(*) FROM splits WHERE split_size_bytes IS NULL"),
        0
    );
}

#[test]
fn a_check_init_cannot_satisfy_names_the_column_it_compares_not_one_inside_its_name() {
    cannot_infer(
        "init_check_column",
        "CREATE TABLE oauth2_sessions (id uuid PRIMARY KEY, client_id text NOT NULL, request_data jsonb NOT NULL,\n\
           CONSTRAINT chk_client CHECK (client_id = request_data ->> 'client_id'));\n",
        &["table oauth2_sessions, column client_id: CHECK constraint chk_client"],
    );
}

/// With no spec and a migration outside a transaction, the reset says why it cannot infer one
/// and what to run instead (it said `unknown profile "dev"`).
#[test]
fn a_reset_without_a_spec_over_a_no_transaction_migration_points_at_init_from_database() {
    let db = TestDb::new("init_no_transaction");
    let project =
        project_with("CREATE TABLE t (id serial PRIMARY KEY, at timestamptz NOT NULL);\n");
    std::fs::write(
        project.path("migrations").join("V2__index.sql"),
        "-- no-transaction\nCREATE INDEX CONCURRENTLY t_at ON t (at);\n",
    )
    .unwrap();
    let run = reset(&db, &project);
    run.code(2)
        .stderr_has("V2__index run(s) outside a transaction")
        .stderr_has("`dbtool init --from-database`");
    assert!(!run.stderr.contains("unknown profile"), "{}", run.stderr);
    // What it says to run works.
    db.run_in(&project, &["reset", "--skip-seed", "--yes"])
        .success();
    db.run_in(&project, &["init", "--from-database"]).success();
    reset(&db, &project).success();
    assert!(db.scalar("SELECT count(*) FROM t") > 0);
}
