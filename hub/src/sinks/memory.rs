//! The in-process sink engine (the memory broker's): per sink a queue bounded
//! in deliveries and bytes, a dispatcher that starts deliveries up to
//! `max_in_flight`, and one task per delivery that retries it until 2xx or
//! dead-lettering. With `ordering = "topic"` a topic has at most one
//! delivery started at a time; the next waits in its lane.
//!
//! Queues live in this process only: a restart loses what is pending (a
//! warning names the count). A full queue refuses the delivery with an
//! error log naming the sink and `webhook-id` and `hubbub_webhook_overflow_total`.
//! Queueing is synchronous and never waits on a receiver, so publishing,
//! other sinks and socket delivery are never slowed by one.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::http;
use super::stats::{self, SinkCounters, SinkStats};
use super::{DeadLetter, Delivery, SinkEngine, SinkError, SinkSet};
use crate::broker::{Epoch, Publication, now_ms};
use crate::config::{WebhookConfig, WebhookOrdering};
use crate::topic::Topic;

/// A queued delivery and its place in the pending index.
#[derive(Debug)]
struct Entry {
    seq: u64,
    delivery: Delivery,
}

#[derive(Debug, Default)]
struct Queue {
    /// Deliveries that may start now, in order.
    ready: VecDeque<Entry>,
    /// `ordering = "topic"`: deliveries waiting behind their topic's started one.
    lanes: HashMap<Topic, VecDeque<Entry>>,
    /// `ordering = "topic"`: topics with a delivery ready or started.
    busy: HashSet<Topic>,
    /// Pending (queued or started) deliveries: seq → enqueue time (ms).
    pending: BTreeMap<u64, u64>,
    pending_bytes: usize,
    next_seq: u64,
    dead: VecDeque<DeadLetter>,
}

/// A finished delivery, for an engine that keeps the queue elsewhere (Redis):
/// acknowledge `stream_id`, after storing `dead` when it was dead-lettered.
#[derive(Debug)]
pub(super) struct Done {
    pub(super) stream_id: String,
    pub(super) dead: Option<DeadLetter>,
}

/// One sink: its configuration, queue, counters and concurrency limit.
#[derive(Debug)]
pub(super) struct Worker {
    pub(super) config: WebhookConfig,
    pub(super) counters: SinkCounters,
    queue: Mutex<Queue>,
    wake: Notify,
    permits: Arc<Semaphore>,
    http: reqwest::Client,
    /// Redis engine: where finished deliveries go instead of the local dead letters.
    done: Option<tokio::sync::mpsc::Sender<Done>>,
}

/// Why a delivery was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Full {
    Count,
    Bytes,
}

impl Worker {
    pub(super) fn new(
        config: WebhookConfig,
        http: reqwest::Client,
        done: Option<tokio::sync::mpsc::Sender<Done>>,
    ) -> Worker {
        Worker {
            permits: Arc::new(Semaphore::new(config.max_in_flight)),
            config,
            counters: SinkCounters::default(),
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            http,
            done,
        }
    }

