//! # berth-lifecycle
//!
//! Lifecycle policies for Berth, as pure logic: the ECR lifecycle policy language (parse and validate with ECR's
//! rules and messages) and its evaluation against a repository's images into a plan — which image is expired or
//! archived, by which rule, and how many bytes each rule frees.
//!
//! **Responsible for:** [`LifecyclePolicy::parse`] (every ECR validation rule, each refusal a
//! [`LifecycleError`] worded as ECR's `InvalidParameterException`), the Berth extensions below, and
//! [`evaluate()`], which turns a policy, the facts about each image ([`ImageFacts`]) and the current time into an
//! [`Evaluation`]: per image the rule priority and action (the rows of `GetLifecyclePolicyPreview`), per rule
//! what it matched and the bytes it frees or moves (the preview table), the images kept only because an index
//! references them, and a safe order to carry the plan out in.
//!
//! **Not responsible for:** storing policies, gathering image facts, running previews or the scheduler,
//! deleting or archiving anything. The ECR API edge parses with this crate and maps [`LifecycleError`] to the
//! wire; the preview and the executor gather [`ImageFacts`] from the stores, call [`evaluate()`] and act on the
//! result — so the preview and the execution agree by construction.
//!
//! **May depend on:** nothing of Berth's; only `serde_json` (the policy grammar), `regex` (the extension) and
//! `time`. No I/O, no clock (the caller passes `now`), no async.
//!
//! ## The language (ECR's)
//! `{"rules": [rule, ...]}` with 1 to 50 rules. A rule has `rulePriority` (integer ≥ 1, unique), an optional
//! `description`, a `selection` and an `action`:
//! - `selection.tagStatus`: `tagged` (then exactly one of `tagPrefixList` — each prefix begins some tag — or
//!   `tagPatternList` — each pattern, with at most four `*` wildcards, matches some whole tag), `untagged` or
//!   `any` (then neither list).
//! - `selection.storageClass`: `standard` (the default) or `archive`; `archive` exactly with
//!   `sinceImageTransitioned`.
//! - `selection.countType`: `imageCountMoreThan` (no `countUnit`), or `sinceImagePushed`, `sinceImagePulled`,
//!   `sinceImageTransitioned` (with `countUnit` `days`); `selection.countNumber` ≥ 1 (≥ 90 for
//!   `sinceImageTransitioned`).
//! - `action.type`: `expire`, or `transition` with `targetStorageClass` `archive`. `sinceImagePulled` only
//!   transitions; `sinceImageTransitioned` only expires.
//! - Between rules, per storage class: the `any` rule has the highest priority number, at most one rule selects
//!   untagged images, and no two rules have the same set of prefixes (or patterns).
//! - The text is at most 30,720 characters ([`limits`]).
//!
//! ## Evaluation (ECR's)
//! Every rule identifies its matches (storage class, tag status, tags) regardless of the others and picks among
//! them by its count type; rules then apply lowest priority number first; an image is acted on by at most one
//! rule and never by a rule of lower priority than one whose selection it matches (such images still count for
//! `imageCountMoreThan`, which keeps the newest N by push time); ages are strict ("more than N days"); images
//! referenced by an index stay while it does; referrers follow their subject. [`evaluate()`] documents
//! each step.
//!
//! ## Berth extensions (opt-in)
//! Every extension key begins with `berth`, so a policy ECR accepts never contains one and keeps exactly ECR's
//! meaning. [`LifecyclePolicy::uses_extensions`] tells whether a policy uses any.
//! - `selection.berthTagRegexList`: with `tagStatus` `tagged`, instead of `tagPrefixList`/`tagPatternList`:
//!   each regular expression (syntax of the `regex` crate, searched within the tag; anchor with `^…$`) must match
//!   some tag.
//! - `selection.berthExclude`: `{"tagPrefixList"?, "tagPatternList"?, "tagRegexList"?}`: images with a tag
//!   matching any entry are invisible to this rule (not matched, not counted, not shielded from later rules).
//! - top-level `berthExclude`: the same object; images it excludes are invisible to the whole policy and are
//!   never acted on ("never expire tags matching `^v[0-9]+`").
//! - `selection.berthAllowExpire: true`: lets a `sinceImagePulled` rule `expire` (ECR only lets it
//!   `transition`); allowed on no other rule.
//!
//! docs/LIFECYCLE.md has worked examples of each.
//!
//! ## Use
//! ```
//! use berth_lifecycle::{evaluate, Action, ImageFacts, LifecyclePolicy};
//! use time::macros::datetime;
//!
//! let policy = LifecyclePolicy::parse(
//!     r#"{"rules":[{"rulePriority":1,"description":"keep one untagged image",
//!         "selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},
//!         "action":{"type":"expire"}}]}"#,
//! )?;
//! let images = [
//!     ImageFacts::new("sha256:old", datetime!(2026-01-01 0:00 UTC), 100),
//!     ImageFacts::new("sha256:new", datetime!(2026-02-01 0:00 UTC), 100),
//!     ImageFacts::new("sha256:tagged", datetime!(2025-01-01 0:00 UTC), 100).tagged(["v1"]),
//! ];
//! let plan = evaluate(&policy, &images, datetime!(2026-03-01 0:00 UTC));
//! assert_eq!(plan.images.len(), 1);
//! assert_eq!((plan.images[0].digest.as_str(), plan.images[0].action), ("sha256:old", Action::Expire));
//! assert_eq!(plan.rules[0].expiring_bytes, 100);
//!
//! let refused = LifecyclePolicy::parse(r#"{"rules":[]}"#).unwrap_err();
//! assert!(refused.to_string().starts_with("Invalid parameter at 'LifecyclePolicyText'"));
//! # Ok::<(), berth_lifecycle::LifecycleError>(())
//! ```
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod error;
mod evaluate;
mod facts;
#[doc(hidden)]
pub mod fuzz_entry;
pub mod limits;
mod matcher;
mod outcome;
mod parse;
mod policy;

pub use error::LifecycleError;
pub use evaluate::evaluate;
pub use facts::ImageFacts;
pub use matcher::{Exclusion, TagFilter, TagRegex, Wildcard};
pub use outcome::{Cause, Evaluation, ImageOutcome, Protected, RuleOutcome};
pub use policy::{Action, CountType, LifecyclePolicy, Rule, StorageClass, TagStatus};
