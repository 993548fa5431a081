//! [`Store`]: the engine's commands against Redis (the scripts of
//! [`scripts`](super::scripts) and the few plain commands), with Redis errors
//! mapped to [`BrokerError`]: any failure to reach or use Redis is
//! `Unavailable`, so nothing is ever acknowledged that was not stored.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fred::prelude::{Client, ClientLike, Error as RedisError, Value};
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand};

use super::keys::Keys;
use super::scripts::Scripts;
use super::wire;
use crate::broker::{BrokerError, Epoch, Position, Publication, PublishRequest, TopicOptions};
use crate::protocol::frames::Member;
use crate::topic::Topic;

pub(crate) fn unavailable(e: RedisError) -> BrokerError {
    BrokerError::Unavailable(format!("redis: {e}"))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// How a topic's keys outlive its last write: long enough for its history and
/// its idempotency keys, so the epoch only changes when both are gone.
fn meta_ttl(options: &TopicOptions) -> Duration {
    options.history_ttl.max(options.idempotency_window)
}

/// What [`Store::read`] fetches besides the position.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadMode {
    /// Only the position.
    Position,
    /// Up to `count` publications after `offset`, oldest first.
    After { offset: u64, count: usize },
    /// The newest `count` publications, oldest first.
    Newest { count: usize },
}

/// A position and publications read in one snapshot. Publications older than
/// the history TTL are already dropped.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) position: Position,
    pub(crate) publications: Vec<Arc<Publication>>,
}

/// Commands against one Redis deployment.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pub(crate) client: Client,
    pub(crate) keys: Keys,
    scripts: Scripts,
    /// Webhook sinks (issue 10, `sinks/redis.rs`): whose streams a publication is appended to.
    pub(crate) sinks: Arc<std::sync::OnceLock<crate::sinks::redis::StreamKeys>>,
}

impl Store {
    pub(crate) fn new(client: Client, keys: Keys) -> Store {
        Store {
            client,
            keys,
            scripts: Scripts::new(),
            sinks: Arc::default(),
        }
    }

