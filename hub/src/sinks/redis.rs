//! The Redis sink engine: one Redis Stream per sink, appended by the publish
//! script in the same atomic step that stores the publication (a REST 200
//! means "stored and queued for every matching sink"), read through a
//! consumer group, acknowledged (`XACK`) on 2xx or after dead-lettering into
//! the sink's dead-letter stream, trimmed (`XTRIM MINID`) to what is pending.
//!
//! ## Who delivers
//! Each sink has a lease key (`SET NX PX`, renewed by its holder). The node
//! holding it is the sink's only reader: on taking the lease it claims every
//! pending entry (`XAUTOCLAIM`, so deliveries of a node that died are taken
//! over), re-reads its own pending entries, then new ones, in stream order,
//! which is publish order. Its local [`Worker`] keeps `ordering = "topic"`
//! (one in flight per topic) and `max_in_flight`, and holds at most
//! [`WINDOW`] entries: the backlog stays in Redis, the node's memory does
//! not grow with it. Any node can take over; order per topic holds across a
//! takeover because the new holder starts from the oldest pending entry.
//!
//! Limits: one node delivers a given sink at a time (throughput per sink is
//! one node's); a node that loses its lease while a request is in flight may
//! finish it while the new holder sends it again (a duplicate, never a loss);
//! Redis Cluster is refused at start (the streams would sit in other slots
//! than the topics' keys the publish script touches).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::{Builder, Client, ClientLike, Config as RedisConfig, ReconnectPolicy};
use fred::types::{ClusterHash, CustomCommand, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::lifecycle;
use super::memory::{Done, Worker};
use super::stats::{self, SinkCounters, SinkStats};
use super::{DeadLetter, Delivery, SinkEngine, SinkError, SinkSet};
use crate::broker::now_ms;
use crate::broker::redis::decode_publication;
use crate::topic::Topic;

/// Entries a node holds in memory per sink at most.
pub const WINDOW: usize = 1024;
/// How long a lease lasts without renewal: how soon another node takes over
/// from a node that died.
pub const LEASE: Duration = Duration::from_secs(10);
const RENEW_EVERY: Duration = Duration::from_secs(2);
const IDLE_POLL: Duration = Duration::from_millis(20);
const TRIM_EVERY: Duration = Duration::from_secs(1);
const GROUP: &str = "hubbub";

/// Stream key names of the sinks, and which sinks want a publication; the
/// publish script appends to the streams this returns.
#[derive(Debug, Clone)]
pub struct StreamKeys {
    set: SinkSet,
    prefix: String,
}

pub(super) fn stream_key(prefix: &str, sink: &str) -> String {
    format!("{prefix}:{{wh:{sink}}}:q")
}

fn dead_key(prefix: &str, sink: &str) -> String {
    format!("{prefix}:{{wh:{sink}}}:dead")
}

fn lease_key(prefix: &str, sink: &str) -> String {
    format!("{prefix}:{{wh:{sink}}}:lease")
}

impl StreamKeys {
    /// The streams of the sinks that want `event` on `topic`.
    pub fn matching<'a>(
        &'a self,
        topic: &'a Topic,
        event: &'a str,
    ) -> impl Iterator<Item = String> + 'a {
        self.set
            .matching(topic, event)
            .map(|s| stream_key(&self.prefix, &s.name))
    }
}

/// Why a Redis call failed.
pub(super) fn unavailable(e: fred::error::Error) -> SinkError {
    SinkError::Unavailable(e.to_string())
}

/// Runs one command and returns its raw reply.
pub(super) async fn call(
    client: &Client,
    cmd: &'static str,
    key: &str,
    args: Vec<Value>,
) -> Result<Value, SinkError> {
    let command = CustomCommand::new_static(cmd, ClusterHash::from(key), false);
    client.custom(command, args).await.map_err(unavailable)
}

pub(super) fn text(v: &Value) -> String {
    v.as_string().unwrap_or_default()
}

