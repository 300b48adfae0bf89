//! `cargo bench --bench compare`: two postd binaries side by side in one run, by default
//! this package's release build (glibc) and the static musl build (README "Install on a
//! server"). Both servers run at once, each on its own fresh database, and take turns
//! (A B, then B A, …) so that load from other processes hits both alike. Prints one table,
//! W1, W2, W6, W7, W8 and W9 with the ratio B / A, then the resident memory of each: after
//! start, the peak during each workload, and after 8 × W1 followed by idling (what the
//! allocator gives back). Also written to `target/bench-compare.md`. To compare two builds
//! of postd rather than two targets, point both variables at binaries (e.g. the previous
//! release and this one).
//!
//! W7 is `POST /posts` from 16 connections (wrk), W8 2,000 sequential `PATCH /posts/{id}`
//! on one connection (each keeps a revision since v1.2), W9 a bulk `PATCH` of 10,000
//! posts. With `POSTD_BENCH_STREAMS=64`, W2 runs a second time with that many idle
//! `GET /events` streams open on each side (skipped for a binary without the feed), and
//! the memory they cost is reported.
//!
//! Build the second binary first: `cargo build --release --target x86_64-unknown-linux-musl`.
//! Environment: `POSTD_BENCH_BIN` (A, default this package's release build),
//! `POSTD_BENCH_BIN_B` (B, default `target/x86_64-unknown-linux-musl/release/postd`),
//! `POSTD_BENCH_SECS` (wrk seconds per W2 turn, default 5), `POSTD_BENCH_ROUNDS` (W2 turns
//! per binary, default 3). W2 needs `wrk` (`apt-get install -y wrk`).

// The helpers are shared with benches/postd.rs; this bench uses a part of them.
#[allow(dead_code)]
mod support;

use postd::model::NewPost;
use postd_testkit::client::Client;
use postd_testkit::TempDir;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::content;
use support::report::{env_number, load_average, median, settle, target_dir, thousands};
use support::server::{self, Server};
use support::wrk::{self, WrkResult};

const PASSWORD: &str = "bench-password-1234";
/// Bulk creates of 10,000 posts per binary: the allocator check of README "Install on a
/// server" (resident memory after repeated 10k-item bulk creates, then idle).
const W1_ROUNDS: usize = 8;
const W1_ITEMS: u64 = 10_000;
/// W6 is 2,000 single creates per binary, in blocks that alternate between the binaries.
/// Single creates wait for one fsync each, whose latency swings with other processes'
/// writes; small blocks spread that over both binaries.
const W6_BLOCKS: usize = 8;
const W6_BLOCK: u64 = 250;
/// W8: 2,000 sequential PATCHes per binary, in blocks like W6.
const W8_BLOCKS: usize = 8;
const W8_BLOCK: usize = 250;
/// W9: bulk PATCH of 10,000 posts, this many times per binary.
const W9_ROUNDS: usize = 3;
/// Long enough for freed memory to be handed back (glibc trims on free; musl unmaps).
const IDLE: Duration = Duration::from_secs(5);
/// The memory targets for the binary people copy.
const IDLE_TARGET_MIB: f64 = 16.0;
const PEAK_TARGET_MIB: f64 = 48.0;

struct Side {
    label: String,
    version: String,
    bin: PathBuf,
    server: Server,
    client: Client,
    auth: String,
    dir: TempDir,
    ids: Vec<i64>,
    w1: Vec<Duration>,
    w2: Vec<WrkResult>,
    w2_streams: Vec<WrkResult>,
    w6: Duration,
    w7: Vec<WrkResult>,
    w8: Duration,
    w9: Vec<Duration>,
    /// Open `GET /events` streams (POSTD_BENCH_STREAMS), held until the end.
    streams: Vec<std::net::TcpStream>,
    /// VmRSS / VmHWM readings in KiB, by name.
    rss: Vec<(&'static str, Option<u64>)>,
}

impl Side {
    fn start(bin: PathBuf, tag: &str) -> Side {
        assert!(
            bin.is_file(),
            "{} does not exist; build it first (cargo build --release --target \
             x86_64-unknown-linux-musl) or point POSTD_BENCH_BIN / POSTD_BENCH_BIN_B at a binary",
            bin.display()
        );
        let version = server::version_of(&bin);
        let label = version_label(&version).unwrap_or(tag).to_owned();
        let dir = TempDir::new(&format!("compare-{tag}"));
        let db = dir.path().join("postd.db");
        let server = Server::start_bin(&bin, &db, &[]);
        let mut client = Client::new(server.addr);
        client
            .request("GET", "/healthz", &[], None)
            .expect("healthz")
            .expect(200);
        server::add_admin_bin(&bin, &db, "bench", PASSWORD);
        Side {
            label,
            version,
            bin,
            server,
            client,
            auth: String::new(),
            dir,
            ids: Vec::new(),
            w1: Vec::new(),
            w2: Vec::new(),
            w2_streams: Vec::new(),
            w6: Duration::ZERO,
            w7: Vec::new(),
            w8: Duration::ZERO,
            w9: Vec::new(),
            streams: Vec::new(),
            rss: Vec::new(),
        }
    }

