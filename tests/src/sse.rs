//! A minimal Server-Sent Events reader for tests: parses `event`, `id` and
//! `data` fields from a streaming response, skipping comments.

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::Value;

use crate::WAIT;

/// One SSE event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `event:` (default `message`).
    pub event: String,
    /// `id:`, if the event had one.
    pub id: Option<String>,
    /// `data:` parsed as JSON.
    pub data: Value,
}

/// An open event stream.
pub struct SseStream {
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseStream {
    /// Opens `url`; `last_event_id` is sent as `Last-Event-ID`. Fails unless the answer is 200.
    pub async fn open(url: &str, last_event_id: Option<&str>) -> Result<SseStream> {
        let mut req = reqwest::Client::new()
            .get(url)
            .header("Accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = tokio::time::timeout(WAIT, req.send()).await??;
        if resp.status() != reqwest::StatusCode::OK {
            bail!(
                "status {}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        Ok(SseStream {
            body: resp.bytes_stream().boxed(),
            buf: String::new(),
        })
    }

    /// The next event, or `None` when the stream ended.
    pub async fn next(&mut self) -> Result<Option<SseEvent>> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".into(),
                    id: None,
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a comment (keep-alive)
                }
                event.data =
                    serde_json::from_str(&data).with_context(|| format!("data: {data}"))?;
                return Ok(Some(event));
            }
            match tokio::time::timeout(WAIT, self.body.next())
                .await
                .context("no SSE event in time")?
            {
                Some(chunk) => self.buf.push_str(&String::from_utf8_lossy(&chunk?)),
                None => return Ok(None),
            }
        }
    }

    /// The next event named `kind`.
    pub async fn next_of(&mut self, kind: &str) -> Result<SseEvent> {
        loop {
            match self.next().await? {
                Some(e) if e.event == kind => return Ok(e),
                Some(_) => {}
                None => bail!("stream ended before a {kind} event"),
            }
        }
    }
}
