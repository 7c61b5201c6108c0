//! # berth-config
//!
//! One typed struct per section, `deny_unknown_fields`, each with its own `validate()`.
//! Sources, later ones winning: built-in defaults → a TOML file → `BERTH_*` environment
//! variables (sections separated by `__`, e.g. `BERTH_SERVER__LISTEN`) → command-line flags
//! (applied by the binary as [`Overrides`]). [`Config::redacted_toml`] prints the effective
//! configuration with every [`Secret`] hidden.
//!
//! May depend on: nothing of Berth's.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod auth;
mod gc;
mod lifecycle;
mod limits;
mod meta;
mod metrics;
mod secret;
mod sources;
mod storage;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use auth::{AnonymousAccess, AuthConfig, Challenge};
pub use gc::GcConfig;
pub use lifecycle::LifecycleConfig;
pub use limits::LimitsConfig;
pub use meta::{MetaBackend, MetaConfig};
pub use metrics::MetricsConfig;
pub use secret::Secret;
pub use storage::{S3Config, StorageBackend, StorageConfig};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub registry: RegistryConfig,
    pub storage: StorageConfig,
    pub meta: MetaConfig,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub uploads: UploadsConfig,
    pub gc: GcConfig,
    pub lifecycle: LifecycleConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Port 0 picks a free port (see `addr_file`).
    pub listen: SocketAddr,
    /// If set, the bound address is written here once listening (for scripts and tests).
    pub addr_file: Option<PathBuf>,
    /// Seconds a client may take to send request headers.
    pub header_read_timeout_secs: u64,
    /// Seconds to let in-flight requests finish after SIGTERM before closing them.
    pub shutdown_grace_secs: u64,
    /// Seconds between SIGTERM and closing the listener, during which `/readyz` answers
    /// 503 while every request is still served, so a load balancer's health checks take
    /// the node out of rotation before it stops accepting connections. 0: close at once.
    pub drain_delay_secs: u64,
    /// Seconds a new connection may take to send its first byte and, with TLS, to finish
    /// the handshake.
    pub handshake_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in progress (HTTP/1 keep-alive
    /// between requests, HTTP/2 with no open stream).
    pub idle_timeout_secs: u64,
    /// Seconds between HTTP/2 keep-alive pings; an unanswered ping closes the connection
    /// after the same time again.
    pub http2_keepalive_secs: u64,
    /// Open connections at most. Over the cap, the connection idle the longest is closed
    /// to make room, or the new one is refused if none is idle. Unset: half the process's
    /// open-file limit (raised to its hard limit at start), so sockets cannot starve files;
    /// never more than that limit less 64.
    pub max_connections: Option<u32>,
    /// Before answering a request whose body it did not read (a 401 to an unauthenticated
    /// upload, say), the server reads and discards up to this many bytes of it, so HTTP/1.1
    /// clients that send the whole body first still read the answer; larger unread bodies
    /// get the answer with `Connection: close`.
    pub drain_body_limit_bytes: u64,
    /// Every connection starts with a PROXY protocol header (v1 or v2) naming the client's
    /// address, as a balancer sends with HAProxy's `send-proxy-v2`; connections without
    /// one are closed. Needs `proxy_protocol_from`.
    pub proxy_protocol: bool,
    /// The networks (CIDR) the balancers connect from; with `proxy_protocol`, connections
    /// from anywhere else are closed (they could claim any client address).
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
}

