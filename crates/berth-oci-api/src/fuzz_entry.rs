//! Entry points for the fuzz targets in `fuzz/` and for the regression tests that replay
//! their corpora (`tests/fuzz_corpus.rs`): both call the same code. Each must never panic.

use http::{HeaderMap, HeaderValue};

use crate::headers;

/// A `Range` header of a blob GET and a `Content-Range` of an upload chunk, each the
/// whole input as a header value; a parsed range is then resolved against blob sizes
/// around its own bounds (0, 1, its numbers, `u64::MAX`).
pub fn ranges(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut h = HeaderMap::new();
    h.insert(http::header::RANGE, value.clone());
    h.insert(http::header::CONTENT_RANGE, value);
    if let Ok(Some(spec)) = headers::blob_range(&h) {
        let (a, b) = (spec.0.unwrap_or(0), spec.1.unwrap_or(0));
        for size in [
            0,
            1,
            a,
            a.saturating_add(1),
            b,
            b.saturating_add(1),
            u64::MAX,
        ] {
            let _ = berth_registry::resolve_range(spec, size);
        }
    }
    if let Ok(Some((start, end))) = headers::upload_content_range(&h) {
        // As the PATCH handler compares it with Content-Length.
        let _ = headers::range_length(start, end);
    }
    let _ = headers::content_length(&h);
}
