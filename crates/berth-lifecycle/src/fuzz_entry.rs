//! Entry points for the fuzz targets in `fuzz/` and for the regression tests that replay
//! their corpora (`tests/fuzz_corpus.rs`): both call the same code. Each must never panic.

use crate::LifecyclePolicy;

/// Lifecycle policy text, as `PutLifecyclePolicy` receives it.
pub fn policy(data: &[u8]) {
    let _ = LifecyclePolicy::parse(&String::from_utf8_lossy(data));
}
