//! `/posts/bulk` and `/posts/bulk/restore`: parse and validate every item before the
//! transaction opens, then hand the whole batch to the store in one transaction.
//!
//! Items are first taken as raw JSON slices borrowed from the body, then each is checked
//! on its own: memory stays a small multiple of the body, and every item's problems are
//! reported, not just the first item's.

use super::auth::{actor, admin};
use super::conditional;
use super::input::{json_error, json_id, read_json_body, Fields, JsonObject};
use super::metrics::BulkOp;
use super::posts::{
    idempotency_key, new_post_from, once_key, patch_from, recorded, written_response,
};
use super::problem::{refusal_status, ApiError};
use super::{json, no_content, App, Call};
use crate::model::{IfMatch, ItemError, NewPost, Post};
use crate::store::{PartialOutcome, PatchItem};
use rouille::Response;
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody<'a> {
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
    #[serde(default, deserialize_with = "present_value")]
    atomic: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody<'a> {
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody<'a> {
    #[serde(borrow)]
    post_ids: Vec<&'a RawValue>,
    #[serde(default, deserialize_with = "present_value")]
    hard_delete: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody<'a> {
    #[serde(borrow)]
    post_ids: Vec<&'a RawValue>,
}

/// For optional fields: absent is `None` (through `#[serde(default)]`), but a present
/// `null` is refused like any other wrong type, as in every other body postd reads.
fn present_value<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
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
fn item_object(raw: &RawValue) -> Result<JsonObject, Vec<ItemError>> {
    serde_json::from_str::<JsonObject>(raw.get()).map_err(|err| {
        let message = json_error(err)
            .errors
            .pop()
            .map(|e| e.message)
            .unwrap_or_default();
        vec![ItemError::whole(message)]
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
        match serde_json::from_str::<serde_json::Value>(raw.get())
            .map_err(|_| "must be a positive integer id")
            .and_then(|v| json_id(&v))
        {
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
    let once = once_key(call, actor.user_id, key, &body);
    let parsed: CreateBody = serde_json::from_slice(&body).map_err(json_error)?;
    check_count(call.app, parsed.items.len(), "items")?;
    let checked: Vec<Result<NewPost, Vec<ItemError>>> = parsed
        .items
        .iter()
        .map(|raw| item_object(raw).and_then(new_post_from))
        .collect();
    let atomic = parsed.atomic.unwrap_or(true);
    drop(parsed);
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
    let parsed: UpdateBody = serde_json::from_slice(&body).map_err(json_error)?;
    check_count(call.app, parsed.items.len(), "items")?;
    let mut items: Vec<PatchItem> = Vec::with_capacity(parsed.items.len());
    let mut errors = Vec::new();
    for (index, raw) in parsed.items.iter().enumerate() {
        match item_object(raw) {
            Err(item_errors) => errors.extend(at_index(index, item_errors)),
            Ok(object) => {
                let mut fields = Fields::new(object);
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
    drop(parsed);
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

/// `DELETE /posts/bulk`, and `POST /posts/bulk/delete` for clients and proxies that drop
/// the body of a DELETE: the same body, the same answers.
pub fn delete(call: &Call<'_>) -> Result<Response, ApiError> {
    let actor = admin(call)?;
    let body = read_json_body(call.request, call.app.max_body)?;
    let parsed: DeleteBody = serde_json::from_slice(&body).map_err(json_error)?;
    check_count(call.app, parsed.post_ids.len(), "post_ids")?;
    let ids: Vec<i64> = ids_from(&parsed.post_ids)?
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let hard = parsed.hard_delete.unwrap_or(false);
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
    let parsed: RestoreBody = serde_json::from_slice(&body).map_err(json_error)?;
    check_count(call.app, parsed.post_ids.len(), "post_ids")?;
    let ids = ids_from(&parsed.post_ids)?;
    let restored = call.app.store.restore_posts(&actor, &ids)?;
    call.app
        .metrics
        .count_bulk_items(BulkOp::Restore, restored.len());
    json(200, &Items { items: &restored })
}
