//! `[meta]`: which backend holds every fact except blob bytes (repositories, manifests,
//! tags, IAM, settings, lifecycle, garbage-collection and archive state). The binary opens
//! the selected backend in one place (`crates/berth/src/stores.rs`).

use serde::{Deserialize, Serialize};

/// The metadata backends this binary has.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MetaBackend {
    /// `<data-dir>/meta.db`, embedded: the single-node default.
    #[default]
    Sqlite,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetaConfig {
    pub backend: MetaBackend,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_is_the_default_and_unknown_backends_are_refused() {
        assert_eq!(MetaConfig::default().backend, MetaBackend::Sqlite);
        let parsed: MetaConfig = toml::from_str(r#"backend = "sqlite""#).unwrap();
        assert_eq!(parsed.backend, MetaBackend::Sqlite);
        let err = toml::from_str::<MetaConfig>(r#"backend = "mysql""#).unwrap_err();
        assert!(err.to_string().contains("sqlite"), "{err}");
    }
}
