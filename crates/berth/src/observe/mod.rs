//! The server's request layer, in front of every route: it gives each request its id
//! (`X-Request-Id` on every response, early refusals and `/healthz` included), counts
//! requests, latencies and body bytes for `/metrics`, and logs failed logins at a
//! bounded rate. The edges tell it which operation they served and which error code
//! answered ([`berth_types::telemetry`]); it needs nothing else from them.

pub mod auth_failures;
mod body;
pub mod endpoint;
mod histogram;
pub mod metrics;
mod request_id;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, Method};
use http_body::Body as _;

use berth_types::telemetry::{ErrorCode, OperationName, RequestId};

pub use metrics::Metrics;

/// What the layer records into. Cheap to clone.
#[derive(Clone)]
pub struct Observer {
    /// `None` with `[metrics] enabled = false`: ids and the login log only.
    metrics: Option<Arc<Metrics>>,
    logins: Arc<auth_failures::FailedLogins>,
}

impl Observer {
    /// Starts the failed-login summary; call from within the runtime.
    pub fn new(metrics: Option<Arc<Metrics>>) -> Self {
        let logins = Arc::new(auth_failures::FailedLogins::default());
        logins.clone().spawn_summary();
        Observer { metrics, logins }
    }
}

/// The layer, for `axum::middleware::from_fn_with_state`.
pub async fn layer(State(observer): State<Observer>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id::for_request(req.headers());
    // Kept for the few responses no edge labelled (the /v2 gate's early answers).
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let had_credentials = req.headers().contains_key(http::header::AUTHORIZATION);
    let peer = req
        .extensions()
        .get::<berth_access::ConnInfo>()
        .and_then(|c| c.peer_ip);
    let mut id_header = HeaderValue::from_str(&id).ok();
    req.extensions_mut().insert(RequestId(id));
    // Bodies known to be empty (GET, HEAD) are not wrapped: that saves an allocation.
    if let Some(m) = observer
        .metrics
        .as_ref()
        .filter(|_| !req.body().is_end_stream())
    {
        req = req.map(|b| Body::new(body::CountingBody::new(b, m.received_bytes())));
    }

    let mut resp = next.run(req).await;

    let headers = resp.headers_mut();
    if !headers.contains_key(request_id::HEADER) {
        // An AWS edge that made its own id has it in `x-amzn-RequestId`: keep one id.
        if let Some(aws_id) = headers.get("x-amzn-requestid") {
            id_header = Some(aws_id.clone());
        }
        if let Some(v) = id_header {
            headers.insert(request_id::HEADER, v);
        }
    }
    let op = resp
        .extensions()
        .get::<OperationName>()
        .copied()
        .unwrap_or_else(|| unlabelled(&method, uri.path()));
    if let Some(reason) = resp
        .extensions()
        .get::<ErrorCode>()
        .and_then(|code| auth_failures::reason(code.0, had_credentials))
    {
        if let Some(m) = &observer.metrics {
            m.record_auth_failure(op.edge, reason);
        }
        if auth_failures::is_failed_login(reason) {
            let id = resp.headers().get(request_id::HEADER);
            let id = id.and_then(|v| v.to_str().ok()).unwrap_or_default();
            observer.logins.record(peer, op.edge, reason, id);
        }
    }
    if let Some(m) = &observer.metrics {
        let labels = metrics::RequestLabels {
            edge: op.edge,
            operation: op.name,
            status: resp.status().as_u16(),
        };
        m.record_request(labels, started.elapsed());
        if !resp.body().is_end_stream() {
            resp = resp.map(|b| Body::new(body::CountingBody::new(b, m.sent_bytes())));
        }
    }
    resp
}

/// The operation of a response no edge labelled: a `/v2` request the gate answered
/// before the OCI edge saw it, or one of the server's own routes.
fn unlabelled(method: &Method, path: &str) -> OperationName {
    if path == "/v2" || path.starts_with("/v2/") {
        let name =
            berth_oci_api::operation::route(method, path).map_or("Unrouted", |r| r.op.name());
        return OperationName { edge: "oci", name };
    }
    server_operation("NotFound")
}

/// The label of the server's own routes (`/healthz`, `/metrics`, the fallback 404).
pub fn server_operation(name: &'static str) -> OperationName {
    OperationName {
        edge: "server",
        name,
    }
}