/// `[[id, [field, value, …]], …]` → `(id, fields)`.
fn entries(v: Value) -> Vec<(String, HashMap<String, Value>)> {
    v.into_array()
        .into_iter()
        .filter_map(|e| {
            let mut e = e.into_array().into_iter();
            let id = text(&e.next()?);
            let mut fields = HashMap::new();
            let mut kv = e.next()?.into_array().into_iter();
            while let (Some(k), Some(v)) = (kv.next(), kv.next()) {
                fields.insert(text(&k), v);
            }
            Some((id, fields))
        })
        .collect()
}

/// The id right after `id` (`ms-seq` → `ms-(seq+1)`).
fn next_id(id: &str) -> Option<String> {
    let (ms, seq) = id.split_once('-')?;
    Some(format!("{ms}-{}", seq.parse::<u64>().ok()?.checked_add(1)?))
}

fn id_ms(id: &str) -> Option<u64> {
    id.split_once('-')?.0.parse().ok()
}

/// One sink on Redis: its keys and the local deliverer.
#[derive(Debug)]
struct RedisSink {
    worker: Arc<Worker>,
    stream: String,
    dead: String,
    lease: String,
}

impl RedisSink {
    /// A stream entry (`t` topic, `m` stored publication) as a delivery.
    fn delivery(&self, id: &str, fields: &HashMap<String, Value>) -> Option<Delivery> {
        let topic: Topic = fields.get("t").map(text)?.parse().ok()?;
        if let Some(kind) = fields.get("k") {
            let mut d = lifecycle::redis::delivery(
                &self.worker.config.name,
                id,
                &topic,
                &text(kind),
                fields,
            )?;
            d.stream_id = Some(id.to_owned());
            return Some(d);
        }
        let msg = fields.get("m")?.as_bytes()?;
        let (epoch, publication) = decode_publication(&topic, msg).ok()?;
        let mut d = Delivery::publication(&self.worker.config.name, &epoch, &publication);
        d.stream_id = Some(id.to_owned());
        Some(d)
    }

    fn dead_letter(&self, id: &str, fields: &HashMap<String, Value>) -> Option<DeadLetter> {
        let mut delivery = self.delivery(id, fields)?;
        let num = |k: &str| fields.get(k).map(text).and_then(|s| s.parse::<u64>().ok());
        delivery.attempts = u32::try_from(num("a").unwrap_or(0)).unwrap_or(u32::MAX);
        Some(DeadLetter {
            delivery,
            last_status: num("s").and_then(|s| u16::try_from(s).ok()),
            last_error: fields.get("e").map(text).unwrap_or_default(),
            dead_ts: num("d").unwrap_or(0),
        })
    }
}

/// The Redis engine of the sinks.
#[derive(Debug)]
pub struct RedisSinks {
    client: Client,
    /// This process's consumer name (unique per process).
    me: String,
    sinks: Vec<Arc<RedisSink>>,
    cancel: CancellationToken,
}

