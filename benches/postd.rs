//! `cargo bench --bench postd`: the server against its in-process floor, in one run.
//!
//! The server side is the real release binary on a loopback port with a fresh database;
//! the floor is the same store functions (same SQL, pragmas and schema) called in-process
//! on a separate fresh database, with no HTTP and no JSON. Both see the same posts, in the
//! same order, so each database has the same history when a workload runs.
//!
//! Environment: `POSTD_BENCH_SECS` (wrk duration, default 10), `POSTD_BENCH_SCALE=0`
//! skips the 1,000,000-post part, `POSTD_BENCH_TRANSFER_POSTS` sets the size of the
//! import/export part (default 1,000,000; small values check the code quickly),
//! `POSTD_BENCH_BIN=PATH` measures another postd binary (e.g. the static musl build)
//! instead of this package's release build. The report is printed and written to
//! `target/bench-report.md`.
//!
//! Cluster mode has a bench of its own, `cargo bench --bench cluster` (benches/cluster.rs):
//! W1, W2, W3, W6 and W7 on a 3-node dqlite cluster beside the single machine.

mod support;

use postd::model::{Actor, NewPost, Role, Username};
use postd::store::{ListQuery, Recorded, Store};
use postd_testkit::client::Client;
use postd_testkit::TempDir;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::bare;
use support::content::{self, Rng};
use support::report::{env_number, load_average, median, settle, target_dir, thousands};
use support::server::{self, Peak, Server};
use support::transfer;
use support::wrk::{self, WrkResult};

const PASSWORD: &str = "bench-password-1234";
const W1_ITEMS: u64 = 10_000;
const DELETE_ITEMS: u64 = 10_000;
const W6_REQUESTS: u64 = 2_000;
/// Timed bulk writes run this many times, alternating server and floor, and report the
/// median: other processes on a 2-core box and fsync latency make single runs noisy.
const WRITE_REPS: usize = 3;
const FLOOR_THREADS: u64 = 2;
const SCALE_SIZES: [u64; 3] = [1_000, 10_000, 100_000];
const MILLION: u64 = 1_000_000;
const SEED_CHUNK: u64 = 100_000;
/// The 100k bulk create is ~60 MB of JSON; the default 16 MiB body limit would refuse it.
const SCALE_FLAGS: [&str; 4] = ["--max-bulk", "100000", "--max-body", "268435456"];

// ---------------------------------------------------------------------------------------
// Formatting

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 10_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

fn mib(kib: Option<u64>) -> String {
    match kib {
        Some(kib) => format!("{:.1} MiB", kib as f64 / 1024.0),
        None => "n/a".into(),
    }
}

fn peak(p: Peak) -> String {
    match (p.peak_kib, p.start_kib) {
        (Some(peak), Some(start)) => format!(
            "{} (+{:.1})",
            mib(Some(peak)),
            peak.saturating_sub(start) as f64 / 1024.0
        ),
        (peak, _) => mib(peak),
    }
}

fn times(ratio: f64) -> String {
    if ratio < 10.0 {
        format!("{ratio:.2}×")
    } else {
        format!("{ratio:.1}×")
    }
}

fn time_ratio(server: Duration, floor: Duration) -> f64 {
    server.as_secs_f64() / floor.as_secs_f64().max(1e-9)
}

fn wrk_cell(w: &WrkResult) -> String {
    format!("{} req/s, p99 {:.2} ms", thousands(w.rps), w.p99_ms)
}

#[derive(Default)]
struct Report {
    header: Vec<String>,
    rows: Vec<[String; 5]>,
    scale: Vec<String>,
    notes: Vec<String>,
}

impl Report {
    fn row(
        &mut self,
        workload: &str,
        server: String,
        floor: String,
        ratio: f64,
        rss: impl Into<Option<Peak>>,
    ) {
        let rss = rss.into().map_or_else(|| "n/a".to_owned(), peak);
        let row = [workload.to_owned(), server, floor, times(ratio), rss];
        eprintln!("  done: {}", row.join(" | "));
        self.rows.push(row);
    }

