//! Running lifecycle policies against live data: previews and executions.
//!
//! Both start the same way — the repository's image facts from one store query
//! ([`LifecycleStore::image_facts`]), the registry clock's "now" ([`crate::clock`]) and
//! `berth_lifecycle::evaluate` — so a preview shows exactly what an execution at the same
//! moment would do. A preview stores the plan's rows and changes nothing else. An
//! execution carries the plan out in its safe order (referrers before their subject, an
//! index before its children), one conditional delete per image
//! ([`LifecycleStore::expire_images`], in batches): an image is expired only if, inside the deleting
//! transaction, it still has exactly the tags that were evaluated and no index references
//! it, so a concurrent push (a new tag, a new index) wins and the image stays until the
//! next evaluation. Each expiry is logged (an event in the store and an `info` line), the
//! manifest cache forgets the image exactly as after `Registry::delete_image`, and the
//! blobs stay for garbage collection. Running twice is harmless: the second run finds the
//! images gone. `TRANSITION` actions go through the registry's archive path
//! (`Registry::archive_if_active`, which archives only a still-`ACTIVE` image) and are
//! logged the same way; without an archive tier they are skipped and counted.
//!
//! [`scheduler`] runs every repository with a policy at an interval.

pub mod scheduler;

use std::collections::HashMap;
use std::sync::Arc;

use berth_lifecycle::{
    Action, Evaluation, ImageFacts, ImageOutcome, LifecycleError, LifecyclePolicy,
};
use berth_meta::lifecycle::{
    ExpireOutcome, Expiry, ImageFactsRecord, PreviewOutcome, PreviewResultRecord, StartPreview,
};
use berth_meta::LifecycleStore;
use berth_types::{Digest, RepositoryName};
use time::OffsetDateTime;

use crate::error::{RegistryError, Result};
use crate::Registry;

/// Images expired per write transaction: few commits for a large plan, short transactions
/// for concurrent pushes.
const EXPIRE_BATCH: usize = 256;

/// Previews and executions of lifecycle policies. Cheap to clone.
#[derive(Clone)]
pub struct Lifecycle {
    registry: Registry,
    store: Arc<dyn LifecycleStore>,
    /// One execution at a time in this process (the scheduler and an on-demand run).
    running: Arc<tokio::sync::Mutex<()>>,
}

/// One image an execution expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub digest: Digest,
    pub tags: Vec<String>,
    pub rule_priority: u32,
    /// ECR's image size.
    pub size: u64,
}

/// What one execution did to a repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionReport {
    /// Images expired, in the order they went.
    pub expired: Vec<Expired>,
    /// Bytes of the expired images (ECR's image sizes; shared layers are freed only when no
    /// other image uses them, by garbage collection).
    pub expired_bytes: u64,
    /// Images the plan wanted to act on but that changed meanwhile (new tag, new index,
    /// archived or restored) or were already gone, or whose archiving failed (logged).
    pub skipped: usize,
    /// Images moved to the archive (`transition` rules), in the order they went.
    pub transitioned: Vec<Expired>,
    /// Transitions not carried out because this registry has no archive tier.
    pub transitions_skipped: usize,
    /// `lastEvaluatedAt` as recorded.
    pub evaluated_at_ms: i64,
}

/// Why an execution did not run.
#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error("repository {0} has no lifecycle policy")]
    NoPolicy(String),
    /// The stored text no longer parses (stored by an older version or a template).
    #[error("the lifecycle policy of {repository} is invalid: {error}")]
    InvalidPolicy {
        repository: String,
        error: LifecycleError,
    },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<berth_meta::MetaError> for ExecutionError {
    fn from(e: berth_meta::MetaError) -> Self {
        ExecutionError::Registry(e.into())
    }
}

fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Evaluation's view of one stored image: `ARCHIVED` and `ACTIVATING` images are of the
/// archive class.
pub fn to_facts(r: &ImageFactsRecord) -> ImageFacts {
    ImageFacts {
        digest: r.digest.clone(),
        tags: r.tags.clone(),
        pushed_at: at(r.pushed_ms),
        last_pulled_at: r.last_pull_ms.map(at),
        last_activated_at: r.activated_ms.map(at),
        // An image being restored stays in the archive class until it is ACTIVE again.
        storage_class: if r.status == "ACTIVE" {
            berth_lifecycle::StorageClass::Standard
        } else {
            berth_lifecycle::StorageClass::Archive
        },
        transitioned_at: r.archived_ms.map(at),
        size_bytes: r.size,
        parents: r.parents.clone(),
        subject: r.subject.clone(),
    }
}

