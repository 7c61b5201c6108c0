//! The result of evaluating a policy: what happens to which image and why, per rule totals for the preview,
//! and a safe order to carry the plan out in.

use time::OffsetDateTime;

use crate::policy::{Action, StorageClass};

/// Why an image is acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The rule with the recorded priority selected it.
    Rule,
    /// It is a referrer (signature, SBOM, ...) and its subject, this digest, is acted on; it inherits the
    /// subject's rule priority and action (a transition only if it is not archived already).
    FollowsSubject(String),
}

/// One image the plan acts on; carries what `GetLifecyclePolicyPreview` reports per image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOutcome {
    /// The manifest digest.
    pub digest: String,
    /// Its tags, as given.
    pub tags: Vec<String>,
    /// When it was pushed.
    pub pushed_at: OffsetDateTime,
    /// Its storage class now.
    pub storage_class: StorageClass,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// `appliedRulePriority`.
    pub rule_priority: u32,
    /// What happens to it.
    pub action: Action,
    /// Why.
    pub cause: Cause,
}

/// An image a rule selected but that stays, because an index (manifest list) referencing it stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    /// The image kept.
    pub digest: String,
    /// The rule that selected it.
    pub rule_priority: u32,
    /// What that rule would have done.
    pub action: Action,
    /// An index that references it and is not leaving (the smallest such digest).
    pub kept_by: String,
}

/// What one rule did, for the preview table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleOutcome {
    /// `rulePriority`.
    pub priority: u32,
    /// The rule's action.
    pub action: Action,
    /// Every image the rule matched (its selection: storage class, tag status and filters, less exclusions),
    /// newest first — including images a higher-priority rule matched, which it counts but never acts on.
    pub matched: Vec<String>,
    /// Images expired because of this rule (its own choices and the referrers following them).
    pub expiring_images: usize,
    /// Their bytes.
    pub expiring_bytes: u64,
    /// Images transitioned to the archive because of this rule (likewise).
    pub transitioning_images: usize,
    /// Their bytes.
    pub transitioning_bytes: u64,
}

/// The plan for a repository: computed by [`crate::evaluate()`], deterministic for the same inputs in any order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Every image acted on, exactly once: by rule priority, then oldest (effective push time) first, then
    /// digest.
    pub images: Vec<ImageOutcome>,
    /// One entry per rule, in priority order.
    pub rules: Vec<RuleOutcome>,
    /// Images kept only because an index referencing them stays, by digest.
    pub protected: Vec<Protected>,
    /// Referrers whose subject is not in the repository (or whose subjects form a cycle): never acted on by a
    /// policy; by digest.
    pub orphan_referrers: Vec<String>,
    /// The digests of `images` in an order safe to carry out one by one: a referrer before its subject, an index
    /// before the images it references (ties by digest).
    pub execution_order: Vec<String>,
}

impl Evaluation {
    /// The outcome for one image, if it is acted on.
    pub fn outcome(&self, digest: &str) -> Option<&ImageOutcome> {
        self.images.iter().find(|o| o.digest == digest)
    }

    /// `expiringImageTotalCount` of the preview summary.
    pub fn expiring_count(&self) -> usize {
        self.images
            .iter()
            .filter(|o| o.action == Action::Expire)
            .count()
    }

    /// `transitioningImageTotalCounts` of the preview summary: images moving to the archive.
    pub fn transitioning_count(&self) -> usize {
        self.images
            .iter()
            .filter(|o| matches!(o.action, Action::Transition(_)))
            .count()
    }
}
