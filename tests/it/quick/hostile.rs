//! Hostile input, in process: property tests (proptest) that drive `postd::api::handle`
//! with arbitrary bodies, JSON-ish documents, paths, query strings and header values: the
//! answer is never a 5xx and never a panic, and every error is problem+json carrying its
//! status. The same input as raw bytes against the binary is `heavy::hostile`.
//!
//! `PROPTEST_CASES` sets the number of cases per property (default 256).

use crate::support::TempDir;
use postd::api::App;
use postd::auth::TokenKeys;
use postd::config::{Command, Invocation, ServeConfig};
use postd::model::{Role, Username};
use postd::store::Store;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use rouille::Request;
use std::io::Read;

// ---------------------------------------------------------------------------------------
// In-process fixture
// ---------------------------------------------------------------------------------------

/// A real `App` on a fresh database with a user, an admin, and a few posts (one of them
/// soft-deleted) so that ids 1..=4 hit real rows.
struct Fixture {
    app: App,
    user_token: String,
    admin_token: String,
    _dir: TempDir,
}

impl Fixture {
    fn new(max_body: usize) -> Fixture {
        let dir = TempDir::new("hostile");
        let db = dir.path().join("postd.db");
        let args = [
            "--db".to_string(),
            db.display().to_string(),
            "--max-body".to_string(),
            max_body.to_string(),
            "--max-bulk".to_string(),
            "50".to_string(),
            "--log-format".to_string(),
            "off".to_string(),
        ];
        let config: ServeConfig = match postd::config::parse(args) {
            Ok(Invocation::Run(Command::Serve(config))) => *config,
            other => panic!("not a serve config: {other:?}"),
        };
        let store = Store::open(&db, 4).expect("open store");
        let keys = TokenKeys::new(&[7u8; 32], 3600);
        let name = |text: &str| Username::parse(text).expect("valid name");
        let user = store
            .create_user(&name("fuzzer"), "not-a-real-hash", Role::User)
            .expect("insert user");
        let admin = store
            .create_user(&name("fuzz-admin"), "not-a-real-hash", Role::Admin)
            .expect("insert admin");
        let user_token = keys.issue(user.id).expect("token");
        let admin_token = keys.issue(admin.id).expect("token");
        let fixture = Fixture {
            app: App::new(&config, store, keys),
            user_token,
            admin_token,
            _dir: dir,
        };
        for n in 1..=4 {
            let body = format!(r#"{{"title":"seed post {n}","body":"alpha beta gamma {n}"}}"#);
            let (status, _, text) = fixture.send(
                "POST",
                "/posts",
                fixture.json_headers(Some(&fixture.user_token)),
                body.into_bytes(),
            );
            assert_eq!(status, 201, "seeding: {text}");
        }
        let comment = br#"{"body":"first"}"#.to_vec();
        let headers = fixture.json_headers(Some(&fixture.user_token));
        assert_eq!(
            fixture
                .send("POST", "/posts/1/comments", headers, comment)
                .0,
            201
        );
        let auth = vec![(
            "Authorization".to_string(),
            format!("Bearer {}", fixture.user_token),
        )];
        assert_eq!(fixture.send("DELETE", "/posts/4", auth, Vec::new()).0, 204);
        fixture
    }

    fn json_headers(&self, token: Option<&str>) -> Vec<(String, String)> {
        let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        if let Some(token) = token {
            headers.push(("Authorization".to_string(), format!("Bearer {token}")));
        }
        headers
    }

    /// Runs one request through the full dispatch; returns status, Content-Type, body.
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> (u16, Option<String>, String) {
        let request = Request::fake_http(method, url, headers, body);
        let response = postd::api::handle(&self.app, &request);
        let content_type = response
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Type"))
            .map(|(_, v)| v.to_string());
        let status = response.status_code;
        let (mut reader, _) = response.data.into_reader_and_size();
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).expect("read response body");
        (
            status,
            content_type,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// Sends the request and checks the properties every answer must have.
    fn check(
        &self,
        method: &str,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<u16, TestCaseError> {
        let what = format!("{method} {url:?} headers={headers:?} body={body:?}");
        let (status, content_type, text) = self.send(method, url, headers, body);
        check_answer(status, content_type.as_deref(), text.as_bytes(), &what)?;
        Ok(status)
    }
}

/// No 5xx; every error is problem+json whose body carries the same status.
fn check_answer(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    what: &str,
) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(body);
    prop_assert!(status < 500, "{status} for {what}: {text}");
    if status >= 400 {
        prop_assert_eq!(
            content_type,
            Some("application/problem+json"),
            "{} for {}: {}",
            status,
            what,
            text
        );
        let problem: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            TestCaseError::fail(format!("problem is not JSON ({e}) for {what}: {text}"))
        })?;
        prop_assert_eq!(&problem["status"], status, "{} for {}", text, what);
        prop_assert!(problem["title"].is_string(), "{} for {}", text, what);
        prop_assert!(problem["detail"].is_string(), "{} for {}", text, what);
    }
    Ok(())
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        // Failures are shrunk and printed; nothing is written into the source tree.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..Config::default()
    }
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// Routes that read a body, with the methods that reach the body parser.
const BODY_ROUTES: &[(&str, &str)] = &[
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    ("POST", "/posts"),
    ("PATCH", "/posts/1"),
    ("PATCH", "/posts/2"),
    ("PATCH", "/posts/4"),
    ("PATCH", "/posts/999"),
    ("POST", "/posts/1/comments"),
    ("POST", "/posts/4/comments"),
    ("POST", "/posts/bulk"),
    ("PATCH", "/posts/bulk"),
    ("DELETE", "/posts/bulk"),
    ("POST", "/posts/bulk/restore"),
    ("POST", "/admin/purge"),
];

