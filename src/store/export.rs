//! Every post, for `postd export`: read in one transaction, so the posts are those of one
//! moment however long the reading takes, and streamed row by row in id order.

use super::posts::post_from_row_at;
use super::sql::Row;
use super::{Store, StoreResult};
use crate::model::{Deletion, Post};

/// Which posts an export holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportScope {
    /// What the public listings show.
    Active,
    /// Soft-deleted posts too, with `deleted_at` and `deleted_by_id`.
    WithTrash,
}

// Both views scan the table in rowid order, so SQLite merges the two halves of the
// UNION ALL as they come (`MERGE (UNION ALL)` in the query plan) instead of sorting a
// million rows in a temporary b-tree held in memory (temp_store = MEMORY).
const ACTIVE: &str = "SELECT id, author_id, title, slug, body, created_at, updated_at, NULL, NULL
                      FROM active_posts ORDER BY id";
const WITH_TRASH: &str =
    "SELECT id, author_id, title, slug, body, created_at, updated_at, NULL, NULL
                          FROM active_posts
                          UNION ALL
                          SELECT id, author_id, title, slug, body, created_at, updated_at,
                                 deleted_at, deleted_by_id
                          FROM deleted_posts
                          ORDER BY 1";
const COUNT_ACTIVE: &str = "SELECT count(*) FROM active_posts";
const COUNT_WITH_TRASH: &str =
    "SELECT (SELECT count(*) FROM active_posts) + (SELECT count(*) FROM deleted_posts)";

fn exported_post(row: &Row<'_>) -> super::sql::Result<Post> {
    let mut post = post_from_row_at(row, 0)?;
    if let Some(deleted_at) = row.get(7)? {
        post.deletion = Some(Deletion {
            deleted_at,
            deleted_by_id: row.get(8)?,
        });
    }
    Ok(post)
}

pub(super) fn export_posts<E>(
    store: &Store,
    scope: ExportScope,
    visit: &mut dyn FnMut(&Post, u64) -> Result<(), E>,
) -> StoreResult<Result<u64, E>> {
    let (count, select) = match scope {
        ExportScope::Active => (COUNT_ACTIVE, ACTIVE),
        ExportScope::WithTrash => (COUNT_WITH_TRASH, WITH_TRASH),
    };
    store.snapshot(|conn| {
        let total: i64 = conn.query_row(count, (), |row| row.get(0))?;
        let total = u64::try_from(total).unwrap_or(0);
        let mut done = 0u64;
        let mut stopped = None;
        conn.prepare(select)?.query_each((), |row| {
            if stopped.is_none() {
                match visit(&exported_post(row)?, total) {
                    Ok(()) => done += 1,
                    Err(err) => stopped = Some(err),
                }
            }
            Ok(())
        })?;
        Ok(match stopped.take() {
            Some(err) => Err(err),
            None => Ok(done),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::TempStore;

    /// A sort in a temporary b-tree would hold every row in memory before the first one
    /// comes out (temp_store = MEMORY); both exports must stream in index order.
    #[test]
    fn exports_stream_without_sorting() {
        let t = TempStore::new("export-plan");
        for sql in [ACTIVE, WITH_TRASH] {
            let plan: Vec<String> = t
                .store
                .read(|conn| {
                    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let rows = stmt.query_map((), |row| row.get::<_, String>(3))?;
                    Ok(rows.collect::<Result<_, _>>()?)
                })
                .unwrap();
            assert!(
                plan.iter().all(|step| !step.contains("TEMP B-TREE")),
                "{sql}: {plan:?}"
            );
        }
    }
}
