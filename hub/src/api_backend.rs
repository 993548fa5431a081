//! The hub's implementation of the REST API's [`Backend`]: who a bearer is
//! (API key or JWT), what it may do, and the mapping of [`HubError`] onto the
//! API's error codes. The operator endpoints the console uses are in
//! `operator` (`GET /api/v1/outbox` in `outbox`).

mod operator;
mod outbox;

use std::sync::Arc;

use async_trait::async_trait;
use hubbub_api::types::{
    self as api, DisconnectRequest, Disconnected, History, Info, Presence, PublishRequest,
};
use hubbub_api::{ApiError, Backend, ErrorCode};

use crate::auth::{ApiKeyIdentity, Identity, Permissions};
use crate::broker::{BrokerError, Epoch, Position};
use crate::config::NamespaceConfig;
use crate::hub::{Hub, HubError, PublishInput};
use crate::protocol::CloseCode;
use crate::topic::Topic;

/// The answer to a bearer that is no configured API key and no JWT.
pub const UNKNOWN_KEY: &str = "not a valid API key: no [[api_keys]] entry has this key's SHA-256 \
     (check that the whole key was sent; `printf %s KEY | sha256sum` must print its key_sha256)";

/// A REST caller.
#[derive(Debug)]
pub enum Principal {
    /// A configured API key.
    ApiKey(ApiKeyIdentity),
    /// A user token (JWT) presented as bearer.
    User(Identity),
}

impl Principal {
    fn can_publish(&self, topic: &Topic) -> bool {
        self.permissions().can_publish(topic)
    }

    /// Reading history or presence: API keys by their publish scope, users by
    /// their subscribe scope (or a public namespace).
    fn can_read(&self, topic: &Topic, ns: &NamespaceConfig) -> bool {
        match self {
            Principal::ApiKey(k) => k.permissions.can_publish(topic),
            Principal::User(u) => ns.public || u.permissions.can_subscribe(topic),
        }
    }

    fn permissions(&self) -> &Permissions {
        match self {
            Principal::ApiKey(k) => &k.permissions,
            Principal::User(u) => &u.permissions,
        }
    }
}

/// The hub as a REST backend.
#[derive(Debug, Clone)]
pub struct HubBackend(pub Arc<Hub>);

/// What a REST caller is told when the engine is unavailable.
pub const UNAVAILABLE_MESSAGE: &str =
    "the engine is unavailable and nothing was stored; retry (with the same idempotency key)";

/// The REST error for a hub error. Engine failures are logged here (their
/// text names hosts and Redis internals) and answered with a fixed message.
pub(crate) fn api_error(err: HubError) -> ApiError {
    match err {
        HubError::Broker(BrokerError::Unavailable(detail)) => {
            tracing::warn!(error = %detail, "REST request answered 503: the engine is unavailable");
            ApiError::new(ErrorCode::Unavailable, UNAVAILABLE_MESSAGE)
        }
        HubError::Broker(BrokerError::Corrupt(detail)) => {
            tracing::error!(error = %detail, "REST request answered 500: corrupt engine data");
            ApiError::new(ErrorCode::Internal, "internal error")
        }
        other => ApiError::new(other.code(), other.to_string()),
    }
}

impl HubBackend {
    fn fail(&self, err: HubError) -> ApiError {
        self.0.metrics.error(err.code());
        api_error(err)
    }

    fn forbidden(&self, who: &Principal, action: &'static str, topic: Topic) -> ApiError {
        let (scope, patterns) = match (who, action) {
            (Principal::ApiKey(k), _) => ("the API key's `publish`", k.permissions.publish_text()),
            (Principal::User(u), "publish") => {
                ("the token's `publish`", u.permissions.publish_text())
            }
            (Principal::User(u), _) => ("the token's `subscribe`", u.permissions.subscribe_text()),
        };
        self.fail(HubError::NotPermitted {
            action,
            topic,
            scope,
            patterns,
        })
    }

    fn readable(&self, who: &Principal, topic: &str) -> Result<(Topic, NamespaceConfig), ApiError> {
        let (topic, ns) = self.0.resolve(topic).map_err(|e| self.fail(e))?;
        if !who.can_read(&topic, ns) {
            return Err(self.forbidden(who, "read", topic));
        }
        Ok((topic, ns.clone()))
    }
}

#[async_trait]
impl Backend for HubBackend {
    type Principal = Principal;

    /// `limits.api_rate` applies per caller: per API key (by name) and per
    /// user token (by `sub`), in separate key spaces.
    fn authenticate(&self, bearer: &str) -> Result<Principal, ApiError> {
        let (who, bucket): (Principal, Arc<str>) = match self.0.api_keys.lookup(bearer) {
            Some(key) => (
                Principal::ApiKey(key.clone()),
                Arc::from(format!("key:{}", key.name)),
            ),
            None if bearer.split('.').count() != 3 => {
                // Neither a configured key nor shaped like a JWT: most likely
                // a mistyped or revoked API key, which "malformed token" hides.
                self.0.metrics.error(ErrorCode::Unauthorized);
                return Err(ApiError::new(ErrorCode::Unauthorized, UNKNOWN_KEY));
            }
            None => {
                let user = self
                    .0
                    .verifier
                    .verify(bearer)
                    .map_err(|e| self.fail(HubError::Auth(e)))?;
                let bucket = Arc::from(format!("user:{}", user.user));
                (Principal::User(user), bucket)
            }
        };
        if !self.0.api_limiter.allow(&bucket) {
            self.0
                .metrics
                .rejected(crate::metrics::Rejection::RateLimited);
            return Err(self.fail(HubError::RateLimited));
        }
        Ok(who)
    }

