//! Migration folders as other tools write them (tests/fixtures/migrations/<tool>): read, run as
//! that tool runs them (down sections never), and that tool's own history kept as it keeps it,
//! so that the tool itself (drizzle-kit, dbmate: DBTOOL_TEST_NODE_BIN, set by scripts/test.sh)
//! finds nothing pending after a reset and applies only a new migration.

use std::path::{Path, PathBuf};

use crate::support::{Run, TestDb, project_dir};

const FORMATS: [&str; 7] = [
    "drizzle",
    "prisma",
    "golang-migrate",
    "goose",
    "dbmate",
    "sqlx",
    "flyway",
];

/// The tools' history tables in the application's schema: left out of the schema comparison.
const HISTORY: [&str; 5] = [
    "_prisma_migrations",
    "schema_migrations",
    "goose_db_version",
    "_sqlx_migrations",
    "flyway_schema_history",
];

fn fixtures() -> PathBuf {
    project_dir().join("tests/fixtures/migrations")
}

fn copy_into(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_into(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of a tool's fixture folder that a test may change.
struct Folder {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Folder {
    fn of(tool: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("migrations");
        copy_into(&fixtures().join(tool), &path);
        Folder { _dir: dir, path }
    }

    /// Adds the tool's third, new migration.
    fn add_next(&self, tool: &str) {
        copy_into(&fixtures().join("next").join(tool), &self.path);
    }

    fn arg(&self) -> String {
        self.path.display().to_string()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

fn run(db: &TestDb, folder: &Folder, args: &[&str]) -> Run {
    Run::of(
        db.dbtool()
            .args(args)
            .args(["--migrations-dir", &folder.arg()]),
    )
}

/// The application's objects, as pg_dump writes them, without the tools' history tables.
fn app_schema(db: &TestDb) -> String {
    let mut args = vec![
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        "--schema",
        "public",
    ];
    for table in HISTORY {
        args.extend(["--exclude-table", table]);
    }
    db.dump(&args)
}

/// The up sections of a fixture folder, as its tool's documentation defines them, in its order.
fn up_sections(tool: &str, folder: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let before = |text: String, marker: &str| match text.find(marker) {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    match tool {
        "prisma" => files
            .iter()
            .filter(|p| p.is_dir())
            .map(|p| read(&p.join("migration.sql")))
            .collect(),
        "golang-migrate" => files
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".up.sql"))
            .map(|p| read(p))
            .collect(),
        "goose" => files
            .iter()
            .map(|p| before(read(p), "-- +goose Down"))
            .collect(),
        "dbmate" => files
            .iter()
            .map(|p| before(read(p), "-- migrate:down"))
            .collect(),
        "sqlx" => files.iter().map(|p| read(p)).collect(),
        "flyway" => {
            let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
            let mut versioned: Vec<&PathBuf> =
                files.iter().filter(|p| name(p).starts_with('V')).collect();
            versioned.sort_by_key(|p| {
                let n = name(p);
                let version = n[1..n.find("__").unwrap()].to_string();
                version
                    .split(['.', '_'])
                    .map(|x| x.parse::<u64>().unwrap())
                    .collect::<Vec<_>>()
            });
            versioned
                .into_iter()
                .chain(files.iter().filter(|p| name(p).starts_with("R__")))
                .map(|p| read(p))
                .collect()
        }
        "drizzle" => {
            let journal: serde_json::Value =
                serde_json::from_str(&read(&folder.join("meta/_journal.json"))).unwrap();
            journal["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| read(&folder.join(format!("{}.sql", e["tag"].as_str().unwrap()))))
                .collect()
        }
        other => panic!("no up sections for {other}"),
    }
}

/// The database as psql would leave it after the up sections: the reference schema.
fn applied_by_hand(tool: &str, folder: &Path) -> String {
    let reference = TestDb::new(&format!("ref_{tool}"));
    let mut client = reference.client();
    for sql in up_sections(tool, folder) {
        // drizzle's breakpoints are comments to psql; split as drizzle splits.
        for part in sql.split("--> statement-breakpoint") {
            client.batch_execute(part).expect(part);
        }
    }
    app_schema(&reference)
}

fn history_rows(db: &TestDb, tool: &str) -> i64 {
    let table = match tool {
        "drizzle" => "drizzle.__drizzle_migrations",
        "prisma" => "_prisma_migrations",
        "golang-migrate" | "dbmate" => "schema_migrations",
        // goose's own version-0 row comes with its table.
        "goose" => "goose_db_version WHERE version_id <> 0",
        "sqlx" => "_sqlx_migrations",
        "flyway" => "flyway_schema_history WHERE version IS NOT NULL",
        other => panic!("{other}"),
    };
    db.scalar(&format!("SELECT count(*) FROM {table}"))
}

#[test]
fn every_format_resets_as_its_tool_runs_it_and_keeps_its_tools_history() {
    for tool in FORMATS {
        let db = TestDb::new(&format!("fmt_{tool}"));
        let folder = Folder::of(tool);
        run(&db, &folder, &["reset", "--skip-seed", "--yes"]).success();
        // No down section ran: what they drop is there.
        assert_eq!(
            db.scalar(
                "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' \
                 AND indexname = 'pets_species_idx'"
            ),
            1,
            "{tool}"
        );
        assert_eq!(
            app_schema(&db),
            applied_by_hand(tool, &folder.path),
            "{tool}: the schema differs from the up sections applied by psql"
        );
        let expected_rows = if tool == "golang-migrate" { 1 } else { 2 };
        assert_eq!(history_rows(&db, tool), expected_rows, "{tool}");
        // dbtool's record: out of the application's schema.
        assert_eq!(
            db.scalar("SELECT count(*) FROM dbtool.refinery_schema_history_public"),
            2,
            "{tool}"
        );
        assert_eq!(
            db.scalar(
                "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'refinery%' \
                 AND schemaname <> 'dbtool'"
            ),
            0
        );
        let status = run(&db, &folder, &["status", "--json"]);
        status.success();
        let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        assert_eq!(status["migrations"]["format"], tool, "{status}");
        assert_eq!(status["migrations"]["pending"], serde_json::json!([]));

        // A second reset rebuilds the tool's history with the rest.
        run(&db, &folder, &["reset", "--skip-seed", "--yes"]).success();
        assert_eq!(history_rows(&db, tool), expected_rows, "{tool}");

        // dbtool's migrate applies a new migration, recorded in both histories.
        folder.add_next(tool);
        let plan = run(&db, &folder, &["migrate", "--dry-run"]);
        plan.success();
        assert!(
            plan.stdout
                .contains(&format!("migrate: 1 to apply ({tool} migrations)")),
            "{}",
            plan.stdout
        );
        run(&db, &folder, &["migrate"])
            .success()
            .stderr_has("migrate done: 1 applied");
        assert_eq!(db.scalar("SELECT count(*) FROM public.visits"), 0);
        let expected_rows = if tool == "golang-migrate" { 1 } else { 3 };
        assert_eq!(history_rows(&db, tool), expected_rows, "{tool}");
        assert_eq!(
            db.scalar("SELECT count(*) FROM dbtool.refinery_schema_history_public"),
            3
        );
    }
}

#[test]
fn the_tools_history_rows_are_the_tools_own() {
    let db = TestDb::new("fmt_rows");
    let folder = Folder::of("golang-migrate");
    run(&db, &folder, &["reset", "--skip-seed", "--yes"]).success();
    assert_eq!(
        db.text("SELECT version || ' ' || dirty FROM schema_migrations"),
        "2 false"
    );

    let folder = Folder::of("sqlx");
    run(&db, &folder, &["reset", "--skip-seed", "--yes"]).success();
    assert_eq!(
        db.text(
            "SELECT string_agg(version || ' ' || description || ' ' || success, ', ' ORDER BY version) \
             FROM _sqlx_migrations"
        ),
        "20261207103335 init true, 20261207103337 add species true"
    );
    // SHA-384 of the file, as sqlx computes it.
    let init = std::fs::read(folder.file("20261207103335_init.sql")).unwrap();
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM _sqlx_migrations WHERE checksum = sha384('\\x{}'::bytea)",
            hex(&init)
        )),
        1
    );

    let folder = Folder::of("prisma");
    run(&db, &folder, &["reset", "--skip-seed", "--yes"]).success();
    let migration = std::fs::read(folder.file("20261207103335_init/migration.sql")).unwrap();
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM _prisma_migrations WHERE migration_name = '20261207103335_init' \
             AND checksum = encode(sha256('\\x{}'::bytea), 'hex') AND finished_at IS NOT NULL \
             AND applied_steps_count = 1 AND rolled_back_at IS NULL",
            hex(&migration)
        )),
        1
    );

    let folder = Folder::of("flyway");
    run(&db, &folder, &["reset", "--skip-seed", "--yes"]).success();
    assert_eq!(
        db.text(
            "SELECT string_agg(installed_rank || ' ' || coalesce(version, '-') || ' ' || description \
             || ' ' || type || ' ' || script || ' ' || success, ', ' ORDER BY installed_rank) \
             FROM flyway_schema_history"
        ),
        "1 1 init SQL V1__init.sql true, 2 1.1 add species SQL V1.1__add_species.sql true, \
         3 - pet owners SQL R__pet_owners.sql true"
    );
    // A changed repeatable runs again on migrate, and only it.
    std::fs::write(
        folder.file("R__pet_owners.sql"),
        "CREATE OR REPLACE VIEW pet_owners AS\n    SELECT p.id, p.name, o.name AS owner, p.species \
         FROM pets p JOIN owners o ON o.id = p.owner_id;\n",
    )
    .unwrap();
    run(&db, &folder, &["migrate"])
        .success()
        .stderr_has("migrate done: 1 applied");
    assert_eq!(
        db.scalar("SELECT count(*) FROM flyway_schema_history WHERE version IS NULL"),
        2
    );
    run(&db, &folder, &["migrate"])
        .success()
        .stderr_has("migrate done: 0 applied");
    // The repeatable counts among the applied (dbtool's own history keeps versioned ones only).
    let status = run(&db, &folder, &["status"]);
    assert!(
        status
            .success()
            .stdout
            .contains("3 applied, 0 pending (flyway migrations)"),
        "{}",
        status.stdout
    );

    let folder = Folder::of("drizzle");
    run(&db, &folder, &["reset", "--skip-seed", "--yes"]).success();
    let init = std::fs::read(folder.file("0000_init.sql")).unwrap();
    assert_eq!(
        db.text(&format!(
            "SELECT string_agg(created_at::text, ' ' ORDER BY id) FROM drizzle.__drizzle_migrations \
             WHERE id = 1 AND hash = encode(sha256('\\x{}'::bytea), 'hex') OR id = 2",
            hex(&init)
        )),
        "1796639606175 1796639608170"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn drizzle_runs_in_journal_order_whatever_the_when_values_say() {
    let db = TestDb::new("fmt_when");
    let folder = Folder::of("drizzle");
    // As in groombook's journal: `when` not in file order.
    let journal = folder.file("meta/_journal.json");
    let text = std::fs::read_to_string(&journal)
        .unwrap()
        .replace("1796639606175", "1796639699999");
    std::fs::write(&journal, text).unwrap();
    run(&db, &folder, &["reset", "--skip-seed", "--yes"]).success();
    assert_eq!(
        db.text(
            "SELECT string_agg(created_at::text, ' ' ORDER BY id) FROM drizzle.__drizzle_migrations"
        ),
        "1796639699999 1796639608170"
    );
}

/// `url` with TLS off, for the Go and Node clients.
fn plain(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}sslmode=disable")
}

