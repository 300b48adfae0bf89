//! All SQL lives below this module. It knows the table and view names, enforces the
//! domain rules that need the database (existence → ownership → conflicts), and answers
//! with domain types or a [`StoreError`].
//!
//! SQLite is reached one of two ways (`sql::Conn`): the local file through rusqlite
//! (`local`), or a dqlite cluster over its wire protocol (`cluster`). The SQL texts are
//! the same for both; the store's interface is one `impl Store`, in `interface.rs`.

mod audit;
mod bulk;
pub mod cluster;
mod comments;
mod erasure;
mod error;
mod export;
mod filter;
mod idempotency;
mod import;
mod interface;
mod local;
mod maintenance;
mod posts;
mod revisions;
mod schema;
mod seed;
mod shared;
pub(crate) mod sql;
mod tokens;
mod users;
mod values;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use audit::{AuditAction, AuditEvent, AuditQuery};
pub use bulk::{DeleteOutcome, PartialOutcome, PatchItem};
pub use cluster::{Member, Status as ClusterStatus};
pub use erasure::Erased;
pub use error::{Refusal, StoreError, StoreResult};
pub use export::ExportScope;
pub use filter::{FilterMatch, PostFilter};
pub use idempotency::{IdempotencyKey, OnceKey, Recorded, Written};
pub use import::{
    ChunkOutcome, ChunkReport, Import, ImportCheck, ImportLine, ImportMode, ImportProgress,
    ImportState, InputDigest, LineError,
};
pub use local::{sqlite_version, BUSY_TIMEOUT, DEFAULT_WAL_AUTOCHECKPOINT};
pub use maintenance::{Progress, Purger};
pub use posts::{undo_until, ListQuery, PostCounts, TrashCursor, TrashQuery};
pub use revisions::Revision;
pub use schema::schema_version;
use sql::Conn;
pub use tokens::{TokenGrant, TokenInfo};
pub use users::{RoleChange, UserSummary};
use writer::{Tx, WriterConn};

/// The database: read connections, plus the one writer (group commit, store/writer.rs).
///
/// SQLite admits one writer at a time. Letting many threads race for it through
/// `busy_timeout` is unfair and ends in `database is locked` under load, so writers in
/// this process queue on a mutex and then take `BEGIN IMMEDIATE`, which then only ever
/// waits for *other* processes (or, on a cluster, other nodes' writers).
pub struct Store {
    way: Way,
    writer: writer::Writer,
    /// Old versions kept per post (`--revision-limit`).
    revision_limit: revisions::RevisionLimit,
}

/// How SQLite is reached.
enum Way {
    Local(local::LocalDb),
    Cluster(Arc<cluster::Cluster>),
}

impl Store {
    pub fn open(path: &Path, pool_size: u32) -> StoreResult<Store> {
        Store::open_with(path, pool_size, DEFAULT_WAL_AUTOCHECKPOINT)
    }

    /// `open` with a WAL auto-checkpoint threshold in pages (0: never checkpoint by
    /// ourselves, for running under Litestream).
    pub fn open_with(path: &Path, pool_size: u32, wal_autocheckpoint: u32) -> StoreResult<Store> {
        let (db, writer) = local::LocalDb::open(path, pool_size, wal_autocheckpoint)?;
        Ok(Store {
            way: Way::Local(db),
            writer: writer::Writer::new(WriterConn::Local(writer)),
            revision_limit: revisions::RevisionLimit::default(),
        })
    }

    /// The store on a dqlite cluster, reached through any of `seeds`; a request waits at
    /// most `timeout` for a leader. Creates or upgrades the schema.
    pub fn open_cluster(seeds: Vec<String>, timeout: Duration) -> StoreResult<Store> {
        Store::open_cluster_database(seeds, timeout, cluster::DATABASE)
    }

    /// A database of another name on the cluster, beside postd's own: the test suite runs
    /// the contract's tests through a follower with one database per test.
    pub fn open_cluster_database(
        seeds: Vec<String>,
        timeout: Duration,
        database: &str,
    ) -> StoreResult<Store> {
        let cluster = Arc::new(cluster::Cluster::new(seeds, timeout, database));
        let store = Store {
            writer: writer::Writer::new(WriterConn::Cluster {
                cluster: cluster.clone(),
                session: None,
            }),
            way: Way::Cluster(cluster),
            revision_limit: revisions::RevisionLimit::default(),
        };
        store.write_alone(|tx| schema::migrate(**tx))?;
        Ok(store)
    }

