//! Metrics for Prometheus, in its text exposition format (version 0.0.4), written here:
//! a dozen series do not need a metrics crate and its registry.
//!
//! Served two ways, off unless configured. `POSTD_METRICS_TOKEN` serves `GET /metrics` on
//! the main port to `Authorization: Bearer <token>` only: every other request for it is
//! the 404 of an unknown path, so a reverse proxy that forwards everything cannot make
//! the metrics public, nor tell that they exist. `--metrics-addr` serves them without a
//! token on a listener of their own, meant for loopback or a private network.
//!
//! On the request path recording costs a few relaxed atomic additions and no
//! allocation: every (route, method, status) series has its counter from the start.

use super::call::{App, Call};
use super::problem::ApiError;
use super::routes::{route_at, Route, PAGES, ROUTES};
use crate::config::ServeConfig;
use crate::store::Store;
use rouille::{Request, Response, ResponseBody};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The `route` label of requests for `/metrics` on the main port (token accepted).
const METRICS_ROUTE: Route = Route {
    index: ROUTES.len() + PAGES.len(),
    template: "/metrics",
    methods: &["GET"],
};
/// The `route` label index of requests that match no route.
const UNMATCHED: usize = METRICS_ROUTE.index + 1;
const ROUTE_LABELS: usize = METRICS_ROUTE.index + 2;

fn route_label(index: usize) -> &'static str {
    match route_at(index) {
        Some((template, _)) => template,
        None if index == METRICS_ROUTE.index => METRICS_ROUTE.template,
        None => "unmatched",
    }
}

/// Methods with a label of their own; any other method is counted as `other`, so a client
/// inventing methods cannot make new series.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];
const METHOD_LABELS: usize = METHODS.len() + 1;

fn method_label(index: usize) -> &'static str {
    METHODS.get(index).copied().unwrap_or("other")
}

/// The statuses postd answers with, each with its counters from the start. Another status
/// (none is expected) is still counted, in a map behind a lock.
const STATUSES: [u16; 21] = [
    200, 201, 204, 304, 400, 401, 403, 404, 405, 408, 409, 412, 413, 415, 417, 421, 422, 429, 431,
    500, 503,
];

/// Upper bounds, in seconds, of the request duration buckets: from a cached read to a
/// 10,000-item bulk request.
const DURATION_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds, in seconds, of the writer wait buckets: no wait, a group commit's fsync,
/// a bulk request ahead, another process holding the lock (`busy_timeout` is 10 s).
const WAIT_BOUNDS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
];

/// What a bulk request did, for `postd_bulk_items_total{op}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkOp {
    Create,
    Update,
    Delete,
    DeletePermanent,
    Restore,
}

impl BulkOp {
    const ALL: [BulkOp; 5] = [
        BulkOp::Create,
        BulkOp::Update,
        BulkOp::Delete,
        BulkOp::DeletePermanent,
        BulkOp::Restore,
    ];

    fn label(self) -> &'static str {
        match self {
            BulkOp::Create => "create",
            BulkOp::Update => "update",
            BulkOp::Delete => "delete",
            BulkOp::DeletePermanent => "delete_permanent",
            BulkOp::Restore => "restore",
        }
    }
}

