//! The architecture's invariants (ARCHITECTURE.md), checked against the source tree.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `text` without its test-only items: each `#[cfg(test)]` and the item it marks (up to
/// the `;` or the `}` that ends it) are left out, and the code after them is kept. Braces
/// and semicolons inside comments, strings and character literals do not count, nor does
/// the attribute written in one of them.
fn without_test_items(text: &str) -> String {
    const MARK: &[u8] = b"#[cfg(test)]";
    let bytes = text.as_bytes();
    let mut kept = String::new();
    let (mut run, mut at) = (0, 0);
    while at < bytes.len() {
        if let Some(end) = end_of_literal_or_comment(text, at) {
            at = end;
        } else if bytes[at..].starts_with(MARK) {
            kept.push_str(&text[run..at]);
            at = end_of_item(text, at + MARK.len());
            run = at;
        } else {
            at += 1;
        }
    }
    kept.push_str(&text[run..]);
    kept
}

/// Where the item starting at `at` ends: after its `;`, or after the `}` closing its body
/// (more attributes before it are part of it).
fn end_of_item(text: &str, mut at: usize) -> usize {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    while at < bytes.len() {
        if let Some(end) = end_of_literal_or_comment(text, at) {
            at = end;
            continue;
        }
        match bytes[at] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' => depth = depth.saturating_sub(1),
            b'}' if depth <= 1 => return at + 1,
            b'}' => depth -= 1,
            b';' if depth == 0 => return at + 1,
            _ => {}
        }
        at += 1;
    }
    bytes.len()
}

/// If a comment, a string or a character literal starts at `at`, where it ends.
fn end_of_literal_or_comment(text: &str, at: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let rest = &bytes[at..];
    let find = |from: usize, needle: &[u8]| {
        bytes[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map_or(bytes.len(), |p| from + p + needle.len())
    };
    if rest.starts_with(b"//") {
        return Some(find(at, b"\n"));
    }
    if rest.starts_with(b"/*") {
        let mut depth = 0;
        let mut i = at;
        while i + 1 < bytes.len() {
            match &bytes[i..i + 2] {
                b"/*" => (depth, i) = (depth + 1, i + 2),
                b"*/" if depth == 1 => return Some(i + 2),
                b"*/" => (depth, i) = (depth - 1, i + 2),
                _ => i += 1,
            }
        }
        return Some(bytes.len());
    }
    let after_identifier =
        at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
    // Raw strings: r"…", r#"…"#, and their b/c forms.
    let prefix = rest.iter().take_while(|b| matches!(b, b'b' | b'c')).count();
    if !after_identifier && prefix <= 1 && rest.get(prefix) == Some(&b'r') {
        let hashes = rest[prefix + 1..]
            .iter()
            .take_while(|b| **b == b'#')
            .count();
        if rest.get(prefix + 1 + hashes) == Some(&b'"') {
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            return Some(find(at + prefix + hashes + 2, &close));
        }
    }
    match rest.first() {
        Some(b'"') => {
            let mut i = at + 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => return Some(i + 1),
                    _ => i += 1,
                }
            }
            Some(bytes.len())
        }
        // A character literal ('x', '\n', '\u{7f}'); otherwise a lifetime or a label.
        Some(b'\'') if rest.get(1) == Some(&b'\\') => Some(find(at + 3, b"'")),
        Some(b'\'') => {
            let width = text[at + 1..].chars().next().map_or(1, char::len_utf8);
            (bytes.get(at + 1 + width) == Some(&b'\'')).then_some(at + 2 + width)
        }
        _ => None,
    }
}

#[test]
fn test_only_items_are_left_out_and_the_code_after_them_is_checked() {
    let source = r##"
fn before() {}
#[cfg(test)]
fn only_in_tests() -> [u8; 2] { let s = "}"; let c = '}'; let l: &'static str = s; [1, 2] } // }
const AFTER_A_FUNCTION: u8 = 1;
#[cfg(test)]
mod declared_elsewhere;
struct AfterASemicolon;
#[cfg(test)]
#[allow(unused)]
mod tests {
    /* } /* nested */ } */
    fn helper<'a>(x: &'a str) -> &'a str { let _ = (r#"}"#, b'{', '\''); x }
}
fn after_a_module() {}
// #[cfg(test)] in a comment marks nothing
fn after_a_comment() {}
const TEXT: &str = "#[cfg(test)]";
fn after_a_string() {}
"##;
    let kept = without_test_items(source);
    for expected in [
        "fn before",
        "AFTER_A_FUNCTION",
        "AfterASemicolon",
        "fn after_a_module",
        "fn after_a_comment",
        "fn after_a_string",
    ] {
        assert!(kept.contains(expected), "{expected} was left out: {kept}");
    }
    for left_out in ["only_in_tests", "declared_elsewhere", "mod tests", "helper"] {
        assert!(!kept.contains(left_out), "{left_out} was kept: {kept}");
    }
}

