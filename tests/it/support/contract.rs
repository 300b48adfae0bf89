//! What the contract (API.md) says answers and objects look like, checked the same way
//! by every test: the fields of a post, timestamps, 204, 401 and 422 answers, and the
//! ids of the objects in a listing.

use postd_testkit::http::Response;
use serde_json::Value;
use std::collections::BTreeSet;

/// The fields of a post, as every answer that holds one shows it.
pub const POST_FIELDS: [&str; 7] = [
    "id",
    "author_id",
    "title",
    "slug",
    "body",
    "created_at",
    "updated_at",
];

/// What a post in the trash shows beside [`POST_FIELDS`].
pub const TRASH_FIELDS: [&str; 4] = ["deleted_at", "deleted_by_id", "expires_at", "undo_until"];

/// The `id` of an object.
#[track_caller]
pub fn id(object: &Value) -> i64 {
    object["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {object}"))
}

/// The ids of objects, in their order.
#[track_caller]
pub fn ids(objects: &[Value]) -> Vec<i64> {
    objects.iter().map(id).collect()
}

/// An object's field names, sorted.
#[track_caller]
pub fn keys_of(object: &Value) -> Vec<String> {
    let mut keys: Vec<String> = object
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {object}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Field names, sorted (to compare with [`keys_of`]).
pub fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    names.sort();
    names
}

/// RFC 3339 UTC with exactly millisecond precision: `2026-11-22T10:04:05.123Z` (the form
/// postd's own `Timestamp` parses).
pub fn is_timestamp(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| postd::clock::Timestamp::parse(s).is_some())
}

/// Lets the clock leave the current millisecond, the precision of postd's timestamps: a
/// purge "older than 0s" takes only posts deleted before its own millisecond. A request
/// over a socket always took longer than that; two in process may share one.
pub fn next_millisecond() {
    std::thread::sleep(std::time::Duration::from_millis(2));
}

/// A Post object: exactly the public fields, positive ids, timestamps.
#[track_caller]
pub fn assert_post_shape(post: &Value) {
    let obj = post
        .as_object()
        .unwrap_or_else(|| panic!("post is not an object: {post}"));
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(POST_FIELDS), "post fields: {post}");
    assert!(post["id"].as_i64().is_some_and(|id| id > 0), "{post}");
    assert!(
        post["author_id"].as_i64().is_some_and(|id| id > 0),
        "{post}"
    );
    for field in ["created_at", "updated_at"] {
        assert!(
            is_timestamp(&post[field]),
            "{field} is not an RFC 3339 UTC millisecond timestamp: {post}"
        );
    }
}

/// A post in the trash of a server without `--trash-retention` and `--owner-undo`: the
/// post's fields, who deleted it and when, and `expires_at` and `undo_until` of null.
#[track_caller]
pub fn assert_trashed_shape(post: &Value) {
    let all: Vec<&str> = POST_FIELDS.iter().chain(&TRASH_FIELDS).copied().collect();
    assert_eq!(keys_of(post), sorted(&all), "{post}");
    assert!(is_timestamp(&post["deleted_at"]), "{post}");
    assert_eq!(post["expires_at"], Value::Null, "{post}");
    assert_eq!(post["undo_until"], Value::Null, "{post}");
}

#[track_caller]
pub fn assert_204(r: &Response) {
    assert_eq!(r.status, 204, "body: {}", r.text());
    assert!(
        r.body.is_empty(),
        "204 must have no body, got {:?}",
        r.text()
    );
    assert_eq!(
        r.header("Content-Type"),
        None,
        "204 must have no Content-Type"
    );
}

#[track_caller]
pub fn assert_401(r: &Response) {
    r.expect(401);
    let www = r
        .header("WWW-Authenticate")
        .unwrap_or_else(|| panic!("401 without WWW-Authenticate: {r:?}"));
    assert!(www.starts_with("Bearer"), "WWW-Authenticate: {www}");
}

/// `field` names of a 422's `errors` list.
#[track_caller]
pub fn error_fields(r: &Response) -> Vec<String> {
    let p = r.json();
    let errors = p["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors list: {p}"));
    assert!(!errors.is_empty(), "{p}");
    for e in errors {
        assert!(e["message"].is_string(), "{p}");
    }
    errors
        .iter()
        .filter_map(|e| e["field"].as_str().map(String::from))
        .collect()
}

#[track_caller]
pub fn expect_422_field(r: &Response, field: &str) {
    r.expect(422);
    let fields = error_fields(r);
    assert!(
        fields.iter().any(|f| f == field),
        "expected an error on {field}, got {fields:?}: {}",
        r.text()
    );
}

/// The permission bits of a file (a link itself, not what it points at).
pub fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}