fn node_bin() -> PathBuf {
    PathBuf::from(std::env::var("DBTOOL_TEST_NODE_BIN").expect(
        "DBTOOL_TEST_NODE_BIN must name the folder of drizzle-kit and dbmate; scripts/test.sh \
         installs them (scripts/test-tools.sh)",
    ))
}

fn tool_run(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("run the migration tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}:\n{text}");
    text
}

fn dbmate(db: &TestDb, folder: &Folder, args: &[&str]) -> String {
    tool_run(
        std::process::Command::new(node_bin().join("dbmate"))
            .args(["--url", &plain(&db.url), "--migrations-dir", &folder.arg()])
            .arg("--no-dump-schema")
            .args(args),
    )
}

fn drizzle_kit_migrate(db: &TestDb, folder: &Folder) -> String {
    let config = folder.path.parent().unwrap().join("drizzle.config.js");
    std::fs::write(
        &config,
        format!(
            "module.exports = {{ dialect: 'postgresql', out: {:?}, dbCredentials: {{ url: {:?} }} }};\n",
            folder.arg(),
            plain(&db.url)
        ),
    )
    .unwrap();
    // drizzle-kit loads `pg` from beside itself.
    tool_run(
        std::process::Command::new(node_bin().join("drizzle-kit"))
            .args(["migrate", "--config", &config.display().to_string()])
            .current_dir(folder.path.parent().unwrap())
            .env("NODE_PATH", node_bin().parent().unwrap()),
    )
}

