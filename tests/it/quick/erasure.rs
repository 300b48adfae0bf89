//! Erasure (API.md v1.2 "History and erasure"): `DELETE /admin/users/{id}` and `postd user
//! erase NAME` remove, in one transaction, the user, their posts (active and trashed) with
//! comments and revisions, their comments elsewhere and their idempotency records; their
//! tokens stop working; the one `user.erase` event carries counts and the id, never the
//! name, and the name leaves every older event's `detail` — and, after a checkpoint, every
//! byte of the database file. A dry run only counts.

use crate::support::*;
use serde_json::{json, Value};

/// A name found nowhere else, so a search of the file's bytes means something.
const NAME: &str = "zqxerasable";

/// What each table holds, in one map, to compare before and after.
fn table_counts(s: &TestApp) -> Vec<(&'static str, i64)> {
    [
        "users",
        "posts",
        "comments",
        "post_revisions",
        "idempotency_keys",
        "api_tokens",
        "audit_events",
    ]
    .into_iter()
    .map(|t| (t, s.sql_count(&format!("SELECT count(*) FROM {t}"))))
    .collect()
}

/// The world an erasure works on: the victim with two posts (one edited twice, one in the
/// trash), comments both ways with bob, a keyed create, an API token, and two role changes
/// that name them in the audit log.
struct World {
    s: TestApp,
    root: TestUser,
    victim: TestUser,
    bob: TestUser,
    bobs_post: i64,
    bobs_comment_elsewhere: i64,
    api_token: String,
}

fn world() -> World {
    let s = TestApp::new();
    let root = s.admin("root");
    let victim = s.register(NAME);
    let bob = s.register("bob");
    let kept = id(&s.create_post(&victim, "Kept diary", "secret words of the victim"));
    for n in 0..2 {
        s.call(
            "PATCH",
            &format!("/posts/{kept}"),
            Some(&victim.token),
            Some(&json!({ "body": format!("edit {n}") })),
        )
        .expect(200);
    }
    let trashed = id(&s.create_post(&victim, "Trashed diary", "b"));
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{trashed}"),
        Some(&victim.token),
        None,
    ));
    // A keyed create: an idempotency record of theirs.
    s.call_with(
        "POST",
        "/posts",
        Some(&victim.token),
        Some(&json!({"title": "Keyed", "body": "b"})),
        &[("Idempotency-Key", "victim-key-1")],
    )
    .expect(201);
    let bobs_post = id(&s.create_post(&bob, "Bob's", "b"));
    // Theirs on bob's post (2), bob's on theirs (1), bob's on his own (stays).
    s.create_comment(&victim.token, bobs_post, "victim was here");
    s.create_comment(&victim.token, bobs_post, "victim again");
    s.create_comment(&bob.token, kept, "bob on the victim's post");
    let bobs_comment_elsewhere = id(&s.create_comment(&bob.token, bobs_post, "bob stays"));
    // Events naming them.
    s.cli_ok(&["user", "role", NAME, "admin"], &[]);
    s.cli_ok(&["user", "role", NAME, "user"], &[]);
    let r = s.call(
        "POST",
        "/auth/tokens",
        Some(&victim.token),
        Some(&json!({"name": "script", "scopes": ["posts:read", "posts:write"]})),
    );
    r.expect(201);
    let api_token = r.json()["token"].as_str().expect("token").to_string();
    World {
        s,
        root,
        victim,
        bob,
        bobs_post,
        bobs_comment_elsewhere,
        api_token,
    }
}

fn erase(w: &World, query: &str) -> Response {
    w.s.call(
        "DELETE",
        &format!("/admin/users/{}{query}", w.victim.id),
        Some(&w.root.token),
        None,
    )
}

/// posts 3 (kept, trashed, keyed); comments 2 of theirs elsewhere + 1 of bob on theirs;
/// revisions 2 (the kept post's two edits).
const COUNTS: (i64, i64, i64) = (3, 3, 2);

fn assert_counts(answer: &Value) {
    assert_eq!(
        keys_of(answer),
        sorted(&["posts", "comments", "revisions"]),
        "{answer}"
    );
    assert_eq!(
        (
            answer["posts"].as_i64(),
            answer["comments"].as_i64(),
            answer["revisions"].as_i64()
        ),
        (Some(COUNTS.0), Some(COUNTS.1), Some(COUNTS.2)),
        "{answer}"
    );
}

