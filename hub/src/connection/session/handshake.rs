//! Before a session exists: the first frame (`connect`), its verdict, and
//! refusing a connection cleanly (`disconnect`, close frame, then lingering
//! for the peer's close).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, SinkExt, Stream, StreamExt};

use crate::auth::Identity;
use crate::hub::{Hub, HubError};
use crate::protocol::frames::{ClientFrame, ServerFrame};
use crate::protocol::{CloseCode, Codec};

use super::ReadError;

/// How long a closing connection keeps reading for the peer's close frame.
const LINGER: Duration = Duration::from_secs(5);

/// A connection refused before it had a session, with what is needed to
/// tell the client why.
pub(super) struct Refused<S> {
    pub(super) hub: Arc<Hub>,
    pub(super) sink: S,
    pub(super) error: Option<(u32, HubError)>,
    pub(super) code: CloseCode,
}

/// Why a connection is refused before it has a session: an optional error
/// reply (with the command id) and the close code.
pub(super) type Refusal = (Option<(u32, HubError)>, CloseCode);

/// Decides on the first frame: the `connect` command's id and identity, or a refusal.
pub(super) fn verify_connect(
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
        Ok(Ok(frame)) => Err((
            Some((frame.id(), HubError::ConnectFirst(frame.kind()))),
            CloseCode::ProtocolError,
        )),
    }
}

/// Closes a connection that never got a writer task: an optional `error`
/// reply, then `disconnect` and the close frame; then lingers for the peer's close.
pub(super) async fn refuse_and_linger<S, R>(
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
            let msg = err.client_message();
            let frame = ServerFrame::Error {
                id: Some(id),
                code: err.code(),
                message: &msg,
            };
            if sink.send(codec.encode(&frame).into()).await.is_err() {
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
pub(super) async fn linger<R>(stream: &mut R)
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
    if sink.send(codec.encode(&frame).into()).await.is_ok() {
        let close = CloseFrame {
            code: code.code(),
            reason: Utf8Bytes::from_static(code.reason()),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
    }
}

/// Reads until a data frame, decoding it; a close code when the handshake cannot go on.
pub(super) async fn next_frame<R>(
    stream: &mut R,
    codec: Codec,
    max: usize,
) -> Result<ClientFrame, CloseCode>
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
