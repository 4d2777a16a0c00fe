//! Where to connect, resolved from the same inputs as libpq (psql, pg_dump) and with its
//! precedence: the connection string (`--database-url`, else `DATABASE_URL`), then the `PG*`
//! variables, then libpq's defaults; the password from the string, `PGPASSWORD` or the password
//! file. TLS settings are resolved here too, because the postgres crate only knows
//! disable/prefer/require: the libpq forms it does not parse are taken out of the string first.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use postgres::config::{Host, SslMode as DriverSslMode, TargetSessionAttrs};

use crate::error::{Error, Result};

/// libpq's default when `connect_timeout` is given nowhere: dbtool never waits forever.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a resolved value came from, for `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    DatabaseUrl,
    Env(&'static str),
    PasswordFile(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("--database-url"),
            Source::DatabaseUrl => f.write_str("DATABASE_URL"),
            Source::Env(name) => f.write_str(name),
            Source::PasswordFile(path) => write!(f, "password file {}", path.display()),
            Source::Default => f.write_str("libpq default"),
        }
    }
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::usage(format!(
                    "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The certificate authorities a server's certificate is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    /// `sslrootcert=system`: the platform's trusted roots (OpenSSL's default paths).
    System,
}

/// The TLS half of the connection settings.
#[derive(Debug, Clone)]
pub struct Tls {
    pub mode: SslMode,
    pub root_cert: Option<RootCert>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl Tls {
    /// Whether the server's certificate chain is checked: verify-ca and verify-full, and, as in
    /// libpq, require when a root certificate file is there.
    pub fn verifies_chain(&self) -> bool {
        self.mode >= SslMode::VerifyCa
            || (self.mode == SslMode::Require && self.root_cert.is_some())
    }

    pub fn verifies_host_name(&self) -> bool {
        self.mode == SslMode::VerifyFull
    }
}

/// One server to try: a host name, address or socket directory, with its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Host,
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Tcp(h) if h.contains(':') => write!(f, "[{h}]:{}", self.port),
            Host::Tcp(h) => write!(f, "{h}:{}", self.port),
            Host::Unix(p) => write!(f, "{}:{}", p.display(), self.port),
        }
    }
}

/// The database to talk to, fully resolved. `Display` and `Debug` never show the password.
#[derive(Clone)]
pub struct Target {
    /// Everything but the hosts and TLS: user, password, database, timeouts, options...
    pub base: postgres::Config,
    /// In the order given; `target_session_attrs` picks among them.
    pub endpoints: Vec<Endpoint>,
    /// Passwords from the password file, per endpoint (libpq looks them up per host).
    file_passwords: Vec<Option<String>>,
    pub tls: Tls,
    /// An application_name given by the user, kept beside dbtool's own.
    pub application_name: Option<String>,
    /// `0` in connect_timeout means no limit, as in libpq.
    pub connect_timeout: Option<Duration>,
    /// (what, value, where from), for `-v`.
    pub sources: Vec<(&'static str, String, Source)>,
    /// Said once before connecting (an ignored password file...).
    pub warnings: Vec<String>,
    /// Whether anything at all named the server; the error hint differs when nothing did.
    pub anything_given: bool,
}

/// What `Target::resolve` reads besides the string: the environment and the home directory.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn home(&self) -> Option<PathBuf>;
    fn os_user(&self) -> String;
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    fn home(&self) -> Option<PathBuf> {
        std::env::home_dir()
    }
    fn os_user(&self) -> String {
        whoami::username().unwrap_or_else(|_| "postgres".to_string())
    }
}

/// Options the postgres crate does not parse (or not in libpq's forms): dbtool takes them out of
/// the string before handing the rest to the crate's own parser.
const OWN_OPTIONS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "target_session_attrs",
    "connect_timeout",
    // libpq counts it in milliseconds, the postgres crate in seconds.
    "tcp_user_timeout",
];