fn body_route() -> impl Strategy<Value = (&'static str, &'static str)> {
    proptest::sample::select(BODY_ROUTES)
}

/// Numbers as JSON text, chosen to break integer and float handling.
fn nasty_number() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "0",
            "-0",
            "1",
            "2",
            "3",
            "4",
            "-1",
            "1.0",
            "1.5",
            "-1.5",
            "1e3",
            "1E+2",
            "1e-7",
            "1e308",
            "1e309",
            "1e400",
            "-1e400",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "18446744073709551616",
            "123456789012345678901234567890",
            "0.0000000000000000000000000001",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        "[1-9][0-9]{20,400}".prop_map(|digits| digits),
    ]
}

/// String contents as JSON text (without quotes): escapes, NULs, lone surrogates, FTS
/// syntax, plausible and implausible field values.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "",
            " ",
            "a",
            "hello",
            "hello-world",
            "Hello World",
            "abc",
            "correct-horse-battery",
            "\\u0000",
            "a\\u0000b",
            "\\ud800",
            "\\udc00\\ud800",
            "\\ud83d\\ude00",
            "\\\"",
            "\\\\",
            "\\n\\r\\t",
            "\\/",
            "\\uFFFF",
            "é ü 日本 🙂",
            "NEAR(a b)",
            "\\\"quoted\\\" *",
            "title:x AND y OR NOT z ^a",
            "-- ; DROP TABLE posts;",
            "' OR 1=1 --",
            "%ff%00",
            "-a-",
            "UPPER",
            "post",
        ])
        .prop_map(str::to_string),
        "[a-z0-9-]{1,120}",
        "[ -~]{0,40}".prop_map(|s| s.replace('\\', "\\\\").replace('"', "\\\"")),
        any::<String>().prop_map(|s| json_escape(&s)),
        (1usize..120_000).prop_map(|n| "x".repeat(n)),
    ]
}

fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).expect("string");
    quoted[1..quoted.len() - 1].to_string()
}

const FIELD_NAMES: &[&str] = &[
    "title",
    "body",
    "slug",
    "items",
    "post_ids",
    "hard_delete",
    "atomic",
    "id",
    "username",
    "password",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(FIELD_NAMES).prop_map(str::to_string),
        1 => nasty_string(),
    ]
}

