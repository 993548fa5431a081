//! `POST /api/v1/tokens/subscribe` (operators only): a short-lived client
//! token (JWT) that may subscribe to the listed topics and publish nothing.
//! It lets a tool that holds an operator key, such as the operations
//! console's live tail, open `/sse` or `/ws` like any client, without the
//! key itself ever being accepted on a realtime connection.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};
use crate::routes::{Backend, Operator, json_error};

/// Topics one subscribe token may name.
pub const MAX_TOKEN_TOPICS: usize = 16;
/// Default lifetime of a subscribe token, in seconds.
pub const DEFAULT_TOKEN_TTL: u64 = 300;
/// Longest lifetime of a subscribe token, in seconds.
pub const MAX_TOKEN_TTL: u64 = 3600;

/// Body of `POST /api/v1/tokens/subscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeTokenRequest {
    /// Exact topics the token may subscribe to (1 to 16).
    pub topics: Vec<String>,
    /// Lifetime in seconds (1 to 3600, default 300).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// Answer to `POST /api/v1/tokens/subscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeToken {
    /// The JWT, for `connect` on `/ws` or `token=` on `/sse`.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Its `sub` claim (`operator:<key name>`), as presence shows it.
    pub sub: String,
}

impl SubscribeTokenRequest {
    /// Checks the counts and applies the default lifetime; topics are the
    /// backend's to check.
    pub fn ttl(&self) -> Result<u64, ApiError> {
        if self.topics.is_empty() || self.topics.len() > MAX_TOKEN_TOPICS {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!(
                    "topics must list 1 to {MAX_TOKEN_TOPICS} topics, got {}",
                    self.topics.len()
                ),
            ));
        }
        match self.ttl_secs {
            None => Ok(DEFAULT_TOKEN_TTL),
            Some(n @ 1..=MAX_TOKEN_TTL) => Ok(n),
            Some(n) => Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("ttl_secs must be 1 to {MAX_TOKEN_TTL}, got {n}"),
            )),
        }
    }
}

pub(crate) async fn subscribe_token<B: Backend>(
    State(backend): State<Arc<B>>,
    Operator(who): Operator<B>,
    body: Result<Json<SubscribeTokenRequest>, JsonRejection>,
) -> Result<Json<SubscribeToken>, ApiError> {
    let Json(req) = body.map_err(json_error)?;
    let ttl = req.ttl()?;
    Ok(Json(backend.subscribe_token(&who, &req.topics, ttl).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(n: usize, ttl: Option<u64>) -> SubscribeTokenRequest {
        SubscribeTokenRequest {
            topics: (0..n).map(|i| format!("bookings:{i}")).collect(),
            ttl_secs: ttl,
        }
    }

    #[test]
    fn counts_and_lifetime_are_bounded() {
        assert_eq!(req(1, None).ttl().unwrap(), DEFAULT_TOKEN_TTL);
        assert_eq!(req(16, Some(3600)).ttl().unwrap(), 3600);
        assert!(req(0, None).ttl().is_err());
        assert!(req(17, None).ttl().is_err());
        assert!(req(1, Some(0)).ttl().is_err());
        assert!(req(1, Some(3601)).ttl().is_err());
    }
}
