//! The receive loop of a subscribed client: counts `pub` pushes and records
//! publish-to-receive latency from the send time the payload carries (`"t"`,
//! µs since the epoch; `"g"` marks a group-topic publication).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::client::{Ws, now_us};

/// Samples a client keeps before merging them into the shared histograms.
const LOCAL_SAMPLES: usize = 64;

/// What all receivers saw.
#[derive(Debug)]
pub(crate) struct Recorder {
    /// `pub` pushes received.
    pub(crate) received: AtomicU64,
    /// Clients whose connection ended before they were stopped.
    pub(crate) dropped: AtomicU64,
    /// Latest receive time, µs since the epoch.
    pub(crate) last_us: AtomicU64,
    /// Latency of direct (own or fan-out topic) publications, µs.
    pub(crate) latency: Mutex<Histogram<u64>>,
    /// Latency of group-topic publications, µs.
    pub(crate) group_latency: Mutex<Histogram<u64>>,
    /// Latency of direct publications seen by clients of nodes other than
    /// the first (cross-node delivery when publications go to the first), µs.
    pub(crate) other_node_latency: Mutex<Histogram<u64>>,
}

/// A histogram for microsecond latencies up to an hour.
pub(crate) fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 3_600_000_000, 3)?)
}

impl Recorder {
    pub(crate) fn new() -> anyhow::Result<Recorder> {
        Ok(Recorder {
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_us: AtomicU64::new(0),
            latency: Mutex::new(histogram()?),
            group_latency: Mutex::new(histogram()?),
            other_node_latency: Mutex::new(histogram()?),
        })
    }

    fn merge(&self, samples: &mut Vec<(u64, bool)>, other_node: bool) {
        if samples.is_empty() {
            return;
        }
        if other_node && let Ok(mut h) = self.other_node_latency.lock() {
            for (us, _) in samples.iter().filter(|(_, g)| !g) {
                h.saturating_record(*us);
            }
        }
        if let Ok(mut h) = self.latency.lock() {
            for (us, _) in samples.iter().filter(|(_, g)| !g) {
                h.saturating_record(*us);
            }
        }
        if samples.iter().any(|(_, g)| *g)
            && let Ok(mut h) = self.group_latency.lock()
        {
            for (us, _) in samples.iter().filter(|(_, g)| *g) {
                h.saturating_record(*us);
            }
        }
        samples.clear();
    }
}

/// Reads `ws` until `stop`, recording every `pub` push. Pings are answered
/// by tungstenite while reading. `other_node`: the client is connected to a
/// node other than the first.
pub(crate) async fn receive(
    mut ws: Ws,
    rec: std::sync::Arc<Recorder>,
    stop: CancellationToken,
    other_node: bool,
) {
    let mut samples: Vec<(u64, bool)> = Vec::with_capacity(LOCAL_SAMPLES);
    loop {
        let msg = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            msg = ws.next() => msg,
        };
        match msg {
            Some(Ok(Message::Text(text))) => {
                let bytes = text.as_bytes();
                if !bytes.starts_with(br#"{"type":"pub""#) {
                    continue;
                }
                let now = now_us();
                rec.received.fetch_add(1, Ordering::Relaxed);
                rec.last_us.fetch_max(now, Ordering::Relaxed);
                if let Some(sent) = field_u64(bytes, br#""t":"#) {
                    let group = find(bytes, br#""g":"#).is_some();
                    samples.push((now.saturating_sub(sent), group));
                    if samples.len() == LOCAL_SAMPLES {
                        rec.merge(&mut samples, other_node);
                    }
                }
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => {
                rec.dropped.fetch_add(1, Ordering::Relaxed);
                break;
            }
            Some(Ok(_)) => {}
        }
    }
    rec.merge(&mut samples, other_node);
    drop(ws);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The unsigned integer right after `key` in `bytes`.
pub(crate) fn field_u64(bytes: &[u8], key: &[u8]) -> Option<u64> {
    let start = find(bytes, key)? + key.len();
    let digits = bytes[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
    Some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_send_time_from_a_pub_frame() {
        let frame = br#"{"type":"pub","topic":"bench:fan","offset":7,"event":"bench","data":{"p":"xx","t":1700000000123456},"ts":1,"id":"a"}"#;
        assert_eq!(field_u64(frame, br#""t":"#), Some(1_700_000_000_123_456));
        assert!(find(frame, br#""g":"#).is_none());
    }
}
