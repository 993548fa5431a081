//! REST publishing: bodies that carry their send time, at a fixed rate over
//! several tasks, or a fixed count as fast as the hub answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Result;

use crate::cli::{Common, PublishVia};
use crate::client::{now_us, token};
use crate::hubs::Hubs;

/// Publishes to the first hub node, or to every node in turn (`--publish-via all`).
#[derive(Debug, Clone)]
pub(crate) struct Publisher {
    http: reqwest::Client,
    /// Base URLs of the nodes publications go to.
    bases: Arc<[String]>,
    /// Requests so far (picks the node, round-robin).
    next: Arc<AtomicUsize>,
    auth: String,
    pad: Arc<str>,
}

/// Outcome counts of a publishing run.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    /// Publications the hub accepted (200).
    pub(crate) ok: AtomicU64,
    /// Publications refused or failed.
    pub(crate) failed: AtomicU64,
}

impl Publisher {
    /// A publisher to the nodes of `hubs` that `--publish-via` names, with
    /// payloads of about `bytes` bytes.
    pub(crate) fn new(common: &Common, hubs: &Hubs, bytes: usize) -> Result<Publisher> {
        let bearer = match &hubs.api_key {
            Some(key) => key.clone(),
            None => token(&hubs.secret, "hubbub-loadtest", &[], &["*".to_string()]),
        };
        let bases: Vec<String> = match common.publish_via {
            PublishVia::First => vec![hubs.http_base()],
            PublishVia::All => hubs.addrs.iter().map(|a| format!("http://{a}")).collect(),
        };
        Ok(Publisher {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .tcp_nodelay(true)
                .build()?,
            bases: bases.into(),
            next: Arc::new(AtomicUsize::new(0)),
            auth: format!("Bearer {bearer}"),
            // `{"t":…,"p":"…"}` is ~25 bytes besides the padding.
            pad: "x".repeat(bytes.saturating_sub(25)).into(),
        })
    }

    /// The base URL of the node the next request goes to.
    fn base(&self) -> &str {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.bases[i % self.bases.len()]
    }

    /// One publication's JSON body, stamped with the current time.
    fn body(&self, topic: &str, group: bool) -> String {
        let g = if group { r#""g":1,"# } else { "" };
        format!(
            r#"{{"topic":"{topic}","event":"bench","data":{{{g}"p":"{pad}","t":{t}}}}}"#,
            pad = self.pad,
            t = now_us()
        )
    }

    /// Publishes one; true when the hub accepted it.
    pub(crate) async fn publish(&self, topic: &str, group: bool) -> bool {
        let body = self.body(topic, group);
        let url = format!("{}/api/v1/publish", self.base());
        self.post(&url, body).await
    }

    /// Publishes a batch to the topics; true when the request succeeded
    /// (per-item errors are counted by the caller from the answer).
    pub(crate) async fn batch(&self, topics: &[String]) -> Result<usize> {
        let items: Vec<String> = topics.iter().map(|t| self.body(t, false)).collect();
        let body = format!(r#"{{"publications":[{}]}}"#, items.join(","));
        let resp = self
            .http
            .post(format!("{}/api/v1/batch", self.base()))
            .header("authorization", &self.auth)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            anyhow::bail!("batch: {status}: {text}");
        }
        Ok(text.matches(r#""position""#).count())
    }

    async fn post(&self, url: &str, body: String) -> bool {
        let resp = self
            .http
            .post(url)
            .header("authorization", &self.auth)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match resp {
            Ok(r) => {
                let ok = r.status().is_success();
                // Read the body so the connection goes back to the pool.
                let _body = r.bytes().await;
                ok
            }
            Err(_) => false,
        }
    }

    /// Publishes at `rate` per second for `duration` with `tasks` concurrent
    /// tasks; publication `seq` goes to `topic(seq)`.
    pub(crate) async fn at_rate(
        &self,
        rate: f64,
        duration: Duration,
        tasks: usize,
        group: bool,
        topic: impl Fn(u64) -> String + Send + Sync + 'static,
    ) -> Arc<Sent> {
        let sent = Arc::new(Sent::default());
        if rate <= 0.0 {
            return sent;
        }
        let topic = Arc::new(topic);
        let tasks = tasks.max(1) as u64;
        let start = tokio::time::Instant::now();
        let end = start + duration;
        let period = Duration::from_secs_f64(1.0 / rate);
        let mut handles = Vec::new();
        for j in 0..tasks {
            let (me, sent, topic) = (self.clone(), sent.clone(), topic.clone());
            handles.push(tokio::spawn(async move {
                let mut k = 0u64;
                loop {
                    let seq = k * tasks + j;
                    let at = start + period.mul_f64(seq as f64);
                    if at >= end {
                        break;
                    }
                    tokio::time::sleep_until(at).await;
                    let counter = if me.publish(&topic(seq), group).await {
                        &sent.ok
                    } else {
                        &sent.failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    k += 1;
                }
            }));
        }
        for h in handles {
            if let Err(e) = h.await {
                eprintln!("publisher task: {e}");
            }
        }
        sent
    }
}
