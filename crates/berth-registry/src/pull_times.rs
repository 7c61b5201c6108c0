//! ECR's `lastRecordedPullTime`, kept off the pull hot path.
//!
//! A manifest GET must not wait for (or queue) a database write: at tens of thousands of
//! pulls a second that would serialise every pull on SQLite's one writer. So a pull is
//! one short lock and a map update in memory (no allocation once the image and principal
//! are known), and a background task writes the newest pull per image in one transaction
//! every [`RegistryOptions::pull_time_flush_interval`](crate::RegistryOptions) (see
//! [`crate::Registry::flush_pull_times_until`], which writes the last batch at shutdown),
//! and on [`Registry::flush_pull_times`](crate::Registry::flush_pull_times), which
//! DescribeImages calls so that the API reads its own pulls.
//!
//! Times have one-second granularity (ECR itself refreshes the value at least once a day).
//! Pull time update exclusions (principal ARNs) are applied when a batch is written, from
//! the meta store, so a change to them takes effect for every pull not yet written. Until
//! repositories carry an account, every registry's exclusions apply to the one namespace.

use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use berth_meta::{PullTimeStore, PullTimeUpdate};
use berth_types::{Digest, RepositoryName};

use crate::error::Result;

/// Exclusions read per flush; a registry holds far fewer (the API caps them).
const MAX_EXCLUSIONS_READ: usize = 10_000;

/// Pulls not yet written: repository → image → (principal ARN, newest pull in Unix seconds).
/// Principals are kept apart so that exclusions can be applied when writing.
type Pending = HashMap<RepositoryName, HashMap<Digest, Vec<(String, i64)>>>;

pub(crate) struct PullTimes {
    meta: Arc<dyn PullTimeStore>,
    pending: parking_lot::Mutex<Pending>,
    interval: Duration,
    flusher_started: AtomicBool,
    /// One flush at a time, so batches are written in order.
    flushing: tokio::sync::Mutex<()>,
}

/// The registry clock (see `clock`): lifecycle's `sinceImagePulled` reads these times.
fn now_secs() -> i64 {
    crate::clock::now_ms().div_euclid(1000)
}

impl PullTimes {
    pub(crate) fn new(meta: Arc<dyn PullTimeStore>, interval: Duration) -> Arc<Self> {
        Arc::new(PullTimes {
            meta,
            pending: Default::default(),
            interval,
            flusher_started: AtomicBool::new(false),
            flushing: tokio::sync::Mutex::new(()),
        })
    }

    /// Notes a pull at the current second. Never touches the database.
    pub(crate) fn record(
        self: &Arc<Self>,
        repo: &RepositoryName,
        digest: &Digest,
        principal: &str,
    ) {
        self.record_at(repo, digest, principal, now_secs());
        if !self.flusher_started.load(Ordering::Relaxed) {
            self.start_flusher();
        }
    }

    pub(crate) fn record_at(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        principal: &str,
        secs: i64,
    ) {
        let mut pending = self.pending.lock();
        // Look up by reference first: the keys are allocated only for a new image.
        if !pending.contains_key(repo) {
            pending.insert(repo.clone(), HashMap::new());
        }
        let Some(images) = pending.get_mut(repo) else {
            return;
        };
        if !images.contains_key(digest) {
            images.insert(digest.clone(), Vec::new());
        }
        let Some(pulls) = images.get_mut(digest) else {
            return;
        };
        match pulls.iter_mut().find(|(p, _)| p == principal) {
            Some((_, at)) => *at = (*at).max(secs),
            None => pulls.push((principal.to_string(), secs)),
        }
    }