impl Target {
    /// `conninfo`: the connection string and whether it came from the flag or DATABASE_URL.
    pub fn resolve(conninfo: Option<(&str, Source)>, env: &dyn Environment) -> Result<Self> {
        let (text, string_source) = match conninfo {
            Some((text, source)) if !text.trim().is_empty() => (text.trim(), source),
            _ => ("", Source::Default),
        };
        let malformed = |why: &str| malformed(text, &string_source, why);
        let (kept, own) = split_options(text).map_err(|e| malformed(&e))?;
        let parsed = if kept.is_empty() {
            postgres::Config::new()
        } else {
            postgres::Config::from_str(&kept).map_err(|e| malformed(&with_causes(&e)))?
        };
        let own_value = |key: &str| {
            own.iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let anything_given = !text.is_empty()
            || ["PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER"]
                .iter()
                .any(|v| env.var(v).is_some());
        let mut sources = Vec::new();
        // One value from the string, else the environment variable, else a default.
        let mut pick = |what: &'static str,
                        given: Option<String>,
                        var: &'static str,
                        default: Option<String>|
         -> Option<String> {
            let (value, source) = if let Some(v) = given {
                (v, string_source.clone())
            } else if let Some(v) = env.var(var) {
                (v, Source::Env(var))
            } else {
                (default?, Source::Default)
            };
            sources.push((what, value.clone(), source));
            Some(value)
        };

        let mut base = postgres::Config::new();
        let user = pick(
            "user",
            own_value("user").or_else(|| parsed.get_user().map(str::to_string)),
            "PGUSER",
            Some(env.os_user()),
        )
        .unwrap_or_default();
        base.user(&user);
        let dbname = pick(
            "database",
            own_value("dbname").or_else(|| parsed.get_dbname().map(str::to_string)),
            "PGDATABASE",
            Some(user.clone()),
        )
        .unwrap_or_default();
        base.dbname(&dbname);

        // Hosts: a list from the string or PGHOST, else the socket directory.
        let string_hosts: Vec<String> = parsed.get_hosts().iter().map(host_text).collect();
        let mut tcp_hosts = parsed.get_hosts().iter().filter_map(|h| match h {
            Host::Tcp(name) => Some(name),
            Host::Unix(_) => None,
        });
        // Not quoted: with an unencoded password, what looks like the host holds part of it.
        if tcp_hosts.any(|h| h.contains(['@', '/', '?', '#'])) {
            return Err(malformed("the host part holds one of @/?#"));
        }
        let hostaddrs = parsed.get_hostaddrs().to_vec();
        let hosts_text = pick(
            "host",
            own_value("host")
                .or_else(|| (!string_hosts.is_empty()).then(|| string_hosts.join(","))),
            "PGHOST",
            hostaddrs.is_empty().then(default_socket_dir),
        );
        let hosts: Vec<Host> = match &hosts_text {
            Some(text) => text.split(',').map(parse_host).collect(),
            None => Vec::new(),
        };
        let hostaddrs: Vec<IpAddr> = if hostaddrs.is_empty() {
            match env.var("PGHOSTADDR") {
                Some(text) => text
                    .split(',')
                    .map(|a| {
                        a.trim().parse().map_err(|_| {
                            Error::usage(format!("PGHOSTADDR {a:?} is not an IP address"))
                        })
                    })
                    .collect::<Result<_>>()?,
                None => Vec::new(),
            }
        } else {
            hostaddrs
        };
        let count = hosts.len().max(hostaddrs.len());
        if !hosts.is_empty() && !hostaddrs.is_empty() && hosts.len() != hostaddrs.len() {
            return Err(Error::usage(format!(
                "{} hosts but {} hostaddrs were given; give one address per host",
                hosts.len(),
                hostaddrs.len()
            )));
        }
        // The crate fills in 5432 for a URL host without a port; libpq takes PGPORT then.
        let string_ports: Vec<String> = if url_names_a_port(text) || !is_url(text) {
            parsed.get_ports().iter().map(u16::to_string).collect()
        } else {
            Vec::new()
        };
        let ports_text = pick(
            "port",
            own_value("port")
                .or_else(|| (!string_ports.is_empty()).then(|| string_ports.join(","))),
            "PGPORT",
            Some("5432".to_string()),
        )
        .unwrap_or_default();
        let ports: Vec<u16> = ports_text
            .split(',')
            .map(|p| {
                p.trim()
                    .parse()
                    .map_err(|_| Error::usage(format!("port {p:?} is not a port number")))
            })
            .collect::<Result<_>>()?;
        if ports.len() != 1 && ports.len() != count {
            return Err(Error::usage(format!(
                "{count} hosts but {} ports were given; give one port, or one per host",
                ports.len()
            )));
        }
        let endpoints: Vec<Endpoint> = (0..count)
            .map(|i| {
                let hostaddr = hostaddrs.get(i).copied();
                Endpoint {
                    host: hosts
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| Host::Tcp(hostaddr.expect("counted").to_string())),
                    hostaddr,
                    port: ports[if ports.len() == 1 { 0 } else { i }],
                }
            })
            .collect();

        // The password: from the string, PGPASSWORD, or the password file per host.
        let mut warnings = Vec::new();
        let mut file_passwords = vec![None; endpoints.len()];
        if let Some(password) = own_value("password")
            .map(String::into_bytes)
            .or_else(|| parsed.get_password().map(<[u8]>::to_vec))
        {
            base.password(password);
            sources.push(("password", "(hidden)".into(), string_source.clone()));
        } else if let Some(password) = env.var("PGPASSWORD") {
            base.password(password.as_bytes());
            sources.push(("password", "(hidden)".into(), Source::Env("PGPASSWORD")));
        } else {
            let file = env
                .var("PGPASSFILE")
                .map(PathBuf::from)
                .or_else(|| env.home().map(|h| h.join(".pgpass")));
            if let Some(file) = file
                && let Some(entries) = read_password_file(&file, &mut warnings)
            {
                for (i, endpoint) in endpoints.iter().enumerate() {
                    file_passwords[i] = lookup_password(&entries, endpoint, &dbname, &user);
                }
                if file_passwords.iter().any(Option::is_some) {
                    sources.push(("password", "(hidden)".into(), Source::PasswordFile(file)));
                }
            }
        }

        if let Some(options) = parsed
            .get_options()
            .map(str::to_string)
            .or_else(|| env.var("PGOPTIONS"))
        {
            base.options(&options);
        }
        let application_name = parsed
            .get_application_name()
            .map(str::to_string)
            .or_else(|| env.var("PGAPPNAME"));
        if let Some(attrs) =
            own_value("target_session_attrs").or_else(|| env.var("PGTARGETSESSIONATTRS"))
        {
            base.target_session_attrs(match attrs.as_str() {
                "any" => TargetSessionAttrs::Any,
                "read-write" => TargetSessionAttrs::ReadWrite,
                other => {
                    return Err(Error::usage(format!(
                        "target_session_attrs {other:?} is not supported: use any or read-write"
                    )));
                }
            });
        }
        let connect_timeout = match own_value("connect_timeout")
            .map(|v| (v, "connect_timeout"))
            .or_else(|| {
                env.var("PGCONNECT_TIMEOUT")
                    .map(|v| (v, "PGCONNECT_TIMEOUT"))
            }) {
            None => Some(DEFAULT_CONNECT_TIMEOUT),
            Some((text, what)) => match text.trim().parse::<u64>() {
                Ok(0) => None,
                // libpq raises anything shorter to 2 s.
                Ok(seconds) => Some(Duration::from_secs(seconds.max(2))),
                Err(_) => {
                    return Err(Error::usage(format!(
                        "{what} {text:?} is not a whole number of seconds"
                    )));
                }
            },
        };
        if let Some(timeout) = connect_timeout {
            base.connect_timeout(timeout);
        }
        copy_driver_settings(&parsed, &kept, &mut base)?;
        // Nor after fifteen minutes of retransmitting data the server never acknowledges.
        let tcp_user_timeout = match own_value("tcp_user_timeout") {
            Some(text) => text.trim().parse::<u64>().map_err(|_| {
                Error::usage(format!(
                    "tcp_user_timeout {text:?} is not a whole number of milliseconds"
                ))
            })?,
            None => 60_000,
        };
        if tcp_user_timeout > 0 {
            base.tcp_user_timeout(Duration::from_millis(tcp_user_timeout));
        }

        let tls = resolve_tls(&own_value, env, &string_source, &mut sources)?;
        base.ssl_mode(match tls.mode {
            SslMode::Disable | SslMode::Allow => DriverSslMode::Disable,
            SslMode::Prefer => DriverSslMode::Prefer,
            _ => DriverSslMode::Require,
        });

        if endpoints.is_empty() {
            return Err(Error::usage("no host given: set host in the URL or PGHOST"));
        }
        Ok(Target {
            base,
            endpoints,
            file_passwords,
            tls,
            application_name,
            connect_timeout,
            sources,
            warnings,
            anything_given,
        })
    }

