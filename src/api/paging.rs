//! Pages of a listing: where a page starts (`cursor`) and the `Link` to the next page.
//!
//! A cursor is a position, not a secret (API.md v1.1): each listing documents the form of
//! its cursors with a JSON Schema pattern, and every string of that form is a position it
//! accepts, whether or not it ever handed it out. The forms are the listing's sort key in
//! decimal, so no value of the right form can be refused later for what it holds.

use super::call::{json, Page};
use super::input::{query_error, Query};
use super::problem::ApiError;
use crate::clock::Timestamp;
use crate::store::TrashCursor;
use rouille::Response;
use serde::Serialize;

/// The form of a cursor in a listing ordered by id (posts, comments): the id of the last
/// item shown, in decimal. openapi.json's `Cursor` parameter has this pattern.
pub const ID_CURSOR_PATTERN: &str = "^[0-9]{1,19}$";
/// The form of a trash cursor: the last item's `deleted_at` in milliseconds since 1970,
/// `-`, its id. openapi.json's `TrashCursor` parameter has this pattern.
pub const TRASH_CURSOR_PATTERN: &str = "^[0-9]{1,15}-[0-9]{1,19}$";

fn not_a_cursor(pattern: &str) -> ApiError {
    query_error("cursor", &format!("must match {pattern}"))
}

