//! Repository creation templates: Create/Update/Delete/DescribeRepositoryCreationTemplates.
//!
//! A template's prefix is `ROOT` (every repository without a more specific template) or a
//! repository-name prefix; ECR always reads a `/` after it, so `team` and `team/` are the
//! same template, stored as `team`. The templates applied for `CREATE_ON_PUSH` are used
//! by the registry when a push names a repository that does not exist (see
//! `berth-registry/src/create_on_push.rs`); `PULL_THROUGH_CACHE` and `REPLICATION` are
//! stored for those features. The lifecycle policy is stored verbatim for the lifecycle
//! feature.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use berth_meta::settings::{AppliedFor, CreationTemplate, TemplateUpdate, ROOT_PREFIX};

use super::mutability::{settings_of, ExclusionFilterInput};
use super::policies::{parse_policy, PolicyTarget};
use super::tags::{tags_json, validate_tags, TagInput};
use super::Ctx;
use crate::error::EcrError;

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: i64 = 1000;
const MAX_DESCRIPTION: usize = 256;
const MAX_ROLE_ARN: usize = 2048;

fn invalid(member: &str, constraint: &str, got: &str) -> EcrError {
    EcrError::InvalidParameter(format!(
        "Invalid parameter at '{member}' failed to satisfy constraint: '{constraint}' (got '{got}')"
    ))
}

/// Validates a prefix (the model's `Prefix`) and returns its stored form (no trailing `/`).
pub(crate) fn normalize_prefix(prefix: &str) -> Result<String, EcrError> {
    let constraint = "Member must be ROOT or a repository name prefix matching [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*\\/? of 1 to 256 characters";
    if prefix == ROOT_PREFIX {
        return Ok(prefix.to_string());
    }
    let bare = prefix.strip_suffix('/').unwrap_or(prefix);
    if prefix.is_empty()
        || prefix.len() > 256
        || !bare.split('/').all(berth_types::valid_name_component)
    {
        return Err(invalid("prefix", constraint, prefix));
    }
    Ok(bare.to_string())
}

