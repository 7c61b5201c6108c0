//! Accounts and IAM: the [`IamStore`] trait, its records and errors.
//!
//! Kept apart from [`crate::MetaStore`] so that each backend implements it on its own
//! (the SQLite one is [`crate::sqlite::SqliteIamStore`]; a PostgreSQL one will pass the
//! same `iam_suite` (`crate::iam_store_suite!`)). Policy *documents* are stored as given; parsing and
//! evaluating them is `berth-iam`'s job, as is building ARNs (callers pass them in).
//!
//! Secret access keys are sealed with a [`MasterKey`](crate::secrets::MasterKey) by the
//! backend: they are encrypted at rest and only [`IamStore::lookup_access_key`] (the SigV4
//! hot path) returns them, as a [`SecretAccessKey`] whose `Debug` is redacted.

use rand::Rng;

use crate::secrets::{SecretAccessKey, SecretError};
use crate::MetaError;

/// Access keys an owner may have at once (AWS's quota, for users and for the root alike).
pub const MAX_ACCESS_KEYS_PER_OWNER: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum IamError {
    #[error("account {0} not found")]
    AccountNotFound(String),
    #[error("account {0} already exists")]
    AccountAlreadyExists(String),
    #[error("The user with name {0} cannot be found.")]
    UserNotFound(String),
    #[error("User with name {0} already exists.")]
    UserAlreadyExists(String),
    #[error("The group with name {0} cannot be found.")]
    GroupNotFound(String),
    #[error("Group with name {0} already exists.")]
    GroupAlreadyExists(String),
    #[error("The Access Key with id {0} cannot be found.")]
    AccessKeyNotFound(String),
    #[error("access key {0} already exists")]
    AccessKeyAlreadyExists(String),
    #[error("The {kind} policy with name {name} cannot be found.")]
    PolicyNotFound { kind: &'static str, name: String },
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    DeleteConflict(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("cannot decrypt the secret of access key {access_key_id}")]
    Secret {
        access_key_id: String,
        #[source]
        source: SecretError,
    },
    #[error(transparent)]
    Meta(#[from] MetaError),
}

pub type IamResult<T> = std::result::Result<T, IamError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The 12-digit account id.
    pub id: String,
    pub alias: Option<String>,
    pub created_ms: i64,
}

/// A user to create. The store assigns the unique id (`AIDA...`).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub account_id: String,
    pub name: String,
    /// `/` or `/a/b/`.
    pub path: String,
    /// `arn:aws:iam::<account>:user<path><name>` (built by the caller with `berth-iam`).
    pub arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub account_id: String,
    pub name: String,
    pub path: String,
    /// The AWS-style unique id, `AIDA` + 17 characters.
    pub user_id: String,
    pub arn: String,
    pub created_ms: i64,
}

/// A group to create. The store assigns the unique id (`AGPA...`).
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub account_id: String,
    pub name: String,
    pub path: String,
    pub arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub account_id: String,
    pub name: String,
    pub path: String,
    pub group_id: String,
    pub arn: String,
    pub created_ms: i64,
}

/// Who an access key belongs to, within its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwner {
    /// The account root.
    Root,
    /// An IAM user, by name.
    User(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Inactive,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "Active",
            KeyStatus::Inactive => "Inactive",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Active" => Some(KeyStatus::Active),
            "Inactive" => Some(KeyStatus::Inactive),
            _ => None,
        }
    }
}

/// Key material for a new access key. [`NewAccessKey::generate`] makes AWS-shaped values;
/// the caller may persist them (e.g. to a credentials file) before the store does.
#[derive(Debug, Clone)]
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret: SecretAccessKey,
}

