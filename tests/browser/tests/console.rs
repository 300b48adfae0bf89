//! The operator's console (`GET /admin`) against the binary: its files and their headers
//! as served, and the page itself in a real browser — Debian's `chromium`, driven over the
//! DevTools protocol by `headless_chrome`. The heavy tier: every test starts with
//! `if skip_heavy() { return; }` (`RUN_SLOW_TESTS=1` runs them). The console's source
//! rules need neither and are checked in the quick tier (`tests/it/quick/console.rs`).
//!
//! Without chromium the browser tests say so on stderr and return (locally); with
//! `CI=true` a missing chromium fails them. `POSTD_CHROMIUM` names another binary.
//! `POSTD_SCREENSHOTS=docs` writes the README's screenshots into docs/ (by default they
//! go to target/console-screenshots/); failing browser tests leave a screenshot there too.

mod support;

use headless_chrome::browser::tab::ModifierKey;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use postd_testkit::skip_heavy;
use serde_json::{json, Value};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use support::*;

const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const DESKTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (390, 844);
/// How long the page may take to show what a step waits for (a loaded 2-core machine).
const WAIT: Duration = Duration::from_secs(30);

/// The repository's root (this package is tests/browser).
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn source(name: &str) -> String {
    let path = repository().join("src/admin").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Without a browser: the files and their headers
// ---------------------------------------------------------------------------------------

#[test]
fn the_page_and_its_files_are_served_with_a_strict_policy() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start();
    let page = srv.get("/admin", None);
    page.expect(200);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("Content-Security-Policy"), Some(CSP));
    assert_eq!(page.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(page.header("X-Frame-Options"), Some("DENY"));
    assert_eq!(page.header("Cache-Control"), Some("no-cache"));
    assert_eq!(
        page.text(),
        source("index.html"),
        "the page is embedded as is"
    );
    for (file, media_type) in [
        ("admin.js", "text/javascript; charset=utf-8"),
        ("admin.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let resp = srv.get(&format!("/admin/{file}"), None);
        resp.expect(200);
        assert_eq!(resp.header("Content-Type"), Some(media_type), "{file}");
        assert_eq!(resp.text(), source(file), "{file}");
    }
    let head = srv.request("HEAD", "/admin", &[], None);
    assert_eq!((head.status, head.body.len()), (200, 0));
    srv.get("/admin/nope.js", None).expect(404);
    srv.get("/admin/", None).expect(404);
    srv.get("/admin/../openapi.json", None).expect(404);
    let post = srv.request("POST", "/admin", &[], None);
    post.expect(405);
    assert_eq!(post.header("Allow"), Some("GET, HEAD, OPTIONS"));
    // The API under /admin/ is still the API.
    srv.get("/admin/audit", None).expect(401);
}

// ---------------------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------------------

/// Debian's chromium, or the one `POSTD_CHROMIUM` names.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("POSTD_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// One browser test at a time: each runs its own chromium.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

struct Session {
    _browser: Browser,
    tab: Arc<Tab>,
    base: String,
    name: &'static str,
    _one: MutexGuard<'static, ()>,
}

/// A browser of `size` on a blank tab for `name`; `None` (said on stderr) when there is no
/// chromium here. In CI a missing chromium is a failure, never a skip.
fn browser(name: &'static str, srv: &Server, size: (u32, u32)) -> Option<Session> {
    let Some(path) = chromium() else {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("console::{name}: chromium is required in CI (apt-get install -y chromium)");
        }
        // Straight to stderr, past the test harness's capture: a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED console::{name}: no chromium on PATH (apt-get install -y chromium, or set POSTD_CHROMIUM); the console was not tested in a browser"
        );
        return None;
    };
    let one = ONE_BROWSER.lock().unwrap_or_else(PoisonError::into_inner);
    // The machine has no network: without these Chromium keeps trying to reach Google.
    let args: Vec<&OsStr> = [
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-default-apps",
        "--disable-extensions",
        "--metrics-recording-only",
        "--no-default-browser-check",
        "--hide-scrollbars",
        "--force-color-profile=srgb",
        "--lang=en-GB",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let options = LaunchOptions::default_builder()
        .path(Some(path))
        .sandbox(false)
        .window_size(Some(size))
        .idle_browser_timeout(Duration::from_secs(600))
        .args(args)
        .build()
        .expect("launch options");
    let browser = Browser::new(options).expect("start chromium");
    let tab = browser.new_tab().expect("a tab");
    tab.set_default_timeout(WAIT);
    // The window is the viewport in headless mode, but say it exactly, phone included.
    tab.call_method(
        headless_chrome::protocol::cdp::Emulation::SetDeviceMetricsOverride {
            width: size.0,
            height: size.1,
            device_scale_factor: 1.0,
            mobile: size.0 < 600,
            scale: None,
            screen_width: None,
            screen_height: None,
            position_x: None,
            position_y: None,
            dont_set_visible_size: None,
            screen_orientation: None,
            viewport: None,
            display_feature: None,
            device_posture: None,
        },
    )
    .expect("viewport");
    Some(Session {
        _browser: browser,
        tab,
        base: format!("http://{}", srv.addr),
        name,
        _one: one,
    })
}

/// Where screenshots go: failures and the other views always under target/.
fn screenshot_dir() -> PathBuf {
    repository().join("target/console-screenshots")
}

/// Where the README's screenshots go: `POSTD_SCREENSHOTS` (e.g. `docs`), else target/.
fn docs_screenshot_dir() -> PathBuf {
    match std::env::var_os("POSTD_SCREENSHOTS") {
        Some(dir) => repository().join(dir),
        None => screenshot_dir(),
    }
}

impl Session {
    fn open(&self, path: &str) {
        self.tab
            .navigate_to(&format!("{}{path}", self.base))
            .and_then(|tab| tab.wait_until_navigated())
            .expect("navigate");
    }

