//! The verifier's checks, on requests signed by the crate's own signer (which reproduces the
//! AWS test suite, see aws_test_suite.rs).
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

use berth_sigv4::{
    presign, sign_request, AuthForm, Credentials, PayloadHash, Request, SigV4Error, SigningKey,
    VerifiedPayload, Verifier, VerifierConfig,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const CREDS: Credentials<'static> = Credentials {
    access_key_id: "AKIDEXAMPLE",
    secret_access_key: "secret/key+example",
    session_token: None,
};
const NOW: OffsetDateTime = datetime!(2026-03-01 23:59:30 UTC);
const BODY: &[u8] = br#"{"repositoryName":"app"}"#;

fn ecr() -> Verifier {
    Verifier::new(VerifierConfig::new(["ecr"]).with_regions(["us-west-2"]))
}

fn base() -> Request<'static> {
    Request::new("POST", "/", "", PayloadHash::of_body(BODY))
        .with_header("Host", "127.0.0.1:5000")
        .with_header("Content-Type", "application/x-amz-json-1.1")
        .with_header(
            "X-Amz-Target",
            "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
        )
}

/// Signs `base()` and returns owned headers to build the signed request from.
fn signed_headers(req: &Request<'_>, at: OffsetDateTime) -> Vec<(String, String)> {
    let sig = sign_request(req, &CREDS, "us-west-2", "ecr", at).unwrap();
    sig.headers()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect()
}

fn with<'a>(mut req: Request<'a>, extra: &'a [(String, String)]) -> Request<'a> {
    for (n, v) in extra {
        req = req.with_header(n, v);
    }
    req
}

fn check(
    req: &Request<'_>,
    now: OffsetDateTime,
) -> Result<berth_sigv4::VerifiedIdentity, SigV4Error> {
    let v = ecr();
    let parsed = v.parse(req)?;
    v.verify(&parsed, CREDS.secret_access_key, req, now)
}

#[test]
fn own_signature_verifies_and_cached_key_gives_the_same_answer() {
    let extra = signed_headers(&base(), NOW);
    let req = with(base(), &extra);
    let id = check(&req, NOW).unwrap();
    assert_eq!(id.scope.to_string(), "20260301/us-west-2/ecr/aws4_request");
    assert_eq!(
        id.signed_headers,
        ["content-type", "host", "x-amz-date", "x-amz-target"]
    );
    assert_eq!(id.payload, VerifiedPayload::Verified);

    let v = ecr();
    let parsed = v.parse(&req).unwrap();
    v.check_scope_and_time(&parsed, NOW).unwrap();
    let key = SigningKey::derive(
        CREDS.secret_access_key,
        &parsed.scope.date,
        &parsed.scope.region,
        &parsed.scope.service,
    );
    let cached = SigningKey::from_bytes(*key.as_bytes());
    assert_eq!(v.verify_with_key(&parsed, &cached, &req, NOW).unwrap(), id);
}

