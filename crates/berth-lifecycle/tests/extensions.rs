//! Berth's opt-in extensions: regular-expression tag rules, exclusion lists (per rule and policy-wide) and
//! expiring by last pull. Each is used only when its `berth...` key is present.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use berth_lifecycle::{evaluate, LifecyclePolicy};
use common::{image, now, parse, plan, reference::reference, EXPIRE};

fn rows(v: &[(&str, u32, berth_lifecycle::Action)]) -> Vec<(String, u32, berth_lifecycle::Action)> {
    v.iter().map(|(d, p, a)| (d.to_string(), *p, *a)).collect()
}

fn detail(text: &str) -> String {
    LifecyclePolicy::parse(text).expect_err(text).detail()
}

#[test]
fn regex_rules_select_tags_by_regular_expression() {
    let policy = parse(
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","berthTagRegexList":["^pr-[0-9]+$"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#,
    );
    assert!(policy.uses_extensions());
    let images = vec![
        image("pr1", &["pr-1"], 5.0),
        image("pr2", &["pr-2"], 4.0),
        image("pr3", &["pr-3", "latest"], 3.0),
        image("not-a-number", &["pr-x"], 9.0),
        image("suffix", &["pr-12-rc"], 9.0),
    ];
    let ev = evaluate(&policy, &images, now());
    assert_eq!(plan(&ev), rows(&[("pr1", 1, EXPIRE), ("pr2", 1, EXPIRE)]));
}

