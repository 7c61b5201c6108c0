//! Step 1: pull the authentication parameters out of a request, without any secret, so the
//! server can look the access key up. Only the shape is checked here; scope, time and the
//! signature itself are checked by [`crate::Verifier`].

use std::fmt;

use time::OffsetDateTime;

use crate::date::{format_amz_date, parse_amz_date, parse_http_date};
use crate::encode::{percent_decode, percent_decode_str};
use crate::error::SigV4Error;
use crate::request::Request;
use crate::signing::ALGORITHM;

/// Longest validity a presigned request may ask for: seven days, as AWS allows.
pub const MAX_PRESIGNED_EXPIRES_SECS: u32 = 604_800;

/// `<date>/<region>/<service>/<terminator>` from the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialScope {
    /// `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
    /// `aws4_request` in every valid request.
    pub terminator: String,
}

impl fmt::Display for CredentialScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.date, self.region, self.service, self.terminator
        )
    }
}

/// Which of the two SigV4 forms the request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthForm {
    /// `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
    Header,
    /// `?X-Amz-Algorithm=...&X-Amz-Credential=...&...&X-Amz-Signature=...`.
    Presigned {
        /// `X-Amz-Expires`, 1..=604800 seconds.
        expires_secs: u32,
    },
}

/// What [`parse`] found: everything needed to look the key up and then to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuth {
    pub access_key_id: String,
    pub scope: CredentialScope,
    /// Lower-case, sorted, without duplicates; always contains `host`.
    pub signed_headers: Vec<String>,
    /// The signature as provided (hex).
    pub signature: String,
    /// The request time (`X-Amz-Date`, else `Date`).
    pub signed_at: OffsetDateTime,
    /// The request time as `YYYYMMDDTHHMMSSZ`: the second line of the string to sign.
    pub amz_date: String,
    /// `X-Amz-Security-Token` (header or query parameter), if any.
    pub security_token: Option<String>,
    pub form: AuthForm,
}

fn incomplete(msg: impl Into<String>) -> SigV4Error {
    SigV4Error::Incomplete(msg.into())
}

/// Splits a raw query string into `(decoded key, raw value)` pairs.
pub(crate) fn query_pairs(query: &str) -> impl Iterator<Item = (Vec<u8>, &str)> {
    query.split('&').filter(|s| !s.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), v)
    })
}

/// Extracts the SigV4 parameters from the header form or the presigned query form.
///
/// Errors: [`SigV4Error::MissingAuthentication`] when neither form is present;
/// [`SigV4Error::UnsupportedAlgorithm`]; [`SigV4Error::Incomplete`] for anything malformed
/// (missing parameter, repeated header, bad date, `host` not signed, both forms at once, bad
/// `X-Amz-Expires`).
pub fn parse(req: &Request<'_>) -> Result<ParsedAuth, SigV4Error> {
    let mut auth_headers = req.header_values("authorization");
    let auth_header = auth_headers.next();
    if auth_headers.next().is_some() {
        return Err(incomplete("Only one Authorization header is allowed."));
    }
    let presigned = query_pairs(req.query).any(|(k, _)| k == b"X-Amz-Algorithm");
    match (auth_header, presigned) {
        (Some(_), true) => Err(incomplete(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified.",
        )),
        (Some(value), false) => parse_header_form(req, value),
        (None, true) => parse_query_form(req),
        (None, false) => Err(SigV4Error::MissingAuthentication),
    }
}

fn parse_credential(credential: &str) -> Result<(String, CredentialScope), SigV4Error> {
    let mut parts = credential.rsplitn(5, '/');
    let (terminator, service, region, date, key) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    );
    match (key, date, region, service, terminator) {
        (Some(key), Some(date), Some(region), Some(service), Some(terminator))
            if !key.is_empty() && !date.is_empty() && !region.is_empty() && !service.is_empty() =>
        {
            Ok((
                key.to_string(),
                CredentialScope {
                    date: date.to_string(),
                    region: region.to_string(),
                    service: service.to_string(),
                    terminator: terminator.to_string(),
                },
            ))
        }
        _ => Err(incomplete(format!(
            "Credential should be of the form <access key id>/<YYYYMMDD>/<region>/<service>/aws4_request, not '{credential}'."
        ))),
    }
}

