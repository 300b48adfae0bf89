//! The authorization matrix (OWASP API1 broken object level authorization, API5 broken
//! function level authorization): every endpoint of the contract × every kind of caller ×
//! the state of the target post, each cell checked against API.md.
//!
//! Callers: `anon` (no token), `user` (a user with no relation to the target), `owner`
//! (the post's author), `other` (another user who commented on the post: related, not
//! the owner; for `DELETE /comments/{id}` the comment's author), `admin`.
//! States: `active`, `deleted` (soft-deleted), `absent` (an id that never existed), or
//! `-` for endpoints without a target.
//!
//! Every cell gets fresh fixtures, so the order of cells does not matter. Besides the
//! status, a refused cell must have changed nothing (the target row, its comment and the
//! row counts are compared before and after), errors must be problem+json, 401s must
//! carry `WWW-Authenticate: Bearer`, and listings must show or hide the target as the
//! contract says. The whole matrix is printed; a failure names every wrong cell.

use crate::support::*;
use serde_json::{json, Value};
use std::fmt::Write as _;

// ---------------------------------------------------------------------------------------
// Callers, states, fixtures
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Caller {
    Anon,
    User,
    Owner,
    Other,
    Admin,
}

const CALLERS: [Caller; 5] = [
    Caller::Anon,
    Caller::User,
    Caller::Owner,
    Caller::Other,
    Caller::Admin,
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Active,
    Deleted,
    Absent,
    None,
}

impl State {
    fn label(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Deleted => "deleted",
            State::Absent => "absent",
            State::None => "-",
        }
    }
}

const POST_STATES: &[State] = &[State::Active, State::Deleted, State::Absent];
const SEEN_STATES: &[State] = &[State::Active, State::Deleted];
const NO_TARGET: &[State] = &[State::None];

struct Users {
    user: TestUser,
    owner: TestUser,
    other: TestUser,
    admin: TestUser,
}

impl Users {
    fn id(&self, caller: Caller) -> Option<i64> {
        match caller {
            Caller::Anon => None,
            Caller::User => Some(self.user.id),
            Caller::Owner => Some(self.owner.id),
            Caller::Other => Some(self.other.id),
            Caller::Admin => Some(self.admin.id),
        }
    }

    fn token(&self, caller: Caller) -> Option<&str> {
        match caller {
            Caller::Anon => None,
            Caller::User => Some(&self.user.token),
            Caller::Owner => Some(&self.owner.token),
            Caller::Other => Some(&self.other.token),
            Caller::Admin => Some(&self.admin.token),
        }
    }
}

/// The target of one cell: a post by `owner` with a comment by `other`, soft-deleted by
/// its owner for `Deleted`; ids that never existed for `Absent`.
struct Fixture {
    post_id: i64,
    slug: String,
    /// A word only this post's title holds (for search).
    word: String,
    comment_id: i64,
}

fn fixture(srv: &TestApp, users: &Users, state: State, n: usize) -> Fixture {
    let word = format!("authzword{n}");
    if state == State::Absent {
        return Fixture {
            post_id: 9_000_000_000 + n as i64,
            slug: format!("never-existed-{n}"),
            word,
            comment_id: 9_000_000_000 + n as i64,
        };
    }
    let post = srv.create_post(&users.owner, &format!("cell {n} {word}"), "matrix body");
    let post_id = post["id"].as_i64().expect("id");
    let comment = srv.call(
        "POST",
        &format!("/posts/{post_id}/comments"),
        Some(&users.other.token),
        Some(&json!({"body": "a comment by other"})),
    );
    comment.expect(201);
    if state == State::Deleted {
        srv.call(
            "DELETE",
            &format!("/posts/{post_id}"),
            Some(&users.owner.token),
            None,
        )
        .expect(204);
    }
    Fixture {
        post_id,
        slug: post["slug"].as_str().expect("slug").to_string(),
        word,
        comment_id: comment.json()["id"].as_i64().expect("comment id"),
    }
}

/// Everything a refused request must leave alone.
fn snapshot(srv: &TestApp, f: &Fixture) -> String {
    let post = srv.sql_text(
        "SELECT title || '|' || slug || '|' || body || '|' || updated_at || '|' ||
                coalesce(deleted_at, 'active') || '|' || coalesce(deleted_by_id, '-')
         FROM posts WHERE id = ?1",
        &[f.post_id],
    );
    let comment = srv.sql_text("SELECT body FROM comments WHERE id = ?1", &[f.comment_id]);
    let counts = srv.sql_text(
        "SELECT (SELECT count(*) FROM posts) || '/' ||
                (SELECT count(*) FROM posts WHERE deleted_at IS NOT NULL) || '/' ||
                (SELECT count(*) FROM comments)",
        &[],
    );
    format!("post {post:?}; comment {comment:?}; posts/deleted/comments {counts:?}")
}

