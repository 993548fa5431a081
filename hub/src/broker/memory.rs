//! The in-memory broker: one node, no external service. Each topic's stream
//! (offset, epoch, history ring, idempotency keys) sits behind its own
//! mutex; a publication is stored and handed to the local fan-out under that
//! mutex, so delivery order is offset order even with concurrent publishers,
//! and a subscriber that registered before reading history can never miss a
//! publication (the session de-duplicates by offset). Presence members are
//! kept apart, per topic, for as long as someone is present.
//!
//! # What it holds
//! A stream exists only once published to: a read (recovery, history) of a
//! topic without one creates nothing and answers offset 0 in the epoch the
//! first publication will get (a function of the topic, this broker's
//! random seed and the time bucket of the namespace's retention, as the
//! Redis engine does), so a subscriber at 0 recovers that publication.
//! Idle streams (no local subscriber, idle longer than their history TTL
//! and the idempotency window) are swept; a swept topic comes back in a
//! later bucket, so with a new epoch, which tells late recoverers
//! `recovered: false`.
//!
//! The node keeps at most [`MemoryCaps::max_topics`] streams and
//! [`MemoryCaps::max_history_bytes`] of history and idempotency keys
//! (counted as `memory/usage.rs` says). A publication beyond either is
//! refused with [`StoreFull`] (`limit_exceeded`); nothing stored is dropped
//! to make room. Before refusing, the broker sweeps once (at most once a
//! second), so expired history gives its room back at once.
//!
//! # Layout
//! - this file: [`MemoryBroker`] and the engine traits;
//! - `memory/state.rs`: one topic's stream and its byte count;
//! - `memory/usage.rs`: the caps, the node's counters, entry sizes.

mod state;
#[cfg(test)]
mod tests;
mod usage;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, Weak};
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::{
    BrokerError, ControlPlane, Delivery, Epoch, HistoryPage, NodeInfo, Position, PresenceStore,
    Publication, PublishRequest, Recovery, StoreFull, StoreUsage, StreamStore, TopicOptions,
    now_ms,
};
use crate::fanout::Broadcast;
use crate::protocol::CloseCode;
use crate::protocol::frames::Member;
use crate::topic::Topic;
use state::TopicState;
pub use usage::MemoryCaps;
use usage::{Usage, idempotency_bytes, publication_bytes};

/// How often idle topics are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The least time between two sweeps that a refused publication starts.
const RECLAIM_EVERY: Duration = Duration::from_secs(1);

impl From<&crate::config::MemorySettings> for MemoryCaps {
    fn from(m: &crate::config::MemorySettings) -> Self {
        MemoryCaps {
            max_topics: m.max_topics,
            max_history_bytes: m.max_history_bytes,
        }
    }
}

impl Default for MemoryCaps {
    /// The configuration's defaults (`[memory]`).
    fn default() -> Self {
        MemoryCaps::from(&crate::config::MemorySettings::default())
    }
}

/// The single-node broker.
#[derive(Debug)]
pub struct MemoryBroker {
    topics: DashMap<Topic, Arc<Mutex<TopicState>>>,
    presence: DashMap<Topic, HashMap<String, Member>>,
    usage: Arc<Usage>,
    /// Keys the epochs of topics without a stream (see the module docs).
    seed: std::hash::RandomState,
    started: Instant,
    /// When a refused publication last started a sweep.
    last_reclaim: Mutex<Option<Instant>>,
    delivery: Arc<dyn Delivery>,
    /// Webhook sinks, queued under the topic's lock (so in offset order).
    sinks: std::sync::OnceLock<Arc<crate::sinks::memory::MemorySinks>>,
}

fn lock(state: &Mutex<TopicState>) -> MutexGuard<'_, TopicState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long a stream outlives its last publication.
fn retention(options: &TopicOptions) -> Duration {
    options.history_ttl.max(options.idempotency_window)
}

