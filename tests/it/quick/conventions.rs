//! HTTP conventions (API.md v1.1, "Conditional requests and pagination"): ETag, 304 and
//! 412, Link headers through every listing, cursors accepted by their form,
//! `POST /posts/bulk/delete`, OPTIONS on every route, and CORS.

use crate::support::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Barrier;

/// `GET path` with extra headers and no token.
fn get_with(s: &TestApp, path: &str, headers: &[(&str, &str)]) -> Response {
    s.request("GET", path, headers, None)
}

fn etag_of(r: &Response) -> String {
    r.header("ETag")
        .unwrap_or_else(|| panic!("no ETag: {r:?}"))
        .to_string()
}

fn current_etag(s: &TestApp, post_id: i64) -> String {
    let r = s.get(&format!("/posts/{post_id}"), None);
    r.expect(200);
    etag_of(&r)
}

fn patch_if(s: &TestApp, user: &TestUser, post_id: i64, etag: &str, body: Value) -> Response {
    s.call_with(
        "PATCH",
        &format!("/posts/{post_id}"),
        Some(&user.token),
        Some(&body),
        &[("If-Match", etag)],
    )
}

#[track_caller]
fn assert_not_modified(r: &Response, etag: &str) {
    assert_eq!(r.status, 304, "{}", r.text());
    assert_eq!(r.header("ETag"), Some(etag));
    assert!(r.body.is_empty(), "a 304 has no body: {}", r.text());
    assert_eq!(r.header("Content-Type"), None);
    assert_eq!(r.header("Content-Length"), None);
}

#[test]
fn the_etag_changes_with_every_update_and_restore_but_not_with_a_soft_delete() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let admin = s.admin("root");
    let post = s.create_post(&alice, "Tagged", "b");
    let pid = id(&post);
    let path = format!("/posts/{pid}");

    let first = s.get(&path, None);
    first.expect(200);
    let e1 = etag_of(&first);
    assert!(
        e1.starts_with('"') && e1.ends_with('"'),
        "a strong tag: {e1}"
    );
    let by_slug = s.get("/posts/by-slug/tagged", None);
    by_slug.expect(200);
    assert_eq!(etag_of(&by_slug), e1);

    let patched = patch_if(&s, &alice, pid, &e1, json!({"title": "Tagged again"}));
    patched.expect(200);
    let e2 = etag_of(&patched);
    assert_ne!(e2, e1);
    assert_eq!(current_etag(&s, pid), e2);

    // A soft delete leaves the tag: the one seen before it works for the restore.
    let deleted = s.call_with(
        "DELETE",
        &path,
        Some(&alice.token),
        None,
        &[("If-Match", &e2)],
    );
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    let restored = s.call_with(
        "POST",
        &format!("{path}/restore"),
        Some(&admin.token),
        None,
        &[("If-Match", &e2)],
    );
    restored.expect(200);
    let e3 = etag_of(&restored);
    assert!(e3 != e2 && e3 != e1, "a restore is a new version: {e3}");
    assert_eq!(current_etag(&s, pid), e3);
    assert_eq!(restored.json()["updated_at"], patched.json()["updated_at"]);

    // Bulk update and bulk restore change it too.
    let r = s.call(
        "PATCH",
        "/posts/bulk",
        Some(&alice.token),
        Some(&json!({"items": [{"id": pid, "body": "bulk"}]})),
    );
    r.expect(200);
    let e4 = current_etag(&s, pid);
    assert_ne!(e4, e3);
    s.call("DELETE", &path, Some(&alice.token), None);
    s.call(
        "POST",
        "/posts/bulk/restore",
        Some(&admin.token),
        Some(&json!({"post_ids": [pid]})),
    )
    .expect(200);
    let e5 = current_etag(&s, pid);
    assert!(![&e1, &e2, &e3, &e4].contains(&&e5), "{e5}");
}

