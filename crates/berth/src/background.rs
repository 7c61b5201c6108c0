//! The background work of `berth serve`, as workers of the jobs layer (`berth-jobs`).
//!
//! Once per cluster (periodic passes under singleton leases in the metadata store, so
//! however many nodes share it, one runs each pass and another takes over if it dies):
//! - `upload-expiry`: abandoned uploads, every `[uploads] sweep_interval_secs` (and once on
//!   every node as it starts, before it serves: what its crash left);
//! - `gc`: a garbage-collection pass every `[gc] interval_secs` (the first one interval
//!   after start), when `[gc] enabled`;
//! - `lifecycle`: every repository's lifecycle policy every `[lifecycle] interval_secs`
//!   (the first one interval after start), when `[lifecycle] enabled`;
//! - `archive`: unfinished restores and the archive sweep, at start and every 10 minutes.
//!
//! On every node, for itself: the manifest cache follower (its own cache) and the pull-time
//! writer (its own pending pulls). Shutdown cancels them all and awaits them.

use std::sync::Arc;
use std::time::Duration;

use berth_config::Config;
use berth_jobs::{Jobs, NodeId, PassFuture, Periodic};
use berth_meta::jobs::JobStore;
use berth_registry::lifecycle::Lifecycle;
use berth_registry::Registry;

use crate::observe::Metrics;

/// How often unfinished restores are retried and the archive swept.
const ARCHIVE_EVERY: Duration = Duration::from_secs(600);

/// Starts every background worker; the returned runtime's `shutdown` stops them.
pub async fn start(
    store: Arc<dyn JobStore>,
    registry: &Registry,
    lifecycle: &Lifecycle,
    cfg: &Config,
    metrics: Option<Arc<Metrics>>,
) -> Jobs {
    let mut jobs = Jobs::new(store, NodeId::generate());
    if let Some(m) = &metrics {
        let m = m.clone();
        jobs = jobs.with_observer(Arc::new(move |name, outcome, elapsed| {
            m.record_background_pass(name, outcome.as_str(), elapsed)
        }));
    }
    tracing::debug!(node = %jobs.node(), "background workers start");

    // Before serving, whoever runs the periodic pass: what a crash of this process left.
    // On the disk backend this process alone writes the store (its data directory is
    // locked), so uploads without a row go at once; a shared store (S3) is swept by the
    // idle limit only, since a row-less upload there may be another node's push in flight.
    // Then the pass, once per cluster.
    let max_idle = Duration::from_secs(cfg.uploads.max_idle_secs);
    let at_start = match cfg.storage.backend {
        berth_config::StorageBackend::Disk => registry.expire_uploads_of_own_crash(max_idle).await,
        berth_config::StorageBackend::S3 => registry.expire_uploads(max_idle).await,
    };
    match at_start {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "expired abandoned uploads at start"),
        Err(e) => tracing::warn!(error = %e, "upload expiry at start failed"),
    }
    let expire = upload_expiry(registry.clone(), max_idle);
    let sweep = Duration::from_secs(cfg.uploads.sweep_interval_secs);
    jobs.spawn_periodic(Periodic::new("upload-expiry", sweep), expire);
    if cfg.gc.enabled {
        jobs.spawn_periodic(
            Periodic::new("gc", Duration::from_secs(cfg.gc.interval_secs)),
            gc_pass(registry, cfg, metrics),
        );
    }
    if cfg.lifecycle.enabled {
        let lifecycle = lifecycle.clone();
        jobs.spawn_periodic(
            Periodic::new(
                "lifecycle",
                Duration::from_secs(cfg.lifecycle.interval_secs),
            ),
            move || {
                let lifecycle = lifecycle.clone();
                Box::pin(async move {
                    lifecycle.execute_all().await;
                    Ok(())
                })
            },
        );
    }
    if registry.has_archive_tier() {
        // Temporary files are this node's own: removed before its first archiving.
        registry.remove_archive_leftovers().await;
        let registry = registry.clone();
        jobs.spawn_periodic(
            Periodic::new("archive", ARCHIVE_EVERY).first_after(Duration::ZERO),
            move || {
                let registry = registry.clone();
                Box::pin(async move { Ok(registry.archive_maintenance_pass().await?) })
            },
        );
    }

    // Changes made by other processes (`berth lifecycle run`, other nodes) reach this
    // node's manifest cache through the event outbox.
    let r = registry.clone();
    jobs.spawn_local("cache-follower", move |cancel| async move {
        r.follow_cache(berth_registry::CACHE_FOLLOW_EVERY, cancel.cancelled_owned())
            .await
    });
    jobs.spawn_local("pull-times", |cancel| {
        registry.flush_pull_times_until(cancel.cancelled_owned())
    });
    jobs
}

fn upload_expiry(
    registry: Registry,
    max_idle: Duration,
) -> impl Fn() -> PassFuture + Send + Sync + 'static {
    move || {
        let registry = registry.clone();
        Box::pin(async move {
            let n = registry.expire_uploads(max_idle).await?;
            if n > 0 {
                tracing::info!(removed = n, "expired abandoned uploads");
            }
            Ok(())
        })
    }
}

/// A garbage-collection pass: logs what it freed and counts it in `metrics`.
fn gc_pass(
    registry: &Registry,
    cfg: &Config,
    metrics: Option<Arc<Metrics>>,
) -> impl Fn() -> PassFuture + Send + Sync + 'static {
    let options = berth_registry::gc::GcOptions {
        grace: Duration::from_secs(cfg.gc.grace_secs),
        dry_run: false,
        duty: Some(cfg.gc.duty),
        file_scan_every: Some(berth_registry::gc::FILE_SCAN_EVERY),
    };
    let gc = registry.garbage_collector();
    move || {
        let (gc, metrics) = (gc.clone(), metrics.clone());
        Box::pin(async move {
            tracing::debug!("garbage collection pass started");
            let result = gc.run(options).await;
            if let Some(m) = &metrics {
                match &result {
                    Ok(r) => m.record_gc_pass(r),
                    Err(_) => m.record_gc_failure(),
                }
            }
            let r = result?;
            if r.freed_blobs() > 0 || r.links > 0 {
                tracing::info!(
                    blobs = r.freed_blobs(),
                    bytes = r.freed_bytes(),
                    links = r.links,
                    pending_blobs = r.pending_blobs,
                    elapsed_ms = r.elapsed_ms,
                    "garbage collection freed {} blobs ({} bytes)",
                    r.freed_blobs(),
                    r.freed_bytes()
                );
            } else {
                tracing::debug!(
                    pending_blobs = r.pending_blobs,
                    "garbage collection freed nothing"
                );
            }
            Ok(())
        })
    }
}
