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
mod throttle;

/// A post's fields checked by `POST /posts`'s rules, for other ways in (`postd import`).
pub use posts::new_post_from;

use crate::auth::TokenKeys;
use crate::config::ServeConfig;
use crate::net::{self, Cidr};
use crate::store::Store;
use problem::ApiError;
use rouille::{Request, Response, ResponseBody};
use routes::Target;
use serde::Serialize;
use std::borrow::Cow;
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What every handler may use. Built once at start and shared by all worker threads.
pub struct App {
    pub store: Store,
    pub keys: TokenKeys,
    pub signup_open: bool,
    pub max_body: usize,
    pub max_bulk: usize,
    trusted_proxies: Vec<Cidr>,
    login_throttle: throttle::LoginThrottle,
    register_throttle: throttle::RegisterThrottle,
    /// Requests being handled now; shutdown waits for this to reach zero.
    in_flight: AtomicUsize,
    /// Set on SIGTERM/SIGINT: new requests get 503 while in-flight ones finish.
    draining: AtomicBool,
}

impl App {
    pub fn new(config: &ServeConfig, store: Store, keys: TokenKeys) -> App {
        App {
            store,
            keys,
            signup_open: config.signup_open(),
            max_body: config.max_body,
            max_bulk: config.max_bulk,
            trusted_proxies: config.trusted_proxies.clone(),
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
}

impl<'a> Call<'a> {
    fn new(app: &'a App, request: &'a Request) -> Call<'a> {
        Call {
            app,
            request,
            user_id: Cell::new(None),
        }
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

/// Starts serving and blocks until SIGTERM or SIGINT, then shuts down gracefully: new
/// requests are answered 503, in-flight ones get up to `shutdown_grace` to finish, the
/// WAL is checkpointed into the database file, and the function returns.
pub fn serve(config: &ServeConfig, app: App) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| format!("cannot handle signals: {e}"))?;
    }
    // Bodies up to our limit are read on the connection's own thread before a worker sees
    // the request (vendor/README.md); larger ones are refused unread. rouille builds its
    // tiny_http server itself, from these defaults.
    let nosniff = "X-Content-Type-Options: nosniff"
        .parse()
        .map_err(|()| "invalid default header".to_string())?;
    tiny_http::settings::set_default(tiny_http::Settings {
        server_name: format!("postd/{}", env!("CARGO_PKG_VERSION")),
        default_headers: vec![nosniff],
        max_connections: config.max_connections,
        body_limit: config.max_body,
        read_ahead_budget: config.read_ahead_budget,
    });
    let app = Arc::new(app);
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
        if config.signup_open() {
            "open"
        } else {
            "closed"
        },
    );
    app.store.warn_if_readable_by_others();
    while !stop.load(Ordering::SeqCst) {
        server.poll_timeout(Duration::from_millis(100));
    }

    app.draining.store(true, Ordering::SeqCst);
    log::info!(
        "shutting down; waiting up to {}s for requests in flight",
        config.shutdown_grace.as_secs()
    );
    let deadline = Instant::now() + config.shutdown_grace;
    while app.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        // Keep taking requests so late arrivals get a clear 503 rather than a reset.
        server.poll_timeout(Duration::from_millis(10));
    }
    let unfinished = app.in_flight.load(Ordering::SeqCst);
    if unfinished == 0 {
        // Handlers are done; let the workers finish writing their responses.
        server.join();
    }
    drop(server);
    match app.store.checkpoint() {
        Ok(()) => log::info!("stopped cleanly"),
        Err(err) => log::error!("stopped; WAL checkpoint failed: {err}"),
    }
    if unfinished > 0 {
        return Err(format!(
            "{unfinished} requests were still running after the grace period"
        ));
    }
    Ok(())
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
    app.in_flight.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight(&app.in_flight);
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
        path = input::clip(call.path(), 512),
        status = response.status_code,
        bytes = bytes,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        user_id = call.user_id.get();
        ""
    );
    response
}

fn dispatch(call: &Call<'_>) -> Result<Response, ApiError> {
    let Some((target, methods)) = routes::resolve(call.path()) else {
        return Err(ApiError::not_found("no resource at this path"));
    };
    // HEAD is GET without the body (tiny_http leaves the body out for HEAD).
    let method = match call.request.method() {
        "HEAD" if methods.contains(&"GET") => "GET",
        other => other,
    };
    if !methods.contains(&method) {
        return Err(ApiError::new(
            405,
            format!("{} is not allowed here", input::clip(method, 32)),
        )
        .with_header("Allow", allow_header(methods)));
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
        (Target::PostsBulk, _) => bulk::delete(call),
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
    }
}

fn allow_header(methods: &[&str]) -> String {
    let mut allowed = methods.join(", ");
    if methods.contains(&"GET") {
        allowed.push_str(", HEAD");
    }
    allowed
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
