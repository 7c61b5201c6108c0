//! The administrator access key every test registry is bootstrapped with
//! (`[auth] bootstrap_access_key_id` / `bootstrap_secret_access_key`), so that clients can
//! be logged in before the registry starts. Shared by `common` and `safety_support`.
#![allow(dead_code)]

use base64::Engine;

pub const ADMIN_KEY_ID: &str = "AKIABERTHE2EADMIN000";
pub const ADMIN_SECRET: &str = "berth+e2e/test/secret/0123456789abcdefgh";

/// The environment that makes `berth serve` create that key on first start.
pub const ADMIN_KEY_ENV: [(&str, &str); 2] = [
    ("BERTH_AUTH__BOOTSTRAP_ACCESS_KEY_ID", ADMIN_KEY_ID),
    ("BERTH_AUTH__BOOTSTRAP_SECRET_ACCESS_KEY", ADMIN_SECRET),
];

/// `base64(id:secret)`, as in an `auth.json` or a Basic header.
pub fn admin_basic_token() -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN_KEY_ID}:{ADMIN_SECRET}"))
}

/// `Authorization: Basic ...` of the administrator key.
pub fn admin_basic_auth() -> String {
    format!("Basic {}", admin_basic_token())
}

/// Default headers logging a reqwest client in as the administrator.
pub fn admin_headers() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        admin_basic_auth().parse().expect("header value"),
    );
    headers
}
