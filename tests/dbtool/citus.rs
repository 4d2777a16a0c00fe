//! Citus (DESIGN.md §9): dbtool pointed at the coordinator of a cluster with two workers. The
//! cluster comes from scripts/test.sh (TEST_CITUS_URL: the coordinator; TEST_CITUS_WORKER_URLS:
//! the workers, space-separated); without it these tests say so and pass.
//!
//! The example application's tables become Citus reference tables (copied to every node, as a
//! team's lookup tables are) by one more migration, and the data must be the data plain
//! PostgreSQL gets from the same migrations.

use postgres::{Client, NoTls};

use crate::support::{ProjectCopy, TestDb, admin_url, with_database};

/// The example's tables, parents first, as create_reference_table needs them.
const TABLES: [&str; 8] = [
    "staff",
    "services",
    "clients",
    "pets",
    "grooming_visits",
    "invoices",
    "invoice_line_items",
    "tip_splits",
];

struct Cluster {
    coordinator: String,
    workers: Vec<String>,
}

fn cluster() -> Option<Cluster> {
    let Ok(coordinator) = std::env::var("TEST_CITUS_URL") else {
        eprintln!("no Citus cluster (TEST_CITUS_URL): skipped; scripts/test.sh starts one");
        return None;
    };
    let workers = std::env::var("TEST_CITUS_WORKER_URLS")
        .expect("TEST_CITUS_WORKER_URLS names the workers of TEST_CITUS_URL")
        .split_whitespace()
        .map(String::from)
        .collect();
    Some(Cluster {
        coordinator,
        workers,
    })
}

/// The port of a postgres:// URL.
fn port_of(url: &str) -> u16 {
    let config: postgres::Config = url.parse().expect("a postgres URL");
    config.get_ports().first().copied().unwrap_or(5432)
}

impl Cluster {
    /// A database of its own on every node, with Citus in it and the workers registered: Citus
    /// keeps its nodes per database.
    fn database(&self, label: &str) -> ClusterDb {
        // One test at a time adds the workers: citus_add_node from several databases at once
        // failed on a loaded machine ("failure on connection marked as essential").
        static SETUP: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = SETUP.lock().unwrap_or_else(|e| e.into_inner());
        let db = TestDb::new(label);
        assert_eq!(
            with_database(&admin_url(), "x"),
            with_database(&self.coordinator, "x"),
            "the Citus tests run with TEST_DATABASE_URL at the coordinator"
        );
        for worker in &self.workers {
            let mut admin = Client::connect(worker, NoTls).expect("connect to a Citus worker");
            admin
                .batch_execute(&format!("CREATE DATABASE \"{}\"", db.name))
                .expect("create the database on a worker");
            Client::connect(&with_database(worker, &db.name), NoTls)
                .expect("connect to the worker's database")
                .batch_execute("CREATE EXTENSION citus")
                .expect("CREATE EXTENSION citus on a worker");
        }
        let mut coordinator = db.client();
        coordinator.batch_execute("CREATE EXTENSION citus").unwrap();
        coordinator
            .execute(
                "SELECT citus_set_coordinator_host('127.0.0.1', $1)",
                &[&i32::from(port_of(&self.coordinator))],
            )
            .unwrap();
        for worker in &self.workers {
            coordinator
                .execute(
                    "SELECT citus_add_node('127.0.0.1', $1)",
                    &[&i32::from(port_of(worker))],
                )
                .expect("citus_add_node");
        }
        ClusterDb {
            db,
            workers: self.workers.clone(),
        }
    }

    fn worker_url(&self, db: &TestDb) -> String {
        with_database(&self.workers[0], &db.name)
    }
}

/// A test's database on the coordinator and its namesakes on the workers, all dropped at the end
/// (a worker's database left behind keeps a Citus maintenance daemon, and the workers run out of
/// background workers).
struct ClusterDb {
    db: TestDb,
    workers: Vec<String>,
}

impl std::ops::Deref for ClusterDb {
    type Target = TestDb;
    fn deref(&self) -> &TestDb {
        &self.db
    }
}

impl Drop for ClusterDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        for worker in &self.workers {
            if let Ok(mut admin) = Client::connect(worker, NoTls) {
                let _ = admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    self.db.name
                ));
            }
        }
    }
}

/// The example project with one more migration making every table a reference table.
fn citus_project() -> ProjectCopy {
    let project = ProjectCopy::new();
    let calls: Vec<String> = TABLES
        .iter()
        .map(|t| format!("SELECT create_reference_table('{t}');\n"))
        .collect();
    project.write(
        "migrations/V90__citus_reference_tables.sql",
        &calls.concat(),
    );
    project
}

/// The example project with the two tables nobody refers to distributed by hash (as a team's
/// big tables are), referring to the other tables, reference tables.
fn citus_project_with_distributed_tables() -> ProjectCopy {
    let project = ProjectCopy::new();
    let mut calls: Vec<String> = TABLES[..6]
        .iter()
        .map(|t| format!("SELECT create_reference_table('{t}');\n"))
        .collect();
    for t in &TABLES[6..] {
        calls.push(format!(
            "SELECT create_distributed_table('{t}', 'invoice_id');\n"
        ));
    }
    project.write("migrations/V90__citus_tables.sql", &calls.concat());
    project
}

