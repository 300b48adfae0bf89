//! Integration tests for everything in API.md except "Bulk operations": auth, posts,
//! comments, trash, search, pagination, input errors, operations endpoints and the CLI.
//! Every test starts its own real `postd` process (see tests/it/support.rs).

use crate::support::*;
use jwt_simple::prelude::{Claims, Clock, HS256Key, HS512Key, MACLike, NoCustomClaims};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn keys_of(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    keys
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[track_caller]
fn assert_trashed_shape(p: &Value) {
    assert_eq!(
        keys_of(p),
        sorted(&[
            "id",
            "author_id",
            "title",
            "slug",
            "body",
            "created_at",
            "updated_at",
            "deleted_at",
            "deleted_by_id",
            "expires_at"
        ]),
        "{p}"
    );
    assert!(is_timestamp(&p["deleted_at"]), "{p}");
    // No --trash-retention in these tests: nothing expires.
    assert_eq!(p["expires_at"], Value::Null, "{p}");
}

#[track_caller]
fn assert_204(r: &Response) {
    assert_eq!(r.status, 204, "body: {}", r.text());
    assert!(
        r.body.is_empty(),
        "204 must have no body, got {:?}",
        r.text()
    );
    assert_eq!(
        r.header("Content-Type"),
        None,
        "204 must have no Content-Type"
    );
}

#[track_caller]
fn assert_401(r: &Response) {
    r.expect(401);
    let www = r
        .header("WWW-Authenticate")
        .unwrap_or_else(|| panic!("401 without WWW-Authenticate: {r:?}"));
    assert!(www.starts_with("Bearer"), "WWW-Authenticate: {www}");
}

/// `field` names of a 422's `errors` list.
#[track_caller]
fn error_fields(r: &Response) -> Vec<String> {
    let p = r.json();
    let errors = p["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors list: {p}"));
    assert!(!errors.is_empty(), "{p}");
    for e in errors {
        assert!(e["message"].is_string(), "{p}");
    }
    errors
        .iter()
        .filter_map(|e| e["field"].as_str().map(String::from))
        .collect()
}

#[track_caller]
fn expect_422_field(r: &Response, field: &str) {
    r.expect(422);
    let fields = error_fields(r);
    assert!(
        fields.iter().any(|f| f == field),
        "expected an error on {field}, got {fields:?}: {}",
        r.text()
    );
}

fn allow_set(r: &Response) -> HashSet<String> {
    r.header("Allow")
        .unwrap_or_else(|| panic!("405 without Allow: {r:?}"))
        .split(',')
        .map(|m| m.trim().to_uppercase())
        .filter(|m| !m.is_empty())
        .collect()
}

/// The methods a route answers; GET routes also answer HEAD, and every route OPTIONS.
fn set(list: &[&str]) -> HashSet<String> {
    let mut methods: HashSet<String> = list.iter().map(|s| s.to_string()).collect();
    if methods.contains("GET") {
        methods.insert("HEAD".to_string());
    }
    methods.insert("OPTIONS".to_string());
    methods
}

fn post(s: &Server, token: &str, body: Value) -> Response {
    s.call("POST", "/posts", Some(token), Some(&body))
}

fn post_ok(s: &Server, token: &str, body: Value) -> Value {
    let r = post(s, token, body);
    r.expect(201);
    r.json()
}

fn comment_ok(s: &Server, token: &str, post_id: i64, body: &str) -> Value {
    let r = s.call(
        "POST",
        &format!("/posts/{post_id}/comments"),
        Some(token),
        Some(&json!({ "body": body })),
    );
    r.expect(201);
    r.json()
}

fn id(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or_else(|| panic!("no id in {v}"))
}

fn ids(items: &[Value]) -> Vec<i64> {
    items.iter().map(id).collect()
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn search(s: &Server, q: &str) -> Vec<i64> {
    let r = s.get(&format!("/posts?limit=100&q={}", url_encode(q)), None);
    r.expect(200);
    ids(r.json()["items"].as_array().unwrap())
}

/// JSON POST with raw body bytes and explicit headers.
fn raw_post(
    s: &Server,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    if let Some(ct) = content_type {
        headers.push(("Content-Type", ct));
    }
    s.request("POST", path, &headers, Some(body))
}

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

fn key_bytes(s: &Server) -> Vec<u8> {
    std::fs::read(s.db.with_file_name("postd.key")).expect("postd.key beside the database")
}

fn now_secs() -> u64 {
    Clock::now_since_epoch().as_secs()
}

/// Runs the binary with a deadline; returns (exit code, stdout, stderr). Never hangs: a
/// process still running after `deadline` is killed and the test fails.
fn run_bin(
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
    deadline: Duration,
) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    for var in [
        "POSTD_ADDR",
        "POSTD_DB",
        "POSTD_SIGNUP",
        "POSTD_TOKEN_TTL",
        "POSTD_MAX_BODY",
        "POSTD_MAX_BULK",
        "POSTD_WORKERS",
        "POSTD_JWT_SECRET",
        "POSTD_PASSWORD",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn postd");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).unwrap();
        drop(pipe);
    }
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "postd {args:?} still running after {deadline:?}; stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn assert_one_line_failure(what: &str, (code, _stdout, stderr): &(Option<i32>, String, String)) {
    assert!(
        matches!(code, Some(c) if *c != 0),
        "{what}: expected a non-zero exit, got {code:?}; stderr {stderr:?}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected exactly one line on stderr, got {stderr:?}"
    );
    assert!(!lines[0].trim().is_empty(), "{what}: empty stderr line");
}

// ---------------------------------------------------------------------------------------
// Auth and users
// ---------------------------------------------------------------------------------------

#[test]
fn register_login_me_success() {
    let s = Server::start();
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
    let root = s.admin("root");
    let me = s.get("/auth/me", Some(&root.token));
    assert_eq!(me.json()["role"], "admin");
}

