//! The operator endpoints of webhook sinks (operator keys only):
//! `GET /api/v1/webhooks`, `GET /api/v1/webhooks/{name}/dead?limit=N`,
//! `POST /api/v1/webhooks/{name}/dead/replay` and
//! `DELETE /api/v1/webhooks/{name}/dead`; their wire types, the
//! [`WebhookBackend`] the hub implements, and their OpenAPI paths.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorCode};
use crate::routes::{Backend, Operator};

/// The most dead letters one read returns.
pub const MAX_DEAD_LIMIT: usize = 1000;
/// Dead letters one read returns without `limit`.
pub const DEFAULT_DEAD_LIMIT: usize = 100;

/// One sink in `GET /api/v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSink {
    /// Sink name.
    pub name: String,
    /// Where it delivers.
    pub url: String,
    /// Deliveries queued or in flight.
    pub pending: u64,
    /// Requests running now.
    pub in_flight: u64,
    /// Delivered (2xx).
    pub delivered: u64,
    /// Failed attempts retried.
    pub retried: u64,
    /// Dead letters held.
    pub dead: u64,
    /// Age of the oldest pending delivery in ms (0: none).
    pub oldest_pending_age_ms: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// ms since the Unix epoch of the last success.
    pub last_success_ts: Option<u64>,
}

/// Answer to `GET /api/v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookList {
    /// Every configured sink.
    pub sinks: Vec<WebhookSink>,
}

/// A dead letter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its `webhook-id` (kept on replay).
    pub webhook_id: String,
    /// The publication's topic.
    pub topic: String,
    /// The publication's offset.
    pub offset: u64,
    /// The event name.
    pub event: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last HTTP status, if the receiver answered.
    pub last_status: Option<u16>,
    /// The last failure.
    pub last_error: String,
    /// When it died, ms since the Unix epoch.
    pub dead_ts: u64,
    /// The body that was POSTed.
    pub body: Value,
}

/// Answer to `GET /api/v1/webhooks/{name}/dead`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetters {
    /// Oldest first.
    pub dead: Vec<DeadLetter>,
}

/// Query of a dead-letter read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadQuery {
    /// At most this many (1 to 1000; default 100).
    pub limit: Option<usize>,
}

/// Body of replay and delete: `{webhook_ids?: [...]}`; absent (or no body): all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookIds {
    /// Which dead letters; absent: all.
    #[serde(default)]
    pub webhook_ids: Option<Vec<String>>,
}

/// Answer to a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    /// Dead letters queued again.
    pub replayed: usize,
}

/// Answer to a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    /// Dead letters deleted.
    pub deleted: usize,
}

/// What the webhook endpoints need from the hub. The routes let only
/// operators through ([`Operator`]; 403 `forbidden` otherwise).
#[async_trait]
pub trait WebhookBackend: Backend {
    /// Every sink with its stats.
    async fn webhooks(&self, who: &Self::Principal) -> Result<WebhookList, ApiError>;

    /// Up to `limit` dead letters of sink `name`, oldest first.
    async fn dead_letters(
        &self,
        who: &Self::Principal,
        name: &str,
        limit: usize,
    ) -> Result<DeadLetters, ApiError>;

    /// Queues dead letters of `name` again with their `webhook-id`.
    async fn replay_dead(
        &self,
        who: &Self::Principal,
        name: &str,
        ids: Option<Vec<String>>,
    ) -> Result<Replayed, ApiError>;

    /// Deletes dead letters of `name`.
    async fn delete_dead(
        &self,
        who: &Self::Principal,
        name: &str,
        ids: Option<Vec<String>>,
    ) -> Result<Deleted, ApiError>;
}

/// The webhook routes, merged into [`crate::router`].
pub(crate) fn routes<B: WebhookBackend>() -> Router<Arc<B>> {
    Router::new()
        .route("/api/v1/webhooks", get(list::<B>))
        .route(
            "/api/v1/webhooks/{name}/dead",
            get(dead::<B>).delete(delete::<B>),
        )
        .route("/api/v1/webhooks/{name}/dead/replay", post(replay::<B>))
}