#[test]
fn if_none_match_answers_304_without_a_body() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let pid = id(&s.create_post(&alice, "Cached", "body"));
    let path = format!("/posts/{pid}");
    let etag = current_etag(&s, pid);
    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {etag}");

    for value in [etag.as_str(), weak.as_str(), listed.as_str(), "*"] {
        assert_not_modified(&get_with(&s, &path, &[("If-None-Match", value)]), &etag);
        assert_not_modified(
            &get_with(&s, "/posts/by-slug/cached", &[("If-None-Match", value)]),
            &etag,
        );
        let head = s.request("HEAD", &path, &[("If-None-Match", value)], None);
        assert_eq!(head.status, 304, "{value}");
    }
    // Another tag: the post, with its tag.
    let fresh = get_with(&s, &path, &[("If-None-Match", "\"1.999\"")]);
    fresh.expect(200);
    assert_eq!(etag_of(&fresh), etag);
    assert_eq!(fresh.json()["title"], "Cached");
    // After a change the old tag no longer matches.
    patch_if(&s, &alice, pid, "*", json!({"body": "changed"})).expect(200);
    let changed = get_with(&s, &path, &[("If-None-Match", &etag)]);
    changed.expect(200);
    assert_ne!(etag_of(&changed), etag);
    // A slug that passes to another post is another resource: the old tag does not match.
    s.call("DELETE", &path, Some(&alice.token), None);
    let other = s.call(
        "POST",
        "/posts",
        Some(&alice.token),
        Some(&json!({"title": "Other", "body": "b", "slug": "cached"})),
    );
    other.expect(201);
    let by_slug = get_with(&s, "/posts/by-slug/cached", &[("If-None-Match", &etag)]);
    by_slug.expect(200);
    assert_eq!(id(&by_slug.json()), id(&other.json()));
    // Absent and soft-deleted posts stay 404, `*` or not. A value that is not a list of
    // entity-tags matches nothing: the post is sent.
    get_with(&s, &path, &[("If-None-Match", "*")]).expect(404);
    let current = etag_of(&by_slug);
    let unquoted = current.trim_matches('"').to_string();
    for bad in [unquoted.as_str(), "\"a\" \"b\"", "*, \"a\"", ""] {
        let r = get_with(&s, "/posts/by-slug/cached", &[("If-None-Match", bad)]);
        r.expect(200);
        assert_eq!(etag_of(&r), current);
    }
}

