//! Delete by filter: the active posts a filter matches, counted (a dry run), then soft or
//! permanently deleted in one transaction if and only if they are still as many as the
//! client counted on. The count is what makes it safe: a filter is a moving target while
//! others write, and the client agreed to delete N posts, not "whatever matches now".

use super::audit::{self, AuditAction};
use super::bulk::{delete_rows, json_array};
use super::posts::fts_query;
use super::sql::{Conn, ToSql};
use super::writer::Tx;
use super::{Refusal, StoreError, StoreResult};
use crate::clock::Timestamp;
use crate::model::Actor;

/// Which active posts: those matching every part given. At least one part is given (the
/// API refuses an empty filter: "everything" is not a filter).
pub struct PostFilter<'a> {
    /// Search words, matched like `GET /posts?q=`.
    pub words: &'a [String],
    pub author_id: Option<i64>,
    /// Created strictly before this moment.
    pub created_before: Option<Timestamp>,
}

impl PostFilter<'_> {
    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.author_id.is_none() && self.created_before.is_none()
    }

    /// The filter as the audit event's detail says it; the words clipped.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.words.is_empty() {
            let q = self.words.join(" ");
            parts.push(format!("q \"{}\"", crate::text::clip(&q, 200)));
        }
        if let Some(author) = self.author_id {
            parts.push(format!("author_id {author}"));
        }
        if let Some(before) = &self.created_before {
            parts.push(format!("created_before {before}"));
        }
        parts.join(", ")
    }

    /// `SELECT id FROM active_posts WHERE …` for the parts given, each bound: the
    /// statement is put together only from fixed pieces, one per part, so each shape can
    /// use its index (author, created_at, the full-text index), and nothing the client
    /// sent is ever part of the SQL.
    fn select_ids(&self, columns: &str, tail: &str) -> (String, Vec<Box<dyn ToSql + '_>>) {
        let mut sql = ["SELECT ", columns, " FROM active_posts WHERE 1"].concat();
        let mut bound: Vec<Box<dyn ToSql + '_>> = Vec::new();
        if let Some(author) = self.author_id {
            sql.push_str(" AND author_id = ?");
            bound.push(Box::new(author));
        }
        if let Some(before) = &self.created_before {
            sql.push_str(" AND created_at < ?");
            bound.push(Box::new(before));
        }
        if !self.words.is_empty() {
            sql.push_str(" AND id IN (SELECT rowid FROM posts_fts WHERE posts_fts MATCH ?)");
            bound.push(Box::new(fts_query(self.words)));
        }
        sql.push_str(tail);
        (sql, bound)
    }

    /// How many active posts match.
    fn count(&self, conn: &Conn<'_>) -> StoreResult<u64> {
        let (sql, bound) = self.select_ids("count(*)", "");
        let params: Vec<&dyn ToSql> = bound.iter().map(|b| b.as_ref()).collect();
        let count: i64 = conn
            .prepare_cached(&sql)?
            .query_row(&params, |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The ids of the first `limit` matching posts, oldest first.
    fn first_ids(&self, conn: &Conn<'_>, limit: usize) -> StoreResult<Vec<i64>> {
        let (sql, mut bound) = self.select_ids("id", " ORDER BY id LIMIT ?");
        bound.push(Box::new(i64::try_from(limit).unwrap_or(i64::MAX)));
        let params: Vec<&dyn ToSql> = bound.iter().map(|b| b.as_ref()).collect();
        let ids = conn
            .prepare_cached(&sql)?
            .query_map(&params, |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }
}

/// What a filter matches now: how many posts, and the first few ids.
#[derive(Debug, serde::Serialize)]
pub struct FilterMatch {
    pub count: u64,
    pub sample: Vec<i64>,
}

/// At most this many ids in a dry run's answer.
const SAMPLE: usize = 20;

/// The count and sample (the caller holds one snapshot); more than `most` is refused.
pub(super) fn matching(
    conn: &Conn<'_>,
    filter: &PostFilter<'_>,
    most: usize,
) -> StoreResult<FilterMatch> {
    let count = filter.count(conn)?;
    if count > most as u64 {
        return Err(too_many(count, most));
    }
    Ok(FilterMatch {
        count,
        sample: filter.first_ids(conn, SAMPLE)?,
    })
}

/// Refuses a filter that matches more than `most` posts (413, with the count).
fn too_many(count: u64, most: usize) -> StoreError {
    StoreError::Counted {
        why: Refusal::TooMany,
        detail: format!(
            "the filter matches {count} posts; at most {most} are deleted per request \
             (narrow the filter, e.g. with created_before)"
        ),
        count,
    }
}

/// Deletes what `filter` matches if it matches exactly `expected` posts (at most `most`),
/// with one `posts.filter_delete` event; returns the ids, oldest first.
pub(super) fn delete_matching(
    tx: &Tx,
    actor: &Actor,
    filter: &PostFilter<'_>,
    expected: u64,
    most: usize,
    hard: bool,
) -> StoreResult<Vec<i64>> {
    // One row past the limit tells "too many" without reading them all; the write lock
    // is ours, so what is read here is what the delete below changes.
    let ids = filter.first_ids(tx, most.saturating_add(1))?;
    if ids.len() > most {
        return Err(too_many(filter.count(tx)?, most));
    }
    let count = ids.len() as u64;
    if count != expected {
        return Err(StoreError::Counted {
            why: Refusal::Conflict,
            detail: format!(
                "the filter matches {count} posts now, not the {expected} expected; nothing \
                 was deleted (run the dry run again)"
            ),
            count,
        });
    }
    delete_rows(tx, actor, &json_array(&ids)?, hard)?;
    let how = if hard { "permanently" } else { "to the trash" };
    audit::append(
        tx,
        Some(actor.user_id),
        AuditAction::PostsFilterDelete,
        &ids,
        &format!("{}; {how}", filter.describe()),
    )?;
    Ok(ids)
}
