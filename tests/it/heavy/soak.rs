//! A bounded concurrency soak against the real binary: N client threads, each its own
//! user, mix single and bulk creates, patches, soft and permanent deletes, comments and
//! reads; admin threads soft-delete, hard-delete and restore (single and bulk) any post.
//!
//! A model is kept from acknowledged (2xx) answers only, and it is exact despite the
//! races: only a post's owner thread changes its content (so its last acknowledged patch
//! is the server's last), and the soft-delete state is derived by counting acknowledged
//! transitions — the server flips a post active → deleted → active strictly in turn, so
//! `deletes - restores` is 0 or 1 whatever order the answers arrived in; a permanent
//! delete is final. At the end the database must equal the model exactly.
//!
//! `POSTD_SOAK_CLIENTS` (default 8) and `POSTD_SOAK_SECS` (default 8) scale it;
//! `POSTD_SOAK_SEED` replays the choice of operations.

use crate::support::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone)]
struct PostModel {
    owner: usize,
    title: String,
    slug: String,
    body: String,
    deletes: u32,
    restores: u32,
    gone: bool,
    comments: i64,
}

impl PostModel {
    /// Mid-run the answers of racing transitions may arrive out of order, so this is only
    /// a guess for choosing targets.
    fn likely_trashed(&self) -> bool {
        self.deletes > self.restores
    }

    /// Deleted by the count of acknowledged transitions (see the module comment).
    fn trashed(&self, id: i64) -> bool {
        match self.deletes.checked_sub(self.restores) {
            Some(0) => false,
            Some(1) => true,
            _ => panic!(
                "post {id}: {} acknowledged soft deletes and {} restores can not alternate",
                self.deletes, self.restores
            ),
        }
    }
}

#[derive(Default)]
struct Model {
    posts: BTreeMap<i64, PostModel>,
    /// comment id → (post id, author thread)
    comments: HashMap<i64, (i64, usize)>,
}

#[derive(Default)]
struct Stats {
    /// (operation, status) → count
    counts: BTreeMap<(&'static str, u16), u64>,
    failures: Vec<String>,
}

struct Soak<'a> {
    srv: &'a Server,
    model: Mutex<Model>,
    stats: Mutex<Stats>,
    requests: AtomicU64,
}

impl Soak<'_> {
    /// Counts the answer and checks it: a 5xx, "database is locked" anywhere, or a status
    /// outside `allowed` is a failure. Returns whether it was a 2xx.
    fn check(&self, op: &'static str, resp: &Response, allowed: &[u16]) -> bool {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let text = resp.text();
        let mut stats = self.stats.lock().expect("stats");
        *stats.counts.entry((op, resp.status)).or_default() += 1;
        if resp.status >= 500
            || text.contains("database is locked")
            || !allowed.contains(&resp.status)
        {
            if stats.failures.len() < 50 {
                stats
                    .failures
                    .push(format!("{op}: {} {}", resp.status, clip(&text, 300)));
            }
            return false;
        }
        (200..300).contains(&resp.status)
    }

    fn fail(&self, message: String) {
        let mut stats = self.stats.lock().expect("stats");
        if stats.failures.len() < 50 {
            stats.failures.push(message);
        }
    }

    fn add_post(&self, owner: usize, post: &Value) -> i64 {
        let id = post["id"].as_i64().expect("id");
        let previous = self.model.lock().expect("model").posts.insert(
            id,
            PostModel {
                owner,
                title: text(post, "title"),
                slug: text(post, "slug"),
                body: text(post, "body"),
                deletes: 0,
                restores: 0,
                gone: false,
                comments: 0,
            },
        );
        assert!(previous.is_none(), "id {id} handed out twice");
        id
    }

    fn set_content(&self, post: &Value) {
        let id = post["id"].as_i64().expect("id");
        let mut model = self.model.lock().expect("model");
        let entry = model.posts.get_mut(&id).expect("patched post is known");
        entry.title = text(post, "title");
        entry.slug = text(post, "slug");
        entry.body = text(post, "body");
    }

    fn with_post(&self, id: i64, f: impl FnOnce(&mut PostModel)) {
        let mut model = self.model.lock().expect("model");
        f(model.posts.get_mut(&id).expect("post is known"));
    }

    /// Ids of posts not known to be gone, optionally only those of `owner`, optionally
    /// only those the model currently counts as trashed.
    fn ids(&self, owner: Option<usize>, trashed: Option<bool>) -> Vec<i64> {
        let model = self.model.lock().expect("model");
        model
            .posts
            .iter()
            .filter(|(_, p)| !p.gone)
            .filter(|(_, p)| owner.is_none_or(|o| p.owner == o))
            .filter(|(_, p)| trashed.is_none_or(|t| p.likely_trashed() == t))
            .map(|(id, _)| *id)
            .collect()
    }
}