/// 1 to `max` ASCII digits, as a number (19 digits always fit in a `u64`).
fn digits(text: &str, max: usize) -> Option<u64> {
    ((1..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// An id position; one past the largest id is still a position (before all of them).
fn id_position(text: &str) -> Option<i64> {
    digits(text, 19).map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

fn trash_position(text: &str) -> Option<TrashCursor> {
    let (millis, id) = text.split_once('-')?;
    let (millis, id) = (digits(millis, 15)?, id_position(id)?);
    let deleted_at = Timestamp::from_unix_millis(millis);
    // Past the last instant a timestamp can name, the position is before every post.
    let id = if deleted_at.unix_millis() == Some(millis) {
        id
    } else {
        i64::MAX
    };
    Some(TrashCursor { deleted_at, id })
}

/// The `cursor` of a listing ordered by id, if the request has one.
pub fn id_cursor(query: &Query) -> Result<Option<i64>, ApiError> {
    match query.get("cursor")? {
        None => Ok(None),
        Some(text) => id_position(text)
            .map(Some)
            .ok_or_else(|| not_a_cursor(ID_CURSOR_PATTERN)),
    }
}

/// The `cursor` of the trash, if the request has one.
pub fn trash_cursor(query: &Query) -> Result<Option<TrashCursor>, ApiError> {
    match query.get("cursor")? {
        None => Ok(None),
        Some(text) => trash_position(text)
            .map(Some)
            .ok_or_else(|| not_a_cursor(TRASH_CURSOR_PATTERN)),
    }
}

/// The cursor after an item with this id.
pub fn after_id(id: i64) -> String {
    id.to_string()
}

/// The cursor after a trashed post deleted at `deleted_at` with this id.
pub fn after_deleted(deleted_at: Option<&Timestamp>, id: i64) -> String {
    // Trash rows always carry their deletion time, and only a hand-edited file holds one
    // that names no instant after 1970; the page then goes on from 1970 rather than fail.
    let millis = deleted_at.and_then(Timestamp::unix_millis).unwrap_or(0);
    format!("{millis}-{id}")
}

/// Where the next page of a listing is: the listing's path and the request's own filters,
/// to which the effective `limit` and the next cursor are added (`Link: <…>; rel="next"`).
pub struct NextPage {
    target: String,
}

impl NextPage {
    pub fn at(path: &str) -> NextPage {
        NextPage {
            target: path.to_owned(),
        }
    }

    /// Adds a filter the request was made with, percent-encoded; nothing when absent.
    pub fn filter(mut self, name: &str, value: Option<&str>) -> NextPage {
        if let Some(value) = value {
            self.push(name, value);
        }
        self
    }

    fn push(&mut self, name: &str, value: &str) {
        self.target
            .push(if self.target.contains('?') { '&' } else { '?' });
        self.target.push_str(name);
        self.target.push('=');
        percent_encode_into(&mut self.target, value);
    }

    fn link(mut self, limit: u32, cursor: &str) -> String {
        self.push("limit", &limit.to_string());
        self.push("cursor", cursor);
        format!("<{}>; rel=\"next\"", self.target)
    }
}

/// A page as JSON, with `Link: <…>; rel="next"` when there is a next page.
pub fn page_response<T: Serialize>(
    page: &Page<T>,
    limit: u32,
    next: NextPage,
) -> Result<Response, ApiError> {
    let response = json(200, page)?;
    Ok(match &page.next_cursor {
        Some(cursor) => response.with_additional_header("Link", next.link(limit, cursor)),
        None => response,
    })
}

/// Everything but RFC 3986's unreserved characters as `%XX`: the result is safe inside a
/// query and inside the `<…>` of a Link header.
fn percent_encode_into(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings of each form, and strings just outside it. The forms are what openapi.json
    /// documents (checked below), so the document admits exactly what the listings accept.
    const ID_FORM: &[&str] = &[
        "0",
        "00",
        "7",
        "0042",
        "9223372036854775807",
        "9999999999999999999",
    ];
    const NOT_ID_FORM: &[&str] = &[
        "",
        "-1",
        "+1",
        "1.5",
        "a",
        "7 ",
        "12345678901234567890",
        "00000000000000000000",
    ];
    const TRASH_FORM: &[&str] = &[
        "0-0",
        "1795341845123-42",
        "999999999999999-9999999999999999999",
        "253402300799999-1",
        "253402300800000-1",
    ];
    const NOT_TRASH_FORM: &[&str] = &[
        "",
        "-",
        "1-",
        "-1",
        "1795341845123",
        "1795341845123--42",
        "1795341845123-42-1",
        "1000000000000000-1",
        "1-12345678901234567890",
        "2026-11-22T10:04:05.123Z-1",
        "a-1",
    ];

    #[test]
    fn every_string_of_a_cursor_form_is_a_position_and_nothing_else_is() {
        for text in ID_FORM {
            assert!(id_position(text).is_some(), "{text}");
        }
        for text in NOT_ID_FORM {
            assert!(id_position(text).is_none(), "{text}");
        }
        for text in TRASH_FORM {
            assert!(trash_position(text).is_some(), "{text}");
        }
        for text in NOT_TRASH_FORM {
            assert!(trash_position(text).is_none(), "{text}");
        }
        assert_eq!(id_position("9999999999999999999"), Some(i64::MAX));
        let beyond = trash_position("999999999999999-1").unwrap();
        assert_eq!(
            (beyond.deleted_at.as_str(), beyond.id),
            ("9999-12-31T23:59:59.999Z", i64::MAX)
        );
    }

    #[test]
    fn cursors_made_from_items_read_back_as_their_positions() {
        assert_eq!(id_position(&after_id(42)), Some(42));
        let at = Timestamp::parse("2026-11-22T10:04:05.123Z").unwrap();
        let position = trash_position(&after_deleted(Some(&at), 42)).unwrap();
        assert_eq!((position.deleted_at, position.id), (at, 42));
    }

    #[test]
    fn openapi_documents_the_cursor_forms() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../openapi.json")).expect("openapi.json parses");
        let pattern = |name: &str| {
            doc["components"]["parameters"][name]["schema"]["pattern"]
                .as_str()
                .map(str::to_owned)
        };
        assert_eq!(pattern("Cursor").as_deref(), Some(ID_CURSOR_PATTERN));
        assert_eq!(
            pattern("TrashCursor").as_deref(),
            Some(TRASH_CURSOR_PATTERN)
        );
    }

    #[test]
    fn next_links_carry_filters_limit_and_cursor_encoded() {
        let link = NextPage::at("/posts")
            .filter("q", Some("hello wörld&x=1"))
            .filter("author_id", Some("3"))
            .filter("nothing", None)
            .link(20, "41");
        assert_eq!(
            link,
            "</posts?q=hello%20w%C3%B6rld%26x%3D1&author_id=3&limit=20&cursor=41>; rel=\"next\""
        );
        assert_eq!(
            NextPage::at("/trash").link(5, "1-2"),
            "</trash?limit=5&cursor=1-2>; rel=\"next\""
        );
    }
}
