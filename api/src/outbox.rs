//! `GET /api/v1/outbox` (operators only): this node's view of the
//! PostgreSQL outbox consumer (`docs/outbox.md`): whether one is configured,
//! whether this node is the leader, the lag, what it published and the last
//! error. A node without `[outbox]` answers `{"configured": false}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::routes::{Backend, Operator};

/// Whether a node publishes the outbox table or stands by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxRole {
    /// Holds the table's lock and publishes its rows.
    Leader,
    /// Does not hold the lock (another node does, or PostgreSQL is unreachable).
    Standby,
}

/// A configured consumer's state on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxConsumer {
    /// The outbox table (its dead-letter twin is `<table>_dead`).
    pub table: String,
    /// This node's role.
    pub role: OutboxRole,
    /// The last read of the table succeeded.
    pub up: bool,
    /// Age of the oldest unpublished row in ms (0: none); while PostgreSQL
    /// cannot be read, at least the time since it last could.
    pub lag_ms: u64,
    /// Rows in the leader's last read: the whole backlog when below
    /// `batch_size`, else at least that many; `null` on a standby.
    pub pending_rows: Option<u64>,
    /// The leader's last read was a full batch, so more rows may wait.
    pub pending_rows_at_least: bool,
    /// ms since the table was last read successfully (`null`: never).
    pub last_read_ago_ms: Option<u64>,
    /// Rows this node published (and deleted) since it started.
    pub published: u64,
    /// Rows this node moved to `<table>_dead` since it started.
    pub dead: u64,
    /// Batches this node published since it started.
    pub batches: u64,
    /// Queries this node sent to PostgreSQL since it started.
    pub queries: u64,
    /// The last failure, kept after recovery (`null`: none since start).
    pub last_error: Option<String>,
    /// ms since `last_error` happened.
    pub last_error_ago_ms: Option<u64>,
    /// Rows read per batch (`[outbox] batch_size`).
    pub batch_size: u64,
    /// `[outbox] poll_interval` in ms.
    pub poll_interval_ms: u64,
}

/// Answer to `GET /api/v1/outbox`: `{"configured": false}` without
/// `[outbox]`, else `{"configured": true, ...the consumer's fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxState {
    /// Whether this node has an `[outbox]` section.
    pub configured: bool,
    /// The consumer's state, when configured (its fields sit at top level).
    #[serde(flatten)]
    pub consumer: Option<OutboxConsumer>,
}

pub(crate) async fn outbox<B: Backend>(
    State(backend): State<Arc<B>>,
    Operator(who): Operator<B>,
) -> Result<Json<OutboxState>, ApiError> {
    Ok(Json(backend.outbox(&who).await?))
}

/// The `OutboxState` schema for the OpenAPI document.
pub(crate) fn schema() -> Value {
    let count = || json!({"type": "integer", "minimum": 0});
    let nullable_count = || json!({"type": "integer", "minimum": 0, "nullable": true});
    json!({
        "type": "object", "required": ["configured"],
        "description": "`{\"configured\": false}` on a node without `[outbox]` (and on the standalone REST API, which never consumes); otherwise every field below",
        "example": {"configured": true, "table": "hubbub_outbox", "role": "leader", "up": true,
            "lag_ms": 12, "pending_rows": 3, "pending_rows_at_least": false, "last_read_ago_ms": 140,
            "published": 1200, "dead": 1, "batches": 40, "queries": 310,
            "last_error": null, "last_error_ago_ms": null, "batch_size": 500, "poll_interval_ms": 1000},
        "properties": {
            "configured": {"type": "boolean"},
            "table": {"type": "string"},
            "role": {"type": "string", "enum": ["leader", "standby"],
                "description": "leader: this node holds the table's lock and publishes"},
            "up": {"type": "boolean", "description": "The last read of the table succeeded"},
            "lag_ms": {"type": "integer", "minimum": 0, "description": "Age of the oldest unpublished row (0: none)"},
            "pending_rows": {"type": "integer", "minimum": 0, "nullable": true,
                "description": "Rows in the leader's last read (at most batch_size); null on a standby"},
            "pending_rows_at_least": {"type": "boolean", "description": "The last read was a full batch: more may wait"},
            "last_read_ago_ms": nullable_count(),
            "published": count(), "dead": count(), "batches": count(), "queries": count(),
            "last_error": {"type": "string", "nullable": true},
            "last_error_ago_ms": nullable_count(),
            "batch_size": count(),
            "poll_interval_ms": count()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconfigured_is_one_field_and_configured_is_flat() {
        let off = OutboxState {
            configured: false,
            consumer: None,
        };
        assert_eq!(
            serde_json::to_value(&off).unwrap(),
            json!({"configured": false})
        );
        let on = OutboxState {
            configured: true,
            consumer: Some(OutboxConsumer {
                table: "t".into(),
                role: OutboxRole::Standby,
                up: true,
                lag_ms: 5,
                pending_rows: None,
                pending_rows_at_least: false,
                last_read_ago_ms: Some(1),
                published: 0,
                dead: 0,
                batches: 0,
                queries: 2,
                last_error: None,
                last_error_ago_ms: None,
                batch_size: 500,
                poll_interval_ms: 1000,
            }),
        };
        let v = serde_json::to_value(&on).unwrap();
        assert_eq!(v["role"], "standby");
        assert_eq!(v["configured"], true);
        assert!(v["pending_rows"].is_null());
        assert_eq!(serde_json::from_value::<OutboxState>(v).unwrap(), on);
    }
}