/// Lines of production code (comments and test-only items left out) with their files.
fn code_lines() -> Vec<(String, String)> {
    let mut lines = Vec::new();
    for file in rust_files(&src()) {
        let text = std::fs::read_to_string(&file).unwrap();
        let production = without_test_items(&text);
        let name = file.strip_prefix(src()).unwrap().display().to_string();
        lines.extend(
            production
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .map(|l| (name.clone(), l.to_string())),
        );
    }
    lines
}

#[test]
fn no_code_reads_the_posts_table_directly() {
    // Reads go through active_posts / deleted_posts / active_comments; only DELETE names
    // the table after FROM.
    let leaks: Vec<_> = code_lines()
        .into_iter()
        .filter(|(_, line)| {
            let lower = line.to_lowercase();
            let words: Vec<&str> = lower
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .collect();
            words.windows(2).any(|w| w == ["from", "posts"]) && !lower.contains("delete from posts")
        })
        .collect();
    assert!(leaks.is_empty(), "posts read outside the views: {leaks:?}");
}

#[test]
fn sql_lives_only_in_the_store() {
    let outside: Vec<_> = code_lines()
        .into_iter()
        .filter(|(file, _)| !file.starts_with("store"))
        .filter(|(_, line)| {
            [
                "SELECT ",
                "INSERT INTO",
                "UPDATE posts",
                "DELETE FROM",
                "prepare_cached",
                ".execute(",
            ]
            .iter()
            .any(|needle| line.contains(needle))
        })
        .collect();
    assert!(outside.is_empty(), "SQL outside src/store: {outside:?}");
}

#[test]
fn writes_use_immediate_transactions_only() {
    let lines = code_lines();
    let matching = |needle: &str| -> Vec<(String, String)> {
        lines
            .iter()
            .filter(|(_, l)| l.contains(needle))
            .cloned()
            .collect()
    };
    // Writes begin only in the writer (a group's transaction, or one of its own), on the
    // file or on the cluster's leader.
    let immediate = matching("BEGIN IMMEDIATE");
    assert!(
        immediate
            .iter()
            .all(|(file, l)| file == "store/writer.rs" && l.contains("\"BEGIN IMMEDIATE\"")),
        "{immediate:?}"
    );
    assert_eq!(immediate.len(), 2, "{immediate:?}");
    // The one other BEGIN is the cluster's read snapshot (deferred; it only reads), which
    // is also the one other COMMIT.
    let reads: Vec<_> = matching("\"BEGIN\"");
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0].0, "store/mod.rs");
    let commits = matching("\"COMMIT\"");
    assert!(
        commits
            .iter()
            .all(|(file, _)| file == "store/writer.rs" || file == "store/mod.rs"),
        "{commits:?}"
    );
    // The schema migration of a file is the one other writer, also IMMEDIATE.
    let immediate = matching("TransactionBehavior::Immediate");
    assert_eq!(immediate.len(), 1, "{immediate:?}");
    assert_eq!(immediate[0].0, "store/schema.rs");
    // Deferred transactions only read: the file's snapshot, and the seed file's.
    let deferred: Vec<_> = lines
        .iter()
        .filter(|(_, l)| {
            l.contains(".transaction()") || l.contains("TransactionBehavior::Deferred")
        })
        .collect();
    let files: Vec<&str> = deferred.iter().map(|(file, _)| file.as_str()).collect();
    assert_eq!(files, ["store/local.rs", "store/seed.rs"], "{deferred:?}");
}

