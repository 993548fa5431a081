//! The engine's background work, each task holding only a weak reference to
//! the broker (it ends when the broker is dropped):
//! - the pub/sub listener: every message, in order, to the router (topics),
//!   the control handler, or the probe;
//! - resubscribe: after every (re)connection of the subscriber connection,
//!   subscribe again to every channel and resync each topic (a topic that
//!   moved on meanwhile has its local subscribers re-subscribe);
//! - the probe: publishes on the node's own probe channel and expects it
//!   back; when it does not return while Redis answers, the subscription died
//!   silently and the subscriber connection is rebuilt;
//! - heartbeats, presence refresh and the lazy unsubscribe sweep.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use fred::prelude::{ClientLike, EventInterface, PubsubInterface};
use fred::types::Message;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info, warn};

use super::router::Verdict;
use super::wire::{self, DisconnectRequest};
use super::{RESYNC_OPTIONS, ReadMode, RedisBroker, control, lock};
use crate::broker::BrokerError;
use crate::topic::Topic;

/// How often node heartbeats are written.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(2);
/// How often unwatched topics are unsubscribed.
pub(super) const UNWATCH_EVERY: Duration = Duration::from_millis(500);
/// Consecutive lost probes (while Redis answers) before the subscriber is rebuilt.
const PROBE_MISSES: u32 = 2;

/// Starts every task.
/// Call before connecting, so the first connection's event is not missed.
pub(super) fn spawn_all(b: &Arc<RedisBroker>) {
    let weak = Arc::downgrade(b);
    tokio::spawn(listen(weak.clone(), b.subscriber.message_rx()));
    tokio::spawn(resubscriber(weak.clone(), b.subscriber.reconnect_rx()));
    tokio::spawn(probe_loop(weak.clone(), b.options.probe_interval));
    if b.options.heartbeat {
        tokio::spawn(every(weak.clone(), HEARTBEAT, |b| async move {
            if let Err(e) = control::heartbeat(&b).await {
                debug!(error = %e, "heartbeat failed");
            }
        }));
    }
    let refresh = (b.options.presence_ttl / 3).max(Duration::from_millis(100));
    tokio::spawn(every(weak.clone(), refresh, |b| async move {
        refresh_presence(&b).await;
    }));
    tokio::spawn(every(weak, UNWATCH_EVERY, |b| async move {
        sweep_unwatched(&b).await;
    }));
}

/// Runs `f` every `period` while the broker lives.
async fn every<F, Fut>(weak: Weak<RedisBroker>, period: Duration, f: F)
where
    F: Fn(Arc<RedisBroker>) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = weak.upgrade() else { return };
        f(b).await;
    }
}

