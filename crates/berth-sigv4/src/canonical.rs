//! The canonical request: method, canonical URI, canonical query string, canonical headers,
//! signed headers and payload hash, each on its own line.

use crate::encode::{percent_decode, uri_encode};
use crate::error::SigV4Error;
use crate::parse::query_pairs;
use crate::request::Request;

/// How to build the canonical request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanonicalOptions {
    /// Remove `.`/`..` segments and empty segments from the path before encoding it (every
    /// service but S3). `false` reproduces the "unnormalized" test vectors.
    pub normalize_path: bool,
    /// Leave `X-Amz-Signature` out of the canonical query string (presigned requests).
    pub exclude_signature: bool,
}

impl Default for CanonicalOptions {
    fn default() -> Self {
        CanonicalOptions {
            normalize_path: true,
            exclude_signature: false,
        }
    }
}

/// Removes dot segments and empty segments the way the AWS SDKs do for non-S3 services:
/// `//a/./b/../c/` → `/a/c/`; an empty path → `/`; a trailing `/` stays only when a segment
/// remains before it.
pub fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    if path.starts_with('/') {
        out.push('/');
    }
    out.push_str(&segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// The canonical URI of a non-S3 request: the path as received (already percent-encoded by
/// the client), normalized if asked, then URI-encoded once more, keeping `/`. So a space sent
/// as `%20` is signed as `%2520` ("each segment encoded twice").
pub fn canonical_uri(raw_path: &str, normalize: bool) -> String {
    if normalize {
        uri_encode(normalize_path(raw_path).as_bytes(), true)
    } else if raw_path.is_empty() {
        "/".to_string()
    } else {
        uri_encode(raw_path.as_bytes(), true)
    }
}

/// The canonical query string: every `key=value` pair percent-decoded then re-encoded with
/// the SigV4 rules (unreserved kept, `+` is a literal plus), a missing `=` read as an empty
/// value, sorted by encoded key then encoded value, joined with `&`. `X-Amz-Signature` is left
/// out when `exclude_signature`.
pub fn canonical_query_string(raw_query: &str, exclude_signature: bool) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(raw_query)
        .filter(|(k, _)| !(exclude_signature && k == b"X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(&k, false), uri_encode(&percent_decode(v), false)))
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(raw_query.len() + 16);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Appends `value` with leading and trailing whitespace removed and every run of inner
/// whitespace (space, tab, CR, LF, VT, FF: obs-fold included) replaced by one space.
pub fn trimall_into(value: &[u8], out: &mut Vec<u8>) {
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c);
    let mut first = true;
    for word in value.split(is_ws).filter(|w| !w.is_empty()) {
        if !first {
            out.push(b' ');
        }
        out.extend_from_slice(word);
        first = false;
    }
}

/// The canonical headers block: for each signed header (already lower-case and sorted),
/// `name:` then its trimmed values joined with `,` in the order received, then `\n`. A signed
/// `host` absent from the headers takes the request authority. A signed header missing from
/// the request is an [`SigV4Error::Incomplete`] error.
pub fn canonical_headers(
    req: &Request<'_>,
    signed_headers: &[String],
) -> Result<Vec<u8>, SigV4Error> {
    let mut out = Vec::with_capacity(256);
    for name in signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let mut found = false;
        for value in req.header_values(name) {
            if found {
                out.push(b',');
            }
            trimall_into(value, &mut out);
            found = true;
        }
        if !found {
            match (name.as_str(), req.authority) {
                ("host", Some(authority)) => trimall_into(authority.as_bytes(), &mut out),
                _ => {
                    return Err(SigV4Error::Incomplete(format!(
                        "The signed header '{name}' is not present in the request."
                    )))
                }
            }
        }
        out.push(b'\n');
    }
    Ok(out)
}

/// The whole canonical request, as bytes (header values need not be UTF-8).
pub fn canonical_request(
    req: &Request<'_>,
    signed_headers: &[String],
    payload_hash: &str,
    options: CanonicalOptions,
) -> Result<Vec<u8>, SigV4Error> {
    let mut text = String::with_capacity(256);
    text.push_str(req.method);
    text.push('\n');
    text.push_str(&canonical_uri(req.path, options.normalize_path));
    text.push('\n');
    text.push_str(&canonical_query_string(
        req.query,
        options.exclude_signature,
    ));
    text.push('\n');
    let mut out = text.into_bytes();
    out.extend_from_slice(&canonical_headers(req, signed_headers)?);
    out.push(b'\n');
    let mut tail = String::with_capacity(128);
    for (i, name) in signed_headers.iter().enumerate() {
        if i > 0 {
            tail.push(';');
        }
        tail.push_str(name);
    }
    tail.push('\n');
    tail.push_str(payload_hash);
    out.extend_from_slice(tail.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::PayloadHash;

    #[test]
    fn path_normalization_matches_the_sdks() {
        for (input, want) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/./example", "/example"),
            ("//example//", "/example/"),
            ("/a/b/../../../c", "/c"),
            ("/a/./b/", "/a/b/"),
        ] {
            assert_eq!(normalize_path(input), want, "{input:?}");
        }
    }

    #[test]
    fn uri_is_encoded_twice() {
        assert_eq!(
            canonical_uri("/example%20space/", true),
            "/example%2520space/"
        );
        assert_eq!(canonical_uri("/a:b@c+d", true), "/a%3Ab%40c%2Bd");
        assert_eq!(canonical_uri("//example//", false), "//example//");
    }

    #[test]
    fn query_canonicalization() {
        assert_eq!(canonical_query_string("", false), "");
        assert_eq!(canonical_query_string("b=2&a=1&a=0", false), "a=0&a=1&b=2");
        assert_eq!(canonical_query_string("key&empty=", false), "empty=&key=");
        assert_eq!(
            canonical_query_string("a=x%2fy&b=x y&c=a+b&d=%7e", false),
            "a=x%2Fy&b=x%20y&c=a%2Bb&d=~"
        );
        assert_eq!(
            canonical_query_string("X-Amz-Signature=ff&X-Amz-Date=1", true),
            "X-Amz-Date=1"
        );
        // Sorted by encoded key: upper case before lower case, '-' after letters' digits.
        assert_eq!(
            canonical_query_string("Param-3=Value3&Param=Value2&%E1%88%B4=Value1", false),
            "%E1%88%B4=Value1&Param=Value2&Param-3=Value3"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_joined() {
        let req = Request::from_target("GET", "/", PayloadHash::empty())
            .with_header("My-Header1", "  a   b\t c ")
            .with_header("my-header1", "d")
            .with_header("Host", "h");
        let got = canonical_headers(&req, &["host".into(), "my-header1".into()]).unwrap();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "host:h\nmy-header1:a b c,d\n"
        );
        let missing = canonical_headers(&req, &["x-absent".into()]);
        assert!(matches!(missing, Err(SigV4Error::Incomplete(_))));
        let mut h2 = Request::from_target("GET", "/", PayloadHash::empty());
        h2.authority = Some("127.0.0.1:5000");
        assert_eq!(
            canonical_headers(&h2, &["host".into()]).unwrap(),
            b"host:127.0.0.1:5000\n"
        );
    }
}
