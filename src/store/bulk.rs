//! Bulk operations. Each runs in one IMMEDIATE transaction and either applies every item
//! or returns an error listing every failing item, checked by category (existence →
//! ownership → conflicts; validation happened before).
//!
//! Checks over N items are set-based: the ids or slugs go in as one JSON array bound to
//! `json_each(?1)`, so a check is one statement, not N round trips.

use super::audit::{self, AuditAction};
use super::posts::{
    apply_patch, check_if_match, insert_all, slug_taken_message, Created, SlugAllocator,
};
use super::revisions::{self, RevisionLimit};
use super::sql::{params, Conn};
use super::writer::Tx;
use super::{Refusal, Store, StoreError, StoreResult};
use crate::clock::Timestamp;
use crate::model::{Actor, IfMatch, ItemError, NewPost, Post, PostPatch, Slug, Version};
use std::collections::{HashMap, HashSet};

pub(super) fn json_array<T: serde::Serialize>(values: &[T]) -> StoreResult<String> {
    serde_json::to_string(values)
        .map_err(|err| StoreError::Internal(format!("encoding ids: {err}")))
}

/// Where an item's value stands among the items of one request that share it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Repeat {
    /// The first of several items using the value.
    First,
    /// A later item; the first one to use the value is at this index.
    Of(usize),
}

/// For every value used by more than one item: each such item with where it stands.
/// Linear in the number of items, however they repeat.
fn repeats<'a, I>(values: I) -> Vec<(usize, Option<i64>, &'a str, Repeat)>
where
    I: IntoIterator<Item = (usize, Option<i64>, &'a str)>,
{
    let entries: Vec<(usize, Option<i64>, &str)> = values.into_iter().collect();
    let mut first_use: HashMap<&str, (usize, usize)> = HashMap::new();
    for (index, _, value) in &entries {
        first_use
            .entry(value)
            .and_modify(|(_, uses)| *uses += 1)
            .or_insert((*index, 1));
    }
    entries
        .into_iter()
        .filter_map(|(index, id, value)| {
            let (first, uses) = first_use[value];
            let repeat = if first == index {
                Repeat::First
            } else {
                Repeat::Of(first)
            };
            (uses >= 2).then_some((index, id, value, repeat))
        })
        .collect()
}

/// The error entry of an item whose `what` (named `field`) repeats within the request.
fn repeat_error(
    (index, id, value, repeat): (usize, Option<i64>, &str, Repeat),
    field: &'static str,
    what: &str,
) -> ItemError {
    let message = match repeat {
        Repeat::First => format!("{what} '{value}' is used by more than one item of this request"),
        Repeat::Of(first) => format!("{what} '{value}' is also used by item {first}"),
    };
    ItemError::item(index, id, message).on(field)
}

/// The slugs among `claims` held by active posts other than the claiming post (by index).
fn slugs_held_by_active_posts(
    conn: &Conn,
    claims: &[SlugClaim<'_>],
) -> StoreResult<HashSet<usize>> {
    #[derive(serde::Serialize)]
    struct Wanted<'a> {
        at: usize,
        id: i64,
        slug: &'a str,
    }
    let wanted: Vec<Wanted> = claims
        .iter()
        .map(|claim| Wanted {
            at: claim.index,
            id: claim.post_id.unwrap_or(0),
            slug: claim.slug.as_str(),
        })
        .collect();
    let mut stmt = conn.prepare_cached(
        "SELECT w.value ->> 'at' FROM json_each(?1) AS w
         JOIN active_posts AS p ON p.slug = w.value ->> 'slug' AND p.id <> w.value ->> 'id'",
    )?;
    let rows = stmt.query_map([json_array(&wanted)?], |row| row.get::<_, i64>(0))?;
    let mut held = HashSet::new();
    for row in rows {
        held.insert(row? as usize);
    }
    Ok(held)
}

fn posts_phrase(n: usize) -> String {
    if n == 1 {
        "1 post".into()
    } else {
        format!("{n} posts")
    }
}

/// Refuses with `why`, listing `errors` and saying what those posts are, if any.
fn refuse_posts(why: Refusal, what: &str, errors: Vec<ItemError>) -> StoreResult<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let detail = format!("{} {what}", posts_phrase(errors.len()));
    Err(StoreError::items(why, detail, errors))
}

