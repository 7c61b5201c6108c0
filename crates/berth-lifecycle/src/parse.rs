//! Parsing and validating policy text, in ECR's order: the text must map to JSON, then each rule must satisfy
//! the schema (properties, JSON types, enumerations, minimums) in document order, then each rule's own
//! semantic constraints, then the constraints between rules. The first failure is reported, as ECR does.
//!
//! Schema messages use the wording of the JSON-schema validator behind ECR; semantic ones ECR's own sentences
//! where they are known (see the tests in `tests/validation.rs` for every message).

use std::collections::{BTreeSet, HashSet};

use regex::RegexBuilder;
use serde_json::{Map, Value};

use crate::error::LifecycleError;
use crate::limits::{
    MAX_POLICY_CHARS, MAX_REGEX_COMPILED_BYTES, MAX_RULES, MAX_WILDCARDS_PER_PATTERN,
    MIN_ARCHIVE_DAYS,
};
use crate::matcher::{Exclusion, TagFilter, TagRegex, Wildcard};
use crate::policy::{Action, CountType, LifecyclePolicy, Rule, StorageClass, TagStatus};

type Result<T> = std::result::Result<T, LifecycleError>;

const UNMAPPABLE: &str = "Could not map policyString into LifecyclePolicy.";

const POLICY_KEYS: &[&str] = &["rules"];
const POLICY_EXT_KEYS: &[&str] = &["berthExclude"];
const RULE_KEYS: &[&str] = &["action", "description", "rulePriority", "selection"];
const RULE_REQUIRED: &[&str] = &["action", "rulePriority", "selection"];
const SELECTION_KEYS: &[&str] = &[
    "countNumber",
    "countType",
    "countUnit",
    "storageClass",
    "tagPatternList",
    "tagPrefixList",
    "tagStatus",
];
const SELECTION_EXT_KEYS: &[&str] = &["berthAllowExpire", "berthExclude", "berthTagRegexList"];
const SELECTION_REQUIRED: &[&str] = &["countNumber", "countType", "tagStatus"];
const ACTION_KEYS: &[&str] = &["targetStorageClass", "type"];
const EXCLUDE_KEYS: &[&str] = &["tagPatternList", "tagPrefixList", "tagRegexList"];

impl LifecyclePolicy {
    /// Parses and validates policy text exactly as ECR's `PutLifecyclePolicy` does, accepting in addition the
    /// Berth extensions described in the crate documentation (keys beginning with `berth`).
    pub fn parse(text: &str) -> Result<LifecyclePolicy> {
        let chars = text.chars().count();
        if chars > MAX_POLICY_CHARS {
            return Err(LifecycleError::TooLong { chars });
        }
        berth_types::json_limits::check(text.as_bytes(), berth_types::JsonLimits::DOCUMENT)
            .map_err(|e| LifecycleError::invalid(e.to_string()))?;
        let doc: Value =
            serde_json::from_str(text).map_err(|_| LifecycleError::invalid(UNMAPPABLE))?;
        let Value::Object(top) = &doc else {
            return Err(LifecycleError::invalid(UNMAPPABLE));
        };
        check_properties(top, &["rules"], POLICY_KEYS, POLICY_EXT_KEYS)?;
        let raw_rules = match &top["rules"] {
            Value::Array(a) => a,
            other => return Err(wrong_type(other, "array")),
        };
        if raw_rules.is_empty() {
            return Err(LifecycleError::invalid(
                "array is too short: must have at least 1 elements but instance has 0 elements",
            ));
        }
        if raw_rules.len() > MAX_RULES {
            return Err(LifecycleError::invalid(format!(
                "array is too long: must have at most {MAX_RULES} elements but instance has {} elements",
                raw_rules.len()
            )));
        }
        let mut uses_extensions = false;
        let mut rules = Vec::with_capacity(raw_rules.len());
        for raw in raw_rules {
            let (rule, ext) = parse_rule(raw)?;
            uses_extensions |= ext;
            rules.push(rule);
        }
        let exclude = match top.get("berthExclude") {
            Some(v) => {
                uses_extensions = true;
                Some(parse_exclusion(v, "berthExclude")?)
            }
            None => None,
        };
        check_between_rules(&rules)?;
        rules.sort_by_key(|r| r.priority);
        Ok(LifecyclePolicy {
            rules,
            exclude,
            uses_extensions,
        })
    }
}