#[test]
fn problem_json_is_made_in_one_place() {
    let makers: Vec<_> = code_lines()
        .into_iter()
        .filter(|(_, l)| l.contains("application/problem+json"))
        .map(|(file, _)| file)
        .collect();
    assert_eq!(
        makers,
        ["api/problem.rs"],
        "problem+json built outside api/problem.rs"
    );
}

#[test]
fn no_unwrap_or_expect_on_request_paths() {
    let offenders: Vec<_> = code_lines()
        .into_iter()
        .filter(|(file, _)| file.starts_with("api") || file.starts_with("store"))
        .filter(|(_, l)| l.contains(".unwrap()") || l.contains(".expect("))
        .collect();
    assert!(offenders.is_empty(), "{offenders:?}");
}

#[test]
fn rusqlite_lives_only_in_the_store() {
    let outside: Vec<_> = code_lines()
        .into_iter()
        .filter(|(file, _)| !file.starts_with("store"))
        .filter(|(_, line)| {
            line.contains("rusqlite") || line.contains("r2d2") || line.contains("dqlite::")
        })
        .collect();
    assert!(
        outside.is_empty(),
        "SQLite named outside src/store: {outside:?}"
    );
}

/// dqlite 1.11 can not run RETURNING and aborts on VACUUM and on setting journal_mode:
/// none of them may be in the store's SQL, which both ways to SQLite share. Files of the
/// store's own (the import's scratch file, a backup's copy) are opened with rusqlite and
/// may set their journal mode.
#[test]
fn the_shared_sql_holds_nothing_dqlite_1_11_can_not_run() {
    let refused: Vec<_> = code_lines()
        .into_iter()
        .filter(|(file, _)| file.starts_with("store") && !file.starts_with("store/local.rs"))
        .filter(|(_, line)| {
            let upper = line.to_uppercase();
            upper.contains("RETURNING") && !line.trim_start().starts_with("//")
                || upper.contains("VACUUM")
                || upper.contains("JOURNAL_MODE =")
                    && !upper.contains("JOURNAL_MODE = DELETE")
                    && !upper.contains("JOURNAL_MODE = OFF")
        })
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
}

/// The top-level module a `src/` file belongs to (`api/posts.rs` → `api`).
fn module_of(file: &str) -> String {
    let first = file.split('/').next().unwrap_or(file);
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn top_level_modules_import_each_other_in_one_direction_only() {
    use std::collections::{BTreeMap, BTreeSet};
    let mut imports: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, line) in code_lines() {
        let from = module_of(&file);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let to: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !to.is_empty() && to != from {
                imports.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    // Depth-first search for a module that reaches itself.
    fn reaches(
        imports: &BTreeMap<String, BTreeSet<String>>,
        from: &str,
        target: &str,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        imports.get(from).into_iter().flatten().any(|next| {
            next == target || (seen.insert(next.clone()) && reaches(imports, next, target, seen))
        })
    }
    let cycles: Vec<&String> = imports
        .keys()
        .filter(|module| reaches(&imports, module, module, &mut BTreeSet::new()))
        .collect();
    assert!(
        cycles.is_empty(),
        "modules in an import cycle: {cycles:?} ({imports:?})"
    );
    assert!(
        imports
            .get("config")
            .is_none_or(|uses| !uses.contains("api")),
        "the command line must not depend on the HTTP layer: {imports:?}"
    );
}

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// The modules a `main.rs` or `mod.rs` declares (`mod x;`, `pub mod x;`), sorted.
fn declared_modules(file: &Path) -> Vec<String> {
    let mut declared: Vec<String> = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("pub ").unwrap_or(l);
            Some(l.strip_prefix("mod ")?.strip_suffix(';')?.to_string())
        })
        .collect();
    declared.sort_unstable();
    declared
}

/// Asserts that every file and directory in `dir` is a module that `root` (its `main.rs`
/// or `mod.rs`) declares, down through every directory.
fn assert_all_declared(dir: &Path, root: &str) {
    let mut found: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            assert_all_declared(&path, "mod.rs");
            found.push(name);
        } else if name != root {
            found.push(path.file_stem().unwrap().to_string_lossy().into_owned());
        }
    }
    found.sort_unstable();
    assert_eq!(
        declared_modules(&dir.join(root)),
        found,
        "the files in {} and the mod lines of its {root}",
        dir.display()
    );
}

