//! `berth serve`: open the stores, build the services and the HTTP app, hand it to the
//! listener (`crate::listener`: HTTP/1.1 and HTTP/2, plain or TLS), run the background
//! workers (`crate::background`), and shut down gracefully on SIGTERM/SIGINT: requests
//! drain first, then every worker is stopped and awaited.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::response::IntoResponse;
use axum::Router;
use tokio::net::TcpSocket;
use tower::ServiceExt;

use berth_blobstore::{BlobStore, DiskArchive};
use berth_config::{Config, StorageConfig};
use berth_registry::{Registry, RegistryOptions, TemplateProvisioner};

pub fn run(cfg: Config) -> anyhow::Result<()> {
    crate::malloc::limit_arenas();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("berth-worker")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve(cfg))
}

/// Builds the registry on `stores` and `blobs` (opened by
/// [`crate::blob_backend::open_blob_store`]). Pushes to missing repositories follow the
/// account's repository creation templates (`CREATE_ON_PUSH`), as ECR's do; the
/// provisioner is returned so that caches can listen for the repositories it creates.
pub fn open_registry(
    storage: &StorageConfig,
    stores: &crate::stores::MetaStores,
    blobs: Arc<dyn BlobStore>,
) -> anyhow::Result<(Registry, Arc<TemplateProvisioner>)> {
    let data_dir = &storage.data_dir;
    let provisioner = Arc::new(TemplateProvisioner::new(stores.settings.clone()));
    let registry = Registry::with_provisioner(
        stores.meta.clone(),
        blobs,
        RegistryOptions {
            blob_redirect: storage
                .redirect
                .then(|| Duration::from_secs(storage.redirect_secs)),
            ..RegistryOptions::default()
        },
        provisioner.clone(),
    );
    // The archive storage class: zstd copies under <data dir>/archive (berth_registry::archive).
    let archive_dir = data_dir.join("archive");
    let archive = DiskArchive::open(&archive_dir, storage.fsync)
        .with_context(|| format!("opening the archive tier in {}", archive_dir.display()))?;
    registry.set_archive_tier(Arc::new(archive));
    Ok((registry, provisioner))
}

/// The whole HTTP application: `/v2`, the ECR and IAM/STS APIs on `/` (see
/// [`root_service`]), and operational endpoints (`/metrics` when `public_metrics`,
/// `/healthz` and `/readyz`: [`crate::health`]), all behind the request layer
/// ([`crate::observe`]).
pub fn app(
    registry: Registry,
    ecr: berth_ecr_api::EcrState,
    gate: berth_oci_api::gate::V2Gate,
    iam: berth_iam_api::IamApiState,
    observer: crate::observe::Observer,
    public_metrics: Option<Arc<crate::observe::Metrics>>,
    readiness: crate::health::Readiness,
) -> Router {
    let default_account = ecr.default_account();
    let app = berth_oci_api::router(registry, default_account)
        .layer(axum::middleware::from_fn_with_state(
            gate.clone(),
            berth_oci_api::gate::middleware,
        ))
        .route("/", root_service(ecr, iam, gate))
        .merge(crate::health::routes(readiness))
        .fallback(|| async { berth_oci_api::OciError::not_found().into_response() });
    let app = match public_metrics {
        Some(metrics) => app.merge(crate::observe::endpoint::routes(metrics)),
        None => app,
    };
    app.layer(axum::middleware::from_fn_with_state(
        observer,
        crate::observe::layer,
    ))
}

/// The request quotas of `[limits]`, when enabled.
fn rate_limits(cfg: &Config) -> Option<Arc<berth_access::rate_limit::RateLimits>> {
    use berth_access::rate_limit::{Rate, RateLimits};
    let l = &cfg.limits;
    if !l.enabled {
        return None;
    }
    let rate = |per_second: u32| Rate {
        per_second,
        burst: per_second.saturating_mul(l.burst_seconds),
    };
    Some(Arc::new(RateLimits::new(
        l.rates.iter().map(|(action, r)| (action.clone(), rate(*r))),
        rate(l.default_rate),
    )))
}

