//! # berth-sigv4
//!
//! Verification of AWS Signature Version 4 (`AWS4-HMAC-SHA256`) on requests to Berth's
//! control plane (the ECR JSON API, the IAM and STS Query APIs), in both the `Authorization`
//! header form and the presigned query-string form. Pure logic: no I/O, no clock (the caller
//! passes `now`), no key store (the caller looks the access key up between the two steps).
//!
//! May depend on: nothing of Berth's. Only hashing/HMAC, hex, `time`, and `http` for the
//! request-parts adapter ([`Request::from_http`]).
//!
//! ## Use
//! 1. [`Verifier::parse`] (or [`parse`]) reads the access key id, credential scope, signed
//!    headers, signature, request time and session token out of a [`Request`].
//! 2. The server finds the secret for `parsed.access_key_id` (unknown or inactive →
//!    [`SigV4Error::UnrecognizedClient`]), then [`Verifier::verify`] (or
//!    [`Verifier::verify_with_key`] with a [`SigningKey`] cached per key and scope) checks the
//!    scope and the time and recomputes the signature. [`SigV4Error::aws_type`] and
//!    [`SigV4Error::query_code`] name the error on the wire.
//!
//! ```
//! use berth_sigv4::{sign_request, Credentials, PayloadHash, Request, SigV4Error, Verifier, VerifierConfig};
//! use time::macros::datetime;
//!
//! let now = datetime!(2026-03-01 12:00:00 UTC);
//! let body = br#"{}"#;
//! let req = Request::new("POST", "/", "", PayloadHash::of_body(body))
//!     .with_header("Host", "127.0.0.1:5000")
//!     .with_header("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken");
//!
//! // A client (here the crate's own signer, handy in tests) adds x-amz-date and authorization.
//! let creds = Credentials { access_key_id: "AKIDEXAMPLE", secret_access_key: "s3cr3t", session_token: None };
//! let added = sign_request(&req, &creds, "us-east-1", "ecr", now)?.headers();
//! let mut signed = req.clone();
//! for (name, value) in &added {
//!     signed = signed.with_header(name, value);
//! }
//!
//! // The server: parse, look the key up, verify.
//! let verifier = Verifier::new(VerifierConfig::new(["ecr"]).with_regions(["us-east-1"]));
//! let parsed = verifier.parse(&signed)?;
//! let secret = match parsed.access_key_id.as_str() {
//!     "AKIDEXAMPLE" => "s3cr3t",
//!     other => return Err(SigV4Error::UnrecognizedClient { access_key_id: other.to_string() }),
//! };
//! let identity = verifier.verify(&parsed, secret, &signed, now)?;
//! assert_eq!(identity.access_key_id, "AKIDEXAMPLE");
//!
//! // Any change to a signed part is refused with the AWS exception name.
//! let tampered = signed.clone().with_header("X-Amz-Target", "extra");
//! let err = verifier.verify(&parsed, secret, &tampered, now).unwrap_err();
//! assert_eq!(err.aws_type(), "InvalidSignatureException");
//! # Ok::<(), SigV4Error>(())
//! ```
//!
//! ## Canonicalization implemented (non-S3 rules; what botocore and the AWS SDKs sign)
//! - **Method**: as received.
//! - **Canonical URI**: the path exactly as received (already percent-encoded by the client)
//!   is normalized — empty segments and `.` removed, `..` removes the previous segment, an
//!   empty result is `/`, a trailing `/` is kept when a segment remains — and then every byte
//!   except `A-Za-z0-9-_.~` and `/` is percent-encoded with upper-case hex. A `%` is encoded
//!   too, so the path ends up encoded twice (`/a%20b` is signed as `/a%2520b`), as AWS does
//!   for every service but S3. ([`VerifierConfig::normalize_path`] = false skips the
//!   normalization, for the "unnormalized" test vectors only.)
//! - **Canonical query string**: the raw query split on `&` (empty pieces dropped), each piece
//!   split at its first `=` (no `=` means an empty value), key and value percent-decoded (`+`
//!   stays a literal `+`; a `%` without two hex digits stays literal) and re-encoded keeping
//!   only `A-Za-z0-9-_.~`, sorted by encoded key then encoded value (byte order), joined as
//!   `k=v` with `&`. In a presigned request `X-Amz-Signature` is left out.
//! - **Canonical headers**: for each signed header name (lower-cased, sorted, duplicates
//!   dropped), `name:value\n`, where the value is every occurrence of that header in the order
//!   received, each trimmed and with inner runs of whitespace (space, tab, CR, LF, VT, FF)
//!   collapsed to one space, joined with `,`. `host` must be signed; when the request has no
//!   `Host` header (HTTP/2), the request authority is used. A signed header absent from the
//!   request is an error.
//! - **Signed headers**: the same names joined with `;`.
//! - **Payload hash**: the `x-amz-content-sha256` value when the request declares one (for a
//!   presigned request, the `X-Amz-Content-Sha256` query parameter first), checked against the
//!   SHA-256 of the body when the caller computed it ([`PayloadHash::Body`]);
//!   `UNSIGNED-PAYLOAD` only where [`VerifierConfig::allow_unsigned_payload`]; otherwise the
//!   hex SHA-256 of the body. With [`PayloadHash::Declared`] (body not read yet) the declared
//!   hash is used and the caller must check the body afterwards ([`VerifiedPayload::MustMatch`]).
//! - **String to sign**: `AWS4-HMAC-SHA256\n<YYYYMMDDTHHMMSSZ>\n<date>/<region>/<service>/aws4_request\n<hex SHA-256 of the canonical request>`.
//!   The time is `X-Amz-Date` (header or query parameter), else the `Date` header
//!   (IMF-fixdate), and the scope date must be its first eight characters.
//! - **Signing key**: `HMAC("AWS4" + secret, date)`, then region, service, `aws4_request`
//!   ([`SigningKey::derive`]); the signature is the hex HMAC of the string to sign with it,
//!   compared in constant time.
//!
//! ## Checks and their errors
//! Terminator `aws4_request`, service in [`VerifierConfig::services`], region per
//! [`RegionPolicy`], scope date = request date, then time: a header-signed request must be
//! within [`VerifierConfig::max_skew`] (default 5 minutes, as AWS) of `now` either way; a
//! presigned one must not be more than the skew in the future and is valid until
//! `X-Amz-Date + X-Amz-Expires` (at most 604800 s). See [`SigV4Error`] for the wire names.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod canonical;
mod date;
mod encode;
mod error;
#[doc(hidden)]
pub mod fuzz_entry;
mod parse;
mod request;
mod signer;
mod signing;
mod verify;

pub use canonical::{
    canonical_headers, canonical_query_string, canonical_request, canonical_uri, normalize_path,
    CanonicalOptions,
};
pub use date::{format_amz_date, parse_amz_date, parse_http_date};
pub use encode::{percent_decode, uri_encode};
pub use error::{SigV4Error, SIGNATURE_MISMATCH_MESSAGE};
pub use parse::{parse, AuthForm, CredentialScope, ParsedAuth, MAX_PRESIGNED_EXPIRES_SECS};
pub use request::{PayloadHash, Request, EMPTY_SHA256_HEX, UNSIGNED_PAYLOAD};
pub use signer::{presign, sign_request, Credentials, HeaderSignature, UNSIGNED_HEADERS};
pub use signing::{
    constant_time_eq, sha256_hex, string_to_sign, SigningKey, ALGORITHM, TERMINATOR,
};
pub use verify::{RegionPolicy, VerifiedIdentity, VerifiedPayload, Verifier, VerifierConfig};
