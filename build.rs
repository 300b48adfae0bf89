//! Records what `postd --version` names besides the package version (src/version.rs): the
//! git commit the binary was built from and the target it was built for. Never fails: a
//! build from a source tarball, without git, or in a checkout git refuses to read says
//! `unknown`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into()));
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=POSTD_BUILD_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");

    // A tarball unpacked inside some other repository must not borrow that repository's
    // commit: only trust git when it tracks this very file.
    let ours = git(&dir, &["ls-files", "--error-unmatch", "build.rs"]).is_some();
    let commit = ours
        .then(|| git(&dir, &["rev-parse", "--short=12", "HEAD"]))
        .flatten()
        .filter(|hash| !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=POSTD_GIT_COMMIT={commit}");

    // Build again when HEAD moves (also the commit that first adds these files, which turns
    // `unknown` into a hash): a commit rewrites the branch's ref (loose or packed), a
    // checkout rewrites HEAD. Only existing files are named, as cargo reruns a build script
    // on every build while a named file is missing. Outside git nothing is named.
    let mut watch = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(reference) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(reference);
    }
    for name in watch {
        if let Some(path) = git(&dir, &["rev-parse", "--git-path", &name]) {
            let path = dir.join(path);
            if path.is_file() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}

/// One line of git's output, or `None` when git is missing or refuses.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.lines().next().unwrap_or("").trim().to_owned())
}
