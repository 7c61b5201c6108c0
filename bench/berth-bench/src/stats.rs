//! Latency summaries, error counters and the JSON/human result line every scenario prints.

use std::time::Duration;

use serde_json::{json, Value};

/// A bag of latency samples; percentiles by nearest rank on a sorted copy.
#[derive(Default, Clone)]
pub struct Latencies {
    samples: Vec<Duration>,
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        self.samples.push(d);
    }

    pub fn extend(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn summary(&self) -> Summary {
        let mut v = self.samples.clone();
        v.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let pct = |p: f64| -> f64 {
            if v.is_empty() {
                return f64::NAN;
            }
            let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
            ms(v[rank.clamp(1, v.len()) - 1])
        };
        Summary {
            p50_ms: pct(50.0),
            p99_ms: pct(99.0),
            max_ms: v.last().map(|d| ms(*d)).unwrap_or(f64::NAN),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Failures by kind. `verify` covers digest mismatches and incomplete listings.
#[derive(Default, Debug, Clone, Copy)]
pub struct Errors {
    pub http_5xx: u64,
    pub http_4xx: u64,
    pub transport: u64,
    pub verify: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.http_5xx + self.http_4xx + self.transport + self.verify
    }

    pub fn add(&mut self, o: Errors) {
        self.http_5xx += o.http_5xx;
        self.http_4xx += o.http_4xx;
        self.transport += o.transport;
        self.verify += o.verify;
    }

    /// Classify an error returned by the client helpers.
    pub fn count(&mut self, err: &anyhow::Error) {
        match err.downcast_ref::<crate::client::BenchError>() {
            Some(crate::client::BenchError::Status { status, .. }) if *status >= 500 => {
                self.http_5xx += 1
            }
            Some(crate::client::BenchError::Status { .. }) => self.http_4xx += 1,
            Some(crate::client::BenchError::Verify(_)) => self.verify += 1,
            _ => self.transport += 1,
        }
    }
}

/// Which direction of a metric is good; drives the ratio column of the report.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
    None,
}

impl Better {
    pub fn as_str(self) -> &'static str {
        match self {
            Better::Higher => "higher",
            Better::Lower => "lower",
            Better::None => "none",
        }
    }
}

/// One scenario's result: printed as a JSON line on stdout and a human line on stderr.
pub struct Report {
    pub scenario: String,
    pub params: Value,
    metrics: Vec<(String, f64, &'static str, Better)>,
    pub errors: Errors,
    first_error: Option<String>,
    /// Server/bench CPU and memory over the measured phase (see `procstat::Sampler`).
    pub proc_stats: Option<Value>,
    /// Requests done in a fixed-duration scenario: adds `server_cpu_ms_per_op`.
    pub ops: Option<usize>,
}

impl Report {
    pub fn new(scenario: impl Into<String>, params: Value) -> Self {
        Report {
            scenario: scenario.into(),
            params,
            metrics: Vec::new(),
            errors: Errors::default(),
            first_error: None,
            proc_stats: None,
            ops: None,
        }
    }

    pub fn metric(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
        better: Better,
    ) {
        self.metrics.push((name.into(), value, unit, better));
    }

    /// Adds `<prefix>p50_ms` and `<prefix>p99_ms` (lower is better).
    pub fn latency(&mut self, prefix: &str, s: &Summary) {
        self.metric(format!("{prefix}p50_ms"), s.p50_ms, "ms", Better::Lower);
        self.metric(format!("{prefix}p99_ms"), s.p99_ms, "ms", Better::Lower);
    }

    /// Takes over the errors counted by a tally.
    pub fn absorb(&mut self, t: &crate::runner::Tally) {
        self.errors.add(t.errors);
        if self.first_error.is_none() {
            self.first_error = t.first_error.clone();
        }
    }

    pub fn emit(mut self, tag: &str, registry: &str) {
        let proc_stats = self.proc_stats.take();
        self.metric("errors", self.errors.total() as f64, "count", Better::Lower);
        self.metric(
            "errors_5xx",
            self.errors.http_5xx as f64,
            "count",
            Better::Lower,
        );
        if let Some(ps) = &proc_stats {
            if let Some(v) = ps.get("server_cpu_s").and_then(Value::as_f64) {
                self.metric("server_cpu_s", v, "s", Better::Lower);
                if let Some(n) = self.ops.filter(|n| *n > 0) {
                    self.metric(
                        "server_cpu_ms_per_op",
                        v * 1e3 / n as f64,
                        "ms",
                        Better::Lower,
                    );
                }
            }
            if let Some(v) = ps.get("server_peak_rss_mib").and_then(Value::as_f64) {
                self.metric("server_peak_rss_mib", v, "MiB", Better::Lower);
            }
            if let Some(v) = ps.get("bench_cpu_s").and_then(Value::as_f64) {
                self.metric("bench_cpu_s", v, "s", Better::None);
            }
        }
        let metrics: Vec<Value> = self
            .metrics
            .iter()
            .map(|(n, v, u, b)| {
                let v = if v.is_finite() {
                    json!(round3(*v))
                } else {
                    Value::Null
                };
                json!({"name": n, "value": v, "unit": u, "better": b.as_str()})
            })
            .collect();
        let line = json!({
            "scenario": self.scenario,
            "server": tag,
            "registry": registry,
            "params": self.params,
            "metrics": metrics,
            "errors": {
                "http_5xx": self.errors.http_5xx,
                "http_4xx": self.errors.http_4xx,
                "transport": self.errors.transport,
                "verify": self.errors.verify,
                "first": self.first_error,
            },
        });
        println!("{line}");
        let human: Vec<String> = self
            .metrics
            .iter()
            .map(|(n, v, u, _)| {
                format!("{n}={}{}", fmt_num(*v), if *u == "count" { "" } else { u })
            })
            .collect();
        eprintln!("# [{tag}] {}: {}", self.scenario, human.join(" "));
        if let Some(e) = &self.first_error {
            eprintln!("#   first error: {e}");
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Megabytes (10^6 bytes) per second.
pub fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut l = Latencies::default();
        for i in 1..=100 {
            l.record(Duration::from_millis(i));
        }
        let s = l.summary();
        assert_eq!(l.len(), 100);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
    }

    #[test]
    fn empty_is_nan() {
        assert!(Latencies::default().summary().p50_ms.is_nan());
    }
}
