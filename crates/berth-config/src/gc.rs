//! `[gc]`: online garbage collection of blobs nothing references (see
//! docs/ARCHITECTURE.md, "Garbage collection").

use serde::{Deserialize, Serialize};

use crate::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GcConfig {
    /// Run collection in the background of `berth serve`.
    pub enabled: bool,
    /// How long a blob (or a repository's link to it) must have been unreferenced before
    /// it is deleted. Clients that saw a blob (a HEAD before pushing a manifest that uses
    /// it) have this long to use it; a day covers the slowest pipelines.
    pub grace_secs: u64,
    /// Seconds between two background passes.
    pub interval_secs: u64,
    /// The share of wall time a background pass may spend working, in (0, 1]: it rests
    /// between pages to stay within it, so pushes and pulls keep the machine. 1 = no rest.
    pub duty: f64,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            enabled: true,
            grace_secs: 24 * 3600,
            interval_secs: 3600,
            duty: 0.1,
        }
    }
}

impl GcConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "gc.interval_secs must be positive".into(),
            ));
        }
        if !(self.duty > 0.0 && self.duty <= 1.0) {
            return Err(ConfigError::Invalid(format!(
                "gc.duty must be in (0, 1], got {}",
                self.duty
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_interval_is_refused_and_zero_grace_allowed() {
        assert!(GcConfig::default().validate().is_ok());
        let zero = GcConfig {
            interval_secs: 0,
            ..GcConfig::default()
        };
        assert!(zero.validate().is_err());
        let no_grace = GcConfig {
            grace_secs: 0,
            ..GcConfig::default()
        };
        assert!(no_grace.validate().is_ok());
        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            let c = GcConfig {
                duty: bad,
                ..GcConfig::default()
            };
            assert!(c.validate().is_err(), "{bad}");
        }
    }
}