/// The `/v2` gate's settings from `[auth]`.
fn gate_options(cfg: &Config) -> berth_oci_api::gate::GateOptions {
    use berth_oci_api::gate::{Anonymous, ChallengeKind};
    let a = &cfg.auth;
    berth_oci_api::gate::GateOptions {
        anonymous: match a.anonymous {
            berth_config::AnonymousAccess::None => Anonymous::None,
            berth_config::AnonymousAccess::Pull => Anonymous::Pull,
            berth_config::AnonymousAccess::All => Anonymous::All,
        },
        challenge: match a.challenge {
            berth_config::Challenge::Basic => ChallengeKind::Basic,
            berth_config::Challenge::Bearer => ChallengeKind::Bearer,
        },
        credential_cache: Duration::from_secs(a.credential_cache_secs),
        bearer_token_secs: a.bearer_token_secs as i64,
    }
}

/// `/`: the IAM/STS Query API for a form-encoded `POST` without `X-Amz-Target` and for
/// `GET /?Action=...`; the ECR API (JSON 1.1) for every other `POST`, so a JSON body without
/// a target still answers ECR's `UnknownOperationException`; the OCI "not found" otherwise.
///
/// A successful IAM call may have changed keys or policies, so the `/v2` gate forgets the
/// identities it cached and the change takes effect on the next request.
fn root_service(
    ecr: berth_ecr_api::EcrState,
    iam: berth_iam_api::IamApiState,
    gate: berth_oci_api::gate::V2Gate,
) -> axum::routing::MethodRouter {
    let ecr = berth_ecr_api::router(ecr);
    axum::routing::any(move |req: axum::extract::Request| {
        let (ecr, iam, gate) = (ecr.clone(), iam.clone(), gate.clone());
        async move {
            if berth_iam_api::is_query_request(&req) {
                let resp = berth_iam_api::handle(&iam, req).await;
                if resp.status().is_success() {
                    gate.forget();
                }
                resp
            } else if req.method() == http::Method::POST {
                match ecr.oneshot(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                }
            } else {
                berth_oci_api::OciError::not_found().into_response()
            }
        }
    })
}

/// The ECR edge's settings from the configuration; the login token key is derived from
/// the master key.
fn ecr_config(cfg: &Config, login_token_key: [u8; 32]) -> anyhow::Result<berth_ecr_api::EcrConfig> {
    let default_account = cfg
        .registry
        .account_id
        .parse()
        .context("registry.account_id")?;
    Ok(berth_ecr_api::EcrConfig {
        account_id: cfg.registry.account_id.clone(),
        hosts: berth_access::RegistryHosts::new(
            default_account,
            cfg.registry.base_domain.as_deref(),
        ),
        region: cfg.registry.region.clone(),
        public_host: cfg.registry.public_host.clone(),
        login_token_key,
        max_skew: berth_ecr_api::EcrConfig::ECR_MAX_SKEW,
    })
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

/// Binds the address without listening on it yet: a port in use is reported before
/// anything else happens, and no connection is accepted (not even into the kernel's
/// queue) until every check of the start has passed ([`TcpSocket::listen`] in `serve`).
fn bind_without_listening(addr: std::net::SocketAddr) -> anyhow::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("creating the listening socket")?;
    // As `TcpListener::bind` does: a restart need not wait for old connections' TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .with_context(|| format!("binding {addr}"))?;
    Ok(socket)
}

