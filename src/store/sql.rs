//! The one small interface the store's SQL runs on, with two implementations: the local
//! file (rusqlite, through r2d2's pool) and a dqlite cluster (the wire client of
//! `crates/dqlite`). It has the shape of the part of rusqlite the store uses —
//! `prepare_cached`, `execute`, `query_row`, `query_map`, `Row::get` — so the store's SQL
//! texts and its row-reading code are the same whichever way SQLite is reached.
//!
//! A `Conn` is a borrowed handle, copied freely; it dispatches on its backend with one
//! `match` per call. Values go in through [`ToSql`] (borrowed where they can be) and come
//! out through [`FromSql`], which domain types implement once (`values.rs`).

use super::cluster::Session;
use std::borrow::Cow;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong below the store, whichever SQLite it was.
#[derive(Debug, Clone)]
pub enum Error {
    /// SQLite refused: its extended result code and message.
    Sqlite { code: i32, message: String },
    /// `query_row` found no row.
    NoRow,
    /// A stored value does not fit the type asked for.
    Conversion { column: usize, why: String },
    /// The cluster could not be reached or has no leader now; nothing was done.
    Unavailable(String),
    /// The cluster lost its leader while a commit was under way: the transaction may or
    /// may not have been committed.
    OutcomeUnknown(String),
}

/// SQLite's primary result codes the store reacts to.
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_CONSTRAINT_UNIQUE: i32 = 2067;
const SQLITE_CONSTRAINT_PRIMARYKEY: i32 = 1555;
const SQLITE_CONSTRAINT_FOREIGNKEY: i32 = 787;

