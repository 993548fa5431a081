//! Test support for the engines: a [`Delivery`] that records what an engine
//! hands it, and a TCP proxy that delays, cuts and refuses connections to
//! Redis, so races between a node and Redis reproduce deterministically.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

use super::{Delivery, LocalCounts};
use crate::fanout::{Broadcast, BroadcastKind};
use crate::protocol::CloseCode;
use crate::topic::Topic;

/// A local subscriber as the contract tests see it: what reached it, and
/// whether it was told to re-subscribe.
#[derive(Debug)]
pub(crate) struct Inbox {
    rx: tokio::sync::mpsc::UnboundedReceiver<Arc<Broadcast>>,
    closed: Arc<AtomicBool>,
}

impl Inbox {
    /// The next broadcast, or `None` after `wait`.
    pub(crate) async fn next(&mut self, wait: Duration) -> Option<BroadcastKind> {
        let b = tokio::time::timeout(wait, self.rx.recv()).await.ok()??;
        Some(match b.kind() {
            BroadcastKind::Pub(p) => BroadcastKind::Pub(p.clone()),
            BroadcastKind::Join(m) => BroadcastKind::Join(m.clone()),
            BroadcastKind::Leave(m) => BroadcastKind::Leave(m.clone()),
        })
    }

    /// Whether the engine told this subscriber to re-subscribe (or closed it).
    pub(crate) fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
struct Subscriber {
    user: String,
    tx: tokio::sync::mpsc::UnboundedSender<Arc<Broadcast>>,
    closed: Arc<AtomicBool>,
    code: Arc<Mutex<Option<CloseCode>>>,
}

/// Records deliveries per topic and per subscriber.
#[derive(Debug, Default)]
pub(crate) struct RecordingDelivery {
    delivered: Mutex<HashMap<Topic, Vec<Arc<Broadcast>>>>,
    rebalanced: Mutex<HashMap<Topic, usize>>,
    subscribers: Mutex<HashMap<Topic, Vec<Subscriber>>>,
    users: Mutex<HashSet<String>>,
}

impl RecordingDelivery {
    /// Adds a local subscriber of `topic`; returns its inbox and whether it
    /// is the topic's first (as `Registry::subscribe` does).
    pub(crate) fn subscribe(&self, topic: &Topic, user: &str) -> (Inbox, bool) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let closed = Arc::new(AtomicBool::new(false));
        let mut subs = self.subscribers.lock().unwrap();
        let list = subs.entry(topic.clone()).or_default();
        let first = list.is_empty();
        list.push(Subscriber {
            user: user.to_owned(),
            tx,
            closed: closed.clone(),
            code: Arc::default(),
        });
        self.users.lock().unwrap().insert(user.to_owned());
        (Inbox { rx, closed }, first)
    }

    /// Removes every local subscriber of `topic`.
    pub(crate) fn unsubscribe_all(&self, topic: &Topic) {
        self.subscribers.lock().unwrap().remove(topic);
    }

    /// Offsets delivered on `topic`, in order.
    pub(crate) fn offsets(&self, topic: &Topic) -> Vec<u64> {
        self.delivered
            .lock()
            .unwrap()
            .get(topic)
            .map(|l| l.iter().filter_map(|b| b.offset()).collect())
            .unwrap_or_default()
    }

    /// How often `topic`'s subscribers were told to re-subscribe.
    pub(crate) fn rebalanced(&self, topic: &Topic) -> usize {
        self.rebalanced
            .lock()
            .unwrap()
            .get(topic)
            .copied()
            .unwrap_or(0)
    }

    /// The close code the subscribers of `user` got, if any.
    pub(crate) fn close_code(&self, user: &str) -> Option<CloseCode> {
        self.subscribers
            .lock()
            .unwrap()
            .values()
            .flatten()
            .filter(|s| s.user == user)
            .find_map(|s| *s.code.lock().unwrap())
    }
}

