//! Pagination (API.md "General rules"; v1.1, "Conditional requests and pagination"): every
//! listing visits each row once in its order, whatever the page size and whatever is
//! deleted between pages; malformed query parameters and cursors of another form are 422.

use crate::support::*;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

#[track_caller]
fn check_pages(s: &TestApp, path: &str, token: Option<&str>, limit: usize, expected: &[i64]) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let first = format!("{path}{sep}limit={limit}");
    let mut url = first.clone();
    let mut seen: Vec<i64> = Vec::new();
    let mut pages = 0;
    loop {
        let r = s.get(&url, token);
        r.expect(200);
        let page = r.json();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit, "{url}: {} items", items.len());
        seen.extend(ids(items));
        pages += 1;
        assert!(
            pages <= expected.len() + 2,
            "{path}: pagination does not end"
        );
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(items.len(), limit, "{url}: a short page with a next_cursor");
                url = format!("{first}&cursor={c}");
            }
            None => break,
        }
    }
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "{path}: duplicates in {seen:?}");
    assert_eq!(seen, expected, "{path}");
    assert_eq!(
        pages,
        expected.len().div_ceil(limit).max(1),
        "{path}: page count"
    );
}

#[test]
fn pagination_posts_visits_every_row_once() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let mut all = Vec::new();
    let mut alice_ids = Vec::new();
    let mut even_ids = Vec::new();
    for i in 0..45 {
        let who = if i % 5 == 4 { &bob } else { &alice };
        let word = if i % 2 == 0 { "even" } else { "odd" };
        let p = s.create_post_json(
            &who.token,
            json!({"title": format!("Post number {i}"), "body": word}),
        );
        all.push(id(&p));
        if who.id == alice.id {
            alice_ids.push(id(&p));
        }
        if i % 2 == 0 {
            even_ids.push(id(&p));
        }
    }
    let desc = |v: &[i64]| v.iter().rev().copied().collect::<Vec<_>>();
    check_pages(&s, "/posts", None, 7, &desc(&all));
    check_pages(&s, "/posts", None, 45, &desc(&all));
    check_pages(&s, "/posts", None, 100, &desc(&all));
    check_pages(&s, "/posts", None, 1, &desc(&all));
    check_pages(
        &s,
        &format!("/posts?author_id={}", alice.id),
        None,
        7,
        &desc(&alice_ids),
    );
    check_pages(&s, "/posts?q=even", None, 7, &desc(&even_ids));
    // Default limit is 20.
    let r = s.get("/posts", None);
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 20);

    // Deleting rows between pages neither repeats nor skips the others.
    let r = s.get("/posts?limit=7", None);
    let page1 = ids(r.json()["items"].as_array().unwrap());
    let cursor = r.json()["next_cursor"].as_str().unwrap().to_string();
    let victim = desc(&all)[10];
    let owner = if alice_ids.contains(&victim) {
        &alice
    } else {
        &bob
    };
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{victim}"),
        Some(&owner.token),
        None,
    ));
    let mut rest = Vec::new();
    let mut url = format!("/posts?limit=7&cursor={cursor}");
    loop {
        let page = s.get(&url, None).json();
        rest.extend(ids(page["items"].as_array().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("/posts?limit=7&cursor={c}"),
            None => break,
        }
    }
    let mut expected: Vec<i64> = desc(&all);
    expected.retain(|x| *x != victim);
    assert_eq!([page1, rest].concat(), expected);
}