#[test]
fn scope_checks() {
    let extra = signed_headers(&base(), NOW);
    let auth = &extra.iter().find(|(n, _)| n == "authorization").unwrap().1;
    let date = &extra.iter().find(|(n, _)| n == "x-amz-date").unwrap().1;
    let tamper = |from: &str, to: &str| {
        let auth = auth.replace(from, to);
        let req = base()
            .with_header("x-amz-date", date)
            .with_header("authorization", &auth);
        check(&req, NOW).unwrap_err()
    };
    let e = tamper("/20260301/", "/20260302/");
    assert_eq!(
        e,
        SigV4Error::ScopeDateMismatch {
            scope_date: "20260302".into(),
            amz_date: "20260301T235930Z".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20260302' != '20260301', from '20260301T235930Z'."
    );
    assert_eq!(
        tamper("/aws4_request", "/aws5_request"),
        SigV4Error::InvalidTerminator {
            got: "aws5_request".into()
        }
    );
    assert_eq!(
        tamper("/ecr/", "/iam/"),
        SigV4Error::WrongService {
            expected: "ecr".into(),
            got: "iam".into()
        }
    );
    assert_eq!(
        tamper("/us-west-2/", "/us-east-1/"),
        SigV4Error::WrongRegion {
            got: "us-east-1".into()
        }
    );
    for bad in ["Signature=00", "Signature=zz", "Signature="] {
        let e = tamper(&auth[auth.find("Signature=").unwrap()..], bad);
        assert!(
            matches!(e, SigV4Error::SignatureMismatch { .. }),
            "{bad}: {e:?}"
        );
    }
}

#[test]
fn time_window_straddles_midnight_and_skew_is_configurable() {
    let extra = signed_headers(&base(), NOW);
    let req = with(base(), &extra);
    // Signed at 23:59:30 on the 1st, checked at 00:04:30 on the 2nd: still valid.
    assert!(check(&req, NOW + Duration::minutes(5)).is_ok());
    let e = check(&req, NOW + Duration::minutes(5) + Duration::seconds(1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Signature expired: 20260301T235930Z is now earlier than 20260301T235931Z (20260302T000431Z - 5 min.)"
    );
    let wide = Verifier::new(VerifierConfig::new(["ecr"]).with_max_skew(Duration::minutes(15)));
    let parsed = wide.parse(&req).unwrap();
    assert!(wide
        .verify(
            &parsed,
            CREDS.secret_access_key,
            &req,
            NOW + Duration::minutes(15)
        )
        .is_ok());
}

#[test]
fn payload_hash_rules() {
    let body_hash = berth_sigv4::sha256_hex(BODY);
    // Declared hash equal to the body's (any hex case) verifies.
    let upper = body_hash.to_ascii_uppercase();
    let req = base().with_header("x-amz-content-sha256", &upper);
    let extra = signed_headers(&req, NOW);
    let signed = with(req.clone(), &extra);
    assert_eq!(
        check(&signed, NOW).unwrap().payload,
        VerifiedPayload::Verified
    );
    // A different body under the same declared hash is caught before the signature.
    let mut other = signed.clone();
    other.payload = PayloadHash::of_body(b"{}");
    assert!(matches!(
        check(&other, NOW),
        Err(SigV4Error::PayloadHashMismatch { .. })
    ));
    // Repeated x-amz-content-sha256 is malformed.
    let twice = signed.clone().with_header("x-amz-content-sha256", &upper);
    assert!(matches!(check(&twice, NOW), Err(SigV4Error::Incomplete(_))));
    // Declared mode hands the hash back in lower case.
    let mut declared = signed.clone();
    declared.payload = PayloadHash::Declared;
    assert_eq!(
        check(&declared, NOW).unwrap().payload,
        VerifiedPayload::MustMatch(body_hash)
    );
    // Declared mode with a declared value that is not a SHA-256.
    let req = base().with_header("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    let extra = signed_headers(&req, NOW);
    let mut streaming = with(req, &extra);
    streaming.payload = PayloadHash::Declared;
    assert_eq!(
        check(&streaming, NOW).unwrap_err(),
        SigV4Error::PayloadHashRequired
    );
}

#[test]
fn signed_header_missing_from_request() {
    let extra = signed_headers(&base(), NOW);
    let mut req = with(base(), &extra);
    req.headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case("x-amz-target"));
    let e = check(&req, NOW).unwrap_err();
    assert_eq!(
        e,
        SigV4Error::Incomplete(
            "The signed header 'x-amz-target' is not present in the request.".into()
        )
    );
    assert_eq!(e.aws_type(), "IncompleteSignatureException");
}

#[test]
fn http2_authority_stands_in_for_host() {
    let http_req = http::Request::builder()
        .method("POST")
        .uri("http://127.0.0.1:5000/")
        .header("content-type", "application/x-amz-json-1.1")
        .body(())
        .unwrap();
    let unsigned = Request::from_http(
        http_req.method(),
        http_req.uri(),
        http_req.headers(),
        PayloadHash::of_body(BODY),
    );
    let extra = signed_headers(&unsigned, NOW);
    let (mut parts, ()) = http_req.into_parts();
    for (n, v) in &extra {
        parts.headers.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let req = Request::from_http(
        &parts.method,
        &parts.uri,
        &parts.headers,
        PayloadHash::of_body(BODY),
    );
    assert!(req.header_values("host").next().is_none());
    let id = check(&req, NOW).unwrap();
    assert!(id.signed_headers.contains(&"host".to_string()));
}

#[test]
fn x_amz_date_wins_over_date() {
    let extra = signed_headers(&base(), NOW);
    let req = with(
        base().with_header("Date", "Mon, 02 Mar 2026 10:00:00 GMT"),
        &extra,
    );
    // Date is not signed and not used: x-amz-date is the request time.
    assert_eq!(check(&req, NOW).unwrap().signed_at, NOW);
}

#[test]
fn presigned_requests() {
    let get = Request::new(
        "GET",
        "/v2/app/blobs/sha256:abc",
        "x=1",
        PayloadHash::empty(),
    )
    .with_header("Host", "reg.example");
    let creds = Credentials {
        session_token: Some("tok/en+="),
        ..CREDS
    };
    let query = presign(&get, &creds, "us-west-2", "ecr", NOW, 600).unwrap();
    let mut req = get.clone();
    req.query = &query;
    let id = check(&req, NOW + Duration::minutes(10)).unwrap();
    assert_eq!(id.form, AuthForm::Presigned { expires_secs: 600 });
    assert_eq!(id.expires_at, Some(NOW + Duration::minutes(10)));
    assert_eq!(id.security_token.as_deref(), Some("tok/en+="));
    let e = check(&req, NOW + Duration::minutes(10) + Duration::seconds(1)).unwrap_err();
    assert!(
        matches!(
            e,
            SigV4Error::PresignedExpired {
                expires_secs: 600,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        (e.aws_type(), e.query_code(), e.query_status()),
        ("InvalidSignatureException", "RequestExpired", 400)
    );
    let e = check(&req, NOW - Duration::minutes(6)).unwrap_err();
    assert!(
        matches!(e, SigV4Error::SignatureNotYetCurrent { .. }),
        "{e:?}"
    );
    // Refused where the configuration says header-only.
    let strict = Verifier::new(VerifierConfig::new(["ecr"]).with_presigned(false));
    assert!(matches!(strict.parse(&req), Err(SigV4Error::Incomplete(_))));
    // The query parameters are signed: any change breaks the signature.
    let tampered = query.replace("x=1", "x=2");
    let mut bad = get.clone();
    bad.query = &tampered;
    assert!(matches!(
        check(&bad, NOW),
        Err(SigV4Error::SignatureMismatch { .. })
    ));
    // A presigned X-Amz-Content-Sha256 of UNSIGNED-PAYLOAD needs the config's consent.
    let unsigned_query = format!("{query}&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD");
    let mut unsigned = get.clone();
    unsigned.query = &unsigned_query;
    assert_eq!(
        check(&unsigned, NOW).unwrap_err(),
        SigV4Error::UnsignedPayloadNotAllowed
    );
}
