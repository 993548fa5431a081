//! The router: authentication of the bearer, body and query extraction with
//! contract-shaped errors, and one handler per route, each delegating to the
//! [`Backend`].

use std::sync::Arc;

use async_trait::async_trait;
use axum::Json;
use axum::Router;
use axum::extract::Request;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::{ApiError, ErrorCode};
use crate::types::{
    BatchRequest, BatchResponse, BatchResult, DisconnectRequest, Disconnected, History,
    HistoryQuery, Info, Position, Presence, PublishRequest, Published,
};

/// The most publications one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// What the REST API needs from the hub (or from a standalone API process).
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Who a valid bearer is (an API key or a JWT), with its permissions.
    type Principal: Send + Sync + 'static;

    /// Authenticates `Authorization: Bearer <bearer>`.
    fn authenticate(&self, bearer: &str) -> Result<Self::Principal, ApiError>;

    /// Whether `who` may call the operator endpoints (`disconnect`, `info`,
    /// webhooks, topic listings, outbox): `Ok` for an operator, otherwise the error
    /// to answer (403 `forbidden`). Used by the [`Operator`] extractor.
    fn require_operator(&self, who: &Self::Principal) -> Result<(), ApiError>;

    /// Publishes one publication.
    async fn publish(
        &self,
        who: &Self::Principal,
        req: PublishRequest,
    ) -> Result<Position, ApiError>;

    /// Publishes several, in order; each succeeds or fails on its own.
    async fn batch(
        &self,
        who: &Self::Principal,
        reqs: Vec<PublishRequest>,
    ) -> Vec<Result<Position, ApiError>> {
        let mut out = Vec::with_capacity(reqs.len());
        for req in reqs {
            out.push(self.publish(who, req).await);
        }
        out
    }

    /// Reads history after `since` (`(epoch, offset)`).
    async fn history(
        &self,
        who: &Self::Principal,
        topic: &str,
        since: Option<(String, u64)>,
        limit: Option<u64>,
    ) -> Result<History, ApiError>;

    /// Lists presence members of a topic.
    async fn presence(&self, who: &Self::Principal, topic: &str) -> Result<Presence, ApiError>;

    /// Closes a user's connections on every node.
    async fn disconnect(
        &self,
        who: &Self::Principal,
        req: DisconnectRequest,
    ) -> Result<Disconnected, ApiError>;

    /// Lists live nodes.
    async fn info(&self, who: &Self::Principal) -> Result<Info, ApiError>;

    /// Lists topics with subscribers now whose name starts with `prefix`,
    /// in topic order, at most `limit` (operators only).
    async fn topics(
        &self,
        who: &Self::Principal,
        prefix: &str,
        limit: usize,
    ) -> Result<crate::topics::Topics, ApiError>;

    /// Mints a client token that may subscribe to exactly `topics` for
    /// `ttl_secs` seconds (operators only).
    async fn subscribe_token(
        &self,
        who: &Self::Principal,
        topics: &[String],
        ttl_secs: u64,
    ) -> Result<crate::tokens::SubscribeToken, ApiError>;

    /// This node's view of the PostgreSQL outbox consumer (operators only);
    /// `configured: false` on a node without one.
    async fn outbox(&self, who: &Self::Principal) -> Result<crate::outbox::OutboxState, ApiError>;
}

/// The authenticated caller (any valid bearer): an extractor for handlers
/// whose state is `Arc<B>`; a missing or bad bearer is answered 401.
pub struct Caller<B: Backend>(pub B::Principal);

/// An authenticated caller that is an operator (PROTOCOL v1.1 "Operator
/// keys": an API key with `operator = true`). Any other caller is answered
/// 403 `forbidden` by [`Backend::require_operator`]; a missing or bad bearer
/// 401. Put it on every operator endpoint instead of [`Caller`].
pub struct Operator<B: Backend>(pub B::Principal);

impl<B: Backend> FromRequestParts<Arc<B>> for Operator<B> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        backend: &Arc<B>,
    ) -> Result<Self, Self::Rejection> {
        let Caller(who) = Caller::<B>::from_request_parts(parts, backend).await?;
        backend.require_operator(&who)?;
        Ok(Operator(who))
    }
}

impl<B: Backend> FromRequestParts<Arc<B>> for Caller<B> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        backend: &Arc<B>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "missing Authorization: Bearer <key>",
            )
        })?;
        let bearer = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "Authorization must be `Bearer <key>`",
                )
            })?;
        backend.authenticate(bearer).map(Caller)
    }
}

pub(crate) fn json_error(rejection: JsonRejection) -> ApiError {
    let kind = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ErrorCode::TooLarge
    } else {
        ErrorCode::BadRequest
    };
    ApiError::new(kind, rejection.body_text())
}

/// The REST routes under `/api`, with request bodies capped at `body_limit` bytes.
pub fn router<B: crate::WebhookBackend>(backend: Arc<B>, body_limit: usize) -> Router {
    Router::new()
        .route("/api/v1/publish", post(publish::<B>))
        .route("/api/v1/batch", post(batch::<B>))
        .route("/api/v1/topics/{topic}/history", get(history::<B>))
        .route("/api/v1/topics/{topic}/presence", get(presence::<B>))
        .route("/api/v1/disconnect", post(disconnect::<B>))
        .route("/api/v1/info", get(info::<B>))
        .route("/api/v1/topics", get(crate::topics::topics::<B>))
        .route(
            "/api/v1/tokens/subscribe",
            post(crate::tokens::subscribe_token::<B>),
        )
        .route("/api/v1/outbox", get(crate::outbox::outbox::<B>))
        .merge(crate::webhooks::routes::<B>())
        .route(
            "/api/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            refuse_oversized(req, next, body_limit)
        }))
        .with_state(backend)
}

