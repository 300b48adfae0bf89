//! Integration tests for the bulk endpoints (`/posts/bulk`, `/posts/bulk/restore`) and
//! `Idempotency-Key`, written from the contract in API.md ("Bulk operations").

use crate::support::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// method, path, caller, body, extra headers, expected status.
type RejectedCase<'a> = (
    &'a str,
    &'a str,
    &'a TestUser,
    Value,
    Vec<(&'a str, &'a str)>,
    u16,
);
/// `DELETE /posts/bulk` with this body, whatever its shape.
fn bulk_delete_body(srv: &TestApp, user: &TestUser, body: Value) -> Response {
    srv.call("DELETE", "/posts/bulk", Some(&user.token), Some(&body))
}

fn bulk_delete_repr(srv: &TestApp, user: &TestUser, body: Value) -> Response {
    srv.call_with(
        "DELETE",
        "/posts/bulk",
        Some(&user.token),
        Some(&body),
        &[("Prefer", "return=representation")],
    )
}

/// `POST /posts/bulk/restore` with these `post_ids`, whatever their shape.
fn bulk_restore_body(srv: &TestApp, user: &TestUser, ids: Value) -> Response {
    srv.call(
        "POST",
        "/posts/bulk/restore",
        Some(&user.token),
        Some(&json!({ "post_ids": ids })),
    )
}

/// `n` valid create items with distinct titles.
fn items(n: usize, prefix: &str) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"title": format!("{prefix} {i}"), "body": format!("body of {prefix} {i}")}))
        .collect()
}

fn soft_delete(srv: &TestApp, user: &TestUser, id: i64) {
    srv.call("DELETE", &format!("/posts/{id}"), Some(&user.token), None)
        .expect(204);
}

/// The `errors` array of a problem body (must be present and non-empty).
#[track_caller]
fn errors_of(resp: &Response) -> Vec<Value> {
    let body = resp.json();
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("problem has no errors array: {body}"))
        .clone();
    assert!(!errors.is_empty(), "errors array is empty: {body}");
    for e in &errors {
        assert!(e["message"].is_string(), "error entry without message: {e}");
    }
    errors
}

/// Every `index` of the errors, sorted, duplicates kept.
#[track_caller]
fn error_indexes(resp: &Response) -> Vec<u64> {
    let mut out: Vec<u64> = errors_of(resp)
        .iter()
        .map(|e| {
            e["index"]
                .as_u64()
                .unwrap_or_else(|| panic!("error entry without index: {e}"))
        })
        .collect();
    out.sort();
    out
}

/// The distinct indexes named by the errors.
#[track_caller]
fn error_index_set(resp: &Response) -> BTreeSet<u64> {
    error_indexes(resp).into_iter().collect()
}

/// The distinct `(index, id)` pairs named by the errors (both required).
#[track_caller]
fn error_index_ids(resp: &Response) -> BTreeSet<(u64, i64)> {
    errors_of(resp)
        .iter()
        .map(|e| {
            let index = e["index"]
                .as_u64()
                .unwrap_or_else(|| panic!("error entry without index: {e}"));
            let id = e["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("error entry without id: {e}"));
            (index, id)
        })
        .collect()
}

fn all_posts(srv: &impl Api) -> Vec<Value> {
    srv.collect_pages("/posts?limit=100", None)
}

fn all_trash(srv: &impl Api, admin: &TestUser) -> Vec<Value> {
    srv.collect_pages("/trash?limit=100", Some(&admin.token))
}

fn trash_entry(srv: &TestApp, admin: &TestUser, post_id: i64) -> Option<Value> {
    all_trash(srv, admin).into_iter().find(|p| id(p) == post_id)
}

fn post_count(srv: &impl Api) -> i64 {
    srv.sql_count("SELECT count(*) FROM posts")
}

/// Everything observable about the posts: public listing, trash (admin), raw row counts.
#[derive(Debug, PartialEq)]
struct Snapshot {
    posts: Vec<Value>,
    trash: Vec<Value>,
    rows: i64,
    comments: i64,
}

fn snapshot(srv: &TestApp, admin: &TestUser) -> Snapshot {
    Snapshot {
        posts: all_posts(srv),
        trash: all_trash(srv, admin),
        rows: post_count(srv),
        comments: srv.sql_count("SELECT count(*) FROM comments"),
    }
}

fn get_post(srv: &TestApp, id: i64) -> Response {
    srv.get(&format!("/posts/{id}"), None)
}

fn pause() {
    // Timestamps have millisecond precision; make sure "later" is visibly later.
    std::thread::sleep(Duration::from_millis(20));
}

// ---------------------------------------------------------------------------------------
// POST /posts/bulk
// ---------------------------------------------------------------------------------------

#[test]
fn bulk_create_returns_201_with_posts_in_input_order() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let mut batch = items(300, "Ordered");
    batch[7] = json!({"title": "With explicit slug", "body": "x", "slug": "explicit-one"});
    let resp = srv.bulk_create(&alice, Value::Array(batch.clone()));
    resp.expect(201);
    assert!(
        resp.header("Content-Type")
            .unwrap_or("")
            .starts_with("application/json"),
        "{:?}",
        resp.headers
    );
    let body = resp.json();
    let created = body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {body}"));
    assert_eq!(created.len(), 300);
    let mut seen = BTreeSet::new();
    for (item, sent) in created.iter().zip(&batch) {
        assert_post_shape(item);
        assert_eq!(item["title"], sent["title"], "input order not kept");
        assert_eq!(item["body"], sent["body"]);
        assert_eq!(item["author_id"], alice.id);
        assert!(seen.insert(id(item)), "duplicate id {item}");
    }
    assert_eq!(created[7]["slug"], "explicit-one");
    assert_eq!(created[0]["slug"], "ordered-0");
    // Really stored, and readable as the same object.
    assert_eq!(all_posts(&srv).len(), 300);
    let one = get_post(&srv, id(&created[123]));
    one.expect(200);
    assert_eq!(one.json(), created[123]);
    // Indexed for search like any other post.
    let found = srv.collect_pages("/posts?limit=100&q=ordered%20123", None);
    assert_eq!(ids(&found), vec![id(&created[123])]);
}

#[test]
fn one_invalid_item_among_1000_names_exactly_that_index_and_creates_nothing() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let mut batch = items(1000, "Item");
    batch[537] = json!({"title": "   ", "body": "blank title"});
    let resp = srv.bulk_create(&alice, Value::Array(batch));
    resp.expect(422);
    let errors = errors_of(&resp);
    assert!(
        errors.iter().all(|e| e["index"] == 537),
        "only index 537 may be named: {errors:?}"
    );
    assert!(
        errors.iter().any(|e| e["field"] == "title"),
        "field should be title: {errors:?}"
    );
    assert!(
        all_posts(&srv).is_empty(),
        "a rejected bulk create created posts"
    );
    assert_eq!(post_count(&srv), 0);
}

#[test]
fn every_invalid_item_is_listed() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let mut batch = items(20, "Item");
    batch[3] = json!({"title": "", "body": "empty title"});
    batch[11] = json!({"title": "fine", "body": "bad slug", "slug": "Not A Slug"});
    batch[16] = json!({"title": "t".repeat(201), "body": "title too long"});
    batch[19] = json!({"title": "no body"});
    let resp = srv.bulk_create(&alice, Value::Array(batch));
    resp.expect(422);
    assert_eq!(
        error_index_set(&resp),
        BTreeSet::from([3, 11, 16, 19]),
        "{}",
        resp.text()
    );
    let errors = errors_of(&resp);
    let field_of = |i: u64| {
        errors
            .iter()
            .find(|e| e["index"] == i)
            .map(|e| e["field"].clone())
    };
    assert_eq!(field_of(3), Some(json!("title")), "{errors:?}");
    assert_eq!(field_of(11), Some(json!("slug")), "{errors:?}");
    assert_eq!(field_of(16), Some(json!("title")), "{errors:?}");
    assert_eq!(field_of(19), Some(json!("body")), "{errors:?}");
    assert_eq!(post_count(&srv), 0);
}

