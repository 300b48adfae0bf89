//! `/auth/*` and the bearer-token check every protected handler starts with.

use super::input::{parse_object, read_json_body, Fields};
use super::problem::ApiError;
use super::{json, App};
use crate::auth::{hash_password, verify_password};
use crate::model::{check_password, check_username, Actor, Role, User};
use rouille::{Request, Response};

/// The user behind the request's bearer token, read from the database now: a role change
/// or a removed user takes effect on the very next request.
pub fn authenticate(app: &App, request: &Request) -> Result<User, ApiError> {
    let header = request.header("Authorization").ok_or_else(|| {
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
    let user_id = app
        .keys
        .verify(token)
        .ok_or_else(|| ApiError::unauthorized("the token is invalid or has expired"))?;
    let user = app
        .store
        .user(user_id)?
        .ok_or_else(|| ApiError::unauthorized("the token's user no longer exists"))?;
    super::access_log::note_user(user.id);
    Ok(user)
}

pub fn actor(app: &App, request: &Request) -> Result<Actor, ApiError> {
    let user = authenticate(app, request)?;
    Ok(Actor {
        user_id: user.id,
        role: user.role,
    })
}

/// For admin-only endpoints: 403 straight after authentication, before any lookup.
pub fn admin(app: &App, request: &Request) -> Result<Actor, ApiError> {
    let actor = actor(app, request)?;
    if !actor.is_admin() {
        return Err(ApiError::forbidden("this endpoint is for admins only"));
    }
    Ok(actor)
}

struct Credentials {
    username: String,
    password: String,
}

fn read_credentials(app: &App, request: &Request) -> Result<Credentials, ApiError> {
    let body = read_json_body(request, app.max_body)?;
    let mut fields = Fields::new(parse_object(&body)?);
    let username = fields.string("username", true);
    let password = fields.string("password", true);
    let errors = fields.finish();
    match (username, password) {
        (Some(username), Some(password)) if errors.is_empty() => {
            Ok(Credentials { username, password })
        }
        _ => Err(ApiError::invalid(errors)),
    }
}

pub fn register(app: &App, request: &Request) -> Result<Response, ApiError> {
    if !app.signup_open {
        return Err(ApiError::forbidden("signup is closed on this server"));
    }
    let credentials = read_credentials(app, request)?;
    let mut errors = Vec::new();
    if let Err(message) = check_username(&credentials.username) {
        errors.push(crate::model::ItemError::field("username", message));
    }
    if let Err(message) = check_password(&credentials.password) {
        errors.push(crate::model::ItemError::field("password", message));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let hash = hash_password(&credentials.password).map_err(|err| {
        eprintln!("postd: {err}");
        ApiError::internal()
    })?;
    let user = app
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

pub fn login(app: &App, request: &Request) -> Result<Response, ApiError> {
    let credentials = read_credentials(app, request)?;
    let address = Some(request.remote_addr().ip());
    if let Some(wait) = app
        .login_throttle
        .blocked_for(&credentials.username, address)
    {
        return Err(
            ApiError::new(429, "too many failed logins; try again later")
                .with_header("Retry-After", wait.as_secs().max(1).to_string()),
        );
    }
    let found = app.store.credentials(&credentials.username)?;
    // Unknown user and wrong password: same hashing work, same answer.
    let stored_hash = found.as_ref().map(|(_, hash)| hash.as_str());
    let verified = verify_password(&credentials.password, stored_hash);
    let user = match found {
        Some((user, _)) if verified => user,
        _ => {
            app.login_throttle
                .record_failure(&credentials.username, address);
            return Err(ApiError::unauthorized("invalid username or password"));
        }
    };
    app.login_throttle.record_success(&credentials.username);
    let access_token = app.keys.issue(user.id).map_err(|err| {
        eprintln!("postd: {err}");
        ApiError::internal()
    })?;
    json(
        200,
        &TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: app.keys.ttl_secs(),
        },
    )
}

pub fn me(app: &App, request: &Request) -> Result<Response, ApiError> {
    json(200, &authenticate(app, request)?)
}
