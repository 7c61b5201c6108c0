//! Property tests over random repositories and random valid policies (ECR's language plus the extensions):
//! (a) no image is acted on twice, (b) no rule acts on an image a higher-priority rule matched, (c) evaluation is
//! deterministic and independent of input order, (d) referrers never outlive their subject and index children
//! never leave before their index; plus agreement with the plain reference evaluator and a consistent
//! execution order and rule totals.

mod common;

use std::collections::{HashMap, HashSet};

use berth_lifecycle::{
    evaluate, Action, Cause, Evaluation, ImageFacts, LifecyclePolicy, StorageClass,
};
use common::{ago, now, reference::reference};
use proptest::prelude::*;

const TAGS: &[&str] = &[
    "prod-1", "prod-2", "beta-1", "beta-2", "v1.0", "v2.1", "dev", "latest", "pr-7", "x-keep",
];
const PREFIXES: &[&str] = &["prod", "beta", "v", "d", "pr-", "x"];
const PATTERNS: &[&str] = &["prod*", "*-1", "v*.*", "*e*", "beta-2", "*-keep"];
const REGEXES: &[&str] = &["^v[0-9]+", "[0-9]$", "^(dev|latest)$"];

/// One generated image before digests are assigned: tags, times in days ago, class, size, relation picks.
#[derive(Debug, Clone)]
struct Gen {
    tags: Vec<usize>,
    pushed: f64,
    pulled: Option<f64>,
    restored: Option<f64>,
    archived: Option<f64>,
    size: u64,
    /// Indexes of earlier images that reference this one (an index and its children).
    parents: Vec<prop::sample::Index>,
    /// An earlier image this one refers to.
    subject: Option<prop::sample::Index>,
}

fn gen_image() -> impl Strategy<Value = Gen> {
    (
        prop::collection::vec(0..TAGS.len(), 0..3),
        0.0..400.0f64,
        prop::option::weighted(0.4, 0.0..1.0f64),
        prop::option::weighted(0.1, 0.0..1.0f64),
        prop::option::weighted(0.25, 0.0..400.0f64),
        1..10_000u64,
        prop::collection::vec(any::<prop::sample::Index>(), 0..2),
        prop::option::weighted(0.15, any::<prop::sample::Index>()),
    )
        .prop_map(
            |(tags, pushed, pulled, restored, archived, size, parents, subject)| Gen {
                tags,
                pushed,
                // Pulls and restores happen after the push: a fraction of the time since.
                pulled: pulled.map(|f| pushed * f),
                restored: restored.map(|f| pushed * f),
                archived,
                size,
                parents,
                subject,
            },
        )
}

/// Builds the repository. With `relations`, some images are children of earlier ones and some are referrers of
/// earlier ones (referrers get no parents, so the follow-the-subject property is exact).
fn build(gens: &[Gen], relations: bool) -> Vec<ImageFacts> {
    let digest = |i: usize| format!("sha256:{i:04}");
    gens.iter()
        .enumerate()
        .map(|(i, g)| {
            let mut f = ImageFacts::new(digest(i), ago(g.pushed), g.size)
                .tagged(g.tags.iter().map(|&t| TAGS[t]));
            f.last_pulled_at = g.pulled.map(ago);
            f.last_activated_at = g.restored.map(ago);
            if let Some(a) = g.archived {
                f.storage_class = StorageClass::Archive;
                f.transitioned_at = Some(ago(a.min(g.pushed)));
            }
            if relations && i > 0 {
                match g.subject {
                    Some(s) => f.subject = Some(digest(s.index(i))),
                    None => f.parents = g.parents.iter().map(|p| digest(p.index(i))).collect(),
                }
            }
            f
        })
        .collect()
}

/// A rule as random choices: tag status (0 tagged, 1 untagged, 2 any), filter kind and entries, count type and
/// number, action choice, a rule exclusion.
type RuleGen = (u8, u8, Vec<usize>, u8, u32, bool, bool);

