//! `GET /sse`: Server-Sent Events for clients that cannot hold a WebSocket.
//!
//! `?topic=A&topic=B&token=JWT` (EventSource cannot send headers; readers
//! that can send `Authorization: Bearer JWT`, which wins). Each topic
//! first gets an `event: subscribed` (position, and the missed publications
//! when recovering), then live `event: pub` (plus `join`/`leave`), and
//! `event: disconnect` before the hub ends the stream. Every `subscribed` and
//! `pub` event carries an `id:` that encodes every topic's position
//! ([`format_event_id`]); a reconnecting EventSource sends it back as
//! `Last-Event-ID` (or a client passes it as `since=`) and recovers exactly
//! like a WebSocket re-subscribe. The stream is the same connection machinery
//! as a WebSocket (registry, bounded outbox, tracker), with JSON frames.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use hubbub_api::{ApiError, ErrorCode};
use tokio::time::Instant;

use crate::broker::{Epoch, Position};
use crate::connection::handle::CloseReason;
use crate::connection::outbox;
use crate::connection::subscription::{self, Opened, Start};
use crate::connection::tracker::{Emit, Tracker};
use crate::connection::{ConnHandle, ConnId};
use crate::fanout::{BroadcastKind, Outgoing};
use crate::hub::{Hub, HubError};
use crate::metrics::Rejection;
use crate::protocol::frames::ServerFrame;
use crate::protocol::{CloseCode, Codec};
use crate::topic::Topic;

/// A malformed `Last-Event-ID` / `since`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventIdError {
    /// An entry is not `topic|epoch|offset`.
    #[error("entry {0} is not topic|epoch|offset")]
    Shape(usize),
    /// An entry's topic is invalid.
    #[error("entry {0} has an invalid topic")]
    Topic(usize),
    /// An entry's offset is not an unsigned integer.
    #[error("entry {0} has an invalid offset")]
    Offset(usize),
    /// The id is longer than any this hub would send.
    #[error("event id is longer than {0} bytes")]
    TooLong(usize),
}

/// The longest event id accepted.
pub const MAX_EVENT_ID: usize = 64 * 1024;

/// Encodes every topic's position: `topic|epoch|offset` entries joined by `,`.
pub fn format_event_id<'a>(
    positions: impl IntoIterator<Item = (&'a Topic, &'a Position)>,
) -> String {
    let mut id = String::new();
    for (topic, position) in positions {
        if !id.is_empty() {
            id.push(',');
        }
        id.push_str(topic.as_str());
        id.push('|');
        id.push_str(position.epoch.as_str());
        id.push('|');
        id.push_str(&position.offset.to_string());
    }
    id
}

/// Parses an id made by [`format_event_id`]. An empty id is no positions.
pub fn parse_event_id(id: &str) -> Result<BTreeMap<Topic, Position>, EventIdError> {
    if id.len() > MAX_EVENT_ID {
        return Err(EventIdError::TooLong(MAX_EVENT_ID));
    }
    let mut out = BTreeMap::new();
    if id.trim().is_empty() {
        return Ok(out);
    }
    for (i, entry) in id.split(',').enumerate() {
        let mut parts = entry.split('|');
        let (Some(topic), Some(epoch), Some(offset), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(EventIdError::Shape(i));
        };
        if epoch.is_empty() {
            return Err(EventIdError::Shape(i));
        }
        let topic: Topic = topic.parse().map_err(|_| EventIdError::Topic(i))?;
        let offset: u64 = offset.parse().map_err(|_| EventIdError::Offset(i))?;
        out.insert(
            topic,
            Position {
                epoch: Epoch::from_wire(epoch),
                offset,
            },
        );
    }
    Ok(out)
}

struct Request {
    topics: Vec<String>,
    token: Option<String>,
    since: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, message)
}

fn parse_query(query: &str) -> Result<Request, ApiError> {
    let mut req = Request {
        topics: Vec::new(),
        token: None,
        since: None,
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "topic" => req.topics.push(value.into_owned()),
            "token" => req.token = Some(value.into_owned()),
            "since" => req.since = Some(value.into_owned()),
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
    if !hub.ip_limiter.allow(&peer.ip()) {
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
                },
            ));
        }
        topics.insert(topic, ns.clone());
    }
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let since = match last_event_id.or(req.since.as_deref()) {
        Some(id) => parse_event_id(id).map_err(|e| bad(format!("Last-Event-ID/since: {e}")))?,
        None => BTreeMap::new(),
    };

    let limits = &hub.config.limits;
    let (tx, rx) = outbox::channel(limits.outbox_size);
    let client_id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
    let conn = Arc::new(ConnHandle::new(
        ConnId::next(),
        client_id,
        identity.user.clone(),
        tx,
    ));
    hub.metrics.connection_accepted();
    if !hub.registry.try_register(
        conn.clone(),
        limits.max_connections,
        limits.max_connections_per_user,
    ) {
        hub.metrics.rejected(Rejection::ConnectionLimit);
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "connection limit reached on this node or for this user",
        ));
    }
    let mut guard = Guard {
        hub: hub.clone(),
        conn: conn.clone(),
        topics: Vec::new(),
    };
    for (topic, ns) in &topics {
        match subscription::open(
            &hub,
            &conn,
            topic,
            ns,
            Start::new(since.get(topic), false),
            Codec::Json,
            0,
        )
        .await
        {
            Opened::Subscribed => guard.topics.push(topic.clone()),
            Opened::Failed => {
                return Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "the broker is unavailable; retry",
                ));
            }
            Opened::Closing => break,
        }
    }
    let expires_in = identity.expires_in();
    let state = StreamState {
        rx,
        tracker: Tracker::new(limits.outbox_size),
        emits: Vec::new(),
        pending: VecDeque::new(),
        positions: BTreeMap::new(),
        deadline: Instant::now() + Duration::from_secs(expires_in),
        finished: false,
        guard,
    };
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