    /// The value of a JavaScript expression, through JSON.
    fn eval(&self, expression: &str) -> Value {
        let wrapped = format!("JSON.stringify((() => {{ return ({expression}); }})())");
        let result = self
            .tab
            .evaluate(&wrapped, false)
            .unwrap_or_else(|e| panic!("{expression}: {e}"));
        match result.value {
            Some(Value::String(text)) => serde_json::from_str(&text).unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    fn text(&self, selector: &str) -> String {
        let value = self.eval(&format!(
            "(document.querySelector({sel}) || {{}}).textContent || ''",
            sel = json!(selector)
        ));
        value.as_str().unwrap_or_default().trim().to_string()
    }

    fn visible(&self, selector: &str) -> bool {
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); return !!e && e.getClientRects().length > 0; }})()",
            sel = json!(selector)
        )) == json!(true)
    }

    /// Waits until `condition` (a JavaScript expression) is true.
    #[track_caller]
    fn wait_until(&self, condition: &str, what: &str) {
        let started = Instant::now();
        while self.eval(condition) != json!(true) {
            if started.elapsed() > WAIT {
                let shot = self.save_screenshot(&format!("FAILED-{}", self.name));
                panic!(
                    "{}: {what} did not happen within {WAIT:?} ({condition}); screenshot {}; alert: {:?}",
                    self.name,
                    shot.display(),
                    self.text("#alert")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_visible(&self, selector: &str) {
        self.wait_until(
            &format!(
                "(() => {{ const e = document.querySelector({sel}); return !!e && e.getClientRects().length > 0; }})()",
                sel = json!(selector)
            ),
            &format!("{selector} showing"),
        );
    }

    fn click(&self, selector: &str) {
        self.tab
            .wait_for_element(selector)
            .and_then(|element| element.click().map(|_| ()))
            .unwrap_or_else(|e| panic!("{}: click {selector}: {e}", self.name));
    }

    /// Clicks into a field and replaces what it holds with `text`, entered as one input
    /// (as a paste or an input method does: one DevTools call, not two per character).
    fn fill(&self, selector: &str, text: &str) {
        self.click(selector);
        self.eval(&format!(
            "document.querySelector({}).select()",
            json!(selector)
        ));
        self.tab.send_character(text).expect("type");
    }

    fn key(&self, key: &str) {
        self.tab.press_key(key).expect("key");
    }

    fn shift_tab(&self) {
        self.tab
            .press_key_with_modifiers("Tab", Some(&[ModifierKey::Shift]))
            .expect("shift-tab");
    }

    fn focused_matches(&self, selector: &str) -> bool {
        self.eval(&format!(
            "!!document.activeElement && document.activeElement.matches({})",
            json!(selector)
        )) == json!(true)
    }

    /// Moves the focus to `selector` with Tab (then Shift+Tab) alone: it must be reachable
    /// by keyboard. Checks that the focus shows.
    #[track_caller]
    fn tab_to(&self, selector: &str) {
        for step in 0..120 {
            if self.focused_matches(selector) {
                let outline = self.eval("getComputedStyle(document.activeElement).outlineStyle");
                assert_ne!(
                    outline,
                    json!("none"),
                    "{selector} has the focus but shows no focus ring"
                );
                return;
            }
            if step < 60 {
                self.key("Tab");
            } else {
                self.shift_tab();
            }
        }
        let shot = self.save_screenshot(&format!("FAILED-{}", self.name));
        panic!(
            "{}: the keyboard never reached {selector}; focus is on {}; screenshot {}",
            self.name,
            self.eval("document.activeElement && document.activeElement.outerHTML.slice(0, 200)"),
            shot.display()
        );
    }

    fn save_screenshot(&self, name: &str) -> PathBuf {
        self.save_screenshot_in(&screenshot_dir(), name)
    }

    fn save_docs_screenshot(&self, name: &str) -> PathBuf {
        self.save_screenshot_in(&docs_screenshot_dir(), name)
    }

    fn save_screenshot_in(&self, dir: &Path, name: &str) -> PathBuf {
        let _ = std::fs::create_dir_all(dir);
        let path = dir.join(format!("{name}.png"));
        if let Ok(png) =
            self.tab
                .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        {
            let _ = std::fs::write(&path, png);
        }
        path
    }

    fn no_horizontal_scroll(&self, what: &str) {
        let widths = self.eval("[document.documentElement.scrollWidth, window.innerWidth]");
        let (scroll, inner) = (widths[0].as_i64().unwrap(), widths[1].as_i64().unwrap());
        assert!(
            scroll <= inner,
            "{}: {what} scrolls sideways: {scroll} > {inner}",
            self.name
        );
    }

    fn sign_in(&self, user: &str) {
        self.wait_visible("#username");
        self.fill("#username", user);
        self.fill("#password", PASSWORD);
        self.click("#signin-submit");
    }

    fn sign_in_as_admin(&self, user: &str) {
        self.open("/admin");
        self.sign_in(user);
        self.wait_visible("#view-trash");
        self.wait_until_trash_loaded();
    }

    fn wait_until_trash_loaded(&self) {
        self.wait_until(
            "!document.getElementById('trash-table').hasAttribute('aria-busy') && document.getElementById('trash-status').textContent.indexOf('Loading') < 0",
            "the trash loaded",
        );
    }

    /// Titles of the trash rows shown, top to bottom.
    fn trash_titles(&self) -> Vec<String> {
        let titles = self.eval(
            "Array.from(document.querySelectorAll('#trash-rows tr label.title')).map(e => e.textContent)",
        );
        serde_json::from_value(titles).unwrap_or_default()
    }

    fn row(&self, post_id: i64) -> String {
        format!("#trash-rows tr[data-id=\"{post_id}\"]")
    }

    fn select(&self, post_id: i64) {
        self.click(&format!("#select-{post_id}"));
    }

    /// Opens a signed-in view through the navigation.
    fn open_view(&self, view: &str) {
        self.click(&format!("#nav a[href=\"#{view}\"]"));
        self.wait_visible(&format!("#view-{view}"));
    }

    fn wait_until_loaded(&self, table: &str) {
        self.wait_until(
            &format!(
                "!document.getElementById('{table}-table').hasAttribute('aria-busy') && document.getElementById('{table}-status').textContent.indexOf('Loading') < 0"
            ),
            &format!("the {table} view loaded"),
        );
    }

    /// The state of the audit log's live feed: live, connecting, reconnecting, off, …
    fn live_state(&self) -> String {
        self.eval("document.getElementById('audit-live-state').dataset.state")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn wait_live_state(&self, state: &str) {
        self.wait_until(
            &format!(
                "document.getElementById('audit-live-state').dataset.state === {}",
                json!(state)
            ),
            &format!("the live feed {state}"),
        );
    }

    /// The ids of the audit events shown, top to bottom.
    fn shown_event_ids(&self) -> Vec<i64> {
        let ids = self.eval(
            "Array.from(document.querySelectorAll('#audit-rows tr')).map(tr => Number(tr.dataset.id))",
        );
        serde_json::from_value(ids).unwrap_or_default()
    }

    fn wait_for_event(&self, id: i64) {
        self.wait_until(
            &format!("!!document.querySelector('#audit-rows tr[data-id=\"{id}\"]')"),
            &format!("event {id} shown"),
        );
    }

    /// The text of one cell (`When`, `Who`, `Action`, `Changed`, `Detail`) of event `id`.
    fn event_cell(&self, id: i64, label: &str) -> String {
        self.text(&format!(
            "#audit-rows tr[data-id=\"{id}\"] td[data-label=\"{label}\"]"
        ))
    }
}

/// Posts as the console's tests want them: `(title, slug)` made by `user`, deleted when
/// asked. Returns their ids in order.
fn posts(srv: &Server, user: &TestUser, specs: &[(&str, &str, bool)]) -> Vec<i64> {
    specs
        .iter()
        .map(|(title, slug, delete)| {
            let resp = srv.call(
                "POST",
                "/posts",
                Some(&user.token),
                Some(
                    &json!({"title": title, "body": format!("The body of {title}."), "slug": slug}),
                ),
            );
            resp.expect(201);
            let id = resp.json()["id"].as_i64().unwrap();
            if *delete {
                srv.call("DELETE", &format!("/posts/{id}"), Some(&user.token), None)
                    .expect(204);
            }
            id
        })
        .collect()
}

fn trash_ids(srv: &Server, admin: &TestUser) -> Vec<i64> {
    srv.collect_pages("/trash?limit=100", Some(&admin.token))
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect()
}

/// Every audit event's id, newest first.
fn event_ids(srv: &Server, admin: &TestUser) -> Vec<i64> {
    srv.collect_pages("/admin/audit?limit=100", Some(&admin.token))
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

fn newest_event(srv: &Server, admin: &TestUser) -> Value {
    srv.get("/admin/audit?limit=1", Some(&admin.token)).json()["items"][0].clone()
}

/// Holds a change-feed stream open, as another client does (its answer's status read).
fn hold_a_stream(srv: &Server, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(srv.addr).expect("connect");
    write!(
        stream,
        "GET /events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
        srv.addr
    )
    .expect("send");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).expect("an answer");
    assert_eq!(&status, b"HTTP/1.1 200", "the stream is open");
    stream
}

fn public_ids(srv: &Server) -> Vec<i64> {
    srv.collect_pages("/posts?limit=100", None)
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn an_admin_finds_a_post_by_search_and_restores_two_at_once() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start();
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    let ids = posts(
        &srv,
        &alice,
        &[
            ("Quarterly report", "quarterly-report", true),
            ("Team offsite notes", "team-offsite", true),
            ("Cat pictures", "cat-pictures", true),
            ("Still public", "still-public", false),
        ],
    );
    let Some(b) = browser(
        "an_admin_finds_a_post_by_search_and_restores_two_at_once",
        &srv,
        DESKTOP,
    ) else {
        return;
    };
    b.sign_in_as_admin("root");
    assert_eq!(
        b.trash_titles(),
        ["Cat pictures", "Team offsite notes", "Quarterly report"]
    );
    // The token is kept for this tab only.
    assert_eq!(b.eval("localStorage.length"), json!(0));
    assert_eq!(b.eval("document.cookie"), json!(""));
    assert!(b
        .eval("sessionStorage.getItem('postd.console.token')")
        .is_string());

    b.fill("#trash-q", "offsite");
    b.key("Enter");
    b.wait_until(
        "document.querySelectorAll('#trash-rows tr').length === 1",
        "the search narrowed the trash",
    );
    b.wait_until_trash_loaded();
    assert_eq!(b.trash_titles(), ["Team offsite notes"]);
    b.click("#trash-clear");
    b.wait_until(
        "document.querySelectorAll('#trash-rows tr').length === 3",
        "all three are back",
    );

    b.select(ids[0]);
    b.select(ids[1]);
    assert_eq!(b.text("#selection-count"), "2 posts selected");
    b.click("#restore-selected");
    b.wait_until(
        "document.getElementById('notice').textContent.indexOf('Restored 2 posts') === 0",
        "the restore was reported",
    );
    b.wait_until_trash_loaded();
    assert_eq!(b.trash_titles(), ["Cat pictures"]);
    assert_eq!(trash_ids(&srv, &admin), [ids[2]]);
    let public = public_ids(&srv);
    assert!(
        public.contains(&ids[0]) && public.contains(&ids[1]),
        "{public:?}"
    );
    let events = srv.get("/admin/audit", Some(&admin.token)).json();
    assert_eq!(events["items"][0]["action"], "posts.bulk_restore");
    assert_eq!(events["items"][0]["actor_id"], admin.id);
}

#[test]
fn a_restore_onto_a_taken_slug_shows_the_409_beside_its_row_and_changes_nothing() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start();
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    let ids = posts(
        &srv,
        &alice,
        &[
            ("Launch plan (old)", "launch", true),
            ("Recipes", "recipes", true),
            ("Launch plan", "launch", false),
        ],
    );
    let Some(b) = browser(
        "a_restore_onto_a_taken_slug_shows_the_409_beside_its_row_and_changes_nothing",
        &srv,
        DESKTOP,
    ) else {
        return;
    };
    b.sign_in_as_admin("root");
    let events_before = srv.get("/admin/audit", Some(&admin.token)).json()["items"].clone();
    b.select(ids[0]);
    b.select(ids[1]);
    b.click("#restore-selected");
    let error = format!("{} .row-error", b.row(ids[0]));
    b.wait_visible(&error);
    assert_eq!(
        b.eval(&format!(
            "document.querySelector({}).dataset.status",
            json!(error)
        )),
        json!("409")
    );
    assert!(
        b.text(&error).contains("slug 'launch' is already used"),
        "{}",
        b.text(&error)
    );
    assert!(
        !b.visible(&format!("{} .row-error", b.row(ids[1]))),
        "only the conflicting row"
    );
    assert!(
        b.text("#alert").starts_with("Nothing was restored"),
        "{}",
        b.text("#alert")
    );
    b.save_screenshot("admin-restore-conflict-1280x800");
    // The checkbox of the conflicting row names its error for assistive technology.
    assert_eq!(
        b.eval(&format!(
            "document.getElementById('select-{}').getAttribute('aria-describedby')",
            ids[0]
        )),
        json!(format!("error-{}", ids[0]))
    );
    // Nothing changed: both still in the trash, still selected, no event.
    assert_eq!(trash_ids(&srv, &admin), [ids[1], ids[0]]);
    assert_eq!(b.text("#selection-count"), "2 posts selected");
    assert_eq!(
        srv.get("/admin/audit", Some(&admin.token)).json()["items"],
        events_before
    );
    // Unselecting the conflicting one lets the other be restored.
    b.select(ids[0]);
    b.click("#restore-selected");
    b.wait_until(
        "document.getElementById('notice').textContent.indexOf('Restored 1 post') === 0",
        "the second restore was reported",
    );
    assert_eq!(trash_ids(&srv, &admin), [ids[0]]);
}

#[test]
fn a_permanent_delete_needs_the_confirmation() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start();
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    let ids = posts(
        &srv,
        &alice,
        &[("Doomed", "doomed", true), ("Kept", "kept", true)],
    );
    let Some(b) = browser("a_permanent_delete_needs_the_confirmation", &srv, DESKTOP) else {
        return;
    };
    b.sign_in_as_admin("root");
    b.select(ids[0]);
    let dialog_open = "document.getElementById('confirm').open";
    // Cancel, then Escape: nothing happens either way.
    b.click("#delete-selected");
    b.wait_until(dialog_open, "the confirmation opened");
    assert!(b
        .text("#confirm-title")
        .starts_with("Delete 1 post permanently?"));
    assert!(b.text("#confirm-list").contains("Doomed"));
    assert!(b.focused_matches("#confirm-cancel"), "Cancel has the focus");
    assert_eq!(
        trash_ids(&srv, &admin).len(),
        2,
        "nothing before confirming"
    );
    b.click("#confirm-cancel");
    b.wait_until(&format!("!{dialog_open}"), "the confirmation closed");
    b.click("#delete-selected");
    b.wait_until(dialog_open, "the confirmation opened again");
    b.key("Escape");
    b.wait_until(&format!("!{dialog_open}"), "Escape closed it");
    assert_eq!(trash_ids(&srv, &admin).len(), 2, "nothing after cancelling");
    assert_eq!(srv.sql_count("SELECT count(*) FROM posts"), 2);

    b.click("#delete-selected");
    b.wait_until(dialog_open, "the confirmation opened a third time");
    b.click("#confirm-ok");
    b.wait_until(
        "document.getElementById('notice').textContent.indexOf('Deleted 1 post permanently') === 0",
        "the delete was reported",
    );
    b.wait_until_trash_loaded();
    assert_eq!(b.trash_titles(), ["Kept"]);
    assert_eq!(trash_ids(&srv, &admin), [ids[1]]);
    assert_eq!(srv.sql_count("SELECT count(*) FROM posts"), 1);
    let events = srv.get("/admin/audit", Some(&admin.token)).json();
    assert_eq!(events["items"][0]["action"], "posts.bulk_delete_permanent");
    assert_eq!(events["items"][0]["target_ids"], json!([ids[0]]));
}

#[test]
fn a_non_admin_is_told_the_page_is_for_admins() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start();
    srv.register("alice");
    let Some(b) = browser("a_non_admin_is_told_the_page_is_for_admins", &srv, DESKTOP) else {
        return;
    };
    b.open("/admin");
    // A wrong password first: said plainly, the password field ready again.
    b.wait_visible("#username");
    b.fill("#username", "alice");
    b.fill("#password", "not-the-password");
    b.key("Enter");
    b.wait_visible("#signin-error");
    assert_eq!(
        b.text("#signin-error"),
        "That username and password do not match an account."
    );
    b.sign_in("alice");
    b.wait_visible("#view-denied");
    assert_eq!(b.text("#denied-title"), "This console is for admins");
    b.save_screenshot("admin-denied-1280x800");
    assert!(b
        .text("#view-denied")
        .contains("You signed in as alice, who is not an admin"));
    assert!(!b.visible("#nav") && !b.visible("#view-trash"));
    assert_eq!(
        b.eval("sessionStorage.length + localStorage.length"),
        json!(0),
        "a non-admin's token is not kept"
    );
    b.click("#denied-again");
    b.wait_visible("#view-signin");
}

#[test]
fn titles_are_shown_as_text_never_as_html() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start();
    srv.admin("root");
    let alice = srv.register("alice");
    let hostile = [
        "<img src=x onerror=alert(1)>",
        "<b>bold</b> & \"quotes\" <script>alert(2)</script>",
    ];
    posts(
        &srv,
        &alice,
        &[(hostile[0], "img", true), (hostile[1], "bold", true)],
    );
    let Some(b) = browser("titles_are_shown_as_text_never_as_html", &srv, DESKTOP) else {
        return;
    };
    b.sign_in_as_admin("root");
    let mut shown = b.trash_titles();
    shown.sort();
    let mut expected = hostile.map(str::to_string).to_vec();
    expected.sort();
    assert_eq!(shown, expected);
    assert_eq!(
        b.eval("document.querySelectorAll('#trash-rows img, #trash-rows b, #trash-rows script').length"),
        json!(0)
    );
    // Also in the confirmation, which lists titles.
    b.click("#select-all");
    b.click("#delete-selected");
    b.wait_until(
        "document.getElementById('confirm').open",
        "the confirmation opened",
    );
    assert!(b.text("#confirm-list").contains(hostile[0]));
    assert_eq!(
        b.eval("document.querySelectorAll('#confirm img, #confirm b').length"),
        json!(0)
    );
    b.key("Escape");
    assert_eq!(b.eval("typeof window.__alerted"), json!("undefined"));
}

