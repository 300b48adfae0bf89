//! The real `postd` binary under the benchmark (a test kit `ServerProcess`, killed on
//! drop, panics included) and memory probes from `/proc`.

use postd_testkit::ServerProcess;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_postd");
/// The bench servers' metrics token.
pub const METRICS_TOKEN: &str = "bench-metrics-token-0123456789";

/// The server binary to measure: `POSTD_BENCH_BIN` (e.g. the static musl build), else this
/// package's own release build.
pub fn bin() -> PathBuf {
    std::env::var_os("POSTD_BENCH_BIN").map_or_else(|| PathBuf::from(BIN), PathBuf::from)
}

/// The first line `bin --version` prints (which commit, target and SQLite it is).
pub fn version_of(bin: &Path) -> String {
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", bin.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().unwrap_or_default().to_owned()
}

/// Peak RSS over a workload, and the RSS at its start (glibc keeps freed memory, so the
/// peak of a small workload is mostly what earlier ones left resident).
#[derive(Clone, Copy, Debug)]
pub struct Peak {
    pub start_kib: Option<u64>,
    pub peak_kib: Option<u64>,
}

/// A running `postd serve`. Dropping it kills and reaps the process.
pub struct Server {
    process: ServerProcess,
    /// The server's stderr (its access log and any error lines).
    log: PathBuf,
    pub addr: SocketAddr,
    pub banner: String,
}

impl Server {
    /// Starts `postd serve` ([`bin`]) on a free loopback port; its stderr goes to
    /// `server.log` beside the database (the access log would otherwise flood the report).
    pub fn start(db: &Path, extra: &[&str]) -> Server {
        Server::start_bin(&bin(), db, extra)
    }

    /// [`Server::start`] with a given binary.
    pub fn start_bin(bin: &Path, db: &Path, extra: &[&str]) -> Server {
        let log = db.with_file_name("server.log");
        let log_file = std::fs::File::create(&log).expect("create server.log");
        let process = ServerProcess::start(
            Command::new(bin)
                .arg("serve")
                .args(["--addr", "127.0.0.1:0", "--db"])
                .arg(db)
                .args(extra)
                .env_remove("POSTD_ADDR")
                .env_remove("POSTD_DB")
                .env_remove("POSTD_WORKERS")
                // W7 reads the commit counter from /metrics.
                .env("POSTD_METRICS_TOKEN", METRICS_TOKEN)
                .stderr(Stdio::from(log_file)),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|err| panic!("postd did not start: {err}"));
        Server {
            log,
            addr: process.addr(),
            banner: process.banner().to_owned(),
            process,
        }
    }

    /// Starts another server binary (the bare stack) that prints the same kind of
    /// start-up line.
    pub fn start_command(command: &mut Command) -> Server {
        let process = ServerProcess::start(command, Duration::from_secs(30))
            .unwrap_or_else(|err| panic!("server did not start: {err}"));
        Server {
            log: PathBuf::from("/dev/null"),
            addr: process.addr(),
            banner: process.banner().to_owned(),
            process,
        }
    }

    pub fn status_kib(&self, key: &str) -> Option<u64> {
        status_kib(self.process.pid(), key)
    }

    /// Resets the peak-RSS counter (VmHWM) to the current RSS and returns that RSS
    /// (`None` when the reset was refused).
    pub fn reset_peak(&self) -> Option<u64> {
        std::fs::write(format!("/proc/{}/clear_refs", self.process.pid()), "5").ok()?;
        self.status_kib("VmRSS")
    }

    /// The peak RSS since `reset_peak`, and the RSS it started from.
    pub fn peak_since(&self, start: Option<u64>) -> Peak {
        Peak {
            start_kib: start,
            peak_kib: self.status_kib("VmHWM"),
        }
    }
}

impl Server {
    /// Lines of the server's stderr that are neither access-log lines nor its own
    /// `info` lines: warnings, errors, anything not from its logger. (count, first few)
    pub fn problems(&self) -> (usize, Vec<String>) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let odd: Vec<&str> = text
            .lines()
            .filter(|line| {
                // An access-log line names a method; postd's own lines say their level
                // (the default logfmt, or JSON).
                let ordinary = line.contains(" method=")
                    || line.contains("\"method\":")
                    || line.contains(" level=info ")
                    || line.contains("\"level\":\"info\"");
                !ordinary
            })
            .collect();
        (
            odd.len(),
            odd.iter().take(5).map(|l| l.to_string()).collect(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.process.kill();
        if std::thread::panicking() {
            let (count, first) = self.problems();
            eprintln!("postd stderr had {count} warning, error or stray lines; first: {first:#?}");
        }
    }
}

/// A `kB` field (`VmRSS`, `VmHWM`, …) of /proc/PID/status.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Established connections to local `port` with request bytes the server has not read
/// yet (IPv4, from /proc/net/tcp). Under a keep-alive load these are connections no server
/// thread is serving.
pub fn unread_connections(port: u16) -> Option<usize> {
    let text = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let waiting = text
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(queues)) =
                (fields.get(1), fields.get(3), fields.get(4))
            else {
                return false;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let rx_queue = queues
                .split(':')
                .nth(1)
                .and_then(|q| usize::from_str_radix(q, 16).ok())
                .unwrap_or(0);
            local_port == Some(port) && *state == "01" && rx_queue > 0
        })
        .count();
    Some(waiting)
}

/// `postd user add NAME --admin --db DB` with the password in `POSTD_PASSWORD`.
pub fn add_admin(db: &Path, name: &str, password: &str) {
    add_admin_bin(&bin(), db, name, password)
}

/// [`add_admin`] with a given binary.
pub fn add_admin_bin(bin: &Path, db: &Path, name: &str, password: &str) {
    let out = Command::new(bin)
        .args(["user", "add", name, "--admin", "--db"])
        .arg(db)
        .env("POSTD_PASSWORD", password)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run {} user add: {err}", bin.display()));
    assert!(
        out.status.success(),
        "postd user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
