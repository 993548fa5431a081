//! `hubbub-reference`: the least a realtime hub can do on this machine, so
//! that `loadtest/bench` can print Hubbub's figures as ratios to it, measured
//! in the same run (noise between runs cancels out).
//!
//! It speaks just enough of the wire contract for `hubbub-loadtest`:
//! `POST /api/v1/publish` and `POST /api/v1/batch` (no auth, no history, no
//! idempotency: a per-topic counter gives the offset), and `GET /ws` with the
//! `hubbub.v1.json` sub-protocol answering `connect`, `subscribe` and `ping`
//! (no token check). A publication is serialized into one WebSocket frame
//! once, and every subscriber's writer task writes those same bytes with one
//! `write` call. The HTTP/1.1 and WebSocket framing are hand-rolled on a raw
//! `TcpStream` (httparse for the request head), so no framework work is in
//! the way. Started like the hub by `hubbub-loadtest --hub-bin`: it accepts
//! (and ignores) `--config FILE`, listens on `HUBBUB_LISTEN` (default
//! `127.0.0.1:0`) and prints `listening on http://ADDR`.
//!
//! Not a server to deploy: it trusts every client and keeps nothing.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Frames queued for one connection before it counts as a slow consumer.
const QUEUE: usize = 1024;
/// Largest request head or client frame accepted.
const MAX_INPUT: usize = 1 << 20;

/// One subscriber: its connection and its writer's queue.
type Subscriber = (u64, mpsc::Sender<Bytes>);

#[derive(Default)]
struct Topic {
    offset: u64,
    subscribers: Vec<Subscriber>,
}

#[derive(Default)]
struct State {
    topics: Mutex<HashMap<String, Topic>>,
    next_conn: AtomicU64,
}

impl State {
    fn topics(&self) -> MutexGuard<'_, HashMap<String, Topic>> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Assigns the next offset and hands the frame, built once, to every
    /// subscriber; a subscriber whose queue is full is dropped (its writer
    /// then ends the connection).
    fn publish(&self, p: &PublishBody) -> u64 {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut topics = self.topics();
        let topic = topics.entry(p.topic.clone()).or_default();
        topic.offset += 1;
        let offset = topic.offset;
        if topic.subscribers.is_empty() {
            return offset;
        }
        let json = format!(
            r#"{{"type":"pub","topic":{},"offset":{offset},"event":{},"data":{},"ts":{ts},"id":"r{offset}"}}"#,
            quote(&p.topic),
            quote(&p.event),
            p.data.get(),
        );
        let frame = ws_frame(0x1, json.as_bytes());
        topic
            .subscribers
            .retain(|(_, tx)| tx.try_send(frame.clone()).is_ok());
        offset
    }

    fn subscribe(&self, topic: &str, sub: Subscriber) -> u64 {
        let mut topics = self.topics();
        let t = topics.entry(topic.to_owned()).or_default();
        t.subscribers.push(sub);
        t.offset
    }

    fn forget(&self, conn: u64, subscribed: &[String]) {
        let mut topics = self.topics();
        for name in subscribed {
            if let Some(t) = topics.get_mut(name) {
                t.subscribers.retain(|(c, _)| *c != conn);
            }
        }
    }
}

#[derive(Deserialize)]
struct PublishBody {
    topic: String,
    event: String,
    data: Box<RawValue>,
}

#[derive(Deserialize)]
struct BatchBody {
    publications: Vec<PublishBody>,
}

#[derive(Deserialize)]
struct Command {
    #[serde(rename = "type")]
    kind: String,
    id: Option<u32>,
    topic: Option<String>,
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// An unmasked, final WebSocket frame.
fn ws_frame(opcode: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    out.put_u8(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.put_u8(n as u8),
        n if n <= 0xffff => {
            out.put_u8(126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(127);
            out.put_u64(n as u64);
        }
    }
    out.put_slice(payload);
    out.freeze()
}

/// One complete client frame from `buf`: `Ok(None)` when more bytes are needed.
fn take_frame(buf: &mut BytesMut) -> Result<Option<(u8, Vec<u8>)>, &'static str> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x80 == 0 {
        return Err("fragmented frames are not supported");
    }
    let mut pos = 2;
    let len = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            pos = 4;
            usize::from(u16::from_be_bytes([buf[2], buf[3]]))
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            pos = 10;
            let mut n = [0u8; 8];
            n.copy_from_slice(&buf[2..10]);
            usize::try_from(u64::from_be_bytes(n)).unwrap_or(usize::MAX)
        }
        n => usize::from(n),
    };
    if len > MAX_INPUT {
        return Err("frame too large");
    }
    let mask_len = if b1 & 0x80 != 0 { 4 } else { 0 };
    if buf.len() < pos + mask_len + len {
        return Ok(None);
    }
    let mut mask = [0u8; 4];
    if mask_len == 4 {
        mask.copy_from_slice(&buf[pos..pos + 4]);
    }
    let start = pos + mask_len;
    let mut payload = buf[start..start + len].to_vec();
    if mask_len == 4 {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    buf.advance(start + len);
    Ok(Some((b0 & 0x0f, payload)))
}

