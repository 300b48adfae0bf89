//! Posts: reads through `active_posts` (ordinary) and `deleted_posts` (trash, restore);
//! writes to the `posts` table.

use super::audit::{self, AuditAction};
use super::revisions::{self, RevisionLimit};
use super::sql::ToSql;
use super::sql::{params, Conn, OptionalExtension, Row};
use super::writer::Tx;
use super::{Refusal, Store, StoreError, StoreResult};
use crate::clock::Timestamp;
use crate::model::{
    slug_base, slug_candidate, Actor, Deletion, IfMatch, NewPost, Post, PostPatch, Slug, Title,
    Version, VersionedPost,
};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

const POST_COLUMNS: &str = "id, author_id, title, slug, body, created_at, updated_at";
/// The post columns and the revision, for the reads and writes that answer with a version.
const VERSIONED_COLUMNS: &str =
    "id, author_id, title, slug, body, created_at, updated_at, revision";

fn post_from_row(row: &Row<'_>) -> super::sql::Result<Post> {
    post_from_row_at(row, 0)
}

/// Reads the seven post columns starting at column `at`.
pub(super) fn post_from_row_at(row: &Row<'_>, at: usize) -> super::sql::Result<Post> {
    Ok(Post {
        id: row.get(at)?,
        author_id: row.get(at + 1)?,
        title: row.get(at + 2)?,
        slug: row.get(at + 3)?,
        body: row.get(at + 4)?,
        created_at: row.get(at + 5)?,
        updated_at: row.get(at + 6)?,
        deletion: None,
    })
}

fn trashed_post_from_row(row: &Row<'_>) -> super::sql::Result<Post> {
    let mut post = post_from_row(row)?;
    post.deletion = Some(Deletion {
        deleted_at: row.get(7)?,
        deleted_by_id: row.get(8)?,
    });
    Ok(post)
}

/// The post columns, then the revision at column `revision_at`.
fn versioned_from_row(
    row: &Row<'_>,
    post: Post,
    revision_at: usize,
) -> super::sql::Result<VersionedPost> {
    Ok(VersionedPost {
        version: Version {
            post_id: post.id,
            revision: row.get(revision_at)?,
        },
        post,
    })
}

fn active_versioned_from_row(row: &Row<'_>) -> super::sql::Result<VersionedPost> {
    versioned_from_row(row, post_from_row(row)?, 7)
}

pub(super) fn active_by_id(conn: &Conn, id: i64) -> StoreResult<Option<VersionedPost>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERSIONED_COLUMNS} FROM active_posts WHERE id = ?1"
    ))?;
    Ok(stmt.query_row([id], active_versioned_from_row).optional()?)
}

fn deleted_by_id(conn: &Conn, id: i64) -> StoreResult<Option<VersionedPost>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {POST_COLUMNS}, deleted_at, deleted_by_id, revision FROM deleted_posts WHERE id = ?1"
    ))?;
    let from_row = |row: &Row<'_>| versioned_from_row(row, trashed_post_from_row(row)?, 9);
    Ok(stmt.query_row([id], from_row).optional()?)
}

pub(super) fn active_by_slug(conn: &Conn, slug: &str) -> StoreResult<Option<VersionedPost>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERSIONED_COLUMNS} FROM active_posts WHERE slug = ?1"
    ))?;
    Ok(stmt
        .query_row([slug], active_versioned_from_row)
        .optional()?)
}

/// Is `slug` held by an active post? Soft-deleted posts hold no slug.
pub(super) fn slug_taken(conn: &Conn, slug: &Slug) -> StoreResult<bool> {
    let mut stmt =
        conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM active_posts WHERE slug = ?1)")?;
    Ok(stmt.query_row([slug], |row| row.get(0))?)
}

/// A post wherever it is, for the operations that work on both sides (permanent delete,
/// restore).
enum Located {
    Active(VersionedPost),
    Deleted(VersionedPost),
}

fn locate(conn: &Conn, id: i64) -> StoreResult<Option<Located>> {
    if let Some(post) = active_by_id(conn, id)? {
        return Ok(Some(Located::Active(post)));
    }
    Ok(deleted_by_id(conn, id)?.map(Located::Deleted))
}

