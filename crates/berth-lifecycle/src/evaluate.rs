//! Evaluating a policy against a repository's images; see [`evaluate`].

use std::cmp::Reverse;
use std::collections::BTreeSet;

use time::{Duration, OffsetDateTime};

use crate::facts::ImageFacts;
use crate::outcome::{Cause, Evaluation, ImageOutcome, Protected, RuleOutcome};
use crate::policy::{Action, CountType, LifecyclePolicy, Rule, StorageClass, TagStatus};

/// What the plan does to one image (by index into the deduplicated image list).
#[derive(Debug, Clone, Copy)]
struct Act {
    /// Index into the policy's rules.
    rule: usize,
    action: Action,
    /// For a referrer: the index of its subject.
    follows: Option<usize>,
}

/// Evaluates `policy` against a repository's `images` at time `now`. Digests should be unique; if one repeats,
/// the smallest entry (by [`ImageFacts`]'s `Ord`) is used.
///
/// The semantics are ECR's:
///
/// 1. Every rule identifies ("matches") the images its selection describes — storage class, tag status and tag
///    filters — regardless of the other rules, and picks among them by its count type: `imageCountMoreThan`
///    keeps the newest N matches (by push time, or restore time for a restored image) and picks the rest; the
///    `since*` types pick matches older than N days.
/// 2. Rules are then applied lowest priority number first. A rule acts only on picked images that no
///    higher-priority rule matched: an image is acted on by at most one rule, and an image matching a rule's
///    selection is shielded from every lower-priority rule even if that rule left it alone. Shielded images
///    still count toward a lower rule's `imageCountMoreThan`.
/// 3. An image referenced by an index (manifest list) is not expired while the index stays, nor archived while
///    the index stays pullable (Berth's reading of ECR's "not without the manifest list being deleted or
///    archived first": a child expires only with all its indexes, so a restored index is never missing one).
/// 4. Referrers (images with a `subject`) are never chosen by rules: they follow their subject — expired with
///    it, archived with it — and are otherwise kept. They are not counted by any rule.
///
/// The cost is one sort plus, per rule, one pass over the images and their tags: linear in the repository.
pub fn evaluate(
    policy: &LifecyclePolicy,
    images: &[ImageFacts],
    now: OffsetDateTime,
) -> Evaluation {
    let imgs = dedupe(images);
    let n = imgs.len();
    // `imgs` is sorted by digest, so a digest's index is a binary search away.
    let index = |d: &str| imgs.binary_search_by(|f| f.digest.as_str().cmp(d)).ok();
    let subject: Vec<Option<usize>> = imgs
        .iter()
        .map(|f| f.subject.as_deref().map(|s| index(s).unwrap_or(usize::MAX)))
        .collect();
    let mut parents: Vec<Vec<usize>> = imgs
        .iter()
        .enumerate()
        .map(|(i, f)| {
            f.parents
                .iter()
                .filter_map(|p| index(p))
                .filter(|&p| p != i)
                .collect()
        })
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut referrers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        parents[i].sort_unstable();
        parents[i].dedup();
        for &p in &parents[i] {
            children[p].push(i);
        }
        if let Some(s) = subject[i].filter(|&s| s != usize::MAX) {
            referrers[s].push(i);
        }
    }

    // Times as integers, computed once: comparing them is what evaluation mostly does.
    let nanos = |t: OffsetDateTime| t.unix_timestamp_nanos();
    let pushed: Vec<i128> = imgs
        .iter()
        .map(|f| nanos(f.effective_pushed_at()))
        .collect();
    let pulled: Vec<i128> = imgs
        .iter()
        .map(|f| nanos(f.effective_pulled_at()))
        .collect();
    let archived: Vec<Option<i128>> = imgs.iter().map(|f| f.transitioned_at.map(nanos)).collect();

    // Newest first; ties broken by digest so the order (and so `imageCountMoreThan`) never depends on input order.
    let mut newest_first: Vec<usize> = (0..n).collect();
    newest_first.sort_unstable_by_key(|&i| (Reverse(pushed[i]), Reverse(i)));

    // What rules test most, in small arrays: only tagged rules and exclusions look at the tags themselves.
    // What rules test most, laid out newest first so each rule reads it in one sequential pass; only tagged
    // rules and rule exclusions look at the tags themselves.
    struct Brief {
        index: usize,
        visible: bool,
        class: StorageClass,
        untagged: bool,
    }
    let briefs: Vec<Brief> = newest_first
        .iter()
        .map(|&i| {
            let f = imgs[i];
            Brief {
                index: i,
                visible: f.subject.is_none()
                    && !policy.exclusion().is_some_and(|e| e.excludes(&f.tags)),
                class: f.storage_class,
                untagged: f.tags.is_empty(),
            }
        })
        .collect();

    // Steps 1 and 2: rules in priority order, each claiming what it matches.
    let rules = policy.rules();
    let mut claimed = vec![false; n];
    let mut act: Vec<Option<Act>> = vec![None; n];
    let mut matched_by_rule: Vec<Vec<usize>> = Vec::with_capacity(rules.len());
    for (r, rule) in rules.iter().enumerate() {
        let mut matched: Vec<usize> = Vec::with_capacity(n);
        matched.extend(
            briefs
                .iter()
                .filter(|b| {
                    b.visible
                        && b.class == rule.storage_class
                        && match rule.tag_status {
                            TagStatus::Any => true,
                            TagStatus::Untagged => b.untagged,
                            TagStatus::Tagged => !b.untagged && selects_tags(rule, imgs[b.index]),
                        }
                        && (rule.exclude.is_none()
                            || b.untagged
                            || !excluded_by_rule(rule, imgs[b.index]))
                })
                .map(|b| b.index),
        );
        let picked: Vec<usize> = match rule.count {
            CountType::ImageCountMoreThan(keep) => {
                matched.iter().copied().skip(keep as usize).collect()
            }
            CountType::SinceImagePushed(days) => older(&matched, now, days, |i| Some(pushed[i])),
            CountType::SinceImagePulled(days) => older(&matched, now, days, |i| Some(pulled[i])),
            CountType::SinceImageTransitioned(days) => older(&matched, now, days, |i| archived[i]),
        };
        for i in picked {
            if !claimed[i] {
                act[i] = Some(Act {
                    rule: r,
                    action: rule.action,
                    follows: None,
                });
            }
        }
        for &i in &matched {
            claimed[i] = true;
        }
        matched_by_rule.push(matched);
    }

    // Step 4 (initial): referrers take their subject's action, along chains of referrers.
    let orphan = follow_subjects(&imgs, &subject, &mut act);

    // Step 3: drop actions an index forbids, and whatever followed a dropped action, until nothing changes.
    let mut protected = Vec::new();
    let mut work: Vec<usize> = (0..n).filter(|&i| act[i].is_some()).collect();
    while let Some(i) = work.pop() {
        let Some(a) = act[i] else { continue };
        let blocker = parents[i].iter().copied().find(|&p| {
            let leaving = match (a.action, act[p].map(|pa| pa.action)) {
                (Action::Expire, Some(Action::Expire)) => true,
                (Action::Expire, _) => false,
                (Action::Transition(_), Some(_)) => true,
                (Action::Transition(_), None) => imgs[p].storage_class == StorageClass::Archive,
            };
            !leaving
        });
        let dropped = match (blocker, a.follows) {
            (Some(p), _) => {
                if a.follows.is_none() {
                    protected.push(Protected {
                        digest: imgs[i].digest.clone(),
                        rule_priority: rules[a.rule].priority,
                        action: a.action,
                        kept_by: imgs[p].digest.clone(),
                    });
                }
                true
            }
            (None, Some(s)) => derive(act[s], imgs[i]).is_none_or(|d| d.action != a.action),
            (None, None) => false,
        };
        if dropped {
            act[i] = None;
            work.extend(children[i].iter().copied().filter(|&c| act[c].is_some()));
            work.extend(referrers[i].iter().copied().filter(|&c| act[c].is_some()));
        }
    }

    assemble(
        policy,
        &imgs,
        &act,
        &matched_by_rule,
        protected,
        &orphan,
        &parents,
        &subject,
        &pushed,
    )
}

