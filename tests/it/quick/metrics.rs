//! `GET /metrics` on the main port (API.md v1.1, "Metrics"): served only to the metrics
//! token, counted like any route, and to everyone else the 404 of a path that does not
//! exist; a short token stops the start. The `--metrics-addr` listener, the counters
//! read through it and what the transport sends are `heavy::metrics`.

use crate::support::prometheus::{moved, parse, requests};
use crate::support::*;
use std::collections::BTreeMap;

const TOKEN: &str = "metrics-token-for-tests-0123";

#[test]
fn the_main_port_serves_metrics_only_to_the_token() {
    let s = TestApp::with_config(&[], |config| config.metrics_token = Some(TOKEN.into()));
    let right = format!("Bearer {TOKEN}");
    let lower = format!("bearer {TOKEN}");
    let wrong = format!("Bearer {TOKEN}x");
    let prefix = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let unknown = s.get("/nope", None);
    unknown.expect(404);

    let r = s.request("GET", "/metrics", &[("Authorization", &right)], None);
    r.expect(200);
    let first = parse(&r.text());
    let r = s.request("GET", "/metrics?x=1", &[("Authorization", &lower)], None);
    r.expect(200);
    let second = parse(&r.text());
    // The first scrape was counted, as route /metrics.
    assert_eq!(
        moved(&first, &second, "postd_http_requests_total"),
        BTreeMap::from([(requests("/metrics", "GET", 200), 1.0)])
    );
    let head = s.request("HEAD", "/metrics", &[("Authorization", &right)], None);
    assert_eq!(head.status, 200);

    // Everyone else gets exactly the 404 of a path that does not exist, whatever the method.
    let alice = s.register("alice");
    let user_token = format!("Bearer {}", alice.token);
    for (method, headers) in [
        ("GET", vec![]),
        ("GET", vec![("Authorization", wrong.as_str())]),
        ("GET", vec![("Authorization", prefix.as_str())]),
        ("GET", vec![("Authorization", TOKEN)]),
        ("GET", vec![("Authorization", user_token.as_str())]),
        ("POST", vec![("Authorization", right.as_str())]),
        ("OPTIONS", vec![("Authorization", right.as_str())]),
        ("DELETE", vec![]),
    ] {
        let r = s.request(method, "/metrics", &headers, None);
        r.expect(404);
        assert_eq!(r.json(), unknown.json(), "{method} {headers:?}");
        assert_eq!(r.header("Allow"), None);
    }
    // Refused scrapes count as unmatched requests, like any unknown path.
    let r = s.request("GET", "/metrics", &[("Authorization", &right)], None);
    let third = parse(&r.text());
    let refused = moved(&second, &third, &requests("unmatched", "GET", 404));
    assert_eq!(refused.values().sum::<f64>(), 5.0, "{refused:?}");
}

#[test]
fn a_short_metrics_token_stops_the_start_with_one_line() {
    let dir = TempDir::new("metrics-token");
    let out = cli(
        &dir.path().join("x.db"),
        &["serve", "--addr", "127.0.0.1:0"],
        &[("POSTD_METRICS_TOKEN", "short")],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("POSTD_METRICS_TOKEN"), "{stderr}");
}
