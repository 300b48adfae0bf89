//! The route table: which paths exist and which methods each answers. Dispatch, the 405
//! `Allow` header, CORS preflights, the metrics' `route` label and the openapi.json
//! consistency test all read this one table. `OPTIONS` is answered on every route
//! (dispatch), so it is not listed per route.
//!
//! Two lists: `ROUTES`, the JSON API, which openapi.json documents exactly; and `PAGES`,
//! the operator's console (an HTML page and its files), which it does not: the document
//! is the contract for API clients and for schemathesis, and the console is one such
//! client, whose file names are its own business and may change with any release.

use super::console;
use super::input::path_id;
use crate::model::Scope;

/// A matched path, with its parameters parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Register,
    Login,
    Me,
    Tokens,
    Token(String),
    Events,
    Posts,
    PostsBulk,
    PostsBulkRestore,
    PostsBulkDelete,
    PostBySlug(String),
    Post(i64),
    PostRestore(i64),
    PostRevisions(i64),
    PostRevert(i64),
    PostComments(i64),
    Comment(i64),
    Trash,
    Healthz,
    OpenApi,
    AdminAudit,
    AdminPurge,
    AdminUsers,
    AdminUser(i64),
    Console,
    ConsoleAsset(String),
}

/// Every route as `(OpenAPI path template, methods)`.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/auth/register", &["POST"]),
    ("/auth/login", &["POST"]),
    ("/auth/me", &["GET"]),
    ("/auth/tokens", &["GET", "POST"]),
    ("/auth/tokens/{name}", &["DELETE"]),
    ("/posts", &["GET", "POST"]),
    ("/posts/bulk", &["POST", "PATCH", "DELETE"]),
    ("/posts/bulk/restore", &["POST"]),
    ("/posts/bulk/delete", &["POST"]),
    ("/posts/by-slug/{slug}", &["GET"]),
    ("/posts/{id}", &["GET", "PATCH", "DELETE"]),
    ("/posts/{id}/restore", &["POST"]),
    ("/posts/{id}/revisions", &["GET"]),
    ("/posts/{id}/revert", &["POST"]),
    ("/posts/{id}/comments", &["GET", "POST"]),
    ("/comments/{id}", &["DELETE"]),
    ("/trash", &["GET"]),
    ("/events", &["GET"]),
    ("/healthz", &["GET"]),
    ("/openapi.json", &["GET"]),
    ("/admin/audit", &["GET"]),
    ("/admin/purge", &["POST"]),
    ("/admin/users", &["GET"]),
    ("/admin/users/{id}", &["DELETE"]),
];

/// What a request asks of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: anyone may ask, with or without a token.
    Nothing,
    /// A valid token of any kind.
    AnyToken,
    /// A login token (from `/auth/login`), not an API token: managing API tokens.
    LoginToken,
    /// A login token, or an API token with this scope (`admin` stands for every scope).
    Scope(Scope),
}

/// The scope each route and method needs of an API token (a login token may do what its
/// user may). A route and method not listed needs nothing. Every route × scope is walked
/// by a test.
pub const NEEDS: &[(&str, &str, Need)] = &[
    ("/auth/me", "GET", Need::AnyToken),
    ("/auth/tokens", "GET", Need::LoginToken),
    ("/auth/tokens", "POST", Need::LoginToken),
    ("/auth/tokens/{name}", "DELETE", Need::LoginToken),
    ("/posts", "POST", Need::Scope(Scope::PostsWrite)),
    ("/posts/bulk", "POST", Need::Scope(Scope::PostsWrite)),
    ("/posts/bulk", "PATCH", Need::Scope(Scope::PostsWrite)),
    ("/posts/bulk", "DELETE", Need::Scope(Scope::Admin)),
    ("/posts/bulk/restore", "POST", Need::Scope(Scope::Admin)),
    ("/posts/bulk/delete", "POST", Need::Scope(Scope::Admin)),
    ("/posts/{id}", "PATCH", Need::Scope(Scope::PostsWrite)),
    ("/posts/{id}", "DELETE", Need::Scope(Scope::PostsWrite)),
    (
        "/posts/{id}/restore",
        "POST",
        Need::Scope(Scope::PostsWrite),
    ),
    (
        "/posts/{id}/revisions",
        "GET",
        Need::Scope(Scope::PostsRead),
    ),
    ("/posts/{id}/revert", "POST", Need::Scope(Scope::PostsWrite)),
    (
        "/posts/{id}/comments",
        "POST",
        Need::Scope(Scope::PostsWrite),
    ),
    ("/comments/{id}", "DELETE", Need::Scope(Scope::PostsWrite)),
    ("/trash", "GET", Need::Scope(Scope::PostsRead)),
    ("/events", "GET", Need::Scope(Scope::EventsRead)),
    ("/admin/audit", "GET", Need::Scope(Scope::Admin)),
    ("/admin/purge", "POST", Need::Scope(Scope::Admin)),
    ("/admin/users", "GET", Need::Scope(Scope::Admin)),
    ("/admin/users/{id}", "DELETE", Need::Scope(Scope::Admin)),
];

