//! `IamStore` for PostgreSQL (tables from migration 0002). Secrets are sealed with the
//! master key before they reach SQL and opened after they leave it.
//!
//! Rules across rows hold when several nodes write at once, by locking the owner's row
//! before checking:
//! - a key is created under `FOR NO KEY UPDATE` of its owner (the user, or the account for
//!   the root), so two nodes cannot both see one free slot of the two-key quota;
//! - a user is deleted under `FOR UPDATE` of its row, which waits for (and then sees) keys,
//!   policies and memberships being added, each of which holds at least `FOR KEY SHARE`;
//! - names are unique per account through a unique constraint on the folded name
//!   ([`crate::iam::name_key`]), so the loser of a race gets `UserAlreadyExists`.

use std::sync::Arc;

use tokio_postgres::{GenericClient, Row};

use super::PgDb;
use crate::iam::*;
use crate::secrets::{MasterKey, SecretAccessKey};
use crate::MetaError;

/// The PostgreSQL [`IamStore`]: the shared pool plus the master key.
#[derive(Clone)]
pub struct PgIamStore {
    db: PgDb,
    key: Arc<MasterKey>,
}

impl PgIamStore {
    pub fn new(db: PgDb, key: MasterKey) -> Self {
        PgIamStore {
            db,
            key: Arc::new(key),
        }
    }
}

impl From<tokio_postgres::Error> for IamError {
    fn from(e: tokio_postgres::Error) -> Self {
        IamError::Meta(e.into())
    }
}

/// The row lock a lookup takes in a transaction (see the module comment).
#[derive(Debug, Clone, Copy)]
enum Lock {
    None,
    /// Keeps the row from being deleted (what a foreign key check takes too).
    KeyShare,
    /// Serialises writers of the row's children among themselves.
    NoKeyUpdate,
    /// Excludes everyone: the row is about to go.
    Update,
}

impl Lock {
    fn sql(self) -> &'static str {
        match self {
            Lock::None => "",
            Lock::KeyShare => " FOR KEY SHARE",
            Lock::NoKeyUpdate => " FOR NO KEY UPDATE",
            Lock::Update => " FOR UPDATE",
        }
    }
}

async fn require_account<C: GenericClient>(c: &C, id: &str, lock: Lock) -> IamResult<()> {
    let sql = format!("SELECT 1 FROM accounts WHERE id = $1{}", lock.sql());
    match c.query_opt(&sql, &[&id]).await? {
        Some(_) => Ok(()),
        None => Err(IamError::AccountNotFound(id.to_string())),
    }
}

fn account_from_row(r: &Row) -> Result<Account, tokio_postgres::Error> {
    Ok(Account {
        id: r.try_get(0)?,
        alias: r.try_get(1)?,
        created_ms: r.try_get(2)?,
    })
}

const USER_COLS: &str = "id, account_id, name, path, user_id, arn, created_ms";

fn user_from_row(r: &Row) -> Result<(i64, User), tokio_postgres::Error> {
    Ok((
        r.try_get(0)?,
        User {
            account_id: r.try_get(1)?,
            name: r.try_get(2)?,
            path: r.try_get(3)?,
            user_id: r.try_get(4)?,
            arn: r.try_get(5)?,
            created_ms: r.try_get(6)?,
        },
    ))
}

async fn find_user<C: GenericClient>(
    c: &C,
    account: &str,
    name: &str,
    lock: Lock,
) -> IamResult<(i64, User)> {
    let sql = format!(
        "SELECT {USER_COLS} FROM iam_users WHERE account_id = $1 AND name_key = $2{}",
        lock.sql()
    );
    match c.query_opt(&sql, &[&account, &name_key(name)]).await? {
        Some(r) => Ok(user_from_row(&r)?),
        None => Err(IamError::UserNotFound(name.to_string())),
    }
}

const GROUP_COLS: &str = "id, account_id, name, path, group_id, arn, created_ms";

fn group_from_row(r: &Row) -> Result<(i64, Group), tokio_postgres::Error> {
    Ok((
        r.try_get(0)?,
        Group {
            account_id: r.try_get(1)?,
            name: r.try_get(2)?,
            path: r.try_get(3)?,
            group_id: r.try_get(4)?,
            arn: r.try_get(5)?,
            created_ms: r.try_get(6)?,
        },
    ))
}

