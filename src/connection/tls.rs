//! The TLS side of every connection, built only when a server accepts TLS. OpenSSL's
//! `SslConnector::builder` always parses the system's CA bundle (about 10 ms, a large share of a
//! small reset's client time), which a connection to a server without TLS (sslmode=prefer, the
//! default, against a local server) never uses. So the settings are checked up front, where a
//! bad sslrootcert, sslcert or sslkey is a usage error before anything connects, and the
//! connector itself is built on the first TLS handshake and shared by every later one.

use std::error::Error as StdError;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use openssl::error::ErrorStack;
use openssl::ssl::{SslConnector, SslContextBuilder, SslFiletype, SslMethod, SslVerifyMode};
use postgres::Socket;
use postgres::tls::{MakeTlsConnect, TlsConnect};
use postgres_openssl::{TlsConnector, TlsStream};

use crate::connection::conninfo::{RootCert, SslMode, Tls};
use crate::error::{Error, Result};

type BoxError = Box<dyn StdError + Send + Sync>;

/// OpenSSL, as libpq uses: `require` encrypts without checking the certificate (unless a root
/// certificate is given, then as verify-ca); `verify-ca` checks the chain against sslrootcert;
/// `verify-full` also checks that the certificate names the host connected to.
#[derive(Clone)]
pub struct LazyTls {
    inner: Arc<Inner>,
}

struct Inner {
    tls: Tls,
    connector: OnceLock<std::result::Result<SslConnector, String>>,
}

impl LazyTls {
    /// Checks that the files the settings name can be used; builds nothing yet.
    pub fn new(tls: &Tls) -> Result<Self> {
        if tls.mode != SslMode::Disable && (tls.root_cert.is_some() || tls.cert.is_some()) {
            // A bare context: the same checks as the real connector's, without the CA bundle.
            let mut context = SslContextBuilder::new(SslMethod::tls_client()).map_err(internal)?;
            configure_files(&mut context, tls, false)?;
        }
        Ok(LazyTls {
            inner: Arc::new(Inner {
                tls: tls.clone(),
                connector: OnceLock::new(),
            }),
        })
    }

    fn connector(&self) -> std::result::Result<&SslConnector, BoxError> {
        self.inner
            .connector
            .get_or_init(|| build(&self.inner.tls).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| e.clone().into())
    }
}

fn internal(e: ErrorStack) -> Error {
    Error::Internal(anyhow::anyhow!("OpenSSL: {e}"))
}

/// One line: the file is missing or unreadable (what the system says), or OpenSSL's first
/// reason, never its whole error stack.
fn unusable(what: &str, path: &Path, e: ErrorStack) -> Error {
    let why = match std::fs::File::open(path) {
        Err(io) if io.kind() == std::io::ErrorKind::NotFound => "it does not exist".to_string(),
        Err(io) => format!("it cannot be read: {io}"),
        Ok(_) if path.is_dir() => "it is a directory".to_string(),
        Ok(_) => format!(
            "it is not a PEM {} OpenSSL can read ({})",
            if what == "sslkey" {
                "key"
            } else {
                "certificate"
            },
            e.errors()
                .first()
                .and_then(|e| e.reason())
                .unwrap_or("no reason given")
        ),
    };
    Error::usage(format!("{what} {} cannot be used: {why}", path.display()))
}

/// The platform's trusted roots. An OpenSSL built into the binary (`vendored-openssl`, the
/// release builds) looks in its own build prefix, not where this system keeps its CA bundle:
/// openssl-probe finds that (and honours SSL_CERT_FILE / SSL_CERT_DIR).
fn load_system_roots(context: &mut SslContextBuilder) -> Result<()> {
    context.set_default_verify_paths().map_err(internal)?;
    #[cfg(feature = "vendored-openssl")]
    {
        let found = openssl_probe::probe();
        if found.cert_file.is_some() || found.cert_dir.is_some() {
            context
                .load_verify_locations(found.cert_file.as_deref(), found.cert_dir.as_deref())
                .map_err(internal)?;
        }
    }
    Ok(())
}

/// The root certificate (when the chain is verified) and the client certificate and key.
/// `system_roots`: load the platform's trusted roots for `sslrootcert=system`.
fn configure_files(context: &mut SslContextBuilder, tls: &Tls, system_roots: bool) -> Result<()> {
    if tls.mode == SslMode::Disable {
        return Ok(());
    }
    match &tls.root_cert {
        Some(RootCert::File(path)) if tls.verifies_chain() => context
            .set_ca_file(path)
            .map_err(|e| unusable("sslrootcert", path, e))?,
        Some(RootCert::System) if system_roots => load_system_roots(context)?,
        _ => {}
    }
    // As in libpq, a client certificate that is not there is simply not sent.
    if let Some(cert) = tls.cert.as_deref().filter(|c| c.exists()) {
        context
            .set_certificate_chain_file(cert)
            .map_err(|e| unusable("sslcert", cert, e))?;
        let key = tls.key.as_deref().ok_or_else(|| {
            Error::usage(format!(
                "sslcert {} is given but no sslkey for it",
                cert.display()
            ))
        })?;
        context
            .set_private_key_file(key, SslFiletype::PEM)
            .map_err(|e| unusable("sslkey", key, e))?;
    }
    Ok(())
}

fn build(tls: &Tls) -> Result<SslConnector> {
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(internal)?;
    configure_files(&mut builder, tls, true)?;
    builder.set_verify(if tls.verifies_chain() {
        SslVerifyMode::PEER
    } else {
        SslVerifyMode::NONE
    });
    Ok(builder.build())
}

impl MakeTlsConnect<Socket> for LazyTls {
    type Stream = TlsStream<Socket>;
    type TlsConnect = LazyTlsConnect;
    type Error = std::convert::Infallible;

    fn make_tls_connect(
        &mut self,
        domain: &str,
    ) -> std::result::Result<LazyTlsConnect, Self::Error> {
        Ok(LazyTlsConnect {
            tls: self.clone(),
            domain: domain.to_string(),
        })
    }
}

/// One connection's TLS: the driver calls `connect` only once the server has accepted TLS.
pub struct LazyTlsConnect {
    tls: LazyTls,
    domain: String,
}

impl TlsConnect<Socket> for LazyTlsConnect {
    type Stream = TlsStream<Socket>;
    type Error = BoxError;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<TlsStream<Socket>, BoxError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        let configured = self.tls.connector().and_then(|connector| {
            let mut configuration = connector.configure()?;
            configuration.set_verify_hostname(self.tls.inner.tls.verifies_host_name());
            Ok(TlsConnector::new(configuration, &self.domain))
        });
        match configured {
            Ok(connector) => connector.connect(stream),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(root: &Path) -> String {
        let tls = Tls {
            mode: SslMode::VerifyCa,
            root_cert: Some(RootCert::File(root.to_path_buf())),
            cert: None,
            key: None,
        };
        LazyTls::new(&tls).err().expect("refused").to_string()
    }

    #[test]
    fn a_missing_or_unreadable_certificate_is_one_line_without_openssl_stack() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.crt");
        let e = checked(&missing);
        assert!(e.ends_with("cannot be used: it does not exist"), "{e}");
        let garbage = dir.path().join("garbage.crt");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let e = checked(&garbage);
        assert!(e.contains("is not a PEM certificate"), "{e}");
        for e in [checked(&missing), checked(&garbage), checked(dir.path())] {
            assert!(!e.contains('\n') && !e.contains("error:"), "{e}");
        }
    }
}
