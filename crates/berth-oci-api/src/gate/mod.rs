//! The `/v2` gate: authentication and IAM authorization of the registry API, as ECR does
//! it, in front of the OCI edge (which itself knows nothing about identities).
//!
//! Per request:
//! 1. `/v2/token` is the Docker token endpoint (credentials in, bearer token out).
//! 2. The path is routed to its [`OciOperation`]; unroutable paths pass through to the
//!    OCI edge's `404`/`405`.
//! 3. A layer download grant (`?X-Berth-Download=`, from `GetDownloadUrlForLayer`) on a
//!    blob `GET`/`HEAD` is the whole authorization for that one blob.
//! 4. Credentials (see [`berth_access::v2_credentials`]) become a [`Caller`], cached for
//!    `credential_cache_secs` by the exact header value, so the hot path costs a hash
//!    lookup and a policy evaluation, no database read.
//! 5. No credentials: allowed when `[auth] anonymous` covers the operation, otherwise
//!    `401 UNAUTHORIZED` with the configured challenge (`Basic`, as ECR, or `Bearer`).
//! 6. The operation's ECR action ([`OciOperation::ecr_action`]) on the repository ARN is
//!    evaluated by berth-iam; a denial is `403 DENIED` with the IAM message. A
//!    cross-repository mount also needs pull on the source repository; without it the
//!    mount parameters are dropped and the client gets an ordinary upload session (`202`),
//!    which reveals nothing about the source.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use parking_lot::Mutex;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

mod token_endpoint;

use berth_access::rate_limit::RateLimits;
use berth_access::token::{self, TokenError};
use berth_access::v2_credentials::{self, Credentials};
use berth_access::{
    authorize_with, AccessError, Authenticator, Caller, ConnInfo, RegistryHosts, RequestEnv,
    RequestTags, ResourcePolicies,
};
use berth_registry::Registry;
use berth_types::{AccountId, Digest, RepositoryName};

use crate::{OciError, OciOperation, RegistryAccount};

/// Cached identities at most; the cache is cleared when it would grow past this.
const CALLER_CACHE_LIMIT: usize = 10_000;

/// What callers without credentials may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anonymous {
    None,
    Pull,
    All,
}

/// Which challenge a `401` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    Basic,
    Bearer,
}

/// What the gate needs to know about the deployment.
#[derive(Clone)]
pub struct GateConfig {
    /// Host-based routing of account registries.
    pub hosts: RegistryHosts,
    /// The region ARNs carry.
    pub region: String,
    /// `host[:port]` for the challenge's realm; the request's `Host` when unset.
    pub public_host: Option<String>,
    /// HMAC key of login tokens and download grants (see [`berth_access::token`]).
    pub login_token_key: [u8; 32],
}

impl std::fmt::Debug for GateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateConfig")
            .field("hosts", &self.hosts)
            .field("region", &self.region)
            .field("public_host", &self.public_host)
            .finish_non_exhaustive()
    }
}

/// The gate's settings (from `[auth]`).
#[derive(Debug, Clone)]
pub struct GateOptions {
    pub anonymous: Anonymous,
    pub challenge: ChallengeKind,
    /// How long an authenticated identity is reused before its key and policies are read again.
    pub credential_cache: Duration,
    /// Lifetime of bearer tokens from `/v2/token`, seconds.
    pub bearer_token_secs: i64,
}

/// The `/v2` authentication and authorization layer; see the module docs.
#[derive(Clone)]
pub struct V2Gate {
    inner: Arc<GateInner>,
}

struct GateInner {
    auth: Arc<Authenticator>,
    config: GateConfig,
    options: GateOptions,
    callers: Mutex<HashMap<String, CachedCaller>>,
    limits: Option<Arc<RateLimits>>,
    policies: Arc<ResourcePolicies>,
    /// For pull times (`lastRecordedPullTime`).
    registry: Registry,
}

struct CachedCaller {
    caller: Arc<Caller>,
    fresh_until: Instant,
    /// Unix seconds after which the credential itself (a token) is no longer valid.
    expires_at: Option<i64>,
}

/// Why credentials were refused (a `401`).
struct Refusal(String);

impl From<AccessError> for Refusal {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Authentication(e) => Refusal(e.detailed_message()),
            AccessError::AccessDenied(m) => Refusal(m),
            // Ours, not the caller's: the cause goes to the log, the client is told to retry.
            e @ (AccessError::Store { .. } | AccessError::StoredPolicy { .. }) => {
                tracing::error!(error = %e, source = ?std::error::Error::source(&e), "authenticating a /v2 request failed");
                Refusal("the credentials could not be checked; try again".into())
            }
        }
    }
}

