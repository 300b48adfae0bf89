//! Comments. Reads go through `active_comments`, which hides the comments of
//! soft-deleted posts; a permanent delete of the post removes them by cascade.

use super::posts::{active_by_id, not_found};
use super::sql::{params, Conn, OptionalExtension, Row};
use super::{Store, StoreError, StoreResult};
use crate::clock::Timestamp;
use crate::model::{Actor, Comment, CommentBody};

fn comment_from_row(row: &Row<'_>) -> super::sql::Result<Comment> {
    Ok(Comment {
        id: row.get(0)?,
        post_id: row.get(1)?,
        author_id: row.get(2)?,
        body: row.get(3)?,
        created_at: row.get(4)?,
    })
}

/// Up to `limit + 1` comments of an active post, oldest first, after comment `after_id`.
pub(super) fn list(
    conn: &Conn,
    post_id: i64,
    limit: u32,
    after_id: Option<i64>,
) -> StoreResult<Vec<Comment>> {
    if active_by_id(conn, post_id)?.is_none() {
        return Err(not_found(post_id));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT id, post_id, author_id, body, created_at FROM active_comments
         WHERE post_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    )?;
    let fetch = i64::from(limit) + 1;
    let rows = stmt.query_map(
        params![post_id, after_id.unwrap_or(0), fetch],
        comment_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn create_comment(
    store: &Store,
    actor: &Actor,
    post_id: i64,
    body: CommentBody,
) -> StoreResult<Comment> {
    store.write(|tx| {
        if active_by_id(tx, post_id)?.is_none() {
            return Err(not_found(post_id));
        }
        let now = Timestamp::now();
        let mut stmt = tx.prepare_cached(
            "INSERT INTO comments (post_id, author_id, body, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let id = stmt.insert(params![post_id, actor.user_id, body, now])?;
        Ok(Comment {
            id,
            post_id,
            author_id: actor.user_id,
            body,
            created_at: now,
        })
    })
}

pub(super) fn delete_comment(store: &Store, actor: &Actor, id: i64) -> StoreResult<()> {
    store.write(|tx| {
        let mut find = tx.prepare_cached(
            "SELECT c.author_id, p.author_id FROM active_comments AS c
                 JOIN active_posts AS p ON p.id = c.post_id WHERE c.id = ?1",
        )?;
        let (comment_author, post_author): (i64, i64) = find
            .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?
            .ok_or_else(|| StoreError::not_found(format!("comment {id} not found")))?;
        if !(actor.may_manage(comment_author) || actor.user_id == post_author) {
            return Err(StoreError::forbidden(format!(
                "comment {id} may be deleted only by its author, the post's owner or an admin"
            )));
        }
        let mut delete = tx.prepare_cached("DELETE FROM comments WHERE id = ?1")?;
        delete.execute([id])?;
        Ok(())
    })
}
