//! The one place where errors become HTTP responses (RFC 9457 problem+json).

use crate::model::ItemError;
use crate::store::{Refusal, StoreError};
use rouille::{Response, ResponseBody};

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub detail: String,
    pub errors: Vec<ItemError>,
    pub headers: Vec<(&'static str, String)>,
    /// An extension member: how many posts a filter matches now (delete by filter's 409
    /// and 413).
    pub count: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
            errors: Vec::new(),
            headers: Vec::new(),
            count: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(400, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(401, detail).with_header("WWW-Authenticate", "Bearer".into())
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(403, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(404, detail)
    }

    pub fn unprocessable(detail: impl Into<String>) -> ApiError {
        ApiError::new(422, detail)
    }

    /// A 422 listing what is wrong with which fields or items.
    pub fn invalid(errors: Vec<ItemError>) -> ApiError {
        let detail = match errors.len() {
            1 => "the request has 1 invalid value".to_string(),
            n => format!("the request has {n} invalid values"),
        };
        ApiError {
            errors,
            ..ApiError::new(422, detail)
        }
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            500,
            "the server hit an unexpected error; nothing was changed by this request",
        )
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> ApiError {
        self.headers.push((name, value));
        self
    }

    pub fn into_response(self) -> Response {
        let body = Problem {
            kind: "about:blank",
            title: status_title(self.status),
            status: self.status,
            detail: &self.detail,
            errors: &self.errors,
            count: self.count,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut headers: Vec<(
            std::borrow::Cow<'static, str>,
            std::borrow::Cow<'static, str>,
        )> = vec![("Content-Type".into(), "application/problem+json".into())];
        headers.extend(self.headers.into_iter().map(|(k, v)| (k.into(), v.into())));
        Response {
            status_code: self.status,
            headers,
            data: ResponseBody::from_data(bytes),
            upgrade: None,
        }
    }
}

#[derive(serde::Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[ItemError]>::is_empty")]
    errors: &'a [ItemError],
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}

pub fn status_title(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// The status a refusal of the store's rules is answered with.
pub fn refusal_status(why: Refusal) -> u16 {
    match why {
        Refusal::Invalid | Refusal::Mismatch => 422,
        Refusal::NotFound => 404,
        Refusal::Forbidden => 403,
        Refusal::Conflict => 409,
        Refusal::BadState => 400,
        Refusal::PreconditionFailed => 412,
        Refusal::TooMany => 413,
        Refusal::UserGone => 401,
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            // The token's user went while the request ran: as if it had gone before.
            StoreError::Refused {
                why: Refusal::UserGone,
                detail,
                ..
            } => ApiError::unauthorized(detail),
            StoreError::Refused {
                why,
                detail,
                errors,
            } => ApiError {
                errors,
                ..ApiError::new(refusal_status(why), detail)
            },
            StoreError::Counted { why, detail, count } => ApiError {
                count: Some(count),
                ..ApiError::new(refusal_status(why), detail)
            },
            StoreError::Busy => {
                log::warn!("the database stayed locked by another process; answered 503");
                ApiError::new(503, "the database is busy; try again shortly")
                    .with_header("Retry-After", "1".into())
            }
            StoreError::Unavailable(detail) => {
                log::error!("database unavailable: {detail}");
                ApiError::new(503, "the database is unavailable; try again shortly")
                    .with_header("Retry-After", "1".into())
            }
            StoreError::OutcomeUnknown(detail) => {
                log::warn!("a commit's outcome is unknown (the cluster lost its leader): {detail}");
                ApiError::new(
                    503,
                    "the cluster lost its leader while committing this request: it may or may not \
                     have been written; retry with the same Idempotency-Key, or read before writing again",
                )
                .with_header("Retry-After", "1".into())
            }
            StoreError::Internal(detail) => {
                log::error!("internal error: {detail}");
                ApiError::internal()
            }
        }
    }
}

/// Our own values always serialize; should one ever not, it is our bug: a 500.
impl From<serde_json::Error> for ApiError {
    fn from(err: serde_json::Error) -> ApiError {
        log::error!("response serialization failed: {err}");
        ApiError::internal()
    }
}

/// Not JSON: 400; JSON of the wrong shape: 422.
impl From<crate::json::JsonError> for ApiError {
    fn from(err: crate::json::JsonError) -> ApiError {
        match err {
            crate::json::JsonError::Malformed(what) => {
                ApiError::bad_request(format!("the body is not valid JSON: {what}"))
            }
            crate::json::JsonError::Invalid(errors) => ApiError::invalid(errors),
        }
    }
}
