//! # berth-ecr-api
//!
//! The Amazon ECR API edge: AWS JSON 1.1 on `POST /` (`X-Amz-Target:
//! AmazonEC2ContainerRegistry_V20150921.<Action>`, `Content-Type:
//! application/x-amz-json-1.1`). Each request is
//! 1. framed: the target is parsed into one [`EcrOperation`] (every action of the botocore
//!    model; unknown → `UnknownOperationException`), the body read up to [`MAX_BODY`];
//! 2. authenticated with SigV4 (berth-sigv4; service `ecr`, the configured region, 15 min
//!    of clock skew as ECR allows) against the IAM store's access keys (unknown or inactive
//!    key → `UnrecognizedClientException`);
//! 3. decoded (not JSON or wrong member types → `SerializationException`, model
//!    constraints → `InvalidParameterException`);
//! 4. authorized once, before any handler runs: the operation declares every (action,
//!    resource) it needs ([`berth_access::AuthorizedOperation`], in
//!    `handlers/requirements.rs`) and berth-access decides each with the repository and
//!    registry policies that apply (denied → `AccessDeniedException` with the AWS-shaped
//!    message); then it is handled against the core [`Registry`].
//!
//! Errors go to the wire in one function ([`error::to_wire`]); request ids, the body
//! limit, JSON 1.1 answers and `Retry-After` are `berth-aws-service`'s, as for every
//! AWS-shaped edge; every response carries `x-amzn-RequestId`. The implemented actions are those of
//! [`EcrOperation::is_implemented`] (repositories, login tokens, images and layers, tag
//! mutability, pull time exclusions, policies, tags, account settings, creation
//! templates, lifecycle policies and their previews); every other action answers `UnsupportedOperationException` (see [`error`]
//! for why that name).
//!
//! May depend on: `berth-types`, `berth-registry`, `berth-meta` (the store traits, not
//! SQL), `berth-iam`, `berth-sigv4`, `berth-access`. Never touches SQL or files; depends
//! on no other edge.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

pub mod error;
mod handlers;
pub mod operation;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::MethodRouter;
use http::StatusCode;
use tracing::Instrument;

use berth_access::rate_limit::{self, RateLimits};
use berth_access::resource_policies::ResourcePolicies;
use berth_access::{Authenticator, AuthorizedOperation, RegistryHosts, RequestEnv};
use berth_aws_service::{conn_info, json11_response, read_body, set_retry_after, BodyError};
use berth_meta::{EcrSettingsStore, IamStore};
use berth_registry::Registry;
use berth_sigv4::{Verifier, VerifierConfig};
use berth_types::telemetry::{ErrorCode, OperationName, RequestId};

pub use error::{to_wire, EcrError, WireError};
pub use operation::{parse_target, EcrOperation, TARGET_PREFIX};

/// The largest request body accepted: UploadLayerPart carries up to 20 MiB as base64.
pub const MAX_BODY: usize = 30 * 1024 * 1024;

/// The content type of every request and response.
pub const CONTENT_TYPE: &str = berth_aws_service::JSON11_CONTENT_TYPE;

/// What the edge needs to know about the deployment.
#[derive(Clone)]
pub struct EcrConfig {
    /// The default account: its registry is what `/v2` serves on hosts that name no
    /// other account (see [`RegistryHosts`]).
    pub account_id: String,
    /// Host-based routing of account registries (its default account is `account_id`).
    pub hosts: RegistryHosts,
    /// The region clients sign for and ARNs carry.
    pub region: String,
    /// `host[:port]` for repository URIs and `proxyEndpoint`; the request's `Host` when unset.
    pub public_host: Option<String>,
    /// HMAC key of login tokens (see [`berth_access::token`]).
    pub login_token_key: [u8; 32],
    /// Allowed clock skew (ECR: 15 minutes).
    pub max_skew: time::Duration,
}

impl EcrConfig {
    pub const ECR_MAX_SKEW: time::Duration = time::Duration::minutes(15);
}

