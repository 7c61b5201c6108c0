//! Whatever the text, parsing answers with a policy or an ECR-framed refusal: it never panics, and every
//! accepted policy evaluates without panicking.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

mod common;

use berth_lifecycle::{evaluate, LifecycleError, LifecyclePolicy};
use common::{image, now};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const KEYS: &[&str] = &[
    "rules",
    "rulePriority",
    "description",
    "selection",
    "action",
    "tagStatus",
    "tagPrefixList",
    "tagPatternList",
    "storageClass",
    "countType",
    "countUnit",
    "countNumber",
    "type",
    "targetStorageClass",
    "berthExclude",
    "berthTagRegexList",
    "berthAllowExpire",
    "tagRegexList",
];
const WORDS: &[&str] = &[
    "tagged",
    "untagged",
    "any",
    "standard",
    "archive",
    "imageCountMoreThan",
    "sinceImagePushed",
    "sinceImagePulled",
    "sinceImageTransitioned",
    "days",
    "expire",
    "transition",
    "prod*",
    "*a*b*c*d*e",
    "(",
    "^v[0-9]+",
    "",
];

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..400).prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(WORDS).prop_map(|w| Value::String(w.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..7).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn check(text: &str) {
    match LifecyclePolicy::parse(text) {
        Ok(policy) => {
            let images = [
                image("a", &["prod-1"], 100.0),
                image("b", &[], 200.0),
                image("c", &["v1"], 1.0),
            ];
            let ev = evaluate(&policy, &images, now());
            assert!(ev.images.len() <= images.len());
        }
        Err(e @ LifecycleError::Invalid(_)) => {
            assert!(e.to_string().starts_with(
                "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: "
            ));
            assert!(e.to_string().ends_with('\''));
        }
        Err(e) => panic!("unexpected refusal {e:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_json_gets_an_answer(v in value()) {
        check(&v.to_string());
        check(&json!({ "rules": [v] }).to_string());
    }

    #[test]
    fn a_valid_rule_with_one_field_changed_gets_an_answer(
        level in 0..3usize,
        key in prop::sample::select(KEYS),
        v in value(),
    ) {
        let mut rule = json!({
            "rulePriority": 1,
            "selection": {"tagStatus": "tagged", "tagPatternList": ["prod*"], "countType": "sinceImagePushed",
                          "countUnit": "days", "countNumber": 3},
            "action": {"type": "transition", "targetStorageClass": "archive"}
        });
        let target = match level {
            0 => &mut rule,
            1 => &mut rule["selection"],
            _ => &mut rule["action"],
        };
        target[key] = v;
        check(&json!({ "rules": [rule] }).to_string());
    }

    #[test]
    fn any_text_gets_an_answer(s in ".{0,200}") {
        check(&s);
    }
}
