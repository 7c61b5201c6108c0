//! `EcrSettingsStore` for SQLite (migration 0005): each method is one statement or one
//! transaction on the same database as the `MetaStore`.

use super::client_name;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde_json::{json, Value};

use berth_types::RepositoryName;

use super::queries::{filters_from_json, filters_to_json, immediate};
use super::SqliteMetaStore;
use crate::settings::{
    best_template, AppliedFor, CreationTemplate, EcrSettingsStore, NewRepository, Provisioned,
    ResourceTag, SettingsError, SettingsResult, TemplateUpdate, MAX_TAGS_PER_RESOURCE,
};
use crate::{MetaError, RepositoryRecord};

impl From<rusqlite::Error> for SettingsError {
    fn from(e: rusqlite::Error) -> Self {
        SettingsError::Meta(MetaError::from(e))
    }
}

fn repo_id(c: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    c.prepare_cached("SELECT id FROM repositories WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
}

fn existing_repo(c: &Connection, name: &str) -> SettingsResult<i64> {
    repo_id(c, name)?.ok_or_else(|| SettingsError::RepositoryNotFound(client_name(name)))
}

fn tags_json(tags: &[ResourceTag]) -> String {
    Value::Array(
        tags.iter()
            .map(|t| json!({"Key": t.key, "Value": t.value}))
            .collect(),
    )
    .to_string()
}

fn corrupt(column: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("stored {what} is malformed").into(),
    )
}

fn parse_tags_json(s: &str) -> rusqlite::Result<Vec<ResourceTag>> {
    let v: Value = serde_json::from_str(s).map_err(|_| corrupt(8, "resource_tags"))?;
    v.as_array()
        .ok_or_else(|| corrupt(8, "resource_tags"))?
        .iter()
        .map(|t| {
            match (
                t.get("Key").and_then(Value::as_str),
                t.get("Value").and_then(Value::as_str),
            ) {
                (Some(k), Some(v)) => Ok(ResourceTag::new(k, v)),
                _ => Err(corrupt(8, "resource_tags")),
            }
        })
        .collect()
}

fn applied_for_text(a: &[AppliedFor]) -> String {
    a.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(",")
}

fn parse_applied_for(s: &str) -> rusqlite::Result<Vec<AppliedFor>> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| AppliedFor::parse(p).ok_or_else(|| corrupt(3, "applied_for")))
        .collect()
}

const TEMPLATE_COLUMNS: &str = "prefix, description, applied_for, image_tag_mutability,
    image_tag_mutability_exclusion_filters, repository_policy, lifecycle_policy, resource_tags,
    encryption_type, kms_key, custom_role_arn, created_ms, updated_ms";

fn template_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CreationTemplate> {
    Ok(CreationTemplate {
        prefix: r.get(0)?,
        description: r.get(1)?,
        applied_for: parse_applied_for(&r.get::<_, String>(2)?)?,
        image_tag_mutability: r.get(3)?,
        image_tag_mutability_exclusion_filters: filters_from_json(&r.get::<_, String>(4)?)?,
        repository_policy: r.get(5)?,
        lifecycle_policy: r.get(6)?,
        resource_tags: parse_tags_json(&r.get::<_, String>(7)?)?,
        encryption_type: r.get(8)?,
        kms_key: r.get(9)?,
        custom_role_arn: r.get(10)?,
        created_ms: r.get(11)?,
        updated_ms: r.get(12)?,
    })
}

fn get_template(
    c: &Connection,
    account: &str,
    prefix: &str,
) -> rusqlite::Result<Option<CreationTemplate>> {
    c.prepare_cached(&format!(
        "SELECT {TEMPLATE_COLUMNS} FROM repository_creation_templates
         WHERE account_id = ?1 AND prefix = ?2"
    ))?
    .query_row(params![account, prefix], template_row)
    .optional()
}

/// Inserts or replaces the whole row.
fn write_template(
    tx: &Transaction<'_>,
    account: &str,
    t: &CreationTemplate,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO repository_creation_templates
           (account_id, prefix, description, applied_for, image_tag_mutability,
            image_tag_mutability_exclusion_filters, repository_policy, lifecycle_policy,
            resource_tags, encryption_type, kms_key, custom_role_arn, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )?
    .execute(params![
        account,
        t.prefix,
        t.description,
        applied_for_text(&t.applied_for),
        t.image_tag_mutability,
        filters_to_json(&t.image_tag_mutability_exclusion_filters),
        t.repository_policy,
        t.lifecycle_policy,
        tags_json(&t.resource_tags),
        t.encryption_type,
        t.kms_key,
        t.custom_role_arn,
        t.created_ms,
        t.updated_ms
    ])?;
    Ok(())
}

