//! Keeps the README honest: runs its ```bash blocks, as written, against a live server
//! started with the embedded defaults (only the port differs).

use crate::support::{skip_heavy, TempDir, BIN, START_WITHIN};
use postd_testkit::ServerProcess;
use std::process::{Command, Stdio};

fn bash_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```bash") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn readme_walkthrough_and_bulk_examples_work_as_written() {
    if skip_heavy() {
        return;
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks = bash_blocks(&readme);
    assert!(
        blocks.len() >= 3,
        "expected the walkthrough and bulk blocks"
    );

    let dir = TempDir::new("readme");
    // The metrics token the README starts its server with.
    let metrics_token = readme
        .split("POSTD_METRICS_TOKEN=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the README starts its server with POSTD_METRICS_TOKEN=…");
    // The owner-undo window the README starts its server with.
    let owner_undo = readme
        .split("POSTD_OWNER_UNDO=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the README starts its server with POSTD_OWNER_UNDO=…");
    // Default --db (data/postd.db, relative): the server must create data/ itself.
    let server = ServerProcess::start(
        Command::new(BIN)
            .args(["--addr", "127.0.0.1:0"])
            .env("POSTD_METRICS_TOKEN", metrics_token)
            .env("POSTD_OWNER_UNDO", owner_undo)
            .current_dir(dir.path())
            .stderr(Stdio::null()),
        START_WITHIN,
    )
    .unwrap();
    let addr = server.addr();
    assert!(
        server.banner().contains("data/postd.db"),
        "{}",
        server.banner()
    );

    let script = blocks
        .join("\n")
        .replace("http://127.0.0.1:8080", &format!("http://{addr}"))
        .replace("cargo run --release --", BIN);
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "README script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for expected in [
        r#""username":"alice""#,
        r#""slug":"hello-world""#,
        r#""status":404"#,
        r#""deleted_at":"#,
        "created admin 'admin'",
        r#""index":1,"field":"title""#,
        r#""created":1,"failed":1"#,
        "Idempotent-Replayed: true",
        r#""deleted":[2,3],"skipped":[999]"#,
        r#""title":"Bulk one, edited""#,
        "HTTP/1.1 200 OK",
        "HTTP/1.1 412 Precondition Failed",
        "HTTP/1.1 304 Not Modified",
        r#"rel="next""#,
        r#""deleted":[4],"skipped":[]"#,
        "Allow: POST, PATCH, DELETE, OPTIONS",
        r#"postd_http_requests_total{route="/posts/{id}",method="PATCH",status="412"} 1"#,
        r#"postd_posts{state="active"}"#,
        "404\n",
        r#""action":"posts.bulk_delete_permanent""#,
        r#""detail":"requested 3, skipped 1""#,
        r#"{"purged":0}"#,
        "posts.bulk_restore  ",
        "exported ",
        "imported 2 posts from 2 lines of more.ndjson as 'alice'",
        "more.ndjson was imported completely as 'alice'",
        r#""revision":1,"title":"Notes","slug":"notes","body":"First draft""#,
        r#""undo_until":"20"#,
        r#""posts":0,"comments":0,"revisions":0"#,
        r#""action":"user.erase""#,
        r#""name":"nightly","scopes":["posts:write","events:read"]"#,
        "this token lacks the scope admin",
        "revoked token 'backup-job' of 'admin'",
        "event: post.create\ndata: {",
        r#""count":3,"sample":["#,
        r#""status":409,"detail":"the filter matches 3 posts now, not the 2 expected"#,
        r#""count":3,"deleted":["#,
    ] {
        assert!(
            stdout.contains(expected),
            "README output lacks {expected}:\n{stdout}"
        );
    }
    // The three deletes that print their status (curl -w) all answered 204.
    assert_eq!(stdout.matches("204\n").count(), 3, "{stdout}");
}
