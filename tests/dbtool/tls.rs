//! Connecting wherever psql connects: TLS with every sslmode against a server that takes only
//! `hostssl` with scram-sha-256 (certificates made here with the `openssl` command), the libpq
//! environment, `.pgpass`, key=value strings, socket directories, percent-encoded passwords, and
//! a listener that accepts TCP and never answers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{Run, TestServer, dbtool_command};

/// A password with every character a URL needs encoded.
const PASSWORD: &str = "p@ss:/?#w";
const ENCODED_PASSWORD: &str = "p%40ss%3A%2F%3F%23w";

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and certificates it signed: one for the server (named `localhost` only, so that
/// 127.0.0.1 is a host name mismatch) and one for the client role `certuser`. Also a second CA
/// that signed nothing here.
struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        for ca in ["ca", "other-ca"] {
            openssl(
                d,
                &[
                    &["req", "-x509", "-nodes", "-days", "2"][..],
                    &ec,
                    &[
                        "-keyout",
                        &format!("{ca}.key"),
                        "-out",
                        &format!("{ca}.crt"),
                        "-subj",
                        &format!("/CN=dbtool test {ca}"),
                    ],
                ]
                .concat(),
            );
        }
        std::fs::write(d.join("server.ext"), "subjectAltName=DNS:localhost\n").unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, cn) in [("server", "localhost"), ("client", "certuser")] {
            openssl(
                d,
                &[
                    &["req", "-nodes"][..],
                    &ec,
                    &[
                        "-keyout",
                        &format!("{name}.key"),
                        "-out",
                        &format!("{name}.csr"),
                        "-subj",
                        &format!("/CN={cn}"),
                    ],
                ]
                .concat(),
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-days",
                    "2",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-extfile",
                    &format!("{name}.ext"),
                    "-out",
                    &format!("{name}.crt"),
                ],
            );
        }
        Certificates { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read certificate")
    }
}

/// A server that accepts only TLS (scram-sha-256, or a client certificate for `certuser`), with
/// the role `app` owning the database `app`.
fn tls_server(certs: &Certificates) -> TestServer {
    let server = TestServer::init();
    let cert = server.write_private("server.crt", &certs.read("server.crt"));
    let key = server.write_private("server.key", &certs.read("server.key"));
    let ca = server.write_private("ca.crt", &certs.read("ca.crt"));
    server.configure(
        "local all postgres trust\n\
         hostssl all certuser 127.0.0.1/32 cert\n\
         hostssl all all 127.0.0.1/32 scram-sha-256\n",
        &format!(
            "\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nssl_ca_file = '{}'\n",
            cert.display(),
            key.display(),
            ca.display()
        ),
    );
    server.start();
    create_app_role(&server);
    server
        .admin()
        .batch_execute("CREATE ROLE certuser LOGIN")
        .expect("create certuser");
    server
        .admin()
        .batch_execute("CREATE DATABASE certdb OWNER certuser")
        .expect("create certdb");
    server
}

fn create_app_role(server: &TestServer) {
    let mut admin = server.admin();
    admin
        .batch_execute(&format!(
            // PostgreSQL 13 stores md5 unless told, which scram-sha-256 in pg_hba.conf refuses.
            "SET password_encryption = 'scram-sha-256';
             CREATE ROLE app LOGIN PASSWORD '{}' NOSUPERUSER NOCREATEDB",
            PASSWORD.replace('\'', "''")
        ))
        .expect("create app");
    admin
        .batch_execute("CREATE DATABASE app OWNER app")
        .expect("create database app");
    let mut pg = postgres::Config::new();
    pg.host_path(server.dir())
        .port(server.port)
        .user("postgres")
        .dbname("app");
    pg.connect(postgres::NoTls)
        .expect("connect to app")
        .batch_execute("ALTER SCHEMA public OWNER TO app")
        .expect("hand public to app");
}

fn status(url: &str) -> Run {
    Run::of(dbtool_command().env("DATABASE_URL", url).arg("status"))
}