#[test]
fn dbmate_itself_sees_nothing_pending_after_a_reset_and_applies_only_a_new_migration() {
    let db = TestDb::new("fmt_dbmate_tool");
    let folder = Folder::of("dbmate");
    run(&db, &folder, &["reset", "--skip-seed", "--yes"]).success();
    let status = dbmate(&db, &folder, &["status"]);
    assert!(status.contains("Pending: 0"), "{status}");
    folder.add_next("dbmate");
    let up = dbmate(&db, &folder, &["up"]);
    assert!(
        up.contains("Applying: 20261207103338_add_visits.sql")
            && up.matches("Applying").count() == 1,
        "{up}"
    );
    // dbtool continues from dbmate's history: nothing left to apply, recorded in its own.
    run(&db, &folder, &["migrate"])
        .success()
        .stderr_has("migrate done: 0 applied");
    assert_eq!(
        db.scalar("SELECT count(*) FROM dbtool.refinery_schema_history_public"),
        3
    );
    // The same schema as dbmate's own run on another database.
    let reference = TestDb::new("fmt_dbmate_ref");
    dbmate(&reference, &folder, &["up"]);
    assert_eq!(app_schema(&db), app_schema(&reference));
    assert_eq!(
        db.text("SELECT string_agg(version, ' ' ORDER BY version) FROM schema_migrations"),
        reference.text("SELECT string_agg(version, ' ' ORDER BY version) FROM schema_migrations")
    );
}

