//! Lifecycle events for the sinks that ask for them (`lifecycle = [...]`):
//! `occupied` (a topic's first subscriber), `vacated` (its last one gone for
//! the sink's `vacated_grace`), `join` and `leave` (presence). They go
//! through the same per-sink queues as publications (signed, retried,
//! dead-lettered, in their topic's lane with `ordering = "topic"`).
//!
//! The connection code calls two hooks, [`subscribers_changed`] after a local
//! subscriber came or went and [`presence`] after a presence join or leave;
//! they do nothing when no sink asks for lifecycle events.
//!
//! Occupancy is reconciled, not counted: on every change the node's truth
//! (does the registry hold a local subscriber of the topic?) is compared
//! with what this module last announced, so racing subscribes and
//! unsubscribes cannot leave it wrong. With the memory engine occupancy is
//! this node's; with the Redis engine it is cluster-wide (see `redis`).

pub mod redis;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use super::Delivery;
use super::memory::MemorySinks;
use crate::broker::now_ms;
use crate::config::{LifecycleEvent, WebhookConfig};
use crate::hub::Hub;
use crate::protocol::frames::Member;
use crate::registry::Registry;
use crate::topic::Topic;

/// After a local subscriber of `topic` came or went (the registry already
/// says so): may queue `occupied`, or start the `vacated` grace.
pub fn subscribers_changed(hub: &Hub, topic: &Topic) {
    if let Some(l) = hub.lifecycle.get() {
        l.touch(topic);
    }
}

/// After `member` joined (`kind` [`LifecycleEvent::Join`]) or left
/// ([`LifecycleEvent::Leave`]) `topic`'s presence: queues the event for the
/// sinks that want it.
pub fn presence(hub: &Hub, topic: &Topic, kind: LifecycleEvent, member: &Member) {
    if let Some(l) = hub.lifecycle.get() {
        l.presence(topic, kind, member);
    }
}

/// A fresh event id (a lifecycle event's `webhook-id` derives from it).
fn event_id() -> String {
    format!("lifecycle:{}", uuid::Uuid::new_v4())
}

/// Whether any configured sink asks for lifecycle events.
pub fn wanted(sinks: &[WebhookConfig]) -> bool {
    sinks.iter().any(|s| !s.lifecycle.is_empty())
}

/// The lifecycle events of one hub, on its engine.
#[derive(Debug)]
pub struct Lifecycle {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Memory(Arc<MemoryLifecycle>),
    Redis(redis::RedisLifecycle),
}

impl Lifecycle {
    /// On the memory engine: occupancy per node, events into `sinks`' queues.
    pub fn memory(registry: Arc<Registry>, sinks: Arc<MemorySinks>) -> Lifecycle {
        Lifecycle {
            backend: Backend::Memory(MemoryLifecycle::start(registry, sinks)),
        }
    }

    /// On the Redis engine (see [`redis::RedisLifecycle`]).
    pub fn redis(inner: redis::RedisLifecycle) -> Lifecycle {
        Lifecycle {
            backend: Backend::Redis(inner),
        }
    }

    fn touch(&self, topic: &Topic) {
        match &self.backend {
            Backend::Memory(m) => m.touch(topic),
            Backend::Redis(r) => r.touch(topic),
        }
    }

    fn presence(&self, topic: &Topic, kind: LifecycleEvent, member: &Member) {
        match &self.backend {
            Backend::Memory(m) => {
                let (id, ts) = (event_id(), now_ms());
                m.sinks.offer_lifecycle(|config| {
                    config.wants_lifecycle(topic, kind).then(|| {
                        Delivery::lifecycle(&config.name, kind, topic, Some(member), ts, &id)
                    })
                });
            }
            Backend::Redis(r) => r.presence(topic, kind, member),
        }
    }
}

/// Per sink that tracks occupancy: topic → `None` (occupied) or
/// `Some(due)` (no local subscriber since; `vacated` at `due`).
type Occupied = HashMap<Topic, Option<Instant>>;

