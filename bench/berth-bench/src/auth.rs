//! Credentials for registries that require them (Berth by default): an AWS access key, the
//! `/v2` Basic header made from it or from an ECR login token, and the base64 both need
//! (standard alphabet with padding, RFC 4648 §4), written out here to keep the bench's
//! dependencies to what the workspace already has.

use anyhow::{anyhow, Result};

/// An AWS access key (id and secret).
#[derive(Clone)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "AccessKey({})", self.id)
    }
}

/// How `/v2` requests authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum V2Login {
    /// `Basic base64(AWS:<password>)` with the password from `GetAuthorizationToken`, what
    /// `aws ecr get-login-password | docker login` sets up.
    Token,
    /// `Basic base64(<access key id>:<secret>)`, the access key sent directly.
    Key,
    /// No `Authorization` header.
    None,
}

/// `Basic base64(user:password)`.
pub fn basic_header(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64_encode(format!("{user}:{password}").as_bytes())
    )
}

/// The `(user, password)` of an ECR `authorizationToken` (base64 of `AWS:<password>`).
pub fn split_login_token(token: &str) -> Result<(String, String)> {
    let raw = base64_decode(token)?;
    let text = String::from_utf8(raw).map_err(|_| anyhow!("login token is not UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| anyhow!("login token has no ':'"))?;
    Ok((user.to_string(), password.to_string()))
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let text = text.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or_else(|| anyhow!("invalid base64 character {:?}", c as char))?;
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, enc) in cases {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes());
        }
        assert!(base64_decode("a*b=").is_err());
    }

    #[test]
    fn login_token_and_basic() {
        let token = base64_encode(b"AWS:pass:word");
        let (u, p) = split_login_token(&token).unwrap();
        assert_eq!((u.as_str(), p.as_str()), ("AWS", "pass:word"));
        assert_eq!(basic_header("AWS", "x"), "Basic QVdTOng=");
        assert!(split_login_token(&base64_encode(b"nocolon")).is_err());
    }
}