/// What `method` on the route `template` needs of its caller.
pub fn need(template: &str, method: &str) -> Need {
    NEEDS
        .iter()
        .find(|(t, m, _)| *t == template && *m == method)
        .map_or(Need::Nothing, |(_, _, need)| *need)
}

/// The console's page and files, as `(path template, methods)`; not in openapi.json.
pub const PAGES: &[(&str, &[&str])] = &[("/admin", &["GET"]), ("/admin/{asset}", &["GET"])];

/// A route of the tables, as a request matched it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// Its position in `ROUTES`, then `PAGES` (`ROUTES.len()` is the first page).
    pub index: usize,
    /// The path template, e.g. `/posts/{id}`.
    pub template: &'static str,
    pub methods: &'static [&'static str],
}

/// The route at `index` of `ROUTES` then `PAGES`.
pub fn route_at(index: usize) -> Option<(&'static str, &'static [&'static str])> {
    ROUTES.iter().chain(PAGES).nth(index).copied()
}

/// Resolves a path (no query string) to its target and route. `None` is 404: unknown
/// paths and ids that are not positive 64-bit integers alike.
pub fn resolve(path: &str) -> Option<(Target, Route)> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let (target, template) = match segments.as_slice() {
        ["auth", "register"] => (Target::Register, "/auth/register"),
        ["auth", "login"] => (Target::Login, "/auth/login"),
        ["auth", "me"] => (Target::Me, "/auth/me"),
        ["auth", "tokens"] => (Target::Tokens, "/auth/tokens"),
        ["auth", "tokens", name] if !name.is_empty() => {
            (Target::Token((*name).to_string()), "/auth/tokens/{name}")
        }
        ["events"] => (Target::Events, "/events"),
        ["posts"] => (Target::Posts, "/posts"),
        ["posts", "bulk"] => (Target::PostsBulk, "/posts/bulk"),
        ["posts", "bulk", "restore"] => (Target::PostsBulkRestore, "/posts/bulk/restore"),
        ["posts", "bulk", "delete"] => (Target::PostsBulkDelete, "/posts/bulk/delete"),
        ["posts", "by-slug", slug] if !slug.is_empty() => (
            Target::PostBySlug((*slug).to_string()),
            "/posts/by-slug/{slug}",
        ),
        ["posts", id] => (Target::Post(path_id(id)?), "/posts/{id}"),
        ["posts", id, "restore"] => (Target::PostRestore(path_id(id)?), "/posts/{id}/restore"),
        ["posts", id, "revisions"] => {
            (Target::PostRevisions(path_id(id)?), "/posts/{id}/revisions")
        }
        ["posts", id, "revert"] => (Target::PostRevert(path_id(id)?), "/posts/{id}/revert"),
        ["posts", id, "comments"] => (Target::PostComments(path_id(id)?), "/posts/{id}/comments"),
        ["comments", id] => (Target::Comment(path_id(id)?), "/comments/{id}"),
        ["trash"] => (Target::Trash, "/trash"),
        ["healthz"] => (Target::Healthz, "/healthz"),
        ["openapi.json"] => (Target::OpenApi, "/openapi.json"),
        ["admin", "audit"] => (Target::AdminAudit, "/admin/audit"),
        ["admin", "purge"] => (Target::AdminPurge, "/admin/purge"),
        ["admin", "users"] => (Target::AdminUsers, "/admin/users"),
        ["admin", "users", id] => (Target::AdminUser(path_id(id)?), "/admin/users/{id}"),
        ["admin"] => (Target::Console, "/admin"),
        ["admin", name] if console::is_asset(name) => {
            (Target::ConsoleAsset((*name).to_string()), "/admin/{asset}")
        }
        _ => return None,
    };
    let index = ROUTES
        .iter()
        .chain(PAGES)
        .position(|(t, _)| *t == template)?;
    let (template, methods) = route_at(index)?;
    Some((
        target,
        Route {
            index,
            template,
            methods,
        },
    ))
}