/// Unique digests, sorted; a repeated digest keeps its smallest entry.
fn dedupe(images: &[ImageFacts]) -> Vec<&ImageFacts> {
    let mut v: Vec<&ImageFacts> = images.iter().collect();
    v.sort_unstable();
    v.dedup_by(|b, a| a.digest == b.digest);
    v
}

/// Whether a tagged image's tags satisfy a `tagged` rule's filter.
fn selects_tags(rule: &Rule, f: &ImageFacts) -> bool {
    rule.filter.as_ref().is_some_and(|flt| flt.matches(&f.tags))
}

/// Whether the rule's own exclusion list hides the image from it.
fn excluded_by_rule(rule: &Rule, f: &ImageFacts) -> bool {
    rule.exclude.as_ref().is_some_and(|e| e.excludes(&f.tags))
}

/// The images among `matched` whose time is more than `days` whole days before `now` (strictly).
fn older(
    matched: &[usize],
    now: OffsetDateTime,
    days: u32,
    time_of: impl Fn(usize) -> Option<i128>,
) -> Vec<usize> {
    let Some(cutoff) = now.checked_sub(Duration::days(i64::from(days))) else {
        return Vec::new();
    };
    let cutoff = cutoff.unix_timestamp_nanos();
    matched
        .iter()
        .copied()
        .filter(|&i| time_of(i).is_some_and(|t| t < cutoff))
        .collect()
}

