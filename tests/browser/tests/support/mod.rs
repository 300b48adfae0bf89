//! The postd binary as the console's tests use it: started on a free loopback port with a
//! fresh temporary directory (and killed and started again on the same port and file, for
//! a client that must live through a restart), users made through the API and (admins)
//! the command line, requests on a connection each, and the database's own counts.

pub use postd_testkit::http::Response;
use postd_testkit::{client, http, ServerProcess, TempDir};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_postd-for-browser-tests");
pub const PASSWORD: &str = "correct-horse-battery";
/// How long the server may take to start or to answer (a loaded 2-core machine).
const WITHIN: Duration = Duration::from_secs(60);

pub struct Server {
    process: Option<ServerProcess>,
    pub addr: SocketAddr,
    db: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
    _dir: TempDir,
}

pub struct TestUser {
    pub id: i64,
    pub token: String,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[], &[])
    }

    /// Starts with extra environment variables and command-line arguments.
    pub fn start_with(env: &[(&str, &str)], args: &[&str]) -> Server {
        let dir = TempDir::new("browser");
        let mut srv = Server {
            process: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: dir.path().join("postd.db"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            args: args.iter().map(|a| a.to_string()).collect(),
            _dir: dir,
        };
        srv.spawn();
        srv
    }

    /// Starts the binary on `self.addr` (port 0 the first time) and the same file.
    fn spawn(&mut self) {
        let addr = self.addr.to_string();
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--addr", &addr, "--db"])
            .arg(&self.db)
            .args(&self.args)
            .env("POSTD_REGISTER_LIMIT", "0")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stderr(Stdio::null());
        let process = ServerProcess::start(&mut cmd, WITHIN).expect("start postd");
        self.addr = process.addr();
        self.process = Some(process);
    }

    /// SIGKILL: every connection drops at once, as when the machine goes.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// After `kill`: the server again, on the same address and database file.
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "the server is still running");
        self.spawn();
    }

    /// `start_again` with other command-line arguments (the environment stays).
    pub fn start_again_with(&mut self, args: &[&str]) {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self.start_again();
    }

    /// Runs `postd ARGS --db FILE` (the command line beside the server, or without it).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .args(args)
            .arg("--db")
            .arg(&self.db)
            .stdin(Stdio::null())
            .output()
            .expect("run postd");
        assert!(
            out.status.success(),
            "postd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        let mut all = vec![("Connection", "close")];
        all.extend_from_slice(headers);
        let bytes = http::request(method, path, self.addr, &all, body);
        let answer = client::send_until_close(self.addr, &bytes, WITHIN).expect("connect");
        Response::parse(&answer).expect("an HTTP answer")
    }

    /// A request with a JSON body (or none) and an optional bearer token.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = Vec::new();
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json"));
        if bytes.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.request(method, path, &headers, bytes.as_deref())
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.call("GET", path, token, None)
    }

    /// Signs a user up, then in.
    pub fn register(&self, name: &str) -> TestUser {
        let credentials = json!({"username": name, "password": PASSWORD});
        let resp = self.call("POST", "/auth/register", None, Some(&credentials));
        resp.expect(201);
        TestUser {
            id: resp.json()["id"].as_i64().expect("id"),
            token: self.login(name),
        }
    }

    /// Makes an admin through the command line, as an operator does, then signs them in.
    pub fn admin(&self, name: &str) -> TestUser {
        let out = Command::new(BIN)
            .args(["user", "add", name, "--admin", "--db"])
            .arg(&self.db)
            .env("POSTD_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .output()
            .expect("run postd user add");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = self.login(name);
        let me = self.get("/auth/me", Some(&token));
        me.expect(200);
        TestUser {
            id: me.json()["id"].as_i64().expect("id"),
            token,
        }
    }

    fn login(&self, name: &str) -> String {
        let credentials = json!({"username": name, "password": PASSWORD});
        let resp = self.call("POST", "/auth/login", None, Some(&credentials));
        resp.expect(200);
        resp.json()["access_token"]
            .as_str()
            .expect("token")
            .to_string()
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

    /// Runs statements on the database file directly (beside the server: WAL, and a
    /// busy timeout for its writer).
    pub fn sql_execute(&self, sql: &str) {
        let conn = rusqlite::Connection::open(&self.db).expect("open db");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs one counting query on the database file directly.
    pub fn sql_count(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open(&self.db).expect("open db");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        conn.query_row(sql, [], |row| row.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}
