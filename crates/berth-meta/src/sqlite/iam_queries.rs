//! `IamStore` for SQLite, on the same database and connections as the `MetaStore`
//! (tables from migration 0002). Secrets are sealed with the master key before they reach
//! SQL and opened after they leave it.

use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension};

use super::{now_ms, SqliteMetaStore};
use crate::iam::*;
use crate::secrets::{MasterKey, SecretAccessKey};

/// The SQLite [`IamStore`]: a handle on an open [`SqliteMetaStore`] plus the master key.
#[derive(Clone)]
pub struct SqliteIamStore {
    db: SqliteMetaStore,
    key: Arc<MasterKey>,
}

impl SqliteIamStore {
    pub fn new(db: SqliteMetaStore, key: MasterKey) -> Self {
        SqliteIamStore {
            db,
            key: Arc::new(key),
        }
    }
}

impl From<rusqlite::Error> for IamError {
    fn from(e: rusqlite::Error) -> Self {
        IamError::Meta(e.into())
    }
}

fn require_account(c: &Connection, id: &str) -> IamResult<()> {
    let found = c
        .prepare_cached("SELECT 1 FROM accounts WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?;
    found.ok_or_else(|| IamError::AccountNotFound(id.to_string()))
}

const USER_COLS: &str = "id, account_id, name, path, user_id, arn, created_ms";

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, User)> {
    Ok((
        r.get(0)?,
        User {
            account_id: r.get(1)?,
            name: r.get(2)?,
            path: r.get(3)?,
            user_id: r.get(4)?,
            arn: r.get(5)?,
            created_ms: r.get(6)?,
        },
    ))
}

fn find_user(c: &Connection, account: &str, name: &str) -> IamResult<(i64, User)> {
    let row = c
        .prepare_cached(&format!(
            "SELECT {USER_COLS} FROM iam_users WHERE account_id = ?1 AND name = ?2"
        ))?
        .query_row([account, name], user_from_row)
        .optional()?;
    row.ok_or_else(|| IamError::UserNotFound(name.to_string()))
}

const GROUP_COLS: &str = "id, account_id, name, path, group_id, arn, created_ms";

fn group_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Group)> {
    Ok((
        r.get(0)?,
        Group {
            account_id: r.get(1)?,
            name: r.get(2)?,
            path: r.get(3)?,
            group_id: r.get(4)?,
            arn: r.get(5)?,
            created_ms: r.get(6)?,
        },
    ))
}

fn find_group(c: &Connection, account: &str, name: &str) -> IamResult<(i64, Group)> {
    let row = c
        .prepare_cached(&format!(
            "SELECT {GROUP_COLS} FROM iam_groups WHERE account_id = ?1 AND name = ?2"
        ))?
        .query_row([account, name], group_from_row)
        .optional()?;
    row.ok_or_else(|| IamError::GroupNotFound(name.to_string()))
}

/// The `user_ref` of an owner (`None` for the root), checking that it exists.
fn owner_ref(c: &Connection, account: &str, owner: &KeyOwner) -> IamResult<Option<i64>> {
    match owner {
        KeyOwner::Root => require_account(c, account).map(|_| None),
        KeyOwner::User(name) => find_user(c, account, name).map(|(id, _)| Some(id)),
    }
}

