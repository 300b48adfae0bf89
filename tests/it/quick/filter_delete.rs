//! Delete by filter (API.md v1.2 "Change feed, API tokens, delete by filter"): `POST
//! /posts/bulk/delete {"filter":…}` counts what it matches (a dry run: count and up to 20
//! ids, oldest first), then deletes exactly that many or nothing (409 with the count
//! now), never more than `--max-bulk` (413 with the count); one `posts.filter_delete`
//! event; 422 for an empty or malformed filter; admins only.

use crate::support::*;
use serde_json::{json, Value};

fn by_filter(s: &TestApp, who: &TestUser, body: Value) -> Response {
    s.call("POST", "/posts/bulk/delete", Some(&who.token), Some(&body))
}

#[track_caller]
fn dry_run(s: &TestApp, who: &TestUser, filter: Value) -> (u64, Vec<i64>) {
    let r = by_filter(s, who, json!({"filter": filter, "dry_run": true}));
    r.expect(200);
    let answer = r.json();
    assert_eq!(keys_of(&answer), sorted(&["count", "sample"]), "{answer}");
    let sample = answer["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    (answer["count"].as_u64().unwrap(), sample)
}

fn active_count(s: &TestApp) -> i64 {
    s.sql_count("SELECT count(*) FROM posts WHERE deleted_at IS NULL")
}

#[test]
fn a_dry_run_counts_and_samples_the_oldest_twenty() {
    let s = TestApp::new();
    let root = s.admin("root");
    let alice = s.register("alice");
    let bob = s.register("bob");
    let mut alices = Vec::new();
    for n in 0..25 {
        alices.push(id(&s.create_post(&alice, &format!("alice {n}"), "b")));
        s.create_post(&bob, &format!("bob {n}"), "b");
    }
    let (count, sample) = dry_run(&s, &root, json!({"author_id": alice.id}));
    assert_eq!(count, 25);
    assert_eq!(sample, alices[..20]);
    // Trashed posts are not matched.
    s.bulk_delete(&root, &alices[..3]).expect(204);
    let (count, sample) = dry_run(&s, &root, json!({"author_id": alice.id, "deleted": false}));
    assert_eq!(count, 22);
    assert_eq!(sample, alices[3..23]);
    // Nothing changed by any of it.
    assert_eq!(active_count(&s), 47);
    let (count, sample) = dry_run(&s, &root, json!({"author_id": 999_999}));
    assert_eq!((count, sample), (0, vec![]));
}

#[test]
fn a_delete_takes_exactly_what_the_filter_matches_to_the_trash_or_for_good() {
    let s = TestApp::new();
    let root = s.admin("root");
    let alice = s.register("alice");
    let bob = s.register("bob");
    let mut doomed = Vec::new();
    for n in 0..4 {
        doomed.push(id(&s.create_post(
            &alice,
            &format!("spam offer {n}"),
            "buy now",
        )));
    }
    let keep = id(&s.create_post(&alice, "ham", "dinner"));
    let bobs = id(&s.create_post(&bob, "spam offer from bob", "b"));
    let filter = json!({"q": "spam", "author_id": alice.id});
    let (count, _) = dry_run(&s, &root, filter.clone());
    assert_eq!(count, 4);

    let r = by_filter(
        &s,
        &root,
        json!({"filter": filter, "dry_run": false, "expected_count": 4}),
    );
    r.expect(200);
    let answer = r.json();
    assert_eq!(answer["count"], 4);
    assert_eq!(answer["deleted"], json!(doomed));
    // In the trash, deleted by the admin; the others untouched.
    let trash = s.collect_pages("/trash", Some(&root.token));
    assert_eq!(
        ids(&trash),
        doomed.iter().rev().copied().collect::<Vec<_>>()
    );
    for item in &trash {
        assert_eq!(item["deleted_by_id"], root.id);
    }
    s.get(&format!("/posts/{keep}"), None).expect(200);
    s.get(&format!("/posts/{bobs}"), None).expect(200);

    // One event listing the ids.
    let events = s.collect_pages("/admin/audit?action=posts.filter_delete", Some(&root.token));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["target_ids"], json!(doomed));
    assert_eq!(events[0]["count"], 4);
    assert_eq!(events[0]["actor_id"], root.id);

    // hard_delete: gone with their comments.
    let c = s.create_comment(&bob.token, bobs, "a comment that goes too");
    let filter = json!({"author_id": bob.id});
    let r = by_filter(
        &s,
        &root,
        json!({"filter": filter, "expected_count": 1, "hard_delete": true}),
    );
    r.expect(200);
    assert_eq!(r.json()["deleted"], json!([bobs]));
    assert_eq!(
        s.sql_count(&format!("SELECT count(*) FROM posts WHERE id = {bobs}")),
        0
    );
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM comments WHERE id = {}",
            id(&c)
        )),
        0
    );
    let events = s.collect_pages("/admin/audit?action=posts.filter_delete", Some(&root.token));
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["target_ids"], json!([bobs]));
    assert!(
        events[0]["detail"]
            .as_str()
            .unwrap()
            .contains("permanently"),
        "{}",
        events[0]
    );
}

