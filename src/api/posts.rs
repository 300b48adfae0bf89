//! `/posts`, `/posts/{id}`, `/posts/by-slug/{slug}`, `/posts/{id}/restore`, `/trash`.

use super::auth::{actor, admin};
use super::call::{no_content, Call, Page};
use super::conditional;
use super::idempotent::{idempotency_key, once_key, recorded, written_response};
use super::input::{query_error, read_json_body, Query};
use super::paging::{self, NextPage};
use super::problem::ApiError;
use crate::clock::Timestamp;
use crate::json::post::{new_post, patch_from, NEW_POST_FIELDS};
use crate::model::Post;
use crate::store::{undo_until, ListQuery, Revision, TrashQuery};
use rouille::Response;

pub fn create(call: &Call<'_>) -> Result<Response, ApiError> {
    let actor = actor(call)?;
    let key = idempotency_key(call)?;
    let body = read_json_body(call.request, call.app.max_body)?;
    let new_post =
        new_post(crate::json::object_in(&body, NEW_POST_FIELDS)?).map_err(ApiError::invalid)?;
    let once = once_key(call, actor.user_id, key, body.as_bytes());
    let mut written = call
        .app
        .store
        .create_post(&actor, new_post, once.as_ref(), |post| recorded(201, post))?;
    // A replay has only the recorded answer: its Location comes from the post in it.
    let id = match written.made.take() {
        Some(post) => Some(post.id),
        None => serde_json::from_slice::<IdOnly>(&written.answer.body)
            .ok()
            .filter(|_| written.answer.status == 201)
            .map(|post| post.id),
    };
    let response = written_response(written);
    let location = id.map(|id| format!("/posts/{id}"));
    Ok(match location {
        Some(location) => response.with_additional_header("Location", location),
        None => response,
    })
}

#[derive(serde::Deserialize)]
struct IdOnly {
    id: i64,
}

pub fn list(call: &Call<'_>) -> Result<Response, ApiError> {
    let query = Query::parse(call.request)?;
    let limit = query.limit()?;
    let before_id = paging::id_cursor(&query)?;
    let author_id = query.positive_id("author_id")?;
    let q = query.get("q")?;
    let words = search_words(q)?;
    let rows = call.app.store.list_posts(&ListQuery {
        limit,
        before_id,
        author_id,
        words: &words,
    })?;
    let page = Page::from_rows(rows, limit, |post: &Post| paging::after_id(post.id));
    let next = NextPage::at("/posts")
        .filter("q", q)
        .filter("author_id", author_id.map(|id| id.to_string()).as_deref());
    paging::page_response(&page, limit, next)
}

/// `q` as search words (model::search_words); absent, none.
fn search_words(q: Option<&str>) -> Result<Vec<String>, ApiError> {
    q.map_or(Ok(Vec::new()), |q| {
        crate::model::search_words(q).map_err(|message| query_error("q", message))
    })
}

fn post_not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("post {id} not found"))
}

pub fn get(call: &Call<'_>, id: i64) -> Result<Response, ApiError> {
    let found = call.app.store.post(id)?.ok_or_else(|| post_not_found(id))?;
    conditional::read(call, &found)
}

pub fn get_by_slug(call: &Call<'_>, slug: &str) -> Result<Response, ApiError> {
    let found = call
        .app
        .store
        .post_by_slug(slug)?
        .ok_or_else(|| ApiError::not_found("no post has this slug"))?;
    conditional::read(call, &found)
}

pub fn update(call: &Call<'_>, id: i64) -> Result<Response, ApiError> {
    let actor = actor(call)?;
    let if_match = conditional::if_match(call);
    let body = read_json_body(call.request, call.app.max_body)?;
    let mut fields = crate::json::object_in(&body, NEW_POST_FIELDS)?;
    let patch = patch_from(&mut fields);
    let errors = fields.finish();
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let updated = call.app.store.update_post(&actor, id, patch, &if_match)?;
    conditional::with_etag(&updated)
}