#[test]
fn the_whole_flow_works_with_the_keyboard_alone() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start();
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    let ids = posts(
        &srv,
        &alice,
        &[
            ("Annual report", "annual-report", true),
            ("Draft report", "draft-report", true),
            ("Old news", "old-news", true),
            ("Older news", "older-news", true),
        ],
    );
    let Some(b) = browser(
        "the_whole_flow_works_with_the_keyboard_alone",
        &srv,
        DESKTOP,
    ) else {
        return;
    };
    b.open("/admin");
    b.wait_visible("#username");
    // Sign in: the page puts the focus on the username.
    b.wait_until(
        "document.activeElement.id === 'username'",
        "focus on the username",
    );
    b.tab.type_str("root").unwrap();
    b.tab_to("#password");
    b.tab.send_character(PASSWORD).unwrap();
    b.key("Enter");
    b.wait_visible("#view-trash");
    b.wait_until_trash_loaded();

    // Search, select both results with Space, restore with Enter.
    b.tab_to("#trash-q");
    b.tab.type_str("report").unwrap();
    b.key("Enter");
    b.wait_until(
        "document.querySelectorAll('#trash-rows tr').length === 2",
        "the search found the two reports",
    );
    b.wait_until_trash_loaded();
    b.tab_to(&format!("#select-{}", ids[0]));
    b.key(" ");
    b.tab_to(&format!("#select-{}", ids[1]));
    b.key(" ");
    b.wait_until(
        "document.getElementById('selection-count').textContent === '2 posts selected'",
        "two selected",
    );
    b.tab_to("#restore-selected");
    b.key("Enter");
    b.wait_until(
        "document.getElementById('notice').textContent.indexOf('Restored 2 posts') === 0",
        "the restore",
    );
    assert!(public_ids(&srv).contains(&ids[0]));

    // Clear the search; delete one permanently, confirming from the keyboard.
    b.tab_to("#trash-clear");
    b.key("Enter");
    b.wait_until(
        "document.querySelectorAll('#trash-rows tr').length === 2",
        "the rest of the trash",
    );
    b.wait_until_trash_loaded();
    b.tab_to(&format!("#select-{}", ids[2]));
    b.key(" ");
    b.tab_to("#delete-selected");
    b.key("Enter");
    b.wait_until(
        "document.getElementById('confirm').open",
        "the confirmation",
    );
    assert!(b.focused_matches("#confirm-cancel"));
    b.key("Tab");
    assert!(
        b.focused_matches("#confirm-ok"),
        "Tab moves to the confirm button"
    );
    b.key("Enter");
    b.wait_until(
        "document.getElementById('notice').textContent.indexOf('Deleted 1 post permanently') === 0",
        "the permanent delete",
    );
    assert_eq!(trash_ids(&srv, &admin), [ids[3]]);

    // The audit log shows both, reached from the navigation.
    b.tab_to("#nav a[href=\"#audit\"]");
    b.key("Enter");
    b.wait_visible("#view-audit");
    b.wait_until(
        "document.querySelectorAll('#audit-rows tr').length >= 6",
        "the audit log",
    );
    let actions = b.eval(
        "Array.from(document.querySelectorAll('#audit-rows .action-code')).map(e => e.textContent)",
    );
    assert_eq!(actions[0], "posts.bulk_delete_permanent");
    assert_eq!(actions[1], "posts.bulk_restore");

    // Purge what is left: count, then purge, confirming.
    b.tab_to("#nav a[href=\"#purge\"]");
    b.key("Enter");
    b.wait_visible("#view-purge");
    b.tab_to("#purge-age");
    for _ in 0..3 {
        b.key("Backspace");
    }
    b.tab.type_str("0s").unwrap();
    b.key("Enter");
    b.wait_until(
        "document.getElementById('purge-result').textContent.indexOf('1 post was deleted more than 0s ago') === 0",
        "the count",
    );
    b.tab_to("#purge-go");
    b.key("Enter");
    b.wait_until(
        "document.getElementById('confirm').open",
        "the purge confirmation",
    );
    b.key("Tab");
    b.key("Enter");
    b.wait_until(
        "document.getElementById('purge-result').textContent.indexOf('Purged 1 post') === 0",
        "the purge",
    );
    assert!(trash_ids(&srv, &admin).is_empty());

    b.tab_to("#sign-out");
    b.key("Enter");
    b.wait_visible("#view-signin");
    assert_eq!(b.eval("sessionStorage.length"), json!(0));
}