/// An optional JSON body: empty means "all".
fn ids(body: &Bytes) -> Result<Option<Vec<String>>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<WebhookIds>(body)
        .map(|b| b.webhook_ids)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("invalid body: {e}")))
}

async fn list<B: WebhookBackend>(
    State(backend): State<Arc<B>>,
    Operator(who): Operator<B>,
) -> Result<Json<WebhookList>, ApiError> {
    Ok(Json(backend.webhooks(&who).await?))
}

async fn dead<B: WebhookBackend>(
    State(backend): State<Arc<B>>,
    Operator(who): Operator<B>,
    Path(name): Path<String>,
    query: Result<Query<DeadQuery>, QueryRejection>,
) -> Result<Json<DeadLetters>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let limit = match q.limit {
        None => DEFAULT_DEAD_LIMIT,
        Some(n) if (1..=MAX_DEAD_LIMIT).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::new(
                ErrorCode::LimitExceeded,
                format!("limit must be 1 to {MAX_DEAD_LIMIT}, got {n}"),
            ));
        }
    };
    Ok(Json(backend.dead_letters(&who, &name, limit).await?))
}

async fn replay<B: WebhookBackend>(
    State(backend): State<Arc<B>>,
    Operator(who): Operator<B>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Replayed>, ApiError> {
    let ids = ids(&body)?;
    Ok(Json(backend.replay_dead(&who, &name, ids).await?))
}

async fn delete<B: WebhookBackend>(
    State(backend): State<Arc<B>>,
    Operator(who): Operator<B>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Deleted>, ApiError> {
    let ids = ids(&body)?;
    Ok(Json(backend.delete_dead(&who, &name, ids).await?))
}

/// Adds the webhook paths and schemas to the OpenAPI document.
pub(crate) fn extend_openapi(doc: &mut Value) {
    let error = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let ok = |schema: &str| json!({"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    let responses = |schema: &str| {
        json!({
            "200": ok(schema),
            "400": error("Malformed request"),
            "401": error("Missing or invalid credentials"),
            "403": error("Not an operator key"),
            "404": error("No sink has this name (`not_found`)"),
            "429": error("Rate limited"),
            "503": error("The webhook store is unavailable")
        })
    };
    let name_param = json!({
        "name": "name", "in": "path", "required": true,
        "description": "The sink's name", "schema": {"type": "string"}, "example": "rider-city-sync"
    });
    let ids_body = json!({
        "required": false,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookIds"}}}
    });
    let schemas = json!({
        "WebhookSink": {
            "type": "object",
            "required": ["name", "url", "pending", "in_flight", "delivered", "retried", "dead", "oldest_pending_age_ms", "last_error", "last_success_ts"],
            "properties": {
                "name": {"type": "string"}, "url": {"type": "string"},
                "pending": {"type": "integer", "minimum": 0},
                "in_flight": {"type": "integer", "minimum": 0},
                "delivered": {"type": "integer", "minimum": 0},
                "retried": {"type": "integer", "minimum": 0},
                "dead": {"type": "integer", "minimum": 0},
                "oldest_pending_age_ms": {"type": "integer", "minimum": 0},
                "last_error": {"type": "string", "nullable": true},
                "last_success_ts": {"type": "integer", "nullable": true, "description": "ms since the Unix epoch"}
            }
        },
        "WebhookList": {
            "type": "object", "required": ["sinks"],
            "properties": {"sinks": {"type": "array", "items": {"$ref": "#/components/schemas/WebhookSink"}}}
        },
        "DeadLetter": {
            "type": "object",
            "required": ["webhook_id", "topic", "offset", "event", "attempts", "last_status", "last_error", "dead_ts", "body"],
            "properties": {
                "webhook_id": {"type": "string"}, "topic": {"type": "string"},
                "offset": {"type": "integer", "minimum": 0}, "event": {"type": "string"},
                "attempts": {"type": "integer", "minimum": 0},
                "last_status": {"type": "integer", "nullable": true},
                "last_error": {"type": "string"},
                "dead_ts": {"type": "integer", "description": "ms since the Unix epoch"},
                "body": {"description": "The JSON body that was POSTed"}
            }
        },
        "DeadLetters": {
            "type": "object", "required": ["dead"],
            "properties": {"dead": {"type": "array", "items": {"$ref": "#/components/schemas/DeadLetter"}}}
        },
        "WebhookIds": {
            "type": "object", "additionalProperties": false,
            "example": {"webhook_ids": ["msg_2b1f0c9e4d7a8b6c5e3f1a0d9c8b7a6e"]},
            "properties": {"webhook_ids": {"type": "array", "items": {"type": "string"}, "nullable": true,
                "description": "Which dead letters; absent (or no body at all): every one"}}
        },
        "Replayed": {
            "type": "object", "required": ["replayed"],
            "properties": {"replayed": {"type": "integer", "minimum": 0}}
        },
        "Deleted": {
            "type": "object", "required": ["deleted"],
            "properties": {"deleted": {"type": "integer", "minimum": 0}}
        }
    });
    let paths = json!({
        "/api/v1/webhooks": {"get": {
            "operationId": "webhooks", "summary": "Webhook sinks with their delivery stats (operator keys only)",
            "responses": responses("WebhookList")
        }},
        "/api/v1/webhooks/{name}/dead": {
            "get": {
                "operationId": "webhookDeadLetters", "summary": "A sink's dead letters, oldest first (operator keys only)",
                "parameters": [name_param.clone(),
                    {"name": "limit", "in": "query", "required": false,
                     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DEAD_LIMIT}, "example": 100}],
                "responses": responses("DeadLetters")
            },
            "delete": {
                "operationId": "webhookDeleteDead", "summary": "Delete a sink's dead letters (operator keys only)",
                "parameters": [name_param.clone()],
                "requestBody": ids_body.clone(),
                "responses": responses("Deleted")
            }
        },
        "/api/v1/webhooks/{name}/dead/replay": {"post": {
            "operationId": "webhookReplayDead", "summary": "Queue a sink's dead letters again, with their original webhook-id (operator keys only)",
            "parameters": [name_param],
            "requestBody": ids_body,
            "responses": responses("Replayed")
        }}
    });
    for (section, add) in [("schemas", schemas), ("paths", paths)] {
        let target = if section == "schemas" {
            &mut doc["components"]["schemas"]
        } else {
            &mut doc["paths"]
        };
        if let (Some(target), Value::Object(add)) = (target.as_object_mut(), add) {
            target.extend(add);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_body_means_all_and_unknown_fields_are_refused() {
        assert_eq!(ids(&Bytes::from_static(b"")).unwrap(), None);
        assert_eq!(ids(&Bytes::from_static(b"{}")).unwrap(), None);
        assert_eq!(
            ids(&Bytes::from_static(br#"{"webhook_ids":["a"]}"#)).unwrap(),
            Some(vec!["a".to_owned()])
        );
        assert!(ids(&Bytes::from_static(br#"{"ids":["a"]}"#)).is_err());
        assert!(ids(&Bytes::from_static(b"[")).is_err());
    }

    #[test]
    fn the_webhook_paths_are_in_the_document() {
        let doc = crate::openapi::document();
        assert!(doc["paths"]["/api/v1/webhooks"]["get"].is_object());
        assert!(doc["paths"]["/api/v1/webhooks/{name}/dead"]["get"].is_object());
        assert!(doc["paths"]["/api/v1/webhooks/{name}/dead"]["delete"].is_object());
        assert!(doc["paths"]["/api/v1/webhooks/{name}/dead/replay"]["post"].is_object());
        assert!(doc["components"]["schemas"]["DeadLetter"].is_object());
    }
}
