//! Trash retention without a sweep running: with no `--trash-retention` nothing expires
//! (`expires_at` is null), and a bad duration stops `postd serve` with one line. The sweep
//! itself runs beside a served binary: `heavy::retention`.

use crate::support::*;
use serde_json::Value;

#[test]
fn without_retention_nothing_expires_and_bad_durations_are_refused() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let post = srv.create_post(&alice, "t", "b");
    srv.call(
        "DELETE",
        &format!("/posts/{}", id(&post)),
        Some(&alice.token),
        None,
    )
    .expect(204);
    let trash = srv.get("/trash", Some(&alice.token)).json();
    assert_eq!(trash["items"][0]["expires_at"], Value::Null);
    for bad in ["30", "1w", "36501d", "-1d"] {
        let out = std::process::Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .arg(format!("--trash-retention={bad}"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("invalid duration"), "{stderr}");
    }
}
