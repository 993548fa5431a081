//! The hub's side of the operator endpoints that the console uses:
//! `GET /api/v1/topics` (topics with subscribers now, from this node's
//! registry, with their positions from the broker) and
//! `POST /api/v1/tokens/subscribe` (a short-lived subscribe-only JWT).

use hubbub_api::tokens::SubscribeToken;
use hubbub_api::topics::{TopicSummary, Topics};
use hubbub_api::{ApiError, ErrorCode};

use super::{HubBackend, Principal};
use crate::auth::{AuthError, Claims, mint};
use crate::hub::HubError;

impl HubBackend {
    /// Topics with subscribers on this node whose name starts with `prefix`
    /// (the caller was checked to be an operator by the router).
    pub(super) async fn list_topics(&self, prefix: &str, limit: usize) -> Result<Topics, ApiError> {
        let (counts, truncated) = self.0.registry.topic_subscribers(prefix, limit);
        let mut topics = Vec::with_capacity(counts.len());
        for (topic, subscribers) in counts {
            let Some(ns) = self.0.config.namespace(topic.namespace()) else {
                continue;
            };
            let page = self
                .0
                .history(&topic, ns, None, Some(0))
                .await
                .map_err(|e| self.fail(e))?;
            topics.push(TopicSummary {
                topic: topic.as_str().to_owned(),
                subscribers,
                position: page.position.to_wire(),
            });
        }
        Ok(Topics { topics, truncated })
    }

    /// A JWT for `operator:<key name>` that may subscribe to exactly `topics`
    /// (the caller was checked to be an operator by the router).
    pub(super) async fn mint_subscribe_token(
        &self,
        who: &Principal,
        topics: &[String],
        ttl_secs: u64,
    ) -> Result<SubscribeToken, ApiError> {
        let Principal::ApiKey(key) = who else {
            return Err(ApiError::new(ErrorCode::Forbidden, "operator keys only"));
        };
        let mut subscribe = Vec::with_capacity(topics.len());
        for t in topics {
            let (topic, _) = self.0.resolve(t).map_err(|e| self.fail(e))?;
            subscribe.push(topic.as_str().to_owned());
        }
        let now = crate::broker::now_ms() / 1000;
        let sub = format!("operator:{}", key.name);
        let claims = Claims {
            sub: sub.clone(),
            exp: now + ttl_secs,
            iat: Some(now),
            subscribe,
            publish: Vec::new(),
            info: None,
        };
        match mint(&self.0.config.auth, &claims) {
            Ok(token) => Ok(SubscribeToken {
                token,
                expires_in: ttl_secs,
                sub,
            }),
            Err(e @ AuthError::MintNeedsSecret { .. }) => Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("this hub cannot mint tokens ({e}); read history instead"),
            )),
            Err(e) => Err(self.fail(HubError::Auth(e))),
        }
    }
}
