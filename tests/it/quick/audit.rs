//! The audit log: every audited change appends exactly one event with the right actor,
//! action, ids and detail; a rejected request, a dry run or a change that changes nothing
//! appends none; `GET /admin/audit` pages and filters; `postd audit` prints;
//! `POST /admin/purge` and `GET /trash?q&author_id`. That events and changes are never
//! seen apart after a SIGKILL is `heavy::audit`.

use crate::support::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Every event, newest first, through the API.
fn events(srv: &TestApp, admin: &TestUser) -> Vec<Value> {
    srv.collect_pages("/admin/audit?limit=100", Some(&admin.token))
}

/// Runs `change` and returns the events it appended (oldest first).
#[track_caller]
fn appended(srv: &TestApp, admin: &TestUser, change: impl FnOnce()) -> Vec<Value> {
    let before = events(srv, admin);
    change();
    let after = events(srv, admin);
    assert_eq!(
        after[after.len() - before.len()..],
        before[..],
        "older events changed"
    );
    let mut new = after[..after.len() - before.len()].to_vec();
    new.reverse();
    new
}

/// The one event `change` appended, checked for shape, actor, action, targets and detail.
#[track_caller]
fn one_event(
    srv: &TestApp,
    admin: &TestUser,
    expected: (Option<i64>, &str, &[i64], &str),
    change: impl FnOnce(),
) -> Value {
    let new = appended(srv, admin, change);
    assert_eq!(new.len(), 1, "expected one event, got {new:?}");
    let event = new[0].clone();
    let keys: BTreeSet<&str> = event
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "id",
            "at",
            "actor_id",
            "action",
            "target_ids",
            "count",
            "detail"
        ]),
        "{event}"
    );
    assert!(is_timestamp(&event["at"]), "{event}");
    let (actor, action, targets, detail) = expected;
    assert_eq!(event["actor_id"], json!(actor), "{event}");
    assert_eq!(event["action"], action, "{event}");
    assert_eq!(event["target_ids"], json!(targets), "{event}");
    assert_eq!(event["count"], targets.len(), "{event}");
    assert_eq!(event["detail"], detail, "{event}");
    event
}

#[track_caller]
fn nothing_appended(srv: &TestApp, admin: &TestUser, what: &str, change: impl FnOnce()) {
    let new = appended(srv, admin, change);
    assert!(new.is_empty(), "{what} appended {new:?}");
}

fn post_with_slug(srv: &TestApp, user: &TestUser, slug: &str) -> i64 {
    id(&srv.create_post_with_slug(user, slug, slug))
}