impl MemoryBroker {
    /// A broker delivering to `delivery` (the node's registry) and holding
    /// at most `caps`, with its idle-topic sweeper running on the current
    /// Tokio runtime for as long as the broker lives.
    pub fn start(delivery: Arc<dyn Delivery>, caps: MemoryCaps) -> Arc<MemoryBroker> {
        let broker = Arc::new(MemoryBroker {
            topics: DashMap::new(),
            presence: DashMap::new(),
            usage: Arc::new(Usage::new(caps)),
            seed: std::hash::RandomState::new(),
            started: Instant::now(),
            last_reclaim: Mutex::new(None),
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

    /// The epoch a stream of `topic` created `now` gets: the same for every
    /// instant of one bucket of the namespace's retention, so a read before
    /// the first publication agrees with it. A stream is swept only after
    /// being idle longer than its retention, so its successor is created in
    /// a later bucket and never reuses its epoch.
    fn fresh_epoch(&self, topic: &Topic, retention: Duration, now: Instant) -> Epoch {
        let width = retention.as_millis().max(1);
        let bucket = now.duration_since(self.started).as_millis() / width;
        let hash = self.seed.hash_one((topic.as_str(), width, bucket));
        Epoch::from_wire(&format!("{hash:016x}"))
    }

    /// A topic's stream, if it has one.
    fn existing(&self, topic: &Topic) -> Option<Arc<Mutex<TopicState>>> {
        self.topics.get(topic).map(|s| s.clone())
    }

    /// A topic's stream, created (and counted) if it has none.
    fn state_for_publish(
        &self,
        topic: &Topic,
        options: &TopicOptions,
        now: Instant,
    ) -> Result<Arc<Mutex<TopicState>>, StoreFull> {
        if let Some(s) = self.existing(topic) {
            return Ok(s);
        }
        match self.topics.entry(topic.clone()) {
            Entry::Occupied(e) => Ok(e.get().clone()),
            Entry::Vacant(v) => {
                self.usage.reserve_topic()?;
                let epoch = self.fresh_epoch(topic, retention(options), now);
                let state = Arc::new(Mutex::new(TopicState::new(epoch, now, self.usage.clone())));
                v.insert(state.clone());
                Ok(state)
            }
        }
    }

    /// Forgets idle topics and drops expired history everywhere; returns how
    /// many topics were swept.
    pub fn sweep(&self, now: Instant) -> usize {
        // Counted inside `retain`: publishers add topics while it runs, so
        // `len()` before minus `len()` after could underflow.
        let mut swept = 0;
        self.topics.retain(|topic, state| {
            let mut s = match state.try_lock() {
                Ok(s) => s,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return true,
            };
            s.expire(now);
            let keep = !s.idle_for(now) || self.delivery.has_subscribers(topic);
            s.removed = !keep;
            swept += usize::from(!keep);
            keep
        });
        swept
    }

    /// Sweeps now unless a refused publication did within [`RECLAIM_EVERY`];
    /// returns whether it swept.
    fn reclaim(&self, now: Instant) -> bool {
        {
            let mut last = self
                .last_reclaim
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| now.duration_since(at) < RECLAIM_EVERY) {
                return false;
            }
            *last = Some(now);
        }
        self.sweep(now);
        true
    }

    /// What the broker holds against its caps.
    pub fn held(&self) -> StoreUsage {
        StoreUsage {
            topics: self.usage.topics(),
            max_topics: self.usage.caps.max_topics,
            history_bytes: self.usage.bytes(),
            max_history_bytes: self.usage.caps.max_history_bytes,
        }
    }

    /// Stores and delivers `req` if it fits; `Err` (with `req` back, boxed:
    /// the refusal is the cold path) when a cap refuses it.
    fn try_publish(
        &self,
        req: PublishRequest,
        now: Instant,
    ) -> Result<Position, Box<(PublishRequest, StoreFull)>> {
        loop {
            let state = match self.state_for_publish(&req.topic, &req.options, now) {
                Ok(state) => state,
                Err(full) => return Err(Box::new((req, full))),
            };
            let mut s = lock(&state);
            if s.removed {
                // Swept between the lookup and the lock: look it up again.
                continue;
            }
            s.set_options(&req.options);
            s.expire(now);
            if let Some(key) = &req.idempotency_key
                && let Some(offset) = s.repeated(key)
            {
                return Ok(Position {
                    epoch: s.epoch.clone(),
                    offset,
                });
            }
            let id = crate::broker::random_uuid().simple().to_string();
            let history_size = req.options.history_size;
            let stored = if history_size > 0 {
                publication_bytes(&req.event, &id, &req.data)
            } else {
                0
            };
            let keyed = req.idempotency_key.as_deref().map_or(0, idempotency_bytes);
            let freed = s.trimmed_by_one_more(history_size);
            if let Err(full) = self.usage.reserve_bytes(stored + keyed, freed) {
                if s.offset == 0 {
                    // Created for this publication: leave nothing behind.
                    s.removed = true;
                    drop(s);
                    self.topics
                        .remove_if(&req.topic, |_, v| Arc::ptr_eq(v, &state));
                }
                return Err(Box::new((req, full)));
            }
            s.offset += 1;
            let publication = Arc::new(Publication {
                topic: req.topic,
                offset: s.offset,
                event: req.event,
                data: req.data,
                ts: now_ms(),
                id,
            });
            s.store(now, publication.clone(), stored, history_size);
            if let Some(key) = req.idempotency_key {
                let offset = s.offset;
                s.remember(now, key, offset);
            }
            s.touch(now);
            let position = s.position();
            // Delivered under the topic's lock: fan-out order is offset order.
            if let Some(sinks) = self.sinks.get() {
                sinks.publication(&s.epoch, &publication);
            }
            self.delivery.deliver(&Broadcast::publication(publication));
            return Ok(position);
        }
    }
}

#[async_trait]
impl StreamStore for MemoryBroker {
    async fn publish(&self, req: PublishRequest) -> Result<Position, BrokerError> {
        let now = Instant::now();
        match self.try_publish(req, now) {
            Ok(position) => Ok(position),
            // Expired history may be what fills the node: sweep, try once more.
            Err(refused) => {
                let (req, full) = *refused;
                if self.reclaim(now) {
                    self.try_publish(req, now)
                        .map_err(|refused| refused.1.into())
                } else {
                    Err(full.into())
                }
            }
        }
    }

    async fn recover(
        &self,
        topic: &Topic,
        since: Option<&Position>,
        options: &TopicOptions,
    ) -> Result<Recovery, BrokerError> {
        let now = Instant::now();
        let Some(state) = self.existing(topic) else {
            // No stream: offset 0 in the epoch its first publication gets.
            let position = Position {
                epoch: self.fresh_epoch(topic, retention(options), now),
                offset: 0,
            };
            let missed = match since {
                Some(since) if *since != position => None,
                _ => Some(Vec::new()),
            };
            return Ok(Recovery::new(position, missed));
        };
        let mut s = lock(&state);
        s.expire(now);
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
        let now = Instant::now();
        let Some(state) = self.existing(topic) else {
            return Ok(HistoryPage {
                position: Position {
                    epoch: self.fresh_epoch(topic, retention(options), now),
                    offset: 0,
                },
                publications: Vec::new(),
            });
        };
        let mut s = lock(&state);
        s.expire(now);
        let publications = match since {
            Some(since) if since.epoch == s.epoch => s
                .history()
                .filter(|p| p.offset > since.offset)
                .take(limit)
                .cloned()
                .collect(),
            _ => {
                let skip = s.history().len().saturating_sub(limit);
                s.history().skip(skip).cloned().collect()
            }
        };
        Ok(HistoryPage {
            position: s.position(),
            publications,
        })
    }

    fn usage(&self) -> Option<StoreUsage> {
        Some(self.held())
    }
}

#[async_trait]
impl PresenceStore for MemoryBroker {
    async fn join(&self, topic: &Topic, member: Member, announce: bool) -> Result<(), BrokerError> {
        // Announced under the topic's presence entry: join and leave of one
        // topic reach subscribers in the order they happened.
        let mut members = self.presence.entry(topic.clone()).or_default();
        members.insert(member.client_id.clone(), member.clone());
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
        if let Some(mut members) = self.presence.get_mut(topic)
            && members.remove(&member.client_id).is_some()
            && announce
        {
            self.delivery
                .deliver(&Broadcast::presence(topic.clone(), member, false));
        }
        self.presence
            .remove_if(topic, |_, members| members.is_empty());
        Ok(())
    }

    async fn presence(&self, topic: &Topic) -> Result<Vec<Member>, BrokerError> {
        let mut members: Vec<Member> = self
            .presence
            .get(topic)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
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
            let broker = MemoryBroker::start(delivery.clone(), MemoryCaps::default());
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
