//! Images that depend on others: children of an index (manifest list) stay while the index stays; referrers
//! (signatures, SBOMs) are never chosen by rules and follow their subject.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use berth_lifecycle::{evaluate, Cause, ImageFacts, Protected};
use common::{archived, image, now, parse, plan, ARCHIVE, EXPIRE};

const UNTAGGED_AFTER_A_DAY: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#;

fn child_of(mut f: ImageFacts, parents: &[&str]) -> ImageFacts {
    f.parents = parents.iter().map(|p| p.to_string()).collect();
    f
}

fn referrer_of(mut f: ImageFacts, subject: &str) -> ImageFacts {
    f.subject = Some(subject.into());
    f
}

fn rows(v: &[(&str, u32, berth_lifecycle::Action)]) -> Vec<(String, u32, berth_lifecycle::Action)> {
    v.iter().map(|(d, p, a)| (d.to_string(), *p, *a)).collect()
}

#[test]
fn children_of_a_kept_index_are_kept_and_reported() {
    let images = vec![
        image("idx", &["v1"], 30.0),
        child_of(image("amd64", &[], 30.0), &["idx"]),
        child_of(image("arm64", &[], 30.0), &["idx", "not-in-repo"]),
        image("loose", &[], 30.0),
    ];
    let ev = evaluate(&parse(UNTAGGED_AFTER_A_DAY), &images, now());
    assert_eq!(plan(&ev), rows(&[("loose", 1, EXPIRE)]));
    assert_eq!(
        ev.protected,
        ["amd64", "arm64"]
            .map(|d| Protected {
                digest: d.into(),
                rule_priority: 1,
                action: EXPIRE,
                kept_by: "idx".into()
            })
            .to_vec()
    );
    assert_eq!(
        ev.rules[0].matched,
        ["loose", "arm64", "amd64"],
        "protected children are still matched"
    );
}