#[test]
fn an_expired_token_mid_session_goes_back_to_sign_in_with_a_message() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start_with(&[], &["--token-ttl", "1"]);
    srv.admin("root");
    let alice = srv.register("alice");
    posts(&srv, &alice, &[("Something", "something", true)]);
    let Some(b) = browser(
        "an_expired_token_mid_session_goes_back_to_sign_in_with_a_message",
        &srv,
        DESKTOP,
    ) else {
        return;
    };
    b.sign_in_as_admin("root");
    // The page's token lives 1 s, and the server accepts it a few seconds past that (its
    // clock tolerance): wait until the server refuses it, then use the page.
    let token = b.eval("sessionStorage.getItem('postd.console.token')");
    let token = token.as_str().expect("the page keeps its token");
    let started = Instant::now();
    while srv.get("/auth/me", Some(token)).status != 401 {
        assert!(
            started.elapsed() < WAIT,
            "the token was not refused within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    b.fill("#trash-q", "something");
    b.key("Enter");
    b.wait_visible("#view-signin");
    let message = b.text("#signin-message");
    b.save_screenshot("admin-session-ended-1280x800");
    assert!(message.starts_with("Your session has ended"), "{message}");
    assert_eq!(b.eval("sessionStorage.length"), json!(0));
    assert!(!b.visible("#nav"));
    // The username is kept; signing in again carries on.
    assert_eq!(
        b.eval("document.getElementById('username').value"),
        json!("root")
    );
    b.fill("#password", PASSWORD);
    b.key("Enter");
    b.wait_visible("#view-trash");
}

/// Trash rows and audit events name people: the username with the id beside it, found
/// through `GET /admin/users` a page at a time (here across pages: 150 users stand between
/// alice and bob), and a user erased since shows as "deleted user #ID".
#[test]
fn usernames_stand_beside_ids_in_the_trash_and_the_audit_log() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start();
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    // Users the console pages past to find alice (GET /admin/users is newest first).
    srv.sql_execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150)
         INSERT INTO users (username, password_hash, role, created_at)
         SELECT printf('filler%03d', i), 'not a hash', 'user', '2026-01-01T00:00:00.000Z' FROM n",
    );
    let bob = srv.register("bob");
    let carol = srv.register("carol");
    assert!(alice.id + 150 < bob.id);
    let alices = posts(&srv, &alice, &[("Alice's draft", "alices-draft", true)]);
    let bobs = posts(&srv, &bob, &[("Bob's notes", "bobs-notes", false)]);
    srv.call(
        "DELETE",
        &format!("/posts/{}", bobs[0]),
        Some(&admin.token),
        None,
    )
    .expect(204);
    posts(&srv, &carol, &[("Carol's post", "carols-post", false)]);
    srv.call(
        "DELETE",
        &format!("/admin/users/{}", carol.id),
        Some(&admin.token),
        None,
    )
    .expect(200);
    let Some(b) = browser(
        "usernames_stand_beside_ids_in_the_trash_and_the_audit_log",
        &srv,
        DESKTOP,
    ) else {
        return;
    };
    b.sign_in_as_admin("root");
    let cell =
        |post: i64, label: &str| b.text(&format!("{} td[data-label=\"{label}\"]", b.row(post)));
    assert_eq!(cell(alices[0], "Author"), format!("alice #{}", alice.id));
    assert!(cell(alices[0], "Deleted").ends_with(&format!("by alice #{}", alice.id)));
    assert_eq!(cell(bobs[0], "Author"), format!("bob #{}", bob.id));
    assert!(cell(bobs[0], "Deleted").ends_with(&format!("by root #{}", admin.id)));

    b.open_view("audit");
    b.wait_until_loaded("audit");
    let events = srv.collect_pages("/admin/audit?limit=100", Some(&admin.token));
    assert_eq!(
        b.shown_event_ids(),
        events
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    );
    let name = |id: i64| match id {
        id if id == admin.id => format!("root #{id}"),
        id if id == alice.id => format!("alice #{id}"),
        id if id == bob.id => format!("bob #{id}"),
        id => format!("deleted user #{id}"),
    };
    for event in &events {
        let id = event["id"].as_i64().unwrap();
        let who = event["actor_id"].as_i64().map_or("server".into(), name);
        assert_eq!(b.event_cell(id, "Who"), who, "{event}");
        if event["action"] == "user.erase" {
            assert_eq!(
                b.event_cell(id, "Changed"),
                format!("1 user{}", name(carol.id))
            );
        }
    }
    assert!(events
        .iter()
        .any(|e| e["actor_id"] == carol.id && e["action"] == "post.create"));
    b.save_screenshot("admin-audit-usernames-1280x800");
}