/// Answers 413 at once when `Content-Length` announces more than `limit`
/// bytes, so a client does not upload a body that would be refused anyway
/// (bodies without a length are cut off at the limit by `DefaultBodyLimit`).
async fn refuse_oversized(req: Request, next: Next, limit: usize) -> Response {
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(len) if len > limit as u64 => ApiError::new(
            ErrorCode::TooLarge,
            format!("request body of {len} bytes is over the limit of {limit}"),
        )
        .into_response(),
        _ => next.run(req).await,
    }
}

async fn publish<B: Backend>(
    State(backend): State<Arc<B>>,
    Caller(who): Caller<B>,
    body: Result<Json<PublishRequest>, JsonRejection>,
) -> Result<Json<Published>, ApiError> {
    let Json(req) = body.map_err(json_error)?;
    let position = backend.publish(&who, req).await?;
    Ok(Json(Published { position }))
}

async fn batch<B: Backend>(
    State(backend): State<Arc<B>>,
    Caller(who): Caller<B>,
    body: Result<Json<BatchRequest>, JsonRejection>,
) -> Result<Json<BatchResponse>, ApiError> {
    let Json(req) = body.map_err(json_error)?;
    if req.publications.len() > MAX_BATCH {
        return Err(ApiError::new(
            ErrorCode::TooLarge,
            format!(
                "a batch holds at most {MAX_BATCH} publications, got {}",
                req.publications.len()
            ),
        ));
    }
    let mut slots: Vec<Option<BatchResult>> = Vec::with_capacity(req.publications.len());
    let mut valid = Vec::new();
    for item in req.publications {
        match serde_json::from_value::<PublishRequest>(item) {
            Ok(p) => {
                slots.push(None);
                valid.push(p);
            }
            Err(e) => slots.push(Some(BatchResult::Err {
                error: ApiError::new(ErrorCode::BadRequest, e.to_string()),
            })),
        }
    }
    let mut outcomes = backend.batch(&who, valid).await.into_iter();
    let results = slots
        .into_iter()
        .map(|slot| match slot {
            Some(r) => r,
            None => match outcomes.next() {
                Some(Ok(position)) => BatchResult::Ok { position },
                Some(Err(error)) => BatchResult::Err { error },
                None => BatchResult::Err {
                    error: ApiError::new(ErrorCode::Internal, "missing batch result"),
                },
            },
        })
        .collect();
    Ok(Json(BatchResponse { results }))
}

/// Parses `EPOCH:OFFSET`, the offset as 1 to 19 decimal digits (exactly
/// what the OpenAPI document's pattern for `since` allows; no sign).
pub fn parse_since(s: &str) -> Result<(String, u64), ApiError> {
    let bad = || ApiError::new(ErrorCode::BadRequest, "since must be EPOCH:OFFSET");
    let (epoch, offset) = s.rsplit_once(':').ok_or_else(bad)?;
    if offset.is_empty() || offset.len() > 19 || !offset.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let offset = offset.parse::<u64>().map_err(|_| bad())?;
    if epoch.is_empty() {
        return Err(bad());
    }
    Ok((epoch.to_owned(), offset))
}

async fn history<B: Backend>(
    State(backend): State<Arc<B>>,
    Caller(who): Caller<B>,
    Path(topic): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<History>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let since = q.since.as_deref().map(parse_since).transpose()?;
    Ok(Json(backend.history(&who, &topic, since, q.limit).await?))
}

async fn presence<B: Backend>(
    State(backend): State<Arc<B>>,
    Caller(who): Caller<B>,
    Path(topic): Path<String>,
) -> Result<Json<Presence>, ApiError> {
    Ok(Json(backend.presence(&who, &topic).await?))
}

async fn disconnect<B: Backend>(
    State(backend): State<Arc<B>>,
    Operator(who): Operator<B>,
    body: Result<Json<DisconnectRequest>, JsonRejection>,
) -> Result<Json<Disconnected>, ApiError> {
    let Json(req) = body.map_err(json_error)?;
    Ok(Json(backend.disconnect(&who, req).await?))
}

async fn info<B: Backend>(
    State(backend): State<Arc<B>>,
    Operator(who): Operator<B>,
) -> Result<Json<Info>, ApiError> {
    Ok(Json(backend.info(&who).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parses_epoch_and_offset() {
        assert_eq!(parse_since("abc:12").unwrap(), ("abc".to_owned(), 12));
        assert!(parse_since("abc").is_err());
        assert!(parse_since(":3").is_err());
        assert!(parse_since("abc:-1").is_err());
        assert!(
            parse_since("abc:+1").is_err(),
            "no sign: the documented pattern has none"
        );
        assert!(parse_since("abc:").is_err());
        assert!(parse_since(&format!("abc:{}", "9".repeat(20))).is_err());
        assert_eq!(parse_since("a:b:7").unwrap(), ("a:b".to_owned(), 7));
    }
}
