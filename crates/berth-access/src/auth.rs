//! Authentication (SigV4 against the IAM store's access keys) and authorization
//! (berth-iam evaluation of the caller's identity policies).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_iam::{Context, Policy, PolicyKind, Principal, SizeLimit};
use berth_meta::iam::{KeyLookup, KeyPrincipal, KeyStatus};
use berth_meta::IamStore;
use berth_sigv4::{
    ParsedAuth, PayloadHash, Request as SigRequest, SigV4Error, SigningKey, Verifier,
};
use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::error::AccessError;
use crate::key_cache::KeyCache;
use crate::resource::{RequestEnv, RequestTags, Requirement, Resource};
use crate::resource_policies::ApplicablePolicies;

/// Upper bound on cached derived signing keys and parsed policies (cleared when reached).
const CACHE_LIMIT: usize = 10_000;

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub access_key_id: String,
    pub account_id: String,
    /// `arn:aws:iam::<account>:root` or the user's ARN.
    pub arn: String,
    /// The IAM user (name, unique id), `None` for the account root.
    pub user: Option<(String, String)>,
    /// The user's identity policies, parsed (empty for root).
    pub policies: Vec<Arc<Policy>>,
}

/// Facts about the connection a request came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    pub peer_ip: Option<IpAddr>,
    /// The request came over TLS.
    pub secure: bool,
}

/// What [`Authenticator::precheck`] parsed, for [`Authenticator::authenticate_prechecked`]
/// (the same request's headers, so it is not parsed twice).
pub struct Prechecked {
    parsed: ParsedAuth,
}

pub struct Authenticator {
    pub verifier: Verifier,
    pub iam: Arc<dyn IamStore>,
    /// Active access keys found by recent lookups (off unless
    /// [`Authenticator::set_key_cache_ttl`] is called; at most 2 s).
    keys: KeyCache,
    /// (access key id, scope date, region, service) → derived signing key. An access key's
    /// secret never changes, so an entry never goes stale; a deleted or deactivated key is
    /// refused by the lookup (or the briefly cached lookup) that precedes every use.
    signing_keys: Mutex<HashMap<(String, String, String, String), SigningKey>>,
    /// Policy document text → parsed policy (documents are re-read every request, so a
    /// changed policy is a new key and takes effect at once).
    policies: Mutex<HashMap<String, Arc<Policy>>>,
    /// Headers (lower case) a request must sign besides `host` (`x-amz-target` on JSON
    /// 1.1 services: an unsigned target could be swapped for another action).
    required_signed: Vec<&'static str>,
}

impl Authenticator {
    pub fn new(verifier: Verifier, iam: Arc<dyn IamStore>) -> Self {
        Authenticator {
            verifier,
            iam,
            keys: KeyCache::new(Duration::ZERO),
            signing_keys: Mutex::new(HashMap::new()),
            policies: Mutex::new(HashMap::new()),
            required_signed: Vec::new(),
        }
    }

