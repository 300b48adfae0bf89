//! The HTTP edge: routing, authentication, input limits and problem+json. Handlers are
//! thin: parse and check input, call the store, shape the answer.

mod auth;
mod bulk;
mod comments;
pub mod input;
mod ops;
mod posts;
pub mod problem;
pub mod routes;

use crate::auth::TokenKeys;
use crate::config::ServeConfig;
use crate::store::Store;
use problem::ApiError;
use rouille::{Request, Response, ResponseBody};
use routes::Target;
use serde::Serialize;
use std::borrow::Cow;

/// What every handler may use. Built once at start and shared by all worker threads.
pub struct App {
    pub store: Store,
    pub keys: TokenKeys,
    pub signup_open: bool,
    pub max_body: usize,
    pub max_bulk: usize,
}

impl App {
    pub fn new(config: &ServeConfig, store: Store, keys: TokenKeys) -> App {
        App {
            store,
            keys,
            signup_open: config.signup_open,
            max_body: config.max_body,
            max_bulk: config.max_bulk,
        }
    }
}

/// Starts serving and blocks. Prints one start-up line once the socket is bound.
pub fn serve(config: &ServeConfig, app: App) -> Result<(), String> {
    let app = std::sync::Arc::new(app);
    let handler_app = app.clone();
    let server = rouille::Server::new(config.addr.as_str(), move |request| {
        handle(&handler_app, request)
    })
    .map_err(|err| format!("cannot listen on {}: {err}", config.addr))?
    .pool_size(config.workers);
    println!(
        "postd {} listening on http://{} (database {}, {} workers, signup {})",
        env!("CARGO_PKG_VERSION"),
        server.server_addr(),
        app.store.path().display(),
        config.workers,
        if config.signup_open { "open" } else { "closed" },
    );
    server.run();
    Ok(())
}

/// Answers one request. Every failure, a panic included, leaves here as problem+json;
/// a panicking handler's transaction has already rolled back while unwinding.
pub fn handle(app: &App, request: &Request) -> Response {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(app, request)));
    match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => err.into_response(),
        Err(_) => ApiError::internal().into_response(),
    }
}

fn dispatch(app: &App, request: &Request) -> Result<Response, ApiError> {
    let path = request.raw_url().split('?').next().unwrap_or_default();
    let Some((target, methods)) = routes::resolve(path) else {
        return Err(ApiError::not_found("no resource at this path"));
    };
    let method = request.method();
    if !methods.contains(&method) {
        return Err(
            ApiError::new(405, format!("{} is not allowed here", clip(method)))
                .with_header("Allow", methods.join(", ")),
        );
    }
    match (target, method) {
        (Target::Register, _) => auth::register(app, request),
        (Target::Login, _) => auth::login(app, request),
        (Target::Me, _) => auth::me(app, request),
        (Target::Posts, "GET") => posts::list(app, request),
        (Target::Posts, _) => posts::create(app, request),
        (Target::PostsBulk, "POST") => bulk::create(app, request),
        (Target::PostsBulk, "PATCH") => bulk::update(app, request),
        (Target::PostsBulk, _) => bulk::delete(app, request),
        (Target::PostsBulkRestore, _) => bulk::restore(app, request),
        (Target::PostBySlug(slug), _) => posts::get_by_slug(app, &slug),
        (Target::Post(id), "GET") => posts::get(app, id),
        (Target::Post(id), "PATCH") => posts::update(app, request, id),
        (Target::Post(id), _) => posts::delete(app, request, id),
        (Target::PostRestore(id), _) => posts::restore(app, request, id),
        (Target::PostComments(id), "GET") => comments::list(app, request, id),
        (Target::PostComments(id), _) => comments::create(app, request, id),
        (Target::Comment(id), _) => comments::delete(app, request, id),
        (Target::Trash, _) => posts::trash(app, request),
        (Target::Healthz, _) => ops::healthz(app),
        (Target::OpenApi, _) => Ok(ops::openapi()),
    }
}

fn clip(text: &str) -> &str {
    match text.char_indices().nth(32) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

type Headers = Vec<(Cow<'static, str>, Cow<'static, str>)>;

/// A JSON response from bytes already serialized.
pub fn json_bytes(status: u16, bytes: Vec<u8>) -> Response {
    let headers: Headers = vec![("Content-Type".into(), "application/json".into())];
    Response {
        status_code: status,
        headers,
        data: ResponseBody::from_data(bytes),
        upgrade: None,
    }
}

pub fn to_json_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|err| {
        eprintln!("postd: response serialization failed: {err}");
        ApiError::internal()
    })
}

pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Result<Response, ApiError> {
    Ok(json_bytes(status, to_json_bytes(value)?))
}

/// 204: no body and no Content-Type.
pub fn no_content() -> Response {
    Response {
        status_code: 204,
        headers: Vec::new(),
        data: ResponseBody::empty(),
        upgrade: None,
    }
}

#[derive(Serialize)]
pub struct Page<T: Serialize> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T: Serialize> Page<T> {
    /// `rows` holds up to `limit + 1` items; the extra one only says a next page exists,
    /// whose cursor `cursor_of` makes from the last item shown.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> String) -> Page<T> {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(cursor_of)
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}