#[test]
fn login_failures_are_indistinguishable() {
    let s = Server::start();
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
    let s = Server::start();
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

#[test]
fn signup_closed_and_token_ttl_from_env() {
    let s = Server::start_with(
        &[("POSTD_SIGNUP", "closed"), ("POSTD_TOKEN_TTL", "120")],
        &[],
    );
    let r = s.call(
        "POST",
        "/auth/register",
        None,
        Some(&json!({"username": "alice", "password": PASSWORD})),
    );
    r.expect(403);
    assert_eq!(s.sql_count("SELECT count(*) FROM users"), 0);
    // The command line still makes users, and they can log in.
    let root = s.admin("root");
    let r = s.call(
        "POST",
        "/auth/login",
        None,
        Some(&json!({"username": "root", "password": PASSWORD})),
    );
    r.expect(200);
    assert_eq!(r.json()["expires_in"], 120);
    s.get("/auth/me", Some(&root.token)).expect(200);
}

#[test]
fn bad_tokens_are_401_with_www_authenticate() {
    let s = Server::start();
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
    let s = Server::start();
    let bob = s.register("bob");
    let p = s.create_post(&bob, "Bob's post", "b");
    s.get("/auth/me", Some(&bob.token)).expect(200);
    s.cli_ok(&["user", "delete", "bob"], &[]);
    assert_401(&s.get("/auth/me", Some(&bob.token)));
    assert_401(&post(&s, &bob.token, json!({"title": "x", "body": "y"})));
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
    let s = Server::start();
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
    let mut s = Server::start();
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
    let mut s = Server::start();
    s.kill();
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
    let s = Server::start();
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

// ---------------------------------------------------------------------------------------
// Posts: success paths
// ---------------------------------------------------------------------------------------

#[test]
fn post_lifecycle_success_paths() {
    let s = Server::start();
    let alice = s.register("alice");

    // Create.
    let r = post(
        &s,
        &alice.token,
        json!({"title": "Hello World", "body": "first body"}),
    );
    r.expect(201);
    let p = r.json();
    assert_post_shape(&p);
    let pid = id(&p);
    assert_eq!(r.header("Location"), Some(format!("/posts/{pid}").as_str()));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(p["author_id"], alice.id);
    assert_eq!(p["title"], "Hello World");
    assert_eq!(p["slug"], "hello-world");
    assert_eq!(p["body"], "first body");
    assert_eq!(p["created_at"], p["updated_at"]);

    // Explicit slug, empty body allowed, charset parameter allowed.
    let r = s.request(
        "POST",
        "/posts",
        &[
            ("Authorization", &format!("Bearer {}", alice.token)),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        Some(br#"{"title":"Second","body":"","slug":"my-2nd-post"}"#),
    );
    r.expect(201);
    let p2 = r.json();
    assert_eq!(p2["slug"], "my-2nd-post");
    assert_eq!(p2["body"], "");

    // Reads.
    let r = s.get(&format!("/posts/{pid}"), None);
    r.expect(200);
    assert_eq!(r.json(), p);
    let r = s.get("/posts/by-slug/hello-world", None);
    r.expect(200);
    assert_eq!(r.json(), p);
    let r = s.get("/posts/by-slug/my-2nd-post", None);
    assert_eq!(id(&r.json()), id(&p2));
    let r = s.get("/posts", None);
    r.expect(200);
    let page = r.json();
    assert_eq!(keys_of(&page), sorted(&["items", "next_cursor"]));
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(
        page["items"],
        json!([p2.clone(), p.clone()]),
        "newest first"
    );

    // PATCH bumps updated_at only.
    std::thread::sleep(Duration::from_millis(15));
    let r = s.call(
        "PATCH",
        &format!("/posts/{pid}"),
        Some(&alice.token),
        Some(&json!({"title": "Hello Again"})),
    );
    r.expect(200);
    let patched = r.json();
    assert_post_shape(&patched);
    assert_eq!(patched["title"], "Hello Again");
    assert_eq!(patched["body"], "first body");
    assert_eq!(patched["created_at"], p["created_at"]);
    assert!(
        patched["updated_at"].as_str().unwrap() > p["updated_at"].as_str().unwrap(),
        "{patched}"
    );
    std::thread::sleep(Duration::from_millis(15));
    let r = s.call(
        "PATCH",
        &format!("/posts/{pid}"),
        Some(&alice.token),
        Some(&json!({"body": "new body", "slug": "renamed"})),
    );
    r.expect(200);
    let patched2 = r.json();
    assert_eq!(
        (patched2["body"].as_str(), patched2["slug"].as_str()),
        (Some("new body"), Some("renamed"))
    );
    assert!(patched2["updated_at"].as_str().unwrap() > patched["updated_at"].as_str().unwrap());
    assert_eq!(s.get(&format!("/posts/{pid}"), None).json(), patched2);
    s.get("/posts/by-slug/hello-world", None).expect(404);
    s.get("/posts/by-slug/renamed", None).expect(200);
    // Setting a post's own slug again is no conflict.
    s.call(
        "PATCH",
        &format!("/posts/{pid}"),
        Some(&alice.token),
        Some(&json!({"slug": "renamed"})),
    )
    .expect(200);

    // Soft delete: 204, gone from reads, in the trash.
    assert_204(&s.call("DELETE", &format!("/posts/{pid}"), Some(&alice.token), None));
    s.get(&format!("/posts/{pid}"), None).expect(404);
    let r = s.get("/trash", Some(&alice.token));
    r.expect(200);
    let trash = r.json();
    let items = trash["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_trashed_shape(&items[0]);
    assert_eq!(id(&items[0]), pid);
    assert_eq!(items[0]["deleted_by_id"], alice.id);
    assert_eq!(trash["next_cursor"], Value::Null);
    assert_eq!(
        s.sql_count(&format!("SELECT count(*) FROM posts WHERE id = {pid}")),
        1,
        "soft delete keeps the row"
    );

    // Restore (admin).
    let root = s.admin("root");
    let r = s.call(
        "POST",
        &format!("/posts/{pid}/restore"),
        Some(&root.token),
        None,
    );
    r.expect(200);
    let restored = r.json();
    assert_eq!(id(&restored), pid);
    assert_eq!(restored["slug"], "renamed");
    assert_eq!(restored["title"], "Hello Again");
    s.get(&format!("/posts/{pid}"), None).expect(200);
    assert!(s.get("/trash", Some(&alice.token)).json()["items"]
        .as_array()
        .unwrap()
        .is_empty());

    // Permanent delete of an active post.
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{pid}?permanent=true"),
        Some(&alice.token),
        None,
    ));
    s.get(&format!("/posts/{pid}"), None).expect(404);
    assert_eq!(
        s.sql_count(&format!("SELECT count(*) FROM posts WHERE id = {pid}")),
        0
    );
    assert!(s.get("/trash", Some(&root.token)).json()["items"]
        .as_array()
        .unwrap()
        .is_empty());
    // permanent=false is an ordinary soft delete.
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}?permanent=false", id(&p2)),
        Some(&alice.token),
        None,
    ));
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM posts WHERE id = {} AND deleted_at IS NOT NULL",
            id(&p2)
        )),
        1
    );
    // A soft-deleted post can be deleted permanently too.
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}?permanent=true", id(&p2)),
        Some(&alice.token),
        None,
    ));
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 0);
    s.call(
        "DELETE",
        &format!("/posts/{}?permanent=true", id(&p2)),
        Some(&alice.token),
        None,
    )
    .expect(404);
}

#[test]
fn admin_may_manage_any_post() {
    let s = Server::start();
    let alice = s.register("alice");
    let root = s.admin("root");
    let p = s.create_post(&alice, "Alice's", "b");
    let pid = id(&p);
    let r = s.call(
        "PATCH",
        &format!("/posts/{pid}"),
        Some(&root.token),
        Some(&json!({"body": "moderated"})),
    );
    r.expect(200);
    assert_eq!(
        r.json()["author_id"],
        alice.id,
        "the author does not change"
    );
    assert_204(&s.call("DELETE", &format!("/posts/{pid}"), Some(&root.token), None));
    let trash = s.get("/trash", Some(&alice.token)).json();
    assert_eq!(trash["items"][0]["deleted_by_id"], root.id, "{trash}");
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{pid}?permanent=true"),
        Some(&root.token),
        None,
    ));
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 0);
}

// ---------------------------------------------------------------------------------------
// Posts: validation
// ---------------------------------------------------------------------------------------

