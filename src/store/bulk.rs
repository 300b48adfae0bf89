//! Bulk operations. Each function runs inside the caller's single IMMEDIATE transaction
//! and either applies every item or returns an error listing every failing item, checked
//! by category (existence → ownership → conflicts; validation happened before).
//!
//! Checks over N items are set-based: the ids or slugs go in as one JSON array bound to
//! `json_each(?1)`, so a check is one statement, not N round trips.

use super::posts::{apply_patch, insert, SlugAllocator};
use super::{Refusal, StoreError, StoreResult};
use crate::clock;
use crate::model::{Actor, ItemError, NewPost, Post, PostPatch};
use rusqlite::{Connection, Transaction};
use std::collections::{HashMap, HashSet};

fn json_array<T: serde::Serialize>(values: &[T]) -> StoreResult<String> {
    serde_json::to_string(values)
        .map_err(|err| StoreError::Internal(format!("encoding ids: {err}")))
}

/// For every value used by more than one item: an error on each such item naming the
/// first index that used it. Linear in the number of items, however they repeat.
pub fn repeated<'a, I>(values: I, field: &'static str, what: &str) -> Vec<ItemError>
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
        .iter()
        .filter_map(|(index, id, value)| {
            let (first, uses) = first_use[value];
            if uses < 2 {
                return None;
            }
            let message = if first == *index {
                format!("{what} '{value}' is used by more than one item of this request")
            } else {
                format!("{what} '{value}' is also used by item {first}")
            };
            Some(ItemError {
                index: Some(*index),
                id: *id,
                field: Some(field),
                message,
            })
        })
        .collect()
}

