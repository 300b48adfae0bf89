//! Hostile clients at the application level, in process: JSON objects that name at most
//! 20 unknown keys, backups and exports that never write over the database, messages and
//! audit events that stay small and plain, entity tags compared byte for byte, byte order
//! marks and credentials bodies. What needs the binary (memory, file modes, its log, the
//! metrics listener, timings) is `heavy::hardening`; the throttles are `quick::throttle`.

use crate::support::*;
use serde_json::{json, Value};

/// A login body with `keys` distinct unknown keys (and no username/password).
pub fn many_keys(keys: usize) -> Vec<u8> {
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

#[test]
fn json_objects_name_at_most_20_unknown_keys_and_find_a_late_duplicate() {
    let server = TestApp::new();
    let user = server.register("keys");
    let auth = format!("Bearer {}", user.token);
    let answer = server.post_json_bytes("/posts", &many_keys(50_000), &[("Authorization", &auth)]);
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

    // A duplicate field at the very end of a large object is still found.
    let body = format!(
        r#"{{"title":"t","body":"{}","title":"u"}}"#,
        "b".repeat(4 << 20)
    );
    let duplicate = server.post_json_bytes("/posts", body.as_bytes(), &[("Authorization", &auth)]);
    duplicate.expect(422);
    assert!(
        duplicate.text().contains("duplicate field 'title'"),
        "{}",
        duplicate.text()
    );
}

/// Found from outside: `postd backup data/postd.db` with the default `--db` renamed a copy
/// over the live database (every write the server acknowledged after it was gone after a
/// restart), and `postd export --output` onto it replaced it with NDJSON.
#[test]
fn backup_and_export_refuse_to_write_over_the_database_under_any_spelling() {
    let mut server = TestApp::new();
    let user = server.register("keeper");
    server.create_post(&user, "kept", "safe");
    let dir = server.db.parent().expect("dir").to_path_buf();
    let inode = |path: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).map(|m| (m.ino(), m.len())).ok()
    };
    let before = inode(&server.db);
    let symlink = dir.join("link.db");
    std::os::unix::fs::symlink(&server.db, &symlink).expect("symlink");
    let hardlink = dir.join("hard.db");
    std::fs::hard_link(&server.db, &hardlink).expect("hard link");
    let db = server.db.to_str().expect("utf-8 path").to_string();
    let dotted = format!(
        "{}/./{}",
        dir.display(),
        server.db.file_name().unwrap().to_string_lossy()
    );
    let wal = format!("{db}-wal");
    let key = dir.join("postd.key").to_string_lossy().into_owned();
    let spellings = [
        db.as_str(),
        dotted.as_str(),
        symlink.to_str().unwrap(),
        hardlink.to_str().unwrap(),
        wal.as_str(),
        key.as_str(),
    ];
    for dest in spellings {
        for args in [vec!["backup", dest], vec!["export", "--output", dest]] {
            let out = server.cli(&args, &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "postd {args:?}: {stderr}");
            assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
            assert!(stderr.contains("refusing to write over"), "{stderr}");
            assert!(out.stdout.is_empty());
        }
    }
    assert_eq!(
        inode(&server.db),
        before,
        "the database is the same file, unchanged"
    );
    // Still served: the server's file is the one on disk.
    server.create_post(&user, "after", "still here");
    server.restart();
    assert_eq!(server.collect_pages("/posts", None).len(), 2);
    // An ordinary destination works.
    let copy = dir.join("copy.db");
    server.cli_ok(&["backup", copy.to_str().unwrap()], &[]);
}

/// Found from outside: a field name with ESC sequences and a newline in an imported line
/// cleared the operator's screen and printed a forged "imported 0 posts" line.
#[test]
fn import_messages_never_carry_control_characters() {
    let server = TestApp::new();
    server.register("importer");
    let input = server.dir.path().join("hostile.ndjson");
    std::fs::write(
        &input,
        "{\"title\":\"t\",\"body\":\"b\",\"\\u001b[2J\\u001b[H\\nimported 0 posts\\r\":1}\n\
         {\"title\":\"fine\",\"body\":\"b\"}\n",
    )
    .expect("input");
    let out = server.cli(
        &["import", input.to_str().unwrap(), "--as", "importer"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "a line was skipped");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.chars().any(|c| c.is_control() && c != '\n'),
        "{stderr:?}"
    );
    assert!(
        !stderr.lines().any(|line| line.starts_with("imported")),
        "{stderr:?}"
    );
    assert!(stderr.contains("line 1: unknown field"), "{stderr:?}");
}

