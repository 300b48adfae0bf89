//! Soft delete and the trash (API.md "Posts"): a soft-deleted post is gone from every
//! read path until restored; the trash shows users their own posts and admins all;
//! restore errors; a permanent delete takes the comments with it.

use crate::support::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn soft_deleted_post_is_invisible_on_every_read_path() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let root = s.admin("root");
    let keep = s.create_post_json(
        &alice.token,
        json!({"title": "Visible zebra", "body": "stays"}),
    );
    let gone = s.create_post_json(
        &alice.token,
        json!({"title": "Hidden zebra", "body": "quokka", "slug": "hidden"}),
    );
    let gid = id(&gone);
    let c1 = s.create_comment(&bob.token, gid, "first");
    let c2 = s.create_comment(&alice.token, gid, "second");
    let kc = s.create_comment(&bob.token, id(&keep), "on the kept post");

    assert_204(&s.call("DELETE", &format!("/posts/{gid}"), Some(&alice.token), None));

    for token in [None, Some(alice.token.as_str()), Some(root.token.as_str())] {
        s.get(&format!("/posts/{gid}"), token).expect(404);
        s.get("/posts/by-slug/hidden", token).expect(404);
        s.get(&format!("/posts/{gid}/comments"), token).expect(404);
        let all = ids(&s.collect_pages("/posts", token));
        assert_eq!(all, vec![id(&keep)]);
        assert_eq!(
            ids(&s.collect_pages(&format!("/posts?author_id={}", alice.id), token)),
            vec![id(&keep)]
        );
        assert_eq!(
            ids(&s.collect_pages("/posts?q=zebra", token)),
            vec![id(&keep)]
        );
        assert!(s.collect_pages("/posts?q=quokka", token).is_empty());
        assert!(s.collect_pages("/posts?q=hidden", token).is_empty());
    }
    // Writes through the hidden post: 404 for everybody, admins included.
    for who in [&alice, &bob, &root] {
        s.call(
            "POST",
            &format!("/posts/{gid}/comments"),
            Some(&who.token),
            Some(&json!({"body": "x"})),
        )
        .expect(404);
        s.call(
            "DELETE",
            &format!("/comments/{}", id(&c1)),
            Some(&who.token),
            None,
        )
        .expect(404);
        s.call(
            "PATCH",
            &format!("/posts/{gid}"),
            Some(&who.token),
            Some(&json!({"title": "x"})),
        )
        .expect(404);
    }
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM comments WHERE post_id = {gid}"
        )),
        2,
        "hidden, not deleted"
    );
    // The other post's comments are unaffected.
    assert_eq!(
        ids(&s.collect_pages(&format!("/posts/{}/comments", id(&keep)), None)),
        vec![id(&kc)]
    );

    // Restore brings the post and its comments back, unchanged.
    let r = s.call(
        "POST",
        &format!("/posts/{gid}/restore"),
        Some(&root.token),
        None,
    );
    r.expect(200);
    assert_eq!(r.json(), gone);
    assert_eq!(s.get(&format!("/posts/{gid}"), None).json(), gone);
    assert_eq!(s.get("/posts/by-slug/hidden", None).json(), gone);
    assert_eq!(
        s.collect_pages(&format!("/posts/{gid}/comments"), None),
        vec![c1.clone(), c2.clone()]
    );
    assert_eq!(ids(&s.collect_pages("/posts?q=quokka", None)), vec![gid]);
    assert_eq!(ids(&s.collect_pages("/posts", None)), vec![gid, id(&keep)]);
    // And its comments can be managed again.
    assert_204(&s.call(
        "DELETE",
        &format!("/comments/{}", id(&c1)),
        Some(&bob.token),
        None,
    ));
}

