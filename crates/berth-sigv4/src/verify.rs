//! Step 2: check the scope and the time, settle the payload hash, recompute the signature and
//! compare it in constant time.

use time::{Duration, OffsetDateTime};

use crate::canonical::{canonical_request, CanonicalOptions};
use crate::encode::percent_decode_str;
use crate::error::SigV4Error;
use crate::parse::{parse, query_pairs, AuthForm, CredentialScope, ParsedAuth};
use crate::request::{PayloadHash, Request, UNSIGNED_PAYLOAD};
use crate::signing::{constant_time_eq, string_to_sign, SigningKey, TERMINATOR};

/// Which regions a credential scope may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionPolicy {
    /// Any region (a single-region server that does not care what clients configure).
    Any,
    /// Exactly one of these.
    OneOf(Vec<String>),
}

/// What a verifier accepts. Build with [`VerifierConfig::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// Service names the credential scope may name (`ecr`, `iam`, `sts`, ...); the first is
    /// the one named in the error when another is used.
    pub services: Vec<String>,
    pub regions: RegionPolicy,
    /// How far the request time may be from the server's clock, either way. AWS: 5 minutes.
    pub max_skew: Duration,
    /// Accept `x-amz-content-sha256: UNSIGNED-PAYLOAD`.
    pub allow_unsigned_payload: bool,
    /// Accept the presigned query form.
    pub allow_presigned: bool,
    /// Normalize the path before building the canonical URI (true for every non-S3 service).
    pub normalize_path: bool,
}

impl VerifierConfig {
    /// The AWS clock-skew allowance.
    pub const DEFAULT_MAX_SKEW: Duration = Duration::minutes(5);

    /// Accepts the given services in any region, 5 minutes of skew, signed payloads only,
    /// presigned requests allowed, normalized paths.
    pub fn new<I, S>(services: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        VerifierConfig {
            services: services.into_iter().map(Into::into).collect(),
            regions: RegionPolicy::Any,
            max_skew: Self::DEFAULT_MAX_SKEW,
            allow_unsigned_payload: false,
            allow_presigned: true,
            normalize_path: true,
        }
    }

    /// Only these regions.
    pub fn with_regions<I, S>(mut self, regions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.regions = RegionPolicy::OneOf(regions.into_iter().map(Into::into).collect());
        self
    }

    pub fn with_max_skew(mut self, max_skew: Duration) -> Self {
        self.max_skew = max_skew;
        self
    }

    pub fn with_unsigned_payload(mut self, allow: bool) -> Self {
        self.allow_unsigned_payload = allow;
        self
    }

    pub fn with_presigned(mut self, allow: bool) -> Self {
        self.allow_presigned = allow;
        self
    }

    pub fn with_normalize_path(mut self, normalize: bool) -> Self {
        self.normalize_path = normalize;
        self
    }
}

/// What the caller still has to do about the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiedPayload {
    /// The body the caller hashed is the body that was signed.
    Verified,
    /// The client sent `UNSIGNED-PAYLOAD` (allowed by the config): the body is not covered.
    Unsigned,
    /// [`PayloadHash::Declared`] was used: the caller must check that the SHA-256 of the body,
    /// once read, is this lower-case hex digest, and reject the request otherwise.
    MustMatch(String),
}

/// A request whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub access_key_id: String,
    pub scope: CredentialScope,
    pub signed_at: OffsetDateTime,
    pub security_token: Option<String>,
    pub form: AuthForm,
    /// For a presigned request, when it stops being valid.
    pub expires_at: Option<OffsetDateTime>,
    pub signed_headers: Vec<String>,
    pub payload: VerifiedPayload,
}

