//! `/admin/audit` and `/admin/purge`: the operator's endpoints, admins only (403 right
//! after authentication, before anything else is looked at).

use super::auth::admin;
use super::call::{json, Call, Page};
use super::input::{query_error, read_json_body, Query};
use super::paging::{self, NextPage};
use super::problem::ApiError;
use crate::clock::Age;
use crate::store::{AuditAction, AuditEvent, AuditQuery, Purger, UserSummary};
use rouille::Response;

const ACTION_RULE: &str = "must be one of post.create, post.update, post.revert, \
     post.delete, post.delete_permanent, post.restore, posts.bulk_create, posts.bulk_update, \
     posts.bulk_delete, posts.bulk_delete_permanent, posts.bulk_restore, posts.filter_delete, \
     trash.purge, user.role, user.delete, user.erase, token.create, token.revoke";

const DURATION_RULE: &str =
    "must be a whole number and a unit s, m, h or d (e.g. 30d, 12h), at most 36500d";

pub fn audit(call: &Call<'_>) -> Result<Response, ApiError> {
    admin(call)?;
    let query = Query::parse(call.request)?;
    let limit = query.limit()?;
    let before_id = paging::id_cursor(&query)?;
    let action = match query.get("action")? {
        None => None,
        Some(text) => {
            Some(AuditAction::parse(text).ok_or_else(|| query_error("action", ACTION_RULE))?)
        }
    };
    let actor_id = query.positive_id("actor_id")?;
    let rows = call.app.store.audit_events(&AuditQuery {
        limit,
        before_id,
        action,
        actor_id,
    })?;
    let page = Page::from_rows(rows, limit, |event: &AuditEvent| paging::after_id(event.id));
    let next = NextPage::at("/admin/audit")
        .filter("action", action.map(AuditAction::as_str))
        .filter("actor_id", actor_id.map(|id| id.to_string()).as_deref());
    paging::page_response(&page, limit, next)
}

#[derive(serde::Serialize)]
struct Purged {
    purged: u64,
}

/// `{"older_than": DURATION, "dry_run"?: bool}`: like `postd purge`, one transaction and
/// one audit event; a dry run only counts, and records nothing.
pub fn purge(call: &Call<'_>) -> Result<Response, ApiError> {
    let actor = admin(call)?;
    let body = read_json_body(call.request, call.app.max_body)?;
    let mut fields = crate::json::object_in(&body, &["older_than", "dry_run"])?;
    let older_than = fields.required_string("older_than");
    // Age's own message quotes the text; a client's 16 MiB string is not sent back.
    let older_than = fields.parsed("older_than", older_than, |text| {
        text.parse::<Age>().map_err(|_| DURATION_RULE.to_string())
    });
    let dry_run = fields.optional_bool("dry_run").unwrap_or(false);
    let errors = fields.finish();
    let older_than = match older_than {
        Some(age) if errors.is_empty() => age,
        _ => return Err(ApiError::invalid(errors)),
    };
    let cutoff = older_than.before_now();
    let store = &call.app.store;
    let purged = if dry_run {
        store.count_deleted_before(&cutoff)?
    } else {
        store.purge_deleted_before(
            &cutoff,
            &older_than,
            Purger::Admin(actor.user_id),
            &mut |_, _| {},
        )?
    };
    json(200, &Purged { purged })
}

/// `GET /admin/users?limit&cursor&q`: users with their post counts, newest first; `q`
/// keeps those whose name holds it; the cursor is a user id.
pub fn users(call: &Call<'_>) -> Result<Response, ApiError> {
    admin(call)?;
    let query = Query::parse(call.request)?;
    let limit = query.limit()?;
    let before = paging::id_cursor(&query)?;
    let q = query.get("q")?;
    if q.is_some_and(|q| {
        q.len() > 32
            || !q
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    }) {
        return Err(query_error(
            "q",
            "must be at most 32 characters of a username (letters, digits, _ . -)",
        ));
    }
    let rows = call.app.store.users(limit, before, q)?;
    let page = Page::from_rows(rows, limit, |u: &UserSummary| paging::after_id(u.user.id));
    let next = NextPage::at("/admin/users").filter("q", q);
    paging::page_response(&page, limit, next)
}

/// `DELETE /admin/users/{id}[?dry_run=true]`: erases the user and everything of theirs
/// (a dry run only counts); an admin can not erase themselves (409).
pub fn erase_user(call: &Call<'_>, id: i64) -> Result<Response, ApiError> {
    let actor = admin(call)?;
    let dry_run = Query::parse(call.request)?.flag("dry_run")?;
    let erased = call
        .app
        .store
        .erase_user(Some(actor.user_id), id, dry_run)?;
    json(200, &erased)
}
