//! API tokens (API.md v1.2 "Change feed, API tokens, delete by filter"): made over HTTP
//! with a login token (shown once, `no-store`), listed without the token, revoked (401 on
//! the next request), expiring; scopes per route (`postd::api::routes::NEEDS`, walked here
//! route by route and scope by scope); an admin's token without `admin` acts as a user;
//! `token.create`/`token.revoke` events; `postd token create|list|revoke`.

use crate::support::*;
use postd::api::routes::{Need, NEEDS, ROUTES};
use postd::model::Scope;
use serde_json::{json, Value};
use std::io::Read;

/// Makes a token of `user` through `POST /auth/tokens`; returns the answer.
fn create_token(s: &TestApp, user: &TestUser, body: Value) -> Response {
    s.call("POST", "/auth/tokens", Some(&user.token), Some(&body))
}

#[track_caller]
fn token(s: &TestApp, user: &TestUser, name: &str, scopes: &[&str]) -> String {
    let r = create_token(s, user, json!({"name": name, "scopes": scopes}));
    r.expect(201);
    r.json()["token"].as_str().expect("token").to_string()
}

/// The `detail` of a problem answer.
fn detail(r: &Response) -> String {
    r.json()["detail"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_token_is_shown_once_listed_without_it_and_revoked() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let r = create_token(
        &s,
        &alice,
        json!({"name": "ci-bot", "scopes": ["posts:write", "posts:read"], "expires_in": "30d"}),
    );
    r.expect(201);
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    let made = r.json();
    assert_eq!(
        keys_of(&made),
        sorted(&["token", "name", "scopes", "created_at", "expires_at"]),
        "{made}"
    );
    assert_eq!(made["name"], "ci-bot");
    assert_eq!(made["scopes"], json!(["posts:read", "posts:write"]));
    assert!(is_timestamp(&made["created_at"]) && is_timestamp(&made["expires_at"]));
    let secret = made["token"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("postd_") && secret.len() > 40,
        "{secret}"
    );
    // Not a JWT: nothing of the signing key's kind in it.
    assert_eq!(secret.matches('.').count(), 0);

    // It works as a bearer token.
    let me = s.get("/auth/me", Some(&secret));
    me.expect(200);
    assert_eq!(me.json()["id"], alice.id);
    let post = s.post_json(&secret, json!({"title": "by token", "body": "b"}));
    post.expect(201);
    assert_eq!(post.json()["author_id"], alice.id);

    // The list never shows a token; a second without expiry.
    token(&s, &alice, "reader", &["posts:read"]);
    let list = s.get("/auth/tokens", Some(&alice.token));
    list.expect(200);
    assert!(!list.text().contains(&secret[6..]), "{}", list.text());
    let items = list.json()["items"].as_array().unwrap().clone();
    let names: Vec<&str> = items.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ci-bot", "reader"]);
    for item in &items {
        assert_eq!(
            keys_of(item),
            sorted(&["name", "scopes", "created_at", "expires_at"]),
            "{item}"
        );
    }
    assert_eq!(items[1]["expires_at"], Value::Null);
    // Only the caller's own.
    let bob = s.register("bob");
    let bobs = s.get("/auth/tokens", Some(&bob.token));
    bobs.expect(200);
    assert_eq!(bobs.json()["items"], json!([]));

    // A name is unique per user (another user may use it).
    create_token(
        &s,
        &alice,
        json!({"name": "ci-bot", "scopes": ["posts:read"]}),
    )
    .expect(409);
    token(&s, &bob, "ci-bot", &["posts:read"]);

    // Revoked: 401 from the next request on; bob's of the same name still works.
    s.call("DELETE", "/auth/tokens/ci-bot", Some(&bob.token), None)
        .expect(204);
    s.get("/auth/me", Some(&secret)).expect(200);
    assert_204(&s.call("DELETE", "/auth/tokens/ci-bot", Some(&alice.token), None));
    assert_401(&s.get("/auth/me", Some(&secret)));
    assert_401(&s.post_json(&secret, json!({"title": "after", "body": "b"})));
    s.call("DELETE", "/auth/tokens/ci-bot", Some(&alice.token), None)
        .expect(404);
    // A token stored as its hash only.
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM api_tokens WHERE token_hash LIKE '%{}%'",
            &secret[6..]
        )),
        0
    );
}