impl std::fmt::Debug for EcrConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcrConfig")
            .field("account_id", &self.account_id)
            .field("region", &self.region)
            .field("public_host", &self.public_host)
            .finish_non_exhaustive()
    }
}

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct EcrState {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    /// Policies, tags, account settings and creation templates (same database as the
    /// registry's meta store).
    settings: Arc<dyn EcrSettingsStore>,
    auth: Arc<Authenticator>,
    config: EcrConfig,
    /// Request quotas (`[limits]`), when enabled.
    limits: Option<Arc<RateLimits>>,
    /// Parsed repository and registry policies (shared with the `/v2` gate).
    policies: Arc<ResourcePolicies>,
    /// Lifecycle policies and previews ([`EcrState::with_lifecycle`]); without it those
    /// actions answer `UnsupportedOperationException`.
    lifecycle: Option<berth_registry::lifecycle::Lifecycle>,
}

/// How long parsed resource policies are reused unless [`EcrState::with_cache_ttl`] says
/// otherwise.
const DEFAULT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

impl EcrState {
    pub fn new(
        registry: Registry,
        iam: Arc<dyn IamStore>,
        settings: Arc<dyn EcrSettingsStore>,
        config: EcrConfig,
    ) -> Self {
        let verifier = Verifier::new(
            VerifierConfig::new(["ecr"])
                .with_regions([config.region.clone()])
                .with_max_skew(config.max_skew)
                .with_presigned(false),
        );
        EcrState {
            inner: Arc::new(Inner {
                registry,
                policies: Arc::new(ResourcePolicies::new(settings.clone(), DEFAULT_CACHE_TTL)),
                settings,
                auth: Arc::new(
                    Authenticator::new(verifier, iam).requiring_signed_headers(&["x-amz-target"]),
                ),
                config,
                limits: None,
                lifecycle: None,
            }),
        }
    }

    /// Reuses parsed resource policies for `ttl` (`[auth] credential_cache_secs`), and
    /// active access keys for `ttl` but at most [`berth_access::key_cache::MAX_TTL`]; whoever
    /// changes keys through this server calls [`Authenticator::forget_keys`] (the `/v2`
    /// gate's `forget` does). Call before the state is cloned.
    pub fn with_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        let inner = Arc::get_mut(&mut self.inner)
            .expect("with_cache_ttl is called before the state is shared");
        inner.policies = Arc::new(ResourcePolicies::new(inner.settings.clone(), ttl));
        Arc::get_mut(&mut inner.auth)
            .expect("with_cache_ttl is called before the authenticator is shared")
            .set_key_cache_ttl(ttl);
        self
    }

    /// Serves the lifecycle policy actions with `lifecycle` (its store is the same
    /// database as the registry's). Call before the state is cloned.
    pub fn with_lifecycle(mut self, lifecycle: berth_registry::lifecycle::Lifecycle) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("with_lifecycle is called before the state is shared")
            .lifecycle = Some(lifecycle);
        self
    }

    /// Enforces `limits` on the ECR API and on the `/v2` gates made afterwards. Call
    /// before the state is cloned.
    pub fn with_rate_limits(mut self, limits: Arc<RateLimits>) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("with_rate_limits is called before the state is shared")
            .limits = Some(limits);
        self
    }
}

impl EcrState {
    /// The account whose registry `/v2` serves on hosts that name no other account.
    pub fn default_account(&self) -> berth_types::AccountId {
        self.inner.config.hosts.default_account()
    }

    /// The authenticator (service `ecr`), shared with the `/v2` gate.
    pub fn authenticator(&self) -> Arc<Authenticator> {
        self.inner.auth.clone()
    }

    /// The resource policy cache, shared with the `/v2` gate so that a policy changed
    /// here takes effect there at once.
    pub fn resource_policies(&self) -> Arc<ResourcePolicies> {
        self.inner.policies.clone()
    }

    /// The request quotas, shared with the `/v2` gate.
    pub fn rate_limits(&self) -> Option<Arc<RateLimits>> {
        self.inner.limits.clone()
    }
}

/// The handler for `POST /`, to mount on the application's `/` route. Put
/// [`berth_access::ConnInfo`] in the request extensions to give policies `aws:SourceIp` and
/// `aws:SecureTransport`.
pub fn service(state: EcrState) -> MethodRouter {
    axum::routing::post(dispatch).with_state(state)
}

