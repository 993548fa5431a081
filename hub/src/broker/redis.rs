//! The Redis engine: many stateless hub nodes on one Redis (or Redis
//! Cluster). Redis holds each topic's offset, epoch, history and idempotency
//! keys, presence, node heartbeats; pub/sub carries publications to the nodes
//! that serve a topic, and only to them. `fred` stays inside this module.
//!
//! ## Layout
//! - `keys`: key and channel names, hash-tagged per topic.
//! - `scripts`: the Lua scripts (atomic publish, snapshot read, presence).
//! - `wire`: the byte formats stored and published.
//! - `store`: the commands, Redis errors mapped to [`BrokerError`].
//! - `router`: watched topics, whether each route is confirmed, what the
//!   node has of each stream, local delivery through [`Delivery`].
//! - `tasks`: background work (pub/sub listener, resubscribe on reconnect,
//!   probe, heartbeats, presence refresh, lazy unsubscribe).
//! - `control`: cross-node disconnects and the node list.
//!
//! See `docs/redis.md` for the design and the failure behaviour.

mod control;
mod keys;
mod router;
mod scripts;
mod store;
mod tasks;
#[cfg(test)]
mod tests;
mod wire;

/// The stored publication format, for the webhook sinks' streams (issue 10).
pub(crate) use wire::decode_publication;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fred::prelude::{
    Builder, Client, ClientLike, Config as RedisConfig, PubsubInterface, ReconnectPolicy, TcpConfig,
};

use super::{
    BrokerError, ControlPlane, Delivery, Epoch, HistoryPage, NodeInfo, Position, PresenceStore,
    PublishRequest, Recovery, StreamStore, TopicOptions,
};
use crate::protocol::CloseCode;
use crate::protocol::frames::Member;
use crate::topic::Topic;
use keys::Keys;
use router::{Router, Step};
use store::{ReadMode, Store, unavailable};

/// How long a command may take before the caller gets `unavailable`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Engine settings.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://…`, `rediss://…` or `redis-cluster://host:port?node=host:port…`.
    pub url: String,
    /// Prefix of every key and channel.
    pub key_prefix: String,
    /// How long a presence member outlives its node's last refresh.
    pub presence_ttl: Duration,
    /// How often the pub/sub path is probed.
    pub probe_interval: Duration,
    /// This node's name.
    pub node: Arc<str>,
    /// Whether to write heartbeats, i.e. be listed by `nodes()` (false for
    /// the standalone REST API, which serves no connections).
    pub heartbeat: bool,
}

/// Pub/sub probe state: sequence numbers sent and seen on the node's probe channel.
#[derive(Debug, Default)]
struct Probe {
    sent: std::sync::atomic::AtomicU64,
    seen: std::sync::atomic::AtomicU64,
    last_ok: Mutex<Option<Instant>>,
    arrived: tokio::sync::Notify,
}

/// The Redis broker.
#[derive(Debug)]
pub struct RedisBroker {
    store: Store,
    subscriber: Client,
    router: Router,
    delivery: Arc<dyn Delivery>,
    node: Arc<str>,
    options: RedisOptions,
    /// Redis Cluster (the control channel's receiver count is per shard there).
    sharded: bool,
    /// Serializes SUBSCRIBE/UNSUBSCRIBE so a lazy unsubscribe never undoes a newer watch.
    subscriptions: tokio::sync::Mutex<()>,
    unwatch_pending: Mutex<HashSet<Topic>>,
    /// Presence members whose connections live on this node, refreshed periodically.
    /// With whether their namespace announces join/leave.
    owned: Mutex<HashMap<(Topic, String), (Member, bool)>>,
    probe: Probe,
    /// Every channel is subscribed (set by the last resubscribe).
    subscribed: std::sync::atomic::AtomicBool,
    started: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn client(config: &RedisConfig, resp3: bool) -> Result<Client, BrokerError> {
    let mut config = config.clone();
    if resp3 {
        // Pub/sub as push frames: the connection still answers commands (a
        // cluster client needs that to follow slot changes).
        config.version = fred::types::RespVersion::RESP3;
    }
    let mut builder = Builder::from_config(config);
    builder
        .with_config(|c| c.fail_fast = false)
        .with_connection_config(|c| {
            c.connection_timeout = COMMAND_TIMEOUT;
            c.internal_command_timeout = COMMAND_TIMEOUT;
            // A command is written once: a publish is never silently repeated.
            c.max_command_attempts = 1;
            c.tcp = TcpConfig {
                nodelay: Some(true),
                ..TcpConfig::default()
            };
        })
        .with_performance_config(|c| {
            c.default_command_timeout = COMMAND_TIMEOUT;
            c.broadcast_channel_capacity = 1 << 16;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 50, 1000, 2));
    builder.build().map_err(unavailable)
}

impl RedisBroker {
    /// Connects (in the background: a node starts while Redis is down and
    /// becomes ready when it answers) and starts the engine's tasks on the
    /// current Tokio runtime. Fails only on a URL fred cannot use.
    pub fn start(
        delivery: Arc<dyn Delivery>,
        options: RedisOptions,
    ) -> Result<Arc<RedisBroker>, BrokerError> {
        RedisBroker::start_with(delivery, options, None)
    }

