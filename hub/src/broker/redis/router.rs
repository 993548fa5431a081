//! [`Router`]: the topics this node receives from Redis and what it has seen
//! of each (epoch, highest offset). Everything that arrives on a topic's
//! channel passes through [`Router::deliver`], one message at a time, in
//! channel order, into the local fan-out.
//!
//! The writers of local connections drop any publication at or below the
//! offset they last delivered. That is right within one epoch and wrong
//! across two (a topic whose Redis data was lost restarts at offset 1), and a
//! gap in offsets means this node missed publications (its subscription was
//! down). In both cases the topic's local subscribers are closed with 4201
//! `rebalance`: they reconnect at once, re-subscribe with `since`, and get
//! either exactly what they missed (from history) or `recovered: false`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::{info, warn};

use super::wire::TopicEvent;
use crate::broker::{Epoch, Position};
use crate::fanout::Broadcast;
use crate::protocol::CloseCode;
use crate::registry::Registry;
use crate::topic::Topic;

#[derive(Debug, Default)]
struct Seen {
    epoch: Option<Epoch>,
    last: Option<u64>,
}

/// Watched topics and their delivery state.
#[derive(Debug)]
pub(crate) struct Router {
    registry: Arc<Registry>,
    topics: Mutex<HashMap<Topic, Seen>>,
}