    /// Runs `f` on a read connection, outside any explicit transaction: for single
    /// statements, which SQLite runs atomically on one snapshot anyway. On the cluster,
    /// `f` runs again on a new connection when the one it had found its leader gone:
    /// it only reads.
    fn read<T>(&self, mut f: impl FnMut(&Conn<'_>) -> StoreResult<T>) -> StoreResult<T> {
        match &self.way {
            Way::Local(db) => db.read(|conn| f(&conn)),
            Way::Cluster(cluster) => with_leader(cluster, |session| f(&Conn::cluster(session))),
        }
    }

    /// Runs `f` in a read transaction, so several statements see one snapshot.
    fn snapshot<T>(&self, mut f: impl FnMut(&Conn<'_>) -> StoreResult<T>) -> StoreResult<T> {
        match &self.way {
            Way::Local(db) => db.snapshot(|conn| f(&conn)),
            Way::Cluster(cluster) => with_leader(cluster, |session| {
                let conn = Conn::cluster(session);
                conn.execute_batch("BEGIN")?;
                let out = f(&conn);
                // A read transaction: ending it can not lose anything.
                let ended = conn.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
                let out = out?;
                ended?;
                Ok(out)
            }),
        }
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

    /// A connection kept for a while (a check that reads line after line): a pooled one,
    /// or a session on the leader.
    fn hold_connection(&self) -> StoreResult<HeldConn> {
        Ok(match &self.way {
            Way::Local(db) => HeldConn::Local(db.connection()?),
            Way::Cluster(cluster) => HeldConn::Cluster(cluster.session()?),
        })
    }

    /// The local file, when this store is one.
    fn local(&self) -> Option<&local::LocalDb> {
        match &self.way {
            Way::Local(db) => Some(db),
            Way::Cluster(_) => None,
        }
    }

    /// The cluster, when this store is on one.
    fn cluster(&self) -> Option<&Arc<cluster::Cluster>> {
        match &self.way {
            Way::Local(_) => None,
            Way::Cluster(cluster) => Some(cluster),
        }
    }
}

/// A connection held by one user for a while.
enum HeldConn {
    Local(r2d2::PooledConnection<r2d2_sqlite::SqliteConnectionManager>),
    Cluster(cluster::Session),
}

impl HeldConn {
    fn conn(&self) -> Conn<'_> {
        match self {
            HeldConn::Local(conn) => Conn::local(conn),
            HeldConn::Cluster(session) => Conn::cluster(session),
        }
    }
}

/// Runs `work` on a session to the cluster's leader; a session found stale (its leader
/// gone while it was idle) is replaced and `work` run again, until the cluster's timeout.
fn with_leader<T>(
    cluster: &cluster::Cluster,
    mut work: impl FnMut(&cluster::Session) -> StoreResult<T>,
) -> StoreResult<T> {
    let deadline = std::time::Instant::now() + cluster.timeout();
    loop {
        let session = cluster.session().map_err(StoreError::from)?;
        let outcome = work(&session);
        let lost = matches!(outcome, Err(StoreError::Unavailable(_)));
        cluster.give_back(session, lost);
        match outcome {
            Err(StoreError::Unavailable(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            outcome => return outcome,
        }
    }
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
                let fk: i64 = conn.query_row("PRAGMA foreign_keys", (), |r| r.get(0))?;
                let sync: i64 = conn.query_row("PRAGMA synchronous", (), |r| r.get(0))?;
                let mode: String = conn.query_row("PRAGMA journal_mode", (), |r| r.get(0))?;
                assert_eq!((fk, sync, mode.as_str()), (1, 2, "wal"));
                Ok(())
            })
            .unwrap();
        let pooled = t.store.local().unwrap().connection().unwrap();
        assert!(pooled
            .db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)
            .unwrap());
    }

    /// Another process writing chunk after chunk with a few milliseconds between them (an
    /// import) must not starve a writer of ours: it gets in at the next gap, and one that
    /// never comes ends in `Busy` after `BUSY_TIMEOUT`, not before.
    #[test]
    fn a_waiting_writer_gets_in_between_another_process_s_transactions() {
        let t = TempStore::new("busy");
        let path = t.store.path().unwrap().to_owned();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let other = scope.spawn(|| {
                let other = rusqlite::Connection::open(&path).unwrap();
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
        assert!(!local::wait_for_lock(10_000) && local::wait_for_lock(0));
    }

    #[test]
    fn a_panic_inside_a_write_rolls_back_and_releases_the_writer() {
        let t = TempStore::new("panic");
        let store = &t.store;
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = store.write(|tx| {
                tx.execute(
                    "INSERT INTO users (username, password_hash, created_at) VALUES ('x', 'h', 't')",
                    (),
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
                let users: i64 = tx.query_row("SELECT count(*) FROM users", (), |r| r.get(0))?;
                assert_eq!(users, 0, "the panicking transaction must have rolled back");
                Ok(())
            })
            .unwrap();
    }
}
