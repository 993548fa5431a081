//! [`Client`]: a WebSocket test client speaking the contract in JSON or
//! MessagePack, with request/reply matching by `id` and typed close results.

use std::collections::VecDeque;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::WAIT;

/// A sub-protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// `hubbub.v1.json`.
    Json,
    /// `hubbub.v1.msgpack`.
    MsgPack,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    /// The `disconnect` frame, if one came.
    pub disconnect: Option<Value>,
    /// The close frame's code, if one came.
    pub code: Option<u16>,
}

/// A test client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    proto: Proto,
    next_id: u32,
    pending: VecDeque<Value>,
}

impl Client {
    /// Opens a socket without connecting (authenticating).
    pub async fn open(url: &str, proto: Proto) -> Result<Client> {
        Client::open_with(url, proto, &[]).await
    }

    /// [`Client::open`] with extra handshake headers (e.g. `Origin`).
    pub async fn open_with(
        url: &str,
        proto: Proto,
        headers: &[(&'static str, &str)],
    ) -> Result<Client> {
        let mut req = url.into_client_request()?;
        for (name, value) in headers {
            req.headers_mut()
                .insert(*name, HeaderValue::from_str(value)?);
        }
        let name = match proto {
            Proto::Json => "hubbub.v1.json",
            Proto::MsgPack => "hubbub.v1.msgpack",
        };
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(name));
        let (ws, resp) =
            tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req)).await??;
        let chosen = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok());
        if chosen != Some(name) {
            bail!("sub-protocol not negotiated: {chosen:?}");
        }
        Ok(Client {
            ws,
            proto,
            next_id: 1,
            pending: VecDeque::new(),
        })
    }

    /// Opens and sends `connect` with `token`; returns the client and the `connected` reply.
    pub async fn connect(url: &str, proto: Proto, token: &str) -> Result<(Client, Value)> {
        let mut c = Client::open(url, proto).await?;
        let reply = c
            .request(json!({"type": "connect", "token": token}))
            .await?;
        if reply["type"] != "connected" {
            bail!("connect answered {reply}");
        }
        Ok((c, reply))
    }

    /// Sends a raw frame (no id added).
    pub async fn send_raw(&mut self, msg: Message) -> Result<()> {
        self.ws.send(msg).await?;
        Ok(())
    }

    /// Sends a command object as-is, encoded for the sub-protocol.
    pub async fn send(&mut self, v: &Value) -> Result<()> {
        let msg = match self.proto {
            Proto::Json => Message::text(v.to_string()),
            Proto::MsgPack => Message::binary(rmp_serde::to_vec_named(v)?),
        };
        self.send_raw(msg).await
    }

    /// Sends `cmd` with a fresh id and returns the reply with that id
    /// (other frames are kept for [`Client::next`]).
    pub async fn request(&mut self, mut cmd: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        cmd["id"] = json!(id);
        self.send(&cmd).await?;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.read())
                .await
                .with_context(|| format!("no reply to {cmd}"))??;
            if frame["id"] == json!(id) && frame["type"] != "pub" {
                return Ok(frame);
            }
            self.pending.push_back(frame);
        }
    }

    /// The next frame (buffered first), within [`WAIT`].
    pub async fn next(&mut self) -> Result<Value> {
        if let Some(v) = self.pending.pop_front() {
            return Ok(v);
        }
        tokio::time::timeout(WAIT, self.read())
            .await
            .context("no frame in time")?
    }

    /// The next frame of `kind` (e.g. `pub`), skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Result<Value> {
        loop {
            let v = self.next().await?;
            if v["type"] == kind {
                return Ok(v);
            }
        }
    }

    /// Reads one data frame from the socket; an error if the socket closes.
    async fn read(&mut self) -> Result<Value> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    if self.proto != Proto::Json {
                        bail!("text frame on msgpack: {t}");
                    }
                    return Ok(serde_json::from_str(&t)?);
                }
                Some(Ok(Message::Binary(b))) => {
                    if self.proto != Proto::MsgPack {
                        bail!("binary frame on json");
                    }
                    return Ok(rmp_serde::from_slice(&b)?);
                }
                Some(Ok(Message::Close(f))) => bail!("closed: {f:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("socket error: {e}"),
                None => bail!("socket ended"),
            }
        }
    }

    /// Reads until the connection ends; returns the `disconnect` frame and close code.
    pub async fn closed(&mut self) -> Result<Closed> {
        let mut disconnect = self
            .pending
            .iter()
            .find(|v| v["type"] == "disconnect")
            .cloned();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .context("connection did not close")?;
            match next {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t)?;
                    if v["type"] == "disconnect" {
                        disconnect = Some(v);
                    }
                }
                Some(Ok(Message::Binary(b))) => {
                    let v: Value = rmp_serde::from_slice(&b)?;
                    if v["type"] == "disconnect" {
                        disconnect = Some(v);
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    return Ok(Closed {
                        disconnect,
                        code: f.map(|f| u16::from(f.code)),
                    });
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    return Ok(Closed {
                        disconnect,
                        code: None,
                    });
                }
            }
        }
    }

    /// Frames received but not yet taken with [`Client::next`].
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Subscribes; returns the `subscribed` reply (or the error reply).
    pub async fn subscribe(&mut self, topic: &str, since: Option<&Value>) -> Result<Value> {
        let mut cmd = json!({"type": "subscribe", "topic": topic});
        if let Some(since) = since {
            cmd["since"] = since.clone();
        }
        self.request(cmd).await
    }
}
