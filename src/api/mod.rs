//! The HTTP edge: routing, authentication, input limits and problem+json. Handlers are
//! thin: parse and check input, call the store, shape the answer.

mod admin;
mod auth;
mod bulk;
mod call;
mod comments;
mod conditional;
mod console;
mod cors;
mod events;
mod filter;
mod idempotent;
pub mod input;
mod metrics;
mod ops;
mod paging;
mod posts;
pub mod problem;
pub mod routes;
mod server;
mod throttle;
mod tokens;

pub use call::App;
pub use server::serve;

use call::{no_content, Call};
use problem::ApiError;
use rouille::{Request, Response, ResponseBody};
use routes::Target;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Answers one request. Every failure, a panic included, leaves here as problem+json;
/// a panicking handler's transaction has already rolled back while unwinding.
pub fn handle(app: &App, request: &Request) -> Response {
    let started = Instant::now();
    // Count first, then look at `draining`: shutdown sets the flag and then waits for the
    // count, so a request is either refused here or waited for.
    let _in_flight = app.count_in_flight();
    let call = Call::new(app, request);
    let response = if app.draining.load(Ordering::SeqCst) {
        ApiError::new(503, "the server is shutting down; try again shortly")
            .with_header("Retry-After", "1".into())
            .with_header("Connection", "close".into())
            .into_response()
    } else {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(&call)));
        match outcome {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => err.into_response(),
            Err(_) => ApiError::internal().into_response(),
        }
    };
    // HTTP conventions (issue #12): CORS headers on every answer; every answer counted.
    let response = cors::decorate(&call, response);
    app.metrics.observe(
        call.route(),
        call.request.method(),
        response.status_code,
        started.elapsed(),
    );
    log_request(&call, response, started)
}

fn log_request(call: &Call<'_>, mut response: Response, started: Instant) -> Response {
    if !log::log_enabled!(target: crate::logging::ACCESS, log::Level::Info) {
        return response;
    }
    let (reader, size) = response.data.into_reader_and_size();
    // A stream's length is not known (and stays unknown, or it would be cut to 0 bytes):
    // its line says 0.
    let bytes = size.unwrap_or(0);
    response.data = match size {
        Some(size) => ResponseBody::from_reader_and_size(reader, size),
        None => ResponseBody::from_reader(reader),
    };
    log::info!(
        target: crate::logging::ACCESS,
        method = call.request.method(),
        path = crate::text::clip(call.path(), 512),
        status = response.status_code,
        bytes = bytes,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        user_id = call.user_id.get();
        ""
    );
    response
}

fn dispatch(call: &Call<'_>) -> Result<Response, ApiError> {
    if let Some(scrape) = metrics::on_main_port(call) {
        return Ok(scrape);
    }
    let Some((target, route)) = routes::resolve(call.path()) else {
        return Err(ApiError::not_found("no resource at this path"));
    };
    call.route.set(Some(route));
    let methods = route.methods;
    // HEAD is GET without the body (tiny_http leaves the body out for HEAD).
    let method = match call.request.method() {
        "HEAD" if methods.contains(&"GET") => "GET",
        other => other,
    };
    // A HEAD needs what its GET needs: its status alone can tell what the GET would.
    call.need.set(routes::need(route.template, method));
    // Every route answers OPTIONS, without authentication: a CORS preflight carries none.
    if method == "OPTIONS" {
        return Ok(no_content().with_additional_header("Allow", routes::allow_header(methods)));
    }
    if !methods.contains(&method) {
        return Err(ApiError::new(
            405,
            format!("{} is not allowed here", crate::text::clip(method, 32)),
        )
        .with_header("Allow", routes::allow_header(methods)));
    }
    match (target, method) {
        (Target::Register, _) => auth::register(call),
        // Neither a token nor a refusal may be kept by a cache on the way.
        (Target::Login, _) => Ok(auth::login(call)
            .unwrap_or_else(ApiError::into_response)
            .with_additional_header("Cache-Control", "no-store")),
        (Target::Me, _) => auth::me(call),
        (Target::Tokens, "GET") => tokens::list(call),
        (Target::Tokens, _) => tokens::create(call),
        (Target::Token(name), _) => tokens::revoke(call, &name),
        (Target::Events, _) => events::events(call),
        (Target::Posts, "GET") => posts::list(call),
        (Target::Posts, _) => posts::create(call),
        (Target::PostsBulk, "POST") => bulk::create(call),
        (Target::PostsBulk, "PATCH") => bulk::update(call),
        (Target::PostsBulk, _) | (Target::PostsBulkDelete, _) => bulk::delete(call),
        (Target::PostsBulkRestore, _) => bulk::restore(call),
        (Target::PostBySlug(slug), _) => posts::get_by_slug(call, &slug),
        (Target::Post(id), "GET") => posts::get(call, id),
        (Target::Post(id), "PATCH") => posts::update(call, id),
        (Target::Post(id), _) => posts::delete(call, id),
        (Target::PostRestore(id), _) => posts::restore(call, id),
        (Target::PostRevisions(id), _) => posts::revisions(call, id),
        (Target::PostRevert(id), _) => posts::revert(call, id),
        (Target::PostComments(id), "GET") => comments::list(call, id),
        (Target::PostComments(id), _) => comments::create(call, id),
        (Target::Comment(id), _) => comments::delete(call, id),
        (Target::Trash, _) => posts::trash(call),
        (Target::Healthz, _) => ops::healthz(call),
        (Target::OpenApi, _) => Ok(ops::openapi()),
        (Target::AdminAudit, _) => admin::audit(call),
        (Target::AdminPurge, _) => admin::purge(call),
        (Target::AdminUsers, _) => admin::users(call),
        (Target::AdminUser(id), _) => admin::erase_user(call, id),
        (Target::Console, _) => Ok(console::page()),
        (Target::ConsoleAsset(name), _) => console::asset(&name),
    }
}
