//! The harness: a database per test, and the real dbtool binary pointed at it.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use postgres::{Client, NoTls};

/// The server the tests run against.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .expect("TEST_DATABASE_URL must point at a PostgreSQL server; scripts/test.sh starts one")
}

/// `url` with its database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    match query {
        Some(q) => format!("{}/{db}?{q}", &base[..path]),
        None => format!("{}/{db}", &base[..path]),
    }
}

pub fn project_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn binary() -> PathBuf {
    assert_cmd::cargo::cargo_bin("dbtool")
}

/// A dbtool command with a clean dbtool environment, run from the project directory.
pub fn dbtool_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(binary());
    cmd.current_dir(project_dir());
    for (key, _) in std::env::vars() {
        // The libpq variables too: a test names its server itself.
        if key.starts_with("DBTOOL_")
            || key.starts_with("PG")
            || key == "SEED_PROFILE"
            || key == "DATABASE_URL"
        {
            cmd.env_remove(key);
        }
    }
    cmd.env("DBTOOL_LOG_FORMAT", "text").env("NO_COLOR", "1");
    cmd.stdin(std::process::Stdio::null());
    cmd
}

/// A database of its own, dropped when the test passes and kept (and named) when it fails.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(32)
            .collect();
        let name = format!(
            "t_{label}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = Client::connect(&admin_url(), NoTls).expect("connect to TEST_DATABASE_URL");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create the test database");
        TestDb {
            url: with_database(&admin_url(), &name),
            name,
        }
    }

    /// dbtool pointed at this database.
    pub fn dbtool(&self) -> std::process::Command {
        let mut cmd = dbtool_command();
        cmd.env("DATABASE_URL", &self.url);
        cmd
    }

    /// Runs dbtool with `args` and waits for it.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(self.dbtool().args(args))
    }

    /// Runs dbtool with `args` against a project copy's migrations, seeds and profiles.
    pub fn run_in(&self, project: &ProjectCopy, args: &[&str]) -> Run {
        Run::of(self.dbtool().args(args).args(project.dirs()))
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).expect("connect to the test database")
    }

    pub fn scalar(&self, sql: &str) -> i64 {
        self.client().query_one(sql, &[]).expect(sql).get(0)
    }

    pub fn text(&self, sql: &str) -> String {
        self.client().query_one(sql, &[]).expect(sql).get(0)
    }

    /// `dbtool status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let run = self.run(&["status", "--json"]);
        run.success();
        serde_json::from_str(&run.stdout).expect("status --json prints JSON")
    }

    /// `dbtool fingerprint --json`, parsed.
    pub fn fingerprint(&self) -> serde_json::Value {
        let run = self.run(&["fingerprint", "--json"]);
        run.success();
        serde_json::from_str(&run.stdout).expect("fingerprint --json prints JSON")
    }

    pub fn overall_fingerprint(&self) -> String {
        self.fingerprint()["overall"]
            .as_str()
            .expect("overall")
            .to_string()
    }

    /// pg_dump of this database with `args`, without its comments and psql's restrict lines (both
    /// change from one dump to the next).
    pub fn dump(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(pg_dump())
            .args(args)
            .arg(&self.url)
            .output()
            .expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("pg_dump prints UTF-8")
            .lines()
            .filter(|l| {
                !l.starts_with("--")
                    && !l.starts_with("\\restrict")
                    && !l.starts_with("\\unrestrict")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The whole database, data and dbtool.meta included.
    pub fn dump_all(&self) -> String {
        self.dump(&["--no-owner", "--no-privileges"])
    }

    /// Takes dbtool's default lock in a session of our own: the client and its backend pid.
    /// After a reset that gave atomicity up and failed: `status` shows it unfinished, with no
    /// last reset, and a rerun with `--skip-if-reset-within` resets rather than skips.
    #[track_caller]
    pub fn assert_unfinished_and_never_skipped(&self) {
        let status = self.status();
        assert!(status["unfinished"].is_object(), "{status}");
        assert!(status["last_reset"].is_null(), "{status}");
        self.run(&[
            "reset",
            "--profile",
            "dev",
            "--yes",
            "--skip-if-reset-within",
            "1h",
        ])
        .success();
    }

    pub fn hold_lock(&self) -> (Client, i32) {
        let mut holder = self.client();
        holder
            .execute("SELECT pg_advisory_lock($1)", &[&default_lock_key()])
            .unwrap();
        let pid: i32 = holder
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0);
        (holder, pid)
    }

    /// Advisory locks held in this database by anyone.
    pub fn advisory_locks(&self) -> i64 {
        self.scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = \
             (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
    }

    /// Backends of this database whose application_name starts with `dbtool`.
    pub fn dbtool_backends(&self) -> i64 {
        self.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name LIKE 'dbtool%'",
        )
    }

    /// Polls `f` until it is true or `within` passes.
    pub fn eventually(&self, within: Duration, mut f: impl FnMut(&Self) -> bool) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < within {
            if f(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        f(self)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: keeping database {} for inspection", self.name);
            return;
        }
        if let Ok(mut admin) = Client::connect(&admin_url(), NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A finished dbtool process.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn of(cmd: &mut std::process::Command) -> Self {
        let start = std::time::Instant::now();
        let output: Output = cmd.output().expect("run dbtool");
        Run::from_output(output, start.elapsed())
    }

    pub fn from_output(output: Output, elapsed: Duration) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed,
        }
    }

    #[track_caller]
    pub fn success(&self) -> &Self {
        self.code(0)
    }

    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "expected exit {expected}, got {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self.no_crash()
    }

    /// A user's error is one clear line, never a panic or a Debug dump.
    #[track_caller]
    pub fn no_crash(&self) -> &Self {
        for bad in [
            "panicked",
            "RUST_BACKTRACE",
            "stack backtrace",
            "Error {",
            "DbError {",
        ] {
            assert!(
                !self.stderr.contains(bad),
                "stderr contains {bad:?}:\n{}",
                self.stderr
            );
        }
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// A copy of the project's migrations, seeds and profiles that a test may change.
pub struct ProjectCopy {
    pub dir: tempfile::TempDir,
}

impl ProjectCopy {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for sub in ["migrations", "seeds", "profiles"] {
            copy_dir(&project_dir().join(sub), &dir.path().join(sub));
        }
        ProjectCopy { dir }
    }

    /// A copy of the project under `sub` of this repository (tests/pagila, say).
    pub fn of(sub: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_dir(&project_dir().join(sub), dir.path());
        ProjectCopy { dir }
    }

    /// Replaces the first `from` by `to` in one of the copy's files.
    pub fn edit(&self, file: &str, from: &str, to: &str) {
        let path = self.path(file);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(from), "{file} lacks {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
    }

    /// `reset --profile dev` of this copy against a server that does not exist: what a spec or
    /// profile mistake makes of it before any connection.
    pub fn reset_without_a_server(&self) -> Run {
        Run::of(
            dbtool_command()
                .args([
                    "--database-url",
                    "postgres://nobody@127.0.0.1:9/none",
                    "reset",
                    "--yes",
                    "--profile",
                    "dev",
                ])
                .args(self.dirs()),
        )
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    pub fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.path().join(file), text).expect("write");
    }

    /// dbtool args pointing at this copy.
    pub fn dirs(&self) -> Vec<String> {
        vec![
            "--migrations-dir".into(),
            self.path("migrations").display().to_string(),
            "--seeds-dir".into(),
            self.path("seeds").display().to_string(),
            "--profiles-dir".into(),
            self.path("profiles").display().to_string(),
        ]
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// The lock key dbtool uses by default.
fn default_lock_key() -> i64 {
    dbtool::config::LockKey::parse("dbtool").unwrap().value
}

/// Whether this process runs as root (server binaries then run as the `postgres` user).
fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command for a server binary, as the `postgres` user when we are root.
pub fn server_command(program: &Path) -> std::process::Command {
    if is_root() {
        let mut cmd = std::process::Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        std::process::Command::new(program)
    }
}

/// A directory the server user can write to.
pub fn server_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("dbtool-test-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    if is_root() {
        let status = std::process::Command::new("chown")
            .args(["postgres:", &dir.path().display().to_string()])
            .status()
            .expect("chown");
        assert!(status.success());
    }
    dir
}

/// pg_dump: TEST_PG_DUMP (scripts/test.sh sets one that dumps every server version it tests),
/// else from PATH, else from the newest server installation.
pub fn pg_dump() -> String {
    if let Ok(path) = std::env::var("TEST_PG_DUMP") {
        return path;
    }
    if std::process::Command::new("pg_dump")
        .arg("--version")
        .output()
        .is_ok()
    {
        return "pg_dump".into();
    }
    server_bindir().join("pg_dump").display().to_string()
}

/// The server binaries of the tests that start a server of their own (TLS, restarts, a late
/// server): TEST_PG_BINDIR, which scripts/test.sh sets to the version under test, else the
/// newest Debian installation.
pub fn server_bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("TEST_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.pop()
        .expect("PostgreSQL server binaries (scripts/sandbox.sh installs them)")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .unwrap()
        .port()
}

/// A PostgreSQL server of a test's own, for faults that affect a whole server.
pub struct TestServer {
    pub port: u16,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// initdb only; `start` starts it.
    pub fn init() -> Self {
        let dir = server_dir();
        let out = server_command(&server_bindir().join("initdb"))
            .args(["-D", &dir.path().join("data").display().to_string()])
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestServer {
            port: free_port(),
            dir,
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's directory: its Unix socket is there, and files the server must read.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces pg_hba.conf and appends `settings` to postgresql.conf (before `start`).
    pub fn configure(&self, hba: &str, settings: &str) {
        let data = self.dir.path().join("data");
        std::fs::write(data.join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("read conf");
        conf.push_str(settings);
        std::fs::write(data.join("postgresql.conf"), conf).expect("write postgresql.conf");
    }

    /// Writes a file the server reads (certificates, keys): owned by the server user, mode 0600.
    pub fn write_private(&self, name: &str, contents: &[u8]) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        if is_root() {
            let status = std::process::Command::new("chown")
                .args(["postgres:", &path.display().to_string()])
                .status()
                .expect("chown");
            assert!(status.success());
        }
        path
    }

    /// A superuser session over the Unix socket (pg_hba.conf must trust `local` for postgres).
    pub fn admin(&self) -> Client {
        let mut pg = postgres::Config::new();
        pg.host_path(self.dir.path())
            .port(self.port)
            .user("postgres")
            .dbname("postgres");
        pg.connect(NoTls).expect("connect over the socket")
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        let data = self.dir.path().join("data").display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        server_command(&server_bindir().join("pg_ctl"))
            .args(["-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60"])
            .args(args)
            .output()
            .expect("pg_ctl")
    }

    pub fn start(&self) {
        let out = self.pg_ctl(&["start"]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn restart(&self) {
        let out = self.pg_ctl(&["-m", "fast", "restart"]);
        assert!(
            out.status.success(),
            "pg_ctl restart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn stop(&self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.dir.path().join("data/postmaster.pid").exists() {
            self.stop();
        }
    }
}

/// Polls `f` until it is true or `within` passes.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < within {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A dbtool run that must fail with `code` and leave `db` byte for byte as it was.
#[track_caller]
pub fn changes_nothing(db: &TestDb, code: i32, run: impl FnOnce() -> Run) -> String {
    let before = db.dump_all();
    let run = run();
    run.code(code);
    assert_eq!(
        db.dump_all(),
        before,
        "the database changed:\n{}",
        run.stderr
    );
    assert_eq!(db.advisory_locks(), 0);
    run.stderr
}
