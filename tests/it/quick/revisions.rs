//! Revisions (API.md v1.2 "History and erasure"): every change of a post's title, slug or
//! body (PATCH, bulk PATCH, revert) keeps the version it replaces; `GET
//! /posts/{id}/revisions` lists them newest first to the owner and admins (a soft-deleted
//! post's to admins only); `POST /posts/{id}/revert` makes one current again as a new
//! revision (If-Match, 404, 409 on a taken slug); `--revision-limit` keeps at most N; a
//! permanent delete takes them with the post.

use crate::support::*;
use serde_json::{json, Value};

const REVISION_FIELDS: [&str; 6] = [
    "revision",
    "title",
    "slug",
    "body",
    "saved_at",
    "saved_by_id",
];

fn patch(s: &TestApp, token: &str, post: i64, body: Value) -> Response {
    s.call("PATCH", &format!("/posts/{post}"), Some(token), Some(&body))
}

#[track_caller]
fn patched(s: &TestApp, token: &str, post: i64, body: Value) -> Value {
    let r = patch(s, token, post, body);
    r.expect(200);
    r.json()
}

/// Every revision of `post` as `who` sees them, following the cursors.
fn revisions(s: &TestApp, who: &TestUser, post: i64) -> Vec<Value> {
    s.collect_pages(&format!("/posts/{post}/revisions"), Some(&who.token))
}

fn numbers(revisions: &[Value]) -> Vec<i64> {
    revisions
        .iter()
        .map(|r| r["revision"].as_i64().expect("revision"))
        .collect()
}

fn etag_of(s: &TestApp, post: i64) -> String {
    let r = s.get(&format!("/posts/{post}"), None);
    r.expect(200);
    r.header("ETag").expect("ETag").to_string()
}

fn revert(
    s: &TestApp,
    who: &TestUser,
    post: i64,
    revision: i64,
    if_match: Option<&str>,
) -> Response {
    let extra: Vec<(&str, &str)> = if_match.map(|tag| ("If-Match", tag)).into_iter().collect();
    s.call_with(
        "POST",
        &format!("/posts/{post}/revert"),
        Some(&who.token),
        Some(&json!({ "revision": revision })),
        &extra,
    )
}

fn stored_revisions(s: &TestApp, post: i64) -> i64 {
    s.sql_count(&format!(
        "SELECT count(*) FROM post_revisions WHERE post_id = {post}"
    ))
}

#[test]
fn a_patch_keeps_the_version_it_replaces_newest_first() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let root = s.admin("root");
    let created = s.create_post_json(
        &alice.token,
        json!({"title": "First title", "body": "first body", "slug": "first-slug"}),
    );
    let p = id(&created);
    assert!(
        revisions(&s, &alice, p).is_empty(),
        "a new post has no old versions"
    );

    next_millisecond();
    let second = patched(&s, &alice.token, p, json!({"title": "Second title"}));
    next_millisecond();
    // An admin's change: the version it replaces was saved by alice.
    let third = patched(
        &s,
        &root.token,
        p,
        json!({"body": "third body", "slug": "third-slug"}),
    );
    next_millisecond();
    patched(&s, &alice.token, p, json!({"title": "Fourth title"}));

    let listed = revisions(&s, &alice, p);
    for r in &listed {
        assert_eq!(keys_of(r), sorted(&REVISION_FIELDS), "{r}");
        assert!(is_timestamp(&r["saved_at"]), "{r}");
    }
    assert_eq!(numbers(&listed), [3, 2, 1], "newest first: {listed:?}");
    let expect = [
        (
            3,
            "Second title",
            "third-slug",
            "third body",
            &third,
            root.id,
        ),
        (
            2,
            "Second title",
            "first-slug",
            "first body",
            &second,
            alice.id,
        ),
        (
            1,
            "First title",
            "first-slug",
            "first body",
            &created,
            alice.id,
        ),
    ];
    for (r, (revision, title, slug, body, saved, by)) in listed.iter().zip(expect) {
        assert_eq!(r["revision"], revision, "{r}");
        assert_eq!(r["title"], title, "{r}");
        assert_eq!(r["slug"], slug, "{r}");
        assert_eq!(r["body"], body, "{r}");
        // Saved when that version became current, by whoever made it.
        assert_eq!(r["saved_at"], saved["updated_at"], "{r}");
        assert_eq!(r["saved_by_id"], by, "{r}");
    }
    // An admin sees the same list.
    assert_eq!(revisions(&s, &root, p), listed);
    // Posts that were not changed keep nothing.
    let other = id(&s.create_post(&alice, "Other", "b"));
    assert!(revisions(&s, &alice, other).is_empty());
}

