//! CORS: which browser scripts may read postd's answers (`--cors-origins`).
//!
//! Without the option postd sends no CORS header at all, and no `Vary: Origin` either:
//! its answers then never depend on `Origin`. With it, every answer says `Vary: Origin`
//! (a cache must not hand one origin's answer to another), and an answer to a listed
//! origin, errors included, carries `Access-Control-Allow-Origin`. Tokens travel in the
//! `Authorization` header, never in cookies, so credentials mode is not offered.

use super::call::Call;
use super::routes::allow_header;
use crate::net::AllowedOrigins;
use rouille::Response;

/// Request headers a browser script may send (answered to a preflight).
const ALLOW_HEADERS: &str =
    "Authorization, Content-Type, Idempotency-Key, If-Match, If-None-Match, Prefer";
/// Response headers a browser script may read beyond the CORS-safelisted ones.
const EXPOSE_HEADERS: &str = "Location, ETag, Link, Idempotent-Replayed, Retry-After";
/// Seconds a browser may keep a preflight's answer.
const MAX_AGE: &str = "600";

/// Adds the CORS headers `call` earns to its answer.
pub fn decorate(call: &Call<'_>, mut response: Response) -> Response {
    let Some(origins) = &call.app.cors else {
        return response;
    };
    response = response.with_additional_header("Vary", "Origin");
    let Some(origin) = call.request.header("Origin") else {
        return response;
    };
    if !origins.admits(origin) {
        return response;
    }
    let allowed = match origins {
        AllowedOrigins::Any => "*".to_owned(),
        AllowedOrigins::Listed(_) => origin.to_owned(),
    };
    response = response.with_additional_header("Access-Control-Allow-Origin", allowed);
    let preflight_of = call
        .route()
        .filter(|_| call.request.method() == "OPTIONS")
        .filter(|_| {
            call.request
                .header("Access-Control-Request-Method")
                .is_some()
        });
    match preflight_of {
        Some(route) => response
            .with_additional_header("Access-Control-Allow-Methods", allow_header(route.methods))
            .with_additional_header("Access-Control-Allow-Headers", ALLOW_HEADERS)
            .with_additional_header("Access-Control-Max-Age", MAX_AGE),
        None => response.with_additional_header("Access-Control-Expose-Headers", EXPOSE_HEADERS),
    }
}