/// The fingerprint plain PostgreSQL gives the example's migrations with these arguments.
fn plain_fingerprint(args: &[&str]) -> String {
    let plain = TestDb::new("citus_plain");
    plain.run(args).success();
    plain.overall_fingerprint()
}

#[test]
fn reset_seed_migrate_status_and_fingerprint_on_a_citus_coordinator_match_plain_postgresql() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database("citus_reset");
    let project = citus_project();
    for profile in ["dev", "demo"] {
        let args = ["reset", "--profile", profile, "--yes"];
        db.run_in(&project, &args).success();
        assert_eq!(
            db.scalar("SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'n'"),
            TABLES.len() as i64,
            "every table is a reference table"
        );
        assert_eq!(
            db.overall_fingerprint(),
            plain_fingerprint(&args),
            "{profile}"
        );
    }
    let seeded = ["seed", "--profile", "dev", "--yes"];
    db.run_in(&project, &seeded).success();
    assert_eq!(
        db.overall_fingerprint(),
        plain_fingerprint(&["reset", "--profile", "dev", "--yes"])
    );
    db.run_in(&project, &["migrate"]).success();
    let status = db.status();
    assert_eq!(
        status["migrations"]["pending"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );
    // The workers hold the same rows (a reference table's copy on each node).
    let worker = Client::connect(&cluster.worker_url(&db), NoTls).map(|mut w| {
        w.query_one("SELECT count(*) FROM clients", &[])
            .unwrap()
            .get::<_, i64>(0)
    });
    assert_eq!(worker.unwrap(), db.scalar("SELECT count(*) FROM clients"));
}

#[test]
fn a_parallel_reset_on_a_citus_coordinator_matches_plain_postgresql() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database("citus_parallel");
    let project = citus_project();
    let args = ["reset", "--profile", "dev", "--yes", "--parallel", "3"];
    db.run_in(&project, &args).success();
    db.run_in(&project, &args).success();
    assert_eq!(
        db.overall_fingerprint(),
        plain_fingerprint(&["reset", "--profile", "dev", "--yes"])
    );
}

#[test]
fn a_migration_error_on_citus_names_its_statement_line() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database("citus_migration_error");
    let project = citus_project();
    project.write(
        "migrations/V91__broken.sql",
        "CREATE TABLE later (id int);\n\nSELECT create_reference_table('later');\n\
         SELECT create_reference_table('later');\n",
    );
    // The server gives no position here: the statement's own line is named.
    db.run_in(&project, &["reset", "--profile", "dev", "--yes"])
        .code(6)
        .stderr_has("V91__broken")
        .stderr_has("already distributed (in the statement at line 4)");
}

#[test]
fn a_citus_worker_is_refused_with_exit_2_before_any_change() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database("citus_worker");
    let project = citus_project();
    // Those that take the lock or write, and those that read what dbtool keeps (dbtool.meta, the
    // lock's holder) or the data: on a worker, that would be the worker's own.
    let commands: [&[&str]; 9] = [
        &["reset", "--profile", "dev", "--yes"],
        &["seed", "--profile", "dev", "--yes"],
        &["migrate"],
        &["protect"],
        &["unprotect"],
        &["status"],
        &["fingerprint"],
        &["lock", "status"],
        &["status", "--json"],
    ];
    for args in commands {
        let mut cmd = crate::support::dbtool_command();
        cmd.env("DATABASE_URL", cluster.worker_url(&db))
            .args(args)
            .args(project.dirs());
        let run = crate::support::Run::of(&mut cmd);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(
            run.stderr.contains("Citus worker node") && run.stderr.contains("coordinator"),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(
            run.stdout, "",
            "{args:?}: nothing is reported as the database's"
        );
    }
    let tables = Client::connect(&cluster.worker_url(&db), NoTls)
        .unwrap()
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname IN ('public', 'dbtool') AND c.relkind IN ('r', 'p', 'S')",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(tables, 0, "nothing was created on the worker");
    // The coordinator of the same cluster is not refused.
    db.run(&["status"]).success();
}

#[test]
fn hash_distributed_tables_referring_to_reference_tables_reset_seed_and_reset_in_parallel() {
    let Some(cluster) = cluster() else { return };
    let db = cluster.database("citus_distributed");
    let project = citus_project_with_distributed_tables();
    db.run_in(&project, &["reset", "--profile", "dev", "--yes"])
        .success();
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_dist_partition WHERE partmethod = 'h'"),
        2,
        "two hash-distributed tables"
    );
    // A parallel DML on a distributed table, then one on the reference table it refers to, in
    // one transaction: Citus refuses it unless the transaction is in sequential mode.
    db.run_in(&project, &["seed", "--profile", "dev", "--yes"])
        .success();
    let expected = plain_fingerprint(&["reset", "--profile", "dev", "--yes"]);
    assert_eq!(db.overall_fingerprint(), expected);
    db.run_in(&project, &["seed", "--profile", "dev", "--yes"])
        .success();
    assert_eq!(db.overall_fingerprint(), expected);
    db.run_in(
        &project,
        &["reset", "--profile", "dev", "--yes", "--parallel", "3"],
    )
    .success();
    assert_eq!(db.overall_fingerprint(), expected);
}
