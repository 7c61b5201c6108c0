//! `[metrics]`: the Prometheus `/metrics` endpoint (see docs/CONFIG.md, "[metrics]").

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Count requests and serve `/metrics`. Off, nothing is counted and no port serves it.
    pub enabled: bool,
    /// Serve `/metrics` on a listener of its own (plain HTTP), and then not on the public
    /// port. Unset, the public listener serves it.
    pub listen: Option<SocketAddr>,
    /// Where to write the metrics listener's address once bound (useful with port 0).
    pub addr_file: Option<PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            listen: None,
            addr_file: None,
        }
    }
}

impl MetricsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.addr_file.is_some() && self.listen.is_none() {
            return Err(ConfigError::Invalid(
                "metrics.addr_file needs metrics.listen (the public listener's address goes to server.addr_file)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_file_needs_a_listener_of_its_own() {
        assert!(MetricsConfig::default().validate().is_ok());
        let orphan = MetricsConfig {
            addr_file: Some("m.addr".into()),
            ..MetricsConfig::default()
        };
        assert!(orphan.validate().is_err());
        let own = MetricsConfig {
            listen: Some("127.0.0.1:0".parse().unwrap()),
            ..orphan
        };
        assert!(own.validate().is_ok());
    }
}
