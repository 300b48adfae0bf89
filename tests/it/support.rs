//! What postd's integration tests share, on top of the test kit (tests/testkit): the real
//! `postd` binary started on a free loopback port with a fresh temporary directory, HTTP
//! requests to it (one connection each, read until the server closes it, so a test can
//! also send bytes no HTTP library would), users and tokens, and the command line.

pub use postd_testkit::http::Response;
pub use postd_testkit::TempDir;
use postd_testkit::{client, http, ServerProcess};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_postd");
pub const PASSWORD: &str = "correct-horse-battery";

/// How long a server may take to print its start-up line (a loaded 2-core machine, a
/// database recovering after SIGKILL).
pub const START_WITHIN: Duration = Duration::from_secs(60);
/// How long a request may wait for its answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

pub struct Server {
    process: Option<ServerProcess>,
    pub addr: SocketAddr,
    pub db: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
    pub dir: TempDir,
}

#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub name: String,
    pub token: String,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[], &[])
    }

    /// Starts with extra environment variables and command-line arguments.
    pub fn start_with(env: &[(&str, &str)], args: &[&str]) -> Server {
        let dir = TempDir::new("srv");
        let db = dir.path().join("postd.db");
        Server::start_on(dir, db, env, args)
    }

    /// Starts on an existing database file (the temp dir holds only the logs then).
    pub fn start_with_db(db: PathBuf, env: &[(&str, &str)], args: &[&str]) -> Server {
        Server::start_on(TempDir::new("srv"), db, env, args)
    }

    fn start_on(dir: TempDir, db: PathBuf, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut server = Server {
            process: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: args.iter().map(|a| a.to_string()).collect(),
            dir,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("stderr.log"))
            .expect("stderr log");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--db")
            .arg(&self.db);
        cmd.args(&self.args);
        // Tests register many users from one address; the ones about the sign-up limit
        // set it themselves.
        cmd.env("POSTD_REGISTER_LIMIT", "0");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let process = ServerProcess::start(cmd.stderr(stderr), START_WITHIN)
            .unwrap_or_else(|err| panic!("{err}; stderr: {}", self.stderr()));
        self.addr = process.addr();
        self.process = Some(process);
    }

    /// The start-up line (it names the `--metrics-addr` listener, when there is one).
    pub fn banner(&self) -> &str {
        self.process.as_ref().map_or("", ServerProcess::banner)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        self.process = None;
    }

    /// Kills and starts again on the same database (a new port).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, ServerProcess::pid)
    }

    /// Waits up to `within` for the server to exit by itself (after SIGTERM).
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        self.process
            .as_mut()
            .and_then(|process| process.wait_exit(within))
            .unwrap_or_else(|| panic!("server did not stop within {within:?}"))
    }

    /// Sends raw bytes as one request and reads the whole answer (the connection closes).
    pub fn raw(&self, bytes: &[u8]) -> Response {
        let answer = client::send_until_close(self.addr, bytes, ANSWER_WITHIN).expect("connect");
        Response::parse(&answer).unwrap_or_else(|| {
            panic!(
                "unparseable response: {:?}",
                String::from_utf8_lossy(&answer)
            )
        })
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        let mut all_headers = vec![("Connection", "close")];
        all_headers.extend_from_slice(headers);
        self.raw(&http::request(method, path, self.addr, &all_headers, body))
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        self.request("GET", path, &headers, None)
    }

    /// A request with a JSON body (or none) and an optional bearer token.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        self.call_with(method, path, token, body, &[])
    }

    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json"));
        if bytes.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.request(method, path, &headers, bytes.as_deref())
    }

    pub fn register(&self, name: &str) -> TestUser {
        let resp = self.call(
            "POST",
            "/auth/register",
            None,
            Some(&serde_json::json!({"username": name, "password": PASSWORD})),
        );
        resp.expect(201);
        let id = resp.json()["id"].as_i64().expect("id");
        TestUser {
            id,
            name: name.to_string(),
            token: self.login(name),
        }
    }

    pub fn login(&self, name: &str) -> String {
        let resp = self.call(
            "POST",
            "/auth/login",
            None,
            Some(&serde_json::json!({"username": name, "password": PASSWORD})),
        );
        resp.expect(200);
        resp.json()["access_token"]
            .as_str()
            .expect("token")
            .to_string()
    }

    /// Creates an admin through the command line (the only way), then logs in.
    pub fn admin(&self, name: &str) -> TestUser {
        self.cli_ok(
            &["user", "add", name, "--admin"],
            &[("POSTD_PASSWORD", PASSWORD)],
        );
        let token = self.login(name);
        let me = self.get("/auth/me", Some(&token));
        me.expect(200);
        TestUser {
            id: me.json()["id"].as_i64().expect("id"),
            name: name.to_string(),
            token,
        }
    }

    /// Runs `postd ARGS --db <this server's db>`.
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        cli(&self.db, args, env)
    }

    /// [`Server::cli`], asserting that the command succeeded.
    #[track_caller]
    pub fn cli_ok(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        cli_ok(&self.db, args, env)
    }

    /// Creates a post and returns its JSON.
    pub fn create_post(&self, user: &TestUser, title: &str, body: &str) -> Value {
        let resp = self.call(
            "POST",
            "/posts",
            Some(&user.token),
            Some(&serde_json::json!({"title": title, "body": body})),
        );
        resp.expect(201);
        resp.json()
    }

    /// Every item of a paginated listing, following next_cursor to the end.
    pub fn collect_pages(&self, path: &str, token: Option<&str>) -> Vec<Value> {
        let mut items = Vec::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut url = path.to_string();
        loop {
            let resp = self.get(&url, token);
            resp.expect(200);
            let page = resp.json();
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(cursor) => url = format!("{path}{sep}cursor={cursor}"),
                None => return items,
            }
        }
    }

    /// Runs one counting query on the database file directly (a second connection, as
    /// any other process would).
    pub fn sql_count(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open(&self.db).expect("open db");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn.query_row(sql, [], |row| row.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// RFC 3339 UTC with exactly millisecond precision: `2026-11-22T10:04:05.123Z` (the form
/// postd's own `Timestamp` parses).
pub fn is_timestamp(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| postd::clock::Timestamp::parse(s).is_some())
}

/// A Post object: exactly the public fields, positive ids, timestamps.
#[track_caller]
pub fn assert_post_shape(post: &Value) {
    let obj = post
        .as_object()
        .unwrap_or_else(|| panic!("post is not an object: {post}"));
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    let expected = BTreeSet::from([
        "id",
        "author_id",
        "title",
        "slug",
        "body",
        "created_at",
        "updated_at",
    ]);
    assert_eq!(keys, expected, "post fields: {post}");
    assert!(post["id"].as_i64().is_some_and(|id| id > 0), "{post}");
    assert!(
        post["author_id"].as_i64().is_some_and(|id| id > 0),
        "{post}"
    );
    for field in ["created_at", "updated_at"] {
        assert!(
            is_timestamp(&post[field]),
            "{field} is not an RFC 3339 UTC millisecond timestamp: {post}"
        );
    }
}

pub fn cli(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--db").arg(db).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run postd")
}

