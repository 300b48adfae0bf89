//! Domain types and the field rules of the contract. Pure functions, no I/O: the HTTP
//! layer, the bulk code and the CLI all validate through here.

use crate::clock::Timestamp;
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

/// What an API token may do. A login token may do everything its user may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read what is not public: the trash, revisions.
    PostsRead,
    /// Create, update, delete, restore and revert posts, single and bulk; comment.
    PostsWrite,
    /// Read the change feed.
    EventsRead,
    /// Everything an admin's login token can do (only for admins).
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::PostsRead,
        Scope::PostsWrite,
        Scope::EventsRead,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::PostsRead => "posts:read",
            Scope::PostsWrite => "posts:write",
            Scope::EventsRead => "events:read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A token's scopes, each once, in a fixed order.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// `posts:read,events:read`: each a scope, at least one, each once. `Err` says why not.
    pub fn parse_list<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Scopes, String> {
        let mut scopes = Vec::new();
        for name in names {
            let scope = Scope::parse(name.trim()).ok_or_else(|| {
                format!(
                    "unknown scope '{}'; scopes are posts:read, posts:write, events:read, admin",
                    crate::text::escape_controls(crate::text::clip(name, 32))
                )
            })?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        if scopes.is_empty() {
            return Err("needs at least one scope".into());
        }
        scopes.sort();
        Ok(Scopes(scopes))
    }

    /// Whether a request that needs `scope` may go on: `admin` stands for every scope.
    pub fn allow(&self, scope: Scope) -> bool {
        self.0.contains(&scope) || self.0.contains(&Scope::Admin)
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// Why a user of `role` may not hold these scopes, if they may not: `admin` and
    /// `events:read` (the feed shows every user's changes) are for admins only.
    pub fn refused_for(&self, role: Role) -> Option<String> {
        if role == Role::Admin {
            return None;
        }
        [Scope::Admin, Scope::EventsRead]
            .into_iter()
            .find(|scope| self.contains(*scope))
            .map(|scope| format!("the scope {} is for admins only", scope.as_str()))
    }

    /// `posts:read,events:read`, as stored and as the CLI prints them.
    pub fn joined(&self) -> String {
        self.0
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Declares a text newtype that exists only by passing its rule: `parse` is the one way to
/// make one, so a value of the type is valid wherever it travels.
macro_rules! checked_text {
    ($(#[$doc:meta])* $name:ident, $rule:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The value, or what is wrong with it (a message that follows the field name).
            pub fn parse(text: impl Into<String>) -> Result<$name, String> {
                let text = text.into();
                let rule: fn(&str) -> Result<(), String> = $rule;
                rule(&text)?;
                Ok($name(text))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

checked_text!(
    /// 3..=32 characters of `[A-Za-z0-9_.-]`; unique regardless of case.
    Username,
    |text| {
        char_count_between(text, USERNAME_LEN)?;
        if text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            Ok(())
        } else {
            Err("may contain only letters, digits, '_', '.' and '-'".into())
        }
    }
);

checked_text!(
    /// An API token's name: 1..=64 characters of `[A-Za-z0-9_.-]`, unique per user.
    TokenName,
    |text| {
        char_count_between(text, 1..=64)?;
        if text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            Ok(())
        } else {
            Err("may contain only letters, digits, '_', '.' and '-'".into())
        }
    }
);

checked_text!(
    /// 1..=200 characters, stored trimmed: build one with [`Title::normalize`].
    Title,
    |text| {
        if text.trim().len() != text.len() {
            return Err("must not start or end with whitespace".into());
        }
        char_count_between(text, 1..=TITLE_MAX)
    }
);

checked_text!(
    /// 1..=100 characters matching `^[a-z0-9]+(-[a-z0-9]+)*$`.
    Slug,
    |text| {
        char_count_between(text, 1..=SLUG_MAX)?;
        let shape_ok = text.split('-').all(|part| {
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
);

checked_text!(
    /// 0..=100,000 characters.
    PostBody,
    |text| char_count_between(text, 0..=POST_BODY_MAX)
);

checked_text!(
    /// 1..=10,000 characters.
    CommentBody,
    |text| char_count_between(text, COMMENT_BODY_LEN)
);

impl Title {
    /// Titles are stored trimmed; the length rule applies to the trimmed text.
    pub fn normalize(text: &str) -> Result<Title, String> {
        Title::parse(text.trim())
    }
}

/// 8..=256 characters. Never printed: `Debug` hides it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(text: impl Into<String>) -> Result<Password, String> {
        let text = text.into();
        char_count_between(&text, PASSWORD_LEN)?;
        Ok(Password(text))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct User {
    pub id: i64,
    pub username: Username,
    pub role: Role,
    pub created_at: Timestamp,
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
    pub deleted_at: Timestamp,
    pub deleted_by_id: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Post {
    pub id: i64,
    pub author_id: i64,
    pub title: Title,
    pub slug: Slug,
    pub body: PostBody,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
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

/// One state of one post as clients see it: the post's id and its revision, which grows
/// by one on every update and every restore (a soft delete leaves it). The id is part of
/// it because `/posts/by-slug/{slug}` may name another post tomorrow, at the same revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    pub post_id: i64,
    pub revision: i64,
}

impl Version {
    /// The opaque text of its entity-tag, without the quotes: `7.3`.
    pub fn tag(&self) -> String {
        format!("{}.{}", self.post_id, self.revision)
    }

    /// The version an opaque tag names, if it is one of ours: exactly `Version::tag`'s
    /// text. Entity-tags compare byte for byte (RFC 9110 §8.8.3.2), so `"01.01"` is not
    /// `"1.1"` (found from outside: they were compared as numbers).
    pub fn from_tag(opaque: &str) -> Option<Version> {
        Version::parse_numbers(opaque).filter(|version| version.tag() == opaque)
    }

    fn parse_numbers(opaque: &str) -> Option<Version> {
        let (id, revision) = opaque.split_once('.')?;
        let number = |text: &str| {
            (!text.is_empty() && text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit()))
                .then(|| text.parse::<i64>().ok())
                .flatten()
                .filter(|n| *n > 0)
        };
        Some(Version {
            post_id: number(id)?,
            revision: number(revision)?,
        })
    }
}

/// A post read together with its current version.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionedPost {
    pub post: Post,
    pub version: Version,
}

/// What a change requires of the post's current version (`If-Match`, or a bulk item's
/// `if_match`), checked in the change's own transaction, after existence and ownership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfMatch {
    /// No condition, or `*`: every existing post matches.
    Any,
    /// One of these versions; an empty list (only tags that are not ours) never matches.
    OneOf(Vec<Version>),
}

impl IfMatch {
    pub fn admits(&self, current: Version) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::OneOf(versions) => versions.contains(&current),
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Comment {
    pub id: i64,
    pub post_id: i64,
    pub author_id: i64,
    pub body: CommentBody,
    pub created_at: Timestamp,
}

/// A post to create. `slug: None` means "derive it from the title".
#[derive(Clone, Debug)]
pub struct NewPost {
    pub title: Title,
    pub body: PostBody,
    pub slug: Option<Slug>,
    /// When it was first written elsewhere (`postd import` of an export keeps it); `None`:
    /// now.
    pub created_at: Option<Timestamp>,
}

/// A change to a post; the API refuses an empty one before it gets here.
#[derive(Clone, Debug, Default)]
pub struct PostPatch {
    pub title: Option<Title>,
    pub body: Option<PostBody>,
    pub slug: Option<Slug>,
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
    /// About the whole request or item, not one field.
    pub fn whole(message: impl Into<String>) -> ItemError {
        ItemError {
            index: None,
            id: None,
            field: None,
            message: message.into(),
        }
    }

    pub fn field(field: &'static str, message: impl Into<String>) -> ItemError {
        ItemError {
            field: Some(field),
            ..ItemError::whole(message)
        }
    }

    /// About bulk item `index` (the post `id` where it has one).
    pub fn item(index: usize, id: Option<i64>, message: impl Into<String>) -> ItemError {
        ItemError {
            index: Some(index),
            id,
            ..ItemError::whole(message)
        }
    }

    pub fn at(mut self, index: usize) -> ItemError {
        self.index = Some(index);
        self
    }

    pub fn with_id(mut self, id: Option<i64>) -> ItemError {
        self.id = id;
        self
    }

    pub fn on(mut self, field: &'static str) -> ItemError {
        self.field = Some(field);
        self
    }
}

fn char_count_between(text: &str, range: std::ops::RangeInclusive<usize>) -> Result<(), String> {
    // A character is 1 to 4 bytes: a text whose byte length alone proves it is in range
    // needs no counting. Values read back from the database are parsed again, and counting
    // the characters of every body of every page was 4% of a listing's CPU time.
    let bytes = text.len();
    if bytes <= *range.end() && bytes.div_ceil(4) >= *range.start() {
        return Ok(());
    }
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

/// The slug a title derives to before any `-N` suffix: ASCII letters (lowercased) and
/// digits kept, every run of anything else one `-`, trimmed, at most 100 chars, `post`
/// when nothing is left.
pub fn slug_base(title: &Title) -> Slug {
    let mut slug = String::with_capacity(title.as_str().len().min(SLUG_MAX));
    let mut pending_dash = false;
    for ch in title.as_str().chars() {
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
    if slug.is_empty() {
        slug.push_str("post");
    }
    // Letters and digits joined by single dashes, never at either end: a slug by
    // construction.
    Slug(slug)
}

/// The n-th candidate for a derived slug (n = 1 is the base itself, then `-2`, `-3`…),
/// cutting the base so that the whole stays within 100 chars and never ends in `-`.
pub fn slug_candidate(base: &Slug, n: u64) -> Slug {
    if n <= 1 {
        return base.clone();
    }
    let suffix = format!("-{n}");
    let room = SLUG_MAX.saturating_sub(suffix.len());
    let base = base.as_str();
    let cut = base[..base.len().min(room)].trim_end_matches('-');
    let mut slug = String::with_capacity(cut.len() + suffix.len());
    slug.push_str(cut);
    slug.push_str(&suffix);
    Slug(slug)
}

const MAX_SEARCH_WORDS: usize = 32;
const MAX_SEARCH_LEN: usize = 1_000;

/// Splits a search text into words the way the full-text index splits text (runs of
/// letters and digits), so punctuation and operators are separators, never syntax. `Err`
/// says which limit it breaks.
pub fn search_words(q: &str) -> Result<Vec<String>, &'static str> {
    if q.len() > MAX_SEARCH_LEN {
        return Err("must be at most 1000 bytes");
    }
    let words: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    if words.len() > MAX_SEARCH_WORDS {
        return Err("must have at most 32 words");
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn title(text: &str) -> Title {
        Title::normalize(text).unwrap()
    }

    #[test]
    fn slug_base_follows_the_contract() {
        assert_eq!(slug_base(&title("Hello, World!")), "hello-world");
        assert_eq!(slug_base(&title("  --Héllo--  ")), "h-llo");
        assert_eq!(slug_base(&title("!!!")), "post");
        assert_eq!(
            slug_base(&title("Rust 2024: what's new?")),
            "rust-2024-what-s-new"
        );
        let long = "a".repeat(99) + " b";
        let derived = slug_base(&title(&long));
        assert!(Slug::parse(derived.as_str()).is_ok(), "{derived}");
    }

    #[test]
    fn slug_candidates_stay_within_limits() {
        let base = slug_base(&title(&("x".repeat(99) + "-y")));
        for n in [1, 2, 10, 12345] {
            let candidate = slug_candidate(&base, n);
            assert!(Slug::parse(candidate.as_str()).is_ok(), "{candidate}");
        }
        let hello = Slug::parse("hello").unwrap();
        assert_eq!(slug_candidate(&hello, 3), "hello-3");
        // A cut that lands just after a dash must not leave "--".
        let dashy = Slug::parse("a".repeat(97) + "-bc").unwrap();
        assert_eq!(slug_candidate(&dashy, 2).as_str(), "a".repeat(97) + "-2");
    }

    #[test]
    fn field_rules() {
        assert!(Username::parse("al").is_err());
        assert!(Username::parse("alice_1.b-c").is_ok());
        assert!(Username::parse("al ice").is_err());
        assert!(Slug::parse("a-b-c").is_ok());
        assert!(Slug::parse("a--b").is_err());
        assert!(Slug::parse("-a").is_err());
        assert!(Slug::parse("A").is_err());
        assert_eq!(
            Title::normalize("  t  ").map(Title::into_string).as_deref(),
            Ok("t")
        );
        assert!(Title::normalize("   ").is_err());
        assert!(Title::parse(" t").is_err(), "only trimmed titles exist");
        assert!(Title::normalize(&"é".repeat(200)).is_ok());
        assert!(Title::normalize(&"é".repeat(201)).is_err());
        assert!(CommentBody::parse("").is_err());
        assert!(PostBody::parse("").is_ok());
        assert!(Password::parse("short").is_err());
        // The byte-length shortcut agrees with counting at the edges.
        assert!(PostBody::parse("é".repeat(100_000)).is_ok());
        assert!(PostBody::parse("é".repeat(100_001)).is_err());
        assert!(CommentBody::parse("").is_err());
        assert!(Username::parse("éé").is_err());
        assert!(Password::parse("éééé").is_err(), "4 characters in 8 bytes");
        assert!(Password::parse("éééééééé").is_ok());
        assert_eq!(
            format!("{:?}", Password::parse("long enough").unwrap()),
            "Password(…)"
        );
    }
}
