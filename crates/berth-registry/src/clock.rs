//! The registry's clock for the times lifecycle policies read: when an image was pushed,
//! when it was last pulled, and "now" when a policy is evaluated.
//!
//! It is the wall clock, unless the environment variable [`TEST_CLOCK_ENV`] names a file:
//! then the file's content, a whole number of seconds (negative for the past), is added to
//! the wall clock, re-read on every call. This is a **testing aid** only: end-to-end tests
//! push images "40 days ago" by writing `-3456000` to the file before the push and `0`
//! after, so age-based rules can be checked against a real server without waiting or
//! editing its database. Nothing else in the server reads the variable (uploads, garbage
//! collection, tokens and signatures keep the wall clock), and a missing or unreadable file
//! counts as no offset. Never set it in production.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Names the offset file of the test clock.
pub const TEST_CLOCK_ENV: &str = "BERTH_TEST_CLOCK_FILE";

fn offset_file() -> Option<&'static PathBuf> {
    static FILE: OnceLock<Option<PathBuf>> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::var_os(TEST_CLOCK_ENV).map(PathBuf::from);
        if let Some(p) = &path {
            tracing::warn!(file = %p.display(), "{TEST_CLOCK_ENV} is set: push, pull and lifecycle times follow a test clock");
        }
        path
    })
    .as_ref()
}

fn offset_ms() -> i64 {
    offset_file()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map(|secs| secs.saturating_mul(1000))
        .unwrap_or(0)
}

/// Unix milliseconds now, on the (possibly shifted) registry clock.
pub fn now_ms() -> i64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    wall.saturating_add(offset_ms())
}
