//! Servers whose lock is not a lock (DESIGN.md §9): dbtool checks, before any change, that a
//! work connection sees the lock held by the lock connection's backend in pg_locks, and calls
//! the system functions by their qualified names.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use crate::support::{Run, TestDb, changes_nothing, dbtool_command};

#[test]
fn look_alike_lock_functions_first_on_the_search_path_stand_in_for_nothing() {
    let db = TestDb::new("look_alikes");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    // Functions of the system's names in the application's schema, which this database's
    // search_path puts before pg_catalog: each would make the lock a no-op.
    let mut client = db.client();
    client
        .batch_execute(&format!(
            "CREATE FUNCTION public.pg_try_advisory_lock(bigint) RETURNS boolean
                 LANGUAGE sql AS 'SELECT true';
             CREATE FUNCTION public.pg_advisory_unlock(bigint) RETURNS boolean
                 LANGUAGE sql AS 'SELECT true';
             CREATE FUNCTION public.pg_backend_pid() RETURNS integer LANGUAGE sql AS 'SELECT 1';
             CREATE VIEW public.pg_locks AS SELECT * FROM pg_catalog.pg_locks;
             ALTER DATABASE \"{}\" SET search_path = public, pg_catalog",
            db.name
        ))
        .unwrap();
    // Someone else holds the real lock: dbtool must see it, not the look-alike's `true`.
    let (holder, _pid) = db.hold_lock();
    db.run(&["migrate", "--lock-timeout", "0"])
        .code(3)
        .stderr_has("lock");
    drop(holder);
    assert!(db.eventually(std::time::Duration::from_secs(5), |db| {
        db.advisory_locks() == 0
    }));
    // With nobody holding it, the real lock is taken and given back.
    db.run(&["seed", "--profile", "ci", "--yes"]).success();
    assert_eq!(db.advisory_locks(), 0);
}

/// A proxy in front of the test server that rewrites the lock calls of every query, as an
/// engine does whose lock functions answer without locking (or are missing).
struct LockRewritingProxy {
    port: u16,
}

impl LockRewritingProxy {
    /// Each of dbtool's lock calls becomes `replacement` (with the same `$1`).
    fn start(replacement: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = upstream_address();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut from_server, mut to_client) =
                    (server.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || std::io::copy(&mut from_server, &mut to_client));
                std::thread::spawn(move || relay_rewriting(client, server, replacement));
            }
        });
        LockRewritingProxy { port }
    }

    fn url(&self, db: &TestDb) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}?sslmode=disable",
            self.port, db.name
        )
    }
}

fn upstream_address() -> String {
    let config: postgres::Config = crate::support::admin_url().parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    format!(
        "{host}:{}",
        config.get_ports().first().copied().unwrap_or(5432)
    )
}

/// Client to server: the startup packet as it is, then every message, with the text of Parse
/// (`P`) and simple Query (`Q`) messages rewritten.
fn relay_rewriting(mut client: TcpStream, mut server: TcpStream, replacement: &str) {
    let mut read_exact = |n: usize| -> Option<Vec<u8>> {
        let mut buf = vec![0; n];
        client.read_exact(&mut buf).ok().map(|_| buf)
    };
    let Some(len) = read_exact(4) else { return };
    let Some(startup) = read_exact(i32::from_be_bytes(len[..].try_into().unwrap()) as usize - 4)
    else {
        return;
    };
    if server
        .write_all(&len)
        .and_then(|_| server.write_all(&startup))
        .is_err()
    {
        return;
    }
    loop {
        let Some(head) = read_exact(5) else { return };
        let len = i32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
        let Some(mut body) = read_exact(len - 4) else {
            return;
        };
        if head[0] == b'P' || head[0] == b'Q' {
            let text = String::from_utf8_lossy(&body).into_owned();
            let rewritten = [
                "pg_catalog.pg_try_advisory_lock($1)",
                "pg_catalog.pg_advisory_unlock($1)",
            ]
            .iter()
            .fold(text, |t, call| t.replace(call, replacement));
            body = rewritten.into_bytes();
        }
        let mut message = vec![head[0]];
        message.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        message.extend_from_slice(&body);
        if server.write_all(&message).is_err() {
            return;
        }
    }
}

#[test]
fn a_lock_that_answers_true_without_locking_is_refused_before_any_change() {
    let db = TestDb::new("fake_lock");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let proxy = LockRewritingProxy::start("($1::bigint IS NOT NULL)");
    let stderr = changes_nothing(&db, 2, || {
        Run::of(dbtool_command().env("DATABASE_URL", proxy.url(&db)).args([
            "reset",
            "--profile",
            "dev",
            "--yes",
        ]))
    });
    assert!(stderr.contains("pg_locks"), "{stderr}");
    assert!(
        stderr.contains("PostgreSQL 1"),
        "names the server: {stderr}"
    );
}

#[test]
fn a_server_without_advisory_locks_is_refused_naming_it() {
    let db = TestDb::new("no_lock");
    db.run(&["reset", "--profile", "ci", "--yes"]).success();
    let proxy = LockRewritingProxy::start("pg_catalog.no_such_advisory_lock($1)");
    let stderr = changes_nothing(&db, 2, || {
        Run::of(dbtool_command().env("DATABASE_URL", proxy.url(&db)).args([
            "seed",
            "--profile",
            "dev",
            "--yes",
        ]))
    });
    assert!(stderr.contains("no session advisory lock"), "{stderr}");
    assert!(
        stderr.contains("PostgreSQL 1"),
        "names the server: {stderr}"
    );
}
