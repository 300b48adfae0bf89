//! Slugs: derived from titles and made unique with a suffix, explicit ones refused when
//! taken, and freed by a soft delete (restoring onto a taken slug is a 409).

use crate::support::*;
use serde_json::json;

#[test]
fn derived_slugs() {
    let s = TestApp::new();
    let a = s.register("alice");
    let slug_of = |title: &str| {
        s.create_post_json(&a.token, json!({"title": title, "body": ""}))["slug"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(slug_of("Hello World"), "hello-world");
    assert_eq!(slug_of("Hello World"), "hello-world-2");
    assert_eq!(slug_of("hello, world!"), "hello-world-3");
    // An explicit slug that looks like a suffix is skipped over by derivation.
    s.create_post_json(
        &a.token,
        json!({"title": "x", "body": "", "slug": "hello-world-4"}),
    );
    assert_eq!(slug_of("Hello   World"), "hello-world-5");
    assert_eq!(slug_of("!!!"), "post");
    assert_eq!(slug_of("?? ..."), "post-2");
    assert_eq!(slug_of("Rust 2024: what's new?"), "rust-2024-what-s-new");
    assert_eq!(slug_of("  --Héllo Wörld--  "), "h-llo-w-rld");
    assert_eq!(slug_of("日本語"), "post-3");
    // Long titles: at most 100 chars, suffix included, never ending in '-'.
    let long = "Abc ".repeat(50);
    let first = slug_of(&long);
    let second = slug_of(&long);
    for slug in [&first, &second] {
        assert!(slug.len() <= 100, "{slug}");
        assert!(
            !slug.ends_with('-') && !slug.starts_with('-') && !slug.contains("--"),
            "{slug}"
        );
        assert!(
            slug.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{slug}"
        );
    }
    assert!(second.ends_with("-2"), "{second}");
    assert_ne!(first, second);
    let dashy = format!("{} b", "a".repeat(98));
    let d1 = slug_of(&dashy);
    let d2 = slug_of(&dashy);
    assert_eq!(d1, format!("{}-b", "a".repeat(98)));
    assert!(
        d2.len() <= 100 && d2.ends_with("-2") && !d2.contains("--"),
        "{d2}"
    );
    // Explicit slug taken by an active post → 409, nothing stored.
    let before = s.sql_count("SELECT count(*) FROM posts");
    s.post_json(
        &a.token,
        json!({"title": "t", "body": "", "slug": "hello-world"}),
    )
    .expect(409);
    s.post_json(&a.token, json!({"title": "t", "body": "", "slug": "post"}))
        .expect(409);
    assert_eq!(s.sql_count("SELECT count(*) FROM posts"), before);
}

#[test]
fn slugs_of_soft_deleted_posts_are_reusable_and_restore_conflicts() {
    let s = TestApp::new();
    let alice = s.register("alice");
    let bob = s.register("bob");
    let root = s.admin("root");

    // Explicit reuse.
    let orig = s.create_post_json(
        &alice.token,
        json!({"title": "Original", "body": "o", "slug": "reuse-me"}),
    );
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}", id(&orig)),
        Some(&alice.token),
        None,
    ));
    let taker = s.create_post_json(
        &bob.token,
        json!({"title": "Taker", "body": "t", "slug": "reuse-me"}),
    );
    assert_eq!(taker["slug"], "reuse-me");

    // Derived reuse.
    let hw = s.create_post_json(&alice.token, json!({"title": "Hello World", "body": "1"}));
    assert_eq!(hw["slug"], "hello-world");
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}", id(&hw)),
        Some(&alice.token),
        None,
    ));
    let hw2 = s.create_post_json(&bob.token, json!({"title": "Hello World", "body": "2"}));
    assert_eq!(hw2["slug"], "hello-world", "only active posts hold a slug");

    // PATCH to a slug held only by a soft-deleted post is fine too.
    let p = s.create_post_json(
        &bob.token,
        json!({"title": "Patchy", "body": "", "slug": "patchy"}),
    );
    let ghost = s.create_post_json(
        &alice.token,
        json!({"title": "Ghost", "body": "", "slug": "ghost"}),
    );
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}", id(&ghost)),
        Some(&alice.token),
        None,
    ));
    let r = s.call(
        "PATCH",
        &format!("/posts/{}", id(&p)),
        Some(&bob.token),
        Some(&json!({"slug": "ghost"})),
    );
    r.expect(200);
    assert_eq!(r.json()["slug"], "ghost");

    // Restoring the originals now conflicts, and changes nothing.
    let trash_before = s.collect_pages("/trash", Some(&root.token));
    for (orig_id, slug, holder) in [
        (id(&orig), "reuse-me", &taker),
        (id(&hw), "hello-world", &hw2),
        (id(&ghost), "ghost", &p),
    ] {
        let r = s.call(
            "POST",
            &format!("/posts/{orig_id}/restore"),
            Some(&root.token),
            None,
        );
        r.expect(409);
        s.get(&format!("/posts/{orig_id}"), None).expect(404);
        assert_eq!(
            id(&s.get(&format!("/posts/by-slug/{slug}"), None).json()),
            id(holder)
        );
    }
    assert_eq!(
        s.collect_pages("/trash", Some(&root.token)),
        trash_before,
        "failed restores change nothing"
    );

    // Once the slug is free again, restore works.
    assert_204(&s.call(
        "DELETE",
        &format!("/posts/{}?permanent=true", id(&taker)),
        Some(&bob.token),
        None,
    ));
    let r = s.call(
        "POST",
        &format!("/posts/{}/restore", id(&orig)),
        Some(&root.token),
        None,
    );
    r.expect(200);
    assert_eq!(r.json(), orig);
    assert_eq!(s.get("/posts/by-slug/reuse-me", None).json(), orig);
}