#[test]
fn integration_tests_are_one_binary() {
    // Cargo makes a test binary of every tests/*.rs and tests/*/main.rs; a directory with
    // a Cargo.toml of its own (the test kit, the browser tests) is a workspace member.
    let tests = tests_dir();
    let mut binaries = Vec::new();
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        let name = path.strip_prefix(&tests).unwrap().display().to_string();
        if path.join("Cargo.toml").is_file() {
            continue;
        }
        if path.join("main.rs").is_file() {
            binaries.push(format!("{name}/main.rs"));
        } else if path.extension().is_some_and(|e| e == "rs") {
            binaries.push(name);
        }
    }
    assert_eq!(
        binaries,
        ["it/main.rs"],
        "integration tests are modules of tests/it/main.rs"
    );
    // Every file under tests/it is a module: one left out would never run.
    assert_all_declared(&tests.join("it"), "main.rs");
}

/// `(file, test name, the test's first statement)` for each `#[test]` of the files in `dir`.
fn tests_in(dir: &Path) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for file in rust_files(dir) {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (at, line) in lines.iter().enumerate() {
            if line.trim() != "#[test]" {
                continue;
            }
            let Some(signature) = lines[at + 1..].iter().position(|l| l.starts_with("fn ")) else {
                continue;
            };
            let signature = at + 1 + signature;
            let name = lines[signature]["fn ".len()..]
                .split('(')
                .next()
                .unwrap_or_default();
            let first = lines.get(signature + 1).map_or("", |l| l.trim());
            found.push((
                file.display().to_string(),
                name.to_string(),
                first.to_string(),
            ));
        }
    }
    found
}

#[test]
fn every_heavy_test_starts_with_the_switch() {
    let tests = tests_dir();
    let mut heavy = Vec::new();
    for dir in [tests.join("it/heavy"), tests.join("browser/tests")] {
        let found = tests_in(&dir);
        assert!(!found.is_empty(), "no tests in {}", dir.display());
        heavy.extend(found);
    }
    let unswitched: Vec<_> = heavy
        .iter()
        .filter(|(_, _, first)| first != "if skip_heavy() {")
        .map(|(file, name, _)| format!("{file}: {name}"))
        .collect();
    assert!(
        unswitched.is_empty(),
        "heavy tests that `cargo test` would run: {unswitched:?}"
    );
}

#[test]
fn the_quick_tier_starts_no_server() {
    let quick = tests_dir().join("it/quick");
    assert!(
        !tests_in(&quick).is_empty(),
        "no tests in {}",
        quick.display()
    );
    let starts: Vec<String> = rust_files(&quick)
        .into_iter()
        // This file names what it looks for.
        .filter(|file| !file.ends_with("invariants.rs"))
        .filter(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            text.contains("Server::")
                || text.contains("ServerProcess")
                || text.contains("skip_heavy")
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        starts.is_empty(),
        "quick tests that start the binary as a server belong in tests/it/heavy: {starts:?}"
    );
}

