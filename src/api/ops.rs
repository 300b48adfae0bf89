//! `/healthz` and `/openapi.json`.

use super::call::{json, json_bytes, Call};
use super::problem::ApiError;
use rouille::Response;

/// The checked-in OpenAPI document, served as is; a test keeps it equal to the routes.
pub const OPENAPI: &str = include_str!("../../openapi.json");

pub fn healthz(call: &Call<'_>) -> Result<Response, ApiError> {
    let unhealthy = |err: crate::store::StoreError| {
        log::error!("health check failed: {err}");
        ApiError::new(503, "the database does not answer").with_header("Retry-After", "1".into())
    };
    call.app.store.ping().map_err(unhealthy)?;
    let Some(status) = call.app.store.cluster_status().map_err(unhealthy)? else {
        return json(200, &serde_json::json!({"status": "ok"}));
    };
    // A node of the cluster says which it is and what it sees; an API server that runs
    // no node (`serve --cluster`) says what it sees.
    let (node_id, address) = match &call.app.node {
        Some((id, address)) => (Some(*id), Some(address.clone())),
        None => (None, None),
    };
    let role = node_id.and_then(|id| status.members.iter().find(|m| m.id == id).map(|m| m.role));
    let voters = status.members.iter().filter(|m| m.role == "voter").count();
    json(
        200,
        &serde_json::json!({
            "status": "ok",
            "cluster": {
                "node_id": node_id,
                "address": address,
                "role": role,
                "leader": status.leader.address,
                "voters": voters,
            }
        }),
    )
}

pub fn openapi() -> Response {
    json_bytes(200, OPENAPI.as_bytes().to_vec())
}
