//! Hostile clients against the real binary, at the application level: JSON objects that
//! cost linear time, login and sign-up throttles that stay bounded and count every
//! attempt, client addresses through trusted proxies, files only their owner can read.

use crate::support::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// A login body with `keys` distinct unknown keys (and no username/password).
fn many_keys(keys: usize) -> Vec<u8> {
    let mut body = String::from("{");
    for n in 0..keys {
        if n > 0 {
            body.push(',');
        }
        body.push_str(&format!("\"k{n:07}\":0"));
    }
    body.push('}');
    body.into_bytes()
}

fn post_json(server: &Server, path: &str, body: &[u8], extra: &[(&str, &str)]) -> Response {
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend_from_slice(extra);
    server.request("POST", path, &headers, Some(body))
}

/// Median time of three answers to the same body.
fn median_answer_time(server: &Server, body: &[u8]) -> Duration {
    let mut times: Vec<Duration> = (0..3)
        .map(|_| {
            let started = Instant::now();
            post_json(server, "/auth/login", body, &[]).expect(422);
            started.elapsed()
        })
        .collect();
    times.sort();
    times[1]
}

#[test]
fn json_objects_cost_time_linear_in_their_keys_and_name_at_most_20_unknown() {
    let server = Server::start();
    // Warm up (page faults, allocator growth) before timing anything.
    median_answer_time(&server, &many_keys(4_000));
    let small = median_answer_time(&server, &many_keys(8_000));
    let large = median_answer_time(&server, &many_keys(128_000));
    // 16 times the keys: linear work is ~16 times the time; the quadratic duplicate check
    // was ~256 times (50,000 keys took 2.6 s). The bound sits far from both.
    let ratio = large.as_secs_f64() / small.as_secs_f64().max(1e-4);
    assert!(
        ratio < 64.0,
        "128k keys took {large:?}, 8k keys {small:?}: {ratio:.1}x for 16x the keys"
    );

    let answer = post_json(&server, "/auth/login", &many_keys(50_000), &[]);
    answer.expect(422);
    let errors = answer.json()["errors"].as_array().expect("errors").clone();
    let unknown: Vec<&Value> = errors
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("unknown field"))
        })
        .collect();
    assert_eq!(unknown.len(), 20, "{errors:?}");
    // The first ones sent.
    assert_eq!(unknown[0]["message"], "unknown field 'k0000000'");
    assert_eq!(unknown[19]["message"], "unknown field 'k0000019'");
    assert!(answer.body.len() < 4096, "{} bytes", answer.body.len());

    // The same for every bulk item: at most 20 per item.
    let user = server.register("keys");
    let item: Value = serde_json::from_slice(&many_keys(30)).expect("json");
    let bulk = server.call(
        "POST",
        "/posts/bulk",
        Some(&user.token),
        Some(&json!({"items": [item.clone(), item]})),
    );
    bulk.expect(422);
    for index in [0, 1] {
        let unknown = bulk.json()["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .filter(|e| {
                e["index"] == index
                    && e["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("unknown"))
            })
            .count();
        assert_eq!(unknown, 20, "item {index}");
    }

    // A duplicate key at the very end of a large object is still found.
    let mut body = many_keys(100_000);
    body.pop();
    body.extend_from_slice(b",\"k0000000\":1}");
    let duplicate = post_json(&server, "/auth/login", &body, &[]);
    duplicate.expect(422);
    assert!(
        duplicate.text().contains("duplicate field 'k0000000'"),
        "{}",
        duplicate.text()
    );
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn login(server: &Server, username: &str, password: &str, extra: &[(&str, &str)]) -> Response {
    let body =
        serde_json::to_vec(&json!({"username": username, "password": password})).expect("json");
    post_json(server, "/auth/login", &body, extra)
}

#[test]
fn credentials_are_checked_before_anything_remembers_them() {
    let server = Server::start();
    server.register("victim");
    // Warm the allocator with one large body, then measure.
    let huge = "u".repeat(4 << 20);
    login(&server, &huge, "wrong-password", &[]).expect(422);
    std::thread::sleep(Duration::from_millis(200));
    let before = resident_kib(server.pid());
    for n in 0..12 {
        let name = format!("{n}{huge}");
        let answer = login(&server, &name, "wrong-password", &[]);
        answer.expect(422);
        assert_eq!(answer.json()["errors"][0]["field"], "username");
        assert_eq!(answer.header("Cache-Control"), Some("no-store"));
    }
    std::thread::sleep(Duration::from_millis(200));
    let grown = resident_kib(server.pid()).saturating_sub(before);
    // Each of these names was 4 MiB: kept anywhere, 12 of them would be 48 MiB.
    assert!(grown < 16 * 1024, "resident memory grew by {grown} KiB");
    // Nothing was counted against a real account either.
    assert_eq!(
        login(&server, "victim", PASSWORD, &[]).status,
        200,
        "the account is not throttled"
    );
}

#[test]
fn concurrent_bad_logins_each_count() {
    let server = Server::start();
    server.register("target");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|_| scope.spawn(|| login(&server, "target", "not-the-password", &[]).status))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let refused = statuses.iter().filter(|s| **s == 429).count();
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    // Ten failures per username are allowed; the other ten are refused however the
    // requests interleave.
    assert_eq!((wrong, refused), (10, 10), "{statuses:?}");
    let limited = login(&server, "target", PASSWORD, &[]);
    limited.expect(429);
    assert!(limited.header("Retry-After").is_some());
    assert_eq!(limited.header("Cache-Control"), Some("no-store"));
}