/// The registry's identity as the ECR API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// The 12-digit id of the default account, created on first start with an
    /// administrator access key (`<data_dir>/admin.credentials`). A number (an unquoted
    /// TOML value, or an environment variable, which figment reads as a number) is
    /// zero-padded to 12 digits, since leading zeros are part of an account id.
    #[serde(deserialize_with = "account_id_string")]
    pub account_id: String,
    /// The AWS region name clients sign requests for and ARNs carry.
    pub region: String,
    /// The host name (and port) clients use to reach the registry, e.g.
    /// `registry.example.com`; used in repository URIs and login endpoints. When unset,
    /// the `Host` of each request is used.
    pub public_host: Option<String>,
    /// Host-based routing of account registries: with `registry.example.com`, a `/v2`
    /// request to `<12-digit account>.registry.example.com` addresses that account's
    /// registry (ECR's `<account>.dkr.ecr.<region>.amazonaws.com` scheme), and URIs and
    /// login endpoints of each account name its host. Other hosts address `account_id`'s
    /// registry. Unset: `/v2` serves `account_id`'s registry only (other accounts' through
    /// the ECR API).
    pub base_domain: Option<String>,
}

fn account_id_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(match Id::deserialize(d)? {
        Id::Text(s) => s,
        Id::Number(n) => format!("{n:012}"),
    })
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            account_id: "000000000000".into(),
            region: "us-east-1".into(),
            public_host: None,
            base_domain: None,
        }
    }
}

impl RegistryConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let id = &self.account_id;
        if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::Invalid(format!(
                "registry.account_id must be 12 digits, got {id:?}"
            )));
        }
        let r = &self.region;
        let region_ok = (1..=32).contains(&r.len())
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !r.starts_with('-')
            && !r.ends_with('-');
        if !region_ok {
            return Err(ConfigError::Invalid(format!(
                "registry.region must look like us-east-1 (lower-case letters, digits, '-'), got {r:?}"
            )));
        }
        if let Some(h) = &self.public_host {
            let (host, port) = match h.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
                    (host, Some(port))
                }
                _ => (h.as_str(), None),
            };
            let host_ok = !host.is_empty()
                && host.len() <= 253
                && host.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b"[]:".contains(&b)
                });
            let port_ok = match port {
                None => true,
                Some(p) => p.parse::<u16>().is_ok_and(|p| p > 0),
            };
            if !host_ok || !port_ok {
                return Err(ConfigError::Invalid(format!(
                    "registry.public_host must be a host name with an optional :port (no scheme or path), got {h:?}"
                )));
            }
        }
        if let Some(d) = &self.base_domain {
            let labels_ok = d.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
            if !labels_ok || d.len() > 240 {
                return Err(ConfigError::Invalid(format!(
                    "registry.base_domain must be a DNS name such as registry.example.com (no port, scheme or leading dot), got {d:?}"
                )));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain file.
    pub cert: Option<PathBuf>,
    /// PEM private key file.
    pub key: Option<PathBuf>,
    /// The private key inline, as PEM (for secret stores that inject environment variables).
    pub key_pem: Option<Secret>,
    /// Generate (once) a local CA and a server certificate under `<data_dir>/tls`.
    pub self_signed: bool,
    /// Extra host names for the self-signed certificate.
    pub self_signed_hosts: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct UploadsConfig {
    /// Uploads idle for longer than this are deleted.
    pub max_idle_secs: u64,
    /// How often abandoned uploads are looked for.
    pub sweep_interval_secs: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `berth=debug,info`. `RUST_LOG` wins if set.
    pub level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:5000".parse().expect("valid default address"),
            addr_file: None,
            header_read_timeout_secs: 30,
            shutdown_grace_secs: 30,
            drain_delay_secs: 0,
            handshake_timeout_secs: 10,
            idle_timeout_secs: 60,
            http2_keepalive_secs: 30,
            max_connections: None,
            drain_body_limit_bytes: 256 * 1024,
            proxy_protocol: false,
            proxy_protocol_from: Vec::new(),
        }
    }
}