/// Parses one rule; the flag says whether it used an extension.
fn parse_rule(raw: &Value) -> Result<(Rule, bool)> {
    let Value::Object(rule) = raw else {
        return Err(wrong_type(raw, "object"));
    };
    check_properties(rule, RULE_REQUIRED, RULE_KEYS, &[])?;
    let priority = positive_integer(&rule["rulePriority"])?;
    let description = match rule.get("description") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(wrong_type(other, "string")),
    };

    let Value::Object(sel) = &rule["selection"] else {
        return Err(wrong_type(&rule["selection"], "object"));
    };
    check_properties(sel, SELECTION_REQUIRED, SELECTION_KEYS, SELECTION_EXT_KEYS)?;
    let tag_status = match enumerated(&sel["tagStatus"], &["tagged", "untagged", "any"])? {
        "tagged" => TagStatus::Tagged,
        "untagged" => TagStatus::Untagged,
        _ => TagStatus::Any,
    };
    // ECR's schema has one branch for counting and one for ages, so an unknown count type, a count unit on a
    // count, and a missing count unit on an age all fail to match either branch.
    let count_type = match &sel["countType"] {
        Value::String(s) => s.as_str(),
        other => return Err(wrong_type(other, "string")),
    };
    let is_age = match count_type {
        "imageCountMoreThan" => false,
        "sinceImagePushed" | "sinceImagePulled" | "sinceImageTransitioned" => true,
        _ => return Err(no_count_branch()),
    };
    match (sel.get("countUnit"), is_age) {
        (None, false) => {}
        (Some(unit), true) => {
            enumerated(unit, &["days"])?;
        }
        _ => return Err(no_count_branch()),
    }
    let number = positive_integer(&sel["countNumber"])?;
    let count = match count_type {
        "imageCountMoreThan" => CountType::ImageCountMoreThan(number),
        "sinceImagePushed" => CountType::SinceImagePushed(number),
        "sinceImagePulled" => CountType::SinceImagePulled(number),
        _ => CountType::SinceImageTransitioned(number),
    };
    let storage_class = match sel.get("storageClass") {
        None => None,
        Some(v) => Some(match enumerated(v, &["standard", "archive"])? {
            "standard" => StorageClass::Standard,
            _ => StorageClass::Archive,
        }),
    };
    let prefixes = string_list(sel.get("tagPrefixList"))?;
    let patterns = string_list(sel.get("tagPatternList"))?;
    let regexes = string_list(sel.get("berthTagRegexList"))?;
    let allow_expire = match sel.get("berthAllowExpire") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => return Err(wrong_type(other, "boolean")),
    };
    let rule_exclude = match sel.get("berthExclude") {
        Some(v) => Some(parse_exclusion(v, "selection.berthExclude")?),
        None => None,
    };

    let Value::Object(act) = &rule["action"] else {
        return Err(wrong_type(&rule["action"], "object"));
    };
    check_properties(act, &["type"], ACTION_KEYS, &[])?;
    let action_type = enumerated(&act["type"], &["expire", "transition"])?;
    let target = match act.get("targetStorageClass") {
        None => None,
        Some(v) => Some(enumerated(v, &["archive"])?),
    };
    let action = match (action_type, target) {
        ("expire", None) => Action::Expire,
        ("expire", Some(_)) => {
            return Err(LifecycleError::invalid(
                "targetStorageClass can only be specified when action type is transition.",
            ))
        }
        (_, Some(_)) => Action::Transition(StorageClass::Archive),
        (_, None) => {
            return Err(LifecycleError::invalid(
                "targetStorageClass is required when action type is transition.",
            ))
        }
    };

    // The rule's own semantic constraints.
    let lists = [
        !prefixes.is_empty(),
        !patterns.is_empty(),
        !regexes.is_empty(),
    ];
    let filter = match tag_status {
        TagStatus::Tagged => {
            match lists {
                [false, false, false] => {
                    return Err(LifecycleError::invalid("Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED."))
                }
                [true, true, _] => {
                    return Err(LifecycleError::invalid(
                        "A rule may specify either tagPrefixList or tagPatternList, but not both.",
                    ))
                }
                [true, _, true] | [_, true, true] => {
                    return Err(LifecycleError::invalid(
                        "berthTagRegexList cannot be combined with tagPrefixList or tagPatternList in one rule.",
                    ))
                }
                _ => {}
            }
            Some(if !prefixes.is_empty() {
                TagFilter::Prefixes(prefixes)
            } else if !patterns.is_empty() {
                TagFilter::Patterns(wildcards(&patterns)?)
            } else {
                TagFilter::Regexes(compile_regexes(&regexes, "berthTagRegexList")?)
            })
        }
        TagStatus::Untagged | TagStatus::Any => {
            if sel.contains_key("tagPrefixList") || sel.contains_key("tagPatternList") {
                return Err(LifecycleError::invalid(
                    "tagPrefixList and tagPatternList may only be used when tagStatus=TAGGED.",
                ));
            }
            if sel.contains_key("berthTagRegexList") {
                return Err(LifecycleError::invalid(
                    "berthTagRegexList may only be used when tagStatus=TAGGED.",
                ));
            }
            None
        }
    };
    let storage_class = match (count, storage_class) {
        (CountType::SinceImageTransitioned(_), Some(StorageClass::Archive)) => StorageClass::Archive,
        (CountType::SinceImageTransitioned(_), _) => {
            return Err(LifecycleError::invalid(
                "storageClass=ARCHIVE is required when countType=sinceImageTransitioned.",
            ))
        }
        (_, Some(StorageClass::Archive)) => {
            return Err(LifecycleError::invalid(format!(
                "storageClass=ARCHIVE can only be used with countType=sinceImageTransitioned; countType={} selects STANDARD images.",
                count.name()
            )))
        }
        (_, _) => StorageClass::Standard,
    };
    match (count, action) {
        (CountType::SinceImageTransitioned(_), Action::Transition(_)) => {
            return Err(LifecycleError::invalid(
                "countType=sinceImageTransitioned can only be used with action type expire.",
            ))
        }
        (CountType::SinceImageTransitioned(days), Action::Expire) if i64::from(days) < MIN_ARCHIVE_DAYS => {
            return Err(LifecycleError::invalid(format!(
                "countNumber must be at least {MIN_ARCHIVE_DAYS} when countType=sinceImageTransitioned: archived images are kept for a minimum of {MIN_ARCHIVE_DAYS} days (found: {days})."
            )))
        }
        (CountType::SinceImagePulled(_), Action::Expire) if allow_expire != Some(true) => {
            return Err(LifecycleError::invalid(
                "countType=sinceImagePulled can only be used with action type transition.",
            ))
        }
        _ => {}
    }
    if allow_expire.is_some()
        && !(matches!(count, CountType::SinceImagePulled(_)) && action == Action::Expire)
    {
        return Err(LifecycleError::invalid(
            "berthAllowExpire only applies to a rule with countType=sinceImagePulled and action type expire.",
        ));
    }

    let uses_extensions = sel.keys().any(|k| SELECTION_EXT_KEYS.contains(&k.as_str()));
    let rule = Rule {
        priority,
        description,
        tag_status,
        filter,
        storage_class,
        count,
        action,
        exclude: rule_exclude,
    };
    Ok((rule, uses_extensions))
}

