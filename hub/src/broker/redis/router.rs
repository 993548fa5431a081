//! [`Router`]: the topics this node receives from Redis, whether each one's
//! route (its channel subscription) is confirmed, and what the node has of
//! each stream. Everything that arrives on a topic's channel passes through
//! [`Router::deliver`], one message at a time, in channel order, into the
//! local fan-out.
//!
//! ## What the node has of a topic
//! - `base`: the topic's offset read right after its channel subscription was
//!   confirmed (at the first subscribe, and again after every
//!   re-subscription): every later publication arrives on the channel.
//! - `arrived`: the highest offset that arrived on the channel.
//!
//! What the node has is `max(base, arrived)`. Reads made for subscribers
//! (recovery, history) never move it: a read can show offsets that are still
//! on their way, or that never reached this node because its pub/sub
//! connection was down, and only the channel and a confirmed subscription can
//! tell the two apart.
//!
//! ## When local subscribers are told to re-subscribe (4201 `rebalance`)
//! The writers of local connections drop any publication at or below the
//! offset they last delivered, which is right within one epoch only. So:
//! - another epoch arrives (the stream restarted: Redis lost the topic);
//! - a publication skips offsets past what the node has (it missed some);
//! - after a re-subscription, the topic's offset is past what the node has;
//! - the offset went backwards within an epoch (Redis restored an older
//!   snapshot, or a lagging replica took over): the channel repeats an offset
//!   it already carried, or a resync reads an offset below what the node has.
//!   The caller then also moves the topic to a new epoch (see
//!   [`Verdict::Rollback`]), so positions in the lost stretch can never be
//!   recovered from the reused offsets.
//!
//! The subscribers reconnect at once, re-subscribe with `since`, and get
//! exactly what they missed from history or `recovered: false`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use tracing::{info, warn};

use super::wire::TopicEvent;
use crate::broker::{Delivery, Epoch, Position};
use crate::fanout::Broadcast;
use crate::topic::Topic;

/// Whether a topic's channel subscription is confirmed.
#[derive(Debug, Default)]
enum Route {
    /// Not confirmed, nobody confirming: the next caller confirms.
    #[default]
    Idle,
    /// Confirmation `id` is in flight; every other caller waits on `done`
    /// (true: confirmed; the sender dropped: it failed, try again).
    Pending {
        id: u64,
        done: watch::Receiver<bool>,
    },
    /// Subscribed and `base` read.
    Confirmed,
}

#[derive(Debug, Default)]
struct Seen {
    /// The stream's epoch, once known (a `base` of 0 is a topic with no
    /// stream yet, whose epoch is whatever its first publication brings).
    epoch: Option<Epoch>,
    base: Option<u64>,
    arrived: Option<u64>,
    route: Route,
}

impl Seen {
    fn have(&self) -> Option<u64> {
        match (self.base, self.arrived) {
            (Some(b), Some(a)) => Some(b.max(a)),
            (b, a) => b.or(a),
        }
    }

    /// Forgets the stream (kept: the route).
    fn restart(&mut self, epoch: Option<Epoch>, arrived: Option<u64>) {
        self.epoch = epoch;
        self.base = None;
        self.arrived = arrived;
    }
}

/// What the caller of [`Router::begin`] does next.
#[derive(Debug)]
pub(crate) enum Step {
    /// The route is confirmed.
    Ready,
    /// Another caller is confirming: wait for it.
    Wait(watch::Receiver<bool>),
    /// Confirm it (subscribe, read the base), then call [`Router::confirmed`]
    /// or [`Router::abandon`] with `id`; `done` tells the waiters.
    Lead { id: u64, done: watch::Sender<bool> },
}

/// What a message or a resync showed, beyond what the router handled itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing more to do.
    Fine,
    /// The offset went backwards in `epoch`: move the topic to a new epoch.
    Rollback(Epoch),
}

