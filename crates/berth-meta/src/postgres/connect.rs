//! Connection settings of the PostgreSQL backend: the URL, TLS to the database, the pool.
//!
//! The URL is libpq's (`postgres://user:password@host:port/db?...`); the TLS settings are
//! read from it as libpq names them, with one deliberate difference: every TLS connection
//! is verified (the server's certificate chains to a trusted root and names the host), as
//! an unverified one protects nothing from an active attacker.
//!
//! | `sslmode` | Berth |
//! |---|---|
//! | `disable` | plaintext |
//! | `prefer` (the default) | TLS, verified, when the server offers it; plaintext otherwise |
//! | `require`, `verify-full` | TLS, verified; refused otherwise |
//! | `verify-ca` | TLS, the chain verified but not the host name (as libpq) |
//!
//! Trusted roots are the system's (the platform store, through `rustls-native-certs`)
//! plus the PEM file named by `sslrootcert` or [`PgOptions::ca_file`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::SslMode;

/// How the backend reaches its database. `Debug` never shows the URL (it may hold a password).
#[derive(Clone)]
pub struct PgOptions {
    /// libpq's URL, with `sslmode` and `sslrootcert` in its query if wanted.
    pub url: String,
    /// A PEM file of extra trusted CA certificates (besides the system's).
    pub ca_file: Option<PathBuf>,
    /// Connections in the pool.
    pub max_connections: usize,
    /// How long a request waits for a free connection (and a new one for its handshake).
    pub acquire_timeout: Duration,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("url", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

impl PgOptions {
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            ca_file: None,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// Why the PostgreSQL backend cannot start. Messages never include the URL.
#[derive(Debug, thiserror::Error)]
pub enum PgOpenError {
    #[error("invalid PostgreSQL URL: {0}")]
    InvalidUrl(String),
    #[error("cannot read the CA certificates in {path}")]
    CaFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no trusted CA certificates for TLS to PostgreSQL (none in the system store, no sslrootcert)")]
    NoRoots,
    #[error("cannot set up TLS to PostgreSQL")]
    Tls(#[source] rustls::Error),
    #[error("cannot build the PostgreSQL connection pool")]
    Pool(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot connect to PostgreSQL")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    SchemaTooNew(#[from] crate::schema::SchemaTooNew),
    #[error("migrating the PostgreSQL schema failed")]
    Migrate(#[source] tokio_postgres::Error),
}

/// The URL split into what tokio-postgres reads and the TLS settings Berth reads itself.
#[derive(Debug)]
pub(crate) struct ParsedUrl {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) root_cert: Option<PathBuf>,
    /// Whether the certificate must name the host (all but `verify-ca`).
    pub(crate) verify_host: bool,
}

pub(crate) fn parse_url(url: &str) -> Result<ParsedUrl, PgOpenError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(PgOpenError::InvalidUrl(
            "it must start with postgres:// or postgresql://".into(),
        ));
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut ssl_mode = SslMode::Prefer;
    let mut root_cert = None;
    let mut verify_host = true;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" => {
                ssl_mode = match value {
                    "disable" => SslMode::Disable,
                    "prefer" => SslMode::Prefer,
                    "require" | "verify-full" => SslMode::Require,
                    "verify-ca" => {
                        verify_host = false;
                        SslMode::Require
                    }
                    other => {
                        return Err(PgOpenError::InvalidUrl(format!(
                    "unknown sslmode {other:?} (disable, prefer, require, verify-ca, verify-full)"
                )))
                    }
                }
            }
            "sslrootcert" => root_cert = Some(PathBuf::from(percent_decode(value)?)),
            _ => rest.push(pair),
        }
    }
    let stripped = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    // tokio-postgres's own messages do not echo the URL.
    let mut config: tokio_postgres::Config = stripped
        .parse()
        .map_err(|e: tokio_postgres::Error| PgOpenError::InvalidUrl(e.to_string()))?;
    config.ssl_mode(ssl_mode);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_application_name().is_none() {
        config.application_name("berth");
    }
    Ok(ParsedUrl {
        config,
        root_cert,
        verify_host,
    })
}

fn percent_decode(s: &str) -> Result<String, PgOpenError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| PgOpenError::InvalidUrl("bad percent-encoding".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PgOpenError::InvalidUrl("sslrootcert is not UTF-8".into()))
}

/// rustls with the system's roots plus those of `extra` (PEM files); the certificate must
/// also name the host when `verify_host`.
pub(crate) fn tls_connector(
    extra: &[&Path],
    verify_host: bool,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, PgOpenError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped, as every TLS client does; a missing
    // store only matters when nothing else is trusted (checked below).
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for path in extra {
        let file = std::fs::File::open(path).map_err(|source| PgOpenError::CaFile {
            path: path.display().to_string(),
            source,
        })?;
        let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(file))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| PgOpenError::CaFile {
                path: path.display().to_string(),
                source,
            })?;
        if certs.is_empty() {
            return Err(PgOpenError::CaFile {
                path: path.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "no PEM certificate in the file",
                ),
            });
        }
        for cert in certs {
            roots.add(cert).map_err(PgOpenError::Tls)?;
        }
    }
    if roots.is_empty() {
        return Err(PgOpenError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(PgOpenError::Tls)?;
    let config = if verify_host {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let chain =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| PgOpenError::Tls(rustls::Error::General(e.to_string())))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(chain)))
            .with_no_client_auth()
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// `verify-ca`: the full verification of rustls, except that a certificate naming
/// another host is accepted (its chain, validity and usage were checked first).
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                NotValidForName | NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_are_read_from_the_url_and_removed() {
        let p = parse_url(
            "postgres://u:p%40ss@db.example:6543/berth?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(p.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(p.root_cert.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(p.config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(p.config.get_dbname(), Some("berth"));
        assert_eq!(
            p.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        assert!(p.verify_host);
        let p = parse_url("postgresql://h/db").unwrap();
        assert_eq!(p.config.get_ssl_mode(), SslMode::Prefer);
        assert!(p.verify_host);
        let p = parse_url("postgres://h/db?sslmode=verify-ca").unwrap();
        assert_eq!(p.config.get_ssl_mode(), SslMode::Require);
        assert!(!p.verify_host);
        assert_eq!(
            parse_url("postgres://h/db?sslmode=disable")
                .unwrap()
                .config
                .get_ssl_mode(),
            SslMode::Disable
        );
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for url in [
            "mysql://u:secret@h/db",
            "postgres://u:secret@h/db?sslmode=sometimes",
            "postgres://u:secret@h:notaport/db",
        ] {
            let err = parse_url(url).unwrap_err();
            assert!(matches!(err, PgOpenError::InvalidUrl(_)), "{url}: {err:?}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        let opts = PgOptions::new("postgres://u:secret@h/db");
        assert!(!format!("{opts:?}").contains("secret"));
    }

    #[test]
    fn a_missing_ca_file_is_a_clear_error() {
        let Err(err) = tls_connector(&[Path::new("/nonexistent/ca.pem")], true) else {
            panic!("a missing CA file was accepted");
        };
        assert!(matches!(err, PgOpenError::CaFile { .. }), "{err:?}");
    }
}
