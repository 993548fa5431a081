//! The chaos run: three hub nodes on one private Redis, raw WebSocket clients
//! that check contiguity and re-subscribe with `since` whenever their
//! connection ends (or a live gap shows), a REST publisher with idempotency
//! keys that retries until it gets an answer, and one fault per scenario.
//! Each scenario ends with a [`Report`]: what was acknowledged, delivered,
//! duplicated, reported lost (`recovered: false`), lost silently, and how
//! many live gaps clients saw.
//!
//! Accounting is by publication: the publisher puts a sequence number in
//! each publication's data and acknowledges it with its position. A client
//! expects every acknowledged publication after the one at the position of
//! its first `subscribed` reply. One it never got is *reported* when a
//! `recovered: false` came between the publications it got around it, and
//! *silent* otherwise.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::redis::{OwnRedis, command, node_toml, wait_ready};
use crate::{API_KEY, Client, Node, Proto, token};

/// One fault, injected once per scenario while publications flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` one node, then start it again.
    KillNode,
    /// `CLIENT KILL TYPE pubsub`: every node's pub/sub connection dies.
    KillPubsub,
    /// Redis killed and restarted on its append-only file.
    RestartAof,
    /// Redis killed and restarted with no data.
    RestartEmpty,
    /// Redis unresponsive for 2 s (`DEBUG SLEEP 2`).
    Pause,
    /// Bursts of clients on one node subscribing at once to brand-new topics
    /// that are being published to.
    NewTopicBursts,
}

impl Fault {
    /// Every fault, in the order the run injects them.
    pub const ALL: [Fault; 6] = [
        Fault::KillNode,
        Fault::KillPubsub,
        Fault::RestartAof,
        Fault::RestartEmpty,
        Fault::Pause,
        Fault::NewTopicBursts,
    ];
}

/// The size of a run.
#[derive(Debug, Clone)]
pub struct Scale {
    /// Topics published to from the start.
    pub topics: usize,
    /// Clients per topic (spread over the nodes).
    pub clients_per_topic: usize,
    /// Publications per second per topic (the publisher waits for each answer).
    pub rate: u32,
    /// How long publications flow; the fault comes at a third of it.
    pub duration: Duration,
    /// How long clients may take to catch up after the last publication.
    pub settle: Duration,
}

/// What one scenario saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The fault.
    pub fault: String,
    /// Publications acknowledged with a position (200).
    pub acknowledged: u64,
    /// Acknowledged publications that reached a client (summed over clients).
    pub delivered: u64,
    /// Publications a client got twice with no `recovered: false` between.
    pub duplicates: u64,
    /// Expected publications a client never got, covered by a `recovered: false`.
    pub reported: u64,
    /// Expected publications a client never got, with no report.
    pub silent: u64,
    /// Offsets that jumped in a live stream.
    pub live_gaps: u64,
    /// `subscribed` replies with `recovered: false`.
    pub not_recovered_replies: u64,
    /// Re-subscriptions after a connection ended.
    pub resubscribes: u64,
}

impl Report {
    /// The header matching [`Report`]'s `Display`.
    pub const HEADER: &'static str = "| fault | acknowledged | delivered | duplicates | reported losses | silent losses | live gaps | recovered:false replies | re-subscribes |\n|---|---|---|---|---|---|---|---|---|";
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            self.fault,
            self.acknowledged,
            self.delivered,
            self.duplicates,
            self.reported,
            self.silent,
            self.live_gaps,
            self.not_recovered_replies,
            self.resubscribes
        )
    }
}

/// What a client saw, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ev {
    /// A publication (its sequence number).
    Got(u64),
    /// A `recovered: false`.
    Lost,
}

#[derive(Debug, Default)]
struct ClientLog {
    /// Position of the first `subscribed` reply.
    start: Option<(Value, u64)>,
    events: Vec<Ev>,
    live_gaps: u64,
    not_recovered: u64,
    resubscribes: u64,
}

/// Acknowledged publications of one topic: seq → (epoch, offset).
type Acks = BTreeMap<u64, (Value, u64)>;

