//! The HTTP API as the tests call it: one typed client over either way in ([`Api`]),
//! the users it signs up, and the password they share.

use super::cli;
use postd_testkit::http::Response;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

/// Every test user's password.
pub const PASSWORD: &str = "correct-horse-battery";

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub name: String,
    pub token: String,
}

/// postd's HTTP API as a test uses it, the same whichever way the request goes in: through
/// the request handler in this process ([`super::TestApp`]) or over a socket to the binary
/// ([`super::Server`]). An implementation sends a request and says where its database
/// is and how it makes an admin; the rest is built on those.
pub trait Api {
    /// Sends one request (a path with its query string, headers, a body) and returns the
    /// answer: status, headers and the body as bytes.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response;

    /// The database file the server answers from.
    fn db(&self) -> &Path;

    /// Makes an admin (there is no sign-up for one) and signs them in.
    fn admin(&self, name: &str) -> TestUser;

    fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.call_with("GET", path, token, None, &[])
    }

    /// A request with a JSON body (or none) and an optional bearer token.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        self.call_with(method, path, token, body, &[])
    }

    /// [`Api::call`] with extra headers.
    fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth.as_str()));
        }
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json"));
        if bytes.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.request(method, path, &headers, bytes.as_deref())
    }

    /// Signs a user up through `POST /auth/register`, then in.
    fn register(&self, name: &str) -> TestUser {
        let resp = self.call(
            "POST",
            "/auth/register",
            None,
            Some(&json!({"username": name, "password": PASSWORD})),
        );
        resp.expect(201);
        let id = resp.json()["id"].as_i64().expect("id");
        TestUser {
            id,
            name: name.to_string(),
            token: self.login(name),
        }
    }

    /// A token from `POST /auth/login`.
    fn login(&self, name: &str) -> String {
        let resp = self.call(
            "POST",
            "/auth/login",
            None,
            Some(&json!({"username": name, "password": PASSWORD})),
        );
        resp.expect(200);
        resp.json()["access_token"]
            .as_str()
            .expect("token")
            .to_string()
    }

    /// `POST /auth/login` with these credentials and extra headers, whatever the answer.
    fn attempt_login(&self, username: &str, password: &str, extra: &[(&str, &str)]) -> Response {
        let body = json!({"username": username, "password": password});
        self.post_json_bytes(
            "/auth/login",
            &serde_json::to_vec(&body).expect("json"),
            extra,
        )
    }

    /// `POST /posts` with this JSON body, whatever the answer.
    fn post_json(&self, token: &str, post: Value) -> Response {
        self.call("POST", "/posts", Some(token), Some(&post))
    }

    /// [`Api::post_json`], expecting the post created; returns its JSON.
    #[track_caller]
    fn create_post_json(&self, token: &str, post: Value) -> Value {
        let resp = self.post_json(token, post);
        resp.expect(201);
        resp.json()
    }

    /// `POST path` with these bytes as the body, an optional token and Content-Type.
    fn post_bytes(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Response {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        if let Some(ct) = content_type {
            headers.push(("Content-Type", ct));
        }
        self.request("POST", path, &headers, Some(body))
    }

    /// `POST path` with these bytes as a JSON body and extra headers (no token).
    fn post_json_bytes(&self, path: &str, body: &[u8], extra: &[(&str, &str)]) -> Response {
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend_from_slice(extra);
        self.request("POST", path, &headers, Some(body))
    }

    /// Creates a post and returns its JSON.
    fn create_post(&self, user: &TestUser, title: &str, body: &str) -> Value {
        let resp = self.call(
            "POST",
            "/posts",
            Some(&user.token),
            Some(&json!({"title": title, "body": body})),
        );
        resp.expect(201);
        resp.json()
    }

    /// Creates a post with an explicit slug and returns its JSON.
    fn create_post_with_slug(&self, user: &TestUser, title: &str, slug: &str) -> Value {
        let resp = self.call(
            "POST",
            "/posts",
            Some(&user.token),
            Some(&json!({"title": title, "body": "b", "slug": slug})),
        );
        resp.expect(201);
        let post = resp.json();
        assert_eq!(post["slug"], slug, "{post}");
        post
    }

    /// Comments on a post; returns the comment's JSON.
    #[track_caller]
    fn create_comment(&self, token: &str, post_id: i64, body: &str) -> Value {
        let resp = self.call(
            "POST",
            &format!("/posts/{post_id}/comments"),
            Some(token),
            Some(&json!({ "body": body })),
        );
        resp.expect(201);
        resp.json()
    }

    /// `POST /posts/bulk` with these items.
    fn bulk_create(&self, user: &TestUser, items: Value) -> Response {
        self.call(
            "POST",
            "/posts/bulk",
            Some(&user.token),
            Some(&json!({ "items": items })),
        )
    }

    /// `PATCH /posts/bulk` with these items.
    fn bulk_patch(&self, user: &TestUser, items: Value) -> Response {
        self.call(
            "PATCH",
            "/posts/bulk",
            Some(&user.token),
            Some(&json!({ "items": items })),
        )
    }

    /// `DELETE /posts/bulk`: these posts to the trash.
    fn bulk_delete(&self, user: &TestUser, ids: &[i64]) -> Response {
        self.call(
            "DELETE",
            "/posts/bulk",
            Some(&user.token),
            Some(&json!({ "post_ids": ids })),
        )
    }

    /// `POST /posts/bulk/restore` of these posts.
    fn bulk_restore(&self, user: &TestUser, ids: &[i64]) -> Response {
        self.call(
            "POST",
            "/posts/bulk/restore",
            Some(&user.token),
            Some(&json!({ "post_ids": ids })),
        )
    }

    /// Every item of a paginated listing, following next_cursor to the end.
    fn collect_pages(&self, path: &str, token: Option<&str>) -> Vec<Value> {
        let mut items = Vec::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut url = path.to_string();
        loop {
            let resp = self.get(&url, token);
            resp.expect(200);
            let page = resp.json();
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(cursor) => url = format!("{path}{sep}cursor={cursor}"),
                None => return items,
            }
        }
    }

    /// Runs one counting query on the database file directly (a second connection, as
    /// any other process would).
    fn sql_count(&self, sql: &str) -> i64 {
        self.sql_text(sql, &[])
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| panic!("{sql}: no count"))
    }

    /// The first column of the first row `sql` answers with `ids` bound, as text (`None`
    /// for no row or NULL), read from the database directly as another process would.
    fn sql_text(&self, sql: &str, ids: &[i64]) -> Option<String> {
        file_sql_text(self.db(), sql, ids)
    }

    /// Runs `postd ARGS --db <this server's database>` beside it.
    fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        cli::cli(self.db(), args, env)
    }

    /// [`Api::cli`], asserting that the command succeeded.
    #[track_caller]
    fn cli_ok(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        cli::cli_ok(self.db(), args, env)
    }
}

/// [`Api::sql_text`] on a database file.
pub fn file_sql_text(db: &Path, sql: &str, ids: &[i64]) -> Option<String> {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    let value: Option<rusqlite::types::Value> = conn
        .query_row(sql, rusqlite::params_from_iter(ids), |row| row.get(0))
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            other => Err(other),
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    match value? {
        rusqlite::types::Value::Null => None,
        rusqlite::types::Value::Integer(n) => Some(n.to_string()),
        rusqlite::types::Value::Real(x) => Some(x.to_string()),
        rusqlite::types::Value::Text(t) => Some(t),
        rusqlite::types::Value::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
    }
}
