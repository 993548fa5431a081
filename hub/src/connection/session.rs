//! The reader side of a connection: the `connect` handshake, then one command
//! at a time until the connection closes. Its [`Registration`] owns the
//! registry entry, the subscriptions and presence, and gives them back when
//! the session ends, in order, or when it is dropped (a panic included).
//! Generic over the socket's `Sink`/`Stream` halves so it can be driven by
//! channels in tests.
//!
//! - `handshake`: the first frame, its verdict, refusing cleanly.
//! - `commands`: the commands of a connected session.

use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes};
use futures_util::{Sink, Stream, StreamExt};
use tokio::time::Instant;
use tracing::debug;

use super::handle::{CloseReason, ConnHandle};
use super::registration::Registration;
use super::writer::{Writer, WriterConfig};
use crate::auth::Identity;
use crate::fanout::Outgoing;
use crate::hub::{Hub, HubError};
use crate::limits::TokenBucket;
use crate::protocol::frames::ServerFrame;
use crate::protocol::{CloseCode, Codec, DecodeError, ErrorCode};

mod commands;
mod handshake;

use handshake::{Refusal, Refused, linger, next_frame, refuse_and_linger, verify_connect};

/// An error reading from the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// A frame exceeded the size limit.
    TooBig,
    /// Any other transport failure.
    Transport,
}

/// Runs a connection to completion over its two socket halves. With
/// `refuse`, the connection is closed at once with that code (a limit was hit
/// before the upgrade could be refused in a way a browser would see).
pub async fn run_connection<S, R>(
    hub: Arc<Hub>,
    sink: S,
    mut stream: R,
    codec: Codec,
    refuse: Option<CloseCode>,
) where
    S: Sink<Message> + Unpin + Send + 'static,
    R: Stream<Item = Result<Message, ReadError>> + Unpin + Send,
{
    hub.metrics.connection_accepted();
    let verified = match refuse {
        Some(code) => Err((None, code)),
        None => {
            let max_frame = hub.config.limits.max_frame_bytes;
            let connect = tokio::select! {
                first = tokio::time::timeout(hub.config.limits.connect_timeout, next_frame(&mut stream, codec, max_frame)) => first,
                _ = hub.draining() => Ok(Err(CloseCode::Shutdown)),
            };
            verify_connect(&hub, connect)
        }
    };
    // `verified` is moved whole into a synchronous call: neither the connect
    // frame (the token above all) nor the setup's locals are kept in this
    // future for the connection's life.
    match Session::open(hub, sink, codec, verified) {
        Ok((session, id, expires_in)) => session.serve(id, expires_in, stream).await,
        Err(refused) => {
            let Refused {
                hub,
                mut sink,
                error,
                code,
            } = *refused;
            Box::pin(refuse_and_linger(
                &hub,
                &mut sink,
                &mut stream,
                codec,
                error,
                code,
            ))
            .await;
        }
    }
}

struct Session {
    hub: Arc<Hub>,
    conn: Arc<ConnHandle>,
    codec: Codec,
    /// The registry entry, subscriptions and presence; released on drop.
    reg: Registration,
    token_deadline: Instant,
    /// `limits.command_rate` per second with `command_burst`; `None` when unlimited.
    commands: Option<TokenBucket>,
    /// Commands refused in a row for the rate; a burst of them closes with 4102.
    refused_in_a_row: usize,
}

impl Session {
    /// Opens the session for a verified `connect`: registers the connection
    /// and spawns its writer. Synchronous on purpose: its locals then never
    /// become part of the connection's future. On refusal, hands back the
    /// socket half with the close code.
    fn open<S>(
        hub: Arc<Hub>,
        sink: S,
        codec: Codec,
        verified: Result<(u32, Identity), Refusal>,
    ) -> Result<(Box<Session>, u32, u64), Box<Refused<S>>>
    where
        S: Sink<Message> + Unpin + Send + 'static,
    {
        let (id, identity) = match verified {
            Ok(v) => v,
            Err((error, code)) => {
                return Err(Box::new(Refused {
                    hub,
                    sink,
                    error,
                    code,
                }));
            }
        };
        let (reg, rx) = match Registration::open(hub.clone(), identity) {
            Ok(opened) => opened,
            Err(e) => {
                let code = match e {
                    HubError::ConnectionLimit => CloseCode::ConnectionLimit,
                    _ => CloseCode::Unauthorized,
                };
                return Err(Box::new(Refused {
                    hub,
                    sink,
                    error: None,
                    code,
                }));
            }
        };
        let conn = reg.conn().clone();
        let identity = reg.identity();
        let limits = &hub.config.limits;
        let span = tracing::Span::current();
        span.record("id", tracing::field::display(conn.id));
        span.record("user", tracing::field::display(&identity.user));
        let writer = Writer::new(
            sink,
            conn.clone(),
            hub.metrics.clone(),
            WriterConfig {
                codec,
                ping_interval: limits.ping_interval,
                max_held: limits.outbox_size,
                write_timeout: limits.write_timeout(),
            },
        );
        tokio::spawn(writer.run(rx));
        // A drain that began between the check and the registration must still reach us.
        if hub.is_draining() {
            conn.close(CloseCode::Shutdown);
        }
        let expires_in = identity.expires_in();
        let token_deadline = identity.deadline();
        let commands = (limits.command_rate > 0).then(|| {
            TokenBucket::new(
                limits.command_rate,
                limits.command_burst,
                std::time::Instant::now(),
            )
        });
        let session = Box::new(Session {
            token_deadline,
            hub,
            conn,
            codec,
            reg,
            commands,
            refused_in_a_row: 0,
        });
        Ok((session, id, expires_in))
    }

