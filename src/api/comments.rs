//! `/posts/{id}/comments` and `/comments/{id}`.

use super::auth::actor;
use super::input::{encode_cursor, id_cursor, parse_object, read_json_body, Fields, Query};
use super::problem::ApiError;
use super::{json, no_content, App, Page};
use crate::model::{check_comment_body, Comment};
use rouille::{Request, Response};

pub fn create(app: &App, request: &Request, post_id: i64) -> Result<Response, ApiError> {
    let actor = actor(app, request)?;
    let body = read_json_body(request, app.max_body)?;
    let mut fields = Fields::new(parse_object(&body)?);
    let text = fields.string("body", true);
    if let Some(text) = &text {
        if let Err(message) = check_comment_body(text) {
            fields.error("body", message);
        }
    }
    let errors = fields.finish();
    let text = match text {
        Some(text) if errors.is_empty() => text,
        _ => return Err(ApiError::invalid(errors)),
    };
    let comment = app.store.create_comment(&actor, post_id, text)?;
    json(201, &comment)
}

pub fn list(app: &App, request: &Request, post_id: i64) -> Result<Response, ApiError> {
    let query = Query::parse(request)?;
    let limit = query.limit()?;
    let after = id_cursor(&query, 'c')?;
    let rows = app.store.comments(post_id, limit, after)?;
    json(
        200,
        &Page::from_rows(rows, limit, |c: &Comment| {
            encode_cursor('c', &[&c.id.to_string()])
        }),
    )
}

pub fn delete(app: &App, request: &Request, id: i64) -> Result<Response, ApiError> {
    let actor = actor(app, request)?;
    app.store.delete_comment(&actor, id)?;
    Ok(no_content())
}
