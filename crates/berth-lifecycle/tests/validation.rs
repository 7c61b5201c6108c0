//! Every validation rule, with the exact `InvalidParameterException` message ECR gives (Berth's own wording for
//! the extensions and for the few ECR refusals whose text is not known).
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

use berth_lifecycle::{limits, LifecycleError, LifecyclePolicy};

const FRAME: &str = "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: ";

/// A one-rule policy with the given `selection` and `action` bodies.
fn one(selection: &str, action: &str) -> String {
    format!(
        r#"{{"rules":[{{"rulePriority":1,"selection":{{{selection}}},"action":{{{action}}}}}]}}"#
    )
}

const UNTAGGED_COUNT: &str =
    r#""tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":5"#;
const EXPIRE: &str = r#""type":"expire""#;

fn rule(priority: u32, selection: &str, action: &str) -> String {
    format!(r#"{{"rulePriority":{priority},"selection":{{{selection}}},"action":{{{action}}}}}"#)
}

fn rules(rs: &[String]) -> String {
    format!(r#"{{"rules":[{}]}}"#, rs.join(","))
}

fn refused(text: &str) -> String {
    match LifecyclePolicy::parse(text) {
        Ok(_) => panic!("should be refused: {text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn each_invalid_policy_is_refused_with_ecrs_message() {
    let tagged_any = |status: &str| {
        format!(r#""tagStatus":"{status}","countType":"imageCountMoreThan","countNumber":1"#)
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("not JSON", "{rules:".into(), "Could not map policyString into LifecyclePolicy."),
        ("not an object", r#"[{"rulePriority":1}]"#.into(), "Could not map policyString into LifecyclePolicy."),
        ("no rules", r#"{"norules":[]}"#.into(), r#"object has missing required properties (["rules"])"#),
        (
            "rules not a list",
            r#"{"rules":{"rulePriority":1}}"#.into(),
            r#"instance type (object) does not match any allowed primitive type (allowed: ["array"])"#,
        ),
        (
            "empty rules",
            r#"{"rules":[]}"#.into(),
            "array is too short: must have at least 1 elements but instance has 0 elements",
        ),
        (
            "unknown top-level key",
            r#"{"rules":[],"comment":"x"}"#.into(),
            r#"object instance has properties which are not allowed by the schema: (["comment"])"#,
        ),
        (
            "rule not an object",
            r#"{"rules":["rule"]}"#.into(),
            r#"instance type (string) does not match any allowed primitive type (allowed: ["object"])"#,
        ),
        (
            "rule missing everything",
            r#"{"rules":[{"description":"d"}]}"#.into(),
            r#"object has missing required properties (["action","rulePriority","selection"])"#,
        ),
        (
            "rule with an unknown key",
            format!(r#"{{"rules":[{{"rulePriority":1,"selection":{{{UNTAGGED_COUNT}}},"action":{{{EXPIRE}}},"unknown":1}}]}}"#),
            r#"object instance has properties which are not allowed by the schema: (["unknown"])"#,
        ),
        (
            "priority zero",
            format!(r#"{{"rules":[{{"rulePriority":0,"selection":{{{UNTAGGED_COUNT}}},"action":{{{EXPIRE}}}}}]}}"#),
            "numeric instance is lower than the required minimum (minimum: 1, found: 0)",
        ),
        (
            "priority as a string",
            format!(r#"{{"rules":[{{"rulePriority":"1","selection":{{{UNTAGGED_COUNT}}},"action":{{{EXPIRE}}}}}]}}"#),
            r#"instance type (string) does not match any allowed primitive type (allowed: ["integer"])"#,
        ),
        (
            "priority fractional",
            format!(r#"{{"rules":[{{"rulePriority":1.5,"selection":{{{UNTAGGED_COUNT}}},"action":{{{EXPIRE}}}}}]}}"#),
            r#"instance type (number) does not match any allowed primitive type (allowed: ["integer"])"#,
        ),
        (
            "priority beyond 32 bits",
            format!(r#"{{"rules":[{{"rulePriority":4294967296,"selection":{{{UNTAGGED_COUNT}}},"action":{{{EXPIRE}}}}}]}}"#),
            "Could not map policyString into LifecyclePolicy.",
        ),
        (
            "description not a string",
            format!(r#"{{"rules":[{{"rulePriority":1,"description":7,"selection":{{{UNTAGGED_COUNT}}},"action":{{{EXPIRE}}}}}]}}"#),
            r#"instance type (integer) does not match any allowed primitive type (allowed: ["string"])"#,
        ),
        (
            "selection missing its count",
            one(r#""tagStatus":"untagged""#, EXPIRE),
            r#"object has missing required properties (["countNumber","countType"])"#,
        ),
        (
            "selection with an unknown key",
            one(&format!(r#"{UNTAGGED_COUNT},"tagRegexList":["x"]"#), EXPIRE),
            r#"object instance has properties which are not allowed by the schema: (["tagRegexList"])"#,
        ),
        (
            "unknown tag status",
            one(r#""tagStatus":"some","countType":"imageCountMoreThan","countNumber":1"#, EXPIRE),
            r#"instance value (some) not found in enum :(possible values: ["tagged","untagged","any"])"#,
        ),
        (
            "unknown count type",
            one(r#""tagStatus":"untagged","countType":"sinceImageBuilt","countNumber":1"#, EXPIRE),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        (
            "count unit on a count",
            one(r#""tagStatus":"untagged","countType":"imageCountMoreThan","countUnit":"days","countNumber":1"#, EXPIRE),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        (
            "age without a count unit",
            one(r#""tagStatus":"untagged","countType":"sinceImagePushed","countNumber":1"#, EXPIRE),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        (
            "unknown count unit",
            one(r#""tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"hours","countNumber":1"#, EXPIRE),
            r#"instance value (hours) not found in enum :(possible values: ["days"])"#,
        ),
        (
            "count number zero",
            one(r#""tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":0"#, EXPIRE),
            "numeric instance is lower than the required minimum (minimum: 1, found: 0)",
        ),
        (
            "count number negative",
            one(r#""tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":-1"#, EXPIRE),
            "numeric instance is lower than the required minimum (minimum: 1, found: -1)",
        ),
        (
            "unknown storage class",
            one(&format!(r#"{UNTAGGED_COUNT},"storageClass":"glacier""#), EXPIRE),
            r#"instance value (glacier) not found in enum :(possible values: ["standard","archive"])"#,
        ),
        (
            "tag list not a list",
            one(r#""tagStatus":"tagged","tagPrefixList":"prod","countType":"imageCountMoreThan","countNumber":1"#, EXPIRE),
            r#"instance type (string) does not match any allowed primitive type (allowed: ["array"])"#,
        ),
        (
            "tag list entry not a string",
            one(r#""tagStatus":"tagged","tagPatternList":[1],"countType":"imageCountMoreThan","countNumber":1"#, EXPIRE),
            r#"instance type (integer) does not match any allowed primitive type (allowed: ["string"])"#,
        ),
        (
            "empty tag prefix",
            one(r#""tagStatus":"tagged","tagPrefixList":[""],"countType":"imageCountMoreThan","countNumber":1"#, EXPIRE),
            r#"string "" is too short (length: 0, required minimum: 1)"#,
        ),
        (
            "action missing its type",
            one(UNTAGGED_COUNT, ""),
            r#"object has missing required properties (["type"])"#,
        ),
        (
            "action with an unknown key",
            one(UNTAGGED_COUNT, r#""type":"expire","days":3"#),
            r#"object instance has properties which are not allowed by the schema: (["days"])"#,
        ),
        (
            "unknown action",
            one(UNTAGGED_COUNT, r#""type":"keep""#),
            r#"instance value (keep) not found in enum :(possible values: ["expire","transition"])"#,
        ),
        (
            "unknown target storage class",
            one(UNTAGGED_COUNT, r#""type":"transition","targetStorageClass":"standard""#),
            r#"instance value (standard) not found in enum :(possible values: ["archive"])"#,
        ),
        (
            "transition without a target",
            one(UNTAGGED_COUNT, r#""type":"transition""#),
            "targetStorageClass is required when action type is transition.",
        ),
        (
            "expire with a target",
            one(UNTAGGED_COUNT, r#""type":"expire","targetStorageClass":"archive""#),
            "targetStorageClass can only be specified when action type is transition.",
        ),
        (
            "tagged without a list",
            one(&tagged_any("tagged"), EXPIRE),
            "Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED.",
        ),
        (
            "tagged with an empty list",
            one(r#""tagStatus":"tagged","tagPrefixList":[],"countType":"imageCountMoreThan","countNumber":1"#, EXPIRE),
            "Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED.",
        ),
        (
            "tagged with both lists",
            one(
                r#""tagStatus":"tagged","tagPrefixList":["a"],"tagPatternList":["b*"],"countType":"imageCountMoreThan","countNumber":1"#,
                EXPIRE,
            ),
            "A rule may specify either tagPrefixList or tagPatternList, but not both.",
        ),
        (
            "untagged with a list",
            one(&format!(r#"{},"tagPrefixList":["a"]"#, tagged_any("untagged")), EXPIRE),
            "tagPrefixList and tagPatternList may only be used when tagStatus=TAGGED.",
        ),
        (
            "any with an empty list",
            one(&format!(r#"{},"tagPatternList":[]"#, tagged_any("any")), EXPIRE),
            "tagPrefixList and tagPatternList may only be used when tagStatus=TAGGED.",
        ),
        (
            "five wildcards",
            one(
                r#""tagStatus":"tagged","tagPatternList":["*test*1*2*3","test*1*2*3*4*5*6"],"countType":"imageCountMoreThan","countNumber":1"#,
                EXPIRE,
            ),
            r#"A tag pattern may contain at most 4 wildcards (*); "test*1*2*3*4*5*6" contains 6."#,
        ),
        (
            "archive selection on an age since push",
            one(
                r#""tagStatus":"any","storageClass":"archive","countType":"sinceImagePushed","countUnit":"days","countNumber":100"#,
                EXPIRE,
            ),
            "storageClass=ARCHIVE can only be used with countType=sinceImageTransitioned; countType=sinceImagePushed selects STANDARD images.",
        ),
        (
            "transition age without the archive class",
            one(r#""tagStatus":"any","countType":"sinceImageTransitioned","countUnit":"days","countNumber":100"#, EXPIRE),
            "storageClass=ARCHIVE is required when countType=sinceImageTransitioned.",
        ),
        (
            "transition age with the standard class",
            one(
                r#""tagStatus":"any","storageClass":"standard","countType":"sinceImageTransitioned","countUnit":"days","countNumber":100"#,
                EXPIRE,
            ),
            "storageClass=ARCHIVE is required when countType=sinceImageTransitioned.",
        ),
        (
            "archived images transitioned again",
            one(
                r#""tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":100"#,
                r#""type":"transition","targetStorageClass":"archive""#,
            ),
            "countType=sinceImageTransitioned can only be used with action type expire.",
        ),
        (
            "archived images expired before 90 days",
            one(
                r#""tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":89"#,
                EXPIRE,
            ),
            "countNumber must be at least 90 when countType=sinceImageTransitioned: archived images are kept for a minimum of 90 days (found: 89).",
        ),
        (
            "expire by last pull",
            one(r#""tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30"#, EXPIRE),
            "countType=sinceImagePulled can only be used with action type transition.",
        ),
        (
            "duplicate priorities",
            rules(&[
                rule(3, &tagged_any("untagged"), EXPIRE),
                rule(3, r#""tagStatus":"tagged","tagPrefixList":["a"],"countType":"imageCountMoreThan","countNumber":1"#, EXPIRE),
            ]),
            "rulePriority must be unique; 3 is used by more than one rule.",
        ),
        (
            "any before another rule",
            rules(&[rule(1, &tagged_any("any"), EXPIRE), rule(2, &tagged_any("untagged"), EXPIRE)]),
            "Rule for tagStatus=ANY must have the lowest priority per storage class",
        ),
        (
            "any before another rule, written last",
            rules(&[rule(9, &tagged_any("untagged"), EXPIRE), rule(4, &tagged_any("any"), EXPIRE)]),
            "Rule for tagStatus=ANY must have the lowest priority per storage class",
        ),
        (
            "two any rules",
            rules(&[rule(1, &tagged_any("any"), EXPIRE), rule(2, &tagged_any("any"), EXPIRE)]),
            "Rule for tagStatus=ANY must have the lowest priority per storage class",
        ),
        (
            "two untagged rules",
            rules(&[
                rule(1, &tagged_any("untagged"), EXPIRE),
                rule(2, r#""tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":3"#, EXPIRE),
            ]),
            "Only one rule can select Untagged images per storage class.",
        ),
        (
            "the same prefixes twice",
            rules(&[
                rule(1, r#""tagStatus":"tagged","tagPrefixList":["a","b"],"countType":"imageCountMoreThan","countNumber":1"#, EXPIRE),
                rule(2, r#""tagStatus":"tagged","tagPrefixList":["b","a"],"countType":"sinceImagePushed","countUnit":"days","countNumber":3"#, EXPIRE),
            ]),
            "The rules selecting a storage class must each have a unique set of tag prefixes or patterns.",
        ),
        (
            "the same patterns twice",
            rules(&[
                rule(1, r#""tagStatus":"tagged","tagPatternList":["a*"],"countType":"imageCountMoreThan","countNumber":1"#, EXPIRE),
                rule(2, r#""tagStatus":"tagged","tagPatternList":["a*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":3"#, EXPIRE),
            ]),
            "The rules selecting a storage class must each have a unique set of tag prefixes or patterns.",
        ),
        (
            "51 rules",
            rules(
                &(1..=51)
                    .map(|p| {
                        rule(p, &format!(r#""tagStatus":"tagged","tagPrefixList":["t{p}"],"countType":"imageCountMoreThan","countNumber":1"#), EXPIRE)
                    })
                    .collect::<Vec<_>>(),
            ),
            "array is too long: must have at most 50 elements but instance has 51 elements",
        ),
    ];
    for (name, text, detail) in cases {
        assert_eq!(refused(&text), format!("{FRAME}{detail}'"), "{name}");
    }
}

#[test]
fn rules_of_different_storage_classes_are_checked_apart() {
    let standard_any = rule(
        1,
        r#""tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":30"#,
        r#""type":"transition","targetStorageClass":"archive""#,
    );
    let archive_untagged = |p| {
        rule(
            p,
            r#""tagStatus":"untagged","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":90"#,
            EXPIRE,
        )
    };
    let standard_untagged = rule(
        3,
        r#""tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":2"#,
        EXPIRE,
    );
    // `any` standard at priority 1 with an archive rule after it; one untagged rule in each class.
    let p = LifecyclePolicy::parse(&rules(&[archive_untagged(2), standard_any.clone()])).unwrap();
    assert_eq!(
        p.rules().iter().map(|r| r.priority).collect::<Vec<_>>(),
        [1, 2],
        "sorted by priority"
    );
    // But the standard `any` rule must still come after the standard untagged rule.
    assert_eq!(
        refused(&rules(&[
            standard_any,
            archive_untagged(2),
            standard_untagged
        ])),
        format!("{FRAME}Rule for tagStatus=ANY must have the lowest priority per storage class'")
    );
}

#[test]
fn four_wildcards_and_every_documented_shape_are_accepted() {
    let ok = [
        one(
            r#""tagStatus":"tagged","tagPatternList":["*test*1*2*3","test*1*2*3*"],"countType":"imageCountMoreThan","countNumber":1"#,
            EXPIRE,
        ),
        one(r#""tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":90"#, r#""type":"transition","targetStorageClass":"archive""#),
        one(
            r#""tagStatus":"tagged","tagPrefixList":["v"],"storageClass":"standard","countType":"sinceImagePushed","countUnit":"days","countNumber":1"#,
            r#""type":"transition","targetStorageClass":"archive""#,
        ),
        r#"{"rules":[{"rulePriority":2147483647,"description":"","selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":2147483647},"action":{"type":"expire"}}]}"#.to_string(),
    ];
    for text in ok {
        LifecyclePolicy::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
}

#[test]
fn size_limit_is_a_model_constraint_counted_in_characters() {
    let base = one(UNTAGGED_COUNT, EXPIRE);
    let pad = |n: usize| {
        base.replacen(
            "\"rulePriority\"",
            &format!("\"description\":\"{}\",\"rulePriority\"", "é".repeat(n)),
            1,
        )
    };
    let fixed = pad(0).chars().count();
    let at_limit = pad(limits::MAX_POLICY_CHARS - fixed);
    assert_eq!(at_limit.chars().count(), limits::MAX_POLICY_CHARS);
    assert!(
        at_limit.len() > limits::MAX_POLICY_CHARS,
        "more bytes than characters"
    );
    LifecyclePolicy::parse(&at_limit).expect("exactly at the limit");
    let over = pad(limits::MAX_POLICY_CHARS - fixed + 1);
    let err = LifecyclePolicy::parse(&over).unwrap_err();
    assert_eq!(
        err,
        LifecycleError::TooLong {
            chars: limits::MAX_POLICY_CHARS + 1
        }
    );
    assert_eq!(
        err.to_string(),
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Member must have length less than or equal to 30720' (got 30721 characters)"
    );
    assert_eq!(
        LifecycleError::Invalid("x".into()).message_for("lifecyclePolicy"),
        "Invalid parameter at 'lifecyclePolicy' failed to satisfy constraint: 'Lifecycle policy validation failure: x'"
    );
}

/// Deep nesting within the length limit is refused before the JSON parser, by name.
#[test]
fn deep_nesting_is_refused_before_parsing() {
    let deep = format!(
        r#"{{"rules":[{{"rulePriority":1,"description":{}{}}}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let msg = refused(&deep);
    assert!(msg.contains("nested more than 64 levels"), "{msg}");
}