#[test]
fn bad_token_requests_are_refused() {
    let s = TestApp::new();
    let alice = s.register("alice");
    for (body, field) in [
        (json!({"scopes": ["posts:read"]}), "name"),
        (json!({"name": "x"}), "scopes"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "x", "scopes": ["posts:delete"]}), "scopes"),
        (json!({"name": "a b", "scopes": ["posts:read"]}), "name"),
        (
            json!({"name": "x", "scopes": ["posts:read"], "expires_in": "soon"}),
            "expires_in",
        ),
    ] {
        expect_422_field(&create_token(&s, &alice, body.clone()), field);
    }
    let unknown = create_token(
        &s,
        &alice,
        json!({"name": "x", "scopes": ["posts:read"], "extra": 1}),
    );
    unknown.expect(422);
    assert!(unknown.text().contains("'extra'"), "{}", unknown.text());
    assert_401(&s.call(
        "POST",
        "/auth/tokens",
        None,
        Some(&json!({"name": "x", "scopes": ["posts:read"]})),
    ));
    assert_401(&s.get("/auth/tokens", None));
    assert_401(&s.get(
        "/auth/me",
        Some("postd_0000000000000000000000000000000000000000000000000000000000000000"),
    ));
    assert_eq!(s.sql_count("SELECT count(*) FROM api_tokens"), 0);
}

#[test]
fn an_expired_token_is_a_401() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let r = create_token(
        &s,
        &alice,
        json!({"name": "gone", "scopes": ["posts:read"], "expires_in": "0s"}),
    );
    r.expect(201);
    let expired = r.json()["token"].as_str().unwrap().to_string();
    assert_401(&s.get("/auth/me", Some(&expired)));
    assert_401(&s.get("/trash", Some(&expired)));
    let alive = token(&s, &alice, "alive", &["posts:read"]);
    s.get("/trash", Some(&alive)).expect(200);
    // Through the command line: a token that expired a second ago.
    let out = s.cli_ok(
        &[
            "token",
            "create",
            "cli-gone",
            "--user",
            "alice",
            "--scope",
            "posts:read",
            "--expires",
            "0s",
        ],
        &[],
    );
    let from_cli = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_401(&s.get("/auth/me", Some(&from_cli)));
}

#[test]
fn api_tokens_can_not_manage_tokens_and_users_can_not_get_admin_scopes() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let root = s.admin("root");
    let full = token(&s, &alice, "full", &["posts:read", "posts:write"]);
    let admins = token(&s, &root, "all", &["admin"]);
    for t in [&full, &admins] {
        let r = s.call(
            "POST",
            "/auth/tokens",
            Some(t),
            Some(&json!({"name": "more", "scopes": ["posts:read"]})),
        );
        r.expect(403);
        assert!(detail(&r).contains("login token"), "{}", detail(&r));
        s.get("/auth/tokens", Some(t)).expect(403);
        s.call("DELETE", "/auth/tokens/full", Some(t), None)
            .expect(403);
    }
    s.get("/auth/me", Some(&full)).expect(200);
    // admin and events:read are for admins.
    for scope in ["admin", "events:read"] {
        let r = create_token(
            &s,
            &alice,
            json!({"name": "up", "scopes": ["posts:read", scope]}),
        );
        r.expect(403);
        assert!(detail(&r).contains(scope), "{}", detail(&r));
        let cli = s.cli(
            &["token", "create", "up", "--user", "alice", "--scope", scope],
            &[],
        );
        assert!(!cli.status.success(), "the CLI gave a user {scope}");
        token(
            &s,
            &root,
            &format!("root-{}", scope.replace(':', "-")),
            &[scope],
        );
    }
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM api_tokens WHERE user_id = {}",
            alice.id
        )),
        1
    );
}