#[test]
fn drizzle_kit_itself_applies_only_a_new_migration_after_a_reset() {
    let db = TestDb::new("fmt_drizzle_tool");
    let folder = Folder::of("drizzle");
    run(&db, &folder, &["reset", "--skip-seed", "--yes"]).success();
    folder.add_next("drizzle");
    // Had drizzle-kit found no history of its own it would run 0000_init again and fail on
    // "relation already exists".
    drizzle_kit_migrate(&db, &folder);
    assert_eq!(db.scalar("SELECT count(*) FROM public.visits"), 0);
    assert_eq!(
        db.scalar("SELECT count(*) FROM drizzle.__drizzle_migrations"),
        3
    );
    run(&db, &folder, &["migrate"])
        .success()
        .stderr_has("migrate done: 0 applied");
    // The same schema and history as drizzle-kit's own run on another database.
    let reference = TestDb::new("fmt_drizzle_ref");
    drizzle_kit_migrate(&reference, &folder);
    assert_eq!(app_schema(&db), app_schema(&reference));
    let history = "SELECT string_agg(hash || ' ' || created_at, ', ' ORDER BY id) \
                   FROM drizzle.__drizzle_migrations";
    assert_eq!(db.text(history), reference.text(history));
}

/// Edits the first applied migration's up section.
fn edit_first(tool: &str, folder: &Folder) -> &'static str {
    let (file, id) = match tool {
        "drizzle" => ("0000_init.sql", "0000_init"),
        "prisma" => ("20261207103335_init/migration.sql", "20261207103335_init"),
        "golang-migrate" => ("000001_init.up.sql", "000001_init"),
        "goose" | "dbmate" | "sqlx" => ("20261207103335_init.sql", "20261207103335_init"),
        "flyway" => ("V1__init.sql", "V1__init"),
        other => panic!("{other}"),
    };
    let path = folder.file(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replacen("name text NOT NULL", "name varchar(80) NOT NULL", 1);
    let edited = edited.replacen("\"name\" TEXT NOT NULL", "\"name\" VARCHAR(80) NOT NULL", 1);
    let edited = edited.replacen("\"name\" text NOT NULL", "\"name\" varchar(80) NOT NULL", 1);
    assert_ne!(edited, text, "{tool}: nothing edited");
    std::fs::write(&path, edited).unwrap();
    id
}

/// Removes the first applied migration (its down file and journal entry too).
fn remove_first(tool: &str, folder: &Folder) -> &'static str {
    match tool {
        "drizzle" => {
            std::fs::remove_file(folder.file("0000_init.sql")).unwrap();
            let journal = folder.file("meta/_journal.json");
            let mut j: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
            j["entries"].as_array_mut().unwrap().remove(0);
            std::fs::write(&journal, j.to_string()).unwrap();
            "0000_init"
        }
        "prisma" => {
            std::fs::remove_dir_all(folder.file("20261207103335_init")).unwrap();
            "20261207103335_init"
        }
        "golang-migrate" => {
            std::fs::remove_file(folder.file("000001_init.up.sql")).unwrap();
            std::fs::remove_file(folder.file("000001_init.down.sql")).unwrap();
            "000001_init"
        }
        "flyway" => {
            std::fs::remove_file(folder.file("V1__init.sql")).unwrap();
            "V1__init"
        }
        _ => {
            std::fs::remove_file(folder.file("20261207103335_init.sql")).unwrap();
            "20261207103335_init"
        }
    }
}