#[test]
fn a_policy_wide_exclusion_hides_images_from_every_rule() {
    // "Never expire release tags": releases are neither expired nor counted by the catch-all rule.
    let policy = parse(
        r#"{"berthExclude":{"tagRegexList":["^v[0-9]+"]},"rules":[
        {"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}},
        {"rulePriority":2,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":2},"action":{"type":"expire"}}]}"#,
    );
    let images = vec![
        image("v1", &["v1.0.0"], 100.0),
        image("v2", &["v2.0.0", "latest"], 50.0),
        image("dev1", &["dev-1"], 30.0),
        image("dev2", &["dev-2"], 20.0),
        image("dev3", &["dev-3"], 10.0),
        image("old-untagged", &[], 8.0),
    ];
    let ev = evaluate(&policy, &images, now());
    // The catch-all keeps the two newest it sees (the untagged image, shielded by rule 1 but counted, and
    // dev3) and expires dev2 and dev1; the releases are not among what it sees.
    assert_eq!(
        plan(&ev),
        rows(&[
            ("dev1", 2, EXPIRE),
            ("dev2", 2, EXPIRE),
            ("old-untagged", 1, EXPIRE)
        ])
    );
    assert_eq!(
        ev.rules[1].matched,
        ["old-untagged", "dev3", "dev2", "dev1"]
    );
    let want: Vec<_> = plan(&ev).into_iter().map(|(d, p, a)| (d, (p, a))).collect();
    assert_eq!(
        reference(&policy, &images, now())
            .into_iter()
            .collect::<Vec<_>>(),
        want
    );
}

#[test]
fn a_rule_exclusion_hides_images_from_that_rule_only() {
    // Rule 1 keeps the newest prod image but never touches "-keep" builds; those are not matched by rule 1, so
    // they are not shielded from the later `any` rule either.
    let policy = parse(
        r#"{"rules":[
        {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"berthExclude":{"tagPatternList":["*-keep"]},"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
        {"rulePriority":2,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":60},"action":{"type":"expire"}}]}"#,
    );
    let images = vec![
        image("prod-a", &["prod-a"], 3.0),
        image("prod-b", &["prod-b"], 2.0),
        image("prod-c-keep", &["prod-c-keep"], 90.0),
        image("prod-d-keep", &["prod-d-keep"], 1.0),
    ];
    let ev = evaluate(&policy, &images, now());
    assert_eq!(
        plan(&ev),
        rows(&[("prod-a", 1, EXPIRE), ("prod-c-keep", 2, EXPIRE)])
    );
    assert_eq!(ev.rules[0].matched, ["prod-b", "prod-a"]);
}

#[test]
fn expiring_by_last_pull_needs_the_explicit_opt_in() {
    let text = |opt: &str| {
        format!(
            r#"{{"rules":[{{"rulePriority":1,"selection":{{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30{opt}}},"action":{{"type":"expire"}}}}]}}"#
        )
    };
    assert_eq!(
        detail(&text("")),
        "countType=sinceImagePulled can only be used with action type transition."
    );
    assert_eq!(
        detail(&text(r#","berthAllowExpire":false"#)),
        "countType=sinceImagePulled can only be used with action type transition."
    );
    let policy = parse(&text(r#","berthAllowExpire":true"#));
    assert!(policy.uses_extensions());
    let mut cold = image("cold", &["a"], 100.0);
    cold.last_pulled_at = Some(common::ago(31.0));
    let mut warm = image("warm", &["b"], 100.0);
    warm.last_pulled_at = Some(common::ago(29.0));
    let ev = evaluate(&policy, &[cold, warm, image("new", &[], 10.0)], now());
    assert_eq!(plan(&ev), rows(&[("cold", 1, EXPIRE)]));
}

#[test]
fn invalid_extensions_are_refused_with_a_clear_message() {
    let sel = |s: &str| {
        format!(
            r#"{{"rules":[{{"rulePriority":1,"selection":{{{s}}},"action":{{"type":"expire"}}}}]}}"#
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (
            sel(r#""tagStatus":"tagged","berthTagRegexList":["(unclosed"],"countType":"imageCountMoreThan","countNumber":1"#),
            "berthTagRegexList entry \"(unclosed\" is not a valid regular expression: error: unclosed group",
        ),
        (
            sel(r#""tagStatus":"untagged","berthTagRegexList":["x"],"countType":"imageCountMoreThan","countNumber":1"#),
            "berthTagRegexList may only be used when tagStatus=TAGGED.",
        ),
        (
            sel(r#""tagStatus":"tagged","tagPrefixList":["a"],"berthTagRegexList":["x"],"countType":"imageCountMoreThan","countNumber":1"#),
            "berthTagRegexList cannot be combined with tagPrefixList or tagPatternList in one rule.",
        ),
        (
            sel(r#""tagStatus":"untagged","berthAllowExpire":true,"countType":"imageCountMoreThan","countNumber":1"#),
            "berthAllowExpire only applies to a rule with countType=sinceImagePulled and action type expire.",
        ),
        (
            sel(r#""tagStatus":"untagged","berthAllowExpire":"yes","countType":"imageCountMoreThan","countNumber":1"#),
            r#"instance type (string) does not match any allowed primitive type (allowed: ["boolean"])"#,
        ),
        (
            sel(r#""tagStatus":"any","berthExclude":{},"countType":"imageCountMoreThan","countNumber":1"#),
            "selection.berthExclude must list at least one entry in tagPrefixList, tagPatternList or tagRegexList.",
        ),
        (
            sel(r#""tagStatus":"any","berthExclude":{"digests":["x"]},"countType":"imageCountMoreThan","countNumber":1"#),
            r#"object instance has properties which are not allowed by the schema: (["digests"])"#,
        ),
        (
            r#"{"berthExclude":{"tagRegexList":["["]},"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#.into(),
            "berthExclude.tagRegexList entry \"[\" is not a valid regular expression: error: unclosed character class",
        ),
        (
            r#"{"berthExclude":{"tagPatternList":["a*b*c*d*e*f"]},"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#.into(),
            r#"A tag pattern may contain at most 4 wildcards (*); "a*b*c*d*e*f" contains 5."#,
        ),
        (
            r#"{"berthExtra":1,"rules":[]}"#.into(),
            r#"object instance has properties which are not allowed by the schema: (["berthExtra"])"#,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(detail(&text), want, "{text}");
    }
}

#[test]
fn an_enormous_regex_is_refused_instead_of_compiled() {
    let text = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"tagged","berthTagRegexList":["(\\w{100}){100}"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
    let d = detail(text);
    assert!(d.starts_with("berthTagRegexList entry "), "{d}");
    assert!(d.contains("size limit"), "{d}");
}