#[test]
fn post_create_validation_422() {
    let s = Server::start();
    let a = s.register("alice");
    let t = &a.token;
    expect_422_field(&post(&s, t, json!({"title": 5, "body": "b"})), "title");
    expect_422_field(&post(&s, t, json!({"title": "t", "body": 7})), "body");
    expect_422_field(&post(&s, t, json!({"title": "t", "body": null})), "body");
    expect_422_field(
        &post(&s, t, json!({"title": "t", "body": "b", "slug": 7})),
        "slug",
    );
    expect_422_field(&post(&s, t, json!({"body": "b"})), "title");
    expect_422_field(&post(&s, t, json!({"title": "t"})), "body");
    expect_422_field(&post(&s, t, json!({"title": "   ", "body": "b"})), "title");
    expect_422_field(
        &post(&s, t, json!({"title": "\t\n ", "body": "b"})),
        "title",
    );
    expect_422_field(&post(&s, t, json!({"title": "", "body": "b"})), "title");
    expect_422_field(
        &post(&s, t, json!({"title": "x".repeat(201), "body": "b"})),
        "title",
    );
    expect_422_field(
        &post(&s, t, json!({"title": "é".repeat(201), "body": "b"})),
        "title",
    );
    expect_422_field(
        &post(&s, t, json!({"title": "t", "body": "b".repeat(100_001)})),
        "body",
    );
    for bad in [
        "Bad",
        "a--b",
        "-a",
        "a-",
        "a_b",
        "a b",
        "",
        "ünï",
        &"a".repeat(101),
    ] {
        expect_422_field(
            &post(&s, t, json!({"title": "t", "body": "b", "slug": bad})),
            "slug",
        );
    }
    // Unknown fields are refused, never ignored.
    let r = post(&s, t, json!({"title": "t", "body": "b", "tags": ["x"]}));
    r.expect(422);
    assert!(r.text().contains("tags"), "{}", r.text());
    post(&s, t, json!({"title": "t", "body": "b", "id": 5})).expect(422);
    post(&s, t, json!({"title": "t", "body": "b", "author_id": 1})).expect(422);
    // Well-formed JSON of the wrong shape.
    for body in [json!([1, 2]), json!("title"), json!(null), json!(42)] {
        post(&s, t, body).expect(422);
    }
    // Duplicate keys are refused rather than guessed at.
    let r = raw_post(
        &s,
        "/posts",
        Some(t),
        Some("application/json"),
        br#"{"title":"a","title":"b","body":""}"#,
    );
    r.expect(422);
    // Several problems are all reported.
    let r = post(&s, t, json!({"title": "", "body": 1, "slug": "BAD"}));
    r.expect(422);
    let fields = error_fields(&r);
    for f in ["title", "body", "slug"] {
        assert!(fields.iter().any(|x| x == f), "{fields:?}");
    }
    assert_eq!(
        s.sql_count("SELECT count(*) FROM posts"),
        0,
        "nothing invalid was stored"
    );

    // Boundaries that are allowed.
    post_ok(
        &s,
        t,
        json!({"title": "x".repeat(200), "body": "b".repeat(100_000)}),
    );
    post_ok(&s, t, json!({"title": "é".repeat(200), "body": ""}));
    let p = post_ok(
        &s,
        t,
        json!({"title": "t", "body": "b", "slug": "a".repeat(100)}),
    );
    assert_eq!(p["slug"].as_str().unwrap().len(), 100);
    post_ok(&s, t, json!({"title": "t", "body": "b", "slug": "a-1-b2"}));
}

#[test]
fn post_patch_validation_and_conflicts() {
    let s = Server::start();
    let a = s.register("alice");
    let p = s.create_post(&a, "One", "b");
    let other = post_ok(
        &s,
        &a.token,
        json!({"title": "Two", "body": "b", "slug": "taken"}),
    );
    let path = format!("/posts/{}", id(&p));
    let patch = |body: Value| s.call("PATCH", &path, Some(&a.token), Some(&body));

    let r = patch(json!({}));
    r.expect(422);
    error_fields(&r);
    expect_422_field(&patch(json!({"title": "   "})), "title");
    expect_422_field(&patch(json!({"title": "x".repeat(201)})), "title");
    expect_422_field(&patch(json!({"title": null})), "title");
    expect_422_field(&patch(json!({"body": 3})), "body");
    expect_422_field(&patch(json!({"slug": "Not A Slug"})), "slug");
    patch(json!({"title": "ok", "colour": "red"})).expect(422);
    patch(json!({"id": 99})).expect(422);
    patch(json!(["title"])).expect(422);
    let r = patch(json!({"slug": "taken"}));
    r.expect(409);
    // Nothing changed by refused patches.
    assert_eq!(s.get(&path, None).json(), p);
    assert_eq!(s.get("/posts/by-slug/taken", None).json(), other);
}

#[test]
fn malformed_bodies_are_400_and_media_types_415() {
    let s = Server::start();
    let a = s.register("alice");
    let t = Some(a.token.as_str());
    let j = Some("application/json");
    for (what, body) in [
        ("truncated", &b"{\"title\":"[..]),
        ("trailing comma", b"{\"title\":\"t\",}"),
        ("not json", b"title=t&body=b"),
        ("two documents", b"{} {}"),
        ("invalid utf-8", b"{\"title\":\"\xff\xfe\",\"body\":\"b\"}"),
        ("invalid utf-8 key", b"{\"ti\xc3tle\":\"t\",\"body\":\"b\"}"),
    ] {
        let r = raw_post(&s, "/posts", t, j, body);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        r.expect(400);
    }
    // Deeply nested input is refused as a client error, never a crash.
    let deep_value = format!(
        "{{\"title\":{}1{},\"body\":\"b\"}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for body in [deep_value, deep_array] {
        let r = raw_post(&s, "/posts", t, j, body.as_bytes());
        assert!(
            r.status == 400 || r.status == 422,
            "deep nesting: {} {}",
            r.status,
            r.text()
        );
        r.expect(r.status);
    }
    // Empty body where one is required.
    raw_post(&s, "/posts", t, j, b"").expect(400);
    raw_post(&s, "/auth/register", None, j, b"").expect(400);
    raw_post(&s, "/auth/login", None, j, b"{").expect(400);
    let pid = id(&s.create_post(&a, "p", "b"));
    s.request(
        "PATCH",
        &format!("/posts/{pid}"),
        &[
            ("Authorization", &format!("Bearer {}", a.token)),
            ("Content-Type", "application/json"),
        ],
        Some(b""),
    )
    .expect(400);
    raw_post(&s, &format!("/posts/{pid}/comments"), t, j, b"{\"body\":").expect(400);

    // 415: no or wrong Content-Type.
    let ok_body = br#"{"title":"t","body":"b"}"#;
    raw_post(&s, "/posts", t, None, ok_body).expect(415);
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "text/json",
        "multipart/form-data; boundary=x",
    ] {
        let r = raw_post(&s, "/posts", t, Some(ct), ok_body);
        assert_eq!(r.status, 415, "{ct}: {}", r.text());
        r.expect(415);
    }
    raw_post(
        &s,
        "/auth/register",
        None,
        Some("text/plain"),
        br#"{"username":"bob","password":"12345678"}"#,
    )
    .expect(415);
    raw_post(
        &s,
        &format!("/posts/{pid}/comments"),
        t,
        Some("text/plain"),
        br#"{"body":"c"}"#,
    )
    .expect(415);
    raw_post(&s, "/posts", t, Some("Application/JSON"), ok_body).expect(201);

    // Idempotency-Key must be 1..=255 visible ASCII characters.
    let long = "k".repeat(256);
    for key in ["has space", long.as_str(), "tab\there"] {
        let r = s.call_with(
            "POST",
            "/posts",
            t,
            Some(&json!({"title": "t", "body": "b"})),
            &[("Idempotency-Key", key)],
        );
        assert_eq!(r.status, 400, "key {key:?}: {}", r.text());
        r.expect(400);
    }
    let max = "k".repeat(255);
    s.call_with(
        "POST",
        "/posts",
        t,
        Some(&json!({"title": "t", "body": "b"})),
        &[("Idempotency-Key", &max)],
    )
    .expect(201);
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 3);
}