/// Watched topics and their delivery state.
#[derive(Debug)]
pub(crate) struct Router {
    delivery: Arc<dyn Delivery>,
    topics: Mutex<HashMap<Topic, Seen>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Router {
    pub(crate) fn new(delivery: Arc<dyn Delivery>) -> Router {
        Router {
            delivery,
            topics: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Topic, Seen>> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tracks `topic` (idempotent) and says what the caller does to have its
    /// route confirmed: one confirmation per topic is in flight at a time,
    /// and every concurrent caller awaits that one.
    pub(crate) fn begin(&self, topic: &Topic) -> Step {
        let mut topics = self.lock();
        if let Some(Seen {
            route: Route::Confirmed,
            ..
        }) = topics.get(topic)
        {
            return Step::Ready;
        }
        let seen = topics.entry(topic.clone()).or_default();
        match &seen.route {
            Route::Confirmed => Step::Ready,
            Route::Pending { done, .. } => Step::Wait(done.clone()),
            Route::Idle => {
                let id = self
                    .next_id
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let (tx, rx) = watch::channel(false);
                seen.route = Route::Pending { id, done: rx };
                Step::Lead { id, done: tx }
            }
        }
    }

    /// Confirmation `id` succeeded: the channel is subscribed, and `base` was
    /// read after that. Returns false when the topic is no longer tracked
    /// (its last subscriber left meanwhile).
    pub(crate) fn confirmed(&self, topic: &Topic, id: u64, base: &Position) -> bool {
        let mut topics = self.lock();
        let Some(seen) = topics.get_mut(topic) else {
            return false;
        };
        if matches!(seen.route, Route::Pending { id: pending, .. } if pending == id) {
            seen.route = Route::Confirmed;
        }
        if seen.have().is_none() {
            seen.base = Some(base.offset);
            seen.epoch = (base.offset > 0).then(|| base.epoch.clone());
        }
        true
    }

    /// Confirmation `id` failed or was abandoned: the next caller tries again.
    pub(crate) fn abandon(&self, topic: &Topic, id: u64) {
        if let Some(seen) = self.lock().get_mut(topic)
            && matches!(seen.route, Route::Pending { id: pending, .. } if pending == id)
        {
            seen.route = Route::Idle;
        }
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
        let closed = self.delivery.rebalance(topic);
        info!(topic = %topic, closed, why, "subscribers told to re-subscribe");
    }

    /// What the node has of `topic` now (taken before a resync's read).
    pub(crate) fn have(&self, topic: &Topic) -> Option<u64> {
        self.lock().get(topic).and_then(Seen::have)
    }

    /// After a re-subscription was confirmed, `position` was read: anything
    /// between what the node has and `position` was published while it was
    /// not subscribed, so it never reached the node. `before` is what the
    /// node had when the read was sent: a position below it means the offset
    /// went backwards (what arrived while the read was under way says
    /// nothing about that).
    pub(crate) fn resync(
        &self,
        topic: &Topic,
        position: &Position,
        before: Option<u64>,
    ) -> Verdict {
        let mut topics = self.lock();
        let Some(seen) = topics.get_mut(topic) else {
            return Verdict::Fine;
        };
        let have = seen.have();
        let epoch = (position.offset > 0).then(|| position.epoch.clone());
        let why = match (&seen.epoch, have) {
            // The stream is gone (or was replaced) since the node saw it.
            (Some(e), _) if epoch.as_ref() != Some(e) => Some("epoch changed while resubscribing"),
            (None, Some(h)) if h > 0 && position.offset == 0 => {
                Some("stream lost while resubscribing")
            }
            _ if before.is_some_and(|b| position.offset < b) => {
                seen.restart(epoch, None);
                seen.base = Some(position.offset);
                let epoch = position.epoch.clone();
                drop(topics);
                warn!(topic = %topic, had = before, now = position.offset, "offset went backwards");
                self.rebalance(topic, "offset went backwards");
                return Verdict::Rollback(epoch);
            }
            (_, Some(h)) if position.offset > h => Some("publications missed while resubscribing"),
            _ => None,
        };
        match why {
            Some(_) => seen.restart(epoch, None),
            None if seen.epoch.is_none() => seen.epoch = epoch,
            None => {}
        }
        seen.base = Some(position.offset);
        drop(topics);
        if let Some(why) = why {
            self.rebalance(topic, why);
        }
        Verdict::Fine
    }

    /// Everything this node receives may have been lost (the pub/sub buffer
    /// overflowed): every tracked topic recovers.
    pub(crate) fn rebalance_all(&self, why: &str) {
        let topics: Vec<Topic> = {
            let mut topics = self.lock();
            for seen in topics.values_mut() {
                seen.restart(None, None);
            }
            topics.keys().cloned().collect()
        };
        for t in topics {
            self.rebalance(&t, why);
        }
    }

    /// Hands one channel message to the local fan-out.
    pub(crate) fn deliver(&self, topic: &Topic, event: TopicEvent) -> Verdict {
        let mut topics = self.lock();
        let Some(seen) = topics.get_mut(topic) else {
            return Verdict::Fine;
        };
        let publication = match event {
            TopicEvent::Join(m) => {
                self.delivery
                    .deliver(&Broadcast::presence(topic.clone(), m, true));
                return Verdict::Fine;
            }
            TopicEvent::Leave(m) => {
                self.delivery
                    .deliver(&Broadcast::presence(topic.clone(), m, false));
                return Verdict::Fine;
            }
            TopicEvent::Pub(epoch, p) => {
                if seen.epoch.as_ref().is_some_and(|e| *e != epoch) {
                    seen.restart(Some(epoch), Some(p.offset));
                    drop(topics);
                    self.rebalance(topic, "epoch changed");
                    return Verdict::Fine;
                }
                if let Some(a) = seen.arrived
                    && p.offset <= a
                {
                    // The channel carries each offset once, in order.
                    warn!(topic = %topic, arrived = a, got = p.offset, "offset went backwards");
                    seen.restart(Some(epoch.clone()), Some(p.offset));
                    drop(topics);
                    self.rebalance(topic, "offset went backwards");
                    return Verdict::Rollback(epoch);
                }
                if let Some(have) = seen.have()
                    && p.offset > have + 1
                {
                    warn!(topic = %topic, have, got = p.offset, "gap in a topic's channel");
                    seen.restart(Some(epoch), Some(p.offset));
                    drop(topics);
                    self.rebalance(topic, "gap in offsets");
                    return Verdict::Fine;
                }
                seen.epoch = Some(epoch);
                seen.arrived = Some(p.offset);
                p
            }
        };
        // Under the lock: one topic's deliveries keep channel order.
        self.delivery.deliver(&Broadcast::publication(publication));
        Verdict::Fine
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Publication;
    use crate::broker::testing::RecordingDelivery;

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

    fn at(epoch: &str, offset: u64) -> Position {
        Position {
            epoch: Epoch::from_wire(epoch),
            offset,
        }
    }

    /// A router with `t` confirmed at `base`.
    fn setup(base: Position) -> (Router, Arc<RecordingDelivery>, Topic) {
        let delivery = Arc::new(RecordingDelivery::default());
        let t: Topic = "bookings:1".parse().unwrap();
        let router = Router::new(delivery.clone());
        let Step::Lead { id, .. } = router.begin(&t) else {
            panic!("the first caller leads");
        };
        assert!(router.confirmed(&t, id, &base));
        assert!(matches!(router.begin(&t), Step::Ready));
        (router, delivery, t)
    }

    #[test]
    fn one_confirmation_at_a_time_and_a_failed_one_is_retried() {
        let delivery = Arc::new(RecordingDelivery::default());
        let router = Router::new(delivery);
        let t: Topic = "bookings:1".parse().unwrap();
        let Step::Lead { id, done } = router.begin(&t) else {
            panic!("the first caller leads");
        };
        let Step::Wait(waiter) = router.begin(&t) else {
            panic!("the second caller waits");
        };
        router.abandon(&t, id);
        drop(done);
        assert!(waiter.has_changed().is_err(), "waiters see the failure");
        let Step::Lead { id, done } = router.begin(&t) else {
            panic!("a failed confirmation is not left as routed");
        };
        let Step::Wait(mut waiter) = router.begin(&t) else {
            panic!("waits again");
        };
        assert!(router.confirmed(&t, id, &at("a", 0)));
        done.send_replace(true);
        assert!(*waiter.borrow_and_update());
        assert!(matches!(router.begin(&t), Step::Ready));
    }

    #[test]
    fn delivers_in_order_and_rebalances_on_a_new_epoch() {
        let (router, delivery, t) = setup(at("a", 2));
        assert_eq!(router.deliver(&t, publication(&t, "a", 3)), Verdict::Fine);
        assert_eq!(delivery.offsets(&t), vec![3]);
        router.deliver(&t, publication(&t, "b", 1));
        assert_eq!(delivery.offsets(&t), vec![3], "nothing across epochs");
        assert_eq!(delivery.rebalanced(&t), 1);
    }

    #[test]
    fn in_flight_publications_at_or_below_the_base_are_fine() {
        let (router, delivery, t) = setup(at("a", 5));
        for o in [4, 5, 6] {
            router.deliver(&t, publication(&t, "a", o));
        }
        assert_eq!(delivery.offsets(&t), vec![4, 5, 6]);
        assert_eq!(delivery.rebalanced(&t), 0);
    }

    #[test]
    fn a_gap_or_a_missed_stretch_rebalances() {
        let (router, delivery, t) = setup(at("a", 0));
        router.deliver(&t, publication(&t, "a", 1));
        router.deliver(&t, publication(&t, "a", 2));
        assert_eq!(delivery.rebalanced(&t), 0);
        router.resync(&t, &at("a", 2), router.have(&t));
        assert_eq!(delivery.rebalanced(&t), 0, "nothing missed");
        router.deliver(&t, publication(&t, "a", 4));
        assert_eq!(delivery.rebalanced(&t), 1);
    }

    /// Reads never move what the node has: a resync after offsets that only
    /// a read saw finds them missing.
    #[test]
    fn a_resync_past_what_arrived_rebalances() {
        let (router, delivery, t) = setup(at("a", 0));
        router.deliver(&t, publication(&t, "a", 1));
        router.resync(&t, &at("a", 7), router.have(&t));
        assert_eq!(delivery.rebalanced(&t), 1);
        router.deliver(&t, publication(&t, "a", 8));
        assert_eq!(delivery.rebalanced(&t), 1, "contiguous after the resync");
        assert_eq!(delivery.offsets(&t), vec![1, 8]);
    }

    #[test]
    fn an_offset_going_backwards_is_a_rollback() {
        let (router, delivery, t) = setup(at("a", 0));
        for o in 1..=5 {
            router.deliver(&t, publication(&t, "a", o));
        }
        assert_eq!(
            router.deliver(&t, publication(&t, "a", 3)),
            Verdict::Rollback(Epoch::from_wire("a"))
        );
        assert_eq!(delivery.rebalanced(&t), 1);
        assert_eq!(
            router.resync(&t, &at("a", 2), router.have(&t)),
            Verdict::Rollback(Epoch::from_wire("a"))
        );
        assert_eq!(delivery.rebalanced(&t), 2);
    }

    /// A publication that arrives while a resync's read is under way is
    /// newer than the read, not a sign that the offset went backwards.
    #[test]
    fn an_arrival_during_a_resync_read_is_not_a_rollback() {
        let (router, delivery, t) = setup(at("a", 0));
        router.deliver(&t, publication(&t, "a", 1));
        let before = router.have(&t);
        router.deliver(&t, publication(&t, "a", 2));
        assert_eq!(router.resync(&t, &at("a", 1), before), Verdict::Fine);
        assert_eq!(delivery.rebalanced(&t), 0);
        router.deliver(&t, publication(&t, "a", 3));
        assert_eq!(delivery.offsets(&t), vec![1, 2, 3]);
    }

    #[test]
    fn a_lost_stream_rebalances_on_resync() {
        let (router, delivery, t) = setup(at("a", 4));
        router.resync(&t, &at("z", 0), router.have(&t));
        assert_eq!(delivery.rebalanced(&t), 1);
        router.deliver(&t, publication(&t, "b", 1));
        assert_eq!(delivery.rebalanced(&t), 1, "a new stream from 1 is fine");
        assert_eq!(delivery.offsets(&t), vec![1]);
    }

    #[test]
    fn untracked_topics_are_ignored() {
        let (router, delivery, t) = setup(at("a", 0));
        router.forget(&t);
        router.deliver(&t, publication(&t, "a", 1));
        assert!(delivery.offsets(&t).is_empty());
        assert!(!router.is_tracked(&t));
    }
}
