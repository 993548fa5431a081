//! [`Tracker`]: the per-connection subscription state that orders what a
//! connection writes. Between [`Outgoing::Begin`] and [`Outgoing::Subscribed`]
//! (while the session reads history) a topic's broadcasts are held; after the
//! reply they are released, and from then on a publication at or below the
//! last written offset is a duplicate and is dropped. Used by the WebSocket
//! writer and by SSE streams.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::Message;

use crate::broker::Position;
use crate::fanout::{Broadcast, Outgoing, SubscribedReply};
use crate::topic::Topic;

enum SubState {
    Holding(Vec<Arc<Broadcast>>),
    Live(Position),
}

/// What to write, in order.
#[derive(Debug)]
pub enum Emit {
    /// A reply or push encoded for this connection.
    Frame(Message),
    /// A `subscribed` reply establishing `position` for `topic`.
    Subscribed {
        /// The topic.
        topic: Topic,
        /// Its position after the reply.
        position: Position,
        /// The reply.
        frame: Message,
    },
    /// A shared broadcast (a `pub` carries a new offset for its topic).
    Broadcast(Arc<Broadcast>),
}

/// Too many broadcasts held for a topic whose subscription is being opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// Subscription state of one connection.
pub struct Tracker {
    subs: HashMap<Topic, SubState>,
    max_held: usize,
}

impl Tracker {
    /// A tracker holding at most `max_held` broadcasts per opening topic.
    pub fn new(max_held: usize) -> Tracker {
        Tracker {
            subs: HashMap::new(),
            max_held,
        }
    }

    /// The current position of every live subscription.
    pub fn positions(&self) -> impl Iterator<Item = (&Topic, &Position)> {
        self.subs.iter().filter_map(|(t, s)| match s {
            SubState::Live(p) => Some((t, p)),
            SubState::Holding(_) => None,
        })
    }

    /// Applies one outbox item, appending what must be written to `out`.
    pub fn take(&mut self, item: Outgoing, out: &mut Vec<Emit>) -> Result<(), Overflow> {
        match item {
            Outgoing::Frame(msg) => out.push(Emit::Frame(*msg)),
            Outgoing::Broadcast(b) => self.broadcast(b, out)?,
            Outgoing::Begin(topic) => {
                self.subs.insert(topic, SubState::Holding(Vec::new()));
            }
            Outgoing::Subscribed(reply) => {
                let SubscribedReply {
                    topic,
                    position,
                    frame,
                } = *reply;
                out.push(Emit::Subscribed {
                    topic: topic.clone(),
                    position: position.clone(),
                    frame,
                });
                let held = match self.subs.insert(topic, SubState::Live(position)) {
                    Some(SubState::Holding(held)) => held,
                    _ => Vec::new(),
                };
                for b in held {
                    self.broadcast(b, out)?;
                }
            }
            Outgoing::End { topic, frame } => {
                self.subs.remove(&topic);
                out.push(Emit::Frame(*frame));
            }
        }
        Ok(())
    }

