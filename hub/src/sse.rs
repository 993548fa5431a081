//! `GET /sse`: Server-Sent Events for clients that cannot hold a WebSocket,
//! made so that a page with nothing but `new EventSource(url)` never misses a
//! publication silently.
//!
//! `?topic=A&topic=B&token=JWT` (EventSource cannot send headers; readers
//! that can send `Authorization: Bearer JWT`, which wins), and
//! optionally `lastEventID=<id>` (a reloaded page resumes from an id it
//! stored; the `Last-Event-ID` header of an EventSource reconnect wins over
//! it) or `since=` (the SDK's `topic|epoch|offset,…`), and `latest=1` (a
//! topic without a position starts with its newest publication, as a
//! `subscribe` with `latest`). Every publication is an
//! `event: pub` with an `id:` — the recovered ones first, in offset order, then
//! live ones — and a position that cannot be recovered is an `event: reset`.
//! Ids are built by [`cursor`]; the stream's life is [`stream`]. The stream is
//! the same connection machinery as a WebSocket (registry, bounded outbox,
//! tracker), with JSON frames.

pub mod cursor;
pub mod stream;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use hubbub_api::{ApiError, ErrorCode};

use crate::broker::Epoch;
use crate::config::NamespaceConfig;
use crate::connection::registration::Registration;
use crate::engine::{Opened, Start};
use crate::hub::{Hub, HubError};
use crate::metrics::Rejection;
use crate::protocol::Codec;
use crate::topic::Topic;
use cursor::{Cursor, EventId, parse_event_id};
use stream::{StreamState, events, spawn_watchdog};

/// The query of `GET /sse`.
#[derive(Debug, Default)]
struct Request {
    topics: Vec<String>,
    token: Option<String>,
    /// `lastEventID`: an id the page stored.
    last_event_id: Option<String>,
    /// `since`: positions by name, as the SDK sends them.
    since: Option<String>,
    /// `latest=1`: topics without a position start with their newest publication.
    latest: bool,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, message)
}

fn parse_query(query: &str) -> Result<Request, ApiError> {
    let mut req = Request::default();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "topic" => req.topics.push(value.into_owned()),
            "token" => req.token = Some(value.into_owned()),
            "lastEventID" => req.last_event_id = Some(value.into_owned()),
            "since" => req.since = Some(value.into_owned()),
            "latest" => {
                req.latest = match value.as_ref() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(bad("latest must be 1 or 0")),
                }
            }
            other => return Err(bad(format!("unknown query parameter `{other}`"))),
        }
    }
    Ok(req)
}

/// The `GET /sse` handler.
pub async fn handler(
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if !hub.origin_allowed(origin) {
        hub.metrics.rejected(Rejection::Origin);
        return ApiError::new(ErrorCode::Forbidden, "origin not allowed").into_response();
    }
    let client = crate::limits::client_ip(peer.ip(), &headers, &hub.config.trusted_proxies);
    if !hub.ip_limiter.allow(&client) {
        hub.metrics.rejected(Rejection::RateLimited);
        return ApiError::new(
            ErrorCode::RateLimited,
            "too many new connections from this address",
        )
        .into_response();
    }
    match open(hub, query.as_deref().unwrap_or(""), &headers).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn open(hub: Arc<Hub>, query: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let fail = |hub: &Hub, err: HubError| {
        hub.metrics.error(err.code());
        crate::api_backend::api_error(err)
    };
    if hub.is_draining() {
        return Err(fail(&hub, HubError::Draining));
    }
    let req = parse_query(query)?;
    // `Authorization: Bearer` (readers with fetch) wins over `token=` (EventSource).
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let token = bearer.or(req.token).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            "missing token: `Authorization: Bearer <JWT>` or the token query parameter",
        )
    })?;
    let identity = hub
        .verifier
        .verify(&token)
        .map_err(|e| fail(&hub, HubError::Auth(e)))?;
    if req.topics.is_empty() {
        return Err(bad("at least one topic query parameter is needed"));
    }
    let max = hub.config.limits.max_subscriptions;
    if req.topics.len() > max {
        return Err(fail(&hub, HubError::SubscriptionLimit(max)));
    }
    let mut topics = BTreeMap::new();
    for name in &req.topics {
        let (topic, ns) = hub.resolve(name).map_err(|e| fail(&hub, e))?;
        if !(ns.public || identity.permissions.can_subscribe(&topic)) {
            return Err(fail(
                &hub,
                HubError::NotPermitted {
                    action: "subscribe",
                    topic,
                    scope: "the token's `subscribe`",
                    patterns: identity.permissions.subscribe_text(),
                },
            ));
        }
        topics.insert(topic, ns.clone());
    }
    // Sorted, duplicates removed: the order of the offsets in event ids.
    let names: Vec<Topic> = topics.keys().cloned().collect();
    let mut cursor = Cursor::new(names);
    let header_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    if let Some(id) = header_id
        .or(req.last_event_id.as_deref())
        .or(req.since.as_deref())
    {
        let id = parse_event_id(id).map_err(|e| bad(format!("Last-Event-ID: {e}")))?;
        let current = current_epochs(&hub, &topics, &id)
            .await
            .map_err(|e| fail(&hub, e))?;
        cursor.resume(id, &current);
    }

    hub.metrics.connection_accepted();
    let (mut reg, rx) = match Registration::open(hub.clone(), identity) {
        Ok(opened) => opened,
        // 503, not `limit_exceeded`: a client may retry later, as a WebSocket
        // closed with 4103 does.
        Err(HubError::ConnectionLimit) => {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "connection limit reached on this node or for this user",
            ));
        }
        Err(e) => return Err(fail(&hub, e)),
    };
    let conn = reg.conn().clone();
    let expires = reg.identity().deadline();
    // Dropping `state` (the response body) marks the connection gone; an
    // early return drops `reg`, which releases it.
    let state = StreamState::new(hub.clone(), conn, rx, cursor);
    for (topic, ns) in &topics {
        let start = Start::new(state.cursor.get(topic), req.latest);
        // SSE is receive-only and does not join presence.
        let ns = NamespaceConfig {
            presence: false,
            ..ns.clone()
        };
        match reg.subscribe(topic, &ns, start, Codec::Json, 0).await {
            Opened::Subscribed => {}
            Opened::Failed => {
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "the broker is unavailable; retry",
                ));
            }
            Opened::Closing => break,
        }
    }
    spawn_watchdog(reg, expires);
    let limits = &hub.config.limits;
    let keep_alive = KeepAlive::new().interval(limits.ping_interval).text("ping");
    let mut resp = Sse::new(events(state))
        .keep_alive(keep_alive)
        .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// The current epoch of each topic that a compact id has an offset for (a
/// catch-up read without `since`), to check the id's fingerprint.
async fn current_epochs(
    hub: &Hub,
    topics: &BTreeMap<Topic, NamespaceConfig>,
    id: &EventId,
) -> Result<Vec<Option<Epoch>>, HubError> {
    let EventId::Compact { offsets, .. } = id else {
        return Ok(Vec::new());
    };
    if offsets.len() != topics.len() {
        return Ok(Vec::new());
    }
    let reads = topics
        .iter()
        .zip(offsets)
        .map(|((topic, ns), offset)| async move {
            match offset {
                Some(_) => hub
                    .streams()
                    .recover(topic, None, &hub.options(ns))
                    .await
                    .map(|r| Some(r.position.epoch)),
                None => Ok(None),
            }
        });
    futures_util::future::try_join_all(reads)
        .await
        .map_err(HubError::Broker)
}