#[test]
fn two_invalid_items_are_both_listed() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let mut batch = items(10, "Item");
    batch[2] = json!({"title": "", "body": "x"});
    batch[8] = json!({"title": "\t\n ", "body": "x"});
    let resp = srv.bulk_create(&alice, Value::Array(batch));
    resp.expect(422);
    assert_eq!(
        error_index_set(&resp),
        BTreeSet::from([2, 8]),
        "{}",
        resp.text()
    );
    assert!(all_posts(&srv).is_empty());
}

#[test]
fn slug_repeated_inside_one_batch_is_409_listing_both_indexes() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let batch = json!([
        {"title": "a", "body": "", "slug": "twice"},
        {"title": "b", "body": ""},
        {"title": "c", "body": "", "slug": "once"},
        {"title": "d", "body": "", "slug": "twice"},
    ]);
    let resp = srv.bulk_create(&alice, batch);
    resp.expect(409);
    assert_eq!(error_indexes(&resp), vec![0, 3], "{}", resp.text());
    for e in errors_of(&resp) {
        assert!(e.get("field").is_none_or(|f| f == "slug"), "{e}");
    }
    assert_eq!(post_count(&srv), 0);
    assert!(all_posts(&srv).is_empty());
}

#[test]
fn explicit_slug_taken_by_active_post_is_409_but_a_soft_deleted_slug_is_free() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let bob = srv.register("bob");
    srv.create_post_with_slug(&bob, "Taken", "taken");
    let freed = srv.create_post_with_slug(&bob, "Freed", "freed");
    soft_delete(&srv, &bob, id(&freed));
    let before = post_count(&srv);

    let batch = json!([
        {"title": "a", "body": "", "slug": "fresh"},
        {"title": "b", "body": "", "slug": "taken"},
        {"title": "c", "body": "", "slug": "freed"},
    ]);
    let resp = srv.bulk_create(&alice, batch);
    resp.expect(409);
    assert_eq!(error_indexes(&resp), vec![1], "{}", resp.text());
    assert_eq!(post_count(&srv), before, "409 must change nothing");

    let ok = srv.bulk_create(
        &alice,
        json!([
            {"title": "a", "body": "", "slug": "fresh"},
            {"title": "c", "body": "", "slug": "freed"},
        ]),
    );
    ok.expect(201);
    let slugs: Vec<Value> = ok.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].clone())
        .collect();
    assert_eq!(slugs, vec![json!("fresh"), json!("freed")]);
}

#[test]
fn validation_is_checked_before_conflicts() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    srv.create_post_with_slug(&alice, "Taken", "taken");
    let resp = srv.bulk_create(
        &alice,
        json!([
            {"title": "a", "body": "", "slug": "taken"},
            {"title": "", "body": ""},
            {"title": "c", "body": "", "slug": "dup"},
            {"title": "d", "body": "", "slug": "dup"},
        ]),
    );
    resp.expect(422);
    assert_eq!(
        error_index_set(&resp),
        BTreeSet::from([1]),
        "only the validation category is reported: {}",
        resp.text()
    );
    assert_eq!(post_count(&srv), 1);
}

#[test]
fn derived_slugs_inside_one_batch_do_not_collide() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let resp = srv.bulk_create(
        &alice,
        json!([
            {"title": "Same", "body": ""},
            {"title": "Same", "body": ""},
            {"title": "Same", "body": ""},
        ]),
    );
    resp.expect(201);
    let slugs: Vec<Value> = resp.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].clone())
        .collect();
    assert_eq!(slugs, vec![json!("same"), json!("same-2"), json!("same-3")]);

    // Taken by earlier posts: continue the sequence.
    let resp = srv.bulk_create(
        &alice,
        json!([{"title": "Same", "body": ""}, {"title": "SAME!", "body": ""}]),
    );
    resp.expect(201);
    let slugs: Vec<Value> = resp.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].clone())
        .collect();
    assert_eq!(slugs, vec![json!("same-4"), json!("same-5")]);

    // Derived slugs avoid explicit slugs of the same batch, wherever these stand.
    let resp = srv.bulk_create(
        &alice,
        json!([
            {"title": "Hello", "body": ""},
            {"title": "Hello", "body": ""},
            {"title": "other", "body": "", "slug": "hello"},
            {"title": "other", "body": "", "slug": "hello-2"},
        ]),
    );
    resp.expect(201);
    let posts = resp.json()["items"].as_array().unwrap().clone();
    let slugs: Vec<String> = posts
        .iter()
        .map(|p| p["slug"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(slugs[2], "hello");
    assert_eq!(slugs[3], "hello-2");
    for s in &slugs[..2] {
        let suffix = s
            .strip_prefix("hello-")
            .unwrap_or_else(|| panic!("derived slug {s:?} in {slugs:?}"));
        assert!(
            suffix.parse::<u32>().is_ok_and(|n| n >= 3),
            "derived slug {s:?} in {slugs:?}"
        );
    }
    assert_ne!(slugs[0], slugs[1], "{slugs:?}");
    // Every active slug is distinct.
    let all: Vec<String> = all_posts(&srv)
        .iter()
        .map(|p| p["slug"].as_str().unwrap().to_string())
        .collect();
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "{all:?}");
}

#[test]
fn empty_batch_is_422_and_over_max_bulk_is_413() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    srv.bulk_create(&alice, json!([])).expect(422);
    let resp = srv.bulk_create(&alice, Value::Array(items(10_001, "Many")));
    resp.expect(413);
    assert_eq!(post_count(&srv), 0);
}

#[test]
fn configured_max_bulk_applies_to_every_bulk_endpoint() {
    let srv = TestApp::with_args(&["--max-bulk", "3"]);
    let alice = srv.register("alice");
    let admin = srv.admin("root");
    srv.bulk_create(&alice, Value::Array(items(4, "Four")))
        .expect(413);
    assert_eq!(post_count(&srv), 0);
    let resp = srv.bulk_create(&alice, Value::Array(items(3, "Three")));
    resp.expect(201);
    let ids = ids(resp.json()["items"].as_array().unwrap());
    let patch: Vec<Value> = ids
        .iter()
        .chain([&9_999_999])
        .map(|id| json!({"id": id, "body": "new"}))
        .collect();
    srv.bulk_patch(&alice, Value::Array(patch)).expect(413);
    bulk_delete_body(
        &srv,
        &admin,
        json!({"post_ids": [ids[0], ids[1], ids[2], 9_999_999]}),
    )
    .expect(413);
    bulk_restore_body(&srv, &admin, json!([ids[0], ids[1], ids[2], 9_999_999])).expect(413);
    // Nothing changed by any of them.
    let posts = all_posts(&srv);
    assert_eq!(posts.len(), 3);
    assert!(posts.iter().all(|p| p["body"] != "new"), "{posts:?}");
}

#[test]
fn unknown_fields_and_wrong_shapes_are_422() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let t = Some(alice.token.as_str());
    let good = json!({"title": "ok", "body": "ok"});
    for body in [
        json!({"items": [good.clone()], "extra": true}),
        json!({"items": [good.clone()], "atomic": "no"}),
        json!({"items": "not an array"}),
        json!({"items": [good.clone(), "not an object"]}),
        json!({}),
        json!([good.clone()]),
        json!({"items": [good.clone(), {"title": "x", "body": 5}]}),
    ] {
        let resp = srv.call("POST", "/posts/bulk", t, Some(&body));
        assert_eq!(resp.status, 422, "{body} -> {}", resp.text());
        resp.expect(422);
    }
    // An unknown field inside an item names that item.
    let resp = srv.bulk_create(
        &alice,
        json!([good.clone(), {"title": "x", "body": "y", "color": "red"}]),
    );
    resp.expect(422);
    assert_eq!(
        error_index_set(&resp),
        BTreeSet::from([1]),
        "{}",
        resp.text()
    );
    assert_eq!(post_count(&srv), 0);
}

