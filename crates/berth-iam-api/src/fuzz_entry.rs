//! Entry points for the fuzz targets in `fuzz/` and for the regression tests that replay
//! their corpora (`tests/fuzz_corpus.rs`): both call the same code. Each must never panic.

use crate::operation::IamOperation;
use crate::params::{self, Params};

/// A Query request: the input up to the first newline is the query string, the rest the
/// form body. Resolves the action and reads every parameter kind the handlers read.
pub fn query(data: &[u8]) {
    let (query, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let query = String::from_utf8_lossy(query);
    let p = Params::parse(Some(&query), Some(body));
    let _ = IamOperation::resolve(p.get("Action"), p.get("Version"));
    for param in [
        params::NEW_USER_NAME,
        params::USER_NAME,
        params::GROUP_NAME,
        params::POLICY_NAME,
        params::PATH,
        params::PATH_PREFIX,
        params::MARKER,
        params::ACCESS_KEY_ID,
        params::POLICY_DOCUMENT,
        params::STATUS,
    ] {
        let _ = p.optional(param);
        let _ = p.required(param);
    }
    let _ = p.max_items();
}
