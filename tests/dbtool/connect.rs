//! Connection problems are exit 5 (or 2 for a bad URL), one clear line, never a panic.

use std::time::Duration;

use crate::support::{Run, TestDb, admin_url, dbtool_command, with_database};

/// A port on which nothing listens.
const DEAD_URL: &str = "postgres://postgres@127.0.0.1:1/postgres";

#[test]
fn an_unreachable_server_exits_5_at_once() {
    let run = Run::of(dbtool_command().env("DATABASE_URL", DEAD_URL).arg("status"));
    run.code(5).stderr_has("cannot connect");
    // No retry: well below the 10 s connect_timeout even on a loaded machine.
    assert!(
        run.elapsed < Duration::from_secs(9),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn wait_for_db_retries_for_the_given_time_then_exits_5() {
    let run = Run::of(dbtool_command().env("DATABASE_URL", DEAD_URL).args([
        "migrate",
        "--wait-for-db",
        "2s",
    ]));
    run.code(5);
    assert!(
        // At least the wait asked for (a bound the process sets itself), and it ends.
        run.elapsed >= Duration::from_millis(1900) && run.elapsed < Duration::from_secs(60),
        "took {:?}",
        run.elapsed
    );
    let run = Run::of(
        dbtool_command()
            .env("DATABASE_URL", DEAD_URL)
            .env("DBTOOL_WAIT_FOR_DB", "1s")
            .arg("wait"),
    );
    run.code(5);
    assert!(
        run.elapsed >= Duration::from_millis(900),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn wait_returns_once_the_server_accepts_connections() {
    let db = TestDb::new("wait_ready");
    db.run(&["wait"]).success();
}

#[test]
fn an_unknown_role_or_database_exits_5() {
    let url = admin_url().replacen("://", "://nosuchrole@", 1);
    // Keep only the first user part: postgres://nosuchrole@user@host is not a URL.
    let url = match url.split_once('@') {
        Some((head, rest)) if rest.contains('@') => {
            format!("{head}@{}", rest.split_once('@').unwrap().1)
        }
        _ => url,
    };
    Run::of(dbtool_command().env("DATABASE_URL", &url).arg("status"))
        .code(5)
        .stderr_has("nosuchrole");
    // Waiting cannot heal a wrong role: no retries.
    let run = Run::of(dbtool_command().env("DATABASE_URL", &url).args([
        "status",
        "--wait-for-db",
        "10m",
    ]));
    run.code(5);
    // Retrying would take ten minutes; no retry ends far sooner, however busy the machine.
    assert!(
        run.elapsed < Duration::from_secs(60),
        "took {:?}",
        run.elapsed
    );
    let missing = with_database(&admin_url(), "no_such_database_here");
    Run::of(dbtool_command().env("DATABASE_URL", &missing).arg("status"))
        .code(5)
        .stderr_has("no_such_database_here");
}

#[test]
fn a_malformed_url_exits_2_and_no_url_tries_libpqs_default() {
    Run::of(
        dbtool_command()
            .env("DATABASE_URL", "postgres://host:notaport/db")
            .arg("status"),
    )
    .code(2)
    .stderr_has("DATABASE_URL");
    // As psql: nothing given means the local socket as the OS user; the error says so.
    Run::of(dbtool_command().arg("status"))
        .code(5)
        .stderr_has("no DATABASE_URL, --database-url or PGHOST was given");
    Run::of(dbtool_command().args(["status", "--bogus-flag"])).code(2);
}

#[test]
fn global_options_work_before_and_after_the_command() {
    let db = TestDb::new("global_options");
    Run::of(dbtool_command().args(["--database-url", &db.url, "--pool-size", "3", "migrate"]))
        .success();
    Run::of(dbtool_command().args(["migrate", "--database-url", &db.url, "--pool-size", "3"]))
        .success();
}
