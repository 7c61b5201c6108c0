//! Resource tags of repositories (TagResource, UntagResource, ListTagsForResource, and the
//! `tags` of CreateRepository and of creation templates), with ECR's tag rules: at most
//! 50 tags per resource, keys of 1–128 and values of 0–256 Unicode letters, digits,
//! spaces and `_ . : / = + - @`, no key starting with the reserved `aws:`.

use serde::Deserialize;
use serde_json::{json, Value};

use berth_meta::settings::{ResourceTag, MAX_TAGS_PER_RESOURCE};

use super::{repository_name, Ctx};
use crate::error::EcrError;

const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

/// The model's `Tag` shape. Both members are required; a missing one is the model's
/// validation error rather than a deserialization failure.
#[derive(Deserialize, Clone)]
pub(crate) struct TagInput {
    #[serde(rename = "Key")]
    key: Option<String>,
    #[serde(rename = "Value")]
    value: Option<String>,
}

fn tag_char_ok(c: char) -> bool {
    c.is_alphabetic()
        || c.is_numeric()
        || c.is_whitespace()
        || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
}

/// Checks one key (also used for UntagResource's `tagKeys`).
pub(crate) fn check_key(key: &str) -> Result<(), EcrError> {
    let n = key.chars().count();
    if n == 0 || n > MAX_KEY_CHARS {
        return Err(EcrError::InvalidTagParameter(format!(
            "Tag key '{key}' must be 1 to {MAX_KEY_CHARS} characters long"
        )));
    }
    if !key.chars().all(tag_char_ok) {
        return Err(EcrError::InvalidTagParameter(format!(
            "Tag key '{key}' may contain only Unicode letters, digits, white space and _ . : / = + - @"
        )));
    }
    if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        return Err(EcrError::InvalidTagParameter(format!(
            "Tag key '{key}' uses the reserved prefix 'aws:'"
        )));
    }
    Ok(())
}

fn check_value(key: &str, value: &str) -> Result<(), EcrError> {
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(EcrError::InvalidTagParameter(format!(
            "The value of tag '{key}' must be at most {MAX_VALUE_CHARS} characters long"
        )));
    }
    if !value.chars().all(tag_char_ok) {
        return Err(EcrError::InvalidTagParameter(format!(
            "The value of tag '{key}' may contain only Unicode letters, digits, white space and _ . : / = + - @"
        )));
    }
    Ok(())
}

/// Validates a `TagList` member named `member`: at most 50 tags, each valid, no key twice.
pub(crate) fn validate_tags(tags: &[TagInput], member: &str) -> Result<Vec<ResourceTag>, EcrError> {
    if tags.len() > MAX_TAGS_PER_RESOURCE {
        return Err(EcrError::TooManyTags(format!(
            "'{member}' has {} tags; a resource can have at most {MAX_TAGS_PER_RESOURCE} tags",
            tags.len()
        )));
    }
    let mut out: Vec<ResourceTag> = Vec::with_capacity(tags.len());
    for (i, t) in tags.iter().enumerate() {
        let null = |field: &str| {
            EcrError::InvalidParameter(format!(
                "1 validation error detected: Value null at '{member}.{}.member.{field}' failed to satisfy constraint: Member must not be null",
                i + 1
            ))
        };
        let key = t.key.as_deref().ok_or_else(|| null("key"))?;
        let value = t.value.as_deref().ok_or_else(|| null("value"))?;
        check_key(key)?;
        check_value(key, value)?;
        if out.iter().any(|o| o.key == key) {
            return Err(EcrError::InvalidTagParameter(format!(
                "Tag key '{key}' appears more than once in '{member}'"
            )));
        }
        out.push(ResourceTag::new(key, value));
    }
    Ok(out)
}

/// The model's `TagList` in a response.
pub(crate) fn tags_json(tags: &[ResourceTag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"Key": t.key, "Value": t.value}))
            .collect(),
    )
}