async fn find_group<C: GenericClient>(
    c: &C,
    account: &str,
    name: &str,
    lock: Lock,
) -> IamResult<(i64, Group)> {
    let sql = format!(
        "SELECT {GROUP_COLS} FROM iam_groups WHERE account_id = $1 AND name_key = $2{}",
        lock.sql()
    );
    match c.query_opt(&sql, &[&account, &name_key(name)]).await? {
        Some(r) => Ok(group_from_row(&r)?),
        None => Err(IamError::GroupNotFound(name.to_string())),
    }
}

/// The owner's `user_ref` (`None` for the root) and its stored form, checking it exists.
async fn owner_ref<C: GenericClient>(
    c: &C,
    account: &str,
    owner: &KeyOwner,
    lock: Lock,
) -> IamResult<(Option<i64>, KeyOwner)> {
    match owner {
        KeyOwner::Root => require_account(c, account, lock)
            .await
            .map(|_| (None, KeyOwner::Root)),
        KeyOwner::User(name) => find_user(c, account, name, lock)
            .await
            .map(|(id, u)| (Some(id), KeyOwner::User(u.name))),
    }
}

/// Inserts a key; the caller holds the owner's row `FOR NO KEY UPDATE` (or just created it).
async fn insert_key<C: GenericClient>(
    c: &C,
    master: &MasterKey,
    account: &str,
    user_ref: Option<i64>,
    key: &NewAccessKey,
    now: i64,
) -> IamResult<()> {
    let id = &key.access_key_id;
    validate_access_key_id(id)?;
    let count: i64 = c
        .query_one(
            "SELECT COUNT(*) FROM access_keys
             WHERE account_id = $1 AND user_ref IS NOT DISTINCT FROM $2",
            &[&account, &user_ref],
        )
        .await?
        .try_get(0)?;
    check_access_key_quota(usize::try_from(count).unwrap_or(usize::MAX))?;
    let sealed = master.seal(id.as_bytes(), key.secret.expose().as_bytes());
    let inserted = c
        .execute(
            "INSERT INTO access_keys (access_key_id, account_id, user_ref, status, secret_enc, created_ms)
             VALUES ($1, $2, $3, 'Active', $4, $5)
             ON CONFLICT (access_key_id) DO NOTHING",
            &[id, &account, &user_ref, &sealed, &now],
        )
        .await?;
    if inserted == 0 {
        return Err(IamError::AccessKeyAlreadyExists(id.clone()));
    }
    Ok(())
}

fn status_of(s: &str) -> IamResult<KeyStatus> {
    KeyStatus::parse(s).ok_or_else(|| {
        IamError::Meta(MetaError::Database(
            format!("unknown access key status {s:?}").into(),
        ))
    })
}

/// The SigV4 hot path: one primary-key lookup of `access_keys` joined to its user.
pub(crate) const LOOKUP_SQL: &str =
    "SELECT k.account_id, k.status, k.secret_enc, u.name, u.path, u.user_id, u.arn
     FROM access_keys k LEFT JOIN iam_users u ON u.id = k.user_ref
     WHERE k.access_key_id = $1";

fn policy_not_found(kind: &'static str, name: &str) -> IamError {
    IamError::PolicyNotFound {
        kind,
        name: name.to_string(),
    }
}