impl Delivery for RecordingDelivery {
    fn deliver(&self, broadcast: &Arc<Broadcast>) -> usize {
        self.delivered
            .lock()
            .unwrap()
            .entry(broadcast.topic().clone())
            .or_default()
            .push(broadcast.clone());
        let subs = self.subscribers.lock().unwrap();
        let mut n = 0;
        for s in subs.get(broadcast.topic()).into_iter().flatten() {
            if !s.closed.load(Ordering::Acquire) && s.tx.send(broadcast.clone()).is_ok() {
                n += 1;
            }
        }
        n
    }

    fn rebalance(&self, topic: &Topic) -> usize {
        *self
            .rebalanced
            .lock()
            .unwrap()
            .entry(topic.clone())
            .or_default() += 1;
        let subs = self.subscribers.lock().unwrap();
        let list = subs.get(topic).map(Vec::as_slice).unwrap_or_default();
        for s in list {
            s.closed.store(true, Ordering::Release);
            s.code.lock().unwrap().get_or_insert(CloseCode::Rebalance);
        }
        list.len()
    }

    fn has_subscribers(&self, topic: &Topic) -> bool {
        self.subscribers
            .lock()
            .unwrap()
            .get(topic)
            .is_some_and(|l| !l.is_empty())
    }

    fn disconnect_user(&self, user: &str, code: CloseCode) -> usize {
        let subs = self.subscribers.lock().unwrap();
        let mut n = 0;
        for s in subs.values().flatten().filter(|s| s.user == user) {
            if !s.closed.swap(true, Ordering::AcqRel) {
                *s.code.lock().unwrap() = Some(code);
                n += 1;
            }
        }
        n
    }

    fn counts(&self) -> LocalCounts {
        let subs = self.subscribers.lock().unwrap();
        LocalCounts {
            connections: self.users.lock().unwrap().len(),
            subscriptions: subs.values().map(Vec::len).sum(),
            topics: subs.values().filter(|l| !l.is_empty()).count(),
        }
    }
}

/// A TCP proxy in front of Redis: every byte is forwarded after `delay`
/// (each direction), and connections can be cut and refused at will.
#[derive(Debug, Clone)]
pub(crate) struct Proxy {
    /// `redis://127.0.0.1:PORT` of the proxy.
    pub(crate) url: String,
    delay_us: Arc<AtomicU64>,
    refuse: Arc<AtomicBool>,
    cut: broadcast::Sender<()>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`host:port`).
    pub(crate) async fn start(upstream: String, delay: Duration) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let (cut, _) = broadcast::channel(4);
        let proxy = Proxy {
            url,
            delay_us: Arc::new(AtomicU64::new(
                u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
            )),
            refuse: Arc::new(AtomicBool::new(false)),
            cut,
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if p.refuse.load(Ordering::Acquire) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, p.delay_us.clone(), p.cut.subscribe()));
                tokio::spawn(pipe(sr, cw, p.delay_us.clone(), p.cut.subscribe()));
            }
        });
        proxy
    }

    /// Cuts every open connection; with `refuse`, new ones are closed at once
    /// until [`Proxy::restore`].
    pub(crate) fn cut(&self, refuse: bool) {
        self.refuse.store(refuse, Ordering::Release);
        let _ = self.cut.send(());
    }

    /// Accepts connections again.
    pub(crate) fn restore(&self) {
        self.refuse.store(false, Ordering::Release);
    }

    /// Changes the delay of every byte from now on.
    pub(crate) fn set_delay(&self, delay: Duration) {
        self.delay_us.store(
            u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
            Ordering::Release,
        );
    }
}

/// Forwards `from` to `to`, each chunk `delay` after it was read (in order:
/// chunks are queued with their due time, so a delay never reorders bytes).
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay_us: Arc<AtomicU64>,
    mut cut: broadcast::Receiver<()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut was_cut = false;
    loop {
        tokio::select! {
            _ = cut.recv() => {
                was_cut = true;
                break;
            }
            n = from.read(&mut buf) => {
                let Ok(n) = n else { break };
                if n == 0 {
                    break;
                }
                let due = tokio::time::Instant::now()
                    + Duration::from_micros(delay_us.load(Ordering::Acquire));
                if tx.send((due, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    if was_cut {
        writer.abort();
    }
    let _ = writer.await;
}