/// The preview rows of a plan, in its order (rule priority, then oldest first).
pub fn preview_rows(eval: &Evaluation) -> Vec<PreviewResultRecord> {
    eval.images
        .iter()
        .enumerate()
        .map(|(i, o)| PreviewResultRecord {
            position: i as i64 + 1,
            digest: o.digest.clone(),
            tags: o.tags.clone(),
            pushed_ms: (o.pushed_at.unix_timestamp_nanos() / 1_000_000) as i64,
            action: o.action.api_type().to_string(),
            target_storage_class: o.action.api_target_storage_class().map(str::to_string),
            rule_priority: o.rule_priority,
            storage_class: o.storage_class.as_api().to_string(),
            size: o.size_bytes,
        })
        .collect()
}

impl Lifecycle {
    pub fn new(registry: Registry, store: Arc<dyn LifecycleStore>) -> Self {
        Lifecycle {
            registry,
            store,
            running: Default::default(),
        }
    }

    pub fn store(&self) -> &Arc<dyn LifecycleStore> {
        &self.store
    }

    /// "Now" on the registry clock (see [`crate::clock`]).
    pub fn now_ms(&self) -> i64 {
        crate::clock::now_ms()
    }

    /// Evaluates `policy` against the repository as it is now. Pending pull times are
    /// written first so `sinceImagePulled` sees the latest pulls.
    pub async fn evaluate(
        &self,
        repo: &RepositoryName,
        policy: &LifecyclePolicy,
    ) -> Result<(Evaluation, Vec<ImageFactsRecord>, i64)> {
        if let Err(e) = self.registry.flush_pull_times().await {
            tracing::warn!(error = %e, "could not write pending pull times before a lifecycle evaluation");
        }
        let records = self
            .store
            .image_facts(repo)
            .await?
            .ok_or_else(|| RegistryError::RepositoryNotFound(repo.to_string()))?;
        let facts: Vec<ImageFacts> = records.iter().map(to_facts).collect();
        let now = self.now_ms();
        let eval = berth_lifecycle::evaluate(policy, &facts, at(now));
        Ok((eval, records, now))
    }

    /// Starts a preview of `text` (already validated by the caller) and computes it in the
    /// background; `InProgress` when one is already running.
    pub async fn start_preview(
        &self,
        account: &str,
        repo: &RepositoryName,
        text: &str,
    ) -> Result<StartPreview> {
        let started = self
            .store
            .start_preview(account, repo, text, self.now_ms())
            .await?;
        if let StartPreview::Started { generation } = started {
            let this = self.clone();
            let (repo, text) = (repo.clone(), text.to_string());
            tokio::spawn(async move { this.compute_preview(&repo, generation, &text).await });
        }
        Ok(started)
    }

    /// Computes preview run `generation` and stores how it ended.
    pub async fn compute_preview(&self, repo: &RepositoryName, generation: i64, text: &str) {
        let outcome = match LifecyclePolicy::parse(text) {
            Err(e) => PreviewOutcome::Failed(e.to_string()),
            Ok(policy) => match self.evaluate(repo, &policy).await {
                Ok((eval, _, _)) => PreviewOutcome::Complete(preview_rows(&eval)),
                Err(e) => PreviewOutcome::Failed(e.to_string()),
            },
        };
        if let PreviewOutcome::Failed(why) = &outcome {
            tracing::warn!(repository = %repo, reason = %why, "lifecycle policy preview failed");
        }
        if let Err(e) = self
            .store
            .finish_preview(repo, generation, &outcome, self.now_ms())
            .await
        {
            tracing::error!(repository = %repo, error = %e, "could not store a lifecycle policy preview");
        }
    }