/// The Users view: post counts, search, and an erasure that counts first (the dry run)
/// and works only once the exact username is typed; an admin erasing themselves is told
/// the server's reason (409).
#[test]
fn the_users_view_counts_posts_and_erases_a_user_once_their_name_is_typed() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start();
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    let bob = srv.register("bob");
    let alices = posts(
        &srv,
        &alice,
        &[
            ("First", "first", false),
            ("Second", "second", false),
            ("Gone", "gone", true),
        ],
    );
    let bobs = posts(&srv, &bob, &[("Bob's", "bobs", false)]);
    // One revision of hers, bob's comment on her post and hers on his.
    srv.call(
        "PATCH",
        &format!("/posts/{}", alices[0]),
        Some(&alice.token),
        Some(&json!({"title": "First, edited"})),
    )
    .expect(200);
    srv.call(
        "POST",
        &format!("/posts/{}/comments", alices[0]),
        Some(&bob.token),
        Some(&json!({"body": "Nice one"})),
    )
    .expect(201);
    srv.call(
        "POST",
        &format!("/posts/{}/comments", bobs[0]),
        Some(&alice.token),
        Some(&json!({"body": "Thanks"})),
    )
    .expect(201);
    let Some(b) = browser(
        "the_users_view_counts_posts_and_erases_a_user_once_their_name_is_typed",
        &srv,
        DESKTOP,
    ) else {
        return;
    };
    b.sign_in_as_admin("root");
    b.open_view("users");
    b.wait_until_loaded("users");
    let ids = b.eval(
        "Array.from(document.querySelectorAll('#users-rows tr')).map(tr => Number(tr.dataset.id))",
    );
    assert_eq!(ids, json!([bob.id, alice.id, admin.id]), "newest first");
    let cell =
        |user: i64, what: &str| b.text(&format!("#users-rows tr[data-id=\"{user}\"] {what}"));
    assert_eq!(cell(alice.id, "td.posts .main"), "2");
    assert_eq!(cell(alice.id, "td.posts .sub"), "and 1 in the trash");
    assert_eq!(cell(bob.id, "td.posts"), "1");
    assert_eq!(cell(admin.id, "td.user .title"), "rootyou");
    assert_eq!(cell(admin.id, "td[data-label=\"Role\"]"), "admin");

    // Search: part of a name, any case; a character no username has is refused at once.
    b.fill("#users-q", "a b");
    b.key("Enter");
    b.wait_visible("#users-q-error");
    assert_eq!(
        b.eval("document.getElementById('users-q').getAttribute('aria-invalid')"),
        json!("true")
    );
    b.fill("#users-q", "ALI");
    b.key("Enter");
    b.wait_until(
        "document.querySelectorAll('#users-rows tr').length === 1",
        "the search found alice",
    );
    assert!(!b.visible("#users-q-error"));

    // The dry run's counts first; Erase works only with the exact name typed.
    let dialog_open = "document.getElementById('erase').open";
    b.click(&format!("#erase-{}", alice.id));
    b.wait_until(dialog_open, "the erase dialog opened");
    b.wait_visible("#erase-counts");
    assert_eq!(b.text("#erase-title"), "Erase alice?");
    assert_eq!(b.text("#erase-posts"), "3");
    assert_eq!(b.text("#erase-comments"), "2");
    assert_eq!(b.text("#erase-revisions"), "1");
    assert!(
        b.focused_matches("#erase-name"),
        "the name field has the focus"
    );
    let disabled = "document.getElementById('erase-ok').disabled";
    assert_eq!(b.eval(disabled), json!(true));
    for almost in ["alic", "Alice", "alice "] {
        b.fill("#erase-name", almost);
        assert_eq!(b.eval(disabled), json!(true), "{almost:?}");
    }
    b.key("Enter");
    assert_eq!(
        srv.sql_count(&format!(
            "SELECT count(*) FROM users WHERE id = {}",
            alice.id
        )),
        1,
        "nothing erased yet"
    );
    b.fill("#erase-name", "alice");
    assert_eq!(b.eval(disabled), json!(false));
    b.click("#erase-ok");
    b.wait_until(
        "document.getElementById('notice').textContent.indexOf('Erased alice') === 0",
        "the erasure was reported",
    );
    assert_eq!(
        b.text("#notice"),
        format!(
            "Erased alice (#{}): 3 posts, 2 comments and 1 revision.",
            alice.id
        )
    );
    assert_eq!(b.eval(dialog_open), json!(false));
    b.wait_until(
        "document.activeElement.id === 'users-title'",
        "the focus on the heading",
    );
    b.wait_until_loaded("users");
    assert!(b.visible("#users-empty"), "no user holds 'ALI' any more");
    // Gone for the server too: the user, every post of theirs, their comments and the
    // comments on their posts; their token no longer works.
    for sql in [
        format!("SELECT count(*) FROM users WHERE id = {}", alice.id),
        format!("SELECT count(*) FROM posts WHERE author_id = {}", alice.id),
        "SELECT count(*) FROM comments".to_string(),
        "SELECT count(*) FROM post_revisions".to_string(),
    ] {
        assert_eq!(srv.sql_count(&sql), 0, "{sql}");
    }
    srv.get("/auth/me", Some(&alice.token)).expect(401);
    assert_eq!(
        srv.get("/admin/users?q=alice", Some(&admin.token)).json()["items"],
        json!([])
    );
    let event = newest_event(&srv, &admin);
    assert_eq!(event["action"], "user.erase");
    assert_eq!(event["target_ids"], json!([alice.id]));
    assert_eq!(public_ids(&srv), [bobs[0]]);

    // Erasing oneself: the dry run is refused, and the dialog says why.
    b.click("#users-clear");
    b.wait_until(
        "document.querySelectorAll('#users-rows tr').length === 2",
        "both users left",
    );
    b.click(&format!("#erase-{}", admin.id));
    b.wait_until(dialog_open, "the erase dialog opened");
    b.wait_visible("#erase-error");
    assert!(
        b.text("#erase-error")
            .contains("an admin can not erase themselves"),
        "{}",
        b.text("#erase-error")
    );
    assert!(!b.visible("#erase-counts") && !b.visible("#erase-name"));
    assert_eq!(b.eval(disabled), json!(true));
    b.save_screenshot("admin-erase-self-1280x800");
    b.key("Escape");
    b.wait_until(&format!("!{dialog_open}"), "Escape closed it");
    b.wait_until(
        &format!("document.activeElement.id === 'erase-{}'", admin.id),
        "the focus back on the row's button",
    );
    srv.get("/auth/me", Some(&admin.token)).expect(200);
}