    /// Deliveries queued or started here.
    pub(super) fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Reports a finished delivery to the engine that keeps the queue (if any).
    /// Returns the dead letter back when there is none.
    fn report(&self, delivery: &Delivery, dead: Option<DeadLetter>) -> Option<DeadLetter> {
        let (Some(done), Some(id)) = (&self.done, &delivery.stream_id) else {
            return dead;
        };
        let sent = done.try_send(Done {
            stream_id: id.clone(),
            dead,
        });
        if let Err(e) = sent {
            // Not acknowledged: it stays pending in Redis and is delivered again.
            error!(sink = %self.config.name, webhook_id = %delivery.webhook_id, error = %e, "cannot acknowledge a finished delivery; it will be delivered again");
        }
        None
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn enqueue(&self, delivery: Delivery) -> Result<(), Full> {
        let mut q = self.lock();
        if q.pending.len() >= self.config.max_pending {
            return Err(Full::Count);
        }
        if q.pending_bytes + delivery.body.len() > self.config.max_pending_bytes {
            return Err(Full::Bytes);
        }
        let seq = q.next_seq;
        q.next_seq += 1;
        q.pending.insert(seq, now_ms());
        q.pending_bytes += delivery.body.len();
        let topic = delivery.topic.clone();
        let entry = Entry { seq, delivery };
        match self.config.ordering {
            WebhookOrdering::Topic if q.busy.contains(&topic) => {
                q.lanes.entry(topic).or_default().push_back(entry);
            }
            WebhookOrdering::Topic => {
                q.busy.insert(topic);
                q.ready.push_back(entry);
            }
            WebhookOrdering::None => q.ready.push_back(entry),
        }
        drop(q);
        self.wake.notify_one();
        Ok(())
    }

    /// Queues a delivery, or says loudly that it could not.
    fn offer(&self, delivery: Delivery) {
        let webhook_id = delivery.webhook_id.clone();
        if let Err(full) = self.enqueue(delivery) {
            SinkCounters::bump(&self.counters.overflow);
            error!(
                sink = %self.config.name,
                webhook_id = %webhook_id,
                limit = match full {
                    Full::Count => "max_pending",
                    Full::Bytes => "max_pending_bytes",
                },
                "webhook queue full: delivery refused (memory engine)"
            );
        }
    }

    /// A started delivery is done (delivered or dead): release its slot and
    /// let its topic's next delivery start.
    fn finish(&self, entry: &Entry) {
        let mut q = self.lock();
        q.pending.remove(&entry.seq);
        q.pending_bytes = q.pending_bytes.saturating_sub(entry.delivery.body.len());
        if self.config.ordering == WebhookOrdering::Topic {
            let topic = &entry.delivery.topic;
            let next = q.lanes.get_mut(topic).and_then(VecDeque::pop_front);
            match next {
                Some(next) => {
                    if q.lanes.get(topic).is_some_and(VecDeque::is_empty) {
                        q.lanes.remove(topic);
                    }
                    q.ready.push_back(next);
                    drop(q);
                    self.wake.notify_one();
                }
                None => {
                    q.busy.remove(topic);
                }
            }
        }
    }

    fn bury(&self, letter: DeadLetter) {
        let mut q = self.lock();
        q.dead.push_back(letter);
        while q.dead.len() > self.config.max_dead {
            if let Some(dropped) = q.dead.pop_front() {
                SinkCounters::bump(&self.counters.dead_dropped);
                error!(
                    sink = %self.config.name,
                    webhook_id = %dropped.delivery.webhook_id,
                    max_dead = self.config.max_dead,
                    "dead-letter store full: oldest dead letter dropped"
                );
            }
        }
    }

    /// Starts deliveries while permits and ready deliveries last.
    pub(super) async fn dispatch(self: Arc<Self>, tracker: TaskTracker, cancel: CancellationToken) {
        loop {
            let permit = tokio::select! {
                p = self.permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                () = cancel.cancelled() => return,
            };
            let entry = loop {
                if let Some(e) = self.lock().ready.pop_front() {
                    break e;
                }
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = cancel.cancelled() => return,
                }
            };
            let worker = self.clone();
            tracker.spawn(
                cancel
                    .clone()
                    .run_until_cancelled_owned(worker.deliver(entry, permit)),
            );
        }
    }

    /// Attempts one delivery until 2xx or dead-lettering.
    async fn deliver(self: Arc<Self>, mut entry: Entry, permit: OwnedSemaphorePermit) {
        let mut permit = Some(permit);
        let sink = self.config.name.as_str();
        loop {
            if permit.is_none() {
                match self.permits.clone().acquire_owned().await {
                    Ok(p) => permit = Some(p),
                    Err(_) => return,
                }
            }
            let d = &mut entry.delivery;
            d.attempts += 1;
            self.counters
                .in_flight
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (result, took) = http::attempt(&self.http, &self.config, d).await;
            self.counters
                .in_flight
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            self.counters.observe(took);
            match result {
                Ok(status) => {
                    SinkCounters::bump(&self.counters.delivered);
                    self.counters
                        .last_success_ts
                        .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
                    debug!(sink, webhook_id = %d.webhook_id, status, attempts = d.attempts, "webhook delivered");
                    self.report(d, None);
                    break;
                }
                Err(failure) => {
                    self.counters
                        .set_last_error(format!("{} (webhook-id {})", failure.error, d.webhook_id));
                    if d.attempts >= self.config.max_attempts {
                        SinkCounters::bump(&self.counters.dead);
                        warn!(sink, webhook_id = %d.webhook_id, attempts = d.attempts, error = %failure.error, "webhook dead-lettered");
                        let letter = DeadLetter {
                            delivery: d.clone(),
                            last_status: failure.status,
                            last_error: failure.error,
                            dead_ts: now_ms(),
                        };
                        if let Some(letter) = self.report(d, Some(letter)) {
                            self.bury(letter);
                        }
                        break;
                    }
                    SinkCounters::bump(&self.counters.retried);
                    let delay = http::retry_delay(&self.config, d.attempts, failure.retry_after);
                    info!(sink, webhook_id = %d.webhook_id, attempts = d.attempts, error = %failure.error, retry_in = ?delay, "webhook attempt failed; retrying");
                    permit = None;
                    tokio::time::sleep(delay).await;
                }
            }
        }
        drop(permit);
        self.finish(&entry);
    }

    pub(super) fn stats(&self) -> SinkStats {
        let q = self.lock();
        let now = now_ms();
        let oldest = q
            .pending
            .first_key_value()
            .map_or(0, |(_, at)| now.saturating_sub(*at));
        let last_success = SinkCounters::get(&self.counters.last_success_ts);
        SinkStats {
            name: self.config.name.clone(),
            url: self.config.url.to_string(),
            pending: q.pending.len() as u64,
            in_flight: SinkCounters::get(&self.counters.in_flight),
            delivered: SinkCounters::get(&self.counters.delivered),
            retried: SinkCounters::get(&self.counters.retried),
            dead: q.dead.len() as u64,
            oldest_pending_age_ms: oldest,
            last_error: self.counters.last_error(),
            last_success_ts: (last_success > 0).then_some(last_success),
        }
    }
}

