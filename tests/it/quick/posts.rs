//! Posts (API.md "Posts"): create, read, update, soft and permanent delete, restore, as
//! the author and as an admin; field rules and conflicts; `Idempotency-Key` on a single
//! create; concurrent writers.

use crate::support::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

#[test]
fn post_lifecycle_success_paths() {
    let s = TestApp::new();
    let alice = s.register("alice");

    // Create.
    let r = s.post_json(
        &alice.token,
        json!({"title": "Hello World", "body": "first body"}),
    );
    r.expect(201);
    let p = r.json();
    assert_post_shape(&p);
    let pid = id(&p);
    assert_eq!(r.header("Location"), Some(format!("/posts/{pid}").as_str()));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(p["author_id"], alice.id);
    assert_eq!(p["title"], "Hello World");
    assert_eq!(p["slug"], "hello-world");
    assert_eq!(p["body"], "first body");
    assert_eq!(p["created_at"], p["updated_at"]);

    // Explicit slug, empty body allowed, charset parameter allowed.
    let r = s.request(
        "POST",
        "/posts",
        &[
            ("Authorization", &format!("Bearer {}", alice.token)),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        Some(br#"{"title":"Second","body":"","slug":"my-2nd-post"}"#),
    );
    r.expect(201);
    let p2 = r.json();
    assert_eq!(p2["slug"], "my-2nd-post");
    assert_eq!(p2["body"], "");

    // Reads.
    let r = s.get(&format!("/posts/{pid}"), None);
    r.expect(200);
    assert_eq!(r.json(), p);
    let r = s.get("/posts/by-slug/hello-world", None);
    r.expect(200);
    assert_eq!(r.json(), p);
    let r = s.get("/posts/by-slug/my-2nd-post", None);
    assert_eq!(id(&r.json()), id(&p2));
    let r = s.get("/posts", None);
    r.expect(200);
    let page = r.json();
    assert_eq!(keys_of(&page), sorted(&["items", "next_cursor"]));
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(
        page["items"],
        json!([p2.clone(), p.clone()]),
        "newest first"
    );

    // PATCH bumps updated_at only.
    std::thread::sleep(Duration::from_millis(15));
    let r = s.call(
        "PATCH",
        &format!("/posts/{pid}"),
        Some(&alice.token),
        Some(&json!({"title": "Hello Again"})),
    );
    r.expect(200);
    let patched = r.json();
    assert_post_shape(&patched);
    assert_eq!(patched["title"], "Hello Again");
    assert_eq!(patched["body"], "first body");
    assert_eq!(patched["created_at"], p["created_at"]);
    assert!(
        patched["updated_at"].as_str().unwrap() > p["updated_at"].as_str().unwrap(),
        "{patched}"
    );
    std::thread::sleep(Duration::from_millis(15));
    let r = s.call(
        "PATCH",
        &format!("/posts/{pid}"),
        Some(&alice.token),
        Some(&json!({"body": "new body", "slug": "renamed"})),
    );
    r.expect(200);
    let patched2 = r.json();
    assert_eq!(
        (patched2["body"].as_str(), patched2["slug"].as_str()),
        (Some("new body"), Some("renamed"))
    );
    assert!(patched2["updated_at"].as_str().unwrap() > patched["updated_at"].as_str().unwrap());
    assert_eq!(s.get(&format!("/posts/{pid}"), None).json(), patched2);
    s.get("/posts/by-slug/hello-world", None).expect(404);
    s.get("/posts/by-slug/renamed", None).expect(200);
    // Setting a post's own slug again is no conflict.
    s.call(
        "PATCH",
        &format!("/posts/{pid}"),
        Some(&alice.token),
        Some(&json!({"slug": "renamed"})),
    )
    .expect(200);

    // Soft delete: 204, gone from reads, in the trash.
    assert_204(&s.call("DELETE", &format!("/posts/{pid}"), Some(&alice.token), None));
    s.get(&format!("/posts/{pid}"), None).expect(404);
    let r = s.get("/trash", Some(&alice.token));
    r.expect(200);
    let trash = r.json();
    let items = trash["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_trashed_shape(&items[0]);
    assert_eq!(id(&items[0]), pid);
    assert_eq!(items[0]["deleted_by_id"], alice.id);
    assert_eq!(trash["next_cursor"], Value::Null);
    assert_eq!(
        s.sql_count(&format!("SELECT count(*) FROM posts WHERE id = {pid}")),
        1,
        "soft delete keeps the row"
    );

    // Restore (admin).
    let root = s.admin("root");
    let r = s.call(
        "POST",
        &format!("/posts/{pid}/restore"),
        Some(&root.token),
        None,
    );
    r.expect(200);
    let restored = r.json();
    assert_eq!(id(&restored), pid);
    assert_eq!(restored["slug"], "renamed");
    assert_eq!(restored["title"], "Hello Again");
    s.get(&format!("/posts/{pid}"), None).expect(200);
    assert!(s.get("/trash", Some(&alice.token)).json()["items"]
        .as_array()
        .unwrap()
        .is_empty());

    // Permanent delete of an active post.
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{pid}?permanent=true"),
        Some(&alice.token),
        None,
    ));
    s.get(&format!("/posts/{pid}"), None).expect(404);
    assert_eq!(
        s.sql_count(&format!("SELECT count(*) FROM posts WHERE id = {pid}")),
        0
    );
    assert!(s.get("/trash", Some(&root.token)).json()["items"]
        .as_array()
        .unwrap()
        .is_empty());
    // permanent=false is an ordinary soft delete.
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}?permanent=false", id(&p2)),
        Some(&alice.token),
        None,
    ));
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM posts WHERE id = {} AND deleted_at IS NOT NULL",
            id(&p2)
        )),
        1
    );
    // A soft-deleted post can be deleted permanently too.
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}?permanent=true", id(&p2)),
        Some(&alice.token),
        None,
    ));
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 0);
    s.call(
        "DELETE",
        &format!("/posts/{}?permanent=true", id(&p2)),
        Some(&alice.token),
        None,
    )
    .expect(404);
}