/// The audit log's first page follows `GET /events`: an event appears without a reload;
/// a busy server (503, Retry-After) and a server killed and started again are waited out,
/// and the feed comes back with Last-Event-ID, so what happened meanwhile shows exactly
/// once; the switch turns it off and on.
#[test]
fn the_audit_log_follows_new_events_live_and_across_a_restart() {
    if skip_heavy() {
        return;
    }
    let mut srv = Server::start_with(&[], &["--max-event-streams", "1"]);
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    posts(&srv, &alice, &[("Before", "before", false)]);
    // Another client holds the one stream the server allows: the console waits.
    let held = hold_a_stream(&srv, &admin.token);
    let Some(b) = browser(
        "the_audit_log_follows_new_events_live_and_across_a_restart",
        &srv,
        DESKTOP,
    ) else {
        return;
    };
    b.sign_in_as_admin("root");
    b.open_view("audit");
    b.wait_until_loaded("audit");
    b.wait_live_state("reconnecting");
    assert!(
        b.text("#audit-live-state")
            .starts_with("The server is busy; trying again in"),
        "{}",
        b.text("#audit-live-state")
    );
    assert_eq!(
        b.eval("document.getElementById('audit-live-state').getAttribute('aria-live')"),
        json!("polite")
    );

    // The server goes; the command line changes a role meanwhile; the server comes back
    // (with room for more streams: a stream the console closes holds its place until the
    // server next writes to it).
    srv.kill();
    drop(held);
    srv.cli(&["user", "role", "alice", "admin"]);
    srv.start_again_with(&[]);
    let promoted = newest_event(&srv, &admin);
    assert_eq!(promoted["action"], "user.role");
    let promoted = promoted["id"].as_i64().unwrap();
    b.wait_for_event(promoted);
    b.wait_live_state("live");
    assert_eq!(b.event_cell(promoted, "Who"), "server");
    assert!(b
        .event_cell(promoted, "Changed")
        .ends_with(&format!("alice #{}", alice.id)));

    // A post made now shows at the top without a reload, with its author's name.
    posts(&srv, &alice, &[("Live one", "live-one", false)]);
    let created = newest_event(&srv, &admin)["id"].as_i64().unwrap();
    b.wait_for_event(created);
    assert_eq!(b.shown_event_ids()[0], created);
    assert_eq!(b.event_cell(created, "Who"), format!("alice #{}", alice.id));
    assert_eq!(b.event_cell(created, "Action"), "Created a postpost.create");

    // Dropped while live: killed, a change meanwhile, started again.
    srv.kill();
    b.wait_live_state("reconnecting");
    assert!(b.text("#audit-live-state").starts_with("Connection lost"));
    srv.cli(&["user", "role", "alice", "user"]);
    srv.start_again();
    let demoted = newest_event(&srv, &admin)["id"].as_i64().unwrap();
    b.wait_for_event(demoted);
    b.wait_live_state("live");
    posts(&srv, &alice, &[("After", "after", false)]);
    let after = newest_event(&srv, &admin)["id"].as_i64().unwrap();
    b.wait_for_event(after);
    // Every event once, newest first: the page's and the feed's together.
    assert_eq!(b.shown_event_ids(), event_ids(&srv, &admin));
    assert!(
        b.text("#audit-status").contains("4 new since it loaded"),
        "{}",
        b.text("#audit-status")
    );

    // Off: nothing arrives. On again: the newest page, followed from there.
    b.click("#audit-live");
    b.wait_live_state("off");
    posts(&srv, &alice, &[("Quiet", "quiet", false)]);
    let quiet = newest_event(&srv, &admin)["id"].as_i64().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!b.shown_event_ids().contains(&quiet));
    b.click("#audit-live");
    b.wait_for_event(quiet);
    // Live at once, though nothing happens: the stream opens with a comment line, not
    // with the first keep-alive 15 s later.
    let started = Instant::now();
    b.wait_live_state("live");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(b.shown_event_ids(), event_ids(&srv, &admin));

    // Leaving the view ends the stream.
    b.open_view("trash");
    assert_eq!(b.live_state(), "off");
}

