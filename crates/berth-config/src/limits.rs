//! `[limits]`: request rate quotas per account and ECR action, in the spirit of ECR's
//! published service quotas (token buckets refilled at `rate` per second, holding
//! `rate × burst_seconds` requests).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Off by default: a self-hosted registry is usually sized by its operator, not
    /// rationed. When on, a request over its quota gets `ThrottlingException` (ECR API)
    /// or `429 TOOMANYREQUESTS` (`/v2`), both with `Retry-After`.
    pub enabled: bool,
    /// How many seconds of `rate` a bucket holds (the burst a quiet account may spend).
    pub burst_seconds: u32,
    /// Requests per second per account, by IAM action (`ecr:PutImage`). Actions not listed
    /// use `default_rate`. The defaults are ECR's published rate quotas.
    pub rates: BTreeMap<String, u32>,
    /// Requests per second per account for actions not in `rates`.
    pub default_rate: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let rates = [
            ("ecr:BatchCheckLayerAvailability", 1000),
            ("ecr:BatchGetImage", 2000),
            ("ecr:CompleteLayerUpload", 100),
            ("ecr:GetAuthorizationToken", 500),
            ("ecr:GetDownloadUrlForLayer", 3000),
            ("ecr:InitiateLayerUpload", 100),
            ("ecr:PutImage", 10),
            ("ecr:UploadLayerPart", 500),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        LimitsConfig {
            enabled: false,
            burst_seconds: 1,
            rates,
            default_rate: 100,
        }
    }
}

impl LimitsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.burst_seconds == 0 || self.default_rate == 0 {
            return Err(ConfigError::Invalid(
                "limits.burst_seconds and limits.default_rate must be positive".into(),
            ));
        }
        for (action, rate) in &self.rates {
            let well_formed = action
                .split_once(':')
                .is_some_and(|(svc, name)| !svc.is_empty() && !name.is_empty());
            if !well_formed {
                return Err(ConfigError::Invalid(format!(
                    "limits.rates keys are IAM actions such as \"ecr:PutImage\", got {action:?}"
                )));
            }
            if *rate == 0 {
                return Err(ConfigError::Invalid(format!(
                    "limits.rates.\"{action}\" must be positive"
                )));
            }
        }
        Ok(())
    }
}
