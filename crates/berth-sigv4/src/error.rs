//! Why a request failed SigV4 verification, in domain words, with the AWS wire names.
//!
//! Each variant knows its AWS JSON `__type` ([`SigV4Error::aws_type`], for `awsJson1_1`
//! services such as ECR), its AWS Query `Code` ([`SigV4Error::query_code`], for IAM and STS),
//! and the HTTP status of each protocol. The `Display` text is the `message` to send; it never
//! contains a secret.
//!
//! Notes on AWS behaviour (from AWS error texts seen by SDK users and the AWS "Common Errors"
//! reference):
//! - A header-signed request outside the clock-skew window is `InvalidSignatureException`
//!   (JSON) / `SignatureDoesNotMatch` (Query) with the text
//!   `Signature expired: <x-amz-date> is now earlier than <now - skew> (<now> - 5 min.)`, or
//!   `Signature not yet current: <x-amz-date> is still later than <now + skew> (<now> + 5 min.)`.
//! - `ExpiredToken(Exception)` is about an expired *session token* (temporary credentials,
//!   `X-Amz-Security-Token`), not an expired presigned URL, so it is a separate variant that
//!   the caller raises ([`SigV4Error::ExpiredToken`]). An expired presigned URL
//!   ([`SigV4Error::PresignedExpired`]) is `InvalidSignatureException` on JSON services (the
//!   "Signature expired" family) and `RequestExpired` (400) on Query services, as the AWS
//!   Common Errors reference describes it ("more than 15 minutes after the request expiration
//!   date (such as for pre-signed URLs)"). S3 answers `AccessDenied: Request has expired`,
//!   which does not apply to the services Berth speaks.

use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::date::format_amz_date;

