//! Whole-database operations for the command line: purge, backup, role changes.

use super::{Store, StoreResult};
use rusqlite::backup::Backup;
use rusqlite::Connection;
use std::path::Path;

impl Store {
    /// Permanently deletes posts soft-deleted before `cutoff` (a stored timestamp), in one
    /// transaction; comments go by cascade. With `dry_run`, only counts.
    pub fn purge_deleted_before(&self, cutoff: &str, dry_run: bool) -> StoreResult<usize> {
        self.write(|tx| {
            if dry_run {
                let mut count = tx.prepare_cached("SELECT count(*) FROM deleted_posts WHERE deleted_at < ?1")?;
                let n: i64 = count.query_row([cutoff], |row| row.get(0))?;
                return Ok(n as usize);
            }
            // The subquery names the trash view, so the rule "what is purged is what the
            // trash shows" holds by construction.
            let mut purge = tx.prepare_cached(
                "DELETE FROM posts WHERE id IN (SELECT id FROM deleted_posts WHERE deleted_at < ?1)",
            )?;
            Ok(purge.execute([cutoff])?)
        })
    }

    /// A consistent copy of the live database through SQLite's online backup API. Copies
    /// in one step, which holds one read snapshot: in WAL mode that never blocks writers.
    /// Writes to a temporary file beside `dest` and renames it into place, so `dest` is
    /// either the old file or a complete new copy.
    pub fn backup_to(&self, dest: &Path) -> StoreResult<()> {
        let file_name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let partial = dest.with_file_name(format!(".{file_name}.partial-{}", std::process::id()));
        let result = self.read(|conn| {
            let mut target = Connection::open(&partial)?;
            {
                let backup = Backup::new(conn, &mut target)?;
                if backup.step(-1)? != rusqlite::backup::StepResult::Done {
                    return Err(super::StoreError::Unavailable(
                        "the database is locked; backup not taken".into(),
                    ));
                }
            }
            // The copy is a standalone file: no WAL beside it once closed.
            target.execute_batch("PRAGMA journal_mode = DELETE")?;
            target.close().map_err(|(_, err)| err)?;
            Ok(())
        });
        match result.and_then(|()| {
            std::fs::rename(&partial, dest)
                .map_err(|e| super::StoreError::Unavailable(e.to_string()))
        }) {
            Ok(()) => Ok(()),
            Err(err) => {
                let _ = std::fs::remove_file(&partial);
                Err(err)
            }
        }
    }
}