    fn login(&mut self) {
        let body =
            serde_json::to_vec(&serde_json::json!({"username": "bench", "password": PASSWORD}))
                .expect("login JSON");
        let resp = self
            .client
            .request("POST", "/auth/login", &[], Some(&body))
            .expect("login request");
        resp.expect(200);
        let token = resp.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned();
        self.auth = format!("Bearer {token}");
    }

    fn note_rss(&mut self, name: &'static str) {
        let kib = self.server.status_kib("VmRSS");
        self.rss.push((name, kib));
    }

    fn note_peak(&mut self, name: &'static str) {
        let kib = self.server.status_kib("VmHWM");
        self.rss.push((name, kib));
    }

    fn rss(&self, name: &str) -> Option<u64> {
        self.rss
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, k)| *k)
    }

    fn bulk_create(&mut self, body: &[u8]) {
        let start = Instant::now();
        let resp = self
            .client
            .request(
                "POST",
                "/posts/bulk",
                &[("Authorization", &self.auth)],
                Some(body),
            )
            .expect("bulk create request");
        self.w1.push(start.elapsed());
        let resp = resp.expect(201);
        let items = resp.json()["items"].as_array().expect("items").clone();
        assert_eq!(items.len() as u64, W1_ITEMS);
        self.ids
            .extend(items.iter().map(|p| p["id"].as_i64().expect("id")));
    }

    fn creates(&mut self, bodies: &[Vec<u8>]) {
        let start = Instant::now();
        for body in bodies {
            self.client
                .request(
                    "POST",
                    "/posts",
                    &[("Authorization", &self.auth)],
                    Some(body),
                )
                .expect("POST /posts")
                .expect(201);
        }
        self.w6 += start.elapsed();
    }
}

impl Side {
    /// PATCHes the body of each post in `ids`, one request after another.
    fn patches(&mut self, ids: &[i64], round: usize) {
        let start = Instant::now();
        for id in ids {
            let body = serde_json::to_vec(&serde_json::json!({
                "body": format!("edited in round {round}: {}", content::body(*id as u64))
            }))
            .expect("patch JSON");
            self.client
                .request(
                    "PATCH",
                    &format!("/posts/{id}"),
                    &[("Authorization", &self.auth)],
                    Some(&body),
                )
                .expect("PATCH /posts/{id}")
                .expect(200);
        }
        self.w8 += start.elapsed();
    }

    /// One bulk PATCH of the first 10,000 posts' bodies.
    fn bulk_patch(&mut self, round: usize) {
        let items: Vec<serde_json::Value> = self.ids[..W1_ITEMS as usize]
            .iter()
            .map(|id| serde_json::json!({"id": id, "body": format!("bulk edit {round} of {id}")}))
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({ "items": items })).expect("JSON");
        let start = Instant::now();
        self.client
            .request(
                "PATCH",
                "/posts/bulk",
                &[("Authorization", &self.auth)],
                Some(&body),
            )
            .expect("PATCH /posts/bulk")
            .expect(200);
        self.w9.push(start.elapsed());
    }

    /// Opens `count` `GET /events` streams that stay idle (from the newest event on);
    /// false when this binary has no change feed.
    fn open_streams(&mut self, count: usize) -> bool {
        use std::io::{Read, Write};
        let head = self
            .client
            .request("HEAD", "/events", &[("Authorization", &self.auth)], None)
            .expect("HEAD /events");
        if head.status != 200 {
            return false;
        }
        let newest = self
            .client
            .request(
                "GET",
                "/admin/audit?limit=1",
                &[("Authorization", &self.auth)],
                None,
            )
            .expect("GET /admin/audit")
            .json()["items"][0]["id"]
            .as_i64()
            .unwrap_or(0);
        for _ in 0..count {
            let mut stream =
                std::net::TcpStream::connect(self.server.addr).expect("connect for a stream");
            write!(
                stream,
                "GET /events?since={newest} HTTP/1.1\r\nHost: bench\r\nAuthorization: {}\r\n\r\n",
                self.auth
            )
            .expect("stream request");
            // Its head (and the opening comment) tell that it is open.
            let mut first = [0u8; 512];
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let read = stream.read(&mut first).expect("stream head");
            assert!(
                first[..read].starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&first[..read])
            );
            self.streams.push(stream);
        }
        true
    }
}

