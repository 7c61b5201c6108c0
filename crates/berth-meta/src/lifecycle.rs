//! Lifecycle policies: the stored policy of each repository (with ECR's `lastEvaluatedAt`),
//! the latest preview of each repository with its result rows, the facts evaluation needs
//! about every image, the conditional delete execution uses, and the log of what it
//! expired.
//!
//! [`LifecycleStore`] is a trait of its own (like [`crate::EcrSettingsStore`]) so a backend
//! implements it beside the [`crate::MetaStore`] on the same database and passes
//! `lifecycle_suite` (`crate::lifecycle_store_suite!`). Nothing here parses or evaluates a policy: that is
//! `berth-lifecycle`'s job, the edge validates, `berth-registry`'s lifecycle module runs
//! previews and executions. A policy and a preview go with their repository (same
//! transaction as the repository's deletion); the expiry log is kept by repository name and
//! outlives it.

use crate::Result;
use berth_types::{Digest, RepositoryName};

/// A repository's stored lifecycle policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLifecyclePolicy {
    /// The account that set it.
    pub account: String,
    /// The text as the client sent it.
    pub text: String,
    pub updated_ms: i64,
    /// When execution last evaluated it (ECR's `lastEvaluatedAt`), if ever.
    pub last_evaluated_ms: Option<i64>,
}

/// What lifecycle evaluation needs to know about one image, read for a whole repository
/// by [`LifecycleStore::image_facts`] in one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFactsRecord {
    pub digest: String,
    /// Tags pointing at it, in lexical order.
    pub tags: Vec<String>,
    pub pushed_ms: i64,
    pub last_pull_ms: Option<i64>,
    /// ECR's `imageSizeInBytes`.
    pub size: u64,
    /// Its OCI `subject`, for a referrer.
    pub subject: Option<String>,
    /// Digests of the indexes (manifest lists) of this repository that reference it.
    pub parents: Vec<String>,
    /// Its storage status: `ACTIVE`, `ARCHIVED` or `ACTIVATING` (migration 0008).
    pub status: String,
    /// When it was last archived (ECR `lastArchivedAt`), if ever.
    pub archived_ms: Option<i64>,
    /// When it was last restored from the archive (ECR `lastActivatedAt`), if ever.
    pub activated_ms: Option<i64>,
}

/// Where a preview run stands (the model's `LifecyclePolicyPreviewStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewStatus {
    InProgress,
    Complete,
    Failed,
    /// A complete preview older than [`PREVIEW_RESULTS_TTL_MS`]: its results described the
    /// repository as it was then, so they are no longer shown. Derived when read, never
    /// stored.
    Expired,
}

impl PreviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PreviewStatus::InProgress => "IN_PROGRESS",
            PreviewStatus::Complete => "COMPLETE",
            PreviewStatus::Failed => "FAILED",
            PreviewStatus::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "IN_PROGRESS" => Some(PreviewStatus::InProgress),
            "COMPLETE" => Some(PreviewStatus::Complete),
            "FAILED" => Some(PreviewStatus::Failed),
            _ => None,
        }
    }
}

/// The latest preview of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRecord {
    pub account: String,
    /// Identifies this run (see [`LifecycleStore::finish_preview`]).
    pub generation: i64,
    /// The policy text the preview evaluates (the stored one, or the request's).
    pub policy_text: String,
    pub status: PreviewStatus,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// `summary.expiringImageTotalCount`.
    pub expiring_count: u64,
    /// `summary.transitioningImageTotalCounts` (to `ARCHIVE`).
    pub transitioning_count: u64,
    /// Why a `FAILED` preview failed (for the log; the API shows the status only).
    pub failure: Option<String>,
}

/// One row of a preview: an image the policy would act on (`LifecyclePolicyPreviewResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewResultRecord {
    /// Its place in the preview's order (rule priority, then oldest first); pages resume
    /// after it.
    pub position: i64,
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_ms: i64,
    /// `EXPIRE` or `TRANSITION`.
    pub action: String,
    /// `ARCHIVE` for a transition.
    pub target_storage_class: Option<String>,
    pub rule_priority: u32,
    /// The image's storage class now (`STANDARD` / `ARCHIVE`).
    pub storage_class: String,
    pub size: u64,
}

/// How a preview run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviewOutcome {
    Complete(Vec<PreviewResultRecord>),
    Failed(String),
}

/// The preview filter's `tagStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewTagFilter {
    Any,
    Tagged,
    Untagged,
}

/// Answer of [`LifecycleStore::start_preview`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPreview {
    /// A new run was recorded with this generation; results follow with
    /// [`LifecycleStore::finish_preview`].
    Started { generation: i64 },
    /// A run started less than the staleness limit ago is still in progress.
    InProgress,
}

/// One image that execution wants to expire, and the facts it evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub digest: Digest,
    /// The tags it had when evaluated, in any order; the delete happens only if the image
    /// has exactly these now.
    pub expected_tags: Vec<String>,
    pub rule_priority: u32,
    /// Its storage status when evaluated (`ACTIVE`, ...): an image archived or restored
    /// since is left alone.
    pub expected_status: String,
    /// For the log: size and push time as evaluated.
    pub size: u64,
    pub pushed_ms: i64,
    pub at_ms: i64,
}

/// What [`LifecycleStore::expire_images`] did to one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpireOutcome {
    /// Deleted (with its tags), and logged as the event with this id.
    Expired { event_id: i64 },
    /// Not there any more (deleted meanwhile, or the repository is gone).
    Gone,
    /// Its tags or storage status changed since evaluation (a concurrent push, an
    /// archive or restore): left alone.
    Changed,
    /// An index now references it: left alone.
    ReferencedByIndex(String),
}

