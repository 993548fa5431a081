//! [`Hub`]: the node's shared services (configuration, token verification,
//! broker, registry, metrics) and the operations that both the WebSocket
//! sessions and the REST API perform, with one error type mapped once onto the
//! contract's codes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::Notify;

use crate::auth::{ApiKeys, AuthError, Verifier};
use crate::broker::{
    Broker, BrokerError, ControlPlane, HistoryPage, NodeInfo, Position, PresenceStore,
    PublishRequest, StreamStore, TopicOptions,
};
use crate::config::{Config, NamespaceConfig};
use crate::limits::KeyedLimiter;
use crate::metrics::{Gauges, Metrics};
use crate::protocol::frames::Member;
use crate::protocol::{CloseCode, ErrorCode};
use crate::registry::Registry;
use crate::topic::{Topic, TopicError};

/// The most publications one history read returns.
pub const MAX_HISTORY_LIMIT: usize = 1000;
/// The longest event name, idempotency key or similar short string.
pub const MAX_NAME_BYTES: usize = 255;
/// Room left in a frame for the `pub` envelope around the data.
const ENVELOPE_BYTES: usize = 1024;

/// Everything that can go wrong in a hub operation, each with its wire code.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The topic name is malformed.
    #[error(transparent)]
    InvalidTopic(#[from] TopicError),
    /// The namespace is not configured. The message lists the configured
    /// ones and how to add this one.
    #[error(
        "namespace `{name}` is not configured; the configured ones are {}. To add it, put a \
         `[namespaces.{name}]` table in the configuration file or set \
         HUBBUB_NAMESPACES__{}__HISTORY_SIZE=100 (configured namespaces replace the default set, \
         so list every one you use)",
        list_names(configured), name.to_uppercase()
    )]
    UnknownNamespace {
        /// The topic's namespace.
        name: String,
        /// The configured namespaces.
        configured: Vec<String>,
    },
    /// The token or key does not allow the action on the topic. The message
    /// names the caller's patterns for the action and one that would cover
    /// the topic (patterns are no secret: the caller holds them).
    #[error(
        "not allowed to {action} `{topic}`: {}",
        not_permitted_hint(topic, scope, patterns)
    )]
    NotPermitted {
        /// `subscribe`, `publish` or `read`.
        action: &'static str,
        /// The topic.
        topic: Topic,
        /// Whose patterns and which claim, e.g. "the token's `subscribe`".
        scope: &'static str,
        /// The caller's patterns for this action.
        patterns: Vec<String>,
    },
    /// The namespace does not accept publications from clients.
    #[error("namespace `{0}` does not accept client publications")]
    ClientPublishDisabled(String),
    /// The namespace has no presence.
    #[error("namespace `{0}` has presence disabled")]
    PresenceDisabled(String),
    /// The event name is empty or too long.
    #[error("event must be 1 to 255 bytes, got {0}")]
    EventName(usize),
    /// The idempotency key is empty or too long.
    #[error("idempotency_key must be 1 to 255 bytes, got {0}")]
    IdempotencyKey(usize),
    /// The data is too large to fit a frame.
    #[error("data is {size} bytes; the limit is {limit}")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Allowed size.
        limit: usize,
    },
    /// `limit` above [`MAX_HISTORY_LIMIT`].
    #[error("history limit {0} is above the maximum of 1000")]
    HistoryLimit(u64),
    /// Too many subscriptions on this connection.
    #[error("at most {0} subscriptions per connection")]
    SubscriptionLimit(usize),
    /// Not subscribed to the topic.
    #[error("not subscribed to `{0}`")]
    NotSubscribed(Topic),
    /// Already subscribed to the topic.
    #[error("already subscribed to `{0}`")]
    AlreadySubscribed(Topic),
    /// A command before `connect` (the connection is then closed with 4000).
    #[error(
        "`{0}` before `connect`: the first command must be `connect` with a token; send \
         {{\"type\":\"connect\",\"id\":1,\"token\":\"…\"}}, wait for `connected`, then `{0}`"
    )]
    ConnectFirst(&'static str),
    /// `connect` sent twice.
    #[error("already connected")]
    AlreadyConnected,
    /// A refresh token for another user.
    #[error("the new token is for another user")]
    UserMismatch,
    /// The token was refused.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The broker failed; nothing was accepted.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The node is shutting down.
    #[error("the node is draining")]
    Draining,
    /// Over a configured rate.
    #[error("too many requests; slow down")]
    RateLimited,
    /// Over a configured connection limit.
    #[error("connection limit reached")]
    ConnectionLimit,
}

