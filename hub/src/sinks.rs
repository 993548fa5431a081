//! Webhook sinks: backend services that receive every matching publication
//! by HTTP, at least once, signed per Standard Webhooks 1.0, retried with
//! backoff, dead-lettered after `max_attempts` (see `docs/webhooks.md`).
//!
//! A sink is one more kind of subscriber. This module owns what every
//! engine shares: which sinks want a publication ([`SinkSet`]), the
//! delivery body and its `webhook-id` ([`Delivery`]), the operator view
//! ([`SinkEngine`]: stats, dead letters, replay, delete).
//!
//! ## Layout
//! - `sign`: the `webhook-signature` header.
//! - `http`: one attempt over HTTP and the retry delay.
//! - `stats`: per-sink counters and their Prometheus text.
//! - `memory`: the in-process engine: bounded queues per sink, lost on restart.
//! - `redis`: the Redis engine: a stream per sink, appended by the publish
//!   script, delivered by the node holding the sink's lease.
//! - `lifecycle`: `occupied`, `vacated`, `join`, `leave` events, queued like
//!   publications (occupancy per node on memory, cluster-wide on Redis).
//! - `api`: the operator endpoints' hub side (operator keys only).

pub mod api;
pub mod http;
pub mod lifecycle;
pub mod memory;
pub mod redis;
pub mod sign;
pub mod stats;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::broker::memory::MemoryBroker;
use crate::broker::redis::RedisBroker;
use crate::broker::{Epoch, Publication};
use crate::config::{LifecycleEvent, WebhookConfig};
use crate::hub::Hub;
use crate::protocol::frames::Member;
use crate::topic::Topic;
use memory::MemorySinks;
use redis::RedisSinks;

pub use stats::{SinkCounters, SinkStats};

/// One delivery to one sink: what is POSTed, and what it is about.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The Standard Webhooks `webhook-id`: the same on every retry and replay.
    pub webhook_id: String,
    /// The publication's topic (the ordering lane with `ordering = "topic"`).
    pub topic: Topic,
    /// The publication's offset (0 for lifecycle events).
    pub offset: u64,
    /// The event name (`occupied`… for lifecycle events).
    pub event: String,
    /// The JSON body, encoded once.
    pub body: Bytes,
    /// Attempts made so far.
    pub attempts: u32,
    /// Redis engine: the entry's id in the sink's stream (acknowledged when done).
    pub stream_id: Option<String>,
}

/// The body of a publication delivery, field for field as the contract names them.
#[derive(Serialize)]
struct PublicationBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sink: &'a str,
    topic: &'a str,
    epoch: &'a str,
    offset: u64,
    event: &'a str,
    data: &'a Value,
    ts: u64,
    id: &'a str,
}

/// The body of a lifecycle delivery (`member` for `join` and `leave` only).
#[derive(Serialize)]
struct LifecycleBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sink: &'a str,
    topic: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    member: Option<&'a Member>,
    ts: u64,
}

/// The `webhook-id` of `publication_id` for `sink`: stable (a retry, a
/// replay, or a second queueing of the same publication has the same id),
/// and different per sink.
pub fn webhook_id(sink: &str, publication_id: &str) -> String {
    let digest = Sha256::digest(format!("{sink}\n{publication_id}").as_bytes());
    format!("msg_{}", hex::encode(&digest[..16]))
}

impl Delivery {
    /// The delivery of a publication to `sink`.
    pub fn publication(sink: &str, epoch: &Epoch, p: &Publication) -> Delivery {
        let body = PublicationBody {
            kind: "publication",
            sink,
            topic: p.topic.as_str(),
            epoch: epoch.as_str(),
            offset: p.offset,
            event: &p.event,
            data: &p.data,
            ts: p.ts,
            id: &p.id,
        };
        // A `Value` always serialises; an empty body would be refused by the receiver.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        Delivery {
            webhook_id: webhook_id(sink, &p.id),
            topic: p.topic.clone(),
            offset: p.offset,
            event: p.event.clone(),
            body: Bytes::from(body),
            attempts: 0,
            stream_id: None,
        }
    }
}

impl Delivery {
    /// The delivery of a lifecycle event to `sink`; `event_id` names the
    /// event (its `webhook-id` derives from it, so it is the same on every
    /// retry and replay).
    pub fn lifecycle(
        sink: &str,
        kind: LifecycleEvent,
        topic: &Topic,
        member: Option<&Member>,
        ts: u64,
        event_id: &str,
    ) -> Delivery {
        let body = LifecycleBody {
            kind: kind.as_str(),
            sink,
            topic: topic.as_str(),
            member,
            ts,
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        Delivery {
            webhook_id: webhook_id(sink, event_id),
            topic: topic.clone(),
            offset: 0,
            event: kind.as_str().to_owned(),
            body: Bytes::from(body),
            attempts: 0,
            stream_id: None,
        }
    }
}

/// A delivery that failed `max_attempts` times.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The delivery as it was (its `webhook-id` and body).
    pub delivery: Delivery,
    /// The last attempt's HTTP status, if the receiver answered.
    pub last_status: Option<u16>,
    /// The last attempt's failure.
    pub last_error: String,
    /// When it was dead-lettered, ms since the Unix epoch.
    pub dead_ts: u64,
}

