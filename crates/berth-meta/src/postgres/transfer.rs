//! [`MetaTransfer`] on PostgreSQL: the export reads every table in one `REPEATABLE READ`
//! read-only transaction through a portal (a cursor: a batch in memory at a time); the
//! import is one transaction of multi-row `INSERT`s (`OVERRIDING SYSTEM VALUE` keeps the
//! copied ids of identity columns), then each identity's sequence is set past the largest
//! copied id, so the next row a node inserts does not collide.

use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::IsolationLevel;

use super::PgDb;
use crate::transfer::{
    check_row, Kind, Message, MetaTransfer, Row, Table, TransferError, Value, BATCH_ROWS, TABLES,
};
use crate::MetaError;

/// Columns this backend has beyond [`Table::columns`], computed from a row on import:
/// IAM names' case-folded key (SQLite compares names `COLLATE NOCASE` instead).
pub(crate) const DERIVED: &[(&str, &str)] =
    &[("iam_users", "name_key"), ("iam_groups", "name_key")];

fn derived_values(t: &Table, row: &Row) -> Vec<Value> {
    DERIVED
        .iter()
        .filter(|(table, _)| *table == t.name)
        .map(|_| match t.position("name").and_then(|i| row.get(i)) {
            Some(Value::Text(name)) => Value::Text(crate::iam::name_key(name)),
            _ => Value::Null,
        })
        .collect()
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(n) => n.to_sql(ty, out),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Bytes(b) => b.to_sql(ty, out),
            Value::Bool(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Every parameter is cast to its column's kind in the SQL (see `cast`).
        true
    }

    to_sql_checked!();
}

fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// The SQL type a [`Kind`] travels as (integers as `bigint`, whatever the column's width).
fn cast(kind: Kind) -> &'static str {
    match kind {
        Kind::Int => "bigint",
        Kind::Text => "text",
        Kind::Bytes => "bytea",
        Kind::Bool => "boolean",
    }
}

fn select_sql(t: &Table) -> String {
    let cols: Vec<String> = t
        .columns
        .iter()
        .map(|(c, k)| format!("{}::{}", quoted(c), cast(*k)))
        .collect();
    // Byte order for text keys, as SQLite sorts: both sides list rows alike.
    let key: Vec<String> = t
        .key
        .iter()
        .map(|c| match t.columns.iter().find(|(n, _)| n == c) {
            Some((_, Kind::Text)) => format!("{} COLLATE \"C\"", quoted(c)),
            _ => quoted(c),
        })
        .collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        cols.join(", "),
        quoted(t.name),
        key.join(", ")
    )
}

fn read_row(t: &Table, r: &tokio_postgres::Row) -> Result<Row, tokio_postgres::Error> {
    t.columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                Kind::Int => r.try_get::<_, Option<i64>>(i)?.map(Value::Int),
                Kind::Text => r.try_get::<_, Option<String>>(i)?.map(Value::Text),
                Kind::Bytes => r.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Bytes),
                Kind::Bool => r.try_get::<_, Option<bool>>(i)?.map(Value::Bool),
            }
            .unwrap_or(Value::Null))
        })
        .collect()
}

/// One `INSERT` of `rows` rows into `t` (parameters cast to their kinds).
fn insert_sql(t: &Table, rows: usize) -> String {
    let mut cols: Vec<String> = t.columns.iter().map(|(c, _)| quoted(c)).collect();
    let mut kinds: Vec<Kind> = t.columns.iter().map(|(_, k)| *k).collect();
    for (_, c) in DERIVED.iter().filter(|(table, _)| *table == t.name) {
        cols.push(quoted(c));
        kinds.push(Kind::Text);
    }
    let mut n = 0;
    let tuples: Vec<String> = (0..rows)
        .map(|_| {
            let params: Vec<String> = kinds
                .iter()
                .map(|k| {
                    n += 1;
                    format!("${n}::{}", cast(*k))
                })
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO {} ({}) {}VALUES {}",
        quoted(t.name),
        cols.join(", "),
        if t.identity.is_some() {
            "OVERRIDING SYSTEM VALUE "
        } else {
            ""
        },
        tuples.join(", ")
    )
}

#[async_trait::async_trait]
impl MetaTransfer for PgDb {
    async fn schema_version(&self) -> Result<i64, MetaError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                &[],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn row_counts(&self, tables: &[&'static Table]) -> Result<Vec<u64>, MetaError> {
        let client = self.client().await?;
        let mut out = Vec::with_capacity(tables.len());
        for t in tables {
            let row = client
                .query_one(
                    format!("SELECT COUNT(*) FROM {}", quoted(t.name)).as_str(),
                    &[],
                )
                .await?;
            out.push(row.try_get::<_, i64>(0)?.max(0) as u64);
        }
        Ok(out)
    }

    async fn export(
        &self,
        tables: Vec<&'static Table>,
        out: mpsc::Sender<Message>,
    ) -> Result<(), MetaError> {
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        for t in tables {
            let portal = tx.bind(select_sql(t).as_str(), &[]).await?;
            loop {
                let rows = tx.query_portal(&portal, BATCH_ROWS as i32).await?;
                let last = rows.len() < BATCH_ROWS;
                let batch = rows
                    .iter()
                    .map(|r| read_row(t, r))
                    .collect::<Result<Vec<Row>, _>>()?;
                if !batch.is_empty() && out.send(Message::Rows(t, batch)).await.is_err() {
                    return Ok(());
                }
                if last {
                    break;
                }
            }
        }
        tx.commit().await?;
        let _ = out.send(Message::Done).await;
        Ok(())
    }

    async fn import(
        &self,
        mut rows: mpsc::Receiver<Message>,
        replace: bool,
    ) -> Result<u64, TransferError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(MetaError::from)?;
        for t in TABLES {
            let n: i64 = tx
                .query_one(
                    format!("SELECT COUNT(*) FROM {}", quoted(t.name)).as_str(),
                    &[],
                )
                .await
                .and_then(|r| r.try_get(0))
                .map_err(MetaError::from)?;
            if n > 0 && !replace {
                return Err(TransferError::TargetNotEmpty {
                    table: t.name,
                    rows: n as u64,
                });
            }
        }
        if replace {
            for t in TABLES.iter().rev() {
                tx.execute(format!("DELETE FROM {}", quoted(t.name)).as_str(), &[])
                    .await
                    .map_err(MetaError::from)?;
            }
        }
        let mut written = 0u64;
        loop {
            match rows.recv().await {
                Some(Message::Rows(t, batch)) => {
                    let mut values: Vec<Value> = Vec::new();
                    for row in &batch {
                        check_row(t, row)?;
                        values.extend(row.iter().cloned());
                        values.extend(derived_values(t, row));
                    }
                    let params: Vec<&(dyn ToSql + Sync)> =
                        values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                    tx.execute(insert_sql(t, batch.len()).as_str(), &params)
                        .await
                        .map_err(MetaError::from)?;
                    written += batch.len() as u64;
                }
                Some(Message::Done) => break,
                // The exporting side failed or stopped: dropping `tx` rolls back.
                None => return Err(TransferError::Incomplete),
            }
        }
        for t in TABLES {
            if let Some(id) = t.identity {
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{id}'), \
                     COALESCE((SELECT MAX({col}) FROM {qt}), 0) + 1, false)",
                    table = t.name,
                    col = quoted(id),
                    qt = quoted(t.name),
                );
                tx.execute(sql.as_str(), &[])
                    .await
                    .map_err(MetaError::from)?;
            }
        }
        tx.commit().await.map_err(MetaError::from)?;
        Ok(written)
    }
}
