//! # hubbub-wire
//!
//! The wire types that Hubbub's REST API (`hubbub-api`) and the hub's
//! WebSocket/SSE protocol (`hubbub::protocol`) share, field for field as the
//! contract names them: a [`Position`], a stored [`Publication`], a presence
//! [`Member`] and the contract's [`ErrorCode`]s. Serde only: no HTTP, no
//! router, no runtime, so the protocol does not depend on the REST crate.
//! What a code means as an HTTP status is the REST crate's business
//! (`hubbub_api::error::status`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `{epoch, offset}`: where a publication landed, or a topic's latest position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Opaque epoch of the topic's history.
    pub epoch: String,
    /// Offset within the epoch.
    pub offset: u64,
}

/// A stored publication, as carried in REST history answers and in the
/// protocol's `subscribed` and `history` replies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    /// Topic.
    pub topic: String,
    /// Offset.
    pub offset: u64,
    /// Event name.
    pub event: String,
    /// Data.
    pub data: Value,
    /// Acceptance time, ms since the Unix epoch.
    pub ts: u64,
    /// Publication id.
    pub id: String,
}

/// A presence member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The connection's client id.
    pub client_id: String,
    /// The user (token `sub`).
    pub user: String,
    /// The token's `info` claim.
    pub info: Value,
}

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
    /// A named operator resource (a webhook sink) does not exist (404; REST
    /// only, an addition to the v1 codes).
    NotFound,
}

impl ErrorCode {
    /// Every code, in a stable order (used to label metrics).
    pub const ALL: [ErrorCode; 13] = [
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
        ErrorCode::NotFound,
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
            ErrorCode::NotFound => "not_found",
        }
    }

    /// Index into [`ErrorCode::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_serialize_as_their_wire_string() {
        for c in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(c).ok(),
                Some(Value::String(c.as_str().to_owned()))
            );
            assert_eq!(ErrorCode::ALL[c.index()], c);
        }
    }

    #[test]
    fn shared_types_keep_the_contract_field_names() {
        let p = Position {
            epoch: "e".into(),
            offset: 3,
        };
        assert_eq!(
            serde_json::to_value(&p).ok(),
            Some(serde_json::json!({"epoch": "e", "offset": 3}))
        );
        let m = Member {
            client_id: "c".into(),
            user: "u".into(),
            info: Value::Null,
        };
        assert_eq!(
            serde_json::to_value(&m).ok(),
            Some(serde_json::json!({"client_id": "c", "user": "u", "info": null}))
        );
    }
}