#[test]
fn a_lost_update_between_two_clients_is_a_412() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let admin = s.admin("root");
    let pid = id(&s.create_post(&alice, "Shared", "b"));
    // Both clients read the same version, then both write at once: exactly one wins,
    // whatever the timing, and the other learns it with a 412 instead of overwriting.
    for round in 0..5 {
        let seen = current_etag(&s, pid);
        let start = Barrier::new(2);
        let writers = [(&alice, "alice"), (&admin, "admin")];
        let answers: Vec<(String, Response)> = std::thread::scope(|scope| {
            let handles: Vec<_> = writers
                .iter()
                .map(|(user, name)| {
                    let (s, start, seen) = (&s, &start, &seen);
                    let title = format!("{name} {round}");
                    scope.spawn(move || {
                        start.wait();
                        let r = patch_if(s, user, pid, seen, json!({ "title": title }));
                        (title, r)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<&(String, Response)> =
            answers.iter().filter(|(_, r)| r.status == 200).collect();
        let lost: Vec<&(String, Response)> =
            answers.iter().filter(|(_, r)| r.status == 412).collect();
        assert_eq!(
            (won.len(), lost.len()),
            (1, 1),
            "round {round}: {answers:?}"
        );
        lost[0].1.expect(412);
        let now = s.get(&format!("/posts/{pid}"), None);
        assert_eq!(now.json()["title"], won[0].0.as_str(), "round {round}");
        assert_eq!(etag_of(&now), etag_of(&won[0].1));
    }
}

#[test]
fn if_match_is_checked_after_404_and_403_and_before_409_and_400() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let admin = s.admin("root");
    let mine = id(&s.create_post(&alice, "Mine", "b"));
    let bobs = id(&s.create_post(&bob, "Taken", "b"));
    let stale = "\"1.999\"";
    let path = format!("/posts/{mine}");

    // 404 and 403 come first.
    patch_if(&s, &alice, 999_999, stale, json!({"title": "x"})).expect(404);
    patch_if(&s, &alice, bobs, stale, json!({"title": "x"})).expect(403);
    // A stale tag is 412 even where the change would conflict; a current one gets the 409.
    patch_if(&s, &alice, mine, stale, json!({"slug": "taken"})).expect(412);
    let current = current_etag(&s, mine);
    patch_if(&s, &alice, mine, &current, json!({"slug": "taken"})).expect(409);
    // Strong comparison: a weak tag never matches; a list matches by any of its tags.
    patch_if(
        &s,
        &alice,
        mine,
        &format!("W/{current}"),
        json!({"title": "x"}),
    )
    .expect(412);
    let listed = format!("\"nope\", {current}");
    patch_if(&s, &alice, mine, &listed, json!({"title": "Listed"})).expect(200);
    // A value that is not a list of entity-tags names no version: it matches nothing.
    let current = current_etag(&s, mine);
    let unquoted = current.trim_matches('"').to_string();
    for bad in [unquoted.as_str(), "W/", "\"unterminated", "*, \"a\"", ""] {
        patch_if(&s, &alice, mine, bad, json!({"title": "x"})).expect(412);
    }
    // Several header lines are one list.
    let auth = format!("Bearer {}", alice.token);
    let r = s.request(
        "PATCH",
        &path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("If-Match", "\"nope\""),
            ("If-Match", &current),
        ],
        Some(br#"{"title":"Listed"}"#),
    );
    r.expect(200);
    assert_eq!(s.get(&path, None).json()["title"], "Listed");

    // Deletes, soft and permanent.
    for query in ["", "?permanent=true"] {
        let r = s.call_with(
            "DELETE",
            &format!("{path}{query}"),
            Some(&alice.token),
            None,
            &[("If-Match", stale)],
        );
        r.expect(412);
        s.get(&path, None).expect(200);
    }
    let r = s.call_with(
        "DELETE",
        &format!("/posts/{bobs}"),
        Some(&alice.token),
        None,
        &[("If-Match", stale)],
    );
    r.expect(403);

    // Restore: 403 for non-admins, then 404, then 412, then 400 "not deleted", then 409.
    let restore = |user: &TestUser, post_id: i64, etag: &str| {
        s.call_with(
            "POST",
            &format!("/posts/{post_id}/restore"),
            Some(&user.token),
            None,
            &[("If-Match", etag)],
        )
    };
    restore(&alice, mine, stale).expect(403);
    restore(&admin, 999_999, stale).expect(404);
    restore(&admin, mine, stale).expect(412);
    restore(&admin, mine, &current_etag(&s, mine)).expect(400);
    let before_delete = current_etag(&s, mine);
    let r = s.call_with(
        "DELETE",
        &path,
        Some(&alice.token),
        None,
        &[("If-Match", "*")],
    );
    assert_eq!(r.status, 204);
    let usurper = s.call(
        "POST",
        "/posts",
        Some(&bob.token),
        Some(&json!({"title": "Usurper", "body": "b", "slug": "mine"})),
    );
    usurper.expect(201);
    restore(&admin, mine, stale).expect(412);
    restore(&admin, mine, &before_delete).expect(409);
    // The permanent delete of a trashed post honours If-Match too.
    let r = s.call_with(
        "DELETE",
        &format!("{path}?permanent=true"),
        Some(&alice.token),
        None,
        &[("If-Match", stale)],
    );
    r.expect(412);
    let r = s.call_with(
        "DELETE",
        &format!("{path}?permanent=true"),
        Some(&alice.token),
        None,
        &[("If-Match", &before_delete)],
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        s.sql_count(&format!("SELECT count(*) FROM posts WHERE id = {mine}")),
        0
    );
}

#[test]
fn bulk_update_items_with_a_stale_if_match_are_412_and_nothing_changes() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let a = id(&s.create_post(&alice, "A", "b"));
    let b = id(&s.create_post(&alice, "B", "b"));
    let bobs = id(&s.create_post(&bob, "Bobs", "b"));
    let (ea, eb) = (current_etag(&s, a), current_etag(&s, b));
    let bulk = |items: Value| {
        s.call(
            "PATCH",
            "/posts/bulk",
            Some(&alice.token),
            Some(&json!({ "items": items })),
        )
    };

    let r = bulk(json!([
        {"id": a, "title": "A2", "if_match": ea},
        {"id": b, "title": "B2", "if_match": "\"1.999\""},
        {"id": b, "title": "B3"},
    ]));
    r.expect(412);
    let errors = r.json()["errors"].as_array().unwrap().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (&errors[0]["index"], &errors[0]["id"], &errors[0]["field"]),
        (&json!(1), &json!(b), &json!("if_match"))
    );
    assert_eq!(s.get(&format!("/posts/{a}"), None).json()["title"], "A");
    assert_eq!(current_etag(&s, a), ea, "a refused request changes nothing");

    // 403 comes before 412; 412 before 409.
    bulk(json!([{"id": bobs, "title": "x", "if_match": "\"1.999\""}])).expect(403);
    let r = bulk(json!([
        {"id": a, "slug": "b"},
        {"id": b, "title": "x", "if_match": "\"1.999\""},
    ]));
    r.expect(412);

    // Not an entity-tag: 422, like any other field rule; so is an item with nothing to change.
    for bad in [
        json!("*"),
        json!("7.3"),
        json!(7),
        json!(null),
        json!("\"a\", \"b\""),
    ] {
        bulk(json!([{"id": a, "title": "x", "if_match": bad}])).expect(422);
    }
    let r = bulk(json!([{"id": a, "if_match": ea}]));
    r.expect(422);

    // Current tags: applied, and every tag moves on.
    let r = bulk(json!([
        {"id": a, "title": "A2", "if_match": ea},
        {"id": b, "title": "B2", "if_match": eb},
    ]));
    r.expect(200);
    assert_ne!(current_etag(&s, a), ea);
    assert_ne!(current_etag(&s, b), eb);
}

/// The target of a `Link: <…>; rel="next"` header, if the answer has one.
fn next_link(r: &Response) -> Option<String> {
    let link = r.header("Link")?;
    let target = link
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix(">; rel=\"next\""))
        .unwrap_or_else(|| panic!("not a next link: {link}"));
    Some(target.to_string())
}

/// Every item of a listing, following only Link headers from `first`; checks that each
/// link repeats `keeps` (filters, limit) and carries the page's next_cursor.
fn follow_links(s: &TestApp, first: &str, token: Option<&str>, keeps: &[&str]) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut url = first.to_string();
    for _ in 0..100 {
        let r = s.get(&url, token);
        r.expect(200);
        let page = r.json();
        seen.extend(ids(page["items"].as_array().unwrap()));
        match (next_link(&r), page["next_cursor"].as_str()) {
            (None, None) => return seen,
            (Some(next), Some(cursor)) => {
                assert!(next.starts_with('/'), "a relative reference: {next}");
                for keep in keeps {
                    assert!(next.contains(keep), "{next} lacks {keep}");
                }
                assert!(next.ends_with(&format!("&cursor={cursor}")), "{next}");
                url = next;
            }
            (link, cursor) => panic!("Link {link:?} and next_cursor {cursor:?} disagree"),
        }
    }
    panic!("{first}: the links do not end");
}

