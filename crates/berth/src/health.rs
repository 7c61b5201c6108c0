//! `/healthz` and `/readyz`, for process supervisors and load balancers.
//!
//! `/healthz` answers `ok` while the process serves HTTP at all (liveness). `/readyz`
//! answers whether this node should get traffic: 503 `draining` from SIGTERM until the
//! listener closes (`[server] drain_delay_secs`), so a balancer's health checks take the
//! node out of rotation while it still serves what reaches it; 503 when the metadata
//! database does not answer a query within [`PING_TIMEOUT`]; else 200 `ready`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;

use berth_meta::jobs::JobStore;

/// How long `/readyz` waits for the database. Shorter than any sensible health-check
/// timeout, so the balancer sees a 503 rather than a timeout.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/readyz` looks at. Cheap to clone.
#[derive(Clone)]
pub struct Readiness {
    jobs: Arc<dyn JobStore>,
    draining: Arc<AtomicBool>,
}

impl Readiness {
    pub fn new(jobs: Arc<dyn JobStore>) -> Readiness {
        Readiness {
            jobs,
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// From now on `/readyz` answers 503 `draining`; requests are still served.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    async fn check(&self) -> (StatusCode, &'static str) {
        if self.draining.load(Ordering::SeqCst) {
            return (StatusCode::SERVICE_UNAVAILABLE, "draining\n");
        }
        match tokio::time::timeout(PING_TIMEOUT, self.jobs.ping()).await {
            Ok(Ok(())) => (StatusCode::OK, "ready\n"),
            Ok(Err(e)) => {
                // MetaError's messages never carry the database URL or its password.
                tracing::warn!(error = %e, "readiness: the metadata database failed a query");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "metadata database unavailable\n",
                )
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = PING_TIMEOUT.as_millis() as u64,
                    "readiness: the metadata database did not answer in time"
                );
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "metadata database unavailable\n",
                )
            }
        }
    }
}

/// The routes `/healthz` and `/readyz`.
pub fn routes(readiness: Readiness) -> axum::Router {
    axum::Router::new()
        .route(
            "/healthz",
            axum::routing::get(|| async {
                (
                    axum::Extension(crate::observe::server_operation("Healthz")),
                    "ok\n",
                )
            }),
        )
        .route(
            "/readyz",
            axum::routing::get(move || {
                let readiness = readiness.clone();
                async move {
                    let (status, body) = readiness.check().await;
                    (
                        status,
                        axum::Extension(crate::observe::server_operation("Readyz")),
                        [("cache-control", "no-store")],
                        body,
                    )
                        .into_response()
                }
            }),
        )
}

/// Resolves `delay` after `signal` does, having switched `readiness` to draining at the
/// signal: the listener keeps accepting until then.
pub async fn drain_then(
    signal: impl std::future::Future<Output = ()>,
    readiness: Readiness,
    delay: Duration,
) {
    signal.await;
    if delay.is_zero() {
        return;
    }
    readiness.start_draining();
    tracing::info!(
        delay_secs = delay.as_secs(),
        "shutting down: /readyz answers 503 while requests are still served, then the listener closes"
    );
    tokio::time::sleep(delay).await;
}
