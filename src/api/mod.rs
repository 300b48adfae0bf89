//! The HTTP edge: routing, authentication, input limits and problem+json. Handlers are
//! thin: parse and check input, call the store, shape the answer.

mod admin;
mod auth;
mod bulk;
mod comments;
mod conditional;
mod console;
mod cors;
pub mod input;
mod metrics;
mod ops;
mod paging;
mod posts;
pub mod problem;
pub mod routes;
mod server;
mod throttle;

pub use server::serve;

use crate::auth::TokenKeys;
use crate::clock::Age;
use crate::config::ServeConfig;
use crate::net::{self, AllowedOrigins, Cidr};
use crate::store::Store;
use problem::ApiError;
use rouille::{Request, Response, ResponseBody};
use routes::{Route, Target};
use serde::Serialize;
use std::borrow::Cow;
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What every handler may use. Built once at start and shared by all worker threads.
pub struct App {
    /// Shared with the retention sweep (crate::retention).
    pub store: Arc<Store>,
    pub keys: TokenKeys,
    pub signup_open: bool,
    pub max_body: usize,
    pub max_bulk: usize,
    /// How long soft-deleted posts are kept (`--trash-retention`), for their `expires_at`.
    pub trash_retention: Option<Age>,
    trusted_proxies: Vec<Cidr>,
    /// Origins whose browser scripts may read the answers (`--cors-origins`).
    cors: Option<AllowedOrigins>,
    metrics: Arc<metrics::Metrics>,
    login_throttle: throttle::LoginThrottle,
    register_throttle: throttle::RegisterThrottle,
    /// Requests being handled now; shutdown waits for this to reach zero.
    in_flight: AtomicUsize,
    /// Set on SIGTERM/SIGINT: new requests get 503 while in-flight ones finish.
    draining: AtomicBool,
}

impl App {
    pub fn new(config: &ServeConfig, store: Store, keys: TokenKeys) -> App {
        let metrics = metrics::Metrics::new(config.metrics_token.as_deref());
        let waits = metrics.clone();
        store.observe_writer_waits(move |waited| waits.observe_writer_wait(waited));
        App {
            store: Arc::new(store),
            keys,
            signup_open: config.signup_open(),
            max_body: config.max_body,
            max_bulk: config.max_bulk,
            trash_retention: config.trash_retention.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            cors: config.cors_origins.clone(),
            metrics,
            login_throttle: throttle::LoginThrottle::default(),
            register_throttle: throttle::RegisterThrottle::new(config.register_limit),
            in_flight: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
        }
    }
}

/// One request being answered: the app, the request, and who the caller turned out to be
/// (authentication notes the user for the access log).
pub struct Call<'a> {
    pub app: &'a App,
    pub request: &'a Request,
    user_id: Cell<Option<i64>>,
    /// The route the path matched, once dispatch knows it (CORS, the metrics' labels).
    route: Cell<Option<Route>>,
}

impl<'a> Call<'a> {
    fn new(app: &'a App, request: &'a Request) -> Call<'a> {
        Call {
            app,
            request,
            user_id: Cell::new(None),
            route: Cell::new(None),
        }
    }

    pub fn route(&self) -> Option<Route> {
        self.route.get()
    }

    /// The path without the query string.
    pub fn path(&self) -> &'a str {
        let url = self.request.raw_url();
        url.split('?').next().unwrap_or(url)
    }

    /// The client's address: the peer, or what trusted proxies say it is.
    pub fn client(&self) -> IpAddr {
        let forwarded: Vec<&str> = self
            .request
            .headers()
            .filter(|(name, _)| name.eq_ignore_ascii_case("X-Forwarded-For"))
            .map(|(_, value)| value)
            .collect();
        net::client_address(
            self.request.remote_addr().ip(),
            &forwarded,
            &self.app.trusted_proxies,
        )
    }

    fn note_user(&self, user_id: i64) {
        self.user_id.set(Some(user_id));
    }
}

impl App {
    /// Counts a request as in flight for as long as the guard lives.
    fn count_in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(&self.in_flight)
    }
}

/// Counts a request as in flight for as long as it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

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
    app.metrics.observe(&call, response.status_code, started);
    log_request(&call, response, started)
}

fn log_request(call: &Call<'_>, mut response: Response, started: Instant) -> Response {
    if !log::log_enabled!(target: crate::logging::ACCESS, log::Level::Info) {
        return response;
    }
    let (reader, size) = response.data.into_reader_and_size();
    let bytes = size.unwrap_or(0);
    response.data = ResponseBody::from_reader_and_size(reader, bytes);
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
        (Target::PostComments(id), "GET") => comments::list(call, id),
        (Target::PostComments(id), _) => comments::create(call, id),
        (Target::Comment(id), _) => comments::delete(call, id),
        (Target::Trash, _) => posts::trash(call),
        (Target::Healthz, _) => ops::healthz(call),
        (Target::OpenApi, _) => Ok(ops::openapi()),
        (Target::AdminAudit, _) => admin::audit(call),
        (Target::AdminPurge, _) => admin::purge(call),
        (Target::Console, _) => Ok(console::page()),
        (Target::ConsoleAsset(name), _) => console::asset(&name),
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

pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Result<Response, ApiError> {
    Ok(json_bytes(status, serde_json::to_vec(value)?))
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