/// What the request head says that matters here.
struct Head {
    method: String,
    path: String,
    content_length: usize,
    ws_key: Option<String>,
    ws_protocol: bool,
    len: usize,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = req.parse(buf)? else {
        return Ok(None);
    };
    let mut head = Head {
        method: req.method.unwrap_or("").to_owned(),
        path: req.path.unwrap_or("").to_owned(),
        content_length: 0,
        ws_key: None,
        ws_protocol: false,
        len,
    };
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.trim().parse().unwrap_or(0);
        } else if h.name.eq_ignore_ascii_case("sec-websocket-key") {
            head.ws_key = Some(value.trim().to_owned());
        } else if h.name.eq_ignore_ascii_case("sec-websocket-protocol") {
            head.ws_protocol = value.split(',').any(|p| p.trim() == "hubbub.v1.json");
        }
    }
    Ok(Some(head))
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(out.as_bytes()).await
}

fn position(offset: u64) -> String {
    format!(r#"{{"position":{{"epoch":"reference","offset":{offset}}}}}"#)
}

async fn connection(state: Arc<State>, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let head = loop {
            match parse_head(&buf) {
                Ok(Some(h)) => break h,
                Ok(None) if buf.len() < MAX_INPUT => {}
                _ => return respond(&mut stream, "400 Bad Request", "{}").await,
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        buf.advance(head.len);
        if head.method == "GET" && head.path.starts_with("/ws") {
            let Some(key) = head.ws_key else {
                return respond(&mut stream, "400 Bad Request", "{}").await;
            };
            let protocol = if head.ws_protocol {
                "sec-websocket-protocol: hubbub.v1.json\r\n"
            } else {
                ""
            };
            let reply = format!(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n{protocol}\r\n",
                derive_accept_key(key.as_bytes())
            );
            stream.write_all(reply.as_bytes()).await?;
            return websocket(state, stream, buf).await;
        }
        if head.content_length > MAX_INPUT {
            return respond(&mut stream, "413 Payload Too Large", "{}").await;
        }
        while buf.len() < head.content_length {
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        let body = buf.split_to(head.content_length);
        let answer = match (head.method.as_str(), head.path.as_str()) {
            ("POST", "/api/v1/publish") => serde_json::from_slice::<PublishBody>(&body)
                .map(|p| position(state.publish(&p)))
                .ok(),
            ("POST", "/api/v1/batch") => serde_json::from_slice::<BatchBody>(&body)
                .map(|b| {
                    let items: Vec<String> = b
                        .publications
                        .iter()
                        .map(|p| position(state.publish(p)))
                        .collect();
                    format!(r#"{{"results":[{}]}}"#, items.join(","))
                })
                .ok(),
            _ => {
                respond(&mut stream, "404 Not Found", "{}").await?;
                continue;
            }
        };
        match answer {
            Some(body) => respond(&mut stream, "200 OK", &body).await?,
            None => respond(&mut stream, "400 Bad Request", "{}").await?,
        }
    }
}

async fn websocket(state: Arc<State>, stream: TcpStream, rest: BytesMut) -> std::io::Result<()> {
    let conn = state.next_conn.fetch_add(1, Ordering::Relaxed);
    let (reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
    let write = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    let mut subscribed = Vec::new();
    let result = read_commands(&state, conn, reader, rest, &tx, &mut subscribed).await;
    state.forget(conn, &subscribed);
    drop(tx);
    write.abort();
    result
}

async fn read_commands(
    state: &State,
    conn: u64,
    mut reader: OwnedReadHalf,
    mut buf: BytesMut,
    tx: &mpsc::Sender<Bytes>,
    subscribed: &mut Vec<String>,
) -> std::io::Result<()> {
    buf.reserve(1024);
    loop {
        let frame = match take_frame(&mut buf) {
            Ok(Some(f)) => f,
            Ok(None) => {
                if reader.read_buf(&mut buf).await? == 0 {
                    return Ok(());
                }
                continue;
            }
            Err(_) => return Ok(()),
        };
        let reply = match frame {
            (0x8, _) => return Ok(()),
            (0x9, payload) => ws_frame(0xA, &payload),
            (0x1, payload) => {
                let Ok(cmd) = serde_json::from_slice::<Command>(&payload) else {
                    return Ok(());
                };
                let id = cmd.id.unwrap_or(0);
                let json = match (cmd.kind.as_str(), cmd.topic) {
                    ("connect", _) => format!(
                        r#"{{"type":"connected","id":{id},"client_id":"c{conn}","node":"reference","expires_in":null,"ping_interval":25}}"#
                    ),
                    ("subscribe", Some(topic)) => {
                        let offset = state.subscribe(&topic, (conn, tx.clone()));
                        let reply = format!(
                            r#"{{"type":"subscribed","id":{id},"topic":{},"position":{{"epoch":"reference","offset":{offset}}},"publications":[]}}"#,
                            quote(&topic)
                        );
                        subscribed.push(topic);
                        reply
                    }
                    ("ping", _) => format!(r#"{{"type":"pong","id":{id}}}"#),
                    _ => format!(
                        r#"{{"type":"error","id":{id},"code":"bad_request","message":"not supported by the reference server"}}"#
                    ),
                };
                ws_frame(0x1, json.as_bytes())
            }
            _ => continue,
        };
        if tx.send(reply).await.is_err() {
            return Ok(());
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `--config FILE` is accepted for the load generator's sake and ignored.
    let listen = std::env::var("HUBBUB_LISTEN").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&listen).await?;
    let addr = listener.local_addr()?;
    let mut out = std::io::stdout();
    writeln!(out, "listening on http://{addr}")?;
    out.flush()?;
    let state = Arc::new(State::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(state, stream).await {
                log_error(&e);
            }
        });
    }
}

/// Connection errors (resets from the generator's closing sockets) are expected.
fn log_error(e: &std::io::Error) {
    if std::env::var_os("HUBBUB_REFERENCE_VERBOSE").is_some() {
        eprintln!("connection: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_parser() {
        for len in [0usize, 5, 125, 126, 200, 70_000] {
            let payload = vec![b'x'; len];
            let mut buf = BytesMut::from(&ws_frame(0x1, &payload)[..]);
            let (op, got) = take_frame(&mut buf).unwrap().unwrap();
            assert_eq!((op, got.len()), (0x1, len));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn a_masked_frame_is_unmasked_and_a_partial_one_waits() {
        let mask = [1u8, 2, 3, 4];
        let text = b"{\"type\":\"ping\"}";
        let mut raw = vec![0x81, 0x80 | text.len() as u8];
        raw.extend_from_slice(&mask);
        raw.extend(text.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let mut partial = BytesMut::from(&raw[..raw.len() - 1]);
        assert!(take_frame(&mut partial).unwrap().is_none());
        let mut buf = BytesMut::from(&raw[..]);
        assert_eq!(take_frame(&mut buf).unwrap().unwrap().1, text.to_vec());
    }

    #[test]
    fn a_publication_is_framed_once_for_every_subscriber() {
        let state = State::default();
        let (a, mut ra) = mpsc::channel(4);
        let (b, mut rb) = mpsc::channel(4);
        state.subscribe("t", (1, a));
        state.subscribe("t", (2, b));
        let body: PublishBody =
            serde_json::from_str(r#"{"topic":"t","event":"e","data":{"t":1}}"#).unwrap();
        assert_eq!(state.publish(&body), 1);
        let (fa, fb) = (ra.try_recv().unwrap(), rb.try_recv().unwrap());
        assert_eq!(fa.as_ptr(), fb.as_ptr(), "the same bytes, not a copy");
        let text = std::str::from_utf8(&fa[2..]).unwrap();
        assert!(
            text.starts_with(r#"{"type":"pub","topic":"t","offset":1,"event":"e","data":{"t":1}"#)
        );
    }
}
