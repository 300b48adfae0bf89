//! Paths and methods: unknown paths and ids that are not ids are 404, a method a route
//! does not answer is 405 with `Allow`, and the order of the checks (401, 415/400, 422,
//! 404, 403).

use crate::support::*;
use serde_json::json;
use std::collections::HashSet;

fn allow_set(r: &Response) -> HashSet<String> {
    r.header("Allow")
        .unwrap_or_else(|| panic!("405 without Allow: {r:?}"))
        .split(',')
        .map(|m| m.trim().to_uppercase())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The methods a route answers; GET routes also answer HEAD, and every route OPTIONS.
fn set(list: &[&str]) -> HashSet<String> {
    let mut methods: HashSet<String> = list.iter().map(|s| s.to_string()).collect();
    if methods.contains("GET") {
        methods.insert("HEAD".to_string());
    }
    methods.insert("OPTIONS".to_string());
    methods
}

#[test]
fn unknown_paths_and_bad_ids_are_404() {
    let s = TestApp::new();
    let a = s.register("alice");
    let pid = id(&s.create_post(&a, "p", "b"));
    let c = s.create_comment(&a.token, pid, "c");
    for path in [
        "/nope",
        "/",
        "/posts/",
        "/posts/1/x",
        "/POSTS",
        "/auth",
        "/posts/by-slug/",
        "/posts/abc",
        "/posts/0",
        "/posts/-1",
        "/posts/+1",
        "/posts/1.0",
        "/posts/1e3",
        "/posts/99999999999999999999",
        "/posts/9223372036854775808",
        "/posts/9223372036854775807",
        "/posts/abc/comments",
        "/posts/0/comments",
        "/posts/-5/comments",
        "/posts/99999/comments",
        "/posts/by-slug/no-such-post",
    ] {
        let r = s.get(path, None);
        assert_eq!(r.status, 404, "GET {path}: {}", r.text());
        r.expect(404);
    }
    for path in [
        "/posts/abc",
        "/posts/0",
        "/posts/-1",
        "/posts/99999999999999999999",
        "/posts/99999",
    ] {
        s.call("PATCH", path, Some(&a.token), Some(&json!({"title": "x"})))
            .expect(404);
        s.call("DELETE", path, Some(&a.token), None).expect(404);
    }
    for path in [
        "/comments/0",
        "/comments/abc",
        "/comments/-1",
        "/comments/99999",
        "/comments/99999999999999999999",
    ] {
        s.call("DELETE", path, Some(&a.token), None).expect(404);
    }
    s.call("POST", "/posts/0/restore", Some(&a.token), None)
        .expect(404);
    s.call(
        "POST",
        "/posts/99999/comments",
        Some(&a.token),
        Some(&json!({"body": "c"})),
    )
    .expect(404);
    // Nothing was touched.
    s.get(&format!("/posts/{pid}"), None).expect(200);
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM comments WHERE id = {}",
            id(&c)
        )),
        1
    );
}

#[test]
fn wrong_method_is_405_with_allow() {
    let s = TestApp::new();
    let a = s.register("alice");
    let pid = id(&s.create_post(&a, "p", "b"));
    for (method, path, allowed) in [
        ("PUT", "/posts".to_string(), set(&["GET", "POST"])),
        ("DELETE", "/posts".to_string(), set(&["GET", "POST"])),
        (
            "PUT",
            format!("/posts/{pid}"),
            set(&["GET", "PATCH", "DELETE"]),
        ),
        (
            "POST",
            format!("/posts/{pid}"),
            set(&["GET", "PATCH", "DELETE"]),
        ),
        ("GET", "/auth/register".to_string(), set(&["POST"])),
        ("GET", "/auth/login".to_string(), set(&["POST"])),
        ("POST", "/auth/me".to_string(), set(&["GET"])),
        ("POST", "/trash".to_string(), set(&["GET"])),
        ("GET", format!("/posts/{pid}/restore"), set(&["POST"])),
        (
            "DELETE",
            format!("/posts/{pid}/comments"),
            set(&["GET", "POST"]),
        ),
        ("GET", "/comments/1".to_string(), set(&["DELETE"])),
        ("POST", "/healthz".to_string(), set(&["GET"])),
        ("DELETE", "/openapi.json".to_string(), set(&["GET"])),
        ("POST", "/posts/by-slug/p".to_string(), set(&["GET"])),
    ] {
        let r = s.call(method, &path, Some(&a.token), None);
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        r.expect(405);
        assert_eq!(allow_set(&r), allowed, "{method} {path}");
    }
    // A method nobody routes.
    let r = s.request("FROB", "/posts", &[], None);
    r.expect(405);
    assert_eq!(allow_set(&r), set(&["GET", "POST"]));
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 1);
}