    fn render(&self) -> String {
        let mut out = String::from("# postd benchmark\n\n");
        for line in &self.header {
            out.push_str(&format!("{line}\n"));
        }
        out.push('\n');
        let head = ["workload", "server", "floor", "ratio", "peak RSS"].map(String::from);
        let rows: Vec<[String; 5]> = std::iter::once(head)
            .chain(self.rows.iter().cloned())
            .collect();
        out.push_str(&support::markdown_table(&rows));
        out.push_str(
            "\nratio: server time / floor time; for W2/W3 floor rate / server rate \
             (how many times slower the server is). peak RSS: the server's VmHWM during \
             the workload (reset through /proc/PID/clear_refs before it), with its growth \
             over the RSS at the start in parentheses. Repeated writes: median (min–max ms) \
             of runs alternating server and floor, `sync` before each.\n",
        );
        if !self.scale.is_empty() {
            out.push_str("\n## Scale\n\n");
            for line in &self.scale {
                out.push_str(&format!("- {line}\n"));
            }
        }
        if !self.notes.is_empty() {
            out.push_str("\n## Notes\n\n");
            for line in &self.notes {
                out.push_str(&format!("- {line}\n"));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// The server side

/// Hands out disjoint ranges of content numbers, so titles (and derived slugs) never repeat.
#[derive(Default)]
struct Numbers(u64);

impl Numbers {
    fn take(&mut self, n: u64) -> Range<u64> {
        let start = self.0;
        self.0 += n;
        start..self.0
    }
}

struct Session {
    server: Server,
    client: Client,
    auth: String,
}

impl Session {
    fn login(server: Server) -> Session {
        let mut client = Client::new(server.addr);
        let body =
            serde_json::to_vec(&serde_json::json!({"username": "bench", "password": PASSWORD}))
                .expect("login JSON");
        let resp = client
            .request("POST", "/auth/login", &[], Some(&body))
            .expect("login request");
        resp.expect(200);
        let token = resp.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned();
        Session {
            server,
            client,
            auth: format!("Bearer {token}"),
        }
    }

    /// One `POST /posts/bulk`; the time covers sending the prepared body and reading the
    /// whole response.
    fn bulk_create(&mut self, items: &[NewPost]) -> (Vec<i64>, Duration) {
        let body = content::bulk_create_json(items);
        let start = Instant::now();
        let resp = self
            .client
            .request(
                "POST",
                "/posts/bulk",
                &[("Authorization", &self.auth)],
                Some(&body),
            )
            .expect("bulk create request");
        let took = start.elapsed();
        resp.expect(201);
        let ids: Vec<i64> = resp.json()["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|post| post["id"].as_i64().expect("id"))
            .collect();
        assert_eq!(ids.len(), items.len(), "bulk create returned every post");
        (ids, took)
    }

    fn bulk_delete(&mut self, ids: &[i64], hard: bool) -> Duration {
        let body = content::bulk_delete_json(ids, hard);
        let start = Instant::now();
        let resp = self
            .client
            .request(
                "DELETE",
                "/posts/bulk",
                &[("Authorization", &self.auth)],
                Some(&body),
            )
            .expect("bulk delete request");
        let took = start.elapsed();
        resp.expect(204);
        let probe = self
            .client
            .request("GET", &format!("/posts/{}", ids[0]), &[], None)
            .expect("probe request");
        assert_eq!(probe.status, 404, "a deleted post must be gone");
        took
    }
}

fn write_script(dir: &Path, name: &str, lo: i64, hi: i64) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, wrk::random_id_script(lo, hi)).expect("write wrk script");
    path
}

/// What the server looked like while wrk ran: connections with an unread request
/// (not being served) and the server's thread count, sampled about once a second.
#[derive(Default)]
struct LoadShape {
    unread: Vec<usize>,
    threads: Vec<u64>,
}

impl LoadShape {
    fn median_unread(&self) -> Option<usize> {
        let mut v = self.unread.clone();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    }

    fn describe(&self) -> String {
        let threads = match (self.threads.iter().min(), self.threads.iter().max()) {
            (Some(lo), Some(hi)) => format!("{lo}–{hi}"),
            _ => "n/a".into(),
        };
        format!(
            "connections with an unread request per sample {:?} of 64, server threads {threads}",
            self.unread
        )
    }
}

fn run_wrk(
    server: &Server,
    path: &str,
    script: Option<&Path>,
    secs: u64,
) -> (WrkResult, Peak, LoadShape) {
    run_wrk_with(server, path, script, secs, 64)
}

fn run_wrk_with(
    server: &Server,
    path: &str,
    script: Option<&Path>,
    secs: u64,
    connections: u32,
) -> (WrkResult, Peak, LoadShape) {
    let start = server.reset_peak();
    let mut shape = LoadShape::default();
    let port = server.addr.port();
    let result = wrk::run(server.addr, path, script, secs, connections, &mut || {
        if let Some(n) = server::unread_connections(port) {
            shape.unread.push(n);
        }
        if let Some(t) = server.status_kib("Threads") {
            shape.threads.push(t);
        }
    });
    eprintln!("    {}", shape.describe());
    (result, server.peak_since(start), shape)
}

/// Flags a wrk run in which many connections sat unserved, and marks its table cell.
fn starvation(report: &mut Report, name: &str, shape: &LoadShape) -> String {
    // tiny_http gives every keep-alive connection a thread of its own; with fewer server
    // threads than connections, a connection with an unread request is one nobody serves
    // (with enough threads it is only waiting for a CPU).
    let too_few_threads = shape.threads.iter().max().is_some_and(|t| *t < 64);
    match shape.median_unread() {
        Some(n) if n >= 8 && too_few_threads => {
            report.notes.push(format!(
                "{name}: only ~{} of 64 wrk connections were being served ({}). The \
                 rest waited: the throughput and p99 describe a server answering a few \
                 connections, not 64.",
                64 - n.min(64),
                shape.describe()
            ));
            format!(" ⚠ {n}/64 conns unserved")
        }
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------
// The floor: the same store calls in-process

struct Floor {
    store: Store,
    actor: Actor,
}

impl Floor {
    fn open(db: &Path, name: &str, role: Role) -> Floor {
        let store = Store::open(db, 4).expect("open floor store");
        let user = store
            .create_user(
                &Username::parse(name).expect("floor user name"),
                "not-a-password-hash",
                role,
            )
            .expect("insert floor user");
        Floor {
            store,
            actor: Actor {
                user_id: user.id,
                role,
            },
        }
    }

    fn create_all(&self, items: Vec<NewPost>) -> (Vec<i64>, Duration) {
        let n = items.len();
        let start = Instant::now();
        let created = self
            .store
            .create_posts(&self.actor, items)
            .expect("floor create_all");
        let took = start.elapsed();
        assert_eq!(created.len(), n);
        (created.iter().map(|p| p.id).collect(), took)
    }

    fn delete_all(&self, ids: &[i64], hard: bool) -> Duration {
        let start = Instant::now();
        let outcome = self
            .store
            .delete_posts(&self.actor, ids, hard)
            .expect("floor delete_all");
        let took = start.elapsed();
        assert_eq!(outcome.deleted.len(), ids.len(), "floor deleted every id");
        took
    }

    fn create_each(&self, items: Vec<NewPost>) -> Duration {
        let start = Instant::now();
        for item in items {
            // The answer a keyed request would record is not made: the floor is the writes.
            let post = self
                .store
                .create_post(&self.actor, item, None, |_| {
                    Ok(Recorded {
                        status: 201,
                        body: Vec::new(),
                    })
                })
                .expect("floor create");
            std::hint::black_box(post);
        }
        start.elapsed()
    }

    /// Operations per second of `op` from `FLOOR_THREADS` threads for `secs`.
    fn rate(&self, secs: f64, op: impl Fn(&Store, &mut Rng) + Sync) -> f64 {
        let op = &op;
        let store = &self.store;
        let start = Instant::now();
        let deadline = start + Duration::from_secs_f64(secs);
        let total: u64 = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..FLOOR_THREADS)
                .map(|t| {
                    scope.spawn(move || {
                        let mut rng = Rng::new(1000 + t);
                        let mut done = 0u64;
                        while Instant::now() < deadline {
                            for _ in 0..16 {
                                op(store, &mut rng);
                            }
                            done += 16;
                        }
                        done
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("floor thread"))
                .sum()
        });
        total as f64 / start.elapsed().as_secs_f64()
    }

    fn lookups_per_sec(&self, secs: f64, lo: i64, hi: i64) -> f64 {
        self.rate(secs, |store, rng| {
            let id = rng.between(lo, hi);
            let post = store.post(id).expect("floor lookup");
            assert!(post.is_some(), "post {id} exists");
            std::hint::black_box(post);
        })
    }

    fn lists_per_sec(&self, secs: f64) -> f64 {
        self.rate(secs, |store, _| {
            let query = ListQuery {
                limit: 20,
                before_id: None,
                author_id: None,
                words: &[],
            };
            let page = store.list_posts(&query).expect("floor list");
            // list_active reads one row past the limit, to tell whether a next page exists.
            assert!((20..=21).contains(&page.len()), "{} rows", page.len());
            std::hint::black_box(page);
        })
    }
}

/// Repeated timings of one write workload, server and floor.
#[derive(Default)]
struct Runs {
    server: Vec<Duration>,
    floor: Vec<Duration>,
    rss: Option<Peak>,
}

fn spread_cell(times: &[Duration]) -> String {
    if times.len() < 2 {
        return ms(median(times));
    }
    let millis = |d: &Duration| d.as_secs_f64() * 1000.0;
    let lo = times.iter().map(millis).fold(f64::INFINITY, f64::min);
    let hi = times.iter().map(millis).fold(0.0, f64::max);
    format!("{} ({lo:.0}–{hi:.0})", ms(median(times)))
}

impl Runs {
    fn keep_peak(&mut self, p: Peak) {
        if self.rss.is_none_or(|old| p.peak_kib > old.peak_kib) {
            self.rss = Some(p);
        }
    }

    fn server_cell(&self) -> String {
        spread_cell(&self.server)
    }

    fn floor_cell(&self) -> String {
        spread_cell(&self.floor)
    }

    fn ratio(&self) -> f64 {
        time_ratio(median(&self.server), median(&self.floor))
    }
}

/// `reps` × (bulk create `n` fresh posts over HTTP, then the same posts through
/// `bulk::create_all`). Returns the timings and every id created on each side.
fn create_runs(
    session: &mut Session,
    floor: &Floor,
    numbers: &mut Numbers,
    n: u64,
    reps: usize,
) -> (Runs, Vec<i64>, Vec<i64>) {
    let mut runs = Runs::default();
    let (mut server_ids, mut floor_ids) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let items = content::new_posts(numbers.take(n));
        settle();
        let start = session.server.reset_peak();
        let (ids, took) = session.bulk_create(&items);
        runs.keep_peak(session.server.peak_since(start));
        runs.server.push(took);
        server_ids.extend(ids);
        settle();
        let (ids, took) = floor.create_all(items);
        runs.floor.push(took);
        floor_ids.extend(ids);
    }
    (runs, server_ids, floor_ids)
}

/// `reps` × (bulk delete 10,000 freshly created posts over HTTP, then the same through
/// `bulk::delete_all` on the floor's own fresh posts).
fn delete_runs(
    session: &mut Session,
    floor: &Floor,
    numbers: &mut Numbers,
    hard: bool,
    reps: usize,
) -> Runs {
    let mut runs = Runs::default();
    for _ in 0..reps {
        let items = content::new_posts(numbers.take(DELETE_ITEMS));
        let (server_ids, _) = session.bulk_create(&items);
        let (floor_ids, _) = floor.create_all(items);
        settle();
        let start = session.server.reset_peak();
        runs.server.push(session.bulk_delete(&server_ids, hard));
        runs.keep_peak(session.server.peak_since(start));
        settle();
        runs.floor.push(floor.delete_all(&floor_ids, hard));
    }
    runs
}

fn id_range(ids: &[i64]) -> (i64, i64) {
    let lo = *ids.iter().min().expect("ids");
    let hi = *ids.iter().max().expect("ids");
    assert_eq!((hi - lo + 1) as usize, ids.len(), "ids are contiguous");
    (lo, hi)
}

fn per_item_us(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

// ---------------------------------------------------------------------------------------

fn report_path() -> PathBuf {
    target_dir().join("bench-report.md")
}

fn main() {
    if let Some(db) = std::env::var_os(bare::DB_VAR) {
        bare::serve(Path::new(&db), postd::config::default_workers());
    }
    let secs = env_number("POSTD_BENCH_SECS", 10);
    let scale = std::env::var("POSTD_BENCH_SCALE").map_or(true, |v| v.trim() != "0");
    let floor_secs = (secs as f64 * 0.3).clamp(1.0, 3.0);
    assert!(
        wrk::available(),
        "wrk is not installed (apt-get install -y wrk)"
    );

    let mut report = Report::default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    report.header.push(format!(
        "{cpus} CPUs; wrk -t2 -c64 -d{secs}s on the same machine; floor reads from \
         {FLOOR_THREADS} threads for {floor_secs:.0} s; release build."
    ));

    report.header.push(format!(
        "load average at start: {} (other processes share these CPUs)",
        load_average()
    ));
    let mut numbers = Numbers::default();
    let dir = TempDir::new("bench-server");
    let db = dir.path().join("postd.db");
    let floor_dir = TempDir::new("bench-floor");

    // ---- start, admin, login
    let bin = server::bin();
    eprintln!("postd bench: starting {}", bin.display());
    report.header.push(format!(
        "binary: `{}` (`{}`)",
        bin.display(),
        server::version_of(&bin)
    ));
    let server = Server::start(&db, &SCALE_FLAGS);
    report.header.push(format!(
        "server: `{}`; its stderr (the default access log) goes to a file beside the db",
        server.banner
    ));
    let mut probe = Client::new(server.addr);
    probe
        .request("GET", "/healthz", &[], None)
        .expect("healthz")
        .expect(200);
    drop(probe);
    let idle = server.status_kib("VmRSS");
    server::add_admin(&db, "bench", PASSWORD);
    let mut session = Session::login(server);
    let after_login = session.server.status_kib("VmRSS");
    report.header.push(format!(
        "idle RSS after start: {} (after the first Argon2 login: {})",
        mib(idle),
        mib(after_login)
    ));
    if session.server.reset_peak().is_none() {
        report
            .notes
            .push("could not write /proc/PID/clear_refs: peak RSS is since start".into());
    }
    let floor = Floor::open(&floor_dir.path().join("floor.db"), "floor", Role::Admin);

    // ---- W1
    eprintln!("W1 bulk create {W1_ITEMS} (x{WRITE_REPS})");
    let (w1, server_ids, floor_ids) =
        create_runs(&mut session, &floor, &mut numbers, W1_ITEMS, WRITE_REPS);
    report.row(
        &format!("W1 bulk create 10,000 posts (1 request; median of {WRITE_REPS})"),
        w1.server_cell(),
        w1.floor_cell(),
        w1.ratio(),
        w1.rss,
    );

    // ---- W2
    eprintln!("W2 GET /posts/{{id}} for {secs} s");
    let (lo, hi) = id_range(&server_ids);
    let script = write_script(dir.path(), "w2.lua", lo, hi);
    // W1's writes are still going out to disk: the reads start after them, as the bare
    // stack's do.
    settle();
    let (w2, rss, shape) = run_wrk(&session.server, "/", Some(&script), secs);
    let flag = starvation(&mut report, "W2", &shape);
    let (flo, fhi) = id_range(&floor_ids);
    let floor_rate = floor.lookups_per_sec(floor_secs, flo, fhi);
    report.row(
        &format!(
            "W2 GET /posts/{{id}} random of {}k, 64 conns",
            server_ids.len() / 1000
        ),
        wrk_cell(&w2) + &flag,
        format!("{} lookups/s", thousands(floor_rate)),
        floor_rate / w2.rps,
        rss,
    );
    check_wrk(&mut report, "W2", &w2);
    bare_stack_row(&mut report, &db, &script, secs, &w2);

    // ---- W3
    eprintln!("W3 GET /posts?limit=20 for {secs} s");
    settle();
    let (w3, rss, shape) = run_wrk(&session.server, "/posts?limit=20", None, secs);
    let flag = starvation(&mut report, "W3", &shape);
    let floor_rate = floor.lists_per_sec(floor_secs);
    report.row(
        "W3 GET /posts?limit=20, 64 conns",
        wrk_cell(&w3) + &flag,
        format!("{} lists/s", thousands(floor_rate)),
        floor_rate / w3.rps,
        rss,
    );
    check_wrk(&mut report, "W3", &w3);

    // ---- W4, W5
    for (name, hard) in [
        ("W4 bulk soft delete", false),
        ("W5 bulk hard delete", true),
    ] {
        eprintln!("{name} (x{WRITE_REPS})");
        let runs = delete_runs(&mut session, &floor, &mut numbers, hard, WRITE_REPS);
        report.row(
            &format!("{name} 10,000 ids (median of {WRITE_REPS})"),
            runs.server_cell(),
            runs.floor_cell(),
            runs.ratio(),
            runs.rss,
        );
    }

    // ---- W6
    eprintln!("W6 {W6_REQUESTS} x POST /posts");
    let items = content::new_posts(numbers.take(W6_REQUESTS));
    let bodies: Vec<Vec<u8>> = items.iter().map(content::post_json).collect();
    let mut writer = Client::new(session.server.addr);
    settle();
    let rss_start = session.server.reset_peak();
    let start = Instant::now();
    for body in &bodies {
        let resp = writer
            .request(
                "POST",
                "/posts",
                &[("Authorization", &session.auth)],
                Some(body),
            )
            .expect("POST /posts");
        resp.expect(201);
    }
    let server_time = start.elapsed();
    let rss = session.server.peak_since(rss_start);
    if writer.connects != 1 {
        report.notes.push(format!(
            "W6: the keep-alive connection was reopened {} times",
            writer.connects - 1
        ));
    }
    settle();
    let floor_time = floor.create_each(items);
    report.row(
        "W6 2,000 × POST /posts, 1 keep-alive conn",
        format!(
            "{} ({:.0} µs/req)",
            ms(server_time),
            per_item_us(server_time, W6_REQUESTS)
        ),
        format!(
            "{} ({:.0} µs/commit)",
            ms(floor_time),
            per_item_us(floor_time, W6_REQUESTS)
        ),
        time_ratio(server_time, floor_time),
        rss,
    );

    // ---- W7
    eprintln!("W7 concurrent POST /posts, 16 conns, for {secs} s");
    let sequential_floor = W6_REQUESTS as f64 / floor_time.as_secs_f64();
    concurrent_creates(&mut report, &session, dir.path(), secs, sequential_floor);

    // ---- Scale: W1 at 1k, 10k, 100k
    let mut cells = Vec::new();
    for n in SCALE_SIZES {
        let reps = if n > W1_ITEMS { 1 } else { WRITE_REPS };
        eprintln!("scale: bulk create {n} (x{reps})");
        let (runs, _, _) = create_runs(&mut session, &floor, &mut numbers, n, reps);
        cells.push(format!(
            "{}: server {:.1} / floor {:.1} µs/item ({}, peak RSS {}{})",
            thousands(n as f64),
            per_item_us(median(&runs.server), n),
            per_item_us(median(&runs.floor), n),
            times(runs.ratio()),
            runs.rss.map_or_else(|| "n/a".to_owned(), peak),
            if reps > 1 {
                format!("; median of {reps}")
            } else {
                String::new()
            }
        ));
    }
    report.scale.push(format!(
        "W1 bulk create µs per item, one request each, on the databases above: {}",
        cells.join("; ")
    ));
    note_problems(&mut report, "main server", &session.server);
    drop(session);
    drop(floor);
    drop(floor_dir);
    drop(dir);

    // ---- Scale: W2/W3 on 1,000,000 posts
    if scale {
        million(&mut report, secs, floor_secs);
    } else {
        report
            .scale
            .push("1,000,000-post reads skipped (POSTD_BENCH_SCALE=0)".into());
    }

    // ---- Scale: postd import / postd export of 1,000,000 posts
    if scale {
        import_export(&mut report, per_item_us(median(&w1.server), W1_ITEMS));
    } else {
        report
            .scale
            .push("1,000,000-post import and export skipped (POSTD_BENCH_SCALE=0)".into());
    }

    report
        .header
        .push(format!("load average at end: {}", load_average()));
    let text = report.render();
    println!("\n{text}");
    let path = report_path();
    match std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
        .and_then(|()| std::fs::write(&path, &text))
    {
        Ok(()) => eprintln!("written to {}", path.display()),
        Err(err) => eprintln!("could not write {}: {err}", path.display()),
    }
}

/// W2's workload against the bare stack (benches/support/bare.rs) on the same database,
/// and W2 as a share of it.
fn bare_stack_row(report: &mut Report, db: &Path, script: &Path, secs: u64, w2: &WrkResult) {
    eprintln!("W2 on the bare stack for {secs} s");
    let exe = std::env::current_exe().expect("the bench binary's path");
    let log = std::fs::File::create(db.with_file_name("bare.log")).expect("bare.log");
    let bare = Server::start_command(
        std::process::Command::new(exe)
            .env(bare::DB_VAR, db)
            .stderr(std::process::Stdio::from(log)),
    );
    settle();
    let (result, rss, _) = run_wrk(&bare, "/", Some(script), secs);
    check_wrk(report, "W2 bare stack", &result);
    report.row(
        "W2 on the bare stack (one rouille route, r2d2, one row)",
        wrk_cell(&result),
        format!("postd: {} req/s", thousands(w2.rps)),
        result.rps / w2.rps,
        rss,
    );
    report.notes.push(format!(
        "W2 is {:.2}× the bare stack's rate (target ≥ 0.8×): the ratio cell of the bare-stack \
         row is bare rate / postd rate.",
        w2.rps / result.rps
    ));
}

/// W7: single creates from 16 connections at once (group commit), against the rate of
/// sequential single commits on the floor (W6's).
fn concurrent_creates(
    report: &mut Report,
    session: &Session,
    dir: &Path,
    secs: u64,
    sequential_floor: f64,
) {
    let token = session.auth.strip_prefix("Bearer ").expect("bearer token");
    let script = dir.join("w7.lua");
    std::fs::write(&script, wrk::create_script(token)).expect("write w7.lua");
    settle();
    let commits_before = commits(&session.server);
    let (w7, rss, _) = run_wrk_with(&session.server, "/posts", Some(&script), secs, 16);
    let commits_after = commits(&session.server);
    check_wrk(report, "W7", &w7);
    report.row(
        "W7 POST /posts from 16 conns at once (wrk -t2 -c16)",
        format!("{} posts/s, p99 {:.2} ms", thousands(w7.rps), w7.p99_ms),
        format!("{} commits/s sequential", thousands(sequential_floor)),
        sequential_floor / w7.rps,
        rss,
    );
    let commits = commits_after - commits_before;
    report.notes.push(format!(
        "W7 is {:.2}× the sequential floor's posts/s (target ≥ 3×); {} commits (one WAL \
         sync each) for {} posts: {:.1} posts per sync.",
        w7.rps / sequential_floor,
        commits,
        w7.requests,
        w7.requests as f64 / commits.max(1.0)
    ));
}

/// The server's `postd_commits_total`: write transactions committed, one sync each.
fn commits(server: &Server) -> f64 {
    let mut client = Client::new(server.addr);
    let auth = format!("Bearer {}", server::METRICS_TOKEN);
    let scrape = client
        .request("GET", "/metrics", &[("Authorization", &auth)], None)
        .expect("scrape /metrics");
    scrape.expect(200);
    String::from_utf8_lossy(&scrape.body)
        .lines()
        .find_map(|line| line.strip_prefix("postd_commits_total "))
        .and_then(|n| n.trim().parse().ok())
        .expect("postd_commits_total in the scrape")
}

fn note_problems(report: &mut Report, name: &str, server: &Server) {
    let (count, first) = server.problems();
    if count > 0 {
        report.notes.push(format!(
            "{name}: {count} stderr lines besides the access log and info lines, e.g. {first:?}"
        ));
    }
}

fn check_wrk(report: &mut Report, name: &str, w: &WrkResult) {
    if w.non_2xx > 0 || w.socket_errors > 0 {
        report.notes.push(format!(
            "{name}: {} non-2xx responses and {} socket errors out of {} requests",
            w.non_2xx, w.socket_errors, w.requests
        ));
    }
}

/// Seeds 1,000,000 posts in-process through the library on the server's database file,
/// measures the read floors on it, then starts the server on the same file.
fn million(report: &mut Report, secs: u64, floor_secs: f64) {
    let dir = TempDir::new("bench-million");
    let db = dir.path().join("postd.db");
    eprintln!("scale: seeding {MILLION} posts in-process");
    let seed_start = Instant::now();
    let seeded = Floor::open(&db, "seed", Role::User);
    let mut ids = Vec::with_capacity(MILLION as usize);
    for chunk in 0..MILLION / SEED_CHUNK {
        let items = content::new_posts(chunk * SEED_CHUNK..(chunk + 1) * SEED_CHUNK);
        ids.extend(seeded.create_all(items).0);
    }
    let seed_time = seed_start.elapsed();
    let (lo, hi) = id_range(&ids);
    drop(ids);
    let db_mib = std::fs::metadata(&db).map_or(0.0, |m| m.len() as f64 / (1 << 20) as f64);

    eprintln!("scale: floor reads on {MILLION} posts");
    let floor_w2 = seeded.lookups_per_sec(floor_secs, lo, hi);
    let floor_w3 = seeded.lists_per_sec(floor_secs);
    drop(seeded);

    let server = Server::start(&db, &[]);
    let idle = server.status_kib("VmRSS");
    let addr: SocketAddr = server.addr;
    eprintln!("scale: wrk on {MILLION} posts at {addr}");
    let script = write_script(dir.path(), "w2m.lua", lo, hi);
    let (w2, rss2, shape2) = run_wrk(&server, "/", Some(&script), secs);
    let flag2 = starvation(report, "W2 at 1M", &shape2);
    let (w3, rss3, shape3) = run_wrk(&server, "/posts?limit=20", None, secs);
    let flag3 = starvation(report, "W3 at 1M", &shape3);
    check_wrk(report, "W2 at 1M", &w2);
    check_wrk(report, "W3 at 1M", &w3);
    report.scale.push(format!(
        "1,000,000 posts, seeded in-process through `postd::store::Store::create_posts` on the \
         server's db file before starting it (10 × 100k, {:.1} s, file {db_mib:.0} MiB); \
         idle RSS {}",
        seed_time.as_secs_f64(),
        mib(idle)
    ));
    report.scale.push(format!(
        "W2 at 1M: server {}{flag2} vs floor {} lookups/s ({}), peak RSS {}",
        wrk_cell(&w2),
        thousands(floor_w2),
        times(floor_w2 / w2.rps),
        peak(rss2)
    ));
    report.scale.push(format!(
        "W3 at 1M: server {}{flag3} vs floor {} lists/s ({}), peak RSS {}",
        wrk_cell(&w3),
        thousands(floor_w3),
        times(floor_w3 / w3.rps),
        peak(rss3)
    ));
    note_problems(report, "1M server", &server);
    drop(server);
}

// ---------------------------------------------------------------------------------------
// postd import / postd export

fn transfer_posts() -> u64 {
    match std::env::var("POSTD_BENCH_TRANSFER_POSTS") {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .unwrap_or_else(|| {
                panic!("POSTD_BENCH_TRANSFER_POSTS must be a whole number ≥ 1, got {text:?}")
            }),
        Err(_) => MILLION,
    }
}

/// `postd import` of N posts (W1's content, one NDJSON file) into a fresh database, then
/// `postd export` of them, each a child process whose time and peak RSS are measured;
/// the import's time per post is set against W1's per item in the same run.
fn import_export(report: &mut Report, w1_us_per_item: f64) {
    let n = transfer_posts();
    let dir = TempDir::new("bench-transfer");
    let db = dir.path().join("postd.db");
    let input = dir.path().join("posts.ndjson");
    eprintln!("scale: writing {n} posts as NDJSON");
    transfer::write_ndjson(&input, 0..n);
    let input_mib = std::fs::metadata(&input).map_or(0.0, |m| m.len() as f64 / (1 << 20) as f64);
    server::add_admin(&db, "bench", PASSWORD);
    let input_arg = input.to_str().expect("UTF-8 temp path");

    eprintln!("scale: postd import of {n} posts");
    settle();
    let import = transfer::run(&db, &["import", input_arg, "--as", "bench"]);
    assert!(
        import
            .stdout
            .contains(&format!("imported {} posts", thousands(n as f64))),
        "{}",
        import.stdout
    );
    let import_us = per_item_us(import.took, n);
    report.scale.push(format!(
        "`postd import` of {} posts (one {input_mib:.0} MiB NDJSON file, W1's content, \
         1,000 lines per transaction): {} ({import_us:.1} µs/post) vs W1 server \
         {w1_us_per_item:.1} µs/item in this run ({}); peak RSS {}",
        thousands(n as f64),
        ms(import.took),
        times(import_us / w1_us_per_item.max(1e-9)),
        mib(import.peak_kib)
    ));

    eprintln!("scale: postd export of {n} posts");
    let output = dir.path().join("export.ndjson");
    settle();
    let export = transfer::run(
        &db,
        &[
            "export",
            "--output",
            output.to_str().expect("UTF-8 temp path"),
        ],
    );
    let output_mib = std::fs::metadata(&output).map_or(0.0, |m| m.len() as f64 / (1 << 20) as f64);
    report.scale.push(format!(
        "`postd export --output` of the same {} posts: {} ({} posts/s, {output_mib:.0} MiB); \
         peak RSS {}",
        thousands(n as f64),
        ms(export.took),
        thousands(n as f64 / export.took.as_secs_f64().max(1e-9)),
        mib(export.peak_kib)
    ));
}
