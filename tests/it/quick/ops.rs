//! `GET /healthz` and `GET /openapi.json`.

use crate::support::*;
use serde_json::json;

#[test]
fn healthz_and_openapi() {
    let s = TestApp::new();
    let r = s.get("/healthz", None);
    r.expect(200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.json()["status"], "ok");
    if !s.on_cluster() {
        assert_eq!(r.json(), json!({"status": "ok"}));
    }
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
    let s = TestApp::new();
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
