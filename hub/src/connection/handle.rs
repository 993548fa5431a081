//! [`ConnHandle`]: the part of a connection that other tasks may touch: its
//! identity, its bounded outbox and its close signal.

use std::fmt;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::outbox::{self, TrySendError};
use crate::fanout::Outgoing;
use crate::protocol::CloseCode;

/// Process-unique connection number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    /// A fresh id.
    pub fn next() -> ConnId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// Close signal value meaning "the peer is gone; close without a `disconnect` frame".
const GONE: u16 = 1;

/// What happened to a non-blocking push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued.
    Queued,
    /// The outbox was full: the connection is now being closed with 4101.
    SlowConsumer,
    /// The connection is already closing; nothing was queued.
    Closed,
}

/// Why a connection is closing, as seen by its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Close with this contract code, after a `disconnect` frame.
    Code(CloseCode),
    /// The peer went away or the socket failed: nothing more to send.
    Gone,
}

/// A connection as the registry and the fan-out see it.
pub struct ConnHandle {
    /// Process-unique id.
    pub id: ConnId,
    /// The id given to the client in `connected`.
    pub client_id: Arc<str>,
    /// The token's `sub`.
    pub user: Arc<str>,
    outbox: outbox::Sender,
    close_code: AtomicU16,
    close_notify: Notify,
    /// When the peer last sent a frame, in ms since [`clock_ms`]'s start.
    last_read_ms: AtomicU64,
    /// How long [`ConnHandle::send`] waits for room before the connection
    /// counts as a slow consumer; `None`: as long as it takes.
    send_timeout: Option<Duration>,
}