// ---------------------------------------------------------------------------------------
// Expectations (API.md)
// ---------------------------------------------------------------------------------------

/// Protected endpoint open to every signed-in user.
fn signed_in(c: Caller, ok: u16) -> u16 {
    if c == Caller::Anon {
        401
    } else {
        ok
    }
}

/// Owner-or-admin on a post: soft-deleted and absent posts are 404 for everybody
/// (existence before ownership), then 403 for non-owners.
fn owner_or_admin(c: Caller, s: State, ok: u16) -> u16 {
    match (c, s) {
        (Caller::Anon, _) => 401,
        (_, State::Deleted | State::Absent) => 404,
        (Caller::Owner | Caller::Admin, _) => ok,
        _ => 403,
    }
}

/// Admin-only: 403 for any non-admin before looking anything up.
fn admin_only(c: Caller, admin: u16) -> u16 {
    match c {
        Caller::Anon => 401,
        Caller::Admin => admin,
        _ => 403,
    }
}

/// Public read of a post: 404 unless active, for admins too.
fn public_read(s: State) -> u16 {
    if s == State::Active {
        200
    } else {
        404
    }
}

type Call = fn(&TestApp, Option<&str>, &Fixture) -> Response;
type Expect = fn(Caller, State) -> u16;
/// Extra check on a 2xx answer: Err(reason) fails the cell.
/// The caller's user id is given for per-user listings.
type Check = fn(&Response, &Fixture, Caller, State, Option<i64>) -> Result<(), String>;

struct Endpoint {
    name: &'static str,
    states: &'static [State],
    expect: Expect,
    call: Call,
    check: Option<Check>,
}