fn insert_key(
    c: &Connection,
    master: &MasterKey,
    account: &str,
    user_ref: Option<i64>,
    key: &NewAccessKey,
    now: i64,
) -> IamResult<i64> {
    let id = &key.access_key_id;
    validate_access_key_id(id)?;
    let count: i64 = c
        .prepare_cached(
            "SELECT COUNT(*) FROM access_keys WHERE account_id = ?1 AND user_ref IS ?2",
        )?
        .query_row(params![account, user_ref], |r| r.get(0))?;
    check_access_key_quota(count as usize)?;
    let exists = c
        .prepare_cached("SELECT 1 FROM access_keys WHERE access_key_id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?;
    if exists.is_some() {
        return Err(IamError::AccessKeyAlreadyExists(id.clone()));
    }
    let sealed = master.seal(id.as_bytes(), key.secret.expose().as_bytes());
    c.prepare_cached(
        "INSERT INTO access_keys (access_key_id, account_id, user_ref, status, secret_enc, created_ms)
         VALUES (?1, ?2, ?3, 'Active', ?4, ?5)",
    )?
    .execute(params![id, account, user_ref, sealed, now])?;
    Ok(now)
}

fn status_of(s: String) -> rusqlite::Result<KeyStatus> {
    KeyStatus::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown access key status {s:?}").into(),
        )
    })
}

fn owned_key(
    c: &Connection,
    account: &str,
    user_ref: Option<i64>,
    access_key_id: &str,
) -> IamResult<()> {
    let found = c
        .prepare_cached(
            "SELECT 1 FROM access_keys WHERE access_key_id = ?1 AND account_id = ?2 AND user_ref IS ?3",
        )?
        .query_row(params![access_key_id, account, user_ref], |_| Ok(()))
        .optional()?;
    found.ok_or_else(|| IamError::AccessKeyNotFound(access_key_id.to_string()))
}

/// The SigV4 hot path: one primary-key search of `access_keys` and one rowid search of
/// `iam_users` (checked by a query-plan test).
pub(crate) const LOOKUP_SQL: &str =
    "SELECT k.account_id, k.status, k.secret_enc, u.name, u.path, u.user_id, u.arn
     FROM access_keys k LEFT JOIN iam_users u ON u.id = k.user_ref
     WHERE k.access_key_id = ?1";

fn policy_not_found(kind: &'static str, name: &str) -> IamError {
    IamError::PolicyNotFound {
        kind,
        name: name.to_string(),
    }
}