/// Fails logins with 30 different usernames (the per-address limit) as `forwarded`.
fn exhaust_address(server: &Server, forwarded: &str) {
    for n in 0..30 {
        let answer = login(
            server,
            &format!("nobody{n}"),
            "wrong-password",
            &[("X-Forwarded-For", forwarded)],
        );
        answer.expect(401);
    }
}

#[test]
fn behind_trusted_proxies_each_client_is_throttled_on_its_own() {
    let proxied = Server::start_with(&[], &["--trusted-proxies", "127.0.0.1/32,10.0.0.0/8"]);
    exhaust_address(&proxied, "203.0.113.5");
    let blocked = login(
        &proxied,
        "someone",
        "wrong-password",
        &[("X-Forwarded-For", "203.0.113.5")],
    );
    blocked.expect(429);
    // Another client behind the same proxy is not locked out.
    login(
        &proxied,
        "someone",
        "wrong-password",
        &[("X-Forwarded-For", "203.0.113.6")],
    )
    .expect(401);
    // What the client wrote itself (left of the proxies' entries) proves nothing.
    login(
        &proxied,
        "someone",
        "wrong-password",
        &[("X-Forwarded-For", "203.0.113.6, 203.0.113.5, 10.1.2.3")],
    )
    .expect(429);
    // IPv6 clients are one unit per /64: rotating through it does not help.
    for n in 0..30 {
        let address = format!("2001:db8:7:1::{:x}", n + 1);
        login(
            &proxied,
            &format!("v6user{n}"),
            "wrong-password",
            &[("X-Forwarded-For", &address)],
        )
        .expect(401);
    }
    login(
        &proxied,
        "v6-user",
        "wrong-password",
        &[("X-Forwarded-For", "2001:db8:7:1:ffff::9")],
    )
    .expect(429);
    login(
        &proxied,
        "v6-user",
        "wrong-password",
        &[("X-Forwarded-For", "2001:db8:7:2::1")],
    )
    .expect(401);

    // Without --trusted-proxies the header is ignored: the peer is the client.
    let direct = Server::start();
    exhaust_address(&direct, "203.0.113.5");
    login(
        &direct,
        "someone",
        "wrong-password",
        &[("X-Forwarded-For", "198.51.100.1")],
    )
    .expect(429);
}

#[test]
fn sign_ups_are_throttled_per_client_address() {
    let server = Server::start_with(
        &[("POSTD_REGISTER_LIMIT", "3")],
        &["--trusted-proxies", "127.0.0.1"],
    );
    let register = |name: &str, from: &str| {
        let body =
            serde_json::to_vec(&json!({"username": name, "password": PASSWORD})).expect("json");
        post_json(
            &server,
            "/auth/register",
            &body,
            &[("X-Forwarded-For", from)],
        )
    };
    for n in 0..3 {
        register(&format!("signup{n}"), "192.0.2.10").expect(201);
    }
    let refused = register("signup3", "192.0.2.10");
    refused.expect(429);
    let wait: u64 = refused
        .header("Retry-After")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After seconds");
    assert!((1..=900).contains(&wait), "{wait}");
    // A rejected sign-up was not counted as a user; another address has its own quota.
    register("signup3", "192.0.2.11").expect(201);
    // Invalid sign-ups are refused before they are counted (they cost no hash).
    let other = "192.0.2.12";
    for _ in 0..5 {
        register("x", other).expect(422);
    }
    register("signup4", other).expect(201);
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn files_postd_creates_are_its_owners_alone() {
    let server = Server::start();
    let user = server.register("owner");
    server.create_post(&user, "Kept private", "body");
    let dir = server.db.parent().expect("dir").to_path_buf();
    for name in ["postd.db", "postd.db-wal", "postd.db-shm", "postd.key"] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }

    // A backup: mode 0600, and a symbolic link at its final path is replaced, not followed.
    let elsewhere = dir.join("elsewhere.txt");
    std::fs::write(&elsewhere, "must stay as it is").expect("write");
    let dest = dir.join("backup.db");
    std::os::unix::fs::symlink(&elsewhere, &dest).expect("symlink");
    let out = server.cli(&["backup", dest.to_str().expect("utf-8")], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&dest), 0o600);
    assert!(!std::fs::symlink_metadata(&dest)
        .expect("meta")
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_to_string(&elsewhere).expect("read"),
        "must stay as it is"
    );
    // Nothing of the copy in progress is left beside it.
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".postd-partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let check = server.cli(&["check"], &[]);
    assert!(check.status.success());
}

#[test]
fn a_database_readable_by_others_is_reported() {
    let dir = TempDir::new("modes");
    let db = dir.path().join("shared.db");
    let out = cli(&db, &["check"], &[]);
    assert!(!out.status.success(), "check refuses a missing file");
    let created = cli(
        &db,
        &["user", "add", "first"],
        &[("POSTD_PASSWORD", PASSWORD)],
    );
    assert!(created.status.success());
    assert_eq!(mode(&db), 0o600);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let server = Server::start_with_db(db, &[], &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stderr().contains("other users can read") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(server.stderr().contains("mode 644"), "{}", server.stderr());
}
