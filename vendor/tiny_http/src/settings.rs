//! postd patch: what the application decides about its transport, fixed when a server
//! starts.
//!
//! rouille creates its tiny_http server itself (`Server::http(addr)`), so an application
//! behind rouille cannot pass a configuration in: it installs one with [`set_default`]
//! before starting rouille, and every server built afterwards takes a copy. Code that
//! builds its server directly can pass one to [`crate::Server::with_settings`] instead.

use crate::common::Header;
use crate::response::Framing;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The transport's limits and the headers it adds to every response.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `Server` header of every response that does not set one itself.
    pub server_name: String,
    /// Headers added to every response, the transport's own refusals included, unless
    /// the response already has a header of that name (e.g. `X-Content-Type-Options`).
    pub default_headers: Vec<Header>,
    /// Most connections open at once. A connection past it is answered 503 (with
    /// `Retry-After: 1`) by the accept thread itself and closed; no thread is started
    /// for it. Each open connection costs a thread and two descriptors.
    pub max_connections: usize,
    /// Largest request body read ahead on the connection's thread (the application's
    /// own body limit): a larger declared body is left unread, for the application to
    /// refuse from its `Content-Length`, and the connection closes after the answer.
    pub body_limit: usize,
    /// Bytes of request bodies all connections together may hold read ahead. A body that
    /// does not fit is answered 503 with `Retry-After: 1` and its connection closed, so
    /// no body ever streams to a worker from a slow client.
    pub read_ahead_budget: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            server_name: "tiny-http (Rust)".to_owned(),
            default_headers: Vec::new(),
            max_connections: 1024,
            body_limit: 16 * 1024 * 1024,
            read_ahead_budget: 256 * 1024 * 1024,
        }
    }
}

static DEFAULT: Mutex<Option<Settings>> = Mutex::new(None);

/// Makes `settings` the configuration of every server created from now on without an
/// explicit one (`Server::new`, `Server::http`, and so every rouille server).
pub fn set_default(settings: Settings) {
    *DEFAULT.lock().unwrap_or_else(|e| e.into_inner()) = Some(settings);
}

/// The configuration a server created now without an explicit one gets.
pub fn get_default() -> Settings {
    DEFAULT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

/// Changes one part of the default configuration.
pub(crate) fn update_default(change: impl FnOnce(&mut Settings)) {
    let mut guard = DEFAULT.lock().unwrap_or_else(|e| e.into_inner());
    let mut settings = guard.take().unwrap_or_default();
    change(&mut settings);
    *guard = Some(settings);
}

/// One server's settings and the state its connections share.
pub(crate) struct Transport {
    pub(crate) settings: Settings,
    /// Bytes of the read-ahead budget not reserved by any body.
    budget_left: AtomicUsize,
    /// Connections accepted and not yet closed.
    open: AtomicUsize,
}

impl Transport {
    pub(crate) fn new(mut settings: Settings) -> Arc<Transport> {
        settings.max_connections = settings.max_connections.max(1);
        Arc::new(Transport {
            budget_left: AtomicUsize::new(settings.read_ahead_budget),
            open: AtomicUsize::new(0),
            settings,
        })
    }

    /// Takes `bytes` from the read-ahead budget, or nothing if they are not all there.
    pub(crate) fn reserve(&self, bytes: usize) -> bool {
        self.budget_left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(bytes)
            })
            .is_ok()
    }

    pub(crate) fn release(&self, bytes: usize) {
        self.budget_left.fetch_add(bytes, Ordering::AcqRel);
    }

    /// The headers this server adds to a response on the wire.
    pub(crate) fn framing(&self, close: bool) -> Framing<'_> {
        Framing {
            server_name: &self.settings.server_name,
            default_headers: &self.settings.default_headers,
            close,
            keep_alive: false,
        }
    }

    pub(crate) fn budget_left(&self) -> usize {
        self.budget_left.load(Ordering::Acquire)
    }

    pub(crate) fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Counts a connection as open for as long as the guard lives, or refuses when the
    /// limit is reached.
    pub(crate) fn admit(self: &Arc<Transport>) -> Option<OpenConnection> {
        let max = self.settings.max_connections;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .ok()
            .map(|_| OpenConnection(self.clone()))
    }
}

/// One open connection, counted until dropped.
pub(crate) struct OpenConnection(Arc<Transport>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_reserved_whole_or_not_at_all() {
        let transport = Transport::new(Settings {
            read_ahead_budget: 100,
            ..Settings::default()
        });
        assert!(transport.reserve(60));
        assert!(!transport.reserve(41), "only 40 bytes were left");
        assert_eq!(transport.budget_left(), 40);
        transport.release(60);
        assert!(transport.reserve(100));
    }

    #[test]
    fn connections_are_counted_until_dropped_and_refused_past_the_limit() {
        let transport = Transport::new(Settings {
            max_connections: 2,
            ..Settings::default()
        });
        let a = transport.admit().expect("first");
        let _b = transport.admit().expect("second");
        assert!(transport.admit().is_none());
        assert_eq!(transport.open_connections(), 2);
        drop(a);
        assert!(transport.admit().is_some());
    }

    #[test]
    fn a_limit_of_zero_still_admits_one_connection() {
        let transport = Transport::new(Settings {
            max_connections: 0,
            ..Settings::default()
        });
        assert!(transport.admit().is_some());
    }
}