/// Milliseconds on a monotonic clock that starts with the process.
fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnHandle")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ConnHandle {
    /// A handle around an outbox sender.
    pub fn new(
        id: ConnId,
        client_id: Arc<str>,
        user: Arc<str>,
        outbox: outbox::Sender,
    ) -> ConnHandle {
        ConnHandle {
            id,
            client_id,
            user,
            outbox,
            close_code: AtomicU16::new(0),
            close_notify: Notify::new(),
            last_read_ms: AtomicU64::new(clock_ms()),
            send_timeout: None,
        }
    }

    /// Bounds how long [`ConnHandle::send`] waits for room in the outbox.
    pub fn with_send_timeout(mut self, timeout: Duration) -> ConnHandle {
        self.send_timeout = Some(timeout);
        self
    }

    /// Queues without waiting. A full outbox makes this a slow consumer: the
    /// connection is closed with 4101 and recovers from history when it reconnects.
    pub fn push(&self, item: Outgoing) -> PushOutcome {
        if self.close_code.load(Ordering::Acquire) != 0 {
            return PushOutcome::Closed;
        }
        match self.outbox.try_send(item) {
            Ok(()) => PushOutcome::Queued,
            Err(TrySendError::Full(_)) => {
                if self.close(CloseCode::SlowConsumer) {
                    PushOutcome::SlowConsumer
                } else {
                    PushOutcome::Closed
                }
            }
            Err(TrySendError::Closed(_)) => PushOutcome::Closed,
        }
    }

    /// Queues, waiting for room (used for the connection's own replies, so a
    /// client that does not read only slows itself), at most the send
    /// timeout: a client that lets its replies pile up that long is a slow
    /// consumer and is closed with 4101 ([`PushOutcome::SlowConsumer`]).
    pub async fn send(&self, item: Outgoing) -> PushOutcome {
        if self.close_code.load(Ordering::Acquire) != 0 {
            return PushOutcome::Closed;
        }
        let wait = async {
            match self.send_timeout {
                Some(limit) => tokio::time::timeout(limit, self.outbox.send(item)).await,
                None => Ok(self.outbox.send(item).await),
            }
        };
        tokio::select! {
            sent = wait => match sent {
                Ok(Ok(())) => PushOutcome::Queued,
                Ok(Err(_)) => PushOutcome::Closed,
                Err(_) if self.close(CloseCode::SlowConsumer) => PushOutcome::SlowConsumer,
                Err(_) => PushOutcome::Closed,
            },
            _ = self.closed() => PushOutcome::Closed,
        }
    }

    /// Notes that the peer sent a frame (any frame, pongs included).
    pub fn touch(&self) {
        self.last_read_ms.store(clock_ms(), Ordering::Relaxed);
    }

    /// How long the peer has been silent (since connecting, or its last frame).
    pub fn silent_for(&self) -> Duration {
        Duration::from_millis(clock_ms().saturating_sub(self.last_read_ms.load(Ordering::Relaxed)))
    }

    /// Asks the connection to close with `code`. The first request wins;
    /// returns whether this one did.
    pub fn close(&self, code: CloseCode) -> bool {
        self.trigger(code.code())
    }

    /// Marks the peer as gone (no `disconnect` frame will be sent).
    pub fn gone(&self) -> bool {
        self.trigger(GONE)
    }

    fn trigger(&self, value: u16) -> bool {
        let won = self
            .close_code
            .compare_exchange(0, value, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            self.close_notify.notify_waiters();
        }
        won
    }

    /// Why the connection is closing, if it is.
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self.close_code.load(Ordering::Acquire) {
            0 => None,
            GONE => Some(CloseReason::Gone),
            n => Some(CloseCode::from_code(n).map_or(CloseReason::Gone, CloseReason::Code)),
        }
    }

    /// Completes once a close was requested; returns why.
    pub async fn closed(&self) -> CloseReason {
        loop {
            let notified = self.close_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(reason) = self.close_reason() {
                return reason;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ws::Message;

    fn handle(cap: usize) -> (Arc<ConnHandle>, outbox::Receiver) {
        let (tx, rx) = outbox::channel(cap);
        (
            Arc::new(ConnHandle::new(ConnId::next(), "c".into(), "u".into(), tx)),
            rx,
        )
    }

    #[tokio::test]
    async fn a_full_outbox_closes_with_slow_consumer_once() {
        let (h, _rx) = handle(1);
        assert_eq!(
            h.push(Outgoing::Frame(Box::new(Message::Ping(Default::default())))),
            PushOutcome::Queued
        );
        assert_eq!(
            h.push(Outgoing::Frame(Box::new(Message::Ping(Default::default())))),
            PushOutcome::SlowConsumer
        );
        assert_eq!(
            h.push(Outgoing::Frame(Box::new(Message::Ping(Default::default())))),
            PushOutcome::Closed
        );
        assert_eq!(h.closed().await, CloseReason::Code(CloseCode::SlowConsumer));
        assert!(!h.close(CloseCode::Shutdown), "first reason wins");
    }

    #[tokio::test]
    async fn closed_wakes_a_waiter() {
        let (h, _rx) = handle(4);
        let h2 = h.clone();
        let waiter = tokio::spawn(async move { h2.closed().await });
        tokio::task::yield_now().await;
        assert!(h.close(CloseCode::Shutdown));
        assert_eq!(
            waiter.await.unwrap(),
            CloseReason::Code(CloseCode::Shutdown)
        );
        assert_eq!(
            h.send(Outgoing::Frame(Box::new(Message::Ping(Default::default()))))
                .await,
            PushOutcome::Closed
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_waits_for_room_at_most_the_send_timeout() {
        let (tx, _rx) = outbox::channel(1);
        let h = ConnHandle::new(ConnId::next(), "c".into(), "u".into(), tx)
            .with_send_timeout(Duration::from_secs(2));
        let ping = || Outgoing::Frame(Box::new(Message::Ping(Default::default())));
        assert_eq!(h.send(ping()).await, PushOutcome::Queued);
        assert_eq!(h.send(ping()).await, PushOutcome::SlowConsumer);
        assert_eq!(
            h.close_reason(),
            Some(CloseReason::Code(CloseCode::SlowConsumer))
        );
    }
}