/// One image execution acted on, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    pub id: i64,
    pub at_ms: i64,
    pub repository: RepositoryName,
    pub digest: String,
    pub tags: Vec<String>,
    pub rule_priority: u32,
    /// `EXPIRE`, or `TRANSITION` (to the archive).
    pub action: String,
    pub size: u64,
    pub pushed_ms: i64,
}

/// How long an `IN_PROGRESS` preview blocks a new one; older runs were lost (the server
/// stopped mid-run) and may be replaced.
pub const PREVIEW_STALE_MS: i64 = 10 * 60 * 1000;

/// How long a complete preview's results are shown; after that it reads as `EXPIRED`
/// (start a new preview to see what the policy would do now).
pub const PREVIEW_RESULTS_TTL_MS: i64 = 24 * 60 * 60 * 1000;

#[async_trait::async_trait]
pub trait LifecycleStore: Send + Sync + 'static {
    // ---- policies ----

    /// Sets (replaces) the repository's policy, keeping `last_evaluated_ms` unset for a
    /// new text; `RepositoryNotFound` if it does not exist.
    async fn put_lifecycle_policy(
        &self,
        account: &str,
        repo: &RepositoryName,
        text: &str,
        now_ms: i64,
    ) -> Result<()>;
    /// The repository's policy, if it has one (`None` also when it does not exist).
    async fn lifecycle_policy(
        &self,
        repo: &RepositoryName,
    ) -> Result<Option<StoredLifecyclePolicy>>;
    /// Deletes and returns the repository's policy, if it had one.
    async fn delete_lifecycle_policy(
        &self,
        repo: &RepositoryName,
    ) -> Result<Option<StoredLifecyclePolicy>>;
    /// Names of the repositories that have a policy, in lexical order.
    async fn repositories_with_lifecycle_policies(&self) -> Result<Vec<RepositoryName>>;
    /// Records that execution evaluated the policy at `at_ms` (`lastEvaluatedAt`), if the
    /// policy still has the text `text` (a policy replaced meanwhile was not evaluated).
    async fn mark_lifecycle_evaluated(
        &self,
        repo: &RepositoryName,
        text: &str,
        at_ms: i64,
    ) -> Result<bool>;

    // ---- facts ----

    /// Every image of the repository with what evaluation needs, in digest order; `None`
    /// when the repository does not exist. One query, whatever the repository size.
    async fn image_facts(&self, repo: &RepositoryName) -> Result<Option<Vec<ImageFactsRecord>>>;

    // ---- previews ----

    /// Starts a preview of `policy_text`, replacing the previous one (and its rows), unless
    /// one started less than [`PREVIEW_STALE_MS`] before `now_ms` is still in progress.
    /// `RepositoryNotFound` if the repository does not exist.
    async fn start_preview(
        &self,
        account: &str,
        repo: &RepositoryName,
        policy_text: &str,
        now_ms: i64,
    ) -> Result<StartPreview>;
    /// Stores how run `generation` ended; `false` (nothing written) when that run is no
    /// longer the repository's current, in-progress one.
    async fn finish_preview(
        &self,
        repo: &RepositoryName,
        generation: i64,
        outcome: &PreviewOutcome,
        now_ms: i64,
    ) -> Result<bool>;
    /// The repository's latest preview, if any.
    async fn preview(&self, repo: &RepositoryName) -> Result<Option<PreviewRecord>>;
    /// Rows of the latest preview in position order strictly after `after`, matching the
    /// filter, at most `limit`.
    async fn preview_results(
        &self,
        repo: &RepositoryName,
        filter: PreviewTagFilter,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<PreviewResultRecord>>;

    // ---- execution ----

    /// Expires images in one transaction, in the given order, each only if it still is
    /// what was evaluated: it exists, carries exactly `expected_tags`, and no index
    /// references it (an index expired earlier in the same batch no longer does). Deletes
    /// each one's tags and manifest (with the same outbox events as an image delete) and
    /// logs a [`LifecycleEvent`]. Blob bytes stay for garbage collection. Returns one
    /// outcome per expiry. Batching keeps an execution of many images to a few commits.
    async fn expire_images(
        &self,
        repo: &RepositoryName,
        expiries: &[Expiry],
    ) -> Result<Vec<ExpireOutcome>>;
    /// [`LifecycleStore::expire_images`] for one image.
    async fn expire_image(&self, repo: &RepositoryName, expiry: &Expiry) -> Result<ExpireOutcome> {
        let mut out = self
            .expire_images(repo, std::slice::from_ref(expiry))
            .await?;
        Ok(out.pop().unwrap_or(ExpireOutcome::Gone))
    }
    /// Logs that execution moved an image to the archive (action `TRANSITION`); the move
    /// itself is the archive's (`berth-registry`'s `archive_if_active`). Returns the
    /// event's id.
    async fn log_transition(&self, repo: &RepositoryName, expiry: &Expiry) -> Result<i64>;
    /// Logged expiries with an id greater than `after_id` (of one repository, or all),
    /// oldest first, at most `limit`.
    async fn lifecycle_events(
        &self,
        repository: Option<&RepositoryName>,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<LifecycleEvent>>;
    /// The newest `limit` logged expiries (of one repository, or all), newest first.
    async fn recent_lifecycle_events(
        &self,
        repository: Option<&RepositoryName>,
        limit: usize,
    ) -> Result<Vec<LifecycleEvent>>;
}
