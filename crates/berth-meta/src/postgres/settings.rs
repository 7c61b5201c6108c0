//! [`EcrSettingsStore`] for PostgreSQL (tables from migrations 0003 and 0005), the port of
//! `sqlite/settings_queries.rs`: the same facts, the same decisions (in Rust), each write
//! one READ COMMITTED transaction. Rules across rows hold when several nodes write at once:
//! - a repository's settings are written under a lock of its row: `FOR KEY SHARE` (it
//!   cannot be deleted meanwhile) for a policy or an untag, `FOR NO KEY UPDATE` for a tag
//!   write, so two nodes tagging one repository take turns and the second counts the
//!   first's tags against [`MAX_TAGS_PER_RESOURCE`];
//! - a repository is created by an insert that only one node wins (`ON CONFLICT (name) DO
//!   NOTHING`, which waits for the other insert): the loser sees `RepositoryAlreadyExists`
//!   (or, provisioning on push, `Existing`), and its tags, policy and lifecycle policy
//!   appear in the same transaction as the row;
//! - templates are unique per (account, prefix) by their primary key, so of two nodes
//!   creating one prefix the second gets `TemplateAlreadyExists`; an update locks the
//!   template's row `FOR UPDATE` before applying [`TemplateUpdate::apply`].

use tokio_postgres::GenericClient;

use berth_types::RepositoryName;

use super::meta::PgMetaStore;
use super::settings_rows::{
    client_name, existing_repo, filters_to_json, repo_id, template_row, write_template, RepoLock,
    TEMPLATE_COLUMNS,
};
use super::AsMetaError;
use crate::settings::{
    best_template, AppliedFor, CreationTemplate, EcrSettingsStore, NewRepository, Provisioned,
    ResourceTag, SettingsError, SettingsResult, TemplateUpdate, MAX_TAGS_PER_RESOURCE,
};
use crate::{MetaError, RepositoryRecord};

impl From<tokio_postgres::Error> for SettingsError {
    fn from(e: tokio_postgres::Error) -> Self {
        SettingsError::Meta(MetaError::from(e))
    }
}

impl AsMetaError for SettingsError {
    fn as_meta(&self) -> Option<&MetaError> {
        match self {
            SettingsError::Meta(m) => Some(m),
            _ => None,
        }
    }
}

/// Upserts tags on repository `id`, then refuses (the caller rolls back) above the limit.
/// The caller holds the repository's row `FOR NO KEY UPDATE` (or just inserted it), so the
/// count includes every tag committed by another node.
async fn put_tags<C: GenericClient>(
    c: &C,
    account: &str,
    name: &str,
    id: i64,
    tags: &[ResourceTag],
) -> SettingsResult<()> {
    if !tags.is_empty() {
        let keys: Vec<&str> = tags.iter().map(|t| t.key.as_str()).collect();
        let values: Vec<&str> = tags.iter().map(|t| t.value.as_str()).collect();
        // Later duplicates of a key win, as one upsert per tag would have it.
        c.execute(
            "INSERT INTO repository_tags (repo_id, account_id, key, value)
             SELECT DISTINCT ON (k.key) $1, $2, k.key, k.value
               FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS k(key, value, n)
              ORDER BY k.key, k.n DESC
             ON CONFLICT (repo_id, key) DO UPDATE SET value = excluded.value,
               account_id = excluded.account_id",
            &[&id, &account, &keys, &values],
        )
        .await?;
    }
    let count: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM repository_tags WHERE repo_id = $1",
            &[&id],
        )
        .await?
        .try_get(0)?;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > MAX_TAGS_PER_RESOURCE {
        return Err(SettingsError::TooManyTags {
            repository: client_name(name),
            count,
        });
    }
    Ok(())
}

async fn put_repository_policy<C: GenericClient>(
    c: &C,
    account: &str,
    id: i64,
    policy: &str,
    now_ms: i64,
) -> Result<(), tokio_postgres::Error> {
    c.execute(
        "INSERT INTO repository_policies (repo_id, account_id, policy_text, updated_ms)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (repo_id) DO UPDATE SET account_id = excluded.account_id,
           policy_text = excluded.policy_text, updated_ms = excluded.updated_ms",
        &[&id, &account, &policy, &now_ms],
    )
    .await?;
    Ok(())
}