/// The slugs among `slugs` held by active posts other than `except_id` (by index).
fn slugs_held_by_active_posts(
    conn: &Connection,
    slugs: &[SlugClaim<'_>],
) -> StoreResult<HashSet<usize>> {
    #[derive(serde::Serialize)]
    struct Wanted<'a> {
        at: usize,
        id: i64,
        slug: &'a str,
    }
    let wanted: Vec<Wanted> = slugs
        .iter()
        .map(|(at, id, slug)| Wanted {
            at: *at,
            id: *id,
            slug,
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

fn items_phrase(n: usize) -> String {
    if n == 1 {
        "1 item".into()
    } else {
        format!("{n} items")
    }
}

fn slug_taken_error(index: usize, id: Option<i64>, slug: &str) -> ItemError {
    ItemError {
        index: Some(index),
        id,
        field: Some("slug"),
        message: format!("slug '{slug}' is already used by another post"),
    }
}

/// A slug an item of the request wants: (request index, the post's id or 0 for a new
/// post, slug).
type SlugClaim<'a> = (usize, i64, &'a str);

/// Every item whose slug repeats within the request or is held by an active post other
/// than the item's own; each item once.
fn slug_conflicts(conn: &Connection, claims: &[SlugClaim<'_>]) -> StoreResult<Vec<ItemError>> {
    let id_of = |id: i64| (id > 0).then_some(id);
    let mut errors = repeated(
        claims.iter().map(|(i, id, s)| (*i, id_of(*id), *s)),
        "slug",
        "slug",
    );
    let held = slugs_held_by_active_posts(conn, claims)?;
    let mut listed: HashSet<usize> = errors.iter().filter_map(|e| e.index).collect();
    for (index, id, slug) in claims {
        if held.contains(index) && listed.insert(*index) {
            errors.push(slug_taken_error(*index, id_of(*id), slug));
        }
    }
    Ok(errors)
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

fn refuse_slug_conflicts(conn: &Connection, claims: &[SlugClaim<'_>]) -> StoreResult<()> {
    refuse_conflicts(slug_conflicts(conn, claims)?)
}

/// Creates every post or none. Explicit slugs that an active post holds, or that repeat
/// within the request, are conflicts; derived slugs avoid both.
pub fn create_all(tx: &Transaction, actor: &Actor, items: Vec<NewPost>) -> StoreResult<Vec<Post>> {
    let explicit: Vec<(usize, i64, &str)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| item.slug.as_deref().map(|slug| (i, 0, slug)))
        .collect();
    refuse_slug_conflicts(tx, &explicit)?;

    let mut slugs = SlugAllocator::default();
    for (_, _, slug) in &explicit {
        slugs.reserve(slug);
    }
    let now = clock::now();
    let mut created = Vec::with_capacity(items.len());
    for item in items {
        let slug = match &item.slug {
            Some(explicit) => explicit.clone(),
            None => slugs.derive(tx, &item.title)?,
        };
        created.push(insert(tx, actor.user_id, item, slug, &now)?);
    }
    Ok(created)
}

/// One item's fate in a partial (non-atomic) bulk create.
pub enum PartialOutcome {
    Created(Post),
    Refused { status: u16, errors: Vec<ItemError> },
}

/// Creates the items that can be created; the others are reported with the status they
/// would have had alone (422 invalid, 409 slug taken). Still one transaction.
pub fn create_partial(
    tx: &Transaction,
    actor: &Actor,
    items: Vec<Result<NewPost, Vec<ItemError>>>,
) -> StoreResult<Vec<PartialOutcome>> {
    let explicit: Vec<(usize, i64, &str)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            item.as_ref()
                .ok()
                .and_then(|p| p.slug.as_deref())
                .map(|s| (i, 0, s))
        })
        .collect();
    let held = slugs_held_by_active_posts(tx, &explicit)?;
    // The first item to claim an explicit slug wins it; later claimants conflict.
    let mut claimed: HashMap<String, usize> = HashMap::new();
    let mut refused_slug: HashMap<usize, ItemError> = HashMap::new();
    for (index, _, slug) in &explicit {
        if held.contains(index) {
            refused_slug.insert(*index, slug_taken_error(*index, None, slug));
        } else if let Some(first) = claimed.get(*slug) {
            refused_slug.insert(
                *index,
                ItemError {
                    field: Some("slug"),
                    ..ItemError::item(
                        *index,
                        None,
                        format!("slug '{slug}' is also used by item {first}"),
                    )
                },
            );
        } else {
            claimed.insert((*slug).to_string(), *index);
        }
    }
    let mut slugs = SlugAllocator::default();
    for slug in claimed.keys() {
        slugs.reserve(slug);
    }
    let now = clock::now();
    let mut outcomes = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let outcome = match item {
            Err(errors) => PartialOutcome::Refused {
                status: 422,
                errors: errors.into_iter().map(|e| e.at(index)).collect(),
            },
            Ok(_) if refused_slug.contains_key(&index) => PartialOutcome::Refused {
                status: 409,
                errors: refused_slug.remove(&index).into_iter().collect(),
            },
            Ok(post) => {
                let slug = match &post.slug {
                    Some(explicit) => explicit.clone(),
                    None => slugs.derive(tx, &post.title)?,
                };
                PartialOutcome::Created(insert(tx, actor.user_id, post, slug, &now)?)
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Where each requested id stands: `(index, id, author if active, slug if active)`.
struct ActiveLookup {
    author_id: Option<i64>,
    slug: Option<String>,
}

fn lookup_active(tx: &Transaction, ids: &[i64]) -> StoreResult<Vec<ActiveLookup>> {
    let mut stmt = tx.prepare_cached(
        "SELECT p.author_id, p.slug FROM json_each(?1) AS j
         LEFT JOIN active_posts AS p ON p.id = j.value ORDER BY j.key",
    )?;
    let rows = stmt.query_map([json_array(ids)?], |row| {
        Ok(ActiveLookup {
            author_id: row.get(0)?,
            slug: row.get(1)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Applies every patch or none: 404 for ids not active, 403 for posts the actor may not
/// manage, 409 for slugs another active post holds or two items both set, and for a post
/// that two items both change.
pub fn update_all(
    tx: &Transaction,
    actor: &Actor,
    items: Vec<(i64, PostPatch)>,
) -> StoreResult<Vec<Post>> {
    let ids: Vec<i64> = items.iter().map(|(id, _)| *id).collect();
    let found = lookup_active(tx, &ids)?;

    let missing: Vec<ItemError> = found
        .iter()
        .zip(&ids)
        .enumerate()
        .filter(|(_, (f, _))| f.author_id.is_none())
        .map(|(i, (_, id))| ItemError::item(i, Some(*id), format!("post {id} not found")))
        .collect();
    if !missing.is_empty() {
        let detail = format!("{} not found", posts_phrase(missing.len()));
        return Err(StoreError::items(Refusal::NotFound, detail, missing));
    }
    let foreign: Vec<ItemError> = found
        .iter()
        .zip(&ids)
        .enumerate()
        .filter(|(_, (f, _))| !f.author_id.is_some_and(|author| actor.may_manage(author)))
        .map(|(i, (_, id))| {
            ItemError::item(i, Some(*id), format!("post {id} belongs to another user"))
        })
        .collect();
    if !foreign.is_empty() {
        let detail = format!("{} of other users", posts_phrase(foreign.len()));
        return Err(StoreError::items(Refusal::Forbidden, detail, foreign));
    }

    let new_slugs: Vec<(usize, i64, &str)> = items
        .iter()
        .zip(&found)
        .enumerate()
        .filter_map(|(i, ((id, patch), f))| {
            patch
                .slug
                .as_deref()
                .filter(|s| Some(*s) != f.slug.as_deref())
                .map(|s| (i, *id, s))
        })
        .collect();
    // Two items changing the same post conflict like two items claiming one slug.
    let id_texts: Vec<String> = ids.iter().map(i64::to_string).collect();
    let mut errors = repeated(
        id_texts
            .iter()
            .zip(&ids)
            .enumerate()
            .map(|(i, (text, id))| (i, Some(*id), text.as_str())),
        "id",
        "post",
    );
    let listed: HashSet<usize> = errors.iter().filter_map(|e| e.index).collect();
    errors.extend(
        slug_conflicts(tx, &new_slugs)?
            .into_iter()
            .filter(|e| e.index.is_some_and(|i| !listed.contains(&i))),
    );
    refuse_conflicts(errors)?;

    let now = clock::now();
    let mut updated = Vec::with_capacity(items.len());
    for (id, patch) in &items {
        updated
            .push(apply_patch(tx, *id, patch, &now)?.ok_or_else(|| super::posts::not_found(*id))?);
    }
    Ok(updated)
}

pub struct DeleteOutcome {
    pub deleted: Vec<i64>,
    pub skipped: Vec<i64>,
}

/// Deletes the listed posts (ids given once each). Soft: active posts get `deleted_at`;
/// already-deleted ones keep their first and are skipped. Hard: active and soft-deleted
/// rows go, comments by cascade. Unknown ids are skipped. The caller checked the role.
pub fn delete_all(
    tx: &Transaction,
    actor: &Actor,
    ids: &[i64],
    hard: bool,
) -> StoreResult<DeleteOutcome> {
    let mut stmt = if hard {
        tx.prepare_cached(
            "DELETE FROM posts WHERE id IN (SELECT value FROM json_each(?1)) RETURNING id",
        )?
    } else {
        tx.prepare_cached(
            "UPDATE posts SET deleted_at = ?2, deleted_by_id = ?3
             WHERE deleted_at IS NULL AND id IN (SELECT value FROM json_each(?1)) RETURNING id",
        )?
    };
    let ids_json = json_array(ids)?;
    let done: HashSet<i64> = if hard {
        stmt.query_map([ids_json], |row| row.get(0))?
            .collect::<Result<_, _>>()?
    } else {
        stmt.query_map(
            rusqlite::params![ids_json, clock::now(), actor.user_id],
            |row| row.get(0),
        )?
        .collect::<Result<_, _>>()?
    };
    let (deleted, skipped) = ids.iter().partition(|id| done.contains(id));
    Ok(DeleteOutcome { deleted, skipped })
}

/// Restores every listed post or none: 404 for ids that exist nowhere, 400 for posts that
/// are not deleted, 409 for slugs an active post now holds or two restored posts share.
/// `requested` pairs each id with its position in the request, for the error entries.
pub fn restore_all(tx: &Transaction, requested: &[(usize, i64)]) -> StoreResult<Vec<Post>> {
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
    if !missing.is_empty() {
        let detail = format!("{} not found", posts_phrase(missing.len()));
        return Err(StoreError::items(Refusal::NotFound, detail, missing));
    }
    if !not_deleted.is_empty() {
        let detail = format!("{} not deleted", posts_phrase(not_deleted.len()));
        return Err(StoreError::items(Refusal::BadState, detail, not_deleted));
    }
    let posts: Vec<Post> = found.into_iter().filter_map(|(_, post)| post).collect();
    // Each post keeps its position in the request for the error entries.
    let claims: Vec<SlugClaim> = posts
        .iter()
        .zip(requested)
        .map(|(p, (index, _))| (*index, p.id, p.slug.as_str()))
        .collect();
    refuse_slug_conflicts(tx, &claims)?;

    let mut restore = tx.prepare_cached(
        "UPDATE posts SET deleted_at = NULL, deleted_by_id = NULL
         WHERE deleted_at IS NOT NULL AND id IN (SELECT value FROM json_each(?1))",
    )?;
    restore.execute([json_array(ids)?])?;
    Ok(posts)
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
        let errors = repeated(values, "slug", "slug");
        let indexes: Vec<usize> = errors.iter().filter_map(|e| e.index).collect();
        assert_eq!(indexes, [0, 2, 3]);
        assert!(errors[2].message.contains("item 0"));
    }
}
