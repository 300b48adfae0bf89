//! All SQL lives below this module. It knows the table and view names, enforces the
//! domain rules that need the database (existence → ownership → conflicts), and answers
//! with domain types or a [`StoreError`].

mod audit;
mod bulk;
mod comments;
mod export;
mod idempotency;
mod import;
mod maintenance;
mod posts;
mod schema;
mod users;
mod values;
mod writer;

use crate::model::ItemError;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use audit::{AuditAction, AuditEvent, AuditQuery};
pub use bulk::{DeleteOutcome, PartialOutcome, PatchItem};
pub use export::ExportScope;
pub use idempotency::{IdempotencyKey, OnceKey, Recorded, Written};
pub use import::{
    ChunkOutcome, ChunkReport, Import, ImportCheck, ImportLine, ImportMode, ImportProgress,
    ImportState, InputDigest, LineError,
};
pub use maintenance::{Progress, Purger};
pub use posts::{ListQuery, PostCounts, TrashCursor, TrashQuery};
pub use schema::schema_version;
pub use users::RoleChange;
use writer::Tx;

/// How long a connection waits for another *process* (the CLI, a backup, Litestream)
/// holding the write lock. Writers inside the server queue on the one writer connection
/// instead (store/writer.rs).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a connection waiting for another process's lock tries again.
const BUSY_RETRY: Duration = Duration::from_millis(1);
const STATEMENT_CACHE: usize = 64;

/// Why a rule refused the request. The HTTP edge maps each onto one status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A value breaks a field rule (bulk partial mode reports these per item).
    Invalid,
    NotFound,
    Forbidden,
    Conflict,
    /// The request is well-formed but the target is in the wrong state (e.g. restoring a
    /// post that is not deleted).
    BadState,
    /// An Idempotency-Key reused with a different request.
    Mismatch,
    /// The post is no longer the version the client named (`If-Match`).
    PreconditionFailed,
}

#[derive(Debug)]
pub enum StoreError {
    Refused {
        why: Refusal,
        detail: String,
        errors: Vec<ItemError>,
    },
    /// Another process held the database's write lock for longer than `BUSY_TIMEOUT`;
    /// trying again shortly is the cure.
    Busy,
    /// No connection could be had in time, or the file is not a usable postd database.
    Unavailable(String),
    /// Anything else going wrong below us, or a bug of ours: logged where it is answered.
    Internal(String),
}

