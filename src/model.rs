//! Domain types and the field rules of the contract. Pure functions, no I/O: the HTTP
//! layer, the bulk code and the CLI all validate through here.

use serde::ser::{Serialize, SerializeStruct, Serializer};

pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=32;
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=256;
pub const TITLE_MAX: usize = 200;
pub const POST_BODY_MAX: usize = 100_000;
pub const SLUG_MAX: usize = 100;
pub const COMMENT_BODY_LEN: std::ops::RangeInclusive<usize> = 1..=10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub created_at: String,
}

/// Who is asking. Built from the database on every request, never from the token alone.
#[derive(Clone, Copy, Debug)]
pub struct Actor {
    pub user_id: i64,
    pub role: Role,
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn may_manage(&self, author_id: i64) -> bool {
        self.is_admin() || self.user_id == author_id
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Deletion {
    pub deleted_at: String,
    pub deleted_by_id: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Post {
    pub id: i64,
    pub author_id: i64,
    pub title: String,
    pub slug: String,
    pub body: String,
    pub created_at: String,
    pub updated_at: String,
    /// Present only for posts read from the trash side (`deleted_posts`).
    pub deletion: Option<Deletion>,
}

impl Serialize for Post {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = if self.deletion.is_some() { 9 } else { 7 };
        let mut st = s.serialize_struct("Post", fields)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("author_id", &self.author_id)?;
        st.serialize_field("title", &self.title)?;
        st.serialize_field("slug", &self.slug)?;
        st.serialize_field("body", &self.body)?;
        st.serialize_field("created_at", &self.created_at)?;
        st.serialize_field("updated_at", &self.updated_at)?;
        if let Some(deletion) = &self.deletion {
            st.serialize_field("deleted_at", &deletion.deleted_at)?;
            st.serialize_field("deleted_by_id", &deletion.deleted_by_id)?;
        }
        st.end()
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Comment {
    pub id: i64,
    pub post_id: i64,
    pub author_id: i64,
    pub body: String,
    pub created_at: String,
}

/// A validated post to create. `slug: None` means "derive it from the title".
#[derive(Clone, Debug)]
pub struct NewPost {
    pub title: String,
    pub body: String,
    pub slug: Option<String>,
}

/// A validated, non-empty change to a post.
#[derive(Clone, Debug, Default)]
pub struct PostPatch {
    pub title: Option<String>,
    pub body: Option<String>,
    pub slug: Option<String>,
}

impl PostPatch {
    pub fn is_empty(&self) -> bool {
        self.title.is_none() && self.body.is_none() && self.slug.is_none()
    }
}

/// One entry of a problem's `errors` list.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ItemError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    pub message: String,
}

impl ItemError {
    pub fn field(field: &'static str, message: impl Into<String>) -> ItemError {
        ItemError {
            index: None,
            id: None,
            field: Some(field),
            message: message.into(),
        }
    }

    pub fn item(index: usize, id: Option<i64>, message: impl Into<String>) -> ItemError {
        ItemError {
            index: Some(index),
            id,
            field: None,
            message: message.into(),
        }
    }

    pub fn at(mut self, index: usize) -> ItemError {
        self.index = Some(index);
        self
    }
}

fn char_count_between(text: &str, range: std::ops::RangeInclusive<usize>) -> Result<(), String> {
    // Counting stops one past the maximum so a 16 MiB string costs no more than a short one.
    let count = text.chars().take(range.end() + 1).count();
    if count < *range.start() {
        if *range.start() == 1 {
            Err("must not be empty".into())
        } else {
            Err(format!("must be at least {} characters", range.start()))
        }
    } else if count > *range.end() {
        Err(format!("must be at most {} characters", range.end()))
    } else {
        Ok(())
    }
}

pub fn check_username(username: &str) -> Result<(), String> {
    char_count_between(username, USERNAME_LEN)?;
    if username
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Ok(())
    } else {
        Err("may contain only letters, digits, '_', '.' and '-'".into())
    }
}

pub fn check_password(password: &str) -> Result<(), String> {
    char_count_between(password, PASSWORD_LEN)
}

/// Titles are stored trimmed; the length rule applies to the trimmed text.
pub fn normalize_title(title: &str) -> Result<String, String> {
    let trimmed = title.trim();
    char_count_between(trimmed, 1..=TITLE_MAX)?;
    Ok(trimmed.to_owned())
}

pub fn check_post_body(body: &str) -> Result<(), String> {
    char_count_between(body, 0..=POST_BODY_MAX)
}

pub fn check_comment_body(body: &str) -> Result<(), String> {
    char_count_between(body, COMMENT_BODY_LEN)
}

pub fn check_slug(slug: &str) -> Result<(), String> {
    char_count_between(slug, 1..=SLUG_MAX)?;
    let shape_ok = slug.split('-').all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if shape_ok {
        Ok(())
    } else {
        Err("must be lowercase letters and digits in groups joined by single '-'".into())
    }
}

/// The slug a title derives to before any `-N` suffix: ASCII letters (lowercased) and
/// digits kept, every run of anything else one `-`, trimmed, at most 100 chars, `post`
/// when nothing is left.
pub fn slug_base(title: &str) -> String {
    let mut slug = String::with_capacity(title.len().min(SLUG_MAX));
    let mut pending_dash = false;
    for ch in title.chars() {
        if !ch.is_ascii_alphanumeric() {
            pending_dash = true;
            continue;
        }
        let dash = pending_dash && !slug.is_empty();
        if slug.len() + usize::from(dash) + 1 > SLUG_MAX {
            break;
        }
        if dash {
            slug.push('-');
        }
        pending_dash = false;
        slug.push(ch.to_ascii_lowercase());
    }
    let trimmed_len = slug.trim_end_matches('-').len();
    slug.truncate(trimmed_len);
    if slug.is_empty() {
        slug.push_str("post");
    }
    slug
}

/// The n-th candidate for a derived slug (n = 1 is the base itself, then `-2`, `-3`…),
/// cutting the base so that the whole stays within 100 chars and never ends in `-`.
pub fn slug_candidate(base: &str, n: u64) -> String {
    if n <= 1 {
        return base.to_owned();
    }
    let suffix = format!("-{n}");
    let room = SLUG_MAX.saturating_sub(suffix.len());
    let cut = base[..base.len().min(room)].trim_end_matches('-');
    let mut slug = String::with_capacity(cut.len() + suffix.len());
    slug.push_str(cut);
    slug.push_str(&suffix);
    slug
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_base_follows_the_contract() {
        assert_eq!(slug_base("Hello, World!"), "hello-world");
        assert_eq!(slug_base("  --Héllo--  "), "h-llo");
        assert_eq!(slug_base("!!!"), "post");
        assert_eq!(slug_base(""), "post");
        assert_eq!(slug_base("Rust 2024: what's new?"), "rust-2024-what-s-new");
        let long = "a".repeat(99) + " b";
        let derived = slug_base(&long);
        assert!(
            derived.len() <= SLUG_MAX && !derived.ends_with('-'),
            "{derived}"
        );
        assert!(check_slug(&derived).is_ok());
    }

    #[test]
    fn slug_candidates_stay_within_limits() {
        let base = "x".repeat(99) + "-y";
        let base = slug_base(&base);
        for n in [1, 2, 10, 12345] {
            let candidate = slug_candidate(&base, n);
            assert!(candidate.len() <= SLUG_MAX, "{candidate}");
            assert!(check_slug(&candidate).is_ok(), "{candidate}");
        }
        assert_eq!(slug_candidate("hello", 3), "hello-3");
        // A cut that lands just after a dash must not leave "--".
        let dashy = "a".repeat(97) + "-bc";
        assert_eq!(slug_candidate(&dashy, 2), "a".repeat(97) + "-2");
    }

    #[test]
    fn field_rules() {
        assert!(check_username("al").is_err());
        assert!(check_username("alice_1.b-c").is_ok());
        assert!(check_username("al ice").is_err());
        assert!(check_slug("a-b-c").is_ok());
        assert!(check_slug("a--b").is_err());
        assert!(check_slug("-a").is_err());
        assert!(check_slug("A").is_err());
        assert_eq!(normalize_title("  t  ").as_deref(), Ok("t"));
        assert!(normalize_title("   ").is_err());
        assert!(normalize_title(&"é".repeat(200)).is_ok());
        assert!(normalize_title(&"é".repeat(201)).is_err());
        assert!(check_comment_body("").is_err());
        assert!(check_post_body("").is_ok());
    }
}