#[async_trait::async_trait]
impl IamStore for PgIamStore {
    async fn create_account(
        &self,
        account: &Account,
        root_key: Option<&NewAccessKey>,
    ) -> IamResult<()> {
        validate_account_id(&account.id)?;
        let master = &*self.key;
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let inserted = tx
                    .execute(
                        "INSERT INTO accounts (id, alias, created_ms) VALUES ($1, $2, $3)
                         ON CONFLICT (id) DO NOTHING",
                        &[&account.id, &account.alias, &account.created_ms],
                    )
                    .await?;
                if inserted == 0 {
                    return Err(IamError::AccountAlreadyExists(account.id.clone()));
                }
                if let Some(k) = root_key {
                    insert_key(&*tx, master, &account.id, None, k, account.created_ms).await?;
                }
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn get_account(&self, id: &str) -> IamResult<Option<Account>> {
        let client = self.db.client().await?;
        let row = client
            .query_opt(
                "SELECT id, alias, created_ms FROM accounts WHERE id = $1",
                &[&id],
            )
            .await?;
        row.map(|r| account_from_row(&r))
            .transpose()
            .map_err(Into::into)
    }

    async fn list_accounts(&self) -> IamResult<Vec<Account>> {
        let client = self.db.client().await?;
        let rows = client
            .query(
                "SELECT id, alias, created_ms FROM accounts ORDER BY id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| account_from_row(r).map_err(Into::into))
            .collect()
    }

    async fn create_user(&self, user: &NewUser) -> IamResult<User> {
        validate_name("user", &user.name)?;
        validate_path(&user.path)?;
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                require_account(&*tx, &user.account_id, Lock::KeyShare).await?;
                let rec = User {
                    account_id: user.account_id.clone(),
                    name: user.name.clone(),
                    path: user.path.clone(),
                    user_id: generate_id("AIDA", 21),
                    arn: user.arn.clone(),
                    created_ms: super::now_ms(),
                };
                let inserted = tx
                    .execute(
                        "INSERT INTO iam_users (account_id, name, name_key, path, user_id, arn, created_ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (account_id, name_key) DO NOTHING",
                        &[
                            &rec.account_id,
                            &rec.name,
                            &name_key(&rec.name),
                            &rec.path,
                            &rec.user_id,
                            &rec.arn,
                            &rec.created_ms,
                        ],
                    )
                    .await?;
                if inserted == 0 {
                    return Err(IamError::UserAlreadyExists(user.name.clone()));
                }
                tx.commit().await?;
                Ok(rec)
            })
            .await
    }

    async fn get_user(&self, account: &str, name: &str) -> IamResult<User> {
        let client = self.db.client().await?;
        find_user(&**client, account, name, Lock::None)
            .await
            .map(|(_, u)| u)
    }