impl Drop for RedisSinks {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl RedisSinks {
    /// Connects to `url` and starts, per sink, the loop that takes the lease
    /// and delivers. Returns the engine and the stream keys for the broker.
    pub fn start(
        url: &str,
        prefix: &str,
        node: &str,
        set: SinkSet,
        http: reqwest::Client,
    ) -> Result<(Arc<RedisSinks>, StreamKeys), SinkError> {
        let config = RedisConfig::from_url(url).map_err(unavailable)?;
        let client = Builder::from_config(config)
            .with_config(|c| c.fail_fast = false)
            .with_performance_config(|c| c.default_command_timeout = Duration::from_secs(5))
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 1000, 2))
            .build()
            .map_err(unavailable)?;
        client.connect();
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        // A node id unique to this process: a restarted node with the same
        // name must not believe it still holds its predecessor's lease.
        let me = format!("{node}-{:08x}", rand::random::<u32>());
        let mut sinks = Vec::new();
        for config in set.all() {
            let (tx, rx) = mpsc::channel(2 * WINDOW);
            let mut config = config.clone();
            // The window bounds what is held here; the backlog is in Redis.
            config.max_pending = WINDOW * 2;
            config.max_pending_bytes = usize::MAX;
            let worker = Arc::new(Worker::new(config.clone(), http.clone(), Some(tx)));
            tracker.spawn(worker.clone().dispatch(tracker.clone(), cancel.clone()));
            let sink = Arc::new(RedisSink {
                worker,
                stream: stream_key(prefix, &config.name),
                dead: dead_key(prefix, &config.name),
                lease: lease_key(prefix, &config.name),
            });
            tracker.spawn(cancel.clone().run_until_cancelled_owned(lead(
                client.clone(),
                sink.clone(),
                me.clone(),
                rx,
            )));
            sinks.push(sink);
        }
        tracker.close();
        let keys = StreamKeys {
            set,
            prefix: prefix.to_owned(),
        };
        Ok((
            Arc::new(RedisSinks {
                client,
                me,
                sinks,
                cancel,
            }),
            keys,
        ))
    }

    /// The connection, and this process's name among the nodes (unique per
    /// process), for the lifecycle events.
    pub(super) fn client_and_name(&self) -> (Client, &str) {
        (self.client.clone(), &self.me)
    }

    fn sink(&self, name: &str) -> Result<&Arc<RedisSink>, SinkError> {
        self.sinks
            .iter()
            .find(|s| s.worker.config.name == name)
            .ok_or_else(|| SinkError::UnknownSink(name.to_owned()))
    }

    async fn dead_entries(
        &self,
        sink: &RedisSink,
        count: usize,
    ) -> Result<Vec<(String, HashMap<String, Value>)>, SinkError> {
        let reply = call(
            &self.client,
            "XRANGE",
            &sink.dead,
            vec![
                sink.dead.clone().into(),
                "-".into(),
                "+".into(),
                "COUNT".into(),
                (count as i64).into(),
            ],
        )
        .await?;
        Ok(entries(reply))
    }

    async fn sink_stats(&self, sink: &RedisSink) -> Result<SinkStats, SinkError> {
        let (pending, oldest) = pending_of(&self.client, sink).await?;
        let dead = call(
            &self.client,
            "XLEN",
            &sink.dead,
            vec![sink.dead.clone().into()],
        )
        .await?
        .as_u64()
        .unwrap_or(0);
        let mut s = sink.worker.stats();
        s.pending = pending;
        s.dead = dead;
        s.oldest_pending_age_ms = oldest.map_or(0, |ms| now_ms().saturating_sub(ms));
        Ok(s)
    }
}

/// Pending (in the group's pending list or not yet read) and the time of
/// the oldest, from Redis. Also the id to trim below.
async fn pending_of(client: &Client, sink: &RedisSink) -> Result<(u64, Option<u64>), SinkError> {
    let (pel, lag, oldest_id) = pending_detail(client, sink).await?;
    Ok((pel + lag, oldest_id.as_deref().and_then(id_ms)))
}

/// `(entries in the pending list, entries not yet read, id of the oldest pending)`.
async fn pending_detail(
    client: &Client,
    sink: &RedisSink,
) -> Result<(u64, u64, Option<String>), SinkError> {
    let key = &sink.stream;
    let summary = call(
        client,
        "XPENDING",
        key,
        vec![key.clone().into(), GROUP.into()],
    )
    .await;
    let summary = match summary {
        Ok(v) => v.into_array(),
        // No stream or group yet: nothing pending.
        Err(_) => return Ok((0, 0, None)),
    };
    let pel = summary.first().and_then(Value::as_u64).unwrap_or(0);
    let pel_min = summary.get(1).map(text).filter(|s| !s.is_empty());
    let groups = call(
        client,
        "XINFO",
        key,
        vec!["GROUPS".into(), key.clone().into()],
    )
    .await?;
    let mut lag = 0;
    let mut last_delivered = None;
    for g in groups.into_array() {
        let fields: Vec<Value> = g.into_array();
        let get = |name: &str| {
            fields
                .chunks(2)
                .find(|kv| text(&kv[0]) == name)
                .and_then(|kv| kv.get(1).cloned())
        };
        if get("name").map(|v| text(&v)).as_deref() != Some(GROUP) {
            continue;
        }
        lag = match get("lag").and_then(|v| v.as_u64()) {
            Some(lag) => lag,
            // Redis cannot tell (deleted entries in the unread range): count
            // the stream, an upper bound (it holds what is pending, and what
            // was acknowledged since the last trim).
            None => call(client, "XLEN", key, vec![key.clone().into()])
                .await?
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(pel),
        };
        last_delivered = get("last-delivered-id").map(|v| text(&v));
    }
    let oldest = match (pel_min, lag) {
        (Some(id), _) => Some(id),
        (None, 0) => None,
        (None, _) => {
            let from = last_delivered
                .as_deref()
                .and_then(next_id)
                .unwrap_or_else(|| "-".to_owned());
            let first = call(
                client,
                "XRANGE",
                key,
                vec![
                    key.clone().into(),
                    from.into(),
                    "+".into(),
                    "COUNT".into(),
                    1.into(),
                ],
            )
            .await?;
            entries(first).into_iter().next().map(|(id, _)| id)
        }
    };
    Ok((
        pel,
        lag,
        oldest.or_else(|| last_delivered.as_deref().and_then(next_id)),
    ))
}