/// `gnu` or `musl` from a `postd --version` line naming the target triple.
fn version_label(version: &str) -> Option<&'static str> {
    if version.contains("-linux-musl") {
        Some("musl")
    } else if version.contains("-linux-gnu") {
        Some("gnu")
    } else {
        None
    }
}

/// A then B on even rounds, B then A on odd ones.
fn turns(round: usize) -> [usize; 2] {
    if round.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

fn ratio(b: f64, a: f64, what: &str) -> String {
    if a > 0.0 && b.is_finite() {
        format!("{:.2}× {what}", b / a)
    } else {
        "n/a".into()
    }
}

fn main() {
    let secs = env_number("POSTD_BENCH_SECS", 5);
    let rounds = env_number("POSTD_BENCH_ROUNDS", 3) as usize;
    assert!(
        wrk::available(),
        "wrk is not installed (apt-get install -y wrk)"
    );
    let bin_a = server::bin();
    let bin_b = std::env::var_os("POSTD_BENCH_BIN_B").map_or_else(
        || target_dir().join("x86_64-unknown-linux-musl/release/postd"),
        PathBuf::from,
    );
    let load_start = load_average();

    let mut sides = [Side::start(bin_a, "A"), Side::start(bin_b, "B")];
    if sides[0].label == sides[1].label {
        sides[0].label = format!("A ({})", sides[0].label);
        sides[1].label = format!("B ({})", sides[1].label);
    }
    std::thread::sleep(Duration::from_secs(1));
    for side in &mut sides {
        side.note_rss("after start");
        side.login();
        side.note_rss("after the first login (Argon2id, 19 MiB)");
    }

    // ---- W1: 10,000-post bulk creates, the same posts on both sides.
    eprintln!("W1: {W1_ROUNDS} x bulk create {W1_ITEMS} per binary, alternating");
    for side in &sides {
        side.server.reset_peak();
    }
    for round in 0..W1_ROUNDS {
        let first = round as u64 * W1_ITEMS;
        let items: Vec<NewPost> = content::new_posts(first..first + W1_ITEMS);
        let body = content::bulk_create_json(&items);
        for i in turns(round) {
            settle();
            sides[i].bulk_create(&body);
        }
    }
    for side in &mut sides {
        side.note_peak("peak during 8 × W1");
    }
    eprintln!("idle {} s", IDLE.as_secs());
    std::thread::sleep(IDLE);
    for side in &mut sides {
        side.note_rss("after 8 × W1, then idle 5 s");
    }

    // ---- W2: random GET /posts/{id} under wrk, turns alternating.
    eprintln!("W2: {rounds} x {secs} s of wrk per binary, alternating");
    let scripts: Vec<PathBuf> = sides
        .iter()
        .map(|side| {
            let lo = *side.ids.iter().min().expect("ids");
            let hi = *side.ids.iter().max().expect("ids");
            let path = side.dir.path().join("w2.lua");
            std::fs::write(&path, wrk::random_id_script(lo, hi)).expect("write wrk script");
            path
        })
        .collect();
    for side in &sides {
        side.server.reset_peak();
    }
    for round in 0..rounds {
        for i in turns(round) {
            let side = &mut sides[i];
            eprintln!("  {}", side.label);
            let result = wrk::run(
                side.server.addr,
                "/",
                Some(&scripts[i]),
                secs,
                64,
                &mut || {},
            );
            side.w2.push(result);
        }
    }
    for side in &mut sides {
        side.note_peak("peak during W2");
    }

    // ---- W6: single creates on one keep-alive connection, blocks alternating.
    eprintln!("W6: {W6_BLOCKS} x {W6_BLOCK} x POST /posts per binary, alternating");
    for side in &sides {
        side.server.reset_peak();
    }
    for block in 0..W6_BLOCKS {
        let first = 1_000_000 + block as u64 * W6_BLOCK;
        let bodies: Vec<Vec<u8>> = content::new_posts(first..first + W6_BLOCK)
            .iter()
            .map(content::post_json)
            .collect();
        for i in turns(block) {
            settle();
            sides[i].creates(&bodies);
        }
    }
    for side in &mut sides {
        side.note_peak("peak during W6");
    }

    // ---- W7: POST /posts from 16 connections at once (group commit), turns alternating.
    eprintln!("W7: {rounds} x {secs} s of wrk -c16 POST /posts per binary, alternating");
    let create_scripts: Vec<PathBuf> = sides
        .iter()
        .map(|side| {
            let token = side.auth.trim_start_matches("Bearer ");
            let path = side.dir.path().join("w7.lua");
            std::fs::write(&path, wrk::create_script(token)).expect("write wrk script");
            path
        })
        .collect();
    for side in &sides {
        side.server.reset_peak();
    }
    for round in 0..rounds {
        for i in turns(round) {
            settle();
            let side = &mut sides[i];
            let result = wrk::run(
                side.server.addr,
                "/posts",
                Some(&create_scripts[i]),
                secs,
                16,
                &mut || {},
            );
            side.w7.push(result);
        }
    }
    for side in &mut sides {
        side.note_peak("peak during W7");
    }

    // ---- W8: sequential PATCHes on one connection, blocks alternating.
    eprintln!("W8: {W8_BLOCKS} x {W8_BLOCK} x PATCH /posts/{{id}} per binary, alternating");
    for side in &sides {
        side.server.reset_peak();
    }
    for block in 0..W8_BLOCKS {
        for i in turns(block) {
            settle();
            let ids: Vec<i64> = sides[i].ids[block * W8_BLOCK..(block + 1) * W8_BLOCK].to_vec();
            sides[i].patches(&ids, block);
        }
    }
    for side in &mut sides {
        side.note_peak("peak during W8");
    }

    // ---- W9: bulk PATCH of 10,000 posts.
    eprintln!("W9: {W9_ROUNDS} x bulk PATCH of 10,000 per binary, alternating");
    for side in &sides {
        side.server.reset_peak();
    }
    for round in 0..W9_ROUNDS {
        for i in turns(round) {
            settle();
            sides[i].bulk_patch(round);
        }
    }
    for side in &mut sides {
        side.note_peak("peak during W9");
    }

    // ---- W2 again with idle change-feed streams open.
    let stream_count = env_number("POSTD_BENCH_STREAMS", 1) as usize;
    if std::env::var_os("POSTD_BENCH_STREAMS").is_some() {
        std::thread::sleep(IDLE);
        for side in &mut sides {
            side.note_rss("before opening the streams, idle 5 s");
            if side.open_streams(stream_count) {
                std::thread::sleep(Duration::from_secs(2));
                side.note_rss("with the idle streams open");
            }
        }
        eprintln!("W2 with {stream_count} idle streams: {rounds} x {secs} s per binary");
        for round in 0..rounds {
            for i in turns(round) {
                let side = &mut sides[i];
                if side.streams.is_empty() {
                    continue;
                }
                let result = wrk::run(
                    side.server.addr,
                    "/",
                    Some(&scripts[i]),
                    secs,
                    64,
                    &mut || {},
                );
                side.w2_streams.push(result);
            }
        }
    }
    std::thread::sleep(IDLE);
    for side in &mut sides {
        side.note_rss("at the end, idle 5 s");
    }

    // ---- report
    let (a, b) = (&sides[0], &sides[1]);
    let w6_requests = (W6_BLOCKS as u64 * W6_BLOCK) as f64;
    let mut rows = vec![[
        "workload".to_owned(),
        a.label.clone(),
        b.label.clone(),
        format!("{} / {}", b.label, a.label),
    ]];
    let w1_cell = |s: &Side| {
        let lo = s.w1.iter().map(|d| ms(*d)).fold(f64::INFINITY, f64::min);
        let hi = s.w1.iter().map(|d| ms(*d)).fold(0.0, f64::max);
        format!("{:.1} ms ({lo:.0}–{hi:.0})", ms(median(&s.w1)))
    };
    rows.push([
        format!("W1 bulk create 10,000 posts (median, min–max of {W1_ROUNDS})"),
        w1_cell(a),
        w1_cell(b),
        ratio(ms(median(&b.w1)), ms(median(&a.w1)), "the time"),
    ]);
    let rps = |s: &Side| median(&s.w2.iter().map(|w| w.rps).collect::<Vec<_>>());
    let p99 = |s: &Side| median(&s.w2.iter().map(|w| w.p99_ms).collect::<Vec<_>>());
    let w2_cell = |s: &Side| {
        let lo = s.w2.iter().map(|w| w.rps).fold(f64::INFINITY, f64::min);
        let hi = s.w2.iter().map(|w| w.rps).fold(0.0, f64::max);
        format!(
            "{} req/s ({}–{}), p99 {:.2} ms",
            thousands(rps(s)),
            thousands(lo),
            thousands(hi),
            p99(s)
        )
    };
    rows.push([
        format!(
            "W2 GET /posts/{{id}} random of {}k, 64 conns (median, min–max of {rounds} × {secs} s)",
            a.ids.len() / 1000
        ),
        w2_cell(a),
        w2_cell(b),
        ratio(rps(b), rps(a), "the rate"),
    ]);
    let w6_cell = |s: &Side| {
        format!(
            "{:.1} ms ({:.0} µs/req)",
            ms(s.w6),
            ms(s.w6) * 1000.0 / w6_requests
        )
    };
    rows.push([
        format!(
            "W6 {} × POST /posts, 1 keep-alive conn ({W6_BLOCKS} blocks)",
            thousands(w6_requests)
        ),
        w6_cell(a),
        w6_cell(b),
        ratio(ms(b.w6), ms(a.w6), "the time"),
    ]);
    let w7_rate = |s: &Side| median(&s.w7.iter().map(|w| w.rps).collect::<Vec<_>>());
    let w7_cell = |s: &Side| {
        format!(
            "{} posts/s, p99 {:.2} ms",
            thousands(w7_rate(s)),
            median(&s.w7.iter().map(|w| w.p99_ms).collect::<Vec<_>>())
        )
    };
    rows.push([
        format!("W7 POST /posts, 16 conns (wrk; median of {rounds} × {secs} s)"),
        w7_cell(a),
        w7_cell(b),
        ratio(w7_rate(b), w7_rate(a), "the rate"),
    ]);
    let w8_requests = (W8_BLOCKS * W8_BLOCK) as f64;
    let w8_cell = |s: &Side| {
        format!(
            "{:.1} ms ({:.0} µs/req)",
            ms(s.w8),
            ms(s.w8) * 1000.0 / w8_requests
        )
    };
    rows.push([
        format!(
            "W8 {} × PATCH /posts/{{id}}, 1 keep-alive conn ({W8_BLOCKS} blocks)",
            thousands(w8_requests)
        ),
        w8_cell(a),
        w8_cell(b),
        ratio(ms(b.w8), ms(a.w8), "the time"),
    ]);
    let w9_cell = |s: &Side| {
        let lo = s.w9.iter().map(|d| ms(*d)).fold(f64::INFINITY, f64::min);
        let hi = s.w9.iter().map(|d| ms(*d)).fold(0.0, f64::max);
        format!("{:.1} ms ({lo:.0}–{hi:.0})", ms(median(&s.w9)))
    };
    rows.push([
        format!("W9 bulk PATCH of 10,000 posts (median, min–max of {W9_ROUNDS})"),
        w9_cell(a),
        w9_cell(b),
        ratio(ms(median(&b.w9)), ms(median(&a.w9)), "the time"),
    ]);
    if a.w2_streams.len() + b.w2_streams.len() > 0 {
        let rps_streams = |s: &Side| {
            if s.w2_streams.is_empty() {
                return f64::NAN;
            }
            median(&s.w2_streams.iter().map(|w| w.rps).collect::<Vec<_>>())
        };
        let cell = |s: &Side| {
            if s.w2_streams.is_empty() {
                "no change feed".to_owned()
            } else {
                format!(
                    "{} req/s ({:.2}× its W2)",
                    thousands(rps_streams(s)),
                    rps_streams(s) / rps(s)
                )
            }
        };
        rows.push([
            format!(
                "W2 with {} idle GET /events streams open",
                a.streams.len().max(b.streams.len())
            ),
            cell(a),
            cell(b),
            ratio(rps_streams(b), rps_streams(a), "the rate"),
        ]);
    }
    let mut names: Vec<&str> = a.rss.iter().map(|(n, _)| *n).collect();
    for (name, _) in &b.rss {
        if !names.contains(name) {
            names.push(name);
        }
    }
    for name in names {
        let (ka, kb) = (a.rss(name), b.rss(name));
        rows.push([
            format!("RSS {name}"),
            mib(ka),
            mib(kb),
            match (ka, kb) {
                (Some(ka), Some(kb)) => ratio(kb as f64, ka as f64, "the memory"),
                _ => "n/a".into(),
            },
        ]);
    }

    let mut text = String::from("# postd: two binaries side by side\n\n");
    for side in &sides {
        text.push_str(&format!(
            "- {}: `{}` (`{}`)\n",
            side.label,
            side.bin.display(),
            side.version
        ));
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    text.push_str(&format!(
        "- {cpus} CPUs; load average at start {load_start}, at end {} (other processes share \
         these CPUs); wrk -t2 -c64 on the same machine\n\n",
        load_average()
    ));
    text.push_str(&support::markdown_table(&rows));
    text.push_str(
        "\nTurns alternate between the binaries (A B, B A, …); writes `sync` before each \
         turn. Peaks are VmHWM since the workload began (reset through \
         /proc/PID/clear_refs).\n",
    );
    let mut notes = Vec::new();
    for side in &sides {
        let idle = side.rss("after 8 × W1, then idle 5 s");
        let peak = [
            "peak during 8 × W1",
            "peak during W2",
            "peak during W6",
            "peak during W7",
            "peak during W8",
            "peak during W9",
        ]
        .iter()
        .filter_map(|n| side.rss(n))
        .max();
        let within = |kib: Option<u64>, target: f64| {
            kib.map_or("n/a", |k| {
                if k as f64 / 1024.0 <= target {
                    "within"
                } else {
                    "OVER"
                }
            })
        };
        notes.push(format!(
            "- {}: idle after 8 × W1 {} ({} the {IDLE_TARGET_MIB} MiB target), highest peak {} \
             ({} the {PEAK_TARGET_MIB} MiB target)\n",
            side.label,
            mib(idle),
            within(idle, IDLE_TARGET_MIB),
            mib(peak),
            within(peak, PEAK_TARGET_MIB)
        ));
        let (count, first) = side.server.problems();
        if count > 0 {
            notes.push(format!(
                "- {}: {count} stderr lines besides the access log and info lines, e.g. {first:?}\n",
                side.label
            ));
        }
        for (name, runs) in [
            ("W2", &side.w2),
            ("W7", &side.w7),
            ("W2 with streams", &side.w2_streams),
        ] {
            for (round, w) in runs.iter().enumerate() {
                if w.non_2xx > 0 || w.socket_errors > 0 {
                    notes.push(format!(
                        "- {} {name} turn {round}: {} non-2xx, {} socket errors of {} requests\n",
                        side.label, w.non_2xx, w.socket_errors, w.requests
                    ));
                }
            }
        }
        if let (Some(before), Some(with)) = (
            side.rss("before opening the streams, idle 5 s"),
            side.rss("with the idle streams open"),
        ) {
            notes.push(format!(
                "- {}: {} idle GET /events streams cost {:.1} MiB of RSS\n",
                side.label,
                side.streams.len(),
                (with as f64 - before as f64) / 1024.0
            ));
        }
    }
    text.push('\n');
    text.extend(notes);
    println!("\n{text}");
    let path = target_dir().join("bench-compare.md");
    match std::fs::write(&path, &text) {
        Ok(()) => eprintln!("written to {}", path.display()),
        Err(err) => eprintln!("could not write {}: {err}", path.display()),
    }
}