#[test]
fn every_audited_change_appends_exactly_one_event() {
    let srv = TestApp::new();
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    let bob = srv.register("bob");
    let p: Vec<i64> = (1..=8)
        .map(|n| post_with_slug(&srv, &alice, &format!("p{n}")))
        .collect();
    let call = |method: &str, path: &str, token: &str, body: Option<Value>| {
        srv.call(method, path, Some(token), body.as_ref())
    };

    // Creates and updates, single and bulk (the change feed's events).
    let mut made = 0;
    let created = one_event(
        &srv,
        &admin,
        (Some(bob.id), "post.create", &[p[7] + 1], "slug fresh"),
        || {
            let r = call(
                "POST",
                "/posts",
                &bob.token,
                Some(json!({"title": "Fresh", "body": "b"})),
            );
            r.expect(201);
            made = id(&r.json());
        },
    );
    assert_eq!(created["target_ids"], json!([made]));
    one_event(
        &srv,
        &admin,
        (Some(bob.id), "post.update", &[made], "slug fresher"),
        || {
            call(
                "PATCH",
                &format!("/posts/{made}"),
                &bob.token,
                Some(json!({"slug": "fresher"})),
            )
            .expect(200);
        },
    );
    let bulk = appended(&srv, &admin, || {
        call(
            "POST",
            "/posts/bulk",
            &bob.token,
            Some(json!({"items": [{"title": "B1", "body": ""}, {"title": "B2", "body": ""}]})),
        )
        .expect(201);
    });
    assert_eq!(bulk.len(), 1, "{bulk:?}");
    assert_eq!(bulk[0]["action"], "posts.bulk_create");
    assert_eq!(bulk[0]["count"], 2);
    assert_eq!(bulk[0]["detail"], "requested 2");
    let b_ids: Vec<i64> = bulk[0]["target_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    one_event(
        &srv,
        &admin,
        (Some(bob.id), "posts.bulk_update", &b_ids, "requested 2"),
        || {
            call(
                "PATCH",
                "/posts/bulk",
                &bob.token,
                Some(json!({"items": [{"id": b_ids[0], "body": "x"}, {"id": b_ids[1], "body": "y"}]})),
            )
            .expect(200);
        },
    );
    // Delete by filter: one event however many it deletes.
    one_event(
        &srv,
        &admin,
        (
            Some(admin.id),
            "posts.filter_delete",
            &[made, b_ids[0], b_ids[1]],
            &format!(
                "author_id {}, created_before 2999-01-01T00:00:00.000Z; permanently",
                bob.id
            ),
        ),
        || {
            let r = call(
                "POST",
                "/posts/bulk/delete",
                &admin.token,
                Some(
                    json!({"filter": {"author_id": bob.id, "created_before": "2999-01-01T00:00:00Z", "q": ""}, "expected_count": 3, "hard_delete": true}),
                ),
            );
            r.expect(200);
        },
    );

    one_event(
        &srv,
        &admin,
        (Some(alice.id), "post.delete", &[p[0]], "slug p1"),
        || {
            call("DELETE", &format!("/posts/{}", p[0]), &alice.token, None).expect(204);
        },
    );
    one_event(
        &srv,
        &admin,
        (Some(admin.id), "post.restore", &[p[0]], "slug p1"),
        || {
            call(
                "POST",
                &format!("/posts/{}/restore", p[0]),
                &admin.token,
                None,
            )
            .expect(200);
        },
    );
    one_event(
        &srv,
        &admin,
        (Some(alice.id), "post.delete_permanent", &[p[1]], "slug p2"),
        || {
            call(
                "DELETE",
                &format!("/posts/{}?permanent=true", p[1]),
                &alice.token,
                None,
            )
            .expect(204);
        },
    );
    call("DELETE", &format!("/posts/{}", p[2]), &alice.token, None).expect(204);
    one_event(
        &srv,
        &admin,
        (
            Some(admin.id),
            "post.delete_permanent",
            &[p[2]],
            "slug p3, from the trash",
        ),
        || {
            call(
                "DELETE",
                &format!("/posts/{}?permanent=true", p[2]),
                &admin.token,
                None,
            )
            .expect(204);
        },
    );
    // Bulk: unknown and already-deleted ids are skipped, and not listed.
    call("DELETE", &format!("/posts/{}", p[5]), &alice.token, None).expect(204);
    one_event(
        &srv,
        &admin,
        (
            Some(admin.id),
            "posts.bulk_delete",
            &[p[3], p[4]],
            "requested 4, skipped 2",
        ),
        || {
            call(
                "DELETE",
                "/posts/bulk",
                &admin.token,
                Some(json!({"post_ids": [p[3], 999_999, p[4], p[5]]})),
            )
            .expect(204);
        },
    );
    one_event(
        &srv,
        &admin,
        (
            Some(admin.id),
            "posts.bulk_restore",
            &[p[4], p[3]],
            "requested 2",
        ),
        || {
            call(
                "POST",
                "/posts/bulk/restore",
                &admin.token,
                Some(json!({"post_ids": [p[4], p[3]]})),
            )
            .expect(200);
        },
    );
    one_event(
        &srv,
        &admin,
        (
            Some(admin.id),
            "posts.bulk_delete_permanent",
            &[p[3], p[5]],
            "requested 3, skipped 1",
        ),
        || {
            call(
                "DELETE",
                "/posts/bulk",
                &admin.token,
                Some(json!({"post_ids": [p[3], p[5], 999_999], "hard_delete": true})),
            )
            .expect(204);
        },
    );
    // Purges: over HTTP by an admin, and from the command line (no actor).
    call("DELETE", &format!("/posts/{}", p[6]), &alice.token, None).expect(204);
    next_millisecond();
    let purged = one_event(
        &srv,
        &admin,
        (Some(admin.id), "trash.purge", &[p[6]], "older than 0s"),
        || {
            let resp = call(
                "POST",
                "/admin/purge",
                &admin.token,
                Some(json!({"older_than": "0s"})),
            );
            resp.expect(200);
            assert_eq!(resp.json(), json!({"purged": 1}));
        },
    );
    assert!(purged["at"].as_str() > Some(""));
    call("DELETE", &format!("/posts/{}", p[7]), &alice.token, None).expect(204);
    one_event(
        &srv,
        &admin,
        (None, "trash.purge", &[p[7]], "older than 0s, command line"),
        || {
            let out = srv.cli_ok(&["purge", "--older-than", "0s"], &[]);
            assert!(String::from_utf8_lossy(&out.stdout).starts_with("purged 1 posts"));
        },
    );
    // Users, from the command line.
    one_event(
        &srv,
        &admin,
        (
            None,
            "user.role",
            &[bob.id],
            "role admin (was user), user bob",
        ),
        || {
            srv.cli_ok(&["user", "role", "bob", "admin"], &[]);
        },
    );
    let bobs = post_with_slug(&srv, &bob, "bobs");
    call("DELETE", &format!("/posts/{bobs}"), &bob.token, None).expect(204);
    post_with_slug(&srv, &bob, "bobs-second");
    one_event(
        &srv,
        &admin,
        (
            None,
            "user.delete",
            &[bob.id],
            "user bob, with 2 posts and 0 comments of theirs",
        ),
        || {
            srv.cli_ok(&["user", "delete", "bob"], &[]);
        },
    );
    // Bob's own events keep his id after he is gone.
    let bobs_events = srv.get(
        &format!("/admin/audit?actor_id={}", bob.id),
        Some(&admin.token),
    );
    bobs_events.expect(200);
    let bobs: Vec<Value> = bobs_events.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].clone())
        .collect();
    assert_eq!(
        bobs[..3],
        [
            json!("post.create"),
            json!("post.delete"),
            json!("post.create")
        ]
    );
}