#[test]
fn bulk_endpoints_need_a_token_json_and_a_known_method() {
    let srv = TestApp::new();
    let body = json!({"items": [{"title": "a", "body": "b"}]});
    for (method, path) in [
        ("POST", "/posts/bulk"),
        ("PATCH", "/posts/bulk"),
        ("DELETE", "/posts/bulk"),
        ("POST", "/posts/bulk/restore"),
    ] {
        let resp = srv.call(method, path, None, Some(&body));
        assert_eq!(resp.status, 401, "{method} {path}: {}", resp.text());
        resp.expect(401);
        assert_eq!(
            resp.header("WWW-Authenticate"),
            Some("Bearer"),
            "{method} {path}"
        );
    }
    let alice = srv.register("alice");
    let auth = format!("Bearer {}", alice.token);
    let resp = srv.request(
        "POST",
        "/posts/bulk",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        Some(br#"{"items":[{"title":"a","body":"b"}]}"#),
    );
    resp.expect(415);
    let resp = srv.request(
        "POST",
        "/posts/bulk",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"items":[{"title":"a","body":"b"}"#),
    );
    resp.expect(400);
    let resp = srv.call("PUT", "/posts/bulk", Some(&alice.token), Some(&body));
    resp.expect(405);
    let allow = resp.header("Allow").unwrap_or("").to_string();
    for m in ["POST", "PATCH", "DELETE"] {
        assert!(allow.contains(m), "Allow: {allow}");
    }
    assert_eq!(post_count(&srv), 0);
}

#[test]
fn error_body_grows_linearly_for_2000_items_repeating_one_slug() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let batch: Vec<Value> = (0..2000)
        .map(|i| json!({"title": format!("t{i}"), "body": "", "slug": "all-the-same"}))
        .collect();
    let resp = srv.bulk_create(&alice, Value::Array(batch));
    resp.expect(409);
    let indexes = error_indexes(&resp);
    assert_eq!(
        indexes,
        (0..2000).collect::<Vec<u64>>(),
        "each index exactly once"
    );
    assert!(
        resp.body.len() < 400 * 1024,
        "error body is {} bytes for 2000 entries (not linear?)",
        resp.body.len()
    );
    assert_eq!(post_count(&srv), 0);
}

// ---------------------------------------------------------------------------------------
// atomic: false
// ---------------------------------------------------------------------------------------

#[test]
fn partial_mode_creates_valid_items_and_reports_the_rest() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let bob = srv.register("bob");
    srv.create_post_with_slug(&bob, "Taken", "taken");
    let body = json!({"atomic": false, "items": [
        {"title": "first", "body": "1"},
        {"title": "", "body": "invalid"},
        {"title": "third", "body": "3", "slug": "taken"},
        {"title": "fourth", "body": "4", "slug": "fourth-slug"},
    ]});
    let resp = srv.call("POST", "/posts/bulk", Some(&alice.token), Some(&body));
    resp.expect(200);
    let out = resp.json();
    assert_eq!(out["created"], 2, "{out}");
    assert_eq!(out["failed"], 2, "{out}");
    let results = out["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {out}"));
    assert_eq!(results.len(), 4, "{out}");
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i, "results in input order: {out}");
    }
    assert_eq!(results[0]["status"], 201, "{out}");
    assert_eq!(results[1]["status"], 422, "{out}");
    assert_eq!(results[2]["status"], 409, "{out}");
    assert_eq!(results[3]["status"], 201, "{out}");
    assert!(
        results[1]["errors"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        "{out}"
    );
    assert!(results[1].get("item").is_none_or(Value::is_null), "{out}");
    for i in [0, 3] {
        let item = &results[i]["item"];
        assert_post_shape(item);
        assert_eq!(item["author_id"], alice.id);
        let stored = get_post(&srv, id(item));
        stored.expect(200);
        assert_eq!(&stored.json(), item);
    }
    assert_eq!(results[3]["item"]["slug"], "fourth-slug");
    assert_eq!(
        srv.collect_pages(&format!("/posts?limit=100&author_id={}", alice.id), None)
            .len(),
        2
    );
    assert_eq!(post_count(&srv), 3);

    // atomic: true is the default behaviour: all-or-nothing, 201.
    let resp = srv.call(
        "POST",
        "/posts/bulk",
        Some(&alice.token),
        Some(&json!({"atomic": true, "items": [{"title": "x", "body": ""}, {"title": "", "body": ""}]})),
    );
    resp.expect(422);
    assert_eq!(post_count(&srv), 3);
    let resp = srv.call(
        "POST",
        "/posts/bulk",
        Some(&alice.token),
        Some(&json!({"atomic": true, "items": [{"title": "x", "body": ""}]})),
    );
    resp.expect(201);
    assert_eq!(post_count(&srv), 4);
}

// ---------------------------------------------------------------------------------------
// PATCH /posts/bulk
// ---------------------------------------------------------------------------------------

struct PatchFixture {
    srv: TestApp,
    alice: TestUser,
    bob: TestUser,
    admin: TestUser,
    a1: Value,
    a2: Value,
    b1: Value,
    b2: Value,
    a_deleted: Value,
}

fn patch_fixture() -> PatchFixture {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let bob = srv.register("bob");
    let admin = srv.admin("root");
    let a1 = srv.create_post_with_slug(&alice, "A one", "a-one");
    let a2 = srv.create_post_with_slug(&alice, "A two", "a-two");
    let b1 = srv.create_post_with_slug(&bob, "B one", "b-one");
    let b2 = srv.create_post_with_slug(&bob, "B two", "b-two");
    let a_deleted = srv.create_post_with_slug(&alice, "A gone", "a-gone");
    soft_delete(&srv, &alice, id(&a_deleted));
    PatchFixture {
        srv,
        alice,
        bob,
        admin,
        a1,
        a2,
        b1,
        b2,
        a_deleted,
    }
}

#[test]
fn bulk_patch_updates_in_request_order() {
    let f = patch_fixture();
    pause();
    let resp = f.srv.bulk_patch(
        &f.alice,
        json!([
            {"id": id(&f.a2), "title": "A two, renamed"},
            {"id": id(&f.a1), "body": "new body", "slug": "a-one-new"},
        ]),
    );
    resp.expect(200);
    let out = resp.json();
    let items = out["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {out}"));
    assert_eq!(
        ids(items),
        vec![id(&f.a2), id(&f.a1)],
        "request order: {out}"
    );
    assert_eq!(items[0]["title"], "A two, renamed");
    assert_eq!(items[1]["slug"], "a-one-new");
    for item in items {
        assert_post_shape(item);
    }
    let a1 = get_post(&f.srv, id(&f.a1)).json();
    let a2 = get_post(&f.srv, id(&f.a2)).json();
    assert_eq!(a2["title"], "A two, renamed");
    assert_eq!(a2["slug"], "a-two");
    assert_eq!(a1["title"], "A one");
    assert_eq!(a1["body"], "new body");
    assert_eq!(a1["slug"], "a-one-new");
    assert_eq!(a1["created_at"], f.a1["created_at"]);
    assert!(
        a1["updated_at"].as_str().unwrap() > f.a1["updated_at"].as_str().unwrap(),
        "updated_at not bumped: {a1}"
    );
    assert!(
        a2["updated_at"].as_str().unwrap() > f.a2["updated_at"].as_str().unwrap(),
        "updated_at not bumped: {a2}"
    );

    // The search index follows the new title.
    assert_eq!(
        ids(&f.srv.collect_pages("/posts?limit=100&q=renamed", None)),
        vec![id(&f.a2)]
    );

    // Setting a post's slug to its own current slug is not a conflict.
    let resp = f.srv.bulk_patch(
        &f.alice,
        json!([{"id": id(&f.a2), "slug": "a-two", "body": "again"}]),
    );
    resp.expect(200);
    assert_eq!(resp.json()["items"][0]["slug"], "a-two");
}

#[test]
fn bulk_patch_by_admin_may_change_anyones_posts() {
    let f = patch_fixture();
    let resp = f.srv.bulk_patch(
        &f.admin,
        json!([
            {"id": id(&f.b1), "title": "by admin"},
            {"id": id(&f.a1), "title": "by admin too"},
        ]),
    );
    resp.expect(200);
    let items = resp.json()["items"].as_array().unwrap().clone();
    assert_eq!(items[0]["title"], "by admin");
    assert_eq!(items[0]["author_id"], f.bob.id, "author must not change");
    assert_eq!(items[1]["title"], "by admin too");
    assert_eq!(items[1]["author_id"], f.alice.id);
}

