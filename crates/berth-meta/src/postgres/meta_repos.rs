//! [`RepositoryStore`] for PostgreSQL, and the helpers the other `meta_*` files share
//! (the repository row a write locks, digests and names read back).
//!
//! Rows locked (READ COMMITTED, every lock held to the end of its transaction):
//! - a write that needs its repository to exist (a push's blob commit, mount, manifest)
//!   locks its row, creating it first if absent with `INSERT ... ON CONFLICT DO NOTHING`
//!   (of nodes creating it at once, one inserts and the others wait for it, then insert
//!   nothing: one row, created once). The lock is `FOR KEY SHARE` for blobs and links,
//!   `FOR SHARE` for a manifest (whose tag decision reads the repository's mutability
//!   settings, which `set_tag_mutability`'s `UPDATE` cannot change meanwhile);
//! - `delete_repository` locks the row `FOR UPDATE` before deciding, so it waits for every
//!   write into the repository in progress and no write starts in it until it commits (a
//!   write that then finds the row gone creates the repository again, as after a delete on
//!   SQLite).

use berth_types::{AccountId, Digest, RepositoryName};
use tokio_postgres::{GenericClient, Row};

use super::meta::PgMetaStore;
use super::meta_events::record_event;
use crate::sqlite::client_name;
use crate::{EventKind, MetaError, RepositoryRecord, RepositorySettings, RepositoryStore, Result};

const REPO_COLUMNS: &str =
    "name, created_ms, image_tag_mutability, created_by_api, tag_mutability_exclusions";

/// Rounds of "lock the repository, else create it" (a round fails only when a concurrent
/// deletion removed the row, and each waits for that deletion to commit, so more than a
/// couple means something else is wrong).
const ENSURE_ROUNDS: usize = 8;

pub(super) fn db_error(what: String) -> MetaError {
    MetaError::Database(what.into())
}

pub(super) fn parse_digest(s: &str) -> Result<Digest> {
    s.parse()
        .map_err(|e: berth_types::DigestError| MetaError::Database(Box::new(e)))
}

pub(super) fn parse_repository(stored: &str) -> Result<RepositoryName> {
    RepositoryName::from_qualified(stored).map_err(|e| MetaError::Database(Box::new(e)))
}

/// Exclusion filters are stored as a JSON array of strings (as on SQLite).
pub(super) fn filters_from_json(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| MetaError::Database(Box::new(e)))
}

fn filters_to_json(filters: &[String]) -> String {
    serde_json::Value::from(filters.to_vec()).to_string()
}

fn repository_row(r: &Row) -> Result<RepositoryRecord> {
    Ok(RepositoryRecord {
        name: client_name(r.try_get::<_, &str>(0)?),
        created_ms: r.try_get(1)?,
        image_tag_mutability: r.try_get(2)?,
        created_by_api: r.try_get(3)?,
        image_tag_mutability_exclusion_filters: filters_from_json(r.try_get(4)?)?,
    })
}

/// The bounds of one registry's repositories in `repositories.name` (qualified names):
/// strictly after `<account>/<after>` and before `<account>0`, the first string past every
/// `<account>/...` (`'0'` follows `'/'` in byte order, the column's collation).
fn registry_range(account: AccountId, after: Option<&str>) -> (String, String) {
    let start = format!("{account}/{}", after.unwrap_or(""));
    (start, format!("{account}0"))
}

/// The repository row a write holds while it writes into the repository.
pub(super) struct LockedRepo {
    pub id: i64,
    pub mutability: String,
    pub filters: Vec<String>,
}

/// How a write locks its repository's row.
#[derive(Clone, Copy)]
pub(super) enum RepoLock {
    /// Existence only: blocks the row's deletion, not a settings update.
    KeyShare,
    /// Existence and settings: also blocks `set_tag_mutability` until the commit.
    Share,
}

impl RepoLock {
    fn clause(self) -> &'static str {
        match self {
            RepoLock::KeyShare => "FOR KEY SHARE",
            RepoLock::Share => "FOR SHARE",
        }
    }
}

/// Creates the repository `name` if absent (implicitly, as a push does) and locks its row.
pub(super) async fn ensure_repo<C: GenericClient>(
    tx: &C,
    name: &str,
    now_ms: i64,
    lock: RepoLock,
) -> Result<LockedRepo> {
    let select = format!(
        "SELECT id, image_tag_mutability, tag_mutability_exclusions FROM repositories
         WHERE name = $1 {}",
        lock.clause()
    );
    for _ in 0..ENSURE_ROUNDS {
        // Usually it exists: one statement. (Inserting first would also draw an id from
        // the sequence on every write, for nothing.)
        if let Some(r) = tx.query_opt(&select, &[&name]).await? {
            return Ok(LockedRepo {
                id: r.try_get(0)?,
                mutability: r.try_get(1)?,
                filters: filters_from_json(r.try_get(2)?)?,
            });
        }
        // Absent (or deleted by a transaction that committed while this one waited for
        // its lock): create it; of nodes doing so at once, one inserts and the others
        // wait for it, then insert nothing. The next round locks the row either way.
        tx.execute(
            "INSERT INTO repositories (name, created_ms) VALUES ($1, $2)
             ON CONFLICT (name) DO NOTHING",
            &[&name, &now_ms],
        )
        .await?;
    }
    Err(db_error(format!(
        "repository {name} kept being deleted while a write created it"
    )))
}