/// The layout at both sizes: nothing scrolls sideways in any view, with long titles and
/// slugs; the trash, the audit log (live), the users and the erase dialog are photographed
/// at each size for the README.
#[test]
fn screenshots_and_the_layout_at_1280x800_and_390x844() {
    if skip_heavy() {
        return;
    }
    let srv = Server::start_with(&[("POSTD_TRASH_RETENTION", "30d")], &[]);
    let admin = srv.admin("root");
    let alice = srv.register("alice");
    let bob = srv.register("bob");
    posts(
        &srv,
        &alice,
        &[
            ("Release notes for 2.4", "release-notes-2-4", true),
            ("Q3 planning: goals, owners and the long list of open questions we still need to settle", "q3-planning", true),
            ("Welcome to the team", "welcome", true),
        ],
    );
    let bobs = posts(
        &srv,
        &bob,
        &[
            ("Draft: pricing page copy", "pricing-draft", true),
            ("a-very-long-slug-without-spaces-that-keeps-going-and-going-and-going-to-test-wrapping", "a-very-long-slug-without-spaces-that-keeps-going-and-going-and-going-to-test", true),
            ("Meeting notes 14 May", "meeting-notes", true),
            ("Launch checklist", "launch-checklist", false),
        ],
    );
    srv.call(
        "DELETE",
        "/posts/bulk",
        Some(&admin.token),
        Some(&json!({"post_ids": [bobs[3]]})),
    )
    .expect(204);
    for (size, label) in [(DESKTOP, "1280x800"), (PHONE, "390x844")] {
        let Some(b) = browser(
            "screenshots_and_the_layout_at_1280x800_and_390x844",
            &srv,
            size,
        ) else {
            return;
        };
        b.open("/admin");
        b.wait_visible("#username");
        assert_eq!(b.eval("window.innerWidth"), json!(size.0));
        b.no_horizontal_scroll("sign-in");
        b.save_screenshot(&format!("admin-signin-{label}"));
        b.sign_in_as_admin("root");
        b.select(bobs[0]);
        b.select(bobs[2]);
        b.eval("window.scrollTo(0, 0)");
        b.no_horizontal_scroll("the trash");
        assert!(
            b.text("#trash-rows").contains("in 1 month")
                || b.text("#trash-rows").contains("in 30 days")
        );
        let shot = b.save_docs_screenshot(&format!("admin-trash-{label}"));
        assert!(std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false));
        b.click("#delete-selected");
        b.wait_until(
            "document.getElementById('confirm').open",
            "the confirmation",
        );
        b.no_horizontal_scroll("the confirmation");
        b.key("Escape");
        b.open_view("purge");
        b.click("#purge-preview");
        b.wait_until(
            "document.getElementById('purge-result').textContent.indexOf('No post') === 0",
            "the count",
        );
        b.no_horizontal_scroll("purge");
        b.save_screenshot(&format!("admin-purge-{label}"));

        // The audit log, live: a post made now arrives at the top, named.
        b.open_view("audit");
        b.wait_until_loaded("audit");
        b.wait_live_state("live");
        posts(
            &srv,
            &alice,
            &[(
                &*format!("Notes from the {label} review"),
                &*format!("review-{label}"),
                false,
            )],
        );
        let created = newest_event(&srv, &admin)["id"].as_i64().unwrap();
        b.wait_for_event(created);
        assert_eq!(b.event_cell(created, "Who"), format!("alice #{}", alice.id));
        b.no_horizontal_scroll("audit");
        b.save_docs_screenshot(&format!("admin-audit-{label}"));

        // Users, and the erasure dialog with the dry run's counts and the name typed.
        b.open_view("users");
        b.wait_until_loaded("users");
        b.no_horizontal_scroll("users");
        b.save_docs_screenshot(&format!("admin-users-{label}"));
        b.click(&format!("#erase-{}", bob.id));
        b.wait_visible("#erase-counts");
        b.fill("#erase-name", "bob");
        assert_eq!(
            b.eval("document.getElementById('erase-ok').disabled"),
            json!(false)
        );
        b.no_horizontal_scroll("the erase dialog");
        b.save_docs_screenshot(&format!("admin-erase-{label}"));
        b.key("Escape");
        b.wait_until(
            "!document.getElementById('erase').open",
            "the erase dialog closed",
        );
    }
}
