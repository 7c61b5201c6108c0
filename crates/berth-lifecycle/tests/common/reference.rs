//! A deliberately plain transcription of ECR's evaluation rules, for images without indexes or referrers:
//! rules in priority order; each matches by storage class and tags, picks by count or age, acts on picks no
//! earlier rule matched, then shields everything it matched. Quadratic-ish and obvious; the crate's evaluator
//! must agree with it.

use std::collections::{BTreeMap, HashSet};

use berth_lifecycle::{Action, CountType, ImageFacts, LifecyclePolicy, TagStatus};
use time::{Duration, OffsetDateTime};

pub fn reference(
    policy: &LifecyclePolicy,
    images: &[ImageFacts],
    now: OffsetDateTime,
) -> BTreeMap<String, (u32, Action)> {
    let mut shielded: HashSet<&str> = HashSet::new();
    let mut out = BTreeMap::new();
    for rule in policy.rules() {
        let mut matches: Vec<&ImageFacts> = images
            .iter()
            .filter(|f| !policy.exclusion().is_some_and(|e| e.excludes(&f.tags)))
            .filter(|f| f.storage_class == rule.storage_class)
            .filter(|f| match rule.tag_status {
                TagStatus::Any => true,
                TagStatus::Untagged => f.tags.is_empty(),
                TagStatus::Tagged => rule.filter.as_ref().unwrap().matches(&f.tags),
            })
            .filter(|f| !rule.exclude.as_ref().is_some_and(|e| e.excludes(&f.tags)))
            .collect();
        // Newest first; equal times: the larger digest counts as newer.
        matches.sort_by(|a, b| {
            (b.effective_pushed_at(), &b.digest).cmp(&(a.effective_pushed_at(), &a.digest))
        });
        let older_than = |t: Option<OffsetDateTime>, days: u32| {
            t.is_some_and(|t| now - t > Duration::days(i64::from(days)))
        };
        let picked: Vec<&ImageFacts> = match rule.count {
            CountType::ImageCountMoreThan(k) => matches.iter().skip(k as usize).copied().collect(),
            CountType::SinceImagePushed(d) => matches
                .iter()
                .filter(|f| older_than(Some(f.effective_pushed_at()), d))
                .copied()
                .collect(),
            CountType::SinceImagePulled(d) => matches
                .iter()
                .filter(|f| older_than(Some(f.effective_pulled_at()), d))
                .copied()
                .collect(),
            CountType::SinceImageTransitioned(d) => matches
                .iter()
                .filter(|f| older_than(f.transitioned_at, d))
                .copied()
                .collect(),
        };
        for f in picked {
            if !shielded.contains(f.digest.as_str()) {
                out.insert(f.digest.clone(), (rule.priority, rule.action));
            }
        }
        for f in matches {
            shielded.insert(&f.digest);
        }
    }
    out
}
