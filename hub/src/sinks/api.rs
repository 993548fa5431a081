//! The hub's side of the webhook operator endpoints
//! ([`WebhookBackend`] for [`HubBackend`]); the routes check the operator key.

use async_trait::async_trait;
use hubbub_api::webhooks::{
    self as wire, DeadLetters, Deleted, Replayed, WebhookBackend, WebhookList, WebhookSink,
};
use hubbub_api::{ApiError, ErrorCode};

use super::{DeadLetter, SinkEngine, SinkError};
use crate::api_backend::{HubBackend, Principal};

impl HubBackend {
    fn engine(&self) -> Result<&dyn SinkEngine, ApiError> {
        self.0
            .sinks
            .get()
            .map(|e| &**e)
            .ok_or_else(|| sink_error(SinkError::UnknownSink(String::new())))
    }

    fn sink_failed(&self, e: SinkError) -> ApiError {
        let err = sink_error(e);
        self.0.metrics.error(err.code);
        err
    }
}

fn sink_error(e: SinkError) -> ApiError {
    match e {
        SinkError::UnknownSink(name) if name.is_empty() => {
            ApiError::new(ErrorCode::NotFound, "no webhook sinks are configured")
        }
        e @ SinkError::UnknownSink(_) => ApiError::new(ErrorCode::NotFound, e.to_string()),
        SinkError::Unavailable(detail) => {
            tracing::warn!(error = %detail, "webhook request answered 503: the engine is unavailable");
            ApiError::new(ErrorCode::Unavailable, crate::hub::ENGINE_UNAVAILABLE)
        }
    }
}

fn dead_wire(d: DeadLetter) -> wire::DeadLetter {
    wire::DeadLetter {
        webhook_id: d.delivery.webhook_id,
        topic: d.delivery.topic.as_str().to_owned(),
        offset: d.delivery.offset,
        event: d.delivery.event,
        attempts: d.delivery.attempts,
        last_status: d.last_status,
        last_error: d.last_error,
        dead_ts: d.dead_ts,
        body: serde_json::from_slice(&d.delivery.body).unwrap_or(serde_json::Value::Null),
    }
}

#[async_trait]
impl WebhookBackend for HubBackend {
    async fn webhooks(&self, _who: &Principal) -> Result<WebhookList, ApiError> {
        let Some(engine) = self.0.sinks.get() else {
            return Ok(WebhookList { sinks: Vec::new() });
        };
        let stats = engine.stats().await.map_err(|e| self.sink_failed(e))?;
        Ok(WebhookList {
            sinks: stats
                .into_iter()
                .map(|s| WebhookSink {
                    name: s.name,
                    url: s.url,
                    pending: s.pending,
                    in_flight: s.in_flight,
                    delivered: s.delivered,
                    retried: s.retried,
                    dead: s.dead,
                    oldest_pending_age_ms: s.oldest_pending_age_ms,
                    last_error: s.last_error,
                    last_success_ts: s.last_success_ts,
                })
                .collect(),
        })
    }

    async fn dead_letters(
        &self,
        _who: &Principal,
        name: &str,
        limit: usize,
    ) -> Result<DeadLetters, ApiError> {
        let dead = self
            .engine()?
            .dead(name, limit)
            .await
            .map_err(|e| self.sink_failed(e))?;
        Ok(DeadLetters {
            dead: dead.into_iter().map(dead_wire).collect(),
        })
    }

    async fn replay_dead(
        &self,
        _who: &Principal,
        name: &str,
        ids: Option<Vec<String>>,
    ) -> Result<Replayed, ApiError> {
        let replayed = self
            .engine()?
            .replay(name, ids.as_deref())
            .await
            .map_err(|e| self.sink_failed(e))?;
        Ok(Replayed { replayed })
    }

    async fn delete_dead(
        &self,
        _who: &Principal,
        name: &str,
        ids: Option<Vec<String>>,
    ) -> Result<Deleted, ApiError> {
        let deleted = self
            .engine()?
            .delete(name, ids.as_deref())
            .await
            .map_err(|e| self.sink_failed(e))?;
        Ok(Deleted { deleted })
    }
}
