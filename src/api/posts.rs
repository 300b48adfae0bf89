//! `/posts`, `/posts/{id}`, `/posts/by-slug/{slug}`, `/posts/{id}/restore`, `/trash`.

use super::auth::{actor, admin};
use super::input::{
    decode_cursor, encode_cursor, id_cursor, parse_object, query_error, read_json_body, Fields,
    JsonObject, Query,
};
use super::problem::ApiError;
use super::{json, json_bytes, no_content, App, Page};
use crate::clock;
use crate::model::{
    check_post_body, check_slug, normalize_title, ItemError, NewPost, Post, PostPatch,
};
use crate::store::{idempotency, posts, StoreError};
use rouille::{Request, Response};
use rusqlite::Transaction;

/// Takes `title`, `body` and `slug` out of `fields` and checks them against the field
/// rules; a value that breaks its rule is reported in `fields` and comes back as `None`.
fn post_fields(fields: &mut Fields, required: bool) -> PostPatch {
    let title = fields.string("title", required);
    let body = fields.string("body", required);
    let slug = fields.string("slug", false);
    let title = title.and_then(|t| {
        normalize_title(&t)
            .map_err(|m| fields.error("title", m))
            .ok()
    });
    let body = body.filter(|b| {
        check_post_body(b)
            .map_err(|m| fields.error("body", m))
            .is_ok()
    });
    let slug = slug.filter(|s| check_slug(s).map_err(|m| fields.error("slug", m)).is_ok());
    PostPatch { title, body, slug }
}

/// Reads `{title, body, slug?}`; every problem is reported, not just the first.
pub(super) fn new_post_from(object: JsonObject) -> Result<NewPost, Vec<ItemError>> {
    let mut fields = Fields::new(object);
    let PostPatch { title, body, slug } = post_fields(&mut fields, true);
    let errors = fields.finish();
    match (title, body) {
        (Some(title), Some(body)) if errors.is_empty() => Ok(NewPost { title, body, slug }),
        _ => Err(errors),
    }
}

/// Reads the optional `title`, `body`, `slug` of a patch from `fields` (the caller may
/// have taken an `id` first). An empty patch is an error.
pub(super) fn patch_from(fields: &mut Fields) -> PostPatch {
    let patch = post_fields(fields, false);
    if patch.is_empty() && fields.errors.is_empty() {
        fields.errors.push(ItemError {
            index: None,
            id: None,
            field: None,
            message: "a patch must change at least one of title, body, slug".into(),
        });
    }
    patch
}

/// `Idempotency-Key`: 1..=255 visible ASCII characters, or absent.
pub(super) fn idempotency_key(request: &Request) -> Result<Option<String>, ApiError> {
    match request.header("Idempotency-Key") {
        None => Ok(None),
        Some(key)
            if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_owned()))
        }
        Some(_) => Err(ApiError::bad_request(
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// The answer of an idempotent write: fresh, or replayed from its stored record.
pub(super) struct Written {
    pub status: u16,
    pub body: Vec<u8>,
    pub replayed: bool,
}

impl Written {
    pub fn into_response(self) -> Response {
        let response = json_bytes(self.status, self.body);
        if self.replayed {
            response.with_additional_header("Idempotent-Replayed", "true")
        } else {
            response
        }
    }
}

/// An Idempotency-Key with the fingerprint of the request it came with.
pub(super) struct KeyedRequest {
    key: String,
    fingerprint: String,
}

impl KeyedRequest {
    /// Fingerprints the request (method, path, exact body bytes) when a key was sent.
    pub fn new(request: &Request, key: Option<String>, body: &[u8]) -> Option<KeyedRequest> {
        let path = request.raw_url().split('?').next().unwrap_or_default();
        key.map(|key| KeyedRequest {
            key,
            fingerprint: idempotency::request_fingerprint(request.method(), path, body),
        })
    }
}

/// Runs a creating write in one IMMEDIATE transaction, honouring an Idempotency-Key: a
/// replay answers the stored status and body and writes nothing; a first use stores the
/// answer in the same transaction as the writes. `write` returns the status and body.
pub(super) fn idempotent_write(
    app: &App,
    user_id: i64,
    keyed: Option<KeyedRequest>,
    write: impl FnOnce(&Transaction) -> Result<(u16, Vec<u8>), StoreError>,
) -> Result<Written, ApiError> {
    let written = app.store.write(|tx| {
        if let Some(k) = &keyed {
            if let Some(stored) = idempotency::lookup(tx, user_id, &k.key, &k.fingerprint)? {
                return Ok(Written {
                    status: stored.status,
                    body: stored.body,
                    replayed: true,
                });
            }
        }
        let (status, body) = write(tx)?;
        if let Some(k) = &keyed {
            idempotency::save(tx, user_id, &k.key, &k.fingerprint, status, &body)?;
        }
        Ok(Written {
            status,
            body,
            replayed: false,
        })
    })?;
    Ok(written)
}

pub(super) fn serialize<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value)
        .map_err(|err| StoreError::Internal(format!("serializing a response: {err}")))
}