impl V2Gate {
    pub fn new(
        auth: Arc<Authenticator>,
        config: GateConfig,
        options: GateOptions,
        limits: Option<Arc<RateLimits>>,
        policies: Arc<ResourcePolicies>,
        registry: Registry,
    ) -> Self {
        V2Gate {
            inner: Arc::new(GateInner {
                auth,
                options,
                callers: Mutex::new(HashMap::new()),
                limits,
                policies,
                registry,
                config,
            }),
        }
    }

    /// Forgets every cached identity, access key and resource policy (after a change to
    /// keys or policies made here).
    pub fn forget(&self) {
        self.inner.callers.lock().clear();
        self.inner.auth.forget_keys();
        self.inner.policies.forget();
    }

    /// The caller presenting `creds`, cached under `cache_key` (the `Authorization`
    /// header value) when given.
    async fn resolve(
        &self,
        cache_key: Option<&str>,
        creds: Credentials,
        now: OffsetDateTime,
    ) -> Result<Option<Arc<Caller>>, Refusal> {
        let now_secs = now.unix_timestamp();
        if matches!(creds, Credentials::Anonymous) {
            return Ok(None);
        }
        if let Some(c) = cache_key.and_then(|k| self.cached_caller(k, now_secs)) {
            return Ok(Some(c));
        }
        let auth = &self.inner.auth;
        let (caller, expires_at) = match creds {
            Credentials::Anonymous => return Ok(None),
            Credentials::Token(t) => {
                let claims = token::verify(&self.inner.config.login_token_key, &t, now_secs)
                    .map_err(|e| match e {
                        TokenError::Expired => Refusal(
                            "Your authorization token has expired. Reauthenticate and try again."
                                .into(),
                        ),
                        TokenError::Invalid => {
                            Refusal("the login password or token is not valid".into())
                        }
                    })?;
                let key = auth
                    .active_key(&claims.access_key_id)
                    .await?
                    .filter(|k| k.account_id == claims.account_id)
                    .ok_or_else(|| {
                        Refusal(
                            "the access key this token was issued for is deleted or inactive"
                                .into(),
                        )
                    })?;
                (auth.caller_for_key(&key).await?, Some(claims.expires_at))
            }
            Credentials::AccessKey { id, secret } => {
                let bad = || Refusal("the access key id or secret is not valid".into());
                let key = auth.active_key(&id).await?.ok_or_else(bad)?;
                let same: bool = key
                    .secret
                    .expose()
                    .as_bytes()
                    .ct_eq(secret.as_bytes())
                    .into();
                if !same {
                    return Err(bad());
                }
                (auth.caller_for_key(&key).await?, None)
            }
        };
        let caller = Arc::new(caller);
        let Some(cache_key) = cache_key else {
            return Ok(Some(caller));
        };
        let mut cache = self.inner.callers.lock();
        if cache.len() >= CALLER_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(
            cache_key.to_string(),
            CachedCaller {
                caller: caller.clone(),
                fresh_until: Instant::now() + self.inner.options.credential_cache,
                expires_at,
            },
        );
        Ok(Some(caller))
    }

    /// The cached caller for this exact `Authorization` value, if still fresh and its
    /// token (if any) unexpired at `now_secs`.
    fn cached_caller(&self, header: &str, now_secs: i64) -> Option<Arc<Caller>> {
        let cache = self.inner.callers.lock();
        let c = cache.get(header)?;
        let token_valid = c.expires_at.is_none_or(|e| now_secs < e);
        (c.fresh_until > Instant::now() && token_valid).then(|| c.caller.clone())
    }

    fn anonymous_allows(&self, op: OciOperation) -> bool {
        match self.inner.options.anonymous {
            Anonymous::All => true,
            Anonymous::Pull => is_read(op),
            Anonymous::None => false,
        }
    }

