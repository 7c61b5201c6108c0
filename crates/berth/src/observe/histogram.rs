//! A latency histogram made of atomics, encoded by `prometheus-client`.
//!
//! `prometheus_client::metrics::histogram::Histogram` takes a mutex on every observation;
//! this one costs a request two relaxed increments (its bucket and the sum), so counting
//! never serialises requests that finish at the same time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds in microseconds: from a cached manifest `HEAD` (~0.1 ms) to a large blob
/// upload (a minute).
const BOUNDS_MICROS: [u64; 18] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

#[derive(Debug, Default)]
struct Inner {
    /// Observations per bucket, not cumulative; the last one is `+Inf`.
    buckets: [AtomicU64; BOUNDS_MICROS.len() + 1],
    sum_micros: AtomicU64,
}

/// Durations in seconds, bucketed by [`BOUNDS_MICROS`]. Clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct LatencyHistogram {
    inner: Arc<Inner>,
}

impl LatencyHistogram {
    pub fn observe(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        // The first bucket whose bound is at least the value (`le` is inclusive).
        let i = BOUNDS_MICROS.partition_point(|&b| b < micros);
        self.inner.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let bounds = BOUNDS_MICROS
            .iter()
            .map(|&b| b as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY));
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.inner.buckets)
            .map(|(bound, n)| (bound, n.load(Ordering::Relaxed)))
            .collect();
        // The count is the buckets' total, so `_count` always equals the `+Inf` bucket.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.inner.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::prometheus_text::encode;
    use prometheus_client::registry::Registry;

    #[test]
    fn observations_land_in_inclusive_buckets_and_encode_cumulatively() {
        let h = LatencyHistogram::default();
        let mut registry = Registry::default();
        registry.register("latency_seconds", "Latency", h.clone());
        h.observe(Duration::from_micros(100)); // exactly on the first bound
        h.observe(Duration::from_micros(101));
        h.observe(Duration::from_secs(3600)); // past the last bound
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("# TYPE latency_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{le=\"0.0001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{le=\"0.00025\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{le=\"60\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("latency_seconds_count 3\n"), "{text}");
        assert!(text.contains("latency_seconds_sum 3600.000201\n"), "{text}");
    }
}
