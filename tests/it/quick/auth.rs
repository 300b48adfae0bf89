//! Sign-up, sign-in and tokens (API.md "Auth and users"): field rules, indistinguishable
//! failures, the HS256 tokens and what is refused, the signing key beside the database,
//! and roles read from the database on every request.

use crate::support::*;
use jwt_simple::prelude::{Claims, Clock, HS256Key, HS512Key, MACLike, NoCustomClaims};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn key_bytes(s: &TestApp) -> Vec<u8> {
    std::fs::read(s.db.with_file_name("postd.key")).expect("postd.key beside the database")
}

fn now_secs() -> u64 {
    Clock::now_since_epoch().as_secs()
}

#[test]
fn register_login_me_success() {
    let s = TestApp::new();
    let r = s.call(
        "POST",
        "/auth/register",
        None,
        Some(&json!({"username": "alice", "password": PASSWORD})),
    );
    r.expect(201);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let user = r.json();
    assert_eq!(
        keys_of(&user),
        sorted(&["id", "username", "role", "created_at"])
    );
    assert_eq!(user["username"], "alice");
    assert_eq!(user["role"], "user");
    assert!(user["id"].as_i64().unwrap() > 0);
    assert!(is_timestamp(&user["created_at"]), "{user}");

    let r = s.call(
        "POST",
        "/auth/login",
        None,
        Some(&json!({"username": "alice", "password": PASSWORD})),
    );
    r.expect(200);
    let login = r.json();
    assert_eq!(
        keys_of(&login),
        sorted(&["access_token", "token_type", "expires_in"])
    );
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["expires_in"], 3600);
    let token = login["access_token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    // The token is HS256 with sub = user id and an exp matching expires_in.
    let claims = HS256Key::from_bytes(&key_bytes(&s))
        .verify_token::<NoCustomClaims>(token, None)
        .expect("the token verifies with postd.key");
    assert_eq!(
        claims.subject.as_deref(),
        Some(user["id"].to_string().as_str())
    );
    let exp = claims.expires_at.expect("exp is set").as_secs();
    let now = now_secs();
    assert!(
        exp >= now + 3590 && exp <= now + 3610,
        "exp {exp} vs now {now}"
    );

    let r = s.get("/auth/me", Some(token));
    r.expect(200);
    assert_eq!(r.json(), user);

    // The password is stored only as an Argon2id hash.
    assert_eq!(
        s.sql_count("SELECT count(*) FROM users WHERE password_hash LIKE '$argon2id$%'"),
        1
    );
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM users WHERE password_hash LIKE '%{PASSWORD}%'"
        )),
        0
    );

    // A CLI-made admin reads as admin.
    s.cli_ok(
        &["user", "add", "root", "--admin"],
        &[("POSTD_PASSWORD", PASSWORD)],
    );
    let me = s.get("/auth/me", Some(&s.login("root")));
    assert_eq!(me.json()["role"], "admin");
}

#[test]
fn login_failures_are_indistinguishable() {
    let s = TestApp::new();
    s.register("alice");
    let wrong = s.call(
        "POST",
        "/auth/login",
        None,
        Some(&json!({"username": "alice", "password": "wrong-password"})),
    );
    wrong.expect(401);
    let unknown = s.call(
        "POST",
        "/auth/login",
        None,
        Some(&json!({"username": "nobody", "password": PASSWORD})),
    );
    unknown.expect(401);
    assert_eq!(wrong.json()["detail"], unknown.json()["detail"]);
    // Missing fields are a validation problem, not a login failure.
    let r = s.call(
        "POST",
        "/auth/login",
        None,
        Some(&json!({"username": "alice"})),
    );
    expect_422_field(&r, "password");
}