/// Takes the sink's lease whenever it is free and delivers while holding it.
async fn lead(client: Client, sink: Arc<RedisSink>, me: String, mut done: mpsc::Receiver<Done>) {
    let name = sink.worker.config.name.clone();
    loop {
        let _ = call(
            &client,
            "XGROUP",
            &sink.stream,
            vec![
                "CREATE".into(),
                sink.stream.clone().into(),
                GROUP.into(),
                "0".into(),
                "MKSTREAM".into(),
            ],
        )
        .await; // BUSYGROUP when it exists; other errors show in the next calls.
        let got = call(
            &client,
            "SET",
            &sink.lease,
            vec![
                sink.lease.clone().into(),
                me.clone().into(),
                "NX".into(),
                "PX".into(),
                (LEASE.as_millis() as i64).into(),
            ],
        )
        .await;
        match got {
            Ok(v) if !v.is_null() => {
                info!(sink = %name, node = %me, "took the webhook lease: delivering this sink");
                if let Err(e) = deliver_while_leased(&client, &sink, &me, &mut done).await {
                    warn!(sink = %name, error = %e, "webhook lease lost or Redis failed; will retry");
                }
            }
            Ok(_) => {}
            Err(e) => warn!(sink = %name, error = %e, "cannot reach Redis for the webhook lease"),
        }
        // Acknowledge what finished meanwhile (a delivery is acked by id, whoever holds the lease).
        flush_done(&client, &sink, &mut done).await.ok();
        tokio::time::sleep(RENEW_EVERY).await;
    }
}

const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

async fn renew(client: &Client, sink: &RedisSink, me: &str) -> Result<bool, SinkError> {
    let v = call(
        client,
        "EVAL",
        &sink.lease,
        vec![
            RENEW.into(),
            1.into(),
            sink.lease.clone().into(),
            me.into(),
            (LEASE.as_millis() as i64).into(),
        ],
    )
    .await?;
    Ok(v.as_i64() == Some(1))
}

/// Stores dead letters and acknowledges finished deliveries.
async fn flush_done(
    client: &Client,
    sink: &RedisSink,
    done: &mut mpsc::Receiver<Done>,
) -> Result<bool, SinkError> {
    let mut acks: Vec<Value> = Vec::new();
    while let Ok(d) = done.try_recv() {
        if let Some(letter) = &d.dead {
            bury(client, sink, letter).await?;
        }
        acks.push(d.stream_id.into());
    }
    if acks.is_empty() {
        return Ok(false);
    }
    let mut args: Vec<Value> = vec![sink.stream.clone().into(), GROUP.into()];
    args.extend(acks);
    call(client, "XACK", &sink.stream, args).await?;
    Ok(true)
}

