//! Request ids: the client's own `X-Request-Id` when it is a sane token, else a new one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::HeaderMap;

pub const HEADER: &str = "x-request-id";

/// Longest client-supplied id reused; longer ones are replaced, not truncated.
const MAX_LEN: usize = 128;

/// The id for a request: the incoming `X-Request-Id` if it is 1 to 128 characters of
/// `[A-Za-z0-9._:-]` (so it is safe in logs and headers), else a new one.
pub fn for_request(headers: &HeaderMap) -> String {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_sane(id))
        .map_or_else(new_id, str::to_string)
}

fn is_sane(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Unique within the process (a counter) and across restarts (the start time prefix).
fn new_id() -> String {
    static BOOT: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let boot = *BOOT.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{boot:x}-{n:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(id: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, http::HeaderValue::from_bytes(id).unwrap());
        h
    }

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        assert_eq!(for_request(&with(b"abc-123_x.y:z")), "abc-123_x.y:z");
        let long = "a".repeat(MAX_LEN + 1);
        for bad in [
            b"" as &[u8],
            b"a b",
            b"a\"b",
            b"x{y}",
            long.as_bytes(),
            b"\xe9t\xe9",
        ] {
            let id = for_request(&with(bad));
            assert!(is_sane(&id) && id.as_bytes() != bad, "{bad:?} gave {id}");
        }
        let (a, b) = (
            for_request(&HeaderMap::new()),
            for_request(&HeaderMap::new()),
        );
        assert!(is_sane(&a) && a != b);
    }
}
