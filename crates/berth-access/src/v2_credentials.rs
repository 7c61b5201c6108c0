//! The credentials a `/v2` request carries, parsed from its `Authorization` header.
//!
//! * `Basic AWS:<login password>` — the password from `GetAuthorizationToken` (what
//!   `aws ecr get-login-password | docker login --username AWS` sends);
//! * `Basic <access key id>:<secret access key>` — an IAM access key used directly, for
//!   clients and CI systems that cannot run the AWS CLI;
//! * `Bearer <token>` — a token from the Docker token flow (`/v2/token`), which has the
//!   login token's format; the literal `anonymous` is the token handed to callers without
//!   credentials when anonymous access is enabled.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::HeaderMap;

/// What a request presents. `Debug` never shows a secret or token.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header (or the anonymous bearer token).
    Anonymous,
    /// A login password or bearer token (`berth1.` format, see [`crate::token`]).
    Token(String),
    /// An access key id and its secret.
    AccessKey { id: String, secret: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Token(_) => f.write_str("Token(<redacted>)"),
            Credentials::AccessKey { id, .. } => write!(f, "AccessKey({id}, <redacted>)"),
        }
    }
}

/// The bearer token given to callers without credentials when anonymous access is on.
pub const ANONYMOUS_TOKEN: &str = "anonymous";

/// Parses the `Authorization` header. The error is the message a `401` carries.
pub fn from_headers(headers: &HeaderMap) -> Result<Credentials, &'static str> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(Credentials::Anonymous);
    };
    let value = value
        .to_str()
        .map_err(|_| "the Authorization header is not valid text")?;
    let (scheme, rest) = value
        .trim()
        .split_once(' ')
        .ok_or("the Authorization header has no scheme")?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        basic(rest)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if rest == ANONYMOUS_TOKEN {
            Ok(Credentials::Anonymous)
        } else if rest.is_empty() {
            Err("the bearer token is empty")
        } else {
            Ok(Credentials::Token(rest.to_string()))
        }
    } else {
        Err("unsupported authorization scheme: use Basic or Bearer")
    }
}

/// `user:password` from a Basic credential (base64).
pub fn basic(encoded: &str) -> Result<Credentials, &'static str> {
    let decoded = STANDARD
        .decode(encoded)
        .map_err(|_| "the Basic credentials are not valid base64")?;
    let text =
        String::from_utf8(decoded).map_err(|_| "the Basic credentials are not valid UTF-8")?;
    let (user, password) = text
        .split_once(':')
        .ok_or("the Basic credentials have no ':' between user name and password")?;
    user_password(user, password)
}

/// Classifies a user name and password (Basic auth, or the token endpoint's form).
pub fn user_password(user: &str, password: &str) -> Result<Credentials, &'static str> {
    if password.is_empty() {
        return Err("the password is empty");
    }
    if user == "AWS" {
        return Ok(Credentials::Token(password.to_string()));
    }
    let looks_like_key_id = (16..=128).contains(&user.len())
        && user
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if looks_like_key_id {
        Ok(Credentials::AccessKey {
            id: user.to_string(),
            secret: password.to_string(),
        })
    } else {
        Err("unknown user name: log in as AWS with a password from `aws ecr get-login-password`, or with an access key id and its secret")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    #[test]
    fn parses_every_accepted_form() {
        assert_eq!(from_headers(&HeaderMap::new()), Ok(Credentials::Anonymous));
        assert_eq!(
            from_headers(&with(&format!("Basic {}", b64("AWS:berth1.abc.def")))),
            Ok(Credentials::Token("berth1.abc.def".into()))
        );
        assert_eq!(
            from_headers(&with(&format!(
                "basic {}",
                b64("AKIAABCDEFGHIJKLMNOP:sec:ret/+")
            ))),
            Ok(Credentials::AccessKey {
                id: "AKIAABCDEFGHIJKLMNOP".into(),
                secret: "sec:ret/+".into()
            })
        );
        assert_eq!(
            from_headers(&with("Bearer berth1.x.y")),
            Ok(Credentials::Token("berth1.x.y".into()))
        );
        assert_eq!(
            from_headers(&with("Bearer anonymous")),
            Ok(Credentials::Anonymous)
        );
    }

    #[test]
    fn refuses_malformed_credentials() {
        for bad in [
            "Basic".to_string(),
            "Basic !!!".to_string(),
            format!("Basic {}", b64("nocolon")),
            format!("Basic {}", b64("AWS:")),
            format!("Basic {}", b64("alice:password")),
            format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', b'x'])),
            "Bearer ".to_string(),
            "Digest abc".to_string(),
            "AWS4-HMAC-SHA256 Credential=x".to_string(),
        ] {
            assert!(from_headers(&with(&bad)).is_err(), "{bad}");
        }
    }
}