#[test]
fn admin_may_manage_any_post() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let root = s.admin("root");
    let p = s.create_post(&alice, "Alice's", "b");
    let pid = id(&p);
    let r = s.call(
        "PATCH",
        &format!("/posts/{pid}"),
        Some(&root.token),
        Some(&json!({"body": "moderated"})),
    );
    r.expect(200);
    assert_eq!(
        r.json()["author_id"],
        alice.id,
        "the author does not change"
    );
    assert_204(&s.call("DELETE", &format!("/posts/{pid}"), Some(&root.token), None));
    let trash = s.get("/trash", Some(&alice.token)).json();
    assert_eq!(trash["items"][0]["deleted_by_id"], root.id, "{trash}");
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{pid}?permanent=true"),
        Some(&root.token),
        None,
    ));
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 0);
}

#[test]
fn post_create_validation_422() {
    let s = TestApp::new();
    let a = s.register("alice");
    let t = &a.token;
    expect_422_field(&s.post_json(t, json!({"title": 5, "body": "b"})), "title");
    expect_422_field(&s.post_json(t, json!({"title": "t", "body": 7})), "body");
    expect_422_field(&s.post_json(t, json!({"title": "t", "body": null})), "body");
    expect_422_field(
        &s.post_json(t, json!({"title": "t", "body": "b", "slug": 7})),
        "slug",
    );
    expect_422_field(&s.post_json(t, json!({"body": "b"})), "title");
    expect_422_field(&s.post_json(t, json!({"title": "t"})), "body");
    expect_422_field(
        &s.post_json(t, json!({"title": "   ", "body": "b"})),
        "title",
    );
    expect_422_field(
        &s.post_json(t, json!({"title": "\t\n ", "body": "b"})),
        "title",
    );
    expect_422_field(&s.post_json(t, json!({"title": "", "body": "b"})), "title");
    expect_422_field(
        &s.post_json(t, json!({"title": "x".repeat(201), "body": "b"})),
        "title",
    );
    expect_422_field(
        &s.post_json(t, json!({"title": "é".repeat(201), "body": "b"})),
        "title",
    );
    expect_422_field(
        &s.post_json(t, json!({"title": "t", "body": "b".repeat(100_001)})),
        "body",
    );
    for bad in [
        "Bad",
        "a--b",
        "-a",
        "a-",
        "a_b",
        "a b",
        "",
        "ünï",
        &"a".repeat(101),
    ] {
        expect_422_field(
            &s.post_json(t, json!({"title": "t", "body": "b", "slug": bad})),
            "slug",
        );
    }
    // Unknown fields are refused, never ignored.
    let r = s.post_json(t, json!({"title": "t", "body": "b", "tags": ["x"]}));
    r.expect(422);
    assert!(r.text().contains("tags"), "{}", r.text());
    s.post_json(t, json!({"title": "t", "body": "b", "id": 5}))
        .expect(422);
    s.post_json(t, json!({"title": "t", "body": "b", "author_id": 1}))
        .expect(422);
    // Well-formed JSON of the wrong shape.
    for body in [json!([1, 2]), json!("title"), json!(null), json!(42)] {
        s.post_json(t, body).expect(422);
    }
    // Duplicate keys are refused rather than guessed at.
    let r = s.post_bytes(
        "/posts",
        Some(t),
        Some("application/json"),
        br#"{"title":"a","title":"b","body":""}"#,
    );
    r.expect(422);
    // Several problems are all reported.
    let r = s.post_json(t, json!({"title": "", "body": 1, "slug": "BAD"}));
    r.expect(422);
    let fields = error_fields(&r);
    for f in ["title", "body", "slug"] {
        assert!(fields.iter().any(|x| x == f), "{fields:?}");
    }
    assert_eq!(
        s.sql_count("SELECT count(*) FROM posts"),
        0,
        "nothing invalid was stored"
    );

    // Boundaries that are allowed.
    s.create_post_json(
        t,
        json!({"title": "x".repeat(200), "body": "b".repeat(100_000)}),
    );
    s.create_post_json(t, json!({"title": "é".repeat(200), "body": ""}));
    let p = s.create_post_json(
        t,
        json!({"title": "t", "body": "b", "slug": "a".repeat(100)}),
    );
    assert_eq!(p["slug"].as_str().unwrap().len(), 100);
    s.create_post_json(t, json!({"title": "t", "body": "b", "slug": "a-1-b2"}));
}