    fn host_and_scheme(&self, req: &Request) -> (String, &'static str) {
        let secure = req.extensions().get::<ConnInfo>().is_some_and(|c| c.secure);
        let host = self.inner.config.public_host.clone().unwrap_or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
                .or_else(|| req.uri().authority().map(|a| a.to_string()))
                .unwrap_or_else(|| "localhost".into())
        });
        (host, if secure { "https" } else { "http" })
    }

    /// `401` with the configured challenge.
    fn unauthorized(&self, req: &Request, scope: Option<String>, message: &str) -> Response {
        let (host, scheme) = self.host_and_scheme(req);
        let challenge = match self.inner.options.challenge {
            ChallengeKind::Basic => {
                format!("Basic realm=\"{scheme}://{host}/\",service=\"{host}\"")
            }
            ChallengeKind::Bearer => {
                let mut c =
                    format!("Bearer realm=\"{scheme}://{host}/v2/token\",service=\"{host}\"");
                if let Some(s) = scope {
                    c.push_str(&format!(",scope=\"{s}\""));
                }
                c
            }
        };
        OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
            .with_header("www-authenticate", &challenge)
            .into_response()
    }

    /// IAM decision for `action` on repository `name` (`None`: the whole registry) of
    /// `account`'s registry, with the repository's and the registry's policies.
    async fn allowed(
        &self,
        caller: &Caller,
        action: &str,
        account: AccountId,
        name: Option<&str>,
        conn: ConnInfo,
        now: OffsetDateTime,
    ) -> Result<(), AccessError> {
        let account = account.as_str();
        let policies = self.inner.policies.for_repository(account, name).await?;
        // The ARN is built in a reused per-thread buffer (no await while it is borrowed):
        // this runs on every request.
        thread_local! {
            static ARN: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        ARN.with_borrow_mut(|arn| {
            arn.clear();
            arn.push_str("arn:aws:ecr:");
            arn.push_str(&self.inner.config.region);
            arn.push(':');
            arn.push_str(account);
            arn.push_str(":repository/");
            arn.push_str(name.unwrap_or("*"));
            authorize_with(
                caller,
                action,
                arn,
                account,
                &RequestEnv {
                    conn,
                    region: &self.inner.config.region,
                    now,
                },
                &policies,
                &RequestTags::default(),
            )
        })
    }
}

/// Reads: what `anonymous = "pull"` allows.
fn is_read(op: OciOperation) -> bool {
    matches!(
        op,
        OciOperation::ApiVersion
            | OciOperation::Catalog
            | OciOperation::ListTags
            | OciOperation::GetManifest
            | OciOperation::HeadManifest
            | OciOperation::GetBlob
            | OciOperation::HeadBlob
            | OciOperation::ListReferrers
    )
}

/// The Docker token scope of an operation.
fn scope_of(op: OciOperation, name: &str) -> Option<String> {
    match op {
        OciOperation::ApiVersion => None,
        OciOperation::Catalog => Some("registry:catalog:*".into()),
        op if is_read(op) => Some(format!("repository:{name}:pull")),
        OciOperation::DeleteManifest | OciOperation::DeleteBlob => {
            Some(format!("repository:{name}:delete"))
        }
        _ => Some(format!("repository:{name}:pull,push")),
    }
}

fn query_param(uri: &http::Uri, name: &str) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The request's URI without the `mount` and `from` parameters.
fn without_mount(uri: &http::Uri) -> Option<http::Uri> {
    let query = uri.query()?;
    let kept: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "mount" && k != "from")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut pq = uri.path().to_string();
    if !kept.is_empty() {
        pq.push('?');
        pq.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(kept)
                .finish(),
        );
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

fn denied(e: AccessError) -> Response {
    match e {
        AccessError::AccessDenied(m) => {
            OciError::new(StatusCode::FORBIDDEN, "DENIED", m).into_response()
        }
        // A store that could not be read or a stored policy that no longer parses is ours;
        // authorization does not authenticate, so an authentication error here is a bug
        // of ours too. The cause goes to the log only.
        other @ (AccessError::Store { .. }
        | AccessError::StoredPolicy { .. }
        | AccessError::Authentication(_)) => {
            tracing::error!(error = %other, source = ?std::error::Error::source(&other), "authorizing a /v2 request failed");
            OciError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "the request could not be authorized; see the server log",
            )
            .into_response()
        }
    }
}