fn count_tags(c: &Connection, id: i64) -> rusqlite::Result<usize> {
    c.prepare_cached("SELECT COUNT(*) FROM repository_tags WHERE repo_id = ?1")?
        .query_row([id], |r| r.get::<_, i64>(0))
        .map(|n| n as usize)
}

/// Upserts tags on repository `id`, then refuses (the caller rolls back) above the limit.
fn put_tags(
    tx: &Transaction<'_>,
    account: &str,
    name: &str,
    id: i64,
    tags: &[ResourceTag],
) -> SettingsResult<()> {
    let mut st = tx.prepare_cached(
        "INSERT INTO repository_tags (repo_id, account_id, key, value) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (repo_id, key) DO UPDATE SET value = excluded.value, account_id = excluded.account_id",
    )?;
    for t in tags {
        st.execute(params![id, account, t.key, t.value])?;
    }
    let count = count_tags(tx, id)?;
    if count > MAX_TAGS_PER_RESOURCE {
        return Err(SettingsError::TooManyTags {
            repository: client_name(name),
            count,
        });
    }
    Ok(())
}

fn put_repository_policy(
    tx: &Transaction<'_>,
    account: &str,
    id: i64,
    policy: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO repository_policies (repo_id, account_id, policy_text, updated_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (repo_id) DO UPDATE SET account_id = excluded.account_id,
           policy_text = excluded.policy_text, updated_ms = excluded.updated_ms",
    )?
    .execute(params![id, account, policy, now_ms])?;
    Ok(())
}

/// Inserts the repository row with its tags and policy; `None` if it already exists.
fn insert_repository(
    tx: &Transaction<'_>,
    account: &str,
    name: &str,
    new: &NewRepository,
    created_by_api: bool,
    now_ms: i64,
) -> SettingsResult<Option<RepositoryRecord>> {
    let inserted = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO repositories
               (name, created_ms, image_tag_mutability, created_by_api, tag_mutability_exclusions)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            name,
            now_ms,
            new.settings.image_tag_mutability,
            created_by_api as i64,
            filters_to_json(&new.settings.image_tag_mutability_exclusion_filters)
        ])?;
    if inserted == 0 {
        return Ok(None);
    }
    let id = existing_repo(tx, name)?;
    put_tags(tx, account, name, id, &new.tags)?;
    if let Some(p) = &new.policy {
        put_repository_policy(tx, account, id, p, now_ms)?;
    }
    if let Some(l) = &new.lifecycle_policy {
        tx.prepare_cached(
            "INSERT INTO lifecycle_policies (repo_id, account_id, policy_text, updated_ms)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![id, account, l, now_ms])?;
    }
    Ok(Some(RepositoryRecord {
        name: client_name(name),
        created_ms: now_ms,
        image_tag_mutability: new.settings.image_tag_mutability.clone(),
        image_tag_mutability_exclusion_filters: new
            .settings
            .image_tag_mutability_exclusion_filters
            .clone(),
        created_by_api,
    }))
}

