//! Conditional requests (RFC 9110 §13) on posts: the strong `ETag` of a post, answered
//! 304 to a matching `If-None-Match`, and `If-Match` on changes. An `If-Match` is only
//! parsed here; the store compares it with the post inside the change's own transaction,
//! after existence and ownership, so no other writer can slip in between (412 otherwise).
//!
//! A header value that is not `*` or a list of entity-tags names no version, so it
//! matches nothing: `If-Match` then fails (412; a guard the client meant is never
//! dropped) and `If-None-Match` lets the full answer through. Neither is a 400, so every
//! string a client sends in these headers has a defined meaning.

use super::call::{json, Call};
use super::problem::ApiError;
use crate::model::{IfMatch, Version, VersionedPost};
use rouille::{Response, ResponseBody};

/// The `ETag` header value of a version: a strong entity-tag, `"7.3"`.
pub fn etag(version: Version) -> String {
    format!("\"{}\"", version.tag())
}

/// 200 with the post and its `ETag`.
pub fn with_etag(found: &VersionedPost) -> Result<Response, ApiError> {
    Ok(json(200, &found.post)?.with_additional_header("ETag", etag(found.version)))
}

/// A read of `found`: 304 (no body) when the request's `If-None-Match` matches its tag,
/// else 200 with the post; `ETag` on both.
pub fn read(call: &Call<'_>, found: &VersionedPost) -> Result<Response, ApiError> {
    if header_tags(call, "If-None-Match").is_some_and(|tags| tags.matches_weakly(found.version)) {
        return Ok(Response {
            status_code: 304,
            headers: vec![("ETag".into(), etag(found.version).into())],
            data: ResponseBody::empty(),
            upgrade: None,
        });
    }
    with_etag(found)
}

/// The request's `If-Match` as the store checks it: no header and `*` both admit every
/// existing post; a list admits the versions its strong tags name (weak tags never match
/// under the strong comparison If-Match uses).
pub fn if_match(call: &Call<'_>) -> IfMatch {
    match header_tags(call, "If-Match") {
        None | Some(Tags::Any) => IfMatch::Any,
        Some(Tags::List(tags)) => IfMatch::OneOf(
            tags.iter()
                .filter(|tag| !tag.weak)
                .filter_map(|tag| Version::from_tag(tag.opaque))
                .collect(),
        ),
    }
}

/// A bulk item's `if_match`: exactly one entity-tag, strong or weak (`*` and lists are
/// not entity-tags). `Err` is the 422 message.
pub fn item_if_match(text: &str) -> Result<IfMatch, &'static str> {
    match entity_tag(text) {
        Some((tag, "")) => Ok(IfMatch::OneOf(
            Version::from_tag(tag.opaque)
                .filter(|_| !tag.weak)
                .into_iter()
                .collect(),
        )),
        _ => Err("must be an entity-tag such as \"7.3\", as sent in ETag"),
    }
}

/// A parsed `If-Match` / `If-None-Match` value.
#[derive(Debug, PartialEq, Eq)]
pub enum Tags<'a> {
    /// `*`
    Any,
    /// Entity-tags; none when the value was not a list of them, which matches nothing.
    List(Vec<EntityTag<'a>>),
}

impl Tags<'_> {
    /// If-None-Match's weak comparison: the opaque texts are equal, weak or not.
    fn matches_weakly(&self, version: Version) -> bool {
        match self {
            Tags::Any => true,
            Tags::List(tags) => tags
                .iter()
                .any(|tag| Version::from_tag(tag.opaque) == Some(version)),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct EntityTag<'a> {
    weak: bool,
    opaque: &'a str,
}

/// Optional whitespace (RFC 9110 §5.6.3).
const OWS: [char; 2] = [' ', '\t'];

/// The header's tags, `None` when absent. Several lines of it are one list (RFC 9110
/// §5.3); a malformed line, or `*` beside other lines, makes the value no list of
/// entity-tags at all, which matches nothing.
fn header_tags<'r>(call: &Call<'r>, name: &str) -> Option<Tags<'r>> {
    let lines: Vec<Option<Tags<'r>>> = call
        .request
        .headers()
        .filter(|(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| parse_tags(value))
        .collect();
    if lines.is_empty() {
        return None;
    }
    if let [Some(Tags::Any)] = lines.as_slice() {
        return Some(Tags::Any);
    }
    let mut tags = Vec::new();
    for line in lines {
        match line {
            Some(Tags::List(more)) => tags.extend(more),
            _ => return Some(Tags::List(Vec::new())),
        }
    }
    Some(Tags::List(tags))
}