#[test]
fn link_headers_lead_to_the_end_of_every_listing() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let admin = s.admin("root");
    let mut apples = Vec::new();
    for i in 0..7 {
        let author = if i % 3 == 0 { &bob } else { &alice };
        let p = s.create_post(author, &format!("apple pie é {i}"), "b");
        if i % 3 != 0 {
            apples.push(id(&p));
        }
        s.create_post(&alice, &format!("pear {i}"), "b");
    }
    apples.reverse();

    // Posts, with both filters (q with a space and a non-ASCII letter) and a limit.
    let first = format!("/posts?q=apple%20%C3%A9&author_id={}&limit=2", alice.id);
    let keeps = [
        "/posts?",
        "q=apple%20%C3%A9",
        &format!("author_id={}", alice.id),
        "limit=2",
    ];
    assert_eq!(follow_links(&s, &first, None, &keeps), apples);
    // Without a limit the link names the default one.
    let all = follow_links(&s, "/posts", None, &["/posts?limit=20&cursor="]);
    assert_eq!(all.len(), 14);
    let r = s.get("/posts?limit=20", None);
    assert_eq!(next_link(&r), None, "no Link on the last page");
    // Comments, oldest first, with the default limit.
    let host = id(&s.create_post(&alice, "host", "b"));
    let mut comments = Vec::new();
    for i in 0..21 {
        let r = s.call(
            "POST",
            &format!("/posts/{host}/comments"),
            Some(&alice.token),
            Some(&json!({ "body": format!("c{i}") })),
        );
        r.expect(201);
        comments.push(id(&r.json()));
    }
    let path = format!("/posts/{host}/comments");
    let keeps = [format!("{path}?limit=20&cursor=")];
    let keeps: Vec<&str> = keeps.iter().map(String::as_str).collect();
    assert_eq!(follow_links(&s, &path, None, &keeps), comments);
    // The trash, most recently deleted first, for its owner and for an admin.
    let mut trashed = Vec::new();
    for post in s.collect_pages(&format!("/posts?author_id={}&q=pear", alice.id), None) {
        let r = s.call(
            "DELETE",
            &format!("/posts/{}", id(&post)),
            Some(&alice.token),
            None,
        );
        assert_eq!(r.status, 204);
        trashed.push(id(&post));
    }
    trashed.reverse();
    let expected = ids(&s.collect_pages("/trash?limit=100", Some(&admin.token)));
    assert_eq!(
        expected.iter().copied().collect::<BTreeSet<_>>(),
        trashed.iter().copied().collect()
    );
    let via_links = follow_links(
        &s,
        "/trash?limit=3",
        Some(&admin.token),
        &["/trash?limit=3&cursor="],
    );
    assert_eq!(via_links, expected);
    let own = follow_links(
        &s,
        "/trash?limit=2",
        Some(&alice.token),
        &["/trash?limit=2"],
    );
    assert_eq!(own, expected);
}