    /// Evaluates the repository's stored policy and carries the plan out (see the module
    /// documentation), then records `lastEvaluatedAt`.
    pub async fn execute(
        &self,
        repo: &RepositoryName,
    ) -> std::result::Result<ExecutionReport, ExecutionError> {
        let _one_at_a_time = self.running.lock().await;
        let stored = self
            .store
            .lifecycle_policy(repo)
            .await?
            .ok_or_else(|| ExecutionError::NoPolicy(repo.to_string()))?;
        let policy = LifecyclePolicy::parse(&stored.text).map_err(|error| {
            ExecutionError::InvalidPolicy {
                repository: repo.to_string(),
                error,
            }
        })?;
        let (eval, facts, now) = self.evaluate(repo, &policy).await?;
        let mut report = ExecutionReport {
            evaluated_at_ms: now,
            ..Default::default()
        };
        let by_digest: HashMap<&str, &ImageFactsRecord> =
            facts.iter().map(|f| (f.digest.as_str(), f)).collect();
        // Evaluation::outcome searches linearly; a plan may hold 100,000 images.
        let acted: HashMap<&str, &ImageOutcome> =
            eval.images.iter().map(|o| (o.digest.as_str(), o)).collect();
        // In execution order: runs of expiries go in batches (one transaction each, every
        // image re-checked inside it); a transition first finishes the expiries before it.
        let mut batch: Vec<Expiry> = Vec::new();
        for digest in &eval.execution_order {
            let Some(outcome) = acted.get(digest.as_str()) else {
                continue;
            };
            let (Some(fact), Ok(parsed)) = (by_digest.get(digest.as_str()), digest.parse()) else {
                report.skipped += 1;
                continue;
            };
            let step = Expiry {
                digest: parsed,
                expected_tags: fact.tags.clone(),
                expected_status: fact.status.clone(),
                rule_priority: outcome.rule_priority,
                size: outcome.size_bytes,
                pushed_ms: fact.pushed_ms,
                at_ms: now,
            };
            match outcome.action {
                Action::Expire => {
                    batch.push(step);
                    if batch.len() == EXPIRE_BATCH {
                        self.expire_batch(repo, &mut batch, &mut report).await?;
                    }
                }
                Action::Transition(_) => {
                    self.expire_batch(repo, &mut batch, &mut report).await?;
                    self.transition(repo, step, &mut report).await?;
                }
            }
        }
        self.expire_batch(repo, &mut batch, &mut report).await?;
        if report.transitions_skipped > 0 {
            tracing::warn!(
                repository = %repo,
                count = report.transitions_skipped,
                "lifecycle transitions to the archive skipped: this registry has no archive tier"
            );
        }
        self.store
            .mark_lifecycle_evaluated(repo, &stored.text, now)
            .await?;
        Ok(report)
    }
}

impl Lifecycle {
    /// Expires the pending `batch` (and empties it).
    async fn expire_batch(
        &self,
        repo: &RepositoryName,
        batch: &mut Vec<Expiry>,
        report: &mut ExecutionReport,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let outcomes = self.store.expire_images(repo, batch).await?;
        for (expiry, outcome) in batch.drain(..).zip(outcomes) {
            self.record(repo, &expiry, outcome, report);
        }
        Ok(())
    }

    /// Moves one image to the archive through the registry's archive path, which archives
    /// only an image that is still `ACTIVE`, then logs it.
    async fn transition(
        &self,
        repo: &RepositoryName,
        step: Expiry,
        report: &mut ExecutionReport,
    ) -> Result<()> {
        match self.registry.archive_if_active(repo, &step.digest).await {
            Ok(true) => {
                let event_id = self.store.log_transition(repo, &step).await?;
                tracing::info!(
                    repository = %repo,
                    digest = %step.digest,
                    tags = ?step.expected_tags,
                    rule_priority = step.rule_priority,
                    size = step.size,
                    event_id,
                    "lifecycle policy archived an image"
                );
                report.transitioned.push(Expired {
                    digest: step.digest,
                    tags: step.expected_tags,
                    rule_priority: step.rule_priority,
                    size: step.size,
                });
            }
            Ok(false) => report.skipped += 1,
            Err(RegistryError::Unsupported(_)) => report.transitions_skipped += 1,
            Err(e) => {
                tracing::warn!(repository = %repo, digest = %step.digest, error = %e, "lifecycle policy could not archive an image");
                report.skipped += 1;
            }
        }
        Ok(())
    }

    /// Accounts for one image's outcome: on expiry, drops it from the manifest cache (as
    /// `Registry::delete_image` does) and logs it.
    fn record(
        &self,
        repo: &RepositoryName,
        expiry: &Expiry,
        outcome: ExpireOutcome,
        report: &mut ExecutionReport,
    ) {
        let cache = &self.registry.inner.cache;
        match outcome {
            ExpireOutcome::Expired { event_id } => {
                for t in &expiry.expected_tags {
                    cache.invalidate(repo, Some(t), None);
                }
                cache.invalidate(repo, None, Some(&expiry.digest));
                tracing::info!(
                    repository = %repo,
                    digest = %expiry.digest,
                    tags = ?expiry.expected_tags,
                    rule_priority = expiry.rule_priority,
                    size = expiry.size,
                    event_id,
                    "lifecycle policy expired an image"
                );
                self.registry.note_image_expired();
                report.expired_bytes += expiry.size;
                report.expired.push(Expired {
                    digest: expiry.digest.clone(),
                    tags: expiry.expected_tags.clone(),
                    rule_priority: expiry.rule_priority,
                    size: expiry.size,
                });
            }
            other => {
                tracing::info!(repository = %repo, digest = %expiry.digest, outcome = ?other, "lifecycle policy left a changed image alone");
                report.skipped += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