async fn bury(client: &Client, sink: &RedisSink, letter: &DeadLetter) -> Result<(), SinkError> {
    let max_dead = sink.worker.config.max_dead;
    let len = call(client, "XLEN", &sink.dead, vec![sink.dead.clone().into()])
        .await?
        .as_u64()
        .unwrap_or(0);
    if len as usize >= max_dead {
        SinkCounters::bump(&sink.worker.counters.dead_dropped);
        error!(sink = %sink.worker.config.name, max_dead, "dead-letter stream full: its oldest dead letter is dropped");
    }
    // Re-read the entry to store its publication as stored (`t`, `m`).
    let Some(id) = letter.delivery.stream_id.clone() else {
        return Ok(());
    };
    let entry = call(
        client,
        "XRANGE",
        &sink.stream,
        vec![
            sink.stream.clone().into(),
            id.clone().into(),
            id.clone().into(),
        ],
    )
    .await?;
    let Some((_, fields)) = entries(entry).into_iter().next() else {
        return Ok(());
    };
    let mut args: Vec<Value> = vec![
        sink.dead.clone().into(),
        "MAXLEN".into(),
        (max_dead as i64).into(),
        "*".into(),
    ];
    copy_entry(&mut args, &fields, &id);
    args.extend([
        "a".into(),
        i64::from(letter.delivery.attempts).into(),
        "s".into(),
        letter
            .last_status
            .map_or(String::new(), |s| s.to_string())
            .into(),
        "e".into(),
        letter.last_error.clone().into(),
        "d".into(),
        (letter.dead_ts as i64).into(),
    ]);
    call(client, "XADD", &sink.dead, args).await?;
    Ok(())
}