impl Error {
    /// Another writer holds the database's write lock.
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Sqlite { code, .. } if matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
    }

    /// A UNIQUE constraint failed (a slug or username taken by a concurrent writer).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Error::Sqlite { code, .. } if *code == SQLITE_CONSTRAINT_UNIQUE || *code == SQLITE_CONSTRAINT_PRIMARYKEY)
    }

    /// A FOREIGN KEY constraint failed: a row named a user that is gone (every other
    /// reference is checked in the same transaction before it is written).
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(self, Error::Sqlite { code, .. } if *code == SQLITE_CONSTRAINT_FOREIGNKEY)
    }

    /// SQLite's own message without the statement, for one-line errors.
    pub fn message(&self) -> String {
        match self {
            Error::Sqlite { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Sqlite { code, message } => write!(f, "{message} (code {code})"),
            Error::NoRow => f.write_str("the query returned no row"),
            Error::Conversion { column, why } => write!(f, "column {column}: {why}"),
            Error::Unavailable(why) => write!(f, "the cluster is unavailable: {why}"),
            Error::OutcomeUnknown(why) => write!(f, "the outcome of the commit is unknown: {why}"),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Error {
        match err {
            rusqlite::Error::QueryReturnedNoRows => Error::NoRow,
            rusqlite::Error::SqliteFailure(e, message) => Error::Sqlite {
                code: e.extended_code,
                message: message.unwrap_or_else(|| e.to_string()),
            },
            rusqlite::Error::SqlInputError { error, msg, .. } => Error::Sqlite {
                code: error.extended_code,
                message: msg,
            },
            rusqlite::Error::FromSqlConversionFailure(column, _, why) => Error::Conversion {
                column,
                why: why.to_string(),
            },
            other => Error::Sqlite {
                code: 1,
                message: other.to_string(),
            },
        }
    }
}

/// A value read from a row, borrowed from wherever it is held.
#[derive(Clone, Copy, Debug)]
pub enum ValueRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    /// UTF-8 unless the file says otherwise; checked where it becomes a `String`.
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

impl<'a> ValueRef<'a> {
    fn from_local(value: rusqlite::types::ValueRef<'a>) -> ValueRef<'a> {
        use rusqlite::types::ValueRef as V;
        match value {
            V::Null => ValueRef::Null,
            V::Integer(n) => ValueRef::Integer(n),
            V::Real(x) => ValueRef::Real(x),
            V::Text(t) => ValueRef::Text(t),
            V::Blob(b) => ValueRef::Blob(b),
        }
    }

    fn from_cluster(value: &'a dqlite::Value) -> ValueRef<'a> {
        use dqlite::Value as V;
        match value {
            V::Null => ValueRef::Null,
            V::Integer(n) | V::UnixTime(n) => ValueRef::Integer(*n),
            V::Boolean(b) => ValueRef::Integer(i64::from(*b)),
            V::Float(x) => ValueRef::Real(*x),
            V::Text(t) | V::Iso8601(t) => ValueRef::Text(t.as_bytes()),
            // Text holding NUL travels as a blob (the wire NUL-terminates text).
            V::Blob(b) => ValueRef::Blob(b),
        }
    }

    /// The value as text: text, or a blob that is UTF-8 (see `from_cluster`).
    pub fn as_str(&self) -> Result<&'a str, String> {
        match self {
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                std::str::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_string())
            }
            other => Err(format!("is {other:?}, not text")),
        }
    }
}

/// A type a column value can be read as.
pub trait FromSql: Sized {
    fn from_sql(value: ValueRef<'_>) -> Result<Self, String>;
}

impl FromSql for i64 {
    fn from_sql(value: ValueRef<'_>) -> Result<i64, String> {
        match value {
            ValueRef::Integer(n) => Ok(n),
            other => Err(format!("is {other:?}, not an integer")),
        }
    }
}

macro_rules! integers_from_sql {
    ($($t:ty),*) => {$(
        impl FromSql for $t {
            fn from_sql(value: ValueRef<'_>) -> Result<$t, String> {
                let n = i64::from_sql(value)?;
                <$t>::try_from(n).map_err(|_| format!("{n} is out of range"))
            }
        }
    )*};
}
integers_from_sql!(i32, u16, u32, u64, usize);

impl FromSql for bool {
    fn from_sql(value: ValueRef<'_>) -> Result<bool, String> {
        Ok(i64::from_sql(value)? != 0)
    }
}

impl FromSql for f64 {
    fn from_sql(value: ValueRef<'_>) -> Result<f64, String> {
        match value {
            ValueRef::Real(x) => Ok(x),
            ValueRef::Integer(n) => Ok(n as f64),
            other => Err(format!("is {other:?}, not a number")),
        }
    }
}

impl FromSql for String {
    fn from_sql(value: ValueRef<'_>) -> Result<String, String> {
        value.as_str().map(str::to_owned)
    }
}

impl FromSql for Vec<u8> {
    fn from_sql(value: ValueRef<'_>) -> Result<Vec<u8>, String> {
        match value {
            ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok(bytes.to_vec()),
            other => Err(format!("is {other:?}, not bytes")),
        }
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_sql(value: ValueRef<'_>) -> Result<Option<T>, String> {
        match value {
            ValueRef::Null => Ok(None),
            other => T::from_sql(other).map(Some),
        }
    }
}

/// A value to bind, borrowed where it can be.
#[derive(Clone, Debug)]
pub enum ToSqlValue<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(Cow<'a, str>),
    Blob(Cow<'a, [u8]>),
}

/// A type that can be bound as a statement parameter.
pub trait ToSql {
    fn to_sql(&self) -> ToSqlValue<'_>;
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_sql(&self) -> ToSqlValue<'_> {
        (**self).to_sql()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_sql(&self) -> ToSqlValue<'_> {
        match self {
            Some(value) => value.to_sql(),
            None => ToSqlValue::Null,
        }
    }
}

macro_rules! integers_to_sql {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> ToSqlValue<'_> {
                // SQLite integers are 64-bit; postd's never come near the limit.
                ToSqlValue::Integer(*self as i64)
            }
        }
    )*};
}
integers_to_sql!(i64, i32, u16, u32, u64, usize);

impl ToSql for bool {
    fn to_sql(&self) -> ToSqlValue<'_> {
        ToSqlValue::Integer(i64::from(*self))
    }
}

impl ToSql for f64 {
    fn to_sql(&self) -> ToSqlValue<'_> {
        ToSqlValue::Real(*self)
    }
}

impl ToSql for str {
    fn to_sql(&self) -> ToSqlValue<'_> {
        ToSqlValue::Text(Cow::Borrowed(self))
    }
}

impl ToSql for String {
    fn to_sql(&self) -> ToSqlValue<'_> {
        ToSqlValue::Text(Cow::Borrowed(self))
    }
}

impl ToSql for [u8] {
    fn to_sql(&self) -> ToSqlValue<'_> {
        ToSqlValue::Blob(Cow::Borrowed(self))
    }
}

impl ToSql for Vec<u8> {
    fn to_sql(&self) -> ToSqlValue<'_> {
        ToSqlValue::Blob(Cow::Borrowed(self))
    }
}

/// One of our parameters as rusqlite binds it.
struct LocalParam<'a>(&'a dyn ToSql);