/// The listen backlog (what tokio's `TcpListener::bind` uses).
const LISTEN_BACKLOG: u32 = 1024;

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    // Bind first: a port in use is reported before anything is created on disk.
    let socket = bind_without_listening(cfg.server.listen)?;
    // Held until the process exits: a second server on this directory is refused.
    let _lock = crate::data_dir::create_and_lock(&cfg.storage)?;
    // The blob store before the metadata: a node that cannot use its bucket (missing,
    // refused credentials, unreachable endpoint) stops before it migrates or writes to a
    // database it may share with other nodes.
    let blobs = crate::blob_backend::open_blob_store(&cfg.storage).await?;
    let stores = crate::stores::open(&cfg).await?;
    let readiness = crate::health::Readiness::new(stores.jobs.clone());
    let shutdown = crate::health::drain_then(
        shutdown,
        readiness.clone(),
        Duration::from_secs(cfg.server.drain_delay_secs),
    );
    // One key for the whole cluster: it seals secrets and signs tokens and grants.
    let key = crate::master_key::load(&cfg.storage, crate::master_key::Missing::Create)?;
    let key_source = crate::master_key::source(&cfg.storage);
    let login_token_key = key.login_token_key();
    let key_id = key.id_hex();
    let iam = stores.iam(key);
    crate::admin::bootstrap(&*iam, &*stores.settings, &cfg).await?;
    crate::master_key::check_matches_database(&*iam, &key_id, &key_source).await?;
    let (registry, provisioner) = open_registry(&cfg.storage, &stores, blobs)?;
    let iam_api = berth_iam_api::IamApiState::new(
        iam.clone(),
        berth_iam_api::IamApiConfig::new(cfg.registry.region.clone()),
    );
    // Lifecycle policies: served by the ECR API, executed by a background pass.
    let lifecycle =
        berth_registry::lifecycle::Lifecycle::new(registry.clone(), stores.lifecycle.clone());
    let ecr_config = ecr_config(&cfg, login_token_key)?;
    let gate_config = berth_oci_api::gate::GateConfig {
        hosts: ecr_config.hosts.clone(),
        region: ecr_config.region.clone(),
        public_host: ecr_config.public_host.clone(),
        login_token_key: ecr_config.login_token_key,
    };
    let ecr = berth_ecr_api::EcrState::new(
        registry.clone(),
        iam.clone(),
        stores.settings.clone(),
        ecr_config,
    )
    .with_lifecycle(lifecycle.clone());
    let tls = crate::tls::acceptor(&cfg)?;
    let listener_options = crate::listener::Options::from_config(&cfg.server);
    let addr = socket.local_addr()?;
    let metrics = cfg
        .metrics
        .enabled
        .then(|| Arc::new(crate::observe::Metrics::new(registry.clone())));
    let observer = crate::observe::Observer::new(metrics.clone());
    // Upload expiry, GC, lifecycle, archive upkeep (once per cluster); the cache follower
    // and the pull-time writer (per node). See `background.rs`.
    let jobs = crate::background::start(
        stores.jobs.clone(),
        &registry,
        &lifecycle,
        &cfg,
        metrics.clone(),
    )
    .await;
    // `/metrics` on a listener of its own, or else on the public one.
    let public_metrics = match (&metrics, cfg.metrics.listen) {
        (Some(m), Some(listen)) => {
            let addr =
                crate::observe::endpoint::serve_separately(listen, m.clone(), observer.clone())
                    .await?;
            tracing::info!(%addr, "metrics are served on http://{addr}/metrics");
            if let Some(path) = &cfg.metrics.addr_file {
                write_addr_file(path, &addr).context("writing the metrics address file")?;
            }
            None
        }
        (m, _) => m.clone(),
    };

    // Every check has passed: only now does the port accept connections.
    let listener = socket
        .listen(LISTEN_BACKLOG)
        .with_context(|| format!("listening on {addr}"))?;
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

    let ecr = ecr.with_cache_ttl(Duration::from_secs(cfg.auth.credential_cache_secs));
    let ecr = match rate_limits(&cfg) {
        Some(limits) => ecr.with_rate_limits(limits),
        None => ecr,
    };
    // The gate shares the ECR edge's authenticator, policy cache and quotas.
    let gate = berth_oci_api::gate::V2Gate::new(
        ecr.authenticator(),
        gate_config,
        gate_options(&cfg),
        ecr.rate_limits(),
        ecr.resource_policies(),
        registry.clone(),
    );
    // A push that creates a repository from a template gives it the template's policy;
    // authorization may have cached "no policy" for that name while checking the push.
    provisioner.on_create({
        let gate = gate.clone();
        move |_| gate.forget()
    });
    let app = app(
        registry.clone(),
        ecr,
        gate,
        iam_api,
        observer,
        public_metrics,
        readiness.clone(),
    );
    // Connection facts for IAM conditions (aws:SourceIp, aws:SecureTransport).
    let conn_info = |peer: std::net::SocketAddr, secure| berth_access::ConnInfo {
        peer_ip: Some(peer.ip()),
        secure,
    };
    crate::listener::serve(
        listener,
        tls,
        app,
        conn_info,
        listener_options,
        shutdown,
        Duration::from_secs(cfg.server.shutdown_grace_secs),
    )
    .await;
    // Requests have drained: stop the background workers (the pull-time writer writes its
    // last batch as it stops), then make sure of that batch in case it was aborted.
    let grace = Duration::from_secs(cfg.server.shutdown_grace_secs);
    let report = jobs.shutdown(grace).await;
    tracing::debug!(
        stopped = report.stopped.len(),
        aborted = report.aborted.len(),
        "background workers stopped"
    );
    match registry.flush_pull_times().await {
        Ok(n) => tracing::debug!(images = n, "wrote pending pull times"),
        Err(e) => tracing::warn!(error = %e, "writing pending pull times failed"),
    }
    Ok(())
}
