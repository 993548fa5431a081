//! The broker: where publications get their offsets, where history, idempotency
//! keys and presence live, and how publications reach the nodes that serve a
//! topic. Each caller takes the narrow trait it needs: [`StreamStore`]
//! (offsets, history, idempotency, publishing), [`PresenceStore`] and
//! [`ControlPlane`] (routing topics to nodes, every node's info, readiness);
//! [`Broker`] is the three together, as the hub holds them. They are
//! implemented by [`memory::MemoryBroker`] (one node, the default) and by the
//! Redis engine. An engine never sees a socket: it hands
//! what reaches this node to a [`Delivery`] (the node's registry of local
//! subscribers implements it), so the engines depend on this narrow
//! interface only.

#[cfg(test)]
pub(crate) mod contract;
pub mod memory;
pub mod redis;
#[cfg(test)]
pub(crate) mod testing;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::Value;

use crate::fanout::Broadcast;
use crate::protocol::CloseCode;
use crate::protocol::frames::{Member, PositionWire, PublicationWire};
use crate::topic::Topic;

/// The identity of one lifetime of a topic's stream. It changes only when the
/// topic's history was lost, so `(epoch, offset)` never means two things.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Epoch(Arc<str>);

impl Epoch {
    /// A new random epoch.
    pub fn random() -> Epoch {
        Epoch(format!("{:016x}", rand::random::<u64>()).into())
    }

    /// Wraps an epoch read from the wire or from storage.
    pub fn from_wire(s: &str) -> Epoch {
        Epoch(s.into())
    }

    /// The epoch string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A place in a topic's stream: the offset of a publication within an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The stream's lifetime.
    pub epoch: Epoch,
    /// Offset of the latest publication (0: none yet).
    pub offset: u64,
}

impl Position {
    /// The wire form.
    pub fn to_wire(&self) -> PositionWire {
        PositionWire {
            epoch: self.epoch.as_str().to_owned(),
            offset: self.offset,
        }
    }

    /// From the wire form.
    pub fn from_wire(p: &PositionWire) -> Position {
        Position {
            epoch: Epoch::from_wire(&p.epoch),
            offset: p.offset,
        }
    }
}

/// An accepted publication.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// Its topic.
    pub topic: Topic,
    /// Its offset in the topic's stream.
    pub offset: u64,
    /// Application event name.
    pub event: String,
    /// Application data.
    pub data: Value,
    /// Acceptance time in ms since the Unix epoch.
    pub ts: u64,
    /// Unique id.
    pub id: String,
}

impl Publication {
    /// The wire form used in `subscribed` and `history` replies.
    pub fn to_wire(&self) -> PublicationWire {
        PublicationWire {
            topic: self.topic.as_str().to_owned(),
            offset: self.offset,
            event: self.event.clone(),
            data: self.data.clone(),
            ts: self.ts,
            id: self.id.clone(),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A random (version 4) UUID from the thread's CSPRNG (`rand`, seeded from
/// the OS once), not from a `getrandom` system call per id as
/// `Uuid::new_v4` does: publications and connections each take one.
pub(crate) fn random_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// Per-topic storage options, from the topic's namespace and the limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicOptions {
    /// Publications kept (0: none).
    pub history_size: usize,
    /// How long a publication is kept.
    pub history_ttl: Duration,
    /// How long an idempotency key is remembered.
    pub idempotency_window: Duration,
}

/// A publication to accept.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    /// Where.
    pub topic: Topic,
    /// Event name.
    pub event: String,
    /// Data.
    pub data: Value,
    /// De-duplication key within the idempotency window.
    pub idempotency_key: Option<String>,
    /// Storage options of the topic's namespace.
    pub options: TopicOptions,
}

/// The answer to a subscription's catch-up read.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// The topic's latest position when read.
    pub position: Position,
    /// Publications after the requested position, oldest first (empty when
    /// none was requested or when they could not all be recovered).
    pub publications: Vec<Arc<Publication>>,
    /// Whether every publication after the requested position is included.
    pub recovered: bool,
}