/// [`cli`], asserting that the command succeeded (showing its output if not).
#[track_caller]
pub fn cli_ok(db: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = cli(db, args, env);
    assert!(
        out.status.success(),
        "postd {args:?} failed ({}); stdout: {} stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// xorshift64: a tiny reproducible random sequence (soak's choices, crash's kill delays),
/// replayed from a printed seed.
pub struct Rng(u64);

impl Rng {
    /// Any seed; xorshift needs a non-zero state, so 0 counts as 1.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// For tests that kill processes at random moments: seeded from `POSTD_CRASH_SEED`,
    /// else from the clock, and the seed printed so that a failure can be replayed.
    pub fn from_crash_seed(test: &str) -> Rng {
        let seed = std::env::var("POSTD_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0x9E37_79B9_7F4A_7C15)
            })
            .max(1);
        println!("{test}: seed {seed} (replay with POSTD_CRASH_SEED={seed})");
        Rng::new(seed)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// In `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        if items.is_empty() {
            None
        } else {
            Some(items[self.below(items.len())])
        }
    }

    /// Up to `n` distinct items.
    pub fn sample<T: Copy + PartialEq>(&mut self, items: &[T], n: usize) -> Vec<T> {
        let mut out = Vec::new();
        for _ in 0..n * 3 {
            if out.len() == n {
                break;
            }
            if let Some(item) = self.pick(items) {
                if !out.contains(&item) {
                    out.push(item);
                }
            }
        }
        out
    }
}

/// Tests that load the machine for many seconds (soak, crash) and tests that time the
/// server's answers (slow_clients) take turns: on 2 cores the load would blur the timings.
/// As separate test binaries they never overlapped; each kind may overlap its own, as
/// tests of one binary did.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    HeavyLoad,
    TimingSensitive,
}

/// The kind of test running now, and how many of it.
static RUNNING: Mutex<(Option<Kind>, usize)> = Mutex::new((None, 0));
static TURN_ENDED: Condvar = Condvar::new();

/// Held by a test while it runs; see [`heavy_load`] and [`timing_sensitive`].
pub struct Turn(());

/// Waits until no timing-sensitive test runs; hold the result for the whole test.
pub fn heavy_load() -> Turn {
    take_turn(Kind::HeavyLoad)
}

/// Waits until no heavy-load test runs; hold the result for the whole test.
pub fn timing_sensitive() -> Turn {
    take_turn(Kind::TimingSensitive)
}

fn take_turn(kind: Kind) -> Turn {
    // A test that panicked holding the lock poisons it; the state is still right.
    let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    while running.0.is_some_and(|other| other != kind) {
        running = TURN_ENDED
            .wait(running)
            .unwrap_or_else(PoisonError::into_inner);
    }
    *running = (Some(kind), running.1 + 1);
    Turn(())
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        running.1 -= 1;
        if running.1 == 0 {
            running.0 = None;
            TURN_ENDED.notify_all();
        }
    }
}

/// A tool the test needs from the machine: its path, or — outside CI — `None` after saying
/// on stderr that the test is skipped. In CI (`CI=true`) a missing tool fails the test:
/// CI installs what the tests need, so a skip there would pass untested.
pub fn required_tool(name: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "{test}: `{name}` is not installed, and CI must install it"
        );
        eprintln!("SKIPPED {test}: `{name}` is not installed");
    }
    found
}