/// `*` or `#entity-tag`, empty list elements allowed (RFC 9110 §5.6.1); `None` when
/// malformed or without a tag.
pub fn parse_tags(value: &str) -> Option<Tags<'_>> {
    let value = value.trim_matches(OWS);
    if value == "*" {
        return Some(Tags::Any);
    }
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(OWS);
        if rest.is_empty() {
            break;
        }
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
            continue;
        }
        let (tag, after) = entity_tag(rest)?;
        tags.push(tag);
        rest = after.trim_start_matches(OWS);
        if !rest.is_empty() {
            rest = rest.strip_prefix(',')?;
        }
    }
    (!tags.is_empty()).then_some(Tags::List(tags))
}

/// One entity-tag at the start of `text` (`[W/]"…"`, the quoted part of visible ASCII
/// without `"`), and what follows it.
fn entity_tag(text: &str) -> Option<(EntityTag<'_>, &str)> {
    let (weak, rest) = match text.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let quoted = rest.strip_prefix('"')?;
    let end = quoted.find('"')?;
    let opaque = &quoted[..end];
    if !opaque
        .bytes()
        .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b))
    {
        return None;
    }
    Some((EntityTag { weak, opaque }, &quoted[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(weak: bool, opaque: &str) -> EntityTag<'_> {
        EntityTag { weak, opaque }
    }

    #[test]
    fn tag_lists_follow_rfc_9110() {
        assert_eq!(parse_tags("*"), Some(Tags::Any));
        assert_eq!(parse_tags(" * "), Some(Tags::Any));
        assert_eq!(
            parse_tags(r#""7.3""#),
            Some(Tags::List(vec![tag(false, "7.3")]))
        );
        assert_eq!(
            parse_tags(r#", W/"a" ,, "",	"x,y" ,"#),
            Some(Tags::List(vec![
                tag(true, "a"),
                tag(false, ""),
                tag(false, "x,y")
            ]))
        );
        for bad in [
            "",
            ",",
            " , ,",
            "7.3",
            r#""7.3"#,
            r#""a" "b""#,
            r#"*, "a""#,
            r#"w/"a""#,
            r#"W/ "a""#,
            "\"a b\"",
            "\"\\\"\"",
            "**",
        ] {
            assert_eq!(parse_tags(bad), None, "{bad}");
        }
    }

    #[test]
    fn if_match_admits_only_the_strong_tags_of_versions() {
        let v = Version {
            post_id: 7,
            revision: 3,
        };
        assert_eq!(etag(v), "\"7.3\"");
        assert_eq!(item_if_match("\"7.3\""), Ok(IfMatch::OneOf(vec![v])));
        assert_eq!(item_if_match("W/\"7.3\""), Ok(IfMatch::OneOf(vec![])));
        assert_eq!(item_if_match("\"other\""), Ok(IfMatch::OneOf(vec![])));
        for bad in ["*", "7.3", "\"7.3\", \"7.4\"", "\"7.3\" ", ""] {
            assert!(item_if_match(bad).is_err(), "{bad}");
        }
        for not_ours in ["\"07.3\"", "\"7.03\"", "\"+7.3\"", "\"7.3.0\""] {
            assert_eq!(
                item_if_match(not_ours),
                Ok(IfMatch::OneOf(vec![])),
                "{not_ours}"
            );
        }
        let weak = parse_tags("W/\"7.3\"").unwrap();
        assert!(weak.matches_weakly(v));
        assert!(!parse_tags("\"7.4\", \"8.3\"").unwrap().matches_weakly(v));
    }
}