#[test]
fn revisions_page_with_a_cursor_and_a_link() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let p = id(&s.create_post(&alice, "v1", "b"));
    for n in 2..=6 {
        patched(&s, &alice.token, p, json!({ "title": format!("v{n}") }));
    }
    let first = s.get(&format!("/posts/{p}/revisions?limit=2"), Some(&alice.token));
    first.expect(200);
    let page = first.json();
    assert_eq!(numbers(page["items"].as_array().unwrap()), [5, 4]);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    assert_eq!(
        first.header("Link"),
        Some(format!("</posts/{p}/revisions?limit=2&cursor={cursor}>; rel=\"next\"").as_str()),
    );
    let second = s.get(
        &format!("/posts/{p}/revisions?limit=2&cursor={cursor}"),
        Some(&alice.token),
    );
    second.expect(200);
    assert_eq!(numbers(second.json()["items"].as_array().unwrap()), [3, 2]);
    let all = s.collect_pages(&format!("/posts/{p}/revisions?limit=2"), Some(&alice.token));
    assert_eq!(numbers(&all), [5, 4, 3, 2, 1]);
    let titles: Vec<&str> = all.iter().map(|r| r["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["v5", "v4", "v3", "v2", "v1"]);
    // The last page has neither a cursor nor a link.
    let last = s.get(&format!("/posts/{p}/revisions?limit=5"), Some(&alice.token));
    last.expect(200);
    assert_eq!(last.json()["next_cursor"], Value::Null);
    assert_eq!(last.header("Link"), None);
    // Malformed paging is a 422, as on every listing.
    for bad in ["limit=0", "limit=101", "cursor=abc"] {
        s.get(&format!("/posts/{p}/revisions?{bad}"), Some(&alice.token))
            .expect(422);
    }
}

#[test]
fn a_bulk_patch_keeps_the_versions_it_replaces() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let a = id(&s.create_post_with_slug(&alice, "Alpha", "alpha"));
    let b = id(&s.create_post_with_slug(&alice, "Beta", "beta"));
    s.bulk_patch(
        &alice,
        json!([{"id": a, "title": "Alpha 2"}, {"id": b, "body": "beta body", "slug": "beta-2"}]),
    )
    .expect(200);
    let ra = revisions(&s, &alice, a);
    assert_eq!(numbers(&ra), [1]);
    assert_eq!(
        (&ra[0]["title"], &ra[0]["slug"], &ra[0]["body"]),
        (&json!("Alpha"), &json!("alpha"), &json!("b"))
    );
    let rb = revisions(&s, &alice, b);
    assert_eq!(numbers(&rb), [1]);
    assert_eq!(
        (&rb[0]["title"], &rb[0]["slug"]),
        (&json!("Beta"), &json!("beta"))
    );
    // A rejected bulk PATCH keeps nothing (it changed nothing).
    s.bulk_patch(
        &alice,
        json!([{"id": a, "title": "Alpha 3"}, {"id": b, "slug": "alpha"}]),
    )
    .expect(409);
    assert_eq!(numbers(&revisions(&s, &alice, a)), [1]);
    assert_eq!(stored_revisions(&s, a) + stored_revisions(&s, b), 2);
}

