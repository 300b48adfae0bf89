//! The field rules of a post's JSON, shared by every way a post comes in: `POST /posts`,
//! bulk items, `PATCH`, and the lines of `postd import`.

use super::Fields;
use crate::clock::Timestamp;
use crate::model::{ItemError, NewPost, PostBody, PostPatch, Slug, Title};

/// The fields of a new post.
pub const NEW_POST_FIELDS: &[&str] = &["title", "body", "slug"];

/// The fields of a line `postd import` reads: a new post's, when it was created, and the
/// fields only the server sets, which `postd export` writes and an import ignores (so an
/// export can be imported as it is).
pub const IMPORT_FIELDS: &[&str] = &[
    "title",
    "body",
    "slug",
    "created_at",
    "id",
    "author_id",
    "updated_at",
    "revision",
    "deleted_at",
    "deleted_by_id",
    "expires_at",
    "undo_until",
];

/// Takes `title`, `body` and `slug` out of `fields` and checks them against the field
/// rules; a value that breaks its rule is reported in `fields` and comes back as `None`.
fn post_fields(fields: &mut Fields, title: Option<String>, body: Option<String>) -> PostPatch {
    let slug = fields.optional_string("slug");
    PostPatch {
        title: fields.parsed("title", title, |t| Title::normalize(&t)),
        body: fields.parsed("body", body, PostBody::parse),
        slug: fields.parsed("slug", slug, Slug::parse),
    }
}

/// Reads `{title, body, slug?}` from `fields` (read with at least [`NEW_POST_FIELDS`]);
/// every problem is reported, not just the first. The caller ends with `fields.finish()`.
pub fn new_post_from(fields: &mut Fields) -> Option<NewPost> {
    let title = fields.required_string("title");
    let body = fields.required_string("body");
    let PostPatch { title, body, slug } = post_fields(fields, title, body);
    Some(NewPost {
        title: title?,
        body: body?,
        slug,
        created_at: None,
    })
}

/// A whole new post from an object read with [`NEW_POST_FIELDS`].
pub fn new_post(mut fields: Fields) -> Result<NewPost, Vec<ItemError>> {
    let post = new_post_from(&mut fields);
    let errors = fields.finish();
    match post {
        Some(post) if errors.is_empty() => Ok(post),
        _ => Err(errors),
    }
}

/// Reads the optional `title`, `body`, `slug` of a patch from `fields` (the caller may
/// have taken an `id` first). An empty patch is an error.
pub fn patch_from(fields: &mut Fields) -> PostPatch {
    let title = fields.optional_string("title");
    let body = fields.optional_string("body");
    let patch = post_fields(fields, title, body);
    if patch.is_empty() && fields.errors.is_empty() {
        fields.errors.push(ItemError::whole(
            "a patch must change at least one of title, body, slug",
        ));
    }
    patch
}

/// A post from an import line read with [`IMPORT_FIELDS`]: the new post's fields, its
/// `created_at` kept when given (it must be a timestamp), the server's fields ignored.
pub fn imported_post(mut fields: Fields) -> Result<NewPost, Vec<ItemError>> {
    let post = new_post_from(&mut fields);
    let created_at = fields.optional_string("created_at");
    let created_at = fields.parsed("created_at", created_at, |text| {
        Timestamp::parse(&text)
            .ok_or_else(|| "must be a timestamp such as 2026-11-22T10:04:05.123Z".to_string())
    });
    for ignored in &IMPORT_FIELDS[4..] {
        fields.ignore(ignored);
    }
    let errors = fields.finish();
    match post {
        Some(post) if errors.is_empty() => Ok(NewPost { created_at, ..post }),
        _ => Err(errors),
    }
}