pub fn not_found(id: i64) -> StoreError {
    StoreError::not_found(format!("post {id} not found"))
}

pub(super) fn slug_taken_message(slug: &str) -> String {
    format!("slug '{slug}' is already used by another post")
}

fn slug_conflict(slug: &str) -> StoreError {
    StoreError::conflict(slug_taken_message(slug))
}

/// 412 unless `if_match` admits the post's current version. Callers check existence and
/// ownership first, and run this in the transaction that makes the change, so no other
/// writer can change the post between the check and the write.
pub(super) fn check_if_match(if_match: &IfMatch, current: Version) -> StoreResult<()> {
    if if_match.admits(current) {
        return Ok(());
    }
    Err(StoreError::refused(
        Refusal::PreconditionFailed,
        format!(
            "post {} has changed since the version named in If-Match; read it again",
            current.post_id
        ),
    ))
}

/// Hands out derived slugs: the first free of `base`, `base-2`, `base-3`… that neither an
/// active post nor an earlier item of the same request holds. Remembers where each base
/// got to, so a batch of N equal titles costs N lookups, not N².
#[derive(Default)]
pub(super) struct SlugAllocator {
    reserved: HashSet<Slug>,
    next_suffix: HashMap<Slug, u64>,
}

impl SlugAllocator {
    /// Marks an explicit slug as used by this request.
    pub fn reserve(&mut self, slug: &Slug) {
        self.reserved.insert(slug.clone());
    }

    /// Claims an explicit slug for a post not yet inserted, as a single create would:
    /// `false` when an active post or an earlier claim of this transaction holds it.
    pub fn claim(&mut self, conn: &Conn, slug: &Slug) -> StoreResult<bool> {
        if self.reserved.contains(slug) || slug_taken(conn, slug)? {
            return Ok(false);
        }
        self.reserve(slug);
        Ok(true)
    }

    pub fn derive(&mut self, conn: &Conn, title: &Title) -> StoreResult<Slug> {
        self.derive_avoiding(title, |candidate| slug_taken(conn, candidate))
    }

    /// `derive`, where `taken` says which candidates are held (an import's dry run also
    /// counts the slugs its earlier lines would have taken).
    pub fn derive_avoiding(
        &mut self,
        title: &Title,
        mut taken: impl FnMut(&Slug) -> StoreResult<bool>,
    ) -> StoreResult<Slug> {
        let base = slug_base(title);
        let mut n = self.next_suffix.get(&base).copied().unwrap_or(1);
        loop {
            let candidate = slug_candidate(&base, n);
            n += 1;
            if !self.reserved.contains(&candidate) && !taken(&candidate)? {
                self.next_suffix.insert(base, n);
                self.reserved.insert(candidate.clone());
                return Ok(candidate);
            }
        }
    }

    /// Readies the allocator for the next transaction of a long run (an import): the
    /// reservations belonged to the transaction that ended; the suffix hints stay, so N
    /// equal titles spread over many transactions still cost N lookups, not N² — up to
    /// `max_hints` bases, to keep memory bounded. A hint skips suffixes that were taken
    /// when it was made: one freed since (a soft delete in between) is not reused.
    pub fn next_transaction(&mut self, max_hints: usize) {
        self.reserved.clear();
        if self.next_suffix.len() > max_hints {
            self.next_suffix.clear();
        }
    }

    /// The explicit slug if the post has one, else a derived one.
    pub fn slug_for(&mut self, conn: &Conn, post: &NewPost) -> StoreResult<Slug> {
        match &post.slug {
            Some(explicit) => Ok(explicit.clone()),
            None => self.derive(conn, &post.title),
        }
    }
}

/// Inserts one post whose slug is already decided. Used by single and bulk create.
pub(super) fn insert_post(
    tx: &Tx,
    author_id: i64,
    post: NewPost,
    slug: Slug,
    now: &Timestamp,
) -> StoreResult<Post> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO posts (author_id, title, slug, body, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let created_at = post.created_at.as_ref().unwrap_or(now);
    let id = match stmt.insert(params![
        author_id, post.title, slug, post.body, created_at, now
    ]) {
        Ok(id) => id,
        Err(err) if err.is_unique_violation() => return Err(slug_conflict(slug.as_str())),
        Err(err) => return Err(err.into()),
    };
    Ok(just_inserted(id, author_id, post, slug, now))
}