    /// The driver's settings for one endpoint, with `application_name` set.
    pub fn endpoint_config(&self, index: usize, application_name: &str) -> postgres::Config {
        let endpoint = &self.endpoints[index];
        let mut pg = self.base.clone();
        match &endpoint.host {
            Host::Tcp(h) => pg.host(h),
            // libpq ignores sslmode on a Unix socket: there is nothing to encrypt.
            Host::Unix(p) => pg.host_path(p).ssl_mode(DriverSslMode::Disable),
        };
        if let Some(addr) = endpoint.hostaddr {
            pg.hostaddr(addr);
        }
        pg.port(endpoint.port);
        if pg.get_password().is_none()
            && let Some(password) = &self.file_passwords[index]
        {
            pg.password(password.as_bytes());
        }
        pg.application_name(application_name);
        pg
    }

    /// This target narrowed to the endpoint that answered.
    pub fn pinned(&self, index: usize) -> Target {
        let mut t = self.clone();
        t.endpoints = vec![self.endpoints[index].clone()];
        t.file_passwords = vec![self.file_passwords[index].clone()];
        t
    }

    pub fn has_password(&self) -> bool {
        self.base.get_password().is_some() || self.file_passwords.iter().any(Option::is_some)
    }

    /// The first (after pinning: the connected) endpoint's host.
    pub fn host(&self) -> String {
        host_text(&self.endpoints[0].host)
    }

