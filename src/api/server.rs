//! Serving: the vendored tiny_http accepts connections and reads each request, body
//! included, on the connection's own thread; that same thread then runs the handler,
//! within one of `--workers` permits, and writes the answer.
//!
//! rouille's own server passes every request from the connection thread to a dispatcher
//! thread and from there to a pool worker: two hand-offs, ~2.5 context switches per
//! request, which were most of the server's CPU under load (README "Performance"). The
//! handler and rouille's `Request`/`Response` stay as they are; only the threads that run
//! them change. A slow client still holds no permit: its body is read ahead before the
//! permit is taken, and the answer is written after the permit is given back.

use super::{call::App, handle};
use crate::config::ServeConfig;
use crate::retention::{Kind, Sweeper};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// Starts serving and blocks until SIGTERM or SIGINT, then shuts down gracefully: new
/// requests are answered 503, in-flight ones get up to `shutdown_grace` to finish, the
/// WAL is checkpointed into the database file, and the function returns.
pub fn serve(config: &ServeConfig, app: App) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| format!("cannot handle signals: {e}"))?;
    }
    let app = Arc::new(app);
    let (server, address) = listen(config, &app)?;
    // The separate listener of --metrics-addr, stopped when dropped.
    let metrics_listener = super::metrics::Listener::start(config, &app)?;
    println!(
        "postd {} listening on http://{address} ({}, {} workers, signup {}{})",
        env!("CARGO_PKG_VERSION"),
        app.store.describe(),
        config.workers,
        if config.signup_open() {
            "open"
        } else {
            "closed"
        },
        super::metrics::Listener::banner(metrics_listener.as_ref()),
    );
    app.store.warn_if_readable_by_others();
    // One server serves a file: it always holds the leases, a restart included.
    let holder = app.node.as_ref().map_or_else(
        || "the server of this file".to_string(),
        |(id, address)| format!("node {id} at {address}"),
    );
    let mut sweepers = Vec::new();
    for (kind, retention) in [
        (Kind::Trash, app.trash_retention.clone()),
        (Kind::AuditLog, app.audit_retention.clone()),
    ] {
        if let Some(retention) = retention {
            sweepers.push(Sweeper::start(
                app.store.clone(),
                kind,
                retention,
                holder.clone(),
            )?);
        }
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let unfinished = drain(config, &app);
    drop(server);
    drop(metrics_listener);
    // The sweeps finish their batch in flight before the final checkpoint.
    drop(sweepers);
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

/// The main listener: the vendored tiny_http with postd's transport settings, each request
/// answered on its connection's thread within `--workers` permits. Returns the server
/// (it stops when dropped) and the address it is bound to.
fn listen(config: &ServeConfig, app: &Arc<App>) -> Result<(tiny_http::Server, String), String> {
    let nosniff = "X-Content-Type-Options: nosniff"
        .parse()
        .map_err(|()| "invalid default header".to_string())?;
    // Bodies up to our limit are read on the connection's own thread before a permit is
    // taken (vendor/README.md); larger ones are refused unread.
    let settings = tiny_http::Settings {
        server_name: format!("postd/{}", env!("CARGO_PKG_VERSION")),
        default_headers: vec![nosniff],
        max_connections: config.max_connections,
        body_limit: config.max_body,
        read_ahead_budget: config.read_ahead_budget,
    };
    // The metrics listener (rouille's own server: a scrape now and then) takes these too.
    tiny_http::settings::set_default(settings.clone());
    let listen = tiny_http::ConfigListenAddr::from_socket_addrs(config.addr.as_str())
        .map_err(|err| format!("cannot listen on {}: {err}", config.addr))?;
    let permits = Permits::new(config.workers);
    let handler_app = app.clone();
    let server = tiny_http::Server::with_handler(
        tiny_http::ServerConfig {
            addr: listen,
            ssl: None,
        },
        settings,
        move |request| answer(&handler_app, &permits, request),
    )
    .map_err(|err| format!("cannot listen on {}: {err}", config.addr))?;
    let address = server
        .server_addr()
        .to_ip()
        .map(|a| a.to_string())
        .unwrap_or_else(|| config.addr.clone());
    Ok((server, address))
}

/// After a stop signal: new requests get 503 while those in flight get up to
/// `--shutdown-grace` to finish. Returns how many did not.
fn drain(config: &ServeConfig, app: &App) -> usize {
    // Connections stay open meanwhile, so late arrivals get a clear 503, not a reset.
    app.draining.store(true, Ordering::SeqCst);
    log::info!(
        "shutting down; waiting up to {}s for requests in flight",
        config.shutdown_grace.as_secs()
    );
    let deadline = Instant::now() + config.shutdown_grace;
    while app.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    app.in_flight.load(Ordering::SeqCst)
}

/// Answers one request on its connection's thread.
fn answer(app: &App, permits: &Permits, mut request: tiny_http::Request) {
    // In flight until the answer is written: shutdown waits for the write too.
    let _in_flight = app.count_in_flight();
    let large_body = request.body_length().unwrap_or(0) >= LARGE_BODY;
    let response = {
        let _permit = permits.take();
        handle(app, &to_rouille(&mut request))
    };
    // Nothing is left to do for a client that went away meanwhile.
    let _ = request.respond(to_tiny_http(response));
    if large_body {
        give_back_free_memory();
    }
}

/// A body this large (a bulk request of some thousand items) leaves megabytes of freed
/// buffers behind it.
const LARGE_BODY: usize = 1024 * 1024;

/// glibc keeps memory freed inside its heaps (between chunks still in use) resident until
/// asked; after repeated 10,000-item bulk creates an idle server held ~25 MiB of it.
/// `malloc_trim` hands those pages back; it takes a few milliseconds, after the answer
/// has gone and outside the permits. musl gives freed memory back by itself.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_back_free_memory() {
    // SAFETY: malloc_trim only releases free memory of the allocator's own heaps; it is
    // thread-safe and takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back_free_memory() {}

/// The request as rouille's handler sees it, with the body read ahead. A body left on the
/// socket (declared larger than `--max-body`) is not read: the handler refuses it (413)
/// from its Content-Length.
fn to_rouille(request: &mut tiny_http::Request) -> rouille::Request {
    let body = request.read_ahead_body().unwrap_or_default();
    let headers = request
        .headers()
        .iter()
        .map(|h| (h.field.to_string(), h.value.to_string()))
        .collect();
    let peer = request
        .remote_addr()
        .copied()
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    rouille::Request::fake_http_from(
        peer,
        request.method().as_str(),
        request.url(),
        headers,
        body,
    )
}

/// rouille's response as tiny_http writes it (what rouille's own server does).
fn to_tiny_http(response: rouille::Response) -> tiny_http::ResponseBox {
    let (body, length) = response.data.into_reader_and_size();
    let mut out = tiny_http::Response::empty(response.status_code).with_data(body, length);
    for (name, value) in &response.headers {
        // tiny_http frames the body itself; postd never upgrades a connection.
        if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("Upgrade") {
            continue;
        }
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            out.add_header(header);
        }
    }
    out
}

