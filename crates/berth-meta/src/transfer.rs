//! Copying a whole metadata database between backends (`berth migrate`): every table the
//! schema holds, as rows of typed values, so the binary orchestrates and each backend
//! keeps its dialect.
//!
//! [`TABLES`] names what is copied, in an order that satisfies the foreign keys, with
//! every column; [`SKIPPED`] names what is deliberately not copied and why. A test per
//! backend reads the real schema and fails when a table or column is in neither list, so
//! a migration that adds one must decide here. Each backend implements [`MetaTransfer`]:
//! an export from one consistent snapshot, and an import that is one transaction on the
//! target (an interrupted import leaves nothing behind), with identity sequences moved
//! past the copied ids.

use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use crate::secrets::{MasterKey, SecretError};
use crate::MetaError;

/// How a column's values travel between backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Bytes,
    /// `BOOLEAN` on PostgreSQL, `INTEGER` 0/1 on SQLite.
    Bool,
}

/// One value of a row; `Null` for SQL NULL in any column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

pub type Row = Vec<Value>;

/// A copied table: its columns (the same names on every backend) and how its rows are
/// ordered (the primary key, so both sides read them in one order).
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    /// The primary key's columns, in order.
    pub key: &'static [&'static str],
    /// The identity (auto-increment) column, whose sequence must pass the copied ids.
    pub identity: Option<&'static str>,
}

impl Table {
    /// The position of `column` in [`Table::columns`].
    pub fn position(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|(c, _)| *c == column)
    }
}

use Kind::{Bool, Bytes, Int, Text};

macro_rules! table {
    (@id) => { None };
    (@id $id:literal) => { Some($id) };
    ($name:literal, [$($col:literal: $kind:ident),* $(,)?], key [$($k:literal),*] $(, identity $id:literal)?) => {
        Table {
            name: $name,
            columns: &[$(($col, $kind)),*],
            key: &[$($k),*],
            identity: table!(@id $($id)?),
        }
    };
}