#[test]
fn a_count_that_changed_is_a_409_and_nothing_is_deleted() {
    let s = TestApp::new();
    let root = s.admin("root");
    let alice = s.register("alice");
    for n in 0..3 {
        s.create_post(&alice, &format!("stale {n}"), "b");
    }
    let filter = json!({"q": "stale"});
    assert_eq!(dry_run(&s, &root, filter.clone()).0, 3);
    // Someone writes meanwhile.
    s.create_post(&alice, "stale 3", "b");
    let audit_before = s.collect_pages("/admin/audit", Some(&root.token));
    for expected in [3, 5, 0] {
        let r = by_filter(
            &s,
            &root,
            json!({"filter": filter, "expected_count": expected}),
        );
        r.expect(409);
        assert_eq!(r.json()["count"], 4, "{}", r.text());
    }
    assert_eq!(active_count(&s), 4);
    assert_eq!(
        s.collect_pages("/admin/audit", Some(&root.token)),
        audit_before
    );
    // With the count now, it goes.
    by_filter(&s, &root, json!({"filter": filter, "expected_count": 4})).expect(200);
    assert_eq!(active_count(&s), 0);
}

#[test]
fn more_than_max_bulk_matches_is_a_413_with_the_count() {
    let s = TestApp::with_args(&["--max-bulk", "5"]);
    let root = s.admin("root");
    let alice = s.register("alice");
    for n in 0..6 {
        s.create_post(&alice, &format!("many {n}"), "b");
    }
    let filter = json!({"author_id": alice.id});
    let r = by_filter(&s, &root, json!({"filter": filter, "dry_run": true}));
    r.expect(413);
    assert_eq!(r.json()["count"], 6);
    let r = by_filter(&s, &root, json!({"filter": filter, "expected_count": 6}));
    r.expect(413);
    assert_eq!(r.json()["count"], 6);
    assert_eq!(active_count(&s), 6);
    // Five is allowed.
    s.bulk_delete(&root, &[1]).expect(204);
    assert_eq!(dry_run(&s, &root, filter.clone()).0, 5);
    by_filter(&s, &root, json!({"filter": filter, "expected_count": 5})).expect(200);
    assert_eq!(active_count(&s), 0);
}

#[test]
fn bad_filters_are_422_and_non_admins_403() {
    let s = TestApp::new();
    let root = s.admin("root");
    let alice = s.register("alice");
    let p = id(&s.create_post(&alice, "target", "b"));
    let a = alice.id;
    for (body, field) in [
        (json!({"filter": {}, "dry_run": true}), None),
        (json!({"filter": {"deleted": false}, "dry_run": true}), None),
        (json!({"filter": {"q": "!!! ..."}, "dry_run": true}), None),
        (json!({"filter": {"q": ""}, "expected_count": 1}), None),
        (
            json!({"filter": {"author_id": a, "deleted": true}, "dry_run": true}),
            Some("deleted"),
        ),
        (
            json!({"filter": {"author_id": a, "title": "x"}, "dry_run": true}),
            Some("title"),
        ),
        (json!({"filter": {"author_id": a}}), Some("expected_count")),
        (
            json!({"filter": {"author_id": a}, "dry_run": false}),
            Some("expected_count"),
        ),
        (
            json!({"filter": {"author_id": a}, "expected_count": -1}),
            Some("expected_count"),
        ),
        (
            json!({"filter": {"author_id": a}, "post_ids": [p], "dry_run": true}),
            Some("post_ids"),
        ),
        (
            json!({"filter": {"created_before": "yesterday"}, "dry_run": true}),
            Some("created_before"),
        ),
        (
            json!({"filter": {"author_id": "alice"}, "dry_run": true}),
            Some("author_id"),
        ),
        (
            json!({"filter": "author_id", "dry_run": true}),
            Some("filter"),
        ),
        (json!({"post_ids": [p], "dry_run": true}), Some("dry_run")),
    ] {
        let r = by_filter(&s, &root, body.clone());
        match field {
            Some(field) => {
                r.expect(422);
                // A field of the filter is reported on `filter`, its message naming it;
                // an unknown one by a message alone.
                let problem = r.json();
                let named = problem["errors"].as_array().unwrap().iter().any(|e| {
                    let message = e["message"].as_str().unwrap_or_default();
                    e["field"] == field
                        || (e["field"] == "filter" && message.starts_with(field))
                        || message.contains(&format!("'{field}'"))
                });
                assert!(named, "{body}: expected an error on {field}, got {problem}");
            }
            None => {
                r.expect(422);
            }
        }
        // DELETE /posts/bulk takes the same body.
        s.call("DELETE", "/posts/bulk", Some(&root.token), Some(&body))
            .expect(422);
    }
    assert_eq!(active_count(&s), 1);
    // Admins only, before anything is looked at.
    let body = json!({"filter": {"author_id": a}, "dry_run": true});
    by_filter(&s, &alice, body.clone()).expect(403);
    by_filter(&s, &alice, json!({"filter": {}})).expect(403);
    assert_401(&s.call("POST", "/posts/bulk/delete", None, Some(&body)));
    assert_eq!(active_count(&s), 1);
}

