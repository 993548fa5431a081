//! The in-memory broker: one node, no external service. Each topic's state
//! (offset, epoch, history ring, idempotency keys, presence) sits behind its
//! own mutex; a publication is stored and handed to the local fan-out under
//! that mutex, so delivery order is offset order even with concurrent
//! publishers, and a subscriber that registered before reading history can
//! never miss a publication (the session de-duplicates by offset).
//!
//! Idle topics (no local subscriber, no presence, nothing retained, idle
//! longer than their history TTL and the idempotency window) are swept; a
//! swept topic comes back with a new epoch, which tells late recoverers
//! `recovered: false`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use dashmap::DashMap;

use super::{
    BrokerError, ControlPlane, Delivery, Epoch, HistoryPage, NodeInfo, Position, PresenceStore,
    Publication, PublishRequest, Recovery, StreamStore, TopicOptions, now_ms,
};
use crate::fanout::Broadcast;
use crate::protocol::CloseCode;
use crate::protocol::frames::Member;
use crate::topic::Topic;

/// How often idle topics are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct TopicState {
    epoch: Epoch,
    offset: u64,
    history: VecDeque<(Instant, Arc<Publication>)>,
    idempotency: HashMap<String, u64>,
    idempotency_order: VecDeque<(Instant, String)>,
    presence: HashMap<String, Member>,
    last_active: Instant,
    keep_for: Duration,
}

impl TopicState {
    fn new(now: Instant) -> TopicState {
        TopicState {
            epoch: Epoch::random(),
            offset: 0,
            history: VecDeque::new(),
            idempotency: HashMap::new(),
            idempotency_order: VecDeque::new(),
            presence: HashMap::new(),
            last_active: now,
            keep_for: Duration::ZERO,
        }
    }

    fn position(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            offset: self.offset,
        }
    }

    /// Drops publications older than the TTL and idempotency keys older than the window.
    fn expire(&mut self, now: Instant, options: &TopicOptions) {
        while let Some((at, _)) = self.history.front() {
            if now.duration_since(*at) > options.history_ttl {
                self.history.pop_front();
            } else {
                break;
            }
        }
        while let Some((at, _)) = self.idempotency_order.front() {
            if now.duration_since(*at) > options.idempotency_window {
                if let Some((_, key)) = self.idempotency_order.pop_front() {
                    self.idempotency.remove(&key);
                }
            } else {
                break;
            }
        }
    }

    /// Publications with offset > `after`, if the history still holds all of them.
    fn since(&self, after: u64) -> Option<Vec<Arc<Publication>>> {
        let first_retained = self
            .history
            .front()
            .map_or(self.offset + 1, |(_, p)| p.offset);
        if first_retained > after + 1 {
            return None;
        }
        Some(
            self.history
                .iter()
                .filter(|(_, p)| p.offset > after)
                .map(|(_, p)| p.clone())
                .collect(),
        )
    }

    /// Idle past both the history TTL and the idempotency window (so every
    /// retained publication and key has expired) with nobody present.
    fn idle_for(&self, now: Instant) -> bool {
        self.presence.is_empty() && now.duration_since(self.last_active) > self.keep_for
    }
}

/// The single-node broker.
#[derive(Debug)]
pub struct MemoryBroker {
    topics: DashMap<Topic, Arc<Mutex<TopicState>>>,
    delivery: Arc<dyn Delivery>,
    /// Webhook sinks, queued under the topic's lock (so in offset order).
    sinks: std::sync::OnceLock<Arc<crate::sinks::memory::MemorySinks>>,
}

fn lock(state: &Mutex<TopicState>) -> MutexGuard<'_, TopicState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryBroker {
    /// A broker delivering to `delivery` (the node's registry), with its
    /// idle-topic sweeper running on the current Tokio runtime for as long as
    /// the broker lives.
    pub fn start(delivery: Arc<dyn Delivery>) -> Arc<MemoryBroker> {
        let broker = Arc::new(MemoryBroker {
            topics: DashMap::new(),
            delivery,
            sinks: std::sync::OnceLock::new(),
        });
        let weak: Weak<MemoryBroker> = Arc::downgrade(&broker);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(broker) = weak.upgrade() else { break };
                broker.sweep(Instant::now());
            }
        });
        broker
    }

    /// Queues every later publication for the webhook sinks that want it
    /// (once; a second call is ignored and returns false).
    pub fn set_sinks(&self, sinks: Arc<crate::sinks::memory::MemorySinks>) -> bool {
        self.sinks.set(sinks).is_ok()
    }

    fn state(&self, topic: &Topic) -> Arc<Mutex<TopicState>> {
        if let Some(s) = self.topics.get(topic) {
            return s.clone();
        }
        self.topics
            .entry(topic.clone())
            .or_insert_with(|| Arc::new(Mutex::new(TopicState::new(Instant::now()))))
            .clone()
    }

    /// Forgets idle topics; returns how many were swept.
    pub fn sweep(&self, now: Instant) -> usize {
        let before = self.topics.len();
        self.topics.retain(|topic, state| {
            let Ok(s) = state.try_lock() else { return true };
            !s.idle_for(now) || self.delivery.has_subscribers(topic)
        });
        before - self.topics.len()
    }
}

