//! postd patch: the accept loop, rewritten so that nothing ends it but the server's own
//! end.
//!
//! Stock tiny_http left the loop on the first error of `accept()` (with a `log::error!`
//! that nobody saw without a logger), and a failed `try_clone` or thread spawn panicked
//! it. Out of descriptors (EMFILE), the process then lived on without ever accepting
//! again, so a supervisor's restart-on-failure never fired. Now every error is logged
//! (one line for the first of a burst, then a summary every few seconds), the loop
//! waits briefly and accepts again, and a panic is caught and the loop goes on.
//!
//! It also enforces the connection cap: past `max_connections` open connections, a new
//! one is answered 503 by this thread, without a thread of its own, and handed to one
//! shared lingering thread that drains it briefly before closing it.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{self, ClientConnection};
use crate::connection::{Connection, Listener};
use crate::settings::Transport;
use crate::util::{MessagesQueue, RefinedTcpStream, TaskPool};
use crate::{Handler, Message, SslContext, SOCKET_TIMEOUT};

/// First pause after an error that no spare descriptor could absorb; it doubles up to
/// MAX_BACKOFF while errors go on. accept() fails at once while descriptors are out (the
/// kernel takes the descriptor before it waits for a connection), so without a pause
/// the loop would spin.
const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(100);
/// A summary of repeated errors is logged at most this often.
const SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// Refused connections lingering at once; past it a refused connection is closed at once.
const LINGER_MAX: usize = 256;
/// How long a refused connection is drained before it is closed.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// How often the lingering thread looks at its connections.
const LINGER_TICK: Duration = Duration::from_millis(20);

pub(crate) struct Acceptor {
    pub(crate) listener: Listener,
    pub(crate) ssl: Option<SslContext>,
    pub(crate) transport: Arc<Transport>,
    pub(crate) messages: Arc<MessagesQueue<Message>>,
    /// postd patch: when set, requests are answered by it on their connection's thread
    /// rather than queued in `messages`.
    pub(crate) handler: Option<Handler>,
    pub(crate) close: Arc<AtomicBool>,
}

/// The accept thread's own state.
struct Loop {
    acceptor: Acceptor,
    tasks: TaskPool,
    lingerer: Option<Lingerer>,
    /// A second descriptor of the listening socket, given up when descriptors run out so
    /// that one pending connection can be taken and answered, then taken back.
    reserve: Option<Listener>,
    errors: Burst,
    refusals: Burst,
    backoff: Duration,
}

impl Acceptor {
    /// Runs the accept loop until the server is dropped.
    pub(crate) fn run(self) {
        log::debug!("Running accept thread");
        let lingerer = match Lingerer::start() {
            Ok(lingerer) => Some(lingerer),
            Err(e) => {
                log::error!("tiny_http: cannot start the lingering thread ({e}); refused connections close at once");
                None
            }
        };
        let reserve = self.listener.try_clone().ok();
        let mut state = Loop {
            acceptor: self,
            tasks: TaskPool::new(),
            lingerer,
            reserve,
            errors: Burst::default(),
            refusals: Burst::default(),
            backoff: MIN_BACKOFF,
        };
        let close = state.acceptor.close.clone();
        supervise(&close, || state.accept_one());
        log::debug!("Terminating accept thread");
    }
}