#[test]
fn register_field_rules_and_conflicts() {
    let s = TestApp::new();
    let reg = |u: &str, p: &str| {
        s.call(
            "POST",
            "/auth/register",
            None,
            Some(&json!({"username": u, "password": p})),
        )
    };
    for bad in ["ab", "bad name", "bad/name", "ünïcode", &"a".repeat(33), ""] {
        expect_422_field(&reg(bad, PASSWORD), "username");
    }
    expect_422_field(&reg("shortpw", "1234567"), "password");
    expect_422_field(&reg("longpw", &"p".repeat(257)), "password");
    // Wrong types, unknown fields, missing fields.
    expect_422_field(
        &s.call(
            "POST",
            "/auth/register",
            None,
            Some(&json!({"username": 5, "password": PASSWORD})),
        ),
        "username",
    );
    s.call(
        "POST",
        "/auth/register",
        None,
        Some(&json!({"username": "zed", "password": PASSWORD, "role": "admin"})),
    )
    .expect(422);
    expect_422_field(
        &s.call(
            "POST",
            "/auth/register",
            None,
            Some(&json!({"username": "zed"})),
        ),
        "password",
    );
    s.call(
        "POST",
        "/auth/register",
        None,
        Some(&json!(["zed", PASSWORD])),
    )
    .expect(422);
    assert_eq!(
        s.sql_count("SELECT count(*) FROM users"),
        0,
        "nothing invalid was stored"
    );

    // Boundaries that are allowed.
    reg("a.b_c-D", "12345678").expect(201);
    reg(&"x".repeat(32), &"p".repeat(256)).expect(201);

    // Unique case-insensitively.
    reg("Alice", PASSWORD).expect(201);
    reg("alice", PASSWORD).expect(409);
    reg("ALICE", PASSWORD).expect(409);
    assert_eq!(s.sql_count("SELECT count(*) FROM users"), 3);
}

/// The options' half of `heavy::auth::signup_closed_and_token_ttl_from_env`.
#[test]
fn signup_closed_and_token_ttl_by_option() {
    let s = TestApp::with_args(&["--signup", "closed", "--token-ttl", "120"]);
    let r = s.call(
        "POST",
        "/auth/register",
        None,
        Some(&json!({"username": "alice", "password": PASSWORD})),
    );
    r.expect(403);
    assert_eq!(s.sql_count("SELECT count(*) FROM users"), 0);
    // The command line still makes users, and they can log in.
    s.cli_ok(
        &["user", "add", "root", "--admin"],
        &[("POSTD_PASSWORD", PASSWORD)],
    );
    let r = s.call(
        "POST",
        "/auth/login",
        None,
        Some(&json!({"username": "root", "password": PASSWORD})),
    );
    r.expect(200);
    assert_eq!(r.json()["expires_in"], 120);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    s.get("/auth/me", Some(&token)).expect(200);
}