#[test]
fn an_admins_token_without_admin_acts_as_a_user() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let root = s.admin("root");
    let alices = id(&s.create_post(&alice, "Alice's", "b"));
    let writer = token(&s, &root, "writer", &["posts:write", "posts:read"]);
    let admin = token(&s, &root, "admin", &["admin"]);
    let path = format!("/posts/{alices}");
    let body = json!({"title": "changed by root"});
    s.call("PATCH", &path, Some(&writer), Some(&body))
        .expect(403);
    s.call("DELETE", &path, Some(&writer), None).expect(403);
    s.bulk_patch(
        &TestUser {
            token: writer.clone(),
            ..root.clone()
        },
        json!([{"id": alices, "title": "x"}]),
    )
    .expect(403);
    // Its trash is its own, as a user's.
    assert_204(&s.call("DELETE", &path, Some(&alice.token), None));
    let trash = s.get("/trash", Some(&writer));
    trash.expect(200);
    assert_eq!(trash.json()["items"], json!([]));
    let trash = s.get("/trash", Some(&admin));
    assert_eq!(ids(trash.json()["items"].as_array().unwrap()), [alices]);
    // With admin: what the admin's login token can do.
    s.call(
        "POST",
        &format!("/posts/{alices}/restore"),
        Some(&admin),
        None,
    )
    .expect(200);
    s.call("PATCH", &path, Some(&admin), Some(&body))
        .expect(200);
    // Its own posts it may change.
    let own = s.post_json(&writer, json!({"title": "root's", "body": "b"}));
    own.expect(201);
    s.call(
        "PATCH",
        &format!("/posts/{}", id(&own.json())),
        Some(&writer),
        Some(&body),
    )
    .expect(200);
}

#[test]
fn making_and_revoking_tokens_is_audited() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let root = s.admin("root");
    let secret = token(&s, &alice, "audited", &["posts:read"]);
    assert_204(&s.call("DELETE", "/auth/tokens/audited", Some(&alice.token), None));
    let created = s.collect_pages("/admin/audit?action=token.create", Some(&root.token));
    let revoked = s.collect_pages("/admin/audit?action=token.revoke", Some(&root.token));
    assert_eq!((created.len(), revoked.len()), (1, 1));
    for event in [&created[0], &revoked[0]] {
        assert_eq!(event["actor_id"], alice.id, "{event}");
        assert_eq!(event["target_ids"], json!([alice.id]), "{event}");
        let detail = event["detail"].as_str().unwrap();
        assert!(detail.contains("audited"), "{event}");
        assert!(!detail.contains(&secret[6..]), "{event}");
    }
    assert!(created[0]["detail"]
        .as_str()
        .unwrap()
        .contains("posts:read"));
    // A refused request appends nothing.
    create_token(&s, &alice, json!({"name": "x", "scopes": ["admin"]})).expect(403);
    s.call("DELETE", "/auth/tokens/audited", Some(&alice.token), None)
        .expect(404);
    let all = s.collect_pages("/admin/audit", Some(&root.token));
    assert_eq!(
        all.iter()
            .filter(|e| e["action"].as_str().unwrap().starts_with("token."))
            .count(),
        2
    );
    // The command line's are the CLI's (actor null).
    s.cli_ok(
        &[
            "token",
            "create",
            "cli",
            "--user",
            "alice",
            "--scope",
            "posts:read",
        ],
        &[],
    );
    s.cli_ok(&["token", "revoke", "cli"], &[]);
    let created = s.collect_pages("/admin/audit?action=token.create", Some(&root.token));
    assert_eq!(created.len(), 2);
    assert_eq!(created[0]["actor_id"], Value::Null);
    assert_eq!(created[0]["target_ids"], json!([alice.id]));
}

