//! The writer task: drains the bounded outbox into the socket, in order.
//!
//! It keeps, per subscribed topic, either a hold buffer (between
//! [`Outgoing::Begin`] and [`Outgoing::Subscribed`], while the session reads
//! history) or the last offset written, so a publication is never written
//! before the `subscribed` reply that recovers older ones, and never twice.
//! It also sends WebSocket pings (and drops a peer that has sent nothing for
//! two ping intervals), drops a peer that does not take a batch within the
//! write timeout as a slow consumer (4101), and, when the connection is
//! asked to close, sends the `disconnect` frame and the close frame.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::{FutureExt, Sink, SinkExt};

use super::handle::{CloseReason, ConnHandle};
use super::outbox;
use super::tracker::{Emit, Tracker};
use crate::fanout::{BroadcastKind, Outgoing};
use crate::metrics::Metrics;
use crate::protocol::frames::ServerFrame;
use crate::protocol::{CloseCode, Codec};

/// Items written per flush at most, so one busy connection yields regularly.
const BATCH: usize = 64;
/// How long the goodbye (disconnect + close frames) may take.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the reply to a peer's close frame may take.
const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// Writer settings.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// The connection's sub-protocol.
    pub codec: Codec,
    /// Interval between WebSocket pings.
    pub ping_interval: Duration,
    /// Broadcasts held per subscribing topic before the client counts as slow.
    pub max_held: usize,
    /// How long one batch may take to write before the client counts as a
    /// slow consumer (4101).
    pub write_timeout: Duration,
}

/// How a timed batch write ended.
enum Written {
    Done,
    Failed,
    Stalled,
}

/// The writer's state.
pub struct Writer<S> {
    sink: S,
    conn: Arc<ConnHandle>,
    metrics: Arc<Metrics>,
    codec: Codec,
    ping_interval: Duration,
    write_timeout: Duration,
    tracker: Tracker,
    /// Items taken from the outbox, applied before the next write.
    inbox: Vec<Outgoing>,
    emits: Vec<Emit>,
    batch: Vec<Message>,
    /// `ts` of the first publication in the batch, for the delivery-latency sample.
    /// 0: none in this batch.
    first_pub_ts: u64,
}