/// The middleware to layer on the `/v2` router.
pub async fn middleware(State(gate): State<V2Gate>, mut req: Request, next: Next) -> Response {
    if req.uri().path() == "/v2/token" {
        return token_endpoint::token_endpoint(&gate, req).await;
    }
    let Ok(route) = crate::operation::route(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    // The registry addressed, by host name (see `registry_hosts`).
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let account = gate.inner.config.hosts.account_of_host(host);
    req.extensions_mut().insert(RegistryAccount(account));
    let now = OffsetDateTime::now_utc();
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .copied()
        .unwrap_or(ConnInfo {
            peer_ip: None,
            secure: false,
        });

    if matches!(route.op, OciOperation::GetBlob | OciOperation::HeadBlob) {
        if let Some(grant) = query_param(req.uri(), token::DOWNLOAD_PARAM) {
            // The grant names its registry (it is signed over it), whatever the host.
            let account = query_param(req.uri(), token::DOWNLOAD_REGISTRY_PARAM)
                .and_then(|a| a.parse::<AccountId>().ok())
                .unwrap_or(account);
            req.extensions_mut().insert(RegistryAccount(account));
            let cfg = &gate.inner.config;
            return match token::verify_download(
                &cfg.login_token_key,
                &grant,
                account.as_str(),
                &route.name,
                &route.target,
                now.unix_timestamp(),
            ) {
                Ok(()) => next.run(req).await,
                Err(TokenError::Expired) => OciError::new(
                    StatusCode::FORBIDDEN,
                    "DENIED",
                    "the download URL has expired; call GetDownloadUrlForLayer again",
                )
                .into_response(),
                Err(TokenError::Invalid) => OciError::new(
                    StatusCode::FORBIDDEN,
                    "DENIED",
                    "the download URL is not valid for this layer",
                )
                .into_response(),
            };
        }
    }

    let scope = || scope_of(route.op, &route.name);
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // The hot path: the same header as a recent request, no decoding at all.
    let cached = header.and_then(|h| gate.cached_caller(h, now.unix_timestamp()));
    let caller = match cached {
        Some(c) => Some(c),
        None => {
            let creds = match v2_credentials::from_headers(req.headers()) {
                Ok(c) => c,
                Err(m) => return gate.unauthorized(&req, scope(), m),
            };
            let header = header.map(str::to_string);
            match gate.resolve(header.as_deref(), creds, now).await {
                Ok(c) => c,
                Err(Refusal(m)) => return gate.unauthorized(&req, scope(), &m),
            }
        }
    };
    if let Some(limits) = &gate.inner.limits {
        let default_account = gate.inner.config.hosts.default_account();
        let account = caller
            .as_ref()
            .map_or(default_account.as_str(), |c| c.account_id.as_str());
        if let Err(wait) = limits.check(route.op.ecr_action(), account) {
            let secs = RateLimits::retry_after_secs(wait);
            return OciError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                format!(
                    "Rate exceeded for {}; retry after {secs} s",
                    route.op.ecr_action()
                ),
            )
            .with_header("retry-after", &secs.to_string())
            .into_response();
        }
    }
    let Some(caller) = caller else {
        if gate.anonymous_allows(route.op) {
            let resp = next.run(req).await;
            gate.note_pull(route.op, account, &route.name, &resp, ANONYMOUS_PRINCIPAL);
            return resp;
        }
        return gate.unauthorized(&req, scope(), "authentication required");
    };
    if route.op == OciOperation::ApiVersion || gate.inner.options.anonymous == Anonymous::All {
        return next.run(req).await;
    }
    let name = (route.op != OciOperation::Catalog).then_some(route.name.as_str());
    if let Err(e) = gate
        .allowed(&caller, route.op.ecr_action(), account, name, conn, now)
        .await
    {
        return denied(e);
    }
    if route.op == OciOperation::StartUpload {
        if let Some(from) = query_param(req.uri(), "from") {
            let mut may_pull = true;
            for action in ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"] {
                may_pull &= gate
                    .allowed(&caller, action, account, Some(&from), conn, now)
                    .await
                    .is_ok();
            }
            if !may_pull {
                tracing::info!(caller = %caller.arn, from = %from, "mount source not readable; starting an upload instead");
                if let Some(uri) = without_mount(req.uri()) {
                    *req.uri_mut() = uri;
                }
            }
        }
    }
    let pull =
        (route.op == OciOperation::GetManifest).then(|| (caller.arn.clone(), route.name.clone()));
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(route);
    let resp = next.run(req).await;
    if let Some((arn, name)) = pull {
        gate.note_pull(OciOperation::GetManifest, account, &name, &resp, &arn);
    }
    resp
}

/// The principal recorded for pulls without credentials.
const ANONYMOUS_PRINCIPAL: &str = "anonymous";

impl V2Gate {
    /// Records a successful manifest GET for `lastRecordedPullTime` (in memory; the
    /// registry writes pull times in batches).
    fn note_pull(
        &self,
        op: OciOperation,
        account: AccountId,
        name: &str,
        resp: &Response,
        principal_arn: &str,
    ) {
        if op != OciOperation::GetManifest || resp.status() != StatusCode::OK {
            return;
        }
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        if let (Some(digest), Ok(repo)) = (digest, RepositoryName::new(account, name)) {
            self.inner
                .registry
                .record_pull(&repo, &digest, principal_arn);
        }
    }
}

#[cfg(test)]
mod tests;