/// `arn:aws:ecr:<region>:<account>:repository/<name>` → (account, name), for this
/// server's region (the only resource type ECR tags is a repository).
pub(super) fn parse_repository_arn(
    caller_account: &str,
    this_region: &str,
    arn: &str,
) -> Result<(String, String), EcrError> {
    let invalid = |why: &str| {
        EcrError::InvalidParameter(format!(
            "Invalid parameter at 'resourceArn' failed to satisfy constraint: '{why}' (got '{arn}')"
        ))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [arn_, partition, service, region, account, resource] = parts[..] else {
        return Err(invalid("Invalid ARN"));
    };
    if arn_ != "arn" || partition != "aws" || service != "ecr" {
        return Err(invalid("Invalid ARN"));
    }
    if region != this_region {
        return Err(invalid(&format!(
            "the ARN names region {region}; this registry is in {this_region}"
        )));
    }
    let account = super::registry_of(caller_account, Some(account))?;
    let Some(name) = resource.strip_prefix("repository/") else {
        return Err(invalid(
            "Invalid ARN: the only resource that can be tagged is a repository",
        ));
    };
    repository_name(&account, name)?;
    Ok((account, name.to_string()))
}

/// Shared start of the three actions: required ARN → (registry, repository name)
/// (dispatch has authorized the action on it).
fn target(ctx: &Ctx<'_>, arn: Option<&str>) -> Result<(String, String), EcrError> {
    let arn = arn.ok_or_else(|| {
        EcrError::InvalidParameter(
            "1 validation error detected: Value null at 'resourceArn' failed to satisfy constraint: Member must not be null".into(),
        )
    })?;
    parse_repository_arn(&ctx.caller.account_id, ctx.region(), arn)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TagResourceInput {
    resource_arn: Option<String>,
    tags: Option<Vec<TagInput>>,
}

pub(super) async fn tag_resource(
    ctx: &Ctx<'_>,
    input: TagResourceInput,
) -> Result<Value, EcrError> {
    let tags = input.tags.ok_or_else(|| {
        EcrError::InvalidParameter(
            "1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null".into(),
        )
    })?;
    let tags = validate_tags(&tags, "tags")?;
    let (registry, name) = target(ctx, input.resource_arn.as_deref())?;
    ctx.settings()
        .tag_repository(&registry, &name, &tags)
        .await
        .map_err(|e| EcrError::from_settings(e, &registry))?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UntagResourceInput {
    resource_arn: Option<String>,
    tag_keys: Option<Vec<String>>,
}

pub(super) async fn untag_resource(
    ctx: &Ctx<'_>,
    input: UntagResourceInput,
) -> Result<Value, EcrError> {
    let keys = input.tag_keys.ok_or_else(|| {
        EcrError::InvalidParameter(
            "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null".into(),
        )
    })?;
    if keys.len() > MAX_TAGS_PER_RESOURCE {
        return Err(EcrError::TooManyTags(format!(
            "'tagKeys' names {} keys; a resource can have at most {MAX_TAGS_PER_RESOURCE} tags",
            keys.len()
        )));
    }
    for k in &keys {
        check_key(k)?;
    }
    let (registry, name) = target(ctx, input.resource_arn.as_deref())?;
    ctx.settings()
        .untag_repository(&registry, &name, &keys)
        .await
        .map_err(|e| EcrError::from_settings(e, &registry))?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListTagsForResourceInput {
    resource_arn: Option<String>,
}

pub(super) async fn list_tags_for_resource(
    ctx: &Ctx<'_>,
    input: ListTagsForResourceInput,
) -> Result<Value, EcrError> {
    let (registry, name) = target(ctx, input.resource_arn.as_deref())?;
    let tags = ctx
        .settings()
        .repository_tags(&registry, &name)
        .await
        .map_err(|e| EcrError::from_settings(e, &registry))?;
    Ok(json!({"tags": tags_json(&tags)}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(k: &str, v: &str) -> TagInput {
        TagInput {
            key: Some(k.into()),
            value: Some(v.into()),
        }
    }

    #[test]
    fn tags_follow_ecr_rules() {
        let ok = validate_tags(
            &[
                t("team", "a b"),
                t("cost:center", ""),
                t("ünï", "x=y+z@w/v-1_2.3"),
            ],
            "tags",
        )
        .unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[1], ResourceTag::new("cost:center", ""));

        validate_tags(&[t(&"k".repeat(128), &"v".repeat(256))], "tags").unwrap();
        for (k, v) in [
            ("", "v"),
            (&"k".repeat(129)[..], "v"),
            ("k", &"v".repeat(257)[..]),
            ("bad*key", "v"),
            ("k", "bad#value"),
            ("aws:reserved", "v"),
            ("AWS:reserved", "v"),
        ] {
            assert!(
                matches!(
                    validate_tags(&[t(k, v)], "tags"),
                    Err(EcrError::InvalidTagParameter(_))
                ),
                "{k:?}={v:?}"
            );
        }
        // A key twice in one request.
        assert!(matches!(
            validate_tags(&[t("a", "1"), t("a", "2")], "tags"),
            Err(EcrError::InvalidTagParameter(_))
        ));
        // A missing member is the model's null validation error.
        let missing = TagInput {
            key: Some("k".into()),
            value: None,
        };
        match validate_tags(&[t("a", "1"), missing], "resourceTags") {
            Err(EcrError::InvalidParameter(m)) => {
                assert!(m.contains("'resourceTags.2.member.value'"), "{m}")
            }
            other => panic!("{:?}", other.err()),
        }
        // 50 tags are fine, 51 too many.
        let fifty: Vec<TagInput> = (0..50).map(|i| t(&format!("k{i}"), "v")).collect();
        validate_tags(&fifty, "tags").unwrap();
        let mut fifty_one = fifty;
        fifty_one.push(t("k50", "v"));
        assert!(matches!(
            validate_tags(&fifty_one, "tags"),
            Err(EcrError::TooManyTags(_))
        ));
    }
}