fn selected(ids: Option<&[String]>, d: &DeadLetter) -> bool {
    ids.is_none_or(|ids| ids.contains(&d.delivery.webhook_id))
}

/// The in-process engine: every sink's queue, dispatcher and deliveries.
#[derive(Debug)]
pub struct MemorySinks {
    set: SinkSet,
    workers: Vec<Arc<Worker>>,
    cancel: CancellationToken,
}

impl MemorySinks {
    /// Starts a dispatcher per sink on the current runtime.
    pub fn start(set: SinkSet, http: reqwest::Client) -> Arc<MemorySinks> {
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let workers: Vec<Arc<Worker>> = set
            .all()
            .iter()
            .map(|config| Arc::new(Worker::new(config.clone(), http.clone(), None)))
            .collect();
        for w in &workers {
            tracker.spawn(w.clone().dispatch(tracker.clone(), cancel.clone()));
        }
        tracker.close();
        Arc::new(MemorySinks {
            set,
            workers,
            cancel,
        })
    }

    /// Queues `publication` for every sink that wants it. Synchronous and
    /// quick: the memory broker calls it under the topic's lock, so each
    /// sink's queue receives a topic's publications in offset order.
    pub fn publication(&self, epoch: &Epoch, publication: &Publication) {
        for (config, worker) in self.set.all().iter().zip(&self.workers) {
            if config.wants(&publication.topic, &publication.event) {
                worker.offer(Delivery::publication(&config.name, epoch, publication));
            }
        }
    }

    /// Every sink's configuration, in configuration order.
    pub(super) fn configs(&self) -> impl Iterator<Item = &WebhookConfig> {
        self.set.all().iter()
    }

    /// Queues, for every sink, the lifecycle delivery `make` builds for it
    /// (`None`: the sink does not want this event).
    pub(super) fn offer_lifecycle(&self, make: impl Fn(&WebhookConfig) -> Option<Delivery>) {
        for (config, worker) in self.set.all().iter().zip(&self.workers) {
            if let Some(d) = make(config) {
                worker.offer(d);
            }
        }
    }

    fn worker(&self, sink: &str) -> Result<&Arc<Worker>, SinkError> {
        self.workers
            .iter()
            .find(|w| w.config.name == sink)
            .ok_or_else(|| SinkError::UnknownSink(sink.to_owned()))
    }
}

impl Drop for MemorySinks {
    fn drop(&mut self) {
        self.cancel.cancel();
        for w in &self.workers {
            let q = w.lock();
            if !q.pending.is_empty() || !q.dead.is_empty() {
                warn!(
                    sink = %w.config.name,
                    pending = q.pending.len(),
                    dead = q.dead.len(),
                    "memory engine stopping: pending deliveries and dead letters are lost"
                );
            }
        }
    }
}

#[async_trait]
impl SinkEngine for MemorySinks {
    async fn stats(&self) -> Result<Vec<SinkStats>, SinkError> {
        Ok(self.workers.iter().map(|w| w.stats()).collect())
    }

    async fn dead(&self, sink: &str, limit: usize) -> Result<Vec<DeadLetter>, SinkError> {
        let w = self.worker(sink)?;
        Ok(w.lock().dead.iter().take(limit).cloned().collect())
    }

    async fn replay(&self, sink: &str, ids: Option<&[String]>) -> Result<usize, SinkError> {
        let w = self.worker(sink)?;
        let chosen: Vec<DeadLetter> = {
            let mut q = w.lock();
            let (chosen, kept): (VecDeque<_>, VecDeque<_>) =
                q.dead.drain(..).partition(|d| selected(ids, d));
            q.dead = kept;
            chosen.into()
        };
        let mut replayed = 0;
        let mut refused = Vec::new();
        for letter in chosen {
            let mut delivery = letter.delivery.clone();
            delivery.attempts = 0;
            if w.enqueue(delivery).is_ok() {
                replayed += 1;
                info!(sink, webhook_id = %letter.delivery.webhook_id, "dead letter replayed");
            } else {
                refused.push(letter);
            }
        }
        if !refused.is_empty() {
            warn!(
                sink,
                kept = refused.len(),
                "queue full: some dead letters stay dead"
            );
            let mut q = w.lock();
            for letter in refused.into_iter().rev() {
                q.dead.push_front(letter);
            }
        }
        Ok(replayed)
    }

    async fn delete(&self, sink: &str, ids: Option<&[String]>) -> Result<usize, SinkError> {
        let w = self.worker(sink)?;
        let mut q = w.lock();
        let before = q.dead.len();
        q.dead.retain(|d| !selected(ids, d));
        let deleted = before - q.dead.len();
        drop(q);
        info!(sink, deleted, "dead letters deleted");
        Ok(deleted)
    }

    async fn render_metrics(&self, out: &mut String) {
        let rows: Vec<(SinkStats, &SinkCounters)> = self
            .workers
            .iter()
            .map(|w| (w.stats(), &w.counters))
            .collect();
        stats::render(out, &rows);
    }
}