    /// Refuses requests whose `SignedHeaders` lack any of `headers` (lower case).
    pub fn requiring_signed_headers(mut self, headers: &[&'static str]) -> Self {
        self.required_signed = headers.to_vec();
        self
    }

    /// Reuses an active access key for `ttl` (capped at [`crate::key_cache::MAX_TTL`])
    /// instead of reading it for every request. Call before the authenticator is shared,
    /// and call [`Authenticator::forget_keys`] whenever this server changes access keys.
    pub fn set_key_cache_ttl(&mut self, ttl: Duration) {
        self.keys = KeyCache::new(ttl);
    }

    /// Forgets every cached access key (after a change to keys made through this server):
    /// the next request reads its key again.
    pub fn forget_keys(&self) {
        self.keys.forget();
    }

    fn check_signed_headers(&self, parsed: &ParsedAuth) -> Result<(), AccessError> {
        for h in &self.required_signed {
            if !parsed.signed_headers.iter().any(|s| s == h) {
                return Err(AccessError::Authentication(SigV4Error::Incomplete(
                    format!("'{h}' must be a 'SignedHeader' in the AWS Authorization."),
                )));
            }
        }
        Ok(())
    }

    /// What can be checked before the body is read: a well-formed SigV4 authorization for
    /// this service, region and time, by an access key that exists and is active. The
    /// edge calls this first so that an unauthenticated client cannot make the server
    /// buffer a large body; [`Authenticator::authenticate`] then checks the signature.
    pub async fn precheck(
        &self,
        parts: &http::request::Parts,
        now: OffsetDateTime,
    ) -> Result<Prechecked, AccessError> {
        let auth = AccessError::Authentication;
        let req = SigRequest::from_http(
            &parts.method,
            &parts.uri,
            &parts.headers,
            PayloadHash::Declared,
        );
        let parsed = self.verifier.parse(&req).map_err(auth)?;
        self.check_signed_headers(&parsed)?;
        self.verifier
            .check_scope_and_time(&parsed, now)
            .map_err(auth)?;
        if parsed.security_token.is_some()
            || self.active_key(&parsed.access_key_id).await?.is_none()
        {
            return Err(AccessError::Authentication(
                SigV4Error::UnrecognizedClient {
                    access_key_id: parsed.access_key_id.clone(),
                },
            ));
        }
        Ok(Prechecked { parsed })
    }

    /// Verifies the signature of a request whose whole body is `body`.
    pub async fn authenticate(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Caller, AccessError> {
        let req = SigRequest::from_http(
            &parts.method,
            &parts.uri,
            &parts.headers,
            PayloadHash::of_body(body),
        );
        let parsed = self
            .verifier
            .parse(&req)
            .map_err(AccessError::Authentication)?;
        self.check_signed_headers(&parsed)?;
        self.verify(&parsed, &req, now).await
    }

    /// [`Authenticator::authenticate`] for a request [`Authenticator::precheck`] passed:
    /// its authorization is not parsed again.
    pub async fn authenticate_prechecked(
        &self,
        prechecked: Prechecked,
        parts: &http::request::Parts,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Caller, AccessError> {
        let req = SigRequest::from_http(
            &parts.method,
            &parts.uri,
            &parts.headers,
            PayloadHash::of_body(body),
        );
        self.verify(&prechecked.parsed, &req, now).await
    }

    /// Scope and time, the access key (active), then the signature of `req`.
    async fn verify(
        &self,
        parsed: &ParsedAuth,
        req: &SigRequest<'_>,
        now: OffsetDateTime,
    ) -> Result<Caller, AccessError> {
        let auth = AccessError::Authentication;
        self.verifier
            .check_scope_and_time(parsed, now)
            .map_err(auth)?;
        let unrecognized = || {
            AccessError::Authentication(SigV4Error::UnrecognizedClient {
                access_key_id: parsed.access_key_id.clone(),
            })
        };
        // Berth issues no temporary credentials, so any session token is unrecognized.
        if parsed.security_token.is_some() {
            return Err(unrecognized());
        }
        let key = self
            .active_key(&parsed.access_key_id)
            .await?
            .ok_or_else(unrecognized)?;
        let s = &parsed.scope;
        let cache_key = (
            key.access_key_id.clone(),
            s.date.clone(),
            s.region.clone(),
            s.service.clone(),
        );
        let signing_key = {
            let mut cache = self.signing_keys.lock();
            if let Some(k) = cache.get(&cache_key) {
                k.clone()
            } else {
                let k = SigningKey::derive(key.secret.expose(), &s.date, &s.region, &s.service);
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                cache.insert(cache_key, k.clone());
                k
            }
        };
        self.verifier
            .verify_with_key(parsed, &signing_key, req, now)
            .map_err(auth)?;

        self.caller_for_key(&key).await
    }

    /// The access key `access_key_id` if it exists and is active: read from the store, or
    /// found active by a lookup less than the key cache's ttl ago.
    pub async fn active_key(
        &self,
        access_key_id: &str,
    ) -> Result<Option<Arc<KeyLookup>>, AccessError> {
        let started = Instant::now();
        if let Some(key) = self.keys.get(access_key_id, started) {
            return Ok(Some(key));
        }
        let generation = self.keys.generation();
        let key = self
            .iam
            .lookup_access_key(access_key_id)
            .await
            .map_err(|e| AccessError::store("looking up the access key", e))?;
        let Some(key) = key.filter(|k| k.status == KeyStatus::Active) else {
            return Ok(None);
        };
        let key = Arc::new(key);
        self.keys.insert(key.clone(), started, generation);
        Ok(Some(key))
    }

    /// The caller an (authenticated, active) access key stands for, with its identity
    /// policies loaded and parsed.
    pub async fn caller_for_key(&self, key: &KeyLookup) -> Result<Caller, AccessError> {
        let (arn, user, policies) = match &key.principal {
            KeyPrincipal::Root => (berth_iam::account_root_arn(&key.account_id), None, vec![]),
            KeyPrincipal::User {
                name, user_id, arn, ..
            } => {
                let docs = self
                    .iam
                    .policies_for_user(&key.account_id, name)
                    .await
                    .map_err(|e| AccessError::store("loading the user's policies", e))?;
                let mut parsed = Vec::with_capacity(docs.len());
                for d in docs {
                    parsed.push(self.parse_policy(&d.name, &d.document)?);
                }
                (arn.clone(), Some((name.clone(), user_id.clone())), parsed)
            }
        };
        Ok(Caller {
            access_key_id: key.access_key_id.clone(),
            account_id: key.account_id.clone(),
            arn,
            user,
            policies,
        })
    }

    fn parse_policy(&self, name: &str, document: &str) -> Result<Arc<Policy>, AccessError> {
        let cache_key = format!("{name}\n{document}");
        if let Some(p) = self.policies.lock().get(&cache_key) {
            return Ok(p.clone());
        }
        // Stored documents were validated when they were put; a document this version can
        // no longer parse is a server-side problem, not the caller's.
        let p = Policy::parse(document, PolicyKind::Identity, SizeLimit::Unlimited)
            .map_err(|source| AccessError::StoredPolicy {
                name: format!("policy {name}"),
                source,
            })?
            .with_name(name);
        let p = Arc::new(p);
        let mut cache = self.policies.lock();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(cache_key, p.clone());
        Ok(p)
    }
}

/// Authorizes every requirement of one request for `caller` on identity policies alone,
/// for edges whose resources carry no resource policy (IAM users and groups, `*`). A
/// repository requirement is denied rather than decided without its repository and
/// registry policies: those are [`crate::ResourcePolicies::authorize`]'s to load.
pub fn authorize_identity(
    caller: &Caller,
    requirements: &[Requirement],
    env: &RequestEnv<'_>,
) -> Result<(), AccessError> {
    for r in requirements {
        match &r.resource {
            Resource::Account { .. } | Resource::Arn { .. } => {}
            Resource::Repository { .. } | Resource::AllRepositories { .. } => {
                return Err(AccessError::AccessDenied(format!(
                    "{} on {} needs the repository's policies, which this edge does not load",
                    r.action,
                    r.resource.arn(env.region)
                )));
            }
        }
        authorize_with(
            caller,
            r.action,
            &r.resource.arn(env.region),
            r.resource.account(),
            env,
            &ApplicablePolicies::default(),
            &RequestTags::default(),
        )?;
    }
    Ok(())
}

/// Asks berth-iam whether `caller` may perform `action` on `resource` (owned by
/// `resource_account`), with the resource's repository policy and its account's registry
/// policy: an explicit deny anywhere wins, then an allow from either side (same account)
/// or from both sides (cross-account), as AWS evaluates. The context carries the
/// connection, region and time of `env`, the resource's tags and the tags the request
/// asks for.
pub fn authorize_with(
    caller: &Caller,
    action: &str,
    resource: &str,
    resource_account: &str,
    env: &RequestEnv<'_>,
    resource_policies: &ApplicablePolicies,
    request_tags: &RequestTags,
) -> Result<(), AccessError> {
    let principal = match &caller.user {
        None => Principal::root(&caller.account_id, &caller.arn),
        Some((name, id)) => Principal::user(&caller.account_id, &caller.arn, name, id),
    };
    let policies: Vec<&Policy> = caller.policies.iter().map(|p| p.as_ref()).collect();
    // Empty on the hot path (no allocation); filled for tagging requests.
    let tags: Vec<(&str, &str)> = request_tags
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let tag_keys: Vec<&str> = request_tags.keys.iter().map(String::as_str).collect();
    let resource_tags: Vec<(&str, &str)> = resource_policies
        .repository_tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let req = berth_iam::Request {
        context: Context {
            source_ip: env.conn.peer_ip,
            secure_transport: Some(env.conn.secure),
            current_time: Some(env.now),
            requested_region: Some(env.region),
            request_tags: &tags,
            tag_keys: &tag_keys,
            resource_tags: &resource_tags,
            ..Context::default()
        },
        identity_policies: &policies,
        resource_policy: resource_policies.repository.as_deref(),
        registry_policy: resource_policies.registry.as_deref(),
        ..berth_iam::Request::new(principal, action, resource, resource_account)
    };
    let decision = berth_iam::evaluate(&req);
    if decision.is_allowed() {
        tracing::debug!(%decision, action, resource, "authorized");
        return Ok(());
    }
    tracing::info!(%decision, action, resource, caller = %caller.arn, "denied");
    Err(AccessError::AccessDenied(
        decision.denial_message(&req).unwrap_or_else(|| {
            format!(
                "User: {} is not authorized to perform: {action} on resource: {resource}",
                caller.arn
            )
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "123456789012";

    fn user(policy: Option<&str>) -> Caller {
        Caller {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            account_id: ACCOUNT.into(),
            arn: format!("arn:aws:iam::{ACCOUNT}:user/ci/bob"),
            user: Some(("bob".into(), "AIDAEXAMPLE".into())),
            policies: policy
                .map(|p| {
                    Arc::new(Policy::parse(p, PolicyKind::Identity, SizeLimit::Unlimited).unwrap())
                })
                .into_iter()
                .collect(),
        }
    }

    fn env() -> RequestEnv<'static> {
        RequestEnv {
            conn: ConnInfo {
                peer_ip: None,
                secure: false,
            },
            region: "us-east-1",
            now: OffsetDateTime::now_utc(),
        }
    }

    fn on_user(action: &'static str, arn: &str) -> Requirement {
        Requirement::new(
            action,
            Resource::Arn {
                account: ACCOUNT.into(),
                arn: arn.into(),
            },
        )
    }

    #[test]
    fn identity_requirements_are_decided_on_identity_policies() {
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:GetUser","Resource":"arn:aws:iam::123456789012:user/ci/*"}]}"#;
        let bob = user(Some(policy));
        let in_ci = on_user("iam:GetUser", "arn:aws:iam::123456789012:user/ci/x");
        let at_root = on_user("iam:GetUser", "arn:aws:iam::123456789012:user/x");
        assert!(authorize_identity(&bob, std::slice::from_ref(&in_ci), &env()).is_ok());
        // Every requirement must pass, the first denial answers.
        let denied = authorize_identity(&bob, &[in_ci.clone(), at_root], &env());
        assert!(
            matches!(&denied, Err(AccessError::AccessDenied(m)) if m.contains("resource: arn:aws:iam::123456789012:user/x")),
            "{denied:?}"
        );
        assert!(matches!(
            authorize_identity(&user(None), &[in_ci], &env()),
            Err(AccessError::AccessDenied(_))
        ));
        // No requirement, nothing to decide (sts:GetCallerIdentity).
        assert!(authorize_identity(&user(None), &[], &env()).is_ok());
    }

    #[test]
    fn repository_requirements_are_not_decided_without_their_policies() {
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        let repository = Requirement::new(
            "ecr:ListImages",
            Resource::Repository {
                account: ACCOUNT.into(),
                name: "app".into(),
            },
        );
        let all = Requirement::new(
            "ecr:DescribeRepositories",
            Resource::AllRepositories {
                account: ACCOUNT.into(),
            },
        );
        for r in [repository, all] {
            assert!(matches!(
                authorize_identity(&user(Some(policy)), &[r], &env()),
                Err(AccessError::AccessDenied(_))
            ));
        }
    }
}