pub fn delete(call: &Call<'_>, id: i64) -> Result<Response, ApiError> {
    let actor = actor(call)?;
    let if_match = conditional::if_match(call);
    if Query::parse(call.request)?.flag("permanent")? {
        call.app.store.hard_delete_post(&actor, id, &if_match)?;
    } else {
        call.app.store.soft_delete_post(&actor, id, &if_match)?;
    }
    Ok(no_content())
}

/// An admin restores any post; with `--owner-undo`, an author the post they deleted
/// themselves, for a while. Without owner undo a non-admin is refused before anything is
/// looked up, as on every admin-only endpoint.
pub fn restore(call: &Call<'_>, id: i64) -> Result<Response, ApiError> {
    let owner_undo = call.app.owner_undo;
    let actor = match owner_undo {
        Some(_) => actor(call)?,
        None => admin(call)?,
    };
    let if_match = conditional::if_match(call);
    conditional::with_etag(
        &call
            .app
            .store
            .restore_post(&actor, id, &if_match, owner_undo)?,
    )
}

/// `GET /posts/{id}/revisions`: the old versions, newest first; the cursor is a revision
/// number (versions before it).
pub fn revisions(call: &Call<'_>, id: i64) -> Result<Response, ApiError> {
    let actor = actor(call)?;
    let query = Query::parse(call.request)?;
    let limit = query.limit()?;
    let before = paging::id_cursor(&query)?;
    let rows = call.app.store.revisions(&actor, id, limit, before)?;
    let page = Page::from_rows(rows, limit, |r: &Revision| paging::after_id(r.revision));
    paging::page_response(
        &page,
        limit,
        NextPage::at(&format!("/posts/{id}/revisions")),
    )
}

/// `POST /posts/{id}/revert {"revision": N}`: that version, current again as a new one.
pub fn revert(call: &Call<'_>, id: i64) -> Result<Response, ApiError> {
    let actor = actor(call)?;
    let if_match = conditional::if_match(call);
    let body = read_json_body(call.request, call.app.max_body)?;
    let mut fields = crate::json::object_in(&body, &["revision"])?;
    let revision = match fields.take_id("revision") {
        Ok(revision) => Some(revision),
        Err(message) => {
            fields.error("revision", message);
            None
        }
    };
    let errors = fields.finish();
    let revision = match revision {
        Some(revision) if errors.is_empty() => revision,
        _ => return Err(ApiError::invalid(errors)),
    };
    conditional::with_etag(
        &call
            .app
            .store
            .revert_post(&actor, id, revision, &if_match)?,
    )
}

/// A trash item: the post with its deletion record, and when the retention sweep will
/// remove it (`null` when retention is off).
#[derive(serde::Serialize)]
struct TrashItem {
    #[serde(flatten)]
    post: Post,
    expires_at: Option<Timestamp>,
    /// Until when the caller may restore it themselves (`--owner-undo`); `null` when not.
    undo_until: Option<Timestamp>,
}

pub fn trash(call: &Call<'_>) -> Result<Response, ApiError> {
    let actor = actor(call)?;
    let query = Query::parse(call.request)?;
    let limit = query.limit()?;
    let after = paging::trash_cursor(&query)?;
    let author_id = query.positive_id("author_id")?;
    let q = query.get("q")?;
    let words = search_words(q)?;
    let rows = call.app.store.trash(
        &actor,
        &TrashQuery {
            limit,
            after,
            author_id,
            words: &words,
        },
    )?;
    let retention = call.app.trash_retention.as_ref().map(|age| age.duration());
    let items: Vec<TrashItem> = rows
        .into_iter()
        .map(|post| {
            let expires_at = post
                .deletion
                .as_ref()
                .zip(retention)
                .map(|(deletion, retention)| deletion.deleted_at.plus(retention));
            let undo_until = undo_until(&post, &actor, call.app.owner_undo);
            TrashItem {
                post,
                expires_at,
                undo_until,
            }
        })
        .collect();
    let page = Page::from_rows(items, limit, |item: &TrashItem| {
        let deleted_at = item.post.deletion.as_ref().map(|d| &d.deleted_at);
        paging::after_deleted(deleted_at, item.post.id)
    });
    let next = NextPage::at("/trash")
        .filter("q", q)
        .filter("author_id", author_id.map(|id| id.to_string()).as_deref());
    paging::page_response(&page, limit, next)
}