/// The text AWS sends when the recomputed signature differs from the one provided.
pub const SIGNATURE_MISMATCH_MESSAGE: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// A SigV4 verification failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigV4Error {
    /// Neither an `Authorization` header nor an `X-Amz-Algorithm` query parameter.
    MissingAuthentication,
    /// The authentication information is present but malformed or incomplete (a missing
    /// `Credential`/`SignedHeaders`/`Signature`, no date, `host` not signed, a bad
    /// `X-Amz-Expires`, two authentication forms at once...). The text says what.
    Incomplete(String),
    /// An `Authorization` header or `X-Amz-Algorithm` with an algorithm other than
    /// `AWS4-HMAC-SHA256`.
    UnsupportedAlgorithm { algorithm: String },
    /// The access key id is not known (or is inactive). Decided by the caller.
    UnrecognizedClient { access_key_id: String },
    /// The session token (`X-Amz-Security-Token`) has expired. Decided by the caller.
    ExpiredToken,
    /// The recomputed signature differs. Carries what the server computed, which AWS also
    /// shows to the client (see [`SigV4Error::detailed_message`]).
    SignatureMismatch {
        canonical_request: String,
        string_to_sign: String,
    },
    /// The request time is more than the allowed skew in the past.
    SignatureExpired {
        signed_at: OffsetDateTime,
        now: OffsetDateTime,
        max_skew: Duration,
    },
    /// The request time is more than the allowed skew in the future.
    SignatureNotYetCurrent {
        signed_at: OffsetDateTime,
        now: OffsetDateTime,
        max_skew: Duration,
    },
    /// A presigned request used after `X-Amz-Date + X-Amz-Expires`.
    PresignedExpired {
        signed_at: OffsetDateTime,
        expires_secs: u32,
        now: OffsetDateTime,
    },
    /// The date in the credential scope is not the date of the request time.
    ScopeDateMismatch {
        scope_date: String,
        amz_date: String,
    },
    /// The credential scope names a service this endpoint does not serve.
    WrongService { expected: String, got: String },
    /// The credential scope names a region this endpoint does not serve.
    WrongRegion { got: String },
    /// The credential scope does not end with `aws4_request`.
    InvalidTerminator { got: String },
    /// `x-amz-content-sha256` does not match the SHA-256 of the body received.
    PayloadHashMismatch { declared: String, computed: String },
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD` where the endpoint requires a signed payload.
    UnsignedPayloadNotAllowed,
    /// The caller asked to trust the declared payload hash but the request declares none (or
    /// declares something that is not a SHA-256 hex digest).
    PayloadHashRequired,
}

fn skew_text(d: Duration) -> String {
    let secs = d.whole_seconds();
    if secs % 60 == 0 {
        format!("{} min.", secs / 60)
    } else {
        format!("{secs} sec.")
    }
}

impl SigV4Error {
    /// The AWS JSON protocol error name (`__type`), as ECR and other `awsJson1_1` services
    /// send it.
    pub fn aws_type(&self) -> &'static str {
        use SigV4Error::*;
        match self {
            MissingAuthentication => "MissingAuthenticationTokenException",
            Incomplete(_) | UnsupportedAlgorithm { .. } | PayloadHashRequired => {
                "IncompleteSignatureException"
            }
            UnrecognizedClient { .. } => "UnrecognizedClientException",
            ExpiredToken => "ExpiredTokenException",
            SignatureMismatch { .. }
            | SignatureExpired { .. }
            | SignatureNotYetCurrent { .. }
            | PresignedExpired { .. }
            | ScopeDateMismatch { .. }
            | WrongService { .. }
            | WrongRegion { .. }
            | InvalidTerminator { .. }
            | PayloadHashMismatch { .. }
            | UnsignedPayloadNotAllowed => "InvalidSignatureException",
        }
    }

    /// The AWS Query protocol error `Code` (IAM, STS).
    pub fn query_code(&self) -> &'static str {
        use SigV4Error::*;
        match self {
            MissingAuthentication => "MissingAuthenticationToken",
            Incomplete(_) | UnsupportedAlgorithm { .. } | PayloadHashRequired => {
                "IncompleteSignature"
            }
            UnrecognizedClient { .. } => "InvalidClientTokenId",
            ExpiredToken => "ExpiredToken",
            PresignedExpired { .. } => "RequestExpired",
            SignatureMismatch { .. }
            | SignatureExpired { .. }
            | SignatureNotYetCurrent { .. }
            | ScopeDateMismatch { .. }
            | WrongService { .. }
            | WrongRegion { .. }
            | InvalidTerminator { .. }
            | PayloadHashMismatch { .. }
            | UnsignedPayloadNotAllowed => "SignatureDoesNotMatch",
        }
    }

    /// HTTP status for the JSON protocol: AWS JSON services answer these client errors with 400.
    pub fn json_status(&self) -> u16 {
        400
    }

    /// HTTP status for the Query protocol, per the AWS Common Errors reference.
    pub fn query_status(&self) -> u16 {
        match self.query_code() {
            "IncompleteSignature" | "RequestExpired" => 400,
            _ => 403,
        }
    }

    /// The message with, for a signature mismatch, the canonical request and string to sign
    /// the server computed, laid out as AWS does. Safe to send: neither contains a secret.
    pub fn detailed_message(&self) -> String {
        match self {
            SigV4Error::SignatureMismatch { canonical_request, string_to_sign } => format!(
                "{SIGNATURE_MISMATCH_MESSAGE}\n\nThe Canonical String for this request should have been\n'{canonical_request}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
            ),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for SigV4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SigV4Error::*;
        match self {
            MissingAuthentication => f.write_str("Request is missing Authentication Token"),
            Incomplete(msg) => f.write_str(msg),
            UnsupportedAlgorithm { algorithm } => {
                write!(f, "Unsupported AWS 'algorithm': '{algorithm}'; only AWS4-HMAC-SHA256 is supported.")
            }
            UnrecognizedClient { .. } => {
                f.write_str("The security token included in the request is invalid.")
            }
            ExpiredToken => f.write_str("The security token included in the request is expired"),
            SignatureMismatch { .. } => f.write_str(SIGNATURE_MISMATCH_MESSAGE),
            SignatureExpired { signed_at, now, max_skew } => write!(
                f,
                "Signature expired: {} is now earlier than {} ({} - {})",
                format_amz_date(*signed_at),
                format_amz_date(*now - *max_skew),
                format_amz_date(*now),
                skew_text(*max_skew)
            ),
            SignatureNotYetCurrent { signed_at, now, max_skew } => write!(
                f,
                "Signature not yet current: {} is still later than {} ({} + {})",
                format_amz_date(*signed_at),
                format_amz_date(*now + *max_skew),
                format_amz_date(*now),
                skew_text(*max_skew)
            ),
            PresignedExpired { signed_at, expires_secs, now } => write!(
                f,
                "Signature expired: the presigned request expired at {} (X-Amz-Date {} + X-Amz-Expires {} s); it is now {}",
                format_amz_date(*signed_at + Duration::seconds(i64::from(*expires_secs))),
                format_amz_date(*signed_at),
                expires_secs,
                format_amz_date(*now)
            ),
            ScopeDateMismatch { scope_date, amz_date } => write!(
                f,
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope_date}' != '{}', from '{amz_date}'.",
                amz_date.get(..8).unwrap_or(amz_date)
            ),
            WrongService { expected, .. } => {
                write!(f, "Credential should be scoped to correct service: '{expected}'. ")
            }
            WrongRegion { got } => {
                write!(f, "Credential should be scoped to a valid region, not '{got}'. ")
            }
            InvalidTerminator { got } => write!(
                f,
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{got}'. "
            ),
            PayloadHashMismatch { .. } => f.write_str(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ),
            UnsignedPayloadNotAllowed => f.write_str(
                "UNSIGNED-PAYLOAD is not accepted here: sign the payload (x-amz-content-sha256 must be the SHA-256 of the body).",
            ),
            PayloadHashRequired => f.write_str(
                "Missing required header for this request: x-amz-content-sha256 (the hex SHA-256 of the body).",
            ),
        }
    }
}

impl std::error::Error for SigV4Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn expiry_messages_read_like_aws() {
        let e = SigV4Error::SignatureExpired {
            signed_at: datetime!(2015-08-30 12:36:00 UTC),
            now: datetime!(2015-08-30 12:51:00 UTC),
            max_skew: Duration::minutes(5),
        };
        assert_eq!(
            e.to_string(),
            "Signature expired: 20150830T123600Z is now earlier than 20150830T124600Z (20150830T125100Z - 5 min.)"
        );
        assert_eq!(e.aws_type(), "InvalidSignatureException");
        assert_eq!(e.query_code(), "SignatureDoesNotMatch");
        assert_eq!(e.query_status(), 403);
        let e = SigV4Error::SignatureNotYetCurrent {
            signed_at: datetime!(2015-08-30 12:36:00 UTC),
            now: datetime!(2015-08-30 12:00:00 UTC),
            max_skew: Duration::seconds(90),
        };
        assert_eq!(
            e.to_string(),
            "Signature not yet current: 20150830T123600Z is still later than 20150830T120130Z (20150830T120000Z + 90 sec.)"
        );
    }

    #[test]
    fn wire_names() {
        let cases: Vec<(SigV4Error, &str, &str, u16)> = vec![
            (
                SigV4Error::MissingAuthentication,
                "MissingAuthenticationTokenException",
                "MissingAuthenticationToken",
                403,
            ),
            (
                SigV4Error::Incomplete("x".into()),
                "IncompleteSignatureException",
                "IncompleteSignature",
                400,
            ),
            (
                SigV4Error::UnrecognizedClient {
                    access_key_id: "AKID".into(),
                },
                "UnrecognizedClientException",
                "InvalidClientTokenId",
                403,
            ),
            (
                SigV4Error::ExpiredToken,
                "ExpiredTokenException",
                "ExpiredToken",
                403,
            ),
            (
                SigV4Error::PresignedExpired {
                    signed_at: datetime!(2015-08-30 12:36:00 UTC),
                    expires_secs: 60,
                    now: datetime!(2015-08-30 13:00:00 UTC),
                },
                "InvalidSignatureException",
                "RequestExpired",
                400,
            ),
            (
                SigV4Error::WrongRegion {
                    got: "eu-west-1".into(),
                },
                "InvalidSignatureException",
                "SignatureDoesNotMatch",
                403,
            ),
        ];
        for (e, json, query, status) in cases {
            assert_eq!(e.aws_type(), json, "{e:?}");
            assert_eq!(e.query_code(), query, "{e:?}");
            assert_eq!(e.query_status(), status, "{e:?}");
            assert_eq!(e.json_status(), 400);
        }
    }
}