impl rusqlite::ToSql for LocalParam<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef as V};
        Ok(match self.0.to_sql() {
            ToSqlValue::Null => ToSqlOutput::Borrowed(V::Null),
            ToSqlValue::Integer(n) => ToSqlOutput::Borrowed(V::Integer(n)),
            ToSqlValue::Real(x) => ToSqlOutput::Borrowed(V::Real(x)),
            ToSqlValue::Text(Cow::Borrowed(text)) => {
                ToSqlOutput::Borrowed(V::Text(text.as_bytes()))
            }
            ToSqlValue::Text(Cow::Owned(text)) => ToSqlOutput::Owned(Value::Text(text)),
            ToSqlValue::Blob(Cow::Borrowed(bytes)) => ToSqlOutput::Borrowed(V::Blob(bytes)),
            ToSqlValue::Blob(Cow::Owned(bytes)) => ToSqlOutput::Owned(Value::Blob(bytes)),
        })
    }
}

/// A statement's parameters: `params![a, b]`, `[id]`, or `()` for none.
pub trait Params {
    fn with_list<R>(&self, use_list: impl FnOnce(&[&dyn ToSql]) -> R) -> R;
}

impl Params for () {
    fn with_list<R>(&self, use_list: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        use_list(&[])
    }
}

impl Params for &[&dyn ToSql] {
    fn with_list<R>(&self, use_list: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        use_list(self)
    }
}

impl Params for &Vec<&dyn ToSql> {
    fn with_list<R>(&self, use_list: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        use_list(self)
    }
}

impl<T: ToSql, const N: usize> Params for [T; N] {
    fn with_list<R>(&self, use_list: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        let list: [&dyn ToSql; N] = std::array::from_fn(|at| &self[at] as &dyn ToSql);
        use_list(&list)
    }
}

/// `params![a, b, c]`: a parameter list of values of different types.
macro_rules! params {
    () => { () };
    ($($value:expr),+ $(,)?) => {
        &[$(&$value as &dyn $crate::store::sql::ToSql),+] as &[&dyn $crate::store::sql::ToSql]
    };
}
pub(crate) use params;

/// `.optional()` on a `query_row`: no row is `None`, not an error.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(Error::NoRow) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// A column position, as `Row::get` takes it.
pub trait ColumnIndex {
    fn index(self) -> usize;
}

impl ColumnIndex for usize {
    fn index(self) -> usize {
        self
    }
}

/// One row of a result.
pub struct Row<'r> {
    values: RowValues<'r>,
}

enum RowValues<'r> {
    Local(&'r rusqlite::Row<'r>),
    Cluster(&'r [dqlite::Value]),
}

impl Row<'_> {
    /// The value of column `at` as a `T`.
    pub fn get<I: ColumnIndex, T: FromSql>(&self, at: I) -> Result<T> {
        let column = at.index();
        let value = match &self.values {
            RowValues::Local(row) => ValueRef::from_local(row.get_ref(column)?),
            RowValues::Cluster(values) => values
                .get(column)
                .map(ValueRef::from_cluster)
                .ok_or_else(|| Error::Conversion {
                    column,
                    why: format!("the row has {} columns", values.len()),
                })?,
        };
        T::from_sql(value).map_err(|why| Error::Conversion { column, why })
    }
}

/// A handle on one connection, local or to the cluster's leader.
#[derive(Clone, Copy)]
pub struct Conn<'c> {
    backend: Backend<'c>,
}

#[derive(Clone, Copy)]
enum Backend<'c> {
    Local(&'c rusqlite::Connection),
    Cluster(&'c Session),
}

/// Most parameters one statement may bind: SQLite's own limit locally; dqlite 1.11
/// encodes the count in one byte.
const LOCAL_MAX_PARAMS: usize = 32_766;
const CLUSTER_MAX_PARAMS: usize = 255;

impl<'c> Conn<'c> {
    pub(super) fn local(conn: &'c rusqlite::Connection) -> Conn<'c> {
        Conn {
            backend: Backend::Local(conn),
        }
    }

    pub(super) fn cluster(session: &'c Session) -> Conn<'c> {
        Conn {
            backend: Backend::Cluster(session),
        }
    }

    /// Most parameters one statement may bind here (multi-row inserts size themselves by it).
    pub fn max_params(&self) -> usize {
        match self.backend {
            Backend::Local(_) => LOCAL_MAX_PARAMS,
            Backend::Cluster(_) => CLUSTER_MAX_PARAMS,
        }
    }

    /// A statement, prepared once per connection and kept for the next call.
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'c>> {
        Ok(Stmt {
            inner: match self.backend {
                Backend::Local(conn) => StmtInner::Local(conn.prepare_cached(sql)?),
                Backend::Cluster(session) => StmtInner::Cluster {
                    session,
                    sql: sql.to_owned(),
                },
            },
        })
    }

    /// A statement used once (or rarely): not kept.
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'c>> {
        Ok(Stmt {
            inner: match self.backend {
                Backend::Local(conn) => StmtInner::LocalOnce(conn.prepare(sql)?),
                Backend::Cluster(session) => StmtInner::Cluster {
                    session,
                    sql: sql.to_owned(),
                },
            },
        })
    }

    /// Runs one statement; returns the rows it changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    /// The id of the last row this connection inserted.
    pub fn last_insert_rowid(&self) -> i64 {
        match self.backend {
            Backend::Local(conn) => conn.last_insert_rowid(),
            Backend::Cluster(session) => session.last_insert_id(),
        }
    }

    /// Runs statements without parameters (transaction control, schema).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self.backend {
            Backend::Local(conn) => Ok(conn.execute_batch(sql)?),
            Backend::Cluster(session) => session.execute_batch(sql),
        }
    }

    /// The one row of a query, read by `read_row`; `Error::NoRow` when there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        read_row: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.prepare_cached(sql)?.query_row(params, read_row)
    }
}

