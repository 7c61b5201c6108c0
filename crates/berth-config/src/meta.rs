//! `[meta]`: which backend holds every fact except blob bytes (repositories, manifests,
//! tags, IAM, settings, lifecycle, garbage-collection and archive state). The binary opens
//! the selected backend in one place (`crates/berth/src/stores.rs`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, Secret};

/// The metadata backends this binary has.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MetaBackend {
    /// `<data-dir>/meta.db`, embedded: the single-node default.
    #[default]
    Sqlite,
    /// A PostgreSQL database (`meta.url`), shared by every node of a cluster.
    Postgres,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetaConfig {
    pub backend: MetaBackend,
    /// PostgreSQL only: `postgres://user:password@host:port/db?sslmode=verify-full`. A
    /// secret (it usually holds the password): never printed.
    pub url: Option<Secret>,
    /// PostgreSQL only: a PEM file of CA certificates trusted for TLS besides the system's.
    pub ca_file: Option<PathBuf>,
    /// PostgreSQL only: connections in this node's pool.
    pub max_connections: usize,
    /// PostgreSQL only: seconds a request waits for a free connection (and a new
    /// connection for its handshake) before failing.
    pub acquire_timeout_secs: u64,
}

impl Default for MetaConfig {
    fn default() -> Self {
        MetaConfig {
            backend: MetaBackend::Sqlite,
            url: None,
            ca_file: None,
            max_connections: 16,
            acquire_timeout_secs: 30,
        }
    }
}

impl MetaConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.backend {
            MetaBackend::Sqlite => {
                if self.url.is_some() || self.ca_file.is_some() {
                    return Err(ConfigError::Invalid(
                        "meta.url and meta.ca_file need meta.backend = \"postgres\"".into(),
                    ));
                }
            }
            MetaBackend::Postgres => {
                if self
                    .url
                    .as_ref()
                    .is_none_or(|u| u.expose().trim().is_empty())
                {
                    return Err(ConfigError::Invalid(
                        "meta.backend = \"postgres\" needs meta.url (BERTH_META__URL), e.g. postgres://berth@db.example.com/berth"
                            .into(),
                    ));
                }
            }
        }
        if !(1..=1000).contains(&self.max_connections) {
            return Err(ConfigError::Invalid(format!(
                "meta.max_connections must be 1 to 1000, got {}",
                self.max_connections
            )));
        }
        if !(1..=3600).contains(&self.acquire_timeout_secs) {
            return Err(ConfigError::Invalid(format!(
                "meta.acquire_timeout_secs must be 1 to 3600, got {}",
                self.acquire_timeout_secs
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_is_the_default_and_unknown_backends_are_refused() {
        assert_eq!(MetaConfig::default().backend, MetaBackend::Sqlite);
        MetaConfig::default().validate().unwrap();
        let parsed: MetaConfig = toml::from_str(r#"backend = "sqlite""#).unwrap();
        assert_eq!(parsed.backend, MetaBackend::Sqlite);
        let err = toml::from_str::<MetaConfig>(r#"backend = "mysql""#).unwrap_err();
        assert!(err.to_string().contains("sqlite"), "{err}");
    }

    #[test]
    fn postgres_needs_a_url_and_never_prints_it() {
        let no_url: MetaConfig = toml::from_str(r#"backend = "postgres""#).unwrap();
        let err = no_url.validate().unwrap_err().to_string();
        assert!(err.contains("meta.url"), "{err}");

        let cfg: MetaConfig = toml::from_str(
            r#"
            backend = "postgres"
            url = "postgres://berth:hunter2@db/berth"
            ca_file = "/etc/berth/pg-ca.pem"
            max_connections = 8
            acquire_timeout_secs = 5
            "#,
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.max_connections, 8);
        assert_eq!(
            cfg.url.as_ref().unwrap().expose(),
            "postgres://berth:hunter2@db/berth"
        );
        assert!(!format!("{cfg:?}").contains("hunter2"));
        assert!(!toml::to_string(&cfg).unwrap().contains("hunter2"));
    }

    #[test]
    fn postgres_settings_are_refused_on_sqlite_and_bounds_are_checked() {
        let stray: MetaConfig = toml::from_str(r#"url = "postgres://db/berth""#).unwrap();
        assert!(stray
            .validate()
            .unwrap_err()
            .to_string()
            .contains("postgres"));
        let zero = MetaConfig {
            max_connections: 0,
            ..MetaConfig::default()
        };
        assert!(zero
            .validate()
            .unwrap_err()
            .to_string()
            .contains("meta.max_connections"));
        let zero = MetaConfig {
            acquire_timeout_secs: 0,
            ..MetaConfig::default()
        };
        assert!(zero
            .validate()
            .unwrap_err()
            .to_string()
            .contains("meta.acquire_timeout_secs"));
    }
}
