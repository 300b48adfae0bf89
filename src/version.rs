//! What `postd --version` says, so that an operator can tell which binary is running: the
//! package version, the git commit, the target (the `gnu` or `musl` C library, dynamic or
//! static) and the SQLite compiled in. `build.rs` records the commit and the target.

/// The package version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from (12 hex digits), or `unknown` for a build
/// outside a git checkout (a source tarball).
pub const COMMIT: &str = env!("POSTD_GIT_COMMIT");

/// The target triple, e.g. `x86_64-unknown-linux-musl`; its last part names the C library.
pub const TARGET: &str = env!("POSTD_BUILD_TARGET");

/// `statically linked` when the C library is inside the binary (the musl build, which runs
/// on any x86-64 Linux), `dynamically linked` when it needs the system's (the glibc build).
pub fn linkage() -> &'static str {
    if cfg!(target_feature = "crt-static") {
        "statically linked"
    } else {
        "dynamically linked"
    }
}

/// One line, e.g. `postd 0.1.0 (commit 0123456789ab, x86_64-unknown-linux-musl, statically
/// linked, SQLite 3.50.4)`.
pub fn long_version() -> String {
    format!(
        "postd {VERSION} (commit {COMMIT}, {TARGET}, {}, SQLite {})",
        linkage(),
        crate::store::sqlite_version()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_version_commit_target_and_sqlite() {
        let line = long_version();
        assert!(
            line.starts_with(&format!("postd {VERSION} (commit ")),
            "{line}"
        );
        assert!(
            COMMIT == "unknown"
                || (COMMIT.len() == 12 && COMMIT.bytes().all(|b| b.is_ascii_hexdigit())),
            "{COMMIT}"
        );
        assert!(
            TARGET.ends_with("-gnu") || TARGET.ends_with("-musl"),
            "{TARGET}"
        );
        assert!(line.contains(TARGET), "{line}");
        assert!(
            line.ends_with(&format!(", SQLite {})", crate::store::sqlite_version())),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }
}
