//! `/posts/bulk` and `/posts/bulk/restore`: parse and validate every item before the
//! transaction opens, then hand the whole batch to the store in one transaction.
//!
//! Items are first taken as raw JSON slices borrowed from the body, then each is checked
//! on its own: memory stays a small multiple of the body, and every item's problems are
//! reported, not just the first item's.

use super::auth::{actor, admin};
use super::call::{json, no_content, App, Call};
use super::conditional;
use super::idempotent::{idempotency_key, once_key, recorded, written_response};
use super::input::read_json_body;
use super::metrics::BulkOp;
use super::problem::{refusal_status, ApiError};
use crate::json::post::{new_post, patch_from, NEW_POST_FIELDS};
use crate::json::{Elements, Fields, JsonError};
use crate::model::{IfMatch, ItemError, Post};
use crate::store::{PartialOutcome, PatchItem};
use rouille::Response;
use serde_json::value::RawValue;

/// The fields of a bulk update item.
const PATCH_ITEM_FIELDS: &[&str] = &["id", "if_match", "title", "body", "slug"];

/// Reads a bulk body's array field (`items`, `post_ids`) and its other fields, checked as
/// a whole: 422 for what is wrong with them, then 413 above `max_bulk` elements (counted,
/// not held) or 422 for none.
fn bulk_body<'a, T>(
    app: &App,
    body: &'a str,
    known: &'static [&'static str],
    array: &'static str,
    rest: impl FnOnce(&mut Fields<'a>) -> T,
) -> Result<(Vec<&'a RawValue>, T), ApiError> {
    bulk_fields(app, crate::json::object_in(body, known)?, array, rest)
}

/// [`bulk_body`] for a body already read as fields.
fn bulk_fields<'a, T>(
    app: &App,
    mut fields: Fields<'a>,
    array: &'static str,
    rest: impl FnOnce(&mut Fields<'a>) -> T,
) -> Result<(Vec<&'a RawValue>, T), ApiError> {
    let elements = fields.required_array(array, app.max_bulk);
    let others = rest(&mut fields);
    let errors = fields.finish();
    let Some(Elements { kept, total }) = elements.filter(|_| errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    check_count(app, total, array)?;
    Ok((kept, others))
}

/// 413 above `max_bulk` items, 422 for none.
fn check_count(app: &App, count: usize, what: &str) -> Result<(), ApiError> {
    if count == 0 {
        return Err(ApiError::unprocessable(format!(
            "{what} must hold at least one item"
        )));
    }
    if count > app.max_bulk {
        return Err(ApiError::new(
            413,
            format!(
                "{what} holds {count} items; at most {} are allowed per request",
                app.max_bulk
            ),
        ));
    }
    Ok(())
}

/// One bulk item as a JSON object, or its error.
fn item_object<'a>(
    raw: &'a RawValue,
    known: &'static [&'static str],
) -> Result<Fields<'a>, Vec<ItemError>> {
    crate::json::object_in(raw.get(), known).map_err(|err| match err {
        JsonError::Invalid(errors) => errors,
        JsonError::Malformed(message) => vec![ItemError::whole(message)],
    })
}

fn at_index(index: usize, errors: Vec<ItemError>) -> impl Iterator<Item = ItemError> {
    errors.into_iter().map(move |e| e.at(index))
}

/// Positive ids from raw values with their request positions, each id once (its first
/// position); bad ones are collected as errors with their index.
fn ids_from(raws: &[&RawValue]) -> Result<Vec<(usize, i64)>, ApiError> {
    let mut ids = Vec::with_capacity(raws.len());
    let mut seen = std::collections::HashSet::with_capacity(raws.len());
    let mut errors = Vec::new();
    for (index, raw) in raws.iter().enumerate() {
        match crate::json::id(raw) {
            Ok(id) => {
                if seen.insert(id) {
                    ids.push((index, id));
                }
            }
            Err(message) => errors.push(ItemError::item(index, None, message)),
        }
    }
    if errors.is_empty() {
        Ok(ids)
    } else {
        Err(ApiError::invalid(errors))
    }
}

#[derive(serde::Serialize)]
struct Items<'a> {
    items: &'a [Post],
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum PartialResult<'a> {
    Created {
        index: usize,
        status: u16,
        item: &'a Post,
    },
    Refused {
        index: usize,
        status: u16,
        errors: &'a [ItemError],
    },
}

#[derive(serde::Serialize)]
struct PartialReport<'a> {
    created: usize,
    failed: usize,
    results: Vec<PartialResult<'a>>,
}

fn partial_report(outcomes: &[PartialOutcome]) -> PartialReport<'_> {
    let results: Vec<PartialResult> = outcomes
        .iter()
        .enumerate()
        .map(|(index, outcome)| match outcome {
            PartialOutcome::Created(item) => PartialResult::Created {
                index,
                status: 201,
                item,
            },
            PartialOutcome::Refused { why, errors } => PartialResult::Refused {
                index,
                status: refusal_status(*why),
                errors,
            },
        })
        .collect();
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, PartialOutcome::Created(_)))
        .count();
    PartialReport {
        created,
        failed: outcomes.len() - created,
        results,
    }
}