#[test]
fn a_dry_run_counts_and_changes_nothing() {
    let w = world();
    let before = table_counts(&w.s);
    let audit_before = w.s.collect_pages("/admin/audit", Some(&w.root.token));
    let r = erase(&w, "?dry_run=true");
    r.expect(200);
    assert_counts(&r.json());
    assert_eq!(table_counts(&w.s), before);
    assert_eq!(
        w.s.collect_pages("/admin/audit", Some(&w.root.token)),
        audit_before
    );
    w.s.get("/auth/me", Some(&w.victim.token)).expect(200);
    // The command line's dry run, too.
    let out = w.s.cli_ok(&["user", "erase", NAME, "--dry-run"], &[]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("3 posts, 3 comments, 2 revisions"), "{said}");
    assert_eq!(table_counts(&w.s), before);
}

#[test]
fn an_erasure_removes_everything_of_theirs_and_nothing_else() {
    let w = world();
    let s = &w.s;
    let v = w.victim.id;
    let bob_before = (
        s.sql_count(&format!(
            "SELECT count(*) FROM posts WHERE author_id = {}",
            w.bob.id
        )),
        s.sql_count(&format!(
            "SELECT count(*) FROM comments WHERE author_id = {}",
            w.bob.id
        )),
    );
    let r = erase(&w, "");
    r.expect(200);
    assert_counts(&r.json());

    for (what, sql) in [
        ("user", format!("SELECT count(*) FROM users WHERE id = {v}")),
        (
            "posts",
            format!("SELECT count(*) FROM posts WHERE author_id = {v}"),
        ),
        (
            "comments",
            format!("SELECT count(*) FROM comments WHERE author_id = {v}"),
        ),
        (
            "revisions",
            "SELECT count(*) FROM post_revisions
             WHERE post_id NOT IN (SELECT id FROM posts)"
                .to_string(),
        ),
        (
            "idempotency records",
            format!("SELECT count(*) FROM idempotency_keys WHERE user_id = {v}"),
        ),
        (
            "tokens",
            format!("SELECT count(*) FROM api_tokens WHERE user_id = {v}"),
        ),
    ] {
        assert_eq!(s.sql_count(&sql), 0, "{what} of the erased user remain");
    }
    assert_eq!(s.sql_count("SELECT count(*) FROM post_revisions"), 0);
    // Bob keeps his post and his comment on it; his comment on their post went with it.
    assert_eq!(
        (
            s.sql_count(&format!(
                "SELECT count(*) FROM posts WHERE author_id = {}",
                w.bob.id
            )),
            s.sql_count(&format!(
                "SELECT count(*) FROM comments WHERE author_id = {}",
                w.bob.id
            )),
        ),
        (bob_before.0, bob_before.1 - 1)
    );
    let comments = s.collect_pages(&format!("/posts/{}/comments", w.bobs_post), None);
    assert_eq!(ids(&comments), [w.bobs_comment_elsewhere]);
    // Their tokens: 401 from now on.
    assert_401(&s.get("/auth/me", Some(&w.victim.token)));
    assert_401(&s.get("/auth/me", Some(&w.api_token)));
    assert_401(&s.post_json(&w.victim.token, json!({"title": "after", "body": "b"})));
    // Nothing is left to erase: 404; the name may sign up again as a new user.
    erase(&w, "").expect(404);
    erase(&w, "?dry_run=true").expect(404);
    let again = s.register(NAME);
    assert_ne!(again.id, v);
}

#[test]
fn the_erase_event_names_no_one_and_older_events_forget_the_name() {
    let w = world();
    let s = &w.s;
    let naming = s.collect_pages("/admin/audit?action=user.role", Some(&w.root.token));
    assert_eq!(naming.len(), 2);
    for event in &naming {
        assert!(event["detail"].as_str().unwrap().contains(NAME), "{event}");
    }
    erase(&w, "").expect(200);

    let events = s.collect_pages("/admin/audit", Some(&w.root.token));
    let erased: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "user.erase")
        .collect();
    assert_eq!(erased.len(), 1, "{events:?}");
    let event = erased[0];
    assert_eq!(event["actor_id"], w.root.id);
    assert_eq!(event["target_ids"], json!([w.victim.id]));
    assert_eq!(event["count"], 1);
    let detail = event["detail"].as_str().unwrap();
    for count in ["3 posts", "3 comments", "2 revisions"] {
        assert!(detail.contains(count), "{detail}");
    }
    assert!(detail.contains(&w.victim.id.to_string()), "{detail}");
    for event in &events {
        let text = event.to_string().to_lowercase();
        assert!(!text.contains(NAME), "the name is still in {event}");
        // Their posts' slugs (made from the titles they wrote) leave the events about them.
        assert!(
            !text.contains("diary"),
            "a slug of theirs is still in {event}"
        );
    }
    // The role changes are still there, naming the user by id.
    let naming = s.collect_pages("/admin/audit?action=user.role", Some(&w.root.token));
    assert_eq!(naming.len(), 2);
    for event in &naming {
        let detail = event["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("#{}", w.victim.id)), "{detail}");
    }
}

