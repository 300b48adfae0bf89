//! Owner undo (API.md v1.2 "History and erasure"): with `--owner-undo DURATION` the author
//! of a post they soft-deleted themselves may restore it within that time (same 409
//! rule); a post someone else deleted stays the admins' (403); trash items say until when
//! (`undo_until`), null when the caller may not, and always null without the option.

use crate::support::*;
use serde_json::{json, Value};

fn trash_item(s: &TestApp, who: &TestUser, post: i64) -> Value {
    s.collect_pages("/trash", Some(&who.token))
        .into_iter()
        .find(|item| id(item) == post)
        .unwrap_or_else(|| panic!("post {post} is not in {}'s trash", who.name))
}

fn restore(s: &TestApp, who: &TestUser, post: i64) -> Response {
    s.call(
        "POST",
        &format!("/posts/{post}/restore"),
        Some(&who.token),
        None,
    )
}

fn delete(s: &TestApp, who: &TestUser, post: i64) {
    assert_204(&s.call("DELETE", &format!("/posts/{post}"), Some(&who.token), None));
}

#[test]
fn an_author_undoes_their_own_delete_within_the_window() {
    let s = TestApp::with_args(&["--owner-undo", "1h"]);
    let alice = s.register("alice");
    let bob = s.register("bob");
    let root = s.admin("root");
    let own = id(&s.create_post_with_slug(&alice, "Own", "own"));
    delete(&s, &alice, own);

    let item = trash_item(&s, &alice, own);
    let deleted_at =
        postd::clock::Timestamp::parse(item["deleted_at"].as_str().unwrap()).expect("deleted_at");
    let until = postd::clock::Timestamp::parse(item["undo_until"].as_str().expect("undo_until"))
        .expect("a timestamp");
    assert_eq!(
        until.unix_millis().unwrap() - deleted_at.unix_millis().unwrap(),
        3_600_000,
        "{item}"
    );
    // Nobody else may undo it: the admin's view says null, bob is refused.
    assert_eq!(trash_item(&s, &root, own)["undo_until"], Value::Null);
    restore(&s, &bob, own).expect(403);

    let r = restore(&s, &alice, own);
    r.expect(200);
    assert_eq!(r.json()["slug"], "own");
    assert!(r.header("ETag").is_some());
    s.get(&format!("/posts/{own}"), None).expect(200);
    let events = s.collect_pages("/admin/audit?action=post.restore", Some(&root.token));
    assert_eq!(events[0]["actor_id"], alice.id);

    // The same 409 rule: its slug taken meanwhile, nothing changes.
    delete(&s, &alice, own);
    let taker = id(&s.create_post_with_slug(&bob, "Taker", "own"));
    restore(&s, &alice, own).expect(409);
    assert!(trash_item(&s, &alice, own)["undo_until"].is_string());
    delete(&s, &bob, taker);
    restore(&s, &alice, own).expect(200);
    // What is not deleted is no undo of the author's: 403 (ownership comes before 400);
    // an admin hears that it is not deleted.
    restore(&s, &alice, own).expect(403);
    restore(&s, &root, own).expect(400);
}

#[test]
fn a_post_someone_else_deleted_is_for_admins_to_restore() {
    let s = TestApp::with_args(&["--owner-undo", "1h"]);
    let alice = s.register("alice");
    let root = s.admin("root");
    let p = id(&s.create_post(&alice, "Moderated", "b"));
    delete(&s, &root, p);
    let item = trash_item(&s, &alice, p);
    assert_eq!(item["deleted_by_id"], root.id);
    assert_eq!(item["undo_until"], Value::Null);
    restore(&s, &alice, p).expect(403);
    s.get(&format!("/posts/{p}"), None).expect(404);
    restore(&s, &root, p).expect(200);
    // Bulk restore stays the admins'.
    delete(&s, &alice, p);
    s.bulk_restore(&alice, &[p]).expect(403);
    // Unknown posts are 404 for the author too.
    restore(&s, &alice, p + 1000).expect(404);
}

#[test]
fn without_the_option_only_admins_restore() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let root = s.admin("root");
    let p = id(&s.create_post(&alice, "Gone", "b"));
    delete(&s, &alice, p);
    assert_eq!(trash_item(&s, &alice, p)["undo_until"], Value::Null);
    assert_eq!(trash_item(&s, &root, p)["undo_until"], Value::Null);
    restore(&s, &alice, p).expect(403);
    restore(&s, &root, p).expect(200);
    // `0s` is the same as leaving it out.
    let s = TestApp::with_args(&["--owner-undo", "0s"]);
    let alice = s.register("alice");
    let p = id(&s.create_post(&alice, "Gone", "b"));
    delete(&s, &alice, p);
    assert_eq!(trash_item(&s, &alice, p)["undo_until"], Value::Null);
    restore(&s, &alice, p).expect(403);
    s.call(
        "PATCH",
        &format!("/posts/{p}"),
        Some(&alice.token),
        Some(&json!({"title": "x"})),
    )
    .expect(404);
}