#[test]
fn pagination_comments_and_trash() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let root = s.admin("root");
    let host = s.create_post(&alice, "Host", "b");
    let mut comment_ids = Vec::new();
    for i in 0..45 {
        let who = if i % 3 == 0 { &bob } else { &alice };
        comment_ids.push(id(&s.create_comment(
            &who.token,
            id(&host),
            &format!("comment {i}"),
        )));
    }
    check_pages(
        &s,
        &format!("/posts/{}/comments", id(&host)),
        None,
        7,
        &comment_ids,
    );
    check_pages(
        &s,
        &format!("/posts/{}/comments", id(&host)),
        None,
        100,
        &comment_ids,
    );

    // 45 of alice's posts and 3 of bob's, deleted in a scrambled order.
    let mut posts = Vec::new();
    for i in 0..45 {
        posts.push(id(&s.create_post_json(
            &alice.token,
            json!({"title": format!("T{i}"), "body": ""}),
        )));
    }
    let bobs: Vec<i64> = (0..3)
        .map(|i| id(&s.create_post_json(&bob.token, json!({"title": format!("B{i}"), "body": ""}))))
        .collect();
    let mut deletion_order = Vec::new();
    for k in 0..45 {
        let pid = posts[(k * 17) % 45];
        assert_204(&s.call("DELETE", &format!("/posts/{pid}"), Some(&alice.token), None));
        deletion_order.push(pid);
        if k % 15 == 7 {
            let b = bobs[k / 15];
            assert_204(&s.call("DELETE", &format!("/posts/{b}"), Some(&bob.token), None));
            deletion_order.push(b);
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    let newest_first: Vec<i64> = deletion_order.iter().rev().copied().collect();
    let alice_view: Vec<i64> = newest_first
        .iter()
        .copied()
        .filter(|p| !bobs.contains(p))
        .collect();
    let bob_view: Vec<i64> = newest_first
        .iter()
        .copied()
        .filter(|p| bobs.contains(p))
        .collect();
    check_pages(&s, "/trash", Some(&root.token), 7, &newest_first);
    check_pages(&s, "/trash", Some(&alice.token), 7, &alice_view);
    check_pages(&s, "/trash", Some(&bob.token), 1, &bob_view);
    check_pages(&s, "/trash", Some(&root.token), 100, &newest_first);
    // The public list is empty now.
    assert_eq!(ids(&s.collect_pages("/posts", None)), vec![id(&host)]);
}

#[test]
fn malformed_query_parameters_are_422() {
    let s = TestApp::new();
    let a = s.register("alice");
    for i in 0..3 {
        let p = s.create_post(&a, &format!("p{i}"), "b");
        s.create_comment(&a.token, id(&p), "c");
        s.create_comment(&a.token, id(&p), "d");
        assert_204(&s.call(
            "DELETE",
            &format!("/posts/{}", id(&p)),
            Some(&a.token),
            None,
        ));
    }
    let host = s.create_post(&a, "host", "b");
    for _ in 0..3 {
        s.create_comment(&a.token, id(&host), "c");
    }
    for i in 0..3 {
        s.create_post(&a, &format!("q{i}"), "b");
    }
    let comments = format!("/posts/{}/comments", id(&host));
    let posts_cursor = s.get("/posts?limit=1", None).json()["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let comments_cursor = s.get(&format!("{comments}?limit=1"), None).json()["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let trash_cursor = s.get("/trash?limit=1", Some(&a.token)).json()["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let long = "a".repeat(10_000);

    for base in ["/posts", comments.as_str(), "/trash"] {
        let mut queries: Vec<String> = [
            "limit=0",
            "limit=101",
            "limit=abc",
            "limit=-1",
            "limit=1.5",
            "limit=",
            "limit=99999999999999999999",
            "cursor=zz",
            "cursor=abc",
            "cursor=%ff",
            "cursor=",
            "cursor=-1",
            "cursor=1.5",
            "cursor=12345678901234567890",
        ]
        .iter()
        .map(|q| q.to_string())
        .collect();
        if base == "/trash" {
            queries.push("cursor=7030".into());
        } else {
            queries.push("cursor=1795341845123-42".into());
        }
        for query in queries {
            let path = format!("{base}?{query}");
            let r = s.get(&path, Some(&a.token));
            assert_eq!(r.status, 422, "GET {path}: {}", r.text());
            r.expect(422);
        }
        let r = s.get(&format!("{base}?cursor={long}"), Some(&a.token));
        assert_eq!(
            r.status,
            422,
            "{base} with a 10,000-char cursor: {}",
            r.text()
        );
        r.expect(422);
        // Boundaries accepted.
        s.get(&format!("{base}?limit=1"), Some(&a.token))
            .expect(200);
        s.get(&format!("{base}?limit=100"), Some(&a.token))
            .expect(200);
    }
    for q in [
        "author_id=x",
        "author_id=0",
        "author_id=-1",
        "author_id=1.0",
        "author_id=",
        "author_id=99999999999999999999",
    ] {
        let r = s.get(&format!("/posts?{q}"), None);
        assert_eq!(r.status, 422, "{q}: {}", r.text());
        r.expect(422);
    }
    // A cursor is a position of its listing's form: one of another form is refused, one
    // of the same form (from another listing or made up) is accepted (API.md v1.1).
    for (path, cursor) in [
        ("/posts", &trash_cursor),
        (comments.as_str(), &trash_cursor),
        ("/trash", &posts_cursor),
        ("/trash", &comments_cursor),
    ] {
        let r = s.get(&format!("{path}?cursor={cursor}"), Some(&a.token));
        assert_eq!(r.status, 422, "{path} with a foreign cursor: {}", r.text());
    }
    for (path, cursor) in [
        ("/posts", comments_cursor.as_str()),
        (comments.as_str(), posts_cursor.as_str()),
        ("/posts", "00"),
        (comments.as_str(), "00"),
        ("/posts", "9999999999999999999"),
        ("/trash", "0-0"),
        ("/trash", "999999999999999-9999999999999999999"),
    ] {
        s.get(&format!("{path}?cursor={cursor}"), Some(&a.token))
            .expect(200);
    }
    // The genuine cursors work.
    s.get(&format!("/posts?cursor={posts_cursor}"), None)
        .expect(200);
    s.get(&format!("{comments}?cursor={comments_cursor}"), None)
        .expect(200);
    s.get(&format!("/trash?cursor={trash_cursor}"), Some(&a.token))
        .expect(200);
    // ?permanent must be a boolean.
    let pid = id(&s.create_post(&a, "perm", "b"));
    s.call(
        "DELETE",
        &format!("/posts/{pid}?permanent=yes"),
        Some(&a.token),
        None,
    )
    .expect(422);
    s.get(&format!("/posts/{pid}"), None).expect(200);
}