/// A router serving only the ECR API on `POST /` (for tests and embedding).
pub fn router(state: EcrState) -> axum::Router {
    axum::Router::new().route("/", service(state))
}

async fn dispatch(State(state): State<EcrState>, mut req: Request) -> Response {
    // The server's request layer assigns ids; standalone (tests, embedding) we do.
    let request_id = match req.extensions_mut().remove::<RequestId>() {
        Some(RequestId(id)) => id,
        None => berth_aws_service::request_id(),
    };
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let op = parse_target(target.as_deref());
    let op_name = OperationName {
        edge: "ecr",
        name: op.as_ref().map(|o| o.name()).unwrap_or("Unknown"),
    };
    let span = tracing::info_span!("ecr", op = op_name.name, request_id = %request_id);
    let mut resp = async move {
        let result = match op {
            Ok(op) => handle(&state, op, req).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(body) => json11_response(StatusCode::OK, &body, &request_id),
            Err(e) => {
                let wire = to_wire(&e);
                if wire.status.is_server_error() {
                    tracing::error!(error = ?e, "ECR request failed");
                } else {
                    tracing::info!(error = wire.aws_type, message = %wire.message, "ECR request refused");
                }
                let body = error::error_body(&e, &wire);
                let mut resp = json11_response(wire.status, &body, &request_id);
                resp.extensions_mut().insert(ErrorCode(wire.aws_type));
                if let Some(secs) = wire.retry_after_secs {
                    set_retry_after(&mut resp, secs);
                }
                resp
            }
        }
    }
    .instrument(span)
    .await;
    resp.extensions_mut().insert(op_name);
    resp
}

async fn handle(
    state: &EcrState,
    op: EcrOperation,
    req: Request,
) -> Result<serde_json::Value, EcrError> {
    let conn = conn_info(&req);
    let (parts, body) = req.into_parts();
    let now = time::OffsetDateTime::now_utc();
    let prechecked = state.inner.auth.precheck(&parts, now).await?;
    let body = read_body(body, MAX_BODY).await.map_err(|e| match e {
        BodyError::TooLarge { limit } => EcrError::BodyTooLarge { limit },
        BodyError::Read(source) => {
            EcrError::Serialization(format!("could not read the request body: {source}"))
        }
    })?;
    let caller = state
        .inner
        .auth
        .authenticate_prechecked(prechecked, &parts, &body, now)
        .await?;
    if let Some(limits) = &state.inner.limits {
        limits
            .check(op.iam_action(), &caller.account_id)
            .map_err(|wait| EcrError::Throttled {
                retry_after_secs: rate_limit::RateLimits::retry_after_secs(wait),
            })?;
    }
    if !op.is_implemented() {
        return Err(EcrError::Unsupported(op));
    }
    let input: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        berth_types::json_limits::check(&body, berth_types::JsonLimits::DOCUMENT)
            .map_err(|e| EcrError::Serialization(format!("the request body is refused: {e}")))?;
        serde_json::from_slice(&body).map_err(|e| {
            EcrError::Serialization(format!("the request body is not valid JSON: {e}"))
        })?
    };
    if !input.is_object() {
        return Err(EcrError::Serialization(
            "the request body must be a JSON object".into(),
        ));
    }
    let host = state.inner.config.public_host.clone().or_else(|| {
        parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
    });
    let ctx = handlers::Ctx {
        state,
        caller: &caller,
        conn,
        now,
        host: host.unwrap_or_else(|| "localhost".to_string()),
    };
    // Authorization, once, before any handler runs: every (action, resource) the
    // operation declares, each with the repository and registry policies that apply.
    let region = state.inner.config.region.as_str();
    let requirements = op.requirements(&input, &caller, region)?;
    state
        .inner
        .policies
        .authorize(
            &caller,
            &requirements,
            &op.request_tags(&input),
            &RequestEnv { conn, region, now },
        )
        .await?;
    let result = handlers::handle(&ctx, op, input).await;
    if result.is_ok() && op.changes_resource_policies() {
        state.inner.policies.forget();
    }
    result
}