    /// Only API keys with `operator = true`; a JWT never is one.
    fn require_operator(&self, who: &Principal) -> Result<(), ApiError> {
        let message = match who {
            Principal::ApiKey(k) if k.operator => return Ok(()),
            Principal::ApiKey(_) => "this endpoint needs an operator key (`operator = true`)",
            Principal::User(_) => "this endpoint needs an operator key, not a user token",
        };
        self.0.metrics.error(ErrorCode::Forbidden);
        Err(ApiError::new(ErrorCode::Forbidden, message))
    }

    async fn publish(
        &self,
        who: &Principal,
        req: PublishRequest,
    ) -> Result<api::Position, ApiError> {
        let (topic, ns) = self.0.resolve(&req.topic).map_err(|e| self.fail(e))?;
        if !who.can_publish(&topic) {
            return Err(self.forbidden(who, "publish", topic));
        }
        let input = PublishInput {
            topic: req.topic,
            event: req.event,
            data: req.data,
            idempotency_key: req.idempotency_key,
        };
        let position = self
            .0
            .publish(topic, ns, input)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(position.to_wire())
    }

    /// One pipelined broker call for every publication that passes its checks.
    async fn batch(
        &self,
        who: &Principal,
        reqs: Vec<PublishRequest>,
    ) -> Vec<Result<api::Position, ApiError>> {
        let mut out: Vec<Option<Result<api::Position, ApiError>>> = Vec::with_capacity(reqs.len());
        let mut items = Vec::new();
        for req in reqs {
            match self.0.resolve(&req.topic) {
                Err(e) => out.push(Some(Err(self.fail(e)))),
                Ok((topic, _)) if !who.can_publish(&topic) => {
                    out.push(Some(Err(self.forbidden(who, "publish", topic))));
                }
                Ok((topic, ns)) => {
                    out.push(None);
                    let input = PublishInput {
                        topic: req.topic,
                        event: req.event,
                        data: req.data,
                        idempotency_key: req.idempotency_key,
                    };
                    items.push((topic, ns, input));
                }
            }
        }
        let mut results = self.0.publish_batch(items).await.into_iter();
        out.into_iter()
            .map(|slot| match slot {
                Some(r) => r,
                None => match results.next() {
                    Some(Ok(p)) => Ok(p.to_wire()),
                    Some(Err(e)) => Err(self.fail(e)),
                    None => Err(ApiError::new(ErrorCode::Internal, "missing batch result")),
                },
            })
            .collect()
    }

    async fn history(
        &self,
        who: &Principal,
        topic: &str,
        since: Option<(String, u64)>,
        limit: Option<u64>,
    ) -> Result<History, ApiError> {
        let (topic, ns) = self.readable(who, topic)?;
        let since = since.map(|(epoch, offset)| Position {
            epoch: Epoch::from_wire(&epoch),
            offset,
        });
        let page = self
            .0
            .history(&topic, &ns, since.as_ref(), limit)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(History {
            publications: page.publications.iter().map(|p| p.to_wire()).collect(),
            position: page.position.to_wire(),
        })
    }

    async fn presence(&self, who: &Principal, topic: &str) -> Result<Presence, ApiError> {
        let (topic, ns) = self.readable(who, topic)?;
        let members = self
            .0
            .presence(&topic, &ns)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(Presence { members })
    }

    async fn disconnect(
        &self,
        who: &Principal,
        req: DisconnectRequest,
    ) -> Result<Disconnected, ApiError> {
        self.require_operator(who)?;
        let code = if req.reconnect.unwrap_or(true) {
            CloseCode::Rebalance
        } else {
            CloseCode::Forbidden
        };
        let n = self
            .0
            .disconnect_user(&req.user, code)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(Disconnected { disconnected: n })
    }

    async fn topics(
        &self,
        _operator: &Principal,
        prefix: &str,
        limit: usize,
    ) -> Result<hubbub_api::topics::Topics, ApiError> {
        self.list_topics(prefix, limit).await
    }

    async fn subscribe_token(
        &self,
        who: &Principal,
        topics: &[String],
        ttl_secs: u64,
    ) -> Result<hubbub_api::tokens::SubscribeToken, ApiError> {
        self.mint_subscribe_token(who, topics, ttl_secs).await
    }

    async fn outbox(&self, who: &Principal) -> Result<hubbub_api::outbox::OutboxState, ApiError> {
        self.require_operator(who)?;
        Ok(self.outbox_state())
    }

    async fn info(&self, who: &Principal) -> Result<Info, ApiError> {
        self.require_operator(who)?;
        let nodes = self
            .0
            .control()
            .nodes(self.0.local_info())
            .await
            .map_err(|e| self.fail(HubError::Broker(e)))?;
        Ok(Info {
            nodes: nodes
                .into_iter()
                .map(|n| api::NodeInfo {
                    name: n.name,
                    connections: n.connections,
                    subscriptions: n.subscriptions,
                    topics: n.topics,
                    uptime_secs: n.uptime_secs,
                })
                .collect(),
        })
    }
}