#[async_trait::async_trait]
impl IamStore for SqliteIamStore {
    async fn create_account(
        &self,
        account: &Account,
        root_key: Option<&NewAccessKey>,
    ) -> IamResult<()> {
        validate_account_id(&account.id)?;
        let (account, root_key, master) = (account.clone(), root_key.cloned(), self.key.clone());
        self.db
            .write(move |c| {
                let tx = super::queries::immediate(c)?;
                let exists = tx
                    .prepare_cached("SELECT 1 FROM accounts WHERE id = ?1")?
                    .query_row([&account.id], |_| Ok(()))
                    .optional()?;
                if exists.is_some() {
                    return Err(IamError::AccountAlreadyExists(account.id.clone()));
                }
                tx.execute(
                    "INSERT INTO accounts (id, alias, created_ms) VALUES (?1, ?2, ?3)",
                    params![account.id, account.alias, account.created_ms],
                )?;
                if let Some(k) = &root_key {
                    insert_key(&tx, &master, &account.id, None, k, account.created_ms)?;
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn get_account(&self, id: &str) -> IamResult<Option<Account>> {
        let id = id.to_string();
        self.db
            .read(move |c| {
                Ok(
                    c.prepare_cached("SELECT id, alias, created_ms FROM accounts WHERE id = ?1")?
                        .query_row([id], |r| {
                            Ok(Account {
                                id: r.get(0)?,
                                alias: r.get(1)?,
                                created_ms: r.get(2)?,
                            })
                        })
                        .optional()?,
                )
            })
            .await
    }

    async fn list_accounts(&self) -> IamResult<Vec<Account>> {
        self.db
            .read(move |c| {
                let mut st =
                    c.prepare_cached("SELECT id, alias, created_ms FROM accounts ORDER BY id")?;
                let rows = st.query_map([], |r| {
                    Ok(Account {
                        id: r.get(0)?,
                        alias: r.get(1)?,
                        created_ms: r.get(2)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn create_user(&self, user: &NewUser) -> IamResult<User> {
        validate_name("user", &user.name)?;
        validate_path(&user.path)?;
        let user = user.clone();
        self.db
            .write(move |c| {
                let tx = super::queries::immediate(c)?;
                require_account(&tx, &user.account_id)?;
                if find_user(&tx, &user.account_id, &user.name).is_ok() {
                    return Err(IamError::UserAlreadyExists(user.name.clone()));
                }
                let rec = User {
                    account_id: user.account_id.clone(),
                    name: user.name.clone(),
                    path: user.path.clone(),
                    user_id: generate_id("AIDA", 21),
                    arn: user.arn.clone(),
                    created_ms: now_ms(),
                };
                tx.execute(
                    "INSERT INTO iam_users (account_id, name, path, user_id, arn, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        rec.account_id,
                        rec.name,
                        rec.path,
                        rec.user_id,
                        rec.arn,
                        rec.created_ms
                    ],
                )?;
                tx.commit()?;
                Ok(rec)
            })
            .await
    }

    async fn get_user(&self, account: &str, name: &str) -> IamResult<User> {
        let (account, name) = (account.to_string(), name.to_string());
        self.db
            .read(move |c| find_user(c, &account, &name).map(|(_, u)| u))
            .await
    }

    async fn delete_user(&self, account: &str, name: &str) -> IamResult<()> {
        let (account, name) = (account.to_string(), name.to_string());
        self.db
            .write(move |c| {
                let tx = super::queries::immediate(c)?;
                let (id, user) = find_user(&tx, &account, &name)?;
                for (table, what) in [
                    ("access_keys", "access keys"),
                    ("iam_user_policies", "policies"),
                    ("iam_group_members", "group memberships"),
                ] {
                    let n: i64 = tx.query_row(
                        &format!("SELECT COUNT(*) FROM {table} WHERE user_ref = ?1"),
                        [id],
                        |r| r.get(0),
                    )?;
                    if n > 0 {
                        return Err(user_delete_conflict(what, &user.name));
                    }
                }
                tx.execute("DELETE FROM iam_users WHERE id = ?1", [id])?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn list_users(&self, account: &str, path_prefix: Option<&str>) -> IamResult<Vec<User>> {
        let (account, prefix) = (account.to_string(), path_prefix.unwrap_or("/").to_string());
        self.db
            .read(move |c| {
                require_account(c, &account)?;
                let mut st = c.prepare_cached(&format!(
                    "SELECT {USER_COLS} FROM iam_users WHERE account_id = ?1
                     AND substr(path, 1, length(?2)) = ?2 ORDER BY name"
                ))?;
                let rows = st.query_map([&account, &prefix], user_from_row)?;
                Ok(rows
                    .map(|r| r.map(|(_, u)| u))
                    .collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn create_access_key(
        &self,
        account: &str,
        owner: &KeyOwner,
        key: &NewAccessKey,
    ) -> IamResult<AccessKeyRecord> {
        let (account, owner, key, master) = (
            account.to_string(),
            owner.clone(),
            key.clone(),
            self.key.clone(),
        );
        self.db
            .write(move |c| {
                let tx = super::queries::immediate(c)?;
                let user_ref = owner_ref(&tx, &account, &owner)?;
                let now = insert_key(&tx, &master, &account, user_ref, &key, now_ms())?;
                tx.commit()?;
                let owner = match owner {
                    KeyOwner::Root => KeyOwner::Root,
                    // The stored spelling of the name.
                    KeyOwner::User(_) => {
                        let name: String = c.query_row(
                            "SELECT name FROM iam_users WHERE id = ?1",
                            [user_ref],
                            |r| r.get(0),
                        )?;
                        KeyOwner::User(name)
                    }
                };
                Ok(AccessKeyRecord {
                    access_key_id: key.access_key_id.clone(),
                    account_id: account,
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
        let (account, owner, id) = (
            account.to_string(),
            owner.clone(),
            access_key_id.to_string(),
        );
        self.db
            .write(move |c| {
                let tx = super::queries::immediate(c)?;
                let user_ref = owner_ref(&tx, &account, &owner)?;
                owned_key(&tx, &account, user_ref, &id)?;
                tx.execute("DELETE FROM access_keys WHERE access_key_id = ?1", [&id])?;
                tx.commit()?;
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
        let (account, owner, id) = (
            account.to_string(),
            owner.clone(),
            access_key_id.to_string(),
        );
        self.db
            .write(move |c| {
                let tx = super::queries::immediate(c)?;
                let user_ref = owner_ref(&tx, &account, &owner)?;
                owned_key(&tx, &account, user_ref, &id)?;
                tx.execute(
                    "UPDATE access_keys SET status = ?2 WHERE access_key_id = ?1",
                    params![id, status.as_str()],
                )?;
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn list_access_keys(
        &self,
        account: &str,
        owner: &KeyOwner,
    ) -> IamResult<Vec<AccessKeyRecord>> {
        let (account, owner) = (account.to_string(), owner.clone());
        self.db
            .read(move |c| {
                let user_ref = owner_ref(c, &account, &owner)?;
                let owner = match user_ref {
                    None => KeyOwner::Root,
                    Some(r) => KeyOwner::User(c.query_row(
                        "SELECT name FROM iam_users WHERE id = ?1",
                        [r],
                        |row| row.get(0),
                    )?),
                };
                let mut st = c.prepare_cached(
                    "SELECT access_key_id, status, created_ms, last_used_ms FROM access_keys
                     WHERE account_id = ?1 AND user_ref IS ?2 ORDER BY created_ms, access_key_id",
                )?;
                let rows = st.query_map(params![account, user_ref], |r| {
                    Ok(AccessKeyRecord {
                        access_key_id: r.get(0)?,
                        account_id: account.clone(),
                        owner: owner.clone(),
                        status: status_of(r.get(1)?)?,
                        created_ms: r.get(2)?,
                        last_used_ms: r.get(3)?,
                    })
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
    }

    async fn lookup_access_key(&self, access_key_id: &str) -> IamResult<Option<KeyLookup>> {
        let (id, master) = (access_key_id.to_string(), self.key.clone());
        self.db
            .read(move |c| {
                let row = c
                    .prepare_cached(LOOKUP_SQL)?
                    .query_row([&id], |r| {
                        let principal = match r.get::<_, Option<String>>(3)? {
                            None => KeyPrincipal::Root,
                            Some(name) => KeyPrincipal::User {
                                name,
                                path: r.get(4)?,
                                user_id: r.get(5)?,
                                arn: r.get(6)?,
                            },
                        };
                        Ok((
                            r.get::<_, String>(0)?,
                            status_of(r.get(1)?)?,
                            r.get::<_, Vec<u8>>(2)?,
                            principal,
                        ))
                    })
                    .optional()?;
                let Some((account_id, status, sealed, principal)) = row else {
                    return Ok(None);
                };
                let plain =
                    master
                        .open(id.as_bytes(), &sealed)
                        .map_err(|source| IamError::Secret {
                            access_key_id: id.clone(),
                            source,
                        })?;
                let secret = String::from_utf8(plain).map_err(|_| IamError::Secret {
                    access_key_id: id.clone(),
                    source: crate::secrets::SecretError::Corrupt,
                })?;
                Ok(Some(KeyLookup {
                    access_key_id: id,
                    account_id,
                    principal,
                    status,
                    secret: SecretAccessKey::new(secret),
                }))
            })
            .await
    }

    async fn record_access_key_use(&self, access_key_id: &str, at_ms: i64) -> IamResult<()> {
        let id = access_key_id.to_string();
        self.db
            .write(move |c| {
                c.prepare_cached(
                    "UPDATE access_keys SET last_used_ms = ?2
                     WHERE access_key_id = ?1 AND (last_used_ms IS NULL OR last_used_ms < ?2)",
                )?
                .execute(params![id, at_ms])?;
                Ok(())
            })
            .await
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
        let (account, user) = (account.to_string(), user.to_string());
        self.db
            .read(move |c| {
                let (uref, _) = find_user(c, &account, &user)?;
                let mut out = Vec::new();
                let mut st = c.prepare_cached(
                    "SELECT name, document FROM iam_user_policies WHERE user_ref = ?1 ORDER BY name",
                )?;
                for row in st.query_map([uref], |r| {
                    Ok(InlinePolicy {
                        attached_to: PolicyAttachment::User,
                        name: r.get(0)?,
                        document: r.get(1)?,
                    })
                })? {
                    out.push(row?);
                }
                let mut st = c.prepare_cached(
                    "SELECT g.name, p.name, p.document FROM iam_group_members m
                       JOIN iam_groups g ON g.id = m.group_ref
                       JOIN iam_group_policies p ON p.group_ref = m.group_ref
                     WHERE m.user_ref = ?1 ORDER BY g.name, p.name",
                )?;
                for row in st.query_map([uref], |r| {
                    Ok(InlinePolicy {
                        attached_to: PolicyAttachment::Group(r.get(0)?),
                        name: r.get(1)?,
                        document: r.get(2)?,
                    })
                })? {
                    out.push(row?);
                }
                Ok(out)
            })
            .await
    }

    async fn create_group(&self, group: &NewGroup) -> IamResult<Group> {
        validate_name("group", &group.name)?;
        validate_path(&group.path)?;
        let group = group.clone();
        self.db
            .write(move |c| {
                let tx = super::queries::immediate(c)?;
                require_account(&tx, &group.account_id)?;
                if find_group(&tx, &group.account_id, &group.name).is_ok() {
                    return Err(IamError::GroupAlreadyExists(group.name.clone()));
                }
                let rec = Group {
                    account_id: group.account_id.clone(),
                    name: group.name.clone(),
                    path: group.path.clone(),
                    group_id: generate_id("AGPA", 21),
                    arn: group.arn.clone(),
                    created_ms: now_ms(),
                };
                tx.execute(
                    "INSERT INTO iam_groups (account_id, name, path, group_id, arn, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        rec.account_id,
                        rec.name,
                        rec.path,
                        rec.group_id,
                        rec.arn,
                        rec.created_ms
                    ],
                )?;
                tx.commit()?;
                Ok(rec)
            })
            .await
    }

    async fn get_group(&self, account: &str, name: &str) -> IamResult<Group> {
        let (account, name) = (account.to_string(), name.to_string());
        self.db
            .read(move |c| find_group(c, &account, &name).map(|(_, g)| g))
            .await
    }

    async fn add_user_to_group(&self, account: &str, group: &str, user: &str) -> IamResult<()> {
        let (account, group, user) = (account.to_string(), group.to_string(), user.to_string());
        self.db
            .write(move |c| {
                let tx = super::queries::immediate(c)?;
                let (gref, _) = find_group(&tx, &account, &group)?;
                let (uref, _) = find_user(&tx, &account, &user)?;
                tx.execute(
                    "INSERT OR IGNORE INTO iam_group_members (group_ref, user_ref, added_ms)
                     VALUES (?1, ?2, ?3)",
                    params![gref, uref, now_ms()],
                )?;
                tx.commit()?;
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
        let (account, group, user) = (account.to_string(), group.to_string(), user.to_string());
        self.db
            .write(move |c| {
                let tx = super::queries::immediate(c)?;
                let (gref, _) = find_group(&tx, &account, &group)?;
                let (uref, _) = find_user(&tx, &account, &user)?;
                let n = tx.execute(
                    "DELETE FROM iam_group_members WHERE group_ref = ?1 AND user_ref = ?2",
                    params![gref, uref],
                )?;
                if n == 0 {
                    return Err(IamError::UserNotFound(user));
                }
                tx.commit()?;
                Ok(())
            })
            .await
    }

    async fn list_groups_for_user(&self, account: &str, user: &str) -> IamResult<Vec<Group>> {
        let (account, user) = (account.to_string(), user.to_string());
        self.db
            .read(move |c| {
                let (uref, _) = find_user(c, &account, &user)?;
                let mut st = c.prepare_cached(
                    "SELECT g.id, g.account_id, g.name, g.path, g.group_id, g.arn, g.created_ms
                     FROM iam_group_members m JOIN iam_groups g ON g.id = m.group_ref
                     WHERE m.user_ref = ?1 ORDER BY g.name",
                )?;
                let rows = st.query_map([uref], group_from_row)?;
                Ok(rows
                    .map(|r| r.map(|(_, g)| g))
                    .collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
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
    fn find(self, c: &Connection, account: &str, name: &str) -> IamResult<i64> {
        match self {
            PolicyOwner::User => find_user(c, account, name).map(|(r, _)| r),
            PolicyOwner::Group => find_group(c, account, name).map(|(r, _)| r),
        }
    }
}

impl SqliteIamStore {
    async fn put_policy(
        &self,
        owner: PolicyOwner,
        account: &str,
        owner_name: &str,
        name: &str,
        document: &str,
    ) -> IamResult<()> {
        validate_policy_name(name)?;
        let (account, owner_name, name, doc) = (
            account.to_string(),
            owner_name.to_string(),
            name.to_string(),
            document.to_string(),
        );
        let (table, col) = owner.table();
        self.db
            .write(move |c| {
                let tx = super::queries::immediate(c)?;
                let oref = owner.find(&tx, &account, &owner_name)?;
                tx.execute(
                    &format!(
                        "INSERT INTO {table} ({col}, name, document, updated_ms)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT ({col}, name) DO UPDATE
                         SET document = excluded.document, updated_ms = excluded.updated_ms"
                    ),
                    params![oref, name, doc, now_ms()],
                )?;
                tx.commit()?;
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
        let (account, owner_name, name) = (
            account.to_string(),
            owner_name.to_string(),
            name.to_string(),
        );
        let (table, col) = owner.table();
        self.db
            .read(move |c| {
                let oref = owner.find(c, &account, &owner_name)?;
                c.prepare_cached(&format!(
                    "SELECT document FROM {table} WHERE {col} = ?1 AND name = ?2"
                ))?
                .query_row(params![oref, name], |r| r.get(0))
                .optional()?
                .ok_or_else(|| policy_not_found(owner.label(), &name))
            })
            .await
    }

    async fn delete_policy(
        &self,
        owner: PolicyOwner,
        account: &str,
        owner_name: &str,
        name: &str,
    ) -> IamResult<()> {
        let (account, owner_name, name) = (
            account.to_string(),
            owner_name.to_string(),
            name.to_string(),
        );
        let (table, col) = owner.table();
        self.db
            .write(move |c| {
                let oref = owner.find(c, &account, &owner_name)?;
                let n = c.execute(
                    &format!("DELETE FROM {table} WHERE {col} = ?1 AND name = ?2"),
                    params![oref, name],
                )?;
                if n == 0 {
                    return Err(policy_not_found(owner.label(), &name));
                }
                Ok(())
            })
            .await
    }

    async fn list_policies(
        &self,
        owner: PolicyOwner,
        account: &str,
        owner_name: &str,
    ) -> IamResult<Vec<String>> {
        let (account, owner_name) = (account.to_string(), owner_name.to_string());
        let (table, col) = owner.table();
        self.db
            .read(move |c| {
                let oref = owner.find(c, &account, &owner_name)?;
                let mut st = c.prepare_cached(&format!(
                    "SELECT name FROM {table} WHERE {col} = ?1 ORDER BY name"
                ))?;
                let rows = st.query_map([oref], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
            })
            .await
    }
}
