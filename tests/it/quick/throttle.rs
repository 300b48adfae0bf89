//! Login and sign-up throttles (API.md v1.1, "Login and registration"): failed logins per
//! username and per client address, counted even when they race; clients behind trusted
//! proxies counted apart; sign-ups per address.

use crate::support::*;
use serde_json::json;

#[test]
fn failed_logins_are_throttled_per_username_with_retry_after() {
    let s = TestApp::new();
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

#[test]
fn concurrent_bad_logins_each_count() {
    let server = TestApp::new();
    server.register("target");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                scope.spawn(|| {
                    server
                        .attempt_login("target", "not-the-password", &[])
                        .status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let refused = statuses.iter().filter(|s| **s == 429).count();
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    // Ten failures per username are allowed; the other ten are refused however the
    // requests interleave.
    assert_eq!((wrong, refused), (10, 10), "{statuses:?}");
    let limited = server.attempt_login("target", PASSWORD, &[]);
    limited.expect(429);
    assert!(limited.header("Retry-After").is_some());
    assert_eq!(limited.header("Cache-Control"), Some("no-store"));
}

/// Fails logins with 30 different usernames (the per-address limit) as `forwarded`.
fn exhaust_address(server: &TestApp, forwarded: &str) {
    for n in 0..30 {
        let answer = server.attempt_login(
            &format!("nobody{n}"),
            "wrong-password",
            &[("X-Forwarded-For", forwarded)],
        );
        answer.expect(401);
    }
}

#[test]
fn behind_trusted_proxies_each_client_is_throttled_on_its_own() {
    let proxied = TestApp::with_args(&["--trusted-proxies", "127.0.0.1/32,10.0.0.0/8"]);
    exhaust_address(&proxied, "203.0.113.5");
    let blocked = proxied.attempt_login(
        "someone",
        "wrong-password",
        &[("X-Forwarded-For", "203.0.113.5")],
    );
    blocked.expect(429);
    // Another client behind the same proxy is not locked out.
    proxied
        .attempt_login(
            "someone",
            "wrong-password",
            &[("X-Forwarded-For", "203.0.113.6")],
        )
        .expect(401);
    // What the client wrote itself (left of the proxies' entries) proves nothing.
    proxied
        .attempt_login(
            "someone",
            "wrong-password",
            &[("X-Forwarded-For", "203.0.113.6, 203.0.113.5, 10.1.2.3")],
        )
        .expect(429);
    // IPv6 clients are one unit per /64: rotating through it does not help.
    for n in 0..30 {
        let address = format!("2001:db8:7:1::{:x}", n + 1);
        proxied
            .attempt_login(
                &format!("v6user{n}"),
                "wrong-password",
                &[("X-Forwarded-For", &address)],
            )
            .expect(401);
    }
    proxied
        .attempt_login(
            "v6-user",
            "wrong-password",
            &[("X-Forwarded-For", "2001:db8:7:1:ffff::9")],
        )
        .expect(429);
    proxied
        .attempt_login(
            "v6-user",
            "wrong-password",
            &[("X-Forwarded-For", "2001:db8:7:2::1")],
        )
        .expect(401);

    // Without --trusted-proxies the header is ignored: the peer is the client.
    let direct = TestApp::new();
    exhaust_address(&direct, "203.0.113.5");
    direct
        .attempt_login(
            "someone",
            "wrong-password",
            &[("X-Forwarded-For", "198.51.100.1")],
        )
        .expect(429);
}

#[test]
fn sign_ups_are_throttled_per_client_address() {
    let server = TestApp::with_args(&["--register-limit", "3", "--trusted-proxies", "127.0.0.1"]);
    let register = |name: &str, from: &str| {
        let body =
            serde_json::to_vec(&json!({"username": name, "password": PASSWORD})).expect("json");
        server.post_json_bytes("/auth/register", &body, &[("X-Forwarded-For", from)])
    };
    for n in 0..3 {
        register(&format!("signup{n}"), "192.0.2.10").expect(201);
    }
    let refused = register("signup3", "192.0.2.10");
    refused.expect(429);
    let wait: u64 = refused
        .header("Retry-After")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!((1..=900).contains(&wait), "{wait}");
    // A rejected sign-up was not counted as a user; another address has its own quota.
    register("signup3", "192.0.2.11").expect(201);
    // Invalid sign-ups are refused before they are counted (they cost no hash).
    let other = "192.0.2.12";
    for _ in 0..5 {
        register("x", other).expect(422);
    }
    register("signup4", other).expect(201);
}
