//! One SSE stream's life: turning its outbox into events with ids, and
//! releasing its registry slot and subscriptions as soon as it closes.
//!
//! The response body is polled only while the client reads, so nothing that
//! must happen on time lives in it: a watchdog task waits for the close signal
//! (slow consumer, token expiry, disconnect, shutdown, or the body dropped)
//! and then unregisters the connection and its subscriptions, whether or not
//! the client ever reads again. The body, when polled, sends the
//! `disconnect` event and ends.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::ws::Message;
use axum::response::sse::Event;
use futures_util::Stream;
use serde::Deserialize;
use tokio::time::Instant;

use super::cursor::Cursor;
use crate::broker::Position;
use crate::connection::ConnHandle;
use crate::connection::handle::CloseReason;
use crate::connection::outbox;
use crate::connection::registration::Registration;
use crate::connection::tracker::{Emit, Tracker};
use crate::fanout::{BroadcastKind, Outgoing};
use crate::hub::Hub;
use crate::protocol::frames::{PositionWire, PublicationWire, ServerFrame};
use crate::protocol::{CloseCode, Codec, Encoded};
use crate::topic::Topic;

/// Starts the task (on the hub's task tracker, which a drain waits for)
/// that releases `reg` — registry slot, subscriptions — once its connection
/// closes, and closes it with 4100 at `expires`.
pub fn spawn_watchdog(reg: Registration, expires: Instant) {
    let hub = reg.hub().clone();
    hub.tasks.clone().spawn(async move {
        let conn = reg.conn().clone();
        let reason = tokio::select! {
            reason = conn.closed() => reason,
            () = tokio::time::sleep_until(expires) => {
                conn.close(CloseCode::TokenExpired);
                conn.closed().await
            }
        };
        if let CloseReason::Code(code) = reason {
            hub.metrics.disconnect(code);
        }
        reg.release().await;
    });
}

/// Marks the connection gone when the response body is dropped (the client
/// went away or the stream ended), which wakes the watchdog.
#[derive(Debug)]
pub struct Guard(pub Arc<ConnHandle>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.gone();
    }
}

/// The state of one stream's body.
pub struct StreamState {
    /// The connection's outbox.
    pub rx: outbox::Receiver,
    /// Orders subscription replies and broadcasts.
    pub tracker: Tracker,
    /// What the client knows, for event ids.
    pub cursor: Cursor,
    /// The hub.
    pub hub: Arc<Hub>,
    /// Closes the connection when the body is dropped.
    pub guard: Guard,
    emits: Vec<Emit>,
    /// Topics whose `subscribed` reply has not been seen yet.
    opening: usize,
    /// Other emits seen while `opening > 0`: sent after every reply, so that
    /// each event id carries a position for every topic of the stream.
    deferred: Vec<Emit>,
    pending: VecDeque<Event>,
    finished: bool,
}

/// The `subscribed` frame as the stream reads it back, to send its
/// publications as `pub` events of their own.
#[derive(Deserialize)]
struct SubscribedFrame {
    id: u32,
    topic: String,
    position: PositionWire,
    recovered: Option<bool>,
    publications: Vec<PublicationWire>,
}

/// The JSON text of a per-connection frame (the stream's codec is JSON).
fn text(msg: &Message) -> &str {
    match msg {
        Message::Text(t) => t.as_str(),
        _ => "",
    }
}

/// The JSON text of an encoded frame (always text: JSON encodes to UTF-8).
fn json(encoded: &Encoded) -> &str {
    encoded.as_text().unwrap_or_default()
}

fn json_event(kind: &'static str, frame: &ServerFrame<'_>) -> Event {
    Event::default()
        .event(kind)
        .data(json(&Codec::Json.encode(frame)))
}

impl StreamState {
    /// A stream over `rx`, whose client knows what `cursor` says.
    pub fn new(
        hub: Arc<Hub>,
        conn: Arc<ConnHandle>,
        rx: outbox::Receiver,
        cursor: Cursor,
    ) -> StreamState {
        let max_held = hub.config.limits.outbox_size;
        let opening = cursor.topics().len();
        StreamState {
            rx,
            tracker: Tracker::new(max_held),
            cursor,
            hub,
            guard: Guard(conn),
            emits: Vec::new(),
            opening,
            deferred: Vec::new(),
            pending: VecDeque::new(),
            finished: false,
        }
    }

    fn absorb(&mut self, item: Outgoing) {
        if self.tracker.take(item, &mut self.emits).is_err()
            && self.guard.0.close(CloseCode::SlowConsumer)
        {
            self.hub.metrics.slow_consumer();
        }
        let emits = std::mem::take(&mut self.emits);
        for emit in emits {
            if self.opening > 0 {
                if let Emit::Subscribed {
                    topic,
                    position,
                    frame,
                } = emit
                {
                    self.opening -= 1;
                    self.subscribed(&topic, position, &frame);
                    if self.opening == 0 {
                        for emit in std::mem::take(&mut self.deferred) {
                            self.emit(emit);
                        }
                    }
                } else {
                    self.deferred.push(emit);
                }
            } else {
                self.emit(emit);
            }
        }
    }