/// `` `a`, `b` `` (or "none").
fn list_names(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

/// The second half of a `forbidden` message: what the caller has, and what
/// would cover `topic` (`ns:*` does not cover the bare topic `ns`).
fn not_permitted_hint(topic: &Topic, scope: &str, patterns: &[String]) -> String {
    let has = if patterns.is_empty() {
        format!("{scope} patterns are empty")
    } else {
        let list: Vec<String> = patterns.iter().map(|p| format!("`{p}`")).collect();
        format!("{scope} patterns are {}", list.join(", "))
    };
    let ns = topic.namespace();
    let would = match topic.resource() {
        Some(_) => format!("a pattern `{topic}` or `{ns}:*` would cover it"),
        None => format!(
            "a pattern `{ns}` would cover it (`{ns}:*` covers `{ns}:ID` topics, not the bare `{ns}`)"
        ),
    };
    format!("{has}; {would}")
}

/// What a client is told when the engine (Redis) is unavailable: its own
/// error text names hosts and internals and is logged instead.
pub const ENGINE_UNAVAILABLE: &str = "the engine is unavailable; nothing was done, retry";

impl HubError {
    /// The message for the client's `error` frame: the error's text, except
    /// for engine failures, which are logged here (with their detail) and
    /// answered with a fixed message, so Redis text never reaches a client.
    pub fn client_message(&self) -> String {
        match self {
            HubError::Broker(BrokerError::Unavailable(detail)) => {
                tracing::warn!(error = %detail, "request answered `unavailable`: the engine is unavailable");
                ENGINE_UNAVAILABLE.to_owned()
            }
            HubError::Broker(BrokerError::Corrupt(detail)) => {
                tracing::error!(error = %detail, "request answered `internal`: corrupt engine data");
                "internal error".to_owned()
            }
            other => other.to_string(),
        }
    }

    /// The contract's error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            HubError::InvalidTopic(_) => ErrorCode::InvalidTopic,
            HubError::UnknownNamespace { .. } => ErrorCode::UnknownNamespace,
            HubError::NotPermitted { .. } | HubError::ClientPublishDisabled(_) => {
                ErrorCode::Forbidden
            }
            HubError::PresenceDisabled(_)
            | HubError::EventName(_)
            | HubError::IdempotencyKey(_)
            | HubError::AlreadyConnected
            | HubError::ConnectFirst(_) => ErrorCode::BadRequest,
            HubError::TooLarge { .. } => ErrorCode::TooLarge,
            HubError::HistoryLimit(_) | HubError::SubscriptionLimit(_) => ErrorCode::LimitExceeded,
            HubError::NotSubscribed(_) => ErrorCode::NotSubscribed,
            HubError::AlreadySubscribed(_) => ErrorCode::AlreadySubscribed,
            HubError::UserMismatch | HubError::Auth(_) => ErrorCode::Unauthorized,
            HubError::Broker(BrokerError::Unavailable(_)) | HubError::Draining => {
                ErrorCode::Unavailable
            }
            HubError::Broker(BrokerError::Corrupt(_)) => ErrorCode::Internal,
            HubError::Broker(BrokerError::Full(_)) => ErrorCode::LimitExceeded,
            HubError::RateLimited => ErrorCode::RateLimited,
            HubError::ConnectionLimit => ErrorCode::LimitExceeded,
        }
    }
}

/// A publication as requested by a client or the REST API.
#[derive(Debug, Clone)]
pub struct PublishInput {
    /// Topic name (validated here).
    pub topic: String,
    /// Event name.
    pub event: String,
    /// Data.
    pub data: Value,
    /// Optional idempotency key.
    pub idempotency_key: Option<String>,
}