/// Renames the second applied migration (keeping its version where the tool has one).
fn rename_second(tool: &str, folder: &Folder) -> &'static str {
    let (from, to, id) = match tool {
        "drizzle" => {
            let journal = folder.file("meta/_journal.json");
            let text = std::fs::read_to_string(&journal)
                .unwrap()
                .replace("0001_add_species", "0001_species");
            std::fs::write(&journal, text).unwrap();
            (
                "0001_add_species.sql",
                "0001_species.sql",
                "0001_add_species",
            )
        }
        "prisma" => (
            "20261207103337_add_species",
            "20261207103337_species",
            "20261207103337_add_species",
        ),
        "golang-migrate" => (
            "000002_add_species.up.sql",
            "000002_species.up.sql",
            "000002_add_species",
        ),
        // dbtool's record keeps the name as refinery spells names (the dot as an underscore).
        "flyway" => (
            "V1.1__add_species.sql",
            "V1.1__species.sql",
            "V1_1__add_species",
        ),
        _ => (
            "20261207103337_add_species.sql",
            "20261207103337_species.sql",
            "20261207103337_add_species",
        ),
    };
    std::fs::rename(folder.file(from), folder.file(to)).unwrap();
    id
}

#[test]
fn an_applied_migration_edited_renamed_or_removed_is_exit_6_naming_it() {
    type Change = fn(&str, &Folder) -> &'static str;
    let changes: [(&str, Change); 3] = [
        ("edited", edit_first),
        ("removed", remove_first),
        ("renamed", rename_second),
    ];
    for tool in FORMATS {
        let db = TestDb::new(&format!("fmt_div_{tool}"));
        for (what, change) in changes {
            let folder = Folder::of(tool);
            run(&db, &folder, &["reset", "--skip-seed", "--yes"]).success();
            let id = change(tool, &folder);
            let migrate = run(&db, &folder, &["migrate"]);
            migrate.code(6).stderr_has(id);
            assert_eq!(
                migrate
                    .stderr
                    .trim()
                    .lines()
                    .filter(|l| l.contains("error"))
                    .count(),
                1,
                "{tool} {what}: one line\n{}",
                migrate.stderr
            );
            let status = run(&db, &folder, &["status"]);
            status.success();
            assert!(
                status.stdout.contains(id),
                "{tool} {what}: {}",
                status.stdout
            );
        }
    }
}

#[test]
fn a_mixed_folder_an_empty_one_and_a_broken_journal_are_exit_2_in_one_line() {
    let db = TestDb::new("fmt_refused");
    let folder = Folder::of("drizzle");
    std::fs::write(folder.file("V1__more.sql"), "CREATE TABLE more (id int);").unwrap();
    run(&db, &folder, &["migrate"])
        .code(2)
        .stderr_has("mixes the layouts of")
        .stderr_has("drizzle (meta/_journal.json)")
        .stderr_has("refinery (V1__more.sql)")
        .stderr_has("--migrations-format");

    let folder = Folder::of("dbmate");
    std::fs::write(
        folder.file("20261207103339_more.sql"),
        "-- +goose Up\nCREATE TABLE more (id int);\n",
    )
    .unwrap();
    run(&db, &folder, &["migrate"])
        .code(2)
        .stderr_has("mixes the layouts of goose")
        .stderr_has("dbmate");

    let empty = tempfile::tempdir().unwrap();
    Run::of(
        db.dbtool()
            .args(["migrate", "--migrations-dir"])
            .arg(empty.path()),
    )
    .code(2)
    .stderr_has("the folder is empty")
    .stderr_has("--migrations-format");

    let folder = Folder::of("drizzle");
    std::fs::write(folder.file("meta/_journal.json"), "{ not json").unwrap();
    run(&db, &folder, &["migrate"])
        .code(2)
        .stderr_has("_journal.json: not a drizzle journal");
}

#[test]
fn prismas_begin_commit_block_runs_inside_the_resets_transaction() {
    // `prisma migrate dev` writes an enum change as a BEGIN ... COMMIT block, and more
    // statements after it in the same file; `prisma migrate deploy` runs the file as it is.
    let db = TestDb::new("fmt_prisma_block");
    let folder = Folder::of("prisma");
    let dir = folder.file("20261207103339_mood");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("migration.sql"),
        "-- CreateEnum\nCREATE TYPE \"Mood\" AS ENUM ('calm');\n\n-- AlterEnum\nBEGIN;\n\
         CREATE TYPE \"Mood_new\" AS ENUM ('calm', 'happy');\nALTER TYPE \"Mood\" RENAME TO \"Mood_old\";\n\
         ALTER TYPE \"Mood_new\" RENAME TO \"Mood\";\nDROP TYPE \"Mood_old\";\nCOMMIT;\n\n\
         -- AlterTable\nALTER TABLE \"pets\" ADD COLUMN \"mood\" \"Mood\";\n",
    )
    .unwrap();
    let reset = run(&db, &folder, &["reset", "--skip-seed", "--yes"]);
    assert!(!reset.success().stderr.contains("not all or nothing"));
    assert_eq!(
        db.text("SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid WHERE t.typname = 'Mood'"),
        "calm,happy"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM _prisma_migrations WHERE migration_name = '20261207103339_mood' AND finished_at IS NOT NULL"),
        1
    );
}