fn ids_of(resp: &Response) -> Vec<i64> {
    resp.json()["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|p| p["id"].as_i64()).collect())
        .unwrap_or_default()
}

/// The target must be listed exactly when `visible`.
fn listed(resp: &Response, id: i64, visible: bool) -> Result<(), String> {
    let ids = ids_of(resp);
    match (ids.contains(&id), visible) {
        (true, false) => Err(format!("lists post {id}, which it must not show")),
        (false, true) => Err(format!("does not list post {id}")),
        _ => Ok(()),
    }
}

fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint {
            name: "GET /auth/me",
            states: NO_TARGET,
            expect: |c, _| signed_in(c, 200),
            call: |srv, t, _| srv.get("/auth/me", t),
            check: None,
        },
        Endpoint {
            name: "POST /posts",
            states: NO_TARGET,
            expect: |c, _| signed_in(c, 201),
            call: |srv, t, _| {
                srv.call(
                    "POST",
                    "/posts",
                    t,
                    Some(&json!({"title": "created in a cell", "body": ""})),
                )
            },
            check: None,
        },
        Endpoint {
            name: "GET /posts",
            states: SEEN_STATES,
            expect: |_, _| 200,
            call: |srv, t, _| srv.get("/posts?limit=100", t),
            check: Some(|r, f, _, s, _| listed(r, f.post_id, s == State::Active)),
        },
        Endpoint {
            name: "GET /posts?q=",
            states: SEEN_STATES,
            expect: |_, _| 200,
            call: |srv, t, f| srv.get(&format!("/posts?q={}", f.word), t),
            check: Some(|r, f, _, s, _| listed(r, f.post_id, s == State::Active)),
        },
        Endpoint {
            name: "GET /posts/{id}",
            states: POST_STATES,
            expect: |_, s| public_read(s),
            call: |srv, t, f| srv.get(&format!("/posts/{}", f.post_id), t),
            check: None,
        },
        Endpoint {
            name: "GET /posts/by-slug/{slug}",
            states: POST_STATES,
            expect: |_, s| public_read(s),
            call: |srv, t, f| srv.get(&format!("/posts/by-slug/{}", f.slug), t),
            check: Some(|r, f, _, _, _| {
                let id = r.json()["id"].as_i64();
                (id == Some(f.post_id))
                    .then_some(())
                    .ok_or(format!("answered post {id:?}"))
            }),
        },
        Endpoint {
            name: "PATCH /posts/{id}",
            states: POST_STATES,
            expect: |c, s| owner_or_admin(c, s, 200),
            call: |srv, t, f| {
                srv.call(
                    "PATCH",
                    &format!("/posts/{}", f.post_id),
                    t,
                    Some(&json!({"title": "patched in a cell"})),
                )
            },
            check: None,
        },
        Endpoint {
            name: "DELETE /posts/{id}",
            states: POST_STATES,
            expect: |c, s| owner_or_admin(c, s, 204),
            call: |srv, t, f| srv.call("DELETE", &format!("/posts/{}", f.post_id), t, None),
            check: None,
        },
        Endpoint {
            name: "DELETE /posts/{id}?permanent=true",
            states: POST_STATES,
            // Works on soft-deleted posts too: 404 only when absent.
            expect: |c, s| match (c, s) {
                (Caller::Anon, _) => 401,
                (_, State::Absent) => 404,
                (Caller::Owner | Caller::Admin, _) => 204,
                _ => 403,
            },
            call: |srv, t, f| {
                srv.call(
                    "DELETE",
                    &format!("/posts/{}?permanent=true", f.post_id),
                    t,
                    None,
                )
            },
            check: None,
        },
        Endpoint {
            name: "POST /posts/{id}/restore",
            states: POST_STATES,
            expect: |c, s| {
                admin_only(
                    c,
                    match s {
                        State::Active => 400,
                        State::Deleted => 200,
                        _ => 404,
                    },
                )
            },
            call: |srv, t, f| srv.call("POST", &format!("/posts/{}/restore", f.post_id), t, None),
            check: None,
        },
        Endpoint {
            name: "GET /trash",
            states: SEEN_STATES,
            expect: |c, _| signed_in(c, 200),
            call: |srv, t, _| srv.get("/trash?limit=100", t),
            // The author and admins see a soft-deleted post; nobody sees an active one.
            // A user's trash holds only their own posts.
            check: Some(|r, f, c, s, me| {
                let visible = s == State::Deleted && matches!(c, Caller::Owner | Caller::Admin);
                listed(r, f.post_id, visible)?;
                let items = r.json()["items"].as_array().cloned().unwrap_or_default();
                match items
                    .iter()
                    .find(|p| c != Caller::Admin && p["author_id"].as_i64() != me)
                {
                    Some(p) => Err(format!("a user's trash shows another author's post {p}")),
                    None => Ok(()),
                }
            }),
        },
        Endpoint {
            name: "POST /posts/{id}/comments",
            states: POST_STATES,
            expect: |c, s| signed_in(c, if s == State::Active { 201 } else { 404 }),
            call: |srv, t, f| {
                srv.call(
                    "POST",
                    &format!("/posts/{}/comments", f.post_id),
                    t,
                    Some(&json!({"body": "comment from a cell"})),
                )
            },
            check: None,
        },
        Endpoint {
            name: "GET /posts/{id}/comments",
            states: POST_STATES,
            expect: |_, s| public_read(s),
            call: |srv, t, f| srv.get(&format!("/posts/{}/comments", f.post_id), t),
            check: Some(|r, f, _, _, _| listed(r, f.comment_id, true)),
        },
        Endpoint {
            name: "DELETE /comments/{id}",
            states: POST_STATES,
            // Comment author (other), post owner or admin; 404 while the post is deleted.
            expect: |c, s| match (c, s) {
                (Caller::Anon, _) => 401,
                (_, State::Deleted | State::Absent) => 404,
                (Caller::User, _) => 403,
                _ => 204,
            },
            call: |srv, t, f| srv.call("DELETE", &format!("/comments/{}", f.comment_id), t, None),
            check: None,
        },
        Endpoint {
            name: "POST /posts/bulk",
            states: NO_TARGET,
            expect: |c, _| signed_in(c, 201),
            call: |srv, t, _| {
                srv.call(
                    "POST",
                    "/posts/bulk",
                    t,
                    Some(&json!({"items": [{"title": "bulk in a cell", "body": ""}]})),
                )
            },
            check: None,
        },
        Endpoint {
            name: "PATCH /posts/bulk",
            states: POST_STATES,
            expect: |c, s| owner_or_admin(c, s, 200),
            call: |srv, t, f| {
                srv.call(
                    "PATCH",
                    "/posts/bulk",
                    t,
                    Some(&json!({"items": [{"id": f.post_id, "body": "bulk patched"}]})),
                )
            },
            check: None,
        },
        Endpoint {
            name: "DELETE /posts/bulk",
            states: POST_STATES,
            // Admin only; absent and already-deleted ids are skipped.
            expect: |c, _| admin_only(c, 204),
            call: |srv, t, f| {
                srv.call(
                    "DELETE",
                    "/posts/bulk",
                    t,
                    Some(&json!({"post_ids": [f.post_id]})),
                )
            },
            check: None,
        },
        Endpoint {
            name: "DELETE /posts/bulk hard_delete",
            states: POST_STATES,
            expect: |c, _| admin_only(c, 204),
            call: |srv, t, f| {
                srv.call(
                    "DELETE",
                    "/posts/bulk",
                    t,
                    Some(&json!({"post_ids": [f.post_id], "hard_delete": true})),
                )
            },
            check: None,
        },
        Endpoint {
            name: "POST /posts/bulk/restore",
            states: POST_STATES,
            expect: |c, s| {
                admin_only(
                    c,
                    match s {
                        State::Active => 400,
                        State::Deleted => 200,
                        _ => 404,
                    },
                )
            },
            call: |srv, t, f| {
                srv.call(
                    "POST",
                    "/posts/bulk/restore",
                    t,
                    Some(&json!({"post_ids": [f.post_id]})),
                )
            },
            check: None,
        },
        // Admin-only endpoints refuse non-admins right after authentication: before the
        // body is even validated.
        Endpoint {
            name: "DELETE /posts/bulk (empty ids)",
            states: NO_TARGET,
            expect: |c, _| admin_only(c, 422),
            call: |srv, t, _| srv.call("DELETE", "/posts/bulk", t, Some(&json!({"post_ids": []}))),
            check: None,
        },
        Endpoint {
            name: "POST /posts/bulk/restore (empty ids)",
            states: NO_TARGET,
            expect: |c, _| admin_only(c, 422),
            call: |srv, t, _| {
                srv.call(
                    "POST",
                    "/posts/bulk/restore",
                    t,
                    Some(&json!({"post_ids": []})),
                )
            },
            check: None,
        },
    ]
}