#[test]
fn body_size_limit_413() {
    let s = Server::start_with(&[("POSTD_MAX_BODY", "1024")], &[]);
    let a = s.register("alice");
    let auth = format!("Bearer {}", a.token);
    let big = json!({"title": "t", "body": "x".repeat(2000)});
    post(&s, &a.token, big.clone()).expect(413);
    s.call(
        "POST",
        "/auth/register",
        None,
        Some(&json!({"username": "bob", "password": "p".repeat(2000)})),
    )
    .expect(413);

    // Exactly at the limit is fine; one byte over is not.
    let at_limit = |n: usize| {
        let prefix = r#"{"title":"t","body":""#;
        let suffix = r#""}"#;
        let mut body = prefix.to_string();
        body.push_str(&"y".repeat(n - prefix.len() - suffix.len()));
        body.push_str(suffix);
        assert_eq!(body.len(), n);
        body.into_bytes()
    };
    raw_post(
        &s,
        "/posts",
        Some(&a.token),
        Some("application/json"),
        &at_limit(1024),
    )
    .expect(201);
    raw_post(
        &s,
        "/posts",
        Some(&a.token),
        Some("application/json"),
        &at_limit(1025),
    )
    .expect(413);

    // A declared length far over the limit is refused from the header alone.
    let head = format!(
        "POST /posts HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{{\"title\":\"t\",\"body\":\"b\"}}",
        s.addr
    );
    let started = Instant::now();
    s.raw(head.as_bytes()).expect(413);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "413 must not wait for the declared body"
    );

    // A chunked body is cut off past the limit.
    let mut chunked = format!(
        "POST /posts HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        s.addr
    )
    .into_bytes();
    let payload = serde_json::to_vec(&big).unwrap();
    for part in payload.chunks(500) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    s.raw(&chunked).expect(413);

    // Authentication still comes first.
    assert_401(&s.call("POST", "/posts", None, Some(&big)));
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 1);
    assert_eq!(s.sql_count("SELECT count(*) FROM users"), 1);
}

// ---------------------------------------------------------------------------------------
// 404, 405 and the order of checks
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_paths_and_bad_ids_are_404() {
    let s = Server::start();
    let a = s.register("alice");
    let pid = id(&s.create_post(&a, "p", "b"));
    let c = comment_ok(&s, &a.token, pid, "c");
    for path in [
        "/nope",
        "/",
        "/posts/",
        "/posts/1/x",
        "/POSTS",
        "/auth",
        "/posts/by-slug/",
        "/posts/abc",
        "/posts/0",
        "/posts/-1",
        "/posts/+1",
        "/posts/1.0",
        "/posts/1e3",
        "/posts/99999999999999999999",
        "/posts/9223372036854775808",
        "/posts/9223372036854775807",
        "/posts/abc/comments",
        "/posts/0/comments",
        "/posts/-5/comments",
        "/posts/99999/comments",
        "/posts/by-slug/no-such-post",
    ] {
        let r = s.get(path, None);
        assert_eq!(r.status, 404, "GET {path}: {}", r.text());
        r.expect(404);
    }
    for path in [
        "/posts/abc",
        "/posts/0",
        "/posts/-1",
        "/posts/99999999999999999999",
        "/posts/99999",
    ] {
        s.call("PATCH", path, Some(&a.token), Some(&json!({"title": "x"})))
            .expect(404);
        s.call("DELETE", path, Some(&a.token), None).expect(404);
    }
    for path in [
        "/comments/0",
        "/comments/abc",
        "/comments/-1",
        "/comments/99999",
        "/comments/99999999999999999999",
    ] {
        s.call("DELETE", path, Some(&a.token), None).expect(404);
    }
    s.call("POST", "/posts/0/restore", Some(&a.token), None)
        .expect(404);
    s.call(
        "POST",
        "/posts/99999/comments",
        Some(&a.token),
        Some(&json!({"body": "c"})),
    )
    .expect(404);
    // Nothing was touched.
    s.get(&format!("/posts/{pid}"), None).expect(200);
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM comments WHERE id = {}",
            id(&c)
        )),
        1
    );
}

#[test]
fn wrong_method_is_405_with_allow() {
    let s = Server::start();
    let a = s.register("alice");
    let pid = id(&s.create_post(&a, "p", "b"));
    for (method, path, allowed) in [
        ("PUT", "/posts".to_string(), set(&["GET", "POST"])),
        ("DELETE", "/posts".to_string(), set(&["GET", "POST"])),
        (
            "PUT",
            format!("/posts/{pid}"),
            set(&["GET", "PATCH", "DELETE"]),
        ),
        (
            "POST",
            format!("/posts/{pid}"),
            set(&["GET", "PATCH", "DELETE"]),
        ),
        ("GET", "/auth/register".to_string(), set(&["POST"])),
        ("GET", "/auth/login".to_string(), set(&["POST"])),
        ("POST", "/auth/me".to_string(), set(&["GET"])),
        ("POST", "/trash".to_string(), set(&["GET"])),
        ("GET", format!("/posts/{pid}/restore"), set(&["POST"])),
        (
            "DELETE",
            format!("/posts/{pid}/comments"),
            set(&["GET", "POST"]),
        ),
        ("GET", "/comments/1".to_string(), set(&["DELETE"])),
        ("POST", "/healthz".to_string(), set(&["GET"])),
        ("DELETE", "/openapi.json".to_string(), set(&["GET"])),
        ("POST", "/posts/by-slug/p".to_string(), set(&["GET"])),
    ] {
        let r = s.call(method, &path, Some(&a.token), None);
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        r.expect(405);
        assert_eq!(allow_set(&r), allowed, "{method} {path}");
    }
    // A method nobody routes.
    let r = s.request("FROB", "/posts", &[], None);
    r.expect(405);
    assert_eq!(allow_set(&r), set(&["GET", "POST"]));
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 1);
}

#[test]
fn order_of_checks() {
    let s = Server::start();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let p = s.create_post(&alice, "Alice's", "b");
    let pid = id(&p);

    // 401 before validation and existence.
    assert_401(&raw_post(
        &s,
        "/posts",
        None,
        Some("application/json"),
        b"{not json",
    ));
    assert_401(&raw_post(&s, "/posts", None, Some("text/plain"), b"x"));
    assert_401(&s.call("POST", "/posts", None, Some(&json!({"title": 1}))));
    assert_401(&s.call("PATCH", "/posts/99999", None, Some(&json!({}))));
    assert_401(&s.call("DELETE", "/posts/99999", None, None));
    assert_401(&s.call("DELETE", &format!("/posts/{pid}"), None, None));
    assert_401(&s.call("POST", "/posts/99999/restore", None, None));
    assert_401(&s.call(
        "POST",
        &format!("/posts/{pid}/comments"),
        None,
        Some(&json!({"body": ""})),
    ));
    assert_401(&s.call("DELETE", "/comments/99999", None, None));
    assert_401(&s.get("/trash", None));
    assert_401(&s.get("/trash?limit=0", None));

    // 422 before 404.
    expect_422_field(
        &s.call(
            "PATCH",
            "/posts/99999",
            Some(&bob.token),
            Some(&json!({"title": "  "})),
        ),
        "title",
    );
    s.call("PATCH", "/posts/99999", Some(&bob.token), Some(&json!({})))
        .expect(422);
    s.call(
        "POST",
        "/posts/99999/comments",
        Some(&bob.token),
        Some(&json!({"body": ""})),
    )
    .expect(422);
    s.get("/posts/99999/comments?limit=0", None).expect(422);
    // 415/400 before 404 too.
    s.request(
        "PATCH",
        "/posts/99999",
        &[
            ("Authorization", &format!("Bearer {}", bob.token)),
            ("Content-Type", "text/plain"),
        ],
        Some(b"{}"),
    )
    .expect(415);

    // 422 before 403: an invalid patch on someone else's post.
    s.call(
        "PATCH",
        &format!("/posts/{pid}"),
        Some(&bob.token),
        Some(&json!({})),
    )
    .expect(422);
    // 403 for a valid request by a non-owner.
    s.call(
        "PATCH",
        &format!("/posts/{pid}"),
        Some(&bob.token),
        Some(&json!({"title": "mine now"})),
    )
    .expect(403);
    s.call("DELETE", &format!("/posts/{pid}"), Some(&bob.token), None)
        .expect(403);
    s.call(
        "DELETE",
        &format!("/posts/{pid}?permanent=true"),
        Some(&bob.token),
        None,
    )
    .expect(403);
    assert_eq!(
        s.get(&format!("/posts/{pid}"), None).json(),
        p,
        "refused requests change nothing"
    );

    // 404 before 403: a stranger touching a soft-deleted post sees it as absent.
    assert_204(&s.call("DELETE", &format!("/posts/{pid}"), Some(&alice.token), None));
    s.call("DELETE", &format!("/posts/{pid}"), Some(&bob.token), None)
        .expect(404);
    s.call(
        "PATCH",
        &format!("/posts/{pid}"),
        Some(&bob.token),
        Some(&json!({"title": "x"})),
    )
    .expect(404);
    // The owner's second soft delete: 404 (already deleted).
    s.call("DELETE", &format!("/posts/{pid}"), Some(&alice.token), None)
        .expect(404);
    // Permanent delete of someone else's soft-deleted post: it exists for this endpoint, so 403.
    s.call(
        "DELETE",
        &format!("/posts/{pid}?permanent=true"),
        Some(&bob.token),
        None,
    )
    .expect(403);
    assert_eq!(
        s.sql_count(&format!("SELECT count(*) FROM posts WHERE id = {pid}")),
        1
    );

    // Admin-only: 403 right after authentication, before any lookup or validation.
    s.call("POST", "/posts/99999/restore", Some(&bob.token), None)
        .expect(403);
    s.call(
        "POST",
        &format!("/posts/{pid}/restore"),
        Some(&bob.token),
        None,
    )
    .expect(403);
    s.call(
        "POST",
        &format!("/posts/{pid}/restore"),
        Some(&alice.token),
        None,
    )
    .expect(403);
    assert_eq!(
        s.sql_count(&format!(
            "SELECT count(*) FROM posts WHERE id = {pid} AND deleted_at IS NOT NULL"
        )),
        1
    );
}

