//! # berth-iam-api
//!
//! The IAM and STS edge: the AWS Query protocol on `/` (`POST` with an
//! `application/x-www-form-urlencoded` body `Action=<Name>&Version=<date>&...`, or the same
//! parameters in the query string of a `GET`), answered in XML as the botocore models
//! `iam/2010-05-08` and `sts/2011-06-15` describe, so that `aws iam ... --endpoint-url` and
//! `aws sts get-caller-identity --endpoint-url` manage Berth's users, groups, access keys and
//! inline policies. Each request is
//! 1. framed: the body is read (up to [`MAX_BODY`]), the parameters decoded ([`params`]), and
//!    `Action`/`Version` resolved to one [`IamOperation`] (missing → `MissingAction`,
//!    unknown → `InvalidAction`);
//! 2. authenticated with SigV4 by berth-access's [`Authenticator`] against the IAM store's
//!    access keys, with a credential scope of the operation's own service (`iam` or `sts`;
//!    region `us-east-1`, where AWS SDKs sign the global IAM endpoint, or the configured
//!    region);
//! 3. authorized once, before any handler runs: the operation declares what it acts on,
//!    the named user or group is looked up for the path in its ARN, and berth-access
//!    decides `iam:<Action>` on that ARN ([`requirements`]); `sts:GetCallerIdentity`
//!    needs no permission, as in AWS;
//! 4. handled against the [`IamStore`] with the resolved subject; the caller's account is
//!    the one managed. Handlers never authorize.
//!
//! Errors go to the wire in one function ([`error::to_wire`]); request ids, the body
//! limit and the Query documents are `berth-aws-service`'s; every response carries
//! `x-amzn-RequestId` and the `RequestId` element. A secret access key appears only in the
//! `CreateAccessKey` answer, never in a log.
//!
//! May depend on: `berth-meta` (the store trait, not SQL), `berth-iam`, `berth-sigv4`, and
//! `berth-access` for the authenticator and `authorize_identity`. Never touches SQL or files.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

pub mod error;
#[doc(hidden)]
pub mod fuzz_entry;
mod handlers;
pub mod operation;
pub mod pagination;
pub mod params;
pub mod requirements;
pub use berth_aws_service::xml;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use http::{Method, StatusCode};
use time::OffsetDateTime;
use tracing::Instrument;

use berth_access::{authorize_identity, Authenticator, AuthorizedOperation, RequestEnv};
use berth_aws_service::{conn_info, query_response, read_body, BodyError};
use berth_meta::IamStore;
use berth_sigv4::{Verifier, VerifierConfig};
use berth_types::telemetry::{ErrorCode, OperationName, RequestId};

pub use error::{to_wire, IamApiError, WireError};
pub use operation::{IamOperation, Service};
use params::Params;
use xml::Xml;

/// The largest request body accepted: a policy document (128 Ki characters) percent-encoded.
pub const MAX_BODY: usize = 1024 * 1024;

/// The content type of every response.
pub const CONTENT_TYPE: &str = berth_aws_service::QUERY_CONTENT_TYPE;

/// The region AWS SDKs sign IAM requests for (IAM is a global service).
pub const IAM_SIGNING_REGION: &str = "us-east-1";

/// What the edge needs to know about the deployment.
#[derive(Debug, Clone)]
pub struct IamApiConfig {
    /// The configured region: STS clients sign for it (as do IAM clients told to).
    pub region: String,
    /// Allowed clock skew (AWS: 5 minutes).
    pub max_skew: time::Duration,
}

impl IamApiConfig {
    pub fn new(region: impl Into<String>) -> Self {
        IamApiConfig {
            region: region.into(),
            max_skew: VerifierConfig::DEFAULT_MAX_SKEW,
        }
    }
}

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct IamApiState {
    inner: Arc<Inner>,
}

struct Inner {
    /// One authenticator per service, so an IAM request signed for `sts` (or the reverse)
    /// is refused as AWS refuses it.
    iam_auth: Authenticator,
    sts_auth: Authenticator,
    store: Arc<dyn IamStore>,
    config: IamApiConfig,
}

