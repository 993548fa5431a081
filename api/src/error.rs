//! The contract's error codes ([`ErrorCode`], shared with the hub's
//! WebSocket `error` replies) and [`ApiError`]: what a REST call answers when
//! it fails, as `{"error":{"code","message"}}` with the status that fits.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The contract's error codes: in REST error bodies and in the hub's
/// WebSocket `error` replies alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed request (400).
    BadRequest,
    /// Missing or invalid credentials (401).
    Unauthorized,
    /// Credentials do not allow this (403).
    Forbidden,
    /// Malformed topic (400).
    InvalidTopic,
    /// Namespace not configured (404).
    UnknownNamespace,
    /// Not subscribed (400).
    NotSubscribed,
    /// Already subscribed (409).
    AlreadySubscribed,
    /// A limit was exceeded (400).
    LimitExceeded,
    /// Payload too large (413).
    TooLarge,
    /// Too many requests (429).
    RateLimited,
    /// Not accepted, retry with the same idempotency key (503).
    Unavailable,
    /// Unexpected failure (500).
    Internal,
}

impl ErrorCode {
    /// Every code, in a stable order (used to label metrics).
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::InvalidTopic,
        ErrorCode::UnknownNamespace,
        ErrorCode::NotSubscribed,
        ErrorCode::AlreadySubscribed,
        ErrorCode::LimitExceeded,
        ErrorCode::TooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidTopic => "invalid_topic",
            ErrorCode::UnknownNamespace => "unknown_namespace",
            ErrorCode::NotSubscribed => "not_subscribed",
            ErrorCode::AlreadySubscribed => "already_subscribed",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    /// Index into [`ErrorCode::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The HTTP status for this code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::InvalidTopic
            | ErrorCode::NotSubscribed
            | ErrorCode::LimitExceeded => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::UnknownNamespace => StatusCode::NOT_FOUND,
            ErrorCode::AlreadySubscribed => StatusCode::CONFLICT,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
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
        (self.code.status(), Json(ErrorBody { error: &self })).into_response()
    }
}
