//! Entry points for the fuzz targets in `fuzz/` and for the regression tests that replay
//! their corpora (`tests/fuzz_corpus.rs`): both call the same code. Each must never panic.

use crate::json_limits::{self, JsonLimits};
use crate::manifest;

/// A manifest or index as pushed: the first byte picks the `Content-Type` (none, OCI
/// manifest, OCI index, Docker manifest, Docker list, schema 1), the rest is the body.
pub fn manifest(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = match selector % 6 {
        0 => None,
        1 => Some(crate::media::OCI_MANIFEST),
        2 => Some(crate::media::OCI_INDEX),
        3 => Some(crate::media::DOCKER_MANIFEST),
        4 => Some(crate::media::DOCKER_MANIFEST_LIST),
        _ => Some(crate::media::DOCKER_SCHEMA1),
    };
    if let Ok(parsed) = manifest::parse(body, content_type) {
        // What the registry reads from a parsed manifest.
        let _ = parsed.required_blobs().map(|d| d.size).max();
        let _ = parsed.required_manifests().count();
        let _ = parsed.subject.as_ref().map(|s| s.digest.to_string());
    }
}

/// A JSON API body: the limits pre-check, then the `Value` parse every JSON edge does.
pub fn json_body(data: &[u8]) {
    if json_limits::check(data, JsonLimits::DOCUMENT).is_ok() {
        let _ = serde_json::from_slice::<serde_json::Value>(data);
    }
}