fn text(post: &Value, field: &str) -> String {
    post[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {post}"))
        .to_string()
}

fn clip(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((cut, _)) => &s[..cut],
        None => s,
    }
}

const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
];

/// One client thread: its own user and posts; admin threads also change the state of
/// anybody's posts.
struct Client<'a> {
    soak: &'a Soak<'a>,
    me: usize,
    user: TestUser,
    admin: bool,
    rng: Rng,
    counter: u64,
    /// Comment ids this thread made and has not deleted.
    my_comments: Vec<i64>,
}

impl Client<'_> {
    fn srv(&self) -> &Server {
        self.soak.srv
    }

    fn token(&self) -> Option<&str> {
        Some(&self.user.token)
    }

    fn fresh(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("c{} {what}{}", self.me, self.counter)
    }

    fn new_body(&mut self) -> String {
        let word = WORDS[self.rng.below(WORDS.len())];
        format!("{word} from client c{} number {}", self.me, self.counter)
    }

    fn step(&mut self) {
        let roll = self.rng.below(100);
        if self.admin {
            match roll {
                0..=9 => self.create_single(),
                10..=24 => self.admin_bulk_soft_delete(),
                25..=27 => self.admin_bulk_hard_delete(),
                28..=42 => self.admin_restore(),
                43..=52 => self.admin_bulk_restore(),
                53..=62 => self.admin_soft_delete(),
                63..=69 => self.patch_single(),
                70..=74 => self.comment_create(),
                _ => self.read(),
            }
        } else {
            match roll {
                0..=13 => self.create_single(),
                14..=21 => self.create_bulk(),
                22..=31 => self.patch_single(),
                32..=37 => self.patch_bulk(),
                38..=43 => self.soft_delete_own(),
                44..=46 => self.hard_delete_own(),
                47..=56 => self.comment_create(),
                57..=59 => self.comment_delete(),
                _ => self.read(),
            }
        }
    }

    fn create_single(&mut self) {
        // Now and then reuse the slug of one of our own trashed posts: allowed while it is
        // trashed (201), a 409 if an admin restored it meanwhile.
        let trashed = self.soak.ids(Some(self.me), Some(true));
        let reuse = if self.rng.below(4) == 0 {
            self.rng.pick(&trashed).and_then(|id| {
                let model = self.soak.model.lock().expect("model");
                model.posts.get(&id).map(|p| p.slug.clone())
            })
        } else {
            None
        };
        let title = self.fresh("n");
        let body = self.new_body();
        let mut request = json!({"title": title, "body": body});
        if let Some(slug) = &reuse {
            request["slug"] = json!(slug);
        }
        let resp = self
            .srv()
            .call("POST", "/posts", self.token(), Some(&request));
        let allowed: &[u16] = if reuse.is_some() { &[201, 409] } else { &[201] };
        if self.soak.check("create", &resp, allowed) {
            let post = resp.json();
            if post["title"] != title.as_str() || post["body"] != body.as_str() {
                self.soak
                    .fail(format!("create answered {post} for {request}"));
            }
            self.soak.add_post(self.me, &post);
        }
    }

    fn create_bulk(&mut self) {
        let n = 2 + self.rng.below(5);
        let items: Vec<Value> = (0..n)
            .map(|i| {
                let title = self.fresh("n");
                let body = self.new_body();
                if i % 2 == 0 {
                    json!({"title": title, "body": body})
                } else {
                    let slug = format!("c{}-s{}", self.me, self.counter);
                    json!({"title": title, "body": body, "slug": slug})
                }
            })
            .collect();
        let resp = self.srv().call(
            "POST",
            "/posts/bulk",
            self.token(),
            Some(&json!({ "items": items })),
        );
        if self.soak.check("bulk create", &resp, &[201]) {
            let created = resp.json()["items"].as_array().cloned().unwrap_or_default();
            if created.len() != n {
                self.soak
                    .fail(format!("bulk create of {n} answered {}", created.len()));
            }
            for (post, asked) in created.iter().zip(&items) {
                if post["title"] != asked["title"] {
                    self.soak
                        .fail(format!("bulk create out of order: {post} for {asked}"));
                }
                self.soak.add_post(self.me, post);
            }
        }
    }

    /// A patch of title, body and/or slug (slugs made unique, so never a 409).
    fn patch_body(&mut self) -> Value {
        let mut patch = json!({});
        match self.rng.below(4) {
            0 => patch["title"] = json!(self.fresh("t")),
            1 => patch["body"] = json!(self.new_body()),
            2 => {
                self.counter += 1;
                patch["slug"] = json!(format!("c{}-p{}", self.me, self.counter));
            }
            _ => {
                patch["title"] = json!(self.fresh("t"));
                patch["body"] = json!(self.new_body());
            }
        }
        patch
    }

    fn patch_single(&mut self) {
        let mine = self.soak.ids(Some(self.me), None);
        let Some(id) = self.rng.pick(&mine) else {
            return;
        };
        let patch = self.patch_body();
        let resp = self
            .srv()
            .call("PATCH", &format!("/posts/{id}"), self.token(), Some(&patch));
        // 404: an admin soft- or hard-deleted it meanwhile.
        if self.soak.check("patch", &resp, &[200, 404]) {
            self.soak.set_content(&resp.json());
        }
    }

    fn patch_bulk(&mut self) {
        let mine = self.soak.ids(Some(self.me), None);
        let n = 2 + self.rng.below(3);
        let ids = self.rng.sample(&mine, n);
        if ids.is_empty() {
            return;
        }
        let items: Vec<Value> = ids
            .iter()
            .map(|id| {
                let mut item = self.patch_body();
                item["id"] = json!(id);
                item
            })
            .collect();
        let resp = self.srv().call(
            "PATCH",
            "/posts/bulk",
            self.token(),
            Some(&json!({ "items": items })),
        );
        if self.soak.check("bulk patch", &resp, &[200, 404]) {
            for post in resp.json()["items"].as_array().cloned().unwrap_or_default() {
                self.soak.set_content(&post);
            }
        }
    }

    fn soft_delete_own(&mut self) {
        let mine = self.soak.ids(Some(self.me), Some(false));
        let Some(id) = self.rng.pick(&mine) else {
            return;
        };
        let resp = self
            .srv()
            .call("DELETE", &format!("/posts/{id}"), self.token(), None);
        if self.soak.check("soft delete", &resp, &[204, 404]) {
            self.soak.with_post(id, |p| p.deletes += 1);
        }
    }

    fn hard_delete_own(&mut self) {
        let mine = self.soak.ids(Some(self.me), None);
        let Some(id) = self.rng.pick(&mine) else {
            return;
        };
        let resp = self.srv().call(
            "DELETE",
            &format!("/posts/{id}?permanent=true"),
            self.token(),
            None,
        );
        if self.soak.check("hard delete", &resp, &[204, 404]) {
            self.soak.with_post(id, |p| p.gone = true);
        }
    }

    fn comment_create(&mut self) {
        let all = self.soak.ids(None, Some(false));
        let Some(id) = self.rng.pick(&all) else {
            return;
        };
        let body = self.fresh("comment ");
        let resp = self.srv().call(
            "POST",
            &format!("/posts/{id}/comments"),
            self.token(),
            Some(&json!({ "body": body })),
        );
        if self.soak.check("comment create", &resp, &[201, 404]) {
            let comment = resp.json();
            let comment_id = comment["id"].as_i64().expect("comment id");
            if comment["post_id"] != id || comment["body"] != body.as_str() {
                self.soak
                    .fail(format!("comment answered {comment} for post {id}"));
            }
            let mut model = self.soak.model.lock().expect("model");
            model.posts.get_mut(&id).expect("known").comments += 1;
            model.comments.insert(comment_id, (id, self.me));
            drop(model);
            self.my_comments.push(comment_id);
        }
    }

    fn comment_delete(&mut self) {
        if self.my_comments.is_empty() {
            return;
        }
        let at = self.rng.below(self.my_comments.len());
        let comment_id = self.my_comments[at];
        let resp = self.srv().call(
            "DELETE",
            &format!("/comments/{comment_id}"),
            self.token(),
            None,
        );
        // 404: its post is soft-deleted (the comment stays) or permanently deleted.
        if self.soak.check("comment delete", &resp, &[204, 404]) {
            self.my_comments.swap_remove(at);
            let mut model = self.soak.model.lock().expect("model");
            let (post_id, _) = model.comments.remove(&comment_id).expect("known comment");
            model.posts.get_mut(&post_id).expect("known").comments -= 1;
        }
    }

    fn admin_bulk_soft_delete(&mut self) {
        let all = self.soak.ids(None, None);
        let n = 2 + self.rng.below(7);
        let mut ids = self.rng.sample(&all, n);
        ids.push(i64::MAX - self.rng.below(1000) as i64); // never existed: skipped
        let resp = self.srv().call_with(
            "DELETE",
            "/posts/bulk",
            self.token(),
            Some(&json!({ "post_ids": ids })),
            &[("Prefer", "return=representation")],
        );
        if self.soak.check("bulk soft delete", &resp, &[200]) {
            let report = resp.json();
            for id in report["deleted"].as_array().cloned().unwrap_or_default() {
                let id = id.as_i64().expect("id");
                self.soak.with_post(id, |p| p.deletes += 1);
            }
            self.check_report(&ids, &report);
        }
    }

    fn admin_bulk_hard_delete(&mut self) {
        let all = self.soak.ids(None, None);
        let n = 1 + self.rng.below(3);
        let ids = self.rng.sample(&all, n);
        if ids.is_empty() {
            return;
        }
        let resp = self.srv().call_with(
            "DELETE",
            "/posts/bulk",
            self.token(),
            Some(&json!({ "post_ids": ids, "hard_delete": true })),
            &[("Prefer", "return=representation")],
        );
        if self.soak.check("bulk hard delete", &resp, &[200]) {
            let report = resp.json();
            for id in report["deleted"].as_array().cloned().unwrap_or_default() {
                let id = id.as_i64().expect("id");
                self.soak.with_post(id, |p| p.gone = true);
            }
            self.check_report(&ids, &report);
        }
    }

    /// `deleted` and `skipped` partition the requested ids.
    fn check_report(&self, ids: &[i64], report: &Value) {
        let mut listed: Vec<i64> = ["deleted", "skipped"]
            .iter()
            .flat_map(|k| report[*k].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_i64())
            .collect();
        listed.sort_unstable();
        let mut asked = ids.to_vec();
        asked.sort_unstable();
        if listed != asked {
            self.soak
                .fail(format!("bulk delete of {ids:?} reported {report}"));
        }
    }

    fn admin_restore(&mut self) {
        let trashed = self.soak.ids(None, Some(true));
        let Some(id) = self.rng.pick(&trashed) else {
            return;
        };
        let resp = self
            .srv()
            .call("POST", &format!("/posts/{id}/restore"), self.token(), None);
        // 400: restored by someone else meanwhile; 404: hard-deleted; 409: slug reused.
        if self.soak.check("restore", &resp, &[200, 400, 404, 409]) {
            self.soak.with_post(id, |p| p.restores += 1);
        }
    }

    fn admin_bulk_restore(&mut self) {
        let trashed = self.soak.ids(None, Some(true));
        let n = 2 + self.rng.below(3);
        let ids = self.rng.sample(&trashed, n);
        if ids.is_empty() {
            return;
        }
        let resp = self.srv().call(
            "POST",
            "/posts/bulk/restore",
            self.token(),
            Some(&json!({ "post_ids": ids })),
        );
        if self
            .soak
            .check("bulk restore", &resp, &[200, 400, 404, 409])
        {
            let items = resp.json()["items"].as_array().cloned().unwrap_or_default();
            let restored: Vec<i64> = items.iter().filter_map(|p| p["id"].as_i64()).collect();
            if restored != ids {
                self.soak
                    .fail(format!("bulk restore of {ids:?} answered {restored:?}"));
            }
            for id in restored {
                self.soak.with_post(id, |p| p.restores += 1);
            }
        }
    }

    fn admin_soft_delete(&mut self) {
        let active = self.soak.ids(None, Some(false));
        let Some(id) = self.rng.pick(&active) else {
            return;
        };
        let resp = self
            .srv()
            .call("DELETE", &format!("/posts/{id}"), self.token(), None);
        if self.soak.check("soft delete", &resp, &[204, 404]) {
            self.soak.with_post(id, |p| p.deletes += 1);
        }
    }

    fn read(&mut self) {
        match self.rng.below(6) {
            0 => {
                let resp = self.srv().get("/posts?limit=50", None);
                if self.soak.check("list", &resp, &[200]) {
                    let page = resp.json();
                    if page["items"]
                        .as_array()
                        .is_none_or(|items| items.iter().any(|p| p.get("deleted_at").is_some()))
                    {
                        self.soak.fail(format!("list shows {page}"));
                    }
                }
            }
            1 => {
                // Read-your-writes: only this thread changes its posts' content, so a 200
                // must show exactly what the model holds.
                let mine = self.soak.ids(Some(self.me), None);
                let Some(id) = self.rng.pick(&mine) else {
                    return;
                };
                let resp = self.srv().get(&format!("/posts/{id}"), None);
                if self.soak.check("get", &resp, &[200, 404]) {
                    let post = resp.json();
                    let model = self.soak.model.lock().expect("model");
                    let expected = &model.posts[&id];
                    if post["title"] != expected.title.as_str()
                        || post["slug"] != expected.slug.as_str()
                        || post["body"] != expected.body.as_str()
                    {
                        let message = format!("get {id} shows {post}, model {expected:?}");
                        drop(model);
                        self.soak.fail(message);
                    }
                }
            }
            2 => {
                let word = WORDS[self.rng.below(WORDS.len())];
                let resp = self
                    .srv()
                    .get(&format!("/posts?q={word}+c{}&limit=20", self.me), None);
                if self.soak.check("search", &resp, &[200]) {
                    let page = resp.json();
                    for post in page["items"].as_array().cloned().unwrap_or_default() {
                        let haystack = format!("{} {}", post["title"], post["body"]);
                        if !haystack.contains(word) {
                            self.soak.fail(format!("search {word} found {post}"));
                        }
                    }
                }
            }
            3 => {
                let all = self.soak.ids(None, None);
                let Some(id) = self.rng.pick(&all) else {
                    return;
                };
                let resp = self
                    .srv()
                    .get(&format!("/posts/{id}/comments?limit=100"), None);
                self.soak.check("comments list", &resp, &[200, 404]);
            }
            4 => {
                let mine = self.soak.ids(Some(self.me), None);
                let Some(id) = self.rng.pick(&mine) else {
                    return;
                };
                let slug = self.soak.model.lock().expect("model").posts[&id]
                    .slug
                    .clone();
                let resp = self.srv().get(&format!("/posts/by-slug/{slug}"), None);
                self.soak.check("by slug", &resp, &[200, 404]);
            }
            _ => {
                let resp = self.srv().get("/trash?limit=20", self.token());
                self.soak.check("trash", &resp, &[200]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The soak
// ---------------------------------------------------------------------------------------

#[test]
fn concurrent_mixed_workload_matches_the_model() {
    if skip_heavy() {
        return;
    }
    let _turn = heavy_load();
    let clients = env_number("POSTD_SOAK_CLIENTS", 8).max(2) as usize;
    let secs = env_number("POSTD_SOAK_SECS", 8);
    let seed = env_number(
        "POSTD_SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    )
    .max(1);
    let admins = (clients / 4).max(1);
    println!(
        "soak: {clients} clients ({admins} admins) for {secs} s, seed {seed} \
         (POSTD_SOAK_CLIENTS, POSTD_SOAK_SECS, POSTD_SOAK_SEED)"
    );

    let srv = Server::start();
    let users: Vec<(TestUser, bool)> = (0..clients)
        .map(|i| {
            if i < admins {
                (srv.admin(&format!("soakadmin{i}")), true)
            } else {
                (srv.register(&format!("soaker{i}")), false)
            }
        })
        .collect();
    let soak = Soak {
        srv: &srv,
        model: Mutex::new(Model::default()),
        stats: Mutex::new(Stats::default()),
        requests: AtomicU64::new(0),
    };

    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    std::thread::scope(|scope| {
        for (me, (user, admin)) in users.iter().enumerate() {
            let soak = &soak;
            scope.spawn(move || {
                let mut client = Client {
                    soak,
                    me,
                    user: user.clone(),
                    admin: *admin,
                    rng: Rng::new(seed ^ ((me as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))),
                    counter: 0,
                    my_comments: Vec::new(),
                };
                while Instant::now() < deadline {
                    client.step();
                }
            });
        }
    });
    let elapsed = started.elapsed();

    // Report.
    let stats = soak.stats.lock().expect("stats");
    let total = soak.requests.load(Ordering::Relaxed);
    let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
    for ((_, status), n) in &stats.counts {
        *by_status.entry(*status).or_default() += n;
    }
    println!(
        "soak: {total} requests in {:.1} s ({:.0}/s); by status: {by_status:?}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    for ((op, status), n) in &stats.counts {
        println!("  {op:<18} {status} × {n}");
    }
    let server_errors: u64 = by_status
        .iter()
        .filter(|(s, _)| **s >= 500)
        .map(|(_, n)| n)
        .sum();
    println!(
        "soak: {server_errors} 5xx, {} failures",
        stats.failures.len()
    );
    assert!(
        stats.failures.is_empty(),
        "{} failures, first ones:\n{}",
        stats.failures.len(),
        stats.failures.join("\n")
    );
    assert_eq!(server_errors, 0);
    drop(stats);

    // Compare the database with the model.
    let model = soak.model.lock().expect("model");
    let admin_token = users[0].0.token.clone();
    let mut want_active: BTreeMap<i64, &PostModel> = BTreeMap::new();
    let mut want_trash: BTreeMap<i64, &PostModel> = BTreeMap::new();
    for (id, post) in model.posts.iter().filter(|(_, p)| !p.gone) {
        if post.trashed(*id) {
            want_trash.insert(*id, post);
        } else {
            want_active.insert(*id, post);
        }
    }
    let active = srv.collect_pages("/posts?limit=100", None);
    let trash = srv.collect_pages("/trash?limit=100", Some(&admin_token));
    let compare = |what: &str, listed: &[Value], want: &BTreeMap<i64, &PostModel>| {
        let got: BTreeMap<i64, &Value> = listed
            .iter()
            .map(|p| (p["id"].as_i64().expect("id"), p))
            .collect();
        assert_eq!(got.len(), listed.len(), "{what}: an id listed twice");
        let got_ids: BTreeSet<i64> = got.keys().copied().collect();
        let want_ids: BTreeSet<i64> = want.keys().copied().collect();
        assert_eq!(
            got_ids.difference(&want_ids).collect::<Vec<_>>(),
            Vec::<&i64>::new(),
            "{what}: listed but not in the model"
        );
        assert_eq!(
            want_ids.difference(&got_ids).collect::<Vec<_>>(),
            Vec::<&i64>::new(),
            "{what}: in the model but not listed"
        );
        for (id, post) in &got {
            let expected = want[id];
            assert_eq!(
                (
                    post["title"].as_str(),
                    post["slug"].as_str(),
                    post["body"].as_str()
                ),
                (
                    Some(expected.title.as_str()),
                    Some(expected.slug.as_str()),
                    Some(expected.body.as_str())
                ),
                "{what}: post {id} differs from the model"
            );
        }
    };
    compare("active posts", &active, &want_active);
    compare("trash", &trash, &want_trash);
    assert_eq!(
        srv.sql_count("SELECT count(*) FROM posts"),
        (want_active.len() + want_trash.len()) as i64,
        "rows in posts"
    );

    // Comments: per surviving post as the model counts them, none for gone posts.
    let conn = rusqlite::Connection::open(&srv.db).expect("open db");
    let mut per_post: BTreeMap<i64, i64> = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT post_id, count(*) FROM comments GROUP BY post_id")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .expect("query");
    for row in rows {
        let (post, n) = row.expect("row");
        per_post.insert(post, n);
    }
    let want_comments: BTreeMap<i64, i64> = model
        .posts
        .iter()
        .filter(|(_, p)| !p.gone && p.comments > 0)
        .map(|(id, p)| (*id, p.comments))
        .collect();
    assert_eq!(per_post, want_comments, "comments per post");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok");
    let gone = model.posts.values().filter(|p| p.gone).count();
    println!(
        "soak: final state matches the model: {} active, {} trashed, {gone} permanently \
         deleted, {} comments",
        want_active.len(),
        want_trash.len(),
        want_comments.values().sum::<i64>()
    );
}