fn parse_signed_headers(list: &str) -> Result<Vec<String>, SigV4Error> {
    let mut names = Vec::new();
    for name in list.split(';') {
        let name = name.trim();
        if name.is_empty() {
            return Err(incomplete(format!(
                "SignedHeaders has an empty header name: '{list}'."
            )));
        }
        names.push(name.to_ascii_lowercase());
    }
    names.sort();
    names.dedup();
    if !names.iter().any(|n| n == "host") {
        return Err(incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    Ok(names)
}

fn check_algorithm(algorithm: &str) -> Result<(), SigV4Error> {
    if algorithm == ALGORITHM {
        Ok(())
    } else {
        Err(SigV4Error::UnsupportedAlgorithm {
            algorithm: algorithm.to_string(),
        })
    }
}

fn parse_header_form(req: &Request<'_>, raw: &[u8]) -> Result<ParsedAuth, SigV4Error> {
    let value = std::str::from_utf8(raw)
        .map_err(|_| incomplete("The Authorization header is not valid UTF-8."))?
        .trim();
    let (algorithm, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    check_algorithm(algorithm)?;

    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(incomplete(format!(
                "Invalid key=value pair (missing equal-sign) in Authorization header: '{part}'."
            )));
        };
        let slot = match k.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.replace(v.trim()).is_some() {
            return Err(incomplete(format!(
                "Authorization header has '{}' more than once.",
                k.trim()
            )));
        }
    }

    let date = match req.single_header("x-amz-date") {
        Ok(Some(v)) => Some(parse_amz_date(v).ok_or_else(|| {
            incomplete(format!(
                "Date must be in ISO-8601 'basic format'. Got '{v}'."
            ))
        })?),
        Ok(None) => match req.single_header("date") {
            Ok(Some(v)) => Some(parse_http_date(v).ok_or_else(|| {
                incomplete(format!("The Date header is not a valid HTTP date: '{v}'."))
            })?),
            Ok(None) => None,
            Err(()) => return Err(incomplete("The Date header must appear once.")),
        },
        Err(()) => return Err(incomplete("The X-Amz-Date header must appear once.")),
    };

    let mut missing = String::new();
    if credential.is_none() {
        missing.push_str("Authorization header requires 'Credential' parameter. ");
    }
    if signature.is_none() {
        missing.push_str("Authorization header requires 'Signature' parameter. ");
    }
    if signed_headers.is_none() {
        missing.push_str("Authorization header requires 'SignedHeaders' parameter. ");
    }
    if date.is_none() {
        missing.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    let (Some(credential), Some(signed_headers), Some(signature), Some(signed_at)) =
        (credential, signed_headers, signature, date)
    else {
        return Err(incomplete(missing.trim_end()));
    };

    let (access_key_id, scope) = parse_credential(credential)?;
    let security_token = req
        .single_header("x-amz-security-token")
        .map_err(|()| incomplete("The X-Amz-Security-Token header must appear once."))?
        .map(str::to_string);
    Ok(ParsedAuth {
        access_key_id,
        scope,
        signed_headers: parse_signed_headers(signed_headers)?,
        signature: signature.to_string(),
        signed_at,
        amz_date: format_amz_date(signed_at),
        security_token,
        form: AuthForm::Header,
    })
}

fn parse_query_form(req: &Request<'_>) -> Result<ParsedAuth, SigV4Error> {
    const NAMES: [&str; 7] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    ];
    let mut values: [Option<String>; 7] = Default::default();
    for (key, raw) in query_pairs(req.query) {
        if let Some(i) = NAMES.iter().position(|n| n.as_bytes() == key.as_slice()) {
            if values[i].replace(percent_decode_str(raw)).is_some() {
                return Err(incomplete(format!(
                    "The query parameter '{}' appears more than once.",
                    NAMES[i]
                )));
            }
        }
    }
    let [algorithm, credential, date, expires, signed_headers, signature, security_token] = values;
    if let Some(a) = &algorithm {
        check_algorithm(a)?;
    }
    let missing: Vec<&str> = [&credential, &date, &expires, &signed_headers, &signature]
        .iter()
        .zip(&NAMES[1..6])
        .filter(|(v, _)| v.is_none())
        .map(|(_, n)| *n)
        .collect();
    let (Some(credential), Some(date), Some(expires), Some(signed_headers), Some(signature)) =
        (credential, date, expires, signed_headers, signature)
    else {
        return Err(incomplete(format!(
            "AWS query-string parameters must include {}. Re-examine the query-string parameters.",
            missing
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let signed_at = parse_amz_date(&date).ok_or_else(|| {
        incomplete(format!(
            "X-Amz-Date must be in ISO-8601 'basic format'. Got '{date}'."
        ))
    })?;
    let expires_secs: u32 = match expires.parse::<u64>() {
        Ok(n) if expires.bytes().all(|b| b.is_ascii_digit()) && n >= 1 => {
            if n > u64::from(MAX_PRESIGNED_EXPIRES_SECS) {
                return Err(incomplete(format!(
                    "X-Amz-Expires must be less than a week (in seconds) that is; {MAX_PRESIGNED_EXPIRES_SECS}"
                )));
            }
            n as u32
        }
        _ => {
            return Err(incomplete(format!(
                "X-Amz-Expires must be a positive integer number of seconds, not '{expires}'."
            )))
        }
    };
    let (access_key_id, scope) = parse_credential(&credential)?;
    Ok(ParsedAuth {
        access_key_id,
        scope,
        signed_headers: parse_signed_headers(&signed_headers)?,
        signature,
        signed_at,
        amz_date: format_amz_date(signed_at),
        security_token,
        form: AuthForm::Presigned { expires_secs },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::PayloadHash;
    use time::macros::datetime;

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

    fn get(target: &str) -> Request<'_> {
        Request::from_target("GET", target, PayloadHash::empty())
    }

    fn incomplete_text(r: Result<ParsedAuth, SigV4Error>) -> String {
        match r {
            Err(SigV4Error::Incomplete(m)) => m,
            other => panic!("expected Incomplete, got {other:?}"),
        }
    }

    #[test]
    fn header_form() {
        let req = get("/")
            .with_header("Host", "example.amazonaws.com")
            .with_header("X-Amz-Date", "20150830T123600Z")
            .with_header("Authorization", AUTH);
        let p = parse(&req).unwrap();
        assert_eq!(p.access_key_id, "AKIDEXAMPLE");
        assert_eq!(
            p.scope.to_string(),
            "20150830/us-east-1/service/aws4_request"
        );
        assert_eq!(p.signed_headers, ["host", "x-amz-date"]);
        assert_eq!(p.signed_at, datetime!(2015-08-30 12:36:00 UTC));
        assert_eq!(p.form, AuthForm::Header);
        assert_eq!(p.security_token, None);
    }

    #[test]
    fn header_form_tolerates_spacing_and_uses_date_header() {
        let auth = "AWS4-HMAC-SHA256   Credential=AK/20150830/r/s/aws4_request,SignedHeaders=Host;Date,Signature=00";
        let req = get("/")
            .with_header("authorization", auth)
            .with_header("Date", "Sun, 30 Aug 2015 12:36:00 GMT")
            .with_header("X-Amz-Security-Token", "tok");
        let p = parse(&req).unwrap();
        assert_eq!(p.signed_headers, ["date", "host"]);
        assert_eq!(p.amz_date, "20150830T123600Z");
        assert_eq!(p.security_token.as_deref(), Some("tok"));
    }

    #[test]
    fn header_form_errors() {
        assert_eq!(parse(&get("/")), Err(SigV4Error::MissingAuthentication));
        let r = parse(&get("/").with_header("Authorization", "Basic QVdTOnh4"));
        assert_eq!(
            r,
            Err(SigV4Error::UnsupportedAlgorithm {
                algorithm: "Basic".into()
            })
        );
        let m = incomplete_text(parse(&get("/").with_header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AK/20150830/r/s/aws4_request",
        )));
        assert!(
            m.contains("requires 'Signature'")
                && m.contains("requires 'SignedHeaders'")
                && m.contains("'X-Amz-Date' or a 'Date'"),
            "{m}"
        );
        let no_host = "AWS4-HMAC-SHA256 Credential=AK/20150830/r/s/aws4_request, SignedHeaders=x-amz-date, Signature=00";
        let m = incomplete_text(parse(
            &get("/")
                .with_header("Authorization", no_host)
                .with_header("X-Amz-Date", "20150830T123600Z"),
        ));
        assert!(m.contains("'Host'"), "{m}");
        let m = incomplete_text(parse(
            &get("/")
                .with_header("Authorization", AUTH)
                .with_header("X-Amz-Date", "2015-08-30"),
        ));
        assert!(m.contains("ISO-8601"), "{m}");
        let bad_cred = AUTH.replace("AKIDEXAMPLE/20150830/", "");
        let m = incomplete_text(parse(
            &get("/")
                .with_header("Authorization", &bad_cred)
                .with_header("X-Amz-Date", "20150830T123600Z"),
        ));
        assert!(m.contains("Credential should be"), "{m}");
        let two = get("/?X-Amz-Algorithm=AWS4-HMAC-SHA256").with_header("Authorization", AUTH);
        assert!(incomplete_text(parse(&two)).contains("Only one auth mechanism"));
        let twice = get("/")
            .with_header("Authorization", AUTH)
            .with_header("Authorization", AUTH);
        assert!(incomplete_text(parse(&twice)).contains("Only one Authorization"));
    }

    #[test]
    fn query_form() {
        let q = "/?Action=GetCallerIdentity&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20150830%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=a%2Bb%3D&X-Amz-Signature=abcd";
        let p = parse(&get(q)).unwrap();
        assert_eq!(p.access_key_id, "AKID");
        assert_eq!(p.scope.service, "sts");
        assert_eq!(p.form, AuthForm::Presigned { expires_secs: 900 });
        assert_eq!(p.security_token.as_deref(), Some("a+b="));
        assert_eq!(p.signature, "abcd");
    }

    #[test]
    fn query_form_errors() {
        let m = incomplete_text(parse(&get(
            "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20150830T123600Z",
        )));
        assert!(
            m.contains(
                "'X-Amz-Credential', 'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature'"
            ),
            "{m}"
        );
        let base = "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20150830%2Fr%2Fs%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Signature=00&X-Amz-Expires=";
        for (expires, want) in [
            ("604801", "less than a week"),
            ("0", "positive integer"),
            ("-1", "positive integer"),
            ("1e3", "positive integer"),
        ] {
            let target = format!("{base}{expires}");
            let m = incomplete_text(parse(&get(&target)));
            assert!(m.contains(want), "{expires}: {m}");
        }
        assert!(parse(&get(&format!("{base}604800"))).is_ok());
        let r = parse(&get("/?X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256"));
        assert_eq!(
            r,
            Err(SigV4Error::UnsupportedAlgorithm {
                algorithm: "AWS4-ECDSA-P256-SHA256".into()
            })
        );
        let dup = format!("{base}60&X-Amz-Signature=11");
        assert!(incomplete_text(parse(&get(&dup))).contains("more than once"));
    }
}
