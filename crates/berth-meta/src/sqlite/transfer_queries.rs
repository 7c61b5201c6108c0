//! [`MetaTransfer`] on SQLite: the export reads every table inside one read transaction
//! (one snapshot of the WAL), the import is one transaction on the writer connection.
//! Both run on their blocking thread and meet the async side through the channel.

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::Connection;
use tokio::sync::mpsc;

use super::SqliteMetaStore;
use crate::transfer::{
    check_row, Kind, Message, MetaTransfer, Row, Table, TransferError, Value, BATCH_ROWS, TABLES,
};
use crate::MetaError;

fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

fn select_sql(t: &Table) -> String {
    let cols: Vec<String> = t.columns.iter().map(|(c, _)| quoted(c)).collect();
    let key: Vec<String> = t.key.iter().map(|c| quoted(c)).collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        cols.join(", "),
        quoted(t.name),
        key.join(", ")
    )
}

fn insert_sql(t: &Table) -> String {
    let cols: Vec<String> = t.columns.iter().map(|(c, _)| quoted(c)).collect();
    let marks: Vec<String> = (1..=t.columns.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quoted(t.name),
        cols.join(", "),
        marks.join(", ")
    )
}

/// A stored value read as the column's kind; another storage class is refused.
fn read_value(row: &rusqlite::Row<'_>, i: usize, kind: Kind) -> rusqlite::Result<Value> {
    let v = row.get_ref(i)?;
    Ok(match (kind, v) {
        (_, ValueRef::Null) => Value::Null,
        (Kind::Int, ValueRef::Integer(n)) => Value::Int(n),
        (Kind::Bool, ValueRef::Integer(n)) => Value::Bool(n != 0),
        (Kind::Text, ValueRef::Text(_)) => Value::Text(row.get(i)?),
        (Kind::Bytes, ValueRef::Blob(b)) => Value::Bytes(b.to_vec()),
        (_, other) => {
            return Err(rusqlite::Error::InvalidColumnType(
                i,
                format!("{kind:?} column"),
                other.data_type(),
            ))
        }
    })
}

fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Int(n) => SqlValue::Integer(*n),
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Bytes(b) => SqlValue::Blob(b.clone()),
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
    }
}

fn count(conn: &Connection, t: &Table) -> rusqlite::Result<u64> {
    conn.query_row(
        &format!("SELECT COUNT(*) FROM {}", quoted(t.name)),
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
}

/// Sends `t`'s rows in batches; `false` when the receiver is gone.
fn export_table(
    conn: &Connection,
    t: &'static Table,
    out: &mpsc::Sender<Message>,
) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(&select_sql(t))?;
    let mut rows = stmt.query([])?;
    let mut batch: Vec<Row> = Vec::with_capacity(BATCH_ROWS);
    while let Some(r) = rows.next()? {
        let row = t
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| read_value(r, i, *kind))
            .collect::<rusqlite::Result<Row>>()?;
        batch.push(row);
        if batch.len() == BATCH_ROWS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
            if out.blocking_send(Message::Rows(t, full)).is_err() {
                return Ok(false);
            }
        }
    }
    Ok(batch.is_empty() || out.blocking_send(Message::Rows(t, batch)).is_ok())
}

#[async_trait::async_trait]
impl MetaTransfer for SqliteMetaStore {
    async fn schema_version(&self) -> Result<i64, MetaError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(MetaError::from)
        })
        .await
    }

    async fn row_counts(&self, tables: &[&'static Table]) -> Result<Vec<u64>, MetaError> {
        let tables = tables.to_vec();
        self.read(move |conn| {
            tables
                .iter()
                .map(|t| count(conn, t).map_err(MetaError::from))
                .collect()
        })
        .await
    }

    async fn export(
        &self,
        tables: Vec<&'static Table>,
        out: mpsc::Sender<Message>,
    ) -> Result<(), MetaError> {
        self.read(move |conn| {
            // One read transaction: every table from the same snapshot.
            let tx = conn.unchecked_transaction()?;
            for t in tables {
                if !export_table(&tx, t, &out)? {
                    return Ok(());
                }
            }
            drop(tx);
            let _ = out.blocking_send(Message::Done);
            Ok(())
        })
        .await
    }

    async fn import(
        &self,
        mut rows: mpsc::Receiver<Message>,
        replace: bool,
    ) -> Result<u64, TransferError> {
        self.write(move |conn| {
            let tx = conn.transaction().map_err(MetaError::from)?;
            for t in TABLES {
                let n = count(&tx, t).map_err(MetaError::from)?;
                if n > 0 && !replace {
                    return Err(TransferError::TargetNotEmpty {
                        table: t.name,
                        rows: n,
                    });
                }
            }
            if replace {
                for t in TABLES.iter().rev() {
                    tx.execute(&format!("DELETE FROM {}", quoted(t.name)), [])
                        .map_err(MetaError::from)?;
                }
            }
            let mut written = 0u64;
            loop {
                match rows.blocking_recv() {
                    Some(Message::Rows(t, batch)) => {
                        let mut stmt =
                            tx.prepare_cached(&insert_sql(t)).map_err(MetaError::from)?;
                        for row in &batch {
                            check_row(t, row)?;
                            let values: Vec<SqlValue> = row.iter().map(to_sql).collect();
                            stmt.execute(rusqlite::params_from_iter(values))
                                .map_err(MetaError::from)?;
                            written += 1;
                        }
                    }
                    Some(Message::Done) => break,
                    // The exporting side failed or stopped: roll back (the drop does).
                    None => return Err(TransferError::Incomplete),
                }
            }
            tx.commit().map_err(MetaError::from)?;
            Ok(written)
        })
        .await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every table of a migrated SQLite database with its columns, in declaration order.
    pub(crate) fn schema_tables(conn: &Connection) -> Vec<(String, Vec<String>)> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        let names: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        names
            .into_iter()
            .map(|t| {
                let mut s = conn
                    .prepare(&format!(
                        "SELECT name FROM pragma_table_info('{t}') ORDER BY cid"
                    ))
                    .unwrap();
                let cols = s
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                (t, cols)
            })
            .collect()
    }

    #[test]
    fn every_sqlite_table_and_column_is_copied_or_skipped_on_purpose() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        drop(SqliteMetaStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        crate::transfer::tests::check_schema("SQLite", &schema_tables(&conn), &[]);
    }
}