    fn emit(&mut self, emit: Emit) {
        match emit {
            Emit::Frame(msg) => self
                .pending
                .push_back(Event::default().event("error").data(text(&msg))),
            Emit::Subscribed {
                topic,
                position,
                frame,
            } => self.subscribed(&topic, position, &frame),
            Emit::Broadcast(b) => match b.kind() {
                BroadcastKind::Pub(p) => {
                    let known = self.cursor.get(b.topic()).cloned();
                    if let Some(known) = &known
                        && p.offset > known.offset + 1
                    {
                        // A gap: the id still says `known`, so the
                        // client's reconnect recovers what is missing.
                        tracing::debug!(topic = %b.topic(), from = known.offset, to = p.offset, "gap on an SSE stream");
                        self.guard.0.close(CloseCode::Rebalance);
                        return;
                    }
                    self.cursor.set(
                        b.topic(),
                        Position {
                            epoch: known.map_or_else(super::cursor::lost_epoch, |k| k.epoch),
                            offset: p.offset,
                        },
                    );
                    self.hub.metrics.deliveries(1);
                    let id = self.cursor.event_id();
                    let msg = b.encoded(Codec::Json);
                    self.pending
                        .push_back(Event::default().event("pub").id(id).data(json(msg)));
                }
                BroadcastKind::Join(_) => {
                    let msg = b.encoded(Codec::Json);
                    self.pending
                        .push_back(Event::default().event("join").data(json(msg)));
                }
                BroadcastKind::Leave(_) => {
                    let msg = b.encoded(Codec::Json);
                    self.pending
                        .push_back(Event::default().event("leave").data(json(msg)));
                }
            },
        }
    }

    /// A subscription's reply: `reset` when its position could not be
    /// recovered, each recovered publication as a `pub` event, then the
    /// `subscribed` event (without the publications) for SDKs.
    fn subscribed(&mut self, topic: &Topic, position: Position, frame: &Message) {
        let parsed: SubscribedFrame = match serde_json::from_str(text(frame)) {
            Ok(f) => f,
            Err(e) => {
                // Encoded by this hub a moment ago: a bug, not a client mistake.
                tracing::error!(topic = %topic, error = %e, "unreadable subscribed frame");
                self.guard.0.close(CloseCode::Rebalance);
                return;
            }
        };
        let wire = position.to_wire();
        if parsed.recovered == Some(false) {
            self.cursor.set(topic, position.clone());
            let id = self.cursor.event_id();
            let data =
                serde_json::json!({"type": "reset", "topic": topic.as_str(), "position": wire});
            self.pending.push_back(
                Event::default()
                    .event("reset")
                    .id(id)
                    .data(data.to_string()),
            );
        }
        for p in &parsed.publications {
            self.cursor.set(
                topic,
                Position {
                    epoch: position.epoch.clone(),
                    offset: p.offset,
                },
            );
            self.hub.metrics.deliveries(1);
            let id = self.cursor.event_id();
            let event = json_event(
                "pub",
                &ServerFrame::Pub {
                    topic: &p.topic,
                    offset: p.offset,
                    event: &p.event,
                    data: &p.data,
                    ts: p.ts,
                    id: &p.id,
                },
            );
            self.pending.push_back(event.id(id));
        }
        self.cursor.set(topic, position);
        let id = self.cursor.event_id();
        let event = json_event(
            "subscribed",
            &ServerFrame::Subscribed {
                id: parsed.id,
                topic: &parsed.topic,
                position: &parsed.position,
                recovered: parsed.recovered,
                publications: &[],
            },
        );
        self.pending.push_back(event.id(id));
    }

    fn goodbye(&mut self, code: CloseCode) {
        self.pending.push_back(json_event(
            "disconnect",
            &ServerFrame::Disconnect {
                code: code.code(),
                reason: code.reason(),
                reconnect: code.reconnect(),
            },
        ));
    }
}

/// The response body: events until the connection closes.
pub fn events(state: StreamState) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(event) = st.pending.pop_front() {
                return Some((Ok(event), st));
            }
            if st.finished {
                return None;
            }
            let conn = st.guard.0.clone();
            tokio::select! {
                biased;
                reason = conn.closed() => {
                    if let CloseReason::Code(code) = reason {
                        st.goodbye(code);
                    }
                    st.finished = true;
                }
                item = st.rx.recv() => match item {
                    Some(item) => st.absorb(item),
                    None => st.finished = true,
                },
            }
        }
    })
}
