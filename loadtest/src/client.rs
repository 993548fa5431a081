//! Simulated clients: dialling (spread over loopback source addresses),
//! tokens, and the `connect` + `subscribe` handshake.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A client's socket.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// Opens client sockets to the hub nodes.
#[derive(Debug, Clone)]
pub(crate) struct Dialer {
    nodes: Vec<SocketAddr>,
    sources: Vec<IpAddr>,
}

impl Dialer {
    /// Clients go round-robin over `nodes`; with `source_addrs > 0` their
    /// sockets are bound to 127.0.0.2, 127.0.0.3, … (loopback targets only).
    pub(crate) fn new(nodes: Vec<SocketAddr>, source_addrs: u8) -> Result<Dialer> {
        let sources: Vec<IpAddr> = (0..source_addrs)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)))
            .collect();
        if !sources.is_empty() && nodes.iter().any(|n| !n.ip().is_loopback()) {
            bail!("--source-addrs works with loopback hubs only");
        }
        Ok(Dialer { nodes, sources })
    }

    /// Opens client `i`'s WebSocket (sub-protocol `hubbub.v1.json`).
    pub(crate) async fn open(&self, i: usize) -> Result<Ws> {
        let node = self.nodes[i % self.nodes.len()];
        let socket = if node.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if !self.sources.is_empty() {
            let src = self.sources[i % self.sources.len()];
            socket
                .bind(SocketAddr::new(src, 0))
                .with_context(|| format!("binding {src}"))?;
        }
        let stream = socket.connect(node).await.context("TCP connect")?;
        stream.set_nodelay(true)?;
        // Closed with a reset, not a FIN: back-to-back scenarios would
        // otherwise leave tens of thousands of TIME_WAIT sockets on the
        // source addresses, and bind(0) then spends its time searching for
        // a free port (measured: storm fell from ~9,600 to 400-1,800
        // connections/s with 56,000 sockets in TIME_WAIT).
        stream.set_zero_linger()?;
        let mut request = format!("ws://{node}/ws").into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "hubbub.v1.json".parse()?);
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_write_buffer_size(1 << 20);
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
        Ok(ws)
    }
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Mints an HS256 token valid for an hour.
pub(crate) fn token(secret: &str, sub: &str, subscribe: &[String], publish: &[String]) -> String {
    let now = now_us() / 1_000_000;
    let claims = json!({"sub": sub, "iat": now, "exp": now + 3600,
        "subscribe": subscribe, "publish": publish});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}

/// Sends `connect` with `token`, then subscribes to each of `topics`, waiting
/// for every reply.
pub(crate) async fn handshake(ws: &mut Ws, token: &str, topics: &[String]) -> Result<()> {
    let connect = json!({"type": "connect", "id": 1, "token": token}).to_string();
    ws.send(Message::text(connect)).await?;
    reply(ws, 1, "connected").await?;
    for (k, topic) in topics.iter().enumerate() {
        let id = 2 + k as u64;
        let sub = json!({"type": "subscribe", "id": id, "topic": topic}).to_string();
        ws.send(Message::text(sub)).await?;
        reply(ws, id, "subscribed").await?;
    }
    Ok(())
}

async fn reply(ws: &mut Ws, id: u64, want: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let next = tokio::time::timeout_at(deadline.into(), ws.next())
            .await
            .with_context(|| format!("no {want} within 30 s"))?;
        match next {
            Some(Ok(Message::Text(text))) => {
                if text.starts_with(r#"{"type":"pub""#) {
                    continue;
                }
                let v: Value = serde_json::from_str(&text)?;
                if v["id"].as_u64() != Some(id) {
                    continue;
                }
                if v["type"] == want {
                    return Ok(());
                }
                bail!("expected {want}, got {text}");
            }
            Some(Ok(Message::Close(frame))) => bail!("closed by the hub: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection ended"),
        }
    }
}

/// Opens and sets up `n` clients, one task each, `concurrency` at a time.
/// Client `i` gets `tokens[i % len]` and subscribes to `topics(i)`. Returns
/// the sockets (in no particular order), the failures, and each setup's
/// duration in µs.
pub(crate) async fn connect_all(
    dialer: &Dialer,
    n: usize,
    concurrency: usize,
    tokens: &[String],
    topics: impl Fn(usize) -> Vec<String>,
) -> (Vec<Ws>, Vec<anyhow::Error>, Vec<u64>) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let dialer = dialer.clone();
        let token = tokens[i % tokens.len()].clone();
        let topics = topics(i);
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let started = Instant::now();
            let mut ws = dialer.open(i).await?;
            handshake(&mut ws, &token, &topics).await?;
            Ok::<_, anyhow::Error>((ws, started.elapsed().as_micros() as u64))
        }));
    }
    let mut sockets = Vec::with_capacity(n);
    let mut errors = Vec::new();
    let mut setup = Vec::with_capacity(n);
    for task in tasks {
        match task.await {
            Ok(Ok((ws, us))) => {
                sockets.push(ws);
                setup.push(us);
            }
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(e.into()),
        }
    }
    (sockets, errors, setup)
}
