//! The store's whole interface: every public method of `Store`, in one place. Each
//! method says which kind of transaction its work runs in; the work itself is in the
//! module of its tables.

use super::cluster::Status;
use super::{shared, Store, StoreError, StoreResult};
use std::path::Path;
use std::time::Duration;

impl Store {
    /// The database file, when the store is one (not a cluster).
    pub fn path(&self) -> Option<&Path> {
        self.local().map(|db| db.path.as_path())
    }

    /// Where the data is, for people: the file, or the cluster's addresses.
    pub fn describe(&self) -> String {
        match (self.local(), self.cluster()) {
            (Some(db), _) => format!("database {}", db.path.display()),
            (None, Some(cluster)) => format!("cluster {}", cluster.seeds().join(",")),
            (None, None) => String::new(),
        }
    }

    /// Says so when the database file, which holds the password hashes, can be read by
    /// other users: postd creates its files 0600, but a file copied in may be 0644.
    pub fn warn_if_readable_by_others(&self) {
        use std::os::unix::fs::PermissionsExt;
        let Some(path) = self.path() else { return };
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                log::warn!(
                    "database {} has mode {mode:o}: other users can read the password hashes (chmod 600)",
                    path.display()
                );
            }
        }
    }

    /// Write transactions committed since the store was opened (each one sync of the WAL,
    /// or one replication on the cluster): with group commit, fewer than the writes.
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }

    /// Tells `observer` how long each write waited for the writer connection.
    pub fn observe_writer_waits(&self, observer: impl Fn(Duration) + Send + Sync + 'static) {
        self.writer.observe_waits(Box::new(observer));
    }

    /// Copies the WAL into the database file and truncates it, so a stopped server leaves
    /// one self-contained file behind. Skipped when checkpoints were left to an outside
    /// process (Litestream), and on a cluster (dqlite checkpoints by itself).
    pub fn checkpoint(&self) -> StoreResult<()> {
        match self.local() {
            Some(db) if db.wal_autocheckpoint != 0 => db.read(|conn| {
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", (), |_| Ok(()))?;
                Ok(())
            }),
            _ => Ok(()),
        }
    }

    /// Bytes the database takes on disk: the main file and its WAL (which holds recent
    /// commits until a checkpoint copies them into the file); pages times page size on a
    /// cluster, where it is held in memory. A file that is not there counts 0.
    pub fn disk_usage(&self) -> u64 {
        let Some(path) = self.path() else {
            return self
                .read(|conn| {
                    Ok(conn.query_row(
                        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                        (),
                        |row| row.get::<_, i64>(0),
                    )?)
                })
                .map_or(0, |bytes| u64::try_from(bytes).unwrap_or(0));
        };
        let mut wal = path.to_path_buf().into_os_string();
        wal.push("-wal");
        [path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|file| std::fs::metadata(file).ok())
            .map(|meta| meta.len())
            .sum()
    }

    /// A real round trip to the database (the cluster's leader), for `/healthz`.
    pub fn ping(&self) -> StoreResult<()> {
        self.read(|conn| {
            let tables: i64 =
                conn.query_row("SELECT count(*) FROM sqlite_schema", (), |row| row.get(0))?;
            if tables > 0 {
                Ok(())
            } else {
                Err(StoreError::Unavailable("schema missing".into()))
            }
        })
    }

    /// The value of setting `name` (the cluster's id, its signing key), if set.
    pub fn setting(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(|conn| shared::setting(conn, name))
    }

    /// Sets `name` to `value` unless it is set already; the value it has now.
    pub fn setting_or_insert(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        self.write_alone(|tx| shared::setting_or_insert(tx, name, value))
    }

    /// Takes or renews lease `name` for `holder` for `term`; true when `holder` has it.
    pub fn take_lease(&self, name: &str, holder: &str, term: Duration) -> StoreResult<bool> {
        self.write(|tx| shared::take_lease(tx, name, holder, term))
    }

    /// The cluster's members and leader; `None` for a local file.
    pub fn cluster_status(&self) -> StoreResult<Option<Status>> {
        match self.cluster() {
            Some(cluster) => Ok(Some(cluster.status()?)),
            None => Ok(None),
        }
    }

    /// Removes a member from the cluster. The local file has no members: a refusal.
    pub fn remove_member(&self, id: u64) -> StoreResult<()> {
        match self.cluster() {
            Some(cluster) => Ok(cluster.remove(id)?),
            None => Err(StoreError::refused(
                super::Refusal::BadState,
                "a database file is no cluster",
            )),
        }
    }

    /// Copies every row of the postd database file at `path` into this store, which must
    /// hold none yet (`--seed`). Returns how many rows were copied.
    pub fn seed_from(&self, path: &Path) -> StoreResult<u64> {
        super::seed::seed(self, path)
    }
}