impl IamApiState {
    pub fn new(store: Arc<dyn IamStore>, config: IamApiConfig) -> Self {
        let auth = |service: &str| {
            let mut regions = vec![IAM_SIGNING_REGION.to_string()];
            if config.region != IAM_SIGNING_REGION {
                regions.push(config.region.clone());
            }
            Authenticator::new(
                Verifier::new(
                    VerifierConfig::new([service])
                        .with_regions(regions)
                        .with_max_skew(config.max_skew),
                ),
                store.clone(),
            )
        };
        IamApiState {
            inner: Arc::new(Inner {
                iam_auth: auth("iam"),
                sts_auth: auth("sts"),
                store: store.clone(),
                config,
            }),
        }
    }

    fn authenticator(&self, service: Service) -> &Authenticator {
        match service {
            Service::Iam => &self.inner.iam_auth,
            Service::Sts => &self.inner.sts_auth,
        }
    }
}

/// True for a request of the Query protocol: a `POST` with a form body and no
/// `X-Amz-Target` (which marks the JSON protocol of ECR), or a `GET` whose query string has
/// an `Action`.
pub fn is_query_request<B>(req: &http::Request<B>) -> bool {
    if req.method() == Method::POST {
        let form = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        form && !req.headers().contains_key("x-amz-target")
    } else if req.method() == Method::GET {
        req.uri()
            .query()
            .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "Action"))
    } else {
        false
    }
}

/// A router serving only the Query API on `/` (for tests and embedding).
pub fn router(state: IamApiState) -> axum::Router {
    axum::Router::new().route(
        "/",
        axum::routing::get(dispatch)
            .post(dispatch)
            .with_state(state),
    )
}

async fn dispatch(State(state): State<IamApiState>, req: Request) -> Response {
    handle(&state, req).await
}

/// Serves one Query request (the server routes `/` here when [`is_query_request`]). Put
/// [`berth_access::ConnInfo`] in the request extensions to give policies `aws:SourceIp` and
/// `aws:SecureTransport`.
pub async fn handle(state: &IamApiState, mut req: Request) -> Response {
    // The server's request layer assigns ids; standalone (tests, embedding) we do.
    let request_id = match req.extensions_mut().remove::<RequestId>() {
        Some(RequestId(id)) => id,
        None => berth_aws_service::request_id(),
    };
    let span = tracing::info_span!("iam", op = tracing::field::Empty, request_id = %request_id);
    // Until the action is known, errors use the IAM namespace.
    let mut resolved: Option<IamOperation> = None;
    let mut resp = async {
        let result = serve(state, req, &mut resolved).await;
        let service = resolved.map_or(Service::Iam, IamOperation::service);
        match result {
            Ok((op, inner)) => query_response(
                StatusCode::OK,
                success_document(op, inner, &request_id),
                &request_id,
            ),
            Err(e) => {
                let wire = to_wire(&e);
                if wire.status.is_server_error() {
                    tracing::error!(error = ?e, "IAM request failed");
                } else {
                    tracing::info!(code = wire.code, message = %wire.message, "IAM request refused");
                }
                let mut resp = query_response(
                    wire.status,
                    wire.to_xml(service.xml_namespace(), &request_id),
                    &request_id,
                );
                resp.extensions_mut().insert(ErrorCode(wire.code));
                resp
            }
        }
    }
    .instrument(span)
    .await;
    resp.extensions_mut().insert(OperationName {
        edge: resolved.map_or(Service::Iam, IamOperation::service).name(),
        name: resolved.map_or("Unknown", IamOperation::name),
    });
    resp
}

