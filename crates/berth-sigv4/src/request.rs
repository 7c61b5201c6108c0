//! The request as the verifier sees it: independent of any HTTP framework, borrowed from
//! whatever the server holds.

use sha2::{Digest, Sha256};

/// SHA-256 of the empty string, as lower-case hex: the payload hash of a request with no body.
pub const EMPTY_SHA256_HEX: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The literal payload hash a client sends when it does not sign the body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Where the payload hash for the canonical request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadHash {
    /// The caller read the body and computed its SHA-256. If the request also declares
    /// `x-amz-content-sha256`, the declared value must equal it (or be `UNSIGNED-PAYLOAD`,
    /// when allowed); otherwise this hash is used.
    Body([u8; 32]),
    /// The caller has not read the body (it streams): the hash declared in
    /// `x-amz-content-sha256` is signed-over as is, and the caller must check the body against
    /// [`crate::VerifiedPayload::MustMatch`] once read.
    Declared,
}

impl PayloadHash {
    /// Hashes `body`.
    pub fn of_body(body: &[u8]) -> Self {
        PayloadHash::Body(Sha256::digest(body).into())
    }

    /// The hash of an empty body.
    pub fn empty() -> Self {
        Self::of_body(b"")
    }
}

/// One HTTP request, as received.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The method, as received (`GET`, `POST`, ...).
    pub method: &'a str,
    /// The path exactly as received on the wire: percent-encoded, without the query.
    pub path: &'a str,
    /// The raw query string without the leading `?` (empty when none).
    pub query: &'a str,
    /// Every header in the order received; names in any case; repeated names allowed.
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// The request-target authority (HTTP/2 `:authority`, or an absolute-form URI), used as
    /// the value of `host` when no `Host` header is present.
    pub authority: Option<&'a str>,
    /// Where the payload hash comes from.
    pub payload: PayloadHash,
}

impl<'a> Request<'a> {
    /// A request with no headers yet.
    pub fn new(method: &'a str, path: &'a str, query: &'a str, payload: PayloadHash) -> Self {
        Request {
            method,
            path,
            query,
            headers: Vec::new(),
            authority: None,
            payload,
        }
    }

    /// Splits an origin-form request target (`/path?query`) into path and query.
    pub fn from_target(method: &'a str, target: &'a str, payload: PayloadHash) -> Self {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Self::new(method, path, query, payload)
    }

    /// Borrows the parts of an `http` crate request (also what axum and hyper hand out).
    pub fn from_http(
        method: &'a http::Method,
        uri: &'a http::Uri,
        headers: &'a http::HeaderMap,
        payload: PayloadHash,
    ) -> Self {
        Request {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes()))
                .collect(),
            authority: uri.authority().map(|a| a.as_str()),
            payload,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value.as_bytes()));
        self
    }

    /// Adds a header whose value is not necessarily UTF-8.
    pub fn with_header_bytes(mut self, name: &'a str, value: &'a [u8]) -> Self {
        self.headers.push((name, value));
        self
    }

    /// All values of header `name` (case-insensitive), in order.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The single value of header `name` as text, `Ok(None)` when absent, `Err(())` when it is
    /// repeated or not UTF-8.
    pub(crate) fn single_header(&self, name: &str) -> Result<Option<&'a str>, ()> {
        let mut values = self.header_values(name);
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(());
        }
        std::str::from_utf8(first)
            .map(|s| Some(s.trim()))
            .map_err(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_http_borrows_everything() {
        let req = http::Request::builder()
            .method("POST")
            .uri("http://127.0.0.1:5000/a%20b?x=1&y")
            .header("X-Amz-Date", "20150830T123600Z")
            .header("x-multi", "1")
            .header("x-multi", "2")
            .body(())
            .unwrap();
        let r = Request::from_http(req.method(), req.uri(), req.headers(), PayloadHash::empty());
        assert_eq!((r.method, r.path, r.query), ("POST", "/a%20b", "x=1&y"));
        assert_eq!(r.authority, Some("127.0.0.1:5000"));
        assert_eq!(r.single_header("x-amz-date"), Ok(Some("20150830T123600Z")));
        assert_eq!(r.single_header("x-multi"), Err(()));
        assert_eq!(
            r.header_values("X-MULTI").collect::<Vec<_>>(),
            vec![b"1", b"2"]
        );
        assert_eq!(
            PayloadHash::empty(),
            PayloadHash::Body(hex::decode(EMPTY_SHA256_HEX).unwrap().try_into().unwrap())
        );
    }
}