/// A histogram of durations: a count per bucket (not cumulative; the exposition sums
/// them) and the sum in nanoseconds.
struct Histogram {
    bounds: &'static [f64],
    /// One per bound, then one for everything above the last.
    counts: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        if let Some(count) = self.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The bucket counts as read now; `_count` is their total, so `+Inf` equals it even
    /// while requests are being counted.
    fn snapshot(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// `name_bucket`, `name_sum` and `name_count` lines; `labels` is empty or ends in `,`.
    fn render(&self, out: &mut String, name: &str, labels: &str, counts: &[u64]) {
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        let total: u64 = counts.iter().sum();
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {total}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let labels = match labels.trim_end_matches(',') {
            "" => String::new(),
            some => format!("{{{some}}}"),
        };
        let _ = writeln!(out, "{name}_sum{labels} {sum}");
        let _ = writeln!(out, "{name}_count{labels} {total}");
    }
}

pub struct Metrics {
    /// `postd_http_requests_total`, indexed by route, method and position in `STATUSES`.
    requests: Box<[AtomicU64]>,
    other_statuses: Mutex<BTreeMap<(usize, usize, u16), u64>>,
    /// `postd_http_request_duration_seconds`, one per route label.
    durations: Box<[Histogram]>,
    bulk_items: [AtomicU64; BulkOp::ALL.len()],
    writer_waits: Histogram,
    /// SHA-256 of POSTD_METRICS_TOKEN: compared in constant time, and equal lengths
    /// whatever the token's, so neither time nor length tells a guesser anything.
    token_digest: Option<[u8; 32]>,
}

impl Metrics {
    pub fn new(token: Option<&str>) -> Arc<Metrics> {
        Arc::new(Metrics {
            requests: (0..ROUTE_LABELS * METHOD_LABELS * STATUSES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            other_statuses: Mutex::new(BTreeMap::new()),
            durations: (0..ROUTE_LABELS)
                .map(|_| Histogram::new(DURATION_BOUNDS))
                .collect(),
            bulk_items: Default::default(),
            writer_waits: Histogram::new(WAIT_BOUNDS),
            token_digest: token.map(|t| hmac_sha256::Hash::hash(t.as_bytes())),
        })
    }

    /// Counts an answered request: its route (or `unmatched`), method and status, and how
    /// long it took.
    /// Counts one answer under its labels: the route the path matched (`None`:
    /// unmatched), the request's method and the answer's status.
    pub fn observe(&self, route: Option<Route>, method: &str, status: u16, took: Duration) {
        let route = route.map_or(UNMATCHED, |route| route.index);
        let method = METHODS
            .iter()
            .position(|m| *m == method)
            .unwrap_or(METHODS.len());
        match STATUSES.iter().position(|s| *s == status) {
            Some(at) => {
                let index = (route * METHOD_LABELS + method) * STATUSES.len() + at;
                if let Some(counter) = self.requests.get(index) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                let mut others = self
                    .other_statuses
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                *others.entry((route, method, status)).or_insert(0) += 1;
            }
        }
        if let Some(histogram) = self.durations.get(route) {
            histogram.observe(took);
        }
    }

    /// Adds the posts a successful bulk request changed.
    pub fn count_bulk_items(&self, op: BulkOp, items: usize) {
        let at = BulkOp::ALL.iter().position(|o| *o == op).unwrap_or(0);
        self.bulk_items[at].fetch_add(items as u64, Ordering::Relaxed);
    }

    pub fn observe_writer_wait(&self, waited: Duration) {
        self.writer_waits.observe(waited);
    }

    /// Whether `presented` is the metrics token.
    fn accepts(&self, presented: &str) -> bool {
        let Some(expected) = &self.token_digest else {
            return false;
        };
        let digest = hmac_sha256::Hash::hash(presented.as_bytes());
        // Every byte is compared whatever the first difference: no early exit to time.
        let difference = digest
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        difference == 0
    }

    /// `postd_http_requests_total`: every (route, method, status) seen so far.
    fn write_requests(&self, out: &mut String) {
        family(
            out,
            "postd_http_requests_total",
            "counter",
            "HTTP requests answered, by route template (unmatched: no route), method and status.",
        );
        let mut series: BTreeMap<(usize, usize, u16), u64> = BTreeMap::new();
        for (index, counter) in self.requests.iter().enumerate() {
            let count = counter.load(Ordering::Relaxed);
            if count > 0 {
                let status = STATUSES[index % STATUSES.len()];
                let rest = index / STATUSES.len();
                series.insert((rest / METHOD_LABELS, rest % METHOD_LABELS, status), count);
            }
        }
        let others = self
            .other_statuses
            .lock()
            .map(|others| others.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        series.extend(others);
        for ((route, method, status), count) in series {
            let _ = writeln!(
                out,
                "postd_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {count}",
                route_label(route),
                method_label(method),
            );
        }
    }

    /// `postd_http_request_duration_seconds`: a histogram per route that has answered.
    fn write_durations(&self, out: &mut String) {
        family(
            out,
            "postd_http_request_duration_seconds",
            "histogram",
            "Time from a request reaching postd's handler to its answer being ready, by route template.",
        );
        for (route, histogram) in self.durations.iter().enumerate() {
            let counts = histogram.snapshot();
            if counts.iter().any(|c| *c > 0) {
                let labels = format!("route=\"{}\",", route_label(route));
                histogram.render(out, "postd_http_request_duration_seconds", &labels, &counts);
            }
        }
    }

    /// Every series, in the text exposition format.
    pub fn render(&self, store: &Store) -> String {
        let mut out = String::with_capacity(16 * 1024);
        family(
            &mut out,
            "postd_build_info",
            "gauge",
            "The running postd's version (always 1).",
        );
        let _ = writeln!(
            out,
            "postd_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );

        self.write_requests(&mut out);
        self.write_durations(&mut out);

        family(
            &mut out,
            "postd_bulk_items_total",
            "counter",
            "Posts changed by successful bulk requests, by operation.",
        );
        for (op, count) in BulkOp::ALL.iter().zip(&self.bulk_items) {
            let _ = writeln!(
                out,
                "postd_bulk_items_total{{op=\"{}\"}} {}",
                op.label(),
                count.load(Ordering::Relaxed)
            );
        }

        match store.post_counts() {
            Ok(counts) => {
                family(
                    &mut out,
                    "postd_posts",
                    "gauge",
                    "Posts in the database: active, or soft-deleted (in the trash).",
                );
                let _ = writeln!(out, "postd_posts{{state=\"active\"}} {}", counts.active);
                let _ = writeln!(out, "postd_posts{{state=\"trashed\"}} {}", counts.trashed);
            }
            // A scrape still tells what it can; the missing series say the database did not
            // answer, and so does this line.
            Err(err) => log::warn!("metrics: counting posts failed: {err}"),
        }

        family(
            &mut out,
            "postd_writer_wait_seconds",
            "histogram",
            "Time a write waited for the one writer connection before it could run.",
        );
        let counts = self.writer_waits.snapshot();
        self.writer_waits
            .render(&mut out, "postd_writer_wait_seconds", "", &counts);

        family(
            &mut out,
            "postd_commits_total",
            "counter",
            "Write transactions committed, each one sync of the WAL; with group commit, \
             fewer than the writes answered.",
        );
        let _ = writeln!(out, "postd_commits_total {}", store.commits());

        family(
            &mut out,
            "postd_db_size_bytes",
            "gauge",
            "Bytes the database takes on disk: the main file and its WAL.",
        );
        let _ = writeln!(out, "postd_db_size_bytes {}", store.disk_usage());
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The scrape as an HTTP answer.
fn exposition(app: &App) -> Response {
    Response {
        status_code: 200,
        headers: vec![
            (
                "Content-Type".into(),
                "text/plain; version=0.0.4; charset=utf-8".into(),
            ),
            ("Cache-Control".into(), "no-store".into()),
        ],
        data: ResponseBody::from_data(app.metrics.render(&app.store)),
        upgrade: None,
    }
}

fn is_scrape(request: &Request) -> bool {
    let url = request.raw_url();
    url.split('?').next() == Some("/metrics") && matches!(request.method(), "GET" | "HEAD")
}

/// The scrape, for a request on the main port that asks for it with the metrics token;
/// `None` for every other request, which routing then answers (404 for `/metrics`).
pub fn on_main_port(call: &Call<'_>) -> Option<Response> {
    let metrics = &call.app.metrics;
    metrics.token_digest?;
    if !is_scrape(call.request) {
        return None;
    }
    let header = call.request.header("Authorization")?;
    let token = match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return None,
    };
    if !metrics.accepts(token) {
        return None;
    }
    call.route.set(Some(METRICS_ROUTE));
    Some(exposition(call.app))
}

/// The `--metrics-addr` listener: `GET /metrics` without a token, 404 for anything else.
/// Its requests are not counted: they are not the API's traffic.
pub struct Listener {
    addr: SocketAddr,
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Starts listening when `--metrics-addr` is set.
    pub fn start(config: &ServeConfig, app: &Arc<App>) -> Result<Option<Listener>, String> {
        let Some(addr) = &config.metrics_addr else {
            return Ok(None);
        };
        let app = app.clone();
        // The port is known once bound; requests can only arrive after that.
        let port = Arc::new(std::sync::OnceLock::new());
        let named = ListenerHost {
            configured: addr.clone(),
            port: port.clone(),
        };
        let server = rouille::Server::new(addr.as_str(), move |request| {
            if !named.accepts(request.header("Host")) {
                ApiError::new(
                    421,
                    "this listener answers requests for its own address or localhost only",
                )
                .into_response()
            } else if is_scrape(request) {
                exposition(&app)
            } else {
                ApiError::not_found("this listener serves only GET /metrics").into_response()
            }
        })
        .map_err(|err| format!("cannot listen for metrics on {addr}: {err}"))?
        .pool_size(2);
        let bound = server.server_addr();
        let _ = port.set(bound);
        if !bound.ip().is_loopback() {
            log::warn!(
                "the metrics listener on {bound} can be reached beyond this machine: it asks \
                 no token, so keep it on loopback or a private network"
            );
        }
        let (thread, stop) = server.stoppable();
        Ok(Some(Listener {
            addr: bound,
            stop,
            thread: Some(thread),
        }))
    }

    /// What the start-up line says about the listener, if there is one.
    pub fn banner(listener: Option<&Listener>) -> String {
        listener.map_or_else(String::new, |listener| {
            format!(", metrics on http://{}/metrics", listener.addr)
        })
    }
}

/// Which `Host` headers name the `--metrics-addr` listener: `localhost` or an IP address
/// of its own, with its port or none, or the host as given in `--metrics-addr`. A page on
/// another site whose name an attacker points at this address (DNS rebinding) sends its
/// own name, and is refused: it could otherwise read the metrics, which ask no token.
struct ListenerHost {
    configured: String,
    port: Arc<std::sync::OnceLock<SocketAddr>>,
}

impl ListenerHost {
    fn accepts(&self, host: Option<&str>) -> bool {
        let (Some(host), Some(bound)) = (host, self.port.get()) else {
            return false;
        };
        let (name, port) = split_host(host.trim());
        if port.is_some_and(|port| port != bound.port()) {
            return false;
        }
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        let configured_name = split_host(&self.configured).0;
        if !configured_name.is_empty() && name.eq_ignore_ascii_case(configured_name) {
            return true;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => bound.ip().is_unspecified() || ip == bound.ip(),
            Err(_) => false,
        }
    }
}

/// `host[:port]` or `[v6][:port]`: the name (without brackets) and the port, if one was
/// given; a port that is not a number is 0, which names no listener.
fn split_host(host: &str) -> (&str, Option<u16>) {
    let port = |text: &str| Some(text.parse().unwrap_or(0));
    if let Some(bracketed) = host.strip_prefix('[') {
        return match bracketed.split_once(']') {
            Some((v6, "")) => (v6, None),
            Some((v6, rest)) => (v6, rest.strip_prefix(':').map_or(Some(0), port)),
            None => (host, Some(0)),
        };
    }
    match host.split_once(':') {
        Some((name, rest)) => (name, port(rest)),
        None => (host, None),
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_count_what_their_buckets_hold() {
        let histogram = Histogram::new(&[0.001, 0.01]);
        for micros in [10, 500, 2_000, 20_000, 30_000] {
            histogram.observe(Duration::from_micros(micros));
        }
        let mut out = String::new();
        histogram.render(&mut out, "h", "route=\"/x\",", &histogram.snapshot());
        assert_eq!(
            out,
            "h_bucket{route=\"/x\",le=\"0.001\"} 2\n\
             h_bucket{route=\"/x\",le=\"0.01\"} 3\n\
             h_bucket{route=\"/x\",le=\"+Inf\"} 5\n\
             h_sum{route=\"/x\"} 0.05251\n\
             h_count{route=\"/x\"} 5\n"
        );
    }

    /// Found from outside (v1.1 review): the listener answered any `Host`, so a page whose
    /// name was pointed at 127.0.0.1 (DNS rebinding) could read the metrics.
    #[test]
    fn the_listener_answers_only_its_own_names() {
        let named = |configured: &str, bound: &str| {
            let port = Arc::new(std::sync::OnceLock::new());
            let _ = port.set(bound.parse::<SocketAddr>().unwrap());
            ListenerHost {
                configured: configured.into(),
                port,
            }
        };
        let loopback = named("127.0.0.1:0", "127.0.0.1:9100");
        for ok in [
            "127.0.0.1:9100",
            "127.0.0.1",
            "localhost:9100",
            "LOCALHOST",
            " localhost ",
        ] {
            assert!(loopback.accepts(Some(ok)), "{ok}");
        }
        for refused in [
            "attacker.example:9100",
            "attacker.example",
            "127.0.0.1:80",
            "localhost:x",
            "10.0.0.1:9100",
            "127.0.0.1.nip.io:9100",
            "",
        ] {
            assert!(!loopback.accepts(Some(refused)), "{refused}");
        }
        assert!(!loopback.accepts(None));
        let v6 = named("[::1]:9100", "[::1]:9100");
        assert!(v6.accepts(Some("[::1]:9100")) && v6.accepts(Some("[::1]")));
        assert!(!v6.accepts(Some("[::2]:9100")));
        let everywhere = named("metrics.internal:9100", "0.0.0.0:9100");
        for ok in ["metrics.internal:9100", "10.1.2.3:9100", "localhost"] {
            assert!(everywhere.accepts(Some(ok)), "{ok}");
        }
        assert!(!everywhere.accepts(Some("evil.example:9100")));
    }

    #[test]
    fn only_the_token_is_accepted() {
        let metrics = Metrics::new(Some("sixteen-bytes-ok"));
        assert!(metrics.accepts("sixteen-bytes-ok"));
        for wrong in [
            "",
            "sixteen-bytes-o",
            "sixteen-bytes-ok ",
            "Sixteen-bytes-ok",
        ] {
            assert!(!metrics.accepts(wrong), "{wrong}");
        }
        assert!(!Metrics::new(None).accepts(""));
    }

    #[test]
    fn every_status_route_and_method_has_a_label() {
        assert_eq!(route_label(0), ROUTES[0].0);
        assert_eq!(route_label(METRICS_ROUTE.index), "/metrics");
        assert_eq!(route_label(UNMATCHED), "unmatched");
        assert_eq!(method_label(METHODS.len()), "other");
        // Every error status problem+json has a title for is pre-counted.
        for status in 400..600 {
            if super::super::problem::status_title(status) != "Error" {
                assert!(STATUSES.contains(&status), "{status}");
            }
        }
    }
}