/// A JSON-ish document as raw text, so that duplicate keys, huge numbers and escapes that
/// no JSON library would produce are all reachable. Mostly well-formed.
fn json_ish() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        nasty_number(),
        nasty_string().prop_map(|s| format!("\"{s}\"")),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8)
                .prop_map(|items| format!("[{}]", items.join(","))),
            proptest::collection::vec((key(), inner), 0..8).prop_map(|fields| {
                let fields: Vec<String> = fields
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

/// Plausible bodies for each route, with fields that may be of the wrong type, repeated,
/// out of range, or missing.
fn shaped_body() -> impl Strategy<Value = String> {
    let field = (
        proptest::sample::select(FIELD_NAMES),
        prop_oneof![
            3 => nasty_string().prop_map(|s| format!("\"{s}\"")),
            1 => nasty_number(),
            1 => json_ish(),
            1 => proptest::collection::vec(nasty_number(), 0..6)
                .prop_map(|ids| format!("[{}]", ids.join(","))),
        ],
    );
    let object = proptest::collection::vec(field, 0..6).prop_map(|fields| {
        let fields: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!("{{{}}}", fields.join(","))
    });
    prop_oneof![
        object.clone(),
        proptest::collection::vec(object.clone(), 0..6)
            .prop_map(|items| format!(r#"{{"items":[{}]}}"#, items.join(","))),
        (
            proptest::collection::vec(object, 0..6),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(items, atomic)| {
                let atomic = atomic
                    .map(|a| format!(r#","atomic":{a}"#))
                    .unwrap_or_default();
                format!(r#"{{"items":[{}]{atomic}}}"#, items.join(","))
            }),
        (
            proptest::collection::vec(nasty_number(), 0..8),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(ids, hard)| {
                let hard = hard
                    .map(|h| format!(r#","hard_delete":{h}"#))
                    .unwrap_or_default();
                format!(r#"{{"post_ids":[{}]{hard}}}"#, ids.join(","))
            }),
        json_ish(),
    ]
}

/// Path segments: real ones, ids of every shape, escapes and junk.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(vec![
            "posts", "bulk", "restore", "by-slug", "comments", "auth", "register", "login",
            "me", "trash", "healthz", "openapi.json", "1", "2", "4", "999",
            "0", "-1", "+1", "01", "1.5", "1e3", "0x10", " 1", "1 ",
            "9223372036854775807", "9223372036854775808", "99999999999999999999999",
            "%31", "%ff", "%", "%zz", "%00", "..", ".", "", "seed-post-1", "a%2Fb",
            "é", "\u{0}", "NEAR(", "*",
        ])
        .prop_map(str::to_string),
        1 => "[a-zA-Z0-9._~%-]{0,24}",
        1 => any::<String>(),
        1 => (1usize..3000).prop_map(|n| "9".repeat(n)),
    ]
}

fn path() -> impl Strategy<Value = String> {
    proptest::collection::vec(segment(), 0..5).prop_map(|segments| {
        let mut path = String::new();
        for s in segments {
            path.push('/');
            path.push_str(&s);
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    })
}

fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "",
            "1",
            "20",
            "100",
            "101",
            "0",
            "-1",
            "abc",
            "1.5",
            "1e2",
            "true",
            "false",
            "TRUE",
            "%ff",
            "%",
            "%4",
            "%e9",
            "%c3%a9",
            "%00",
            "a+b",
            "%22",
            "*",
            "NEAR(a%20b)",
            "%22unbalanced",
            "title%3Ax",
            "a%20AND%20b%20OR%20NOT%20c",
            "%5Ea",
            "a*",
            "-a",
            "a:b:c",
            "(((",
            ")))",
            "%2B%2B",
            "70",
            "7031",
            "p1",
            "7030",
            "74323032362d31312d32325431303a30343a30352e3132335a2c31",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,60}",
        any::<String>(),
        (1usize..=12_000).prop_map(|n| "a".repeat(n)),
        (1usize..=6_000).prop_map(|n| "70".repeat(n)),
        "([0-9a-f]{2}){1,140}",
        "(%[0-9a-fA-F]{2}){1,40}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        4 => proptest::sample::select(vec![
            "limit", "cursor", "q", "author_id", "permanent"
        ])
        .prop_map(str::to_string),
        1 => "[ -~]{0,10}",
        1 => Just("%ff".to_string()),
    ];
    proptest::collection::vec((key, query_value(), any::<bool>()), 0..5).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v, with_eq)| if with_eq { format!("{k}={v}") } else { k })
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(vec!["GET", "HEAD", "POST", "PATCH", "DELETE", "PUT"])
            .prop_map(str::to_string),
        1 => proptest::sample::select(vec!["OPTIONS", "TRACE", "CONNECT", "get", "", "FOO BAR"])
            .prop_map(str::to_string),
        1 => "[A-Z]{1,12}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "",
            " ",
            "Bearer",
            "Bearer ",
            "Bearer  ",
            "bearer x",
            "Basic dXNlcjpwYXNz",
            "Bearer a.b.c",
            "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
            "application/json",
            "APPLICATION/JSON; charset=utf-8",
            "application/json;",
            "application/jsonx",
            "text/plain",
            "multipart/form-data; boundary=x",
            "0",
            "-1",
            "18446744073709551616",
            "99999999999999999999999",
            "1e3",
            "chunked",
            "return=representation",
            "return=minimal",
            "key-1",
            "\u{0}",
            "é",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,80}",
        any::<String>(),
        (1usize..20_000).prop_map(|n| "k".repeat(n)),
    ]
}