/// A referrer's action given its subject's: expire with it; archive with it unless already archived.
fn derive(subject_act: Option<Act>, referrer: &ImageFacts) -> Option<Act> {
    let a = subject_act?;
    match a.action {
        Action::Expire => Some(a),
        Action::Transition(_) if referrer.storage_class == StorageClass::Standard => Some(a),
        Action::Transition(_) => None,
    }
}

/// Gives every referrer its subject's action (following chains), and returns which referrers are orphans (their
/// subject is absent, or the chain loops). `subject[i] == Some(usize::MAX)` marks an absent subject.
fn follow_subjects(
    imgs: &[&ImageFacts],
    subject: &[Option<usize>],
    act: &mut [Option<Act>],
) -> Vec<bool> {
    const TODO: u8 = 0;
    const ACTIVE: u8 = 1;
    const DONE: u8 = 2;
    let n = imgs.len();
    let mut state = vec![TODO; n];
    let mut orphan = vec![false; n];
    let mut stack = Vec::new();
    for start in (0..n).filter(|&i| subject[i].is_some()) {
        stack.push(start);
        while let Some(&x) = stack.last() {
            if state[x] == DONE {
                stack.pop();
                continue;
            }
            let s = subject[x].expect("only referrers are stacked");
            let resolved = if s == usize::MAX {
                Some(None)
            } else if subject[s].is_none() || state[s] == DONE {
                Some((!orphan[s]).then_some(s))
            } else if state[s] == ACTIVE {
                Some(None)
            } else {
                None
            };
            match resolved {
                Some(Some(s)) => {
                    act[x] = derive(act[s], imgs[x]).map(|a| Act {
                        follows: Some(s),
                        ..a
                    });
                    state[x] = DONE;
                    stack.pop();
                }
                Some(None) => {
                    orphan[x] = true;
                    act[x] = None;
                    state[x] = DONE;
                    stack.pop();
                }
                None => {
                    state[x] = ACTIVE;
                    stack.push(s);
                }
            }
        }
    }
    orphan
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    policy: &LifecyclePolicy,
    imgs: &[&ImageFacts],
    act: &[Option<Act>],
    matched_by_rule: &[Vec<usize>],
    mut protected: Vec<Protected>,
    orphan: &[bool],
    parents: &[Vec<usize>],
    subject: &[Option<usize>],
    pushed: &[i128],
) -> Evaluation {
    let rules = policy.rules();
    let mut rule_outcomes: Vec<RuleOutcome> = rules
        .iter()
        .zip(matched_by_rule)
        .map(|(r, m)| RuleOutcome {
            priority: r.priority,
            action: r.action,
            matched: m.iter().map(|&i| imgs[i].digest.clone()).collect(),
            expiring_images: 0,
            expiring_bytes: 0,
            transitioning_images: 0,
            transitioning_bytes: 0,
        })
        .collect();

    let mut acted: Vec<usize> = (0..imgs.len()).filter(|&i| act[i].is_some()).collect();
    acted.sort_unstable_by_key(|&i| (act[i].map(|a| a.rule), pushed[i], i));
    let mut images = Vec::with_capacity(acted.len());
    for &i in &acted {
        let a = act[i].expect("filtered");
        let f = imgs[i];
        let ro = &mut rule_outcomes[a.rule];
        match a.action {
            Action::Expire => {
                ro.expiring_images += 1;
                ro.expiring_bytes += f.size_bytes;
            }
            Action::Transition(_) => {
                ro.transitioning_images += 1;
                ro.transitioning_bytes += f.size_bytes;
            }
        }
        images.push(ImageOutcome {
            digest: f.digest.clone(),
            tags: f.tags.clone(),
            pushed_at: f.pushed_at,
            storage_class: f.storage_class,
            size_bytes: f.size_bytes,
            rule_priority: rules[a.rule].priority,
            action: a.action,
            cause: match a.follows {
                Some(s) => Cause::FollowsSubject(imgs[s].digest.clone()),
                None => Cause::Rule,
            },
        });
    }

    // One record per image (an image loses its action at most once, but stay defensive about duplicates).
    protected.sort_by(|a, b| a.digest.cmp(&b.digest));
    protected.dedup_by(|b, a| a.digest == b.digest);

    let orphan_referrers = (0..imgs.len())
        .filter(|&i| orphan[i])
        .map(|i| imgs[i].digest.clone())
        .collect();
    let execution_order = execution_order(imgs, act, parents, subject);
    Evaluation {
        images,
        rules: rule_outcomes,
        protected,
        orphan_referrers,
        execution_order,
    }
}

