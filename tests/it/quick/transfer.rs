//! `postd export` and `postd import` (API.md, "Export and import (CLI)") as one-shot
//! processes: round trips field by field (from a database an app in this process
//! serves), bad lines, `--atomic`, stdin, file modes, progress on a terminal. Imports
//! and exports beside a served binary, and SIGKILLs, are `heavy::transfer`.

use crate::support::transfer::*;
use crate::support::*;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `line N: …` reports on stderr, in order (the logger's `postd: warning: ` taken off).
fn reported_lines(stderr: &[u8]) -> Vec<String> {
    text(stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("postd: warning: "))
        .map(str::to_owned)
        .collect()
}

fn partial_dirs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".postd-partial"))
        .collect()
}

/// Good and bad lines side by side, and what each bad one is reported as.
fn mixed_lines() -> (Vec<String>, Vec<&'static str>) {
    let lines = [
        r#"{"title":"Hello, world","body":"1"}"#,
        r#"{"title":"Hello, world","body":"2: derived hello-world-2"}"#,
        r#"{"title":"","body":"3"}"#,
        r#"{"title":"Explicit","body":"4","slug":"mine"}"#,
        r#"{"title":"Again","body":"5","slug":"mine"}"#,
        r#"{"title":"t","body":"6","colour":7}"#,
        r#"not json"#,
        r#""#,
        r#"["an array"]"#,
        r#"{"title":"Taken","body":"10","slug":"taken-before"}"#,
        r#"{"title":"t","body":"11","slug":"Not A Slug"}"#,
        r#"{"title":"mine","body":"12: derived mine-2"}"#,
        r#"{"body":7}"#,
        r#"{"title":"Hello world","body":"14: derived hello-world-3"}"#,
    ];
    let expected = vec![
        "line 3: title: must not be empty",
        "line 5: slug: slug 'mine' is already used by another post",
        "line 6: unknown field 'colour'",
        "line 7: not valid JSON: expected ident at column 2",
        "line 8: empty; every line must be a JSON object",
        "line 9: invalid type: sequence, expected a JSON object",
        "line 10: slug: slug 'taken-before' is already used by another post",
        "line 11: slug: must be lowercase letters and digits in groups joined by single '-'",
        "line 13: title: is required",
        "line 13: body: must be a string",
    ];
    (lines.iter().map(|l| l.to_string()).collect(), expected)
}

#[test]
fn an_export_imported_elsewhere_gives_the_same_posts_field_by_field() {
    let srv = TestApp::new();
    let alice = srv.register("alice");
    let bob = srv.register("bobby");
    let long_body = "ü".repeat(100_000);
    let posts = [
        json!({"title": "Hello, world", "body": "first"}),
        json!({"title": "Hello, world", "body": "second, derived -2"}),
        json!({"title": "  Ünïcödé ☃ \"quoted\" \\ back  ", "body": "line\nbreak\ttab \u{0}"}),
        json!({"title": "Explicit", "body": "", "slug": "chosen-1"}),
        json!({"title": "Long", "body": long_body}),
        json!({"title": "To trash", "body": "soft-deleted"}),
    ];
    let mut ids = Vec::new();
    for (i, post) in posts.iter().enumerate() {
        let user = if i % 2 == 0 { &alice } else { &bob };
        let resp = srv.call("POST", "/posts", Some(&user.token), Some(post));
        resp.expect(201);
        ids.push(resp.json()["id"].as_i64().expect("id"));
    }
    let trashed = *ids.last().expect("ids");
    srv.call(
        "DELETE",
        &format!("/posts/{trashed}"),
        Some(&bob.token),
        None,
    )
    .expect(204);

    // Each exported line is the API's Post object, exactly, in id order.
    let exported = export(&srv.db, srv.dir.path(), "all.ndjson", &[]);
    assert_eq!(
        exported.len(),
        ids.len() - 1,
        "the trashed post is left out"
    );
    for line in &exported {
        assert_post_shape(line);
        let id = line["id"].as_i64().expect("id");
        let api = srv.get(&format!("/posts/{id}"), None);
        api.expect(200);
        assert_eq!(line, &api.json(), "post {id}");
    }
    let exported_ids: Vec<i64> = exported.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(exported_ids, ids[..ids.len() - 1]);

    // With --trash the soft-deleted post is there too, with who deleted it and when.
    let with_trash = export(&srv.db, srv.dir.path(), "trash.ndjson", &["--trash"]);
    assert_eq!(with_trash.len(), ids.len());
    let last = with_trash.last().expect("last");
    assert_eq!(last["id"], trashed);
    assert_eq!(last["deleted_by_id"], bob.id);
    assert!(is_timestamp(&last["deleted_at"]), "{last}");
    let trash = srv.get("/trash", Some(&bob.token));
    trash.expect(200);
    let listed = &trash.json()["items"][0];
    for field in POST_FIELDS.iter().chain(&["deleted_at", "deleted_by_id"]) {
        assert_eq!(last[field], listed[field], "{field}");
    }

    // Import the posts' own fields into another database: the same posts come out.
    let elsewhere = TempDir::new("import-elsewhere");
    let db = database_with_user(&elsewhere, "carol");
    let lines: Vec<String> = exported
        .iter()
        .map(|p| json!({"title": p["title"], "body": p["body"], "slug": p["slug"]}).to_string())
        .collect();
    let input = elsewhere.path().join("posts.ndjson");
    write_lines(&input, &lines);
    let out = import(&db, &input, "carol", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("imported 5 posts from 5 lines"),
        "{}",
        text(&out.stdout)
    );
    let again = export(&db, elsewhere.path(), "again.ndjson", &[]);
    assert_eq!(again.len(), exported.len());
    for (before, after) in exported.iter().zip(&again) {
        assert_post_shape(after);
        for field in ["title", "slug", "body"] {
            assert_eq!(before[field], after[field], "{field} of {before}");
        }
        assert_eq!(after["created_at"], after["updated_at"]);
    }
}