#[test]
fn post_patch_validation_and_conflicts() {
    let s = TestApp::new();
    let a = s.register("alice");
    let p = s.create_post(&a, "One", "b");
    let other = s.create_post_json(
        &a.token,
        json!({"title": "Two", "body": "b", "slug": "taken"}),
    );
    let path = format!("/posts/{}", id(&p));
    let patch = |body: Value| s.call("PATCH", &path, Some(&a.token), Some(&body));

    let r = patch(json!({}));
    r.expect(422);
    error_fields(&r);
    expect_422_field(&patch(json!({"title": "   "})), "title");
    expect_422_field(&patch(json!({"title": "x".repeat(201)})), "title");
    expect_422_field(&patch(json!({"title": null})), "title");
    expect_422_field(&patch(json!({"body": 3})), "body");
    expect_422_field(&patch(json!({"slug": "Not A Slug"})), "slug");
    patch(json!({"title": "ok", "colour": "red"})).expect(422);
    patch(json!({"id": 99})).expect(422);
    patch(json!(["title"])).expect(422);
    let r = patch(json!({"slug": "taken"}));
    r.expect(409);
    // Nothing changed by refused patches.
    assert_eq!(s.get(&path, None).json(), p);
    assert_eq!(s.get("/posts/by-slug/taken", None).json(), other);
}

#[test]
fn idempotency_key_on_single_create() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let body = json!({"title": "Once", "body": "only"});
    let first = s.call_with(
        "POST",
        "/posts",
        Some(&alice.token),
        Some(&body),
        &[("Idempotency-Key", "key-1")],
    );
    first.expect(201);
    assert_eq!(first.header("Idempotent-Replayed"), None);
    let again = s.call_with(
        "POST",
        "/posts",
        Some(&alice.token),
        Some(&body),
        &[("Idempotency-Key", "key-1")],
    );
    again.expect(201);
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(again.json(), first.json());
    assert_eq!(again.header("Location"), first.header("Location"));
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 1);
    // Same key, different body → 422, nothing written.
    s.call_with(
        "POST",
        "/posts",
        Some(&alice.token),
        Some(&json!({"title": "Twice", "body": "x"})),
        &[("Idempotency-Key", "key-1")],
    )
    .expect(422);
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 1);
    // Keys are per user.
    let other = s.call_with(
        "POST",
        "/posts",
        Some(&bob.token),
        Some(&body),
        &[("Idempotency-Key", "key-1")],
    );
    other.expect(201);
    assert_eq!(other.header("Idempotent-Replayed"), None);
    assert_ne!(id(&other.json()), id(&first.json()));
    assert_eq!(other.json()["slug"], "once-2");
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 2);
}

#[test]
fn concurrent_writers_get_distinct_slugs_and_one_username() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let results: Vec<Response> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                scope
                    .spawn(|| s.post_json(&alice.token, json!({"title": "Same Title", "body": ""})))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut slugs = HashSet::new();
    for r in &results {
        r.expect(201);
        assert!(
            slugs.insert(r.json()["slug"].as_str().unwrap().to_string()),
            "duplicate slug {}",
            r.text()
        );
    }
    let expected: HashSet<String> = std::iter::once("same-title".to_string())
        .chain((2..=12).map(|n| format!("same-title-{n}")))
        .collect();
    assert_eq!(slugs, expected);

    // Explicit slug raced by many: exactly one wins, the rest get 409.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (s, token) = (&s, alice.token.as_str());
                scope.spawn(move || {
                    s.post_json(
                        token,
                        json!({"title": format!("t{i}"), "body": "", "slug": "contested"}),
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|c| **c == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|c| **c == 409).count(),
        7,
        "{statuses:?}"
    );

    // Same username registered at once, in different cases.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["racer", "RACER", "Racer", "rAcEr"]
            .into_iter()
            .map(|name| {
                let s = &s;
                scope.spawn(move || {
                    s.call(
                        "POST",
                        "/auth/register",
                        None,
                        Some(&json!({"username": name, "password": PASSWORD})),
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted_statuses = statuses.clone();
    sorted_statuses.sort();
    assert_eq!(sorted_statuses, vec![201, 409, 409, 409], "{statuses:?}");
    assert_eq!(
        s.sql_count("SELECT count(*) FROM users WHERE username = 'racer' COLLATE NOCASE"),
        1
    );
}
