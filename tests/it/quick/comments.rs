//! Comments (API.md "Comments"): create, list oldest first, field rules, and who may
//! delete one.

use crate::support::*;
use serde_json::json;

#[test]
fn comments_create_list_delete_and_permissions() {
    let s = TestApp::new();
    let owner = s.register("owner");
    let writer = s.register("writer");
    let stranger = s.register("stranger");
    let root = s.admin("root");
    let p = s.create_post(&owner, "Post", "b");
    let pid = id(&p);
    let path = format!("/posts/{pid}/comments");

    let r = s.call(
        "POST",
        &path,
        Some(&writer.token),
        Some(&json!({"body": "hello"})),
    );
    r.expect(201);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let c1 = r.json();
    assert_eq!(
        keys_of(&c1),
        sorted(&["id", "post_id", "author_id", "body", "created_at"])
    );
    assert_eq!(c1["post_id"], pid);
    assert_eq!(c1["author_id"], writer.id);
    assert_eq!(c1["body"], "hello");
    assert!(is_timestamp(&c1["created_at"]));
    let c2 = s.create_comment(&stranger.token, pid, "two");
    let c3 = s.create_comment(&writer.token, pid, "three");
    let c4 = s.create_comment(&root.token, pid, &"x".repeat(10_000));

    let r = s.get(&path, None);
    r.expect(200);
    assert_eq!(
        r.json(),
        json!({"items": [c1, c2, c3, c4], "next_cursor": null}),
        "oldest first"
    );

    // Validation.
    expect_422_field(
        &s.call(
            "POST",
            &path,
            Some(&writer.token),
            Some(&json!({"body": ""})),
        ),
        "body",
    );
    expect_422_field(
        &s.call(
            "POST",
            &path,
            Some(&writer.token),
            Some(&json!({"body": "x".repeat(10_001)})),
        ),
        "body",
    );
    expect_422_field(
        &s.call(
            "POST",
            &path,
            Some(&writer.token),
            Some(&json!({"body": 5})),
        ),
        "body",
    );
    expect_422_field(
        &s.call("POST", &path, Some(&writer.token), Some(&json!({}))),
        "body",
    );
    s.call(
        "POST",
        &path,
        Some(&writer.token),
        Some(&json!({"body": "x", "post_id": 3})),
    )
    .expect(422);
    assert_401(&s.call("POST", &path, None, Some(&json!({"body": "x"}))));
    assert_eq!(s.sql_count("SELECT count(*) FROM comments"), 4);

    // Delete: stranger 403; author, post owner, admin 204.
    s.call(
        "DELETE",
        &format!("/comments/{}", id(&c1)),
        Some(&stranger.token),
        None,
    )
    .expect(403);
    assert_401(&s.call("DELETE", &format!("/comments/{}", id(&c1)), None, None));
    assert_204(&s.call(
        "DELETE",
        &format!("/comments/{}", id(&c1)),
        Some(&writer.token),
        None,
    ));
    assert_204(&s.call(
        "DELETE",
        &format!("/comments/{}", id(&c2)),
        Some(&owner.token),
        None,
    ));
    assert_204(&s.call(
        "DELETE",
        &format!("/comments/{}", id(&c3)),
        Some(&root.token),
        None,
    ));
    s.call(
        "DELETE",
        &format!("/comments/{}", id(&c1)),
        Some(&writer.token),
        None,
    )
    .expect(404);
    assert_eq!(
        s.sql_count("SELECT count(*) FROM comments"),
        1,
        "comment delete is hard"
    );
    assert_eq!(ids(&s.collect_pages(&path, None)), vec![id(&c4)]);
}
