//! Cluster-wide occupancy on the Redis engine, and lifecycle entries in the
//! sinks' streams.
//!
//! Per sink that asks for `occupied` or `vacated`, in the sink's slot
//! (`PREFIX:{wh:NAME}:lc`):
//! - `…:t:TOPIC`, a hash: field `_` while the topic is occupied (also during
//!   its grace), and one field per node process that has local subscribers;
//! - `…:n:NODE`, a set: the topics that node process holds;
//! - `…:nodes`, a sorted set: node process → liveness deadline (ms), renewed
//!   every [`TICK`] for [`LIVENESS`];
//! - `…:vac`, a sorted set: topic → when its grace ends.
//!
//! Three scripts change them atomically, so each transition queues exactly
//! one event however many nodes race: `OCCUPY` (a node's first local
//! subscriber: `occupied` when `_` was absent), `RELEASE` (its last: the
//! grace starts when no node is left) and `TICK` (every node, every
//! [`TICK`]: renews its liveness, releases every topic of a node process
//! whose liveness ran out, queues `vacated` for each topic whose grace
//! ended with no node back). A node killed with `-9` therefore stops
//! counting within [`LIVENESS`] plus a tick, and its topics are vacated a
//! grace later (if some node is running to tick).
//!
//! This node's changes go through one task in order; each reconciles the
//! registry's current answer with what this node announced, and a failed
//! script is retried on the next tick. A node that finds itself declared
//! dead (Redis unreachable for longer than [`LIVENESS`]) announces its
//! topics again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::Client;
use fred::types::Value;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{error, info, warn};

use super::event_id;
use crate::broker::now_ms;
use crate::config::{LifecycleEvent, WebhookConfig};
use crate::protocol::frames::Member;
use crate::registry::Registry;
use crate::sinks::redis::{call, stream_key, text};
use crate::sinks::{Delivery, SinkError, SinkSet};
use crate::topic::Topic;

/// How long a node process counts as holding its topics without renewing.
pub const LIVENESS: Duration = Duration::from_secs(5);
/// How often every node renews its liveness and looks for due events.
pub const TICK: Duration = Duration::from_millis(250);
/// Changes waiting for the task at most; beyond, they are refused loudly.
const QUEUE: usize = 65_536;

const NOW: &str = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) ";

/// KEYS: t, vac, n, nodes, q. ARGV: node, topic, liveness ms, want occupied.
const OCCUPY: &str = "redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[1]) \
local fresh = redis.call('HSETNX', KEYS[1], '_', '1') \
redis.call('HSET', KEYS[1], ARGV[1], '1') \
redis.call('SADD', KEYS[3], ARGV[2]) \
redis.call('ZREM', KEYS[2], ARGV[2]) \
if fresh == 1 and ARGV[4] == '1' then \
  redis.call('XADD', KEYS[5], '*', 't', ARGV[2], 'k', 'occupied', 'ts', string.format('%d', now)) \
end \
return fresh";

/// KEYS: t, vac, n. ARGV: node, topic, grace ms.
const RELEASE: &str = "redis.call('SREM', KEYS[3], ARGV[2]) \
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 and redis.call('HLEN', KEYS[1]) <= 1 then \
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2]) \
end \
return 0";

/// KEYS: nodes, vac, q. ARGV: node, liveness ms, grace ms, want vacated, key base.
/// Returns `{was this node listed, vacated queued}`.
const TICK_SCRIPT: &str = "local present = redis.call('ZSCORE', KEYS[1], ARGV[1]) \
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) \
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 16)) do \
  local nk = ARGV[5] .. ':n:' .. node \
  for _, topic in ipairs(redis.call('SMEMBERS', nk)) do \
    local tk = ARGV[5] .. ':t:' .. topic \
    if redis.call('HDEL', tk, node) == 1 and redis.call('HLEN', tk) <= 1 then \
      redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), topic) \
    end \
  end \
  redis.call('DEL', nk) \
  redis.call('ZREM', KEYS[1], node) \
end \
local fired = 0 \
for _, topic in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 256)) do \
  redis.call('ZREM', KEYS[2], topic) \
  local tk = ARGV[5] .. ':t:' .. topic \
  if redis.call('HLEN', tk) <= 1 then \
    redis.call('DEL', tk) \
    if ARGV[4] == '1' then \
      redis.call('XADD', KEYS[3], '*', 't', topic, 'k', 'vacated', 'ts', string.format('%d', now)) \
      fired = fired + 1 \
    end \
  end \
end \
if present then present = 1 else present = 0 end \
return {present, fired}";

