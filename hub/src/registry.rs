//! The node-local registry: which connections exist, which users own them, and
//! which connections subscribe to each topic. It is the only module that
//! touches `DashMap`; its guards never live across an `.await` (every method
//! here is synchronous).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use crate::broker::{Delivery, LocalCounts};
use crate::connection::{ConnHandle, ConnId, PushOutcome};
use crate::fanout::{Broadcast, Outgoing};
use crate::metrics::Metrics;
use crate::protocol::CloseCode;
use crate::topic::Topic;

/// Local connections and topic subscribers.
#[derive(Debug)]
pub struct Registry {
    topics: DashMap<Topic, Vec<Arc<ConnHandle>>>,
    conns: DashMap<ConnId, Arc<ConnHandle>>,
    users: DashMap<Arc<str>, Vec<ConnId>>,
    subscriptions: AtomicUsize,
    metrics: Arc<Metrics>,
}

impl Registry {
    /// An empty registry reporting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Registry {
        Registry {
            topics: DashMap::new(),
            conns: DashMap::new(),
            users: DashMap::new(),
            subscriptions: AtomicUsize::new(0),
            metrics,
        }
    }

    /// Adds a connected (authenticated) connection.
    pub fn register(&self, conn: Arc<ConnHandle>) {
        self.users
            .entry(conn.user.clone())
            .or_default()
            .push(conn.id);
        self.conns.insert(conn.id, conn);
    }

    /// Adds a connection unless that would pass `max_total` connections on
    /// this node or `max_per_user` (0: no limit) for its user. The user's
    /// entry is locked while it is checked and added, so the per-user limit is
    /// exact; the node limit may be passed by the few connections that race it.
    pub fn try_register(
        &self,
        conn: Arc<ConnHandle>,
        max_total: usize,
        max_per_user: usize,
    ) -> bool {
        if self.conns.len() >= max_total {
            return false;
        }
        {
            let mut ids = self.users.entry(conn.user.clone()).or_default();
            if max_per_user > 0 && ids.len() >= max_per_user {
                return false;
            }
            ids.push(conn.id);
        }
        self.conns.insert(conn.id, conn);
        true
    }

    /// Removes a connection (its subscriptions are removed by its session).
    pub fn unregister(&self, conn: &ConnHandle) {
        self.conns.remove(&conn.id);
        if let dashmap::Entry::Occupied(mut e) = self.users.entry(conn.user.clone()) {
            e.get_mut().retain(|id| *id != conn.id);
            if e.get().is_empty() {
                e.remove();
            }
        }
    }

    /// Adds a subscriber; returns true when it is the topic's first on this node.
    pub fn subscribe(&self, topic: &Topic, conn: Arc<ConnHandle>) -> bool {
        let mut subs = self.topics.entry(topic.clone()).or_default();
        let first = subs.is_empty();
        subs.push(conn);
        self.subscriptions.fetch_add(1, Ordering::Relaxed);
        first
    }

    /// Removes a subscriber; returns true when the topic has none left on this node.
    pub fn unsubscribe(&self, topic: &Topic, conn: ConnId) -> bool {
        let dashmap::Entry::Occupied(mut e) = self.topics.entry(topic.clone()) else {
            return false;
        };
        let subs = e.get_mut();
        if let Some(i) = subs.iter().position(|c| c.id == conn) {
            subs.swap_remove(i);
            self.subscriptions.fetch_sub(1, Ordering::Relaxed);
        }
        if subs.is_empty() {
            e.remove();
            true
        } else {
            false
        }
    }

    /// Whether any local connection subscribes to `topic`.
    pub fn has_subscribers(&self, topic: &Topic) -> bool {
        self.topics.contains_key(topic)
    }

    /// The local subscribers of `topic` (a snapshot).
    pub fn subscribers(&self, topic: &Topic) -> Vec<Arc<ConnHandle>> {
        self.topics
            .get(topic)
            .map(|subs| subs.clone())
            .unwrap_or_default()
    }

    /// Queues `broadcast` to every local subscriber of its topic without
    /// waiting; a subscriber whose outbox is full is closed as a slow consumer.
    /// Returns how many were queued.
    pub fn broadcast(&self, broadcast: &Arc<Broadcast>) -> usize {
        let Some(subs) = self.topics.get(broadcast.topic()) else {
            return 0;
        };
        let mut queued = 0;
        for conn in subs.iter() {
            match conn.push(Outgoing::Broadcast(broadcast.clone())) {
                PushOutcome::Queued => queued += 1,
                PushOutcome::SlowConsumer => self.metrics.slow_consumer(),
                PushOutcome::Closed => {}
            }
        }
        queued
    }

    /// The local connections of `user`.
    pub fn user_connections(&self, user: &str) -> Vec<Arc<ConnHandle>> {
        let ids = self
            .users
            .get(user)
            .map(|ids| ids.clone())
            .unwrap_or_default();
        ids.iter()
            .filter_map(|id| self.conns.get(id).map(|c| c.clone()))
            .collect()
    }

    /// Every local connection (a snapshot).
    pub fn connections(&self) -> Vec<Arc<ConnHandle>> {
        self.conns.iter().map(|c| c.value().clone()).collect()
    }

    /// Number of registered connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Number of (connection, topic) subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }

    /// Topics with local subscribers whose name starts with `prefix`, with
    /// their subscriber counts, in topic order, at most `limit`; and whether
    /// more matched.
    pub fn topic_subscribers(&self, prefix: &str, limit: usize) -> (Vec<(Topic, usize)>, bool) {
        let mut found: Vec<(Topic, usize)> = self
            .topics
            .iter()
            .filter(|e| e.key().as_str().starts_with(prefix))
            .map(|e| (e.key().clone(), e.value().len()))
            .collect();
        found.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let truncated = found.len() > limit;
        found.truncate(limit);
        (found, truncated)
    }

    /// Number of topics with local subscribers.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }
}

