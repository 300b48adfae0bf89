//! `/posts/bulk` and `/posts/bulk/restore`.

use super::problem::ApiError;
use super::App;
use rouille::{Request, Response};

pub fn create(_app: &App, _request: &Request) -> Result<Response, ApiError> {
    Err(ApiError::new(501, "bulk create is not implemented yet"))
}
pub fn update(_app: &App, _request: &Request) -> Result<Response, ApiError> {
    Err(ApiError::new(501, "bulk update is not implemented yet"))
}
pub fn delete(_app: &App, _request: &Request) -> Result<Response, ApiError> {
    Err(ApiError::new(501, "bulk delete is not implemented yet"))
}
pub fn restore(_app: &App, _request: &Request) -> Result<Response, ApiError> {
    Err(ApiError::new(501, "bulk restore is not implemented yet"))
}