/// Inserts the repository row with its tags and policies; `None` if it already exists
/// (another node may have just created it: the insert waits for that node's commit).
async fn insert_repository<C: GenericClient>(
    c: &C,
    account: &str,
    name: &str,
    new: &NewRepository,
    created_by_api: bool,
    now_ms: i64,
) -> SettingsResult<Option<RepositoryRecord>> {
    let row = c
        .query_opt(
            "INSERT INTO repositories
               (name, created_ms, image_tag_mutability, created_by_api, tag_mutability_exclusions)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO NOTHING
             RETURNING id",
            &[
                &name,
                &now_ms,
                &new.settings.image_tag_mutability,
                &created_by_api,
                &filters_to_json(&new.settings.image_tag_mutability_exclusion_filters),
            ],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id: i64 = row.try_get(0)?;
    put_tags(c, account, name, id, &new.tags).await?;
    if let Some(p) = &new.policy {
        put_repository_policy(c, account, id, p, now_ms).await?;
    }
    if let Some(l) = &new.lifecycle_policy {
        c.execute(
            "INSERT INTO lifecycle_policies (repo_id, account_id, policy_text, updated_ms)
             VALUES ($1, $2, $3, $4)",
            &[&id, &account, l, &now_ms],
        )
        .await?;
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
impl EcrSettingsStore for PgMetaStore {
    async fn repository_policy(
        &self,
        account: &str,
        repository: &str,
    ) -> SettingsResult<Option<String>> {
        let name = format!("{account}/{repository}");
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                "SELECT p.policy_text FROM repositories r
                   JOIN repository_policies p ON p.repo_id = r.id
                 WHERE r.name = $1 AND p.account_id = $2",
                &[&name, &account],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn registry_policy(&self, account: &str) -> SettingsResult<Option<String>> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                "SELECT policy_text FROM registry_policies WHERE account_id = $1",
                &[&account],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn set_repository_policy(
        &self,
        account: &str,
        repository: &str,
        policy: &str,
        now_ms: i64,
    ) -> SettingsResult<()> {
        let name = format!("{account}/{repository}");
        let name = name.as_str();
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let id = existing_repo(&*tx, name, RepoLock::KeyShare).await?;
                put_repository_policy(&*tx, account, id, policy, now_ms).await?;
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn delete_repository_policy(
        &self,
        account: &str,
        repository: &str,
    ) -> SettingsResult<String> {
        let name = format!("{account}/{repository}");
        let name = name.as_str();
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let id = existing_repo(&*tx, name, RepoLock::KeyShare).await?;
                let policy: String = tx
                    .query_opt(
                        "DELETE FROM repository_policies WHERE repo_id = $1 AND account_id = $2
                         RETURNING policy_text",
                        &[&id, &account],
                    )
                    .await?
                    .ok_or_else(|| SettingsError::RepositoryPolicyNotFound(client_name(name)))?
                    .try_get(0)?;
                tx.commit().await?;
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
        let client = self.db.client().await?;
        client
            .execute(
                "INSERT INTO registry_policies (account_id, policy_text, updated_ms)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (account_id) DO UPDATE SET policy_text = excluded.policy_text,
                   updated_ms = excluded.updated_ms",
                &[&account, &policy, &now_ms],
            )
            .await?;
        Ok(())
    }

    async fn delete_registry_policy(&self, account: &str) -> SettingsResult<String> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                "DELETE FROM registry_policies WHERE account_id = $1 RETURNING policy_text",
                &[&account],
            )
            .await?
            .ok_or_else(|| SettingsError::RegistryPolicyNotFound(account.to_string()))?;
        Ok(row.try_get(0)?)
    }

    async fn repository_tags(
        &self,
        account: &str,
        repository: &str,
    ) -> SettingsResult<Vec<ResourceTag>> {
        let name = format!("{account}/{repository}");
        let client = self.db.client().await?;
        // One statement (one snapshot): the repository's id, then its tags, if any.
        let rows = client
            .query(
                "SELECT r.id, t.key, t.value FROM repositories r
                   LEFT JOIN repository_tags t ON t.repo_id = r.id AND t.account_id = $2
                 WHERE r.name = $1 ORDER BY t.key",
                &[&name, &account],
            )
            .await?;
        if rows.is_empty() {
            return Err(SettingsError::RepositoryNotFound(client_name(&name)));
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            if let (Some(k), Some(v)) = (
                r.try_get::<_, Option<String>>(1)?,
                r.try_get::<_, Option<String>>(2)?,
            ) {
                out.push(ResourceTag::new(k, v));
            }
        }
        Ok(out)
    }

    async fn tag_repository(
        &self,
        account: &str,
        repository: &str,
        tags: &[ResourceTag],
    ) -> SettingsResult<()> {
        let name = format!("{account}/{repository}");
        let name = name.as_str();
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let id = existing_repo(&*tx, name, RepoLock::NoKeyUpdate).await?;
                put_tags(&*tx, account, name, id, tags).await?;
                tx.commit().await?;
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
        let name = format!("{account}/{repository}");
        let name = name.as_str();
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let id = existing_repo(&*tx, name, RepoLock::KeyShare).await?;
                tx.execute(
                    "DELETE FROM repository_tags
                     WHERE repo_id = $1 AND account_id = $2 AND key = ANY($3)",
                    &[&id, &account, &keys],
                )
                .await?;
                tx.commit().await?;
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
        let name = repository.qualified();
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let record = insert_repository(&*tx, account, name, new, true, now_ms)
                    .await?
                    .ok_or_else(|| SettingsError::RepositoryAlreadyExists(client_name(name)))?;
                tx.commit().await?;
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
        let name = repository.qualified();
        // The common case (the repository exists) is one read, outside any transaction.
        {
            let client = self.db.client().await?;
            if repo_id(&**client, name, RepoLock::None).await?.is_some() {
                return Ok(Provisioned::Existing);
            }
        }
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                if repo_id(&*tx, name, RepoLock::None).await?.is_some() {
                    return Ok(Provisioned::Existing);
                }
                let templates = tx
                    .query(
                        &format!(
                            "SELECT {TEMPLATE_COLUMNS} FROM repository_creation_templates
                             WHERE account_id = $1"
                        ),
                        &[&account],
                    )
                    .await?
                    .iter()
                    .map(template_row)
                    .collect::<SettingsResult<Vec<_>>>()?;
                let Some(t) = best_template(&templates, &client_name(name), scenario) else {
                    return Ok(Provisioned::NoTemplate);
                };
                let new = NewRepository::from_template(t);
                // Another node provisioning the same name at once: one insert wins, the
                // other finds it existing, as it would have a moment later.
                let Some(repository) =
                    insert_repository(&*tx, account, name, &new, false, now_ms).await?
                else {
                    return Ok(Provisioned::Existing);
                };
                tx.commit().await?;
                Ok(Provisioned::Created {
                    template: t.prefix.clone(),
                    repository,
                })
            })
            .await
    }

    async fn account_setting(&self, account: &str, name: &str) -> SettingsResult<Option<String>> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                "SELECT value FROM account_settings WHERE account_id = $1 AND name = $2",
                &[&account, &name],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn put_account_setting(
        &self,
        account: &str,
        name: &str,
        value: &str,
        now_ms: i64,
    ) -> SettingsResult<()> {
        let client = self.db.client().await?;
        client
            .execute(
                "INSERT INTO account_settings (account_id, name, value, updated_ms)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (account_id, name) DO UPDATE SET value = excluded.value,
                   updated_ms = excluded.updated_ms",
                &[&account, &name, &value, &now_ms],
            )
            .await?;
        Ok(())
    }

    async fn create_template(&self, account: &str, t: &CreationTemplate) -> SettingsResult<()> {
        let client = self.db.client().await?;
        // The primary key (account, prefix) decides between nodes creating one prefix.
        if write_template(&**client, account, t, true).await? == 0 {
            return Err(SettingsError::TemplateAlreadyExists(t.prefix.clone()));
        }
        Ok(())
    }

    async fn update_template(
        &self,
        account: &str,
        prefix: &str,
        update: &TemplateUpdate,
        now_ms: i64,
    ) -> SettingsResult<CreationTemplate> {
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let row = tx
                    .query_opt(
                        &format!(
                            "SELECT {TEMPLATE_COLUMNS} FROM repository_creation_templates
                             WHERE account_id = $1 AND prefix = $2 FOR UPDATE"
                        ),
                        &[&account, &prefix],
                    )
                    .await?
                    .ok_or_else(|| SettingsError::TemplateNotFound(prefix.to_string()))?;
                let mut t = template_row(&row)?;
                update.apply(&mut t, now_ms);
                write_template(&*tx, account, &t, false).await?;
                tx.commit().await?;
                Ok(t)
            })
            .await
    }

    async fn delete_template(
        &self,
        account: &str,
        prefix: &str,
    ) -> SettingsResult<CreationTemplate> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "DELETE FROM repository_creation_templates WHERE account_id = $1 AND prefix = $2
                     RETURNING {TEMPLATE_COLUMNS}"
                ),
                &[&account, &prefix],
            )
            .await?
            .ok_or_else(|| SettingsError::TemplateNotFound(prefix.to_string()))?;
        template_row(&row)
    }

    async fn describe_templates(
        &self,
        account: &str,
        prefixes: Option<&[String]>,
        after: Option<&str>,
        limit: usize,
    ) -> SettingsResult<Vec<CreationTemplate>> {
        let prefixes: Option<Vec<&str>> = prefixes.map(|p| p.iter().map(String::as_str).collect());
        let after = after.unwrap_or("");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.db.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {TEMPLATE_COLUMNS} FROM repository_creation_templates
                     WHERE account_id = $1 AND prefix > $2
                       AND ($3::text[] IS NULL OR prefix = ANY($3))
                     ORDER BY prefix LIMIT $4"
                ),
                &[&account, &after, &prefixes, &limit],
            )
            .await?;
        rows.iter().map(template_row).collect()
    }
}