#[test]
fn restore_errors() {
    let s = Server::start();
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

// ---------------------------------------------------------------------------------------
// Soft delete, trash, permanent delete, slugs
// ---------------------------------------------------------------------------------------

#[test]
fn soft_deleted_post_is_invisible_on_every_read_path() {
    let s = Server::start();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let root = s.admin("root");
    let keep = post_ok(
        &s,
        &alice.token,
        json!({"title": "Visible zebra", "body": "stays"}),
    );
    let gone = post_ok(
        &s,
        &alice.token,
        json!({"title": "Hidden zebra", "body": "quokka", "slug": "hidden"}),
    );
    let gid = id(&gone);
    let c1 = comment_ok(&s, &bob.token, gid, "first");
    let c2 = comment_ok(&s, &alice.token, gid, "second");
    let kc = comment_ok(&s, &bob.token, id(&keep), "on the kept post");

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
fn permanent_delete_removes_comments() {
    let s = Server::start();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let a = s.create_post(&alice, "Active one", "b");
    let d = s.create_post(&alice, "Trashed one", "b");
    let other = s.create_post(&bob, "Other", "b");
    let ca = comment_ok(&s, &bob.token, id(&a), "x");
    comment_ok(&s, &alice.token, id(&a), "y");
    let cd = comment_ok(&s, &bob.token, id(&d), "z");
    let co = comment_ok(&s, &alice.token, id(&other), "w");

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

#[test]
fn trash_admin_sees_all_user_sees_own() {
    let s = Server::start();
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
fn derived_slugs() {
    let s = Server::start();
    let a = s.register("alice");
    let slug_of = |title: &str| {
        post_ok(&s, &a.token, json!({"title": title, "body": ""}))["slug"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(slug_of("Hello World"), "hello-world");
    assert_eq!(slug_of("Hello World"), "hello-world-2");
    assert_eq!(slug_of("hello, world!"), "hello-world-3");
    // An explicit slug that looks like a suffix is skipped over by derivation.
    post_ok(
        &s,
        &a.token,
        json!({"title": "x", "body": "", "slug": "hello-world-4"}),
    );
    assert_eq!(slug_of("Hello   World"), "hello-world-5");
    assert_eq!(slug_of("!!!"), "post");
    assert_eq!(slug_of("?? ..."), "post-2");
    assert_eq!(slug_of("Rust 2024: what's new?"), "rust-2024-what-s-new");
    assert_eq!(slug_of("  --Héllo Wörld--  "), "h-llo-w-rld");
    assert_eq!(slug_of("日本語"), "post-3");
    // Long titles: at most 100 chars, suffix included, never ending in '-'.
    let long = "Abc ".repeat(50);
    let first = slug_of(&long);
    let second = slug_of(&long);
    for slug in [&first, &second] {
        assert!(slug.len() <= 100, "{slug}");
        assert!(
            !slug.ends_with('-') && !slug.starts_with('-') && !slug.contains("--"),
            "{slug}"
        );
        assert!(
            slug.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{slug}"
        );
    }
    assert!(second.ends_with("-2"), "{second}");
    assert_ne!(first, second);
    let dashy = format!("{} b", "a".repeat(98));
    let d1 = slug_of(&dashy);
    let d2 = slug_of(&dashy);
    assert_eq!(d1, format!("{}-b", "a".repeat(98)));
    assert!(
        d2.len() <= 100 && d2.ends_with("-2") && !d2.contains("--"),
        "{d2}"
    );
    // Explicit slug taken by an active post → 409, nothing stored.
    let before = s.sql_count("SELECT count(*) FROM posts");
    post(
        &s,
        &a.token,
        json!({"title": "t", "body": "", "slug": "hello-world"}),
    )
    .expect(409);
    post(
        &s,
        &a.token,
        json!({"title": "t", "body": "", "slug": "post"}),
    )
    .expect(409);
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), before);
}

#[test]
fn slugs_of_soft_deleted_posts_are_reusable_and_restore_conflicts() {
    let s = Server::start();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let root = s.admin("root");

    // Explicit reuse.
    let orig = post_ok(
        &s,
        &alice.token,
        json!({"title": "Original", "body": "o", "slug": "reuse-me"}),
    );
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}", id(&orig)),
        Some(&alice.token),
        None,
    ));
    let taker = post_ok(
        &s,
        &bob.token,
        json!({"title": "Taker", "body": "t", "slug": "reuse-me"}),
    );
    assert_eq!(taker["slug"], "reuse-me");

    // Derived reuse.
    let hw = post_ok(
        &s,
        &alice.token,
        json!({"title": "Hello World", "body": "1"}),
    );
    assert_eq!(hw["slug"], "hello-world");
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}", id(&hw)),
        Some(&alice.token),
        None,
    ));
    let hw2 = post_ok(&s, &bob.token, json!({"title": "Hello World", "body": "2"}));
    assert_eq!(hw2["slug"], "hello-world", "only active posts hold a slug");

    // PATCH to a slug held only by a soft-deleted post is fine too.
    let p = post_ok(
        &s,
        &bob.token,
        json!({"title": "Patchy", "body": "", "slug": "patchy"}),
    );
    let ghost = post_ok(
        &s,
        &alice.token,
        json!({"title": "Ghost", "body": "", "slug": "ghost"}),
    );
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}", id(&ghost)),
        Some(&alice.token),
        None,
    ));
    let r = s.call(
        "PATCH",
        &format!("/posts/{}", id(&p)),
        Some(&bob.token),
        Some(&json!({"slug": "ghost"})),
    );
    r.expect(200);
    assert_eq!(r.json()["slug"], "ghost");

    // Restoring the originals now conflicts, and changes nothing.
    let trash_before = s.collect_pages("/trash", Some(&root.token));
    for (orig_id, slug, holder) in [
        (id(&orig), "reuse-me", &taker),
        (id(&hw), "hello-world", &hw2),
        (id(&ghost), "ghost", &p),
    ] {
        let r = s.call(
            "POST",
            &format!("/posts/{orig_id}/restore"),
            Some(&root.token),
            None,
        );
        r.expect(409);
        s.get(&format!("/posts/{orig_id}"), None).expect(404);
        assert_eq!(
            id(&s.get(&format!("/posts/by-slug/{slug}"), None).json()),
            id(holder)
        );
    }
    assert_eq!(
        s.collect_pages("/trash", Some(&root.token)),
        trash_before,
        "failed restores change nothing"
    );

    // Once the slug is free again, restore works.
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}?permanent=true", id(&taker)),
        Some(&bob.token),
        None,
    ));
    let r = s.call(
        "POST",
        &format!("/posts/{}/restore", id(&orig)),
        Some(&root.token),
        None,
    );
    r.expect(200);
    assert_eq!(r.json(), orig);
    assert_eq!(s.get("/posts/by-slug/reuse-me", None).json(), orig);
}