    /// Topic channels use sharded pub/sub (Redis 7+) everywhere: in a cluster
    /// it keeps a topic's traffic on its shard, and on any server `SSUBSCRIBE`
    /// is answered before it returns (fred does not wait for the reply to a
    /// plain `SUBSCRIBE`), which makes `watch` return only once subscribed.
    pub(crate) fn publish_command(&self) -> &'static str {
        "SPUBLISH"
    }

    async fn eval(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<Value, BrokerError> {
        script
            .evalsha_with_reload(&self.client, keys, args)
            .await
            .map_err(unavailable)
    }

    fn publish_call(&self, req: &PublishRequest) -> (Vec<String>, Vec<Value>) {
        let t = &req.topic;
        let idem_key = req.idempotency_key.as_deref().unwrap_or("");
        let mut keys = vec![
            self.keys.meta(t),
            self.keys.history(t),
            self.keys.idempotency(t, idem_key),
        ];
        let window = match req.idempotency_key {
            Some(_) => ms(req.options.idempotency_window),
            None => 0,
        };
        // Serializing a serde_json::Value cannot fail.
        let data = serde_json::to_vec(&req.data).unwrap_or_default();
        let args: Vec<Value> = vec![
            self.keys.channel(t).into(),
            self.publish_command().into(),
            i64::try_from(req.options.history_size)
                .unwrap_or(i64::MAX)
                .into(),
            ms(req.options.history_ttl).into(),
            ms(meta_ttl(&req.options)).into(),
            window.into(),
            i64::try_from(crate::broker::now_ms()).unwrap_or(0).into(),
            crate::broker::random_uuid().simple().to_string().into(),
            req.event.clone().into(),
            Bytes::from(data).into(),
        ];
        let mut args = args;
        // Webhook sinks (issue 10): the matching sinks' streams, queued atomically.
        if let Some(sinks) = self.sinks.get() {
            keys.extend(sinks.matching(t, &req.event));
            if keys.len() > 3 {
                args.push(t.as_str().into());
            }
        }
        (keys, args)
    }

    /// Runs the publish script once.
    pub(crate) async fn publish(&self, req: &PublishRequest) -> Result<Position, BrokerError> {
        let (keys, args) = self.publish_call(req);
        position_of(self.eval(&self.scripts.publish, keys, args).await?)
    }

    /// Publishes several in one pipeline (one round trip); each result stands alone.
    pub(crate) async fn publish_batch(
        &self,
        reqs: &[PublishRequest],
    ) -> Vec<Result<Position, BrokerError>> {
        let pipeline = self.client.pipeline();
        for req in reqs {
            let (keys, args) = self.publish_call(req);
            // Pipelines have no EVALSHA method: send it as a custom command
            // routed by the topic's slot (all its keys share it).
            let command =
                CustomCommand::new_static("EVALSHA", ClusterHash::from(keys[0].as_str()), false);
            let mut argv: Vec<Value> = Vec::with_capacity(2 + keys.len() + args.len());
            argv.push(self.scripts.publish.sha1().clone().into());
            argv.push(Value::from(keys.len() as i64));
            argv.extend(keys.into_iter().map(Value::from));
            argv.extend(args);
            let queued: Result<(), RedisError> = pipeline.custom(command, argv).await;
            if let Err(e) = queued {
                return reqs.iter().map(|_| Err(unavailable(e.clone()))).collect();
            }
        }
        let results = pipeline.try_all::<Value>().await;
        let mut out = Vec::with_capacity(reqs.len());
        for (req, result) in reqs.iter().zip(results) {
            out.push(match result {
                Ok(v) => position_of(v),
                // The script cache was flushed (a Redis restart): nothing ran.
                Err(e) if e.details().starts_with("NOSCRIPT") => self.publish(req).await,
                Err(e) => Err(unavailable(e)),
            });
        }
        out
    }

    /// Reads a topic's position and, per `mode`, some of its history; a
    /// topic that was never published stays without keys.
    pub(crate) async fn read(
        &self,
        topic: &Topic,
        mode: ReadMode,
        options: &TopicOptions,
    ) -> Result<Snapshot, BrokerError> {
        let (mode_name, offset, count) = match mode {
            ReadMode::Position => ("none", 0, 0),
            ReadMode::After { offset, count } => ("after", offset, count),
            ReadMode::Newest { count } => ("newest", 0, count),
        };
        let keys = vec![self.keys.meta(topic), self.keys.history(topic)];
        let args: Vec<Value> = vec![
            ms(meta_ttl(options)).into(),
            mode_name.into(),
            offset.to_string().into(),
            i64::try_from(count.max(1)).unwrap_or(i64::MAX).into(),
        ];
        let mut parts = self
            .eval(&self.scripts.read, keys, args)
            .await?
            .into_array()
            .into_iter();
        let (Some(epoch), Some(top), Some(entries)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(BrokerError::Corrupt("read script reply".into()));
        };
        let epoch = Epoch::from_wire(
            epoch
                .as_str()
                .ok_or_else(|| BrokerError::Corrupt("epoch".into()))?
                .as_ref(),
        );
        let offset = top
            .as_u64()
            .ok_or_else(|| BrokerError::Corrupt("offset".into()))?;
        let oldest_kept = crate::broker::now_ms()
            .saturating_sub(u64::try_from(options.history_ttl.as_millis()).unwrap_or(u64::MAX));
        let mut publications = Vec::new();
        for entry in entries.into_array() {
            let bytes = entry
                .as_bytes()
                .ok_or_else(|| BrokerError::Corrupt("history entry".into()))?;
            let (e, p) = wire::decode_publication(topic, bytes)?;
            if e == epoch && p.ts >= oldest_kept {
                publications.push(p);
            }
        }
        if matches!(mode, ReadMode::Newest { .. }) {
            publications.reverse();
        }
        Ok(Snapshot {
            position: Position { epoch, offset },
            publications,
        })
    }

    /// Moves `topic` from `old` (whose offset went backwards) to a new random
    /// epoch, unless another node already did; returns whether this call did.
    pub(crate) async fn new_epoch(&self, topic: &Topic, old: &Epoch) -> Result<bool, BrokerError> {
        let keys = vec![self.keys.meta(topic), self.keys.history(topic)];
        let args: Vec<Value> = vec![old.as_str().into(), Epoch::random().as_str().into()];
        let moved = self.eval(&self.scripts.new_epoch, keys, args).await?;
        Ok(moved.as_i64() == Some(1))
    }

    /// Adds or refreshes a member until `ttl` from now; `announce` publishes
    /// a `join` now; `join_leave` makes its expiry announce a `leave`.
    pub(crate) async fn join(
        &self,
        topic: &Topic,
        member: &Member,
        ttl: Duration,
        join_leave: bool,
        announce: bool,
    ) -> Result<(), BrokerError> {
        let expiry =
            crate::broker::now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(0));
        let keys = vec![
            self.keys.presence_members(topic),
            self.keys.presence_expiry(topic),
        ];
        let args: Vec<Value> = vec![
            member.client_id.clone().into(),
            wire::encode_stored_member(member, join_leave).into(),
            i64::try_from(expiry).unwrap_or(i64::MAX).into(),
            (ms(ttl) * 2).into(),
            self.keys.channel(topic).into(),
            self.publish_command().into(),
            if announce { "1" } else { "0" }.into(),
            wire::encode_presence(member, true).into(),
        ];
        self.eval(&self.scripts.join, keys, args).await.map(drop)
    }

    /// Removes a member; `announce` publishes a `leave` if it was present.
    pub(crate) async fn leave(
        &self,
        topic: &Topic,
        member: &Member,
        announce: bool,
    ) -> Result<(), BrokerError> {
        let keys = vec![
            self.keys.presence_members(topic),
            self.keys.presence_expiry(topic),
        ];
        let args: Vec<Value> = vec![
            member.client_id.clone().into(),
            self.keys.channel(topic).into(),
            self.publish_command().into(),
            if announce { "1" } else { "0" }.into(),
            wire::encode_presence(member, false).into(),
        ];
        self.eval(&self.scripts.leave, keys, args).await.map(drop)
    }

    /// The live members (expired ones are removed on the way, their `leave`
    /// announced when their namespace has join/leave).
    pub(crate) async fn presence(&self, topic: &Topic) -> Result<Vec<Member>, BrokerError> {
        let keys = vec![
            self.keys.presence_members(topic),
            self.keys.presence_expiry(topic),
        ];
        let now = i64::try_from(crate::broker::now_ms()).unwrap_or(i64::MAX);
        let args: Vec<Value> = vec![
            Value::from(now),
            self.keys.channel(topic).into(),
            self.publish_command().into(),
        ];
        let reply = self.eval(&self.scripts.presence, keys, args).await?;
        let mut members = Vec::new();
        for v in reply.into_array() {
            if let Some(bytes) = v.as_bytes() {
                members.push(wire::decode_stored_member(bytes)?);
            }
        }
        members.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(members)
    }
}

/// Parses a publish script's `{offset, epoch}`.
fn position_of(v: Value) -> Result<Position, BrokerError> {
    let mut parts = v.into_array().into_iter();
    match (parts.next(), parts.next()) {
        (Some(offset), Some(epoch)) => Ok(Position {
            offset: offset
                .as_u64()
                .ok_or_else(|| BrokerError::Corrupt("publish offset".into()))?,
            epoch: Epoch::from_wire(
                epoch
                    .as_str()
                    .ok_or_else(|| BrokerError::Corrupt("publish epoch".into()))?
                    .as_ref(),
            ),
        }),
        _ => Err(BrokerError::Corrupt("publish script reply".into())),
    }
}
