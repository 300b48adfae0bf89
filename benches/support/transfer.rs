//! `postd import` and `postd export` as child processes of the benchmark: an NDJSON file
//! of the benchmark's posts, and each command's wall time and peak RSS.

use super::content;
use super::server::{status_kib, BIN};
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How often the child's VmHWM is read. VmHWM only grows, so the last reading before the
/// child exits misses at most this much of its life.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// One line per post `n` of `range`: `{"title":…,"body":…}`, the posts W1 creates.
pub fn write_ndjson(path: &Path, range: Range<u64>) {
    let file = std::fs::File::create(path).expect("create NDJSON input");
    let mut out = BufWriter::with_capacity(1 << 20, file);
    for n in range {
        let line = serde_json::json!({"title": content::title(n), "body": content::body(n)});
        serde_json::to_writer(&mut out, &line).expect("write NDJSON line");
        out.write_all(b"\n").expect("write NDJSON line");
    }
    out.flush().expect("flush NDJSON input");
}

/// A finished command: how long it ran, its peak RSS, what it printed.
pub struct Run {
    pub took: Duration,
    pub peak_kib: Option<u64>,
    pub stdout: String,
}

/// Runs `postd ARGS --db DB` to its end, reading its peak RSS while it runs; panics if it
/// fails (its stderr then shows).
pub fn run(db: &Path, args: &[&str]) -> Run {
    let stdout_path = db.with_file_name("transfer-stdout.txt");
    let stderr_path = db.with_file_name("transfer-stderr.txt");
    let stdout = std::fs::File::create(&stdout_path).expect("stdout file");
    let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--db")
        .arg(db)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run postd {args:?}: {err}"));
    let pid = child.id();
    let mut peak_kib = None;
    let status = loop {
        if let Some(kib) = status_kib(pid, "VmHWM") {
            peak_kib = Some(kib);
        }
        match child.try_wait().expect("wait for postd") {
            Some(status) => break status,
            None => std::thread::sleep(SAMPLE_EVERY),
        }
    };
    let took = started.elapsed();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        status.success(),
        "postd {args:?} failed ({status}): {stderr}"
    );
    Run {
        took,
        peak_kib,
        stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
    }
}