const HEADER_NAMES: &[&str] = &[
    "Authorization",
    "Content-Type",
    "Content-Length",
    "Idempotency-Key",
    "Prefer",
    "Transfer-Encoding",
    "Accept",
    "Connection",
    "X-Anything",
];

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

#[test]
fn arbitrary_bytes_as_a_json_body_are_never_a_server_error() {
    let fixture = Fixture::new(64 * 1024);
    let strategy = (
        body_route(),
        proptest::option::of(proptest::sample::select(vec![false, true])),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..2048),
            // Mostly JSON with a few bytes flipped or cut: reaches deeper into the parser.
            (shaped_body(), any::<u16>(), any::<u8>(), any::<bool>()).prop_map(
                |(text, at, byte, cut)| {
                    let mut bytes = text.into_bytes();
                    if !bytes.is_empty() {
                        let at = at as usize % bytes.len();
                        if cut {
                            bytes.truncate(at);
                        } else {
                            bytes[at] = byte;
                        }
                    }
                    bytes
                }
            ),
        ],
    );
    proptest::test_runner::TestRunner::new(config())
        .run(&strategy, |((method, url), admin, body)| {
            let token = admin.map(|admin| {
                if admin {
                    fixture.admin_token.clone()
                } else {
                    fixture.user_token.clone()
                }
            });
            let headers = fixture.json_headers(token.as_deref());
            fixture.check(method, url, headers, body)?;
            Ok(())
        })
        .unwrap();
}

