//! The client side, for Berth's own tests and tools (an in-process test signs its requests
//! with this instead of running an SDK). Signs like botocore: every header but the hop-by-hop
//! and tracing ones, plus `host`, `x-amz-date` and the session token.

use time::OffsetDateTime;

use crate::canonical::{canonical_request, CanonicalOptions};
use crate::date::format_amz_date;
use crate::encode::uri_encode;
use crate::error::SigV4Error;
use crate::request::{PayloadHash, Request};
use crate::signing::{string_to_sign, SigningKey, ALGORITHM, TERMINATOR};

/// Headers botocore never signs (and `authorization`, which carries the signature).
pub const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// An access key.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// The headers that sign a request in the header form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderSignature {
    pub x_amz_date: String,
    pub x_amz_security_token: Option<String>,
    pub authorization: String,
}

impl HeaderSignature {
    /// `(name, value)` pairs to add to the request.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![("x-amz-date", self.x_amz_date.clone())];
        if let Some(t) = &self.x_amz_security_token {
            h.push(("x-amz-security-token", t.clone()));
        }
        h.push(("authorization", self.authorization.clone()));
        h
    }
}

fn payload_hash_for_signing(req: &Request<'_>) -> Result<String, SigV4Error> {
    let declared = req.single_header("x-amz-content-sha256").map_err(|()| {
        SigV4Error::Incomplete("The x-amz-content-sha256 header must appear once.".into())
    })?;
    match (declared, req.payload) {
        (Some(d), _) => Ok(d.to_string()),
        (None, PayloadHash::Body(h)) => Ok(hex::encode(h)),
        (None, PayloadHash::Declared) => Err(SigV4Error::PayloadHashRequired),
    }
}

/// Signs `req` in the header form. `req` must not carry `x-amz-date`, `authorization` or
/// `x-amz-security-token` already (they are ignored if it does).
pub fn sign_request(
    req: &Request<'_>,
    creds: &Credentials<'_>,
    region: &str,
    service: &str,
    now: OffsetDateTime,
) -> Result<HeaderSignature, SigV4Error> {
    let amz_date = format_amz_date(now);
    let mut signed = req.clone();
    signed.headers.retain(|(n, _)| {
        !["x-amz-date", "authorization", "x-amz-security-token"]
            .iter()
            .any(|x| n.eq_ignore_ascii_case(x))
    });
    signed.headers.push(("x-amz-date", amz_date.as_bytes()));
    if let Some(token) = creds.session_token {
        signed
            .headers
            .push(("x-amz-security-token", token.as_bytes()));
    }
    let mut names: Vec<String> = signed
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| !UNSIGNED_HEADERS.contains(&n.as_str()))
        .collect();
    names.push("host".to_string());
    names.sort();
    names.dedup();
    let scope = format!("{}/{region}/{service}/{TERMINATOR}", scope_date(&amz_date));
    let payload_hash = payload_hash_for_signing(&signed)?;
    let creq = canonical_request(&signed, &names, &payload_hash, CanonicalOptions::default())?;
    let sts = string_to_sign(&amz_date, &scope, &creq);
    let key = SigningKey::derive(
        creds.secret_access_key,
        scope_date(&amz_date),
        region,
        service,
    );
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={}",
        creds.access_key_id,
        names.join(";"),
        key.sign_hex(&sts)
    );
    Ok(HeaderSignature {
        x_amz_date: amz_date,
        x_amz_security_token: creds.session_token.map(str::to_string),
        authorization,
    })
}

/// Presigns `req` (signing only `host`) and returns the query string to send: the original
/// query followed by the `X-Amz-*` parameters and `X-Amz-Signature`.
pub fn presign(
    req: &Request<'_>,
    creds: &Credentials<'_>,
    region: &str,
    service: &str,
    now: OffsetDateTime,
    expires_secs: u32,
) -> Result<String, SigV4Error> {
    let amz_date = format_amz_date(now);
    let scope = format!("{}/{region}/{service}/{TERMINATOR}", scope_date(&amz_date));
    let enc = |s: &str| uri_encode(s.as_bytes(), false);
    let mut query = String::new();
    if !req.query.is_empty() {
        query.push_str(req.query);
        query.push('&');
    }
    query.push_str(&format!(
        "X-Amz-Algorithm={ALGORITHM}&X-Amz-Credential={}&X-Amz-Date={amz_date}&X-Amz-Expires={expires_secs}&X-Amz-SignedHeaders=host",
        enc(&format!("{}/{scope}", creds.access_key_id))
    ));
    if let Some(token) = creds.session_token {
        query.push_str(&format!("&X-Amz-Security-Token={}", enc(token)));
    }
    let mut signed = req.clone();
    signed.query = &query;
    let payload_hash = payload_hash_for_signing(&signed)?;
    let creq = canonical_request(
        &signed,
        &["host".to_string()],
        &payload_hash,
        CanonicalOptions::default(),
    )?;
    let sts = string_to_sign(&amz_date, &scope, &creq);
    let key = SigningKey::derive(
        creds.secret_access_key,
        scope_date(&amz_date),
        region,
        service,
    );
    Ok(format!("{query}&X-Amz-Signature={}", key.sign_hex(&sts)))
}

/// The `YYYYMMDD` part of an `X-Amz-Date` this module formatted itself.
fn scope_date(amz_date: &str) -> &str {
    amz_date.get(..8).unwrap_or(amz_date)
}