/// The `Allow` header of a route: its methods, HEAD wherever GET is, and OPTIONS.
pub fn allow_header(methods: &[&str]) -> String {
    let mut allowed = methods.join(", ");
    if methods.contains(&"GET") {
        allowed.push_str(", HEAD");
    }
    allowed.push_str(", OPTIONS");
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills a template's parameters with valid values.
    fn example_path(template: &str) -> String {
        template
            .replace("{id}", "7")
            .replace("{slug}", "hello-world")
            .replace("{asset}", "admin.js")
    }

    #[test]
    fn every_table_route_resolves_and_only_to_itself() {
        for (template, methods) in ROUTES.iter().chain(PAGES) {
            let (_, resolved) =
                resolve(&example_path(template)).unwrap_or_else(|| panic!("{template}"));
            assert_eq!(resolved.methods, *methods, "{template}");
            assert_eq!(resolved.template, *template);
            assert_eq!(route_at(resolved.index).map(|r| r.0), Some(*template));
        }
    }

    #[test]
    fn bad_ids_and_unknown_paths_are_not_found() {
        for path in [
            "/posts/0",
            "/posts/-1",
            "/posts/abc",
            "/posts/1/x",
            "/nope",
            "/",
            "/posts/",
            "posts",
            "/admin/",
            "/admin/nope.js",
            "/admin/audit/1",
        ] {
            assert!(resolve(path).is_none(), "{path}");
        }
        assert_eq!(resolve("/posts/bulk").map(|r| r.0), Some(Target::PostsBulk));
    }

    #[test]
    fn openapi_document_lists_exactly_the_routes() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../openapi.json")).expect("openapi.json parses");
        assert_eq!(
            doc["openapi"].as_str().map(|v| v.starts_with("3.1")),
            Some(true)
        );
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                if [
                    "get", "post", "patch", "delete", "put", "head", "options", "trace",
                ]
                .contains(&method.as_str())
                {
                    documented.push((path.clone(), method.to_uppercase()));
                }
            }
        }
        // Every route answers OPTIONS (dispatch) and documents it.
        let mut routed: Vec<(String, String)> = ROUTES
            .iter()
            .flat_map(|(path, methods)| {
                methods
                    .iter()
                    .chain(&["OPTIONS"])
                    .map(move |m| (path.to_string(), m.to_string()))
            })
            .collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed, "openapi.json and the router disagree");
        // Each operation says the scope an API token needs, as the router's NEEDS does.
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("path item") {
                let documented = op.get("x-postd-scope").and_then(|v| v.as_str());
                let needed = match need(path, &method.to_uppercase()) {
                    Need::Nothing => None,
                    Need::AnyToken => Some("any"),
                    Need::LoginToken => Some("login-token"),
                    Need::Scope(scope) => Some(scope.as_str()),
                };
                assert_eq!(documented, needed, "x-postd-scope of {method} {path}");
            }
        }
        for (page, _) in PAGES {
            assert!(
                !paths.contains_key(*page),
                "{page} is a console page, not an API route"
            );
        }
    }
}