#[derive(Debug, Default)]
struct Occupancy {
    /// Topics announced as having local subscribers.
    held: HashSet<Topic>,
    /// Indexed like `MemoryLifecycle::sinks`.
    per_sink: Vec<Occupied>,
}

/// Memory engine occupancy: this node's subscribers only.
#[derive(Debug)]
struct MemoryLifecycle {
    registry: Arc<Registry>,
    sinks: Arc<MemorySinks>,
    /// The sinks that ask for `occupied` or `vacated`.
    tracked: Vec<WebhookConfig>,
    state: Mutex<Occupancy>,
}

impl MemoryLifecycle {
    fn start(registry: Arc<Registry>, sinks: Arc<MemorySinks>) -> Arc<MemoryLifecycle> {
        let tracked: Vec<WebhookConfig> = sinks
            .configs()
            .filter(|c| c.wants_occupancy())
            .cloned()
            .collect();
        let tick = tick_for(&tracked);
        let state = Occupancy {
            held: HashSet::new(),
            per_sink: vec![Occupied::new(); tracked.len()],
        };
        let this = Arc::new(MemoryLifecycle {
            registry,
            sinks,
            tracked,
            state: Mutex::new(state),
        });
        if !this.tracked.is_empty() {
            tokio::spawn(expire(Arc::downgrade(&this), tick));
        }
        this
    }

    fn lock(&self) -> MutexGuard<'_, Occupancy> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn emit(&self, config: &WebhookConfig, kind: LifecycleEvent, topic: &Topic) {
        if !config.lifecycle.contains(&kind) {
            return;
        }
        let d = Delivery::lifecycle(&config.name, kind, topic, None, now_ms(), &event_id());
        self.sinks
            .offer_lifecycle(|c| (c.name == config.name).then(|| d.clone()));
    }

    /// Reconciles `topic`: the lock orders concurrent calls, and each reads
    /// the registry's current answer, so the last call leaves it right.
    fn touch(&self, topic: &Topic) {
        if self.tracked.is_empty() {
            return;
        }
        let mut state = self.lock();
        let now = self.registry.has_subscribers(topic);
        if now == state.held.contains(topic) {
            return;
        }
        if now {
            state.held.insert(topic.clone());
        } else {
            state.held.remove(topic);
        }
        for (config, occupied) in self.tracked.iter().zip(state.per_sink.iter_mut()) {
            if !config.topics.iter().any(|p| p.matches(topic)) {
                continue;
            }
            if now {
                // Back within the grace: no `vacated`, no second `occupied`.
                if occupied.insert(topic.clone(), None).is_none() {
                    self.emit(config, LifecycleEvent::Occupied, topic);
                }
            } else if let Some(due) = occupied.get_mut(topic) {
                *due = Some(Instant::now() + config.vacated_grace);
            }
        }
    }

    /// Queues `vacated` for every topic whose grace ran out.
    fn expire_due(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        for (config, occupied) in self.tracked.iter().zip(state.per_sink.iter_mut()) {
            let due: Vec<Topic> = occupied
                .iter()
                .filter(|(_, d)| d.is_some_and(|d| d <= now))
                .map(|(t, _)| t.clone())
                .collect();
            for topic in due {
                occupied.remove(&topic);
                self.emit(config, LifecycleEvent::Vacated, &topic);
            }
        }
    }
}

/// How often due `vacated` events are looked for: a quarter of the
/// shortest grace, between 10 ms and 250 ms.
fn tick_for(sinks: &[WebhookConfig]) -> Duration {
    let grace = sinks
        .iter()
        .map(|s| s.vacated_grace)
        .min()
        .unwrap_or(Duration::from_secs(1));
    (grace / 4).clamp(Duration::from_millis(10), Duration::from_millis(250))
}

async fn expire(this: Weak<MemoryLifecycle>, tick: Duration) {
    let mut every = tokio::time::interval(tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(this) = this.upgrade() else {
            return;
        };
        this.expire_due();
    }
}
