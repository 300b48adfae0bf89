//! `/auth/*` and the bearer-token check every protected handler starts with.

use super::call::{json, Call};
use super::input::read_json_body;
use super::problem::ApiError;
use super::routes::Need;
use crate::auth::{api_token_hash, hash_password, verify_password, API_TOKEN_PREFIX};
use crate::clock::Timestamp;
use crate::model::{Actor, Password, Role, Scope, Scopes, User, Username};
use crate::net::throttle_unit;
use rouille::Response;
use std::time::Duration;

/// Who is asking: the user behind the bearer token, and what the token may do.
pub struct Caller {
    pub user: User,
    /// An API token's scopes; `None` for a login token, which may do what its user may.
    pub scopes: Option<Scopes>,
}

/// The caller behind the request's bearer token — a login token (a JWT) or an API token —
/// read from the database now: a role change, a removed user, a revoked token take effect
/// on the very next request. An API token must have the scope the route needs
/// (routes::NEEDS): 403 naming it otherwise.
pub fn authenticate(call: &Call<'_>) -> Result<Caller, ApiError> {
    let header = call.request.header("Authorization").ok_or_else(|| {
        ApiError::unauthorized("this endpoint needs an Authorization: Bearer token")
    })?;
    let token = match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Err(ApiError::unauthorized(
                "the Authorization header must be 'Bearer <token>'",
            ))
        }
    };
    if token.starts_with(API_TOKEN_PREFIX) {
        return api_token(call, token);
    }
    let user_id = call
        .app
        .keys
        .verify(token)
        .ok_or_else(|| ApiError::unauthorized("the token is invalid or has expired"))?;
    let user = call
        .app
        .store
        .user(user_id)?
        .ok_or_else(|| ApiError::unauthorized("the token's user no longer exists"))?;
    call.note_user(user.id);
    Ok(Caller { user, scopes: None })
}

fn api_token(call: &Call<'_>, token: &str) -> Result<Caller, ApiError> {
    let unknown = || ApiError::unauthorized("the token is unknown, revoked or expired");
    let grant = call
        .app
        .store
        .token_grant(&api_token_hash(token))?
        .ok_or_else(unknown)?;
    if grant
        .expires_at
        .as_ref()
        .is_some_and(|until| *until <= Timestamp::now())
    {
        return Err(unknown());
    }
    call.note_user(grant.user.id);
    match call.need.get() {
        Need::LoginToken => return Err(ApiError::forbidden(
            "API tokens are managed with a login token (POST /auth/login), not another API token",
        )),
        Need::Scope(scope) if !grant.scopes.allow(scope) => {
            return Err(ApiError::forbidden(format!(
                "this token lacks the scope {} (it has {})",
                scope.as_str(),
                grant.scopes.joined()
            )))
        }
        _ => {}
    }
    Ok(Caller {
        user: grant.user,
        scopes: Some(grant.scopes),
    })
}

impl Caller {
    /// The role the request acts with: an admin's API token without the scope `admin` acts
    /// as an ordinary user (its own posts only), since `admin` is what stands for "what the
    /// admin's login token can do".
    pub fn acting_role(&self) -> Role {
        match &self.scopes {
            Some(scopes) if !scopes.contains(Scope::Admin) => Role::User,
            _ => self.user.role,
        }
    }
}

pub fn actor(call: &Call<'_>) -> Result<Actor, ApiError> {
    let caller = authenticate(call)?;
    Ok(Actor {
        user_id: caller.user.id,
        role: caller.acting_role(),
    })
}

/// For admin-only endpoints: 403 straight after authentication, before any lookup.
pub fn admin(call: &Call<'_>) -> Result<Actor, ApiError> {
    let actor = actor(call)?;
    if !actor.is_admin() {
        return Err(ApiError::forbidden("this endpoint is for admins only"));
    }
    Ok(actor)
}

struct Credentials {
    username: Username,
    password: Password,
}

/// The largest body `/auth/login` and `/auth/register` read: credentials need well under
/// 1 KiB, and `--max-body` (16 MiB by default) is for bulk requests.
pub const CREDENTIALS_MAX_BODY: usize = 64 * 1024;

/// `{username, password}`, both checked against their rules before anything else looks at
/// them: a long username costs a length count and is remembered nowhere.
fn read_credentials(call: &Call<'_>) -> Result<Credentials, ApiError> {
    let body = read_json_body(call.request, CREDENTIALS_MAX_BODY.min(call.app.max_body))?;
    let mut fields = crate::json::object_in(&body, &["username", "password"])?;
    let username = fields.required_string("username");
    let password = fields.required_string("password");
    let username = fields.parsed("username", username, Username::parse);
    let password = fields.parsed("password", password, Password::parse);
    let errors = fields.finish();
    match (username, password) {
        (Some(username), Some(password)) if errors.is_empty() => {
            Ok(Credentials { username, password })
        }
        _ => Err(ApiError::invalid(errors)),
    }
}

fn too_many(detail: &str, wait: Duration) -> ApiError {
    ApiError::new(429, detail).with_header("Retry-After", wait.as_secs().max(1).to_string())
}

fn hashing_failed(err: String) -> ApiError {
    log::error!("{err}");
    ApiError::internal()
}

pub fn register(call: &Call<'_>) -> Result<Response, ApiError> {
    if !call.app.signup_open {
        return Err(ApiError::forbidden("signup is closed on this server"));
    }
    let credentials = read_credentials(call)?;
    // Counted once the request is valid, just before the hash it would cost.
    call.app
        .register_throttle
        .count(throttle_unit(call.client()))
        .map_err(|wait| too_many("too many sign-ups from this address; try again later", wait))?;
    let hash = hash_password(credentials.password.expose()).map_err(hashing_failed)?;
    let user = call
        .app
        .store
        .create_user(&credentials.username, &hash, Role::User)?;
    json(201, &user)
}

#[derive(serde::Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

pub fn login(call: &Call<'_>) -> Result<Response, ApiError> {
    let credentials = read_credentials(call)?;
    let attempt = call
        .app
        .login_throttle
        .begin(credentials.username.as_str(), throttle_unit(call.client()))
        .map_err(|wait| too_many("too many failed logins; try again later", wait))?;
    let found = call.app.store.credentials(&credentials.username)?;
    // Unknown user and wrong password: same hashing work, same answer.
    let stored_hash = found.as_ref().map(|(_, hash)| hash.as_str());
    let verified = verify_password(credentials.password.expose(), stored_hash);
    let user = match found {
        Some((user, _)) if verified => user,
        _ => {
            attempt.failed();
            return Err(ApiError::unauthorized("invalid username or password"));
        }
    };
    attempt.succeeded();
    let access_token = call.app.keys.issue(user.id).map_err(hashing_failed)?;
    json(
        200,
        &TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: call.app.keys.ttl_secs(),
        },
    )
}

pub fn me(call: &Call<'_>) -> Result<Response, ApiError> {
    json(200, &authenticate(call)?.user)
}