#[test]
fn revert_makes_an_old_version_current_as_a_new_revision() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let root = s.admin("root");
    let p = id(&s.create_post_json(
        &alice.token,
        json!({"title": "Original", "body": "original body", "slug": "original"}),
    ));
    patched(
        &s,
        &alice.token,
        p,
        json!({"title": "Edited", "body": "edited body", "slug": "edited"}),
    );
    let before = etag_of(&s, p);
    assert_eq!(before, format!("\"{p}.2\""));

    // A stale If-Match: 412, nothing changed.
    let stale = format!("\"{p}.1\"");
    revert(&s, &alice, p, 1, Some(&stale)).expect(412);
    assert_eq!(etag_of(&s, p), before);
    assert_eq!(numbers(&revisions(&s, &alice, p)), [1]);

    // With the current tag: 200, the old fields, a new tag.
    let r = revert(&s, &alice, p, 1, Some(&before));
    r.expect(200);
    let post = r.json();
    assert_post_shape(&post);
    assert_eq!(
        (&post["title"], &post["body"], &post["slug"]),
        (
            &json!("Original"),
            &json!("original body"),
            &json!("original")
        )
    );
    let tag = r.header("ETag").expect("ETag").to_string();
    assert_eq!(tag, format!("\"{p}.3\""));
    assert_eq!(etag_of(&s, p), tag);
    let got = s.get("/posts/by-slug/original", None);
    got.expect(200);
    assert_eq!(id(&got.json()), p);
    s.get("/posts/by-slug/edited", None).expect(404);

    // The version the revert replaced is kept like any other.
    let listed = revisions(&s, &alice, p);
    assert_eq!(numbers(&listed), [2, 1]);
    assert_eq!(listed[0]["title"], "Edited");
    assert_eq!(listed[0]["slug"], "edited");

    // An admin reverts without If-Match; the old tag no longer matches.
    revert(&s, &root, p, 2, Some(&before)).expect(412);
    let r = revert(&s, &root, p, 2, None);
    r.expect(200);
    assert_eq!(r.json()["title"], "Edited");
    assert_eq!(numbers(&revisions(&s, &alice, p)), [3, 2, 1]);
    assert_eq!(revisions(&s, &alice, p)[0]["saved_by_id"], alice.id);

    // The revert is in the audit log.
    let events = s.collect_pages("/admin/audit?action=post.revert", Some(&root.token));
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["actor_id"], root.id);
    assert_eq!(events[0]["target_ids"], json!([p]));
}

#[test]
fn revert_refuses_unknown_revisions_taken_slugs_and_bad_bodies() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let p = id(&s.create_post_with_slug(&alice, "First", "first"));
    patched(&s, &alice.token, p, json!({"slug": "second"}));
    let tag = etag_of(&s, p);

    for unknown in [2, 3, 99] {
        revert(&s, &alice, p, unknown, None).expect(404);
    }
    revert(&s, &alice, p + 1000, 1, None).expect(404);
    // Another active post holds the old slug now: 409, nothing changed.
    let holder = id(&s.create_post_with_slug(&alice, "Holder", "first"));
    revert(&s, &alice, p, 1, None).expect(409);
    revert(&s, &alice, p, 1, Some(&tag)).expect(409);
    assert_eq!(etag_of(&s, p), tag);
    assert_eq!(numbers(&revisions(&s, &alice, p)), [1]);
    let current = s.get(&format!("/posts/{p}"), None).json();
    assert_eq!(current["slug"], "second");
    // Once the holder is in the trash, the slug is free again.
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{holder}"),
        Some(&alice.token),
        None,
    ));
    revert(&s, &alice, p, 1, Some(&tag)).expect(200);
    assert_eq!(s.get(&format!("/posts/{p}"), None).json()["slug"], "first");

    // Bodies: a revision that is not a positive whole number, unknown fields, no body.
    for body in [
        json!({}),
        json!({"revision": 0}),
        json!({"revision": "1"}),
        json!({"revision": 1, "extra": true}),
    ] {
        s.call(
            "POST",
            &format!("/posts/{p}/revert"),
            Some(&alice.token),
            Some(&body),
        )
        .expect(422);
    }
}

