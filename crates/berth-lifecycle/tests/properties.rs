//! Property tests over random repositories and random valid policies (ECR's language plus the extensions):
//! (a) no image is acted on twice, (b) no rule acts on an image a higher-priority rule matched, (c) evaluation is
//! deterministic and independent of input order, (d) referrers never outlive their subject and index children
//! never leave before their index; plus agreement with the plain reference evaluator and a consistent
//! execution order and rule totals.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use berth_lifecycle::{evaluate, Action, ImageFacts, LifecyclePolicy, StorageClass};
use common::{ago, invariants::check_invariants, now, reference::reference};
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
