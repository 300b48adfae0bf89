//! `cargo bench --bench cluster`: postd on a 3-node dqlite cluster on loopback beside
//! single-machine postd, in one run, on the same machine.
//!
//! Both sides are the real release binary with fresh data: one `postd serve --db` on a
//! file, and three `postd serve --cluster-addr … --data-dir …` processes (the first
//! bootstraps, the other two `--join` it), each serving HTTP on a port of its own. Every
//! request for the cluster goes to a **follower's** HTTP port: dqlite 1.11 runs SQL only
//! on the leader, so each of them crosses the wire protocol to the leader, which
//! replicates each commit to a majority through Raft. The two sides get the same posts
//! in the same order and take turns (single first on even turns, cluster first on odd
//! ones) so that other processes' load hits both alike.
//!
//! Workloads (the numbering of `cargo bench --bench postd`): W1 bulk create of 10,000
//! posts in one request (median of 3), W2 random `GET /posts/{id}` and W3
//! `GET /posts?limit=20` under `wrk -c64`, W6 2,000 sequential `POST /posts` on one
//! keep-alive connection, W7 `POST /posts` from `wrk -c16`. Each row gives the single
//! machine's figure, the cluster's, the ratio (how many times slower the cluster is) and
//! the peak RSS (VmHWM) of every process; the database size comes from
//! `postd_db_size_bytes` (on the cluster: pages × page size, held in memory on every
//! node). The targets of the cluster issue are checked at the end.
//!
//! A separate bench target, not a section of `benches/postd.rs`: its rows set a cluster
//! against a server, not a server against the in-process floor, and it needs libdqlite;
//! without it (Debian's `libdqlite0`) it prints one SKIPPED line and exits 0.
//!
//! Environment: `POSTD_BENCH_SECS` (wrk seconds per turn, default 10), `POSTD_BENCH_BIN`
//! (another postd binary for both sides). Needs `wrk` (`apt-get install -y wrk`). The
//! report is printed and written to `target/bench-cluster.md`.

// The helpers are shared with benches/postd.rs; this bench uses a part of them.
#[allow(dead_code)]
mod support;

use postd::model::NewPost;
use postd_testkit::client::Client;
use postd_testkit::TempDir;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::content;
use support::report::{env_number, load_average, median, settle, target_dir, thousands};
use support::server::{self, Peak, Server};
use support::wrk::{self, WrkResult};

const PASSWORD: &str = "bench-password-1234";
const W1_ITEMS: u64 = 10_000;
const W1_REPS: usize = 3;
/// Posts per request when a W1 request failed and its posts are created again in parts.
const FALLBACK_CHUNK: usize = 100;
/// W6's 2,000 creates per side go in blocks that alternate between the sides: a single
/// create waits for its sync (one `fdatasync` locally, a majority's Raft log writes on
/// the cluster), whose latency swings with other processes' writes.
const W6_BLOCKS: usize = 4;
const W6_BLOCK: u64 = 500;
const W7_CONNECTIONS: u32 = 16;
/// How long a node may take to start, join and see three voters.
const FORMING: Duration = Duration::from_secs(60);

/// The cluster issue's floors for this 2-core machine, where all three nodes, wrk and the
/// bench share the CPUs.
const W1_MAX_RATIO: f64 = 3.0;
const W2_MIN_RPS: f64 = 5_000.0;
const W7_MIN_POSTS_PER_SEC: f64 = 1_000.0;
const NODE_RSS_MIB_OVER_DB: f64 = 64.0;

// ---------------------------------------------------------------------------------------
// Formatting

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn times(ratio: f64) -> String {
    format!("{ratio:.2}×")
}

fn spread_ms(times: &[Duration]) -> String {
    let lo = times
        .iter()
        .map(|d| millis(*d))
        .fold(f64::INFINITY, f64::min);
    let hi = times.iter().map(|d| millis(*d)).fold(0.0, f64::max);
    format!("{:.1} ms ({lo:.0}–{hi:.0})", millis(median(times)))
}

fn wrk_cell(w: &WrkResult) -> String {
    format!("{} req/s, p99 {:.2} ms", thousands(w.rps), w.p99_ms)
}

/// Single first on even turns, cluster first on odd ones.
fn turns(turn: usize) -> [usize; 2] {
    if turn.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    }
}

// ---------------------------------------------------------------------------------------
// The two sides

