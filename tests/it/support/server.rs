//! The heavy tier's way in: the real `postd` binary started on a free loopback port with a
//! fresh temporary directory, one connection per request, read until the server closes
//! it (so a test can also send bytes no HTTP library would).

use super::{cli, Api, TestUser, PASSWORD};
use postd_testkit::http::Response;
use postd_testkit::TempDir;
use postd_testkit::{client, http, ServerProcess};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

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
        let mut cmd = Command::new(cli::BIN);
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
}

impl Api for Server {
    fn request(
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

    fn db(&self) -> &Path {
        &self.db
    }

    /// Through the command line, as an operator does, then signed in.
    fn admin(&self, name: &str) -> TestUser {
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
}