#[test]
fn bulk_patch_403_lists_every_item_not_owned_and_changes_nothing() {
    let f = patch_fixture();
    let before = snapshot(&f.srv, &f.admin);
    let resp = f.srv.bulk_patch(
        &f.alice,
        json!([
            {"id": id(&f.a1), "title": "mine"},
            {"id": id(&f.b1), "title": "not mine"},
            {"id": id(&f.a2), "title": "mine"},
            {"id": id(&f.b2), "body": "not mine"},
        ]),
    );
    resp.expect(403);
    assert_eq!(
        error_index_ids(&resp),
        BTreeSet::from([(1, id(&f.b1)), (3, id(&f.b2))]),
        "{}",
        resp.text()
    );
    assert_eq!(snapshot(&f.srv, &f.admin), before);
}

#[test]
fn bulk_patch_404_lists_absent_and_soft_deleted_ids_before_ownership() {
    let f = patch_fixture();
    let before = snapshot(&f.srv, &f.admin);
    let resp = f.srv.bulk_patch(
        &f.alice,
        json!([
            {"id": id(&f.a1), "title": "mine"},
            {"id": 987_654, "title": "absent"},
            {"id": id(&f.b1), "title": "not mine"},
            {"id": id(&f.a_deleted), "title": "soft-deleted"},
        ]),
    );
    resp.expect(404);
    assert_eq!(
        error_index_ids(&resp),
        BTreeSet::from([(1, 987_654), (3, id(&f.a_deleted))]),
        "{}",
        resp.text()
    );
    assert_eq!(snapshot(&f.srv, &f.admin), before);
    // Soft-deleted is absent for admins too.
    let resp = f
        .srv
        .bulk_patch(&f.admin, json!([{"id": id(&f.a_deleted), "title": "x"}]));
    resp.expect(404);
    assert_eq!(snapshot(&f.srv, &f.admin), before);
}

#[test]
fn bulk_patch_validation_comes_first_and_an_id_only_item_is_422() {
    let f = patch_fixture();
    let before = snapshot(&f.srv, &f.admin);
    // Validation (422) is reported even though item 0 does not exist (404) and item 2 is
    // not owned (403).
    let resp = f.srv.bulk_patch(
        &f.alice,
        json!([
            {"id": 987_654, "title": "absent"},
            {"id": id(&f.a1)},
            {"id": id(&f.b1), "title": "not mine"},
            {"id": id(&f.a2), "title": ""},
        ]),
    );
    resp.expect(422);
    assert_eq!(
        error_index_set(&resp),
        BTreeSet::from([1, 3]),
        "{}",
        resp.text()
    );
    for body in [
        json!([{"title": "no id"}]),
        json!([{"id": "abc", "title": "x"}]),
        json!([{"id": 0, "title": "x"}]),
        json!([{"id": id(&f.a1), "title": "x", "extra": 1}]),
        json!([{"id": id(&f.a1), "slug": "Bad Slug"}]),
        json!([]),
    ] {
        let resp = f.srv.bulk_patch(&f.alice, body.clone());
        assert_eq!(resp.status, 422, "{body} -> {}", resp.text());
        resp.expect(422);
    }
    let resp = f.srv.call(
        "PATCH",
        "/posts/bulk",
        Some(&f.alice.token),
        Some(&json!({"items": [{"id": id(&f.a1), "title": "x"}], "atomic": false})),
    );
    resp.expect(422);
    assert_eq!(snapshot(&f.srv, &f.admin), before);
}

#[test]
fn bulk_patch_slug_conflicts_are_409_and_change_nothing() {
    let f = patch_fixture();
    let before = snapshot(&f.srv, &f.admin);
    // Taken by another active post.
    let resp = f.srv.bulk_patch(
        &f.alice,
        json!([
            {"id": id(&f.a1), "title": "fine"},
            {"id": id(&f.a2), "slug": "b-one"},
        ]),
    );
    resp.expect(409);
    let errs = error_index_ids(&resp);
    assert_eq!(errs, BTreeSet::from([(1, id(&f.a2))]), "{}", resp.text());
    assert_eq!(snapshot(&f.srv, &f.admin), before);

    // Two items setting the same slug.
    let resp = f.srv.bulk_patch(
        &f.alice,
        json!([
            {"id": id(&f.a1), "slug": "shared-new"},
            {"id": id(&f.a2), "slug": "shared-new"},
        ]),
    );
    resp.expect(409);
    assert_eq!(
        error_index_set(&resp),
        BTreeSet::from([0, 1]),
        "{}",
        resp.text()
    );
    assert_eq!(snapshot(&f.srv, &f.admin), before);

    // A slug held only by a soft-deleted post is free.
    let resp = f
        .srv
        .bulk_patch(&f.alice, json!([{"id": id(&f.a1), "slug": "a-gone"}]));
    resp.expect(200);
    assert_eq!(get_post(&f.srv, id(&f.a1)).json()["slug"], "a-gone");
}

#[test]
fn bulk_patch_swapping_two_slugs_never_fails_with_5xx() {
    let f = patch_fixture();
    let before = snapshot(&f.srv, &f.admin);
    let resp = f.srv.bulk_patch(
        &f.alice,
        json!([
            {"id": id(&f.a1), "slug": "a-two"},
            {"id": id(&f.a2), "slug": "a-one"},
        ]),
    );
    match resp.status {
        200 => {
            assert_eq!(get_post(&f.srv, id(&f.a1)).json()["slug"], "a-two");
            assert_eq!(get_post(&f.srv, id(&f.a2)).json()["slug"], "a-one");
        }
        409 => {
            resp.expect(409);
            assert_eq!(snapshot(&f.srv, &f.admin), before);
        }
        other => panic!("swap answered {other}: {}", resp.text()),
    }
}

// ---------------------------------------------------------------------------------------
// DELETE /posts/bulk
// ---------------------------------------------------------------------------------------

#[test]
fn bulk_delete_is_admin_only_before_anything_else() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let admin = srv.admin("root");
    let p = srv.create_post(&alice, "mine", "b");
    let before = snapshot(&srv, &admin);
    for body in [
        json!({"post_ids": [id(&p)]}),
        json!({"post_ids": [id(&p)], "hard_delete": true}),
        json!({"post_ids": [987_654]}),
        json!({"post_ids": []}),
        json!({"bogus": 1}),
    ] {
        let resp = bulk_delete_body(&srv, &alice, body.clone());
        assert_eq!(resp.status, 403, "{body} -> {}", resp.text());
        resp.expect(403);
    }
    // Bulk restore too.
    soft_delete(&srv, &alice, id(&p));
    let before_restore = snapshot(&srv, &admin);
    for body in [json!([id(&p)]), json!([]), json!("garbage")] {
        let resp = bulk_restore_body(&srv, &alice, body.clone());
        assert_eq!(resp.status, 403, "{body} -> {}", resp.text());
        resp.expect(403);
    }
    assert_eq!(snapshot(&srv, &admin), before_restore);
    assert_ne!(before, before_restore);
}

#[test]
fn bulk_soft_delete_skips_absent_and_keeps_the_first_deleted_at() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let admin = srv.admin("root");
    let p1 = id(&srv.create_post(&alice, "one", "b"));
    let p2 = id(&srv.create_post(&alice, "two", "b"));
    let p3 = id(&srv.create_post(&alice, "three", "b"));
    let p4 = id(&srv.create_post(&alice, "four", "b"));
    soft_delete(&srv, &alice, p2);
    let first = trash_entry(&srv, &admin, p2).expect("p2 in trash");
    assert_eq!(first["deleted_by_id"], alice.id);
    pause();

    let resp = srv.bulk_delete(&admin, &[p3, 987_654, p2, p1]);
    resp.expect(204);
    assert!(resp.body.is_empty(), "204 with a body: {}", resp.text());
    assert_eq!(resp.header("Content-Type"), None);

    let active = ids(&all_posts(&srv));
    assert_eq!(active, vec![p4]);
    let trash = all_trash(&srv, &admin);
    let trashed: BTreeSet<i64> = ids(&trash).into_iter().collect();
    assert_eq!(trashed, BTreeSet::from([p1, p2, p3]));
    let again = trash_entry(&srv, &admin, p2).unwrap();
    assert_eq!(
        again["deleted_at"], first["deleted_at"],
        "the first deleted_at must be kept"
    );
    assert_eq!(
        again["deleted_by_id"], alice.id,
        "the first deleter must be kept"
    );
    for id in [p1, p3] {
        let entry = trash_entry(&srv, &admin, id).unwrap();
        assert_eq!(entry["deleted_by_id"], admin.id, "{entry}");
        assert!(
            entry["deleted_at"].as_str().unwrap() > first["deleted_at"].as_str().unwrap(),
            "{entry}"
        );
        get_post(&srv, id).expect(404);
    }
    // Still rows: soft delete.
    assert_eq!(post_count(&srv), 4);
}