    /// Answers `connect` (command `id`, token valid for `expires_in` s),
    /// serves commands until the connection closes, then cleans up.
    async fn serve<R>(mut self: Box<Self>, id: u32, expires_in: u64, mut stream: R)
    where
        R: Stream<Item = Result<Message, ReadError>> + Unpin + Send,
    {
        let ping_interval = self.hub.config.limits.ping_interval.as_secs().max(1);
        // Boxed here and below: one-off awaits would otherwise size this
        // future, which lives as long as the connection, for their state.
        Box::pin(self.reply(&ServerFrame::Connected {
            id,
            client_id: &self.conn.client_id,
            node: &self.hub.node,
            expires_in: Some(expires_in),
            ping_interval,
        }))
        .await;
        debug!(conn = %self.conn.id, user = %self.reg.identity().user, "connected");
        self.run(&mut stream).await;
        let Session { conn, reg, .. } = *self;
        Box::pin(reg.release()).await;
        if matches!(conn.close_reason(), Some(CloseReason::Code(_))) {
            Box::pin(linger(&mut stream)).await;
        }
    }

    async fn run<R>(&mut self, stream: &mut R)
    where
        R: Stream<Item = Result<Message, ReadError>> + Unpin,
    {
        // A dead peer is found by the writer, which checks on every ping
        // tick how long the peer has been silent: no idle timer here.
        let conn = self.conn.clone();
        let token_timer = tokio::time::sleep_until(self.token_deadline);
        tokio::pin!(token_timer);
        loop {
            if token_timer.deadline() != self.token_deadline {
                // A `refresh` moved the deadline.
                token_timer.as_mut().reset(self.token_deadline);
            }
            let next = tokio::select! {
                biased;
                _ = conn.closed() => return,
                _ = &mut token_timer => {
                    conn.close(CloseCode::TokenExpired);
                    return;
                }
                next = stream.next() => next,
            };
            if let Some(Ok(_)) = next {
                conn.touch();
            }
            let (payload, binary) = match next {
                Some(Ok(Message::Text(t))) => (Payload::Text(t), false),
                Some(Ok(Message::Binary(b))) => (Payload::Binary(b), true),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Err(ReadError::TooBig)) => {
                    conn.close(CloseCode::MessageTooBig);
                    return;
                }
                Some(Ok(Message::Close(_)) | Err(ReadError::Transport)) | None => {
                    conn.gone();
                    return;
                }
            };
            // Boxed: decoding and running a command needs far more state
            // than waiting for the next frame, which is what a connection
            // does almost all of its life.
            if !Box::pin(self.on_frame(payload, binary)).await {
                return;
            }
        }
    }

    /// Decodes and runs one data frame; false when the connection is closing.
    async fn on_frame(&mut self, payload: Payload, binary: bool) -> bool {
        if payload.bytes().len() > self.hub.config.limits.max_frame_bytes {
            self.conn.close(CloseCode::MessageTooBig);
            return false;
        }
        let frame = match self.codec.decode(payload.bytes(), binary) {
            Ok(frame) => frame,
            Err(DecodeError::BadCommand { id, detail }) => {
                self.error(id, ErrorCode::BadRequest, &detail).await;
                return true;
            }
            Err(e @ DecodeError::Protocol { .. }) => {
                debug!(conn = %self.conn.id, error = %e, "protocol error");
                self.conn.close(CloseCode::ProtocolError);
                return false;
            }
        };
        let id = frame.id();
        if let Some(bucket) = &mut self.commands
            && !bucket.take(std::time::Instant::now())
        {
            self.refused_in_a_row += 1;
            if self.refused_in_a_row > self.hub.config.limits.command_burst {
                self.conn.close(CloseCode::RateLimited);
                return false;
            }
            let msg = "too many commands; slow down";
            self.error(Some(id), ErrorCode::RateLimited, msg).await;
            return true;
        }
        self.refused_in_a_row = 0;
        // Not boxed again: this whole future is (see `run`).
        match self.command(frame).await {
            Ok(()) => {}
            Err(err) => {
                let msg = err.client_message();
                self.error(Some(id), err.code(), &msg).await;
            }
        }
        true
    }

    async fn reply(&self, frame: &ServerFrame<'_>) {
        let outcome = self
            .conn
            .send(Outgoing::Frame(Box::new(self.codec.encode(frame).into())))
            .await;
        crate::engine::queued(&self.hub, outcome);
    }

    async fn error(&self, id: Option<u32>, code: ErrorCode, message: &str) {
        self.hub.metrics.error(code);
        self.reply(&ServerFrame::Error { id, code, message }).await;
    }
}

enum Payload {
    Text(Utf8Bytes),
    Binary(bytes::Bytes),
}

impl Payload {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Text(t) => t.as_bytes(),
            Payload::Binary(b) => b,
        }
    }
}