/// One `postd serve` process of a side, and what it is in the cluster.
struct Process {
    server: Server,
    /// `single`, `leader` or `follower`; the entry follower is marked with `*`.
    role: String,
    /// Holds the database file or the Raft state; removed after the process is killed
    /// (fields drop in order).
    _dir: TempDir,
}

/// What the benchmark talks to: single-machine postd, or a cluster through one node.
struct Side {
    name: &'static str,
    processes: Vec<Process>,
    /// The process whose HTTP port every request goes to.
    entry: usize,
    client: Client,
    auth: String,
    ids: Vec<i64>,
}

impl Side {
    fn single(bin: &Path) -> Side {
        let dir = TempDir::new("bench-single");
        let db = dir.path().join("postd.db");
        let server = Server::start_bin(bin, &db, &[]);
        server::add_admin_bin(bin, &db, "bench", PASSWORD);
        Side::logged_in(
            "single machine",
            vec![Process {
                server,
                role: "single".into(),
                _dir: dir,
            }],
            0,
        )
    }

    /// Three nodes on loopback, the first bootstrapping, then an admin made through the
    /// cluster and a login on a follower.
    fn cluster(bin: &Path) -> Side {
        let mut nodes: Vec<(Process, String)> = Vec::new();
        for _ in 0..3 {
            let dir = TempDir::new("bench-node");
            let cluster_addr = free_address();
            let raft = dir.path().join("raft");
            let raft = raft.to_str().expect("UTF-8 temp path");
            let mut args = vec!["--cluster-addr", cluster_addr.as_str(), "--data-dir", raft];
            if let Some((_, first)) = nodes.first() {
                args.extend(["--join", first.as_str()]);
            }
            // The database file is not used in cluster mode; the node's log goes beside it.
            let server = Server::start_bin(bin, &dir.path().join("postd.db"), &args);
            nodes.push((
                Process {
                    server,
                    role: String::new(),
                    _dir: dir,
                },
                cluster_addr,
            ));
        }
        let leader = wait_for_three_voters(&nodes);
        let follower = (leader + 1) % nodes.len();
        for (index, (node, _)) in nodes.iter_mut().enumerate() {
            node.role = match index {
                i if i == leader => "leader".into(),
                i if i == follower => "follower*".into(),
                _ => "follower".into(),
            };
        }
        let out = Command::new(bin)
            .args(["user", "add", "bench", "--admin", "--cluster", &nodes[0].1])
            .env("POSTD_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("cannot run {} user add: {err}", bin.display()));
        assert!(
            out.status.success(),
            "postd user add --cluster failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let processes = nodes.into_iter().map(|(node, _)| node).collect();
        Side::logged_in("3-node cluster", processes, follower)
    }

    fn logged_in(name: &'static str, processes: Vec<Process>, entry: usize) -> Side {
        let mut client = Client::new(processes[entry].server.addr);
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
        Side {
            name,
            processes,
            entry,
            client,
            auth: format!("Bearer {token}"),
            ids: Vec::new(),
        }
    }

    fn entry(&self) -> &Server {
        &self.processes[self.entry].server
    }

    fn reset_peaks(&self) -> Vec<Option<u64>> {
        self.processes
            .iter()
            .map(|p| p.server.reset_peak())
            .collect()
    }

    fn peaks_since(&self, starts: &[Option<u64>]) -> Vec<Peak> {
        self.processes
            .iter()
            .zip(starts)
            .map(|(p, start)| p.server.peak_since(*start))
            .collect()
    }

    /// One `POST /posts/bulk` of `items`: its time, or the answer's status and detail
    /// when it was refused (nothing was created then: a bulk request is all or nothing).
    fn bulk_create(&mut self, items: &[NewPost]) -> Result<Duration, String> {
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
        if resp.status != 201 {
            return Err(format!(
                "{} {}",
                resp.status,
                resp.json()["detail"].as_str().unwrap_or_default()
            ));
        }
        let created = resp.json()["items"].as_array().expect("items").clone();
        assert_eq!(
            created.len(),
            items.len(),
            "bulk create returned every post"
        );
        self.ids
            .extend(created.iter().map(|p| p["id"].as_i64().expect("id")));
        Ok(took)
    }

    /// W1's posts after its request failed, in requests small enough to get through, so
    /// that the later workloads still see the same posts on both sides.
    fn bulk_create_in_chunks(&mut self, items: &[NewPost]) {
        for chunk in items.chunks(FALLBACK_CHUNK) {
            if let Err(err) = self.bulk_create(chunk) {
                panic!(
                    "{}: a bulk create of {} posts failed too: {err}",
                    self.name,
                    chunk.len()
                );
            }
        }
    }

    fn creates(&self, writer: &mut Client, bodies: &[Vec<u8>]) -> Duration {
        let start = Instant::now();
        for body in bodies {
            writer
                .request(
                    "POST",
                    "/posts",
                    &[("Authorization", &self.auth)],
                    Some(body),
                )
                .expect("POST /posts")
                .expect(201);
        }
        start.elapsed()
    }

    /// A number from the entry process's `/metrics`.
    fn metric(&self, name: &str) -> f64 {
        let mut client = Client::new(self.entry().addr);
        let auth = format!("Bearer {}", server::METRICS_TOKEN);
        let scrape = client
            .request("GET", "/metrics", &[("Authorization", &auth)], None)
            .expect("scrape /metrics");
        scrape.expect(200);
        let prefix = format!("{name} ");
        String::from_utf8_lossy(&scrape.body)
            .lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in the scrape"))
    }

    fn wrk(&self, path: &str, script: Option<&Path>, secs: u64, conns: u32) -> WrkResult {
        wrk::run(self.entry().addr, path, script, secs, conns, &mut || {})
    }
}

/// A loopback address nothing listens on now, for a node's dqlite port.
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").to_string()
}

/// What a node's `/healthz` says of the cluster (`null` until it answers 200).
fn cluster_health(addr: SocketAddr) -> serde_json::Value {
    Client::with_timeout(addr, Duration::from_secs(20))
        .request("GET", "/healthz", &[], None)
        .ok()
        .filter(|answer| answer.status == 200)
        .map_or(serde_json::Value::Null, |answer| {
            answer.json()["cluster"].clone()
        })
}

/// Waits until every node sees three voters and one leader; returns the leader's index.
fn wait_for_three_voters(nodes: &[(Process, String)]) -> usize {
    let deadline = Instant::now() + FORMING;
    loop {
        let health: Vec<serde_json::Value> = nodes
            .iter()
            .map(|(node, _)| cluster_health(node.server.addr))
            .collect();
        let leader = health[0]["leader"].as_str().and_then(|leader| {
            nodes
                .iter()
                .position(|(_, cluster_addr)| cluster_addr == leader)
        });
        let agreed = health
            .iter()
            .all(|h| h["voters"] == 3 && h["leader"] == health[0]["leader"]);
        if let (true, Some(leader)) = (agreed, leader) {
            return leader;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster did not form within {FORMING:?}: {health:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------
// The report

/// One workload on both sides.
struct Row {
    workload: String,
    single: String,
    cluster: String,
    /// How many times slower the cluster is: its time / the single's, or the single's
    /// rate / its rate.
    ratio: f64,
    /// Peak RSS of each side's processes during the workload, in KiB.
    peaks: [Vec<Peak>; 2],
}

fn peak_cell(side: &Side, peaks: &[Peak]) -> String {
    side.processes
        .iter()
        .zip(peaks)
        .map(|(p, peak)| {
            let kib = peak
                .peak_kib
                .map_or("n/a".into(), |k| format!("{:.1}", mib(k)));
            format!("{} {kib}", p.role)
        })
        .collect::<Vec<_>>()
        .join(" / ")
        + " MiB"
}

fn main() {
    if !dqlite::node::is_available() {
        eprintln!(
            "SKIPPED cluster bench: libdqlite0 is not installed (apt-get install libdqlite0)"
        );
        return;
    }
    let secs = env_number("POSTD_BENCH_SECS", 10);
    assert!(
        wrk::available(),
        "wrk is not installed (apt-get install -y wrk)"
    );
    let load_start = load_average();
    let bin = server::bin();
    eprintln!("cluster bench: starting {}", bin.display());
    let mut sides = [Side::single(&bin), Side::cluster(&bin)];
    let idle: Vec<Vec<Option<u64>>> = sides
        .iter()
        .map(|s| {
            s.processes
                .iter()
                .map(|p| p.server.status_kib("VmRSS"))
                .collect()
        })
        .collect();
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut next_post = 0u64;
    let mut turn = 0usize;

    // ---- W1: the same 10,000 posts on both sides, turns alternating.
    eprintln!("W1 bulk create {W1_ITEMS} (x{W1_REPS} per side)");
    let mut w1: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut w1_failures: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    let starts: Vec<Vec<Option<u64>>> = sides.iter().map(Side::reset_peaks).collect();
    for _ in 0..W1_REPS {
        let items = content::new_posts(next_post..next_post + W1_ITEMS);
        next_post += W1_ITEMS;
        for i in turns(turn) {
            settle();
            match sides[i].bulk_create(&items) {
                Ok(took) => w1[i].push(took),
                Err(err) => {
                    eprintln!("  {}: W1 failed: {err}", sides[i].name);
                    w1_failures[i].push(err);
                    sides[i].bulk_create_in_chunks(&items);
                }
            }
        }
        turn += 1;
    }
    let w1_cell = |times: &[Duration], failures: &[String]| match (times, failures) {
        (_, []) => spread_ms(times),
        ([], _) => format!("failed {W1_REPS} of {W1_REPS}"),
        _ => format!(
            "{}; failed {} of {W1_REPS}",
            spread_ms(times),
            failures.len()
        ),
    };
    for (side, failures) in sides.iter().zip(&w1_failures) {
        for failure in failures {
            notes.push(format!(
                "W1, {}: a bulk create of {W1_ITEMS} posts was refused ({failure}); its posts \
                 were then created {FALLBACK_CHUNK} per request for the later workloads",
                side.name
            ));
        }
    }
    let w1_ratio = if w1[0].is_empty() || w1[1].is_empty() {
        f64::NAN
    } else {
        millis(median(&w1[1])) / millis(median(&w1[0]))
    };
    rows.push(Row {
        workload: format!("W1 bulk create 10,000 posts (1 request; median of {W1_REPS})"),
        single: w1_cell(&w1[0], &w1_failures[0]),
        cluster: w1_cell(&w1[1], &w1_failures[1]),
        ratio: w1_ratio,
        peaks: [
            sides[0].peaks_since(&starts[0]),
            sides[1].peaks_since(&starts[1]),
        ],
    });

    // ---- W2, W3: reads under wrk -c64, one turn per side.
    let dir = TempDir::new("bench-cluster-scripts");
    let scripts: Vec<PathBuf> = sides
        .iter()
        .enumerate()
        .map(|(i, side)| {
            let lo = *side.ids.iter().min().expect("ids");
            let hi = *side.ids.iter().max().expect("ids");
            let path = dir.path().join(format!("w2-{i}.lua"));
            std::fs::write(&path, wrk::random_id_script(lo, hi)).expect("write wrk script");
            path
        })
        .collect();
    let reads = [
        (
            format!(
                "W2 GET /posts/{{id}} random of {}k, 64 conns",
                sides[0].ids.len() / 1000
            ),
            "/",
            true,
        ),
        (
            "W3 GET /posts?limit=20, 64 conns".to_owned(),
            "/posts?limit=20",
            false,
        ),
    ];
    let mut w2_cluster_rps = 0.0;
    for (workload, path, random_ids) in reads {
        eprintln!("{workload}: {secs} s per side");
        let mut results: [WrkResult; 2] = Default::default();
        let mut peaks: [Vec<Peak>; 2] = Default::default();
        for i in turns(turn) {
            settle();
            let start = sides[i].reset_peaks();
            let script = random_ids.then(|| scripts[i].as_path());
            results[i] = sides[i].wrk(path, script, secs, 64);
            peaks[i] = sides[i].peaks_since(&start);
        }
        turn += 1;
        for (side, result) in sides.iter().zip(&results) {
            note_wrk_errors(&mut notes, &workload, side, result);
        }
        if random_ids {
            w2_cluster_rps = results[1].rps;
        }
        rows.push(Row {
            workload,
            single: wrk_cell(&results[0]),
            cluster: wrk_cell(&results[1]),
            ratio: results[0].rps / results[1].rps.max(1e-9),
            peaks,
        });
    }

    // ---- W6: single creates on one keep-alive connection, blocks alternating.
    eprintln!("W6 {W6_BLOCKS} x {W6_BLOCK} x POST /posts per side");
    let mut w6 = [Duration::ZERO; 2];
    // Connections of their own: the sides' clients sat idle through W2 and W3, longer
    // than the server keeps a silent connection open.
    let mut writers = sides.each_ref().map(|side| Client::new(side.entry().addr));
    let starts: Vec<Vec<Option<u64>>> = sides.iter().map(Side::reset_peaks).collect();
    for _ in 0..W6_BLOCKS {
        let bodies: Vec<Vec<u8>> = content::new_posts(next_post..next_post + W6_BLOCK)
            .iter()
            .map(content::post_json)
            .collect();
        next_post += W6_BLOCK;
        for i in turns(turn) {
            settle();
            w6[i] += sides[i].creates(&mut writers[i], &bodies);
        }
        turn += 1;
    }
    for (side, writer) in sides.iter().zip(&writers) {
        if writer.connects != 1 {
            notes.push(format!(
                "W6, {}: the keep-alive connection was opened {} times",
                side.name, writer.connects
            ));
        }
    }
    let w6_requests = (W6_BLOCKS as u64 * W6_BLOCK) as f64;
    let w6_cell = |d: Duration| {
        format!(
            "{:.1} ms ({:.0} µs/req)",
            millis(d),
            millis(d) * 1000.0 / w6_requests
        )
    };
    rows.push(Row {
        workload: format!(
            "W6 {} × POST /posts, 1 keep-alive conn",
            thousands(w6_requests)
        ),
        single: w6_cell(w6[0]),
        cluster: w6_cell(w6[1]),
        ratio: millis(w6[1]) / millis(w6[0]),
        peaks: [
            sides[0].peaks_since(&starts[0]),
            sides[1].peaks_since(&starts[1]),
        ],
    });

    // ---- W7: single creates from 16 connections at once (group commit on each side).
    eprintln!("W7 POST /posts from {W7_CONNECTIONS} conns: {secs} s per side");
    let mut results: [WrkResult; 2] = Default::default();
    let mut peaks: [Vec<Peak>; 2] = Default::default();
    let mut posts_per_commit = [0.0; 2];
    for i in turns(turn) {
        let token = sides[i].auth.strip_prefix("Bearer ").expect("bearer token");
        let script = dir.path().join(format!("w7-{i}.lua"));
        std::fs::write(&script, wrk::create_script(token)).expect("write w7 script");
        settle();
        let commits_before = sides[i].metric("postd_commits_total");
        let start = sides[i].reset_peaks();
        results[i] = sides[i].wrk("/posts", Some(&script), secs, W7_CONNECTIONS);
        peaks[i] = sides[i].peaks_since(&start);
        let commits = sides[i].metric("postd_commits_total") - commits_before;
        posts_per_commit[i] = results[i].requests as f64 / commits.max(1.0);
    }
    for (side, result) in sides.iter().zip(&results) {
        note_wrk_errors(&mut notes, "W7", side, result);
    }
    let w7_cluster_rps = results[1].rps;
    let w7_cell = |w: &WrkResult, per_commit: f64| {
        format!(
            "{} posts/s, p99 {:.2} ms, {per_commit:.1} posts/commit",
            thousands(w.rps),
            w.p99_ms
        )
    };
    rows.push(Row {
        workload: format!("W7 POST /posts from {W7_CONNECTIONS} conns at once"),
        single: w7_cell(&results[0], posts_per_commit[0]),
        cluster: w7_cell(&results[1], posts_per_commit[1]),
        ratio: results[0].rps / results[1].rps.max(1e-9),
        peaks,
    });

    // ---- sizes, the targets, the report
    let db_bytes = [
        sides[0].metric("postd_db_size_bytes"),
        sides[1].metric("postd_db_size_bytes"),
    ];
    let db_mib = db_bytes.map(|b| b / (1 << 20) as f64);
    let mut table = vec![[
        "workload".to_owned(),
        "single machine".to_owned(),
        "3-node cluster, via a follower".to_owned(),
        "ratio".to_owned(),
        "peak RSS, single".to_owned(),
        "peak RSS per node".to_owned(),
    ]];
    for row in &rows {
        eprintln!(
            "  done: {} | {} | {} | {}",
            row.workload,
            row.single,
            row.cluster,
            times(row.ratio)
        );
        table.push([
            row.workload.clone(),
            row.single.clone(),
            row.cluster.clone(),
            times(row.ratio),
            peak_cell(&sides[0], &row.peaks[0]),
            peak_cell(&sides[1], &row.peaks[1]),
        ]);
    }
    let highest_node_mib = (0..sides[1].processes.len())
        .map(|node| {
            rows.iter()
                .filter_map(|row| row.peaks[1][node].peak_kib)
                .max()
                .map_or(f64::NAN, mib)
        })
        .fold(0.0, f64::max);
    let rss_limit = NODE_RSS_MIB_OVER_DB + db_mib[1];
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let targets = [
        format!(
            "W1 ≤ {W1_MAX_RATIO:.0}× the single machine's time: {}{} ({})",
            times(w1_ratio),
            match w1_failures[1].len() {
                0 => String::new(),
                n => format!(", and {n} of {W1_REPS} cluster requests refused"),
            },
            verdict(w1_failures[1].is_empty() && w1_ratio <= W1_MAX_RATIO)
        ),
        format!(
            "W2 through a follower ≥ {} req/s: {} req/s ({})",
            thousands(W2_MIN_RPS),
            thousands(w2_cluster_rps),
            verdict(w2_cluster_rps >= W2_MIN_RPS)
        ),
        format!(
            "W7 ≥ {} posts/s: {} posts/s ({})",
            thousands(W7_MIN_POSTS_PER_SEC),
            thousands(w7_cluster_rps),
            verdict(w7_cluster_rps >= W7_MIN_POSTS_PER_SEC)
        ),
        format!(
            "peak RSS per node ≤ {NODE_RSS_MIB_OVER_DB:.0} MiB + the database \
             ({:.1} MiB) = {rss_limit:.1} MiB: highest {highest_node_mib:.1} MiB ({})",
            db_mib[1],
            verdict(highest_node_mib <= rss_limit)
        ),
    ];

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut text = String::from("# postd: single machine and a 3-node dqlite cluster\n\n");
    text.push_str(&format!(
        "- binary: `{}` (`{}`); {}\n",
        bin.display(),
        server::version_of(&bin),
        libdqlite_package()
    ));
    text.push_str(&format!(
        "- {cpus} CPUs shared by every process (all nodes, wrk, the bench); load average \
         at start {load_start}, at end {}; wrk -t2 for {secs} s per turn\n",
        load_average()
    ));
    for (side, idle) in sides.iter().zip(&idle) {
        let cells: Vec<String> = side
            .processes
            .iter()
            .zip(idle)
            .map(|(p, kib)| format!("{} {:.1}", p.role, kib.map_or(f64::NAN, mib)))
            .collect();
        text.push_str(&format!(
            "- {}: idle RSS after start {} MiB; `{}`\n",
            side.name,
            cells.join(" / "),
            side.entry().banner
        ));
    }
    text.push_str(&format!(
        "- database at the end: single {:.1} MiB (file + WAL), cluster {:.1} MiB \
         (`postd_db_size_bytes`: pages × page size, in memory on every node)\n\n",
        db_mib[0], db_mib[1]
    ));
    text.push_str(&support::markdown_table(&table));
    text.push_str(
        "\nratio: how many times slower the cluster is (its time / the single machine's; \
         for W2, W3, W7 the single machine's rate / its rate). Every cluster request goes \
         to the HTTP port of the follower marked `*`. peak RSS: VmHWM during the workload \
         (reset through /proc/PID/clear_refs before it). Turns alternate between the sides; \
         writes `sync` before each turn. posts/commit: W7's posts over the \
         `postd_commits_total` of the process that took the requests.\n\n## Targets \
         (floors for 2 shared cores)\n\n",
    );
    for line in &targets {
        text.push_str(&format!("- {line}\n"));
    }
    for side in &sides {
        for process in &side.processes {
            let (count, first) = process.server.problems();
            if count > 0 {
                notes.push(format!(
                    "{} {}: {count} stderr lines besides the access log and info lines, e.g. {first:?}",
                    side.name, process.role
                ));
            }
        }
    }
    if !notes.is_empty() {
        text.push_str("\n## Notes\n\n");
        for line in &notes {
            text.push_str(&format!("- {line}\n"));
        }
    }
    println!("\n{text}");
    let path = target_dir().join("bench-cluster.md");
    match std::fs::write(&path, &text) {
        Ok(()) => eprintln!("written to {}", path.display()),
        Err(err) => eprintln!("could not write {}: {err}", path.display()),
    }
}

/// Which libdqlite the nodes load, as the package manager names it: the library's own
/// `dqlite_version_number()` says 1.10.0 in Debian's 1.11.1 (upstream did not bump it).
fn libdqlite_package() -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "libdqlite0"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success() && !out.stdout.is_empty())
        .map_or_else(
            || "libdqlite (package version unknown)".to_owned(),
            |out| format!("libdqlite0 {}", String::from_utf8_lossy(&out.stdout)),
        )
}

fn note_wrk_errors(notes: &mut Vec<String>, workload: &str, side: &Side, w: &WrkResult) {
    if w.non_2xx > 0 || w.socket_errors > 0 {
        notes.push(format!(
            "{workload}, {}: {} non-2xx responses and {} socket errors out of {} requests",
            side.name, w.non_2xx, w.socket_errors, w.requests
        ));
    }
}
