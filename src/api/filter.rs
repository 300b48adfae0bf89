//! `POST /posts/bulk/delete` with a `filter` instead of `post_ids`: delete by filter. A
//! dry run answers how many active posts match and the first ids; the delete itself
//! names that count (`expected_count`) and happens only if the filter still matches
//! exactly as many, all in one transaction — a client never deletes more than it saw.

use super::call::{json, Call};
use super::metrics::BulkOp;
use super::problem::ApiError;
use crate::clock::Timestamp;
use crate::json::Fields;
use crate::model::Actor;
use crate::store::PostFilter;
use rouille::Response;

const FILTER_FIELDS: &[&str] = &["q", "author_id", "created_before", "deleted"];

#[derive(serde::Serialize)]
struct Deleted<'a> {
    count: usize,
    deleted: &'a [i64],
}

/// The request's `filter` and the rest, checked: 422 for a value out of its rules or for
/// an empty filter; 413 for more matches than `max_bulk`; 409 (with the current count)
/// when the filter no longer matches `expected_count`.
pub fn delete(
    call: &Call<'_>,
    actor: &Actor,
    mut fields: Fields<'_>,
) -> Result<Response, ApiError> {
    let parts = read_filter(&mut fields);
    let dry_run = fields.optional_bool("dry_run").unwrap_or(false);
    let expected = fields.optional_count("expected_count");
    let hard = fields.optional_bool("hard_delete").unwrap_or(false);
    if !dry_run && expected.is_none() && !fields.has("expected_count") {
        fields.error(
            "expected_count",
            "is required to delete: the count a dry run (\"dry_run\": true) answered",
        );
    }
    let errors = fields.finish();
    let Some((words, author_id, created_before)) = parts.filter(|_| errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    let filter = PostFilter {
        words: &words,
        author_id,
        created_before,
    };
    if filter.is_empty() {
        return Err(ApiError::unprocessable(
            "the filter must name at least one of q, author_id, created_before: an empty \
             filter would match every post",
        ));
    }
    let most = call.app.max_bulk;
    if dry_run {
        let found = call.app.store.filter_matches(&filter, most)?;
        return json(200, &found);
    }
    let expected = expected.unwrap_or(0);
    let deleted = call
        .app
        .store
        .delete_by_filter(actor, &filter, expected, most, hard)?;
    let op = if hard {
        BulkOp::DeletePermanent
    } else {
        BulkOp::Delete
    };
    call.app.metrics.count_bulk_items(op, deleted.len());
    json(
        200,
        &Deleted {
            count: deleted.len(),
            deleted: &deleted,
        },
    )
}

type FilterParts = (Vec<String>, Option<i64>, Option<Timestamp>);

/// `filter`'s parts; `None` when something in it was reported.
fn read_filter(fields: &mut Fields<'_>) -> Option<FilterParts> {
    let mut filter = fields.optional_object("filter", FILTER_FIELDS)?;
    let q = filter.optional_string("q");
    let words = filter.parsed("q", q, |q| {
        crate::model::search_words(&q).map_err(str::to_owned)
    });
    let author_id = filter.optional_id("author_id");
    let before = filter.optional_string("created_before");
    let created_before = filter.parsed("created_before", before, |text| {
        Timestamp::parse_rfc3339(&text)
            .ok_or_else(|| "must be an RFC 3339 date-time such as 2026-01-01T00:00:00Z".into())
    });
    if filter.optional_bool("deleted") == Some(true) {
        filter.error(
            "deleted",
            "must be false: a delete by filter deletes active posts (purge empties the trash)",
        );
    }
    let before = fields.errors.len();
    fields.adopt("filter", filter);
    if fields.errors.len() > before {
        return None;
    }
    Some((words.unwrap_or_default(), author_id, created_before))
}