#[test]
fn the_command_line_makes_lists_and_revokes_tokens() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let make = |name: &str, user: &str, scope: &str| {
        let out = s.cli_ok(
            &["token", "create", name, "--user", user, "--scope", scope],
            &[],
        );
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(stdout.lines().count(), 1, "the token alone: {stdout:?}");
        stdout.trim().to_string()
    };
    let alices = make("deploy", "alice", "posts:read,posts:write");
    let bobs = make("deploy", "bob", "posts:read");
    let expiring = s.cli_ok(
        &[
            "token",
            "create",
            "short",
            "--user",
            "alice",
            "--scope",
            "posts:read",
            "--expires",
            "1h",
        ],
        &[],
    );
    let short = String::from_utf8_lossy(&expiring.stdout).trim().to_string();
    for (t, user) in [(&alices, &alice), (&bobs, &bob), (&short, &alice)] {
        let me = s.get("/auth/me", Some(t));
        me.expect(200);
        assert_eq!(me.json()["id"], user.id);
    }
    s.post_json(&alices, json!({"title": "cli token", "body": "b"}))
        .expect(201);
    s.post_json(&bobs, json!({"title": "cli token", "body": "b"}))
        .expect(403);

    // The list names them, never shows a token.
    let out = s.cli_ok(&["token", "list"], &[]);
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(listed.lines().count(), 3, "{listed}");
    for t in [&alices, &bobs, &short] {
        assert!(
            !listed.contains(&t[6..]),
            "the list shows a token: {listed}"
        );
    }
    assert!(listed.contains("alice") && listed.contains("bob") && listed.contains("deploy"));
    assert!(listed.contains("posts:read,posts:write"), "{listed}");
    assert!(
        listed.contains("never expires") && listed.contains("expires 20"),
        "{listed}"
    );

    // Two users share the name: without --user the revoke refuses and revokes nothing.
    let both = s.cli(&["token", "revoke", "deploy"], &[]);
    assert!(!both.status.success());
    let said = String::from_utf8_lossy(&both.stderr);
    assert!(said.contains("--user"), "{said}");
    s.get("/auth/me", Some(&alices)).expect(200);
    s.get("/auth/me", Some(&bobs)).expect(200);
    s.cli_ok(&["token", "revoke", "deploy", "--user", "alice"], &[]);
    assert_401(&s.get("/auth/me", Some(&alices)));
    s.get("/auth/me", Some(&bobs)).expect(200);
    // Now only one is left of that name.
    s.cli_ok(&["token", "revoke", "deploy"], &[]);
    assert_401(&s.get("/auth/me", Some(&bobs)));
    let gone = s.cli(&["token", "revoke", "deploy"], &[]);
    assert!(!gone.status.success());
    // Bad arguments.
    for args in [
        &[
            "token",
            "create",
            "x",
            "--user",
            "nobody",
            "--scope",
            "posts:read",
        ][..],
        &[
            "token",
            "create",
            "x",
            "--user",
            "alice",
            "--scope",
            "posts:nope",
        ][..],
        &[
            "token",
            "create",
            "a b",
            "--user",
            "alice",
            "--scope",
            "posts:read",
        ][..],
        &["token", "create", "x", "--user", "alice"][..],
    ] {
        assert!(!s.cli(args, &[]).status.success(), "{args:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Every route × every scope set
// ---------------------------------------------------------------------------------------

/// The scope sets a walk tries: each scope alone, the three below `admin` together, and
/// `admin`.
fn scope_sets() -> Vec<Vec<Scope>> {
    let mut sets: Vec<Vec<Scope>> = Scope::ALL.iter().map(|s| vec![*s]).collect();
    sets.push(
        Scope::ALL
            .into_iter()
            .filter(|s| *s != Scope::Admin)
            .collect(),
    );
    sets
}

fn joined(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The ids a walk's paths use: the admin's own post (with a revision), comment, a user to
/// erase.
struct Ids {
    post: i64,
    comment: i64,
    user: i64,
}

fn path_of(template: &str, ids: &Ids) -> String {
    let path = template
        .replace("{id}", &ids.post.to_string())
        .replace("{slug}", "walked")
        .replace("{name}", "no-such-token");
    match template {
        "/comments/{id}" => format!("/comments/{}", ids.comment),
        "/admin/users/{id}" => format!("/admin/users/{}", ids.user),
        _ => path,
    }
}

/// One request of the walk: the status, and the detail of a 4xx (the body of a 2xx is
/// not read: the change feed's never ends).
fn walk_call(s: &TestApp, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    let (head, mut body) = s.open(method, path, &headers, None);
    if head.status < 400 {
        return (head.status, String::new());
    }
    let mut bytes = Vec::new();
    body.read_to_end(&mut bytes).expect("read the problem");
    let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (
        head.status,
        problem["detail"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn every_route_needs_its_scope_of_an_api_token() {
    let s = TestApp::new();
    let root = s.admin("root");
    let victim = s.register("walk-victim");
    let post = id(&s.create_post_with_slug(&root, "Walked", "walked"));
    s.call(
        "PATCH",
        &format!("/posts/{post}"),
        Some(&root.token),
        Some(&json!({"body": "edited"})),
    )
    .expect(200);
    let comment = id(&s.create_comment(&root.token, post, "walked"));
    let ids = Ids {
        post,
        comment,
        user: victim.id,
    };
    let tokens: Vec<(Vec<Scope>, String)> = scope_sets()
        .into_iter()
        .enumerate()
        .map(|(n, set)| {
            let scopes: Vec<&str> = set.iter().map(|s| s.as_str()).collect();
            let t = token(&s, &root, &format!("walk-{n}"), &scopes);
            (set, t)
        })
        .collect();

    let mut checked = 0;
    for (template, method, need) in NEEDS {
        // A HEAD of a GET needs what the GET needs.
        let methods: &[&str] = if *method == "GET" {
            &["GET", "HEAD"]
        } else {
            &[method]
        };
        for method in methods {
            let path = path_of(template, &ids);
            let what = format!("{method} {template}");
            for (set, t) in &tokens {
                let (status, detail) = walk_call(&s, method, &path, Some(t));
                let scopes = joined(set);
                match need {
                    Need::Nothing => unreachable!("NEEDS lists what needs something"),
                    Need::AnyToken => assert!(
                        status != 401 && status != 403,
                        "{what} with [{scopes}]: {status} {detail}"
                    ),
                    Need::LoginToken => {
                        assert_eq!(status, 403, "{what} with [{scopes}]: {detail}");
                        assert!(detail.contains("login token"), "{what}: {detail}");
                    }
                    Need::Scope(needed) => {
                        let has = set.contains(needed) || set.contains(&Scope::Admin);
                        if has {
                            assert!(
                                !(status == 403 && detail.contains("scope")) && status != 401,
                                "{what} with [{scopes}]: refused {status} {detail}"
                            );
                        } else {
                            assert_eq!(status, 403, "{what} with [{scopes}]: {detail}");
                            assert!(
                                detail.contains(needed.as_str()),
                                "{what} with [{scopes}]: the 403 does not name {}: {detail}",
                                needed.as_str()
                            );
                        }
                    }
                }
                checked += 1;
            }
            // A login token is never refused for a scope.
            let (status, detail) = walk_call(&s, method, &path, Some(&root.token));
            assert!(
                status != 401 && !(status == 403 && detail.contains("scope")),
                "{what} with the login token: {status} {detail}"
            );
        }
    }
    assert!(checked >= NEEDS.len() * 5, "{checked}");

    // What needs nothing is public: no token, or a token of any scope, is never refused.
    let needs_something =
        |template: &str, method: &str| NEEDS.iter().any(|(t, m, _)| *t == template && *m == method);
    let mut public = 0;
    for (template, methods) in ROUTES {
        for method in *methods {
            if needs_something(template, method) {
                continue;
            }
            let path = path_of(template, &ids);
            for token in [None, Some(tokens[0].1.as_str())] {
                let (status, detail) = walk_call(&s, method, &path, token);
                assert!(
                    status != 401 && status != 403,
                    "{method} {template} (public) with {token:?}: {status} {detail}"
                );
            }
            public += 1;
        }
    }
    assert!(public >= 8, "{public}");
}
