//! Hostile input against the real binary: a checked-in corpus of raw HTTP requests
//! (`tests/corpus/**/*.http`, described in `tests/corpus/README.md`) replayed byte for
//! byte. The properties that drive the handler in process are `quick::hostile`.

use crate::support::{skip_heavy, Api, Response, Server};
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// `NNN-name.http` files of a directory, sorted, with their expected status.
fn corpus_cases(dir: &Path) -> Vec<(String, u16, Vec<u8>)> {
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read corpus dir") {
        let path = entry.expect("corpus entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("http") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_string();
        let status: u16 = name
            .get(..3)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{name}: corpus files are named NNN-what.http"));
        cases.push((name, status, std::fs::read(&path).expect("read case")));
    }
    cases.sort();
    cases
}

fn substitute(bytes: &[u8], name: &str, value: &str) -> Vec<u8> {
    let pattern = format!("{{{{{name}}}}}");
    let pattern = pattern.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(pattern) {
            out.extend_from_slice(value.as_bytes());
            i += pattern.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn replay(server: &Server, dir: &Path, failures: &mut Vec<String>) -> usize {
    let user = server.register("corpus-user");
    let admin = server.admin("corpus-admin");
    let post = server.create_post(&user, "Corpus post", "alpha beta");
    let post_id = post["id"].as_i64().expect("post id").to_string();
    let cases = corpus_cases(dir);
    for (name, expected, bytes) in &cases {
        let bytes = substitute(bytes, "TOKEN", &user.token);
        let bytes = substitute(&bytes, "ADMIN_TOKEN", &admin.token);
        let bytes = substitute(&bytes, "POST_ID", &post_id);
        let started = std::time::Instant::now();
        // An answer that cannot be parsed (or none at all) is a failure of this case; the
        // other cases still run.
        let resp: Response =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.raw(&bytes))) {
                Ok(resp) => resp,
                Err(_) => {
                    failures.push(format!("{name}: no parseable answer"));
                    continue;
                }
            };
        let took = started.elapsed();
        // A HEAD answer has the headers of the GET answer and no body.
        let head = bytes.starts_with(b"HEAD ");
        let problem_ok = resp.status < 400
            || (resp.header("Content-Type") == Some("application/problem+json")
                && (head
                    || serde_json::from_slice::<serde_json::Value>(&resp.body)
                        .map(|p| p["status"] == resp.status)
                        .unwrap_or(false)));
        if head && !resp.body.is_empty() {
            failures.push(format!("{name}: HEAD answer has a body"));
        }
        if resp.status != *expected || resp.status >= 500 || !problem_ok {
            failures.push(format!(
                "{name}: expected {expected}, got {} ({:?}) {}",
                resp.status,
                resp.header("Content-Type"),
                resp.text()
            ));
        }
        if took > std::time::Duration::from_secs(5) {
            failures.push(format!("{name}: took {took:?}"));
        }
    }
    cases.len()
}

#[test]
fn raw_corpus_against_the_real_binary() {
    if skip_heavy() {
        return;
    }
    let readme = std::fs::read_to_string(corpus_dir().join("README.md")).expect("README");
    let mut failures = Vec::new();
    let server = Server::start();
    let mut count = replay(&server, &corpus_dir(), &mut failures);
    drop(server);
    let small = Server::start_with(&[("POSTD_MAX_BODY", "65536")], &[]);
    count += replay(&small, &corpus_dir().join("max-body-65536"), &mut failures);
    for dir in [corpus_dir(), corpus_dir().join("max-body-65536")] {
        for (name, _, _) in corpus_cases(&dir) {
            if !readme.contains(&name) {
                failures.push(format!("{name} is not described in tests/corpus/README.md"));
            }
        }
    }
    assert!(count >= 20, "only {count} corpus cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