#[test]
fn order_of_checks() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let p = s.create_post(&alice, "Alice's", "b");
    let pid = id(&p);

    // 401 before validation and existence.
    assert_401(&s.post_bytes("/posts", None, Some("application/json"), b"{not json"));
    assert_401(&s.post_bytes("/posts", None, Some("text/plain"), b"x"));
    assert_401(&s.call("POST", "/posts", None, Some(&json!({"title": 1}))));
    assert_401(&s.call("PATCH", "/posts/99999", None, Some(&json!({}))));
    assert_401(&s.call("DELETE", "/posts/99999", None, None));
    assert_401(&s.call("DELETE", &format!("/posts/{pid}"), None, None));
    assert_401(&s.call("POST", "/posts/99999/restore", None, None));
    assert_401(&s.call(
        "POST",
        &format!("/posts/{pid}/comments"),
        None,
        Some(&json!({"body": ""})),
    ));
    assert_401(&s.call("DELETE", "/comments/99999", None, None));
    assert_401(&s.get("/trash", None));
    assert_401(&s.get("/trash?limit=0", None));

    // 422 before 404.
    expect_422_field(
        &s.call(
            "PATCH",
            "/posts/99999",
            Some(&bob.token),
            Some(&json!({"title": "  "})),
        ),
        "title",
    );
    s.call("PATCH", "/posts/99999", Some(&bob.token), Some(&json!({})))
        .expect(422);
    s.call(
        "POST",
        "/posts/99999/comments",
        Some(&bob.token),
        Some(&json!({"body": ""})),
    )
    .expect(422);
    s.get("/posts/99999/comments?limit=0", None).expect(422);
    // 415/400 before 404 too.
    s.request(
        "PATCH",
        "/posts/99999",
        &[
            ("Authorization", &format!("Bearer {}", bob.token)),
            ("Content-Type", "text/plain"),
        ],
        Some(b"{}"),
    )
    .expect(415);

    // 422 before 403: an invalid patch on someone else's post.
    s.call(
        "PATCH",
        &format!("/posts/{pid}"),
        Some(&bob.token),
        Some(&json!({})),
    )
    .expect(422);
    // 403 for a valid request by a non-owner.
    s.call(
        "PATCH",
        &format!("/posts/{pid}"),
        Some(&bob.token),
        Some(&json!({"title": "mine now"})),
    )
    .expect(403);
    s.call("DELETE", &format!("/posts/{pid}"), Some(&bob.token), None)
        .expect(403);
    s.call(
        "DELETE",
        &format!("/posts/{pid}?permanent=true"),
        Some(&bob.token),
        None,
    )
    .expect(403);
    assert_eq!(
        s.get(&format!("/posts/{pid}"), None).json(),
        p,
        "refused requests change nothing"
    );

    // 404 before 403: a stranger touching a soft-deleted post sees it as absent.
    assert_204(&s.call("DELETE", &format!("/posts/{pid}"), Some(&alice.token), None));
    s.call("DELETE", &format!("/posts/{pid}"), Some(&bob.token), None)
        .expect(404);
    s.call(
        "PATCH",
        &format!("/posts/{pid}"),
        Some(&bob.token),
        Some(&json!({"title": "x"})),
    )
    .expect(404);
    // The owner's second soft delete: 404 (already deleted).
    s.call("DELETE", &format!("/posts/{pid}"), Some(&alice.token), None)
        .expect(404);
    // Permanent delete of someone else's soft-deleted post: it exists for this endpoint, so 403.
    s.call(
        "DELETE",
        &format!("/posts/{pid}?permanent=true"),
        Some(&bob.token),
        None,
    )
    .expect(403);
    assert_eq!(
        s.sql_count(&format!("SELECT count(*) FROM posts WHERE id = {pid}")),
        1
    );

    // Admin-only: 403 right after authentication, before any lookup or validation.
    s.call("POST", "/posts/99999/restore", Some(&bob.token), None)
        .expect(403);
    s.call(
        "POST",
        &format!("/posts/{pid}/restore"),
        Some(&bob.token),
        None,
    )
    .expect(403);
    s.call(
        "POST",
        &format!("/posts/{pid}/restore"),
        Some(&alice.token),
        None,
    )
    .expect(403);
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM posts WHERE id = {pid} AND deleted_at IS NOT NULL"
        )),
        1
    );
}