// ---------------------------------------------------------------------------------------
// Comments
// ---------------------------------------------------------------------------------------

#[test]
fn comments_create_list_delete_and_permissions() {
    let s = Server::start();
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
    let c2 = comment_ok(&s, &stranger.token, pid, "two");
    let c3 = comment_ok(&s, &writer.token, pid, "three");
    let c4 = comment_ok(&s, &root.token, pid, &"x".repeat(10_000));

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

// ---------------------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------------------

#[test]
fn search_is_whole_word_case_insensitive_and_all_words() {
    let s = Server::start();
    let a = s.register("alice");
    let b = s.register("bob");
    let p1 = post_ok(
        &s,
        &a.token,
        json!({"title": "Rust programming guide", "body": "learn the borrow checker"}),
    );
    let p2 = post_ok(
        &s,
        &a.token,
        json!({"title": "Rusty nails", "body": "hardware store"}),
    );
    let p3 = post_ok(
        &s,
        &b.token,
        json!({"title": "Cooking pasta", "body": "a rust coloured sauce"}),
    );
    let p4 = post_ok(
        &s,
        &b.token,
        json!({"title": "Café Olé", "body": "rustacean meetup"}),
    );
    let p5 = post_ok(
        &s,
        &a.token,
        json!({"title": "alpha beta", "body": "gamma"}),
    );
    let (i1, i2, i3, i4, i5) = (id(&p1), id(&p2), id(&p3), id(&p4), id(&p5));

    assert_eq!(search(&s, "rust"), vec![i3, i1]);
    assert_eq!(search(&s, "RUST"), vec![i3, i1]);
    assert_eq!(search(&s, "Rust"), vec![i3, i1]);
    assert_eq!(search(&s, "rusty"), vec![i2]);
    assert!(search(&s, "rus").is_empty(), "no prefix matching");
    assert!(search(&s, "rustacea").is_empty());
    assert_eq!(search(&s, "rustacean"), vec![i4]);
    assert_eq!(
        search(&s, "rust borrow"),
        vec![i1],
        "one word in title, one in body"
    );
    assert_eq!(search(&s, "borrow RUST"), vec![i1]);
    assert!(
        search(&s, "rust hardware").is_empty(),
        "every word must appear"
    );
    assert!(search(&s, "rust nails").is_empty(), "'rusty' is not 'rust'");
    assert_eq!(search(&s, "alpha gamma"), vec![i5]);
    assert!(search(&s, "beta delta").is_empty());
    assert_eq!(search(&s, "café"), vec![i4]);
    assert_eq!(search(&s, "CAFÉ"), vec![i4]);
    assert_eq!(
        search(&s, "rust, borrow!"),
        vec![i1],
        "punctuation separates words"
    );
    // Combined with author_id.
    let r = s.get(&format!("/posts?q=rust&author_id={}", b.id), None);
    r.expect(200);
    assert_eq!(ids(r.json()["items"].as_array().unwrap()), vec![i3]);
    let r = s.get(&format!("/posts?q=rust&author_id={}", a.id), None);
    assert_eq!(ids(r.json()["items"].as_array().unwrap()), vec![i1]);
    // Edits are searchable at once; old words are gone.
    s.call(
        "PATCH",
        &format!("/posts/{i2}"),
        Some(&a.token),
        Some(&json!({"title": "Shiny screws"})),
    )
    .expect(200);
    assert!(search(&s, "rusty").is_empty());
    assert_eq!(search(&s, "screws hardware"), vec![i2]);
    // author_id filter without q.
    let mine = s.collect_pages(&format!("/posts?author_id={}", b.id), None);
    assert_eq!(ids(&mine), vec![i4, i3]);
    assert!(s.collect_pages("/posts?author_id=99999", None).is_empty());
}

#[test]
fn search_syntax_in_q_is_plain_text() {
    let s = Server::start();
    let a = s.register("alice");
    let p = post_ok(
        &s,
        &a.token,
        json!({"title": "title x", "body": "near zebra"}),
    );
    post_ok(&s, &a.token, json!({"title": "another", "body": "text"}));
    for q in [
        "\"",
        "\"\"",
        "\"zebra",
        "AND OR NOT",
        "AND",
        "OR",
        "NOT",
        "NOT zebra",
        "zebra NOT",
        "*",
        "zebra*",
        "*zebra",
        "(",
        ")",
        "(zebra",
        "NEAR(",
        "NEAR(zebra x)",
        "NEAR",
        "title:x",
        "title:",
        ":",
        "^",
        "^zebra",
        "-",
        "-zebra",
        "+",
        "{title body}: x",
        "'",
        "''",
        "\\",
        "%",
        "&",
        "=",
        "?",
        "#",
        "zebra; DROP TABLE posts; --",
        "x' OR '1'='1",
        "\u{0}",
        "😀",
        "ß",
        "   ",
        "",
        "a\"b",
        "col:zebra",
        "zebra AND",
        "OR zebra",
        "[x]",
        "$",
        ",",
        ".",
        "..",
        "~",
    ] {
        let r = s.get(&format!("/posts?q={}", url_encode(q)), None);
        assert!(r.status < 500, "q={q:?} gave {}: {}", r.status, r.text());
        assert_eq!(r.status, 200, "q={q:?}: {}", r.text());
        assert!(r.json()["items"].is_array());
    }
    // Operators are words like any other: nothing contains "and"/"or"/"not".
    assert!(search(&s, "AND OR NOT").is_empty());
    assert!(search(&s, "NOT zebra").is_empty());
    // Syntax around real words still finds them as words.
    assert_eq!(search(&s, "\"zebra"), vec![id(&p)]);
    assert_eq!(search(&s, "title:x"), vec![id(&p)]);
    assert_eq!(search(&s, "NEAR(zebra x)"), vec![id(&p)]);
    assert_eq!(search(&s, "^zebra*"), vec![id(&p)]);
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 2);
}

// ---------------------------------------------------------------------------------------
// Pagination and query parameters
// ---------------------------------------------------------------------------------------