impl Recovery {
    /// `Some(missed)`: every publication after the requested position (empty
    /// when nothing was missed or none was requested); `None`: they cannot all
    /// be recovered, so none are sent and the client must reload.
    pub fn new(position: Position, missed: Option<Vec<Arc<Publication>>>) -> Recovery {
        let recovered = missed.is_some();
        Recovery {
            position,
            publications: missed.unwrap_or_default(),
            recovered,
        }
    }
}

/// A page of history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// The topic's latest position.
    pub position: Position,
    /// Publications, oldest first.
    pub publications: Vec<Arc<Publication>>,
}

/// One hub node as reported by `GET /api/v1/info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Open connections.
    pub connections: usize,
    /// Subscriptions.
    pub subscriptions: usize,
    /// Topics with subscribers.
    pub topics: usize,
    /// Seconds since the node started.
    pub uptime_secs: u64,
}

/// Broker failures.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The backing store cannot be reached; nothing was accepted.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// Stored data is not what this hub wrote.
    #[error("corrupt broker data: {0}")]
    Corrupt(String),
    /// The engine holds all it may (the memory engine's caps); nothing was
    /// stored. The contract's `limit_exceeded`.
    #[error(transparent)]
    Full(#[from] StoreFull),
}

/// Which of the memory engine's caps a publication would exceed. Nothing is
/// dropped to make room: the publication is refused, and room comes back as
/// history expires (`history_ttl`) and idle topics are swept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreFull {
    /// A new topic beyond `memory.max_topics`.
    #[error(
        "this node's memory engine holds its maximum of {max} topics (memory.max_topics); \
         nothing was stored. Topics are freed once their history and idempotency keys have \
         expired; raise memory.max_topics or run on Redis"
    )]
    Topics {
        /// The cap.
        max: usize,
    },
    /// History beyond `memory.max_history_bytes`.
    #[error(
        "this node's memory engine holds its maximum of {max} bytes of history \
         (memory.max_history_bytes); nothing was stored. Room comes back as history expires \
         (history_ttl); raise memory.max_history_bytes or run on Redis"
    )]
    HistoryBytes {
        /// The cap.
        max: usize,
    },
}

/// What an engine that keeps streams in this process holds, against its caps
/// (the memory engine; Redis keeps them in Redis), for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreUsage {
    /// Topics with a stream.
    pub topics: usize,
    /// `memory.max_topics`.
    pub max_topics: usize,
    /// Bytes of history and idempotency keys.
    pub history_bytes: usize,
    /// `memory.max_history_bytes`.
    pub max_history_bytes: usize,
}

/// This node's local counts, for node listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalCounts {
    /// Open connections.
    pub connections: usize,
    /// (connection, topic) subscriptions.
    pub subscriptions: usize,
    /// Topics with local subscribers.
    pub topics: usize,
}

/// What an engine may do to this node's local subscribers, and all it may
/// know about them. Every method is synchronous and never blocks: an engine
/// calls [`Delivery::deliver`] under its per-topic ordering lock.
pub trait Delivery: Send + Sync + fmt::Debug + 'static {
    /// Queues `broadcast` to every local subscriber of its topic (the same
    /// encoded bytes for all); returns how many got it.
    fn deliver(&self, broadcast: &Arc<Broadcast>) -> usize;

    /// Tells every local subscriber of `topic` to re-subscribe with `since`
    /// (close 4201 `rebalance`): this node cannot vouch for what they got.
    /// Returns how many were told.
    fn rebalance(&self, topic: &Topic) -> usize;

    /// Whether `topic` has a local subscriber.
    fn has_subscribers(&self, topic: &Topic) -> bool;

    /// Closes every local connection of `user` with `code`; returns how many.
    fn disconnect_user(&self, user: &str, code: CloseCode) -> usize;

    /// This node's counts.
    fn counts(&self) -> LocalCounts;
}