/// Calls `step` until `close` is set; a panic in it is logged and the calls go on.
fn supervise(close: &AtomicBool, mut step: impl FnMut()) {
    while !close.load(Relaxed) {
        if panic::catch_unwind(AssertUnwindSafe(&mut step)).is_err() {
            log::error!("tiny_http: the accept loop panicked; accepting again in 100 ms");
            thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Loop {
    fn accept_one(&mut self) {
        if self.reserve.is_none() {
            self.reserve = self.acceptor.listener.try_clone().ok();
        }
        match self.acceptor.listener.accept() {
            Ok((sock, _)) => {
                if self.acceptor.close.load(Relaxed) {
                    // The connection `Server::drop` makes to wake this thread up.
                    return;
                }
                self.take(sock);
            }
            // A client that gave up before it was accepted: its own business.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Interrupted
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::ConnectionReset
                ) => {}
            Err(e) => {
                self.failed("cannot accept connections", &e);
                if !(out_of_descriptors(&e) && self.refuse_one_pending()) {
                    self.pause();
                }
            }
        }
    }

    /// Gives up the spare descriptor for one accept: the pending connection is answered
    /// 503 and closed at once, then the spare is taken back. Without it, connections
    /// waiting in the backlog get no answer until some connection ends, however long
    /// that takes; with it each failed accept answers one of them, so the loop does not
    /// spin either. (With no connection pending, accept() waits here for the next.)
    fn refuse_one_pending(&mut self) -> bool {
        if self.reserve.take().is_none() {
            return false;
        }
        let refused = match self.acceptor.listener.accept() {
            Ok((sock, _)) => {
                self.answer(sock, BUSY, false);
                true
            }
            Err(_) => false,
        };
        self.reserve = self.acceptor.listener.try_clone().ok();
        refused && self.reserve.is_some()
    }

    fn take(&mut self, sock: Connection) {
        tune(&sock);

        let Some(open) = self.acceptor.transport.admit() else {
            let limit = self.acceptor.transport.settings.max_connections;
            if let Some(line) = self.refusals.failed(
                Instant::now(),
                &format!("{limit} connections are open (the limit); refusing new ones with 503"),
                None,
            ) {
                log::warn!("tiny_http: {line}");
            }
            self.answer(sock, AT_CAPACITY, true);
            return;
        };
        if let Some(line) = self
            .refusals
            .recovered(Instant::now(), "taking connections below the limit again")
        {
            log::warn!("tiny_http: {line}");
        }

        let (read_closable, write_closable) = match self.acceptor.ssl {
            None => match RefinedTcpStream::new(sock) {
                Ok(halves) => halves,
                Err((stream, e)) => {
                    self.failed("cannot take a connection", &e);
                    if let Some(sock) = stream.into_connection() {
                        self.answer(sock, BUSY, false);
                    }
                    return;
                }
            },
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Some(ref ssl) => {
                // trying to apply SSL over the connection
                // if an error occurs, we just close the socket and resume listening
                let sock = match ssl.accept(sock) {
                    Ok(s) => s,
                    Err(_) => return,
                };

                match RefinedTcpStream::new(sock) {
                    Ok(halves) => halves,
                    Err((_, e)) => {
                        self.failed("cannot take a connection", &e);
                        return;
                    }
                }
            }
            #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
            Some(ref _ssl) => return,
        };

        let client = ClientConnection::new(
            write_closable,
            read_closable,
            self.acceptor.transport.clone(),
            Some(open),
        );
        let messages = self.acceptor.messages.clone();
        let handler = self.acceptor.handler.clone();
        let mut client = Some(client);
        let started = self.tasks.spawn(Box::new(move || {
            if let Some(client) = client.take() {
                if let Some(handler) = &handler {
                    // Each request is answered before the next one is read, so responses
                    // leave in order without the sequencing the queue needs.
                    for rq in client {
                        handler(rq);
                    }
                } else if client.secure() {
                    // Synchronization is needed for HTTPS requests to avoid a deadlock
                    let (sender, receiver) = mpsc::channel();
                    for rq in client {
                        messages.push(rq.with_notify_sender(sender.clone()).into());
                        if receiver.recv().is_err() {
                            break;
                        }
                    }
                } else {
                    for rq in client {
                        messages.push(rq.into());
                    }
                }
            }
        }));
        match started {
            Ok(()) => {
                self.backoff = MIN_BACKOFF;
                if let Some(line) = self
                    .errors
                    .recovered(Instant::now(), "accepting connections again")
                {
                    log::warn!("tiny_http: {line}");
                }
            }
            Err(e) => {
                self.failed(
                    "cannot start a connection thread (the connection waits for a free one)",
                    &e,
                );
                self.pause();
            }
        }
    }

    /// Answers a connection this thread takes no further (at the cap, or out of
    /// descriptors) and closes it, after a brief drain if `linger` and there is room.
    fn answer(&mut self, mut sock: Connection, why: Refusal, linger: bool) {
        let bytes =
            client::refusal_bytes(&self.acceptor.transport, 503, "Service Unavailable", why.0);
        sock.set_nonblocking(true).ok();
        // What the client has sent already is read first: closing over unread data would
        // reset the connection, and the client could lose the answer.
        drain_available(&mut sock);
        // Half a kilobyte into the empty send buffer of a new connection: it fits.
        sock.write_all(&bytes).ok();
        sock.shutdown(Shutdown::Write).ok();
        if linger {
            if let Some(lingerer) = &self.lingerer {
                if let Err(mut sock) = lingerer.adopt(sock) {
                    drain_available(&mut sock);
                }
                return;
            }
        }
        drain_available(&mut sock);
    }

    fn failed(&mut self, what: &str, e: &std::io::Error) {
        if let Some(line) = self.errors.failed(Instant::now(), what, Some(e)) {
            log::error!("tiny_http: {line}");
        }
    }

    fn pause(&mut self) {
        thread::sleep(self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

/// postd patch: responses are written in several pieces (headers through a 1 KiB
/// buffer, then the body); with Nagle's algorithm on, the second piece waits for the
/// peer's delayed ACK, ~40 ms per response on keep-alive connections.
///
/// postd patch: a socket that stays silent this long is given up, so idle and stalled
/// clients cannot pin threads forever.
fn tune(sock: &Connection) {
    if let Connection::Tcp(tcp) = sock {
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(SOCKET_TIMEOUT));
        let _ = tcp.set_write_timeout(Some(SOCKET_TIMEOUT));
    }
}

/// The detail of a 503 the accept thread answers.
#[derive(Clone, Copy)]
struct Refusal(&'static str);

const AT_CAPACITY: Refusal = Refusal("the server has too many open connections; try again shortly");
const BUSY: Refusal = Refusal("the server cannot take more connections now; try again shortly");

fn out_of_descriptors(e: &std::io::Error) -> bool {
    // EMFILE (the process's limit) and ENFILE (the system's).
    matches!(e.raw_os_error(), Some(24) | Some(23))
}

/// Reads (and discards) what a non-blocking socket has received, up to 64 KiB. False
/// when the peer has closed or the socket failed.
fn drain_available(sock: &mut Connection) -> bool {
    let mut scratch = [0u8; 16 * 1024];
    for _ in 0..4 {
        match sock.read(&mut scratch) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// One thread that keeps refused connections open for up to LINGER_TIME, reading and
/// discarding what their clients still send, and closes each once its client has closed.
/// Their answer has already been written and the sending direction ended.
struct Lingerer {
    sender: mpsc::Sender<(Connection, Instant)>,
    lingering: Arc<AtomicUsize>,
}

impl Lingerer {
    fn start() -> std::io::Result<Lingerer> {
        let (sender, receiver) = mpsc::channel::<(Connection, Instant)>();
        let lingering = Arc::new(AtomicUsize::new(0));
        let count = lingering.clone();
        thread::Builder::new()
            .name("tiny-http-linger".to_owned())
            .spawn(move || {
                let mut held: Vec<(Connection, Instant)> = Vec::new();
                loop {
                    if held.is_empty() {
                        match receiver.recv() {
                            Ok(conn) => held.push(conn),
                            Err(_) => return,
                        }
                    }
                    held.extend(receiver.try_iter());
                    let now = Instant::now();
                    held.retain_mut(|(sock, deadline)| {
                        let keep = now < *deadline && drain_available(sock);
                        if !keep {
                            count.fetch_sub(1, Ordering::AcqRel);
                        }
                        keep
                    });
                    if !held.is_empty() {
                        thread::sleep(LINGER_TICK);
                    }
                }
            })?;
        Ok(Lingerer { sender, lingering })
    }

    /// Takes a connection to linger on, or hands it back when LINGER_MAX are lingering.
    fn adopt(&self, sock: Connection) -> Result<(), Connection> {
        let room = self
            .lingering
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < LINGER_MAX).then_some(n + 1)
            })
            .is_ok();
        if !room {
            return Err(sock);
        }
        self.sender
            .send((sock, Instant::now() + LINGER_TIME))
            .map_err(|e| {
                self.lingering.fetch_sub(1, Ordering::AcqRel);
                (e.0).0
            })
    }
}

/// Rate-limits the log of a repeated condition: the first occurrence of a burst is one
/// line, then at most one summary line every SUMMARY_EVERY with the count since the last
/// line, and one line when it ends. EMFILE can repeat every few milliseconds.
#[derive(Default)]
pub(crate) struct Burst {
    first: Option<Instant>,
    last_line: Option<Instant>,
    since_line: u64,
    total: u64,
}

impl Burst {
    /// Records one occurrence; returns the line to log, if one is due.
    pub(crate) fn failed(
        &mut self,
        now: Instant,
        what: &str,
        e: Option<&std::io::Error>,
    ) -> Option<String> {
        let cause = e.map(|e| format!(": {e}")).unwrap_or_default();
        self.total += 1;
        let Some(first) = self.first else {
            self.first = Some(now);
            self.last_line = Some(now);
            self.since_line = 0;
            return Some(format!("{what}{cause}; retrying"));
        };
        self.since_line += 1;
        let last_line = self.last_line.unwrap_or(first);
        if now.duration_since(last_line) < SUMMARY_EVERY {
            return None;
        }
        let line = format!(
            "{what}{cause}; {} more times in the last {:.0} s ({} since the first, {:.0} s ago); retrying",
            self.since_line,
            now.duration_since(last_line).as_secs_f64(),
            self.total,
            now.duration_since(first).as_secs_f64(),
        );
        self.last_line = Some(now);
        self.since_line = 0;
        Some(line)
    }

    /// Ends a burst, if one is going on; returns the line to log.
    pub(crate) fn recovered(&mut self, now: Instant, what: &str) -> Option<String> {
        let first = self.first.take()?;
        let line = format!(
            "{what} after {} failures over {:.1} s",
            self.total,
            now.duration_since(first).as_secs_f64()
        );
        self.total = 0;
        self.since_line = 0;
        self.last_line = None;
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_errors_is_one_line_then_a_summary_every_few_seconds() {
        let mut burst = Burst::default();
        let start = Instant::now();
        let emfile = std::io::Error::from_raw_os_error(24);
        let mut lines = Vec::new();
        // One error every 2 ms for 12 s: 6,000 errors.
        for i in 0..6_000u64 {
            let now = start + Duration::from_millis(2 * i);
            lines.extend(burst.failed(now, "cannot accept connections", Some(&emfile)));
        }
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(lines[0].starts_with("cannot accept connections: Too many open files"));
        assert!(
            lines[1].contains("2500 more times in the last 5 s"),
            "{}",
            lines[1]
        );
        assert!(!lines.iter().any(|l| l.contains('\n')));
        let end = burst.recovered(
            start + Duration::from_secs(12),
            "accepting connections again",
        );
        assert_eq!(
            end.as_deref(),
            Some("accepting connections again after 6000 failures over 12.0 s")
        );
        assert_eq!(
            burst.recovered(start + Duration::from_secs(13), "again"),
            None
        );
        // A new burst starts with a line of its own.
        let again = burst.failed(
            start + Duration::from_secs(20),
            "cannot accept connections",
            Some(&emfile),
        );
        assert!(again.is_some());
    }

    #[test]
    fn a_panic_in_the_loop_is_survived() {
        let close = AtomicBool::new(false);
        let mut calls = 0;
        supervise(&close, || {
            calls += 1;
            if calls == 1 {
                panic!("first call panics");
            }
            if calls == 3 {
                close.store(true, Relaxed);
            }
        });
        assert_eq!(calls, 3);
    }

    #[test]
    fn accepted_sockets_get_nodelay_and_timeouts() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let sock = Connection::from(accepted);
        tune(&sock);
        let Connection::Tcp(tcp) = &sock else {
            panic!("a TCP socket")
        };
        assert!(tcp.nodelay().unwrap());
        assert_eq!(tcp.read_timeout().unwrap(), Some(SOCKET_TIMEOUT));
        assert_eq!(tcp.write_timeout().unwrap(), Some(SOCKET_TIMEOUT));
        assert_eq!(SOCKET_TIMEOUT, Duration::from_secs(15));
    }

    #[test]
    fn descriptor_shortage_is_told_apart() {
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(24)));
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(23)));
        assert!(!out_of_descriptors(&std::io::Error::from_raw_os_error(12)));
    }
}
