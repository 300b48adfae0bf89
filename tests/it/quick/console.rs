//! The operator's console's source against its rules: no inline code, nothing loaded from
//! elsewhere, and no server text ever turned into HTML. The page as served and in a real
//! browser is tests/browser (the heavy tier).

use std::path::Path;

fn source(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/admin")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Everything a `src="…"` or `href="…"` in `html` points at.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attribute) {
            rest = &rest[at + attribute.len()..];
            found.push(rest.split('"').next().unwrap_or_default().to_string());
        }
    }
    found
}

#[test]
fn the_page_has_no_inline_code_no_outside_resource_and_never_writes_html() {
    let html = source("index.html");
    let lower = html.to_lowercase();
    // Every script is a file of ours; no style element, no style attribute, no handler.
    for (at, _) in lower.match_indices("<script") {
        let tag = &lower[at..at + lower[at..].find('>').unwrap()];
        assert!(tag.contains(" src=\"/admin/"), "inline script: {tag}");
    }
    assert!(!lower.contains("<style"), "a style element");
    assert!(!lower.contains(" style="), "a style attribute");
    assert!(
        !lower
            .split_whitespace()
            .any(|word| word.starts_with("on") && word.contains('=')),
        "an inline event handler"
    );
    for reference in references(&html) {
        assert!(
            reference.starts_with("/admin/")
                || reference.starts_with('#')
                || reference == "/openapi.json",
            "a resource from elsewhere: {reference}"
        );
    }
    // Code, not the comments that state these rules.
    let script: String = source("admin.js")
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            !(line.starts_with("//") || line.starts_with("/*") || line.starts_with('*'))
        })
        .collect::<Vec<_>>()
        .join("\n");
    for banned in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "localStorage",
        "document.cookie",
        "http://",
        "https://",
    ] {
        assert!(!script.contains(banned), "admin.js uses {banned}");
    }
    let style = source("admin.css");
    for banned in ["@import", "url(", "http://", "https://"] {
        assert!(!style.contains(banned), "admin.css uses {banned}");
    }
}

/// The audit log's action filter offers every action the server records (and only those),
/// and the console has words for each.
#[test]
fn the_audit_filter_offers_and_names_every_action() {
    let html = source("index.html");
    let script = source("admin.js");
    let mut offered: Vec<&str> = html
        .split("<option value=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|value| !value.is_empty())
        .collect();
    offered.sort_unstable();
    let mut actions: Vec<&str> = postd::store::AuditAction::ALL
        .iter()
        .map(|action| action.as_str())
        .collect();
    actions.sort_unstable();
    assert_eq!(offered, actions);
    for action in actions {
        assert!(
            script.contains(&format!("'{action}': '")),
            "admin.js has no name for {action}"
        );
    }
}
