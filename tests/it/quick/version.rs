//! `postd --version` names what an operator needs to tell binaries apart: the version, the
//! git commit, the target (gnu or musl) and the SQLite inside. Run against the real binary.

use crate::support::BIN;
use std::path::Path;
use std::process::{Command, Stdio};

fn version_line(flag: &str) -> String {
    let out = Command::new(BIN)
        .arg(flag)
        .stdin(Stdio::null())
        .output()
        .expect("run postd");
    assert!(out.status.success(), "postd {flag} exited {}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(text.lines().count(), 1, "one line: {text:?}");
    text.trim_end().to_owned()
}

/// The commit git reports for this checkout, when this is one (not a source tarball).
fn checkout_commit() -> Option<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    git(&["ls-files", "--error-unmatch", "build.rs"])?;
    git(&["rev-parse", "--short=12", "HEAD"])
}

#[test]
fn version_names_version_commit_target_and_sqlite() {
    let line = version_line("--version");
    assert_eq!(line, version_line("-V"));

    let prefix = format!("postd {} (commit ", env!("CARGO_PKG_VERSION"));
    let rest = line
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line:?} is not `{prefix}…)`"));
    let fields: Vec<&str> = rest.split(", ").collect();
    let [commit, target, linkage, sqlite] = fields[..] else {
        panic!("expected commit, target, linkage, SQLite in {line:?}");
    };

    match checkout_commit() {
        Some(head) => assert_eq!(commit, head, "built from this checkout's HEAD"),
        None => assert_eq!(commit, "unknown"),
    }

    // The test is built for the same target as the binary it runs.
    let env = if cfg!(target_env = "musl") {
        "musl"
    } else {
        "gnu"
    };
    assert!(
        target.starts_with(std::env::consts::ARCH) && target.ends_with(&format!("-linux-{env}")),
        "target {target:?} in {line:?}"
    );
    let expected = if cfg!(target_feature = "crt-static") {
        "statically linked"
    } else {
        "dynamically linked"
    };
    assert_eq!(linkage, expected, "{line:?}");

    assert_eq!(
        sqlite,
        format!("SQLite {}", postd::store::sqlite_version()),
        "{line:?}"
    );
    assert!(
        sqlite.trim_start_matches("SQLite 3.").split('.').count() == 2,
        "a 3.x.y version: {line:?}"
    );
}
