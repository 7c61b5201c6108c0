//! `GET /metrics`, on the public listener or on one of its own (`[metrics] listen`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Router;
use http::header::CONTENT_TYPE;
use tokio::net::TcpListener;

use super::{Metrics, Observer};

pub const PATH: &str = "/metrics";

/// The route alone, to merge into an application.
pub fn routes(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(PATH, axum::routing::get(scrape))
        .with_state(metrics)
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        axum::Extension(super::server_operation("Metrics")),
        [(CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
        metrics.render(),
    )
}

/// Binds `listen` and serves `/metrics` there (plain HTTP) until the process ends.
/// Returns the bound address.
pub async fn serve_separately(
    listen: SocketAddr,
    metrics: Arc<Metrics>,
    observer: Observer,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the metrics listener {listen}"))?;
    let addr = listener.local_addr()?;
    let app = routes(metrics)
        .fallback(|| async { http::StatusCode::NOT_FOUND })
        .layer(axum::middleware::from_fn_with_state(observer, super::layer));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(addr)
}