#[test]
fn refusals_dry_runs_and_changes_that_change_nothing_append_nothing() {
    let srv = TestApp::new();
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    let bob = srv.register("bob");
    let taken = post_with_slug(&srv, &alice, "taken");
    srv.call(
        "DELETE",
        &format!("/posts/{taken}"),
        Some(&alice.token),
        None,
    )
    .expect(204);
    next_millisecond();
    let holder = post_with_slug(&srv, &alice, "taken");
    let mine = post_with_slug(&srv, &alice, "mine");
    let before = events(&srv, &admin).len();
    assert_eq!(before, 4, "three creates and a delete");

    /// What is tried, method, path, who, body, the expected status.
    type Refusal<'a> = (
        &'a str,
        &'a str,
        String,
        Option<&'a TestUser>,
        Option<Value>,
        u16,
    );
    let refusals: Vec<Refusal> = vec![
        (
            "bob deletes alice's post",
            "DELETE",
            format!("/posts/{mine}"),
            Some(&bob),
            None,
            403,
        ),
        (
            "delete of an absent post",
            "DELETE",
            "/posts/999999".into(),
            Some(&alice),
            None,
            404,
        ),
        (
            "permanent delete by another user",
            "DELETE",
            format!("/posts/{mine}?permanent=true"),
            Some(&bob),
            None,
            403,
        ),
        (
            "restore onto a taken slug",
            "POST",
            format!("/posts/{taken}/restore"),
            Some(&admin),
            None,
            409,
        ),
        (
            "restore of an active post",
            "POST",
            format!("/posts/{holder}/restore"),
            Some(&admin),
            None,
            400,
        ),
        (
            "restore by a user",
            "POST",
            format!("/posts/{taken}/restore"),
            Some(&alice),
            None,
            403,
        ),
        (
            "bulk restore onto a taken slug",
            "POST",
            "/posts/bulk/restore".into(),
            Some(&admin),
            Some(json!({"post_ids": [taken]})),
            409,
        ),
        (
            "bulk delete of nothing that exists",
            "DELETE",
            "/posts/bulk".into(),
            Some(&admin),
            Some(json!({"post_ids": [999_998, 999_999]})),
            204,
        ),
        (
            "bulk soft delete of an already deleted post",
            "DELETE",
            "/posts/bulk".into(),
            Some(&admin),
            Some(json!({"post_ids": [taken]})),
            204,
        ),
        (
            "bulk hard delete of nothing that exists",
            "DELETE",
            "/posts/bulk".into(),
            Some(&admin),
            Some(json!({"post_ids": [999_999], "hard_delete": true})),
            204,
        ),
        (
            "bulk delete by a user",
            "DELETE",
            "/posts/bulk".into(),
            Some(&alice),
            Some(json!({"post_ids": [mine]})),
            403,
        ),
        (
            "purge that finds nothing",
            "POST",
            "/admin/purge".into(),
            Some(&admin),
            Some(json!({"older_than": "30d"})),
            200,
        ),
        (
            "dry run",
            "POST",
            "/admin/purge".into(),
            Some(&admin),
            Some(json!({"older_than": "0s", "dry_run": true})),
            200,
        ),
        (
            "purge with a bad duration",
            "POST",
            "/admin/purge".into(),
            Some(&admin),
            Some(json!({"older_than": "3w"})),
            422,
        ),
        (
            "purge by a user",
            "POST",
            "/admin/purge".into(),
            Some(&alice),
            Some(json!({"older_than": "0s"})),
            403,
        ),
        (
            "purge without a token",
            "POST",
            "/admin/purge".into(),
            None,
            Some(json!({"older_than": "0s"})),
            401,
        ),
    ];
    for (what, method, path, who, body, status) in refusals {
        nothing_appended(&srv, &admin, what, || {
            let resp = srv.call(method, &path, who.map(|u| u.token.as_str()), body.as_ref());
            assert_eq!(resp.status, status, "{what}: {}", resp.text());
        });
    }
    let dry = srv.call(
        "POST",
        "/admin/purge",
        Some(&admin.token),
        Some(&json!({"older_than": "0s", "dry_run": true})),
    );
    assert_eq!(dry.json(), json!({"purged": 1}), "a dry run counts");
    assert_eq!(
        srv.sql_count("SELECT count(*) FROM posts"),
        3,
        "and changes nothing"
    );

    nothing_appended(&srv, &admin, "command line", || {
        let out = srv.cli_ok(&["purge", "--older-than", "30d"], &[]);
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("purged 0 posts"));
        let out = srv.cli_ok(&["purge", "--older-than", "0s", "--dry-run"], &[]);
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("would purge 1 posts"));
        let bad = srv.cli(&["purge", "--older-than", "3w"], &[]);
        assert_eq!(
            bad.status.code(),
            Some(2),
            "a bad DURATION is a usage error"
        );
        let out = srv.cli_ok(&["user", "role", "alice", "user"], &[]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("already user"),
            "{out:?}"
        );
        let missing = srv.cli(&["user", "role", "nobody", "admin"], &[]);
        assert_eq!(missing.status.code(), Some(1));
        let missing = srv.cli(&["user", "delete", "nobody"], &[]);
        assert_eq!(missing.status.code(), Some(1));
    });
    assert_eq!(events(&srv, &admin).len(), before);
}