// ---------------------------------------------------------------------------------------
// One cell
// ---------------------------------------------------------------------------------------

/// Runs one cell; `Ok(status)` when everything about it holds, else the status and why.
fn run_cell(
    srv: &TestApp,
    users: &Users,
    endpoint: &Endpoint,
    caller: Caller,
    state: State,
    n: usize,
) -> Result<u16, (u16, String)> {
    let f = fixture(srv, users, state, n);
    let expected = (endpoint.expect)(caller, state);
    let before = snapshot(srv, &f);
    let resp = (endpoint.call)(srv, users.token(caller), &f);
    let status = resp.status;
    let fail = |why: String| Err((status, why));
    if status != expected {
        return fail(format!("expected {expected}: {}", clip(&resp.text())));
    }
    if status >= 400 {
        if resp.header("Content-Type") != Some("application/problem+json") {
            return fail(format!("error without problem+json: {:?}", resp.headers));
        }
        let problem: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        if problem["status"] != status || !problem["detail"].is_string() {
            return fail(format!("bad problem body {}", clip(&resp.text())));
        }
        if status == 401
            && !resp
                .header("WWW-Authenticate")
                .is_some_and(|v| v.starts_with("Bearer"))
        {
            return fail("401 without WWW-Authenticate: Bearer".into());
        }
        let after = snapshot(srv, &f);
        if after != before {
            return fail(format!("refused, yet changed: {before} → {after}"));
        }
    } else if let Some(check) = endpoint.check {
        check(&resp, &f, caller, state, users.id(caller)).map_err(|why| (status, why))?;
    }
    Ok(status)
}

fn clip(text: &str) -> String {
    text.chars().take(200).collect()
}

// ---------------------------------------------------------------------------------------
// The matrix
// ---------------------------------------------------------------------------------------

#[test]
fn authorization_matrix() {
    let srv = TestApp::new();
    let users = Users {
        user: srv.register("stranger"),
        owner: srv.register("owner"),
        other: srv.register("commenter"),
        admin: srv.admin("boss"),
    };

    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<38} {:<8} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "endpoint", "state", "anon", "user", "owner", "other", "admin"
    );
    let mut failures = Vec::new();
    let mut cells = 0;
    let mut n = 0;
    for endpoint in endpoints() {
        for &state in endpoint.states {
            let mut row = format!("{:<38} {:<8}", endpoint.name, state.label());
            for caller in CALLERS {
                n += 1;
                cells += 1;
                let cell = match run_cell(&srv, &users, &endpoint, caller, state, n) {
                    Ok(status) => status.to_string(),
                    Err((status, why)) => {
                        failures.push(format!(
                            "{} [{}] as {caller:?}: got {status}: {why}",
                            endpoint.name,
                            state.label()
                        ));
                        format!("!{}≠{status}", (endpoint.expect)(caller, state))
                    }
                };
                let _ = write!(row, " {cell:>10}");
            }
            let _ = writeln!(table, "{row}");
        }
    }
    println!("{table}");
    println!(
        "{cells} cells, {} wrong (a wrong cell shows !expected≠got)",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "authorization matrix:\n{table}\n{} wrong cells:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