#[test]
fn post_bulk_delete_answers_exactly_like_delete_bulk() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let admin = s.admin("root");
    let posts: Vec<i64> = (0..6)
        .map(|i| id(&s.create_post(&alice, &format!("p{i}"), "b")))
        .collect();
    let report = [("Prefer", "return=representation")];
    let body = |ids: &[i64], hard: bool| json!({"post_ids": [ids[0], ids[1], 999_999], "hard_delete": hard});

    let via_delete = s.call_with(
        "DELETE",
        "/posts/bulk",
        Some(&admin.token),
        Some(&body(&posts[0..2], false)),
        &report,
    );
    let via_post = s.call_with(
        "POST",
        "/posts/bulk/delete",
        Some(&admin.token),
        Some(&body(&posts[2..4], false)),
        &report,
    );
    via_delete.expect(200);
    via_post.expect(200);
    assert_eq!(via_post.json()["deleted"], json!([posts[2], posts[3]]));
    assert_eq!(via_post.json()["skipped"], json!([999_999]));
    assert_eq!(
        via_post.header("Content-Type"),
        via_delete.header("Content-Type")
    );

    let r = s.call(
        "POST",
        "/posts/bulk/delete",
        Some(&admin.token),
        Some(&body(&posts[4..6], true)),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 4);

    // The same refusals, in the same order.
    for (user, body, status) in [
        (&alice, json!({"post_ids": [posts[0]]}), 403),
        (&admin, json!({"post_ids": []}), 422),
        (&admin, json!({"post_ids": [0]}), 422),
        (&admin, json!({"ids": [1]}), 422),
    ] {
        let a = s.call("DELETE", "/posts/bulk", Some(&user.token), Some(&body));
        let b = s.call("POST", "/posts/bulk/delete", Some(&user.token), Some(&body));
        b.expect(status);
        assert_eq!((a.status, a.json()), (b.status, b.json()), "{body}");
    }
    s.call("POST", "/posts/bulk/delete", Some(&admin.token), None)
        .expect(415);
    let r = s.call("DELETE", "/posts/bulk/delete", Some(&admin.token), None);
    r.expect(405);
    assert_eq!(r.header("Allow"), Some("POST, OPTIONS"));
}

/// Each route of openapi.json with example parameters, and the methods it documents.
fn documented_routes() -> Vec<(String, BTreeSet<String>)> {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap(),
    )
    .unwrap();
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(template, item)| {
            let path = template.replace("{id}", "1").replace("{slug}", "hello");
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| *k != "parameters")
                .map(|m| m.to_uppercase())
                .collect();
            (path, methods)
        })
        .collect()
}

fn header_set(value: Option<&str>) -> BTreeSet<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

#[test]
fn options_on_every_route_is_204_with_allow_and_unknown_paths_stay_404() {
    let s = TestApp::new();
    let routes = documented_routes();
    assert!(routes.len() >= 15, "{routes:?}");
    for (path, documented) in routes {
        let r = s.request("OPTIONS", &path, &[], None);
        assert_eq!(r.status, 204, "OPTIONS {path}: {}", r.text());
        assert!(
            r.body.is_empty() && r.header("Content-Type").is_none(),
            "{path}"
        );
        let mut expected = documented.clone();
        if expected.contains("GET") {
            expected.insert("HEAD".into());
        }
        assert!(expected.contains("OPTIONS"), "{path} documents OPTIONS");
        assert_eq!(header_set(r.header("Allow")), expected, "{path}");
        // Without CORS configured, nothing about origins.
        assert_eq!(r.header("Vary"), None);
        assert_eq!(r.header("Access-Control-Allow-Origin"), None);
    }
    for unknown in ["/nope", "/posts/0", "/posts/abc/comments", "/metrics"] {
        s.request("OPTIONS", unknown, &[], None).expect(404);
    }
}

const ALLOW_HEADERS: &str =
    "Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match, Prefer";
const EXPOSE_HEADERS: &str = "Location, ETag, Link, Idempotent-Replayed, Retry-After";