pub fn create(call: &Call<'_>) -> Result<Response, ApiError> {
    let actor = actor(call)?;
    let key = idempotency_key(call)?;
    let body = read_json_body(call.request, call.app.max_body)?;
    let once = once_key(call, actor.user_id, key, body.as_bytes());
    let (items, atomic) = bulk_body(call.app, &body, &["items", "atomic"], "items", |f| {
        f.optional_bool("atomic")
    })?;
    let checked: Vec<_> = items
        .iter()
        .map(|raw| item_object(raw, NEW_POST_FIELDS).and_then(new_post))
        .collect();
    let atomic = atomic.unwrap_or(true);
    drop(items);
    drop(body);

    let store = &call.app.store;
    let (written, created) = if atomic {
        let mut items = Vec::with_capacity(checked.len());
        let mut errors = Vec::new();
        for (index, item) in checked.into_iter().enumerate() {
            match item {
                Ok(post) => items.push(post),
                Err(item_errors) => errors.extend(at_index(index, item_errors)),
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid(errors));
        }
        let mut created = 0;
        let written = store.create_posts_once(&actor, items, once.as_ref(), |posts| {
            created = posts.len();
            recorded(201, &Items { items: posts })
        })?;
        (written, created)
    } else {
        let mut created = 0;
        let written =
            store.create_posts_partial_once(&actor, checked, once.as_ref(), |outcomes| {
                let report = partial_report(outcomes);
                created = report.created;
                recorded(200, &report)
            })?;
        (written, created)
    };
    // A replayed answer records nothing, so it counts 0: it created nothing.
    call.app.metrics.count_bulk_items(BulkOp::Create, created);
    Ok(written_response(written))
}

pub fn update(call: &Call<'_>) -> Result<Response, ApiError> {
    let actor = actor(call)?;
    let body = read_json_body(call.request, call.app.max_body)?;
    let (raws, ()) = bulk_body(call.app, &body, &["items"], "items", |_| ())?;
    let mut items: Vec<PatchItem> = Vec::with_capacity(raws.len());
    let mut errors = Vec::new();
    for (index, raw) in raws.iter().enumerate() {
        match item_object(raw, PATCH_ITEM_FIELDS) {
            Err(item_errors) => errors.extend(at_index(index, item_errors)),
            Ok(mut fields) => {
                let id = match fields.take_id("id") {
                    Ok(id) => Some(id),
                    Err(message) => {
                        fields.error("id", message);
                        None
                    }
                };
                let if_match = fields.optional_string("if_match");
                let if_match = fields
                    .parsed("if_match", if_match, |text| {
                        conditional::item_if_match(&text).map_err(str::to_owned)
                    })
                    .unwrap_or(IfMatch::Any);
                let patch = patch_from(&mut fields);
                let item_errors = fields.finish();
                match id {
                    Some(id) if item_errors.is_empty() => items.push(PatchItem {
                        id,
                        patch,
                        if_match,
                    }),
                    _ => errors.extend(at_index(index, item_errors).map(|e| e.with_id(id))),
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    drop(raws);
    drop(body);
    let updated = call.app.store.update_posts(&actor, items)?;
    call.app
        .metrics
        .count_bulk_items(BulkOp::Update, updated.len());
    json(200, &Items { items: &updated })
}

#[derive(serde::Serialize)]
struct DeleteReport<'a> {
    deleted: &'a [i64],
    skipped: &'a [i64],
}

/// The fields of a bulk delete's body: `post_ids`, or a filter (api/filter.rs).
const DELETE_FIELDS: &[&str] = &[
    "post_ids",
    "hard_delete",
    "filter",
    "dry_run",
    "expected_count",
];

/// `DELETE /posts/bulk`, and `POST /posts/bulk/delete` for clients and proxies that drop
/// the body of a DELETE: the same body, the same answers. A body with `filter` instead of
/// `post_ids` is a delete by filter.
pub fn delete(call: &Call<'_>) -> Result<Response, ApiError> {
    let actor = admin(call)?;
    let body = read_json_body(call.request, call.app.max_body)?;
    let mut fields = crate::json::object_in(&body, DELETE_FIELDS)?;
    if fields.has("filter") {
        if fields.has("post_ids") {
            fields.error(
                "post_ids",
                "goes without filter: a delete names ids or a filter",
            );
        }
        fields.ignore("post_ids");
        return super::filter::delete(call, &actor, fields);
    }
    for by_filter_only in ["dry_run", "expected_count"] {
        if fields.has(by_filter_only) {
            fields.ignore(by_filter_only);
            fields.error(
                by_filter_only,
                "goes with filter (a delete by filter), not with post_ids",
            );
        }
    }
    let (raws, hard) = bulk_fields(call.app, fields, "post_ids", |f| {
        f.optional_bool("hard_delete")
    })?;
    let ids: Vec<i64> = ids_from(&raws)?.into_iter().map(|(_, id)| id).collect();
    let hard = hard.unwrap_or(false);
    let outcome = call.app.store.delete_posts(&actor, &ids, hard)?;
    let op = if hard {
        BulkOp::DeletePermanent
    } else {
        BulkOp::Delete
    };
    call.app.metrics.count_bulk_items(op, outcome.deleted.len());
    let wants_report = call.request.header("Prefer").is_some_and(|prefer| {
        prefer
            .split(',')
            .any(|p| p.trim().eq_ignore_ascii_case("return=representation"))
    });
    if wants_report {
        json(
            200,
            &DeleteReport {
                deleted: &outcome.deleted,
                skipped: &outcome.skipped,
            },
        )
    } else {
        Ok(no_content())
    }
}

pub fn restore(call: &Call<'_>) -> Result<Response, ApiError> {
    let actor = admin(call)?;
    let body = read_json_body(call.request, call.app.max_body)?;
    let (raws, ()) = bulk_body(call.app, &body, &["post_ids"], "post_ids", |_| ())?;
    let ids = ids_from(&raws)?;
    let restored = call.app.store.restore_posts(&actor, &ids)?;
    call.app
        .metrics
        .count_bulk_items(BulkOp::Restore, restored.len());
    json(200, &Items { items: &restored })
}