    /// [`RedisBroker::start`], with the pub/sub connection made to
    /// `subscriber_url` when given (tests put a fault-injecting proxy there).
    pub(crate) fn start_with(
        delivery: Arc<dyn Delivery>,
        options: RedisOptions,
        subscriber_url: Option<&str>,
    ) -> Result<Arc<RedisBroker>, BrokerError> {
        let parse = |url: &str| {
            RedisConfig::from_url(url)
                .map_err(|e| BrokerError::Unavailable(format!("redis_url: {e}")))
        };
        let config = parse(&options.url)?;
        let sharded = config.server.is_clustered();
        let commands = client(&config, false)?;
        let subscriber = match subscriber_url {
            Some(url) => client(&parse(url)?, false)?,
            None => client(&config, false)?,
        };
        let keys = Keys::new(&options.key_prefix);
        let broker = Arc::new(RedisBroker {
            store: Store::new(commands, keys),
            subscriber,
            router: Router::new(delivery.clone()),
            delivery,
            node: options.node.clone(),
            options,
            sharded,
            subscriptions: tokio::sync::Mutex::new(()),
            unwatch_pending: Mutex::new(HashSet::new()),
            owned: Mutex::new(HashMap::new()),
            probe: Probe::default(),
            subscribed: std::sync::atomic::AtomicBool::new(false),
            started: Instant::now(),
        });
        tasks::spawn_all(&broker);
        broker.store.client.connect();
        broker.subscriber.connect();
        Ok(broker)
    }

    fn keys(&self) -> &Keys {
        &self.store.keys
    }

    /// Webhook sinks (issue 10): appends every later publication to the
    /// streams of the sinks that want it, in the publish script. Once; false
    /// when already set.
    pub fn set_sink_streams(&self, streams: crate::sinks::redis::StreamKeys) -> bool {
        self.store.sinks.set(streams).is_ok()
    }

    /// Whether this is a Redis Cluster.
    pub fn is_clustered(&self) -> bool {
        self.sharded
    }

    async fn subscribe_channel(&self, channel: String, sharded: bool) -> Result<(), BrokerError> {
        let r = if sharded {
            self.subscriber.ssubscribe(channel).await
        } else {
            self.subscriber.subscribe(channel).await
        };
        r.map_err(unavailable)
    }

    async fn unsubscribe_channel(&self, channel: String, sharded: bool) -> Result<(), BrokerError> {
        let r = if sharded {
            self.subscriber.sunsubscribe(channel).await
        } else {
            self.subscriber.unsubscribe(channel).await
        };
        r.map_err(unavailable)
    }

    /// Has `topic`'s route confirmed before returning: its channel is
    /// subscribed and the base of what this node has was read after that.
    /// One confirmation per topic is in flight at a time and every
    /// concurrent caller awaits it; a failed one is retried once by a waiter
    /// and never leaves the topic marked routed.
    async fn route(&self, topic: &Topic) -> Result<(), BrokerError> {
        let mut failures = 0;
        loop {
            match self.router.begin(topic) {
                Step::Ready => return Ok(()),
                Step::Wait(mut done) => {
                    if done.wait_for(|ok| *ok).await.is_ok() {
                        return Ok(());
                    }
                    failures += 1;
                }
                Step::Lead { id, done } => {
                    let pending = Pending {
                        router: &self.router,
                        topic,
                        id,
                    };
                    let base = self.confirm(topic).await;
                    match base {
                        Ok(base) => {
                            std::mem::forget(pending);
                            if self.router.confirmed(topic, id, &base) {
                                done.send_replace(true);
                                return Ok(());
                            }
                            // Unrouted meanwhile (the sweep saw no subscriber): again.
                        }
                        Err(e) => {
                            drop(pending);
                            if failures > 0 {
                                return Err(e);
                            }
                            failures += 1;
                        }
                    }
                }
            }
            if failures > 1 {
                return Err(BrokerError::Unavailable(
                    "redis: the topic's subscription could not be confirmed".into(),
                ));
            }
        }
    }

    /// Subscribes `topic`'s channel, then reads its position (the base).
    async fn confirm(&self, topic: &Topic) -> Result<Position, BrokerError> {
        {
            let _serial = self.subscriptions.lock().await;
            lock(&self.unwatch_pending).remove(topic);
            self.subscribe_channel(self.keys().channel(topic), true)
                .await?;
        }
        let snap = self
            .store
            .read(topic, ReadMode::Position, &RESYNC_OPTIONS)
            .await?;
        Ok(snap.position)
    }