/// The event id of a lifecycle entry queued without one (`occupied` and
/// `vacated` are queued by the scripts): its first stream id.
pub fn stream_event_id(stream_id: &str) -> String {
    format!("lifecycle:{stream_id}")
}

/// A lifecycle stream entry (`t`, `k`, `ts`, optional `mb` and `w`) as a
/// delivery to `sink`.
pub(crate) fn delivery(
    sink: &str,
    stream_id: &str,
    topic: &Topic,
    kind: &str,
    fields: &HashMap<String, Value>,
) -> Option<Delivery> {
    let kind = match kind {
        "occupied" => LifecycleEvent::Occupied,
        "vacated" => LifecycleEvent::Vacated,
        "join" => LifecycleEvent::Join,
        "leave" => LifecycleEvent::Leave,
        _ => return None,
    };
    let ts = fields.get("ts").map(text)?.parse().ok()?;
    let member: Option<Member> = match fields.get("mb") {
        Some(v) => Some(serde_json::from_str(&text(v)).ok()?),
        None => None,
    };
    let id = fields
        .get("w")
        .map(text)
        .unwrap_or_else(|| stream_event_id(stream_id));
    Some(Delivery::lifecycle(
        sink,
        kind,
        topic,
        member.as_ref(),
        ts,
        &id,
    ))
}

#[derive(Debug)]
enum Op {
    Touch(Topic),
    Presence(LifecycleEvent, Topic, Member, u64),
}

/// The Redis engine's lifecycle events: a handle on the task that runs them.
#[derive(Debug)]
pub struct RedisLifecycle {
    tx: mpsc::Sender<Op>,
    _stop: DropGuard,
}

/// One sink that tracks occupancy, and its keys.
#[derive(Debug)]
struct Tracked {
    config: WebhookConfig,
    base: String,
    stream: String,
}

impl Tracked {
    fn topic_key(&self, topic: &Topic) -> String {
        format!("{}:t:{}", self.base, topic.as_str())
    }
    fn node_key(&self, node: &str) -> String {
        format!("{}:n:{node}", self.base)
    }
    fn nodes_key(&self) -> String {
        format!("{}:nodes", self.base)
    }
    fn vac_key(&self) -> String {
        format!("{}:vac", self.base)
    }
}

