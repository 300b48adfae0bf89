//! Revisions: the versions of a post's title, slug and body that changes replaced. The
//! schema's trigger (`posts_keep_revision`) writes one in the statement that replaces it,
//! so no path that changes a post can forget it; this module lists them, reverts to one,
//! and keeps at most `--revision-limit` per post.
//!
//! The table is read here only: no public read path (lists, single posts, search,
//! comments) names it (`tests/it/invariants.rs`).

use super::audit::{self, AuditAction};
use super::posts::{self, check_if_match, not_found, slug_taken, slug_taken_message};
use super::sql::{params, Conn, OptionalExtension, Row};
use super::writer::Tx;
use super::{StoreError, StoreResult};
use crate::clock::Timestamp;
use crate::model::{Actor, IfMatch, PostBody, Slug, Title, VersionedPost};

/// One replaced version of a post.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Revision {
    /// The post's revision while this version was current (its ETag then).
    pub revision: i64,
    pub title: Title,
    pub slug: Slug,
    pub body: PostBody,
    /// When this version was saved, and by whom.
    pub saved_at: Timestamp,
    pub saved_by_id: Option<i64>,
}

fn revision_from_row(row: &Row<'_>) -> super::sql::Result<Revision> {
    Ok(Revision {
        revision: row.get(0)?,
        title: row.get(1)?,
        slug: row.get(2)?,
        body: row.get(3)?,
        saved_at: row.get(4)?,
        saved_by_id: row.get(5)?,
    })
}

/// The versions a post keeps: at most `limit` old ones (`--revision-limit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevisionLimit(pub u32);

impl Default for RevisionLimit {
    fn default() -> RevisionLimit {
        RevisionLimit(100)
    }
}

/// Forgets the versions of post `id` beyond the newest `limit` old ones, after a change
/// that made `current` its revision. Revision numbers only grow, so the versions kept
/// are those numbered within `limit` of the current one: at most `limit` of them.
pub(super) fn prune(tx: &Tx, id: i64, current: i64, limit: RevisionLimit) -> StoreResult<()> {
    tx.execute(
        "DELETE FROM post_revisions WHERE post_id = ?1 AND revision < ?2",
        params![id, current - i64::from(limit.0)],
    )?;
    Ok(())
}

/// A page of post `id`'s old versions, newest first, before revision `before` when given
/// (`limit + 1` rows at most). The owner and admins may read them; a soft-deleted post's
/// only admins (it is absent, 404, for everybody else, as everywhere).
pub(super) fn list(
    conn: &Conn,
    actor: &Actor,
    id: i64,
    limit: u32,
    before: Option<i64>,
) -> StoreResult<Vec<Revision>> {
    let author: Option<(i64, bool)> = conn
        .query_row(
            "SELECT author_id, 1 FROM active_posts WHERE id = ?1
             UNION ALL
             SELECT author_id, 0 FROM deleted_posts WHERE id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get::<_, bool>(1)?)),
        )
        .optional()?;
    match author {
        None => return Err(not_found(id)),
        Some((_, false)) if !actor.is_admin() => return Err(not_found(id)),
        Some((author, _)) if !actor.may_manage(author) => {
            return Err(StoreError::forbidden(format!(
                "post {id} belongs to another user"
            )))
        }
        Some(_) => {}
    }
    let rows = conn
        .prepare_cached(
            "SELECT revision, title, slug, body, saved_at, saved_by_id FROM post_revisions
             WHERE post_id = ?1 AND revision < ?2 ORDER BY revision DESC LIMIT ?3",
        )?
        .query_map(
            params![id, before.unwrap_or(i64::MAX), i64::from(limit) + 1],
            revision_from_row,
        )?
        .collect::<super::sql::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Makes version `revision` of post `id` current again, as a new revision (the version it
/// replaces is kept like any other). 404 for an unknown post or revision, 403 for another
/// user's post, 412 when `if_match` does not admit the post, 409 when the version's slug is
/// now held by another active post (nothing changed).
pub(super) fn revert(
    tx: &Tx,
    actor: &Actor,
    id: i64,
    revision: i64,
    if_match: &IfMatch,
    limit: RevisionLimit,
) -> StoreResult<VersionedPost> {
    let found = posts::active_by_id(tx, id)?.ok_or_else(|| not_found(id))?;
    if !actor.may_manage(found.post.author_id) {
        return Err(StoreError::forbidden(format!(
            "post {id} belongs to another user"
        )));
    }
    let old = tx
        .query_row(
            "SELECT revision, title, slug, body, saved_at, saved_by_id FROM post_revisions
             WHERE post_id = ?1 AND revision = ?2",
            params![id, revision],
            revision_from_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::not_found(format!("post {id} has no revision {revision}")))?;
    check_if_match(if_match, found.version)?;
    if old.slug != found.post.slug && slug_taken(tx, &old.slug)? {
        return Err(StoreError::conflict(slug_taken_message(old.slug.as_str())));
    }
    tx.execute(
        "UPDATE posts SET title = ?2, slug = ?3, body = ?4, updated_at = ?5,
                          updated_by_id = ?6, revision = revision + 1
         WHERE id = ?1 AND deleted_at IS NULL",
        params![
            id,
            old.title,
            old.slug,
            old.body,
            Timestamp::now(),
            actor.user_id
        ],
    )?;
    let reverted = posts::active_by_id(tx, id)?.ok_or_else(|| not_found(id))?;
    prune(tx, id, reverted.version.revision, limit)?;
    audit::append(
        tx,
        Some(actor.user_id),
        AuditAction::PostRevert,
        &[id],
        &format!("to revision {revision}"),
    )?;
    Ok(reverted)
}