/// Every copied table, parents before children.
pub const TABLES: &[Table] = &[
    table!("accounts", ["id": Text, "alias": Text, "created_ms": Int], key ["id"]),
    table!("repositories", ["id": Int, "name": Text, "created_ms": Int,
        "image_tag_mutability": Text, "created_by_api": Bool, "tag_mutability_exclusions": Text],
        key ["id"], identity "id"),
    table!("blobs", ["digest": Text, "size": Int, "created_ms": Int, "orphaned_ms": Int],
        key ["digest"]),
    table!("blob_links", ["repo_id": Int, "digest": Text, "created_ms": Int, "orphaned_ms": Int],
        key ["repo_id", "digest"]),
    table!("manifests", ["repo_id": Int, "digest": Text, "media_type": Text, "size": Int,
        "artifact_type": Text, "subject": Text, "annotations": Text, "body": Bytes,
        "pushed_ms": Int, "image_size": Int], key ["repo_id", "digest"]),
    table!("manifest_refs", ["repo_id": Int, "manifest": Text, "kind": Int, "target": Text],
        key ["repo_id", "manifest", "kind", "target"]),
    table!("tags", ["repo_id": Int, "name": Text, "digest": Text, "updated_ms": Int],
        key ["repo_id", "name"]),
    table!("image_pulls", ["repo_id": Int, "digest": Text, "last_pull_ms": Int],
        key ["repo_id", "digest"]),
    table!("image_storage", ["repo_id": Int, "digest": Text, "status": Text,
        "archived_ms": Int, "activated_ms": Int], key ["repo_id", "digest"]),
    table!("archived_blobs", ["digest": Text, "size": Int, "stored_size": Int,
        "archived_ms": Int, "standard": Bool], key ["digest"]),
    table!("pull_time_exclusions", ["account_id": Text, "principal_arn": Text, "created_ms": Int],
        key ["account_id", "principal_arn"]),
    table!("repository_policies", ["repo_id": Int, "account_id": Text, "policy_text": Text,
        "updated_ms": Int], key ["repo_id"]),
    table!("repository_tags", ["repo_id": Int, "account_id": Text, "key": Text, "value": Text],
        key ["repo_id", "key"]),
    table!("registry_policies", ["account_id": Text, "policy_text": Text, "updated_ms": Int],
        key ["account_id"]),
    table!("account_settings", ["account_id": Text, "name": Text, "value": Text,
        "updated_ms": Int], key ["account_id", "name"]),
    table!("repository_creation_templates", ["account_id": Text, "prefix": Text,
        "description": Text, "applied_for": Text, "image_tag_mutability": Text,
        "image_tag_mutability_exclusion_filters": Text, "repository_policy": Text,
        "lifecycle_policy": Text, "resource_tags": Text, "encryption_type": Text,
        "kms_key": Text, "custom_role_arn": Text, "created_ms": Int, "updated_ms": Int],
        key ["account_id", "prefix"]),
    table!("lifecycle_policies", ["repo_id": Int, "account_id": Text, "policy_text": Text,
        "updated_ms": Int, "last_evaluated_ms": Int], key ["repo_id"]),
    table!("lifecycle_previews", ["repo_id": Int, "account_id": Text, "generation": Int,
        "policy_text": Text, "status": Text, "started_ms": Int, "finished_ms": Int,
        "expiring_count": Int, "transitioning_count": Int, "failure": Text], key ["repo_id"]),
    table!("lifecycle_preview_results", ["repo_id": Int, "position": Int, "digest": Text,
        "tags": Text, "tagged": Bool, "pushed_ms": Int, "action": Text, "target_class": Text,
        "rule_priority": Int, "storage_class": Text, "size": Int], key ["repo_id", "position"]),
    table!("lifecycle_events", ["id": Int, "at_ms": Int, "repository": Text, "digest": Text,
        "tags": Text, "rule_priority": Int, "action": Text, "size": Int, "pushed_ms": Int],
        key ["id"], identity "id"),
    table!("events", ["id": Int, "at_ms": Int, "kind": Text, "repository": Text,
        "digest": Text, "tag": Text], key ["id"], identity "id"),
    table!("job_cursors", ["consumer": Text, "last_id": Int, "updated_ms": Int],
        key ["consumer"]),
    table!("jobs", ["id": Int, "kind": Text, "dedupe_key": Text, "payload": Text,
        "state": Text, "run_at_ms": Int, "attempts": Int, "max_attempts": Int,
        "holder": Text, "lease_expires_ms": Int, "last_error": Text, "created_ms": Int,
        "finished_ms": Int], key ["id"], identity "id"),
    table!("iam_users", ["id": Int, "account_id": Text, "name": Text, "path": Text,
        "user_id": Text, "arn": Text, "created_ms": Int], key ["id"], identity "id"),
    table!("iam_groups", ["id": Int, "account_id": Text, "name": Text, "path": Text,
        "group_id": Text, "arn": Text, "created_ms": Int], key ["id"], identity "id"),
    table!("iam_group_members", ["group_ref": Int, "user_ref": Int, "added_ms": Int],
        key ["group_ref", "user_ref"]),
    table!("iam_user_policies", ["user_ref": Int, "name": Text, "document": Text,
        "updated_ms": Int], key ["user_ref", "name"]),
    table!("iam_group_policies", ["group_ref": Int, "name": Text, "document": Text,
        "updated_ms": Int], key ["group_ref", "name"]),
    table!("access_keys", ["access_key_id": Text, "account_id": Text, "user_ref": Int,
        "status": Text, "secret_enc": Bytes, "created_ms": Int, "last_used_ms": Int],
        key ["access_key_id"]),
];

/// Tables of the schema that are not copied, with the reason (checked by the schema test
/// like [`TABLES`]).
pub const SKIPPED: &[(&str, &str)] = &[
    (
        "schema_migrations",
        "each backend records its own migrations; source and target must be at the same version",
    ),
    (
        "uploads",
        "uploads in progress: their bytes stay in the source's upload area; clients restart them",
    ),
    (
        "blob_pins",
        "held only by commits in flight, which a stopped source has none of",
    ),
    (
        "blob_deletions",
        "deletions in progress: the blob row is already gone, so its bytes are not copied",
    ),
    (
        "job_leases",
        "name processes of the old installation; the new nodes take the leases afresh",
    ),
    ("sqlite_sequence", "SQLite's own; it follows the copied ids"),
];