fn gen_rule() -> impl Strategy<Value = RuleGen> {
    (
        prop::sample::select(vec![0u8, 0, 0, 1, 2]),
        0..3u8,
        prop::collection::vec(0..6usize, 1..3),
        0..4u8,
        1..200u32,
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
}

fn rule_json(
    priority: u32,
    (status, kind, entries, count, number, choice, exclude): &RuleGen,
) -> String {
    let list = |pool: &[&str]| {
        let mut v: Vec<String> = entries
            .iter()
            .map(|&e| format!("{:?}", pool[e % pool.len()]))
            .collect();
        v.dedup();
        v.join(",")
    };
    let mut sel = match status {
        0 => match kind {
            0 => format!(
                r#""tagStatus":"tagged","tagPrefixList":[{}]"#,
                list(PREFIXES)
            ),
            1 => format!(
                r#""tagStatus":"tagged","tagPatternList":[{}]"#,
                list(PATTERNS)
            ),
            _ => format!(
                r#""tagStatus":"tagged","berthTagRegexList":[{}]"#,
                list(REGEXES)
            ),
        },
        1 => r#""tagStatus":"untagged""#.to_string(),
        _ => r#""tagStatus":"any""#.to_string(),
    };
    let transition = r#""type":"transition","targetStorageClass":"archive""#;
    let action = match count {
        0 => {
            sel += &format!(
                r#","countType":"imageCountMoreThan","countNumber":{}"#,
                number % 6 + 1
            );
            if *choice {
                r#""type":"expire""#
            } else {
                transition
            }
        }
        1 => {
            sel += &format!(
                r#","countType":"sinceImagePushed","countUnit":"days","countNumber":{number}"#
            );
            if *choice {
                r#""type":"expire""#
            } else {
                transition
            }
        }
        2 => {
            sel += &format!(
                r#","countType":"sinceImagePulled","countUnit":"days","countNumber":{number}"#
            );
            if *choice {
                sel += r#","berthAllowExpire":true"#;
                r#""type":"expire""#
            } else {
                transition
            }
        }
        _ => {
            sel += &format!(
                r#","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":{}"#,
                90 + number
            );
            r#""type":"expire""#
        }
    };
    if *exclude {
        sel += r#","berthExclude":{"tagPatternList":["*-keep"]}"#;
    }
    format!(r#"{{"rulePriority":{priority},"selection":{{{sel}}},"action":{{{action}}}}}"#)
}

fn gen_policy() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((1..4u32, gen_rule()), 1..6),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(rules, global)| {
            let mut priority = 0;
            let rules: Vec<String> = rules
                .iter()
                .map(|(step, r)| {
                    priority += step;
                    rule_json(priority, r)
                })
                .collect();
            let exclude = if global {
                r#""berthExclude":{"tagRegexList":["^v2"]},"#
            } else {
                ""
            };
            format!(r#"{{{exclude}"rules":[{}]}}"#, rules.join(","))
        })
}

fn policy_and_images(relations: bool) -> impl Strategy<Value = (LifecyclePolicy, Vec<ImageFacts>)> {
    (gen_policy(), prop::collection::vec(gen_image(), 0..40)).prop_filter_map(
        "valid policy",
        move |(text, gens)| {
            LifecyclePolicy::parse(&text)
                .ok()
                .map(|p| (p, build(&gens, relations)))
        },
    )
}

fn check_invariants(policy: &LifecyclePolicy, images: &[ImageFacts], ev: &Evaluation) {
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn plans_respect_every_invariant_in_any_input_order(
        (policy, images) in policy_and_images(true),
        seed in any::<u64>(),
    ) {
        let ev = evaluate(&policy, &images, now());
        check_invariants(&policy, &images, &ev);

        // (c) the same plan again, and for the images in another order.
        prop_assert_eq!(&evaluate(&policy, &images, now()), &ev);
        let mut shuffled = images.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(&evaluate(&policy, &shuffled, now()), &ev);

        // Repeating an image changes nothing either.
        if let Some(first) = images.first() {
            let mut doubled = shuffled.clone();
            doubled.push(first.clone());
            prop_assert_eq!(&evaluate(&policy, &doubled, now()), &ev);
        }
    }

    #[test]
    fn without_relations_the_plan_is_the_reference_plan((policy, images) in policy_and_images(false)) {
        let ev = evaluate(&policy, &images, now());
        let got: Vec<(String, (u32, Action))> =
            ev.images.iter().map(|o| (o.digest.clone(), (o.rule_priority, o.action))).collect::<std::collections::BTreeMap<_, _>>().into_iter().collect();
        let want: Vec<(String, (u32, Action))> = reference(&policy, &images, now()).into_iter().collect();
        prop_assert_eq!(got, want);
        prop_assert!(ev.protected.is_empty() && ev.orphan_referrers.is_empty());
    }
}