    /// Starts the periodic writer on the current Tokio runtime (once). It holds only a
    /// weak reference, so it ends when the registry is dropped.
    fn start_flusher(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.flusher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let interval = self.interval;
        handle.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(this) = weak.upgrade() else { break };
                if let Err(e) = this.flush().await {
                    tracing::warn!(error = %e, "could not record image pull times; will retry");
                }
            }
        });
    }

    /// Writes pending pulls every interval until `stop` resolves, then once more (the
    /// last batch). Replaces the lazily started writer ([`PullTimes::start_flusher`]).
    async fn run_flusher(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(self.interval) => {
                    if let Err(e) = self.flush().await {
                        tracing::warn!(error = %e, "could not record image pull times; will retry");
                    }
                }
            }
        }
        match self.flush().await {
            Ok(n) => tracing::debug!(images = n, "wrote pending pull times"),
            Err(e) => tracing::warn!(error = %e, "writing pending pull times failed"),
        }
    }

    /// Writes every pending pull (minus excluded principals) in one transaction. On a
    /// failure the batch goes back to the pending map, to be retried by the next flush.
    pub(crate) async fn flush(&self) -> Result<usize> {
        let _one_at_a_time = self.flushing.lock().await;
        let batch = std::mem::take(&mut *self.pending.lock());
        if batch.is_empty() {
            return Ok(0);
        }
        let exclusions: HashSet<String> = match self
            .meta
            .pull_time_exclusions(None, None, MAX_EXCLUSIONS_READ)
            .await
        {
            Ok(list) => list.into_iter().map(|e| e.principal_arn).collect(),
            Err(e) => {
                self.restore(batch);
                return Err(e.into());
            }
        };
        let updates = updates_of(&batch, &exclusions);
        match self.meta.record_pull_times(&updates).await {
            Ok(n) => Ok(n),
            Err(e) => {
                self.restore(batch);
                Err(e.into())
            }
        }
    }

    fn restore(&self, batch: Pending) {
        let mut pending = self.pending.lock();
        for (repo, images) in batch {
            let into = pending.entry(repo).or_default();
            for (digest, pulls) in images {
                let into = into.entry(digest).or_default();
                for (principal, secs) in pulls {
                    match into.iter_mut().find(|(p, _)| *p == principal) {
                        Some((_, at)) => *at = (*at).max(secs),
                        None => into.push((principal, secs)),
                    }
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn pending_images(&self) -> usize {
        self.pending.lock().values().map(HashMap::len).sum()
    }
}

impl crate::Registry {
    /// Writes this process's pending pull times every
    /// [`RegistryOptions::pull_time_flush_interval`](crate::RegistryOptions) until `stop`
    /// resolves, then the last batch. `berth serve` runs it as a per-node worker of the
    /// jobs layer (each node holds its own pending pulls) and awaits it at shutdown;
    /// without it, a writer starts on the first pull and ends with the registry.
    pub fn flush_pull_times_until(
        &self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        // Marked now, not at the first poll: a pull recorded in between must not start
        // the lazy writer too.
        self.inner
            .pull_times
            .flusher_started
            .store(true, Ordering::Release);
        let pull_times = self.inner.pull_times.clone();
        async move { pull_times.run_flusher(stop).await }
    }
}

/// The newest pull of each image by a principal not excluded.
fn updates_of(batch: &Pending, exclusions: &HashSet<String>) -> Vec<PullTimeUpdate> {
    let mut out = Vec::new();
    for (repo, images) in batch {
        for (digest, pulls) in images {
            let newest = pulls
                .iter()
                .filter(|(p, _)| !exclusions.contains(p))
                .map(|(_, secs)| *secs)
                .max();
            if let Some(secs) = newest {
                out.push(PullTimeUpdate {
                    repository: repo.clone(),
                    digest: digest.clone(),
                    at_ms: secs * 1000,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excluded_principals_do_not_count_and_the_newest_pull_wins() {
        let d1 = Digest::sha256_of(b"one");
        let d2 = Digest::sha256_of(b"two");
        let mut batch: Pending = HashMap::new();
        let repo = crate::test_repo("team/app");
        let images = batch.entry(repo).or_default();
        images.insert(
            d1.clone(),
            vec![
                ("arn:a".into(), 10),
                ("arn:excluded".into(), 30),
                ("arn:b".into(), 20),
            ],
        );
        images.insert(d2.clone(), vec![("arn:excluded".into(), 40)]);
        let excl: HashSet<String> = ["arn:excluded".to_string()].into();
        let updates = updates_of(&batch, &excl);
        assert_eq!(
            updates,
            vec![PullTimeUpdate {
                repository: crate::test_repo("team/app"),
                digest: d1,
                at_ms: 20_000
            }]
        );
        assert_eq!(updates_of(&batch, &HashSet::new()).len(), 2);
    }
}
