//! Roles as managed databases give them: an owner of the database and the schema that is no
//! superuser, cannot create databases and cannot read pg_authid runs every command; where it
//! lacks a privilege, dbtool names the object and the privilege before anything changes.

use crate::support::{ProjectCopy, Run, TestDb, admin_url, dbtool_command};

/// A role that owns the test database and its public schema, and nothing else.
struct OwnerRole {
    name: String,
    url: String,
    /// The test database, as the superuser.
    admin_db_url: String,
}

impl OwnerRole {
    fn new(db: &TestDb) -> Self {
        let name = format!("{}_owner", db.name);
        let mut admin = postgres::Client::connect(&admin_url(), postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!(
                "CREATE ROLE \"{name}\" LOGIN PASSWORD 'owner-pw' NOSUPERUSER NOCREATEDB NOCREATEROLE;
                 ALTER DATABASE \"{db}\" OWNER TO \"{name}\";",
                db = db.name
            ))
            .unwrap();
        db.client()
            .batch_execute(&format!("ALTER SCHEMA public OWNER TO \"{name}\""))
            .unwrap();
        let url = db.url.replacen("://", &format!("://{name}:owner-pw@"), 1);
        // Keep only the role's user part when the admin URL names a user already.
        let url = match url.split_once('@') {
            Some((head, rest)) if rest.contains('@') => {
                format!("{head}@{}", rest.split_once('@').unwrap().1)
            }
            _ => url,
        };
        OwnerRole {
            name,
            url,
            admin_db_url: db.url.clone(),
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::of(dbtool_command().env("DATABASE_URL", &self.url).args(args))
    }

    fn reset_in(&self, project: &ProjectCopy) -> Run {
        Run::of(
            dbtool_command()
                .env("DATABASE_URL", &self.url)
                .args(["reset", "--profile", "ci", "--yes"])
                .args(project.dirs()),
        )
    }
}

impl Drop for OwnerRole {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // A role cannot be dropped while it owns anything: hand it all back first.
        if let Ok(mut db) = postgres::Client::connect(&self.admin_db_url, postgres::NoTls) {
            let _ = db.batch_execute(&format!(
                "REASSIGN OWNED BY \"{0}\" TO CURRENT_USER; DROP OWNED BY \"{0}\"",
                self.name
            ));
        }
        if let Ok(mut admin) = postgres::Client::connect(&admin_url(), postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS \"{}\"", self.name));
        }
    }
}

#[test]
fn a_non_superuser_owner_runs_every_command() {
    let db = TestDb::new("owner_role");
    let role = OwnerRole::new(&db);
    role.run(&["reset", "--profile", "ci", "--yes"]).success();
    role.run(&["seed", "--profile", "ci", "--yes"]).success();
    role.run(&["migrate"]).success();
    role.run(&["status"]).success();
    role.run(&["lock", "status"]).success();
    role.run(&["fingerprint"]).success();
    role.run(&["protect"]).success();
    role.run(&["reset", "--profile", "ci", "--yes"])
        .code(4)
        .stderr_has("protected");
    role.run(&["unprotect"]).success();
    assert_eq!(
        db.text("SELECT tableowner::text FROM pg_tables WHERE tablename = 'clients'"),
        role.name
    );
}

#[test]
fn a_non_superuser_owner_resets_ranges_collations_and_text_search_objects_it_created() {
    let db = TestDb::new("owner_kinds");
    let role = OwnerRole::new(&db);
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__kinds.sql",
        "CREATE TYPE floatrange AS RANGE (subtype = float8);\n\
         CREATE COLLATION case_insensitive (provider = icu, locale = 'und-u-ks-level2', deterministic = false);\n\
         CREATE TEXT SEARCH CONFIGURATION docs (COPY = pg_catalog.english);\n\
         CREATE TABLE spans (id int PRIMARY KEY, span floatrange, name text COLLATE case_insensitive);\n",
    );
    role.reset_in(&project).success();
    // The second reset drops them as their owner (a range's constructors go with the type).
    role.reset_in(&project).success();
    assert_eq!(
        db.text("SELECT typowner::regrole::text FROM pg_type WHERE typname = 'floatrange'"),
        role.name
    );
}

#[test]
fn what_only_a_superuser_may_do_is_explained_by_what_to_change_in_the_file() {
    let db = TestDb::new("owner_dump_lines");
    let role = OwnerRole::new(&db);
    let superuser = db.text("SELECT current_user::text");
    let project = ProjectCopy::new();
    // pg_dump writes OWNER TO lines; the role running dbtool is not a member of that owner.
    project.write(
        "migrations/V90__dump.sql",
        &format!("CREATE TABLE audit (id int);\nALTER TABLE audit OWNER TO \"{superuser}\";\n"),
    );
    role.reset_in(&project)
        .code(6)
        .stderr_has("V90__dump.sql")
        .stderr_has("pg_dump --no-owner");
    // An untrusted extension: the server's own hint says what to do, and nothing is added to it.
    let project = ProjectCopy::new();
    project.write(
        "migrations/V90__stats.sql",
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;\n",
    );
    let run = role.reset_in(&project);
    run.code(6).stderr_has("hint: Must be superuser");
    assert!(
        !run.stderr.contains("run dbtool as the role"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_table_another_role_owns_is_named_before_anything_changes() {
    let db = TestDb::new("foreign_owner");
    let role = OwnerRole::new(&db);
    role.run(&["reset", "--profile", "ci", "--yes"]).success();
    // An object the owner role cannot drop: created by the superuser.
    db.client()
        .batch_execute("CREATE TABLE public.audit_log (id int)")
        .unwrap();
    let before = db.overall_fingerprint();
    let run = role.run(&["reset", "--profile", "ci", "--yes"]);
    run.code(7)
        .stderr_has("table public.audit_log")
        .stderr_has("ownership")
        .stderr_has("nothing was changed");
    assert!(!run.stderr.contains("permission denied"));
    assert_eq!(db.overall_fingerprint(), before);

    // The same through the function the commands call.
    let mut client = postgres::Client::connect(&role.url, postgres::NoTls).unwrap();
    let missing = dbtool::drop::privileges::missing_for_reset(&mut client, "public").unwrap();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0].object, "table public.audit_log");
    let mut admin = db.client();
    assert!(
        dbtool::drop::privileges::missing_for_reset(&mut admin, "public")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_seed_of_tables_another_role_owns_names_the_missing_privileges() {
    let db = TestDb::new("seed_foreign_owner");
    // The superuser creates the tables; the owner role may not empty them.
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let role = OwnerRole::new(&db);
    let before = db.overall_fingerprint();
    let run = role.run(&["seed", "--profile", "ci", "--seed", "8", "--yes"]);
    run.code(7)
        .stderr_has("cannot seed schema public")
        .stderr_has("TRUNCATE, INSERT, SELECT on table public.clients")
        .stderr_has("nothing was changed");
    assert!(!run.stderr.contains("permission denied"));
    assert_eq!(db.overall_fingerprint(), before);
}