#[test]
fn bulk_delete_prefer_representation_lists_deleted_and_skipped() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let admin = srv.admin("root");
    let p1 = id(&srv.create_post(&alice, "one", "b"));
    let p2 = id(&srv.create_post(&alice, "two", "b"));
    let p3 = id(&srv.create_post(&alice, "three", "b"));
    soft_delete(&srv, &alice, p2);
    let resp = bulk_delete_repr(&srv, &admin, json!({"post_ids": [p3, 987_654, p2, p1]}));
    resp.expect(200);
    let out = resp.json();
    assert_eq!(out["deleted"], json!([p3, p1]), "{out}");
    assert_eq!(out["skipped"], json!([987_654, p2]), "{out}");
    assert!(all_posts(&srv).is_empty());
}

#[test]
fn bulk_hard_delete_removes_active_and_trashed_rows_and_their_comments() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let bob = srv.register("bob");
    let admin = srv.admin("root");
    let p1 = id(&srv.create_post(&alice, "one", "b"));
    let p2 = id(&srv.create_post(&alice, "two", "b"));
    let keep = id(&srv.create_post(&bob, "keep", "b"));
    for (post, n) in [(p1, 2), (p2, 3), (keep, 1)] {
        for i in 0..n {
            srv.call(
                "POST",
                &format!("/posts/{post}/comments"),
                Some(&bob.token),
                Some(&json!({"body": format!("c{i}")})),
            )
            .expect(201);
        }
    }
    assert_eq!(srv.sql_count("SELECT count(*) FROM comments"), 6);
    soft_delete(&srv, &alice, p2);

    let resp = bulk_delete_repr(
        &srv,
        &admin,
        json!({"post_ids": [p2, 987_654, p1], "hard_delete": true}),
    );
    resp.expect(200);
    let out = resp.json();
    assert_eq!(out["deleted"], json!([p2, p1]), "{out}");
    assert_eq!(out["skipped"], json!([987_654]), "{out}");
    assert_eq!(post_count(&srv), 1);
    assert_eq!(
        srv.sql_count(&format!(
            "SELECT count(*) FROM posts WHERE id IN ({p1}, {p2})"
        )),
        0
    );
    assert_eq!(
        srv.sql_count("SELECT count(*) FROM comments"),
        1,
        "comments must cascade"
    );
    assert!(all_trash(&srv, &admin).is_empty());
    assert_eq!(ids(&all_posts(&srv)), vec![keep]);

    // Plain 204 form, and already-removed ids are skipped.
    let resp = bulk_delete_body(
        &srv,
        &admin,
        json!({"post_ids": [p1, keep], "hard_delete": true}),
    );
    resp.expect(204);
    assert!(resp.body.is_empty());
    assert_eq!(post_count(&srv), 0);
    assert_eq!(srv.sql_count("SELECT count(*) FROM comments"), 0);
}

#[test]
fn bulk_delete_rejects_bad_bodies_with_422() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let admin = srv.admin("root");
    let p = id(&srv.create_post(&alice, "one", "b"));
    for body in [
        json!({"post_ids": []}),
        json!({"post_ids": [p], "extra": 1}),
        json!({"post_ids": [p], "hard_delete": "yes"}),
        json!({"post_ids": [p, "abc"]}),
        json!({"post_ids": [p, 0]}),
        json!({"post_ids": [p, -3]}),
        json!({"post_ids": "1"}),
        json!({}),
    ] {
        let resp = bulk_delete_body(&srv, &admin, body.clone());
        assert_eq!(resp.status, 422, "{body} -> {}", resp.text());
        resp.expect(422);
    }
    assert_eq!(ids(&all_posts(&srv)), vec![p]);
}

// ---------------------------------------------------------------------------------------
// POST /posts/bulk/restore
// ---------------------------------------------------------------------------------------

#[test]
fn bulk_restore_returns_posts_in_request_order() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let bob = srv.register("bob");
    let admin = srv.admin("root");
    let p1 = id(&srv.create_post(&alice, "one", "b"));
    let p2 = id(&srv.create_post(&bob, "two", "b"));
    let p3 = id(&srv.create_post(&alice, "three", "b"));
    srv.call(
        "POST",
        &format!("/posts/{p1}/comments"),
        Some(&bob.token),
        Some(&json!({"body": "hi"})),
    )
    .expect(201);
    srv.bulk_delete(&admin, &[p1, p2, p3]).expect(204);
    srv.get(&format!("/posts/{p1}/comments"), None).expect(404);

    let resp = srv.bulk_restore(&admin, &[p3, p1]);
    resp.expect(200);
    let out = resp.json();
    let items = out["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {out}"));
    assert_eq!(ids(items), vec![p3, p1], "{out}");
    for item in items {
        assert!(
            item.get("deleted_at").is_none_or(Value::is_null),
            "restored post still deleted: {item}"
        );
        assert_eq!(get_post(&srv, id(item)).json()["title"], item["title"]);
    }
    let active: BTreeSet<i64> = ids(&all_posts(&srv)).into_iter().collect();
    assert_eq!(active, BTreeSet::from([p1, p3]));
    assert_eq!(ids(&all_trash(&srv, &admin)), vec![p2]);
    let comments = srv.get(&format!("/posts/{p1}/comments"), None);
    comments.expect(200);
    assert_eq!(
        comments.json()["items"].as_array().unwrap().len(),
        1,
        "restoring shows comments again"
    );
}

#[test]
fn bulk_restore_404_lists_absent_ids_and_restores_nothing() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let admin = srv.admin("root");
    let p1 = id(&srv.create_post(&alice, "one", "b"));
    let p2 = id(&srv.create_post(&alice, "two", "b"));
    srv.bulk_delete(&admin, &[p1]).expect(204);
    let before = snapshot(&srv, &admin);
    // Absent ids (404) win over "not deleted" (400): existence is checked first.
    let resp = srv.bulk_restore(&admin, &[p1, 987_654, p2, 876_543]);
    resp.expect(404);
    assert_eq!(
        error_index_ids(&resp),
        BTreeSet::from([(1, 987_654), (3, 876_543)]),
        "{}",
        resp.text()
    );
    assert_eq!(snapshot(&srv, &admin), before);
    // `index` is the position in the request array, even when an id is repeated before it.
    let resp = srv.bulk_restore(&admin, &[p1, p1, 987_654]);
    resp.expect(404);
    assert_eq!(
        error_index_ids(&resp),
        BTreeSet::from([(2, 987_654)]),
        "{}",
        resp.text()
    );
    let resp = srv.bulk_restore(&admin, &[p1, p1, p2]);
    resp.expect(400);
    assert_eq!(
        error_index_ids(&resp),
        BTreeSet::from([(2, p2)]),
        "{}",
        resp.text()
    );
    assert_eq!(snapshot(&srv, &admin), before);
}

#[test]
fn bulk_restore_400_lists_ids_not_deleted_and_restores_nothing() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let admin = srv.admin("root");
    let p1 = id(&srv.create_post(&alice, "one", "b"));
    let p2 = id(&srv.create_post(&alice, "two", "b"));
    let p3 = id(&srv.create_post(&alice, "three", "b"));
    srv.bulk_delete(&admin, &[p1]).expect(204);
    let before = snapshot(&srv, &admin);
    let resp = srv.bulk_restore(&admin, &[p2, p1, p3]);
    resp.expect(400);
    assert_eq!(
        error_index_ids(&resp),
        BTreeSet::from([(0, p2), (2, p3)]),
        "{}",
        resp.text()
    );
    assert_eq!(snapshot(&srv, &admin), before);
}