/// Found from outside: `older_than` of a million leading zeros was accepted and kept
/// verbatim in an append-only event; a purge listed every id in one event.
#[test]
fn audit_events_stay_small_whatever_the_request() {
    let server = TestApp::new();
    let admin = server.admin("auditor");
    let purge = |older_than: &str| {
        server.call(
            "POST",
            "/admin/purge",
            Some(&admin.token),
            Some(&json!({"older_than": older_than})),
        )
    };
    let zeros = "0".repeat(1_000_000) + "1d";
    let refused = purge(&zeros);
    refused.expect(422);
    assert!(refused.body.len() < 1_000, "{} bytes", refused.body.len());
    purge("00000000000000001d").expect(422);

    let items: Vec<Value> = (0..1_200)
        .map(|n| json!({"title": format!("p{n}"), "body": ""}))
        .collect();
    let created = server.call(
        "POST",
        "/posts/bulk",
        Some(&admin.token),
        Some(&json!({"items": items})),
    );
    created.expect(201);
    let ids: Vec<i64> = created.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["id"].as_i64().expect("id"))
        .collect();
    server
        .call(
            "POST",
            "/posts/bulk/delete",
            Some(&admin.token),
            Some(&json!({"post_ids": ids})),
        )
        .expect(204);
    next_millisecond();
    purge("000000000000000s").expect(200);
    let events = server.get("/admin/audit", Some(&admin.token));
    events.expect(200);
    let events = events.json()["items"].as_array().expect("items").clone();
    let purged = &events[0];
    assert_eq!(purged["action"], "trash.purge");
    assert_eq!(
        purged["detail"], "older than 0s",
        "stored in its shortest form"
    );
    for event in &events[..2] {
        assert_eq!(event["count"], 1_200, "{event}");
        assert_eq!(
            event["target_ids"].as_array().expect("ids").len(),
            1_000,
            "{event}"
        );
    }
}

/// Found from outside: `If-Match: "01.01"` matched the tag `"1.1"` (compared as numbers).
#[test]
fn if_match_compares_entity_tags_byte_for_byte() {
    let server = TestApp::new();
    let user = server.register("tagger");
    let post = server.create_post(&user, "tagged", "v1");
    let id = post["id"].as_i64().expect("id");
    let etag = server
        .get(&format!("/posts/{id}"), None)
        .header("ETag")
        .expect("etag")
        .to_string();
    assert_eq!(etag, format!("\"{id}.1\""));
    for spelled in [
        format!("\"0{id}.1\""),
        format!("\"{id}.01\""),
        format!("\"+{id}.1\""),
    ] {
        server
            .call_with(
                "PATCH",
                &format!("/posts/{id}"),
                Some(&user.token),
                Some(&json!({"body": "v2"})),
                &[("If-Match", &spelled)],
            )
            .expect(412);
    }
    server
        .call_with(
            "PATCH",
            &format!("/posts/{id}"),
            Some(&user.token),
            Some(&json!({"body": "v2"})),
            &[("If-Match", &etag)],
        )
        .expect(200);
}

/// Found from outside: a line starting with a byte order mark got a vague "expected value
/// at column 1"; a login body of 16 MiB was read whole though credentials need 1 KiB.
#[test]
fn a_byte_order_mark_is_named_and_login_bodies_are_small() {
    let server = TestApp::new();
    let bom = b"\xEF\xBB\xBF{\"username\":\"alice\",\"password\":\"secret-password\"}";
    let answer = server.post_json_bytes("/auth/login", bom, &[]);
    answer.expect(400);
    assert!(
        answer.text().contains("byte order mark"),
        "{}",
        answer.text()
    );
    let big = format!(
        r#"{{"username":"{}","password":"x"}}"#,
        "a".repeat(64 * 1024)
    );
    server
        .post_json_bytes("/auth/login", big.as_bytes(), &[])
        .expect(413);
    server
        .post_json_bytes("/auth/register", big.as_bytes(), &[])
        .expect(413);
}