    async fn delete_user(&self, account: &str, name: &str) -> IamResult<()> {
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let (id, user) = find_user(&*tx, account, name, Lock::Update).await?;
                for (table, what) in [
                    ("access_keys", "access keys"),
                    ("iam_user_policies", "policies"),
                    ("iam_group_members", "group memberships"),
                ] {
                    let found = tx
                        .query_opt(
                            &format!("SELECT 1 FROM {table} WHERE user_ref = $1 LIMIT 1"),
                            &[&id],
                        )
                        .await?;
                    if found.is_some() {
                        return Err(user_delete_conflict(what, &user.name));
                    }
                }
                tx.execute("DELETE FROM iam_users WHERE id = $1", &[&id])
                    .await?;
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn list_users(&self, account: &str, path_prefix: Option<&str>) -> IamResult<Vec<User>> {
        let prefix = path_prefix.unwrap_or("/");
        let client = self.db.client().await?;
        require_account(&**client, account, Lock::None).await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {USER_COLS} FROM iam_users
                     WHERE account_id = $1 AND starts_with(path, $2)
                     ORDER BY name_key, name"
                ),
                &[&account, &prefix],
            )
            .await?;
        rows.iter().map(|r| Ok(user_from_row(r)?.1)).collect()
    }

    async fn create_access_key(
        &self,
        account: &str,
        owner: &KeyOwner,
        key: &NewAccessKey,
    ) -> IamResult<AccessKeyRecord> {
        let master = &*self.key;
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let (user_ref, owner) = owner_ref(&*tx, account, owner, Lock::NoKeyUpdate).await?;
                let now = super::now_ms();
                insert_key(&*tx, master, account, user_ref, key, now).await?;
                tx.commit().await?;
                Ok(AccessKeyRecord {
                    access_key_id: key.access_key_id.clone(),
                    account_id: account.to_string(),
                    owner,
                    status: KeyStatus::Active,
                    created_ms: now,
                    last_used_ms: None,
                })
            })
            .await
    }

    async fn delete_access_key(
        &self,
        account: &str,
        owner: &KeyOwner,
        access_key_id: &str,
    ) -> IamResult<()> {
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let (user_ref, _) = owner_ref(&*tx, account, owner, Lock::KeyShare).await?;
                let n = tx
                    .execute(
                        "DELETE FROM access_keys WHERE access_key_id = $1 AND account_id = $2
                         AND user_ref IS NOT DISTINCT FROM $3",
                        &[&access_key_id, &account, &user_ref],
                    )
                    .await?;
                if n == 0 {
                    return Err(IamError::AccessKeyNotFound(access_key_id.to_string()));
                }
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn update_access_key_status(
        &self,
        account: &str,
        owner: &KeyOwner,
        access_key_id: &str,
        status: KeyStatus,
    ) -> IamResult<()> {
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let (user_ref, _) = owner_ref(&*tx, account, owner, Lock::KeyShare).await?;
                let n = tx
                    .execute(
                        "UPDATE access_keys SET status = $4 WHERE access_key_id = $1
                         AND account_id = $2 AND user_ref IS NOT DISTINCT FROM $3",
                        &[&access_key_id, &account, &user_ref, &status.as_str()],
                    )
                    .await?;
                if n == 0 {
                    return Err(IamError::AccessKeyNotFound(access_key_id.to_string()));
                }
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn list_access_keys(
        &self,
        account: &str,
        owner: &KeyOwner,
    ) -> IamResult<Vec<AccessKeyRecord>> {
        let client = self.db.client().await?;
        let (user_ref, owner) = owner_ref(&**client, account, owner, Lock::None).await?;
        let rows = client
            .query(
                "SELECT access_key_id, status, created_ms, last_used_ms FROM access_keys
                 WHERE account_id = $1 AND user_ref IS NOT DISTINCT FROM $2
                 ORDER BY created_ms, access_key_id",
                &[&account, &user_ref],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AccessKeyRecord {
                    access_key_id: r.try_get(0)?,
                    account_id: account.to_string(),
                    owner: owner.clone(),
                    status: status_of(r.try_get(1)?)?,
                    created_ms: r.try_get(2)?,
                    last_used_ms: r.try_get(3)?,
                })
            })
            .collect()
    }

    async fn lookup_access_key(&self, access_key_id: &str) -> IamResult<Option<KeyLookup>> {
        let client = self.db.client().await?;
        let statement = client.prepare_cached(LOOKUP_SQL).await?;
        let Some(r) = client.query_opt(&statement, &[&access_key_id]).await? else {
            return Ok(None);
        };
        let principal = match r.try_get::<_, Option<String>>(3)? {
            None => KeyPrincipal::Root,
            Some(name) => KeyPrincipal::User {
                name,
                path: r.try_get(4)?,
                user_id: r.try_get(5)?,
                arn: r.try_get(6)?,
            },
        };
        let sealed: Vec<u8> = r.try_get(2)?;
        let secret_error = |source| IamError::Secret {
            access_key_id: access_key_id.to_string(),
            source,
        };
        let plain = self
            .key
            .open(access_key_id.as_bytes(), &sealed)
            .map_err(secret_error)?;
        let secret = String::from_utf8(plain)
            .map_err(|_| secret_error(crate::secrets::SecretError::Corrupt))?;
        Ok(Some(KeyLookup {
            access_key_id: access_key_id.to_string(),
            account_id: r.try_get(0)?,
            principal,
            status: status_of(r.try_get(1)?)?,
            secret: SecretAccessKey::new(secret),
        }))
    }

    async fn record_access_key_use(&self, access_key_id: &str, at_ms: i64) -> IamResult<()> {
        let client = self.db.client().await?;
        client
            .execute(
                "UPDATE access_keys SET last_used_ms = $2
                 WHERE access_key_id = $1 AND (last_used_ms IS NULL OR last_used_ms < $2)",
                &[&access_key_id, &at_ms],
            )
            .await?;
        Ok(())
    }

    async fn put_user_policy(
        &self,
        account: &str,
        user: &str,
        name: &str,
        document: &str,
    ) -> IamResult<()> {
        self.put_policy(PolicyOwner::User, account, user, name, document)
            .await
    }

    async fn get_user_policy(&self, account: &str, user: &str, name: &str) -> IamResult<String> {
        self.get_policy(PolicyOwner::User, account, user, name)
            .await
    }

    async fn delete_user_policy(&self, account: &str, user: &str, name: &str) -> IamResult<()> {
        self.delete_policy(PolicyOwner::User, account, user, name)
            .await
    }

    async fn list_user_policies(&self, account: &str, user: &str) -> IamResult<Vec<String>> {
        self.list_policies(PolicyOwner::User, account, user).await
    }

    async fn put_group_policy(
        &self,
        account: &str,
        group: &str,
        name: &str,
        document: &str,
    ) -> IamResult<()> {
        self.put_policy(PolicyOwner::Group, account, group, name, document)
            .await
    }

    async fn get_group_policy(&self, account: &str, group: &str, name: &str) -> IamResult<String> {
        self.get_policy(PolicyOwner::Group, account, group, name)
            .await
    }

    async fn delete_group_policy(&self, account: &str, group: &str, name: &str) -> IamResult<()> {
        self.delete_policy(PolicyOwner::Group, account, group, name)
            .await
    }

    async fn list_group_policies(&self, account: &str, group: &str) -> IamResult<Vec<String>> {
        self.list_policies(PolicyOwner::Group, account, group).await
    }

    async fn policies_for_user(&self, account: &str, user: &str) -> IamResult<Vec<InlinePolicy>> {
        let client = self.db.client().await?;
        let (uref, _) = find_user(&**client, account, user, Lock::None).await?;
        let own = client
            .query(
                "SELECT name, document FROM iam_user_policies WHERE user_ref = $1 ORDER BY name",
                &[&uref],
            )
            .await?;
        let groups = client
            .query(
                "SELECT g.name, p.name, p.document FROM iam_group_members m
                   JOIN iam_groups g ON g.id = m.group_ref
                   JOIN iam_group_policies p ON p.group_ref = m.group_ref
                 WHERE m.user_ref = $1 ORDER BY g.name_key, g.name, p.name",
                &[&uref],
            )
            .await?;
        let own = own.iter().map(|r| {
            Ok(InlinePolicy {
                attached_to: PolicyAttachment::User,
                name: r.try_get(0)?,
                document: r.try_get(1)?,
            })
        });
        let groups = groups.iter().map(|r| {
            Ok(InlinePolicy {
                attached_to: PolicyAttachment::Group(r.try_get(0)?),
                name: r.try_get(1)?,
                document: r.try_get(2)?,
            })
        });
        own.chain(groups).collect()
    }

    async fn create_group(&self, group: &NewGroup) -> IamResult<Group> {
        validate_name("group", &group.name)?;
        validate_path(&group.path)?;
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                require_account(&*tx, &group.account_id, Lock::KeyShare).await?;
                let rec = Group {
                    account_id: group.account_id.clone(),
                    name: group.name.clone(),
                    path: group.path.clone(),
                    group_id: generate_id("AGPA", 21),
                    arn: group.arn.clone(),
                    created_ms: super::now_ms(),
                };
                let inserted = tx
                    .execute(
                        "INSERT INTO iam_groups (account_id, name, name_key, path, group_id, arn, created_ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (account_id, name_key) DO NOTHING",
                        &[
                            &rec.account_id,
                            &rec.name,
                            &name_key(&rec.name),
                            &rec.path,
                            &rec.group_id,
                            &rec.arn,
                            &rec.created_ms,
                        ],
                    )
                    .await?;
                if inserted == 0 {
                    return Err(IamError::GroupAlreadyExists(group.name.clone()));
                }
                tx.commit().await?;
                Ok(rec)
            })
            .await
    }

    async fn get_group(&self, account: &str, name: &str) -> IamResult<Group> {
        let client = self.db.client().await?;
        find_group(&**client, account, name, Lock::None)
            .await
            .map(|(_, g)| g)
    }

    async fn add_user_to_group(&self, account: &str, group: &str, user: &str) -> IamResult<()> {
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let (gref, _) = find_group(&*tx, account, group, Lock::KeyShare).await?;
                let (uref, _) = find_user(&*tx, account, user, Lock::KeyShare).await?;
                tx.execute(
                    "INSERT INTO iam_group_members (group_ref, user_ref, added_ms)
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&gref, &uref, &super::now_ms()],
                )
                .await?;
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn remove_user_from_group(
        &self,
        account: &str,
        group: &str,
        user: &str,
    ) -> IamResult<()> {
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let (gref, _) = find_group(&*tx, account, group, Lock::KeyShare).await?;
                let (uref, _) = find_user(&*tx, account, user, Lock::KeyShare).await?;
                let n = tx
                    .execute(
                        "DELETE FROM iam_group_members WHERE group_ref = $1 AND user_ref = $2",
                        &[&gref, &uref],
                    )
                    .await?;
                if n == 0 {
                    return Err(IamError::UserNotFound(user.to_string()));
                }
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn list_groups_for_user(&self, account: &str, user: &str) -> IamResult<Vec<Group>> {
        let client = self.db.client().await?;
        let (uref, _) = find_user(&**client, account, user, Lock::None).await?;
        let rows = client
            .query(
                "SELECT g.id, g.account_id, g.name, g.path, g.group_id, g.arn, g.created_ms
                 FROM iam_group_members m JOIN iam_groups g ON g.id = m.group_ref
                 WHERE m.user_ref = $1 ORDER BY g.name_key, g.name",
                &[&uref],
            )
            .await?;
        rows.iter().map(|r| Ok(group_from_row(r)?.1)).collect()
    }
}