#[track_caller]
fn check_pages(s: &Server, path: &str, token: Option<&str>, limit: usize, expected: &[i64]) {
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
    let s = Server::start();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let mut all = Vec::new();
    let mut alice_ids = Vec::new();
    let mut even_ids = Vec::new();
    for i in 0..45 {
        let who = if i % 5 == 4 { &bob } else { &alice };
        let word = if i % 2 == 0 { "even" } else { "odd" };
        let p = post_ok(
            &s,
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
    let s = Server::start();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let root = s.admin("root");
    let host = s.create_post(&alice, "Host", "b");
    let mut comment_ids = Vec::new();
    for i in 0..45 {
        let who = if i % 3 == 0 { &bob } else { &alice };
        comment_ids.push(id(&comment_ok(
            &s,
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
        posts.push(id(&post_ok(
            &s,
            &alice.token,
            json!({"title": format!("T{i}"), "body": ""}),
        )));
    }
    let bobs: Vec<i64> = (0..3)
        .map(|i| {
            id(&post_ok(
                &s,
                &bob.token,
                json!({"title": format!("B{i}"), "body": ""}),
            ))
        })
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
    let s = Server::start();
    let a = s.register("alice");
    for i in 0..3 {
        let p = s.create_post(&a, &format!("p{i}"), "b");
        comment_ok(&s, &a.token, id(&p), "c");
        comment_ok(&s, &a.token, id(&p), "d");
        assert_204(&s.call(
            "DELETE",
            &format!("/posts/{}", id(&p)),
            Some(&a.token),
            None,
        ));
    }
    let host = s.create_post(&a, "host", "b");
    for _ in 0..3 {
        comment_ok(&s, &a.token, id(&host), "c");
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

// ---------------------------------------------------------------------------------------
// Idempotency-Key on POST /posts
// ---------------------------------------------------------------------------------------

#[test]
fn idempotency_key_on_single_create() {
    let s = Server::start();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let body = json!({"title": "Once", "body": "only"});
    let first = s.call_with(
        "POST",
        "/posts",
        Some(&alice.token),
        Some(&body),
        &[("Idempotency-Key", "key-1")],
    );
    first.expect(201);
    assert_eq!(first.header("Idempotent-Replayed"), None);
    let again = s.call_with(
        "POST",
        "/posts",
        Some(&alice.token),
        Some(&body),
        &[("Idempotency-Key", "key-1")],
    );
    again.expect(201);
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(again.json(), first.json());
    assert_eq!(again.header("Location"), first.header("Location"));
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 1);
    // Same key, different body → 422, nothing written.
    s.call_with(
        "POST",
        "/posts",
        Some(&alice.token),
        Some(&json!({"title": "Twice", "body": "x"})),
        &[("Idempotency-Key", "key-1")],
    )
    .expect(422);
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 1);
    // Keys are per user.
    let other = s.call_with(
        "POST",
        "/posts",
        Some(&bob.token),
        Some(&body),
        &[("Idempotency-Key", "key-1")],
    );
    other.expect(201);
    assert_eq!(other.header("Idempotent-Replayed"), None);
    assert_ne!(id(&other.json()), id(&first.json()));
    assert_eq!(other.json()["slug"], "once-2");
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 2);
}

// ---------------------------------------------------------------------------------------
// Concurrent writers
// ---------------------------------------------------------------------------------------

#[test]
fn concurrent_writers_get_distinct_slugs_and_one_username() {
    let s = Server::start();
    let alice = s.register("alice");
    let results: Vec<Response> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|_| {
                scope.spawn(|| post(&s, &alice.token, json!({"title": "Same Title", "body": ""})))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut slugs = HashSet::new();
    for r in &results {
        r.expect(201);
        assert!(
            slugs.insert(r.json()["slug"].as_str().unwrap().to_string()),
            "duplicate slug {}",
            r.text()
        );
    }
    let expected: HashSet<String> = std::iter::once("same-title".to_string())
        .chain((2..=12).map(|n| format!("same-title-{n}")))
        .collect();
    assert_eq!(slugs, expected);

    // Explicit slug raced by many: exactly one wins, the rest get 409.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (s, token) = (&s, alice.token.as_str());
                scope.spawn(move || {
                    post(
                        s,
                        token,
                        json!({"title": format!("t{i}"), "body": "", "slug": "contested"}),
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|c| **c == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|c| **c == 409).count(),
        7,
        "{statuses:?}"
    );

    // Same username registered at once, in different cases.
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["racer", "RACER", "Racer", "rAcEr"]
            .into_iter()
            .map(|name| {
                let s = &s;
                scope.spawn(move || {
                    s.call(
                        "POST",
                        "/auth/register",
                        None,
                        Some(&json!({"username": name, "password": PASSWORD})),
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted_statuses = statuses.clone();
    sorted_statuses.sort();
    assert_eq!(sorted_statuses, vec![201, 409, 409, 409], "{statuses:?}");
    assert_eq!(
        s.sql_count("SELECT count(*) FROM users WHERE username = 'racer' COLLATE NOCASE"),
        1
    );
}

// ---------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------

#[test]
fn healthz_and_openapi() {
    let s = Server::start();
    let r = s.get("/healthz", None);
    r.expect(200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.json(), json!({"status": "ok"}));
    let r = s.get("/openapi.json", None);
    r.expect(200);
    assert!(
        r.header("Content-Type")
            .unwrap_or("")
            .starts_with("application/json"),
        "{:?}",
        r.header("Content-Type")
    );
    let doc = r.json();
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
}

#[test]
fn openapi_documents_every_endpoint() {
    let s = Server::start();
    let doc = s.get("/openapi.json", None).json();
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    let mut missing = Vec::new();
    for (path, methods) in [
        ("/auth/register", &["post"][..]),
        ("/auth/login", &["post"]),
        ("/auth/me", &["get"]),
        ("/posts", &["get", "post"]),
        ("/posts/{id}", &["get", "patch", "delete"]),
        ("/posts/by-slug/{slug}", &["get"]),
        ("/posts/{id}/restore", &["post"]),
        ("/posts/{id}/comments", &["get", "post"]),
        ("/comments/{id}", &["delete"]),
        ("/trash", &["get"]),
        ("/healthz", &["get"]),
        ("/openapi.json", &["get"]),
    ] {
        for m in methods {
            if paths.get(path).and_then(|p| p.get(*m)).is_none() {
                missing.push(format!("{} {path}", m.to_uppercase()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "openapi.json does not describe: {missing:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------

#[test]
fn cli_user_add_from_env_and_stdin() {
    let s = Server::start();
    let db = s.db.to_str().unwrap().to_string();
    // From POSTD_PASSWORD.
    let (code, out, err) = run_bin(
        &["user", "add", "envuser", "--db", &db],
        &[("POSTD_PASSWORD", PASSWORD)],
        None,
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "stdout {out:?} stderr {err:?}");
    let me = s.get("/auth/me", Some(&s.login("envuser"))).json();
    assert_eq!(me["role"], "user");
    // From one line of stdin, as admin.
    let stdin_pw = "piped-password-42";
    let (code, out, err) = run_bin(
        &["user", "add", "pipeuser", "--admin", "--db", &db],
        &[],
        Some(format!("{stdin_pw}\n").as_bytes()),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "stdout {out:?} stderr {err:?}");
    let r = s.call(
        "POST",
        "/auth/login",
        None,
        Some(&json!({"username": "pipeuser", "password": stdin_pw})),
    );
    r.expect(200);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(s.get("/auth/me", Some(&token)).json()["role"], "admin");
    // The newline is not part of the password.
    s.call(
        "POST",
        "/auth/login",
        None,
        Some(&json!({"username": "pipeuser", "password": format!("{stdin_pw}\n")})),
    )
    .expect(401);

    // Refusals: taken name (case-insensitively), bad name, short password, no password.
    for (args, env, stdin) in [
        (
            vec!["user", "add", "ENVUSER"],
            vec![("POSTD_PASSWORD", PASSWORD)],
            None,
        ),
        (
            vec!["user", "add", "x y"],
            vec![("POSTD_PASSWORD", PASSWORD)],
            None,
        ),
        (
            vec!["user", "add", "shorty"],
            vec![("POSTD_PASSWORD", "short")],
            None,
        ),
        (vec!["user", "add", "nopw"], vec![], Some(&b""[..])),
        (vec!["user", "role", "envuser", "superuser"], vec![], None),
        (vec!["user", "role", "ghost", "admin"], vec![], None),
        (vec!["user", "delete", "ghost"], vec![], None),
    ] {
        let mut full = args.clone();
        full.extend(["--db", db.as_str()]);
        let outcome = run_bin(&full, &env, stdin, Duration::from_secs(20));
        assert_one_line_failure(&format!("{args:?}"), &outcome);
    }
    assert_eq!(s.sql_count("SELECT count(*) FROM users"), 2);
}

#[test]
fn cli_bad_options_exit_with_one_line() {
    let dir = TempDir::new("cli");
    let db = dir.path().join("x.db");
    let db = db.to_str().unwrap();
    let d = Duration::from_secs(15);
    for args in [
        vec!["--workers", "0", "--addr", "127.0.0.1:0", "--db", db],
        vec![
            "serve",
            "--workers",
            "abc",
            "--addr",
            "127.0.0.1:0",
            "--db",
            db,
        ],
        vec!["--bogus", "--addr", "127.0.0.1:0", "--db", db],
        vec!["--signup", "maybe", "--addr", "127.0.0.1:0", "--db", db],
        vec!["--max-body", "0", "--addr", "127.0.0.1:0", "--db", db],
        vec!["purge", "--db", db],
        vec!["purge", "--older-than", "3w", "--db", db],
        vec!["purge", "--older-than", "--db", db],
        vec!["frobnicate", "--db", db],
        vec!["user", "--db", db],
        vec!["backup", "--db", db],
        vec!["--addr", "127.0.0.1:0", "--db", "/nonexistent-dir/x.db"],
        vec!["serve", "--addr", "not-an-address", "--db", db],
    ] {
        let outcome = run_bin(&args, &[], None, d);
        assert_one_line_failure(&format!("{args:?}"), &outcome);
    }
    // Unusable database files.
    let not_db = dir.path().join("not-a-db.txt");
    std::fs::write(
        &not_db,
        "this is not an SQLite database, just some text that is long enough to matter\n"
            .repeat(100),
    )
    .unwrap();
    let a_dir = dir.path().join("a-directory");
    std::fs::create_dir_all(&a_dir).unwrap();
    let under_file = not_db.join("x.db");
    for bad_db in [&not_db, &a_dir, &under_file] {
        let bad = bad_db.to_str().unwrap();
        for args in [
            vec!["--addr", "127.0.0.1:0", "--db", bad],
            vec!["user", "add", "alice", "--db", bad],
            vec!["purge", "--older-than", "1d", "--db", bad],
        ] {
            let outcome = run_bin(&args, &[("POSTD_PASSWORD", PASSWORD)], None, d);
            assert_one_line_failure(&format!("{args:?}"), &outcome);
        }
    }
    // Help and version succeed.
    let (code, out, _) = run_bin(&["--help"], &[], None, d);
    assert_eq!(code, Some(0));
    assert!(out.contains("postd"), "{out}");
    let (code, out, _) = run_bin(&["--version"], &[], None, d);
    assert_eq!(code, Some(0));
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    // An environment variable with a bad value is a bad option too.
    let outcome = run_bin(
        &["--addr", "127.0.0.1:0", "--db", db],
        &[("POSTD_WORKERS", "0")],
        None,
        d,
    );
    assert_one_line_failure("POSTD_WORKERS=0", &outcome);
    // Backing up a database that does not exist.
    let target = dir.path().join("copy.db");
    let outcome = run_bin(
        &[
            "backup",
            target.to_str().unwrap(),
            "--db",
            "/nonexistent-dir/x.db",
        ],
        &[],
        None,
        d,
    );
    assert_one_line_failure("backup of a missing database", &outcome);
}

#[test]
fn cli_purge_against_a_live_server() {
    let s = Server::start();
    let alice = s.register("alice");
    let keep = s.create_post(&alice, "Keep", "b");
    let kc = comment_ok(&s, &alice.token, id(&keep), "kept comment");
    let mut doomed = Vec::new();
    for i in 0..2 {
        let p = s.create_post(&alice, &format!("Doomed {i}"), "b");
        comment_ok(&s, &alice.token, id(&p), "c1");
        comment_ok(&s, &alice.token, id(&p), "c2");
        assert_204(&s.call(
            "DELETE",
            &format!("/posts/{}", id(&p)),
            Some(&alice.token),
            None,
        ));
        doomed.push(id(&p));
    }
    std::thread::sleep(Duration::from_millis(20));

    // Nothing is old enough for 30d.
    let out = s.cli_ok(&["purge", "--older-than", "30d"], &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .any(|w| w == "0"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 3);

    // Dry run: counts, changes nothing.
    let out = s.cli_ok(&["purge", "--older-than", "0s", "--dry-run"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.split_whitespace().any(|w| w == "2"),
        "dry run should report 2: {stdout:?}"
    );
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 3);
    assert_eq!(s.sql_count("SELECT count(*) FROM comments"), 5);

    let out = s.cli_ok(&["purge", "--older-than", "0s"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.split_whitespace().any(|w| w == "2"),
        "purge should report 2: {stdout:?}"
    );
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 1);
    assert_eq!(s.sql_count("SELECT count(*) FROM comments"), 1);
    let root = s.admin("root");
    for pid in doomed {
        s.call(
            "POST",
            &format!("/posts/{pid}/restore"),
            Some(&root.token),
            None,
        )
        .expect(404);
    }
    // The live server carries on.
    assert!(s.get("/trash", Some(&alice.token)).json()["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        s.collect_pages(&format!("/posts/{}/comments", id(&keep)), None),
        vec![kc]
    );
    s.create_post(&alice, "After purge", "b");
    s.get("/healthz", None).expect(200);
}

#[test]
fn cli_backup_of_a_live_server() {
    let s = Server::start();
    let alice = s.register("alice");
    for i in 0..20 {
        let p = s.create_post(&alice, &format!("Backed up {i}"), "body");
        comment_ok(&s, &alice.token, id(&p), "c");
    }
    let target = s.dir.path().join("backup.db");
    let target_str = target.to_str().unwrap().to_string();

    // While the server keeps writing.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let writes = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 200 {
                post_ok(
                    &s,
                    &alice.token,
                    json!({"title": format!("During {n}"), "body": ""}),
                );
                n += 1;
            }
            n
        });
        let out = s.cli(&["backup", &target_str], &[]);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(
            out.status.success(),
            "backup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        writer.join().unwrap()
    });
    let conn = rusqlite::Connection::open(&target).expect("the backup opens");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let in_backup: i64 = conn
        .query_row("SELECT count(*) FROM posts", [], |r| r.get(0))
        .unwrap();
    assert!(
        (20..=20 + writes as i64).contains(&in_backup),
        "{in_backup} posts in the backup, {writes} written during"
    );
    let fk: Vec<(String,)> = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |r| Ok((r.get::<_, String>(0)?,)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(fk.is_empty(), "{fk:?}");
    drop(conn);

    // Quiet server: the copy has exactly the same count.
    let quiet = s.dir.path().join("quiet.db");
    s.cli_ok(&["backup", quiet.to_str().unwrap()], &[]);
    let conn = rusqlite::Connection::open(&quiet).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM posts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, s.sql_count("SELECT count(*) FROM posts"));
    let c: i64 = conn
        .query_row("SELECT count(*) FROM comments", [], |r| r.get(0))
        .unwrap();
    assert_eq!(c, 20);
    // A server started on the copy serves the same posts.
    drop(conn);
    let copy_dir = TempDir::new("restore");
    let copy_db = copy_dir.path().join("postd.db");
    std::fs::copy(&quiet, &copy_db).unwrap();
    let (code, _, err) = run_bin(
        &["user", "add", "checker", "--db", copy_db.to_str().unwrap()],
        &[("POSTD_PASSWORD", PASSWORD)],
        None,
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "{err}");
    let conn = rusqlite::Connection::open(&copy_db).unwrap();
    let users: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 2);
    s.get("/healthz", None).expect(200);
}

#[test]
fn failed_logins_are_throttled_per_username_with_retry_after() {
    let s = Server::start();
    s.register("victim");
    s.register("bystander");
    let attempt = |name: &str, password: &str| {
        s.call(
            "POST",
            "/auth/login",
            None,
            Some(&json!({"username": name, "password": password})),
        )
    };
    for _ in 0..10 {
        attempt("victim", "wrong-password").expect(401);
    }
    // Now refused, even with the right password, and told when to come back.
    let blocked = attempt("VICTIM", PASSWORD);
    blocked.expect(429);
    let retry: u64 = blocked.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Another account is not affected.
    attempt("bystander", PASSWORD).expect(200);
}
