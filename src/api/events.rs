//! `GET /events`: the change feed, as Server-Sent Events. Every change of a post (and
//! every other audited change) is an audit event, written in the change's own transaction
//! (store/audit.rs); the feed reads the log in id order, so it only ever sends what is
//! committed, in order, and a client that comes back with `Last-Event-ID` (or `?since=`)
//! gets exactly what it has not seen, across restarts of either side.
//!
//! A stream is a connection, not a handler: the handler only checks the request and hands
//! back an answer whose body is a reader (`Feed`); the connection's thread writes it after
//! giving the worker permit back (api/server.rs), reading the log as the client takes the
//! bytes. A client that stops reading blocks only its own connection thread, until the
//! socket's write timeout ends it; the feed holds one batch of events in memory at most.

use super::auth::authenticate;
use super::call::Call;
use super::input::{query_error, Query};
use super::problem::ApiError;
use crate::store::{AuditEvent, Store};
use rouille::{Response, ResponseBody};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A comment line at least this often keeps idle streams (and the proxies on their way)
/// alive.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The comment line that opens every stream and keeps an idle one alive.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
/// How long a stream waits for a commit of this process before looking at the log again
/// anyway: commits of other processes (the CLI) and of other nodes wake nobody.
const POLL: Duration = Duration::from_millis(500);
/// Events read from the log at once.
const BATCH: u32 = 100;

pub fn events(call: &Call<'_>) -> Result<Response, ApiError> {
    let caller = authenticate(call)?;
    // The feed shows every change of every user: it is for admins, through their login
    // token or a token of theirs with the scope events:read.
    if caller.user.role != crate::model::Role::Admin {
        return Err(ApiError::forbidden("the change feed is for admins only"));
    }
    let since = resume_point(call)?;
    let app = call.app;
    let slot = StreamSlot::take(&app.event_streams, app.max_event_streams).ok_or_else(|| {
        ApiError::new(
            503,
            format!(
                "{} event streams are open, the most this server keeps; try again shortly",
                app.max_event_streams
            ),
        )
        .with_header("Retry-After", "1".into())
    })?;
    let feed = Feed {
        store: app.store.clone(),
        stopping: app.draining.clone(),
        after: since,
        // The answer's head leaves with the body's first bytes: without a line at once, a
        // client of a quiet log would wait up to 15 s to learn that its stream is open
        // (an EventSource's `open`, the console's "Live").
        pending: KEEP_ALIVE.to_vec(),
        sent_at: Instant::now(),
        commits: app.store.commits(),
        _slot: slot,
    };
    let response = Response {
        status_code: 200,
        headers: vec![
            ("Content-Type".into(), "text/event-stream".into()),
            ("Cache-Control".into(), "no-store".into()),
            // nginx and others would hold the stream back otherwise.
            ("X-Accel-Buffering".into(), "no".into()),
        ],
        data: ResponseBody::from_reader(feed),
        upgrade: None,
    };
    Ok(response)
}

/// The id after which to start: `Last-Event-ID` (what an `EventSource` sends when it
/// reconnects), else `?since=`, else 0 (everything). A value that is not a whole number is
/// a 422.
fn resume_point(call: &Call<'_>) -> Result<i64, ApiError> {
    let query = Query::parse(call.request)?;
    let header = call.request.header("Last-Event-ID");
    let (name, text) = match (header, query.get("since")?) {
        (Some(value), _) => ("Last-Event-ID", Some(value.trim())),
        (None, since) => ("since", since),
    };
    match text {
        None => Ok(0),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|id| *id >= 0 && text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| query_error_for(name)),
    }
}

fn query_error_for(name: &str) -> ApiError {
    if name == "since" {
        query_error(
            "since",
            "must be an event id (a whole number, 0 for the start)",
        )
    } else {
        ApiError::bad_request("Last-Event-ID must be an event id (a whole number)")
    }
}

/// One of the `--max-event-streams` places; given back when the stream ends.
struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    fn take(open: &Arc<AtomicUsize>, most: usize) -> Option<StreamSlot> {
        let mut current = open.load(Ordering::SeqCst);
        loop {
            if current >= most {
                return None;
            }
            match open.compare_exchange(current, current + 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Some(StreamSlot(open.clone())),
                Err(now) => current = now,
            }
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The stream's body: events read from the log as the client takes them.
struct Feed {
    store: Arc<Store>,
    /// Set when the server shuts down: the stream ends (the client reconnects elsewhere or
    /// later, from its last id).
    stopping: Arc<std::sync::atomic::AtomicBool>,
    after: i64,
    pending: Vec<u8>,
    sent_at: Instant,
    commits: u64,
    _slot: StreamSlot,
}

impl Feed {
    /// Fills `pending` with the next events, a heartbeat, or nothing when it is time to
    /// end; waits for them.
    fn refill(&mut self) -> std::io::Result<()> {
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return Ok(());
            }
            let events = self
                .store
                .events_after(self.after, BATCH)
                .map_err(|err| std::io::Error::other(err.to_string()))?;
            if let Some(last) = events.last() {
                self.after = last.id;
                for event in &events {
                    write_event(&mut self.pending, event);
                }
                self.sent_at = Instant::now();
                return Ok(());
            }
            let quiet = self.sent_at.elapsed();
            if quiet >= HEARTBEAT {
                self.pending.extend_from_slice(KEEP_ALIVE);
                self.sent_at = Instant::now();
                return Ok(());
            }
            self.commits = self
                .store
                .wait_for_commit(self.commits, POLL.min(HEARTBEAT - quiet));
        }
    }
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            self.refill()?;
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

/// `id: 42`, `event: post.create`, `data: {…}` and a blank line.
fn write_event(out: &mut Vec<u8>, event: &AuditEvent) {
    out.extend_from_slice(
        format!("id: {}\nevent: {}\ndata: ", event.id, event.action.as_str()).as_bytes(),
    );
    // One line: serde_json escapes the newlines a detail could hold.
    if serde_json::to_writer(&mut *out, event).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
}
