//! Whole-database operations for the command line: purge, backup, check. Each reports
//! progress through a callback `(done, total)`; the CLI decides whether to show it.

use super::audit::{self, AuditAction};
use super::cluster::Cluster;
use super::local::LocalDb;
use super::sql::params;
use super::writer::Tx;
use super::{Store, StoreError, StoreResult};
use crate::clock::{Age, Timestamp};
use crate::files::PrivateDir;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// Rows deleted per statement by `purge`, all inside one transaction: small enough to
/// report progress often, large enough to cost nothing extra.
const PURGE_CHUNK: i64 = 1000;
/// Pages copied per backup step.
const BACKUP_PAGES_PER_STEP: i32 = 1024;

pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// Who asked for a purge, for its audit event.
#[derive(Clone, Copy, Debug)]
pub enum Purger {
    /// `POST /admin/purge`, by this user.
    Admin(i64),
    /// `postd purge`.
    CommandLine,
}

impl Purger {
    fn actor_id(self) -> Option<i64> {
        match self {
            Purger::Admin(user_id) => Some(user_id),
            Purger::CommandLine => None,
        }
    }

    fn detail(self, older_than: &Age) -> String {
        match self {
            Purger::Admin(_) => format!("older than {older_than}"),
            Purger::CommandLine => format!("older than {older_than}, command line"),
        }
    }
}

/// Deletes up to `limit` posts soft-deleted before `cutoff`, oldest first, comments by
/// cascade; returns their ids. The subquery names the trash view, so what is purged is
/// exactly what the trash shows as older than the cutoff.
fn purge_some(tx: &Tx, cutoff: &Timestamp, limit: i64) -> StoreResult<Vec<i64>> {
    let mut ids = tx
        .prepare_cached(
            "SELECT id FROM deleted_posts WHERE deleted_at < ?1
             ORDER BY deleted_at, id LIMIT ?2",
        )?
        .query_map(params![cutoff, limit], |row| row.get(0))?
        .collect::<Result<Vec<i64>, _>>()?;
    ids.sort_unstable();
    // By id, not by the subquery again: the ids are what the event records.
    let ids_json = serde_json::to_string(&ids)?;
    tx.execute(
        "DELETE FROM posts WHERE id IN (SELECT value FROM json_each(?1))",
        [&ids_json],
    )?;
    Ok(ids)
}

pub(super) fn count_deleted_before(store: &Store, cutoff: &Timestamp) -> StoreResult<u64> {
    store.read(|conn| {
        let mut count =
            conn.prepare_cached("SELECT count(*) FROM deleted_posts WHERE deleted_at < ?1")?;
        let total: i64 = count.query_row([cutoff], |row| row.get(0))?;
        Ok(total as u64)
    })
}

pub(super) fn purge_deleted_before(
    store: &Store,
    cutoff: &Timestamp,
    older_than: &Age,
    by: Purger,
    progress: Progress<'_>,
) -> StoreResult<u64> {
    store.write_alone(|tx| {
        let mut count =
            tx.prepare_cached("SELECT count(*) FROM deleted_posts WHERE deleted_at < ?1")?;
        let total: i64 = count.query_row([cutoff], |row| row.get(0))?;
        let total = total as u64;
        let mut purged = Vec::new();
        loop {
            let ids = purge_some(tx, cutoff, PURGE_CHUNK)?;
            if ids.is_empty() {
                break;
            }
            purged.extend(ids);
            progress(purged.len() as u64, total);
        }
        audit::append(
            tx,
            by.actor_id(),
            AuditAction::TrashPurge,
            &purged,
            &by.detail(older_than),
        )?;
        Ok(purged.len() as u64)
    })
}

pub(super) fn purge_expired_batch(
    store: &Store,
    cutoff: &Timestamp,
    retention: &Age,
    limit: usize,
) -> StoreResult<usize> {
    store.write_alone(|tx| {
        let ids = purge_some(tx, cutoff, i64::try_from(limit).unwrap_or(i64::MAX))?;
        let detail = format!("older than {retention}, retention sweep");
        audit::append(tx, None, AuditAction::TrashPurge, &ids, &detail)?;
        Ok(ids.len())
    })
}

