//! Full-text search (`GET /posts?q=`): whole words, any case, every word; the query is
//! plain text whatever FTS5 syntax it holds.

use crate::support::*;
use serde_json::json;

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn search(s: &TestApp, q: &str) -> Vec<i64> {
    let r = s.get(&format!("/posts?limit=100&q={}", url_encode(q)), None);
    r.expect(200);
    ids(r.json()["items"].as_array().unwrap())
}

#[test]
fn search_is_whole_word_case_insensitive_and_all_words() {
    let s = TestApp::new();
    let a = s.register("alice");
    let b = s.register("bob");
    let p1 = s.create_post_json(
        &a.token,
        json!({"title": "Rust programming guide", "body": "learn the borrow checker"}),
    );
    let p2 = s.create_post_json(
        &a.token,
        json!({"title": "Rusty nails", "body": "hardware store"}),
    );
    let p3 = s.create_post_json(
        &b.token,
        json!({"title": "Cooking pasta", "body": "a rust coloured sauce"}),
    );
    let p4 = s.create_post_json(
        &b.token,
        json!({"title": "Café Olé", "body": "rustacean meetup"}),
    );
    let p5 = s.create_post_json(&a.token, json!({"title": "alpha beta", "body": "gamma"}));
    let (i1, i2, i3, i4, i5) = (id(&p1), id(&p2), id(&p3), id(&p4), id(&p5));

    assert_eq!(search(&s, "rust"), vec![i3, i1]);
    assert_eq!(search(&s, "RUST"), vec![i3, i1]);
    assert_eq!(search(&s, "Rust"), vec![i3, i1]);
    assert_eq!(search(&s, "rusty"), vec![i2]);
    assert!(search(&s, "rus").is_empty(), "no prefix matching");
    assert!(search(&s, "rustacea").is_empty());
    assert_eq!(search(&s, "rustacean"), vec![i4]);
    assert_eq!(
        search(&s, "rust borrow"),
        vec![i1],
        "one word in title, one in body"
    );
    assert_eq!(search(&s, "borrow RUST"), vec![i1]);
    assert!(
        search(&s, "rust hardware").is_empty(),
        "every word must appear"
    );
    assert!(search(&s, "rust nails").is_empty(), "'rusty' is not 'rust'");
    assert_eq!(search(&s, "alpha gamma"), vec![i5]);
    assert!(search(&s, "beta delta").is_empty());
    assert_eq!(search(&s, "café"), vec![i4]);
    assert_eq!(search(&s, "CAFÉ"), vec![i4]);
    assert_eq!(
        search(&s, "rust, borrow!"),
        vec![i1],
        "punctuation separates words"
    );
    // Combined with author_id.
    let r = s.get(&format!("/posts?q=rust&author_id={}", b.id), None);
    r.expect(200);
    assert_eq!(ids(r.json()["items"].as_array().unwrap()), vec![i3]);
    let r = s.get(&format!("/posts?q=rust&author_id={}", a.id), None);
    assert_eq!(ids(r.json()["items"].as_array().unwrap()), vec![i1]);
    // Edits are searchable at once; old words are gone.
    s.call(
        "PATCH",
        &format!("/posts/{i2}"),
        Some(&a.token),
        Some(&json!({"title": "Shiny screws"})),
    )
    .expect(200);
    assert!(search(&s, "rusty").is_empty());
    assert_eq!(search(&s, "screws hardware"), vec![i2]);
    // author_id filter without q.
    let mine = s.collect_pages(&format!("/posts?author_id={}", b.id), None);
    assert_eq!(ids(&mine), vec![i4, i3]);
    assert!(s.collect_pages("/posts?author_id=99999", None).is_empty());
}

#[test]
fn search_syntax_in_q_is_plain_text() {
    let s = TestApp::new();
    let a = s.register("alice");
    let p = s.create_post_json(&a.token, json!({"title": "title x", "body": "near zebra"}));
    s.create_post_json(&a.token, json!({"title": "another", "body": "text"}));
    for q in [
        "\"",
        "\"\"",
        "\"zebra",
        "AND OR NOT",
        "AND",
        "OR",
        "NOT",
        "NOT zebra",
        "zebra NOT",
        "*",
        "zebra*",
        "*zebra",
        "(",
        ")",
        "(zebra",
        "NEAR(",
        "NEAR(zebra x)",
        "NEAR",
        "title:x",
        "title:",
        ":",
        "^",
        "^zebra",
        "-",
        "-zebra",
        "+",
        "{title body}: x",
        "'",
        "''",
        "\\",
        "%",
        "&",
        "=",
        "?",
        "#",
        "zebra; DROP TABLE posts; --",
        "x' OR '1'='1",
        "\u{0}",
        "😀",
        "ß",
        "   ",
        "",
        "a\"b",
        "col:zebra",
        "zebra AND",
        "OR zebra",
        "[x]",
        "$",
        ",",
        ".",
        "..",
        "~",
    ] {
        let r = s.get(&format!("/posts?q={}", url_encode(q)), None);
        assert!(r.status < 500, "q={q:?} gave {}: {}", r.status, r.text());
        assert_eq!(r.status, 200, "q={q:?}: {}", r.text());
        assert!(r.json()["items"].is_array());
    }
    // Operators are words like any other: nothing contains "and"/"or"/"not".
    assert!(search(&s, "AND OR NOT").is_empty());
    assert!(search(&s, "NOT zebra").is_empty());
    // Syntax around real words still finds them as words.
    assert_eq!(search(&s, "\"zebra"), vec![id(&p)]);
    assert_eq!(search(&s, "title:x"), vec![id(&p)]);
    assert_eq!(search(&s, "NEAR(zebra x)"), vec![id(&p)]);
    assert_eq!(search(&s, "^zebra*"), vec![id(&p)]);
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), 2);
}
