//! Test harness: starts the real `postd` binary on a free loopback port with a fresh
//! temporary directory, and talks HTTP/1.1 to it over a plain socket (so tests can also
//! send bytes no HTTP library would).

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_postd");
pub const PASSWORD: &str = "correct-horse-battery";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("postd-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Server {
    child: Option<Child>,
    pub addr: String,
    pub db: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
    pub dir: TempDir,
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Resp {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        if status >= 400 {
            assert_eq!(
                self.header("Content-Type"),
                Some("application/problem+json"),
                "{}",
                self.text()
            );
            let problem = self.json();
            assert_eq!(problem["status"], status, "{problem}");
            assert_eq!(problem["type"], "about:blank", "{problem}");
            assert!(
                problem["title"].is_string() && problem["detail"].is_string(),
                "{problem}"
            );
        }
        self
    }
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
        let db = dir.0.join("postd.db");
        Server::start_on(dir, db, env, args)
    }

    /// Starts on an existing database file (the temp dir holds only the logs then).
    pub fn start_with_db(db: PathBuf, env: &[(&str, &str)], args: &[&str]) -> Server {
        Server::start_on(TempDir::new("srv"), db, env, args)
    }

    fn start_on(dir: TempDir, db: PathBuf, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut server = Server {
            child: None,
            addr: String::new(),
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
            .open(self.dir.0.join("stderr.log"))
            .expect("stderr log");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--db")
            .arg(&self.db);
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start postd");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read start-up line");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| {
                panic!(
                    "no address in start-up line {line:?}; stderr: {}",
                    self.stderr()
                )
            })
            .to_string();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        self.addr = addr;
        self.child = Some(child);
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("stderr.log")).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills and starts again on the same database (a new port).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends raw bytes as one request and reads the whole answer (the connection closes).
    pub fn raw(&self, bytes: &[u8]) -> Resp {
        let mut stream = TcpStream::connect(&self.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
        // The server may answer (e.g. 413) and close before reading everything.
        let _ = stream.write_all(bytes);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        parse_response(&answer).unwrap_or_else(|| {
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
    ) -> Resp {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if let Some(body) = body {
            bytes.extend_from_slice(body);
        }
        self.raw(&bytes)
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Resp {
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
    ) -> Resp {
        self.call_with(method, path, token, body, &[])
    }

    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Resp {
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
        let out = self.cli(
            &["user", "add", name, "--admin"],
            &[("POSTD_PASSWORD", PASSWORD)],
        );
        assert!(
            out.status.success(),
            "user add failed: {}",
            String::from_utf8_lossy(&out.stderr)
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

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
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

fn parse_response(bytes: &[u8]) -> Option<Resp> {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let raw_body = &bytes[split + 4..];
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("Transfer-Encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(raw_body)?
    } else {
        raw_body.to_vec()
    };
    Some(Resp {
        status,
        headers,
        body,
    })
}

/// A chunked body, decoded; `None` when it was cut short.
pub fn dechunk(mut bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = bytes.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&bytes[..line_end]).ok()?.trim(), 16).ok()?;
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(bytes.get(..size)?);
        bytes = bytes.get(size + 2..)?;
    }
}