/// Kahn's algorithm over the acted-on images: referrer → subject, index → child; ties by digest (the image
/// list is sorted by digest, so by index). A cycle (impossible with content addressing) is broken by digest.
fn execution_order(
    imgs: &[&ImageFacts],
    act: &[Option<Act>],
    parents: &[Vec<usize>],
    subject: &[Option<usize>],
) -> Vec<String> {
    let n = imgs.len();
    let in_plan = |i: usize| act[i].is_some();
    let mut before: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut pending = vec![0usize; n];
    for i in (0..n).filter(|&i| in_plan(i)) {
        for &p in parents[i].iter().filter(|&&p| in_plan(p)) {
            before[p].push(i);
            pending[i] += 1;
        }
        if let Some(s) = subject[i].filter(|&s| s != usize::MAX && in_plan(s)) {
            before[i].push(s);
            pending[s] += 1;
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| in_plan(i) && pending[i] == 0).collect();
    let mut done = vec![false; n];
    let mut order = Vec::new();
    loop {
        let next = match ready.pop_first() {
            Some(i) => i,
            None => match (0..n).find(|&i| in_plan(i) && !done[i]) {
                Some(i) => i,
                None => break,
            },
        };
        if done[next] {
            continue;
        }
        done[next] = true;
        order.push(imgs[next].digest.clone());
        for &j in &before[next] {
            pending[j] = pending[j].saturating_sub(1);
            if pending[j] == 0 && !done[j] {
                ready.insert(j);
            }
        }
    }
    order
}