#[derive(Debug)]
struct Runner {
    client: Client,
    registry: Arc<Registry>,
    me: String,
    prefix: String,
    set: SinkSet,
    tracked: Vec<Tracked>,
    /// Topics announced as having local subscribers.
    held: HashSet<Topic>,
    /// Topics whose last script failed: reconciled again on the next tick.
    retry: HashSet<Topic>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl RedisLifecycle {
    /// Starts the task (on `client`, as node process `me`).
    pub fn start(
        client: Client,
        prefix: &str,
        me: &str,
        set: SinkSet,
        registry: Arc<Registry>,
    ) -> RedisLifecycle {
        let tracked = set
            .all()
            .iter()
            .filter(|c| c.wants_occupancy())
            .map(|c| Tracked {
                config: c.clone(),
                base: format!("{prefix}:{{wh:{}}}:lc", c.name),
                stream: stream_key(prefix, &c.name),
            })
            .collect();
        let runner = Runner {
            client,
            registry,
            me: me.to_owned(),
            prefix: prefix.to_owned(),
            set,
            tracked,
            held: HashSet::new(),
            retry: HashSet::new(),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let cancel = CancellationToken::new();
        tokio::spawn(cancel.clone().run_until_cancelled_owned(runner.run(rx)));
        RedisLifecycle {
            tx,
            _stop: cancel.drop_guard(),
        }
    }

    fn send(&self, op: Op) {
        if let Err(e) = self.tx.try_send(op) {
            error!(error = %e, "webhook lifecycle queue full: a lifecycle change is dropped");
        }
    }

    pub(super) fn touch(&self, topic: &Topic) {
        self.send(Op::Touch(topic.clone()));
    }

    pub(super) fn presence(&self, topic: &Topic, kind: LifecycleEvent, member: &Member) {
        self.send(Op::Presence(kind, topic.clone(), member.clone(), now_ms()));
    }
}

impl Runner {
    async fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                op = rx.recv() => match op {
                    Some(Op::Touch(topic)) => self.reconcile(&topic).await,
                    Some(Op::Presence(kind, topic, member, ts)) => {
                        self.presence(kind, &topic, &member, ts).await;
                    }
                    None => return,
                },
                _ = tick.tick() => self.tick().await,
            }
        }
    }

    async fn eval(
        &self,
        script: &str,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<Value, SinkError> {
        let first = keys.first().cloned().unwrap_or_default();
        let mut all: Vec<Value> = vec![format!("{NOW}{script}").into(), (keys.len() as i64).into()];
        all.extend(keys.into_iter().map(Value::from));
        all.extend(args);
        call(&self.client, "EVAL", &first, all).await
    }

    /// Brings what this node announced for `topic` in line with the registry.
    async fn reconcile(&mut self, topic: &Topic) {
        if self.tracked.is_empty() {
            return;
        }
        let now = self.registry.has_subscribers(topic);
        if now == self.held.contains(topic) {
            self.retry.remove(topic);
            return;
        }
        let mut ok = true;
        for t in &self.tracked {
            if !t.config.topics.iter().any(|p| p.matches(topic)) {
                continue;
            }
            if let Err(e) = self.announce(t, topic, now).await {
                warn!(sink = %t.config.name, topic = %topic, error = %e, "cannot update the topic's occupancy in Redis; retrying");
                ok = false;
            }
        }
        if ok {
            self.retry.remove(topic);
            if now {
                self.held.insert(topic.clone());
            } else {
                self.held.remove(topic);
            }
        } else {
            self.retry.insert(topic.clone());
        }
    }

    /// Runs `OCCUPY` (`occupied`: this node has local subscribers) or `RELEASE`.
    async fn announce(&self, t: &Tracked, topic: &Topic, occupied: bool) -> Result<(), SinkError> {
        let name = topic.as_str().to_owned();
        if occupied {
            let want = t.config.lifecycle.contains(&LifecycleEvent::Occupied);
            self.eval(
                OCCUPY,
                vec![
                    t.topic_key(topic),
                    t.vac_key(),
                    t.node_key(&self.me),
                    t.nodes_key(),
                    t.stream.clone(),
                ],
                vec![
                    self.me.clone().into(),
                    name.into(),
                    ms(LIVENESS).into(),
                    if want { "1" } else { "0" }.into(),
                ],
            )
            .await?;
        } else {
            self.eval(
                RELEASE,
                vec![t.topic_key(topic), t.vac_key(), t.node_key(&self.me)],
                vec![
                    self.me.clone().into(),
                    name.into(),
                    ms(t.config.vacated_grace).into(),
                ],
            )
            .await?;
        }
        Ok(())
    }

    async fn tick(&mut self) {
        let retry: Vec<Topic> = self.retry.iter().cloned().collect();
        for topic in retry {
            self.reconcile(&topic).await;
        }
        let mut declared_dead = false;
        for t in &self.tracked {
            let want = t.config.lifecycle.contains(&LifecycleEvent::Vacated);
            let reply = self
                .eval(
                    TICK_SCRIPT,
                    vec![t.nodes_key(), t.vac_key(), t.stream.clone()],
                    vec![
                        self.me.clone().into(),
                        ms(LIVENESS).into(),
                        ms(t.config.vacated_grace).into(),
                        if want { "1" } else { "0" }.into(),
                        t.base.clone().into(),
                    ],
                )
                .await;
            match reply {
                Ok(v) => {
                    let v = v.into_array();
                    if v.first().and_then(Value::as_i64) == Some(0) && !self.held.is_empty() {
                        declared_dead = true;
                    }
                }
                Err(e) => warn!(sink = %t.config.name, error = %e, "webhook lifecycle tick failed"),
            }
        }
        if declared_dead {
            info!(node = %self.me, topics = self.held.len(), "this node's occupancy had expired in Redis; announcing its topics again");
            // Announce again from scratch: every held topic is reconciled as new.
            let held: Vec<Topic> = self.held.drain().collect();
            for topic in held {
                self.reconcile(&topic).await;
            }
        }
    }

    /// Queues `join` or `leave` in the stream of every sink that wants it.
    async fn presence(&self, kind: LifecycleEvent, topic: &Topic, member: &Member, ts: u64) {
        let Ok(mb) = serde_json::to_string(member) else {
            return;
        };
        let id = event_id();
        for config in self.set.all() {
            if !config.wants_lifecycle(topic, kind) {
                continue;
            }
            let stream = stream_key(&self.prefix, &config.name);
            let args: Vec<Value> = vec![
                stream.clone().into(),
                "*".into(),
                "t".into(),
                topic.as_str().into(),
                "k".into(),
                kind.as_str().into(),
                "ts".into(),
                (ts as i64).into(),
                "mb".into(),
                mb.clone().into(),
                "w".into(),
                id.clone().into(),
            ];
            if let Err(e) = call(&self.client, "XADD", &stream, args).await {
                error!(sink = %config.name, topic = %topic, kind = kind.as_str(), error = %e, "cannot queue a lifecycle event: Redis unavailable; it is lost");
            }
        }
    }
}
