//! `/healthz` and `/openapi.json`.

use super::call::{json, json_bytes, Call};
use super::problem::ApiError;
use rouille::Response;

/// The checked-in OpenAPI document, served as is; a test keeps it equal to the routes.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub fn healthz(call: &Call<'_>) -> Result<Response, ApiError> {
    match call.app.store.ping() {
        Ok(()) => json(200, &serde_json::json!({"status": "ok"})),
        Err(err) => {
            log::error!("health check failed: {err}");
            Err(ApiError::new(503, "the database does not answer"))
        }
    }
}

pub fn openapi() -> Response {
    json_bytes(200, OPENAPI.as_bytes().to_vec())
}
