//! The metrics registry: what is counted, under which names and labels, and the
//! Prometheus text exposition of it.
//!
//! Labels are bounded: an edge, an operation enum's name, a status code, a failure
//! reason. Never a repository, tag, digest or caller.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Metric, Registry};

use berth_registry::gc::GcReport;

use super::histogram::LatencyHistogram;

/// The `Content-Type` of [`Metrics::render`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    pub edge: &'static str,
    pub operation: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AuthFailureLabels {
    edge: &'static str,
    reason: &'static str,
}

/// A background pass (or queued job kind) by name, and how it ended. The names are the
/// server's own (`gc`, `lifecycle`, ...), a handful.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PassLabels {
    pass: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PassName {
    pass: String,
}

/// Every metric the server keeps. One per process (tests may build several).
pub struct Metrics {
    /// Tells instances apart in the per-thread handle cache.
    id: u64,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, LatencyHistogram>,
    received_bytes: Counter,
    sent_bytes: Counter,
    auth_failures: Family<AuthFailureLabels, Counter>,
    gc_passes: Counter,
    gc_failures: Counter,
    gc_freed_blobs: Counter,
    gc_freed_bytes: Counter,
    gc_last_duration: Gauge<f64, AtomicU64>,
    background_passes: Family<PassLabels, Counter>,
    background_last_duration: Family<PassName, Gauge<f64, AtomicU64>>,
}

/// A request series' handles, cached per worker thread so that recording a request
/// takes no lock once its label set has been seen (a `Family` lookup takes a read lock).
struct Series {
    requests: Counter,
    duration: LatencyHistogram,
}

thread_local! {
    static SERIES: RefCell<HashMap<(u64, RequestLabels), Series>> = RefCell::new(HashMap::new());
}

impl Metrics {
    /// The metrics, with the registry's own figures read from `core` at each scrape.
    pub fn new(core: berth_registry::Registry) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let mut r = Registry::with_prefix("berth");
        r.register_collector(Box::new(CoreFigures(core)));
        Metrics {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            requests: registered(
                &mut r,
                "http_requests",
                "HTTP requests answered, by edge, operation and status code",
            ),
            durations: registered(
                &mut r,
                "http_request_duration_seconds",
                "Time from a request's arrival to its response headers",
            ),
            received_bytes: registered(
                &mut r,
                "http_request_body_bytes",
                "Request body bytes received",
            ),
            sent_bytes: registered(
                &mut r,
                "http_response_body_bytes",
                "Response body bytes sent",
            ),
            auth_failures: registered(
                &mut r,
                "auth_failures",
                "Requests refused by authentication or authorization, by edge and reason",
            ),
            gc_passes: registered(&mut r, "gc_passes", "Garbage collection passes completed"),
            gc_failures: registered(
                &mut r,
                "gc_failures",
                "Garbage collection passes that failed",
            ),
            gc_freed_blobs: registered(
                &mut r,
                "gc_freed_blobs",
                "Blobs garbage collection deleted",
            ),
            gc_freed_bytes: registered(&mut r, "gc_freed_bytes", "Bytes garbage collection freed"),
            gc_last_duration: registered(
                &mut r,
                "gc_last_pass_duration_seconds",
                "How long the last completed garbage collection pass took",
            ),
            background_passes: registered(
                &mut r,
                "background_passes",
                "Background passes this node ran (garbage collection, lifecycle, upload expiry, archive upkeep), by pass and outcome",
            ),
            background_last_duration: registered(
                &mut r,
                "background_last_pass_duration_seconds",
                "How long this node's last pass of each background pass took",
            ),
            // Last: the fields above register into it.
            registry: r,
        }
    }

    /// Counts one answered request.
    pub fn record_request(&self, labels: RequestLabels, elapsed: Duration) {
        SERIES.with(|cache| {
            let mut cache = cache.borrow_mut();
            let series = cache
                .entry((self.id, labels))
                .or_insert_with_key(|(_, labels)| Series {
                    requests: self.requests.get_or_create(labels).clone(),
                    duration: self.durations.get_or_create(labels).clone(),
                });
            series.requests.inc();
            series.duration.observe(elapsed);
        });
    }

    pub fn record_auth_failure(&self, edge: &'static str, reason: &'static str) {
        self.auth_failures
            .get_or_create(&AuthFailureLabels { edge, reason })
            .inc();
    }

    pub fn received_bytes(&self) -> Counter {
        self.received_bytes.clone()
    }

    pub fn sent_bytes(&self) -> Counter {
        self.sent_bytes.clone()
    }

    /// Counts a completed garbage collection pass.
    pub fn record_gc_pass(&self, r: &GcReport) {
        self.gc_passes.inc();
        self.gc_freed_blobs.inc_by(r.freed_blobs());
        self.gc_freed_bytes.inc_by(r.freed_bytes());
        self.gc_last_duration.set(r.elapsed_ms as f64 / 1e3);
    }

    pub fn record_gc_failure(&self) {
        self.gc_failures.inc();
    }

    /// Counts a background pass this node ran (see `crate::background`).
    pub fn record_background_pass(&self, pass: &str, outcome: &'static str, elapsed: Duration) {
        self.background_passes
            .get_or_create(&PassLabels {
                pass: pass.to_string(),
                outcome,
            })
            .inc();
        self.background_last_duration
            .get_or_create(&PassName {
                pass: pass.to_string(),
            })
            .set(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail; an encoder error would be a bug in a metric.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        text
    }
}

/// A new metric of type `M`, registered under `name`.
fn registered<M: Metric + Clone + Default>(registry: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

/// The registry's running figures ([`berth_registry::Registry::stats`]), read at scrape.
struct CoreFigures(berth_registry::Registry);

impl std::fmt::Debug for CoreFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CoreFigures")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CacheLabels {
    kind: &'static str,
    result: &'static str,
}

impl prometheus_client::collector::Collector for CoreFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.stats();
        let mut lookups = encoder.encode_descriptor(
            "manifest_cache_lookups",
            "Manifest cache lookups: tag to digest (kind=tag) and digest to manifest (kind=manifest)",
            None,
            MetricType::Counter,
        )?;
        for (kind, result, n) in [
            ("tag", "hit", s.tag_cache_hits),
            ("tag", "miss", s.tag_cache_misses),
            ("manifest", "hit", s.manifest_cache_hits),
            ("manifest", "miss", s.manifest_cache_misses),
        ] {
            ConstCounter::new(n).encode(lookups.encode_family(&CacheLabels { kind, result })?)?;
        }
        ConstGauge::new(s.uploads_in_progress as i64).encode(encoder.encode_descriptor(
            "uploads_in_progress",
            "Blob upload sessions open in this process",
            None,
            MetricType::Gauge,
        )?)?;
        ConstCounter::new(s.lifecycle_images_expired).encode(encoder.encode_descriptor(
            "lifecycle_images_expired",
            "Images lifecycle policies expired",
            None,
            MetricType::Counter,
        )?)?;
        Ok(())
    }
}