/// Holds the lease: claims what is pending, reads in stream order, hands
/// entries to the worker within [`WINDOW`], acknowledges, trims.
async fn deliver_while_leased(
    client: &Client,
    sink: &RedisSink,
    me: &str,
    done: &mut mpsc::Receiver<Done>,
) -> Result<(), SinkError> {
    let key = &sink.stream;
    // Take over everything pending, whoever read it (it is ours alone now).
    let mut start = "0-0".to_owned();
    loop {
        let reply = call(
            client,
            "XAUTOCLAIM",
            key,
            vec![
                key.clone().into(),
                GROUP.into(),
                me.into(),
                0.into(),
                start.clone().into(),
                "COUNT".into(),
                1000.into(),
                "JUSTID".into(),
            ],
        )
        .await?
        .into_array();
        start = reply.first().map(text).unwrap_or_else(|| "0-0".to_owned());
        if start == "0-0" {
            break;
        }
    }
    let mut cursor = "0-0".to_owned(); // our pending entries first, then `>`
    let mut renewed = tokio::time::Instant::now();
    let mut trimmed = tokio::time::Instant::now();
    loop {
        if renewed.elapsed() >= RENEW_EVERY {
            if !renew(client, sink, me).await? {
                return Err(SinkError::Unavailable("lease taken by another node".into()));
            }
            renewed = tokio::time::Instant::now();
        }
        let mut busy = flush_done(client, sink, done).await?;
        let room = WINDOW.saturating_sub(sink.worker.pending());
        if room > 0 {
            let reply = call(
                client,
                "XREADGROUP",
                key,
                vec![
                    "GROUP".into(),
                    GROUP.into(),
                    me.into(),
                    "COUNT".into(),
                    (room as i64).into(),
                    "STREAMS".into(),
                    key.clone().into(),
                    cursor.clone().into(),
                ],
            )
            .await?;
            let read: Vec<(String, HashMap<String, Value>)> = reply
                .into_array()
                .into_iter()
                .flat_map(|s| {
                    s.into_array()
                        .into_iter()
                        .nth(1)
                        .map(entries)
                        .unwrap_or_default()
                })
                .collect();
            if cursor != ">" {
                cursor = read.last().map_or(">".to_owned(), |(id, _)| id.clone());
            }
            for (id, fields) in &read {
                busy = true;
                match sink.delivery(id, fields) {
                    Some(d) => {
                        if sink.worker.enqueue(d).is_err() {
                            error!(sink = %sink.worker.config.name, id, "local window full; the entry stays pending in Redis");
                        }
                    }
                    None => {
                        error!(sink = %sink.worker.config.name, id, "undecodable webhook stream entry; acknowledged and skipped");
                        call(
                            client,
                            "XACK",
                            key,
                            vec![key.clone().into(), GROUP.into(), id.clone().into()],
                        )
                        .await?;
                    }
                }
            }
        }
        if trimmed.elapsed() >= TRIM_EVERY {
            trim(client, sink).await?;
            trimmed = tokio::time::Instant::now();
        }
        if !busy {
            tokio::select! {
                d = done.recv() => {
                    if let Some(d) = d {
                        if let Some(letter) = &d.dead {
                            bury(client, sink, letter).await?;
                        }
                        call(client, "XACK", key, vec![key.clone().into(), GROUP.into(), d.stream_id.into()]).await?;
                    }
                }
                () = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
    }
}

/// The fields of a queue entry that a dead letter keeps and a replay
/// queues again: the publication (`t`, `m`) or the lifecycle event (`t`,
/// `k`, `ts`, `mb`, `w`; `w` is set from the first stream id, so the
/// `webhook-id` stays the same through dead-lettering and replay).
fn copy_entry(args: &mut Vec<Value>, fields: &HashMap<String, Value>, id: &str) {
    for k in ["t", "m", "k", "ts", "mb", "w"] {
        if let Some(v) = fields.get(k) {
            args.push(k.into());
            args.push(v.clone());
        }
    }
    if fields.contains_key("k") && !fields.contains_key("w") {
        args.push("w".into());
        args.push(lifecycle::redis::stream_event_id(id).into());
    }
}

/// Drops acknowledged entries: everything below the oldest pending one.
async fn trim(client: &Client, sink: &RedisSink) -> Result<(), SinkError> {
    let (_, _, oldest) = pending_detail(client, sink).await?;
    if let Some(min) = oldest {
        call(
            client,
            "XTRIM",
            &sink.stream,
            vec![sink.stream.clone().into(), "MINID".into(), min.into()],
        )
        .await?;
    }
    Ok(())
}

fn selected(ids: Option<&[String]>, letter: &DeadLetter) -> bool {
    ids.is_none_or(|ids| ids.contains(&letter.delivery.webhook_id))
}

#[async_trait]
impl SinkEngine for RedisSinks {
    async fn stats(&self) -> Result<Vec<SinkStats>, SinkError> {
        let mut out = Vec::with_capacity(self.sinks.len());
        for s in &self.sinks {
            out.push(self.sink_stats(s).await?);
        }
        Ok(out)
    }

    async fn dead(&self, sink: &str, limit: usize) -> Result<Vec<DeadLetter>, SinkError> {
        let s = self.sink(sink)?;
        Ok(self
            .dead_entries(s, limit)
            .await?
            .iter()
            .filter_map(|(id, f)| s.dead_letter(id, f))
            .collect())
    }

    async fn replay(&self, sink: &str, ids: Option<&[String]>) -> Result<usize, SinkError> {
        let s = self.sink(sink)?;
        let mut replayed = 0;
        for (id, fields) in self.dead_entries(s, s.worker.config.max_dead).await? {
            let Some(letter) = s.dead_letter(&id, &fields) else {
                continue;
            };
            if !selected(ids, &letter) {
                continue;
            }
            let mut args: Vec<Value> = vec![s.stream.clone().into(), "*".into()];
            copy_entry(&mut args, &fields, &id);
            call(&self.client, "XADD", &s.stream, args).await?;
            call(
                &self.client,
                "XDEL",
                &s.dead,
                vec![s.dead.clone().into(), id.into()],
            )
            .await?;
            info!(sink, webhook_id = %letter.delivery.webhook_id, "dead letter replayed");
            replayed += 1;
        }
        Ok(replayed)
    }

    async fn delete(&self, sink: &str, ids: Option<&[String]>) -> Result<usize, SinkError> {
        let s = self.sink(sink)?;
        let mut deleted = 0;
        for (id, fields) in self.dead_entries(s, s.worker.config.max_dead).await? {
            let chosen = match s.dead_letter(&id, &fields) {
                Some(letter) => selected(ids, &letter),
                None => ids.is_none(),
            };
            if chosen {
                call(
                    &self.client,
                    "XDEL",
                    &s.dead,
                    vec![s.dead.clone().into(), id.into()],
                )
                .await?;
                deleted += 1;
            }
        }
        info!(sink, deleted, "dead letters deleted");
        Ok(deleted)
    }

    async fn render_metrics(&self, out: &mut String) {
        let mut rows = Vec::with_capacity(self.sinks.len());
        for s in &self.sinks {
            let st = match self.sink_stats(s).await {
                Ok(st) => st,
                Err(_) => s.worker.stats(),
            };
            rows.push((st, &s.worker.counters));
        }
        stats::render(out, &rows);
    }
}