#[test]
fn trash_admin_sees_all_user_sees_own() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let root = s.admin("root");
    let a1 = s.create_post(&alice, "a1", "b");
    let a2 = s.create_post(&alice, "a2", "b");
    let b1 = s.create_post(&bob, "b1", "b");
    s.create_post(&bob, "b2 stays", "b");
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}", id(&a1)),
        Some(&alice.token),
        None,
    ));
    std::thread::sleep(Duration::from_millis(5));
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}", id(&b1)),
        Some(&bob.token),
        None,
    ));
    std::thread::sleep(Duration::from_millis(5));
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}", id(&a2)),
        Some(&root.token),
        None,
    ));

    let admin_view = s.collect_pages("/trash", Some(&root.token));
    assert_eq!(
        ids(&admin_view),
        vec![id(&a2), id(&b1), id(&a1)],
        "most recently deleted first"
    );
    for item in &admin_view {
        assert_trashed_shape(item);
    }
    assert_eq!(admin_view[0]["deleted_by_id"], root.id);
    assert_eq!(admin_view[1]["deleted_by_id"], bob.id);
    assert_eq!(admin_view[2]["deleted_by_id"], alice.id);
    assert!(admin_view[0]["deleted_at"].as_str() >= admin_view[1]["deleted_at"].as_str());
    // Apart from the deletion fields, the items are the posts as they were.
    let mut stripped = admin_view[2].clone();
    stripped.as_object_mut().unwrap().remove("deleted_at");
    stripped.as_object_mut().unwrap().remove("deleted_by_id");
    stripped.as_object_mut().unwrap().remove("expires_at");
    stripped.as_object_mut().unwrap().remove("undo_until");
    assert_eq!(stripped, a1);

    assert_eq!(
        ids(&s.collect_pages("/trash", Some(&alice.token))),
        vec![id(&a2), id(&a1)]
    );
    assert_eq!(
        ids(&s.collect_pages("/trash", Some(&bob.token))),
        vec![id(&b1)]
    );
    let carol = s.register("carol");
    let r = s.get("/trash", Some(&carol.token));
    r.expect(200);
    assert_eq!(r.json(), json!({"items": [], "next_cursor": null}));
}

#[test]
fn restore_errors() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let root = s.admin("root");
    let p = s.create_post(&alice, "Active", "b");
    let pid = id(&p);
    // Not deleted → 400.
    let r = s.call(
        "POST",
        &format!("/posts/{pid}/restore"),
        Some(&root.token),
        None,
    );
    r.expect(400);
    assert_eq!(s.get(&format!("/posts/{pid}"), None).json(), p);
    // Absent → 404 (for an admin).
    s.call("POST", "/posts/99999/restore", Some(&root.token), None)
        .expect(404);
    // Permanently deleted → 404.
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{pid}?permanent=true"),
        Some(&alice.token),
        None,
    ));
    s.call(
        "POST",
        &format!("/posts/{pid}/restore"),
        Some(&root.token),
        None,
    )
    .expect(404);
    // A body on restore is not needed; the request works without one.
    let q = s.create_post(&alice, "Again", "b");
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}", id(&q)),
        Some(&alice.token),
        None,
    ));
    let r = s.call(
        "POST",
        &format!("/posts/{}/restore", id(&q)),
        Some(&root.token),
        None,
    );
    r.expect(200);
    assert_post_shape(&r.json());
    assert_eq!(r.json(), q, "restored post is the post as it was");
}

#[test]
fn permanent_delete_removes_comments() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let a = s.create_post(&alice, "Active one", "b");
    let d = s.create_post(&alice, "Trashed one", "b");
    let other = s.create_post(&bob, "Other", "b");
    let ca = s.create_comment(&bob.token, id(&a), "x");
    s.create_comment(&alice.token, id(&a), "y");
    let cd = s.create_comment(&bob.token, id(&d), "z");
    let co = s.create_comment(&alice.token, id(&other), "w");

    // Active post, permanently.
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}?permanent=true", id(&a)),
        Some(&alice.token),
        None,
    ));
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM comments WHERE post_id = {}",
            id(&a)
        )),
        0
    );
    s.get(&format!("/posts/{}/comments", id(&a)), None)
        .expect(404);
    s.call(
        "DELETE",
        &format!("/comments/{}", id(&ca)),
        Some(&bob.token),
        None,
    )
    .expect(404);

    // Soft-deleted post, permanently.
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}", id(&d)),
        Some(&alice.token),
        None,
    ));
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}?permanent=true", id(&d)),
        Some(&alice.token),
        None,
    ));
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM comments WHERE post_id = {}",
            id(&d)
        )),
        0
    );
    assert_eq!(
        s.sql_count(&format!("SELECT count(*) FROM posts WHERE id = {}", id(&d))),
        0
    );
    s.call(
        "DELETE",
        &format!("/comments/{}", id(&cd)),
        Some(&bob.token),
        None,
    )
    .expect(404);
    assert!(s.get("/trash", Some(&alice.token)).json()["items"]
        .as_array()
        .unwrap()
        .is_empty());

    // Others untouched.
    assert_eq!(s.sql_count("SELECT count(*) FROM comments"), 1);
    assert_eq!(
        s.collect_pages(&format!("/posts/{}/comments", id(&other)), None),
        vec![co]
    );
    // Ids are never reused.
    let fresh = s.create_post(&alice, "Fresh", "b");
    assert!(id(&fresh) > id(&other));
}
