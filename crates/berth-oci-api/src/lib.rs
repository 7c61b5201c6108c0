//! # berth-oci-api
//!
//! The OCI Distribution Specification v1.1 edge, served under `/v2`. Each request is
//! parsed into one [`OciOperation`] ([`operation::route`]), handled by calling the core
//! [`Registry`], and any domain error is mapped to the wire in one place ([`error`]).
//! This crate never touches SQL or files. In front of it, the [`gate`] authenticates and
//! authorizes each request with `berth-access` (the handlers know nothing of identities).
//!
//! May depend on: `berth-types`, `berth-registry`, `berth-access`; on no other edge.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

pub mod error;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod gate;
mod handlers;
pub mod headers;
pub mod operation;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::HeaderValue;
use tracing::Instrument;

use berth_registry::Registry;
use berth_types::telemetry::{OperationName, RequestId};
use berth_types::AccountId;

pub use error::OciError;
pub use operation::{OciOperation, Route};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registry: Registry,
    /// The registry a request addresses when no [`RegistryAccount`] says otherwise.
    pub default_account: AccountId,
}

/// Which account's registry a request addresses. A layer in front (the gate, which routes
/// by host name) inserts it as a request extension; without it a request addresses
/// [`AppState::default_account`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryAccount(pub AccountId);

/// The `/v2` router. Every path under `/v2` goes through [`dispatch`].
pub fn router(registry: Registry, default_account: AccountId) -> Router {
    let state = AppState {
        registry,
        default_account,
    };
    Router::new()
        .route("/v2", axum::routing::any(dispatch))
        .route("/v2/", axum::routing::any(dispatch))
        .route("/v2/{*rest}", axum::routing::any(dispatch))
        .with_state(state)
}

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A request id unique within this process's life and across restarts (time prefix).
fn new_request_id() -> String {
    static BOOT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let boot = *BOOT.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    });
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{boot:x}-{n:x}")
}

/// Routes, handles and logs one request.
pub async fn dispatch(State(app): State<AppState>, mut req: Request) -> Response {
    // The server's request layer assigns ids; standalone (tests, embedding) we do.
    let request_id = match req.extensions_mut().remove::<RequestId>() {
        Some(RequestId(id)) => id,
        None => new_request_id(),
    };
    let started = Instant::now();
    let method = req.method().clone();
    // A layer in front (the auth gate) may have routed the request already.
    let routed = match req.extensions_mut().remove::<Route>() {
        Some(route) => Ok(route),
        None => operation::route(req.method(), req.uri().path()),
    };
    let (op_name, mut resp) = match routed {
        Ok(route) => {
            let span = tracing::info_span!(
                "request",
                op = route.op.name(),
                request_id = %request_id,
                repository = %route.name,
            );
            let account = req
                .extensions()
                .get::<RegistryAccount>()
                .map_or(app.default_account, |a| a.0);
            let resp = handlers::handle(&app, account, &route, req, &request_id)
                .instrument(span)
                .await
                .unwrap_or_else(IntoResponse::into_response);
            (route.op.name(), resp)
        }
        Err(operation::RouteError::NotFound) => ("Unrouted", OciError::not_found().into_response()),
        Err(operation::RouteError::MethodNotAllowed) => {
            ("Unrouted", OciError::method_not_allowed().into_response())
        }
    };
    resp.extensions_mut().insert(OperationName {
        edge: "oci",
        name: op_name,
    });
    let h = resp.headers_mut();
    h.insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-request-id", v);
    }
    tracing::debug!(
        op = op_name,
        %method,
        request_id = %request_id,
        status = resp.status().as_u16(),
        duration_us = started.elapsed().as_micros() as u64,
        "request finished"
    );
    resp
}