/// The constraints that involve several rules. `rules` are in document order.
fn check_between_rules(rules: &[Rule]) -> Result<()> {
    let mut seen = HashSet::new();
    for r in rules {
        if !seen.insert(r.priority) {
            return Err(LifecycleError::invalid(format!(
                "rulePriority must be unique; {} is used by more than one rule.",
                r.priority
            )));
        }
    }
    for class in [StorageClass::Standard, StorageClass::Archive] {
        let mut in_class: Vec<&Rule> = rules.iter().filter(|r| r.storage_class == class).collect();
        in_class.sort_by_key(|r| r.priority);
        if let Some(pos) = in_class.iter().position(|r| r.tag_status == TagStatus::Any) {
            if pos + 1 != in_class.len() {
                return Err(LifecycleError::invalid(
                    "Rule for tagStatus=ANY must have the lowest priority per storage class",
                ));
            }
        }
        if in_class
            .iter()
            .filter(|r| r.tag_status == TagStatus::Untagged)
            .count()
            > 1
        {
            return Err(LifecycleError::invalid(
                "Only one rule can select Untagged images per storage class.",
            ));
        }
        let mut prefix_sets = HashSet::new();
        let mut pattern_sets = HashSet::new();
        for r in &in_class {
            let fresh = match &r.filter {
                Some(TagFilter::Prefixes(ps)) => {
                    prefix_sets.insert(ps.iter().cloned().collect::<BTreeSet<_>>())
                }
                Some(TagFilter::Patterns(ws)) => pattern_sets.insert(
                    ws.iter()
                        .map(|w| w.as_str().to_owned())
                        .collect::<BTreeSet<_>>(),
                ),
                _ => true,
            };
            if !fresh {
                return Err(LifecycleError::invalid(
                    "The rules selecting a storage class must each have a unique set of tag prefixes or patterns.",
                ));
            }
        }
    }
    Ok(())
}