#[test]
fn bulk_restore_409_lists_slug_conflicts_and_restores_nothing() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let admin = srv.admin("root");
    // p1's slug is taken by an active post after p1 was deleted.
    let p1 = id(&srv.create_post_with_slug(&alice, "One", "reborn"));
    let p2 = id(&srv.create_post_with_slug(&alice, "Two", "innocent"));
    srv.bulk_delete(&admin, &[p1, p2]).expect(204);
    srv.create_post_with_slug(&alice, "New one", "reborn");
    // p3 and p4 both held "shared" at different times; restoring both would clash.
    let p3 = id(&srv.create_post_with_slug(&alice, "Three", "shared"));
    soft_delete(&srv, &alice, p3);
    let p4 = id(&srv.create_post_with_slug(&alice, "Four", "shared"));
    soft_delete(&srv, &alice, p4);
    let before = snapshot(&srv, &admin);

    let resp = srv.bulk_restore(&admin, &[p2, p1]);
    resp.expect(409);
    assert_eq!(
        error_index_ids(&resp),
        BTreeSet::from([(1, p1)]),
        "{}",
        resp.text()
    );
    assert_eq!(
        snapshot(&srv, &admin),
        before,
        "p2 must not be restored either"
    );

    let resp = srv.bulk_restore(&admin, &[p3, p2, p4]);
    resp.expect(409);
    assert_eq!(
        error_index_set(&resp),
        BTreeSet::from([0, 2]),
        "{}",
        resp.text()
    );
    assert_eq!(snapshot(&srv, &admin), before);

    // Without the clash it works.
    let resp = srv.bulk_restore(&admin, &[p3, p2]);
    resp.expect(200);
    assert_eq!(ids(resp.json()["items"].as_array().unwrap()), vec![p3, p2]);
}

#[test]
fn bulk_restore_rejects_bad_bodies_with_422() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let admin = srv.admin("root");
    let p = id(&srv.create_post(&alice, "one", "b"));
    srv.bulk_delete(&admin, &[p]).expect(204);
    for body in [
        json!({"post_ids": []}),
        json!({"post_ids": [p], "extra": true}),
        json!({"post_ids": [p, "x"]}),
        json!({"post_ids": [p, 0]}),
        json!({}),
    ] {
        let resp = admin_restore_raw(&srv, &admin, &body);
        assert_eq!(resp.status, 422, "{body} -> {}", resp.text());
        resp.expect(422);
    }
    assert_eq!(ids(&all_trash(&srv, &admin)), vec![p]);
}

fn admin_restore_raw(srv: &TestApp, admin: &TestUser, body: &Value) -> Response {
    srv.call(
        "POST",
        "/posts/bulk/restore",
        Some(&admin.token),
        Some(body),
    )
}

// ---------------------------------------------------------------------------------------
// Rejected requests change nothing
// ---------------------------------------------------------------------------------------

#[test]
fn rejected_bulk_requests_change_nothing() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let bob = srv.register("bob");
    let admin = srv.admin("root");
    let a1 = id(&srv.create_post_with_slug(&alice, "A one", "a-one"));
    let a2 = id(&srv.create_post_with_slug(&alice, "A two", "a-two"));
    let b1 = id(&srv.create_post_with_slug(&bob, "B one", "b-one"));
    srv.call(
        "POST",
        &format!("/posts/{a1}/comments"),
        Some(&bob.token),
        Some(&json!({"body": "c"})),
    )
    .expect(201);
    let gone = id(&srv.create_post_with_slug(&alice, "Gone", "gone"));
    let reborn = id(&srv.create_post_with_slug(&alice, "Reborn", "reborn"));
    srv.bulk_delete(&admin, &[gone, reborn]).expect(204);
    srv.create_post_with_slug(&bob, "Reborn again", "reborn");
    let keyed = srv.call_with(
        "POST",
        "/posts/bulk",
        Some(&alice.token),
        Some(&json!({"items": [{"title": "keyed", "body": ""}]})),
        &[("Idempotency-Key", "key-1")],
    );
    keyed.expect(201);

    let before = snapshot(&srv, &admin);
    let cases: Vec<RejectedCase> = vec![
        (
            "POST",
            "/posts/bulk",
            &alice,
            json!({"items": [{"title": "ok", "body": ""}, {"title": "", "body": ""}]}),
            vec![],
            422,
        ),
        (
            "POST",
            "/posts/bulk",
            &alice,
            json!({"items": [{"title": "ok", "body": ""}, {"title": "x", "body": "", "slug": "b-one"}]}),
            vec![],
            409,
        ),
        (
            "POST",
            "/posts/bulk",
            &alice,
            json!({"items": [{"title": "ok", "body": "", "slug": "d"}, {"title": "x", "body": "", "slug": "d"}]}),
            vec![],
            409,
        ),
        (
            "POST",
            "/posts/bulk",
            &alice,
            json!({"items": [{"title": "ok", "body": "", "x": 1}]}),
            vec![],
            422,
        ),
        (
            "POST",
            "/posts/bulk",
            &alice,
            json!({"items": [{"title": "different", "body": ""}]}),
            vec![("Idempotency-Key", "key-1")],
            422,
        ),
        (
            "POST",
            "/posts/bulk",
            &alice,
            json!({"items": [{"title": "ok", "body": ""}]}),
            vec![("Idempotency-Key", "bad key")],
            400,
        ),
        (
            "PATCH",
            "/posts/bulk",
            &alice,
            json!({"items": [{"id": a1, "title": "new"}, {"id": 987_654, "title": "x"}]}),
            vec![],
            404,
        ),
        (
            "PATCH",
            "/posts/bulk",
            &alice,
            json!({"items": [{"id": a1, "title": "new"}, {"id": gone, "title": "x"}]}),
            vec![],
            404,
        ),
        (
            "PATCH",
            "/posts/bulk",
            &alice,
            json!({"items": [{"id": a1, "title": "new"}, {"id": b1, "title": "x"}]}),
            vec![],
            403,
        ),
        (
            "PATCH",
            "/posts/bulk",
            &alice,
            json!({"items": [{"id": a1, "title": "new"}, {"id": a2, "slug": "b-one"}]}),
            vec![],
            409,
        ),
        (
            "PATCH",
            "/posts/bulk",
            &alice,
            json!({"items": [{"id": a1, "title": "new"}, {"id": a2}]}),
            vec![],
            422,
        ),
        (
            "DELETE",
            "/posts/bulk",
            &alice,
            json!({"post_ids": [a1, a2]}),
            vec![],
            403,
        ),
        (
            "DELETE",
            "/posts/bulk",
            &admin,
            json!({"post_ids": [a1, "x"]}),
            vec![],
            422,
        ),
        (
            "DELETE",
            "/posts/bulk",
            &admin,
            json!({"post_ids": [a1], "hard_delete": true, "x": 1}),
            vec![],
            422,
        ),
        (
            "POST",
            "/posts/bulk/restore",
            &admin,
            json!({"post_ids": [gone, 987_654]}),
            vec![],
            404,
        ),
        (
            "POST",
            "/posts/bulk/restore",
            &admin,
            json!({"post_ids": [gone, a1]}),
            vec![],
            400,
        ),
        (
            "POST",
            "/posts/bulk/restore",
            &admin,
            json!({"post_ids": [gone, reborn]}),
            vec![],
            409,
        ),
        (
            "POST",
            "/posts/bulk/restore",
            &alice,
            json!({"post_ids": [gone]}),
            vec![],
            403,
        ),
    ];
    for (method, path, user, body, headers, status) in cases {
        let resp = srv.call_with(method, path, Some(&user.token), Some(&body), &headers);
        assert_eq!(
            resp.status,
            status,
            "{method} {path} {body} -> {}",
            resp.text()
        );
        resp.expect(status);
        assert_eq!(
            snapshot(&srv, &admin),
            before,
            "{method} {path} {body} changed something"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Idempotency-Key
// ---------------------------------------------------------------------------------------

#[test]
fn idempotent_bulk_replay_returns_the_same_body_and_creates_nothing() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let bob = srv.register("bob");
    let body = json!({"items": [{"title": "One", "body": "1"}, {"title": "Two", "body": "2"}]});
    let key = [("Idempotency-Key", "retry-me-0001")];
    let first = srv.call_with("POST", "/posts/bulk", Some(&alice.token), Some(&body), &key);
    first.expect(201);
    assert_ne!(
        first.header("Idempotent-Replayed"),
        Some("true"),
        "a first answer is not a replay"
    );
    assert_eq!(post_count(&srv), 2);

    let again = srv.call_with("POST", "/posts/bulk", Some(&alice.token), Some(&body), &key);
    again.expect(201);
    assert_eq!(
        again.header("Idempotent-Replayed"),
        Some("true"),
        "{:?}",
        again.headers
    );
    assert_eq!(again.body, first.body, "a replay must be byte-identical");
    assert_eq!(post_count(&srv), 2, "a replay must not write");
    assert_eq!(all_posts(&srv).len(), 2);

    // Same key, different body: 422, nothing written, the original still replays.
    let other = json!({"items": [{"title": "One", "body": "changed"}]});
    let resp = srv.call_with(
        "POST",
        "/posts/bulk",
        Some(&alice.token),
        Some(&other),
        &key,
    );
    resp.expect(422);
    assert_eq!(post_count(&srv), 2);
    let third = srv.call_with("POST", "/posts/bulk", Some(&alice.token), Some(&body), &key);
    third.expect(201);
    assert_eq!(third.body, first.body);
    assert_eq!(post_count(&srv), 2);

    // Still a pure replay after the posts it created were deleted: nothing recreated.
    let admin = srv.admin("root");
    let alice_ids: Vec<i64> = ids(first.json()["items"].as_array().unwrap());
    srv.bulk_delete(&admin, &alice_ids).expect(204);
    let before = snapshot(&srv, &admin);
    let fourth = srv.call_with("POST", "/posts/bulk", Some(&alice.token), Some(&body), &key);
    fourth.expect(201);
    assert_eq!(fourth.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(fourth.body, first.body);
    assert_eq!(snapshot(&srv, &admin), before, "a replay must not write");
    srv.bulk_restore(&admin, &alice_ids).expect(200);

    // Another user's identical key is independent.
    let bobs = srv.call_with("POST", "/posts/bulk", Some(&bob.token), Some(&body), &key);
    bobs.expect(201);
    assert_ne!(bobs.header("Idempotent-Replayed"), Some("true"));
    let items = bobs.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|p| p["author_id"] == bob.id), "{items:?}");
    let alice_ids: BTreeSet<i64> = ids(first.json()["items"].as_array().unwrap())
        .into_iter()
        .collect();
    assert!(ids(&items).iter().all(|id| !alice_ids.contains(id)));
    assert_eq!(post_count(&srv), 4);
    assert_eq!(all_posts(&srv).len(), 4);
}

