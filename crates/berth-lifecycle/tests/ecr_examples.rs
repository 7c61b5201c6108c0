//! Every example of ECR's "Examples of lifecycle policies" page, as a table: the policy of the example, a
//! repository built to exercise it (the page's own repository where it gives one, described here in our words),
//! and the exact plan ECR describes. Each case is also checked against the plain reference evaluator.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use berth_lifecycle::{evaluate, Action, ImageFacts};
use common::{archived, image, now, parse, plan, reference::reference, ARCHIVE, EXPIRE};

struct Case {
    name: &'static str,
    policy: &'static str,
    images: Vec<ImageFacts>,
    /// `(digest, rule priority, action)`, sorted by digest.
    expect: Vec<(&'static str, u32, Action)>,
}

fn pulled(mut f: ImageFacts, days_ago: f64) -> ImageFacts {
    f.last_pulled_at = Some(common::ago(days_ago));
    f
}

fn restored(mut f: ImageFacts, days_ago: f64) -> ImageFacts {
    f.last_activated_at = Some(common::ago(days_ago));
    f
}

/// Two rules on the page's three-image repository (A: beta-1 + prod-1, 10 days; B: beta-2 + prod-2, 9 days;
/// C: beta-3, 8 days), with `first` at priority 1 and `second` at priority 2.
fn three_images() -> Vec<ImageFacts> {
    vec![
        image("A", &["beta-1", "prod-1"], 10.0),
        image("B", &["beta-2", "prod-2"], 9.0),
        image("C", &["beta-3"], 8.0),
    ]
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            // Tagged images whose tag starts with prod, older than 14 days, expire.
            name: "image age: prod* older than 14 days",
            policy: r#"{"rules":[{"rulePriority":1,"description":"old prod","selection":{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#,
            images: vec![
                image("old-prod", &["prod-7"], 20.0),
                image("new-prod", &["production"], 13.5),
                image("exactly-14", &["prod-8"], 14.0),
                image("old-dev", &["dev-1"], 40.0),
                image("old-untagged", &[], 40.0),
            ],
            expect: vec![("old-prod", 1, EXPIRE)],
        },
        Case {
            // Images not pulled for 90 days move to the archive; never-pulled images count from their push, restored
            // ones from the restore; archived images are not standard and so not selected.
            name: "last pulled time: archive after 90 days without a pull",
            policy: r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":90},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#,
            images: vec![
                image("never-pulled-old", &["a"], 200.0),
                pulled(image("pulled-recently", &["b"], 200.0), 10.0),
                pulled(image("pulled-long-ago", &[], 200.0), 100.0),
                restored(
                    pulled(image("restored-recently", &["c"], 300.0), 150.0),
                    30.0,
                ),
                image("never-pulled-young", &["d"], 50.0),
                archived(image("already-archived", &["e"], 300.0), 100.0),
            ],
            expect: vec![
                ("never-pulled-old", 1, ARCHIVE),
                ("pulled-long-ago", 1, ARCHIVE),
            ],
        },
        Case {
            // Archived images kept in the archive for more than 365 days expire; standard images are not looked at.
            name: "archive transition time: expire after 365 days archived",
            policy: r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":365},"action":{"type":"expire"}}]}"#,
            images: vec![
                archived(image("archived-long", &["x"], 900.0), 400.0),
                archived(image("archived-recent", &["y"], 900.0), 100.0),
                image("standard-ancient", &["z"], 1000.0),
            ],
            expect: vec![("archived-long", 1, EXPIRE)],
        },
        Case {
            // Keep one untagged image: the newest; tagged images are not looked at.
            name: "image count: keep one untagged image",
            policy: r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            images: vec![
                image("u-oldest", &[], 3.0),
                image("u-middle", &[], 2.0),
                image("u-newest", &[], 1.0),
                image("tagged-old", &["v1"], 9.0),
            ],
            expect: vec![("u-middle", 1, EXPIRE), ("u-oldest", 1, EXPIRE)],
        },
        Case {
            // Multiple rules, example A: prod* keeps one (B), so A expires; beta* would keep C and pick A and B, but
            // both matched the prod* rule first.
            name: "multiple rules A: prod* then beta*",
            policy: r#"{"rules":[
                {"rulePriority":1,"description":"Rule 1","selection":{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
                {"rulePriority":2,"description":"Rule 2","selection":{"tagStatus":"tagged","tagPatternList":["beta*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            images: three_images(),
            expect: vec![("A", 1, EXPIRE)],
        },
        Case {
            // Multiple rules, example B: the same rules in the other order; beta* sees all three, keeps C, expires A
            // and B; prod* has nothing left that no earlier rule matched.
            name: "multiple rules B: beta* then prod*",
            policy: r#"{"rules":[
                {"rulePriority":1,"description":"Rule 1","selection":{"tagStatus":"tagged","tagPatternList":["beta*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
                {"rulePriority":2,"description":"Rule 2","selection":{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            images: three_images(),
            expect: vec![("A", 1, EXPIRE), ("B", 1, EXPIRE)],
        },
        Case {
            // The earlier edition of the page wrote example A with prefixes; same outcome.
            name: "multiple rules A with tagPrefixList",
            policy: r#"{"rules":[
                {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
                {"rulePriority":2,"selection":{"tagStatus":"tagged","tagPrefixList":["beta"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            images: three_images(),
            expect: vec![("A", 1, EXPIRE)],
        },
        Case {
            name: "multiple rules B with tagPrefixList",
            policy: r#"{"rules":[
                {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["beta"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
                {"rulePriority":2,"selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            images: three_images(),
            expect: vec![("A", 1, EXPIRE), ("B", 1, EXPIRE)],
        },
        Case {
            // Multiple tags in one rule, example A: only images carrying both an alpha* and a beta* tag are matched
            // (C and F); of those, only C is older than five days.
            name: "multiple tags A: alpha* and beta*, older than 5 days",
            policy: r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["alpha*","beta*"],"countType":"sinceImagePushed","countNumber":5,"countUnit":"days"},"action":{"type":"expire"}}]}"#,
            images: vec![
                image("A", &["alpha-1"], 12.0),
                image("B", &["beta-1"], 11.0),
                image("C", &["alpha-2", "beta-2"], 10.0),
                image("D", &["alpha-3"], 4.0),
                image("E", &["beta-3"], 3.0),
                image("F", &["alpha-4", "beta-4"], 2.0),
            ],
            expect: vec![("C", 1, EXPIRE)],
        },
        Case {
            name: "multiple tags A with tagPrefixList",
            policy: r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["alpha","beta"],"countType":"sinceImagePushed","countNumber":5,"countUnit":"days"},"action":{"type":"expire"}}]}"#,
            images: vec![
                image("A", &["alpha-1"], 12.0),
                image("B", &["beta-1"], 11.0),
                image("C", &["alpha-2", "beta-2"], 10.0),
                image("D", &["alpha-3"], 4.0),
                image("E", &["beta-3"], 3.0),
                image("F", &["alpha-4", "beta-4"], 2.0),
            ],
            expect: vec![("C", 1, EXPIRE)],
        },
        Case {
            // Multiple tags, example B: extra tags do not stop a match; all three match, the newest (C) is kept.
            name: "multiple tags B: tags are not exclusive",
            policy: r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["alpha*","beta*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            images: vec![
                image("A", &["alpha-1", "beta-1", "gamma-1"], 10.0),
                image("B", &["alpha-2", "beta-2"], 9.0),
                image("C", &["alpha-3", "beta-3", "gamma-2"], 8.0),
            ],
            expect: vec![("A", 1, EXPIRE), ("B", 1, EXPIRE)],
        },
        Case {
            name: "multiple tags B with tagPrefixList",
            policy: r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["alpha","beta"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            images: vec![
                image("A", &["alpha-1", "beta-1", "gamma-1"], 10.0),
                image("B", &["alpha-2", "beta-2"], 9.0),
                image("C", &["alpha-3", "beta-3", "gamma-2"], 8.0),
            ],
            expect: vec![("A", 1, EXPIRE), ("B", 1, EXPIRE)],
        },
        Case {
            // All images, example A: `any` keeps only the newest image, tagged or not.
            name: "all images A: keep the newest image of any kind",
            policy: r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            images: vec![
                image("A", &["alpha-1"], 4.0),
                image("B", &["beta-1"], 3.0),
                image("C", &[], 2.0),
                image("D", &["alpha-2"], 1.0),
            ],
            expect: vec![("A", 1, EXPIRE), ("B", 1, EXPIRE), ("C", 1, EXPIRE)],
        },
        Case {
            // All images, example B: alpha* keeps C and expires A; untagged expires B (older than a day) but not E
            // (younger); `any` keeps the newest (E) and would expire the rest, but only D was matched by no earlier
            // rule. E and D were both pushed "about a day ago" on the page; here E is the later of the two.
            name: "all images B: every rule type in one policy",
            policy: r#"{"rules":[
                {"rulePriority":1,"description":"Rule 1","selection":{"tagStatus":"tagged","tagPatternList":["alpha*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
                {"rulePriority":2,"description":"Rule 2","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}},
                {"rulePriority":3,"description":"Rule 3","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
            images: vec![
                image("A", &["alpha-1", "beta-1"], 4.0),
                image("B", &[], 3.0),
                image("C", &["alpha-2"], 2.0),
                image("D", &["git hash"], 0.95),
                image("E", &[], 0.9),
            ],
            expect: vec![("A", 1, EXPIRE), ("B", 2, EXPIRE), ("D", 3, EXPIRE)],
        },
        Case {
            // Archive examples: prod* images older than 30 days move to the archive.
            name: "archive: prod* older than 30 days",
            policy: r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#,
            images: vec![
                image("prod-old", &["prod-1"], 31.0),
                image("prod-new", &["prod-2"], 29.0),
                image("other-old", &["qa-1"], 60.0),
                archived(image("prod-archived", &["prod-0"], 90.0), 40.0),
            ],
            expect: vec![("prod-old", 1, ARCHIVE)],
        },
        Case {
            // Archive examples: anything not pulled for 90 days moves to the archive (same policy as above, tagged
            // and untagged images alike).
            name: "archive: not pulled in 90 days",
            policy: r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":90},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#,
            images: vec![
                pulled(image("cold", &["v1"], 365.0), 91.0),
                pulled(image("warm", &["v2"], 365.0), 89.0),
                image("cold-untagged", &[], 120.0),
            ],
            expect: vec![("cold", 1, ARCHIVE), ("cold-untagged", 1, ARCHIVE)],
        },
        Case {
            // Archive examples: archive after 30 days, expire after 365 days in the archive. The two `any` rules
            // select different storage classes, so both may exist.
            name: "archive: combine archive and expire rules",
            policy: r#"{"rules":[
                {"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"transition","targetStorageClass":"archive"}},
                {"rulePriority":2,"selection":{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":365},"action":{"type":"expire"}}]}"#,
            images: vec![
                image("standard-old", &["a"], 40.0),
                image("standard-new", &["b"], 10.0),
                archived(image("archived-long", &["c"], 800.0), 400.0),
                archived(image("archived-short", &[], 800.0), 100.0),
            ],
            expect: vec![("archived-long", 2, EXPIRE), ("standard-old", 1, ARCHIVE)],
        },
    ]
}

#[test]
fn every_documented_example_yields_the_documented_plan() {
    for case in cases() {
        let policy = parse(case.policy);
        let ev = evaluate(&policy, &case.images, now());
        let want: Vec<(String, u32, Action)> = case
            .expect
            .iter()
            .map(|(d, p, a)| (d.to_string(), *p, *a))
            .collect();
        assert_eq!(plan(&ev), want, "{}", case.name);

        let reference: Vec<(String, u32, Action)> = reference(&policy, &case.images, now())
            .into_iter()
            .map(|(d, (p, a))| (d, p, a))
            .collect();
        assert_eq!(
            reference, want,
            "reference evaluator disagrees on {}",
            case.name
        );
        assert!(!policy.uses_extensions(), "{}", case.name);
    }
}

#[test]
fn rules_report_what_they_matched_newest_first() {
    let ev = evaluate(&parse(cases()[4].policy), &three_images(), now());
    assert_eq!(ev.rules[0].matched, ["B", "A"], "prod* matches A and B");
    assert_eq!(
        ev.rules[1].matched,
        ["C", "B", "A"],
        "beta* identifies all three, even those prod* matched"
    );
    assert_eq!(
        (ev.rules[0].expiring_images, ev.rules[0].expiring_bytes),
        (1, 1 << 20)
    );
    assert_eq!(
        (ev.rules[1].expiring_images, ev.rules[1].expiring_bytes),
        (0, 0)
    );
}

#[test]
fn preview_summary_counts_expiring_and_transitioning_images() {
    let all = cases();
    let combined = all
        .iter()
        .find(|c| c.name.starts_with("archive: combine"))
        .unwrap();
    let ev = evaluate(&parse(combined.policy), &combined.images, now());
    assert_eq!((ev.expiring_count(), ev.transitioning_count()), (1, 1));
    assert_eq!(ev.rules[0].transitioning_bytes, 1 << 20);
    assert_eq!(ev.rules[1].expiring_bytes, 1 << 20);
    let row = ev.outcome("standard-old").unwrap();
    assert_eq!(
        (row.action.api_type(), row.action.api_target_storage_class()),
        ("TRANSITION", Some("ARCHIVE"))
    );
    assert_eq!(row.storage_class.as_api(), "STANDARD");
}
