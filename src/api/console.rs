//! `GET /admin` and its assets: the operator's console, one page embedded in the binary
//! (src/admin/). It is a client of the JSON API like any other, signing in through
//! `/auth/login`; serving it needs no authentication, since it holds no data.

use super::call::Headers;
use super::problem::ApiError;
use rouille::{Response, ResponseBody};

/// No inline script or style, nothing from elsewhere, no framing, and forms post only here.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const PAGE: &str = include_str!("../admin/index.html");

/// The files under `/admin/`: name, media type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../admin/admin.js"),
    ),
    (
        "admin.css",
        "text/css; charset=utf-8",
        include_str!("../admin/admin.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../admin/icon.svg"),
    ),
];

/// Whether `/admin/{name}` is one of the console's files.
pub fn is_asset(name: &str) -> bool {
    ASSETS.iter().any(|(asset, _, _)| *asset == name)
}

fn file(media_type: &'static str, content: &'static str) -> Response {
    let headers: Headers = vec![
        ("Content-Type".into(), media_type.into()),
        (
            "Content-Security-Policy".into(),
            CONTENT_SECURITY_POLICY.into(),
        ),
        // The files change with the binary and carry no version in their names: a browser
        // asks again each time rather than run an old script against a new server.
        ("Cache-Control".into(), "no-cache".into()),
        ("Referrer-Policy".into(), "no-referrer".into()),
        ("X-Frame-Options".into(), "DENY".into()),
    ];
    Response {
        status_code: 200,
        headers,
        data: ResponseBody::from_data(content.as_bytes()),
        upgrade: None,
    }
}

pub fn page() -> Response {
    file("text/html; charset=utf-8", PAGE)
}

/// One of the console's files (the router sends only names for which `is_asset` holds).
pub fn asset(name: &str) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name)
        .map(|(_, media_type, content)| file(media_type, content))
        .ok_or_else(|| ApiError::not_found("no resource at this path"))
}
