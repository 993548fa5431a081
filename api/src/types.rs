//! Request and response bodies of the REST API, field for field as the
//! contract names them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The wire types shared with the hub's protocol, owned by `hubbub-wire` and
/// re-exported here under their REST paths.
pub use hubbub_wire::{Member, Position, Publication};

/// Body of `POST /api/v1/publish` and of each batch item.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Topic to publish on.
    pub topic: String,
    /// Application event name, e.g. `booking.created`.
    pub event: String,
    /// Any JSON value.
    #[serde(default)]
    pub data: Value,
    /// Retries with the same key within the idempotency window are not repeated.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Answer to a publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// Where it landed.
    pub position: Position,
}

/// Body of `POST /api/v1/batch`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The publications, each validated on its own.
    pub publications: Vec<Value>,
}

/// One result of a batch: `{position}` or `{error}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum BatchResult {
    /// Accepted.
    Ok {
        /// Where it landed.
        position: Position,
    },
    /// Refused.
    Err {
        /// Why.
        error: crate::ApiError,
    },
}

/// Answer to a batch, results in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchResponse {
    /// One per publication.
    pub results: Vec<BatchResult>,
}

/// Answer to a history read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Oldest first.
    pub publications: Vec<Publication>,
    /// The topic's latest position.
    pub position: Position,
}

/// Query of a history read: `since=EPOCH:OFFSET&limit=N`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// `EPOCH:OFFSET`.
    pub since: Option<String>,
    /// At most this many (max 1000).
    pub limit: Option<u64>,
}

/// Answer to a presence read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    /// Members present.
    pub members: Vec<Member>,
}

/// Body of `POST /api/v1/disconnect`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DisconnectRequest {
    /// Whose connections to close.
    pub user: String,
    /// `true` (default): close with 4201 so clients reconnect at once;
    /// `false`: close with 4003 `forbidden` so they stay away.
    #[serde(default)]
    pub reconnect: Option<bool>,
}

/// Answer to a disconnect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disconnected {
    /// Connections closed across all nodes.
    pub disconnected: usize,
}

/// One node in `GET /api/v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Open connections.
    pub connections: usize,
    /// Subscriptions.
    pub subscriptions: usize,
    /// Topics with subscribers on the node.
    pub topics: usize,
    /// Seconds since the node started.
    pub uptime_secs: u64,
}

/// Answer to `GET /api/v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// Live nodes.
    pub nodes: Vec<NodeInfo>,
}