struct Shared {
    bin: PathBuf,
    redis_url: String,
    prefix: String,
    urls: Mutex<Vec<String>>,
    stop_publishing: AtomicBool,
    /// Every publisher ended: the acknowledged set is final.
    published: AtomicBool,
    acks: Mutex<HashMap<String, Acks>>,
}

impl Shared {
    fn url(&self, i: usize) -> String {
        let urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        urls[i % urls.len()].clone()
    }

    fn node_count(&self) -> usize {
        self.urls.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The highest acknowledged sequence number of `topic`.
    fn last_ack(&self, topic: &str) -> u64 {
        let acks = self.acks.lock().unwrap_or_else(|e| e.into_inner());
        acks.get(topic)
            .and_then(|a| a.keys().next_back().copied())
            .unwrap_or(0)
    }
}

async fn start_node(s: &Shared, name: &str) -> Result<Node> {
    let node = Node::start(&s.bin, &node_toml(&s.redis_url, &s.prefix, name)).await?;
    wait_ready(&node).await?;
    Ok(node)
}

/// Runs one scenario with the hub binary `bin` and returns its report.
pub async fn run(bin: &Path, fault: Fault, scale: &Scale) -> Result<Report> {
    let mut redis = OwnRedis::start_with(&["--enable-debug-command", "yes"]).await?;
    let run = format!("{:08x}", rand::random::<u32>());
    let shared = Arc::new(Shared {
        bin: bin.to_path_buf(),
        redis_url: redis.url(),
        prefix: format!("chaos-{run}"),
        urls: Mutex::new(Vec::new()),
        stop_publishing: AtomicBool::new(false),
        published: AtomicBool::new(false),
        acks: Mutex::new(HashMap::new()),
    });
    let mut nodes = Vec::new();
    for i in 0..3 {
        let node = start_node(&shared, &format!("chaos-{run}-{i}")).await?;
        shared
            .urls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(node.addr.clone());
        nodes.push(node);
    }

    let mut clients = Vec::new();
    let mut publishers = Vec::new();
    let topics: Vec<String> = (0..scale.topics)
        .map(|i| format!("bookings:chaos-{run}-{i}"))
        .collect();
    for (ti, topic) in topics.iter().enumerate() {
        for ci in 0..scale.clients_per_topic {
            let (c, log) = subscribe_first(&shared, topic, ti + ci).await?;
            clients.push((
                topic.clone(),
                tokio::spawn(client(shared.clone(), topic.clone(), c, log, ti + ci)),
            ));
        }
    }
    for topic in &topics {
        publishers.push(tokio::spawn(publisher(
            shared.clone(),
            topic.clone(),
            scale.rate,
        )));
    }

    let started = tokio::time::Instant::now();
    tokio::time::sleep(scale.duration / 3).await;
    match fault {
        Fault::KillNode => {
            let name = format!("chaos-{run}-1");
            drop(nodes.remove(1));
            tokio::time::sleep(Duration::from_millis(500)).await;
            let node = start_node(&shared, &name).await?;
            shared.urls.lock().unwrap_or_else(|e| e.into_inner())[1] = node.addr.clone();
            nodes.insert(1, node);
        }
        Fault::KillPubsub => {
            command(redis.port, "CLIENT KILL TYPE pubsub").await?;
        }
        Fault::RestartAof => redis.restart(true).await?,
        Fault::RestartEmpty => redis.restart(false).await?,
        Fault::Pause => {
            // The reply comes after the sleep; the helper may give up first.
            let _ = command(redis.port, "DEBUG SLEEP 2").await;
        }
        Fault::NewTopicBursts => {
            let mut burst = 0;
            while started.elapsed() < scale.duration * 2 / 3 {
                let node = burst % shared.node_count();
                let mut opening = Vec::new();
                for k in 0..5 {
                    let topic = format!("bookings:chaos-{run}-new-{burst}-{k}");
                    publishers.push(tokio::spawn(publisher(
                        shared.clone(),
                        topic.clone(),
                        scale.rate,
                    )));
                    for c in 0..8 {
                        let shared = shared.clone();
                        let topic = topic.clone();
                        // All on one node, all at once.
                        opening.push(tokio::spawn(async move {
                            let r = subscribe_first(&shared, &topic, node + 3 * c).await;
                            (topic, r)
                        }));
                    }
                }
                for o in opening {
                    let (topic, r) = o.await?;
                    let (c, log) = r?;
                    clients.push((
                        topic.clone(),
                        tokio::spawn(client(shared.clone(), topic, c, log, node)),
                    ));
                }
                burst += 1;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        }
    }
    let left = scale.duration.saturating_sub(started.elapsed());
    tokio::time::sleep(left).await;
    shared.stop_publishing.store(true, Ordering::Release);
    for p in publishers {
        p.await?;
    }
    shared.published.store(true, Ordering::Release);

    let mut report = Report {
        fault: format!("{fault:?}"),
        ..Report::default()
    };
    let acks = shared
        .acks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    report.acknowledged = acks.values().map(|a| a.len() as u64).sum();
    let deadline = tokio::time::Instant::now() + scale.settle;
    for (topic, handle) in clients {
        let log = tokio::time::timeout_at(deadline + Duration::from_secs(5), handle)
            .await
            .context("a client never ended")??;
        let empty = Acks::new();
        account(&mut report, &log, acks.get(&topic).unwrap_or(&empty));
    }
    drop(nodes);
    Ok(report)
}

/// Connects to node `i` (any node that answers) and subscribes without
/// `since`, until it works.
async fn subscribe_first(s: &Shared, topic: &str, i: usize) -> Result<(Client, ClientLog)> {
    let tok = token("chaos", &["bookings:*"], &[], 3600);
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    let mut n = i;
    loop {
        if let Ok((mut c, _)) =
            Client::connect(&format!("ws://{}/ws", s.url(n)), Proto::Json, &tok).await
            && let Ok(r) = c.subscribe(topic, None).await
            && r["type"] == "subscribed"
        {
            let log = ClientLog {
                start: Some((
                    r["position"]["epoch"].clone(),
                    r["position"]["offset"].as_u64().unwrap_or(0),
                )),
                ..ClientLog::default()
            };
            return Ok((c, log));
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "cannot subscribe to {topic}"
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A raw client: takes publications while they are contiguous; on a gap,
/// a `disconnect` or a dead connection it re-subscribes with `since` on
/// another node. Ends once it has the topic's last acknowledged publication
/// after the publisher stopped.
async fn client(
    s: Arc<Shared>,
    topic: String,
    mut c: Client,
    mut log: ClientLog,
    mut node: usize,
) -> ClientLog {
    let tok = token("chaos", &["bookings:*"], &[], 3600);
    let (mut epoch, mut last) = log.start.clone().unwrap_or((Value::Null, 0));
    let mut max_seq = 0u64;
    let mut quiet_since: Option<tokio::time::Instant> = None;
    loop {
        // Read until the connection ends or a gap shows.
        loop {
            if s.published.load(Ordering::Acquire) {
                let target = s.last_ack(&topic);
                if max_seq >= target {
                    return log;
                }
                // Give up long after the end (accounted as missing).
                let since = *quiet_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() > Duration::from_secs(30) {
                    return log;
                }
            }
            let frame = match tokio::time::timeout(Duration::from_millis(200), c.next()).await {
                Err(_) => continue,
                Ok(Err(_)) => break,
                Ok(Ok(v)) => v,
            };
            if frame["type"] == "disconnect" {
                break;
            }
            if frame["type"] != "pub" {
                continue;
            }
            let offset = frame["offset"].as_u64().unwrap_or(0);
            if offset <= last {
                continue;
            }
            if offset > last + 1 {
                log.live_gaps += 1;
                break;
            }
            last = offset;
            let seq = frame["data"]["seq"].as_u64().unwrap_or(0);
            max_seq = max_seq.max(seq);
            log.events.push(Ev::Got(seq));
        }
        drop(c);
        // Re-subscribe with since, on the next node, until it works.
        loop {
            node += 1;
            log.resubscribes += 1;
            let url = format!("ws://{}/ws", s.url(node));
            if let Ok((mut next, _)) = Client::connect(&url, Proto::Json, &tok).await {
                let since = json!({"epoch": epoch, "offset": last});
                if let Ok(r) = next.subscribe(&topic, Some(&since)).await
                    && r["type"] == "subscribed"
                {
                    let position = &r["position"];
                    if r["recovered"] == false {
                        log.not_recovered += 1;
                        log.events.push(Ev::Lost);
                    } else {
                        for p in r["publications"].as_array().into_iter().flatten() {
                            let offset = p["offset"].as_u64().unwrap_or(0);
                            if offset == last + 1 {
                                last = offset;
                                let seq = p["data"]["seq"].as_u64().unwrap_or(0);
                                max_seq = max_seq.max(seq);
                                log.events.push(Ev::Got(seq));
                            }
                        }
                    }
                    epoch = position["epoch"].clone();
                    last = position["offset"].as_u64().unwrap_or(last);
                    c = next;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Publishes 1, 2, 3… to `topic` with idempotency keys, each until it is
/// acknowledged (a 503 or a lost answer is retried with the same key on
/// another node), at most `rate` per second, until told to stop.
async fn publisher(s: Arc<Shared>, topic: String, rate: u32) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let period = Duration::from_secs(1) / rate.max(1);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    let mut node = rand::random::<u32>() as usize;
    while !s.stop_publishing.load(Ordering::Acquire) {
        tick.tick().await;
        seq += 1;
        let body = json!({
            "topic": topic,
            "event": "chaos",
            "data": {"seq": seq},
            "idempotency_key": format!("{topic}-{seq}"),
        });
        loop {
            node += 1;
            let sent = http
                .post(format!("http://{}/api/v1/publish", s.url(node)))
                .bearer_auth(API_KEY)
                .json(&body)
                .send()
                .await;
            if let Ok(resp) = sent
                && resp.status().is_success()
                && let Ok(v) = resp.json::<Value>().await
            {
                let position = &v["position"];
                s.acks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(topic.clone())
                    .or_default()
                    .insert(
                        seq,
                        (
                            position["epoch"].clone(),
                            position["offset"].as_u64().unwrap_or(0),
                        ),
                    );
                break;
            }
            // Stopping: an unanswered publication is simply not acknowledged.
            if s.stop_publishing.load(Ordering::Acquire) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Adds one client's outcome to `report`.
fn account(report: &mut Report, log: &ClientLog, acks: &Acks) {
    report.live_gaps += log.live_gaps;
    report.not_recovered_replies += log.not_recovered;
    report.resubscribes += log.resubscribes;
    let Some((epoch0, p0)) = &log.start else {
        return;
    };
    // The publication at the first position: everything after it is expected.
    let s0 = acks
        .iter()
        .filter(|(_, (e, o))| e == epoch0 && o <= p0)
        .map(|(s, _)| *s)
        .max()
        .unwrap_or(0);
    // Where each publication was first got, and duplicates.
    let mut first_at: HashMap<u64, usize> = HashMap::new();
    let mut since_loss: HashSet<u64> = HashSet::new();
    for (i, ev) in log.events.iter().enumerate() {
        match ev {
            Ev::Lost => since_loss.clear(),
            Ev::Got(seq) => {
                if !since_loss.insert(*seq) {
                    report.duplicates += 1;
                }
                first_at.entry(*seq).or_insert(i);
                if acks.contains_key(seq) {
                    report.delivered += 1;
                }
            }
        }
    }
    let losses: Vec<usize> = log
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| **e == Ev::Lost)
        .map(|(i, _)| i)
        .collect();
    let got: BTreeMap<u64, usize> = first_at.into_iter().collect();
    for seq in acks.keys().filter(|s| **s > s0) {
        if got.contains_key(seq) {
            continue;
        }
        let before = got.range(..seq).next_back().map(|(_, i)| *i);
        let after = got.range(seq..).next().map(|(_, i)| *i);
        let covered = losses
            .iter()
            .any(|l| before.is_none_or(|b| *l > b) && after.is_none_or(|a| *l < a));
        if covered {
            report.reported += 1;
        } else {
            report.silent += 1;
        }
    }
}