    pub fn port(&self) -> u16 {
        self.endpoints[0].port
    }

    pub fn database(&self) -> String {
        self.base.get_dbname().unwrap_or_default().to_string()
    }

    pub fn user(&self) -> &str {
        self.base.get_user().unwrap_or_default()
    }

    /// `host 10.0.0.5, port 5432, database app, user app, sslmode verify-full (from ...)`: what `-v`
    /// prints. The password is never shown, only where it came from.
    pub fn explain(&self) -> String {
        self.sources
            .iter()
            .map(|(what, value, source)| format!("{what} {value} (from {source})"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = self.user();
        let at = if user.is_empty() { "" } else { "@" };
        let hosts: Vec<String> = self.endpoints.iter().map(Endpoint::to_string).collect();
        write!(
            f,
            "postgres://{user}{at}{}/{}",
            hosts.join(","),
            self.database()
        )
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An error and its causes in one line, each cause once.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn malformed(text: &str, source: &Source, why: &str) -> Error {
    let url = text.starts_with("postgres");
    let hint = if why.contains("unknown option") {
        "; dbtool takes libpq's connection options (the README's Connecting section lists the few it does not support)"
    } else if url
        && (text.matches('@').count() > 1
            || text.contains('#')
            || why.contains("port")
            || why.contains("host part"))
    {
        "; percent-encode the characters @:/?# in a user name or password (@ is %40, : is %3A, / is %2F, ? is %3F, # is %23)"
    } else {
        "; expected postgres://user:password@host:port/database or key=value pairs (host=... dbname=...)"
    };
    let why = secrets_in(text)
        .iter()
        .fold(why.to_string(), |why, secret| why.replace(secret, "****"));
    Error::usage(format!(
        "the connection string in {source} is malformed ({why}){hint}"
    ))
}

/// What may be a password in a connection string that did not parse: the part between `:` and
/// `@` after `scheme://` (any scheme), and a `password=` value; longest first.
fn secrets_in(text: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Some((_, rest)) = text.split_once("://")
        && let Some((userinfo, _)) = rest.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        secrets.push(password.to_string());
    }
    for (i, _) in text.match_indices("password") {
        let value = text[i + "password".len()..]
            .trim_start()
            .trim_start_matches('=')
            .trim_start()
            .trim_start_matches('\'');
        let end = value.find([' ', '\'', '&']).unwrap_or(value.len());
        secrets.push(value[..end].to_string());
    }
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

fn host_text(host: &Host) -> String {
    match host {
        Host::Tcp(h) => h.clone(),
        Host::Unix(p) => p.display().to_string(),
    }
}

fn parse_host(text: &str) -> Host {
    let text = text.trim();
    if text.starts_with('/') {
        Host::Unix(PathBuf::from(text))
    } else {
        Host::Tcp(text.to_string())
    }
}

/// Debian's libpq looks for the server's socket here.
fn default_socket_dir() -> String {
    if Path::new("/var/run/postgresql").is_dir() {
        "/var/run/postgresql".into()
    } else {
        "/tmp".into()
    }
}

/// The settings the postgres crate parsed that dbtool passes on as they are; keepalives get
/// dbtool's defaults when the string sets none.
fn copy_driver_settings(
    parsed: &postgres::Config,
    kept: &str,
    base: &mut postgres::Config,
) -> Result<()> {
    base.channel_binding(parsed.get_channel_binding())
        .ssl_negotiation(parsed.get_ssl_negotiation());
    if parsed.get_load_balance_hosts() != postgres::config::LoadBalanceHosts::Disable {
        return Err(Error::usage(
            "load_balance_hosts=random is not supported: dbtool tries the hosts in the order given",
        ));
    }
    if kept.contains("keepalives") {
        base.keepalives(parsed.get_keepalives())
            .keepalives_idle(parsed.get_keepalives_idle());
        if let Some(interval) = parsed.get_keepalives_interval() {
            base.keepalives_interval(interval);
        }
        if let Some(retries) = parsed.get_keepalives_retries() {
            base.keepalives_retries(retries);
        }
    } else {
        // A server that vanishes mid-reset is noticed in about a minute, not after the kernel's
        // two hours of keepalive idle.
        base.keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
    }
    Ok(())
}

fn resolve_tls(
    own_value: &dyn Fn(&str) -> Option<String>,
    env: &dyn Environment,
    string_source: &Source,
    sources: &mut Vec<(&'static str, String, Source)>,
) -> Result<Tls> {
    let given = |key: &str, var: &'static str| -> Option<(String, Source)> {
        own_value(key)
            .map(|v| (v, string_source.clone()))
            .or_else(|| env.var(var).map(|v| (v, Source::Env(var))))
    };
    let home_file = |name: &str| {
        env.home()
            .map(|h| h.join(".postgresql").join(name))
            .filter(|p| p.exists())
    };
    let root_cert = match given("sslrootcert", "PGSSLROOTCERT") {
        Some((v, _)) if v == "system" => Some(RootCert::System),
        Some((v, _)) => Some(RootCert::File(PathBuf::from(v))),
        None => home_file("root.crt").map(RootCert::File),
    };
    let mode = match given("sslmode", "PGSSLMODE") {
        Some((text, source)) => {
            let mode = SslMode::parse(&text)?;
            if root_cert == Some(RootCert::System) && mode != SslMode::VerifyFull {
                return Err(Error::usage(format!(
                    "sslmode {text} may not be used with sslrootcert=system: use verify-full, as libpq requires"
                )));
            }
            sources.push(("sslmode", text, source));
            mode
        }
        None if root_cert == Some(RootCert::System) => {
            sources.push(("sslmode", "verify-full".into(), Source::Default));
            SslMode::VerifyFull
        }
        None => {
            sources.push(("sslmode", "prefer".into(), Source::Default));
            SslMode::Prefer
        }
    };
    let cert = given("sslcert", "PGSSLCERT")
        .map(|(v, _)| PathBuf::from(v))
        .or_else(|| home_file("postgresql.crt"));
    let key = given("sslkey", "PGSSLKEY")
        .map(|(v, _)| PathBuf::from(v))
        .or_else(|| home_file("postgresql.key"));
    if mode >= SslMode::VerifyCa && root_cert.is_none() {
        return Err(Error::usage(format!(
            "sslmode {} needs the certificate authority that signed the server's certificate: \
             set sslrootcert to its file (PGSSLROOTCERT), or sslrootcert=system for the platform's trusted roots",
            mode.as_str()
        )));
    }
    Ok(Tls {
        mode,
        root_cert,
        cert,
        key,
    })
}

/// A URL's query parameters that, as in libpq, override the parts of the URL before the `?`
/// (the postgres crate would add a `?port=` to the URL's port list instead).
const URL_OVERRIDES: &[&str] = &["host", "port", "user", "password", "dbname"];

/// Splits a URL or key=value string into the part the postgres crate parses and dbtool's own
/// options (`OWN_OPTIONS`, and a URL's `URL_OVERRIDES`), decoded. A key given twice counts
/// once, with its last value, as in libpq.
fn split_options(text: &str) -> std::result::Result<(String, Vec<(String, String)>), String> {
    if text.is_empty() {
        return Ok((String::new(), Vec::new()));
    }
    if is_url(text) {
        let Some((base, query)) = text.split_once('?') else {
            return Ok((text.to_string(), Vec::new()));
        };
        let mut kept = Vec::new();
        let mut own = Vec::new();
        let pairs: Vec<(String, &str)> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| Ok((decode(pair.split('=').next().unwrap_or(pair))?, pair)))
            .collect::<std::result::Result<_, String>>()?;
        for (i, (key, pair)) in pairs.iter().enumerate() {
            if pairs[i + 1..].iter().any(|(later, _)| later == key) {
                continue;
            }
            let value = pair.split_once('=').map_or("", |(_, v)| v);
            if OWN_OPTIONS.contains(&key.as_str()) || URL_OVERRIDES.contains(&key.as_str()) {
                own.push((key.clone(), decode(value)?));
            } else {
                kept.push(*pair);
            }
        }
        let rebuilt = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rebuilt, own));
    }
    let mut kept = Vec::new();
    let mut own = Vec::new();
    let pairs = key_value_pairs(text)?;
    let last = |i: usize| !pairs[i + 1..].iter().any(|(later, _)| *later == pairs[i].0);
    let pairs: Vec<_> = (0..pairs.len())
        .filter(|&i| last(i))
        .map(|i| pairs[i].clone())
        .collect();
    for (key, value) in pairs {
        if OWN_OPTIONS.contains(&key.as_str()) {
            own.push((key, value));
        } else {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push(format!("{key}='{quoted}'"));
        }
    }
    Ok((kept.join(" "), own))
}

fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// Whether a URL's host list gives a port (`host:port`, `[::1]:port`), split as the postgres
/// crate splits it: credentials end at the first `@`, hosts at the first `/` or `?`.
fn url_names_a_port(text: &str) -> bool {
    let Some((_, rest)) = text.split_once("://") else {
        return false;
    };
    let rest = rest.split_once('@').map_or(rest, |(_, hosts)| hosts);
    let hosts = rest.split(['/', '?']).next().unwrap_or_default();
    hosts.split(',').any(|chunk| match chunk.strip_prefix('[') {
        Some(bracketed) => bracketed.contains("]:"),
        None => chunk.contains(':'),
    })
}

fn decode(text: &str) -> std::result::Result<String, String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("{text:?} is not UTF-8 once percent-decoded"))
}

