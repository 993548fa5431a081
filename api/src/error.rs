//! [`ApiError`]: what a REST call answers when it fails, as
//! `{"error":{"code","message"}}` with the HTTP [`status`] that fits its
//! [`ErrorCode`] (the contract's codes, owned by `hubbub-wire` and shared with
//! the hub's WebSocket `error` replies).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The contract's error codes, owned by `hubbub-wire` (shared with the hub's
/// protocol) and re-exported here.
pub use hubbub_wire::ErrorCode;

/// The HTTP status a REST call answers with when it fails with `code`.
pub fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest
        | ErrorCode::InvalidTopic
        | ErrorCode::NotSubscribed
        | ErrorCode::LimitExceeded => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::UnknownNamespace | ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::AlreadySubscribed => StatusCode::CONFLICT,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A failed REST call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    /// The code.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

/// The error body `{"error": {...}}`.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a ApiError,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (status(self.code), Json(ErrorBody { error: &self })).into_response()
    }
}