/// The post as just inserted.
fn just_inserted(id: i64, author_id: i64, post: NewPost, slug: Slug, now: &Timestamp) -> Post {
    Post {
        id,
        author_id,
        title: post.title,
        slug,
        body: post.body,
        created_at: post.created_at.unwrap_or_else(|| now.clone()),
        updated_at: now.clone(),
        deletion: None,
    }
}

/// Rows per INSERT statement of `insert_all`.
const INSERT_CHUNK: usize = 1000;

/// Inserts many posts whose slugs are already decided, in request order, a thousand per
/// statement: every statement that writes `posts` opens a statement savepoint, and FTS5
/// writes its pending index terms to disk at every savepoint, so one INSERT per post
/// flushed the full-text index once per post (most of a bulk create's 4 KiB allocations,
/// per `perf`). A thousand rows a statement flush it 10 times for 10,000 posts; the rows
/// travel as one JSON array per statement, so memory stays a small multiple of a chunk.
pub(super) fn insert_all(
    tx: &Tx,
    author_id: i64,
    posts: Vec<(NewPost, Slug)>,
    now: &Timestamp,
    event: Created<'_>,
) -> StoreResult<Vec<Post>> {
    let ids = insert_rows(tx, author_id, &posts, now, event)?;
    Ok(posts
        .into_iter()
        .zip(ids)
        .map(|((post, slug), id)| just_inserted(id, author_id, post, slug, now))
        .collect())
}

/// Inserts posts whose slugs are already decided, a statement per as many rows as the
/// connection binds parameters for (1,000 locally; 84 on a dqlite cluster, which binds 255),
/// and returns their ids in the order given (they are consecutive: the write lock is ours).
/// Bulk create and `postd import` both write their posts through here. The rows' values
/// are bound as parameters of a `VALUES` list rather than sent as one JSON array for
/// `json_each`: a million-line import took 19% longer the JSON way.
/// The posts are one event of the change feed (`posts.bulk_create`, actor and detail
/// given), appended here, on the same transaction.
pub(super) fn insert_rows(
    tx: &Tx,
    author_id: i64,
    posts: &[(NewPost, Slug)],
    now: &Timestamp,
    event: Created<'_>,
) -> StoreResult<Vec<i64>> {
    let per_statement = ((tx.max_params() - 2) / 4).min(INSERT_CHUNK);
    let mut ids = Vec::with_capacity(posts.len());
    for rows in posts.chunks(per_statement) {
        let last = insert_statement(tx, author_id, rows, now)?;
        let first = last - rows.len() as i64 + 1;
        ids.extend(first..=last);
    }
    audit::append(
        tx,
        event.actor_id,
        AuditAction::PostsBulkCreate,
        &ids,
        event.detail,
    )?;
    Ok(ids)
}

/// Who created posts in bulk, and the event's detail.
#[derive(Clone, Copy)]
pub(super) struct Created<'a> {
    pub actor_id: Option<i64>,
    pub detail: &'a str,
}

/// One multi-row INSERT; returns the last row's id.
fn insert_statement(
    tx: &Tx,
    author_id: i64,
    posts: &[(NewPost, Slug)],
    now: &Timestamp,
) -> StoreResult<i64> {
    let mut sql = String::with_capacity(96 + posts.len() * 24);
    sql.push_str(
        "INSERT INTO posts (author_id, title, slug, body, created_at, updated_at) VALUES ",
    );
    let mut values: Vec<&dyn ToSql> = Vec::with_capacity(2 + posts.len() * 4);
    values.push(&author_id);
    values.push(now);
    for (i, (post, slug)) in posts.iter().enumerate() {
        let at = 3 + i * 4;
        if i > 0 {
            sql.push(',');
        }
        // Placeholders only: every value is bound.
        let _ = write!(
            sql,
            "(?1, ?{at}, ?{}, ?{}, ?{}, ?2)",
            at + 1,
            at + 2,
            at + 3
        );
        values.push(&post.title);
        values.push(slug);
        values.push(&post.body);
        values.push(post.created_at.as_ref().unwrap_or(now));
    }
    match tx.prepare_cached(&sql)?.execute(values.as_slice()) {
        Ok(inserted) if inserted == posts.len() => Ok(tx.last_insert_rowid()),
        Ok(inserted) => Err(StoreError::Internal(format!(
            "inserted {inserted} posts of {}",
            posts.len()
        ))),
        // Slugs were checked in this transaction; only a writer of another process can
        // have taken one since.
        Err(err) if err.is_unique_violation() => Err(StoreError::conflict(
            "a slug of this request was taken by another post meanwhile; nothing was created",
        )),
        Err(err) => Err(err.into()),
    }
}