#[async_trait]
impl StreamStore for MemoryBroker {
    async fn publish(&self, req: PublishRequest) -> Result<Position, BrokerError> {
        let state = self.state(&req.topic);
        let mut s = lock(&state);
        let now = Instant::now();
        s.expire(now, &req.options);
        if let Some(key) = &req.idempotency_key
            && let Some(offset) = s.idempotency.get(key)
        {
            return Ok(Position {
                epoch: s.epoch.clone(),
                offset: *offset,
            });
        }
        s.offset += 1;
        let publication = Arc::new(Publication {
            topic: req.topic,
            offset: s.offset,
            event: req.event,
            data: req.data,
            ts: now_ms(),
            id: crate::broker::random_uuid().simple().to_string(),
        });
        if req.options.history_size > 0 {
            s.history.push_back((now, publication.clone()));
            while s.history.len() > req.options.history_size {
                s.history.pop_front();
            }
        }
        if let Some(key) = req.idempotency_key {
            let offset = s.offset;
            s.idempotency.insert(key.clone(), offset);
            s.idempotency_order.push_back((now, key));
        }
        s.last_active = now;
        s.keep_for = req.options.history_ttl.max(req.options.idempotency_window);
        let position = s.position();
        // Delivered under the topic's lock: fan-out order is offset order.
        if let Some(sinks) = self.sinks.get() {
            sinks.publication(&s.epoch, &publication);
        }
        self.delivery.deliver(&Broadcast::publication(publication));
        Ok(position)
    }

    async fn recover(
        &self,
        topic: &Topic,
        since: Option<&Position>,
        options: &TopicOptions,
    ) -> Result<Recovery, BrokerError> {
        let state = self.state(topic);
        let mut s = lock(&state);
        s.expire(Instant::now(), options);
        let position = s.position();
        let Some(since) = since else {
            return Ok(Recovery::new(position, Some(Vec::new())));
        };
        let missed = if since.epoch != s.epoch || since.offset > s.offset {
            None
        } else {
            s.since(since.offset)
        };
        Ok(Recovery::new(position, missed))
    }

    async fn history(
        &self,
        topic: &Topic,
        since: Option<&Position>,
        limit: usize,
        options: &TopicOptions,
    ) -> Result<HistoryPage, BrokerError> {
        let state = self.state(topic);
        let mut s = lock(&state);
        s.expire(Instant::now(), options);
        let publications = match since {
            Some(since) if since.epoch == s.epoch => s
                .history
                .iter()
                .filter(|(_, p)| p.offset > since.offset)
                .take(limit)
                .map(|(_, p)| p.clone())
                .collect(),
            _ => {
                let skip = s.history.len().saturating_sub(limit);
                s.history
                    .iter()
                    .skip(skip)
                    .map(|(_, p)| p.clone())
                    .collect()
            }
        };
        Ok(HistoryPage {
            position: s.position(),
            publications,
        })
    }
}

#[async_trait]
impl PresenceStore for MemoryBroker {
    async fn join(&self, topic: &Topic, member: Member, announce: bool) -> Result<(), BrokerError> {
        let state = self.state(topic);
        let mut s = lock(&state);
        s.presence.insert(member.client_id.clone(), member.clone());
        if announce {
            self.delivery
                .deliver(&Broadcast::presence(topic.clone(), member, true));
        }
        Ok(())
    }

    async fn leave(
        &self,
        topic: &Topic,
        member: Member,
        announce: bool,
    ) -> Result<(), BrokerError> {
        let state = self.state(topic);
        let mut s = lock(&state);
        s.last_active = Instant::now();
        if s.presence.remove(&member.client_id).is_some() && announce {
            self.delivery
                .deliver(&Broadcast::presence(topic.clone(), member, false));
        }
        Ok(())
    }

    async fn presence(&self, topic: &Topic) -> Result<Vec<Member>, BrokerError> {
        let Some(state) = self.topics.get(topic).map(|s| s.clone()) else {
            return Ok(Vec::new());
        };
        let s = lock(&state);
        let mut members: Vec<Member> = s.presence.values().cloned().collect();
        members.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(members)
    }
}

#[async_trait]
impl ControlPlane for MemoryBroker {
    async fn watch(&self, _topic: &Topic) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn unwatch(&self, _topic: &Topic) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn disconnect_user(&self, user: &str, code: CloseCode) -> Result<usize, BrokerError> {
        Ok(self.delivery.disconnect_user(user, code))
    }

    async fn nodes(&self, local: NodeInfo) -> Result<Vec<NodeInfo>, BrokerError> {
        Ok(vec![local])
    }

    async fn check(&self) -> Result<(), BrokerError> {
        Ok(())
    }
}

#[cfg(test)]
mod proptests {
    //! Offsets under concurrent publishers, idempotency, delivery order, and
    //! recovery from any position, for any history size.

    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::broker::testing::RecordingDelivery;
    use proptest::prelude::*;

    fn options(history_size: usize) -> TopicOptions {
        TopicOptions {
            history_size,
            history_ttl: Duration::from_secs(3600),
            idempotency_window: Duration::from_secs(600),
        }
    }