async fn listen(weak: Weak<RedisBroker>, mut rx: tokio::sync::broadcast::Receiver<Message>) {
    loop {
        let next = rx.recv().await;
        let Some(b) = weak.upgrade() else { return };
        match next {
            Ok(msg) => on_message(&b, &msg),
            Err(RecvError::Lagged(n)) => {
                warn!(lost = n, "pub/sub buffer overflowed");
                b.router.rebalance_all("pub/sub messages lost");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

fn on_message(b: &Arc<RedisBroker>, msg: &Message) {
    let channel: &str = &msg.channel;
    let Some(bytes) = msg.value.as_bytes() else {
        return;
    };
    if let Some(topic) = b.keys().topic_of(channel) {
        match wire::decode_topic_event(&topic, bytes) {
            Ok(event) => {
                if let Verdict::Rollback(epoch) = b.router.deliver(&topic, event) {
                    let b = b.clone();
                    tokio::spawn(async move { b.roll_forward(&topic, &epoch).await });
                }
            }
            Err(e) => warn!(topic = %topic, error = %e, "undecodable channel message"),
        }
    } else if channel == b.keys().probe(&b.node) {
        if let Some(seq) = std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()) {
            b.probe.seen.fetch_max(seq, Ordering::AcqRel);
            *lock(&b.probe.last_ok) = Some(Instant::now());
            b.probe.arrived.notify_waiters();
        }
    } else if channel == b.keys().control()
        && let Some(req) = DisconnectRequest::decode(bytes)
        && req.from != *b.node
    {
        let b = b.clone();
        tokio::spawn(async move {
            if let Err(e) = control::answer(&b, &req).await {
                warn!(error = %e, "cannot answer a disconnect request");
            }
        });
    }
}

/// Every connection of the subscriber client (the first one included) is a
/// fresh connection without subscriptions.
async fn resubscriber(
    weak: Weak<RedisBroker>,
    mut reconnects: tokio::sync::broadcast::Receiver<fred::prelude::Server>,
) {
    loop {
        match reconnects.recv().await {
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
        let Some(b) = weak.upgrade() else { return };
        info!("redis subscriber connected; subscribing");
        resubscribe(&b).await;
    }
}

/// Subscribes to every channel again, then checks what each topic missed.
async fn resubscribe(b: &RedisBroker) {
    let topics = {
        let _serial = b.subscriptions.lock().await;
        b.subscribed.store(false, Ordering::Release);
        let topics = b.router.tracked();
        // The probe channel last: a probe that comes back proves the rest.
        let mut channels: Vec<(String, bool)> =
            topics.iter().map(|t| (b.keys().channel(t), true)).collect();
        channels.push((b.keys().control(), false));
        channels.push((b.keys().probe(&b.node), true));
        let mut all = true;
        for (channel, sharded) in channels {
            if let Err(e) = b.subscribe_channel(channel.clone(), sharded).await {
                warn!(channel, error = %e, "resubscribe failed");
                all = false;
            }
        }
        (topics, all)
    };
    let (topics, mut all) = topics;
    for topic in topics {
        let before = b.router.have(&topic);
        match b
            .store
            .read(&topic, ReadMode::Position, &RESYNC_OPTIONS)
            .await
        {
            Ok(snap) => {
                if let Verdict::Rollback(epoch) = b.router.resync(&topic, &snap.position, before) {
                    b.roll_forward(&topic, &epoch).await;
                }
            }
            Err(e) => {
                warn!(topic = %topic, error = %e, "resync read failed");
                all = false;
            }
        }
    }
    // Not all done: the probe loop tries again once Redis answers.
    b.subscribed.store(all, Ordering::Release);
}

/// Publishes one probe; `Ok(true)` when it came back within `wait`.
async fn probe_once(b: &RedisBroker, wait: Duration) -> Result<bool, BrokerError> {
    let seq = b.probe.sent.fetch_add(1, Ordering::AcqRel) + 1;
    let channel = b.keys().probe(&b.node);
    let client = &b.store.client;
    let sent: Result<i64, _> = client.spublish(channel, seq.to_string()).await;
    sent.map_err(super::store::unavailable)?;
    let arrived = async {
        loop {
            let notified = b.probe.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if b.probe.seen.load(Ordering::Acquire) >= seq {
                return;
            }
            notified.await;
        }
    };
    Ok(tokio::time::timeout(wait, arrived).await.is_ok())
}

async fn probe_loop(weak: Weak<RedisBroker>, interval: Duration) {
    let mut misses = 0;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = weak.upgrade() else { return };
        if !b.subscribed.load(Ordering::Acquire) && b.subscriber.is_connected() {
            resubscribe(&b).await;
            continue;
        }
        match probe_once(&b, interval.max(Duration::from_millis(500))).await {
            Ok(true) => misses = 0,
            Ok(false) => {
                misses += 1;
                if misses >= PROBE_MISSES {
                    warn!("pub/sub probe lost while redis answers; rebuilding the subscription");
                    misses = 0;
                    if let Err(e) = b.subscriber.force_reconnection().await {
                        warn!(error = %e, "cannot reconnect the subscriber");
                    }
                }
            }
            // Redis is down: nothing to repair here; the client reconnects by itself.
            Err(_) => misses = 0,
        }
    }
}

/// Readiness: the pub/sub path carried a probe recently, or carries one now.
pub(super) async fn check(b: &RedisBroker) -> Result<(), BrokerError> {
    if !b.subscribed.load(Ordering::Acquire) {
        return Err(BrokerError::Unavailable(
            "redis pub/sub not subscribed (yet)".into(),
        ));
    }
    let fresh =
        lock(&b.probe.last_ok).is_some_and(|at| at.elapsed() < b.options.probe_interval * 3);
    if fresh {
        return Ok(());
    }
    if probe_once(b, Duration::from_secs(1)).await? {
        Ok(())
    } else {
        Err(BrokerError::Unavailable(
            "redis pub/sub probe did not come back".into(),
        ))
    }
}

/// Refreshes the members this node owns, then sweeps the topics it serves:
/// expired members (of a node that died) go, with a `leave` where announced.
async fn refresh_presence(b: &RedisBroker) {
    let members: Vec<_> = lock(&b.owned)
        .iter()
        .map(|((t, _), (m, join_leave))| (t.clone(), m.clone(), *join_leave))
        .collect();
    for (topic, member, join_leave) in members {
        if let Err(e) = b
            .store
            .join(&topic, &member, b.options.presence_ttl, join_leave, false)
            .await
        {
            debug!(error = %e, "presence refresh failed");
            return;
        }
    }
    for topic in b.router.tracked() {
        if let Err(e) = b.store.presence(&topic).await {
            debug!(error = %e, "presence sweep failed");
            return;
        }
    }
}

async fn sweep_unwatched(b: &RedisBroker) {
    if lock(&b.unwatch_pending).is_empty() {
        return;
    }
    let _serial = b.subscriptions.lock().await;
    let pending: Vec<Topic> = lock(&b.unwatch_pending).drain().collect();
    for topic in pending {
        if b.delivery.has_subscribers(&topic) {
            continue;
        }
        b.router.forget(&topic);
        if let Err(e) = b.unsubscribe_channel(b.keys().channel(&topic), true).await {
            debug!(topic = %topic, error = %e, "unsubscribe failed");
        }
    }
}
