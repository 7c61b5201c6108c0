//! Concurrency drivers: run a closure over N items with K workers, or with K workers for a fixed
//! duration. Each worker owns a `Tally` (latencies per operation kind, bytes, errors) merged at the end.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::stats::{Errors, Latencies};

#[derive(Default)]
pub struct Tally {
    pub lat: BTreeMap<&'static str, Latencies>,
    pub bytes: u64,
    pub errors: Errors,
    pub first_error: Option<String>,
}

impl Tally {
    /// Records one operation: its latency on success, its kind of error otherwise.
    pub fn record(&mut self, kind: &'static str, d: Duration, r: Result<u64>) -> bool {
        match r {
            Ok(bytes) => {
                self.bytes += bytes;
                self.lat.entry(kind).or_default().record(d);
                true
            }
            Err(e) => {
                self.error(kind, &e);
                false
            }
        }
    }

    /// For setup work that must all succeed: an error naming `what`, how many operations
    /// failed and the first failure, if any did.
    pub fn all_ok(&self, what: &str) -> Result<()> {
        match &self.first_error {
            Some(e) => anyhow::bail!("{what}: {} failed; first: {e}", self.errors.total()),
            None => Ok(()),
        }
    }

    pub fn error(&mut self, kind: &str, e: &anyhow::Error) {
        self.errors.count(e);
        if self.first_error.is_none() {
            self.first_error = Some(format!("{kind}: {e:#}"));
        }
    }

    /// Times `f` and records it under `kind`; returns the value on success.
    pub async fn time<T, F>(&mut self, kind: &'static str, f: F) -> Option<T>
    where
        F: Future<Output = Result<(T, u64)>>,
    {
        let t = Instant::now();
        match f.await {
            Ok((v, bytes)) => {
                self.record(kind, t.elapsed(), Ok(bytes));
                Some(v)
            }
            Err(e) => {
                self.error(kind, &e);
                None
            }
        }
    }

    pub fn merge(&mut self, o: Tally) {
        for (k, l) in o.lat {
            self.lat.entry(k).or_default().extend(l);
        }
        self.bytes += o.bytes;
        self.errors.add(o.errors);
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }

    pub fn count(&self, kind: &str) -> usize {
        self.lat.get(kind).map_or(0, Latencies::len)
    }

    pub fn ops(&self) -> usize {
        self.lat.values().map(Latencies::len).sum()
    }

    pub fn get(&self, kind: &str) -> Latencies {
        self.lat.get(kind).cloned().unwrap_or_default()
    }
}

async fn join(handles: Vec<tokio::task::JoinHandle<Tally>>) -> Tally {
    let mut total = Tally::default();
    for h in handles {
        match h.await {
            Ok(t) => total.merge(t),
            Err(e) => total.error("worker", &anyhow::anyhow!("worker panicked: {e}")),
        }
    }
    total
}

/// Runs `f(i, tally)` for every i in 0..n on `concurrency` tasks; returns the merged tally and wall time.
pub async fn indexed<F, Fut>(n: usize, concurrency: usize, f: F) -> (Tally, Duration)
where
    F: Fn(usize, Tally) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Tally> + Send + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles = (0..concurrency.clamp(1, n.max(1)))
        .map(|_| {
            let (f, next) = (f.clone(), next.clone());
            tokio::spawn(async move {
                let mut t = Tally::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break t;
                    }
                    t = f(i, t).await;
                }
            })
        })
        .collect();
    let t = join(handles).await;
    (t, start.elapsed())
}

/// Runs `f(worker, iteration, tally)` in a loop on `concurrency` tasks until `duration` has passed.
pub async fn timed<F, Fut>(duration: Duration, concurrency: usize, f: F) -> (Tally, Duration)
where
    F: Fn(usize, u64, Tally) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Tally> + Send + 'static,
{
    let f = Arc::new(f);
    let start = Instant::now();
    let deadline = start + duration;
    let handles = (0..concurrency.max(1))
        .map(|w| {
            let f = f.clone();
            tokio::spawn(async move {
                let mut t = Tally::default();
                let mut iter = 0u64;
                while Instant::now() < deadline {
                    let errors = t.errors.total();
                    t = f(w, iter, t).await;
                    iter += 1;
                    if t.errors.total() > errors {
                        // Do not spin on a dead or failing server.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                t
            })
        })
        .collect();
    let t = join(handles).await;
    (t, start.elapsed())
}