/// `<ActionResponse xmlns><ActionResult>...</ActionResult><ResponseMetadata>...`.
fn success_document(op: IamOperation, inner: Xml, request_id: &str) -> String {
    let response = format!("{}Response", op.name());
    let mut x = Xml::new();
    x.open_ns(&response, op.service().xml_namespace());
    if op.has_result() {
        let result = format!("{}Result", op.name());
        x.open(&result).raw_fragment(&inner).close(&result);
    }
    x.open("ResponseMetadata")
        .text("RequestId", request_id)
        .close("ResponseMetadata");
    x.close(&response);
    x.finish()
}

async fn serve(
    state: &IamApiState,
    req: Request,
    resolved: &mut Option<IamOperation>,
) -> Result<(IamOperation, Xml), IamApiError> {
    let conn = conn_info(&req);
    let (parts, body) = req.into_parts();
    let body = read_body(body, MAX_BODY).await.map_err(|e| match e {
        BodyError::TooLarge { limit } => IamApiError::BodyTooLarge { limit },
        BodyError::Read(source) => {
            IamApiError::Validation(format!("could not read the request body: {source}"))
        }
    })?;
    let form_body = (parts.method == Method::POST).then_some(&body[..]);
    let params = Params::parse(parts.uri.query(), form_body);
    let op = IamOperation::resolve(params.get("Action"), params.get("Version"))?;
    *resolved = Some(op);
    tracing::Span::current().record("op", op.name());
    let now = OffsetDateTime::now_utc();
    let caller = state
        .authenticator(op.service())
        .authenticate(&parts, &body, now)
        .await?;
    // Authorization, once, before any handler runs: the target the operation names, looked
    // up for its ARN; a missing user or group is NoSuchEntity only once authorized.
    let store = state.inner.store.as_ref();
    let resolved = requirements::resolve(store, &caller, op.target(&params)?).await?;
    // IAM is global: AWS evaluates its requests in us-east-1.
    let region = match op.service() {
        Service::Iam => IAM_SIGNING_REGION,
        Service::Sts => state.inner.config.region.as_str(),
    };
    let requirements = op.requirements(&resolved, &caller, region)?;
    authorize_identity(&caller, &requirements, &RequestEnv { conn, region, now })?;
    let subject = resolved.subject?;
    let ctx = handlers::Ctx {
        store,
        caller: &caller,
        params: &params,
        subject: &subject,
    };
    let inner = handlers::handle(&ctx, op).await?;
    Ok((op, inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, uri: &str, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn query_requests_are_told_apart_from_ecr_and_oci() {
        let form = (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        );
        assert!(is_query_request(&req(Method::POST, "/", &[form])));
        assert!(!is_query_request(&req(
            Method::POST,
            "/",
            &[
                form,
                ("x-amz-target", "AmazonEC2ContainerRegistry_V20150921.X")
            ]
        )));
        assert!(!is_query_request(&req(
            Method::POST,
            "/",
            &[("content-type", "application/x-amz-json-1.1")]
        )));
        assert!(!is_query_request(&req(Method::POST, "/", &[])));
        assert!(is_query_request(&req(
            Method::GET,
            "/?Action=GetCallerIdentity&Version=2011-06-15",
            &[]
        )));
        assert!(!is_query_request(&req(Method::GET, "/", &[])));
        assert!(!is_query_request(&req(Method::GET, "/?Actions=1", &[])));
        assert!(!is_query_request(&req(
            Method::PUT,
            "/?Action=GetUser",
            &[]
        )));
    }

    #[test]
    fn success_documents_follow_the_model() {
        let mut inner = Xml::new();
        inner.text("Account", "123456789012");
        assert_eq!(
            success_document(IamOperation::GetCallerIdentity, inner, "r1"),
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <GetCallerIdentityResult><Account>123456789012</Account></GetCallerIdentityResult>\
             <ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata>\
             </GetCallerIdentityResponse>"
        );
        assert_eq!(
            success_document(IamOperation::DeleteUser, Xml::new(), "r2"),
            "<DeleteUserResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">\
             <ResponseMetadata><RequestId>r2</RequestId></ResponseMetadata></DeleteUserResponse>"
        );
    }
}