/// The node's shared services.
#[derive(Debug)]
pub struct Hub {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// This node's name.
    pub node: Arc<str>,
    /// The broker engine, whole; callers take the narrow part they need
    /// through [`Hub::streams`], [`Hub::presence_store`] or [`Hub::control`].
    pub broker: Arc<dyn Broker>,
    /// Local connections and subscriptions.
    pub registry: Arc<Registry>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Client token verification.
    pub verifier: Verifier,
    /// REST API keys.
    pub api_keys: ApiKeys,
    /// New connections per client IP (`limits.connection_rate_per_ip`).
    pub ip_limiter: KeyedLimiter<std::net::IpAddr>,
    /// REST requests per API key (`limits.api_rate`, burst twice the rate).
    pub api_limiter: KeyedLimiter<Arc<str>>,
    /// Background work a drain waits for (e.g. the broker calls of a dropped
    /// connection's [`Registration`](crate::connection::Registration)).
    pub tasks: tokio_util::task::TaskTracker,
    /// Webhook sinks' operator view (set once at build when sinks are configured).
    pub sinks: std::sync::OnceLock<Arc<dyn crate::sinks::SinkEngine>>,
    /// Webhook lifecycle events (set once at build when a sink asks for any).
    pub lifecycle: std::sync::OnceLock<Arc<crate::sinks::lifecycle::Lifecycle>>,
    draining: AtomicBool,
    drain_notify: Notify,
    started: Instant,
}

