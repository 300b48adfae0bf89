//! `--seed FILE`: a new cluster starts with every row of an existing postd database file —
//! users, posts with their ids, comments, the trash, the audit log, imports' progress and
//! idempotency records — copied table by table, parents first, in transactions of a few
//! thousand rows (one transaction of a large file would be one huge Raft entry). The
//! full-text index is rebuilt by the posts' own insert trigger.

use super::sql::{Conn, FromSql, Result as SqlResult, ToSql, ToSqlValue, ValueRef};
use super::writer::Tx;
use super::{schema, Store, StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags};
use std::borrow::Cow;
use std::path::Path;

/// The tables copied, parents before children (foreign keys hold at every commit).
const TABLES: &[&str] = &[
    "users",
    "posts",
    "comments",
    "idempotency_keys",
    "audit_events",
    "imports",
    "import_chunks",
];
/// Rows per transaction.
const ROWS_PER_TRANSACTION: usize = 2_000;

/// A stored value of any type, owned: what a row of any table holds.
#[derive(Clone, Debug)]
enum Stored {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl FromSql for Stored {
    fn from_sql(value: ValueRef<'_>) -> Result<Stored, String> {
        Ok(match value {
            ValueRef::Null => Stored::Null,
            ValueRef::Integer(n) => Stored::Integer(n),
            ValueRef::Real(x) => Stored::Real(x),
            ValueRef::Text(_) => Stored::Text(value.as_str()?.to_owned()),
            ValueRef::Blob(bytes) => Stored::Blob(bytes.to_vec()),
        })
    }
}

impl ToSql for Stored {
    fn to_sql(&self) -> ToSqlValue<'_> {
        match self {
            Stored::Null => ToSqlValue::Null,
            Stored::Integer(n) => ToSqlValue::Integer(*n),
            Stored::Real(x) => ToSqlValue::Real(*x),
            Stored::Text(text) => ToSqlValue::Text(Cow::Borrowed(text)),
            Stored::Blob(bytes) => ToSqlValue::Blob(Cow::Borrowed(bytes)),
        }
    }
}

/// Copies every row of the postd database file at `path` into `store`, which must hold
/// none yet. Returns how many rows were copied.
pub(super) fn seed(store: &Store, path: &Path) -> StoreResult<u64> {
    let mut file = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // One snapshot of the file, read in order of rowid.
    let snapshot = file.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
    let source = Conn::local(&snapshot);
    let version: i64 = source.query_row("PRAGMA user_version", (), |row| row.get(0))?;
    if version != schema::schema_version() {
        return Err(StoreError::Unavailable(format!(
            "the file has schema version {version}, this postd {}: open it once with this postd \
             (postd check --db FILE upgrades it)",
            schema::schema_version()
        )));
    }
    let held = store.read(|conn| {
        Ok(conn.query_row(
            "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM active_posts)
                    + (SELECT count(*) FROM deleted_posts)",
            (),
            |row| row.get::<_, i64>(0),
        )?)
    })?;
    if held > 0 {
        return Err(StoreError::Unavailable(
            "the cluster already holds data; seeding is for a new cluster".into(),
        ));
    }
    let mut copied = 0u64;
    for table in TABLES {
        copied += copy_table(store, &source, table)?;
    }
    Ok(copied)
}

fn copy_table(store: &Store, source: &Conn<'_>, table: &str) -> StoreResult<u64> {
    // The names come from our own schema, on the cluster (the file's are the same, its
    // version was checked); identifiers can not be bound.
    let columns: Vec<String> = store.read(|conn| {
        Ok(conn
            .prepare("SELECT '\"' || name || '\"' FROM pragma_table_info(?1) ORDER BY cid")?
            .query_map([table], |row| row.get(0))?
            .collect::<SqlResult<_>>()?)
    })?;
    let select = format!("SELECT {} FROM {table}", columns.join(", "));
    let mut batch: Vec<Vec<Stored>> = Vec::with_capacity(ROWS_PER_TRANSACTION);
    let mut copied = 0u64;
    let mut failed = None;
    source.prepare(&select)?.query_each((), |row| {
        if failed.is_some() {
            return Ok(());
        }
        let values = (0..columns.len())
            .map(|at| row.get::<_, Stored>(at))
            .collect::<SqlResult<Vec<Stored>>>()?;
        batch.push(values);
        if batch.len() == ROWS_PER_TRANSACTION {
            match write_batch(store, table, &columns, &batch) {
                Ok(()) => copied += batch.len() as u64,
                Err(err) => failed = Some(err),
            }
            batch.clear();
        }
        Ok(())
    })?;
    if let Some(err) = failed {
        return Err(err);
    }
    if !batch.is_empty() {
        write_batch(store, table, &columns, &batch)?;
        copied += batch.len() as u64;
    }
    Ok(copied)
}

/// One transaction of rows, as many per INSERT as the connection binds parameters for.
fn write_batch(
    store: &Store,
    table: &str,
    columns: &[String],
    rows: &[Vec<Stored>],
) -> StoreResult<()> {
    store.write_alone(|tx| insert_rows(tx, table, columns, rows))
}

fn insert_rows(tx: &Tx, table: &str, columns: &[String], rows: &[Vec<Stored>]) -> StoreResult<()> {
    let per_statement = (tx.max_params() / columns.len().max(1)).max(1);
    let placeholders = format!("({})", vec!["?"; columns.len()].join(", "));
    for chunk in rows.chunks(per_statement) {
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES {}",
            columns.join(", "),
            vec![placeholders.as_str(); chunk.len()].join(", ")
        );
        let values: Vec<&dyn ToSql> = chunk
            .iter()
            .flat_map(|row| row.iter().map(|value| value as &dyn ToSql))
            .collect();
        tx.prepare(&sql)?.execute(values.as_slice())?;
    }
    Ok(())
}