/// Every place `needle` occurs in `bytes`.
fn occurrences(bytes: &[u8], needle: &[u8]) -> Vec<usize> {
    bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| w.eq_ignore_ascii_case(needle))
        .map(|(at, _)| at)
        .collect()
}

#[test]
fn after_a_checkpoint_no_byte_of_the_file_holds_the_name() {
    let w = world();
    let s = &w.s;
    let files = || {
        let mut wal = s.db.clone().into_os_string();
        wal.push("-wal");
        [s.db.clone(), wal.into()]
    };
    // The name is there before (or the search below would prove nothing).
    s.checkpoint();
    let db = std::fs::read(&s.db).expect("read the database");
    assert!(!occurrences(&db, NAME.as_bytes()).is_empty());
    assert!(!occurrences(&db, b"secret words of the victim").is_empty());

    erase(&w, "").expect(200);
    s.checkpoint();
    for file in files() {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for needle in [
            NAME.as_bytes(),
            b"secret words of the victim",
            b"victim was here",
            b"kept-diary",
            b"trashed-diary",
        ] {
            let found = occurrences(&bytes, needle);
            assert!(
                found.is_empty(),
                "{} holds {:?} at {found:?}",
                file.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[test]
fn who_may_erase_whom() {
    let w = world();
    let s = &w.s;
    let path = format!("/admin/users/{}", w.victim.id);
    assert_401(&s.call("DELETE", &path, None, None));
    s.call("DELETE", &path, Some(&w.bob.token), None)
        .expect(403);
    s.call(
        "DELETE",
        &format!("{path}?dry_run=true"),
        Some(&w.bob.token),
        None,
    )
    .expect(403);
    // An admin can not erase themselves; another admin can.
    let other = s.admin("other-root");
    let own = s.call(
        "DELETE",
        &format!("/admin/users/{}", w.root.id),
        Some(&w.root.token),
        None,
    );
    own.expect(409);
    s.get("/auth/me", Some(&w.root.token)).expect(200);
    s.call(
        "DELETE",
        &format!("/admin/users/{}", w.root.id),
        Some(&other.token),
        None,
    )
    .expect(200);
    assert_401(&s.get("/auth/me", Some(&w.root.token)));
    s.call("DELETE", "/admin/users/999999", Some(&other.token), None)
        .expect(404);
    s.call(
        "DELETE",
        &format!("{path}?dry_run=maybe"),
        Some(&other.token),
        None,
    )
    .expect(422);
    s.get("/auth/me", Some(&w.victim.token)).expect(200);
}

#[test]
fn the_command_line_erases_too() {
    let w = world();
    let s = &w.s;
    let out = s.cli_ok(&["user", "erase", NAME], &[]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("3 posts, 3 comments, 2 revisions"), "{said}");
    assert!(
        !said.contains(NAME),
        "the answer names the erased user: {said}"
    );
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM users WHERE id = {}",
            w.victim.id
        )),
        0
    );
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM posts WHERE author_id = {}",
            w.victim.id
        )),
        0
    );
    assert_401(&s.get("/auth/me", Some(&w.victim.token)));
    let events = s.collect_pages("/admin/audit?action=user.erase", Some(&w.root.token));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor_id"], Value::Null);
    assert_eq!(events[0]["target_ids"], json!([w.victim.id]));
    for event in s.collect_pages("/admin/audit", Some(&w.root.token)) {
        assert!(!event.to_string().contains(NAME), "{event}");
    }
    // Once more: there is no such user.
    let again = s.cli(&["user", "erase", NAME], &[]);
    assert!(!again.status.success());
}
