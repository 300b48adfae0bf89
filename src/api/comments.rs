//! `/posts/{id}/comments` and `/comments/{id}`.

use super::auth::actor;
use super::call::{json, no_content, Call, Page};
use super::input::{read_json_body, Query};
use super::paging::{self, NextPage};
use super::problem::ApiError;
use crate::model::{Comment, CommentBody};
use rouille::Response;

pub fn create(call: &Call<'_>, post_id: i64) -> Result<Response, ApiError> {
    let actor = actor(call)?;
    let body = read_json_body(call.request, call.app.max_body)?;
    let mut fields = crate::json::object_in(&body, &["body"])?;
    let text = fields.required_string("body");
    let text = fields.parsed("body", text, CommentBody::parse);
    let errors = fields.finish();
    let text = match text {
        Some(text) if errors.is_empty() => text,
        _ => return Err(ApiError::invalid(errors)),
    };
    let comment = call.app.store.create_comment(&actor, post_id, text)?;
    json(201, &comment)
}

pub fn list(call: &Call<'_>, post_id: i64) -> Result<Response, ApiError> {
    let query = Query::parse(call.request)?;
    let limit = query.limit()?;
    let after = paging::id_cursor(&query)?;
    let rows = call.app.store.comments(post_id, limit, after)?;
    let page = Page::from_rows(rows, limit, |c: &Comment| paging::after_id(c.id));
    let next = NextPage::at(&format!("/posts/{post_id}/comments"));
    paging::page_response(&page, limit, next)
}

pub fn delete(call: &Call<'_>, id: i64) -> Result<Response, ApiError> {
    let actor = actor(call)?;
    call.app.store.delete_comment(&actor, id)?;
    Ok(no_content())
}