#[test]
fn the_audit_log_pages_newest_first_and_filters() {
    let srv = TestApp::new();
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    let mut made = Vec::new();
    for n in 0..7 {
        let post = post_with_slug(&srv, &alice, &format!("a{n}"));
        let who = if n % 2 == 0 { &alice } else { &admin };
        srv.call("DELETE", &format!("/posts/{post}"), Some(&who.token), None)
            .expect(204);
        made.push((post, who.id));
    }
    next_millisecond();
    srv.call(
        "POST",
        "/admin/purge",
        Some(&admin.token),
        Some(&json!({"older_than": "0s"})),
    )
    .expect(200);

    let all = events(&srv, &admin);
    assert_eq!(all.len(), 15, "seven creates, seven deletes, a purge");
    let event_ids = ids(&all);
    let mut sorted = event_ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(event_ids, sorted, "newest first");
    assert_eq!(all[0]["action"], "trash.purge");

    // Pages of 3 follow the cursor to the same list.
    let paged = srv.collect_pages("/admin/audit?limit=3", Some(&admin.token));
    assert_eq!(paged, all);
    let first = srv.get("/admin/audit?limit=3", Some(&admin.token)).json();
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    assert!(first["next_cursor"].is_string());

    let deletes = srv.collect_pages(
        "/admin/audit?action=post.delete&limit=2",
        Some(&admin.token),
    );
    assert_eq!(deletes.len(), 7);
    assert!(deletes.iter().all(|e| e["action"] == "post.delete"));
    let by_alice = srv.collect_pages(
        &format!("/admin/audit?actor_id={}", alice.id),
        Some(&admin.token),
    );
    assert_eq!(by_alice.len(), 11, "her seven creates and four deletes");
    let both = srv.collect_pages(
        &format!("/admin/audit?action=trash.purge&actor_id={}", admin.id),
        Some(&admin.token),
    );
    assert_eq!(both.len(), 1);
    let none = srv.get("/admin/audit?action=user.delete", Some(&admin.token));
    assert_eq!(none.json(), json!({"items": [], "next_cursor": null}));

    for bad in [
        "action=post.nope",
        "action=",
        "actor_id=x",
        "actor_id=0",
        "limit=0",
        "limit=101",
        "cursor=zz",
        "action=post.delete&action=post.restore",
    ] {
        srv.get(&format!("/admin/audit?{bad}"), Some(&admin.token))
            .expect(422);
    }
    // A cursor of another listing is refused.
    let trash_cursor = srv.get("/trash?limit=1", Some(&admin.token)).json()["next_cursor"]
        .as_str()
        .map(str::to_owned);
    if let Some(cursor) = trash_cursor {
        srv.get(&format!("/admin/audit?cursor={cursor}"), Some(&admin.token))
            .expect(422);
    }
    srv.get("/admin/audit", None).expect(401);
    // 403 before the query is looked at.
    srv.get("/admin/audit?limit=abc", Some(&alice.token))
        .expect(403);
}

