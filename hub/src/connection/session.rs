//! The reader side of a connection: the `connect` handshake, then one command
//! at a time until the connection closes, then cleanup (subscriptions,
//! presence, registry). Generic over the socket's `Sink`/`Stream` halves so it
//! can be driven by channels in tests.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::time::Instant;
use tracing::debug;

use super::handle::{CloseReason, ConnHandle, ConnId};
use super::subscription::{self, Opened};
use super::writer::{Writer, WriterConfig};
use crate::auth::Identity;
use crate::broker::Position;
use crate::config::NamespaceConfig;
use crate::fanout::Outgoing;
use crate::hub::{Hub, HubError, PublishInput};
use crate::limits::TokenBucket;
use crate::metrics::Rejection;
use crate::protocol::frames::{ClientFrame, Member, PositionWire, PublicationWire, ServerFrame};
use crate::protocol::{CloseCode, Codec, DecodeError, ErrorCode};
use crate::topic::Topic;

/// How long a closing connection keeps reading for the peer's close frame.
const LINGER: Duration = Duration::from_secs(5);

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
        Ok((session, id)) => session.serve(id, stream).await,
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

/// A connection refused before it had a session, with what is needed to
/// tell the client why.
struct Refused<S> {
    hub: Arc<Hub>,
    sink: S,
    error: Option<(u32, HubError)>,
    code: CloseCode,
}

/// Why a connection is refused before it has a session: an optional error
/// reply (with the command id) and the close code.
type Refusal = (Option<(u32, HubError)>, CloseCode);

/// Decides on the first frame: the `connect` command's id and identity, or a refusal.
fn verify_connect(
    hub: &Hub,
    connect: Result<Result<ClientFrame, CloseCode>, tokio::time::error::Elapsed>,
) -> Result<(u32, Identity), Refusal> {
    match connect {
        Err(_) => Err((None, CloseCode::ConnectTimeout)),
        Ok(Err(code)) => Err((None, code)),
        Ok(Ok(ClientFrame::Connect { .. })) if hub.is_draining() => {
            Err((None, CloseCode::Shutdown))
        }
        Ok(Ok(ClientFrame::Connect { id, token, .. })) => match hub.verifier.verify(&token) {
            Ok(identity) => Ok((id, identity)),
            Err(e) => {
                let code = if e.is_expired() {
                    CloseCode::TokenExpired
                } else {
                    CloseCode::Unauthorized
                };
                Err((Some((id, HubError::Auth(e))), code))
            }
        },
        Ok(Ok(_)) => Err((None, CloseCode::ProtocolError)),
    }
}

/// Closes a connection that never got a writer task: an optional `error`
/// reply, then `disconnect` and the close frame; then lingers for the peer's close.
async fn refuse_and_linger<S, R>(
    hub: &Hub,
    sink: &mut S,
    stream: &mut R,
    codec: Codec,
    error: Option<(u32, HubError)>,
    code: CloseCode,
) where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, ReadError>> + Unpin,
{
    hub.metrics.disconnect(code);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        if let Some((id, err)) = error {
            hub.metrics.error(err.code());
            let msg = err.to_string();
            let frame = ServerFrame::Error {
                id: Some(id),
                code: err.code(),
                message: &msg,
            };
            if sink.send(codec.encode(&frame)).await.is_err() {
                return;
            }
        }
        refuse(sink, codec, code).await;
    })
    .await;
    linger(stream).await;
}

