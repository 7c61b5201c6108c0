//! `[lifecycle]`: the background execution of lifecycle policies (see
//! docs/ARCHITECTURE.md, "Lifecycle policies").

use serde::{Deserialize, Serialize};

use crate::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// Execute every repository's lifecycle policy in the background of `berth serve`.
    /// Off, policies are still stored and previewed; `berth lifecycle run` executes them.
    pub enabled: bool,
    /// Seconds between two rounds over the repositories with a policy. ECR evaluates within
    /// 24 hours of a change; an hour keeps registries tidy without noticeable load (a
    /// repository of 100,000 images evaluates in about a second).
    pub interval_secs: u64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            enabled: true,
            interval_secs: 3600,
        }
    }
}

impl LifecycleConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "lifecycle.interval_secs must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_interval_is_refused() {
        assert!(LifecycleConfig::default().validate().is_ok());
        let zero = LifecycleConfig {
            interval_secs: 0,
            ..LifecycleConfig::default()
        };
        assert!(zero.validate().is_err());
    }
}
