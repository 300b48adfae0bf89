//! The field rules of a post's JSON, shared by every way a post comes in: `POST /posts`,
//! bulk items, `PATCH`, and the lines of `postd import`.

use super::Fields;
use crate::model::{ItemError, NewPost, PostBody, PostPatch, Slug, Title};

/// The fields of a new post.
pub const NEW_POST_FIELDS: &[&str] = &["title", "body", "slug"];

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
