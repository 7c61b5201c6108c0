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
//! 4. authorized by berth-iam (`ecr:<Action>` on the repository ARN, or `*` for
//!    account-level actions; denied → `AccessDeniedException` with the AWS-shaped
//!    message), then handled against the core [`Registry`].
//!
//! Errors go to the wire in one function ([`error::to_wire`]); every response carries
//! `x-amzn-RequestId`. The implemented actions are those of
//! [`EcrOperation::is_implemented`] (repositories, login tokens, images and layers, tag
//! mutability, pull time exclusions, policies, tags, account settings, creation
//! templates, lifecycle policies and their previews); every other action answers `UnsupportedOperationException` (see [`error`]
//! for why that name).
//!
//! May depend on: `berth-types`, `berth-registry`, `berth-meta` (the store traits, not
//! SQL), `berth-iam`, `berth-sigv4`. Never touches SQL or files.

pub mod auth;
pub mod error;
mod handlers;
pub mod operation;
pub mod rate_limit;
pub mod registry_hosts;
pub mod resource_policies;
pub mod token;
pub mod v2_credentials;
pub mod v2_gate;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use tracing::Instrument;

use berth_meta::{EcrSettingsStore, IamStore};
use berth_registry::Registry;
use berth_sigv4::{Verifier, VerifierConfig};

pub use auth::{authorize, authorize_with, Authenticator, Caller, ConnInfo};
pub use error::{to_wire, EcrError, WireError};
pub use operation::{parse_target, EcrOperation, TARGET_PREFIX};
pub use registry_hosts::RegistryHosts;

/// The largest request body accepted: UploadLayerPart carries up to 20 MiB as base64.
pub const MAX_BODY: usize = 30 * 1024 * 1024;

/// The content type of every request and response.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// What the edge needs to know about the deployment.
#[derive(Clone)]
pub struct EcrConfig {
    /// The default account: its registry is what `/v2` serves on hosts that name no
    /// other account (see [`registry_hosts`]).
    pub account_id: String,
    /// Host-based routing of account registries (its default account is `account_id`).
    pub hosts: RegistryHosts,
    /// The region clients sign for and ARNs carry.
    pub region: String,
    /// `host[:port]` for repository URIs and `proxyEndpoint`; the request's `Host` when unset.
    pub public_host: Option<String>,
    /// HMAC key of login tokens (see [`token`]).
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
    auth: Arc<auth::Authenticator>,
    config: EcrConfig,
    /// Request quotas (`[limits]`), when enabled.
    limits: Option<Arc<rate_limit::RateLimits>>,
    /// Parsed repository and registry policies (shared with the `/v2` gate).
    policies: Arc<resource_policies::ResourcePolicies>,
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
                policies: Arc::new(resource_policies::ResourcePolicies::new(
                    settings.clone(),
                    DEFAULT_CACHE_TTL,
                )),
                settings,
                auth: Arc::new(auth::Authenticator::new(verifier, iam)),
                config,
                limits: None,
                lifecycle: None,
            }),
        }
    }

    /// Reuses parsed resource policies for `ttl` (`[auth] credential_cache_secs`). Call
    /// before the state is cloned.
    pub fn with_cache_ttl(mut self, ttl: std::time::Duration) -> Self {
        let inner = Arc::get_mut(&mut self.inner)
            .expect("with_cache_ttl is called before the state is shared");
        inner.policies = Arc::new(resource_policies::ResourcePolicies::new(
            inner.settings.clone(),
            ttl,
        ));
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
    pub fn with_rate_limits(mut self, limits: Arc<rate_limit::RateLimits>) -> Self {
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

    /// The `/v2` authentication and authorization layer, sharing this edge's
    /// authenticator and login token key (see [`v2_gate`]).
    pub fn v2_gate(&self, options: v2_gate::GateOptions) -> v2_gate::V2Gate {
        v2_gate::V2Gate::new(
            self.inner.auth.clone(),
            self.inner.config.clone(),
            options,
            self.inner.limits.clone(),
            self.inner.policies.clone(),
            self.inner.registry.clone(),
        )
    }
}

/// The handler for `POST /`, to mount on the application's `/` route. Put
/// [`ConnInfo`] in the request extensions to give policies `aws:SourceIp` and
/// `aws:SecureTransport`.
pub fn service(state: EcrState) -> MethodRouter {
    axum::routing::post(dispatch).with_state(state)
}

/// A router serving only the ECR API on `POST /` (for tests and embedding).
pub fn router(state: EcrState) -> axum::Router {
    axum::Router::new().route("/", service(state))
}

fn json_response(status: StatusCode, body: &serde_json::Value, request_id: &str) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-RequestId", v);
    }
    resp
}

async fn dispatch(State(state): State<EcrState>, req: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let op = parse_target(target.as_deref());
    let span = tracing::info_span!(
        "ecr",
        op = op.as_ref().map(|o| o.name()).unwrap_or("unknown"),
        request_id = %request_id
    );
    async move {
        let result = match op {
            Ok(op) => handle(&state, op, req).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(body) => json_response(StatusCode::OK, &body, &request_id),
            Err(e) => {
                let wire = to_wire(&e);
                if wire.status.is_server_error() {
                    tracing::error!(error = ?e, "ECR request failed");
                } else {
                    tracing::info!(error = wire.aws_type, message = %wire.message, "ECR request refused");
                }
                let body = error::error_body(&e, &wire);
                let mut resp = json_response(wire.status, &body, &request_id);
                if let EcrError::Throttled { retry_after_secs } = e {
                    resp.headers_mut()
                        .insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                }
                resp
            }
        }
    }
    .instrument(span)
    .await
}

async fn handle(
    state: &EcrState,
    op: EcrOperation,
    req: Request,
) -> Result<serde_json::Value, EcrError> {
    let conn = req
        .extensions()
        .get::<ConnInfo>()
        .copied()
        .unwrap_or(ConnInfo {
            peer_ip: None,
            secure: false,
        });
    let (parts, body) = req.into_parts();
    let now = time::OffsetDateTime::now_utc();
    state.inner.auth.precheck(&parts, now).await?;
    let body = http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                EcrError::BodyTooLarge { limit: MAX_BODY }
            } else {
                EcrError::Serialization(format!("could not read the request body: {e}"))
            }
        })?
        .to_bytes();
    let caller = state.inner.auth.authenticate(&parts, &body, now).await?;
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
    // The repository and registry policies that apply, read before the handler runs so
    // that its authorization checks stay synchronous.
    let repository = input
        .get("repositoryName")
        .and_then(|v| v.as_str())
        .filter(|n| handlers::valid_repository_name(n))
        .map(str::to_string);
    // The registry addressed: `registryId` when it is an account id (handlers refuse any
    // other value), else the caller's own.
    let registry = input
        .get("registryId")
        .and_then(|v| v.as_str())
        .filter(|id| id.parse::<berth_types::AccountId>().is_ok())
        .unwrap_or(&caller.account_id)
        .to_string();
    let policies = state
        .inner
        .policies
        .for_repository(&registry, repository.as_deref())
        .await?;
    let ctx = handlers::Ctx {
        state,
        caller: &caller,
        conn,
        now,
        host: host.unwrap_or_else(|| "localhost".to_string()),
        policies: (registry, repository, policies),
    };
    let result = handlers::handle(&ctx, op, input).await;
    if result.is_ok() && op.changes_resource_policies() {
        state.inner.policies.forget();
    }
    result
}