pub(super) fn create(tx: &Tx, actor: &Actor, post: NewPost) -> StoreResult<Post> {
    if let Some(explicit) = &post.slug {
        if slug_taken(tx, explicit)? {
            return Err(slug_conflict(explicit.as_str()));
        }
    }
    let slug = SlugAllocator::default().slug_for(tx, &post)?;
    let created = insert_post(tx, actor.user_id, post, slug, &Timestamp::now())?;
    audit::append(
        tx,
        Some(actor.user_id),
        AuditAction::PostCreate,
        &[created.id],
        &format!("slug {}", created.slug),
    )?;
    Ok(created)
}

/// Query for the public list. `words` are already split search words (AND-ed).
pub struct ListQuery<'a> {
    pub limit: u32,
    pub before_id: Option<i64>,
    pub author_id: Option<i64>,
    pub words: &'a [String],
}

/// Builds an FTS5 query that treats every word as a plain token: each word becomes a
/// quoted string, so operators and punctuation in user input are never syntax.
pub(super) fn fts_query(words: &[String]) -> String {
    let mut query = String::new();
    for word in words {
        if !query.is_empty() {
            query.push(' ');
        }
        query.push('"');
        query.push_str(&word.replace('"', "\"\""));
        query.push('"');
    }
    query
}

