//! Requests signed by botocore (the signer of boto3 and the AWS CLI) verify, and every kind
//! of tampering fails with the right error.
//!
//! Runs `python3 tests/botocore_sign.py`, which needs botocore (`pip install botocore`). When
//! python3 or botocore is missing this test FAILS, unless `BERTH_ALLOW_MISSING_BOTOCORE=1`.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

use std::process::Command;
use std::sync::OnceLock;

use berth_sigv4::{
    AuthForm, ParsedAuth, PayloadHash, Request, SigV4Error, VerifiedIdentity, VerifiedPayload,
    Verifier, VerifierConfig,
};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "FwoGZXIvYXdzEBYaDH+/session=token==";

#[derive(Clone, Debug)]
struct Case {
    name: String,
    service: String,
    region: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    unsigned_payload_allowed: bool,
}

impl Case {
    fn from_json(v: &Value) -> Case {
        let s = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("field {k}"))
                .to_string()
        };
        Case {
            name: s("name"),
            service: s("service"),
            region: s("region"),
            method: s("method"),
            path: s("path"),
            query: s("query"),
            headers: v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_string(),
                        h[1].as_str().unwrap().to_string(),
                    )
                })
                .collect(),
            body: hex::decode(s("body_hex")).unwrap(),
            unsigned_payload_allowed: v["unsigned_payload_allowed"].as_bool().unwrap(),
        }
    }

    fn request(&self) -> Request<'_> {
        let mut req = Request::new(
            &self.method,
            &self.path,
            &self.query,
            PayloadHash::of_body(&self.body),
        );
        for (n, v) in &self.headers {
            req = req.with_header(n, v);
        }
        req
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set_header(&mut self, name: &str, value: String) {
        let slot = self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .expect("header present");
        slot.1 = value;
    }

    fn config(&self) -> VerifierConfig {
        VerifierConfig::new([self.service.clone()])
            .with_regions([self.region.clone()])
            .with_unsigned_payload(self.unsigned_payload_allowed)
    }
}

/// The cases, produced once per test binary.
fn signed_cases() -> Option<&'static [Case]> {
    static CASES: OnceLock<Option<Vec<Case>>> = OnceLock::new();
    CASES.get_or_init(run_botocore).as_deref()
}

fn run_botocore() -> Option<Vec<Case>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/botocore_sign.py");
    let allow_missing = std::env::var("BERTH_ALLOW_MISSING_BOTOCORE").as_deref() == Ok("1");
    let missing = |why: String| {
        if allow_missing {
            eprintln!("SKIPPED botocore SigV4 tests ({why}); BERTH_ALLOW_MISSING_BOTOCORE=1");
            None
        } else {
            panic!(
                "{why}: the botocore SigV4 tests need python3 with botocore (pip install botocore); \
                 set BERTH_ALLOW_MISSING_BOTOCORE=1 to skip them"
            )
        }
    };
    let output = match Command::new("python3").arg(script).arg("5000").output() {
        Ok(o) => o,
        Err(e) => return missing(format!("cannot run python3: {e}")),
    };
    if output.status.code() == Some(3) {
        return missing(String::from_utf8_lossy(&output.stderr).trim().to_string());
    }
    assert!(
        output.status.success(),
        "botocore_sign.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc: Value = serde_json::from_slice(&output.stdout).expect("botocore_sign.py prints JSON");
    eprintln!("botocore {}", doc["botocore_version"]);
    Some(
        doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(Case::from_json)
            .collect(),
    )
}

/// The request time botocore signed with, from the request itself.
fn signed_at(case: &Case) -> OffsetDateTime {
    berth_sigv4::parse(&case.request())
        .unwrap_or_else(|e| panic!("{}: {e}", case.name))
        .signed_at
}

fn verify_at(
    case: &Case,
    config: VerifierConfig,
    secret: &str,
    now: OffsetDateTime,
) -> Result<VerifiedIdentity, SigV4Error> {
    let req = case.request();
    let verifier = Verifier::new(config);
    let parsed: ParsedAuth = verifier.parse(&req)?;
    verifier.verify(&parsed, secret, &req, now)
}

fn verify(case: &Case, now: OffsetDateTime) -> Result<VerifiedIdentity, SigV4Error> {
    verify_at(case, case.config(), SECRET, now)
}

fn expect_err(
    name: &str,
    what: &str,
    got: Result<VerifiedIdentity, SigV4Error>,
    aws_type: &str,
) -> SigV4Error {
    match got {
        Ok(_) => panic!("{name}: {what}: verified but should not have"),
        Err(e) => {
            assert_eq!(e.aws_type(), aws_type, "{name}: {what}: {e:?}");
            e
        }
    }
}