const KEY_ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_from(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// `prefix` + random upper-case base32 characters, `len` in all (AWS unique ids).
pub fn generate_id(prefix: &str, len: usize) -> String {
    format!(
        "{prefix}{}",
        random_from(KEY_ID_ALPHABET, len - prefix.len())
    )
}

impl NewAccessKey {
    /// `AKIA` + 16 base32 characters, and a 40-character secret (≈ 240 random bits).
    pub fn generate() -> Self {
        NewAccessKey {
            access_key_id: generate_id("AKIA", 20),
            secret: SecretAccessKey::new(random_from(SECRET_ALPHABET, 40)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    pub access_key_id: String,
    pub account_id: String,
    pub owner: KeyOwner,
    pub status: KeyStatus,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
}

/// The principal an access key authenticates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPrincipal {
    Root,
    User {
        name: String,
        path: String,
        user_id: String,
        arn: String,
    },
}

/// What SigV4 verification needs about an access key, from one indexed query.
#[derive(Debug, Clone)]
pub struct KeyLookup {
    pub access_key_id: String,
    pub account_id: String,
    pub principal: KeyPrincipal,
    pub status: KeyStatus,
    pub secret: SecretAccessKey,
}

/// Where an inline policy of a user comes from (for evaluation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyAttachment {
    User,
    Group(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlinePolicy {
    pub attached_to: PolicyAttachment,
    pub name: String,
    pub document: String,
}

/// The form in which user and group names are compared: as in AWS, two names that differ
/// only in case are the same name. Valid names are ASCII ([`validate_name`]), so folding
/// ASCII letters is the whole rule (SQLite's `COLLATE NOCASE` folds the same letters; the
/// PostgreSQL backend stores this key under a unique constraint).
pub fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// `LimitExceeded` when an owner already holding `existing` keys may not get another.
pub fn check_access_key_quota(existing: usize) -> IamResult<()> {
    if existing >= MAX_ACCESS_KEYS_PER_OWNER {
        Err(IamError::LimitExceeded(format!(
            "Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS_PER_OWNER}"
        )))
    } else {
        Ok(())
    }
}

/// 16 to 128 ASCII letters and digits.
pub fn validate_access_key_id(id: &str) -> IamResult<()> {
    if (16..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(IamError::InvalidInput(format!(
            "invalid access key id {id:?}"
        )))
    }
}

/// `DeleteConflict` for a user who still has `what` (access keys, policies, group
/// memberships).
pub fn user_delete_conflict(what: &str, user: &str) -> IamError {
    IamError::DeleteConflict(format!(
        "Cannot delete entity, must delete {what} of user {user} first."
    ))
}

/// `[\w+=,.@-]{1,64}` (user and group names).
pub fn validate_name(what: &str, name: &str) -> IamResult<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IamError::InvalidInput(format!(
            "invalid {what} name {name:?}: 1 to 64 characters of letters, digits and _+=,.@-"
        )))
    }
}

/// `/` or `/segments/`, 1 to 512 printable ASCII characters.
pub fn validate_path(path: &str) -> IamResult<()> {
    let ok = (1..=512).contains(&path.len())
        && path.starts_with('/')
        && path.ends_with('/')
        && path.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IamError::InvalidInput(format!(
            "invalid path {path:?}: must begin and end with /"
        )))
    }
}

/// `[\w+=,.@-]{1,128}` (inline policy names).
pub fn validate_policy_name(name: &str) -> IamResult<()> {
    let ok = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IamError::InvalidInput(format!(
            "invalid policy name {name:?}"
        )))
    }
}

/// Twelve ASCII digits.
pub fn validate_account_id(id: &str) -> IamResult<()> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(IamError::InvalidInput(format!(
            "invalid account id {id:?}: 12 digits"
        )))
    }
}