impl Default for UploadsConfig {
    fn default() -> Self {
        UploadsConfig {
            max_idle_secs: 24 * 3600,
            sweep_interval_secs: 600,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// Values that do not fit the configuration, each named as the user wrote it (the
    /// file key with its file, or the `BERTH_...` variable); figment's own rendering
    /// names internal keys, so its errors are rendered into this text, not kept.
    #[error("{0}")]
    Load(String),
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub addr_file: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: bool,
}

impl Config {
    /// Loads defaults, then `file` (if given), then the environment (`BERTH_` prefix).
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::MissingFile(f.to_path_buf()));
            }
            fig = fig.merge(Toml::file(f));
        }
        fig.merge(sources::EnvVars::new())
            .extract()
            .map_err(|e| ConfigError::Load(sources::describe(e)))
    }

    pub fn apply(&mut self, o: &Overrides) {
        if let Some(l) = o.listen {
            self.server.listen = l;
        }
        if let Some(d) = &o.data_dir {
            self.storage.data_dir = d.clone();
        }
        if let Some(a) = &o.addr_file {
            self.server.addr_file = Some(a.clone());
        }
        if let Some(c) = &o.tls_cert {
            self.tls.cert = Some(c.clone());
        }
        if let Some(k) = &o.tls_key {
            self.tls.key = Some(k.clone());
        }
        if o.tls_self_signed {
            self.tls.self_signed = true;
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.registry.validate()?;
        self.storage.validate()?;
        self.meta.validate()?;
        self.tls.validate()?;
        self.auth.validate()?;
        self.limits.validate()?;
        self.uploads.validate()?;
        self.gc.validate()?;
        self.lifecycle.validate()?;
        self.metrics.validate()?;
        Ok(())
    }

    /// The effective configuration as TOML, secrets hidden.
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}"))
    }
}

impl ServerConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let day = 24 * 3600;
        for (name, secs) in [
            ("header_read_timeout_secs", self.header_read_timeout_secs),
            ("handshake_timeout_secs", self.handshake_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("http2_keepalive_secs", self.http2_keepalive_secs),
        ] {
            if secs == 0 || secs > day {
                return Err(ConfigError::Invalid(format!(
                    "server.{name} must be between 1 and {day} seconds, got {secs}"
                )));
            }
        }
        if self.max_connections == Some(0) {
            return Err(ConfigError::Invalid(
                "server.max_connections must be positive (leave it unset for the default)".into(),
            ));
        }
        if self.drain_body_limit_bytes > 64 * 1024 * 1024 {
            return Err(ConfigError::Invalid(format!(
                "server.drain_body_limit_bytes must be at most 64 MiB, got {}",
                self.drain_body_limit_bytes
            )));
        }
        if self.proxy_protocol && self.proxy_protocol_from.is_empty() {
            return Err(ConfigError::Invalid(
                "server.proxy_protocol needs server.proxy_protocol_from: the networks the load \
                 balancers connect from, e.g. [\"10.0.0.0/24\"]"
                    .into(),
            ));
        }
        if self.drain_delay_secs > 3600 {
            return Err(ConfigError::Invalid(format!(
                "server.drain_delay_secs must be at most 3600, got {}",
                self.drain_delay_secs
            )));
        }
        Ok(())
    }
}

impl TlsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let has_key = self.key.is_some() || self.key_pem.is_some();
        if self.self_signed && (self.cert.is_some() || has_key) {
            return Err(ConfigError::Invalid(
                "tls.self_signed cannot be combined with tls.cert/tls.key".into(),
            ));
        }
        if self.cert.is_some() != has_key {
            return Err(ConfigError::Invalid(
                "tls.cert and tls.key (or tls.key_pem) must be given together".into(),
            ));
        }
        if self.key.is_some() && self.key_pem.is_some() {
            return Err(ConfigError::Invalid(
                "give tls.key or tls.key_pem, not both".into(),
            ));
        }
        Ok(())
    }

    pub fn enabled(&self) -> bool {
        self.self_signed || self.cert.is_some()
    }
}

