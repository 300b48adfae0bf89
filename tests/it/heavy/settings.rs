//! Settings read from the environment, which only a process of its own can be given. The
//! in-process tests give the same settings as options (`quick::auth`, `quick::bulk`,
//! `quick::conventions`, `quick::throttle`).

use crate::support::*;
use serde_json::json;

#[test]
fn signup_closed_and_token_ttl_from_env() {
    if skip_heavy() {
        return;
    }
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
fn bulk_limit_cors_origins_and_sign_up_limit_from_env() {
    if skip_heavy() {
        return;
    }
    let s = Server::start_with(
        &[
            ("POSTD_MAX_BULK", "3"),
            ("POSTD_CORS_ORIGINS", "*"),
            ("POSTD_REGISTER_LIMIT", "2"),
        ],
        &[],
    );
    let alice = s.register("alice");
    s.register("bob");
    s.call(
        "POST",
        "/auth/register",
        None,
        Some(&json!({"username": "carol", "password": PASSWORD})),
    )
    .expect(429);
    let items = |n: usize| {
        json!((0..n)
            .map(|i| json!({"title": format!("t{i}"), "body": ""}))
            .collect::<Vec<_>>())
    };
    s.bulk_create(&alice, items(4)).expect(413);
    s.bulk_create(&alice, items(3)).expect(201);
    let r = s.request(
        "GET",
        "/posts",
        &[("Origin", "https://anything.example")],
        None,
    );
    r.expect(200);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
}