/// Who an inline policy is attached to; users and groups keep them in parallel tables.
#[derive(Debug, Clone, Copy)]
enum PolicyOwner {
    User,
    Group,
}

impl PolicyOwner {
    fn label(self) -> &'static str {
        match self {
            PolicyOwner::User => "user",
            PolicyOwner::Group => "group",
        }
    }

    /// (table, owner column)
    fn table(self) -> (&'static str, &'static str) {
        match self {
            PolicyOwner::User => ("iam_user_policies", "user_ref"),
            PolicyOwner::Group => ("iam_group_policies", "group_ref"),
        }
    }

    /// The owner's row id.
    async fn find<C: GenericClient>(
        self,
        c: &C,
        account: &str,
        name: &str,
        lock: Lock,
    ) -> IamResult<i64> {
        match self {
            PolicyOwner::User => find_user(c, account, name, lock).await.map(|(r, _)| r),
            PolicyOwner::Group => find_group(c, account, name, lock).await.map(|(r, _)| r),
        }
    }
}

impl PgIamStore {
    async fn put_policy(
        &self,
        owner: PolicyOwner,
        account: &str,
        owner_name: &str,
        name: &str,
        document: &str,
    ) -> IamResult<()> {
        validate_policy_name(name)?;
        let (table, col) = owner.table();
        self.db
            .retry(|| async move {
                let mut client = self.db.client().await?;
                let tx = client.transaction().await?;
                let oref = owner
                    .find(&*tx, account, owner_name, Lock::KeyShare)
                    .await?;
                tx.execute(
                    &format!(
                        "INSERT INTO {table} ({col}, name, document, updated_ms)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT ({col}, name) DO UPDATE
                         SET document = EXCLUDED.document, updated_ms = EXCLUDED.updated_ms"
                    ),
                    &[&oref, &name, &document, &super::now_ms()],
                )
                .await?;
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn get_policy(
        &self,
        owner: PolicyOwner,
        account: &str,
        owner_name: &str,
        name: &str,
    ) -> IamResult<String> {
        let (table, col) = owner.table();
        let client = self.db.client().await?;
        let oref = owner
            .find(&**client, account, owner_name, Lock::None)
            .await?;
        client
            .query_opt(
                &format!("SELECT document FROM {table} WHERE {col} = $1 AND name = $2"),
                &[&oref, &name],
            )
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .ok_or_else(|| policy_not_found(owner.label(), name))
    }

    async fn delete_policy(
        &self,
        owner: PolicyOwner,
        account: &str,
        owner_name: &str,
        name: &str,
    ) -> IamResult<()> {
        let (table, col) = owner.table();
        let client = self.db.client().await?;
        let oref = owner
            .find(&**client, account, owner_name, Lock::None)
            .await?;
        let n = client
            .execute(
                &format!("DELETE FROM {table} WHERE {col} = $1 AND name = $2"),
                &[&oref, &name],
            )
            .await?;
        if n == 0 {
            return Err(policy_not_found(owner.label(), name));
        }
        Ok(())
    }

    async fn list_policies(
        &self,
        owner: PolicyOwner,
        account: &str,
        owner_name: &str,
    ) -> IamResult<Vec<String>> {
        let (table, col) = owner.table();
        let client = self.db.client().await?;
        let oref = owner
            .find(&**client, account, owner_name, Lock::None)
            .await?;
        let rows = client
            .query(
                &format!("SELECT name FROM {table} WHERE {col} = $1 ORDER BY name"),
                &[&oref],
            )
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}