fn applied_for(list: &[String]) -> Result<Vec<AppliedFor>, EcrError> {
    if list.is_empty() {
        return Err(EcrError::InvalidParameter(
            "Invalid parameter at 'appliedFor' failed to satisfy constraint: 'Member must name at least one of [REPLICATION, PULL_THROUGH_CACHE, CREATE_ON_PUSH]'".into(),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for a in list {
        let parsed = AppliedFor::parse(a).ok_or_else(|| {
            invalid(
                "appliedFor",
                "Member must satisfy enum value set: [REPLICATION, PULL_THROUGH_CACHE, CREATE_ON_PUSH]",
                a,
            )
        })?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    out.sort();
    Ok(out)
}

/// Mode and filters, validated as CreateRepository validates them; neither given keeps
/// the template's (or, for a new template, ECR's default MUTABLE).
fn mutability(
    mode: Option<&String>,
    filters: Option<&Vec<ExclusionFilterInput>>,
) -> Result<(Option<String>, Option<Vec<String>>), EcrError> {
    if mode.is_none() && filters.is_none() {
        return Ok((None, None));
    }
    let s = settings_of(mode.cloned(), filters.cloned())?;
    Ok((
        Some(s.image_tag_mutability),
        Some(s.image_tag_mutability_exclusion_filters),
    ))
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct EncryptionInput {
    encryption_type: Option<String>,
    kms_key: Option<String>,
}

/// Berth encrypts nothing itself beyond its storage, like CreateRepository it accepts
/// only `AES256` (ECR's default).
fn encryption(e: &EncryptionInput) -> Result<(String, Option<String>), EcrError> {
    let ty = e.encryption_type.as_deref().ok_or_else(|| {
        EcrError::InvalidParameter(
            "1 validation error detected: Value null at 'encryptionConfiguration.encryptionType' failed to satisfy constraint: Member must not be null".into(),
        )
    })?;
    match ty {
        "AES256" if e.kms_key.as_deref().unwrap_or("").is_empty() => Ok((ty.to_string(), None)),
        "AES256" => Err(EcrError::InvalidParameter(
            "encryptionConfiguration.kmsKey can only be given with encryptionType KMS or KMS_DSSE"
                .into(),
        )),
        "KMS" | "KMS_DSSE" => Err(EcrError::InvalidParameter(format!(
            "Only encryptionType AES256 is supported by Berth (got '{ty}')"
        ))),
        other => Err(invalid(
            "encryptionConfiguration.encryptionType",
            "Member must satisfy enum value set: [AES256, KMS, KMS_DSSE]",
            other,
        )),
    }
}

/// The members shared by Create and Update, validated.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TemplateInput {
    prefix: Option<String>,
    description: Option<String>,
    encryption_configuration: Option<EncryptionInput>,
    resource_tags: Option<Vec<TagInput>>,
    image_tag_mutability: Option<String>,
    image_tag_mutability_exclusion_filters: Option<Vec<ExclusionFilterInput>>,
    repository_policy: Option<String>,
    lifecycle_policy: Option<String>,
    applied_for: Option<Vec<String>>,
    custom_role_arn: Option<String>,
}

fn required_prefix(p: &Option<String>) -> Result<String, EcrError> {
    let p = p.as_deref().ok_or_else(|| {
        EcrError::InvalidParameter(
            "1 validation error detected: Value null at 'prefix' failed to satisfy constraint: Member must not be null".into(),
        )
    })?;
    normalize_prefix(p)
}

/// Validates every given member into an update (also the body of a new template).
fn validate(input: &TemplateInput, account: &str) -> Result<TemplateUpdate, EcrError> {
    let mut u = TemplateUpdate::default();
    if let Some(d) = &input.description {
        if d.chars().count() > MAX_DESCRIPTION {
            return Err(invalid(
                "description",
                "Member must have length less than or equal to 256",
                d,
            ));
        }
        u.description = Some(d.clone());
    }
    if let Some(e) = &input.encryption_configuration {
        u.encryption = Some(encryption(e)?);
    }
    if let Some(t) = &input.resource_tags {
        u.resource_tags = Some(validate_tags(t, "resourceTags")?);
    }
    let (mode, filters) = mutability(
        input.image_tag_mutability.as_ref(),
        input.image_tag_mutability_exclusion_filters.as_ref(),
    )?;
    u.image_tag_mutability = mode;
    u.image_tag_mutability_exclusion_filters = filters;
    if let Some(p) = &input.repository_policy {
        parse_policy(p, "repositoryPolicy", PolicyTarget::Repository)?;
        u.repository_policy = Some(p.clone());
    }
    if let Some(l) = &input.lifecycle_policy {
        // The policy a created repository will get: validated as PutLifecyclePolicy would.
        berth_lifecycle::LifecyclePolicy::parse(l)
            .map_err(|e| EcrError::InvalidParameter(e.message_for("lifecyclePolicy")))?;
        u.lifecycle_policy = Some(l.clone());
    }
    if let Some(a) = &input.applied_for {
        u.applied_for = Some(applied_for(a)?);
    }
    if let Some(r) = &input.custom_role_arn {
        let role_prefix = format!("arn:aws:iam::{account}:role/");
        if r.len() > MAX_ROLE_ARN || !r.starts_with(&role_prefix) || r.len() == role_prefix.len() {
            return Err(invalid(
                "customRoleArn",
                &format!("Member must be the ARN of a role in account {account} (at most {MAX_ROLE_ARN} characters)"),
                r,
            ));
        }
        u.custom_role_arn = Some(r.clone());
    }
    Ok(u)
}

fn template_json(t: &CreationTemplate) -> Value {
    let mut v = json!({
        "prefix": t.prefix,
        "appliedFor": t.applied_for.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "imageTagMutability": t.image_tag_mutability,
        "resourceTags": tags_json(&t.resource_tags),
        "encryptionConfiguration": {
            "encryptionType": t.encryption_type.as_deref().unwrap_or("AES256"),
        },
        "createdAt": t.created_ms as f64 / 1000.0,
        "updatedAt": t.updated_ms as f64 / 1000.0,
    });
    if let Some(k) = &t.kms_key {
        v["encryptionConfiguration"]["kmsKey"] = json!(k);
    }
    if !t.image_tag_mutability_exclusion_filters.is_empty() {
        v["imageTagMutabilityExclusionFilters"] = Value::Array(
            t.image_tag_mutability_exclusion_filters
                .iter()
                .map(|f| json!({"filterType": "WILDCARD", "filter": f}))
                .collect(),
        );
    }
    for (key, val) in [
        ("description", &t.description),
        ("repositoryPolicy", &t.repository_policy),
        ("lifecyclePolicy", &t.lifecycle_policy),
        ("customRoleArn", &t.custom_role_arn),
    ] {
        if let Some(s) = val {
            v[key] = json!(s);
        }
    }
    v
}

/// Templates are registry-level: they act on the caller's registry (authorized on `*`).
fn own_registry(ctx: &Ctx<'_>) -> Result<String, EcrError> {
    Ok(ctx.caller.account_id.clone())
}

pub(super) async fn create_template(
    ctx: &Ctx<'_>,
    input: TemplateInput,
) -> Result<Value, EcrError> {
    let prefix = required_prefix(&input.prefix)?;
    if input.applied_for.is_none() {
        return Err(EcrError::InvalidParameter(
            "1 validation error detected: Value null at 'appliedFor' failed to satisfy constraint: Member must not be null".into(),
        ));
    }
    let registry = ctx.caller.account_id.clone();
    let update = validate(&input, &registry)?;
    let registry = own_registry(ctx)?;
    let mut t = CreationTemplate::new(prefix, Vec::new(), ctx.now_ms());
    update.apply(&mut t, ctx.now_ms());
    ctx.settings()
        .create_template(&registry, &t)
        .await
        .map_err(|e| EcrError::from_settings(e, &registry))?;
    Ok(json!({"registryId": registry, "repositoryCreationTemplate": template_json(&t)}))
}

pub(super) async fn update_template(
    ctx: &Ctx<'_>,
    input: TemplateInput,
) -> Result<Value, EcrError> {
    let prefix = required_prefix(&input.prefix)?;
    let registry = ctx.caller.account_id.clone();
    let update = validate(&input, &registry)?;
    let registry = own_registry(ctx)?;
    let t = ctx
        .settings()
        .update_template(&registry, &prefix, &update, ctx.now_ms())
        .await
        .map_err(|e| EcrError::from_settings(e, &registry))?;
    Ok(json!({"registryId": registry, "repositoryCreationTemplate": template_json(&t)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeleteTemplateInput {
    prefix: Option<String>,
}

pub(super) async fn delete_template(
    ctx: &Ctx<'_>,
    input: DeleteTemplateInput,
) -> Result<Value, EcrError> {
    let prefix = required_prefix(&input.prefix)?;
    let registry = own_registry(ctx)?;
    let t = ctx
        .settings()
        .delete_template(&registry, &prefix)
        .await
        .map_err(|e| EcrError::from_settings(e, &registry))?;
    Ok(json!({"registryId": registry, "repositoryCreationTemplate": template_json(&t)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DescribeTemplatesInput {
    prefixes: Option<Vec<String>>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

const TOKEN_PREFIX: &str = "t1:";

fn encode_token(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_PREFIX}{last}"))
}

fn decode_token(t: &str) -> Result<String, EcrError> {
    URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(TOKEN_PREFIX).map(str::to_string))
        .ok_or_else(|| {
            EcrError::InvalidParameter(
                "Invalid parameter at 'nextToken': the token is not valid".into(),
            )
        })
}

pub(super) async fn describe_templates(
    ctx: &Ctx<'_>,
    input: DescribeTemplatesInput,
) -> Result<Value, EcrError> {
    let prefixes = input
        .prefixes
        .as_deref()
        .map(|p| {
            p.iter()
                .map(|p| normalize_prefix(p))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let limit = match input.max_results {
        None => DEFAULT_PAGE,
        Some(n) if (1..=MAX_PAGE).contains(&n) => n as usize,
        Some(n) => {
            return Err(EcrError::InvalidParameter(format!(
                "Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value between 1 and 1000' (got {n})"
            )))
        }
    };
    let after = input.next_token.as_deref().map(decode_token).transpose()?;
    let registry = own_registry(ctx)?;
    let mut rows = ctx
        .settings()
        .describe_templates(&registry, prefixes.as_deref(), after.as_deref(), limit + 1)
        .await
        .map_err(|e| EcrError::from_settings(e, &registry))?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let mut out = json!({
        "registryId": registry,
        "repositoryCreationTemplates": rows.iter().map(template_json).collect::<Vec<_>>(),
    });
    if more {
        if let Some(last) = rows.last() {
            out["nextToken"] = json!(encode_token(&last.prefix));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_follow_the_model_and_lose_their_trailing_slash() {
        assert_eq!(normalize_prefix("ROOT").unwrap(), "ROOT");
        assert_eq!(normalize_prefix("team").unwrap(), "team");
        assert_eq!(normalize_prefix("team/").unwrap(), "team");
        assert_eq!(normalize_prefix("a").unwrap(), "a");
        // Only the upper-case word is special; `root` is an ordinary prefix.
        assert_eq!(normalize_prefix("root").unwrap(), "root");
        assert_eq!(normalize_prefix("prod/team-1.x").unwrap(), "prod/team-1.x");
        for bad in [
            "", "/", "Team", "team//", "team//x", "-team", "team-", "a b", "ROOT/",
        ] {
            assert!(
                matches!(normalize_prefix(bad), Err(EcrError::InvalidParameter(_))),
                "{bad:?}"
            );
        }
        assert!(normalize_prefix(&"a".repeat(256)).is_ok());
        assert!(normalize_prefix(&"a".repeat(257)).is_err());
    }

    #[test]
    fn applied_for_is_the_enum_deduplicated() {
        let got = applied_for(&[
            "REPLICATION".into(),
            "CREATE_ON_PUSH".into(),
            "REPLICATION".into(),
        ])
        .unwrap();
        assert_eq!(got, vec![AppliedFor::CreateOnPush, AppliedFor::Replication]);
        assert!(applied_for(&[]).is_err());
        assert!(applied_for(&["create_on_push".into()]).is_err());
    }

    #[test]
    fn tokens_round_trip() {
        assert_eq!(decode_token(&encode_token("team/a")).unwrap(), "team/a");
        assert!(decode_token("junk!").is_err());
    }
}