#[test]
fn bad_tokens_are_401_with_www_authenticate() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let key = key_bytes(&s);
    assert_eq!(key.len(), 32, "postd.key holds 32 random bytes");
    let sub = alice.id.to_string();

    // Control: a token minted with the server's key and a normal life is accepted, so the
    // refusals below are about the one thing each changes.
    let good = HS256Key::from_bytes(&key)
        .authenticate(
            Claims::create(jwt_simple::prelude::Duration::from_secs(600)).with_subject(&sub),
        )
        .unwrap();
    s.get("/auth/me", Some(&good)).expect(200);

    let mut cases: Vec<(&str, Option<String>)> = vec![("missing", None)];
    cases.push(("garbage", Some("not-a-token".into())));
    cases.push(("empty-ish", Some("a.b.c".into())));
    // Tampered: the payload says another user, the signature is the old one.
    let parts: Vec<&str> = alice.token.split('.').collect();
    let forged_payload =
        b64url(format!(r#"{{"sub":"{}","exp":{}}}"#, alice.id + 1, now_secs() + 600).as_bytes());
    cases.push((
        "tampered payload",
        Some(format!("{}.{}.{}", parts[0], forged_payload, parts[2])),
    ));
    let mut sig = parts[2].to_string();
    let last = sig.pop().unwrap();
    sig.push(if last == 'A' { 'B' } else { 'A' });
    cases.push((
        "tampered signature",
        Some(format!("{}.{}.{}", parts[0], parts[1], sig)),
    ));
    // Wrong key.
    let other = HS256Key::generate()
        .authenticate(
            Claims::create(jwt_simple::prelude::Duration::from_secs(600)).with_subject(&sub),
        )
        .unwrap();
    cases.push(("wrong key", Some(other)));
    // Same key bytes, other algorithm.
    let hs512 = HS512Key::from_bytes(&key)
        .authenticate(
            Claims::create(jwt_simple::prelude::Duration::from_secs(600)).with_subject(&sub),
        )
        .unwrap();
    cases.push(("HS512", Some(hs512)));
    // alg: none, with and without a trailing signature part.
    let now = now_secs();
    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let none_payload =
        b64url(format!(r#"{{"sub":"{sub}","iat":{now},"exp":{}}}"#, now + 600).as_bytes());
    cases.push(("alg none", Some(format!("{none_header}.{none_payload}."))));
    cases.push((
        "alg none with old signature",
        Some(format!("{none_header}.{none_payload}.{}", parts[2])),
    ));
    // Expired well beyond any clock tolerance (issued 2 minutes ago, expired 1 minute ago).
    let mut expired =
        Claims::create(jwt_simple::prelude::Duration::from_secs(60)).with_subject(&sub);
    expired.issued_at = Some(jwt_simple::prelude::Duration::from_secs(now - 120));
    expired.invalid_before = Some(jwt_simple::prelude::Duration::from_secs(now - 120));
    expired.expires_at = Some(jwt_simple::prelude::Duration::from_secs(now - 60));
    cases.push((
        "expired",
        Some(HS256Key::from_bytes(&key).authenticate(expired).unwrap()),
    ));
    // No exp at all.
    let mut forever =
        Claims::create(jwt_simple::prelude::Duration::from_secs(600)).with_subject(&sub);
    forever.expires_at = None;
    cases.push((
        "no exp",
        Some(HS256Key::from_bytes(&key).authenticate(forever).unwrap()),
    ));
    // Right key, but no such user / not a user id.
    for bad_sub in ["999999", "abc", "0", "-1"] {
        let t = HS256Key::from_bytes(&key)
            .authenticate(
                Claims::create(jwt_simple::prelude::Duration::from_secs(600)).with_subject(bad_sub),
            )
            .unwrap();
        cases.push(("bad sub", Some(t)));
    }

    for (what, token) in &cases {
        let r = s.get("/auth/me", token.as_deref());
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert_401(&r);
        // Protected writes too.
        let r = s.call(
            "POST",
            "/posts",
            token.as_deref(),
            Some(&json!({"title": "t", "body": "b"})),
        );
        assert_eq!(r.status, 401, "{what}: {}", r.text());
    }

    // Other schemes and malformed headers.
    for header in [
        "Basic YWxpY2U6cHc=",
        "Bearer",
        "Bearer ",
        &alice.token,
        &format!("Token {}", alice.token),
    ] {
        let r = s.request("GET", "/auth/me", &[("Authorization", header)], None);
        assert_eq!(r.status, 401, "Authorization: {header:?}: {}", r.text());
        assert_401(&r);
    }
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 0);
}

#[test]
fn token_of_a_deleted_user_is_401() {
    let s = TestApp::new();
    let bob = s.register("bob");
    let p = s.create_post(&bob, "Bob's post", "b");
    s.get("/auth/me", Some(&bob.token)).expect(200);
    s.cli_ok(&["user", "delete", "bob"], &[]);
    assert_401(&s.get("/auth/me", Some(&bob.token)));
    assert_401(&s.post_json(&bob.token, json!({"title": "x", "body": "y"})));
    // Their posts went with them.
    s.get(&format!("/posts/{}", id(&p)), None).expect(404);
    // A new user never inherits the old id, so the old token stays dead.
    let carol = s.register("carol");
    assert_ne!(carol.id, bob.id);
    let bob2 = s.register("bob");
    assert_ne!(bob2.id, bob.id);
    assert_401(&s.get("/auth/me", Some(&bob.token)));
}

#[test]
fn deleted_by_id_becomes_null_when_the_deleter_is_removed() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let root = s.admin("root");
    let p = s.create_post(&alice, "Moderated", "b");
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}", id(&p)),
        Some(&root.token),
        None,
    ));
    assert_eq!(
        s.get("/trash", Some(&alice.token)).json()["items"][0]["deleted_by_id"],
        root.id
    );
    s.cli_ok(&["user", "delete", "root"], &[]);
    let trash = s.get("/trash", Some(&alice.token)).json();
    let items = trash["items"].as_array().unwrap();
    assert_eq!(ids(items), vec![id(&p)], "the post stays in the trash");
    assert_trashed_shape(&items[0]);
    assert_eq!(items[0]["deleted_by_id"], Value::Null);
}