#[test]
fn bad_lines_are_reported_by_number_skipped_and_exit_2() {
    let dir = TempDir::new("import-bad");
    let db = database_with_user(&dir, "alice");
    let (lines, expected) = mixed_lines();
    let input = dir.path().join("mixed.ndjson");
    write_lines(&input, &lines);
    cli_ok(
        &db,
        &["user", "add", "other"],
        &[("POSTD_PASSWORD", PASSWORD)],
    );
    let taken = dir.path().join("taken.ndjson");
    write_lines(
        &taken,
        &[r#"{"title":"x","body":"","slug":"taken-before"}"#.to_string()],
    );
    assert!(import(&db, &taken, "other", &[]).status.success());

    let out = import(&db, &input, "alice", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(reported_lines(&out.stderr), expected);
    assert!(
        text(&out.stdout).contains("imported 5 posts from 14 lines")
            && text(&out.stdout).contains("9 bad lines skipped"),
        "{}",
        text(&out.stdout)
    );
    let slugs: Vec<String> = {
        let conn = rusqlite::Connection::open(&db).expect("open");
        let mut stmt = conn
            .prepare("SELECT slug FROM posts WHERE author_id = (SELECT id FROM users WHERE username = 'alice') ORDER BY id")
            .expect("prepare");
        let rows = stmt.query_map([], |r| r.get(0)).expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    };
    assert_eq!(
        slugs,
        [
            "hello-world",
            "hello-world-2",
            "mine",
            "mine-2",
            "hello-world-3"
        ]
    );

    // Run again: recognised as done, nothing written, the same ending.
    let out = import(&db, &input, "alice", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(reported_lines(&out.stderr).is_empty());
    assert_eq!(count(&db, "SELECT count(*) FROM posts"), 6);

    // Unknown users and missing files are one clear line and exit 1.
    let out = import(&db, &input, "nobody", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("user 'nobody' not found"));
    let out = import(&db, &dir.path().join("missing.ndjson"), "alice", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn with_atomic_any_bad_line_rejects_the_file_and_nothing_is_written() {
    let dir = TempDir::new("import-atomic");
    let db = database_with_user(&dir, "alice");
    let (mut lines, _) = mixed_lines();
    // In the check pass an explicit slug taken by an earlier line's derived one is found
    // too, without writing anything.
    lines.push(r#"{"title":"x","body":"","slug":"hello-world-3"}"#.into());
    let input = dir.path().join("mixed.ndjson");
    write_lines(&input, &lines);
    let out = import(&db, &input, "alice", &["--atomic"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let reported = reported_lines(&out.stderr);
    assert!(
        reported.contains(&"line 5: slug: slug 'mine' is already used by line 4".into()),
        "{reported:?}"
    );
    assert!(
        reported.contains(&"line 15: slug: slug 'hello-world-3' is already used by line 14".into()),
        "{reported:?}"
    );
    assert!(
        reported.contains(&"line 13: body: must be a string".into()),
        "{reported:?}"
    );
    assert!(text(&out.stderr).contains("rejected and nothing was written"));
    assert_eq!(count(&db, "SELECT count(*) FROM posts"), 0);
    assert_eq!(count(&db, "SELECT count(*) FROM imports"), 0);

    // A good file goes in whole, with the slugs a run without --atomic would give.
    let good: Vec<String> = [
        r#"{"title":"Hello, world","body":""}"#,
        r#"{"title":"Hello, world","body":""}"#,
        r#"{"title":"Own","body":"","slug":"own"}"#,
    ]
    .iter()
    .map(|l| l.to_string())
    .collect();
    let input = dir.path().join("good.ndjson");
    write_lines(&input, &good);
    let out = import(&db, &input, "alice", &["--atomic"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM posts WHERE slug IN ('hello-world', 'hello-world-2', 'own')"
        ),
        3
    );
    assert_eq!(count(&db, "SELECT count(*) FROM import_chunks"), 0);
    // The scratch database of the check pass is gone with its directory.
    assert!(partial_dirs(dir.path()).is_empty());
}

#[test]
fn exports_are_owner_only_files_and_replace_a_link_rather_than_follow_it() {
    let dir = TempDir::new("export-files");
    let db = database_with_user(&dir, "alice");
    let input = dir.path().join("in.ndjson");
    write_lines(&input, &numbered_lines("File", 3));
    assert!(import(&db, &input, "alice", &[]).status.success());

    let elsewhere = dir.path().join("elsewhere.txt");
    std::fs::write(&elsewhere, "must stay as it is").expect("write");
    let dest = dir.path().join("export.ndjson");
    std::os::unix::fs::symlink(&elsewhere, &dest).expect("symlink");
    let out = cli_ok(
        &db,
        &["export", "--output", dest.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(
        text(&out.stdout).trim(),
        format!("exported 3 posts to {}", dest.display())
    );
    assert!(!std::fs::symlink_metadata(&dest)
        .expect("meta")
        .file_type()
        .is_symlink());
    assert_eq!(mode(&dest), 0o600);
    assert_eq!(ndjson(&std::fs::read(&dest).expect("read")).len(), 3);
    assert_eq!(
        std::fs::read_to_string(&elsewhere).expect("read"),
        "must stay as it is"
    );
    // Replaced whole on a second export, too.
    cli_ok(
        &db,
        &["export", "--output", dest.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(mode(&dest), 0o600);
    assert!(partial_dirs(dir.path()).is_empty());

    // To stdout: the lines and nothing else.
    let out = cli_ok(&db, &["export"], &[]);
    assert_eq!(ndjson(&out.stdout).len(), 3);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn stdin_is_recognised_by_its_bytes_and_imported_once() {
    let dir = TempDir::new("import-stdin");
    let db = database_with_user(&dir, "alice");
    let lines = numbered_lines("Piped", 2_500).join("\n") + "\n";
    let pipe = |bytes: &[u8]| -> Output {
        let mut child = import_command(&db, Path::new("-"), "alice", &[])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(bytes)
            .expect("write stdin");
        child.wait_with_output().expect("import")
    };
    let out = pipe(lines.as_bytes());
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("imported 2,500 posts from 2,500 lines of stdin"));
    let out = pipe(lines.as_bytes());
    assert!(
        text(&out.stdout).contains("imported completely"),
        "{}",
        text(&out.stdout)
    );
    // Other bytes are another input.
    let out = pipe(&lines.as_bytes()[..lines.len() - 1]);
    assert!(
        text(&out.stdout).contains("imported 2,500 posts"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(count(&db, "SELECT count(*) FROM posts"), 5_000);
    assert_eq!(mode(&db), 0o600);
    assert!(
        partial_dirs(dir.path()).is_empty(),
        "the copy of stdin is gone"
    );
}

#[test]
fn progress_shows_on_a_terminal_and_nowhere_else() {
    let dir = TempDir::new("import-progress");
    let db = database_with_user(&dir, "alice");
    let input = dir.path().join("in.ndjson");
    write_lines(&input, &numbered_lines("Shown", 3_000));
    let out = import(&db, &input, "alice", &[]);
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));

    // `script` gives the command a terminal (util-linux; skipped where it is missing).
    let line = format!(
        "{BIN} export --db {} --output {}",
        db.display(),
        dir.path().join("out.ndjson").display()
    );
    let Ok(out) = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
    else {
        println!("no `script` here: the terminal half is skipped");
        return;
    };
    let shown = text(&out.stdout);
    assert!(
        shown.contains("exporting: 3,000/3,000 posts (100%)") && shown.contains("posts/s"),
        "{shown:?}"
    );
}
