//! Request bodies (API.md "General rules"): malformed JSON is 400, a wrong media type 415, a
//! body over `--max-body` 413, a malformed `Idempotency-Key` 400. What the transport does
//! with a body it will not read is `heavy::input`.

use crate::support::*;
use serde_json::json;

#[test]
fn malformed_bodies_are_400_and_media_types_415() {
    let s = TestApp::new();
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
        let r = s.post_bytes("/posts", t, j, body);
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
        let r = s.post_bytes("/posts", t, j, body.as_bytes());
        assert!(
            r.status == 400 || r.status == 422,
            "deep nesting: {} {}",
            r.status,
            r.text()
        );
        r.expect(r.status);
    }
    // Empty body where one is required.
    s.post_bytes("/posts", t, j, b"").expect(400);
    s.post_bytes("/auth/register", None, j, b"").expect(400);
    s.post_bytes("/auth/login", None, j, b"{").expect(400);
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
    s.post_bytes(&format!("/posts/{pid}/comments"), t, j, b"{\"body\":")
        .expect(400);

    // 415: no or wrong Content-Type.
    let ok_body = br#"{"title":"t","body":"b"}"#;
    s.post_bytes("/posts", t, None, ok_body).expect(415);
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "text/json",
        "multipart/form-data; boundary=x",
    ] {
        let r = s.post_bytes("/posts", t, Some(ct), ok_body);
        assert_eq!(r.status, 415, "{ct}: {}", r.text());
        r.expect(415);
    }
    s.post_bytes(
        "/auth/register",
        None,
        Some("text/plain"),
        br#"{"username":"bob","password":"12345678"}"#,
    )
    .expect(415);
    s.post_bytes(
        &format!("/posts/{pid}/comments"),
        t,
        Some("text/plain"),
        br#"{"body":"c"}"#,
    )
    .expect(415);
    s.post_bytes("/posts", t, Some("Application/JSON"), ok_body)
        .expect(201);

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
    let s = TestApp::with_args(&["--max-body", "1024"]);
    let a = s.register("alice");
    let big = json!({"title": "t", "body": "x".repeat(2000)});
    s.post_json(&a.token, big.clone()).expect(413);
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
    s.post_bytes(
        "/posts",
        Some(&a.token),
        Some("application/json"),
        &at_limit(1024),
    )
    .expect(201);
    s.post_bytes(
        "/posts",
        Some(&a.token),
        Some("application/json"),
        &at_limit(1025),
    )
    .expect(413);

    // Authentication still comes first.
    assert_401(&s.call("POST", "/posts", None, Some(&big)));
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 1);
    assert_eq!(s.sql_count("SELECT count(*) FROM users"), 1);
}