pub(super) fn backup_to(store: &Store, dest: &Path, progress: Progress<'_>) -> StoreResult<()> {
    let dir = PrivateDir::beside(dest).map_err(StoreError::Unavailable)?;
    let partial = dir.path().join("copy.db");
    match (store.local(), store.cluster()) {
        (Some(db), _) => copy_file(db, &partial, progress)?,
        (None, Some(cluster)) => copy_cluster(cluster, &partial, progress)?,
        (None, None) => return Err(StoreError::Internal("a store with no database".into())),
    }
    std::fs::rename(&partial, dest)
        .map_err(|e| StoreError::Unavailable(format!("renaming the copy: {e}")))
}

pub(super) fn check(store: &Store, progress: Progress<'_>) -> StoreResult<Vec<String>> {
    let mut problems = Vec::new();
    progress(0, 3);
    store.snapshot(|conn| {
        let mut integrity = conn.prepare("PRAGMA integrity_check")?;
        let rows = integrity.query_map((), |row| row.get::<_, String>(0))?;
        for row in rows {
            let line = row?;
            if line != "ok" {
                problems.push(format!("integrity: {line}"));
            }
        }
        progress(1, 3);
        let mut foreign = conn.prepare("PRAGMA foreign_key_check")?;
        let rows = foreign.query_map((), |row| {
            Ok(format!(
                "foreign key: {} row {} points at a missing {} row",
                row.get::<_, String>(0)?,
                row.get::<_, Option<i64>>(1)?
                    .map(|id| id.to_string())
                    .unwrap_or_else(|| "?".into()),
                row.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            problems.push(row?);
        }
        Ok(())
    })?;
    progress(2, 3);
    // FTS5's check is a command written as an INSERT; it changes nothing, but SQLite
    // needs a write transaction for it. rank = 1 also compares against the posts table.
    // Its failure is a finding, not an error of the check.
    let fts = store.write_alone(|tx| {
        Ok(tx.execute(
            "INSERT INTO posts_fts (posts_fts, rank) VALUES ('integrity-check', 1)",
            (),
        ))
    })?;
    if let Err(err) = fts {
        problems.push(format!("full-text index: {err}"));
    }
    progress(3, 3);
    Ok(problems)
}

/// The local file's copy: SQLite's online backup from one read snapshot, a few pages at
/// a time, into `partial` (opened without following a link).
fn copy_file(db: &LocalDb, partial: &Path, progress: Progress<'_>) -> StoreResult<()> {
    db.snapshot_of_file(|source| copy_snapshot(source, partial, progress))
}

fn copy_snapshot(source: &Connection, partial: &Path, progress: Progress<'_>) -> StoreResult<()> {
    let mut target = Connection::open_with_flags(
        partial,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    {
        let backup = Backup::new(source, &mut target)?;
        loop {
            match backup.step(BACKUP_PAGES_PER_STEP)? {
                StepResult::Done => break,
                StepResult::More => {
                    let p = backup.progress();
                    let total = p.pagecount.max(0) as u64;
                    progress(total.saturating_sub(p.remaining.max(0) as u64), total);
                }
                // Another process holds a lock the copy needs; wait a moment.
                _ => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }
    // The copy is a standalone file: no WAL beside it once closed.
    target.execute_batch("PRAGMA journal_mode = DELETE")?;
    target.close().map_err(|(_, err)| err)?;
    Ok(())
}

/// The cluster's copy: dqlite's DUMP of the replicated database (its file and WAL, as of
/// one moment), written beside `partial` and folded into one ordinary SQLite file there.
fn copy_cluster(cluster: &Cluster, partial: &Path, progress: Progress<'_>) -> StoreResult<()> {
    progress(0, 2);
    let deadline = std::time::Instant::now() + cluster.timeout();
    let mut client = cluster.leader_client(deadline)?;
    let files = client
        .dump(cluster.database())
        .map_err(super::sql::Error::from)?;
    progress(1, 2);
    let mut wal = partial.as_os_str().to_owned();
    wal.push("-wal");
    for file in &files {
        let path = if file.name.ends_with("-wal") {
            std::path::PathBuf::from(&wal)
        } else {
            partial.to_path_buf()
        };
        write_new_file(&path, &file.data)
            .map_err(|e| StoreError::Unavailable(format!("writing the copy: {e}")))?;
    }
    // Opening it as a WAL database and leaving WAL mode copies the WAL into the file.
    let target = Connection::open_with_flags(
        partial,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )?;
    target.execute_batch("PRAGMA journal_mode = DELETE")?;
    target.close().map_err(|(_, err)| err)?;
    progress(2, 2);
    Ok(())
}

/// A new file, owner-only, never through a link.
fn write_new_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::Purger;
    use crate::clock::{Age, Timestamp};
    use crate::store::testing::TempStore;
    use crate::store::AuditQuery;

    #[test]
    fn check_finds_a_full_text_index_out_of_step() {
        let t = TempStore::new("check");
        assert!(t.store.check(&mut |_, _| {}).unwrap().is_empty());
        t.store
            .write(|tx| {
                tx.execute_batch(
                    "INSERT INTO users (username, password_hash, created_at) VALUES ('u', 'h', 't');
                     INSERT INTO posts (author_id, title, slug, body, created_at, updated_at)
                     VALUES (1, 'hello', 'hello', 'world', 't', 't');
                     -- Corrupt on purpose: empty the index behind the triggers' back.
                     INSERT INTO posts_fts (posts_fts) VALUES ('delete-all');",
                )?;
                Ok(())
            })
            .unwrap();
        let problems = t.store.check(&mut |_, _| {}).unwrap();
        assert!(
            problems.iter().any(|p| p.starts_with("full-text index")),
            "{problems:?}"
        );
    }

    #[test]
    fn purge_reports_progress_and_counts_and_records_one_event() {
        let t = TempStore::new("purge");
        t.store
            .write(|tx| {
                tx.execute("INSERT INTO users (username, password_hash, created_at) VALUES ('u', 'h', 't')", ())?;
                for i in 0..2500 {
                    tx.execute(
                        "INSERT INTO posts (author_id, title, slug, body, created_at, updated_at, deleted_at, deleted_by_id)
                         VALUES (1, 't', ?1, 'b', 't', 't', '2000-01-01T00:00:00.000Z', 1)",
                        [format!("s{i}")],
                    )?;
                }
                Ok(())
            })
            .unwrap();
        let cutoff = Timestamp::now();
        let age: Age = "0s".parse().unwrap();
        assert_eq!(t.store.count_deleted_before(&cutoff).unwrap(), 2500);
        let mut seen = Vec::new();
        assert_eq!(
            t.store
                .purge_deleted_before(&cutoff, &age, Purger::CommandLine, &mut |d, n| seen
                    .push((d, n)))
                .unwrap(),
            2500
        );
        assert_eq!(seen, [(1000, 2500), (2000, 2500), (2500, 2500)]);
        let events = t
            .store
            .audit_events(&AuditQuery {
                limit: 10,
                before_id: None,
                action: None,
                actor_id: None,
            })
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].count, 2500);
        assert_eq!(events[0].detail, "older than 0s, command line");
        // Nothing left to purge: nothing recorded.
        t.store
            .purge_deleted_before(&cutoff, &age, Purger::Admin(1), &mut |_, _| {})
            .unwrap();
        t.store.purge_expired_batch(&cutoff, &age, 1000).unwrap();
        assert_eq!(
            t.store
                .audit_events(&AuditQuery {
                    limit: 10,
                    before_id: None,
                    action: None,
                    actor_id: None,
                })
                .unwrap()
                .len(),
            1
        );
    }
}