    fn broadcast(&mut self, b: Arc<Broadcast>, out: &mut Vec<Emit>) -> Result<(), Overflow> {
        match self.subs.get_mut(b.topic()) {
            // Not (or no longer) subscribed: a broadcast queued before the unsubscribe.
            None => {}
            Some(SubState::Holding(held)) => {
                if held.len() >= self.max_held {
                    return Err(Overflow);
                }
                held.push(b);
            }
            Some(SubState::Live(position)) => {
                if let Some(offset) = b.offset() {
                    if offset <= position.offset {
                        return Ok(());
                    }
                    position.offset = offset;
                }
                out.push(Emit::Broadcast(b));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod proptests {
    //! Offset contiguity and recovery merging, for any interleaving: a
    //! subscription opened as `subscription::open` does it (hold, register at
    //! some offset, read history at a later one, reply) with live delivery
    //! that may lag behind the reply, repeat old publications, and interleave
    //! with other frames and other topics' broadcasts.

    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::broker::{Epoch, Publication};
    use proptest::prelude::*;

    fn broadcast(topic: &Topic, offset: u64) -> Arc<Broadcast> {
        Broadcast::publication(Arc::new(Publication {
            topic: topic.clone(),
            offset,
            event: "e".into(),
            data: serde_json::Value::Null,
            ts: 0,
            id: offset.to_string(),
        }))
    }

    /// One opening subscription and what its connection's outbox sees.
    #[derive(Debug, Clone)]
    struct Scenario {
        /// The topic's last offset once everything is delivered.
        last: u64,
        /// Offset when the connection registered: live broadcasts start after it.
        registered_at: u64,
        /// Offset the history read saw (the reply's position), >= registered_at.
        read_at: u64,
        /// The client's `since` offset (same epoch, within history), <= read_at.
        since: Option<u64>,
        /// How many live broadcasts reach the outbox before the reply.
        before_reply: usize,
        /// Redeliveries: (index of an earlier broadcast, how much later).
        repeats: Vec<(usize, usize)>,
        /// Noise: (position, is a broadcast of another topic rather than a frame).
        noise: Vec<(usize, bool)>,
    }

    fn scenario() -> impl Strategy<Value = Scenario> {
        (0u64..48)
            .prop_flat_map(|last| (Just(last), 0..=last))
            .prop_flat_map(|(last, registered_at)| {
                (Just(last), Just(registered_at), registered_at..=last)
            })
            .prop_flat_map(|(last, registered_at, read_at)| {
                let live = usize::try_from(last - registered_at).unwrap();
                (
                    Just(last),
                    Just(registered_at),
                    Just(read_at),
                    proptest::option::of(0..=read_at),
                    0..=live,
                    proptest::collection::vec((any::<usize>(), any::<usize>()), 0..6),
                    proptest::collection::vec((any::<usize>(), any::<bool>()), 0..6),
                )
            })
            .prop_map(
                |(last, registered_at, read_at, since, before_reply, repeats, noise)| Scenario {
                    last,
                    registered_at,
                    read_at,
                    since,
                    before_reply,
                    repeats,
                    noise,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn emitted_offsets_increase_and_cover_exactly_since_to_last(s in scenario()) {
            let topic: Topic = "bookings:1".parse().unwrap();
            let other: Topic = "bookings:2".parse().unwrap();
            let epoch = Epoch::from_wire("e");

            // Live delivery: every publication after registration, in order,
            // split around the reply, plus redeliveries of earlier ones.
            let mut live: Vec<u64> = (s.registered_at + 1..=s.last).collect();
            let mut reply_at = s.before_reply;
            for &(orig, later) in &s.repeats {
                if live.is_empty() {
                    break;
                }
                let i = orig % live.len();
                let at = i + 1 + later % (live.len() - i);
                live.insert(at, live[i]);
                if at <= reply_at {
                    reply_at += 1;
                }
            }
            let mut items: Vec<Outgoing> = vec![Outgoing::Begin(topic.clone())];
            for (i, &offset) in live.iter().enumerate() {
                if i == reply_at {
                    items.push(Outgoing::Subscribed(Box::new(SubscribedReply {
                        topic: topic.clone(),
                        position: Position { epoch: epoch.clone(), offset: s.read_at },
                        frame: Message::text("subscribed"),
                    })));
                }
                items.push(Outgoing::Broadcast(broadcast(&topic, offset)));
            }
            if reply_at >= live.len() {
                items.push(Outgoing::Subscribed(Box::new(SubscribedReply {
                    topic: topic.clone(),
                    position: Position { epoch: epoch.clone(), offset: s.read_at },
                    frame: Message::text("subscribed"),
                })));
            }
            for &(at, is_broadcast) in &s.noise {
                let at = 1 + at % items.len();
                let item = if is_broadcast {
                    Outgoing::Broadcast(broadcast(&other, 1))
                } else {
                    Outgoing::Frame(Box::new(Message::text("reply")))
                };
                items.insert(at, item);
            }

            let mut tracker = Tracker::new(1024);
            let mut out = Vec::new();
            for item in items {
                tracker.take(item, &mut out).unwrap();
            }

            // What the client sees: the reply's recovered publications
            // (since, read_at], then every broadcast written after it.
            let mut seen: Vec<u64> = Vec::new();
            let mut replied = false;
            for emit in &out {
                match emit {
                    Emit::Subscribed { position, .. } => {
                        prop_assert!(!replied, "one reply");
                        replied = true;
                        prop_assert_eq!(position.offset, s.read_at);
                        if let Some(since) = s.since {
                            seen.extend(since + 1..=s.read_at);
                        }
                    }
                    Emit::Broadcast(b) => {
                        prop_assert!(replied, "no publication before the reply");
                        prop_assert_eq!(b.topic(), &topic, "only subscribed topics");
                        seen.push(b.offset().unwrap());
                    }
                    Emit::Frame(_) => {}
                }
            }
            prop_assert!(replied);
            prop_assert!(seen.windows(2).all(|w| w[0] < w[1]), "strictly increasing: {:?}", seen);
            let from = s.since.unwrap_or(s.read_at);
            let expected: Vec<u64> = (from + 1..=s.last).collect();
            prop_assert_eq!(seen, expected);
            let positions: Vec<_> = tracker.positions().collect();
            prop_assert_eq!(positions.len(), 1);
            prop_assert_eq!(positions[0].1.offset, s.last.max(s.read_at));
        }
    }
}
