//! Rows of the settings tables (migrations 0003 and 0005) to and from their Rust shapes,
//! and the repository lookup with its row lock, for [`super::settings`] (and
//! [`super::lifecycle`], which locks repositories the same way).

use serde_json::{json, Value};
use tokio_postgres::{GenericClient, Row};

use crate::settings::{AppliedFor, CreationTemplate, ResourceTag, SettingsError, SettingsResult};
use crate::MetaError;

/// A stored qualified name (`<account>/<name>`) as clients know it (what the SQLite
/// backend reports in its errors too).
pub(super) fn client_name(qualified: &str) -> String {
    match qualified.split_once('/') {
        Some((account, name))
            if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name.to_string()
        }
        _ => qualified.to_string(),
    }
}

fn corrupt(what: &str) -> SettingsError {
    SettingsError::Meta(MetaError::Database(
        format!("stored {what} is malformed").into(),
    ))
}

/// The row lock a repository lookup takes (see the module comment).
#[derive(Debug, Clone, Copy)]
pub(super) enum RepoLock {
    None,
    KeyShare,
    NoKeyUpdate,
}

/// The id of repository `name` (qualified), locked as asked.
pub(super) async fn repo_id<C: GenericClient>(
    c: &C,
    name: &str,
    lock: RepoLock,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let sql = match lock {
        RepoLock::None => "SELECT id FROM repositories WHERE name = $1",
        RepoLock::KeyShare => "SELECT id FROM repositories WHERE name = $1 FOR KEY SHARE",
        RepoLock::NoKeyUpdate => "SELECT id FROM repositories WHERE name = $1 FOR NO KEY UPDATE",
    };
    c.query_opt(sql, &[&name])
        .await?
        .map(|r| r.try_get(0))
        .transpose()
}

pub(super) async fn existing_repo<C: GenericClient>(
    c: &C,
    name: &str,
    lock: RepoLock,
) -> SettingsResult<i64> {
    repo_id(c, name, lock)
        .await?
        .ok_or_else(|| SettingsError::RepositoryNotFound(client_name(name)))
}

fn tags_json(tags: &[ResourceTag]) -> String {
    Value::Array(
        tags.iter()
            .map(|t| json!({"Key": t.key, "Value": t.value}))
            .collect(),
    )
    .to_string()
}

fn parse_tags_json(s: &str) -> SettingsResult<Vec<ResourceTag>> {
    let v: Value = serde_json::from_str(s).map_err(|_| corrupt("resource_tags"))?;
    v.as_array()
        .ok_or_else(|| corrupt("resource_tags"))?
        .iter()
        .map(|t| {
            match (
                t.get("Key").and_then(Value::as_str),
                t.get("Value").and_then(Value::as_str),
            ) {
                (Some(k), Some(v)) => Ok(ResourceTag::new(k, v)),
                _ => Err(corrupt("resource_tags")),
            }
        })
        .collect()
}

pub(super) fn filters_to_json(filters: &[String]) -> String {
    Value::from(filters.to_vec()).to_string()
}

fn filters_from_json(text: &str) -> SettingsResult<Vec<String>> {
    serde_json::from_str(text).map_err(|_| corrupt("image_tag_mutability_exclusion_filters"))
}

fn applied_for_text(a: &[AppliedFor]) -> String {
    a.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(",")
}

fn parse_applied_for(s: &str) -> SettingsResult<Vec<AppliedFor>> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| AppliedFor::parse(p).ok_or_else(|| corrupt("applied_for")))
        .collect()
}

pub(super) const TEMPLATE_COLUMNS: &str = "prefix, description, applied_for, image_tag_mutability,
    image_tag_mutability_exclusion_filters, repository_policy, lifecycle_policy, resource_tags,
    encryption_type, kms_key, custom_role_arn, created_ms, updated_ms";

pub(super) fn template_row(r: &Row) -> SettingsResult<CreationTemplate> {
    Ok(CreationTemplate {
        prefix: r.try_get(0)?,
        description: r.try_get(1)?,
        applied_for: parse_applied_for(r.try_get(2)?)?,
        image_tag_mutability: r.try_get(3)?,
        image_tag_mutability_exclusion_filters: filters_from_json(r.try_get(4)?)?,
        repository_policy: r.try_get(5)?,
        lifecycle_policy: r.try_get(6)?,
        resource_tags: parse_tags_json(r.try_get(7)?)?,
        encryption_type: r.try_get(8)?,
        kms_key: r.try_get(9)?,
        custom_role_arn: r.try_get(10)?,
        created_ms: r.try_get(11)?,
        updated_ms: r.try_get(12)?,
    })
}

/// Writes every member but the key of template `t` (insert or update, by `insert`);
/// returns the rows written.
pub(super) async fn write_template<C: GenericClient>(
    c: &C,
    account: &str,
    t: &CreationTemplate,
    insert: bool,
) -> Result<u64, tokio_postgres::Error> {
    let sql = if insert {
        "INSERT INTO repository_creation_templates
           (account_id, prefix, description, applied_for, image_tag_mutability,
            image_tag_mutability_exclusion_filters, repository_policy, lifecycle_policy,
            resource_tags, encryption_type, kms_key, custom_role_arn, created_ms, updated_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (account_id, prefix) DO NOTHING"
    } else {
        "UPDATE repository_creation_templates SET description = $3, applied_for = $4,
           image_tag_mutability = $5, image_tag_mutability_exclusion_filters = $6,
           repository_policy = $7, lifecycle_policy = $8, resource_tags = $9,
           encryption_type = $10, kms_key = $11, custom_role_arn = $12, created_ms = $13,
           updated_ms = $14
         WHERE account_id = $1 AND prefix = $2"
    };
    c.execute(
        sql,
        &[
            &account,
            &t.prefix,
            &t.description,
            &applied_for_text(&t.applied_for),
            &t.image_tag_mutability,
            &filters_to_json(&t.image_tag_mutability_exclusion_filters),
            &t.repository_policy,
            &t.lifecycle_policy,
            &tags_json(&t.resource_tags),
            &t.encryption_type,
            &t.kms_key,
            &t.custom_role_arn,
            &t.created_ms,
            &t.updated_ms,
        ],
    )
    .await
}