#[test]
fn tokens_survive_restart_and_key_file_is_private() {
    let mut s = TestApp::new();
    let alice = s.register("alice");
    let key_path = s.db.with_file_name("postd.key");
    let mode = std::fs::metadata(&key_path)
        .expect("postd.key exists")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "postd.key mode {mode:o}");
    let before = std::fs::read(&key_path).unwrap();
    s.restart();
    assert_eq!(
        std::fs::read(&key_path).unwrap(),
        before,
        "the key is kept across restarts"
    );
    let me = s.get("/auth/me", Some(&alice.token));
    me.expect(200);
    assert_eq!(me.json()["username"], "alice");
}

#[test]
fn world_readable_key_file_is_refused_at_start() {
    let mut s = TestApp::new();
    let key_path = s.db.with_file_name("postd.key");
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let db = s.db.to_str().unwrap().to_string();
    let outcome = run_bin(
        &["serve", "--addr", "127.0.0.1:0", "--db", &db],
        &[],
        None,
        Duration::from_secs(15),
    );
    assert_one_line_failure("serve with a 0644 key", &outcome);
    assert!(
        outcome.1.is_empty() || !outcome.1.contains("listening"),
        "must not serve: {:?}",
        outcome.1
    );
    // Fixing the mode makes it start again.
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    s.restart();
    s.get("/healthz", None).expect(200);
}

#[test]
fn role_changes_take_effect_on_the_next_request() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let p = s.create_post(&alice, "Mine", "b");
    let pid = id(&p);
    assert_204(&s.call("DELETE", &format!("/posts/{pid}"), Some(&alice.token), None));
    let restore = format!("/posts/{pid}/restore");
    s.call("POST", &restore, Some(&alice.token), None)
        .expect(403);

    s.cli_ok(&["user", "role", "alice", "admin"], &[]);
    assert_eq!(
        s.get("/auth/me", Some(&alice.token)).json()["role"],
        "admin"
    );
    let r = s.call("POST", &restore, Some(&alice.token), None);
    r.expect(200);
    assert_eq!(id(&r.json()), pid);

    // A role claim inside a token is never trusted.
    let bob = s.register("bob");
    let forged = HS256Key::from_bytes(&key_bytes(&s))
        .authenticate(
            Claims::with_custom_claims(
                json!({"role": "admin", "admin": true}),
                jwt_simple::prelude::Duration::from_secs(600),
            )
            .with_subject(bob.id),
        )
        .unwrap();
    s.get("/auth/me", Some(&forged)).expect(200);
    assert_eq!(s.get("/auth/me", Some(&forged)).json()["role"], "user");
    s.call("POST", "/posts/99999/restore", Some(&forged), None)
        .expect(403);
    s.get("/trash", Some(&forged)).expect(200);

    // And back: the same token loses the right at once.
    assert_204(&s.call("DELETE", &format!("/posts/{pid}"), Some(&alice.token), None));
    s.cli_ok(&["user", "role", "alice", "user"], &[]);
    s.call("POST", &restore, Some(&alice.token), None)
        .expect(403);
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM posts WHERE id = {pid} AND deleted_at IS NOT NULL"
        )),
        1
    );
}
