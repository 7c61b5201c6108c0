//! Entry points for the fuzz targets in `fuzz/` and for the regression tests that replay
//! their corpora (`tests/fuzz_corpus.rs`): both call the same code. Each must never panic.

use time::OffsetDateTime;

use crate::{parse_amz_date, parse_http_date, PayloadHash, Request, Verifier, VerifierConfig};

/// One request as text: the first line is `METHOD path?query`, each further line a header
/// `name: value` (the value as raw bytes, so non-UTF-8 and non-ASCII reach the parser).
/// Parses the header or presigned form and, when that succeeds, verifies it against a
/// fixed secret at the request's own time (so scope, canonicalization and signing run).
pub fn request(data: &[u8]) {
    let mut lines = data.split(|&b| b == b'\n');
    let first = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let (method, target) = first.split_once(' ').unwrap_or(("GET", &first));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = Request::new(method, path, query, PayloadHash::of_body(b""));
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(&line[..colon]) else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        req.headers.push((name, value));
    }
    let verifier = Verifier::new(
        VerifierConfig::new(["ecr", "iam", "sts"])
            .with_unsigned_payload(true)
            .with_presigned(true),
    );
    if let Ok(parsed) = verifier.parse(&req) {
        let _ = verifier.verify(&parsed, "fuzz-secret", &req, parsed.signed_at);
        let _ = verifier.verify(&parsed, "fuzz-secret", &req, OffsetDateTime::UNIX_EPOCH);
    }
}

/// The two date formats a request carries (`X-Amz-Date`, `Date`), as any text.
pub fn dates(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse_amz_date(&text);
    let _ = parse_http_date(&text);
}