    /// `topic`'s offset went backwards in `epoch`: moves it to a new epoch.
    async fn roll_forward(&self, topic: &Topic, epoch: &Epoch) {
        match self.store.new_epoch(topic, epoch).await {
            Ok(moved) => {
                tracing::warn!(topic = %topic, old = %epoch, moved, "offset went backwards: new epoch");
            }
            Err(e) => tracing::warn!(topic = %topic, error = %e, "cannot start a new epoch"),
        }
    }
}

/// A route confirmation in flight; dropped before it completes (failed, or
/// its caller went away), it lets the next caller confirm.
struct Pending<'a> {
    router: &'a Router,
    topic: &'a Topic,
    id: u64,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.router.abandon(self.topic, self.id);
    }
}

/// Options for reads that are not tied to a namespace (resync after a
/// reconnect): only the TTL of a re-created epoch depends on them, and the
/// next publication sets it properly.
const RESYNC_OPTIONS: TopicOptions = TopicOptions {
    history_size: 0,
    history_ttl: Duration::from_secs(24 * 3600),
    idempotency_window: Duration::from_secs(600),
};

#[async_trait]
impl StreamStore for RedisBroker {
    async fn publish(&self, req: PublishRequest) -> Result<Position, BrokerError> {
        self.store.publish(&req).await
    }

    async fn publish_batch(&self, reqs: Vec<PublishRequest>) -> Vec<Result<Position, BrokerError>> {
        self.store.publish_batch(&reqs).await
    }

    async fn recover(
        &self,
        topic: &Topic,
        since: Option<&Position>,
        options: &TopicOptions,
    ) -> Result<Recovery, BrokerError> {
        let mode = match since {
            Some(s) => ReadMode::After {
                offset: s.offset,
                count: options.history_size.max(1),
            },
            None => ReadMode::Position,
        };
        // Every local subscriber reads only once the topic's route is
        // confirmed, whichever of them asked for it first.
        if self.delivery.has_subscribers(topic) {
            self.route(topic).await?;
        }
        let snap = self.store.read(topic, mode, options).await?;
        let position = snap.position;
        let Some(since) = since else {
            return Ok(Recovery::new(position, Some(Vec::new())));
        };
        let complete = since.epoch == position.epoch
            && since.offset <= position.offset
            && (since.offset == position.offset
                || (snap.publications.first().map(|p| p.offset) == Some(since.offset + 1)
                    && snap.publications.last().map(|p| p.offset) == Some(position.offset)));
        Ok(Recovery::new(
            position,
            complete.then_some(snap.publications),
        ))
    }

    async fn history(
        &self,
        topic: &Topic,
        since: Option<&Position>,
        limit: usize,
        options: &TopicOptions,
    ) -> Result<HistoryPage, BrokerError> {
        if limit == 0 {
            // The read script returns at least one entry; 0 asks for the position only.
            let snap = self.store.read(topic, ReadMode::Position, options).await?;
            return Ok(HistoryPage {
                position: snap.position,
                publications: Vec::new(),
            });
        }
        if let Some(s) = since {
            let after = ReadMode::After {
                offset: s.offset,
                count: limit,
            };
            let snap = self.store.read(topic, after, options).await?;
            if snap.position.epoch == s.epoch {
                return Ok(HistoryPage {
                    position: snap.position,
                    publications: snap.publications,
                });
            }
        }
        let snap = self
            .store
            .read(topic, ReadMode::Newest { count: limit }, options)
            .await?;
        Ok(HistoryPage {
            position: snap.position,
            publications: snap.publications,
        })
    }
}

#[async_trait]
impl PresenceStore for RedisBroker {
    async fn join(&self, topic: &Topic, member: Member, announce: bool) -> Result<(), BrokerError> {
        lock(&self.owned).insert(
            (topic.clone(), member.client_id.clone()),
            (member.clone(), announce),
        );
        self.store
            .join(
                topic,
                &member,
                self.options.presence_ttl,
                announce,
                announce,
            )
            .await
    }

    async fn leave(
        &self,
        topic: &Topic,
        member: Member,
        announce: bool,
    ) -> Result<(), BrokerError> {
        lock(&self.owned).remove(&(topic.clone(), member.client_id.clone()));
        self.store.leave(topic, &member, announce).await
    }

    async fn presence(&self, topic: &Topic) -> Result<Vec<Member>, BrokerError> {
        self.store.presence(topic).await
    }
}

#[async_trait]
impl ControlPlane for RedisBroker {
    async fn watch(&self, topic: &Topic) -> Result<(), BrokerError> {
        self.route(topic).await
    }

    async fn unwatch(&self, topic: &Topic) -> Result<(), BrokerError> {
        // Lazy: the sweep task unsubscribes in batches, unless a subscriber came back.
        lock(&self.unwatch_pending).insert(topic.clone());
        Ok(())
    }

    async fn disconnect_user(&self, user: &str, code: CloseCode) -> Result<usize, BrokerError> {
        control::disconnect_user(self, user, code).await
    }

    async fn nodes(&self, local: NodeInfo) -> Result<Vec<NodeInfo>, BrokerError> {
        control::nodes(self, local).await
    }

    async fn check(&self) -> Result<(), BrokerError> {
        tasks::check(self).await
    }
}
