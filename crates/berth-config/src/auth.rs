//! `[auth]`: who may use the `/v2` registry API, and how clients are asked to log in.

use serde::{Deserialize, Serialize};

use crate::{ConfigError, Secret};

/// What a request without credentials may do on `/v2`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AnonymousAccess {
    /// Nothing: every `/v2` request is authenticated and authorized by IAM (as ECR).
    #[default]
    None,
    /// Reads (pull, list tags, referrers, catalog) without credentials; writes need IAM.
    Pull,
    /// Everything without credentials: a development registry with no access control.
    /// Credentials that are sent are still checked (a bad password is refused).
    All,
}

impl AnonymousAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            AnonymousAccess::None => "none",
            AnonymousAccess::Pull => "pull",
            AnonymousAccess::All => "all",
        }
    }
}

/// The challenge a `401` carries, which decides how clients log in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Challenge {
    /// `WWW-Authenticate: Basic` (as ECR): clients send the login password, or an access
    /// key id and secret, on every request.
    #[default]
    Basic,
    /// `WWW-Authenticate: Bearer realm=<this server>/v2/token`: the Docker token flow;
    /// clients trade their credentials for a short-lived bearer token first.
    Bearer,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `none` (default), `pull` or `all`: what `/v2` allows without credentials.
    pub anonymous: AnonymousAccess,
    /// `basic` (default) or `bearer`.
    pub challenge: Challenge,
    /// Seconds an authenticated identity (key status, policies) is reused before it is
    /// read again. Changes made through this server take effect at once; changes made
    /// by another process on the same database (`berth iam ...`, another node) within
    /// this many seconds.
    pub credential_cache_secs: u64,
    /// Seconds a bearer token from `/v2/token` stays valid.
    pub bearer_token_secs: u64,
    /// The administrator access key to create on first start instead of a random one
    /// (for automated deployments; ignored once the account exists). 20 characters
    /// starting with `AKIA`, upper-case letters and digits.
    pub bootstrap_access_key_id: Option<String>,
    /// Its secret, 40 characters. Given together with `bootstrap_access_key_id`.
    pub bootstrap_secret_access_key: Option<Secret>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            anonymous: AnonymousAccess::None,
            challenge: Challenge::Basic,
            credential_cache_secs: 2,
            bearer_token_secs: 3600,
            bootstrap_access_key_id: None,
            bootstrap_secret_access_key: None,
        }
    }
}

impl AuthConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.credential_cache_secs > 300 {
            return Err(ConfigError::Invalid(
                "auth.credential_cache_secs must be at most 300".into(),
            ));
        }
        if !(60..=12 * 3600).contains(&self.bearer_token_secs) {
            return Err(ConfigError::Invalid(
                "auth.bearer_token_secs must be between 60 and 43200".into(),
            ));
        }
        match (
            &self.bootstrap_access_key_id,
            &self.bootstrap_secret_access_key,
        ) {
            (None, None) => Ok(()),
            (Some(id), Some(secret)) => {
                let id_ok = id.len() == 20
                    && id.starts_with("AKIA")
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
                if !id_ok {
                    return Err(ConfigError::Invalid(format!(
                        "auth.bootstrap_access_key_id must be 20 upper-case letters and digits starting with AKIA, got {id:?}"
                    )));
                }
                let s = secret.expose();
                if s.len() != 40 || !s.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ConfigError::Invalid(
                        "auth.bootstrap_secret_access_key must be 40 printable characters".into(),
                    ));
                }
                Ok(())
            }
            _ => Err(ConfigError::Invalid(
                "auth.bootstrap_access_key_id and auth.bootstrap_secret_access_key go together"
                    .into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_keys_are_checked() {
        let mut a = AuthConfig::default();
        assert!(a.validate().is_ok());
        a.bootstrap_access_key_id = Some("AKIAABCDEFGHIJKLMNOP".into());
        assert!(a.validate().is_err(), "id without secret");
        a.bootstrap_secret_access_key = Some(Secret::new("x".repeat(40)));
        assert!(a.validate().is_ok());
        a.bootstrap_access_key_id = Some("akiaabcdefghijklmnop".into());
        assert!(a.validate().is_err());
        a.bootstrap_access_key_id = Some("AKIAABCDEFGHIJKLMNOP".into());
        a.bootstrap_secret_access_key = Some(Secret::new("short".into()));
        assert!(a.validate().is_err());
    }

    #[test]
    fn limits_on_lifetimes() {
        let a = AuthConfig {
            bearer_token_secs: 10,
            ..AuthConfig::default()
        };
        assert!(a.validate().is_err());
        let a = AuthConfig {
            credential_cache_secs: 3600,
            ..AuthConfig::default()
        };
        assert!(a.validate().is_err());
    }
}