/// Up to `limit + 1` active posts, newest first: the extra row tells the caller whether a
/// next page exists.
pub(super) fn list_active(conn: &Conn, query: &ListQuery<'_>) -> StoreResult<Vec<Post>> {
    // Four fixed statements rather than one with "?x IS NULL OR …" branches, which would
    // stop SQLite from using the author index or the FTS index.
    const BASE: &str = "SELECT id, author_id, title, slug, body, created_at, updated_at
                        FROM active_posts WHERE id < ?1";
    const BY_AUTHOR: &str = " AND author_id = ?3";
    const MATCHING: &str = " AND id IN (SELECT rowid FROM posts_fts WHERE posts_fts MATCH ?4)";
    const ORDER: &str = " ORDER BY id DESC LIMIT ?2";
    let before = query.before_id.unwrap_or(i64::MAX);
    let fetch = i64::from(query.limit) + 1;
    let sql = match (query.author_id.is_some(), !query.words.is_empty()) {
        (false, false) => [BASE, ORDER].concat(),
        (true, false) => [BASE, BY_AUTHOR, ORDER].concat(),
        (false, true) => [BASE, MATCHING, ORDER].concat(),
        (true, true) => [BASE, BY_AUTHOR, MATCHING, ORDER].concat(),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let author = query.author_id.unwrap_or(0);
    let rows = match (query.author_id.is_some(), !query.words.is_empty()) {
        (false, false) => stmt.query_map(params![before, fetch], post_from_row)?,
        (true, false) => stmt.query_map(params![before, fetch, author], post_from_row)?,
        // With words the statement numbers up to ?4; an unused ?3 may be bound harmlessly.
        (_, true) => stmt.query_map(
            params![before, fetch, author, fts_query(query.words)],
            post_from_row,
        )?,
    };
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Posts on each side of the trash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostCounts {
    pub active: i64,
    pub trashed: i64,
}

/// Where a trash page starts: after the post deleted at `deleted_at` with this `id`.
pub struct TrashCursor {
    pub deleted_at: Timestamp,
    pub id: i64,
}

/// A page of the trash: most recently deleted first, after `after` when given, only one
/// author's posts and only posts matching every search word when asked.
pub struct TrashQuery<'a> {
    pub limit: u32,
    pub after: Option<TrashCursor>,
    pub author_id: Option<i64>,
    pub words: &'a [String],
}

/// Up to `limit + 1` soft-deleted posts, most recently deleted first, for `query` with
/// its author filter replaced by `author_id`.
fn list_trash(
    conn: &Conn,
    author_id: Option<i64>,
    query: &TrashQuery<'_>,
) -> StoreResult<Vec<Post>> {
    // Fixed statements per filter, as for the public list, so each can use its index.
    const BASE: &str = "SELECT id, author_id, title, slug, body, created_at, updated_at,
                               deleted_at, deleted_by_id
                        FROM deleted_posts WHERE (deleted_at, id) < (?1, ?2)";
    const BY_AUTHOR: &str = " AND author_id = ?4";
    const MATCHING: &str = " AND id IN (SELECT rowid FROM posts_fts WHERE posts_fts MATCH ?5)";
    const ORDER: &str = " ORDER BY deleted_at DESC, id DESC LIMIT ?3";
    let fetch = i64::from(query.limit) + 1;
    // "~" sorts after every timestamp, so the first page starts above all of them.
    let (after_at, after_id) = match &query.after {
        Some(c) => (c.deleted_at.as_str(), c.id),
        None => ("~", i64::MAX),
    };
    let searching = !query.words.is_empty();
    let sql = match (author_id.is_some(), searching) {
        (false, false) => [BASE, ORDER].concat(),
        (true, false) => [BASE, BY_AUTHOR, ORDER].concat(),
        (false, true) => [BASE, MATCHING, ORDER].concat(),
        (true, true) => [BASE, BY_AUTHOR, MATCHING, ORDER].concat(),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let author = author_id.unwrap_or(0);
    let rows = match (author_id.is_some(), searching) {
        (false, false) => {
            stmt.query_map(params![after_at, after_id, fetch], trashed_post_from_row)?
        }
        (true, false) => stmt.query_map(
            params![after_at, after_id, fetch, author],
            trashed_post_from_row,
        )?,
        // With words the statement numbers up to ?5; an unused ?4 may be bound harmlessly.
        (_, true) => stmt.query_map(
            params![after_at, after_id, fetch, author, fts_query(query.words)],
            trashed_post_from_row,
        )?,
    };
    Ok(rows.collect::<Result<_, _>>()?)
}

fn belongs_to_another(id: i64) -> StoreError {
    StoreError::forbidden(format!("post {id} belongs to another user"))
}

/// The active post `id` if the actor may manage it and `if_match` admits it: 404, 403,
/// 412, in that order.
fn managed_active_post(
    tx: &Tx,
    actor: &Actor,
    id: i64,
    if_match: &IfMatch,
) -> StoreResult<VersionedPost> {
    let found = active_by_id(tx, id)?.ok_or_else(|| not_found(id))?;
    if !actor.may_manage(found.post.author_id) {
        return Err(belongs_to_another(id));
    }
    check_if_match(if_match, found.version)?;
    Ok(found)
}

pub(super) fn update(
    tx: &Tx,
    actor: &Actor,
    id: i64,
    patch: PostPatch,
    if_match: &IfMatch,
    limit: RevisionLimit,
) -> StoreResult<VersionedPost> {
    let found = managed_active_post(tx, actor, id, if_match)?;
    if let Some(slug) = &patch.slug {
        if *slug != found.post.slug && slug_taken(tx, slug)? {
            return Err(slug_conflict(slug.as_str()));
        }
    }
    let updated =
        apply_patch(tx, actor, id, &patch, &Timestamp::now())?.ok_or_else(|| not_found(id))?;
    revisions::prune(tx, id, updated.version.revision, limit)?;
    audit::append(
        tx,
        Some(actor.user_id),
        AuditAction::PostUpdate,
        &[id],
        &format!("slug {}", updated.post.slug),
    )?;
    Ok(updated)
}

/// Writes a checked patch by `actor`, counting a new revision (the schema's trigger keeps
/// the version it replaces); `None` if the post is not active.
pub(super) fn apply_patch(
    tx: &Tx,
    actor: &Actor,
    id: i64,
    patch: &PostPatch,
    now: &Timestamp,
) -> StoreResult<Option<VersionedPost>> {
    let changed = tx.execute(
        "UPDATE posts SET title = coalesce(?2, title), body = coalesce(?3, body),
                          slug = coalesce(?4, slug), updated_at = ?5, updated_by_id = ?6,
                          revision = revision + 1
         WHERE id = ?1 AND deleted_at IS NULL",
        params![id, patch.title, patch.body, patch.slug, now, actor.user_id],
    );
    // Read back, not RETURNING: dqlite 1.11 can not run it.
    match changed {
        Ok(0) => Ok(None),
        Ok(_) => active_by_id(tx, id),
        Err(err) if err.is_unique_violation() => Err(slug_conflict(
            patch.slug.as_ref().map(Slug::as_str).unwrap_or_default(),
        )),
        Err(err) => Err(err.into()),
    }
}

pub(super) fn soft_delete(tx: &Tx, actor: &Actor, id: i64, if_match: &IfMatch) -> StoreResult<()> {
    let post = managed_active_post(tx, actor, id, if_match)?.post;
    let mut stmt = tx.prepare_cached(
        "UPDATE posts SET deleted_at = ?2, deleted_by_id = ?3 WHERE id = ?1 AND deleted_at IS NULL",
    )?;
    stmt.execute(params![id, Timestamp::now(), actor.user_id])?;
    let detail = format!("slug {}", post.slug);
    audit::append(
        tx,
        Some(actor.user_id),
        AuditAction::PostDelete,
        &[id],
        &detail,
    )
}

pub(super) fn hard_delete(tx: &Tx, actor: &Actor, id: i64, if_match: &IfMatch) -> StoreResult<()> {
    let (found, detail) = match locate(tx, id)? {
        Some(Located::Active(found)) => {
            let detail = format!("slug {}", found.post.slug);
            (found, detail)
        }
        Some(Located::Deleted(found)) => {
            let detail = format!("slug {}, from the trash", found.post.slug);
            (found, detail)
        }
        None => return Err(not_found(id)),
    };
    if !actor.may_manage(found.post.author_id) {
        return Err(belongs_to_another(id));
    }
    check_if_match(if_match, found.version)?;
    let mut stmt = tx.prepare_cached("DELETE FROM posts WHERE id = ?1")?;
    stmt.execute([id])?;
    audit::append(
        tx,
        Some(actor.user_id),
        AuditAction::PostDeletePermanent,
        &[id],
        &detail,
    )
}

/// Brings a soft-deleted post back, as a new revision. The caller has checked that the
/// actor is an admin. 404, then If-Match (412), then "not deleted" (400), then the slug (409).
/// Until when `actor` may undo the soft delete of `post` themselves: its author, who
/// deleted it, within `owner_undo` of the delete; `None` when they may not (any more).
pub fn undo_until(
    post: &Post,
    actor: &Actor,
    owner_undo: Option<std::time::Duration>,
) -> Option<Timestamp> {
    let window = owner_undo.filter(|w| !w.is_zero())?;
    let deletion = post.deletion.as_ref()?;
    let theirs = post.author_id == actor.user_id && deletion.deleted_by_id == Some(actor.user_id);
    let until = deletion.deleted_at.plus(window);
    (theirs && until > Timestamp::now()).then_some(until)
}

/// Restores a soft-deleted post: an admin's any, or (with `owner_undo`) a post its author
/// deleted themselves, within that long of its deletion.
pub(super) fn restore(
    tx: &Tx,
    actor: &Actor,
    id: i64,
    if_match: &IfMatch,
    owner_undo: Option<std::time::Duration>,
) -> StoreResult<VersionedPost> {
    let (found, deleted) = match locate(tx, id)? {
        None => return Err(not_found(id)),
        Some(Located::Active(found)) => (found, false),
        Some(Located::Deleted(found)) => (found, true),
    };
    if !actor.is_admin() && undo_until(&found.post, actor, owner_undo).is_none() {
        return Err(StoreError::forbidden(
            "only an admin can restore this post (an author can undo their own delete only \
             for a while after it, when the server allows it)",
        ));
    }
    check_if_match(if_match, found.version)?;
    if !deleted {
        return Err(StoreError::refused(
            Refusal::BadState,
            format!("post {id} is not deleted"),
        ));
    }
    let post = found.post;
    if slug_taken(tx, &post.slug)? {
        return Err(StoreError::conflict(format!(
            "post {id} can not be restored: its slug '{}' is now used by another post",
            post.slug
        )));
    }
    tx.execute(
        "UPDATE posts SET deleted_at = NULL, deleted_by_id = NULL, revision = revision + 1
         WHERE id = ?1 AND deleted_at IS NOT NULL",
        [id],
    )?;
    let revision: i64 = tx.query_row(
        "SELECT revision FROM active_posts WHERE id = ?1",
        [id],
        |row| row.get(0),
    )?;
    let detail = format!("slug {}", post.slug);
    audit::append(
        tx,
        Some(actor.user_id),
        AuditAction::PostRestore,
        &[id],
        &detail,
    )?;
    Ok(VersionedPost {
        version: Version {
            post_id: id,
            revision,
        },
        post: Post {
            deletion: None,
            ..post
        },
    })
}

pub(super) fn trash(
    store: &Store,
    actor: &Actor,
    query: &TrashQuery<'_>,
) -> StoreResult<Vec<Post>> {
    let author_id = match query.author_id {
        _ if actor.is_admin() => query.author_id,
        Some(other) if other != actor.user_id => return Ok(Vec::new()),
        _ => Some(actor.user_id),
    };
    store.read(|conn| list_trash(conn, author_id, query))
}

pub(super) fn post_counts(store: &Store) -> StoreResult<PostCounts> {
    store.snapshot(|conn| {
        let mut active = conn.prepare_cached("SELECT count(*) FROM active_posts")?;
        let mut trashed = conn.prepare_cached("SELECT count(*) FROM deleted_posts")?;
        Ok(PostCounts {
            active: active.query_row((), |row| row.get(0))?,
            trashed: trashed.query_row((), |row| row.get(0))?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PostBody, Role, Username};
    use crate::store::testing::TempStore;
    use crate::store::users;

    fn author(t: &TempStore) -> Actor {
        let user = t
            .store
            .write(|tx| users::insert(tx, &Username::parse("alice").unwrap(), "h", Role::User))
            .unwrap();
        Actor {
            user_id: user.id,
            role: Role::User,
        }
    }

    fn new_post(title: &str, slug: Option<&str>) -> NewPost {
        NewPost {
            created_at: None,
            title: Title::normalize(title).unwrap(),
            body: PostBody::parse("b").unwrap(),
            slug: slug.map(|s| Slug::parse(s).unwrap()),
        }
    }

    #[test]
    fn search_treats_operators_as_text() {
        let t = TempStore::new("fts");
        let actor = author(&t);
        t.store
            .write(|tx| create(tx, &actor, new_post("NEAR the AND of it", None)))
            .unwrap();
        for words in [
            vec!["near".to_string()],
            vec!["\"".into()],
            vec!["AND".into(), "OR".into()],
        ] {
            let q = ListQuery {
                limit: 10,
                before_id: None,
                author_id: Some(actor.user_id),
                words: &words,
            };
            t.store.list_posts(&q).unwrap();
            let q = ListQuery {
                limit: 10,
                before_id: None,
                author_id: None,
                words: &words,
            };
            t.store.list_posts(&q).unwrap();
        }
    }

    #[test]
    fn derived_slugs_skip_taken_ones_in_order() {
        let t = TempStore::new("slugs");
        let actor = author(&t);
        let slugs: Vec<Slug> = (0..3)
            .map(|_| {
                t.store
                    .write(|tx| create(tx, &actor, new_post("Same Title", None)))
                    .unwrap()
                    .slug
            })
            .collect();
        assert_eq!(slugs, ["same-title", "same-title-2", "same-title-3"]);
    }
}
