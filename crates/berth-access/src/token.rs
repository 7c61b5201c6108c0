//! Registry login tokens: the password half of `GetAuthorizationToken`'s `AWS:<password>`.
//!
//! A token is `berth1.<claims>.<mac>`: `claims` is base64url (no padding) of
//! `2|<access key id>|<account>|<principal>|<expiry>|<login expiry>` (Unix seconds;
//! principal: `root` or `user/<name>`; version 1, without the login expiry, is still
//! read). The login expiry is the end of the original login's lifetime: a token renewed
//! through `/v2/token` (refresh grant) carries it over and never outlives it. `mac` is base64url of HMAC-SHA256 over the `berth1.<claims>` text under
//! the login token key (derived from the master key: a new master key invalidates every
//! token). Verification checks the MAC in constant time, then the shape, then the expiry;
//! the caller must also check that the access key still exists and is active (a token
//! stops working when its key is deleted or deactivated).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::fmt::Write as _;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a token is valid (ECR: 12 hours).
pub const TOKEN_LIFETIME_SECS: i64 = 12 * 3600;

const PREFIX: &str = "berth1.";

/// Who a token was issued to and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub access_key_id: String,
    pub account_id: String,
    /// `None` for the account root, the IAM user's name otherwise.
    pub user: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
    /// When the login this token descends from ends (Unix seconds): renewals are capped
    /// at it. A fresh login's token has `login_expires_at == expires_at`.
    pub login_expires_at: i64,
}

impl TokenClaims {
    /// The claims of a token renewing this one at `now` for `lifetime` seconds: same
    /// caller, expiry capped at the original login's.
    pub fn renewed(&self, now: i64, lifetime: i64) -> TokenClaims {
        TokenClaims {
            expires_at: (now + lifetime).min(self.login_expires_at),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token of this format, or altered, or signed under another key.
    Invalid,
    Expired,
}

fn mac(key: &[u8; 32], text: &str) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    m.update(text.as_bytes());
    m
}

/// Signs `claims` into a token (minted per login: built in two buffers, no temporaries).
pub fn sign(key: &[u8; 32], claims: &TokenClaims) -> String {
    let mut body = String::with_capacity(96);
    body.push_str("2|");
    body.push_str(&claims.access_key_id);
    body.push('|');
    body.push_str(&claims.account_id);
    body.push('|');
    match &claims.user {
        None => body.push_str("root"),
        Some(u) => {
            body.push_str("user/");
            body.push_str(u);
        }
    }
    // Writing into a String cannot fail.
    let _ = write!(body, "|{}|{}", claims.expires_at, claims.login_expires_at);
    let mut token = String::with_capacity(PREFIX.len() + body.len() * 4 / 3 + 48);
    token.push_str(PREFIX);
    URL_SAFE_NO_PAD.encode_string(body, &mut token);
    let tag = mac(key, &token).finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut token);
    token
}

/// Verifies a token at `now` (Unix seconds).
pub fn verify(key: &[u8; 32], token: &str, now: i64) -> Result<TokenClaims, TokenError> {
    let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
    let claims_b64 = signed.strip_prefix(PREFIX).ok_or(TokenError::Invalid)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Invalid)?;
    mac(key, signed)
        .verify_slice(&tag)
        .map_err(|_| TokenError::Invalid)?;
    let body = URL_SAFE_NO_PAD
        .decode(claims_b64)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(TokenError::Invalid)?;
    let parts: Vec<&str> = body.split('|').collect();
    let (akid, account, principal, expiry, login_expiry) = match parts[..] {
        ["1", akid, account, principal, expiry] => (akid, account, principal, expiry, expiry),
        ["2", akid, account, principal, expiry, login_expiry] => {
            (akid, account, principal, expiry, login_expiry)
        }
        _ => return Err(TokenError::Invalid),
    };
    let user = match principal {
        "root" => None,
        p => Some(
            p.strip_prefix("user/")
                .ok_or(TokenError::Invalid)?
                .to_string(),
        ),
    };
    let expires_at: i64 = expiry.parse().map_err(|_| TokenError::Invalid)?;
    let login_expires_at: i64 = login_expiry.parse().map_err(|_| TokenError::Invalid)?;
    if now >= expires_at || now >= login_expires_at {
        return Err(TokenError::Expired);
    }
    Ok(TokenClaims {
        access_key_id: akid.to_string(),
        account_id: account.to_string(),
        user,
        expires_at,
        login_expires_at,
    })
}

