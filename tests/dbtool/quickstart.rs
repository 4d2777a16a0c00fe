//! scripts/quickstart.sh resets a throwaway server of its own, never an inherited DATABASE_URL.

use crate::support::{TestDb, binary, project_dir};

#[test]
fn quickstart_leaves_the_database_that_database_url_names_untouched() {
    let db = TestDb::new("quickstart_inherited");
    db.client()
        .batch_execute(
            "CREATE TABLE customers (id int PRIMARY KEY);
             INSERT INTO customers SELECT generate_series(1, 1000);",
        )
        .unwrap();
    let before = db.dump_all();
    let sandbox = format!("quickstart-test-{}", std::process::id());
    let output = std::process::Command::new("bash")
        .arg(project_dir().join("scripts/quickstart.sh"))
        .env("DATABASE_URL", &db.url)
        .env("PGDATABASE", &db.name)
        .env("DBTOOL_BIN", binary())
        .env("QUICKSTART_SANDBOX", &sandbox)
        .env_remove("QUICKSTART_DATABASE_URL")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run scripts/quickstart.sh");
    let stop = std::process::Command::new("bash")
        .arg(project_dir().join("scripts/sandbox.sh"))
        .arg("stop")
        .env("DBTOOL_SANDBOX", &sandbox)
        .output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "quickstart failed:\n{stderr}");
    assert!(stop.is_ok_and(|s| s.status.success()), "sandbox stop");
    assert!(
        stderr.contains("DATABASE_URL is set in your environment; the quickstart ignores it"),
        "{stderr}"
    );
    assert!(
        stderr.contains("on a throwaway PostgreSQL of the quickstart's own"),
        "says which server: {stderr}"
    );
    assert!(stderr.contains("reset done"), "{stderr}");
    assert_eq!(db.dump_all(), before, "the inherited database is untouched");
    assert_eq!(db.scalar("SELECT count(*) FROM customers"), 1000);
}