#[test]
fn every_sslmode_against_a_server_that_takes_only_tls() {
    let certs = Certificates::new();
    let server = tls_server(&certs);
    let port = server.port;
    let ca = certs.path("ca.crt").display().to_string();
    let other_ca = certs.path("other-ca.crt").display().to_string();
    let app = |host: &str, query: &str| {
        format!("postgres://app:{ENCODED_PASSWORD}@{host}:{port}/app?{query}")
    };

    // Encrypted, certificate unchecked; prefer (the default) and allow find TLS too.
    status(&app("127.0.0.1", "sslmode=require")).success();
    status(&app("127.0.0.1", "")).success();
    status(&app("127.0.0.1", "sslmode=allow")).success();
    // The chain against our CA; verify-ca does not look at the name.
    status(&app(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    ))
    .success();
    status(&app(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .success();

    // The certificate names localhost, not 127.0.0.1.
    let run = status(&app(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ));
    run.code(5)
        .stderr_has("certificate did not verify")
        .stderr_has("mismatch");
    // Another CA signed nothing here; require with a root certificate checks it, as libpq does.
    for mode in ["verify-ca", "require"] {
        let run = status(&app(
            "localhost",
            &format!("sslmode={mode}&sslrootcert={other_ca}"),
        ));
        run.code(5)
            .stderr_has("certificate did not verify")
            .stderr_has("sslrootcert");
    }
    // The server's own reason, and the hint that fits it.
    let run = status(&app("127.0.0.1", "sslmode=disable"));
    run.code(5).stderr_has("sslmode=require");
    // PostgreSQL 13 says "SSL off".
    assert!(
        run.stderr.contains("no encryption") || run.stderr.contains("SSL off"),
        "{}",
        run.stderr
    );

    // A client certificate instead of a password (cert auth), through the PG* variables.
    let run = Run::of(
        dbtool_command()
            .env("PGHOST", "localhost")
            .env("PGPORT", port.to_string())
            .env("PGUSER", "certuser")
            .env("PGDATABASE", "certdb")
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", &ca)
            .env("PGSSLCERT", certs.path("client.crt"))
            .env("PGSSLKEY", certs.path("client.key"))
            .arg("status"),
    );
    run.success();

    // A whole reset over verified TLS: the pool, the lock and the work connections all use it.
    let run = Run::of(
        dbtool_command()
            .env(
                "DATABASE_URL",
                app(
                    "localhost",
                    &format!("sslmode=verify-full&sslrootcert={ca}"),
                ),
            )
            .args(["reset", "--profile", "ci", "--yes"]),
    );
    run.success();
    assert!(!run.stderr.contains(PASSWORD) && !run.stdout.contains(PASSWORD));
    let encrypted: bool = server
        .admin()
        .query_one(
            "SELECT count(*) = 0 FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.usename = 'app' AND NOT s.ssl",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(encrypted);
}

#[test]
fn the_same_reset_through_every_input_form() {
    let server = TestServer::init();
    server.configure(
        "local all postgres trust\n\
         local all all scram-sha-256\n\
         host all all 127.0.0.1/32 scram-sha-256\n",
        "",
    );
    server.start();
    create_app_role(&server);
    let port = server.port.to_string();
    let socket_dir = server.dir().display().to_string();
    let reset = |cmd: &mut std::process::Command| {
        let run = Run::of(cmd.args(["reset", "--profile", "ci", "--yes"]));
        run.success();
        assert!(
            !run.stderr.contains(PASSWORD) && !run.stdout.contains(PASSWORD),
            "the password was printed:\n{}",
            run.stderr
        );
        run
    };

    // The PG* variables only, as psql takes them; -v says where each value came from, and the
    // first line names what is about to change.
    let run = reset(
        dbtool_command()
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", &port)
            .env("PGUSER", "app")
            .env("PGPASSWORD", PASSWORD)
            .env("PGDATABASE", "app")
            .arg("-v"),
    );
    run.stderr_has("database app (from PGDATABASE)")
        .stderr_has("port ")
        .stderr_has("sslmode prefer (from libpq default)");
    let first = run.stderr.lines().find(|l| !l.contains(" debug ")).unwrap();
    assert!(
        first.contains(&format!(
            "host 127.0.0.1, port {port}, database app, schema public"
        )),
        "first line: {first}"
    );

    // A URL without port or database is completed by PGPORT and PGDATABASE, value by value.
    reset(
        dbtool_command()
            .env("DATABASE_URL", "postgres://app@127.0.0.1")
            .env("PGPORT", &port)
            .env("PGDATABASE", "app")
            .env("PGPASSWORD", PASSWORD),
    );

    // .pgpass (here through PGPASSFILE) with its escapes; ignored, with a warning, when others
    // can read it.
    let dir = tempfile::tempdir().unwrap();
    let pgpass = dir.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "# dbtool test\nelsewhere:*:*:*:wrong\n127.0.0.1:{port}:app:app:{}\n",
            PASSWORD.replace(':', "\\:")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let url = format!("postgres://app@127.0.0.1:{port}/app");
    reset(
        dbtool_command()
            .env("DATABASE_URL", &url)
            .env("PGPASSFILE", &pgpass),
    );
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    Run::of(
        dbtool_command()
            .env("DATABASE_URL", &url)
            .env("PGPASSFILE", &pgpass)
            .arg("status"),
    )
    .code(5)
    .stderr_has("group or world access")
    .stderr_has("none was given");

    // A key=value string with a quoted password.
    reset(dbtool_command().env(
        "DATABASE_URL",
        format!(
            "host=127.0.0.1 port={port} user=app dbname=app password='{}'",
            PASSWORD.replace('\'', "\\'")
        ),
    ));
    // A socket directory, in a URL (percent-encoded) and in PGHOST.
    let encoded_dir = socket_dir.replace('/', "%2F");
    reset(dbtool_command().env(
        "DATABASE_URL",
        format!("postgresql://app:{ENCODED_PASSWORD}@{encoded_dir}:{port}/app"),
    ));
    reset(
        dbtool_command()
            .env("DATABASE_URL", "postgres:///app?user=app")
            .env("PGHOST", &socket_dir)
            .env("PGPORT", &port)
            .env("PGPASSWORD", PASSWORD),
    );
    // A percent-encoded password with @:/?#; unencoded, the error says to encode it.
    reset(dbtool_command().env(
        "DATABASE_URL",
        format!("postgres://app:{ENCODED_PASSWORD}@127.0.0.1:{port}/app"),
    ));
    let run = Run::of(
        dbtool_command()
            .env(
                "DATABASE_URL",
                format!("postgres://app:{PASSWORD}@127.0.0.1:{port}/app"),
            )
            .arg("status"),
    );
    run.code(2).stderr_has("percent-encode");
    assert!(!run.stderr.contains(PASSWORD));
    // A wrong password: the server's reason, and no password echoed.
    let run = status(&format!("postgres://app:nope%40x@127.0.0.1:{port}/app"));
    run.code(5).stderr_has("password authentication failed");
    assert!(!run.stderr.contains("nope@x"));
    // Several hosts: the first is down, the one that answered is the one reported.
    let run = Run::of(
        dbtool_command()
            .env(
                "DATABASE_URL",
                format!(
                    "postgres://app:{ENCODED_PASSWORD}@127.0.0.1:1,127.0.0.1:{port}/app?target_session_attrs=read-write&application_name=my-cron-job"
                ),
            )
            .args(["migrate"]),
    );
    run.success()
        .stderr_has(&format!("host 127.0.0.1, port {port}, database app"));
}

#[test]
fn the_users_application_name_is_kept_beside_dbtools() {
    let db = crate::support::TestDb::new("appname");
    let url = format!("{}?application_name=my-cron-job", db.url);
    // dbtool waits for a lock we hold, so that its sessions stay long enough to be seen.
    let (holder, _) = db.hold_lock();
    let mut child = dbtool_command()
        .env("DATABASE_URL", &url)
        .env("DBTOOL_LOCK_TIMEOUT", "20s")
        .args(["migrate"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let seen = db.eventually(Duration::from_secs(10), |db| {
        db.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name LIKE 'dbtool migrate %:% (my-cron-job)'",
        ) > 0
    });
    let _ = child.kill();
    let _ = child.wait();
    drop(holder);
    assert!(
        seen,
        "no session named `dbtool migrate host:pid (my-cron-job)`"
    );
}

#[test]
fn a_listener_that_never_answers_exits_5_within_the_connect_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold every connection without a word.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let url = format!("postgres://u:pw@127.0.0.1:{port}/db");
    let run = Run::of(
        dbtool_command()
            .env("DATABASE_URL", format!("{url}?connect_timeout=2"))
            .arg("status"),
    );
    run.code(5).stderr_has("connect_timeout");
    assert!(
        // Lower bound: the timeout itself; upper: it ends (generous for a loaded machine).
        run.elapsed >= Duration::from_secs(2) && run.elapsed < Duration::from_secs(30),
        "took {:?}",
        run.elapsed
    );
    // A longer --wait-for-db retries until it runs out, then exits 5.
    let run = Run::of(
        dbtool_command()
            .env("DATABASE_URL", &url)
            .env("PGCONNECT_TIMEOUT", "2")
            .args(["status", "--wait-for-db", "5s"]),
    );
    run.code(5).stderr_has("gave up after");
    assert!(
        run.elapsed >= Duration::from_secs(5) && run.elapsed < Duration::from_secs(60),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn sigterm_mid_seed_over_tls_cancels_and_releases_the_lock() {
    let certs = Certificates::new();
    let server = tls_server(&certs);
    let url = format!(
        "postgres://app:{ENCODED_PASSWORD}@localhost:{}/app?sslmode=verify-full&sslrootcert={}",
        server.port,
        certs.path("ca.crt").display()
    );
    let mut child = dbtool_command()
        .env("DATABASE_URL", &url)
        .args(["reset", "--profile", "bench", "--yes"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn dbtool");
    let dbtool_sessions = |condition: &str| -> i64 {
        server
            .admin()
            .query_one(
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'app' \
                     AND application_name LIKE 'dbtool%' {condition}"
                ),
                &[],
            )
            .unwrap()
            .get(0)
    };
    let seeding = crate::support::wait_until(Duration::from_secs(60), || {
        assert!(child.try_wait().unwrap().is_none(), "dbtool ended early");
        dbtool_sessions("AND query LIKE 'COPY%' AND state = 'active'") > 0
    });
    assert!(seeding, "the reset never started seeding");
    let sent = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let run = Run::from_output(child.wait_with_output().unwrap(), sent.elapsed());
    run.code(143).stderr_has("released");
    // A stop that hung would never end; 30 s keeps a loaded machine from failing the test.
    assert!(
        run.elapsed < Duration::from_secs(30),
        "took {:?}",
        run.elapsed
    );
    assert!(crate::support::wait_until(Duration::from_secs(5), || {
        dbtool_sessions("") == 0
    }));
}

#[test]
fn every_connection_has_tcp_keepalives() {
    let db = crate::support::TestDb::new("keepalives");
    // dbtool waits for a lock we hold, with its connections open.
    let (holder, _) = db.hold_lock();
    let mut child = db
        .dbtool()
        .env("DBTOOL_LOCK_TIMEOUT", "20s")
        .arg("migrate")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = format!("pid={},", child.id());
    let mut sockets = String::new();
    let seen = crate::support::wait_until(Duration::from_secs(10), || {
        let out = std::process::Command::new("ss")
            .args(["-tnpo", "state", "established"])
            .output()
            .expect("ss (iproute2; scripts/test.sh installs it)");
        sockets = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&pid))
            .collect::<Vec<_>>()
            .join("\n");
        // A socket with data in flight shows its retransmission timer instead: wait for quiet.
        !sockets.is_empty()
            && sockets
                .lines()
                .all(|socket| socket.contains("timer:(keepalive"))
    });
    let _ = child.kill();
    let _ = child.wait();
    drop(holder);
    assert!(
        seen,
        "no idle connection of dbtool with a keepalive timer:\n{sockets}"
    );
    for socket in sockets.lines() {
        assert!(
            socket.contains("timer:(keepalive"),
            "no keepalive: {socket}"
        );
    }
}

/// `sslrootcert=system` trusts the platform's bundle, which SSL_CERT_FILE may name: the same in
/// a build with the system's OpenSSL and one with OpenSSL built in (`vendored-openssl`, the
/// release binaries), whose own default paths are not the distribution's.
#[test]
fn sslrootcert_system_trusts_the_bundle_ssl_cert_file_names() {
    let certs = Certificates::new();
    let server = tls_server(&certs);
    let url = format!(
        "postgres://app:{ENCODED_PASSWORD}@localhost:{}/app?sslmode=verify-full&sslrootcert=system",
        server.port
    );
    Run::of(
        dbtool_command()
            .env("DATABASE_URL", &url)
            .env("SSL_CERT_FILE", certs.path("ca.crt"))
            .arg("status"),
    )
    .success();
    Run::of(
        dbtool_command()
            .env("DATABASE_URL", &url)
            .env("SSL_CERT_FILE", certs.path("other-ca.crt"))
            .arg("status"),
    )
    .code(5)
    .stderr_has("certificate did not verify");
}