#[test]
fn idempotent_replay_of_partial_mode_answer() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let body =
        json!({"atomic": false, "items": [{"title": "ok", "body": ""}, {"title": "", "body": ""}]});
    let key = [("Idempotency-Key", "partial-1")];
    let first = srv.call_with("POST", "/posts/bulk", Some(&alice.token), Some(&body), &key);
    first.expect(200);
    assert_eq!(post_count(&srv), 1);
    let again = srv.call_with("POST", "/posts/bulk", Some(&alice.token), Some(&body), &key);
    again.expect(200);
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(post_count(&srv), 1);
}

#[test]
fn idempotent_single_create_replays_with_location() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let body = json!({"title": "single", "body": "x"});
    let key = [("Idempotency-Key", "single-1")];
    let first = srv.call_with("POST", "/posts", Some(&alice.token), Some(&body), &key);
    first.expect(201);
    let again = srv.call_with("POST", "/posts", Some(&alice.token), Some(&body), &key);
    again.expect(201);
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("Location"), first.header("Location"));
    assert!(first.header("Location").is_some());
    assert_eq!(post_count(&srv), 1);
    let resp = srv.call_with(
        "POST",
        "/posts",
        Some(&alice.token),
        Some(&json!({"title": "other", "body": "x"})),
        &key,
    );
    resp.expect(422);
    assert_eq!(post_count(&srv), 1);
}

#[test]
fn malformed_idempotency_keys_are_400_and_visible_ascii_is_fine() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let body = json!({"items": [{"title": "t", "body": ""}]});
    let too_long = "k".repeat(256);
    for key in [too_long.as_str(), "has space", "tab\there", "del\u{7f}char"] {
        for path in ["/posts/bulk", "/posts"] {
            let b = if path == "/posts" {
                json!({"title": "t", "body": ""})
            } else {
                body.clone()
            };
            let resp = srv.call_with(
                "POST",
                path,
                Some(&alice.token),
                Some(&b),
                &[("Idempotency-Key", key)],
            );
            assert_eq!(resp.status, 400, "key {key:?} on {path}: {}", resp.text());
            resp.expect(400);
        }
    }
    assert_eq!(post_count(&srv), 0);
    // 255 visible ASCII characters, punctuation included, and a single character.
    let visible: String = (0x21u8..=0x7e).map(char::from).cycle().take(255).collect();
    let resp = srv.call_with(
        "POST",
        "/posts/bulk",
        Some(&alice.token),
        Some(&body),
        &[("Idempotency-Key", &visible)],
    );
    resp.expect(201);
    let resp = srv.call_with(
        "POST",
        "/posts/bulk",
        Some(&alice.token),
        Some(&body),
        &[("Idempotency-Key", &visible)],
    );
    resp.expect(201);
    assert_eq!(resp.header("Idempotent-Replayed"), Some("true"));
    srv.call_with(
        "POST",
        "/posts/bulk",
        Some(&alice.token),
        Some(&body),
        &[("Idempotency-Key", "x")],
    )
    .expect(201);
    assert_eq!(post_count(&srv), 2);
}

// ---------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Ledger {
    active: BTreeSet<i64>,
    trashed: BTreeSet<i64>,
    removed: BTreeSet<i64>,
    requests: usize,
}

#[track_caller]
fn acknowledged(resp: &Response, status: u16, what: &str) -> Value {
    assert!(
        resp.status < 500,
        "{what}: 5xx {}: {}",
        resp.status,
        resp.text()
    );
    assert!(
        !resp.text().contains("database is locked"),
        "{what}: {}",
        resp.text()
    );
    assert_eq!(resp.status, status, "{what}: {}", resp.text());
    if resp.body.is_empty() {
        Value::Null
    } else {
        resp.json()
    }
}

#[test]
fn eight_threads_of_mixed_bulk_requests_add_up() {
    mixed_bulk_requests_from_eight_threads(&TestApp::new());
}

