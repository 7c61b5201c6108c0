//! Every JSON example in docs/LIFECYCLE.md is a valid policy (a lone rule is wrapped in a policy), so the
//! documentation cannot drift from the parser.
// Tests may unwrap and slice strings they built: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::string_slice))]

use berth_lifecycle::LifecyclePolicy;

const DOC: &str = include_str!("../../../docs/LIFECYCLE.md");

#[test]
fn every_documented_policy_parses() {
    let blocks: Vec<&str> = DOC
        .split("```json")
        .skip(1)
        .map(|rest| rest.split("```").next().expect("closed block"))
        .collect();
    assert!(blocks.len() >= 5, "found {} blocks", blocks.len());
    for block in blocks {
        let text = if block.contains("\"rules\"") {
            block.to_string()
        } else {
            format!("{{\"rules\":[{block}]}}")
        };
        let policy = LifecyclePolicy::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(policy.uses_extensions(), text.contains("\"berth"), "{text}");
    }
}