impl StoreError {
    pub fn refused(why: Refusal, detail: impl Into<String>) -> StoreError {
        StoreError::Refused {
            why,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> StoreError {
        StoreError::refused(Refusal::NotFound, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> StoreError {
        StoreError::refused(Refusal::Forbidden, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> StoreError {
        StoreError::refused(Refusal::Conflict, detail)
    }

    pub fn items(why: Refusal, detail: impl Into<String>, errors: Vec<ItemError>) -> StoreError {
        StoreError::Refused {
            why,
            detail: detail.into(),
            errors,
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Refused { detail, .. } => f.write_str(detail),
            StoreError::Busy => f.write_str("the database is busy"),
            StoreError::Unavailable(detail) => write!(f, "database unavailable: {detail}"),
            StoreError::Internal(detail) => write!(f, "database error: {detail}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> StoreError {
        match &err {
            rusqlite::Error::SqliteFailure(e, _)
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                StoreError::Busy
            }
            _ => StoreError::Internal(err.to_string()),
        }
    }
}

/// For answers recorded with an Idempotency-Key: our own values always serialize, so a
/// failure is a bug.
impl From<serde_json::Error> for StoreError {
    fn from(err: serde_json::Error) -> StoreError {
        StoreError::Internal(format!("serializing an answer: {err}"))
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(err: r2d2::Error) -> StoreError {
        StoreError::Unavailable(err.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The version of the SQLite compiled into this binary (rusqlite's `bundled` build), e.g.
/// `3.50.4`; `postd --version` shows it so an operator can tell which engine a file meets.
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}

/// The database: a pool of connections with our pragmas, plus one in-process writer lock.
///
/// SQLite admits one writer at a time. Letting many threads race for it through
/// `busy_timeout` is unfair and ends in `database is locked` under load, so writers in
/// this process queue on a mutex and then take `BEGIN IMMEDIATE`, which then only ever
/// waits for *other* processes (bounded by `BUSY_TIMEOUT`).
pub struct Store {
    pool: r2d2::Pool<SqliteConnectionManager>,
    writer: writer::Writer,
    path: PathBuf,
    wal_autocheckpoint: u32,
}

/// SQLite's own default: checkpoint the WAL into the database once it holds this many pages.
pub const DEFAULT_WAL_AUTOCHECKPOINT: u32 = 1000;

/// Waits for another process's lock by trying again every `BUSY_RETRY`, for at least
/// `BUSY_TIMEOUT` in all. SQLite's own `busy_timeout` backs off to one try per 100 ms,
/// which almost never lands in the few milliseconds another process that writes chunk
/// after chunk (`postd import`) leaves between its transactions: beside a 100,000-line
/// import the server's writes waited up to 5.3 s; trying every millisecond, they wait for
/// the chunk in progress (tests/it/transfer.rs).
fn wait_for_lock(tries: i32) -> bool {
    if u128::try_from(tries).unwrap_or(0) * BUSY_RETRY.as_millis() >= BUSY_TIMEOUT.as_millis() {
        return false;
    }
    std::thread::sleep(BUSY_RETRY);
    true
}

/// Pragmas every connection gets, in the pool's init hook.
fn prepare_connection(conn: &mut Connection, wal_autocheckpoint: u32) -> rusqlite::Result<()> {
    conn.busy_handler(Some(wait_for_lock))?;
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = FULL;
         PRAGMA temp_store = MEMORY;",
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
fn open_connection(path: &Path, wal_autocheckpoint: u32) -> StoreResult<Connection> {
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
    schema::migrate(&mut conn)?;
    Ok(conn)
}

impl Store {
    pub fn open(path: &Path, pool_size: u32) -> StoreResult<Store> {
        Store::open_with(path, pool_size, DEFAULT_WAL_AUTOCHECKPOINT)
    }

    /// `open` with a WAL auto-checkpoint threshold in pages (0: never checkpoint by
    /// ourselves, for running under Litestream).
    pub fn open_with(path: &Path, pool_size: u32, wal_autocheckpoint: u32) -> StoreResult<Store> {
        // Schema and WAL first, on the writer's own connection, so pool connections never
        // race to create tables. The writer commits, so it runs the auto-checkpoints.
        let writer = writer::Writer::new(open_connection(path, wal_autocheckpoint)?);
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
        Ok(Store {
            pool,
            writer,
            path: path.to_owned(),
            wal_autocheckpoint,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Says so when the database file, which holds the password hashes, can be read by
    /// other users: postd creates its files 0600, but a file copied in may be 0644.
    pub fn warn_if_readable_by_others(&self) {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(&self.path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                log::warn!(
                    "database {} has mode {mode:o}: other users can read the password hashes (chmod 600)",
                    self.path.display()
                );
            }
        }
    }

    /// Runs `f` on a pooled connection, outside any explicit transaction: for single
    /// statements, which SQLite runs atomically on one snapshot anyway.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let conn = self.pool.get()?;
        f(&conn)
    }

    /// Runs `f` in a read transaction, so several statements see one snapshot.
    fn snapshot<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.pool.get()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` as one write of a group that shares a `BEGIN IMMEDIATE` transaction
    /// (store/writer.rs): for single-row writes. `f`'s result is returned once the group
    /// committed; if `f` fails or panics, only its own work is rolled back.
    fn write<T>(&self, f: impl FnOnce(&Tx) -> StoreResult<T>) -> StoreResult<T> {
        self.writer.write_grouped(f)
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction of its own: for bulk requests and
    /// maintenance, each exactly one transaction.
    fn write_alone<T>(&self, f: impl FnOnce(&Tx) -> StoreResult<T>) -> StoreResult<T> {
        self.writer.write_alone(f)
    }

    /// Write transactions committed since the store was opened (each one sync of the WAL):
    /// with group commit, fewer than the writes.
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }

    /// Tells `observer` how long each write waited for the writer connection.
    pub fn observe_writer_waits(&self, observer: impl Fn(Duration) + Send + Sync + 'static) {
        self.writer.observe_waits(Box::new(observer));
    }

    /// Copies the WAL into the database file and truncates it, so a stopped server leaves
    /// one self-contained file behind.
    /// Skipped when checkpoints were left to an outside process (Litestream).
    pub fn checkpoint(&self) -> StoreResult<()> {
        if self.wal_autocheckpoint == 0 {
            return Ok(());
        }
        self.read(|conn| {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
    }

    /// Bytes the database takes on disk: the main file and its WAL (which holds recent
    /// commits until a checkpoint copies them into the file). A file that is not there
    /// counts 0.
    pub fn disk_usage(&self) -> u64 {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        [self.path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|file| std::fs::metadata(file).ok())
            .map(|meta| meta.len())
            .sum()
    }

    /// A real round trip to the database file, for `/healthz`.
    pub fn ping(&self) -> StoreResult<()> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT count(*) FROM sqlite_schema")?;
            let tables: i64 = stmt.query_row([], |row| row.get(0))?;
            if tables > 0 {
                Ok(())
            } else {
                Err(StoreError::Unavailable("schema missing".into()))
            }
        })
    }
}

/// `true` when the error is a UNIQUE constraint failure (a race lost to another writer
/// outside this process, or a slug check the caller did not make).
fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Store;
    use postd_testkit::TempDir;

    /// A real database file in a fresh temporary directory, removed on drop.
    pub struct TempStore {
        pub store: Store,
        // Declared after the store, so the store closes before the directory goes.
        _dir: TempDir,
    }

    impl TempStore {
        pub fn new(tag: &str) -> TempStore {
            let dir = TempDir::new(&format!("unit-{tag}"));
            let store = Store::open(&dir.path().join("t.db"), 4).expect("open store");
            TempStore { store, _dir: dir }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::TempStore;
    use super::*;

    #[test]
    fn pragmas_are_set_on_pooled_connections() {
        let t = TempStore::new("pragmas");
        t.store
            .read(|conn| {
                let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
                let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
                let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
                assert_eq!((fk, sync, mode.as_str()), (1, 2, "wal"));
                assert!(conn.db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)?);
                Ok(())
            })
            .unwrap();
    }

    /// Another process writing chunk after chunk with a few milliseconds between them (an
    /// import) must not starve a writer of ours: it gets in at the next gap, and one that
    /// never comes ends in `Busy` after `BUSY_TIMEOUT`, not before.
    #[test]
    fn a_waiting_writer_gets_in_between_another_process_s_transactions() {
        let t = TempStore::new("busy");
        let path = t.store.path().to_owned();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let other = scope.spawn(|| {
                let other = Connection::open(&path).unwrap();
                other.busy_timeout(BUSY_TIMEOUT).unwrap();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    other.execute_batch("BEGIN IMMEDIATE").unwrap();
                    std::thread::sleep(Duration::from_millis(50));
                    other.execute_batch("COMMIT").unwrap();
                    std::thread::sleep(Duration::from_millis(3));
                }
            });
            std::thread::sleep(Duration::from_millis(20));
            let mut worst = Duration::ZERO;
            for _ in 0..20 {
                let started = std::time::Instant::now();
                t.store.write_alone(|_| Ok(())).unwrap();
                worst = worst.max(started.elapsed());
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            other.join().unwrap();
            assert!(worst < Duration::from_millis(500), "waited {worst:?}");
        });
        assert!(!wait_for_lock(10_000) && wait_for_lock(0));
    }

    #[test]
    fn a_panic_inside_a_write_rolls_back_and_releases_the_writer() {
        let t = TempStore::new("panic");
        let store = &t.store;
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = store.write(|tx| {
                tx.execute(
                    "INSERT INTO users (username, password_hash, created_at) VALUES ('x', 'h', 't')",
                    [],
                )?;
                panic!("handler bug");
                #[allow(unreachable_code)]
                Ok(())
            });
        }));
        assert!(caught.is_err());
        // The writer lock was poisoned by the panic; the next write must still go through.
        store
            .write(|tx| {
                let users: i64 = tx.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?;
                assert_eq!(users, 0, "the panicking transaction must have rolled back");
                Ok(())
            })
            .unwrap();
    }
}