/// libpq's `key = value` syntax: values bare or in single quotes, `\` escaping the next character.
fn key_value_pairs(text: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("missing \"=\" after {key:?}"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quoted value of {key:?}")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// One line of a password file: host, port, database, user (each possibly `*`), password.
type PasswordEntry = [String; 5];

/// libpq ignores a password file that others can read, and says so.
fn read_password_file(path: &Path, warnings: &mut Vec<String>) -> Option<Vec<PasswordEntry>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        warnings.push(format!(
            "password file {} is not a plain file and is ignored",
            path.display()
        ));
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            warnings.push(format!(
                "password file {} has group or world access and is ignored; permissions should be u=rw (0600) or less",
                path.display()
            ));
            return None;
        }
    }
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
            .filter_map(|line| {
                let mut fields = Vec::with_capacity(5);
                let mut field = String::new();
                let mut chars = line.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => field.extend(chars.next()),
                        ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
                        c => field.push(c),
                    }
                }
                fields.push(field);
                fields.try_into().ok()
            })
            .collect(),
    )
}

fn lookup_password(
    entries: &[PasswordEntry],
    endpoint: &Endpoint,
    dbname: &str,
    user: &str,
) -> Option<String> {
    // A socket connection matches the host name `localhost`, as in libpq.
    let host = match &endpoint.host {
        Host::Tcp(h) => h.clone(),
        Host::Unix(_) => "localhost".to_string(),
    };
    let port = endpoint.port.to_string();
    let wanted = [host.as_str(), port.as_str(), dbname, user];
    entries
        .iter()
        .find(|e| {
            e[..4]
                .iter()
                .zip(wanted)
                .all(|(field, want)| field == "*" || field == want)
        })
        .map(|e| e[4].clone())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct FakeEnv(HashMap<&'static str, String>, Option<PathBuf>);

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
        fn home(&self) -> Option<PathBuf> {
            self.1.clone()
        }
        fn os_user(&self) -> String {
            "osuser".into()
        }
    }

    fn env(vars: &[(&'static str, &str)]) -> FakeEnv {
        FakeEnv(
            vars.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            Some(PathBuf::from("/nonexistent-home")),
        )
    }

    fn url(text: &str, vars: &[(&'static str, &str)]) -> Result<Target> {
        Target::resolve(Some((text, Source::DatabaseUrl)), &env(vars))
    }

    #[test]
    fn the_string_wins_then_pg_variables_then_defaults() {
        let t = url(
            "postgres://postgres@127.0.0.1:55433",
            &[("PGDATABASE", "app"), ("PGPORT", "6000")],
        )
        .unwrap();
        assert_eq!(t.database(), "app");
        assert_eq!(t.port(), 55433);
        // A URL host without a port takes PGPORT, as in libpq.
        let t = url("postgres://u@127.0.0.1/db", &[("PGPORT", "6000")]).unwrap();
        assert_eq!(t.port(), 6000);
        let t = url("postgres://u@[::1]/db", &[("PGPORT", "6000")]).unwrap();
        assert_eq!(t.port(), 6000);
        let t = url("postgres://u@[::1]:7000/db", &[("PGPORT", "6000")]).unwrap();
        assert_eq!(t.port(), 7000);
        let t = url("postgres://u@h/db", &[]).unwrap();
        assert_eq!(t.port(), 5432);
        let t = Target::resolve(
            None,
            &env(&[
                ("PGHOST", "db.example"),
                ("PGPORT", "6000"),
                ("PGUSER", "u"),
            ]),
        )
        .unwrap();
        assert_eq!(t.to_string(), "postgres://u@db.example:6000/u");
        let t = Target::resolve(None, &env(&[])).unwrap();
        assert_eq!(t.user(), "osuser");
        assert_eq!(t.database(), "osuser");
        assert!(matches!(t.endpoints[0].host, Host::Unix(_)));
        assert!(!t.anything_given);
        assert!(t.explain().contains("host /"), "{}", t.explain());
        let t = Target::resolve(
            None,
            &env(&[
                ("PGHOST", "a,/run/pg"),
                ("PGPORT", "5433,5434"),
                ("PGOPTIONS", "-c work_mem=64MB"),
                ("PGAPPNAME", "nightly"),
                ("PGTARGETSESSIONATTRS", "read-write"),
            ]),
        )
        .unwrap();
        assert_eq!(t.endpoints[1].host, Host::Unix("/run/pg".into()));
        assert_eq!(t.endpoints[1].port, 5434);
        assert_eq!(t.base.get_options(), Some("-c work_mem=64MB"));
        assert_eq!(t.application_name.as_deref(), Some("nightly"));
        assert_eq!(
            t.base.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
    }

    #[test]
    fn every_libpq_sslmode_is_accepted_and_pgsslmode_applies() {
        for mode in ["disable", "allow", "prefer", "require"] {
            let t = url(&format!("postgres://u@h/db?sslmode={mode}"), &[]).unwrap();
            assert_eq!(t.tls.mode.as_str(), mode);
        }
        let t = url(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem",
            &[],
        )
        .unwrap();
        assert!(t.tls.verifies_host_name());
        assert_eq!(t.tls.root_cert, Some(RootCert::File("/ca.pem".into())));
        let t = url("postgres://u@h/db", &[("PGSSLMODE", "require")]).unwrap();
        assert_eq!(t.tls.mode, SslMode::Require);
        assert!(!t.tls.verifies_chain());
        // require with a root certificate checks the chain, as in libpq.
        let t = url("host=h user=u sslmode=require sslrootcert=/ca.pem", &[]).unwrap();
        assert!(t.tls.verifies_chain());
        // verify-ca without a CA cannot check anything.
        assert!(url("postgres://u@h/db?sslmode=verify-ca", &[]).is_err());
        assert!(url("postgres://u@h/db?sslmode=bogus", &[]).is_err());
        let t = url("postgres://u@h/db?sslrootcert=system", &[]).unwrap();
        assert_eq!(t.tls.mode, SslMode::VerifyFull);
        assert!(url("postgres://u@h/db?sslrootcert=system&sslmode=require", &[]).is_err());
    }

    #[test]
    fn urls_decode_passwords_ipv6_sockets_and_several_hosts() {
        let t = url("postgres://u:p%40ss%3A%2F%3F%23@[::1]:6000/db", &[]).unwrap();
        assert_eq!(t.base.get_password(), Some(&b"p@ss:/?#"[..]));
        assert_eq!(t.to_string(), "postgres://u@[::1]:6000/db");
        let t = url("postgresql://u@%2Fvar%2Frun%2Fpostgresql/db", &[]).unwrap();
        assert_eq!(
            t.endpoints[0].host,
            Host::Unix("/var/run/postgresql".into())
        );
        let t = url(
            "postgres://u@a:5433,b:5434/db?target_session_attrs=read-write&application_name=cron",
            &[],
        )
        .unwrap();
        assert_eq!(t.endpoints.len(), 2);
        assert_eq!(t.endpoints[1].port, 5434);
        assert_eq!(
            t.base.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        assert_eq!(t.application_name.as_deref(), Some("cron"));
        assert_eq!(t.pinned(1).to_string(), "postgres://u@b:5434/db");
        assert!(url("postgres://u@h/db?nosuchoption=1", &[]).is_err());
        let e = url("postgres://u:p@ss@h/db", &[]).unwrap_err().to_string();
        assert!(e.contains("percent-encode"), "{e}");
    }

    #[test]
    fn key_value_strings_take_quotes_and_escapes() {
        let t = url(
            "host=h port=6000 user=u dbname='my db' password='it\\'s' sslmode=verify-full sslrootcert=/ca connect_timeout=0",
            &[],
        )
        .unwrap();
        assert_eq!(t.database(), "my db");
        assert_eq!(t.base.get_password(), Some(&b"it's"[..]));
        assert_eq!(t.tls.mode, SslMode::VerifyFull);
        assert_eq!(t.connect_timeout, None);
        let t = url("host=h user=u", &[("PGCONNECT_TIMEOUT", "1")]).unwrap();
        assert_eq!(t.connect_timeout, Some(Duration::from_secs(2)));
        assert!(url("host=h user", &[]).is_err());
        let t = url("host=h user=u keepalives_idle=7 tcp_user_timeout=5000", &[]).unwrap();
        assert_eq!(t.base.get_keepalives_idle(), Duration::from_secs(7));
        assert_eq!(
            t.base.get_tcp_user_timeout(),
            Some(&Duration::from_millis(5000))
        );
        let t = url("host=h user=u", &[]).unwrap();
        assert_eq!(t.base.get_keepalives_idle(), Duration::from_secs(30));
        assert!(url("host=h user=u load_balance_hosts=random", &[]).is_err());
    }

    #[test]
    fn password_file_matches_wildcards_and_refuses_open_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:*:*:*:wrong\nh:5432:*:u:sec\\:ret\n*:*:*:*:fallback\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let path = file.display().to_string();
        let t = url("postgres://u@h/db", &[("PGPASSFILE", &path)]).unwrap();
        assert_eq!(t.file_passwords[0].as_deref(), Some("sec:ret"));
        let t = url("postgres://x@elsewhere/db", &[("PGPASSFILE", &path)]).unwrap();
        assert_eq!(t.file_passwords[0].as_deref(), Some("fallback"));
        assert!(!t.explain().contains("fallback"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let t = url("postgres://u@h/db", &[("PGPASSFILE", &path)]).unwrap();
        assert_eq!(t.file_passwords[0], None);
        assert!(t.warnings[0].contains("group or world access"));
    }

    #[test]
    fn url_query_parameters_override_the_urls_parts_as_in_libpq() {
        let t = url("postgres://u@h/db?port=6001", &[("PGPORT", "6000")]).unwrap();
        assert_eq!(t.port(), 6001);
        let t = url("postgres://u@h:5433/db?port=6001", &[]).unwrap();
        assert_eq!((t.endpoints.len(), t.port()), (1, 6001));
        let t = url(
            "postgres://u:p@h/db?host=other&user=v&password=q&dbname=app&port=7&port=8",
            &[],
        )
        .unwrap();
        assert_eq!(t.to_string(), "postgres://v@other:8/app");
        assert_eq!(t.base.get_password(), Some(&b"q"[..]));
        let t = url("postgres:///db?host=%2Frun%2Fpg", &[]).unwrap();
        assert_eq!(t.endpoints[0].host, Host::Unix("/run/pg".into()));
    }

    #[test]
    fn a_repeated_key_takes_its_last_value_as_in_libpq() {
        let t = url("host=a port=5433 user=u port=6001 host=b", &[]).unwrap();
        assert_eq!(t.endpoints.len(), 1);
        assert_eq!(t.to_string(), "postgres://u@b:6001/u");
        let t = url("host=h user=u sslmode=disable sslmode=require", &[]).unwrap();
        assert_eq!(t.tls.mode, SslMode::Require);
    }

    #[test]
    fn a_malformed_string_never_shows_its_password() {
        for text in [
            "http://user:pw-s3cret@h:5432/db",
            "postgres://user:pw-s3cret@h:notaport/db",
            "host=h password=pw-s3cret user",
            "host=h password='pw-s3cret' port=x",
        ] {
            let e = url(text, &[]).unwrap_err().to_string();
            assert!(!e.contains("pw-s3cret"), "{text}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn a_password_file_that_is_a_directory_is_named_in_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        let t = url("postgres://u@h/db", &[("PGPASSFILE", &path)]).unwrap();
        assert!(
            t.warnings
                .iter()
                .any(|w| w.contains(&path) && w.contains("not a plain file")),
            "{:?}",
            t.warnings
        );
    }

    #[test]
    fn display_hides_the_password() {
        let t = url("postgres://alice:s3cret@db.example:6543/app", &[]).unwrap();
        assert_eq!(t.to_string(), "postgres://alice@db.example:6543/app");
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(!t.explain().contains("s3cret"));
    }
}