/// Eight writers send creates (some with an Idempotency-Key, some replayed), patches,
/// deletes and restores at once; every answer is the one its ledger expects, and the
/// posts at the end are what the ledgers add up to. `heavy::bulk` runs it against the
/// binary and reads its log too.
pub fn mixed_bulk_requests_from_eight_threads(srv: &(impl Api + Sync)) {
    const THREADS: usize = 8;
    const REQUESTS: usize = 20;
    let admin = srv.admin("root");
    let users: Vec<TestUser> = (0..THREADS)
        .map(|i| srv.register(&format!("writer{i}")))
        .collect();

    let ledgers: Vec<Ledger> = std::thread::scope(|scope| {
        let handles: Vec<_> = users
            .iter()
            .enumerate()
            .map(|(t, user)| {
                let srv = &srv;
                let admin = &admin;
                scope.spawn(move || {
                    let mut l = Ledger::default();
                    for j in 0..REQUESTS {
                        l.requests += 1;
                        match j % 5 {
                            0 => {
                                let batch: Vec<Value> = (0..5)
                                    .map(|k| json!({"title": format!("c{t} {j} {k}"), "body": format!("body {t} {j} {k}")}))
                                    .collect();
                                let key = format!("t{t}-r{j}");
                                let resp = srv.call_with(
                                    "POST",
                                    "/posts/bulk",
                                    Some(&user.token),
                                    Some(&json!({"items": batch})),
                                    &[("Idempotency-Key", &key)],
                                );
                                let out = acknowledged(&resp, 201, "bulk create");
                                let created = ids(out["items"].as_array().expect("items"));
                                assert_eq!(created.len(), 5);
                                l.active.extend(created);
                            }
                            1 => {
                                let resp = srv.call(
                                    "POST",
                                    "/posts",
                                    Some(&user.token),
                                    Some(&json!({"title": format!("s{t} {j}"), "body": "single"})),
                                );
                                let out = acknowledged(&resp, 201, "single create");
                                l.active.insert(id(&out));
                            }
                            2 => {
                                // Alternate soft and hard deletes; hard ones also take a
                                // trashed post when there is one.
                                let hard = (j / 5) % 2 == 1;
                                let mut ids: Vec<i64> = l.active.iter().take(2).copied().collect();
                                if hard {
                                    if let Some(t) = l.trashed.iter().next() {
                                        ids[1] = *t;
                                    }
                                }
                                ids.push(9_000_000 + t as i64); // never exists: skipped
                                let resp = srv.call_with(
                                    "DELETE",
                                    "/posts/bulk",
                                    Some(&admin.token),
                                    Some(&json!({"post_ids": ids, "hard_delete": hard})),
                                    &[("Prefer", "return=representation")],
                                );
                                let out = acknowledged(&resp, 200, "bulk delete");
                                let deleted: Vec<i64> = out["deleted"]
                                    .as_array()
                                    .expect("deleted")
                                    .iter()
                                    .map(|v| v.as_i64().expect("id"))
                                    .collect();
                                assert_eq!(deleted, ids[..2].to_vec(), "{out}");
                                assert_eq!(out["skipped"], json!([9_000_000 + t as i64]), "{out}");
                                for id in deleted {
                                    let was_active = l.active.remove(&id);
                                    let was_trashed = l.trashed.remove(&id);
                                    assert!(was_active || was_trashed);
                                    if hard {
                                        l.removed.insert(id);
                                    } else {
                                        l.trashed.insert(id);
                                    }
                                }
                            }
                            3 => {
                                let items: Vec<Value> = l
                                    .active
                                    .iter()
                                    .take(3)
                                    .map(|id| json!({"id": id, "title": format!("patched {t} {j}"), "body": "patched"}))
                                    .collect();
                                let resp = srv.call("PATCH", "/posts/bulk", Some(&user.token), Some(&json!({"items": items})));
                                let out = acknowledged(&resp, 200, "bulk patch");
                                assert_eq!(out["items"].as_array().expect("items").len(), items.len());
                            }
                            _ => {
                                if l.trashed.is_empty() {
                                    // Nothing to restore: a restore of an active post must be 400.
                                    let id = *l.active.iter().next().expect("an active post");
                                    let resp = srv.call(
                                        "POST",
                                        "/posts/bulk/restore",
                                        Some(&admin.token),
                                        Some(&json!({"post_ids": [id]})),
                                    );
                                    acknowledged(&resp, 400, "bulk restore of an active post");
                                } else {
                                    let trashed: Vec<i64> = l.trashed.iter().copied().collect();
                                    let resp = srv.call(
                                        "POST",
                                        "/posts/bulk/restore",
                                        Some(&admin.token),
                                        Some(&json!({"post_ids": trashed})),
                                    );
                                    let out = acknowledged(&resp, 200, "bulk restore");
                                    assert_eq!(ids(out["items"].as_array().expect("items")), trashed);
                                    for id in trashed {
                                        l.trashed.remove(&id);
                                        l.active.insert(id);
                                    }
                                }
                            }
                        }
                    }
                    l
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread panicked"))
            .collect()
    });

    let requests: usize = ledgers.iter().map(|l| l.requests).sum();
    assert_eq!(requests, THREADS * REQUESTS);
    let expected_active: BTreeSet<i64> = ledgers
        .iter()
        .flat_map(|l| l.active.iter().copied())
        .collect();
    let expected_trashed: BTreeSet<i64> = ledgers
        .iter()
        .flat_map(|l| l.trashed.iter().copied())
        .collect();
    let listed_active: Vec<i64> = ids(&all_posts(srv));
    let listed_trashed: Vec<i64> = ids(&all_trash(srv, &admin));
    assert_eq!(
        listed_active.len(),
        expected_active.len(),
        "duplicates or missing posts in the listing"
    );
    assert_eq!(
        listed_active.into_iter().collect::<BTreeSet<_>>(),
        expected_active
    );
    assert_eq!(listed_trashed.len(), expected_trashed.len());
    assert_eq!(
        listed_trashed.into_iter().collect::<BTreeSet<_>>(),
        expected_trashed
    );
    assert_eq!(
        post_count(srv) as usize,
        expected_active.len() + expected_trashed.len()
    );
    for l in &ledgers {
        for id in &l.removed {
            assert_eq!(
                srv.sql_count(&format!("SELECT count(*) FROM posts WHERE id = {id}")),
                0
            );
        }
    }
    // Per author: what each writer's acknowledged work implies.
    let mut by_author: BTreeMap<i64, usize> = BTreeMap::new();
    for p in all_posts(srv) {
        *by_author
            .entry(p["author_id"].as_i64().unwrap())
            .or_default() += 1;
    }
    for (user, l) in users.iter().zip(&ledgers) {
        assert_eq!(
            by_author.get(&user.id).copied().unwrap_or(0),
            l.active.len(),
            "author {}",
            user.name
        );
    }
}

#[test]
fn concurrent_requests_with_one_idempotency_key_create_once() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let body = json!({"items": [{"title": "Race", "body": "1"}, {"title": "Race", "body": "2"}]});
    let answers: Vec<Response> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (srv, alice, body) = (&srv, &alice, &body);
                scope.spawn(move || {
                    srv.call_with(
                        "POST",
                        "/posts/bulk",
                        Some(&alice.token),
                        Some(body),
                        &[("Idempotency-Key", "race-key")],
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for a in &answers {
        a.expect(201);
        assert_eq!(a.body, answers[0].body, "every answer is the one stored");
    }
    let fresh = answers
        .iter()
        .filter(|a| a.header("Idempotent-Replayed") != Some("true"))
        .count();
    assert_eq!(fresh, 1, "exactly one request may do the work");
    assert_eq!(post_count(&srv), 2);
}

#[test]
fn bulk_restore_409_names_request_positions_when_ids_repeat() {
    let srv = TestApp::new();
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    let first = srv.create_post(&alice, "Kept apart", "a");
    let second = srv.create_post(&alice, "Taken later", "b");
    let (p1, p2) = (
        first["id"].as_i64().unwrap(),
        second["id"].as_i64().unwrap(),
    );
    srv.call(
        "DELETE",
        "/posts/bulk",
        Some(&admin.token),
        Some(&json!({"post_ids": [p1, p2]})),
    )
    .expect(204);
    // Another post now holds the second post's slug.
    srv.call(
        "POST",
        "/posts",
        Some(&alice.token),
        Some(&json!({"title": "x", "body": "", "slug": "taken-later"})),
    )
    .expect(201);
    let resp = srv.call(
        "POST",
        "/posts/bulk/restore",
        Some(&admin.token),
        Some(&json!({"post_ids": [p1, p1, p2]})),
    );
    resp.expect(409);
    let errors = resp.json()["errors"].as_array().unwrap().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["index"], 2, "{errors:?}");
    assert_eq!(errors[0]["id"], p2, "{errors:?}");
}

#[test]
fn bulk_patch_of_one_post_by_two_items_is_a_409_naming_both() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let post = srv.create_post(&alice, "Only once", "a");
    let id = post["id"].as_i64().unwrap();
    let resp = srv.call(
        "PATCH",
        "/posts/bulk",
        Some(&alice.token),
        Some(&json!({"items": [{"id": id, "title": "first"}, {"id": id, "body": "second"}]})),
    );
    resp.expect(409);
    let errors = resp.json()["errors"].as_array().unwrap().clone();
    let indexes: Vec<i64> = errors
        .iter()
        .map(|e| e["index"].as_i64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1], "{errors:?}");
    assert!(
        errors.iter().all(|e| e["id"] == id && e["field"] == "id"),
        "{errors:?}"
    );
    // Nothing changed.
    let now = srv.get(&format!("/posts/{id}"), None).json();
    assert_eq!(
        (now["title"].as_str(), now["body"].as_str()),
        (Some("Only once"), Some("a"))
    );
}
