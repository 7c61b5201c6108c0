//! Where configuration values come from, and errors that name a value the way the user
//! wrote it: `server.listne in /etc/berth.toml`, or `BERTH_SERVER__LISTEN`, rather than
//! figment's internal key (`default.server.listne`, `SERVER.LISTEN`).

use figment::providers::Env;
use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider, Source};

/// The name of [`EnvVars`]' metadata, by which errors from it are recognized.
const ENV_SOURCE: &str = "environment variable";

/// `BERTH_SECTION__FIELD` environment variables (flags with variables of their own,
/// `BERTH_LISTEN` and the like, are applied by the binary and not read here).
pub(crate) struct EnvVars(Env);

impl EnvVars {
    pub(crate) fn new() -> Self {
        EnvVars(
            Env::prefixed("BERTH_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        )
    }
}

/// `["server", "listen"]` → `BERTH_SERVER__LISTEN`.
fn variable_name(path: &[String]) -> String {
    let keys: Vec<String> = path.iter().map(|k| k.to_ascii_uppercase()).collect();
    format!("BERTH_{}", keys.join("__"))
}

impl Provider for EnvVars {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENV_SOURCE)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        self.0.data()
    }
}

/// One line per error, each naming the file key (with the file) or the variable.
pub(crate) fn describe(errors: figment::Error) -> String {
    let lines: Vec<String> = errors
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let place = match &e.metadata {
                Some(md) if md.name == ENV_SOURCE => variable_name(&e.path),
                Some(Metadata {
                    source: Some(Source::File(file)),
                    ..
                }) if key.is_empty() => file.display().to_string(),
                Some(Metadata {
                    source: Some(Source::File(file)),
                    ..
                }) => format!("{key} in {}", file.display()),
                _ if key.is_empty() => "configuration".to_string(),
                _ => key,
            };
            format!("{place}: {}", e.kind)
        })
        .collect();
    lines.join("\n")
}