fn preflight(s: &TestApp, path: &str, origin: &str) -> Response {
    s.request(
        "OPTIONS",
        path,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "PATCH"),
            (
                "Access-Control-Request-Headers",
                "authorization, if-match, content-type",
            ),
        ],
        None,
    )
}

#[test]
fn cors_answers_listed_origins_only() {
    let s = TestApp::with_args(&[
        "--cors-origins",
        "https://app.example.com, http://localhost:3000",
    ]);
    let alice = s.register("alice");
    let pid = id(&s.create_post(&alice, "Cors", "b"));
    let path = format!("/posts/{pid}");

    for origin in ["https://app.example.com", "http://localhost:3000"] {
        let r = preflight(&s, &path, origin);
        assert_eq!(r.status, 204, "{}", r.text());
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some(origin));
        assert_eq!(
            header_set(r.header("Access-Control-Allow-Methods")),
            header_set(Some("GET, PATCH, DELETE, HEAD, OPTIONS"))
        );
        assert_eq!(
            r.header("Access-Control-Allow-Headers"),
            Some(ALLOW_HEADERS)
        );
        assert_eq!(r.header("Access-Control-Max-Age"), Some("600"));
        assert_eq!(r.header("Vary"), Some("Origin"));
        assert_eq!(r.header("Access-Control-Allow-Credentials"), None);

        // Simple and actual requests, errors included, may be read by the listed origin.
        for (method, target, status) in [
            ("GET", path.as_str(), 200),
            ("GET", "/posts/999999", 404),
            ("GET", "/nope", 404),
        ] {
            let r = s.request(method, target, &[("Origin", origin)], None);
            assert_eq!(r.status, status, "{target}");
            assert_eq!(
                r.header("Access-Control-Allow-Origin"),
                Some(origin),
                "{target}"
            );
            assert_eq!(
                r.header("Access-Control-Expose-Headers"),
                Some(EXPOSE_HEADERS)
            );
            assert_eq!(r.header("Vary"), Some("Origin"));
            assert_eq!(r.header("Access-Control-Allow-Methods"), None);
        }
        let auth = format!("Bearer {}", alice.token);
        let r = s.request(
            "PATCH",
            &path,
            &[
                ("Origin", origin),
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("If-Match", "*"),
            ],
            Some(br#"{"body":"from the browser"}"#),
        );
        r.expect(200);
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some(origin));
        assert!(r.header("ETag").is_some());
    }

    // Unlisted origins (a port, a scheme or a subdomain off) get no CORS headers at all,
    // and the answers still say they vary by Origin.
    for origin in [
        "https://evil.example.com",
        "https://app.example.com:8443",
        "http://app.example.com",
        "null",
    ] {
        let r = preflight(&s, &path, origin);
        assert_eq!(r.status, 204);
        assert!(r.header("Allow").is_some());
        let r2 = s.request("GET", &path, &[("Origin", origin)], None);
        r2.expect(200);
        for r in [&r, &r2] {
            for name in [
                "Access-Control-Allow-Origin",
                "Access-Control-Allow-Methods",
                "Access-Control-Allow-Headers",
                "Access-Control-Max-Age",
                "Access-Control-Expose-Headers",
            ] {
                assert_eq!(r.header(name), None, "{origin}: {name}");
            }
            assert_eq!(r.header("Vary"), Some("Origin"));
        }
    }
    // No Origin at all: only Vary.
    let r = s.get(&path, None);
    assert_eq!(r.header("Vary"), Some("Origin"));
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
}

#[test]
fn cors_with_a_star_allows_every_origin_with_a_star() {
    let s = TestApp::with_args(&["--cors-origins", "*"]);
    for origin in ["https://anything.example", "http://localhost:1234"] {
        let r = preflight(&s, "/posts", origin);
        assert_eq!(r.status, 204);
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(
            header_set(r.header("Access-Control-Allow-Methods")),
            header_set(Some("GET, POST, HEAD, OPTIONS"))
        );
        let r = s.request("GET", "/posts", &[("Origin", origin)], None);
        r.expect(200);
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(r.header("Vary"), Some("Origin"));
    }
}

#[test]
fn a_bad_cors_origin_stops_the_start_with_one_line() {
    let dir = TempDir::new("cors-bad");
    for bad in [
        "https://app.example.com/path",
        "*,https://a.example",
        "app.example.com",
    ] {
        let out = cli(
            &dir.path().join("x.db"),
            &["serve", "--addr", "127.0.0.1:0", "--cors-origins", bad],
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}