/// An extension exclusion object: `{"tagPrefixList": [...], "tagPatternList": [...], "tagRegexList": [...]}`.
fn parse_exclusion(v: &Value, name: &str) -> Result<Exclusion> {
    let Value::Object(o) = v else {
        return Err(wrong_type(v, "object"));
    };
    check_properties(o, &[], EXCLUDE_KEYS, &[])?;
    let patterns = string_list(o.get("tagPatternList"))?;
    let ex = Exclusion {
        tag_prefixes: string_list(o.get("tagPrefixList"))?,
        tag_patterns: wildcards(&patterns)?,
        tag_regexes: compile_regexes(
            &string_list(o.get("tagRegexList"))?,
            &format!("{name}.tagRegexList"),
        )?,
    };
    if ex.is_empty() {
        return Err(LifecycleError::invalid(format!(
            "{name} must list at least one entry in tagPrefixList, tagPatternList or tagRegexList."
        )));
    }
    Ok(ex)
}

fn wildcards(patterns: &[String]) -> Result<Vec<Wildcard>> {
    patterns
        .iter()
        .map(|p| {
            let w = Wildcard::new(p);
            if w.wildcards() > MAX_WILDCARDS_PER_PATTERN {
                return Err(LifecycleError::invalid(format!(
                    "A tag pattern may contain at most {MAX_WILDCARDS_PER_PATTERN} wildcards (*); \"{p}\" contains {}.",
                    w.wildcards()
                )));
            }
            Ok(w)
        })
        .collect()
}

fn compile_regexes(sources: &[String], name: &str) -> Result<Vec<TagRegex>> {
    sources
        .iter()
        .map(|s| {
            RegexBuilder::new(s)
                .size_limit(MAX_REGEX_COMPILED_BYTES)
                .build()
                .map(TagRegex::new)
                .map_err(|e| {
                    let why = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                    LifecycleError::invalid(format!(
                        "{name} entry \"{s}\" is not a valid regular expression: {why}"
                    ))
                })
        })
        .collect()
}

/// Missing required properties first (all of them, sorted), then unknown ones (all of them, sorted), as the
/// schema validator reports them. `extensions` are Berth's keys allowed besides ECR's.
fn check_properties(
    obj: &Map<String, Value>,
    required: &[&str],
    known: &[&str],
    extensions: &[&str],
) -> Result<()> {
    let mut missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|k| !obj.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        missing.sort_unstable();
        return Err(LifecycleError::invalid(format!(
            "object has missing required properties ({})",
            json_list(&missing)
        )));
    }
    let mut unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k) && !extensions.contains(k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(LifecycleError::invalid(format!(
            "object instance has properties which are not allowed by the schema: ({})",
            json_list(&unknown)
        )));
    }
    Ok(())
}

/// An integer of at least 1 that fits ECR's 32-bit field.
fn positive_integer(v: &Value) -> Result<u32> {
    let Value::Number(n) = v else {
        return Err(wrong_type(v, "integer"));
    };
    let Some(i) = n.as_i64() else {
        return Err(if n.is_u64() {
            LifecycleError::invalid(UNMAPPABLE)
        } else {
            wrong_type(v, "integer")
        });
    };
    if i < 1 {
        return Err(LifecycleError::invalid(format!(
            "numeric instance is lower than the required minimum (minimum: 1, found: {i})"
        )));
    }
    u32::try_from(i)
        .ok()
        .filter(|&u| i32::try_from(u).is_ok())
        .ok_or_else(|| LifecycleError::invalid(UNMAPPABLE))
}

/// A string that must be one of `allowed`; returns the allowed spelling.
fn enumerated(v: &Value, allowed: &[&'static str]) -> Result<&'static str> {
    let Value::String(s) = v else {
        return Err(wrong_type(v, "string"));
    };
    allowed.iter().copied().find(|a| a == s).ok_or_else(|| {
        LifecycleError::invalid(format!(
            "instance value ({s}) not found in enum :(possible values: {})",
            json_list(allowed)
        ))
    })
}

/// An optional array of non-empty strings; absent is empty.
fn string_list(v: Option<&Value>) -> Result<Vec<String>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let Value::Array(items) = v else {
        return Err(wrong_type(v, "array"));
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) if s.is_empty() => Err(LifecycleError::invalid(
                "string \"\" is too short (length: 0, required minimum: 1)",
            )),
            Value::String(s) => Ok(s.clone()),
            other => Err(wrong_type(other, "string")),
        })
        .collect()
}

fn no_count_branch() -> LifecycleError {
    LifecycleError::invalid("instance failed to match exactly one schema (matched 0 out of 2)")
}

fn wrong_type(v: &Value, expected: &str) -> LifecycleError {
    LifecycleError::invalid(format!(
        "instance type ({}) does not match any allowed primitive type (allowed: [\"{expected}\"])",
        json_type(v)
    ))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn json_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("\"{i}\"")).collect();
    format!("[{}]", quoted.join(","))
}