impl<S> Writer<S>
where
    S: Sink<Message> + Unpin,
{
    /// A writer for `conn` over `sink`.
    pub fn new(
        sink: S,
        conn: Arc<ConnHandle>,
        metrics: Arc<Metrics>,
        config: WriterConfig,
    ) -> Writer<S> {
        Writer {
            sink,
            conn,
            metrics,
            codec: config.codec,
            ping_interval: config.ping_interval,
            write_timeout: config.write_timeout,
            tracker: Tracker::new(config.max_held),
            inbox: Vec::new(),
            emits: Vec::new(),
            batch: Vec::new(),
            first_pub_ts: 0,
        }
    }

    /// Runs until the connection closes; then says goodbye when there is a code.
    ///
    /// Not an `async fn` taking `self`: that form stores the writer twice in
    /// the task (the argument and its binding), 248 bytes per connection.
    #[allow(clippy::manual_async_fn)] // on purpose, see above
    pub fn run(mut self, outbox: outbox::Receiver) -> impl Future<Output = ()> {
        async move { self.serve(outbox).await }
    }

    async fn serve(&mut self, mut outbox: outbox::Receiver) {
        let conn = self.conn.clone();
        let mut ping = tokio::time::interval(self.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        // One close waiter for the task's life: created per `select!`, it
        // would register in and leave the close `Notify`'s list on every
        // wake-up, i.e. several lock round trips per delivery.
        let closed = conn.closed();
        tokio::pin!(closed);
        let reason = loop {
            tokio::select! {
                biased;
                reason = &mut closed => break reason,
                n = Self::next_items(&mut outbox, &mut self.inbox, &mut self.emits, &mut self.batch) => {
                    if n == 0 {
                        break CloseReason::Gone;
                    }
                    {
                        // In a block: a borrowed local would stay in the task's state.
                        let mut inbox = std::mem::take(&mut self.inbox);
                        for item in inbox.drain(..) {
                            self.take(item);
                        }
                        self.inbox = inbox;
                    }
                    tokio::select! {
                        biased;
                        reason = &mut closed => break reason,
                        written = self.write_timed() => if let Some(reason) = self.after_write(written) {
                            break reason;
                        },
                    }
                }
                _ = ping.tick() => {
                    // A live peer answers our pings, so silence for two
                    // intervals (and a second of slack) means it is gone.
                    if conn.silent_for() > self.ping_interval * 2 + Duration::from_secs(1) {
                        tracing::debug!(conn = %conn.id, "no traffic within two ping intervals; dropping");
                        conn.gone();
                        break CloseReason::Gone;
                    }
                    self.batch.push(Message::Ping(Bytes::new()));
                    tokio::select! {
                        biased;
                        reason = &mut closed => break reason,
                        written = self.write_timed() => if let Some(reason) = self.after_write(written) {
                            break reason;
                        },
                    }
                }
            }
        };
        drop(outbox);
        match reason {
            CloseReason::Code(code) => {
                self.metrics.disconnect(code);
                // Boxed: the writer task is sized for its largest await point, and
                // this one runs once, at the end.
                let limit = GOODBYE_TIMEOUT.min(self.write_timeout);
                let _ = Box::pin(tokio::time::timeout(limit, self.goodbye(code))).await;
            }
            // The peer closed (or the socket failed): flush the close reply that
            // tungstenite queued when it read the peer's close frame, so a
            // client that closes first sees a clean close, not a dropped socket.
            CloseReason::Gone => {
                let _ =
                    Box::pin(tokio::time::timeout(CLOSE_REPLY_TIMEOUT, self.sink.close())).await;
            }
        }
    }

    /// Takes up to [`BATCH`] items into `inbox`. When there are none, the
    /// connection goes idle: its buffers are freed first (an idle connection
    /// holds no batch memory), then it waits. 0 means the outbox is gone.
    async fn next_items(
        outbox: &mut outbox::Receiver,
        inbox: &mut Vec<Outgoing>,
        emits: &mut Vec<Emit>,
        batch: &mut Vec<Message>,
    ) -> usize {
        let n = outbox.take(inbox, BATCH);
        if n > 0 {
            return n;
        }
        *inbox = Vec::new();
        *emits = Vec::new();
        *batch = Vec::new();
        outbox.recv_many(inbox, BATCH).await
    }

    /// Writes the batch within the write timeout. The timer is armed only
    /// when the write does not complete at once (the common case does, and
    /// then costs no timer).
    async fn write_timed(&mut self) -> Written {
        let limit = self.write_timeout;
        let write = self.write_batch();
        tokio::pin!(write);
        let done = match write.as_mut().now_or_never() {
            Some(ok) => ok,
            None => match tokio::time::timeout(limit, write).await {
                Ok(ok) => ok,
                Err(_) => return Written::Stalled,
            },
        };
        if done { Written::Done } else { Written::Failed }
    }

    /// What a write's outcome means for the connection: `Some` ends it.
    fn after_write(&self, written: Written) -> Option<CloseReason> {
        match written {
            Written::Done => None,
            Written::Failed => {
                self.conn.gone();
                Some(CloseReason::Gone)
            }
            Written::Stalled => {
                tracing::debug!(conn = %self.conn.id, "write stalled past the write timeout; slow consumer");
                if self.conn.close(CloseCode::SlowConsumer) {
                    self.metrics.slow_consumer();
                }
                Some(self.conn.close_reason().unwrap_or(CloseReason::Gone))
            }
        }
    }

    async fn write_batch(&mut self) -> bool {
        let sampled_ts = std::mem::take(&mut self.first_pub_ts);
        let mut ok = true;
        for msg in self.batch.drain(..) {
            if self.sink.feed(msg).await.is_err() {
                ok = false;
                break;
            }
        }
        self.batch.clear();
        let ok = ok && self.sink.flush().await.is_ok();
        if ok && sampled_ts != 0 {
            let lag = crate::broker::now_ms().saturating_sub(sampled_ts);
            self.metrics
                .delivery_latency
                .observe(Duration::from_millis(lag));
        }
        ok
    }

    async fn goodbye(&mut self, code: CloseCode) {
        let frame = self.codec.encode(&ServerFrame::Disconnect {
            code: code.code(),
            reason: code.reason(),
            reconnect: code.reconnect(),
        });
        if self.sink.send(frame.into()).await.is_ok() {
            let close = Message::Close(Some(CloseFrame {
                code: code.code(),
                reason: Utf8Bytes::from_static(code.reason()),
            }));
            // The peer may already be gone; there is nobody left to tell.
            let _ = self.sink.send(close).await;
        }
    }

    /// Applies one outbox item, adding what must be written to the batch.
    fn take(&mut self, item: Outgoing) {
        if self.tracker.take(item, &mut self.emits).is_err()
            && self.conn.close(CloseCode::SlowConsumer)
        {
            self.metrics.slow_consumer();
        }
        for emit in self.emits.drain(..) {
            self.batch.push(match emit {
                Emit::Frame(msg) | Emit::Subscribed { frame: msg, .. } => msg,
                Emit::Broadcast(b) => {
                    if let BroadcastKind::Pub(p) = b.kind() {
                        self.metrics.deliveries(1);
                        if self.first_pub_ts == 0 {
                            self.first_pub_ts = p.ts;
                        }
                    }
                    b.message(self.codec)
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Publication;
    use crate::connection::ConnId;
    use crate::fanout::Broadcast;
    use crate::topic::Topic;

    fn publication(topic: &Topic, offset: u64) -> Arc<Broadcast> {
        Broadcast::publication(Arc::new(Publication {
            topic: topic.clone(),
            offset,
            event: "e".into(),
            data: serde_json::json!(offset),
            ts: 0,
            id: format!("p{offset}"),
        }))
    }

    fn text(m: &Message) -> serde_json::Value {
        match m {
            Message::Text(t) => serde_json::from_str(t).unwrap(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[tokio::test]
    async fn holds_broadcasts_until_subscribed_then_dedupes_by_offset() {
        let (sink_tx, mut sink_rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
        let sink = futures_util::sink::unfold(sink_tx, |tx, msg: Message| async move {
            tx.send(msg).map_err(|_| ())?;
            Ok::<_, ()>(tx)
        });
        let (tx, rx) = outbox::channel(64);
        let conn = Arc::new(ConnHandle::new(ConnId::next(), "c".into(), "u".into(), tx));
        let writer = Writer::new(
            Box::pin(sink),
            conn.clone(),
            Arc::new(Metrics::default()),
            WriterConfig {
                codec: Codec::Json,
                ping_interval: Duration::from_secs(3600),
                max_held: 16,
                write_timeout: Duration::from_secs(3600),
            },
        );
        let task = tokio::spawn(writer.run(rx));
        let t: Topic = "bookings:1".parse().unwrap();
        conn.send(Outgoing::Begin(t.clone())).await;
        // Live publications 3 and 4 arrive while history (up to 3) is read.
        conn.push(Outgoing::Broadcast(publication(&t, 3)));
        conn.push(Outgoing::Broadcast(publication(&t, 4)));
        let reply = Codec::Json.encode(&ServerFrame::Pong { id: 1 });
        let position = crate::broker::Position {
            epoch: crate::broker::Epoch::from_wire("e"),
            offset: 3,
        };
        conn.send(Outgoing::Subscribed(Box::new(
            crate::fanout::SubscribedReply {
                topic: t.clone(),
                position,
                frame: reply.into(),
            },
        )))
        .await;
        conn.push(Outgoing::Broadcast(publication(&t, 4)));
        conn.push(Outgoing::Broadcast(publication(&t, 5)));
        let other: Topic = "bookings:2".parse().unwrap();
        conn.push(Outgoing::Broadcast(publication(&other, 1)));
        assert_eq!(text(&sink_rx.recv().await.unwrap())["type"], "pong");
        assert_eq!(text(&sink_rx.recv().await.unwrap())["offset"], 4);
        assert_eq!(text(&sink_rx.recv().await.unwrap())["offset"], 5);
        conn.close(CloseCode::Shutdown);
        let bye = text(&sink_rx.recv().await.unwrap());
        assert_eq!(
            bye,
            serde_json::json!({"type":"disconnect","code":4200,"reason":"shutdown","reconnect":true})
        );
        match sink_rx.recv().await.unwrap() {
            Message::Close(Some(f)) => assert_eq!(f.code, 4200),
            other => panic!("{other:?}"),
        }
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_takes_nothing_is_a_slow_consumer_after_the_write_timeout() {
        // A socket whose peer stopped reading: no write ever completes.
        let sink = futures_util::sink::unfold((), |(), _msg: Message| {
            std::future::pending::<Result<(), ()>>()
        });
        let (tx, rx) = outbox::channel(64);
        let conn = Arc::new(ConnHandle::new(ConnId::next(), "c".into(), "u".into(), tx));
        let metrics = Arc::new(Metrics::default());
        let writer = Writer::new(
            Box::pin(sink),
            conn.clone(),
            metrics.clone(),
            WriterConfig {
                codec: Codec::Json,
                ping_interval: Duration::from_secs(3600),
                max_held: 16,
                write_timeout: Duration::from_secs(2),
            },
        );
        let task = tokio::spawn(writer.run(rx));
        let frame = Codec::Json.encode(&ServerFrame::Pong { id: 1 });
        conn.push(Outgoing::Frame(Box::new(frame.into())));
        let started = tokio::time::Instant::now();
        task.await.unwrap();
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::Code(CloseCode::SlowConsumer))
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(2) && waited <= Duration::from_secs(5),
            "the write timeout, then at most as long again for the goodbye: {waited:?}"
        );
        let text = metrics.render(crate::metrics::Gauges::default());
        assert!(
            text.contains("hubbub_slow_consumer_disconnects_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("hubbub_disconnects_total{code=\"4101\",reason=\"slow_consumer\"} 1\n")
        );
    }
}