fn items_phrase(n: usize) -> String {
    if n == 1 {
        "1 item".into()
    } else {
        format!("{n} items")
    }
}

/// A slug an item of the request wants, with the post it is for (none for a new post).
struct SlugClaim<'a> {
    index: usize,
    post_id: Option<i64>,
    slug: &'a Slug,
}

/// Why a claimed slug can not be had.
struct SlugClash {
    index: usize,
    post_id: Option<i64>,
    slug: String,
    repeat: Option<Repeat>,
    held: bool,
}

impl SlugClash {
    fn repeat_error(&self, repeat: Repeat) -> ItemError {
        repeat_error(
            (self.index, self.post_id, &self.slug, repeat),
            "slug",
            "slug",
        )
    }

    fn taken_error(&self) -> ItemError {
        ItemError::item(self.index, self.post_id, slug_taken_message(&self.slug)).on("slug")
    }
}

/// Every claim whose slug repeats within the request or is held by an active post other
/// than the claim's own, in request order, each once.
fn slug_clashes(conn: &Conn, claims: &[SlugClaim<'_>]) -> StoreResult<Vec<SlugClash>> {
    let held = slugs_held_by_active_posts(conn, claims)?;
    let repeated: HashMap<usize, Repeat> =
        repeats(claims.iter().map(|c| (c.index, c.post_id, c.slug.as_str())))
            .into_iter()
            .map(|(index, _, _, repeat)| (index, repeat))
            .collect();
    Ok(claims
        .iter()
        .filter_map(|claim| {
            let repeat = repeated.get(&claim.index).copied();
            let is_held = held.contains(&claim.index);
            (repeat.is_some() || is_held).then(|| SlugClash {
                index: claim.index,
                post_id: claim.post_id,
                slug: claim.slug.to_string(),
                repeat,
                held: is_held,
            })
        })
        .collect())
}

/// All-or-nothing requests refuse every clash; a repeat is named before a held slug.
fn slug_conflicts(conn: &Conn, claims: &[SlugClaim<'_>]) -> StoreResult<Vec<ItemError>> {
    Ok(slug_clashes(conn, claims)?
        .iter()
        .map(|clash| match clash.repeat {
            Some(repeat) => clash.repeat_error(repeat),
            None => clash.taken_error(),
        })
        .collect())
}

/// 409 listing `errors` in request order, if there are any.
fn refuse_conflicts(mut errors: Vec<ItemError>) -> StoreResult<()> {
    if errors.is_empty() {
        return Ok(());
    }
    errors.sort_by_key(|e| e.index);
    let detail = format!(
        "{} conflict with existing posts or with each other",
        items_phrase(errors.len())
    );
    Err(StoreError::items(Refusal::Conflict, detail, errors))
}

fn refuse_slug_conflicts(conn: &Conn, claims: &[SlugClaim<'_>]) -> StoreResult<()> {
    refuse_conflicts(slug_conflicts(conn, claims)?)
}

fn explicit_slugs<'a>(
    items: impl Iterator<Item = (usize, Option<&'a NewPost>)>,
) -> Vec<SlugClaim<'a>> {
    items
        .filter_map(|(index, item)| {
            item.and_then(|post| post.slug.as_ref())
                .map(|slug| SlugClaim {
                    index,
                    post_id: None,
                    slug,
                })
        })
        .collect()
}

/// Creates every post or none. Explicit slugs that an active post holds, or that repeat
/// within the request, are conflicts; derived slugs avoid both.
pub(super) fn create_all(tx: &Tx, actor: &Actor, items: Vec<NewPost>) -> StoreResult<Vec<Post>> {
    let explicit = explicit_slugs(items.iter().enumerate().map(|(i, p)| (i, Some(p))));
    refuse_slug_conflicts(tx, &explicit)?;

    let mut slugs = SlugAllocator::default();
    for claim in &explicit {
        slugs.reserve(claim.slug);
    }
    drop(explicit);
    let mut slugged = Vec::with_capacity(items.len());
    for item in items {
        let slug = slugs.slug_for(tx, &item)?;
        slugged.push((item, slug));
    }
    let detail = format!("requested {}", slugged.len());
    let event = Created {
        actor_id: Some(actor.user_id),
        detail: &detail,
    };
    insert_all(tx, actor.user_id, slugged, &Timestamp::now(), event)
}

/// One item's fate in a partial (non-atomic) bulk create.
pub enum PartialOutcome {
    Created(Post),
    /// `why` is `Invalid` (a field rule) or `Conflict` (its slug is taken).
    Refused {
        why: Refusal,
        errors: Vec<ItemError>,
    },
}

/// Creates the items that can be created; the others are reported with the reason they
/// would have had alone (a field rule, or a slug taken). Still one transaction. The first
/// item to claim an explicit slug wins it; later claimants conflict.
pub(super) fn create_partial(
    tx: &Tx,
    actor: &Actor,
    items: Vec<Result<NewPost, Vec<ItemError>>>,
) -> StoreResult<Vec<PartialOutcome>> {
    let explicit = explicit_slugs(items.iter().enumerate().map(|(i, p)| (i, p.as_ref().ok())));
    let mut refused_slug: HashMap<usize, ItemError> = HashMap::new();
    for clash in slug_clashes(tx, &explicit)? {
        let error = match clash.repeat {
            _ if clash.held => clash.taken_error(),
            Some(later @ Repeat::Of(_)) => clash.repeat_error(later),
            Some(Repeat::First) | None => continue,
        };
        refused_slug.insert(clash.index, error);
    }
    let mut slugs = SlugAllocator::default();
    for claim in explicit
        .iter()
        .filter(|c| !refused_slug.contains_key(&c.index))
    {
        slugs.reserve(claim.slug);
    }
    drop(explicit);
    // Refusals in place; the posts to create in one statement, then back into place.
    let mut outcomes: Vec<Option<PartialOutcome>> = Vec::with_capacity(items.len());
    let mut creating = Vec::new();
    let mut places = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let outcome = match item {
            Err(errors) => Some(PartialOutcome::Refused {
                why: Refusal::Invalid,
                errors: errors.into_iter().map(|e| e.at(index)).collect(),
            }),
            Ok(_) if refused_slug.contains_key(&index) => Some(PartialOutcome::Refused {
                why: Refusal::Conflict,
                errors: refused_slug.remove(&index).into_iter().collect(),
            }),
            Ok(post) => {
                let slug = slugs.slug_for(tx, &post)?;
                creating.push((post, slug));
                places.push(index);
                None
            }
        };
        outcomes.push(outcome);
    }
    let detail = format!("requested {}, created {}", outcomes.len(), creating.len());
    let event = Created {
        actor_id: Some(actor.user_id),
        detail: &detail,
    };
    let created = insert_all(tx, actor.user_id, creating, &Timestamp::now(), event)?;
    for (place, post) in places.into_iter().zip(created) {
        outcomes[place] = Some(PartialOutcome::Created(post));
    }
    Ok(outcomes.into_iter().flatten().collect())
}

/// Where each requested id stands: author, slug and revision if the post is active.
struct ActiveLookup {
    author_id: Option<i64>,
    slug: Option<Slug>,
    revision: Option<i64>,
}

fn lookup_active(tx: &Tx, ids: &[i64]) -> StoreResult<Vec<ActiveLookup>> {
    let mut stmt = tx.prepare_cached(
        "SELECT p.author_id, p.slug, p.revision FROM json_each(?1) AS j
         LEFT JOIN active_posts AS p ON p.id = j.value ORDER BY j.key",
    )?;
    let rows = stmt.query_map([json_array(ids)?], |row| {
        Ok(ActiveLookup {
            author_id: row.get(0)?,
            slug: row.get(1)?,
            revision: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One item of a bulk update: the post, the change, and what the post's version must be.
pub struct PatchItem {
    pub id: i64,
    pub patch: PostPatch,
    pub if_match: IfMatch,
}

/// The items of a bulk update that conflict: two items changing one post (like two
/// items claiming one slug), or a new slug that repeats or that another active post holds.
fn update_conflicts(
    tx: &Tx,
    items: &[PatchItem],
    found: &[ActiveLookup],
) -> StoreResult<Vec<ItemError>> {
    let ids: Vec<i64> = items.iter().map(|item| item.id).collect();
    let new_slugs: Vec<SlugClaim> = items
        .iter()
        .zip(found)
        .enumerate()
        .filter_map(|(index, (item, f))| {
            item.patch
                .slug
                .as_ref()
                .filter(|s| Some(*s) != f.slug.as_ref())
                .map(|slug| SlugClaim {
                    index,
                    post_id: Some(item.id),
                    slug,
                })
        })
        .collect();
    let id_texts: Vec<String> = ids.iter().map(i64::to_string).collect();
    let mut errors: Vec<ItemError> = repeats(
        id_texts
            .iter()
            .zip(&ids)
            .enumerate()
            .map(|(i, (text, id))| (i, Some(*id), text.as_str())),
    )
    .into_iter()
    .map(|repeat| repeat_error(repeat, "id", "post"))
    .collect();
    let listed: HashSet<usize> = errors.iter().filter_map(|e| e.index).collect();
    errors.extend(
        slug_conflicts(tx, &new_slugs)?
            .into_iter()
            .filter(|e| e.index.is_some_and(|i| !listed.contains(&i))),
    );
    Ok(errors)
}

/// Applies every patch or none: 404 for ids not active, 403 for posts the actor may not
/// manage, 412 for posts whose version an item's `if_match` does not admit, 409 for slugs
/// another active post holds or two items both set, and for a post that two items both
/// change.
pub(super) fn update_all(
    tx: &Tx,
    actor: &Actor,
    items: Vec<PatchItem>,
    limit: RevisionLimit,
) -> StoreResult<Vec<Post>> {
    let ids: Vec<i64> = items.iter().map(|item| item.id).collect();
    let found = lookup_active(tx, &ids)?;

    // Each item's error, for the items where `fails` holds.
    let where_ = |fails: &dyn Fn(&ActiveLookup) -> bool, message: &dyn Fn(i64) -> String| {
        found
            .iter()
            .zip(&ids)
            .enumerate()
            .filter(|(_, (f, _))| fails(f))
            .map(|(i, (_, id))| ItemError::item(i, Some(*id), message(*id)))
            .collect::<Vec<_>>()
    };
    refuse_posts(
        Refusal::NotFound,
        "not found",
        where_(&|f| f.author_id.is_none(), &|id| {
            format!("post {id} not found")
        }),
    )?;
    refuse_posts(
        Refusal::Forbidden,
        "of other users",
        where_(
            &|f| !f.author_id.is_some_and(|author| actor.may_manage(author)),
            &|id| format!("post {id} belongs to another user"),
        ),
    )?;

    refuse_posts(
        Refusal::PreconditionFailed,
        "changed since the versions named in if_match",
        stale_items(&items, &found),
    )?;

    refuse_conflicts(update_conflicts(tx, &items, &found)?)?;

    let now = Timestamp::now();
    let mut updated = Vec::with_capacity(items.len());
    for item in &items {
        let changed = apply_patch(tx, actor, item.id, &item.patch, &now)?
            .ok_or_else(|| super::posts::not_found(item.id))?;
        revisions::prune(tx, item.id, changed.version.revision, limit)?;
        updated.push(changed.post);
    }
    let ids: Vec<i64> = updated.iter().map(|post| post.id).collect();
    audit::append(
        tx,
        Some(actor.user_id),
        AuditAction::PostsBulkUpdate,
        &ids,
        &format!("requested {}", ids.len()),
    )?;
    Ok(updated)
}

/// The items whose `if_match` does not admit their post's current version (all of them
/// active and manageable by now).
fn stale_items(items: &[PatchItem], found: &[ActiveLookup]) -> Vec<ItemError> {
    items
        .iter()
        .zip(found)
        .enumerate()
        .filter_map(|(index, (item, f))| {
            let current = Version {
                post_id: item.id,
                revision: f.revision?,
            };
            check_if_match(&item.if_match, current).err().map(|_| {
                ItemError::item(
                    index,
                    Some(item.id),
                    format!("post {} has changed since the version in if_match", item.id),
                )
                .on("if_match")
            })
        })
        .collect()
}

pub struct DeleteOutcome {
    pub deleted: Vec<i64>,
    pub skipped: Vec<i64>,
}

impl DeleteOutcome {
    /// Splits the requested ids by whether the statement changed them.
    fn of(ids: &[i64], done: &HashSet<i64>) -> DeleteOutcome {
        let (deleted, skipped) = ids.iter().partition(|id| done.contains(id));
        DeleteOutcome { deleted, skipped }
    }

    /// The audit detail: how many were asked for and how many skipped.
    fn detail(&self) -> String {
        let requested = self.deleted.len() + self.skipped.len();
        match self.skipped.len() {
            0 => format!("requested {requested}"),
            skipped => format!("requested {requested}, skipped {skipped}"),
        }
    }
}

/// Soft-deletes the listed active posts (ids given once each); already-deleted ones keep
/// their first `deleted_at` and are skipped, like unknown ids. The caller checked the role.
fn soft_delete_all(tx: &Tx, actor: &Actor, ids: &[i64]) -> StoreResult<DeleteOutcome> {
    let done = delete_rows(tx, actor, &json_array(ids)?, false)?;
    let outcome = DeleteOutcome::of(ids, &done);
    audit::append(
        tx,
        Some(actor.user_id),
        AuditAction::PostsBulkDelete,
        &outcome.deleted,
        &outcome.detail(),
    )?;
    Ok(outcome)
}

/// Permanently deletes the listed posts, active or soft-deleted, comments by cascade;
/// unknown ids are skipped. The caller checked the role.
fn hard_delete_all(tx: &Tx, actor: &Actor, ids: &[i64]) -> StoreResult<DeleteOutcome> {
    let done = delete_rows(tx, actor, &json_array(ids)?, true)?;
    let outcome = DeleteOutcome::of(ids, &done);
    audit::append(
        tx,
        Some(actor.user_id),
        AuditAction::PostsBulkDeletePermanent,
        &outcome.deleted,
        &outcome.detail(),
    )?;
    Ok(outcome)
}

/// Deletes the posts whose ids `ids_json` lists, without an audit event (the caller
/// appends its own): soft (active posts only; deleted ones keep their first `deleted_at`)
/// or permanent (active or deleted, comments by cascade). Returns the ids it changed.
pub(super) fn delete_rows(
    tx: &Tx,
    actor: &Actor,
    ids_json: &str,
    hard: bool,
) -> StoreResult<HashSet<i64>> {
    // The ids first, then the change: no RETURNING, which dqlite 1.11 can not run. The
    // write lock is ours, so nothing changes between the two.
    if !hard {
        let done: HashSet<i64> = tx
            .prepare_cached(
                "SELECT id FROM active_posts WHERE id IN (SELECT value FROM json_each(?1))",
            )?
            .query_map([ids_json], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        tx.execute(
            "UPDATE posts SET deleted_at = ?2, deleted_by_id = ?3
             WHERE deleted_at IS NULL AND id IN (SELECT value FROM json_each(?1))",
            params![ids_json, Timestamp::now(), actor.user_id],
        )?;
        return Ok(done);
    }
    let done: HashSet<i64> = tx
        .prepare_cached(
            "SELECT id FROM active_posts WHERE id IN (SELECT value FROM json_each(?1))
             UNION ALL
             SELECT id FROM deleted_posts WHERE id IN (SELECT value FROM json_each(?1))",
        )?
        .query_map([ids_json], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    tx.execute(
        "DELETE FROM posts WHERE id IN (SELECT value FROM json_each(?1))",
        [ids_json],
    )?;
    Ok(done)
}

/// Restores every listed post or none: 404 for ids that exist nowhere, 400 for posts that
/// are not deleted, 409 for slugs an active post now holds or two restored posts share.
/// `requested` pairs each id with its position in the request, for the error entries.
pub(super) fn restore_all(
    tx: &Tx,
    actor: &Actor,
    requested: &[(usize, i64)],
) -> StoreResult<Vec<Post>> {
    let ids: Vec<i64> = requested.iter().map(|(_, id)| *id).collect();
    let ids = ids.as_slice();
    let mut find = tx.prepare_cached(
        "SELECT a.id IS NOT NULL, d.id, d.author_id, d.title, d.slug, d.body, d.created_at, d.updated_at
         FROM json_each(?1) AS j
         LEFT JOIN active_posts AS a ON a.id = j.value
         LEFT JOIN deleted_posts AS d ON d.id = j.value
         ORDER BY j.key",
    )?;
    let rows = find.query_map([json_array(ids)?], |row| {
        let active: bool = row.get(0)?;
        let deleted_id: Option<i64> = row.get(1)?;
        let post = match deleted_id {
            Some(_) => Some(super::posts::post_from_row_at(row, 1)?),
            None => None,
        };
        Ok((active, post))
    })?;
    let found: Vec<(bool, Option<Post>)> = rows.collect::<Result<_, _>>()?;

    let mut missing = Vec::new();
    let mut not_deleted = Vec::new();
    for ((active, post), (index, id)) in found.iter().zip(requested) {
        let index = *index;
        if *active {
            not_deleted.push(ItemError::item(
                index,
                Some(*id),
                format!("post {id} is not deleted"),
            ));
        } else if post.is_none() {
            missing.push(ItemError::item(
                index,
                Some(*id),
                format!("post {id} not found"),
            ));
        }
    }
    refuse_posts(Refusal::NotFound, "not found", missing)?;
    refuse_posts(Refusal::BadState, "not deleted", not_deleted)?;
    let posts: Vec<Post> = found.into_iter().filter_map(|(_, post)| post).collect();
    // Each post keeps its position in the request for the error entries.
    let claims: Vec<SlugClaim> = posts
        .iter()
        .zip(requested)
        .map(|(p, (index, _))| SlugClaim {
            index: *index,
            post_id: Some(p.id),
            slug: &p.slug,
        })
        .collect();
    refuse_slug_conflicts(tx, &claims)?;

    // Each restore is a new revision, as a single restore is (a client's ETag changes).
    let mut restore = tx.prepare_cached(
        "UPDATE posts SET deleted_at = NULL, deleted_by_id = NULL, revision = revision + 1
         WHERE deleted_at IS NOT NULL AND id IN (SELECT value FROM json_each(?1))",
    )?;
    restore.execute([json_array(ids)?])?;
    audit::append(
        tx,
        Some(actor.user_id),
        AuditAction::PostsBulkRestore,
        ids,
        &format!("requested {}", ids.len()),
    )?;
    Ok(posts)
}

pub(super) fn delete_posts(
    store: &Store,
    actor: &Actor,
    ids: &[i64],
    hard: bool,
) -> StoreResult<DeleteOutcome> {
    if hard {
        store.write_alone(|tx| hard_delete_all(tx, actor, ids))
    } else {
        store.write_alone(|tx| soft_delete_all(tx, actor, ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_name_the_first_index_once_per_item() {
        let values = [
            (0, None, "a"),
            (1, None, "b"),
            (2, None, "a"),
            (3, None, "a"),
        ];
        let errors: Vec<ItemError> = repeats(values)
            .into_iter()
            .map(|r| repeat_error(r, "slug", "slug"))
            .collect();
        let indexes: Vec<usize> = errors.iter().filter_map(|e| e.index).collect();
        assert_eq!(indexes, [0, 2, 3]);
        assert!(errors[2].message.contains("item 0"));
    }
}