/// After the hub closed: keep reading (and discarding) until the peer's close
/// frame or end of stream, for at most [`LINGER`]. Dropping a socket with
/// unread input makes the kernel send a reset, which can destroy our own
/// `disconnect` and close frames before the client reads them.
async fn linger<R>(stream: &mut R)
where
    R: Stream<Item = Result<Message, ReadError>> + Unpin,
{
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(msg)) = stream.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Sends `disconnect` and the close frame on a socket that has no writer task.
async fn refuse<S: Sink<Message> + Unpin>(sink: &mut S, codec: Codec, code: CloseCode) {
    let frame = ServerFrame::Disconnect {
        code: code.code(),
        reason: code.reason(),
        reconnect: code.reconnect(),
    };
    if sink.send(codec.encode(&frame)).await.is_ok() {
        let close = CloseFrame {
            code: code.code(),
            reason: Utf8Bytes::from_static(code.reason()),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
    }
}

/// Reads until a data frame, decoding it; a close code when the handshake cannot go on.
async fn next_frame<R>(stream: &mut R, codec: Codec, max: usize) -> Result<ClientFrame, CloseCode>
where
    R: Stream<Item = Result<Message, ReadError>> + Unpin,
{
    loop {
        let (payload, binary) = match stream.next().await {
            Some(Ok(Message::Text(t))) => (t.as_bytes().to_vec(), false),
            Some(Ok(Message::Binary(b))) => (b.to_vec(), true),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Err(ReadError::TooBig)) => return Err(CloseCode::MessageTooBig),
            Some(Ok(Message::Close(_)) | Err(ReadError::Transport)) | None => {
                return Err(CloseCode::ProtocolError);
            }
        };
        if payload.len() > max {
            return Err(CloseCode::MessageTooBig);
        }
        return codec
            .decode(&payload, binary)
            .map_err(|_| CloseCode::ProtocolError);
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Session {
    hub: Arc<Hub>,
    conn: Arc<ConnHandle>,
    codec: Codec,
    identity: Identity,
    subs: HashSet<Topic>,
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
    ) -> Result<(Box<Session>, u32), Box<Refused<S>>>
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
        let limits = &hub.config.limits;
        let (tx, rx) = super::outbox::channel(limits.outbox_size);
        let client_id: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        let conn = Arc::new(ConnHandle::new(
            ConnId::next(),
            client_id,
            identity.user.clone(),
            tx,
        ));
        if !hub.registry.try_register(
            conn.clone(),
            limits.max_connections,
            limits.max_connections_per_user,
        ) {
            hub.metrics.rejected(Rejection::ConnectionLimit);
            return Err(Box::new(Refused {
                hub,
                sink,
                error: None,
                code: CloseCode::ConnectionLimit,
            }));
        }
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
            },
        );
        tokio::spawn(writer.run(rx));
        // A drain that began between the check and the registration must still reach us.
        if hub.is_draining() {
            conn.close(CloseCode::Shutdown);
        }
        let expires_in = identity.expires_at.saturating_sub(unix_now());
        let commands = (limits.command_rate > 0).then(|| {
            TokenBucket::new(
                limits.command_rate,
                limits.command_burst,
                std::time::Instant::now(),
            )
        });
        let session = Box::new(Session {
            token_deadline: Instant::now() + Duration::from_secs(expires_in),
            hub,
            conn,
            codec,
            identity,
            subs: HashSet::new(),
            commands,
            refused_in_a_row: 0,
        });
        Ok((session, id))
    }

    /// Answers `connect` (command `id`), serves commands until the
    /// connection closes, then cleans up.
    async fn serve<R>(mut self: Box<Self>, id: u32, mut stream: R)
    where
        R: Stream<Item = Result<Message, ReadError>> + Unpin + Send,
    {
        let expires_in = self.identity.expires_at.saturating_sub(unix_now());
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
        debug!(conn = %self.conn.id, user = %self.identity.user, "connected");
        self.run(&mut stream).await;
        Box::pin(self.cleanup()).await;
        if matches!(self.conn.close_reason(), Some(CloseReason::Code(_))) {
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
                let msg = err.to_string();
                self.error(Some(id), err.code(), &msg).await;
            }
        }
        true
    }

    async fn reply(&self, frame: &ServerFrame<'_>) {
        self.conn
            .send(Outgoing::Frame(Box::new(self.codec.encode(frame))))
            .await;
    }

    async fn error(&self, id: Option<u32>, code: ErrorCode, message: &str) {
        self.hub.metrics.error(code);
        self.reply(&ServerFrame::Error { id, code, message }).await;
    }

    fn can_subscribe(&self, topic: &Topic, ns: &NamespaceConfig) -> Result<(), HubError> {
        if ns.public || self.identity.permissions.can_subscribe(topic) {
            Ok(())
        } else {
            Err(HubError::NotPermitted {
                action: "subscribe",
                topic: topic.clone(),
            })
        }
    }

    async fn command(&mut self, frame: ClientFrame) -> Result<(), HubError> {
        match frame {
            ClientFrame::Connect { .. } => Err(HubError::AlreadyConnected),
            ClientFrame::Ping { id } => {
                self.reply(&ServerFrame::Pong { id }).await;
                Ok(())
            }
            ClientFrame::Subscribe { id, topic, since } => {
                self.subscribe(id, &topic, since.as_ref()).await
            }
            ClientFrame::Unsubscribe { id, topic } => {
                let (topic, _) = self.hub.resolve(&topic)?;
                if !self.subs.remove(&topic) {
                    return Err(HubError::NotSubscribed(topic));
                }
                self.leave_topic(&topic).await;
                let frame = self.codec.encode(&ServerFrame::Unsubscribed {
                    id,
                    topic: topic.as_str(),
                });
                self.conn
                    .send(Outgoing::End {
                        topic,
                        frame: Box::new(frame),
                    })
                    .await;
                Ok(())
            }
            ClientFrame::Publish {
                id,
                topic,
                event,
                data,
                idempotency_key,
            } => {
                let (topic, ns) = self.hub.resolve(&topic)?;
                if !ns.client_publish {
                    return Err(HubError::ClientPublishDisabled(
                        topic.namespace().to_owned(),
                    ));
                }
                if !self.identity.permissions.can_publish(&topic) {
                    return Err(HubError::NotPermitted {
                        action: "publish",
                        topic,
                    });
                }
                let input = PublishInput {
                    topic: topic.to_string(),
                    event,
                    data,
                    idempotency_key,
                };
                let position = self.hub.publish(topic, ns, input).await?.to_wire();
                self.reply(&ServerFrame::Published {
                    id,
                    position: &position,
                })
                .await;
                Ok(())
            }
            ClientFrame::Refresh { id, token } => {
                let identity = self.hub.verifier.verify(&token)?;
                if identity.user != self.identity.user {
                    return Err(HubError::UserMismatch);
                }
                let expires_in = identity.expires_at.saturating_sub(unix_now());
                self.token_deadline = Instant::now() + Duration::from_secs(expires_in);
                self.identity = identity;
                self.reply(&ServerFrame::Refreshed {
                    id,
                    expires_in: Some(expires_in),
                })
                .await;
                Ok(())
            }
            ClientFrame::Presence { id, topic } => {
                let (topic, ns) = self.hub.resolve(&topic)?;
                self.can_subscribe(&topic, ns)?;
                let members = self.hub.presence(&topic, ns).await?;
                self.reply(&ServerFrame::Presence {
                    id,
                    members: &members,
                })
                .await;
                Ok(())
            }
            ClientFrame::History {
                id,
                topic,
                since,
                limit,
            } => {
                let (topic, ns) = self.hub.resolve(&topic)?;
                self.can_subscribe(&topic, ns)?;
                let since = since.as_ref().map(Position::from_wire);
                let page = self
                    .hub
                    .history(&topic, ns, since.as_ref(), limit.map(u64::from))
                    .await?;
                let publications: Vec<PublicationWire> =
                    page.publications.iter().map(|p| p.to_wire()).collect();
                let position = page.position.to_wire();
                self.reply(&ServerFrame::History {
                    id,
                    publications: &publications,
                    position: &position,
                })
                .await;
                Ok(())
            }
        }
    }

    async fn subscribe(
        &mut self,
        id: u32,
        topic: &str,
        since: Option<&PositionWire>,
    ) -> Result<(), HubError> {
        let (topic, ns) = self.hub.resolve(topic)?;
        self.can_subscribe(&topic, ns)?;
        if self.subs.contains(&topic) {
            return Err(HubError::AlreadySubscribed(topic));
        }
        let max = self.hub.config.limits.max_subscriptions;
        if self.subs.len() >= max {
            return Err(HubError::SubscriptionLimit(max));
        }
        let since = since.map(Position::from_wire);
        let opened = subscription::open(
            &self.hub,
            &self.conn,
            &topic,
            ns,
            since.as_ref(),
            self.codec,
            id,
        )
        .await;
        if opened != Opened::Subscribed {
            return Ok(());
        }
        self.subs.insert(topic.clone());
        if ns.presence
            && let Err(e) = self
                .hub
                .broker
                .join(&topic, self.member(), ns.join_leave)
                .await
        {
            tracing::warn!(topic = %topic, error = %e, "presence join failed");
        }
        Ok(())
    }

    /// Unsubscribes from `topic`, leaving presence when its namespace has it.
    async fn leave_topic(&self, topic: &Topic) {
        let ns = self.hub.config.namespace(topic.namespace());
        let member = ns.and_then(|ns| ns.presence.then_some((self.member(), ns.join_leave)));
        let member = member.as_ref().map(|(m, announce)| (m, *announce));
        subscription::close(&self.hub, &self.conn, topic, member).await;
    }

    /// This connection as a presence member (built when needed, not kept:
    /// most connections never use presence).
    fn member(&self) -> Member {
        Member {
            client_id: self.conn.client_id.to_string(),
            user: self.identity.user.to_string(),
            info: self
                .identity
                .info
                .as_deref()
                .cloned()
                .unwrap_or(serde_json::Value::Null),
        }
    }

    async fn cleanup(&mut self) {
        self.conn.gone();
        self.hub.registry.unregister(&self.conn);
        for topic in std::mem::take(&mut self.subs) {
            self.leave_topic(&topic).await;
        }
        debug!(conn = %self.conn.id, "closed");
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