#[async_trait::async_trait]
impl EcrSettingsStore for SqliteMetaStore {
    async fn repository_policy(
        &self,
        account: &str,
        repository: &str,
    ) -> SettingsResult<Option<String>> {
        let (account, name) = (account.to_string(), format!("{account}/{repository}"));
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT p.policy_text FROM repositories r
                   JOIN repository_policies p ON p.repo_id = r.id
                 WHERE r.name = ?1 AND p.account_id = ?2",
            )?
            .query_row(params![name, account], |r| r.get(0))
            .optional()?)
        })
        .await
    }

    async fn registry_policy(&self, account: &str) -> SettingsResult<Option<String>> {
        let account = account.to_string();
        self.read(move |c| {
            Ok(
                c.prepare_cached(
                    "SELECT policy_text FROM registry_policies WHERE account_id = ?1",
                )?
                .query_row([account], |r| r.get(0))
                .optional()?,
            )
        })
        .await
    }

    async fn set_repository_policy(
        &self,
        account: &str,
        repository: &str,
        policy: &str,
        now_ms: i64,
    ) -> SettingsResult<()> {
        let (account, name, policy) = (
            account.to_string(),
            format!("{account}/{repository}"),
            policy.to_string(),
        );
        self.write(move |c| {
            let tx = immediate(c)?;
            let id = existing_repo(&tx, &name)?;
            put_repository_policy(&tx, &account, id, &policy, now_ms)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn delete_repository_policy(
        &self,
        account: &str,
        repository: &str,
    ) -> SettingsResult<String> {
        let (account, name) = (account.to_string(), format!("{account}/{repository}"));
        self.write(move |c| {
            let tx = immediate(c)?;
            let id = existing_repo(&tx, &name)?;
            let policy: String = tx
                .prepare_cached(
                    "DELETE FROM repository_policies WHERE repo_id = ?1 AND account_id = ?2
                     RETURNING policy_text",
                )?
                .query_row(params![id, account], |r| r.get(0))
                .optional()?
                .ok_or_else(|| SettingsError::RepositoryPolicyNotFound(client_name(&name)))?;
            tx.commit()?;
            Ok(policy)
        })
        .await
    }

    async fn put_registry_policy(
        &self,
        account: &str,
        policy: &str,
        now_ms: i64,
    ) -> SettingsResult<()> {
        let (account, policy) = (account.to_string(), policy.to_string());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO registry_policies (account_id, policy_text, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account_id) DO UPDATE SET policy_text = excluded.policy_text,
                   updated_ms = excluded.updated_ms",
            )?
            .execute(params![account, policy, now_ms])?;
            Ok(())
        })
        .await
    }

    async fn delete_registry_policy(&self, account: &str) -> SettingsResult<String> {
        let account = account.to_string();
        self.write(move |c| {
            c.prepare_cached(
                "DELETE FROM registry_policies WHERE account_id = ?1 RETURNING policy_text",
            )?
            .query_row([&account], |r| r.get(0))
            .optional()?
            .ok_or(SettingsError::RegistryPolicyNotFound(account))
        })
        .await
    }

    async fn repository_tags(
        &self,
        account: &str,
        repository: &str,
    ) -> SettingsResult<Vec<ResourceTag>> {
        let (account, name) = (account.to_string(), format!("{account}/{repository}"));
        self.read(move |c| {
            let id = existing_repo(c, &name)?;
            let mut st = c.prepare_cached(
                "SELECT key, value FROM repository_tags WHERE repo_id = ?1 AND account_id = ?2
                 ORDER BY key",
            )?;
            let rows = st.query_map(params![id, account], |r| {
                Ok(ResourceTag::new(
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                ))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn tag_repository(
        &self,
        account: &str,
        repository: &str,
        tags: &[ResourceTag],
    ) -> SettingsResult<()> {
        let (account, name, tags) = (
            account.to_string(),
            format!("{account}/{repository}"),
            tags.to_vec(),
        );
        self.write(move |c| {
            let tx = immediate(c)?;
            let id = existing_repo(&tx, &name)?;
            put_tags(&tx, &account, &name, id, &tags)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn untag_repository(
        &self,
        account: &str,
        repository: &str,
        keys: &[String],
    ) -> SettingsResult<()> {
        let (account, name, keys) = (
            account.to_string(),
            format!("{account}/{repository}"),
            keys.to_vec(),
        );
        self.write(move |c| {
            let tx = immediate(c)?;
            let id = existing_repo(&tx, &name)?;
            {
                let mut st = tx.prepare_cached(
                    "DELETE FROM repository_tags WHERE repo_id = ?1 AND account_id = ?2 AND key = ?3",
                )?;
                for k in &keys {
                    st.execute(params![id, account, k])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn create_repository_with(
        &self,
        account: &str,
        repository: &RepositoryName,
        new: &NewRepository,
        now_ms: i64,
    ) -> SettingsResult<RepositoryRecord> {
        let (account, name, new) = (
            account.to_string(),
            repository.qualified().to_string(),
            new.clone(),
        );
        self.write(move |c| {
            let tx = immediate(c)?;
            let record = insert_repository(&tx, &account, &name, &new, true, now_ms)?
                .ok_or_else(|| SettingsError::RepositoryAlreadyExists(client_name(&name)))?;
            tx.commit()?;
            Ok(record)
        })
        .await
    }

    async fn provision_repository(
        &self,
        account: &str,
        repository: &RepositoryName,
        scenario: AppliedFor,
        now_ms: i64,
    ) -> SettingsResult<Provisioned> {
        let (account, name) = (account.to_string(), repository.qualified().to_string());
        // The common case (the repository exists) is one read, off the writer.
        let exists = {
            let name = name.clone();
            self.read(move |c| Ok::<_, SettingsError>(repo_id(c, &name)?.is_some()))
                .await?
        };
        if exists {
            return Ok(Provisioned::Existing);
        }
        self.write(move |c| {
            let tx = immediate(c)?;
            if repo_id(&tx, &name)?.is_some() {
                return Ok(Provisioned::Existing);
            }
            let templates = {
                let mut st = tx.prepare_cached(&format!(
                    "SELECT {TEMPLATE_COLUMNS} FROM repository_creation_templates WHERE account_id = ?1"
                ))?;
                let rows = st.query_map([&account], template_row)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            };
            let Some(t) = best_template(&templates, &client_name(&name), scenario) else {
                return Ok(Provisioned::NoTemplate);
            };
            let new = NewRepository::from_template(t);
            let repository = insert_repository(&tx, &account, &name, &new, false, now_ms)?
                .ok_or_else(|| SettingsError::RepositoryAlreadyExists(client_name(&name)))?;
            tx.commit()?;
            Ok(Provisioned::Created {
                template: t.prefix.clone(),
                repository,
            })
        })
        .await
    }

    async fn account_setting(&self, account: &str, name: &str) -> SettingsResult<Option<String>> {
        let (account, name) = (account.to_string(), name.to_string());
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT value FROM account_settings WHERE account_id = ?1 AND name = ?2",
            )?
            .query_row(params![account, name], |r| r.get(0))
            .optional()?)
        })
        .await
    }

    async fn put_account_setting(
        &self,
        account: &str,
        name: &str,
        value: &str,
        now_ms: i64,
    ) -> SettingsResult<()> {
        let (account, name, value) = (account.to_string(), name.to_string(), value.to_string());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO account_settings (account_id, name, value, updated_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account_id, name) DO UPDATE SET value = excluded.value,
                   updated_ms = excluded.updated_ms",
            )?
            .execute(params![account, name, value, now_ms])?;
            Ok(())
        })
        .await
    }

    async fn create_template(&self, account: &str, t: &CreationTemplate) -> SettingsResult<()> {
        let (account, t) = (account.to_string(), t.clone());
        self.write(move |c| {
            let tx = immediate(c)?;
            if get_template(&tx, &account, &t.prefix)?.is_some() {
                return Err(SettingsError::TemplateAlreadyExists(t.prefix));
            }
            write_template(&tx, &account, &t)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn update_template(
        &self,
        account: &str,
        prefix: &str,
        update: &TemplateUpdate,
        now_ms: i64,
    ) -> SettingsResult<CreationTemplate> {
        let (account, prefix, update) = (account.to_string(), prefix.to_string(), update.clone());
        self.write(move |c| {
            let tx = immediate(c)?;
            let mut t = get_template(&tx, &account, &prefix)?
                .ok_or_else(|| SettingsError::TemplateNotFound(prefix.clone()))?;
            update.apply(&mut t, now_ms);
            write_template(&tx, &account, &t)?;
            tx.commit()?;
            Ok(t)
        })
        .await
    }

    async fn delete_template(
        &self,
        account: &str,
        prefix: &str,
    ) -> SettingsResult<CreationTemplate> {
        let (account, prefix) = (account.to_string(), prefix.to_string());
        self.write(move |c| {
            let tx = immediate(c)?;
            let t = get_template(&tx, &account, &prefix)?
                .ok_or_else(|| SettingsError::TemplateNotFound(prefix.clone()))?;
            tx.prepare_cached(
                "DELETE FROM repository_creation_templates WHERE account_id = ?1 AND prefix = ?2",
            )?
            .execute(params![account, prefix])?;
            tx.commit()?;
            Ok(t)
        })
        .await
    }

    async fn describe_templates(
        &self,
        account: &str,
        prefixes: Option<&[String]>,
        after: Option<&str>,
        limit: usize,
    ) -> SettingsResult<Vec<CreationTemplate>> {
        let account = account.to_string();
        let prefixes = prefixes.map(|p| p.to_vec());
        let after = after.unwrap_or("").to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {TEMPLATE_COLUMNS} FROM repository_creation_templates
                 WHERE account_id = ?1 AND prefix > ?2 ORDER BY prefix"
            ))?;
            let rows = st.query_map(params![account, after], template_row)?;
            let mut out = Vec::new();
            for row in rows {
                let t = row?;
                if prefixes.as_ref().is_some_and(|p| !p.contains(&t.prefix)) {
                    continue;
                }
                out.push(t);
                if out.len() == limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }
}