/// A prepared statement.
pub struct Stmt<'c> {
    inner: StmtInner<'c>,
}

enum StmtInner<'c> {
    Local(rusqlite::CachedStatement<'c>),
    LocalOnce(rusqlite::Statement<'c>),
    Cluster { session: &'c Session, sql: String },
}

impl<'c> Stmt<'c> {
    fn local(&mut self) -> Option<&mut rusqlite::Statement<'c>> {
        match &mut self.inner {
            StmtInner::Local(stmt) => Some(stmt),
            StmtInner::LocalOnce(stmt) => Some(stmt),
            StmtInner::Cluster { .. } => None,
        }
    }

    /// Runs it; returns the rows it changed.
    pub fn execute(&mut self, params: impl Params) -> Result<usize> {
        if let StmtInner::Cluster { session, sql } = &self.inner {
            return params.with_list(|list| session.execute(sql, list).map(|done| done.rows));
        }
        let stmt = self.local().ok_or(Error::NoRow)?;
        params.with_list(|list| {
            Ok(stmt.execute(rusqlite::params_from_iter(
                list.iter().map(|p| LocalParam(*p)),
            ))?)
        })
    }

    /// Runs an INSERT; returns the new row's id.
    pub fn insert(&mut self, params: impl Params) -> Result<i64> {
        if let StmtInner::Cluster { session, sql } = &self.inner {
            return params
                .with_list(|list| session.execute(sql, list).map(|done| done.last_insert_id));
        }
        let stmt = self.local().ok_or(Error::NoRow)?;
        params.with_list(|list| {
            Ok(stmt.insert(rusqlite::params_from_iter(
                list.iter().map(|p| LocalParam(*p)),
            ))?)
        })
    }

    /// Calls `each` for every row, in order, as the rows arrive (nothing is collected);
    /// stops at the first error.
    pub fn query_each(
        &mut self,
        params: impl Params,
        mut each: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        if let StmtInner::Cluster { session, sql } = &self.inner {
            return params.with_list(|list| {
                session.query(sql, list, &mut |values| {
                    each(&Row {
                        values: RowValues::Cluster(values),
                    })
                })
            });
        }
        let stmt = self.local().ok_or(Error::NoRow)?;
        params.with_list(|list| {
            let mut rows = stmt.query(rusqlite::params_from_iter(
                list.iter().map(|p| LocalParam(*p)),
            ))?;
            while let Some(row) = rows.next()? {
                each(&Row {
                    values: RowValues::Local(row),
                })?;
            }
            Ok(())
        })
    }

    /// Every row read by `read_row`, collected.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut read_row: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let mut rows = Vec::new();
        self.query_each(params, |row| {
            rows.push(Ok(read_row(row)?));
            Ok(())
        })?;
        Ok(rows.into_iter())
    }

    /// The first row read by `read_row`; `Error::NoRow` when there is none.
    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        read_row: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        if let Some(stmt) = self.local() {
            // rusqlite stops at the first row; the result of `read_row` travels inside.
            return params.with_list(|list| {
                stmt.query_row(
                    rusqlite::params_from_iter(list.iter().map(|p| LocalParam(*p))),
                    |row| {
                        Ok(read_row(&Row {
                            values: RowValues::Local(row),
                        }))
                    },
                )?
            });
        }
        let mut read_row = Some(read_row);
        let mut found = None;
        self.query_each(params, |row| {
            if let Some(read_row) = read_row.take() {
                found = Some(read_row(row)?);
            }
            Ok(())
        })?;
        found.ok_or(Error::NoRow)
    }
}
