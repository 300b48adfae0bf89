//! The local way to SQLite: one file, through rusqlite. A pool of read connections
//! (r2d2) and the writer's own connection, each with postd's pragmas.

use super::sql::Conn;
use super::{schema, StoreError, StoreResult};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a connection waits for another *process* (the CLI, a backup, Litestream)
/// holding the write lock. Writers inside the server queue on the one writer connection
/// instead (store/writer.rs).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a connection waiting for another process's lock tries again.
const BUSY_RETRY: Duration = Duration::from_millis(1);
const STATEMENT_CACHE: usize = 64;

/// The version of the SQLite compiled into this binary (rusqlite's `bundled` build), e.g.
/// `3.50.4`; `postd --version` shows it so an operator can tell which engine a file meets.
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}

/// SQLite's own default: checkpoint the WAL into the database once it holds this many pages.
pub const DEFAULT_WAL_AUTOCHECKPOINT: u32 = 1000;

/// Waits for another process's lock by trying again every `BUSY_RETRY`, for at least
/// `BUSY_TIMEOUT` in all. SQLite's own `busy_timeout` backs off to one try per 100 ms,
/// which almost never lands in the few milliseconds another process that writes chunk
/// after chunk (`postd import`) leaves between its transactions: beside a 100,000-line
/// import the server's writes waited up to 5.3 s; trying every millisecond, they wait for
/// the chunk in progress (tests/it/transfer.rs).
pub(super) fn wait_for_lock(tries: i32) -> bool {
    if u128::try_from(tries).unwrap_or(0) * BUSY_RETRY.as_millis() >= BUSY_TIMEOUT.as_millis() {
        return false;
    }
    std::thread::sleep(BUSY_RETRY);
    true
}

/// Pragmas every connection gets, in the pool's init hook.
pub fn prepare_connection(conn: &mut Connection, wal_autocheckpoint: u32) -> rusqlite::Result<()> {
    conn.busy_handler(Some(wait_for_lock))?;
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;
         PRAGMA temp_store = MEMORY;
         PRAGMA secure_delete = FAST;",
        // secure_delete FAST: what an update or delete frees is zeroed within the page,
        // which is written anyway (no I/O of its own), so an erased person's old versions
        // do not linger in pages' free space (an erasure turns it fully ON for itself).
    )?;
    // 0 leaves checkpoints to an outside process (Litestream's advice under write load).
    conn.pragma_update(None, "wal_autocheckpoint", wal_autocheckpoint)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Query planner stability: without it SQLite plans some statements for the values
    // bound to them (a bound LIMIT, for one), and then re-prepares the statement whenever
    // one is bound anew — every listing was parsed and planned again on each request (4%
    // of a `GET /posts` under load, `perf record`). Our plans never depend on the values.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// Opens (creating if needed) the database file, applies or migrates the schema, and
/// returns a single connection configured like the pool's. Used by the CLI and by `open`.
pub fn open_connection(path: &Path, wal_autocheckpoint: u32) -> StoreResult<Connection> {
    let mut conn = Connection::open(path)?;
    prepare_connection(&mut conn, wal_autocheckpoint)?;
    // WAL is a property of the file; set once here, every later connection inherits it.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "could not switch {} to WAL mode (got {mode})",
            path.display()
        )));
    }
    schema::migrate_file(&mut conn)?;
    Ok(conn)
}

/// The local file's read connections.
pub struct LocalDb {
    pool: r2d2::Pool<SqliteConnectionManager>,
    pub path: PathBuf,
    pub wal_autocheckpoint: u32,
}

impl LocalDb {
    /// Opens the file (creating it), migrates the schema on the writer's connection, which
    /// is returned beside the pool.
    pub fn open(
        path: &Path,
        pool_size: u32,
        wal_autocheckpoint: u32,
    ) -> StoreResult<(LocalDb, Connection)> {
        // Schema and WAL first, on the writer's own connection, so pool connections never
        // race to create tables. The writer commits, so it runs the auto-checkpoints.
        let writer = open_connection(path, wal_autocheckpoint)?;
        let manager = SqliteConnectionManager::file(path)
            .with_init(move |conn| prepare_connection(conn, wal_autocheckpoint));
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(2))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            // A connection to a local file does not go stale; r2d2's default check runs an
            // uncached `SELECT 1` on every checkout, which cost ~15% of a single-post read.
            .test_on_check_out(false)
            .build(manager)?;
        Ok((
            LocalDb {
                pool,
                path: path.to_owned(),
                wal_autocheckpoint,
            },
            writer,
        ))
    }

    /// Runs `f` on a pooled connection.
    pub fn read<T>(&self, f: impl FnOnce(Conn<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let conn = self.pool.get()?;
        f(Conn::local(&conn))
    }

    /// Runs `f` in a read transaction on a pooled connection: one snapshot.
    pub fn snapshot<T>(&self, f: impl FnOnce(Conn<'_>) -> StoreResult<T>) -> StoreResult<T> {
        self.snapshot_of_file(|conn| f(Conn::local(conn)))
    }

    /// `snapshot` with rusqlite's own connection, for what only the local file has (the
    /// online backup API).
    pub fn snapshot_of_file<T>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut conn = self.pool.get()?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)
            .map_err(super::sql::Error::from)?;
        let out = f(&tx)?;
        tx.commit().map_err(super::sql::Error::from)?;
        Ok(out)
    }

    /// A pooled connection held by its user for a while.
    pub fn connection(&self) -> StoreResult<r2d2::PooledConnection<SqliteConnectionManager>> {
        Ok(self.pool.get()?)
    }
}