#[test]
fn children_expire_with_their_last_index_only() {
    let policy = parse(
        r#"{"rules":[
        {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
        {"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#,
    );
    let images = vec![
        image("idx-old", &["prod-1"], 10.0),
        image("idx-new", &["prod-2"], 2.0),
        child_of(image("only-old", &[], 10.0), &["idx-old"]),
        child_of(image("shared", &[], 10.0), &["idx-old", "idx-new"]),
        child_of(image("only-new", &[], 2.0), &["idx-new"]),
    ];
    let ev = evaluate(&policy, &images, now());
    assert_eq!(
        plan(&ev),
        rows(&[("idx-old", 1, EXPIRE), ("only-old", 2, EXPIRE)])
    );
    let kept: Vec<(&str, &str)> = ev
        .protected
        .iter()
        .map(|p| (p.digest.as_str(), p.kept_by.as_str()))
        .collect();
    assert_eq!(kept, [("only-new", "idx-new"), ("shared", "idx-new")]);
    assert_eq!(
        ev.execution_order,
        ["idx-old", "only-old"],
        "the index goes before its child"
    );
}

#[test]
fn protection_cascades_through_nested_indexes() {
    // top (kept, tagged) → mid (untagged index) → leaf: neither mid nor leaf may expire.
    let images = vec![
        image("top", &["keep"], 30.0),
        child_of(image("mid", &[], 30.0), &["top"]),
        child_of(image("leaf", &[], 30.0), &["mid"]),
    ];
    let ev = evaluate(&parse(UNTAGGED_AFTER_A_DAY), &images, now());
    assert!(ev.images.is_empty(), "{:?}", ev.images);
    let kept: Vec<(&str, &str)> = ev
        .protected
        .iter()
        .map(|p| (p.digest.as_str(), p.kept_by.as_str()))
        .collect();
    assert_eq!(kept, [("leaf", "mid"), ("mid", "top")]);
}

#[test]
fn children_archive_only_when_their_indexes_leave_the_standard_class() {
    let policy = parse(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#,
    );
    let images = vec![
        image("idx-old", &["a"], 40.0),
        image("idx-young", &["b"], 5.0),
        archived(image("idx-archived", &["c"], 400.0), 100.0),
        child_of(image("c-old", &[], 40.0), &["idx-old"]),
        child_of(image("c-young-parent", &[], 40.0), &["idx-young"]),
        child_of(image("c-archived-parent", &[], 400.0), &["idx-archived"]),
    ];
    let ev = evaluate(&policy, &images, now());
    assert_eq!(
        plan(&ev),
        rows(&[
            ("c-archived-parent", 1, ARCHIVE),
            ("c-old", 1, ARCHIVE),
            ("idx-old", 1, ARCHIVE)
        ])
    );
    assert_eq!(ev.protected.len(), 1);
    assert_eq!(ev.protected[0].kept_by, "idx-young");
}

#[test]
fn referrers_follow_their_subject_and_are_never_chosen_or_counted() {
    let policy = parse(
        r#"{"rules":[
        {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
        {"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
    );
    let images = vec![
        image("v1", &["v1"], 10.0),
        image("v2", &["v2"], 5.0),
        referrer_of(image("sig-v1", &[], 9.0), "v1"),
        referrer_of(image("sbom-v1", &[], 9.0), "v1"),
        referrer_of(image("sig-of-sbom-v1", &[], 9.0), "sbom-v1"),
        referrer_of(image("sig-v2", &[], 4.0), "v2"),
        referrer_of(image("sig-gone", &[], 40.0), "deleted-long-ago"),
        image("u-old", &[], 3.0),
        image("u-new", &[], 1.0),
    ];
    let ev = evaluate(&policy, &images, now());
    assert_eq!(
        plan(&ev),
        rows(&[
            ("sbom-v1", 1, EXPIRE),
            ("sig-of-sbom-v1", 1, EXPIRE),
            ("sig-v1", 1, EXPIRE),
            ("u-old", 2, EXPIRE),
            ("v1", 1, EXPIRE),
        ]),
        "untagged referrers are not counted by the untagged rule: only u-old goes"
    );
    assert_eq!(
        ev.outcome("sig-v1").unwrap().cause,
        Cause::FollowsSubject("v1".into())
    );
    assert_eq!(
        ev.outcome("sig-of-sbom-v1").unwrap().cause,
        Cause::FollowsSubject("sbom-v1".into())
    );
    assert_eq!(ev.outcome("v1").unwrap().cause, Cause::Rule);
    assert_eq!(ev.orphan_referrers, ["sig-gone"]);
    assert_eq!(ev.rules[1].matched, ["u-new", "u-old"]);
    assert_eq!(
        (ev.rules[0].expiring_images, ev.rules[0].expiring_bytes),
        (4, 4 << 20),
        "referrers count for the rule"
    );
    let pos = |d: &str| ev.execution_order.iter().position(|x| x == d).unwrap();
    assert!(
        pos("sig-of-sbom-v1") < pos("sbom-v1")
            && pos("sbom-v1") < pos("v1")
            && pos("sig-v1") < pos("v1")
    );
}

#[test]
fn referrers_archive_with_their_subject_unless_already_archived() {
    let policy = parse(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#,
    );
    let images = vec![
        image("v1", &["v1"], 40.0),
        referrer_of(image("sig", &[], 40.0), "v1"),
        referrer_of(archived(image("old-sig", &[], 40.0), 1.0), "v1"),
    ];
    let ev = evaluate(&policy, &images, now());
    assert_eq!(plan(&ev), rows(&[("sig", 1, ARCHIVE), ("v1", 1, ARCHIVE)]));
}

#[test]
fn a_referrer_stays_when_its_subject_is_kept_by_an_index() {
    let images = vec![
        image("idx", &["v1"], 30.0),
        child_of(image("platform", &[], 30.0), &["idx"]),
        referrer_of(image("sig", &[], 30.0), "platform"),
    ];
    let ev = evaluate(&parse(UNTAGGED_AFTER_A_DAY), &images, now());
    assert!(ev.images.is_empty(), "{:?}", ev.images);
    assert!(ev.orphan_referrers.is_empty());
}

#[test]
fn referrer_cycles_are_orphans() {
    let images = vec![
        referrer_of(image("a", &[], 30.0), "b"),
        referrer_of(image("b", &[], 30.0), "a"),
        referrer_of(image("self", &[], 30.0), "self"),
    ];
    let ev = evaluate(&parse(UNTAGGED_AFTER_A_DAY), &images, now());
    assert!(ev.images.is_empty());
    assert_eq!(ev.orphan_referrers, ["a", "b", "self"]);
}
