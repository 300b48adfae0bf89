//! Metrics against the binary (API.md v1.1): counters that move by exactly the requests
//! sent, read through the `--metrics-addr` listener, which serves only metrics; what the
//! process adds to a scrape on the main port. The token rules of the main port are
//! `quick::metrics`.

use crate::support::prometheus::{moved, parse, requests, Series};
use crate::support::*;
use postd_testkit::{client, http};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

const TOKEN: &str = "metrics-token-for-tests-0123";

/// The `--metrics-addr` listener's address, from the start-up line.
fn listener_addr(s: &Server) -> SocketAddr {
    s.banner()
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no metrics listener in {:?}", s.banner()))
}

fn request_to(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut all = vec![("Connection", "close")];
    all.extend_from_slice(headers);
    let answer = client::send_until_close(
        addr,
        &http::request(method, path, addr, &all, None),
        Duration::from_secs(60),
    )
    .expect("connect");
    Response::parse(&answer).expect("an HTTP answer")
}

fn scrape_listener(s: &Server) -> Series {
    let r = request_to(listener_addr(s), "GET", "/metrics", &[]);
    r.expect(200);
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse(&r.text())
}

#[test]
fn counters_move_by_exactly_the_requests_sent() {
    if skip_heavy() {
        return;
    }
    let s = Server::start_with(
        &[("POSTD_METRICS_TOKEN", TOKEN)],
        &["--metrics-addr", "127.0.0.1:0"],
    );
    let alice = s.register("alice");
    let admin = s.admin("root");
    let kept = s.create_post(&alice, "kept", "b")["id"].as_i64().unwrap();
    let before = scrape_listener(&s);
    // The listener's own scrapes are not the API's traffic: they count nothing.
    assert_eq!(
        moved(&before, &scrape_listener(&s), "postd_http_requests_total"),
        BTreeMap::new()
    );

    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    let mut expect = |route: &str, method: &str, status: u16| {
        *expected.entry(requests(route, method, status)).or_default() += 1.0;
    };
    for _ in 0..3 {
        s.get("/posts", None).expect(200);
        expect("/posts", "GET", 200);
    }
    for _ in 0..2 {
        s.get("/posts/999999", None).expect(404);
        expect("/posts/{id}", "GET", 404);
    }
    s.get("/nope", None).expect(404);
    s.get("/posts/abc", None).expect(404);
    expect("unmatched", "GET", 404);
    expect("unmatched", "GET", 404);
    s.request("PUT", "/posts", &[], None).expect(405);
    expect("/posts", "PUT", 405);
    s.request("FROB", "/posts", &[], None).expect(405);
    expect("/posts", "other", 405);
    assert_eq!(s.request("OPTIONS", "/trash", &[], None).status, 204);
    expect("/trash", "OPTIONS", 204);
    assert_eq!(s.request("HEAD", "/healthz", &[], None).status, 200);
    expect("/healthz", "HEAD", 200);
    s.call(
        "POST",
        "/posts",
        Some(&alice.token),
        Some(&json!({"title": "one", "body": ""})),
    )
    .expect(201);
    expect("/posts", "POST", 201);
    let created = s.call(
        "POST",
        "/posts/bulk",
        Some(&alice.token),
        Some(&json!({"items": [{"title": "a", "body": ""}, {"title": "b", "body": ""}, {"title": "c", "body": ""}]})),
    );
    created.expect(201);
    expect("/posts/bulk", "POST", 201);
    let bulk_ids: Vec<i64> = created.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    let r = s.call(
        "POST",
        "/posts/bulk/delete",
        Some(&admin.token),
        Some(&json!({"post_ids": [bulk_ids[0], bulk_ids[1], 999_999]})),
    );
    assert_eq!(r.status, 204);
    expect("/posts/bulk/delete", "POST", 204);
    s.call(
        "PATCH",
        "/posts/bulk",
        Some(&alice.token),
        Some(&json!({"items": [{"id": kept, "body": "x"}]})),
    )
    .expect(200);
    expect("/posts/bulk", "PATCH", 200);
    s.call(
        "POST",
        "/posts/bulk/restore",
        Some(&admin.token),
        Some(&json!({"post_ids": [bulk_ids[0]]})),
    )
    .expect(200);
    expect("/posts/bulk/restore", "POST", 200);
    let r = s.call(
        "DELETE",
        "/posts/bulk",
        Some(&admin.token),
        Some(&json!({"post_ids": [bulk_ids[2]], "hard_delete": true})),
    );
    assert_eq!(r.status, 204);
    expect("/posts/bulk", "DELETE", 204);
    // A refused bulk request changes nothing, so it counts no items.
    s.call(
        "POST",
        "/posts/bulk/restore",
        Some(&admin.token),
        Some(&json!({"post_ids": [kept]})),
    )
    .expect(400);
    expect("/posts/bulk/restore", "POST", 400);

    let after = scrape_listener(&s);
    assert_eq!(
        moved(&before, &after, "postd_http_requests_total"),
        expected
    );

    // Each route's duration histogram counted exactly its requests.
    let mut per_route: BTreeMap<String, f64> = BTreeMap::new();
    for (series, n) in &expected {
        let route = series
            .split("route=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap();
        *per_route
            .entry(format!(
                "postd_http_request_duration_seconds_count{{route=\"{route}\"}}"
            ))
            .or_default() += n;
    }
    assert_eq!(
        moved(&before, &after, "postd_http_request_duration_seconds_count"),
        per_route
    );

    let bulk = moved(&before, &after, "postd_bulk_items_total");
    let items = |op: &str| {
        bulk.get(&format!("postd_bulk_items_total{{op=\"{op}\"}}"))
            .copied()
    };
    assert_eq!(
        (
            items("create"),
            items("delete"),
            items("update"),
            items("restore"),
            items("delete_permanent")
        ),
        (Some(3.0), Some(2.0), Some(1.0), Some(1.0), Some(1.0)),
        "{bulk:?}"
    );
    // Seven writes: POST /posts, the five successful bulk requests, and the refused restore
    // (it took the writer too, and rolled back).
    let waits = "postd_writer_wait_seconds_count{}";
    assert_eq!(after[waits] - before[waits], 7.0);
    // Six of them committed (one sync each, here one at a time); the refused one did not.
    let commits = "postd_commits_total{}";
    assert_eq!(after[commits] - before[commits], 6.0);

    // The gauges say what the database holds now.
    assert_eq!(
        after["postd_posts{state=\"active\"}"],
        s.sql_count("SELECT count(*) FROM posts WHERE deleted_at IS NULL") as f64
    );
    assert_eq!(after["postd_posts{state=\"trashed\"}"], 1.0);
    assert!(after["postd_db_size_bytes{}"] > 0.0);
    let build = format!(
        "postd_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(after.get(&build), Some(&1.0), "{after:?}");
}

/// What the process adds to `quick::metrics::the_main_port_serves_metrics_only_to_the_token`:
/// a token alone starts no listener, and the transport sends no body after HEAD.
#[test]
fn a_token_alone_starts_no_listener_and_a_head_scrape_has_no_body() {
    if skip_heavy() {
        return;
    }
    let s = Server::start_with(&[("POSTD_METRICS_TOKEN", TOKEN)], &[]);
    assert!(!s.banner().contains("metrics on"), "{}", s.banner());
    let right = format!("Bearer {TOKEN}");
    let head = s.request("HEAD", "/metrics", &[("Authorization", &right)], None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[test]
fn the_metrics_listener_serves_only_metrics_and_nothing_is_served_when_off() {
    if skip_heavy() {
        return;
    }
    let s = Server::start_with(&[], &["--metrics-addr", "127.0.0.1:0"]);
    let addr = listener_addr(&s);
    assert_ne!(addr, s.addr);
    let r = request_to(addr, "HEAD", "/metrics", &[]);
    assert_eq!(r.status, 200);
    for (method, path) in [
        ("GET", "/posts"),
        ("POST", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/"),
    ] {
        request_to(addr, method, path, &[]).expect(404);
    }
    // Without POSTD_METRICS_TOKEN the main port has no /metrics, token or not.
    s.request(
        "GET",
        "/metrics",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        None,
    )
    .expect(404);

    let off = Server::start();
    assert!(!off.banner().contains("metrics"), "{}", off.banner());
    off.get("/metrics", None).expect(404);
}