/// The table of [`TABLES`] called `name`.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// What an export sends: rows of one table, then `Done` once every table was read.
#[derive(Debug)]
pub enum Message {
    Rows(&'static Table, Vec<Row>),
    Done,
}

/// Rows per [`Message::Rows`].
pub const BATCH_ROWS: usize = 500;

/// The sealed secret column: `(table, sealed column, associated-data column)`.
pub const SEALED: (&str, &str, &str) = ("access_keys", "secret_enc", "access_key_id");

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("the target database is not empty ({table} holds {rows} rows)")]
    TargetNotEmpty { table: &'static str, rows: u64 },
    #[error("the export ended before every table was read; nothing was imported")]
    Incomplete,
    #[error("a {table} row does not have the table's {expected} columns")]
    BadRow {
        table: &'static str,
        expected: usize,
    },
    /// A stored secret could not be opened with the source's master key.
    #[error(
        "the secret of access key {access_key_id} cannot be opened with the source's master key"
    )]
    Secret {
        access_key_id: String,
        #[source]
        source: SecretError,
    },
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Exporting and importing a whole metadata database.
#[async_trait::async_trait]
pub trait MetaTransfer: Send + Sync {
    /// The schema version the database is at.
    async fn schema_version(&self) -> Result<i64, MetaError>;
    /// Rows in each of `tables`.
    async fn row_counts(&self, tables: &[&'static Table]) -> Result<Vec<u64>, MetaError>;
    /// Sends the rows of `tables` (in primary key order) from one consistent snapshot,
    /// then [`Message::Done`]. Stops quietly if the receiver is gone.
    async fn export(
        &self,
        tables: Vec<&'static Table>,
        out: mpsc::Sender<Message>,
    ) -> Result<(), MetaError>;
    /// Inserts what arrives in one transaction, committed only after [`Message::Done`].
    /// First checks that every table of [`TABLES`] is empty, or with `replace` empties
    /// them; afterwards moves identity sequences past the copied ids. Returns rows written.
    async fn import(
        &self,
        rows: mpsc::Receiver<Message>,
        replace: bool,
    ) -> Result<u64, TransferError>;
}

/// Re-seals secrets for a target whose master key differs from the source's: the
/// plaintext exists only in memory, between opening and sealing.
pub struct Reseal<'k> {
    pub from: &'k MasterKey,
    pub to: &'k MasterKey,
}

impl Reseal<'_> {
    /// Re-seals the secret column of `rows` if `table` has one.
    pub fn apply(&self, table: &Table, rows: &mut [Row]) -> Result<(), TransferError> {
        let Some((sealed, aad)) = sealed_columns(table) else {
            return Ok(());
        };
        for row in rows {
            let id = text_at(row, aad).unwrap_or_default().to_string();
            if let Some(Value::Bytes(secret)) = row.get_mut(sealed) {
                let plain = self.from.open(id.as_bytes(), secret).map_err(|source| {
                    TransferError::Secret {
                        access_key_id: id.clone(),
                        source,
                    }
                })?;
                *secret = self.to.seal(id.as_bytes(), &plain);
            }
        }
        Ok(())
    }
}

fn sealed_columns(table: &Table) -> Option<(usize, usize)> {
    (table.name == SEALED.0).then_some(())?;
    Some((table.position(SEALED.1)?, table.position(SEALED.2)?))
}

fn text_at(row: &Row, i: usize) -> Option<&str> {
    match row.get(i) {
        Some(Value::Text(s)) => Some(s),
        _ => None,
    }
}

/// A running SHA-256 of a database's copied content, to tell whether a target already
/// holds exactly what the source holds. Sealed secrets count as their plaintext (opened
/// with each side's key), since re-sealing changes their bytes.
pub struct Fingerprint {
    hash: Sha256,
    rows: u64,
}

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint {
            hash: Sha256::new(),
            rows: 0,
        }
    }
}

impl Fingerprint {
    pub fn add(&mut self, table: &Table, rows: &[Row], key: &MasterKey) {
        let sealed = sealed_columns(table);
        for row in rows {
            self.rows += 1;
            self.hash.update(table.name.as_bytes());
            for (i, v) in row.iter().enumerate() {
                match (sealed, v) {
                    (Some((s, aad)), Value::Bytes(b)) if s == i => {
                        let id = text_at(row, aad).unwrap_or_default();
                        // An unopenable secret hashes as its sealed bytes: never equal.
                        let plain = key.open(id.as_bytes(), b).unwrap_or_else(|_| b.clone());
                        self.value(&Value::Bytes(plain));
                    }
                    _ => self.value(v),
                }
            }
        }
    }