pub fn create(app: &App, request: &Request) -> Result<Response, ApiError> {
    let actor = actor(app, request)?;
    let key = idempotency_key(request)?;
    let body = read_json_body(request, app.max_body)?;
    let new_post = new_post_from(parse_object(&body)?).map_err(ApiError::invalid)?;
    let keyed = KeyedRequest::new(request, key, &body);
    let written = idempotent_write(app, actor.user_id, keyed, |tx| {
        let post = posts::create(tx, &actor, new_post)?;
        Ok((201, serialize(&post)?))
    })?;
    // Location comes from the body, so a replayed answer carries it too.
    let location = serde_json::from_slice::<IdOnly>(&written.body)
        .ok()
        .filter(|_| written.status == 201)
        .map(|post| format!("/posts/{}", post.id));
    let response = written.into_response();
    Ok(match location {
        Some(location) => response.with_additional_header("Location", location),
        None => response,
    })
}

#[derive(serde::Deserialize)]
struct IdOnly {
    id: i64,
}

pub fn list(app: &App, request: &Request) -> Result<Response, ApiError> {
    let query = Query::parse(request)?;
    let limit = query.limit()?;
    let before_id = id_cursor(&query, 'p')?;
    let author_id = query.positive_id("author_id")?;
    let words = search_words(query.get("q")?)?;
    let rows = app.store.list_posts(&posts::ListQuery {
        limit,
        before_id,
        author_id,
        words: &words,
    })?;
    json(
        200,
        &Page::from_rows(rows, limit, |post: &Post| {
            encode_cursor('p', &[&post.id.to_string()])
        }),
    )
}

const MAX_SEARCH_WORDS: usize = 32;
const MAX_SEARCH_LEN: usize = 1_000;

/// Splits `q` into words the way the index splits text (runs of letters and digits), so
/// punctuation and operators are separators, never syntax.
fn search_words(q: Option<&str>) -> Result<Vec<String>, ApiError> {
    let Some(q) = q else { return Ok(Vec::new()) };
    if q.len() > MAX_SEARCH_LEN {
        return Err(query_error("q", "must be at most 1000 bytes"));
    }
    let words: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    if words.len() > MAX_SEARCH_WORDS {
        return Err(query_error("q", "must have at most 32 words"));
    }
    Ok(words)
}

pub fn get(app: &App, id: i64) -> Result<Response, ApiError> {
    let post = app.store.post(id)?.ok_or_else(|| posts::not_found(id))?;
    json(200, &post)
}

pub fn get_by_slug(app: &App, slug: &str) -> Result<Response, ApiError> {
    let post = app
        .store
        .post_by_slug(slug)?
        .ok_or_else(|| ApiError::not_found("no post has this slug"))?;
    json(200, &post)
}

pub fn update(app: &App, request: &Request, id: i64) -> Result<Response, ApiError> {
    let actor = actor(app, request)?;
    let body = read_json_body(request, app.max_body)?;
    let mut fields = Fields::new(parse_object(&body)?);
    let patch = patch_from(&mut fields);
    let errors = fields.finish();
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    json(200, &app.store.update_post(&actor, id, patch)?)
}

pub fn delete(app: &App, request: &Request, id: i64) -> Result<Response, ApiError> {
    let actor = actor(app, request)?;
    if Query::parse(request)?.flag("permanent")? {
        app.store.hard_delete_post(&actor, id)?;
    } else {
        app.store.soft_delete_post(&actor, id)?;
    }
    Ok(no_content())
}

pub fn restore(app: &App, request: &Request, id: i64) -> Result<Response, ApiError> {
    admin(app, request)?;
    json(200, &app.store.restore_post(id)?)
}

pub fn trash(app: &App, request: &Request) -> Result<Response, ApiError> {
    let actor = actor(app, request)?;
    let query = Query::parse(request)?;
    let limit = query.limit()?;
    let after = match query.get("cursor")? {
        None => None,
        Some(cursor) => {
            let fields = decode_cursor(cursor, 't', 2)?;
            let id = super::input::path_id(&fields[1]);
            match id {
                Some(id) if clock::is_timestamp(&fields[0]) => Some(posts::TrashCursor {
                    deleted_at: fields[0].clone(),
                    id,
                }),
                _ => {
                    return Err(query_error(
                        "cursor",
                        "is not a cursor this listing handed out",
                    ))
                }
            }
        }
    };
    let rows = app.store.trash(&actor, limit, after.as_ref())?;
    json(
        200,
        &Page::from_rows(rows, limit, |post: &Post| {
            let deleted_at = post
                .deletion
                .as_ref()
                .map(|d| d.deleted_at.as_str())
                .unwrap_or_default();
            encode_cursor('t', &[deleted_at, &post.id.to_string()])
        }),
    )
}
