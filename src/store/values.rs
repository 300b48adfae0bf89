//! How the domain's checked values go into and come out of SQLite. Reading parses again:
//! a stored value that breaks its rule (a file edited by hand) is an error, never a value
//! of the type that silently is not valid.

use super::sql::{FromSql, ToSql, ToSqlValue, ValueRef};
use crate::clock::Timestamp;
use crate::model::{CommentBody, PostBody, Slug, Title, TokenName, Username};
use std::borrow::Cow;

macro_rules! stored_as_text {
    ($($name:ty => $parse:expr),* $(,)?) => {$(
        impl ToSql for $name {
            fn to_sql(&self) -> ToSqlValue<'_> {
                ToSqlValue::Text(Cow::Borrowed(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn from_sql(value: ValueRef<'_>) -> Result<Self, String> {
                let text = value.as_str()?;
                let parse: fn(&str) -> Result<$name, String> = $parse;
                parse(text).map_err(|why| format!("stored {} '{text}' {why}", stringify!($name)))
            }
        }
    )*};
}

stored_as_text! {
    Title => |t| Title::parse(t),
    Slug => |t| Slug::parse(t),
    PostBody => |t| PostBody::parse(t),
    CommentBody => |t| CommentBody::parse(t),
    Username => |t| Username::parse(t),
    TokenName => |t| TokenName::parse(t),
    Timestamp => |t| Timestamp::parse(t).ok_or_else(|| "is not a timestamp".to_string()),
}