    fn value(&mut self, v: &Value) {
        let (tag, bytes): (u8, Vec<u8>) = match v {
            Value::Null => (0, Vec::new()),
            Value::Int(i) => (1, i.to_le_bytes().to_vec()),
            Value::Text(s) => (2, s.as_bytes().to_vec()),
            Value::Bytes(b) => (3, b.clone()),
            Value::Bool(b) => (4, vec![u8::from(*b)]),
        };
        self.hash.update([tag]);
        self.hash.update((bytes.len() as u64).to_le_bytes());
        self.hash.update(bytes);
    }

    /// (rows seen, digest).
    pub fn finish(self) -> (u64, [u8; 32]) {
        (self.rows, self.hash.finalize().into())
    }
}

/// The same row shape every backend's import checks before writing.
pub(crate) fn check_row(table: &'static Table, row: &Row) -> Result<(), TransferError> {
    if row.len() == table.columns.len() {
        Ok(())
    } else {
        Err(TransferError::BadRow {
            table: table.name,
            expected: table.columns.len(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Fails unless every table `found` in a backend's migrated schema is in [`TABLES`]
    /// with exactly its columns (plus the backend's `derived` ones, as `(table, column)`),
    /// or in [`SKIPPED`]; and every table of [`TABLES`] exists.
    pub(crate) fn check_schema(
        backend: &str,
        found: &[(String, Vec<String>)],
        derived: &[(&str, &str)],
    ) {
        for (t, cols) in found {
            if let Some(spec) = table(t) {
                let mut expected: Vec<String> =
                    spec.columns.iter().map(|c| c.0.to_string()).collect();
                expected.extend(derived.iter().filter(|d| d.0 == t).map(|d| d.1.to_string()));
                let mut got = cols.clone();
                got.sort();
                expected.sort();
                assert_eq!(
                    got, expected,
                    "{backend}: the columns of {t} differ from transfer::TABLES: add the new column there"
                );
                for k in spec.key {
                    assert!(spec.position(k).is_some(), "{t}: key column {k}");
                }
            } else {
                assert!(
                    SKIPPED.iter().any(|s| s.0 == t),
                    "{backend}: table {t} is neither copied (transfer::TABLES) nor skipped \
                     with a reason (transfer::SKIPPED): decide what `berth migrate` does with it"
                );
            }
        }
        for spec in TABLES {
            assert!(
                found.iter().any(|f| f.0 == spec.name),
                "{backend} has no table {}",
                spec.name
            );
        }
    }

    #[test]
    fn reseal_moves_secrets_to_the_new_key_and_fingerprints_agree() {
        let (a, b) = (MasterKey::generate(), MasterKey::generate());
        let t = table("access_keys").unwrap();
        let row = |secret: Vec<u8>| -> Row {
            vec![
                Value::Text("AKIAEXAMPLE".into()),
                Value::Text("123456789012".into()),
                Value::Null,
                Value::Text("Active".into()),
                Value::Bytes(secret),
                Value::Int(1),
                Value::Null,
            ]
        };
        let mut rows = vec![row(a.seal(b"AKIAEXAMPLE", b"s3cret"))];
        let original = rows.clone();
        Reseal { from: &a, to: &b }.apply(t, &mut rows).unwrap();
        let Value::Bytes(sealed) = &rows[0][4] else {
            panic!("bytes")
        };
        assert_eq!(b.open(b"AKIAEXAMPLE", sealed).unwrap(), b"s3cret");
        let (mut fa, mut fb) = (Fingerprint::default(), Fingerprint::default());
        fa.add(t, &original, &a);
        fb.add(t, &rows, &b);
        assert_eq!(fa.finish(), fb.finish());
        // The wrong key to open with is a clear error naming the key, never a silent copy.
        let err = Reseal { from: &b, to: &a }
            .apply(t, &mut original.clone())
            .unwrap_err();
        assert!(err.to_string().contains("AKIAEXAMPLE"), "{err}");
    }
}
