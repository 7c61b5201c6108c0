//! The invariants every plan satisfies, checked by the property and scale tests.

use std::collections::{HashMap, HashSet};

use berth_lifecycle::{Action, Cause, Evaluation, ImageFacts, LifecyclePolicy, StorageClass};

/// Panics unless `ev`, the plan for `policy` over `images`, satisfies: (a) each image at most once, (b) a rule
/// acts only on its own matches no higher-priority rule matched, (d) referrers follow their subject (for
/// referrers without indexes of their own) and index children never leave before their index, and the rule totals
/// and execution order are consistent.
pub fn check_invariants(policy: &LifecyclePolicy, images: &[ImageFacts], ev: &Evaluation) {
    let by_digest: HashMap<&str, &ImageFacts> =
        images.iter().map(|f| (f.digest.as_str(), f)).collect();
    let acted: HashMap<&str, Action> = ev
        .images
        .iter()
        .map(|o| (o.digest.as_str(), o.action))
        .collect();

    // (a) each image at most once, and only images of the repository.
    assert_eq!(acted.len(), ev.images.len(), "an image is acted on twice");
    assert!(ev
        .images
        .iter()
        .all(|o| by_digest.contains_key(o.digest.as_str())));

    // (b) a rule acts only on its own matches that no higher-priority rule matched.
    let matched: Vec<(u32, HashSet<&str>)> = ev
        .rules
        .iter()
        .map(|r| (r.priority, r.matched.iter().map(String::as_str).collect()))
        .collect();
    for o in ev.images.iter().filter(|o| o.cause == Cause::Rule) {
        for (p, m) in &matched {
            if *p < o.rule_priority {
                assert!(
                    !m.contains(o.digest.as_str()),
                    "rule {} acted on {} matched by rule {p}",
                    o.rule_priority,
                    o.digest
                );
            } else if *p == o.rule_priority {
                assert!(
                    m.contains(o.digest.as_str()),
                    "rule {p} acted on {} it did not match",
                    o.digest
                );
            }
        }
        let rule = policy
            .rules()
            .iter()
            .find(|r| r.priority == o.rule_priority)
            .unwrap();
        assert_eq!(rule.action, o.action);
        assert!(
            by_digest[o.digest.as_str()].subject.is_none(),
            "a referrer was chosen by a rule"
        );
    }

    // (d) referrers follow their subject; children never leave before their index.
    for f in images {
        let mine = acted.get(f.digest.as_str()).copied();
        if let Some(s) = f.subject.as_deref() {
            let orphan = ev.orphan_referrers.contains(&f.digest);
            if !by_digest.contains_key(s) {
                assert!(
                    orphan,
                    "{} refers to a missing subject but is not an orphan",
                    f.digest
                );
            }
            if orphan {
                assert_eq!(mine, None, "an orphan referrer is acted on");
            }
            if !orphan {
                match acted.get(s) {
                    Some(Action::Expire) => {
                        assert_eq!(mine, Some(Action::Expire), "{} outlives {s}", f.digest)
                    }
                    Some(a) if f.storage_class == StorageClass::Standard => {
                        assert_eq!(mine, Some(*a))
                    }
                    _ => assert_eq!(mine, None, "{} acted on without its subject", f.digest),
                }
                if mine.is_some() {
                    let o = ev.outcome(&f.digest).unwrap();
                    assert_eq!(o.cause, Cause::FollowsSubject(s.to_string()));
                }
            }
        }
        for p in f
            .parents
            .iter()
            .filter(|p| by_digest.contains_key(p.as_str()) && **p != f.digest)
        {
            match mine {
                Some(Action::Expire) => {
                    assert_eq!(
                        acted.get(p.as_str()),
                        Some(&Action::Expire),
                        "{} expires while index {p} stays",
                        f.digest
                    )
                }
                Some(Action::Transition(_)) => assert!(
                    acted.contains_key(p.as_str())
                        || by_digest[p.as_str()].storage_class == StorageClass::Archive,
                    "{} archived while index {p} stays pullable",
                    f.digest
                ),
                None => {}
            }
        }
    }

    // Totals and execution order.
    let per_rule: usize = ev
        .rules
        .iter()
        .map(|r| r.expiring_images + r.transitioning_images)
        .sum();
    assert_eq!(per_rule, ev.images.len());
    let bytes: u64 = ev
        .rules
        .iter()
        .map(|r| r.expiring_bytes + r.transitioning_bytes)
        .sum();
    assert_eq!(bytes, ev.images.iter().map(|o| o.size_bytes).sum::<u64>());
    let pos: HashMap<&str, usize> = ev
        .execution_order
        .iter()
        .enumerate()
        .map(|(i, d)| (d.as_str(), i))
        .collect();
    assert_eq!(pos.len(), ev.images.len());
    for o in &ev.images {
        let f = by_digest[o.digest.as_str()];
        if let Some(s) = f.subject.as_deref().filter(|s| pos.contains_key(s)) {
            assert!(
                pos[o.digest.as_str()] < pos[s],
                "referrer after its subject"
            );
        }
        for p in f.parents.iter().filter(|p| pos.contains_key(p.as_str())) {
            assert!(
                pos[p.as_str()] < pos[o.digest.as_str()],
                "child before its index"
            );
        }
    }
}
