//! Opening and closing one subscription of one local subscriber, in the
//! order that makes recovery race-free: [`open`] (hold, register, route the
//! topic to this node, read or recover, reply) and [`close`] (unregister, and
//! stop routing the topic here after its last local subscriber).
//!
//! The topic's local lifecycle has two named points, which call the webhook
//! lifecycle hook: [`on_first_local_subscriber`] and [`on_last_local_subscriber`].

use std::sync::Arc;

use crate::broker::{BrokerError, Position, Recovery};
use crate::config::NamespaceConfig;
use crate::connection::handle::{ConnHandle, PushOutcome};
use crate::fanout::{Outgoing, SubscribedReply};
use crate::hub::{Hub, HubError};
use crate::protocol::Codec;
use crate::protocol::frames::{PublicationWire, ServerFrame};
use crate::topic::Topic;

/// How [`open`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// Subscribed; the `subscribed` reply is queued.
    Subscribed,
    /// The broker failed; the registration was undone and an `error` reply queued.
    Failed,
    /// The connection is closing; nothing more will be written.
    Closing,
}

/// Where a new subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start<'a> {
    /// Live publications only.
    Now,
    /// Every publication after this position first (or `recovered: false`).
    Since(&'a Position),
    /// The topic's newest publication still in history first (or none),
    /// read in one snapshot with the reply's position.
    Latest,
}

impl<'a> Start<'a> {
    /// From a `subscribe` command's fields: `latest` is ignored when `since` is sent.
    pub fn new(since: Option<&'a Position>, latest: bool) -> Start<'a> {
        match (since, latest) {
            (Some(p), _) => Start::Since(p),
            (None, true) => Start::Latest,
            (None, false) => Start::Now,
        }
    }
}

/// Subscribes `conn` to `topic` (the caller checked permissions and limits).
///
/// Order matters: hold the topic's broadcasts in the writer, register as a
/// local subscriber, route the topic to this node, and only then read
/// history; the writer releases the held broadcasts after the reply,
/// dropping those at or below the reply's position.
///
pub async fn open(
    hub: &Hub,
    conn: &Arc<ConnHandle>,
    topic: &Topic,
    ns: &NamespaceConfig,
    start: Start<'_>,
    codec: Codec,
    id: u32,
) -> Opened {
    if !queued(hub, conn.send(Outgoing::Begin(topic.clone())).await) {
        return Opened::Closing;
    }
    let catch_up = async {
        if hub.registry.subscribe(topic, conn.clone()) {
            on_first_local_subscriber(hub, topic).await?;
        }
        let options = hub.options(ns);
        let since = match start {
            Start::Since(p) => Some(p),
            Start::Now | Start::Latest => None,
        };
        let recovery = hub.streams().recover(topic, since, &options).await?;
        if start != Start::Latest {
            return Ok(recovery);
        }
        // A second read. The one above is where this subscriber waited for
        // the topic's confirmed route (the node's delivery state moves only
        // with what arrives on that route, never with a read); this one is
        // the snapshot the reply describes.
        let page = hub.streams().history(topic, None, 1, &options).await?;
        Ok(Recovery::new(page.position, Some(page.publications)))
    };
    let recovery = match catch_up.await {
        Ok(r) => r,
        Err(e) => {
            close(hub, conn, topic).await;
            let err = HubError::Broker(e);
            let message = err.client_message();
            hub.metrics.error(err.code());
            let frame = codec.encode(&ServerFrame::Error {
                id: Some(id),
                code: err.code(),
                message: &message,
            });
            let outcome = conn
                .send(Outgoing::End {
                    topic: topic.clone(),
                    frame: Box::new(frame.into()),
                })
                .await;
            queued(hub, outcome);
            return Opened::Failed;
        }
    };
    let publications: Vec<PublicationWire> =
        recovery.publications.iter().map(|p| p.to_wire()).collect();
    let frame = codec.encode(&ServerFrame::Subscribed {
        id,
        topic: topic.as_str(),
        position: &recovery.position.to_wire(),
        recovered: matches!(start, Start::Since(_)).then_some(recovery.recovered),
        publications: &publications,
    });
    let outcome = conn
        .send(Outgoing::Subscribed(Box::new(SubscribedReply {
            topic: topic.clone(),
            position: recovery.position,
            frame: frame.into(),
        })))
        .await;
    if queued(hub, outcome) {
        Opened::Subscribed
    } else {
        Opened::Closing
    }
}

/// Whether a [`ConnHandle::send`] queued its item; counts the slow consumer
/// when it closed the connection instead.
pub fn queued(hub: &Hub, outcome: PushOutcome) -> bool {
    if outcome == PushOutcome::SlowConsumer {
        hub.metrics.slow_consumer();
    }
    outcome == PushOutcome::Queued
}

/// Unregisters `conn` from `topic`, and stops routing the topic here when it
/// was the last local subscriber. Presence is [`super::presence::leave`]'s.
pub async fn close(hub: &Hub, conn: &ConnHandle, topic: &Topic) {
    if hub.registry.unsubscribe(topic, conn.id) {
        on_last_local_subscriber(hub, topic).await;
    }
}

/// `topic` got its first local subscriber on this node (the registry said
/// so): route the topic's publications here, returning once the route is
/// confirmed. A lifecycle point: tells the webhook lifecycle events.
pub async fn on_first_local_subscriber(hub: &Hub, topic: &Topic) -> Result<(), BrokerError> {
    crate::sinks::lifecycle::subscribers_changed(hub, topic);
    hub.control().watch(topic).await
}

/// `topic`'s last local subscriber on this node is gone: stop routing it
/// here (a failure is logged). A lifecycle point: tells the webhook
/// lifecycle events.
pub async fn on_last_local_subscriber(hub: &Hub, topic: &Topic) {
    crate::sinks::lifecycle::subscribers_changed(hub, topic);
    if let Err(e) = hub.control().unwatch(topic).await {
        tracing::warn!(topic = %topic, error = %e, "unwatch failed");
    }
}