#[test]
fn json_ish_documents_are_never_a_server_error() {
    let fixture = Fixture::new(1024 * 1024);
    let strategy = (
        body_route(),
        any::<bool>(),
        prop_oneof![shaped_body(), json_ish()],
    );
    proptest::test_runner::TestRunner::new(config())
        .run(&strategy, |((method, url), with_token, text)| {
            let token = with_token.then_some(fixture.user_token.as_str());
            let headers = fixture.json_headers(token);
            fixture.check(method, url, headers, text.into_bytes())?;
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_paths_and_query_strings_are_never_a_server_error() {
    let fixture = Fixture::new(64 * 1024);
    let strategy = (
        method(),
        path(),
        proptest::option::of(query()),
        proptest::option::of(any::<bool>()),
    );
    proptest::test_runner::TestRunner::new(config())
        .run(&strategy, |(method, path, query, admin)| {
            let url = match query {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            let token = admin.map(|admin| {
                if admin {
                    fixture.admin_token.clone()
                } else {
                    fixture.user_token.clone()
                }
            });
            let headers = fixture.json_headers(token.as_deref());
            fixture.check(&method, &url, headers, b"{}".to_vec())?;
            Ok(())
        })
        .unwrap();
}

#[test]
fn listing_queries_with_search_syntax_and_cursors_answer_200_or_422() {
    let fixture = Fixture::new(64 * 1024);
    let listing = proptest::sample::select(vec![
        "/posts",
        "/trash",
        "/posts/1/comments",
        "/admin/audit",
    ]);
    let strategy = (listing, query());
    proptest::test_runner::TestRunner::new(config())
        .run(&strategy, |(path, query)| {
            let url = format!("{path}?{query}");
            // The audit log is for admins; any other caller would stop at 403.
            let token = if path == "/admin/audit" {
                &fixture.admin_token
            } else {
                &fixture.user_token
            };
            let headers = fixture.json_headers(Some(token));
            let status = fixture.check("GET", &url, headers, Vec::new())?;
            prop_assert!(status == 200 || status == 422, "{} for {}", status, url);
            Ok(())
        })
        .unwrap();
}

#[test]
fn search_terms_are_plain_text() {
    let fixture = Fixture::new(64 * 1024);
    let fts = proptest::sample::select(vec![
        "\"",
        "\"\"",
        "*",
        "a*",
        "*a",
        "NEAR(",
        "NEAR(a b)",
        "NEAR(a b, 2)",
        "^",
        "^a",
        "title:",
        "title:alpha",
        "body:x",
        "AND",
        "OR",
        "NOT",
        "a AND",
        "OR b",
        "NOT NOT",
        "(",
        ")",
        "{a b}",
        "-",
        "+",
        ":",
        "'",
        ";",
        "\\",
        "\u{0}",
        "é",
        "ǅ",
        "🙂",
        "alpha",
        "ALPHA",
        "beta",
    ]);
    let strategy = proptest::collection::vec(fts, 1..12);
    proptest::test_runner::TestRunner::new(config())
        .run(&strategy, |words| {
            let q = words.join(" ");
            let encoded: String = q.bytes().map(|b| format!("%{b:02X}")).collect();
            let url = format!("/posts?q={encoded}");
            let status = fixture.check("GET", &url, Vec::new(), Vec::new())?;
            prop_assert_eq!(status, 200, "q = {:?}", q);
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_header_values_are_never_a_server_error() {
    let fixture = Fixture::new(64 * 1024);
    let route = prop_oneof![
        body_route(),
        proptest::sample::select(vec![
            ("GET", "/auth/me"),
            ("GET", "/posts"),
            ("GET", "/trash"),
            ("DELETE", "/posts/2?permanent=true"),
            ("DELETE", "/posts/3"),
            ("DELETE", "/comments/1"),
            ("POST", "/posts/4/restore"),
            ("GET", "/healthz"),
            ("GET", "/admin/audit"),
            ("GET", "/admin"),
        ]),
    ];
    let headers = proptest::collection::vec(
        (proptest::sample::select(HEADER_NAMES), header_value()),
        0..6,
    );
    let strategy = (
        route,
        headers,
        any::<bool>(),
        prop_oneof![shaped_body().prop_map(String::into_bytes), Just(Vec::new())],
    );
    proptest::test_runner::TestRunner::new(config())
        .run(&strategy, |((method, url), extra, with_token, body)| {
            let mut headers: Vec<(String, String)> =
                extra.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            if with_token {
                // Appended last: the handler reads the first header of a name, so a fuzzed
                // Authorization before it still wins.
                headers.push((
                    "Authorization".to_string(),
                    format!("Bearer {}", fixture.admin_token),
                ));
            }
            fixture.check(method, url, headers, body)?;
            Ok(())
        })
        .unwrap();
}

/// A post object that passes validation, with slugs from a small set so they collide.
fn valid_post() -> impl Strategy<Value = String> {
    (
        "[a-zA-Z][a-zA-Z ]{0,20}",
        "[a-z ]{0,30}",
        proptest::option::of(proptest::sample::select(vec![
            "a",
            "b",
            "c-d",
            "seed-post-1",
            "seed-post-4",
            "x-1-2",
        ])),
    )
        .prop_map(|(title, body, slug)| {
            let slug = slug
                .map(|s| format!(r#","slug":"{s}""#))
                .unwrap_or_default();
            format!(r#"{{"title":"{title}","body":"{body}"{slug}}}"#)
        })
}

/// Ids that mostly exist (1..=4 are seeded, later ones get created), sometimes repeat.
fn ids() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![4 => 1i64..12, 1 => 1i64..i64::MAX], 1..6)
        .prop_map(|ids| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
}

/// Requests that get past validation often enough to reach the store and its refusals.
fn authenticated_request() -> impl Strategy<Value = (&'static str, String, String)> {
    let id = || prop_oneof![4 => 1i64..12, 1 => 1i64..i64::MAX];
    let patch = (
        proptest::option::of("[a-zA-Z ]{0,12}"),
        proptest::option::of(proptest::sample::select(vec!["a", "b", "seed-post-2", "-"])),
    )
        .prop_map(|(title, slug)| {
            let mut fields = Vec::new();
            if let Some(title) = title {
                fields.push(format!(r#""title":"{title}""#));
            }
            if let Some(slug) = slug {
                fields.push(format!(r#""slug":"{slug}""#));
            }
            fields.join(",")
        });
    prop_oneof![
        valid_post().prop_map(|b| ("POST", "/posts".to_string(), b)),
        (id(), patch.clone()).prop_map(|(id, p)| (
            "PATCH",
            format!("/posts/{id}"),
            format!("{{{p}}}")
        )),
        (
            proptest::collection::vec(valid_post(), 1..6),
            proptest::option::of(any::<bool>())
        )
            .prop_map(|(items, atomic)| {
                let atomic = atomic
                    .map(|a| format!(r#","atomic":{a}"#))
                    .unwrap_or_default();
                (
                    "POST",
                    "/posts/bulk".to_string(),
                    format!(r#"{{"items":[{}]{atomic}}}"#, items.join(",")),
                )
            }),
        proptest::collection::vec((id(), patch), 1..5).prop_map(|items| {
            let items: Vec<String> = items
                .into_iter()
                .map(|(id, p)| {
                    if p.is_empty() {
                        format!(r#"{{"id":{id}}}"#)
                    } else {
                        format!(r#"{{"id":{id},{p}}}"#)
                    }
                })
                .collect();
            (
                "PATCH",
                "/posts/bulk".to_string(),
                format!(r#"{{"items":[{}]}}"#, items.join(",")),
            )
        }),
        (ids(), proptest::option::of(any::<bool>())).prop_map(|(ids, hard)| {
            let hard = hard
                .map(|h| format!(r#","hard_delete":{h}"#))
                .unwrap_or_default();
            (
                "DELETE",
                "/posts/bulk".to_string(),
                format!(r#"{{"post_ids":[{ids}]{hard}}}"#),
            )
        }),
        ids().prop_map(|ids| (
            "POST",
            "/posts/bulk/restore".to_string(),
            format!(r#"{{"post_ids":[{ids}]}}"#)
        )),
        id().prop_map(|id| ("POST", format!("/posts/{id}/restore"), String::new())),
        (id(), any::<bool>()).prop_map(|(id, permanent)| {
            let query = if permanent { "?permanent=true" } else { "" };
            ("DELETE", format!("/posts/{id}{query}"), String::new())
        }),
        (id(), "[a-z ]{0,20}").prop_map(|(id, text)| (
            "POST",
            format!("/posts/{id}/comments"),
            format!(r#"{{"body":"{text}"}}"#)
        )),
        id().prop_map(|id| ("DELETE", format!("/comments/{id}"), String::new())),
        (body_route(), shaped_body()).prop_map(|((method, url), body)| (
            method,
            url.to_string(),
            body
        )),
    ]
}

/// With valid tokens the store is reached: creates, patches, deletes, restores and bulk
/// work of every shape, on rows that exist, are deleted, or never were.
#[test]
fn authenticated_writes_are_never_a_server_error() {
    let fixture = Fixture::new(1024 * 1024);
    let idempotency = proptest::option::of(proptest::sample::select(vec!["k1", "k2", "k3"]));
    let strategy = (
        authenticated_request(),
        any::<bool>(),
        idempotency,
        any::<bool>(),
    );
    proptest::test_runner::TestRunner::new(config())
        .run(&strategy, |((method, url, body), admin, key, prefer)| {
            let token = if admin {
                &fixture.admin_token
            } else {
                &fixture.user_token
            };
            let mut headers = fixture.json_headers(Some(token));
            if let Some(key) = key {
                headers.push(("Idempotency-Key".to_string(), key.to_string()));
            }
            if prefer {
                headers.push(("Prefer".to_string(), "return=representation".to_string()));
            }
            fixture.check(method, &url, headers, body.into_bytes())?;
            Ok(())
        })
        .unwrap();
}