/// At most `--workers` handlers run at once, whatever the number of connections, taken in
/// the order they were asked for: a Condvar wakes an arbitrary waiter, and under load some
/// requests then waited far longer than others (the p99 of 64 connections on 8 permits).
struct Permits {
    state: Mutex<PermitState>,
}

struct PermitState {
    free: usize,
    /// Threads waiting for a permit, oldest first.
    waiting: VecDeque<Arc<Waiter>>,
}

struct Waiter {
    thread: Thread,
    granted: AtomicBool,
}

struct Permit<'a>(&'a Permits);

impl Permits {
    fn new(count: usize) -> Permits {
        Permits {
            state: Mutex::new(PermitState {
                free: count.max(1),
                waiting: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PermitState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Permit<'_> {
        let waiter = {
            let mut state = self.lock();
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                return Permit(self);
            }
            let waiter = Arc::new(Waiter {
                thread: std::thread::current(),
                granted: AtomicBool::new(false),
            });
            state.waiting.push_back(waiter.clone());
            waiter
        };
        // A permit given back goes straight to the oldest waiter, which is unparked; park
        // may also return spuriously, hence the flag.
        while !waiter.granted.load(Ordering::Acquire) {
            std::thread::park();
        }
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        match state.waiting.pop_front() {
            Some(next) => {
                next.granted.store(true, Ordering::Release);
                next.thread.unpark();
            }
            None => state.free += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_bound_the_handlers_and_go_to_the_oldest_waiter() {
        let permits = Permits::new(2);
        let running = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..16 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        let _permit = permits.take();
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        running.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(permits.lock().free, 2, "every permit came back");

        // Waiters are served in the order they came.
        let first = permits.take();
        let second = permits.take();
        let order = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for n in 0..4 {
                let (permits, order) = (&permits, &order);
                scope.spawn(move || {
                    let _permit = permits.take();
                    order.lock().unwrap().push(n);
                });
                // Each waiter is queued before the next one starts.
                while permits.lock().waiting.len() < n + 1 {
                    std::thread::yield_now();
                }
            }
            // One permit goes round: each waiter passes it on to the next.
            drop(first);
        });
        drop(second);
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
    }
}