/// Verifies SigV4 requests under one [`VerifierConfig`].
#[derive(Debug, Clone)]
pub struct Verifier {
    config: VerifierConfig,
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Verifier {
    pub fn new(config: VerifierConfig) -> Self {
        Verifier { config }
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// [`crate::parse`], refusing the presigned form when the config does.
    pub fn parse(&self, req: &Request<'_>) -> Result<ParsedAuth, SigV4Error> {
        let parsed = parse(req)?;
        if matches!(parsed.form, AuthForm::Presigned { .. }) && !self.config.allow_presigned {
            return Err(SigV4Error::Incomplete(
                "Presigned (query-string) authentication is not accepted here; use the Authorization header."
                    .to_string(),
            ));
        }
        Ok(parsed)
    }

    /// Everything that needs no secret: terminator, service, region, scope date against the
    /// request date, and the time window. [`Verifier::verify`] runs it first; a server may also
    /// run it before looking the key up.
    pub fn check_scope_and_time(
        &self,
        parsed: &ParsedAuth,
        now: OffsetDateTime,
    ) -> Result<(), SigV4Error> {
        let scope = &parsed.scope;
        if scope.terminator != TERMINATOR {
            return Err(SigV4Error::InvalidTerminator {
                got: scope.terminator.clone(),
            });
        }
        if !self.config.services.contains(&scope.service) {
            return Err(SigV4Error::WrongService {
                expected: self.config.services.first().cloned().unwrap_or_default(),
                got: scope.service.clone(),
            });
        }
        if let RegionPolicy::OneOf(regions) = &self.config.regions {
            if !regions.contains(&scope.region) {
                return Err(SigV4Error::WrongRegion {
                    got: scope.region.clone(),
                });
            }
        }
        if parsed.amz_date.get(..8) != Some(scope.date.as_str()) {
            return Err(SigV4Error::ScopeDateMismatch {
                scope_date: scope.date.clone(),
                amz_date: parsed.amz_date.clone(),
            });
        }
        let (signed_at, skew) = (parsed.signed_at, self.config.max_skew);
        if signed_at > now + skew {
            return Err(SigV4Error::SignatureNotYetCurrent {
                signed_at,
                now,
                max_skew: skew,
            });
        }
        match parsed.form {
            AuthForm::Header if signed_at < now - skew => Err(SigV4Error::SignatureExpired {
                signed_at,
                now,
                max_skew: skew,
            }),
            AuthForm::Presigned { expires_secs }
                if now > signed_at + Duration::seconds(i64::from(expires_secs)) =>
            {
                Err(SigV4Error::PresignedExpired {
                    signed_at,
                    expires_secs,
                    now,
                })
            }
            _ => Ok(()),
        }
    }

    /// Derives the signing key from the secret and verifies. See [`Verifier::verify_with_key`].
    pub fn verify(
        &self,
        parsed: &ParsedAuth,
        secret_access_key: &str,
        req: &Request<'_>,
        now: OffsetDateTime,
    ) -> Result<VerifiedIdentity, SigV4Error> {
        let s = &parsed.scope;
        let key = SigningKey::derive(secret_access_key, &s.date, &s.region, &s.service);
        self.verify_with_key(parsed, &key, req, now)
    }

    /// Verifies with a signing key the caller derived (and perhaps cached) for
    /// `(secret, parsed.scope.date, parsed.scope.region, parsed.scope.service)`.
    pub fn verify_with_key(
        &self,
        parsed: &ParsedAuth,
        key: &SigningKey,
        req: &Request<'_>,
        now: OffsetDateTime,
    ) -> Result<VerifiedIdentity, SigV4Error> {
        self.check_scope_and_time(parsed, now)?;
        let presigned = matches!(parsed.form, AuthForm::Presigned { .. });
        let (payload_hash, payload) = self.resolve_payload(req, presigned)?;
        let options = CanonicalOptions {
            normalize_path: self.config.normalize_path,
            exclude_signature: presigned,
        };
        let creq = canonical_request(req, &parsed.signed_headers, &payload_hash, options)?;
        let sts = string_to_sign(&parsed.amz_date, &parsed.scope.to_string(), &creq);
        let expected = key.sign(&sts);
        let provided = hex::decode(&parsed.signature).unwrap_or_default();
        if !constant_time_eq(&expected, &provided) {
            return Err(SigV4Error::SignatureMismatch {
                canonical_request: String::from_utf8_lossy(&creq).into_owned(),
                string_to_sign: sts,
            });
        }
        Ok(VerifiedIdentity {
            access_key_id: parsed.access_key_id.clone(),
            scope: parsed.scope.clone(),
            signed_at: parsed.signed_at,
            security_token: parsed.security_token.clone(),
            form: parsed.form,
            expires_at: match parsed.form {
                AuthForm::Presigned { expires_secs } => {
                    Some(parsed.signed_at + Duration::seconds(i64::from(expires_secs)))
                }
                AuthForm::Header => None,
            },
            signed_headers: parsed.signed_headers.clone(),
            payload,
        })
    }

    /// The payload hash line of the canonical request, and what it means for the body.
    fn resolve_payload(
        &self,
        req: &Request<'_>,
        presigned: bool,
    ) -> Result<(String, VerifiedPayload), SigV4Error> {
        let from_query = if presigned {
            query_pairs(req.query)
                .find(|(k, _)| k == b"X-Amz-Content-Sha256")
                .map(|(_, v)| percent_decode_str(v))
        } else {
            None
        };
        let declared = match from_query {
            Some(v) => Some(v),
            None => req
                .single_header("x-amz-content-sha256")
                .map_err(|()| {
                    SigV4Error::Incomplete(
                        "The x-amz-content-sha256 header must appear once.".into(),
                    )
                })?
                .map(str::to_string),
        };
        if declared.as_deref() == Some(UNSIGNED_PAYLOAD) {
            return if self.config.allow_unsigned_payload {
                Ok((UNSIGNED_PAYLOAD.to_string(), VerifiedPayload::Unsigned))
            } else {
                Err(SigV4Error::UnsignedPayloadNotAllowed)
            };
        }
        match (req.payload, declared) {
            (PayloadHash::Body(hash), None) => Ok((hex::encode(hash), VerifiedPayload::Verified)),
            (PayloadHash::Body(hash), Some(declared)) => {
                let computed = hex::encode(hash);
                if declared.eq_ignore_ascii_case(&computed) {
                    Ok((declared, VerifiedPayload::Verified))
                } else {
                    Err(SigV4Error::PayloadHashMismatch { declared, computed })
                }
            }
            (PayloadHash::Declared, Some(declared)) if is_sha256_hex(&declared) => {
                let lower = declared.to_ascii_lowercase();
                Ok((declared, VerifiedPayload::MustMatch(lower)))
            }
            (PayloadHash::Declared, _) => Err(SigV4Error::PayloadHashRequired),
        }
    }
}
