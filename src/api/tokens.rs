//! `/auth/tokens`: a user's own API tokens. Made with a login token only (an API token can
//! not make or revoke tokens); the token is in the answer once, and kept only as a hash.

use super::auth::authenticate;
use super::call::{json, no_content, Call};
use super::input::read_json_body;
use super::problem::ApiError;
use crate::auth::new_api_token;
use crate::clock::{Age, Timestamp};
use crate::model::{Scopes, TokenName};
use crate::store::TokenInfo;
use rouille::Response;

#[derive(serde::Serialize)]
struct Created<'a> {
    token: &'a str,
    #[serde(flatten)]
    info: &'a TokenInfo,
}

#[derive(serde::Serialize)]
struct TokenList {
    items: Vec<TokenInfo>,
}

/// `POST /auth/tokens {"name","scopes",["expires_in"]}` → 201 with the token, once.
/// `expires_in` is a DURATION (`90d`); without it the token lasts until revoked. The
/// scopes `admin` and `events:read` are for admins only (the feed shows every user's
/// changes).
pub fn create(call: &Call<'_>) -> Result<Response, ApiError> {
    let caller = authenticate(call)?;
    let body = read_json_body(call.request, call.app.max_body)?;
    let mut fields = crate::json::object_in(&body, &["name", "scopes", "expires_in"])?;
    let name = fields.required_string("name");
    let name = fields.parsed("name", name, TokenName::parse);
    let scopes = fields.required_string_list("scopes");
    let scopes =
        scopes.and_then(
            |names| match Scopes::parse_list(names.iter().map(String::as_str)) {
                Ok(scopes) => Some(scopes),
                Err(message) => {
                    fields.error("scopes", message);
                    None
                }
            },
        );
    let expires_in = fields.optional_string("expires_in");
    let expires_in = fields.parsed("expires_in", expires_in, |text| {
        text.parse::<Age>()
            .map_err(|_| "must be a DURATION such as 90d or 12h".to_string())
    });
    let errors = fields.finish();
    let (Some(name), Some(scopes)) = (name, scopes) else {
        return Err(ApiError::invalid(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    if let Some(refusal) = scopes.refused_for(caller.user.role) {
        return Err(ApiError::forbidden(refusal));
    }
    let (token, hash) = new_api_token();
    let now = Timestamp::now();
    let info = TokenInfo {
        name,
        scopes,
        expires_at: expires_in.map(|age| now.plus(age.duration())),
        created_at: now,
    };
    call.app
        .store
        .create_token(Some(caller.user.id), caller.user.id, &info, &hash)?;
    json(
        201,
        &Created {
            token: &token,
            info: &info,
        },
    )
    .map(|r| r.with_additional_header("Cache-Control", "no-store"))
}

/// `GET /auth/tokens`: the caller's tokens (names, scopes, dates; never a token).
pub fn list(call: &Call<'_>) -> Result<Response, ApiError> {
    let caller = authenticate(call)?;
    let items = call.app.store.tokens_of(caller.user.id)?;
    json(200, &TokenList { items })
}

/// `DELETE /auth/tokens/{name}`: revoked; the next request with it is a 401.
pub fn revoke(call: &Call<'_>, name: &str) -> Result<Response, ApiError> {
    let caller = authenticate(call)?;
    let name = TokenName::parse(name).map_err(|_| {
        ApiError::not_found(format!("no token named '{}'", crate::text::clip(name, 64)))
    })?;
    call.app
        .store
        .revoke_token(Some(caller.user.id), caller.user.id, &name)?;
    Ok(no_content())
}