#[test]
fn q_matches_what_the_search_matches() {
    let s = TestApp::new();
    let root = s.admin("root");
    let alice = s.register("alice");
    for (title, body) in [
        ("Apple pie", "with cinnamon"),
        ("apple tart", "no pie here"),
        ("Pineapple", "not an apple? yes: apple"),
        ("Crab apples", "sour"),
        ("Cinnamon roll", "APPLE-free"),
        ("Piece of pie", "plain"),
        ("Ünïcode äpple", "grüße"),
    ] {
        s.create_post_json(&alice.token, json!({"title": title, "body": body}));
    }
    for q in [
        "apple",
        "APPLE pie",
        "pie",
        "cinnamon apple",
        "apple-free",
        "\"apple\" OR pie",
        "äpple",
        "grüße",
        "crab*",
        "NEAR(apple pie)",
        "nothing-matches-this",
    ] {
        let encoded: String = q
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let mut searched = ids(&s.collect_pages(&format!("/posts?q={encoded}"), None));
        searched.sort();
        let (count, sample) = dry_run(&s, &root, json!({ "q": q }));
        assert_eq!(count as usize, searched.len(), "q {q:?}");
        assert_eq!(sample, searched, "q {q:?}");
    }
}

/// The same instant as `utc` (`…T10:04:05.123Z`), written with an offset of ±05:00.
fn with_offset(utc: &str) -> String {
    let hour: u32 = utc[11..13].parse().unwrap();
    let (hour, offset) = if hour >= 5 {
        (hour - 5, "-05:00")
    } else {
        (hour + 5, "+05:00")
    };
    format!(
        "{}{hour:02}{}{offset}",
        &utc[..11],
        utc[13..].trim_end_matches('Z')
    )
}

#[test]
fn created_before_takes_rfc_3339_with_offsets() {
    let s = TestApp::new();
    let root = s.admin("root");
    let alice = s.register("alice");
    let mut posts = Vec::new();
    for n in 0..4 {
        posts.push(s.create_post(&alice, &format!("dated {n}"), "b"));
        next_millisecond();
    }
    let cut = posts[2]["created_at"].as_str().unwrap();
    let shifted = with_offset(cut);
    assert_ne!(shifted, cut);
    for before in [cut.to_string(), shifted.clone()] {
        let (count, sample) = dry_run(&s, &root, json!({ "created_before": before }));
        assert_eq!(count, 2, "{before}");
        assert_eq!(sample, ids(&posts[..2]), "{before}");
    }
    // Without fractions, and far away.
    let (count, _) = dry_run(
        &s,
        &root,
        json!({"created_before": "1999-12-31T23:00:00-01:00"}),
    );
    assert_eq!(count, 0);
    let (count, _) = dry_run(
        &s,
        &root,
        json!({"created_before": "2999-01-01T00:00:00+14:00"}),
    );
    assert_eq!(count, 4);
    let r = by_filter(
        &s,
        &root,
        json!({"filter": {"created_before": shifted}, "expected_count": 2}),
    );
    r.expect(200);
    assert_eq!(r.json()["deleted"], json!(ids(&posts[..2])));
}