/// Unregisters the stream's connection when the response is dropped (the
/// client went away, or the stream ended).
struct Guard {
    hub: Arc<Hub>,
    conn: Arc<ConnHandle>,
    topics: Vec<Topic>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.conn.gone();
        self.hub.registry.unregister(&self.conn);
        let topics = std::mem::take(&mut self.topics);
        let (hub, conn) = (self.hub.clone(), self.conn.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    for topic in topics {
                        subscription::close(&hub, &conn, &topic, None).await;
                    }
                });
            }
            Err(_) => {
                for topic in topics {
                    hub.registry.unsubscribe(&topic, conn.id);
                }
            }
        }
    }
}

struct StreamState {
    rx: outbox::Receiver,
    tracker: Tracker,
    emits: Vec<Emit>,
    pending: VecDeque<Event>,
    positions: BTreeMap<Topic, Position>,
    deadline: Instant,
    finished: bool,
    guard: Guard,
}

fn text(msg: &Message) -> &str {
    match msg {
        Message::Text(t) => t.as_str(),
        _ => "",
    }
}

impl StreamState {
    fn event_id(&self) -> String {
        format_event_id(self.positions.iter())
    }

    fn absorb(&mut self, item: Outgoing) {
        let hub = self.guard.hub.clone();
        if self.tracker.take(item, &mut self.emits).is_err()
            && self.guard.conn.close(CloseCode::SlowConsumer)
        {
            hub.metrics.slow_consumer();
        }
        let emits = std::mem::take(&mut self.emits);
        for emit in emits {
            let event = match emit {
                Emit::Frame(msg) => Event::default().event("error").data(text(&msg)),
                Emit::Subscribed {
                    topic,
                    position,
                    frame,
                } => {
                    self.positions.insert(topic, position);
                    Event::default()
                        .event("subscribed")
                        .id(self.event_id())
                        .data(text(&frame))
                }
                Emit::Broadcast(b) => {
                    let msg = b.message(Codec::Json);
                    match b.kind() {
                        BroadcastKind::Pub(p) => {
                            if let Some(pos) = self.positions.get_mut(b.topic()) {
                                pos.offset = p.offset;
                            }
                            hub.metrics.deliveries(1);
                            Event::default()
                                .event("pub")
                                .id(self.event_id())
                                .data(text(&msg))
                        }
                        BroadcastKind::Join(_) => Event::default().event("join").data(text(&msg)),
                        BroadcastKind::Leave(_) => Event::default().event("leave").data(text(&msg)),
                    }
                }
            };
            self.pending.push_back(event);
        }
    }

    fn goodbye(&mut self, code: CloseCode) {
        self.guard.hub.metrics.disconnect(code);
        let frame = Codec::Json.encode(&ServerFrame::Disconnect {
            code: code.code(),
            reason: code.reason(),
            reconnect: code.reconnect(),
        });
        self.pending
            .push_back(Event::default().event("disconnect").data(text(&frame)));
    }
}

fn events(state: StreamState) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop_front() {
                return Some((Ok(event), st));
            }
            if st.finished {
                return None;
            }
            let conn = st.guard.conn.clone();
            tokio::select! {
                biased;
                reason = conn.closed() => {
                    if let CloseReason::Code(code) = reason {
                        st.goodbye(code);
                    }
                    st.finished = true;
                }
                _ = tokio::time::sleep_until(st.deadline) => {
                    conn.close(CloseCode::TokenExpired);
                }
                item = st.rx.recv() => match item {
                    Some(item) => st.absorb(item),
                    None => st.finished = true,
                },
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip() {
        let a: Topic = "bookings:1".parse().unwrap();
        let b: Topic = "guests:wedding-7@x=y".parse().unwrap();
        let pa = Position {
            epoch: Epoch::from_wire("e1"),
            offset: 5,
        };
        let pb = Position {
            epoch: Epoch::from_wire("ff00"),
            offset: 0,
        };
        let id = format_event_id([(&a, &pa), (&b, &pb)]);
        assert_eq!(id, "bookings:1|e1|5,guests:wedding-7@x=y|ff00|0");
        let parsed = parse_event_id(&id).unwrap();
        assert_eq!(parsed.get(&a), Some(&pa));
        assert_eq!(parsed.get(&b), Some(&pb));
        assert!(parse_event_id("").unwrap().is_empty());
    }

    #[test]
    fn malformed_event_ids_are_refused() {
        assert_eq!(parse_event_id("bookings:1|e"), Err(EventIdError::Shape(0)));
        assert_eq!(
            parse_event_id("bookings:1|e|1|x"),
            Err(EventIdError::Shape(0))
        );
        assert_eq!(parse_event_id("bookings:1||1"), Err(EventIdError::Shape(0)));
        assert_eq!(
            parse_event_id("bookings:1|e|1,bad topic|e|1"),
            Err(EventIdError::Topic(1))
        );
        assert_eq!(
            parse_event_id("bookings:1|e|-1"),
            Err(EventIdError::Offset(0))
        );
        assert_eq!(
            parse_event_id(&"a".repeat(MAX_EVENT_ID + 1)),
            Err(EventIdError::TooLong(MAX_EVENT_ID))
        );
    }
}