impl Hub {
    /// Assembles a hub from its parts.
    pub fn new(
        config: Arc<Config>,
        node: Arc<str>,
        broker: Arc<dyn Broker>,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Result<Hub, AuthError> {
        let verifier = Verifier::new(&config.auth)?;
        let api_keys = ApiKeys::new(&config.api_keys);
        let limits = &config.limits;
        let ip_limiter =
            KeyedLimiter::new(limits.connection_rate_per_ip, limits.connection_rate_per_ip);
        let api_limiter = KeyedLimiter::new(limits.api_rate, limits.api_rate.saturating_mul(2));
        Ok(Hub {
            ip_limiter,
            api_limiter,
            config,
            node,
            broker,
            registry,
            metrics,
            verifier,
            api_keys,
            tasks: tokio_util::task::TaskTracker::new(),
            sinks: std::sync::OnceLock::new(),
            lifecycle: std::sync::OnceLock::new(),
            draining: AtomicBool::new(false),
            drain_notify: Notify::new(),
            started: Instant::now(),
        })
    }

    /// The broker's topic streams: offsets, history, idempotency, publishing.
    pub fn streams(&self) -> &dyn StreamStore {
        &*self.broker
    }

    /// The broker's presence.
    pub fn presence_store(&self) -> &dyn PresenceStore {
        &*self.broker
    }

    /// The broker's control plane: routing topics to nodes, nodes, readiness.
    pub fn control(&self) -> &dyn ControlPlane {
        &*self.broker
    }

    /// Parses a topic and finds its namespace.
    pub fn resolve(&self, topic: &str) -> Result<(Topic, &NamespaceConfig), HubError> {
        let topic: Topic = topic.parse()?;
        let ns =
            self.config
                .namespace(topic.namespace())
                .ok_or_else(|| HubError::UnknownNamespace {
                    name: topic.namespace().to_owned(),
                    configured: self.config.namespaces.keys().cloned().collect(),
                })?;
        Ok((topic, ns))
    }

    /// Storage options for a namespace.
    pub fn options(&self, ns: &NamespaceConfig) -> TopicOptions {
        TopicOptions {
            history_size: ns.history_size,
            history_ttl: ns.history_ttl,
            idempotency_window: self.config.limits.idempotency_window,
        }
    }

    /// Validates and publishes. Permission checks are the caller's.
    pub async fn publish(
        &self,
        topic: Topic,
        ns: &NamespaceConfig,
        input: PublishInput,
    ) -> Result<Position, HubError> {
        let req = self.prepare(topic, ns, input)?;
        let started = std::time::Instant::now();
        let position = self.streams().publish(req).await?;
        self.metrics.publish_latency.observe(started.elapsed());
        self.metrics.publication();
        Ok(position)
    }

    /// Validates and publishes several in order, in one broker call (a Redis
    /// pipeline); each succeeds or fails on its own. Permission checks are the caller's.
    pub async fn publish_batch(
        &self,
        items: Vec<(Topic, &NamespaceConfig, PublishInput)>,
    ) -> Vec<Result<Position, HubError>> {
        let mut out: Vec<Option<Result<Position, HubError>>> = Vec::with_capacity(items.len());
        let mut valid = Vec::new();
        for (topic, ns, input) in items {
            match self.prepare(topic, ns, input) {
                Ok(req) => {
                    out.push(None);
                    valid.push(req);
                }
                Err(e) => out.push(Some(Err(e))),
            }
        }
        let started = std::time::Instant::now();
        let mut results = if valid.is_empty() {
            Vec::new()
        } else {
            self.streams().publish_batch(valid).await
        }
        .into_iter();
        self.metrics.publish_latency.observe(started.elapsed());
        out.into_iter()
            .map(|slot| match slot {
                Some(r) => r,
                None => match results.next() {
                    Some(Ok(position)) => {
                        self.metrics.publication();
                        Ok(position)
                    }
                    Some(Err(e)) => Err(HubError::Broker(e)),
                    None => Err(HubError::Broker(BrokerError::Corrupt(
                        "the broker answered fewer results than publications".into(),
                    ))),
                },
            })
            .collect()
    }

    /// Checks a publication and builds the broker request.
    fn prepare(
        &self,
        topic: Topic,
        ns: &NamespaceConfig,
        input: PublishInput,
    ) -> Result<PublishRequest, HubError> {
        if input.event.is_empty() || input.event.len() > MAX_NAME_BYTES {
            return Err(HubError::EventName(input.event.len()));
        }
        if let Some(key) = &input.idempotency_key
            && (key.is_empty() || key.len() > MAX_NAME_BYTES)
        {
            return Err(HubError::IdempotencyKey(key.len()));
        }
        let limit = self
            .config
            .limits
            .max_frame_bytes
            .saturating_sub(ENVELOPE_BYTES);
        let size = json_size(&input.data);
        if size > limit {
            return Err(HubError::TooLarge { size, limit });
        }
        if self.is_draining() {
            return Err(HubError::Draining);
        }
        Ok(PublishRequest {
            topic,
            event: input.event,
            data: input.data,
            idempotency_key: input.idempotency_key,
            options: self.options(ns),
        })
    }

    /// Reads history (`limit` defaults to and is capped at [`MAX_HISTORY_LIMIT`]).
    pub async fn history(
        &self,
        topic: &Topic,
        ns: &NamespaceConfig,
        since: Option<&Position>,
        limit: Option<u64>,
    ) -> Result<HistoryPage, HubError> {
        let limit = match limit {
            None => MAX_HISTORY_LIMIT,
            Some(n) if n as usize > MAX_HISTORY_LIMIT => return Err(HubError::HistoryLimit(n)),
            Some(n) => n as usize,
        };
        Ok(self
            .streams()
            .history(topic, since, limit, &self.options(ns))
            .await?)
    }

    /// Lists presence members.
    pub async fn presence(
        &self,
        topic: &Topic,
        ns: &NamespaceConfig,
    ) -> Result<Vec<Member>, HubError> {
        if !ns.presence {
            return Err(HubError::PresenceDisabled(topic.namespace().to_owned()));
        }
        Ok(self.presence_store().presence(topic).await?)
    }

    /// Closes every connection of `user` on every node.
    pub async fn disconnect_user(&self, user: &str, code: CloseCode) -> Result<usize, HubError> {
        Ok(self.control().disconnect_user(user, code).await?)
    }

    /// This node's counts.
    pub fn local_info(&self) -> NodeInfo {
        NodeInfo {
            name: self.node.to_string(),
            connections: self.registry.connection_count(),
            subscriptions: self.registry.subscription_count(),
            topics: self.registry.topic_count(),
            uptime_secs: self.started.elapsed().as_secs(),
        }
    }

    /// Gauges for `/metrics`.
    pub fn gauges(&self) -> Gauges {
        Gauges {
            connections: self.registry.connection_count(),
            subscriptions: self.registry.subscription_count(),
            topics: self.registry.topic_count(),
            store: self.streams().usage(),
        }
    }

    /// Whether a browser `Origin` may connect (`allowed_origins`; empty allows all).
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        let allowed = &self.config.allowed_origins;
        match origin {
            None => true,
            Some(o) => allowed.is_empty() || allowed.iter().any(|a| a == o.trim_end_matches('/')),
        }
    }

    /// Starts draining: new connections are refused and every open one is
    /// told `disconnect` 4200.
    pub fn drain(&self) {
        if !self.draining.swap(true, Ordering::AcqRel) {
            self.drain_notify.notify_waiters();
        }
        for conn in self.registry.connections() {
            conn.close(CloseCode::Shutdown);
        }
    }

    /// Whether the node is draining.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Completes when draining starts.
    pub async fn draining(&self) {
        loop {
            let notified = self.drain_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_draining() {
                return;
            }
            notified.await;
        }
    }
}

/// The size of `value` as compact JSON, without allocating it.
pub fn json_size(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter(0);
    match serde_json::to_writer(&mut c, value) {
        Ok(()) => c.0,
        Err(_) => usize::MAX,
    }
}