impl UploadsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_idle_secs == 0 || self.sweep_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "uploads.max_idle_secs and uploads.sweep_interval_secs must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;
    use figment::Jail;

    /// docs/CONFIG.md shows every setting with its default: the example must parse and
    /// equal [`Config::default`].
    #[test]
    fn the_documented_example_is_the_default() {
        let doc = include_str!("../../../docs/CONFIG.md");
        let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let end = start + doc[start..].find("```").expect("end of the block");
        let example = &doc[start..end];
        Jail::expect_with(|jail| {
            jail.create_file("example.toml", example)?;
            let cfg = Config::load(Some(Path::new("example.toml"))).expect("the example loads");
            assert_eq!(cfg, Config::default());
            cfg.validate().expect("valid");
            Ok(())
        });
    }

    #[test]
    fn proxy_protocol_needs_the_balancers_networks() {
        Jail::expect_with(|jail| {
            jail.set_env("BERTH_SERVER__PROXY_PROTOCOL", "true");
            let cfg = Config::load(None).expect("loads");
            let err = cfg.validate().expect_err("no networks named");
            assert!(
                err.to_string().contains("server.proxy_protocol_from"),
                "{err}"
            );
            jail.set_env(
                "BERTH_SERVER__PROXY_PROTOCOL_FROM",
                "[\"10.0.0.0/24\", \"fd00::/8\"]",
            );
            let cfg = Config::load(None).expect("loads");
            cfg.validate().expect("valid");
            assert_eq!(cfg.server.proxy_protocol_from.len(), 2);
            assert!(cfg.server.proxy_protocol_from[0]
                .contains(&"10.0.0.9".parse::<std::net::IpAddr>().unwrap()));
            jail.set_env("BERTH_SERVER__PROXY_PROTOCOL_FROM", "[\"not-a-network\"]");
            assert!(Config::load(None).is_err());
            Ok(())
        });
    }

    #[test]
    fn layers_apply_in_order() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "berth.toml",
                "[server]\nlisten = \"127.0.0.1:6000\"\n[storage]\ndata_dir = \"/from/file\"\n[uploads]\nmax_idle_secs = 60\n",
            )?;
            jail.set_env("BERTH_STORAGE__DATA_DIR", "/from/env");
            jail.set_env("BERTH_LISTEN", "127.0.0.1:1");
            let mut cfg = Config::load(Some(Path::new("berth.toml"))).expect("loads");
            assert_eq!(cfg.server.listen.port(), 6000);
            assert_eq!(cfg.storage.data_dir, PathBuf::from("/from/env"));
            assert_eq!(cfg.uploads.max_idle_secs, 60);
            cfg.apply(&Overrides {
                data_dir: Some("/from/flag".into()),
                ..Default::default()
            });
            assert_eq!(cfg.storage.data_dir, PathBuf::from("/from/flag"));
            Ok(())
        });
    }

    #[test]
    fn unknown_fields_and_bad_combinations_are_rejected() {
        Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "[server]\nlisten_typo = \"x\"\n")?;
            assert!(Config::load(Some(Path::new("bad.toml"))).is_err());
            assert!(matches!(
                Config::load(Some(Path::new("absent.toml"))),
                Err(ConfigError::MissingFile(_))
            ));
            Ok(())
        });
        let mut c = Config::default();
        c.tls.cert = Some("c.pem".into());
        assert!(c.validate().is_err());
        c.tls.key_pem = Some(Secret::new("-----BEGIN PRIVATE KEY-----".into()));
        assert!(c.validate().is_ok());
        assert!(!c.redacted_toml().contains("BEGIN PRIVATE KEY"));
        assert!(c.redacted_toml().contains("<redacted>"));
    }

    /// Errors name the key as written: `section.field in FILE`, or the variable.
    #[test]
    fn errors_name_the_file_key_or_the_variable() {
        Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "[server]\nlistne = \"127.0.0.1:1\"\n")?;
            let err = Config::load(Some(Path::new("typo.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("server.listne in "), "{err}");
            assert!(err.contains("typo.toml: unknown field"), "{err}");
            assert!(!err.contains("default."), "{err}");
            jail.create_file("bad.toml", "[server\n")?;
            let err = Config::load(Some(Path::new("bad.toml")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("bad.toml"), "{err}");
            jail.set_env("BERTH_SERVER__LISTEN", "not-an-address");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.starts_with("BERTH_SERVER__LISTEN: "), "{err}");
            assert!(!err.contains("SERVER.LISTEN"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn connection_settings_are_validated() {
        let mut c = Config::default();
        c.server.idle_timeout_secs = 0;
        assert!(c.validate().is_err());
        c.server.idle_timeout_secs = 5;
        c.server.handshake_timeout_secs = 100_000;
        assert!(c.validate().is_err());
        c.server.handshake_timeout_secs = 2;
        c.server.max_connections = Some(0);
        assert!(c.validate().is_err());
        c.server.max_connections = Some(100);
        c.server.drain_body_limit_bytes = 1 << 30;
        assert!(c.validate().is_err());
        c.server.drain_body_limit_bytes = 0;
        assert!(c.validate().is_ok());
    }

    #[test]
    fn registry_identity_is_validated() {
        let mut c = Config::default();
        assert_eq!(c.registry.account_id, "000000000000");
        assert_eq!(c.registry.region, "us-east-1");
        assert!(c.validate().is_ok());
        for bad in ["1234", "12345678901a", "1234567890123"] {
            c.registry.account_id = bad.into();
            assert!(c.validate().is_err(), "{bad}");
        }
        c.registry.account_id = "123456789012".into();
        for bad in ["", "US-EAST-1", "us east 1", "-us-east-1"] {
            c.registry.region = bad.into();
            assert!(c.validate().is_err(), "{bad}");
        }
        c.registry.region = "eu-central-2".into();
        for good in [
            "registry.example.com",
            "localhost:5000",
            "10.0.0.1:443",
            "[::1]:5000",
        ] {
            c.registry.public_host = Some(good.into());
            assert!(c.validate().is_ok(), "{good}");
        }
        for bad in ["https://x.example", "x.example/path", "x:0", "x:99999", ""] {
            c.registry.public_host = Some(bad.into());
            assert!(c.validate().is_err(), "{bad}");
        }
        c.registry.public_host = None;
        for good in [
            "registry.example.com",
            "dkr.ecr.us-east-1.example.com",
            "reg.test",
        ] {
            c.registry.base_domain = Some(good.into());
            assert!(c.validate().is_ok(), "{good}");
        }
        for bad in [
            "",
            ".reg.test",
            "reg.test:5000",
            "https://reg.test",
            "a..b",
            "-a.test",
        ] {
            c.registry.base_domain = Some(bad.into());
            assert!(c.validate().is_err(), "{bad}");
        }
        Jail::expect_with(|jail| {
            jail.create_file(
                "b.toml",
                "[registry]\naccount_id = \"123456789012\"\nregion = \"eu-west-1\"\npublic_host = \"r.example\"\n",
            )?;
            jail.set_env("BERTH_REGISTRY__REGION", "ap-south-1");
            let cfg = Config::load(Some(Path::new("b.toml"))).expect("loads");
            assert_eq!(cfg.registry.account_id, "123456789012");
            jail.set_env("BERTH_REGISTRY__ACCOUNT_ID", "000000001234");
            let cfg2 = Config::load(Some(Path::new("b.toml"))).expect("loads");
            assert_eq!(cfg2.registry.account_id, "000000001234");
            jail.set_env("BERTH_REGISTRY__ACCOUNT_ID", "210987654321");
            let cfg2 = Config::load(Some(Path::new("b.toml"))).expect("loads");
            assert_eq!(cfg2.registry.account_id, "210987654321");
            jail.clear_env();
            jail.create_file("n.toml", "[registry]\naccount_id = 42\n")?;
            let cfg3 = Config::load(Some(Path::new("n.toml"))).expect("loads");
            assert_eq!(cfg3.registry.account_id, "000000000042");
            assert_eq!(cfg.registry.region, "ap-south-1");
            assert_eq!(cfg.registry.public_host.as_deref(), Some("r.example"));
            Ok(())
        });
    }
}