/// The id of an existing repository, its row locked `FOR KEY SHARE` (it cannot be deleted
/// before the transaction ends).
pub(super) async fn existing_repo<C: GenericClient>(tx: &C, name: &str) -> Result<Option<i64>> {
    Ok(tx
        .query_opt(
            "SELECT id FROM repositories WHERE name = $1 FOR KEY SHARE",
            &[&name],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?)
}

/// The id of a repository, without a lock (reads).
pub(super) async fn repo_id<C: GenericClient>(c: &C, name: &str) -> Result<Option<i64>> {
    Ok(
        c.query_opt("SELECT id FROM repositories WHERE name = $1", &[&name])
            .await?
            .map(|r| r.try_get(0))
            .transpose()?,
    )
}

/// A page size as SQL's `LIMIT`.
pub(super) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait::async_trait]
impl RepositoryStore for PgMetaStore {
    async fn repository_exists(&self, repo: &RepositoryName) -> Result<bool> {
        let client = self.db.client().await?;
        Ok(repo_id(&**client, repo.qualified()).await?.is_some())
    }

    async fn list_repositories(
        &self,
        account: AccountId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let (after, end) = registry_range(account, after);
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT substr(name, 14) FROM repositories r WHERE name > $1 AND name < $2
                   AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = r.id)
                 ORDER BY name LIMIT $3",
                &[&after, &end, &sql_limit(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?)
    }

    async fn create_repository(
        &self,
        repo: &RepositoryName,
        settings: &RepositorySettings,
        now_ms: i64,
    ) -> Result<RepositoryRecord> {
        let name = repo.qualified();
        let filters = filters_to_json(&settings.image_tag_mutability_exclusion_filters);
        let client = self.db.client().await?;
        // Of nodes creating it at once, one inserts; the others wait for it to commit and
        // insert nothing (a row created by a push counts as existing too).
        let row = client
            .query_opt(
                &format!(
                    "INSERT INTO repositories
                       (name, created_ms, image_tag_mutability, created_by_api, tag_mutability_exclusions)
                     VALUES ($1, $2, $3, true, $4)
                     ON CONFLICT (name) DO NOTHING
                     RETURNING {REPO_COLUMNS}"
                ),
                &[&name, &now_ms, &settings.image_tag_mutability, &filters],
            )
            .await?;
        match row {
            Some(r) => repository_row(&r),
            None => Err(MetaError::RepositoryAlreadyExists(client_name(name))),
        }
    }

    async fn get_repository(&self, repo: &RepositoryName) -> Result<Option<RepositoryRecord>> {
        let client = self.db.client().await?;
        client
            .query_opt(
                &format!("SELECT {REPO_COLUMNS} FROM repositories WHERE name = $1"),
                &[&repo.qualified()],
            )
            .await?
            .map(|r| repository_row(&r))
            .transpose()
    }

    async fn describe_repositories(
        &self,
        account: AccountId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepositoryRecord>> {
        let (after, end) = registry_range(account, after);
        let client = self.db.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {REPO_COLUMNS} FROM repositories WHERE name > $1 AND name < $2
                     ORDER BY name LIMIT $3"
                ),
                &[&after, &end, &sql_limit(limit)],
            )
            .await?;
        rows.iter().map(repository_row).collect()
    }

    async fn delete_repository(
        &self,
        repo: &RepositoryName,
        force: bool,
    ) -> Result<RepositoryRecord> {
        let name = repo.qualified();
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let row = tx
                    .query_opt(
                        &format!(
                            "SELECT {REPO_COLUMNS}, id FROM repositories WHERE name = $1 FOR UPDATE"
                        ),
                        &[&name],
                    )
                    .await?
                    .ok_or_else(|| MetaError::RepositoryNotFound(client_name(name)))?;
                let (record, id) = (repository_row(&row)?, row.try_get::<_, i64>(5)?);
                let has_images: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM manifests WHERE repo_id = $1)",
                        &[&id],
                    )
                    .await?
                    .try_get(0)?;
                if has_images && !force {
                    return Err(MetaError::RepositoryNotEmpty(client_name(name)));
                }
                // Children first: tags point at manifests, references at manifests.
                for sql in [
                    "DELETE FROM tags WHERE repo_id = $1",
                    "DELETE FROM manifest_refs WHERE repo_id = $1",
                    "DELETE FROM manifests WHERE repo_id = $1",
                    "DELETE FROM blob_links WHERE repo_id = $1",
                    "DELETE FROM repositories WHERE id = $1",
                ] {
                    tx.execute(sql, &[&id]).await?;
                }
                record_event(
                    &*tx,
                    EventKind::RepositoryDeleted,
                    name,
                    None,
                    None,
                    super::now_ms(),
                )
                .await?;
                tx.commit().await?;
                Ok(record)
            })
            .await
    }

    async fn set_tag_mutability(
        &self,
        repo: &RepositoryName,
        settings: &RepositorySettings,
    ) -> Result<RepositoryRecord> {
        let name = repo.qualified();
        let filters = filters_to_json(&settings.image_tag_mutability_exclusion_filters);
        let client = self.db.client().await?;
        // One statement: its row lock waits for pushes deciding on the old settings.
        client
            .query_opt(
                &format!(
                    "UPDATE repositories SET image_tag_mutability = $2, tag_mutability_exclusions = $3
                     WHERE name = $1 RETURNING {REPO_COLUMNS}"
                ),
                &[&name, &settings.image_tag_mutability, &filters],
            )
            .await?
            .map(|r| repository_row(&r))
            .transpose()?
            .ok_or_else(|| MetaError::RepositoryNotFound(client_name(name)))
    }
}