/// Accounts, users, groups, inline policies and access keys. Every method that changes
/// several rows is one transaction in the backend.
#[async_trait::async_trait]
pub trait IamStore: Send + Sync + 'static {
    // Accounts.
    /// Creates an account and, in the same transaction, an access key for its root.
    async fn create_account(
        &self,
        account: &Account,
        root_key: Option<&NewAccessKey>,
    ) -> IamResult<()>;
    async fn get_account(&self, id: &str) -> IamResult<Option<Account>>;
    async fn list_accounts(&self) -> IamResult<Vec<Account>>;

    // Users.
    async fn create_user(&self, user: &NewUser) -> IamResult<User>;
    /// Names compare case-insensitively, as in AWS.
    async fn get_user(&self, account: &str, name: &str) -> IamResult<User>;
    /// Refused with `DeleteConflict` while the user has access keys, inline policies or
    /// group memberships (AWS makes the caller remove them first).
    async fn delete_user(&self, account: &str, name: &str) -> IamResult<()>;
    /// Users by name, optionally only those whose path starts with `path_prefix`.
    async fn list_users(&self, account: &str, path_prefix: Option<&str>) -> IamResult<Vec<User>>;

    // Access keys.
    /// Refused with `LimitExceeded` when the owner already has
    /// [`MAX_ACCESS_KEYS_PER_OWNER`] keys. The new key is `Active`.
    async fn create_access_key(
        &self,
        account: &str,
        owner: &KeyOwner,
        key: &NewAccessKey,
    ) -> IamResult<AccessKeyRecord>;
    /// `AccessKeyNotFound` unless the key exists and belongs to `owner`.
    async fn delete_access_key(
        &self,
        account: &str,
        owner: &KeyOwner,
        access_key_id: &str,
    ) -> IamResult<()>;
    async fn update_access_key_status(
        &self,
        account: &str,
        owner: &KeyOwner,
        access_key_id: &str,
        status: KeyStatus,
    ) -> IamResult<()>;
    async fn list_access_keys(
        &self,
        account: &str,
        owner: &KeyOwner,
    ) -> IamResult<Vec<AccessKeyRecord>>;
    /// The SigV4 hot path: owner, status and decrypted secret of a key, or `None`.
    async fn lookup_access_key(&self, access_key_id: &str) -> IamResult<Option<KeyLookup>>;
    async fn record_access_key_use(&self, access_key_id: &str, at_ms: i64) -> IamResult<()>;

    // Inline policies.
    async fn put_user_policy(
        &self,
        account: &str,
        user: &str,
        name: &str,
        document: &str,
    ) -> IamResult<()>;
    async fn get_user_policy(&self, account: &str, user: &str, name: &str) -> IamResult<String>;
    async fn delete_user_policy(&self, account: &str, user: &str, name: &str) -> IamResult<()>;
    async fn list_user_policies(&self, account: &str, user: &str) -> IamResult<Vec<String>>;
    async fn put_group_policy(
        &self,
        account: &str,
        group: &str,
        name: &str,
        document: &str,
    ) -> IamResult<()>;
    async fn get_group_policy(&self, account: &str, group: &str, name: &str) -> IamResult<String>;
    async fn delete_group_policy(&self, account: &str, group: &str, name: &str) -> IamResult<()>;
    async fn list_group_policies(&self, account: &str, group: &str) -> IamResult<Vec<String>>;
    /// Every inline policy that applies to the user: its own, then its groups'.
    async fn policies_for_user(&self, account: &str, user: &str) -> IamResult<Vec<InlinePolicy>>;

    // Groups.
    async fn create_group(&self, group: &NewGroup) -> IamResult<Group>;
    async fn get_group(&self, account: &str, name: &str) -> IamResult<Group>;
    /// Idempotent.
    async fn add_user_to_group(&self, account: &str, group: &str, user: &str) -> IamResult<()>;
    async fn remove_user_from_group(&self, account: &str, group: &str, user: &str)
        -> IamResult<()>;
    async fn list_groups_for_user(&self, account: &str, user: &str) -> IamResult<Vec<Group>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_aws_shapes() {
        let k = NewAccessKey::generate();
        assert_eq!(k.access_key_id.len(), 20);
        assert!(k.access_key_id.starts_with("AKIA"));
        assert!(k.access_key_id[4..]
            .bytes()
            .all(|b| KEY_ID_ALPHABET.contains(&b)));
        assert_eq!(k.secret.expose().len(), 40);
        assert!(!format!("{k:?}").contains(k.secret.expose()));
        assert_ne!(k.access_key_id, NewAccessKey::generate().access_key_id);
        assert_eq!(generate_id("AIDA", 21).len(), 21);
    }

    #[test]
    fn names_and_paths_are_validated() {
        assert!(validate_name("user", "ci-bot@team.example").is_ok());
        assert!(validate_name("user", "").is_err());
        assert!(validate_name("user", "a b").is_err());
        assert!(validate_name("user", &"a".repeat(65)).is_err());
        assert!(validate_path("/").is_ok());
        assert!(validate_path("/ci/").is_ok());
        assert!(validate_path("ci/").is_err());
        assert!(validate_path("/ci").is_err());
        assert!(validate_account_id("000000000000").is_ok());
        assert!(validate_account_id("12345").is_err());
        assert!(validate_policy_name("AllowPull").is_ok());
        assert!(validate_policy_name("no spaces").is_err());
    }
}