impl Router {
    pub(crate) fn new(registry: Arc<Registry>) -> Router {
        Router {
            registry,
            topics: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Topic, Seen>> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts tracking `topic` (idempotent).
    pub(crate) fn track(&self, topic: &Topic) {
        self.lock().entry(topic.clone()).or_default();
    }

    /// Stops tracking `topic`.
    pub(crate) fn forget(&self, topic: &Topic) {
        self.lock().remove(topic);
    }

    /// Whether `topic` is tracked.
    #[cfg(test)]
    pub(crate) fn is_tracked(&self, topic: &Topic) -> bool {
        self.lock().contains_key(topic)
    }

    /// Every tracked topic.
    pub(crate) fn tracked(&self) -> Vec<Topic> {
        self.lock().keys().cloned().collect()
    }

    /// Closes the local subscribers of `topic` so they recover from history.
    fn rebalance(&self, topic: &Topic, why: &str) {
        let subs = self.registry.subscribers(topic);
        let closed = subs
            .iter()
            .filter(|c| c.close(CloseCode::Rebalance))
            .count();
        info!(topic = %topic, closed, why, "subscribers told to re-subscribe");
    }

    /// A position read after the subscription was confirmed: every later
    /// publication arrives on the channel. A different epoch than seen so far
    /// means the stream restarted.
    pub(crate) fn note(&self, topic: &Topic, position: &Position) {
        let mut topics = self.lock();
        let Some(seen) = topics.get_mut(topic) else {
            return;
        };
        if seen.epoch.as_ref().is_some_and(|e| *e != position.epoch) {
            seen.epoch = Some(position.epoch.clone());
            seen.last = Some(position.offset);
            drop(topics);
            self.rebalance(topic, "epoch changed");
            return;
        }
        seen.epoch = Some(position.epoch.clone());
        seen.last = Some(
            seen.last
                .map_or(position.offset, |l| l.max(position.offset)),
        );
    }

    /// After (re-)subscribing: publications after what this node has seen
    /// were published while it was not subscribed, so they never reached it.
    pub(crate) fn resync(&self, topic: &Topic, position: &Position) {
        let mut topics = self.lock();
        let Some(seen) = topics.get_mut(topic) else {
            return;
        };
        let epoch_changed = seen.epoch.as_ref().is_some_and(|e| *e != position.epoch);
        let missed = seen.last.is_some_and(|l| position.offset > l);
        seen.epoch = Some(position.epoch.clone());
        seen.last = Some(position.offset);
        drop(topics);
        if epoch_changed {
            self.rebalance(topic, "epoch changed while resubscribing");
        } else if missed {
            self.rebalance(topic, "publications missed while resubscribing");
        }
    }

    /// Everything this node receives may have been lost (the pub/sub buffer
    /// overflowed): every tracked topic recovers.
    pub(crate) fn rebalance_all(&self, why: &str) {
        let topics: Vec<Topic> = {
            let mut topics = self.lock();
            for seen in topics.values_mut() {
                *seen = Seen::default();
            }
            topics.keys().cloned().collect()
        };
        for t in topics {
            self.rebalance(&t, why);
        }
    }

    /// Hands one channel message to the local fan-out.
    pub(crate) fn deliver(&self, topic: &Topic, event: TopicEvent) {
        let mut topics = self.lock();
        let Some(seen) = topics.get_mut(topic) else {
            return;
        };
        let publication = match event {
            TopicEvent::Join(m) => {
                self.registry
                    .broadcast(&Broadcast::presence(topic.clone(), m, true));
                return;
            }
            TopicEvent::Leave(m) => {
                self.registry
                    .broadcast(&Broadcast::presence(topic.clone(), m, false));
                return;
            }
            TopicEvent::Pub(epoch, p) => {
                if seen.epoch.as_ref().is_some_and(|e| *e != epoch) {
                    seen.epoch = Some(epoch);
                    seen.last = Some(p.offset);
                    drop(topics);
                    self.rebalance(topic, "epoch changed");
                    return;
                }
                if let Some(last) = seen.last
                    && p.offset > last + 1
                {
                    warn!(topic = %topic, last, got = p.offset, "gap in a topic's channel");
                    seen.last = Some(p.offset);
                    drop(topics);
                    self.rebalance(topic, "gap in offsets");
                    return;
                }
                seen.epoch = Some(epoch);
                seen.last = Some(seen.last.map_or(p.offset, |l| l.max(p.offset)));
                p
            }
        };
        // Under the lock: one topic's deliveries keep channel order.
        self.registry
            .broadcast(&Broadcast::publication(publication));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Publication;
    use crate::connection::handle::CloseReason;
    use crate::connection::outbox;
    use crate::connection::{ConnHandle, ConnId};
    use crate::fanout::Outgoing;
    use crate::metrics::Metrics;

    fn publication(t: &Topic, epoch: &str, offset: u64) -> TopicEvent {
        TopicEvent::Pub(
            Epoch::from_wire(epoch),
            Arc::new(Publication {
                topic: t.clone(),
                offset,
                event: "e".into(),
                data: serde_json::Value::Null,
                ts: 0,
                id: format!("p{offset}"),
            }),
        )
    }

    fn setup() -> (Router, Arc<ConnHandle>, outbox::Receiver, Topic) {
        let registry = Arc::new(Registry::new(Arc::new(Metrics::default())));
        let (tx, rx) = outbox::channel(16);
        let conn = Arc::new(ConnHandle::new(ConnId::next(), "c".into(), "u".into(), tx));
        let t: Topic = "bookings:1".parse().unwrap();
        registry.subscribe(&t, conn.clone());
        let router = Router::new(registry);
        router.track(&t);
        (router, conn, rx, t)
    }

    #[test]
    fn delivers_in_order_and_rebalances_on_a_new_epoch() {
        let (router, conn, mut rx, t) = setup();
        router.note(
            &t,
            &Position {
                epoch: Epoch::from_wire("a"),
                offset: 2,
            },
        );
        router.deliver(&t, publication(&t, "a", 3));
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Broadcast(b)) if b.offset() == Some(3)));
        router.deliver(&t, publication(&t, "b", 1));
        assert!(rx.try_recv().is_err(), "nothing delivered across epochs");
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::Code(CloseCode::Rebalance))
        );
    }

    #[test]
    fn a_gap_or_a_missed_stretch_rebalances() {
        let (router, conn, _rx, t) = setup();
        router.deliver(&t, publication(&t, "a", 1));
        router.deliver(&t, publication(&t, "a", 2));
        assert_eq!(conn.close_reason(), None);
        router.resync(
            &t,
            &Position {
                epoch: Epoch::from_wire("a"),
                offset: 2,
            },
        );
        assert_eq!(conn.close_reason(), None, "nothing missed");
        router.deliver(&t, publication(&t, "a", 4));
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::Code(CloseCode::Rebalance))
        );
    }

    #[test]
    fn untracked_topics_are_ignored() {
        let (router, _conn, mut rx, t) = setup();
        router.forget(&t);
        router.deliver(&t, publication(&t, "a", 1));
        assert!(rx.try_recv().is_err());
        assert!(!router.is_tracked(&t));
    }
}