/// A topic's stream: offsets, history, idempotency keys, and publishing.
/// What a subscription's catch-up read and every publisher need.
#[async_trait]
pub trait StreamStore: Send + Sync + fmt::Debug + 'static {
    /// Assigns the next offset, stores the publication in history and delivers
    /// it to every node serving the topic, atomically. With an idempotency key
    /// seen within the window, returns the first publication's position and
    /// delivers nothing.
    async fn publish(&self, req: PublishRequest) -> Result<Position, BrokerError>;

    /// Publishes several, in order; each succeeds or fails on its own.
    /// Engines with a network round trip per publication pipeline them.
    async fn publish_batch(&self, reqs: Vec<PublishRequest>) -> Vec<Result<Position, BrokerError>> {
        let mut out = Vec::with_capacity(reqs.len());
        for req in reqs {
            out.push(self.publish(req).await);
        }
        out
    }

    /// The catch-up read of a new subscription: the latest position and, when
    /// `since` is given, every publication after it (or `recovered: false`).
    /// Waits for the topic's confirmed route when it has local subscribers
    /// (see [`ControlPlane::watch`]).
    async fn recover(
        &self,
        topic: &Topic,
        since: Option<&Position>,
        options: &TopicOptions,
    ) -> Result<Recovery, BrokerError>;

    /// History: publications after `since` (same epoch) or else the newest
    /// ones, at most `limit`, oldest first.
    async fn history(
        &self,
        topic: &Topic,
        since: Option<&Position>,
        limit: usize,
        options: &TopicOptions,
    ) -> Result<HistoryPage, BrokerError>;

    /// What this engine holds in this process against its caps; `None` for
    /// engines that keep streams elsewhere.
    fn usage(&self) -> Option<StoreUsage> {
        None
    }
}

/// Who is present on a topic, on every node.
#[async_trait]
pub trait PresenceStore: Send + Sync + fmt::Debug + 'static {
    /// Adds a presence member; with `announce`, subscribers get a `join`.
    async fn join(&self, topic: &Topic, member: Member, announce: bool) -> Result<(), BrokerError>;

    /// Removes a presence member; with `announce`, subscribers get a `leave`.
    async fn leave(&self, topic: &Topic, member: Member, announce: bool)
    -> Result<(), BrokerError>;

    /// The members present on `topic`.
    async fn presence(&self, topic: &Topic) -> Result<Vec<Member>, BrokerError>;
}

/// The cluster's control plane: routing topics to the nodes that serve them,
/// reaching every node, and the nodes' health.
#[async_trait]
pub trait ControlPlane: Send + Sync + fmt::Debug + 'static {
    /// Makes this node receive `topic`'s publications, and returns once it
    /// does. Called when the topic gets its first local subscriber, before
    /// that subscriber reads history; [`StreamStore::recover`] of any local
    /// subscriber also waits for the topic's route, so a subscriber that
    /// registered while the first one's `watch` is in flight cannot read a
    /// position that the node's route does not cover.
    async fn watch(&self, topic: &Topic) -> Result<(), BrokerError>;

    /// Stops receiving `topic` (its last local subscriber left).
    async fn unwatch(&self, topic: &Topic) -> Result<(), BrokerError>;

    /// Closes every connection of `user` on every node with `code`; returns how many.
    async fn disconnect_user(&self, user: &str, code: CloseCode) -> Result<usize, BrokerError>;

    /// Every live node; `local` describes this one.
    async fn nodes(&self, local: NodeInfo) -> Result<Vec<NodeInfo>, BrokerError>;

    /// Readiness: whether the broker's publish and delivery path works now.
    async fn check(&self) -> Result<(), BrokerError>;
}

/// A whole engine: [`StreamStore`], [`PresenceStore`] and [`ControlPlane`]
/// in one object, as the hub holds it. Implemented for every type that
/// implements the three; callers take the narrowest of them they need.
pub trait Broker: StreamStore + PresenceStore + ControlPlane {}

impl<T: StreamStore + PresenceStore + ControlPlane> Broker for T {}