#[test]
fn only_the_owner_and_admins_see_and_revert_revisions() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let root = s.admin("root");
    let p = id(&s.create_post(&alice, "Mine", "b"));
    patched(&s, &alice.token, p, json!({"title": "Mine, edited"}));
    let path = format!("/posts/{p}/revisions");

    assert_401(&s.get(&path, None));
    assert_401(&s.call(
        "POST",
        &format!("/posts/{p}/revert"),
        None,
        Some(&json!({"revision": 1})),
    ));
    s.get(&path, Some(&bob.token)).expect(403);
    revert(&s, &bob, p, 1, None).expect(403);
    assert_eq!(
        s.get(&format!("/posts/{p}"), None).json()["title"],
        "Mine, edited"
    );
    s.get(&path, Some(&alice.token)).expect(200);
    s.get(&path, Some(&root.token)).expect(200);
    // Unknown posts are 404 for everybody.
    s.get(&format!("/posts/{}/revisions", p + 1000), Some(&root.token))
        .expect(404);

    // In the trash: absent for the owner and others, listed for admins; no revert.
    assert_204(&s.call("DELETE", &format!("/posts/{p}"), Some(&alice.token), None));
    s.get(&path, Some(&alice.token)).expect(404);
    s.get(&path, Some(&bob.token)).expect(404);
    let listed = revisions(&s, &root, p);
    assert_eq!(numbers(&listed), [1]);
    assert_eq!(listed[0]["title"], "Mine");
    revert(&s, &alice, p, 1, None).expect(404);
    revert(&s, &root, p, 1, None).expect(404);
}

#[test]
fn the_revision_limit_keeps_the_newest_versions() {
    let s = TestApp::with_args(&["--revision-limit", "3"]);
    let alice = s.register("alice");
    let p = id(&s.create_post(&alice, "v1", "b"));
    for n in 2..=7 {
        patched(&s, &alice.token, p, json!({ "title": format!("v{n}") }));
        assert!(stored_revisions(&s, p) <= 3, "after v{n}");
    }
    let listed = revisions(&s, &alice, p);
    assert_eq!(numbers(&listed), [6, 5, 4]);
    assert_eq!(listed[2]["title"], "v4");
    assert_eq!(stored_revisions(&s, p), 3);
    // A revert to a kept one is a new revision, and the oldest goes.
    revert(&s, &alice, p, 4, None).expect(200);
    assert_eq!(numbers(&revisions(&s, &alice, p)), [7, 6, 5]);
    // One forgotten is a 404.
    revert(&s, &alice, p, 2, None).expect(404);
    // Bulk PATCH prunes too.
    for n in 0..4 {
        s.bulk_patch(&alice, json!([{"id": p, "body": format!("bulk {n}")}]))
            .expect(200);
    }
    assert_eq!(numbers(&revisions(&s, &alice, p)), [11, 10, 9]);
    assert_eq!(stored_revisions(&s, p), 3);
}

#[test]
fn a_permanent_delete_removes_the_revisions() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let root = s.admin("root");
    let posts: Vec<i64> = (0..4)
        .map(|n| id(&s.create_post(&alice, &format!("post {n}"), "b")))
        .collect();
    for p in &posts {
        for n in 0..3 {
            patched(&s, &alice.token, *p, json!({ "body": format!("edit {n}") }));
        }
        assert_eq!(stored_revisions(&s, *p), 3);
    }
    // A soft delete keeps them (the post can come back).
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}", posts[0]),
        Some(&alice.token),
        None,
    ));
    assert_eq!(stored_revisions(&s, posts[0]), 3);
    // Single permanent delete, of a trashed and of an active post.
    for p in &posts[..2] {
        assert_204(&s.call(
            "DELETE",
            &format!("/posts/{p}?permanent=true"),
            Some(&alice.token),
            None,
        ));
        assert_eq!(stored_revisions(&s, *p), 0, "post {p}");
    }
    // Bulk permanent delete.
    s.call(
        "DELETE",
        "/posts/bulk",
        Some(&root.token),
        Some(&json!({"post_ids": [posts[2]], "hard_delete": true})),
    )
    .expect(204);
    assert_eq!(stored_revisions(&s, posts[2]), 0);
    // A purge of the trash.
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}", posts[3]),
        Some(&alice.token),
        None,
    ));
    next_millisecond();
    s.call(
        "POST",
        "/admin/purge",
        Some(&root.token),
        Some(&json!({"older_than": "0s"})),
    )
    .expect(200);
    assert_eq!(stored_revisions(&s, posts[3]), 0);
    assert_eq!(s.sql_count("SELECT count(*) FROM post_revisions"), 0);
}