/// The engines' view of this node: deliver, rebalance, disconnect, count.
impl Delivery for Registry {
    fn deliver(&self, broadcast: &Arc<Broadcast>) -> usize {
        self.broadcast(broadcast)
    }

    fn rebalance(&self, topic: &Topic) -> usize {
        self.subscribers(topic)
            .iter()
            .filter(|c| c.close(CloseCode::Rebalance))
            .count()
    }

    fn has_subscribers(&self, topic: &Topic) -> bool {
        Registry::has_subscribers(self, topic)
    }

    fn disconnect_user(&self, user: &str, code: CloseCode) -> usize {
        self.user_connections(user)
            .iter()
            .filter(|c| c.close(code))
            .count()
    }

    fn counts(&self) -> LocalCounts {
        LocalCounts {
            connections: self.connection_count(),
            subscriptions: self.subscription_count(),
            topics: self.topic_count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Publication;
    use crate::connection::outbox;

    fn conn(user: &str, cap: usize) -> (Arc<ConnHandle>, outbox::Receiver) {
        let (tx, rx) = outbox::channel(cap);
        (
            Arc::new(ConnHandle::new(
                ConnId::next(),
                "cid".into(),
                user.into(),
                tx,
            )),
            rx,
        )
    }

    fn publication(topic: &Topic, offset: u64) -> Arc<Broadcast> {
        Broadcast::publication(Arc::new(Publication {
            topic: topic.clone(),
            offset,
            event: "e".into(),
            data: serde_json::Value::Null,
            ts: 0,
            id: format!("p{offset}"),
        }))
    }

    #[tokio::test]
    async fn broadcast_reaches_subscribers_and_a_slow_one_is_cut_off_alone() {
        let reg = Registry::new(Arc::new(Metrics::default()));
        let t: Topic = "bookings:1".parse().unwrap();
        let (fast, mut fast_rx) = conn("a", 8);
        let (slow, _slow_rx) = conn("b", 1);
        assert!(reg.subscribe(&t, fast.clone()));
        assert!(!reg.subscribe(&t, slow.clone()));
        assert_eq!(reg.subscription_count(), 2);
        for off in 1..=3 {
            reg.broadcast(&publication(&t, off));
        }
        assert_eq!(
            slow.close_reason(),
            Some(crate::connection::handle::CloseReason::Code(
                crate::protocol::CloseCode::SlowConsumer
            ))
        );
        assert_eq!(fast.close_reason(), None);
        for off in 1..=3 {
            match fast_rx.recv().await {
                Some(Outgoing::Broadcast(b)) => assert_eq!(b.offset(), Some(off)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(reg.metrics.snapshot().slow_consumers, 1);
        assert!(!reg.unsubscribe(&t, fast.id));
        assert!(reg.unsubscribe(&t, slow.id));
        assert!(!reg.has_subscribers(&t));
        assert_eq!(reg.subscription_count(), 0);
    }

    #[test]
    fn try_register_enforces_the_node_and_user_limits() {
        let reg = Registry::new(Arc::new(Metrics::default()));
        let (a1, _r1) = conn("alice", 1);
        let (a2, _r2) = conn("alice", 1);
        let (b1, _r3) = conn("bob", 1);
        let (c1, _r4) = conn("carol", 1);
        assert!(reg.try_register(a1.clone(), 3, 1));
        assert!(!reg.try_register(a2, 3, 1), "alice is at her limit");
        assert!(reg.try_register(b1, 3, 0));
        assert_eq!(reg.user_connections("alice").len(), 1);
        let (b2, _r5) = conn("bob", 1);
        assert!(reg.try_register(b2, 3, 0), "0 means no per-user limit");
        assert!(!reg.try_register(c1, 3, 0), "the node is full");
        reg.unregister(&a1);
        assert_eq!(reg.connection_count(), 2);
    }

    #[test]
    fn users_index_follows_register_and_unregister() {
        let reg = Registry::new(Arc::new(Metrics::default()));
        let (a1, _r1) = conn("alice", 1);
        let (a2, _r2) = conn("alice", 1);
        reg.register(a1.clone());
        reg.register(a2.clone());
        assert_eq!(reg.user_connections("alice").len(), 2);
        reg.unregister(&a1);
        assert_eq!(reg.user_connections("alice").len(), 1);
        reg.unregister(&a2);
        assert!(reg.user_connections("alice").is_empty());
        assert_eq!(reg.connection_count(), 0);
    }
}