    /// What [`run`] saw.
    struct Outcome {
        /// Each publish's idempotency key and the offset it was answered.
        published: Vec<(Option<u8>, u64)>,
        /// Offsets a subscriber registered beforehand received, in order.
        delivered: Vec<u64>,
        /// `recover` from (offset, same epoch) after all publishes.
        recoveries: Vec<(u64, bool, Recovery)>,
        /// The topic's epoch.
        epoch: Epoch,
    }

    /// Publishes every publisher's list concurrently (`Some(k)`: idempotency
    /// key `k`), then recovers from each of `since`.
    fn run(publishers: &[Vec<Option<u8>>], history_size: usize, since: &[(u64, bool)]) -> Outcome {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let delivery = Arc::new(RecordingDelivery::default());
            let broker = MemoryBroker::start(delivery.clone());
            let topic: Topic = "bookings:p".parse().unwrap();
            let (_inbox, _) = delivery.subscribe(&topic, "u");

            let tasks: Vec<_> = publishers
                .iter()
                .cloned()
                .map(|list| {
                    let broker = broker.clone();
                    let topic = topic.clone();
                    tokio::spawn(async move {
                        let mut got = Vec::new();
                        for key in list {
                            let position = broker
                                .publish(PublishRequest {
                                    topic: topic.clone(),
                                    event: "e".into(),
                                    data: serde_json::Value::Null,
                                    idempotency_key: key.map(|k| format!("k{k}")),
                                    options: options(history_size),
                                })
                                .await
                                .unwrap();
                            got.push((key, position));
                            tokio::task::yield_now().await;
                        }
                        got
                    })
                })
                .collect();
            let mut published = Vec::new();
            let mut epochs = BTreeSet::new();
            for t in tasks {
                for (key, position) in t.await.unwrap() {
                    epochs.insert(position.epoch.as_str().to_owned());
                    published.push((key, position.offset));
                }
            }
            let epoch = broker
                .recover(&topic, None, &options(history_size))
                .await
                .unwrap()
                .position
                .epoch;
            assert!(epochs.iter().all(|e| e == epoch.as_str()), "one epoch");

            let delivered = delivery.offsets(&topic);

            let mut recoveries = Vec::new();
            for &(offset, same_epoch) in since {
                let position = Position {
                    epoch: if same_epoch {
                        epoch.clone()
                    } else {
                        Epoch::from_wire("another-epoch")
                    },
                    offset,
                };
                let r = broker
                    .recover(&topic, Some(&position), &options(history_size))
                    .await
                    .unwrap();
                recoveries.push((offset, same_epoch, r));
            }
            Outcome {
                published,
                delivered,
                recoveries,
                epoch,
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn concurrent_publishes_get_contiguous_offsets_and_recovery_is_exact(
            publishers in proptest::collection::vec(
                proptest::collection::vec(proptest::option::weighted(0.3, 0u8..4), 0..20),
                1..5,
            ),
            history_size in 0usize..30,
            since in proptest::collection::vec((0u64..90, proptest::bool::weighted(0.9)), 1..8),
        ) {
            let Outcome { published, delivered, recoveries, epoch } =
                run(&publishers, history_size, &since);

            // Offsets: each new publication its own, 1..=last with no gap; a
            // repeated idempotency key answers its first publication's offset.
            let mut by_key: BTreeMap<u8, BTreeSet<u64>> = BTreeMap::new();
            let mut unkeyed = Vec::new();
            for (key, offset) in &published {
                match key {
                    Some(k) => { by_key.entry(*k).or_default().insert(*offset); }
                    None => unkeyed.push(*offset),
                }
            }
            prop_assert!(by_key.values().all(|o| o.len() == 1), "one offset per key: {:?}", by_key);
            let mut all: Vec<u64> = unkeyed.clone();
            all.extend(by_key.values().flatten());
            all.sort_unstable();
            let last = u64::try_from(all.len()).unwrap();
            prop_assert_eq!(&all, &(1..=last).collect::<Vec<_>>(), "contiguous and distinct");

            // Fan-out: the subscriber got every publication once, in offset order.
            prop_assert_eq!(&delivered, &(1..=last).collect::<Vec<_>>());

            // Recovery: exactly the retained publications after `since`, or
            // `recovered: false` when some of them are gone or the position
            // is not this stream's.
            let retained_from = last - last.min(u64::try_from(history_size).unwrap()) + 1;
            for (offset, same_epoch, r) in recoveries {
                prop_assert_eq!(&r.position, &Position { epoch: epoch.clone(), offset: last });
                let recoverable = same_epoch && offset <= last && offset + 1 >= retained_from;
                prop_assert_eq!(r.recovered, recoverable, "since {} (same epoch {}), last {}, history {}", offset, same_epoch, last, history_size);
                let got: Vec<u64> = r.publications.iter().map(|p| p.offset).collect();
                if recoverable {
                    prop_assert_eq!(got, (offset + 1..=last).collect::<Vec<_>>());
                } else {
                    prop_assert!(got.is_empty());
                }
            }
        }
    }
}
