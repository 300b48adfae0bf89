//! Deterministic post content: post `n` always gets the same ~40-char title (unique, it
//! starts with `n`, so derived slugs never need a `-2` probe) and ~500-char body.

use postd::model::{NewPost, PostBody, Title};
use std::ops::Range;

const WORDS: &[&str] = &[
    "river", "lantern", "morning", "quiet", "harbor", "copper", "meadow", "signal", "winter",
    "orchard", "paper", "engine", "garden", "silver", "window", "thunder", "market", "bridge",
    "candle", "forest", "pocket", "ladder", "mirror", "velvet", "station", "compass", "island",
    "marble", "shadow", "feather", "kettle", "planet", "ribbon", "saddle", "timber", "valley",
    "anchor", "basket", "cellar", "dragon", "ember", "falcon", "glacier", "hollow", "ivory",
    "jacket", "kernel", "legend", "magnet", "needle", "oyster", "pepper", "quartz", "rocket",
    "summit", "tunnel", "umbrella", "vessel", "walnut", "yonder", "zephyr", "amber", "breeze",
    "cobalt", "drift", "echo", "fable", "grain", "haven", "inlet", "jungle", "kindle", "lumen",
    "mosaic", "nectar", "orbit", "prism", "quill", "relic", "spruce", "tide", "unity", "vapor",
    "willow", "yield", "zenith", "the", "of", "and", "a", "to", "in", "is", "was", "for", "on",
    "with", "by", "at", "from",
];

/// xorshift64* seeded through splitmix64: tiny, deterministic, good enough for picks.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `lo..=hi` (modulo bias is irrelevant here).
    pub fn between(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo + 1).max(1) as u64;
        lo + (self.next_u64() % span) as i64
    }

    fn word(&mut self) -> &'static str {
        WORDS[(self.next_u64() % WORDS.len() as u64) as usize]
    }
}

pub fn title(n: u64) -> String {
    let mut rng = Rng::new(n.wrapping_mul(2));
    let mut title = format!("Post {n}");
    while title.len() < 40 {
        title.push(' ');
        title.push_str(rng.word());
    }
    title.truncate(40);
    title.trim_end().to_owned()
}

pub fn body(n: u64) -> String {
    let mut rng = Rng::new(n.wrapping_mul(2) + 1);
    let mut body = String::with_capacity(520);
    let mut in_sentence = 0;
    while body.len() < 495 {
        let word = rng.word();
        if in_sentence == 0 {
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                body.push(first.to_ascii_uppercase());
                body.push_str(chars.as_str());
            }
        } else {
            body.push_str(word);
        }
        in_sentence += 1;
        if in_sentence >= 8 + (rng.next_u64() % 8) as usize {
            body.push_str(". ");
            in_sentence = 0;
        } else {
            body.push(' ');
        }
    }
    body.truncate(body.trim_end().len());
    body.push('.');
    body
}

pub fn new_post(n: u64) -> NewPost {
    NewPost {
        created_at: None,
        title: Title::normalize(&title(n)).expect("generated titles are valid"),
        body: PostBody::parse(body(n)).expect("generated bodies are valid"),
        slug: None,
    }
}

pub fn new_posts(range: Range<u64>) -> Vec<NewPost> {
    range.map(new_post).collect()
}

pub fn post_json(post: &NewPost) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"title": post.title, "body": post.body}))
        .expect("post JSON")
}

/// `{"items":[{"title":…,"body":…},…]}` for `POST /posts/bulk`.
pub fn bulk_create_json(posts: &[NewPost]) -> Vec<u8> {
    let items: Vec<serde_json::Value> = posts
        .iter()
        .map(|p| serde_json::json!({"title": p.title, "body": p.body}))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "items": items })).expect("bulk JSON")
}

/// `{"post_ids":[…],"hard_delete":…}` for `DELETE /posts/bulk`.
pub fn bulk_delete_json(ids: &[i64], hard: bool) -> Vec<u8> {
    let value = if hard {
        serde_json::json!({"post_ids": ids, "hard_delete": true})
    } else {
        serde_json::json!({ "post_ids": ids })
    };
    serde_json::to_vec(&value).expect("delete JSON")
}
