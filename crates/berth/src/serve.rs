//! `berth serve`: open the stores, build the services and the HTTP app, accept
//! connections (HTTP/1.1 and HTTP/2, plain or TLS), run background jobs, and shut
//! down gracefully on SIGTERM/SIGINT.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::response::IntoResponse;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use berth_blobstore::{DiskBlobStore, DiskOptions};
use berth_config::{Config, StorageConfig};
use berth_meta::sqlite::SqliteMetaStore;
use berth_registry::{Registry, RegistryOptions};

pub fn run(cfg: Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("berth-worker")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(cfg))
}

/// Opens the blob store under the data directory and builds the registry on `meta`.
pub fn open_registry(storage: &StorageConfig, meta: SqliteMetaStore) -> anyhow::Result<Registry> {
    let data_dir = &storage.data_dir;
    let blobs = DiskBlobStore::open_with(
        data_dir,
        DiskOptions {
            fsync: storage.fsync,
        },
    )
    .with_context(|| format!("opening blob store in {}", data_dir.display()))?;
    Ok(Registry::new(
        Arc::new(meta),
        Arc::new(blobs),
        RegistryOptions::default(),
    ))
}

/// The whole HTTP application: `/v2`, the ECR API on `POST /`, and operational
/// endpoints. Other methods on `/` keep answering the OCI "not found".
pub fn app(registry: Registry, ecr: berth_ecr_api::EcrState) -> Router {
    berth_oci_api::router(registry)
        .route(
            "/",
            berth_ecr_api::service(ecr)
                .fallback(|| async { berth_oci_api::OciError::not_found().into_response() }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .fallback(|| async { berth_oci_api::OciError::not_found().into_response() })
}

/// The ECR edge's settings from the configuration; the login token key is derived from
/// the master key.
fn ecr_config(cfg: &Config) -> anyhow::Result<berth_ecr_api::EcrConfig> {
    let key =
        berth_meta::secrets::MasterKey::load(&cfg.storage.data_dir.join(crate::admin::MASTER_KEY))
            .context("loading the master key")?;
    Ok(berth_ecr_api::EcrConfig {
        account_id: cfg.registry.account_id.clone(),
        region: cfg.registry.region.clone(),
        public_host: cfg.registry.public_host.clone(),
        login_token_key: key.login_token_key(),
        max_skew: berth_ecr_api::EcrConfig::ECR_MAX_SKEW,
    })
}

fn spawn_upload_sweeper(registry: Registry, cfg: &Config) {
    let max_idle = Duration::from_secs(cfg.uploads.max_idle_secs);
    let every = Duration::from_secs(cfg.uploads.sweep_interval_secs);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match registry.expire_uploads(max_idle).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired abandoned uploads"),
                Err(e) => tracing::warn!(error = %e, "upload expiry failed"),
            }
        }
    });
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called (not
/// when first polled), so call it before announcing readiness.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

fn write_addr_file(path: &Path, addr: &std::net::SocketAddr) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, addr.to_string())?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let meta = crate::admin::open_meta(&cfg.storage)?;
    let iam = crate::admin::open_iam(&cfg.storage, meta.clone())?;
    crate::admin::bootstrap(&iam, &cfg).await?;
    let registry = open_registry(&cfg.storage, meta)?;
    let ecr = berth_ecr_api::EcrState::new(registry.clone(), Arc::new(iam), ecr_config(&cfg)?);
    let tls = crate::tls::acceptor(&cfg)?;
    let listener = TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("binding {}", cfg.server.listen))?;
    let addr = listener.local_addr()?;
    spawn_upload_sweeper(registry.clone(), &cfg);

    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        %addr,
        data_dir = %cfg.storage.data_dir.display(),
        fsync = cfg.storage.fsync,
        "berth is listening on {scheme}://{addr}"
    );
    if let Some(path) = &cfg.server.addr_file {
        write_addr_file(path, &addr).context("writing the address file")?;
    }

    let app = app(registry, ecr);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(cfg.server.header_read_timeout_secs))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Connection facts for IAM conditions (aws:SourceIp, aws:SecureTransport).
        let conn_info = berth_ecr_api::ConnInfo {
            peer_ip: Some(peer.ip()),
            secure: tls.is_some(),
        };
        let svc = TowerToHyperService::new(app.clone().map_request(
            move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(conn_info);
                req
            },
        ));
        let builder = builder.clone();
        match &tls {
            None => {
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }

    tracing::info!("shutting down: finishing in-flight requests");
    drop(listener);
    let grace = Duration::from_secs(cfg.server.shutdown_grace_secs);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
    Ok(())
}