/// Why an operator request on the sinks failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// No sink has this name.
    #[error("no webhook sink is named `{0}`")]
    UnknownSink(String),
    /// The engine's store cannot be reached.
    #[error("webhook store unavailable: {0}")]
    Unavailable(String),
}

/// Why the sinks could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The HTTP client could not be built (TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// Redis Cluster: the sinks' streams cannot share a slot with every topic.
    #[error("webhook sinks are not supported on Redis Cluster yet (use a standalone Redis)")]
    Cluster,
    /// The Redis engine's connection could not be set up.
    #[error("{0}")]
    Redis(SinkError),
}

/// Starts the configured sinks (if any) on the hub's engine and hands the
/// operator view to the hub. `memory`: the memory broker, when it is the engine.
pub fn start(
    hub: &Hub,
    memory: Option<&MemoryBroker>,
    redis: Option<&RedisBroker>,
) -> Result<(), StartError> {
    if hub.config.webhooks.is_empty() {
        return Ok(());
    }
    let set = SinkSet::new(&hub.config.webhooks);
    let http = http::client()?;
    let engine: Arc<dyn SinkEngine> = match memory {
        Some(broker) => {
            let sinks = MemorySinks::start(set, http);
            broker.set_sinks(sinks.clone());
            if lifecycle::wanted(&hub.config.webhooks) {
                let events = lifecycle::Lifecycle::memory(hub.registry.clone(), sinks.clone());
                let _ = hub.lifecycle.set(Arc::new(events));
            }
            sinks
        }
        None => {
            let (Some(broker), Some(url)) = (redis, &hub.config.redis_url) else {
                return Ok(());
            };
            if broker.is_clustered() {
                return Err(StartError::Cluster);
            }
            let prefix = &hub.config.redis.key_prefix;
            let (sinks, streams) =
                RedisSinks::start(url.expose(), prefix, &hub.node, set.clone(), http)
                    .map_err(StartError::Redis)?;
            broker.set_sink_streams(streams);
            if lifecycle::wanted(&hub.config.webhooks) {
                let (client, me) = sinks.client_and_name();
                let inner = lifecycle::redis::RedisLifecycle::start(
                    client,
                    prefix,
                    me,
                    set,
                    hub.registry.clone(),
                );
                let _ = hub
                    .lifecycle
                    .set(Arc::new(lifecycle::Lifecycle::redis(inner)));
            }
            sinks
        }
    };
    // `build` calls this once per hub; a second engine would never be used.
    if hub.sinks.set(engine).is_err() {
        tracing::warn!("webhook sinks started twice; the second start is ignored");
    }
    Ok(())
}

/// The configured sinks and their topic/event filters.
#[derive(Debug, Clone)]
pub struct SinkSet {
    sinks: Arc<[WebhookConfig]>,
}

impl SinkSet {
    /// The sinks of a configuration.
    pub fn new(sinks: &[WebhookConfig]) -> SinkSet {
        SinkSet {
            sinks: sinks.into(),
        }
    }

    /// Every sink.
    pub fn all(&self) -> &[WebhookConfig] {
        &self.sinks
    }

    /// The sinks that want a publication of `event` on `topic`.
    pub fn matching<'a>(
        &'a self,
        topic: &'a Topic,
        event: &'a str,
    ) -> impl Iterator<Item = &'a WebhookConfig> + 'a {
        self.sinks.iter().filter(move |s| s.wants(topic, event))
    }
}

/// The operator's view of the sinks, whatever engine keeps their queues.
#[async_trait]
pub trait SinkEngine: Send + Sync + fmt::Debug + 'static {
    /// Every sink's stats, in configuration order.
    async fn stats(&self) -> Result<Vec<SinkStats>, SinkError>;

    /// Up to `limit` dead letters of `sink`, oldest first.
    async fn dead(&self, sink: &str, limit: usize) -> Result<Vec<DeadLetter>, SinkError>;

    /// Queues dead letters again (all, or those with the given ids) with
    /// their original `webhook-id`; returns how many.
    async fn replay(&self, sink: &str, ids: Option<&[String]>) -> Result<usize, SinkError>;

    /// Deletes dead letters (all, or those with the given ids); returns how many.
    async fn delete(&self, sink: &str, ids: Option<&[String]>) -> Result<usize, SinkError>;

    /// Appends the per-sink Prometheus text.
    async fn render_metrics(&self, out: &mut String);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_ids_are_stable_and_differ_per_sink() {
        assert_eq!(webhook_id("a", "p1"), webhook_id("a", "p1"));
        assert_ne!(webhook_id("a", "p1"), webhook_id("b", "p1"));
        assert_ne!(webhook_id("a", "p1"), webhook_id("a", "p2"));
        assert!(webhook_id("a", "p1").starts_with("msg_"));
    }

    #[test]
    fn the_body_has_the_contract_fields() {
        let p = Publication {
            topic: "cities:blr".parse().unwrap(),
            offset: 42,
            event: "city.updated".into(),
            data: serde_json::json!({"n": 1}),
            ts: 1764150000000,
            id: "pid".into(),
        };
        let d = Delivery::publication("rider-city-sync", &Epoch::from_wire("ep"), &p);
        let body: Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"type":"publication","sink":"rider-city-sync","topic":"cities:blr",
                "epoch":"ep","offset":42,"event":"city.updated","data":{"n":1},
                "ts":1764150000000u64,"id":"pid"})
        );
    }
}