#[test]
fn botocore_signed_requests_verify_and_tampering_fails() {
    let Some(cases) = signed_cases() else { return };
    assert!(
        cases.len() >= 15,
        "expected the full set of cases, got {}",
        cases.len()
    );
    let mut presigned_seen = 0;
    for case in cases {
        let name = case.name.as_str();
        let t = signed_at(case);
        let now = t + Duration::seconds(30);

        // Verifies as signed.
        let id = verify(case, now).unwrap_or_else(|e| panic!("{name}: {}", e.detailed_message()));
        assert_eq!(id.access_key_id, AKID, "{name}");
        assert_eq!(
            (id.scope.service.as_str(), id.scope.region.as_str()),
            (case.service.as_str(), case.region.as_str()),
            "{name}"
        );
        let presigned = matches!(id.form, AuthForm::Presigned { .. });
        presigned_seen += usize::from(presigned);
        let token_sent = case.header("x-amz-security-token").is_some()
            || case.query.contains("X-Amz-Security-Token=");
        assert_eq!(
            id.security_token.as_deref(),
            token_sent.then_some(TOKEN),
            "{name}"
        );
        let expected_payload = if case.unsigned_payload_allowed {
            VerifiedPayload::Unsigned
        } else {
            VerifiedPayload::Verified
        };
        assert_eq!(id.payload, expected_payload, "{name}");

        // The same request through the `http` crate types (as axum hands it over).
        {
            let mut builder = http::Request::builder().method(case.method.as_str()).uri(
                if case.query.is_empty() {
                    case.path.clone()
                } else {
                    format!("{}?{}", case.path, case.query)
                },
            );
            for (n, v) in &case.headers {
                builder = builder.header(n.as_str(), v.as_str());
            }
            let http_req = builder
                .body(())
                .unwrap_or_else(|e| panic!("{name}: http::Request: {e}"));
            {
                let req = Request::from_http(
                    http_req.method(),
                    http_req.uri(),
                    http_req.headers(),
                    PayloadHash::of_body(&case.body),
                );
                let verifier = Verifier::new(case.config());
                let parsed = verifier.parse(&req).unwrap();
                verifier
                    .verify(&parsed, SECRET, &req, now)
                    .unwrap_or_else(|e| panic!("{name} via http: {e:?}"));
            }
        }

        // Wrong secret.
        let e = expect_err(
            name,
            "wrong secret",
            verify_at(case, case.config(), "wrong", now),
            "InvalidSignatureException",
        );
        assert!(
            matches!(e, SigV4Error::SignatureMismatch { .. }),
            "{name}: {e:?}"
        );
        assert!(e
            .detailed_message()
            .contains("The Canonical String for this request should have been"));

        // Body changed.
        let mut c = case.clone();
        c.body.push(b'!');
        if case.unsigned_payload_allowed {
            assert_eq!(
                verify(&c, now).unwrap().payload,
                VerifiedPayload::Unsigned,
                "{name}: unsigned body is not covered"
            );
        } else {
            let e = expect_err(name, "body", verify(&c, now), "InvalidSignatureException");
            let declared = case.header("x-amz-content-sha256").is_some();
            assert!(
                matches!(
                    (&e, declared),
                    (SigV4Error::SignatureMismatch { .. }, false)
                        | (SigV4Error::PayloadHashMismatch { .. }, true)
                ),
                "{name}: body: {e:?}"
            );
        }

        // Path changed.
        let mut c = case.clone();
        c.path.push('x');
        let e = expect_err(name, "path", verify(&c, now), "InvalidSignatureException");
        assert!(
            matches!(e, SigV4Error::SignatureMismatch { .. }),
            "{name}: {e:?}"
        );

        // Query changed (a parameter added, or one value altered).
        let mut c = case.clone();
        c.query = if c.query.is_empty() {
            "extra=1".into()
        } else {
            format!("{}&extra=1", c.query)
        };
        expect_err(name, "query", verify(&c, now), "InvalidSignatureException");

        // Host changed (always signed).
        let mut c = case.clone();
        c.set_header("host", "127.0.0.1:5001".into());
        expect_err(name, "host", verify(&c, now), "InvalidSignatureException");

        // Every other signed header changed.
        let signed = berth_sigv4::parse(&case.request()).unwrap().signed_headers;
        for h in signed.iter().filter(|h| {
            !matches!(
                h.as_str(),
                "host" | "x-amz-date" | "date" | "x-amz-content-sha256"
            )
        }) {
            let mut c = case.clone();
            let old = c.header(h).unwrap().to_string();
            c.set_header(h, format!("{old}x"));
            let e = expect_err(name, h, verify(&c, now), "InvalidSignatureException");
            assert!(
                matches!(e, SigV4Error::SignatureMismatch { .. }),
                "{name}: {h}: {e:?}"
            );
        }

        // Request time changed by one second (same day): the string to sign differs.
        let mut c = case.clone();
        let shifted = berth_sigv4::format_amz_date(t + Duration::seconds(1));
        if presigned {
            c.query = c.query.replace(
                &format!("X-Amz-Date={}", berth_sigv4::format_amz_date(t)),
                &format!("X-Amz-Date={shifted}"),
            );
        } else if case.header("x-amz-date").is_some() {
            c.set_header("x-amz-date", shifted);
        } else {
            let old = case.header("date").unwrap().to_string();
            let new_date = (t + Duration::seconds(1))
                .format(&time::format_description::well_known::Rfc2822)
                .unwrap();
            assert_ne!(old, new_date);
            c.set_header("date", new_date);
        }
        let e = expect_err(name, "date", verify(&c, now), "InvalidSignatureException");
        assert!(
            matches!(e, SigV4Error::SignatureMismatch { .. }),
            "{name}: date: {e:?}"
        );

        // Time window.
        let skew = VerifierConfig::DEFAULT_MAX_SKEW;
        let e = expect_err(
            name,
            "future",
            verify(case, t - skew - Duration::seconds(1)),
            "InvalidSignatureException",
        );
        assert!(
            matches!(e, SigV4Error::SignatureNotYetCurrent { .. }),
            "{name}: {e:?}"
        );
        assert!(
            verify(case, t - skew).is_ok(),
            "{name}: exactly at the skew limit"
        );
        if let AuthForm::Presigned { expires_secs } = id.form {
            let end = t + Duration::seconds(i64::from(expires_secs));
            assert!(verify(case, end).is_ok(), "{name}");
            let e = expect_err(
                name,
                "expired presigned",
                verify(case, end + Duration::seconds(1)),
                "InvalidSignatureException",
            );
            assert_eq!(e.query_code(), "RequestExpired");
        } else {
            assert!(
                verify(case, t + skew).is_ok(),
                "{name}: exactly at the skew limit"
            );
            let e = expect_err(
                name,
                "past",
                verify(case, t + skew + Duration::seconds(1)),
                "InvalidSignatureException",
            );
            assert!(
                e.to_string().starts_with("Signature expired: "),
                "{name}: {e}"
            );
        }

        // Scope against the endpoint's configuration.
        let e = expect_err(
            name,
            "service",
            verify_at(case, VerifierConfig::new(["other"]), SECRET, now),
            "InvalidSignatureException",
        );
        assert_eq!(
            e.to_string(),
            "Credential should be scoped to correct service: 'other'. "
        );
        let config = VerifierConfig::new([case.service.clone()]).with_regions(["ap-south-7"]);
        let e = expect_err(
            name,
            "region",
            verify_at(case, config, SECRET, now),
            "InvalidSignatureException",
        );
        assert_eq!(
            e,
            SigV4Error::WrongRegion {
                got: case.region.clone()
            }
        );
        let any_region =
            VerifierConfig::new(["iam", "sts", &case.service]).with_unsigned_payload(true);
        assert!(
            verify_at(case, any_region, SECRET, now).is_ok(),
            "{name}: several services, any region"
        );

        // Authentication removed.
        let mut c = case.clone();
        if presigned {
            c.query = c
                .query
                .split('&')
                .filter(|p| !p.starts_with("X-Amz-"))
                .collect::<Vec<_>>()
                .join("&");
        } else {
            c.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
        }
        expect_err(
            name,
            "no auth",
            verify(&c, now),
            "MissingAuthenticationTokenException",
        );
    }
    assert!(presigned_seen >= 3, "presigned cases: {presigned_seen}");
}

