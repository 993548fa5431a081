//! `GET /api/v1/topics?prefix=P&limit=N` (operators only): the topics that
//! have subscribers now, each with its subscriber count and latest position,
//! in topic order. The operations console lists them; so can any tool.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};
use crate::routes::{Backend, Operator};
use crate::types::Position;

/// The `limit` when none is given.
pub const DEFAULT_TOPICS_LIMIT: usize = 100;
/// The largest `limit` accepted.
pub const MAX_TOPICS_LIMIT: usize = 1000;

/// The longest `prefix` (a topic is at most 255 bytes).
pub const MAX_PREFIX_CHARS: usize = 255;

/// Query of `GET /api/v1/topics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsQuery {
    /// Only topics whose name starts with this (e.g. `bookings:`).
    pub prefix: Option<String>,
    /// At most this many (1 to 1000, default 100).
    pub limit: Option<u64>,
}

/// One topic with subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSummary {
    /// The topic.
    pub topic: String,
    /// Subscriptions to it now.
    pub subscribers: usize,
    /// Its latest position.
    pub position: Position,
}

/// Answer to `GET /api/v1/topics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topics {
    /// Topics with subscribers, in topic order, at most `limit`.
    pub topics: Vec<TopicSummary>,
    /// Whether more topics matched than `limit` allowed.
    pub truncated: bool,
}

/// Checks `limit` (1 to [`MAX_TOPICS_LIMIT`]) and applies the default.
pub fn topics_limit(limit: Option<u64>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_TOPICS_LIMIT),
        Some(n @ 1..=1000) => Ok(n as usize),
        Some(n) => Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("limit must be 1 to {MAX_TOPICS_LIMIT}, got {n}"),
        )),
    }
}

pub(crate) async fn topics<B: Backend>(
    State(backend): State<Arc<B>>,
    Operator(who): Operator<B>,
    query: Result<Query<TopicsQuery>, QueryRejection>,
) -> Result<Json<Topics>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let limit = topics_limit(q.limit)?;
    let prefix = q.prefix.unwrap_or_default();
    if prefix.chars().count() > MAX_PREFIX_CHARS {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("prefix is longer than a topic ({MAX_PREFIX_CHARS} characters)"),
        ));
    }
    Ok(Json(backend.topics(&who, &prefix, limit).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(topics_limit(None).unwrap(), DEFAULT_TOPICS_LIMIT);
        assert_eq!(topics_limit(Some(1)).unwrap(), 1);
        assert_eq!(topics_limit(Some(1000)).unwrap(), 1000);
        assert!(topics_limit(Some(0)).is_err());
        assert!(topics_limit(Some(1001)).is_err());
    }
}
