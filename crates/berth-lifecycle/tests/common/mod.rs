//! Helpers shared by the integration tests: a fixed clock, image literals, and a plain reference evaluator.
#![allow(dead_code)]

pub mod invariants;
pub mod reference;

use berth_lifecycle::{Action, Evaluation, ImageFacts, LifecyclePolicy, StorageClass};
use time::{Duration, OffsetDateTime};

/// The fixed "now" of every test.
pub fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-06-01 12:00 UTC)
}

/// `days` (possibly fractional) before [`now`].
pub fn ago(days: f64) -> OffsetDateTime {
    now() - Duration::seconds_f64(days * 86_400.0)
}

/// An image pushed `days` ago with these tags and 1 MiB per image unless changed.
pub fn image(digest: &str, tags: &[&str], pushed_days_ago: f64) -> ImageFacts {
    ImageFacts::new(digest, ago(pushed_days_ago), 1 << 20).tagged(tags.iter().copied())
}

/// The same image, archived `days` ago.
pub fn archived(mut f: ImageFacts, days_ago: f64) -> ImageFacts {
    f.storage_class = StorageClass::Archive;
    f.transitioned_at = Some(ago(days_ago));
    f
}

pub fn parse(text: &str) -> LifecyclePolicy {
    LifecyclePolicy::parse(text).unwrap_or_else(|e| panic!("policy should parse: {e}\n{text}"))
}

/// `(digest, rule priority, action)` for every acted-on image, sorted by digest.
pub fn plan(ev: &Evaluation) -> Vec<(String, u32, Action)> {
    let mut v: Vec<_> = ev
        .images
        .iter()
        .map(|o| (o.digest.clone(), o.rule_priority, o.action))
        .collect();
    v.sort();
    v
}

pub const EXPIRE: Action = Action::Expire;
pub const ARCHIVE: Action = Action::Transition(StorageClass::Archive);