/// The functions of `src/store` (production code): `(file, name, text)`, each running from
/// its `fn` line to the next one.
fn store_functions() -> Vec<(String, String, String)> {
    let mut functions = Vec::new();
    for file in rust_files(&src().join("store")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let production = without_test_items(&text);
        let name = file.strip_prefix(src()).unwrap().display().to_string();
        let mut current: Option<(String, String)> = None;
        for line in production
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
        {
            let trimmed = line.trim_start();
            let declared = ["fn ", "pub fn ", "pub(super) fn ", "pub(crate) fn "]
                .iter()
                .find_map(|prefix| trimmed.strip_prefix(prefix));
            if let Some(rest) = declared {
                functions.extend(current.take().map(|(f, body)| (name.clone(), f, body)));
                let fn_name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                current = Some((fn_name, String::new()));
            }
            if let Some((_, body)) = current.as_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
        functions.extend(current.map(|(f, body)| (name.clone(), f, body)));
    }
    functions
}

/// The audit log's promise (ARCHITECTURE.md, "audit in the same transaction"): a function
/// of the store that runs a statement making an audited change — soft delete or restore
/// (`SET deleted_at`), permanent delete or purge (`DELETE FROM posts`), role change,
/// user deletion — runs on a write transaction (`&Tx`, or inside `write`/`write_alone`)
/// and appends the event itself, or is a helper whose every caller does. `audit::append`
/// takes the change's own `&Tx`, so the event commits or rolls back with the change.
#[test]
fn every_audited_change_appends_its_event_on_the_same_transaction() {
    // Every change of a post is in the log (the change feed reads it), and so are the
    // changes of users an operator accounts for.
    const AUDITED: &[&str] = &[
        "INSERT INTO posts (",
        "UPDATE posts SET title",
        "SET deleted_at",
        "DELETE FROM posts",
        "UPDATE users SET role",
        "DELETE FROM users",
    ];
    const APPEND: &str = "audit::append(";
    let on_a_write = |body: &str| {
        body.contains("tx: &Tx") || body.contains("write_alone(|tx|") || body.contains("write(|tx|")
    };
    let functions = store_functions();
    let mut changers = Vec::new();
    for (file, name, body) in &functions {
        if !AUDITED.iter().any(|statement| body.contains(statement)) {
            continue;
        }
        changers.push(name.clone());
        assert!(
            on_a_write(body),
            "{file}: {name} changes outside a write transaction"
        );
        if body.contains(APPEND) {
            continue;
        }
        let callers: Vec<&(String, String, String)> = functions
            .iter()
            .filter(|(_, caller, text)| caller != name && text.contains(&format!("{name}(")))
            .collect();
        assert!(
            !callers.is_empty(),
            "{file}: {name} makes an audited change and appends no event"
        );
        for (caller_file, caller, text) in callers {
            assert!(
                text.contains(APPEND) && on_a_write(text),
                "{caller_file}: {caller} calls {name}, which makes an audited change, \
                 without appending its event on the same transaction"
            );
        }
    }
    // The rule found the changes it is about (a renamed statement would silence it).
    for expected in [
        "insert_post",
        "insert_statement",
        "apply_patch",
        "revert",
        "soft_delete",
        "hard_delete",
        "restore",
        "delete_rows",
        "restore_all",
        "purge_some",
        "set_role",
        "delete_user",
    ] {
        assert!(
            changers.iter().any(|c| c == expected),
            "{expected}: {changers:?}"
        );
    }
    // The event can only be written on a write transaction.
    let append = functions
        .iter()
        .find(|(file, name, _)| file == "store/audit.rs" && name == "append")
        .expect("store/audit.rs has append");
    assert!(append.2.contains("tx: &Tx"), "{}", append.2);
}

/// Old versions of posts are shown only to those who may see them (the owner, admins):
/// no public read path — lists, single posts, search, comments, the feed — names
/// `post_revisions`. Only `store/revisions.rs` reads it; the erasure counts what it
/// removes, and whatever else names it only deletes from it (schema.sql makes it).
#[test]
fn no_public_read_path_names_post_revisions() {
    const TABLE: &str = "post_revisions";
    let mut naming: Vec<(String, String)> = code_lines()
        .into_iter()
        .filter(|(_, line)| line.contains(TABLE))
        .collect();
    naming.sort();
    let files: std::collections::BTreeSet<&str> = naming.iter().map(|(f, _)| f.as_str()).collect();
    assert!(
        files.contains("store/revisions.rs"),
        "the revisions module no longer names the table (a rename would silence this test): {files:?}"
    );
    for (file, line) in &naming {
        assert!(
            file.starts_with("store/"),
            "{file} names {TABLE} outside the store: {line}"
        );
        if file == "store/revisions.rs" {
            continue;
        }
        // Elsewhere in the store: a delete, or the erasure's count of what it removes.
        let allowed = line.contains(&format!("DELETE FROM {TABLE}"))
            || (file == "store/erasure.rs" && line.contains(&format!("count(*) FROM {TABLE}")));
        assert!(allowed, "{file} reads {TABLE}: {line}");
    }
    // SQL outside src/ (schema.sql) may only make the table and write it from the trigger.
    let schema = std::fs::read_to_string(src().join("../schema.sql")).unwrap();
    for line in schema
        .lines()
        .filter(|l| l.contains(TABLE) && !l.trim_start().starts_with("--"))
    {
        let line = line.trim_start();
        assert!(
            line.starts_with("CREATE TABLE") || line.starts_with("INSERT INTO"),
            "schema.sql: {line}"
        );
    }
}