#[test]
fn a_tool_directive_to_run_outside_the_transaction_is_dbtools_no_transaction() {
    let db = TestDb::new("fmt_notx");
    let folder = Folder::of("goose");
    std::fs::write(
        folder.file("20261207103339_concurrent.sql"),
        "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY pets_name_idx ON pets (name);\n\n\
         -- +goose Down\nDROP INDEX CONCURRENTLY pets_name_idx;\n",
    )
    .unwrap();
    run(&db, &folder, &["reset", "--skip-seed", "--yes"])
        .success()
        .stderr_has("20261207103339_concurrent");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'pets_name_idx'"),
        1
    );

    let folder = Folder::of("dbmate");
    std::fs::write(
        folder.file("20261207103339_concurrent.sql"),
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY pets_name_idx ON pets (name);\n\n\
         -- migrate:down\nDROP INDEX CONCURRENTLY pets_name_idx;\n",
    )
    .unwrap();
    run(&db, &folder, &["reset", "--skip-seed", "--yes"]).success();
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = 'pets_name_idx'"),
        1
    );

    // Without the directive goose runs the file in a transaction, where PostgreSQL refuses it:
    // refused before anything changes.
    let folder = Folder::of("goose");
    std::fs::write(
        folder.file("20261207103339_concurrent.sql"),
        "-- +goose Up\nCREATE INDEX CONCURRENTLY pets_name_idx ON pets (name);\n",
    )
    .unwrap();
    run(&db, &folder, &["reset", "--skip-seed", "--yes"])
        .code(6)
        .stderr_has("20261207103339_concurrent.sql:2");

    // Flyway runs a migration that builds an index CONCURRENTLY outside a transaction, and so do
    // golang-migrate and Prisma with a file of that one statement: so does dbtool, saying so.
    for (tool, file) in [
        ("flyway", "V3__index.sql"),
        ("golang-migrate", "000003_index.up.sql"),
        ("prisma", "20261207103339_index/migration.sql"),
    ] {
        let db = TestDb::new(&format!("fmt_concurrently_{}", tool.replace('-', "_")));
        let folder = Folder::of(tool);
        run(&db, &folder, &["reset", "--skip-seed", "--yes"]).success();
        let path = folder.file(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            "-- an index\nCREATE INDEX CONCURRENTLY pets_name_idx ON pets (name);\n",
        )
        .unwrap();
        run(&db, &folder, &["migrate"])
            .success()
            .stderr_has("migrate done: 1 applied");
        run(&db, &folder, &["reset", "--skip-seed", "--yes"])
            .success()
            .stderr_has("not all or nothing");
        assert_eq!(
            db.scalar(
                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE c.relname = 'pets_name_idx' AND i.indisvalid"
            ),
            1,
            "{tool}"
        );
    }
}

#[test]
fn a_file_with_a_down_section_renamed_for_refinery_is_refused_not_run_both_ways() {
    let db = TestDb::new("fmt_renamed");
    let folder = Folder::of("dbmate");
    std::fs::remove_dir_all(&folder.path).unwrap();
    std::fs::create_dir_all(&folder.path).unwrap();
    std::fs::copy(
        fixtures().join("dbmate/20261207103335_init.sql"),
        folder.file("V1__init.sql"),
    )
    .unwrap();
    // Detected: the annotations say dbmate, the name says refinery.
    run(&db, &folder, &["reset", "--skip-seed", "--yes"])
        .code(2)
        .stderr_has("mixes the layouts of");
    run(
        &db,
        &folder,
        &[
            "reset",
            "--skip-seed",
            "--yes",
            "--migrations-format",
            "refinery",
        ],
    )
    .code(2)
    .stderr_has("V1__init.sql: a migration with up and down sections");
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        0
    );
}

#[test]
fn flyway_placeholders_are_refused_naming_the_line() {
    let db = TestDb::new("fmt_placeholder");
    let folder = Folder::of("flyway");
    std::fs::write(
        folder.file("V2__grant.sql"),
        "-- grants\nGRANT SELECT ON pets TO ${reader};\n",
    )
    .unwrap();
    run(&db, &folder, &["migrate"])
        .code(2)
        .stderr_has("V2__grant.sql:2: a Flyway placeholder");
}