#[test]
fn unsigned_payload_is_refused_unless_allowed() {
    let Some(cases) = signed_cases() else { return };
    let case = cases
        .iter()
        .find(|c| c.unsigned_payload_allowed)
        .expect("an UNSIGNED-PAYLOAD case");
    let now = signed_at(case) + Duration::seconds(1);
    let refused = verify_at(
        case,
        case.config().with_unsigned_payload(false),
        SECRET,
        now,
    );
    assert_eq!(refused.unwrap_err(), SigV4Error::UnsignedPayloadNotAllowed);
}

#[test]
fn declared_payload_hash_defers_the_body_check() {
    let Some(cases) = signed_cases() else { return };
    let case = cases
        .iter()
        .find(|c| c.name == "declared-content-sha256")
        .expect("declared case");
    let now = signed_at(case) + Duration::seconds(1);
    let mut req = case.request();
    req.payload = PayloadHash::Declared;
    let verifier = Verifier::new(case.config());
    let parsed = verifier.parse(&req).unwrap();
    let id = verifier.verify(&parsed, SECRET, &req, now).unwrap();
    let want = berth_sigv4::sha256_hex(&case.body);
    assert_eq!(id.payload, VerifiedPayload::MustMatch(want));

    // Declared mode without a declared hash cannot verify.
    let other = cases
        .iter()
        .find(|c| c.name == "ecr-get-authorization-token")
        .unwrap();
    let mut req = other.request();
    req.payload = PayloadHash::Declared;
    let parsed = verifier.parse(&req).unwrap();
    let e = Verifier::new(other.config())
        .verify(&parsed, SECRET, &req, signed_at(other))
        .unwrap_err();
    assert_eq!(e, SigV4Error::PayloadHashRequired);
    assert_eq!(e.aws_type(), "IncompleteSignatureException");
}
