//! What travels through a connection's outbox, and [`Broadcast`]: a push meant
//! for every subscriber of a topic, encoded at most once per sub-protocol and
//! shared by reference (the same `Bytes`) with every subscriber.

use std::sync::{Arc, OnceLock};

use axum::extract::ws::Message;

use crate::broker::Publication;
use crate::protocol::frames::{Member, ServerFrame};
use crate::protocol::{Codec, Encoded};
use crate::topic::Topic;

/// The content of a broadcast.
#[derive(Debug)]
pub enum BroadcastKind {
    /// A publication (`pub` push).
    Pub(Arc<Publication>),
    /// A member joined (`join` push).
    Join(Member),
    /// A member left (`leave` push).
    Leave(Member),
}

/// A push to all subscribers of one topic. The frame is encoded lazily, once
/// per sub-protocol, into [`Encoded`] bytes that every subscriber's writer
/// (WebSocket or SSE) shares by reference.
#[derive(Debug)]
pub struct Broadcast {
    topic: Topic,
    kind: BroadcastKind,
    json: OnceLock<Encoded>,
    msgpack: OnceLock<Encoded>,
}

impl Broadcast {
    /// A broadcast of a publication.
    pub fn publication(publication: Arc<Publication>) -> Arc<Broadcast> {
        Arc::new(Broadcast {
            topic: publication.topic.clone(),
            kind: BroadcastKind::Pub(publication),
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
        })
    }

    /// A `join` or `leave` broadcast.
    pub fn presence(topic: Topic, member: Member, joined: bool) -> Arc<Broadcast> {
        let kind = if joined {
            BroadcastKind::Join(member)
        } else {
            BroadcastKind::Leave(member)
        };
        Arc::new(Broadcast {
            topic,
            kind,
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
        })
    }

    /// The topic it is for.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// The publication offset, for `pub` broadcasts.
    pub fn offset(&self) -> Option<u64> {
        match &self.kind {
            BroadcastKind::Pub(p) => Some(p.offset),
            _ => None,
        }
    }

    /// What it carries.
    pub fn kind(&self) -> &BroadcastKind {
        &self.kind
    }

    /// Bytes counted against each subscriber's outbox budget: the size of its
    /// JSON frame (encoded once, on first use, and kept for JSON writers).
    pub fn cost(&self) -> usize {
        // By reference: no clone of the shared bytes per subscriber.
        self.encoded(Codec::Json).len()
    }

    /// The frame encoded for `codec`: encoded on first use, shared after.
    pub fn encoded(&self, codec: Codec) -> &Encoded {
        let cell = match codec {
            Codec::Json => &self.json,
            Codec::MsgPack => &self.msgpack,
        };
        cell.get_or_init(|| codec.encode(&self.frame()))
    }

    /// The WebSocket message for `codec`, sharing the encoded bytes.
    pub fn message(&self, codec: Codec) -> Message {
        self.encoded(codec).clone().into()
    }

    fn frame(&self) -> ServerFrame<'_> {
        let topic = self.topic.as_str();
        match &self.kind {
            BroadcastKind::Pub(p) => ServerFrame::Pub {
                topic,
                offset: p.offset,
                event: &p.event,
                data: &p.data,
                ts: p.ts,
                id: &p.id,
            },
            BroadcastKind::Join(member) => ServerFrame::Join { topic, member },
            BroadcastKind::Leave(member) => ServerFrame::Leave { topic, member },
        }
    }
}

/// One item in a connection's bounded outbox, written in order by its writer.
///
/// Kept small (at most 32 bytes): every outbox holds one inline (the head
/// slot, see `connection::outbox`), and a queue of them is moved item by item
/// on every delivery. Per-connection frames are boxed; the fan-out hot path
/// (`Broadcast`) is a single `Arc`.
#[derive(Debug)]
pub enum Outgoing {
    /// A reply or push already encoded for this connection.
    Frame(Box<Message>),
    /// A broadcast shared with other subscribers.
    Broadcast(Arc<Broadcast>),
    /// A subscription to `topic` starts: hold its broadcasts until [`Outgoing::Subscribed`].
    Begin(Topic),
    /// The `subscribed` reply: write it, then release held broadcasts newer than its position.
    Subscribed(Box<SubscribedReply>),
    /// The subscription to `topic` ended (or failed): write `frame`, drop held broadcasts.
    End {
        /// The topic.
        topic: Topic,
        /// The encoded reply.
        frame: Box<Message>,
    },
}

impl Outgoing {
    /// Bytes this item counts against the connection's outbox budget.
    /// Deterministic: the outbox computes it when queuing and when taking.
    pub fn cost(&self) -> usize {
        match self {
            Outgoing::Frame(m) => message_len(m),
            Outgoing::Broadcast(b) => b.cost(),
            Outgoing::Begin(_) => 0,
            Outgoing::Subscribed(r) => message_len(&r.frame),
            Outgoing::End { frame, .. } => message_len(frame),
        }
    }
}

/// The payload size of a WebSocket message.
pub fn message_len(m: &Message) -> usize {
    match m {
        Message::Text(t) => t.len(),
        Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
        Message::Close(c) => c.as_ref().map_or(0, |c| c.reason.len() + 2),
    }
}

/// The content of [`Outgoing::Subscribed`].
#[derive(Debug)]
pub struct SubscribedReply {
    /// The topic.
    pub topic: Topic,
    /// The position the reply carries; broadcasts at or below it are duplicates.
    pub position: crate::broker::Position,
    /// The encoded reply.
    pub frame: Message,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Publication;
    use serde_json::json;

    #[test]
    fn an_outbox_item_stays_small() {
        assert!(
            std::mem::size_of::<Outgoing>() <= 32,
            "{}",
            std::mem::size_of::<Outgoing>()
        );
    }

    #[test]
    fn a_broadcast_is_encoded_once_per_protocol_and_shared() {
        let p = Arc::new(Publication {
            topic: "bookings:1".parse().unwrap(),
            offset: 3,
            event: "booking.created".into(),
            data: json!({"id": 1}),
            ts: 5,
            id: "p1".into(),
        });
        let b = Broadcast::publication(p);
        let (Message::Text(a), Message::Text(c)) = (b.message(Codec::Json), b.message(Codec::Json))
        else {
            panic!("json is text");
        };
        assert_eq!(a.as_ptr(), c.as_ptr(), "same bytes, not a re-encode");
        assert_eq!(
            b.encoded(Codec::Json).as_bytes().as_ptr(),
            a.as_ptr(),
            "the SSE text and the WebSocket message are the same bytes"
        );
        assert_eq!(b.cost(), a.len());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&a).unwrap(),
            json!({"type":"pub","topic":"bookings:1","offset":3,"event":"booking.created","data":{"id":1},"ts":5,"id":"p1"})
        );
        let Message::Binary(m) = b.message(Codec::MsgPack) else {
            panic!("msgpack is binary")
        };
        let v: serde_json::Value = rmp_serde::from_slice(&m).unwrap();
        assert_eq!(v["offset"], 3);
        assert_eq!(b.offset(), Some(3));
    }
}