#[test]
fn refinerys_history_moves_out_of_the_application_schema() {
    let db = TestDb::new("fmt_move");
    db.run(&["reset", "--skip-seed", "--yes"]).success();
    // As an earlier dbtool left it.
    db.client()
        .batch_execute(
            "ALTER TABLE dbtool.refinery_schema_history_public SET SCHEMA public;
             ALTER TABLE public.refinery_schema_history_public RENAME TO refinery_schema_history",
        )
        .unwrap();
    assert_eq!(db.status()["migrations"]["pending"], serde_json::json!([]));
    db.run(&["migrate"])
        .success()
        .stderr_has("migrate done: 0 applied");
    assert_eq!(
        db.scalar("SELECT count(*) FROM dbtool.refinery_schema_history_public"),
        5
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'refinery%' AND schemaname = 'public'"),
        0
    );
}

/// A seed spec and profile for the fixtures' owners and pets.
fn spec_dirs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("seeds")).unwrap();
    std::fs::create_dir_all(dir.path().join("profiles")).unwrap();
    std::fs::write(
        dir.path().join("seeds/seed.toml"),
        r#"version = 1

[[tables]]
name = "owners"
[tables.columns]
id         = { gen = "serial" }
name       = { gen = "choice", values = ["Ann", "Bob", "Cy"] }
created_at = { gen = "timestamp", from = "-30d", to = "-1d" }

[[tables]]
name = "pets"
per = "owners"
counts = { 1 = 50, 2 = 50 }
[tables.columns]
id       = { gen = "serial" }
owner_id = { gen = "parent", column = "id" }
name     = { gen = "choice", values = ["Rex", "Tom"] }
species  = { gen = "choice", values = ["dog", "cat"], null = 0.1 }
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("profiles/small.toml"),
        "description = \"a few owners\"\nseed = 3\nepoch = \"2025-01-01T00:00:00Z\"\n\n[counts]\nowners = 20\n",
    )
    .unwrap();
    dir
}

/// `reset --profile small --yes` with the seeds and profiles of [`spec_dirs`].
fn small_reset(spec: &tempfile::TempDir) -> Vec<String> {
    let dir = |name: &str| spec.path().join(name).display().to_string();
    ["reset", "--profile", "small", "--yes", "--seeds-dir"]
        .map(String::from)
        .into_iter()
        .chain([dir("seeds"), "--profiles-dir".into(), dir("profiles")])
        .collect()
}

#[test]
fn a_seeded_reset_of_every_format_is_deterministic_whatever_the_tools_history_holds() {
    let spec = spec_dirs();
    let args = small_reset(&spec);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut fingerprints = Vec::new();
    for tool in FORMATS {
        let db = TestDb::new(&format!("fmt_seed_{tool}"));
        let folder = Folder::of(tool);
        run(&db, &folder, &args).success();
        assert_eq!(db.scalar("SELECT count(*) FROM owners"), 20, "{tool}");
        let first = db.overall_fingerprint();
        // The tool's history (timestamps, uuids) is not the application's data.
        run(&db, &folder, &args).success();
        assert_eq!(db.overall_fingerprint(), first, "{tool}");
        assert_eq!(
            history_rows(&db, tool),
            if tool == "golang-migrate" { 1 } else { 2 }
        );
        fingerprints.push((tool, first));
    }
    // drizzle's bigserial and Prisma's BIGSERIAL make the same tables: the same data.
    let drizzle = &fingerprints[0].1;
    assert!(
        fingerprints.iter().all(|(_, f)| f == drizzle),
        "{fingerprints:?}"
    );
}