/// Query parameter of a layer download URL (`GetDownloadUrlForLayer`).
pub const DOWNLOAD_PARAM: &str = "X-Berth-Download";
/// The registry (account id) a download URL reads from, beside [`DOWNLOAD_PARAM`]: the
/// grant is signed over it, so the URL works on any host name of the server.
pub const DOWNLOAD_REGISTRY_PARAM: &str = "X-Berth-Registry";

/// How long a download URL is valid (ECR's S3 URLs: about an hour).
pub const DOWNLOAD_LIFETIME_SECS: i64 = 3600;

/// Signs a download grant for one blob of one repository until `expires_at` (Unix
/// seconds): `<expiry>.<mac>` where the MAC (HMAC-SHA256 under the login token key,
/// base64url) covers `dl1|<account>|<repository>|<digest>|<expiry>`. The grant is the
/// value of [`DOWNLOAD_PARAM`] on `/v2/<repository>/blobs/<digest>`.
pub fn sign_download(
    key: &[u8; 32],
    account: &str,
    repository: &str,
    digest: &str,
    expires_at: i64,
) -> String {
    let text = format!("dl1|{account}|{repository}|{digest}|{expires_at}");
    let tag = mac(key, &text).finalize().into_bytes();
    format!("{expires_at}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Checks a download grant for `repository`/`digest` of `account` at `now`.
pub fn verify_download(
    key: &[u8; 32],
    grant: &str,
    account: &str,
    repository: &str,
    digest: &str,
    now: i64,
) -> Result<(), TokenError> {
    let (expiry, tag) = grant.split_once('.').ok_or(TokenError::Invalid)?;
    let expires_at: i64 = expiry.parse().map_err(|_| TokenError::Invalid)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Invalid)?;
    let text = format!("dl1|{account}|{repository}|{digest}|{expires_at}");
    mac(key, &text)
        .verify_slice(&tag)
        .map_err(|_| TokenError::Invalid)?;
    if now >= expires_at {
        return Err(TokenError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(user: Option<&str>) -> TokenClaims {
        TokenClaims {
            access_key_id: "AKIAEXAMPLE234567ABC".into(),
            account_id: "123456789012".into(),
            user: user.map(str::to_string),
            expires_at: 1_000 + TOKEN_LIFETIME_SECS,
            login_expires_at: 1_000 + TOKEN_LIFETIME_SECS,
        }
    }

    #[test]
    fn renewals_never_outlive_the_original_login() {
        let key = [7u8; 32];
        let login = claims(Some("alice"));
        let end = login.login_expires_at;
        // Renewed an hour before the login ends for 12 hours: capped at the login's end.
        let renewed = login.renewed(end - 3600, TOKEN_LIFETIME_SECS);
        assert_eq!(renewed.expires_at, end);
        let t = sign(&key, &renewed);
        let back = verify(&key, &t, end - 1).unwrap();
        assert_eq!(back.login_expires_at, end);
        // Renewing the renewal changes nothing: the cap is carried over.
        assert_eq!(back.renewed(end - 1, TOKEN_LIFETIME_SECS).expires_at, end);
        assert_eq!(verify(&key, &t, end), Err(TokenError::Expired));
        // Early in the login a renewal gets a whole (shorter) lifetime.
        assert_eq!(login.renewed(1_000, 60).expires_at, 1_060);
    }

    #[test]
    fn version_1_tokens_are_still_read_and_cannot_extend_their_login() {
        let key = [7u8; 32];
        let signed = format!(
            "{PREFIX}{}",
            URL_SAFE_NO_PAD.encode("1|AKIAEXAMPLE234567ABC|123456789012|root|5000")
        );
        let tag = mac(&key, &signed).finalize().into_bytes();
        let t = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag));
        let c = verify(&key, &t, 1_000).unwrap();
        assert_eq!((c.expires_at, c.login_expires_at), (5_000, 5_000));
        assert_eq!(c.renewed(4_000, 3_600).expires_at, 5_000);
    }

    #[test]
    fn tokens_have_the_documented_text() {
        let key = [7u8; 32];
        for (c, principal) in [
            (claims(None), "root"),
            (claims(Some("alice")), "user/alice"),
        ] {
            let claims_text = format!(
                "2|{}|{}|{principal}|{}|{}",
                c.access_key_id, c.account_id, c.expires_at, c.login_expires_at
            );
            let signed = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(claims_text));
            let tag = mac(&key, &signed).finalize().into_bytes();
            let want = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag));
            assert_eq!(sign(&key, &c), want);
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let key = [7u8; 32];
        for c in [claims(None), claims(Some("alice"))] {
            let t = sign(&key, &c);
            assert!(t.starts_with("berth1."));
            assert_eq!(verify(&key, &t, 1_000), Ok(c.clone()));
            assert_eq!(verify(&key, &t, c.expires_at - 1), Ok(c.clone()));
            assert_eq!(verify(&key, &t, c.expires_at), Err(TokenError::Expired));
        }
    }

    #[test]
    fn tampered_or_foreign_tokens_are_invalid() {
        let key = [7u8; 32];
        let t = sign(&key, &claims(Some("alice")));
        assert_eq!(verify(&[8u8; 32], &t, 1_000), Err(TokenError::Invalid));
        // Claims swapped for another user's, keeping the MAC.
        let other = sign(&key, &claims(Some("mallory")));
        let (_, tag) = t.rsplit_once('.').unwrap();
        let (signed_other, _) = other.rsplit_once('.').unwrap();
        assert_eq!(
            verify(&key, &format!("{signed_other}.{tag}"), 1_000),
            Err(TokenError::Invalid)
        );
        // A later expiry, keeping the MAC.
        let mut later = claims(Some("alice"));
        later.expires_at += 1_000_000;
        let (signed_later, _) = sign(&key, &later)
            .rsplit_once('.')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap();
        assert_eq!(
            verify(&key, &format!("{signed_later}.{tag}"), 1_000),
            Err(TokenError::Invalid)
        );
        // Flipped characters anywhere.
        for i in 0..t.len() {
            let mut bytes = t.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let s = String::from_utf8(bytes).unwrap();
            if s != t {
                assert!(verify(&key, &s, 1_000).is_err(), "{s}");
            }
        }
        for junk in ["", ".", "berth1.", "berth1..", "AWS:x", "berth1.e30.e30"] {
            assert_eq!(
                verify(&key, junk, 1_000),
                Err(TokenError::Invalid),
                "{junk}"
            );
        }
    }

    #[test]
    fn download_grants_bind_account_repository_digest_and_expiry() {
        let key = [9u8; 32];
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let g = sign_download(&key, "123456789012", "team/app", d, 5_000);
        assert_eq!(
            verify_download(&key, &g, "123456789012", "team/app", d, 4_999),
            Ok(())
        );
        assert_eq!(
            verify_download(&key, &g, "123456789012", "team/app", d, 5_000),
            Err(TokenError::Expired)
        );
        for (acct, repo, dig) in [
            ("210987654321", "team/app", d),
            ("123456789012", "team/other", d),
            ("123456789012", "team/app", "sha256:00"),
        ] {
            assert_eq!(
                verify_download(&key, &g, acct, repo, dig, 1),
                Err(TokenError::Invalid)
            );
        }
        assert_eq!(
            verify_download(&[1u8; 32], &g, "123456789012", "team/app", d, 1),
            Err(TokenError::Invalid)
        );
        let later = g.replacen("5000", "9000", 1);
        assert_eq!(
            verify_download(&key, &later, "123456789012", "team/app", d, 1),
            Err(TokenError::Invalid)
        );
        for junk in ["", ".", "x.y", "5000", "5000."] {
            assert!(verify_download(&key, junk, "123456789012", "team/app", d, 1).is_err());
        }
    }
}
