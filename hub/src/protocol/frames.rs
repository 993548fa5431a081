//! Typed frames: [`ClientFrame`] (client → hub commands) and [`ServerFrame`]
//! (replies and pushes), with the field names of the contract.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codes::ErrorCode;

/// The wire forms shared with the REST API (owned by `hubbub-wire`): a
/// position `{epoch, offset}`, a publication as carried in `subscribed` and
/// `history` replies, and a presence member `{client_id, user, info}`.
pub use hubbub_wire::{Member, Position as PositionWire, Publication as PublicationWire};

/// A command sent by a client. Every command carries the client-chosen `id`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Authenticate the connection; must be the first command.
    Connect {
        /// Command id.
        id: u32,
        /// The JWT.
        token: String,
        /// Optional client name/version, informational.
        #[serde(default)]
        client: Option<Value>,
    },
    /// Subscribe to a topic, optionally recovering from a position.
    Subscribe {
        /// Command id.
        id: u32,
        /// The topic.
        topic: String,
        /// Recover every publication after this position.
        #[serde(default)]
        since: Option<PositionWire>,
        /// Reply with the topic's newest publication still in history
        /// (ignored when `since` is sent).
        #[serde(default)]
        latest: bool,
    },
    /// Stop receiving a topic.
    Unsubscribe {
        /// Command id.
        id: u32,
        /// The topic.
        topic: String,
    },
    /// Publish over the socket (namespaces with `client_publish`).
    Publish {
        /// Command id.
        id: u32,
        /// The topic.
        topic: String,
        /// The application event name.
        event: String,
        /// The application data.
        #[serde(default)]
        data: Value,
        /// Publications with a key seen within the idempotency window are not repeated.
        #[serde(default)]
        idempotency_key: Option<String>,
    },
    /// Replace the connection's token before it expires.
    Refresh {
        /// Command id.
        id: u32,
        /// The new JWT.
        token: String,
    },
    /// List the members present on a topic.
    Presence {
        /// Command id.
        id: u32,
        /// The topic.
        topic: String,
    },
    /// Read a topic's history.
    History {
        /// Command id.
        id: u32,
        /// The topic.
        topic: String,
        /// Only publications after this position.
        #[serde(default)]
        since: Option<PositionWire>,
        /// At most this many (max 1000; 0 answers just the position).
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Liveness check; answered with `pong`.
    Ping {
        /// Command id.
        id: u32,
    },
}

impl ClientFrame {
    /// The command's id.
    pub fn id(&self) -> u32 {
        match self {
            ClientFrame::Connect { id, .. }
            | ClientFrame::Subscribe { id, .. }
            | ClientFrame::Unsubscribe { id, .. }
            | ClientFrame::Publish { id, .. }
            | ClientFrame::Refresh { id, .. }
            | ClientFrame::Presence { id, .. }
            | ClientFrame::History { id, .. }
            | ClientFrame::Ping { id } => *id,
        }
    }

    /// The command's type name, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Connect { .. } => "connect",
            ClientFrame::Subscribe { .. } => "subscribe",
            ClientFrame::Unsubscribe { .. } => "unsubscribe",
            ClientFrame::Publish { .. } => "publish",
            ClientFrame::Refresh { .. } => "refresh",
            ClientFrame::Presence { .. } => "presence",
            ClientFrame::History { .. } => "history",
            ClientFrame::Ping { .. } => "ping",
        }
    }
}

/// Alias kept for readers who look for "command".
pub type ClientCommand = ClientFrame;

/// A frame the hub sends: a reply to a command or an unsolicited push.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    /// Reply to `connect`.
    Connected {
        /// Command id.
        id: u32,
        /// The id the hub gave this connection.
        client_id: &'a str,
        /// The node's name.
        node: &'a str,
        /// Seconds until the token expires.
        expires_in: Option<u64>,
        /// Seconds between pings.
        ping_interval: u64,
    },
    /// Reply to `subscribe`.
    Subscribed {
        /// Command id.
        id: u32,
        /// The topic.
        topic: &'a str,
        /// The topic's latest position.
        position: &'a PositionWire,
        /// Present only when `since` was sent: whether every missed publication is included.
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        /// The missed publications, oldest first; with `latest`, the newest one.
        publications: &'a [PublicationWire],
    },
    /// Reply to `unsubscribe`.
    Unsubscribed {
        /// Command id.
        id: u32,
        /// The topic.
        topic: &'a str,
    },
    /// Push: the hub ended a subscription on its own (no `id`): after a
    /// `refresh` to a token whose `subscribe` claim no longer allows the
    /// topic, with `code` `forbidden`. Sent as `type: "unsubscribed"`.
    #[serde(rename = "unsubscribed")]
    Revoked {
        /// The topic.
        topic: &'a str,
        /// Why, as an error code.
        code: ErrorCode,
        /// A human-readable explanation.
        message: &'a str,
    },
    /// Reply to `publish`.
    Published {
        /// Command id.
        id: u32,
        /// Where the publication landed.
        position: &'a PositionWire,
    },
    /// Reply to `refresh`.
    Refreshed {
        /// Command id.
        id: u32,
        /// Seconds until the new token expires.
        expires_in: Option<u64>,
    },
    /// Reply to `presence`.
    Presence {
        /// Command id.
        id: u32,
        /// The members present.
        members: &'a [Member],
    },
    /// Reply to `history`.
    History {
        /// Command id.
        id: u32,
        /// The publications, oldest first.
        publications: &'a [PublicationWire],
        /// The topic's latest position.
        position: &'a PositionWire,
    },
    /// Reply to `ping`.
    Pong {
        /// Command id.
        id: u32,
    },
    /// A command failed.
    Error {
        /// The failed command's id, when it could be read.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u32>,
        /// The contract's error code.
        code: ErrorCode,
        /// A human-readable explanation.
        message: &'a str,
    },
    /// A publication pushed to subscribers.
    Pub {
        /// The topic.
        topic: &'a str,
        /// Its offset.
        offset: u64,
        /// Event name.
        event: &'a str,
        /// Application data.
        data: &'a Value,
        /// Acceptance time, ms since the Unix epoch.
        ts: u64,
        /// Publication id.
        id: &'a str,
    },
    /// A member joined a topic.
    Join {
        /// The topic.
        topic: &'a str,
        /// Who joined.
        member: &'a Member,
    },
    /// A member left a topic.
    Leave {
        /// The topic.
        topic: &'a str,
        /// Who left.
        member: &'a Member,
    },
    /// The hub is about to close the connection with `code`.
    Disconnect {
        /// The close code.
        code: u16,
        /// Its reason string.
        reason: &'a str,
        /// Whether the client should reconnect.
        reconnect: bool,
    },
}