#[test]
fn migrate_continues_from_the_history_the_teams_tool_wrote() {
    // The first migration applied by the tool itself (its SQL and its history row), as Prisma
    // and golang-migrate leave a database: dbtool applies only the second, and records both.
    let db = TestDb::new("fmt_continue_prisma");
    let folder = Folder::of("prisma");
    let init = std::fs::read_to_string(folder.file("20261207103335_init/migration.sql")).unwrap();
    let mut client = db.client();
    client.batch_execute(&init).unwrap();
    client
        .batch_execute(
            "CREATE TABLE _prisma_migrations (id VARCHAR(36) PRIMARY KEY NOT NULL, \
             checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ, migration_name VARCHAR(255) NOT NULL, \
             logs TEXT, rolled_back_at TIMESTAMPTZ, started_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
             applied_steps_count INTEGER NOT NULL DEFAULT 0);
             INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, applied_steps_count)
             VALUES ('6d0e3c8e-0000-4000-8000-000000000001', 'x', now(), '20261207103335_init', 1)",
        )
        .unwrap();
    let plan = run(&db, &folder, &["migrate", "--dry-run"]);
    plan.success();
    assert!(
        plan.stdout
            .contains("migrate: 1 to apply (prisma migrations)")
            && plan.stdout.contains("20261207103337_add_species"),
        "{}",
        plan.stdout
    );
    run(&db, &folder, &["migrate"])
        .success()
        .stderr_has("migrate done: 1 applied");
    assert_eq!(db.scalar("SELECT count(*) FROM _prisma_migrations"), 2);
    assert_eq!(
        db.scalar("SELECT count(*) FROM dbtool.refinery_schema_history_public"),
        2
    );

    // golang-migrate: one row, the latest version; a dirty one stops dbtool as it stops migrate.
    let db = TestDb::new("fmt_continue_golang");
    let folder = Folder::of("golang-migrate");
    let mut client = db.client();
    client
        .batch_execute(&std::fs::read_to_string(folder.file("000001_init.up.sql")).unwrap())
        .unwrap();
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (version bigint not null primary key, dirty boolean not null);
             INSERT INTO schema_migrations VALUES (1, true)",
        )
        .unwrap();
    run(&db, &folder, &["migrate"])
        .code(6)
        .stderr_has("version 1 is dirty");
    client
        .batch_execute("UPDATE schema_migrations SET dirty = false")
        .unwrap();
    run(&db, &folder, &["migrate"])
        .success()
        .stderr_has("migrate done: 1 applied");
    assert_eq!(
        db.text("SELECT version || ' ' || dirty FROM schema_migrations"),
        "2 false"
    );
}

fn sqlx(db: &TestDb, folder: &Folder, args: &[&str]) -> String {
    let bin = std::env::var("DBTOOL_TEST_SQLX_BIN").expect(
        "DBTOOL_TEST_SQLX_BIN must name the folder of sqlx-cli; scripts/test.sh installs it \
         (scripts/test-tools.sh)",
    );
    tool_run(
        std::process::Command::new(PathBuf::from(bin).join("sqlx"))
            .args(["migrate"])
            .args(args)
            .args(["--source", &folder.arg(), "--database-url", &plain(&db.url)]),
    )
}

#[test]
fn sqlx_cli_itself_sees_nothing_pending_after_a_reset_and_applies_only_a_new_migration() {
    let db = TestDb::new("fmt_sqlx_tool");
    let folder = Folder::of("sqlx");
    run(&db, &folder, &["reset", "--skip-seed", "--yes"]).success();
    // sqlx-cli checks every applied migration's SHA-384 checksum against its file.
    let info = sqlx(&db, &folder, &["info"]);
    assert!(
        !info.contains("pending") && info.matches("installed").count() == 2,
        "{info}"
    );
    folder.add_next("sqlx");
    let ran = sqlx(&db, &folder, &["run"]);
    assert!(
        ran.contains("Applied 20261207103338/") && ran.matches("Applied").count() == 1,
        "{ran}"
    );
    run(&db, &folder, &["migrate"])
        .success()
        .stderr_has("migrate done: 0 applied");
    let reference = TestDb::new("fmt_sqlx_ref");
    sqlx(&reference, &folder, &["run"]);
    assert_eq!(app_schema(&db), app_schema(&reference));
    let history = "SELECT string_agg(version || ' ' || description || ' ' || success || ' ' \
                   || encode(checksum, 'hex'), ', ' ORDER BY version) FROM _sqlx_migrations";
    assert_eq!(db.text(history), reference.text(history));
}

#[test]
fn a_warm_reset_of_every_format_keeps_the_tools_history_and_dumps_as_a_cold_reset() {
    let spec = spec_dirs();
    let args = small_reset(&spec);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for tool in FORMATS {
        let db = TestDb::new(&format!("fmt_warm_{tool}"));
        let folder = Folder::of(tool);
        run(&db, &folder, &args).success();
        let history = history_rows(&db, tool);
        run(&db, &folder, &args).success().stderr_has("warm path");
        assert_eq!(history_rows(&db, tool), history, "{tool}");
        let status = run(&db, &folder, &["status", "--json"]);
        let status: serde_json::Value = serde_json::from_str(&status.success().stdout).unwrap();
        assert_eq!(
            status["migrations"]["pending"],
            serde_json::json!([]),
            "{tool}"
        );
        // The application's schema and data; the tools' history rows hold times and ids.
        let mut dump = vec!["--schema", "public"];
        for table in HISTORY {
            dump.extend(["--exclude-table-data", table]);
        }
        let warm = db.dump(&dump);
        let mut cold = args.to_vec();
        cold.push("--cold");
        run(&db, &folder, &cold).success().stderr_has("cold path");
        assert_eq!(db.dump(&dump), warm, "{tool}");
        assert_eq!(history_rows(&db, tool), history, "{tool}");
    }
}