#[test]
fn postd_audit_prints_the_log() {
    let srv = TestApp::new();
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    let out = srv.cli_ok(&["audit"], &[]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "the audit log is empty\n"
    );

    let items: Vec<Value> = (0..12)
        .map(|n| json!({"title": format!("c{n}"), "body": "b"}))
        .collect();
    let created = srv.call(
        "POST",
        "/posts/bulk",
        Some(&alice.token),
        Some(&json!({ "items": items })),
    );
    created.expect(201);
    let posts = ids(created.json()["items"].as_array().unwrap());
    srv.call(
        "DELETE",
        "/posts/bulk",
        Some(&admin.token),
        Some(&json!({"post_ids": posts})),
    )
    .expect(204);
    srv.cli_ok(&["purge", "--older-than", "0s"], &[]);

    let json_out = srv.cli_ok(&["audit", "--json"], &[]);
    let lines: Vec<Value> = String::from_utf8_lossy(&json_out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    assert_eq!(lines, events(&srv, &admin), "the same events as the API");

    let table = String::from_utf8_lossy(&srv.cli_ok(&["audit"], &[]).stdout).into_owned();
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 4, "{table}");
    assert!(rows[0].contains("ACTION"), "{table}");
    assert!(
        rows[1].contains("trash.purge") && rows[1].contains("older than 0s, command line"),
        "{table}"
    );
    assert!(
        rows[1].contains("… 4 more"),
        "long id lists are cut: {table}"
    );
    assert!(
        rows[2].contains("posts.bulk_delete") && rows[2].contains(&admin.id.to_string()),
        "{table}"
    );
    assert!(
        rows[3].contains("posts.bulk_create") && rows[3].contains("requested 12"),
        "{table}"
    );
    let limited = srv.cli_ok(&["audit", "--limit", "1", "--json"], &[]);
    assert_eq!(String::from_utf8_lossy(&limited.stdout).lines().count(), 1);
    assert_eq!(
        srv.cli(&["audit", "--limit", "0"], &[]).status.code(),
        Some(2)
    );

    // A database that does not exist is not created by reading it.
    let missing = srv.dir.path().join("missing.db");
    let out = cli(&missing, &["audit"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!missing.exists());
}

#[test]
fn purge_over_http_checks_in_order_and_empties_only_old_enough_trash() {
    let srv = TestApp::new();
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    let old = post_with_slug(&srv, &alice, "old");
    srv.call("DELETE", &format!("/posts/{old}"), Some(&alice.token), None)
        .expect(204);
    next_millisecond();
    let active = post_with_slug(&srv, &alice, "active");
    srv.call(
        "POST",
        &format!("/posts/{active}/comments"),
        Some(&alice.token),
        Some(&json!({"body": "kept"})),
    )
    .expect(201);

    let purge = |token: Option<&str>, body: &[u8], content_type: &str| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", content_type)];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        srv.request("POST", "/admin/purge", &headers, Some(body))
    };
    let json_type = "application/json";
    purge(None, b"{nope", json_type).expect(401);
    purge(Some(&alice.token), b"{nope", json_type).expect(403);
    purge(Some(&admin.token), br#"{"older_than":"0s"}"#, "text/plain").expect(415);
    purge(Some(&admin.token), b"{nope", json_type).expect(400);
    for bad in [
        json!({}),
        json!({"older_than": 30}),
        json!({"older_than": "30"}),
        json!({"older_than": "36501d"}),
        json!({"older_than": "-1d"}),
        json!({"older_than": "30d", "dry_run": "yes"}),
        json!({"older_than": "30d", "dry_run": null}),
        json!({"older_than": "30d", "extra": 1}),
        json!({"older_than": "x".repeat(100_000)}),
    ] {
        let resp = srv.call("POST", "/admin/purge", Some(&admin.token), Some(&bad));
        resp.expect(422);
        assert!(
            resp.body.len() < 2_000,
            "a bad value is not echoed: {}",
            resp.text()
        );
    }
    let kept = srv.call(
        "POST",
        "/admin/purge",
        Some(&admin.token),
        Some(&json!({"older_than": "1d"})),
    );
    assert_eq!(kept.json(), json!({"purged": 0}), "deleted just now");
    let purged = srv.call(
        "POST",
        "/admin/purge",
        Some(&admin.token),
        Some(&json!({"older_than": "0s", "dry_run": false})),
    );
    assert_eq!(purged.json(), json!({"purged": 1}));
    srv.get(&format!("/posts/{active}"), None).expect(200);
    assert_eq!(srv.sql_count("SELECT count(*) FROM posts"), 1);
    assert_eq!(srv.sql_count("SELECT count(*) FROM comments"), 1);
}

#[test]
fn the_trash_takes_q_and_author_id_like_the_post_list() {
    let srv = TestApp::new();
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    let bob = srv.register("bob");
    let make = |user: &TestUser, title: &str, body: &str| {
        let post = srv.create_post(user, title, body);
        srv.call(
            "DELETE",
            &format!("/posts/{}", id(&post)),
            Some(&user.token),
            None,
        )
        .expect(204);
        id(&post)
    };
    let a1 = make(&alice, "Quarterly report", "numbers inside");
    let a2 = make(&alice, "Holiday plans", "the report is elsewhere");
    let b1 = make(&bob, "Bob's report", "more numbers");
    let active = srv.create_post(&alice, "An active report", "numbers");

    let trash = |query: &str, user: &TestUser| -> Vec<i64> {
        ids(&srv.collect_pages(&format!("/trash?{query}"), Some(&user.token)))
    };
    assert_eq!(trash("q=report", &admin), [b1, a2, a1]);
    assert_eq!(trash("q=numbers+report", &admin), [b1, a1]);
    assert_eq!(trash("q=REPORT%20quarterly", &admin), [a1]);
    assert_eq!(trash(&format!("author_id={}", alice.id), &admin), [a2, a1]);
    assert_eq!(
        trash(&format!("author_id={}&q=numbers&limit=1", alice.id), &admin),
        [a1]
    );
    assert_eq!(
        trash("q=%22report%22+*+-+(", &admin),
        [b1, a2, a1],
        "operators are text"
    );
    assert!(
        !trash("q=report", &admin).contains(&id(&active)),
        "active posts are not trash"
    );
    // A user sees only their own trash, whatever author they ask for.
    assert_eq!(trash("q=report", &alice), [a2, a1]);
    assert_eq!(
        trash(&format!("author_id={}", bob.id), &alice),
        Vec::<i64>::new()
    );
    assert_eq!(trash(&format!("author_id={}", alice.id), &alice), [a2, a1]);
    for bad in [
        "author_id=x",
        "author_id=0",
        &format!("q={}", "w+".repeat(33)),
    ] {
        srv.get(&format!("/trash?{bad}"), Some(&admin.token))
            .expect(422);
    }
}
