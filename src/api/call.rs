//! What a handler works with: the app's shared state, the one request being answered
//! (`Call`), and the shapes of the answers (JSON, 204, a page). Handlers import this, not
//! the dispatcher that calls them.

use super::{metrics, problem::ApiError, routes::Route, throttle};
use crate::auth::TokenKeys;
use crate::clock::Age;
use crate::config::ServeConfig;
use crate::net::{self, AllowedOrigins, Cidr};
use crate::store::Store;
use rouille::{Request, Response, ResponseBody};
use serde::Serialize;
use std::borrow::Cow;
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

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
    /// How long an author may undo their own soft delete (`--owner-undo`); `None`: never.
    pub owner_undo: Option<std::time::Duration>,
    /// How long audit events are kept (`--audit-retention`); `None`: for ever.
    pub audit_retention: Option<Age>,
    trusted_proxies: Vec<Cidr>,
    /// Origins whose browser scripts may read the answers (`--cors-origins`).
    pub(super) cors: Option<AllowedOrigins>,
    pub(super) metrics: Arc<metrics::Metrics>,
    pub(super) login_throttle: throttle::LoginThrottle,
    pub(super) register_throttle: throttle::RegisterThrottle,
    /// Requests being handled now; shutdown waits for this to reach zero.
    pub(super) in_flight: AtomicUsize,
    /// Set on SIGTERM/SIGINT: new requests get 503 while in-flight ones finish, and the
    /// change feed's streams end.
    pub(super) draining: Arc<AtomicBool>,
    /// Change-feed streams open now, and the most there may be (`--max-event-streams`).
    pub(super) event_streams: Arc<AtomicUsize>,
    pub(super) max_event_streams: usize,
    /// The dqlite node this process runs, in cluster mode: its id and address.
    pub(super) node: Option<(u64, String)>,
}

impl App {
    pub fn new(config: &ServeConfig, store: Store, keys: TokenKeys) -> App {
        let metrics = metrics::Metrics::new(config.metrics_token.as_deref());
        let waits = metrics.clone();
        store.observe_writer_waits(move |waited| waits.observe_writer_wait(waited));
        App {
            store: Arc::new(store.with_revision_limit(config.revision_limit)),
            keys,
            signup_open: config.signup_open(),
            max_body: config.max_body,
            max_bulk: config.max_bulk,
            trash_retention: config.trash_retention.clone(),
            owner_undo: Some(config.owner_undo.duration()).filter(|d| !d.is_zero()),
            audit_retention: config.audit_retention.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            cors: config.cors_origins.clone(),
            metrics,
            login_throttle: throttle::LoginThrottle::default(),
            register_throttle: throttle::RegisterThrottle::new(config.register_limit),
            in_flight: AtomicUsize::new(0),
            draining: Arc::new(AtomicBool::new(false)),
            event_streams: Arc::new(AtomicUsize::new(0)),
            max_event_streams: config.max_event_streams,
            node: None,
        }
    }

    /// The app of a cluster node: `/healthz` says which node it is.
    pub fn on_node(mut self, id: u64, address: String) -> App {
        self.node = Some((id, address));
        self
    }
}

/// One request being answered: the app, the request, and who the caller turned out to be
/// (authentication notes the user for the access log).
pub struct Call<'a> {
    pub app: &'a App,
    pub request: &'a Request,
    pub(super) user_id: Cell<Option<i64>>,
    /// The route the path matched, once dispatch knows it (CORS, the metrics' labels).
    pub(super) route: Cell<Option<Route>>,
    /// What the route and method need of the caller's token (routes::NEEDS).
    pub(super) need: Cell<super::routes::Need>,
}

impl<'a> Call<'a> {
    pub(super) fn new(app: &'a App, request: &'a Request) -> Call<'a> {
        Call {
            app,
            request,
            user_id: Cell::new(None),
            route: Cell::new(None),
            need: Cell::new(super::routes::Need::Nothing),
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

    pub(super) fn note_user(&self, user_id: i64) {
        self.user_id.set(Some(user_id));
    }
}

impl App {
    /// Counts a request as in flight for as long as the guard lives.
    pub(super) fn count_in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(&self.in_flight)
    }
}

/// Counts a request as in flight for as long as it lives.
pub(super) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(super) type Headers = Vec<(Cow<'static, str>, Cow<'static, str>)>;

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
