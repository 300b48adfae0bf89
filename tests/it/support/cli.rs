//! The command line: `postd ARGS --db FILE` run as the real binary, one process per
//! command (no server).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_postd");

/// Runs `postd ARGS --db <db>` with extra environment variables.
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

/// Runs the binary with a deadline, none of postd's settings inherited from the
/// environment; returns (exit code, stdout, stderr). Never hangs: a process still running
/// after `deadline` is killed and the test fails.
pub fn run_bin(
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
    deadline: Duration,
) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    for var in [
        "POSTD_ADDR",
        "POSTD_DB",
        "POSTD_SIGNUP",
        "POSTD_TOKEN_TTL",
        "POSTD_MAX_BODY",
        "POSTD_MAX_BULK",
        "POSTD_WORKERS",
        "POSTD_JWT_SECRET",
        "POSTD_PASSWORD",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn postd");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).unwrap();
        drop(pipe);
    }
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "postd {args:?} still running after {deadline:?}; stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A [`run_bin`] outcome that failed with exactly one line on stderr.
#[track_caller]
pub fn assert_one_line_failure(
    what: &str,
    (code, _stdout, stderr): &(Option<i32>, String, String),
) {
    assert!(
        matches!(code, Some(c) if *c != 0),
        "{what}: expected a non-zero exit, got {code:?}; stderr {stderr:?}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected exactly one line on stderr, got {stderr:?}"
    );
    assert!(!lines[0].trim().is_empty(), "{what}: empty stderr line");
}
