//! The broker contract: one suite of behaviour every engine must show,
//! run against the memory broker here and against Redis by the Redis engine's
//! tests. Each case uses its own topics (`prefix`), so engines that share
//! state between cases (a Redis server) need no cleanup.

use std::sync::Arc;
use std::time::Duration;

use crate::connection::outbox;

use super::{Broker, Position, PublishRequest, TopicOptions};
use crate::connection::{ConnHandle, ConnId};
use crate::fanout::{BroadcastKind, Outgoing};
use crate::protocol::CloseCode;
use crate::protocol::frames::Member;
use crate::registry::Registry;
use crate::topic::Topic;

const WAIT: Duration = Duration::from_secs(10);

/// Options used unless a case needs others.
pub(crate) const OPTIONS: TopicOptions = TopicOptions {
    history_size: 100,
    history_ttl: Duration::from_secs(3600),
    idempotency_window: Duration::from_secs(600),
};

/// A broker under test with the registry it delivers to.
pub(crate) struct Subject {
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) registry: Arc<Registry>,
}

/// A local subscriber: its handle and what reaches its outbox.
struct Sub {
    conn: Arc<ConnHandle>,
    rx: outbox::Receiver,
}

impl Sub {
    async fn attach(s: &Subject, topic: &Topic, user: &str) -> Sub {
        let (tx, rx) = outbox::channel(4096);
        let conn = Arc::new(ConnHandle::new(
            ConnId::next(),
            format!("cid-{user}").into(),
            user.into(),
            tx,
        ));
        s.registry.register(conn.clone());
        if s.registry.subscribe(topic, conn.clone()) {
            s.broker.watch(topic).await.unwrap();
        }
        Sub { conn, rx }
    }

    async fn next(&mut self) -> BroadcastKind {
        loop {
            let item = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .expect("a delivery in time");
            if let Some(Outgoing::Broadcast(b)) = item {
                return match b.kind() {
                    BroadcastKind::Pub(p) => BroadcastKind::Pub(p.clone()),
                    BroadcastKind::Join(m) => BroadcastKind::Join(m.clone()),
                    BroadcastKind::Leave(m) => BroadcastKind::Leave(m.clone()),
                };
            }
        }
    }

    async fn next_offset(&mut self) -> u64 {
        match self.next().await {
            BroadcastKind::Pub(p) => p.offset,
            other => panic!("expected a publication, got {other:?}"),
        }
    }
}

fn topic(prefix: &str, name: &str) -> Topic {
    format!("contract:{prefix}-{name}").parse().unwrap()
}

async fn publish(
    s: &Subject,
    t: &Topic,
    n: u64,
    key: Option<&str>,
    options: TopicOptions,
) -> Position {
    s.broker
        .publish(PublishRequest {
            topic: t.clone(),
            event: "e".into(),
            data: serde_json::json!({"n": n}),
            idempotency_key: key.map(str::to_owned),
            options,
        })
        .await
        .unwrap()
}

/// Every case, in sequence.
pub(crate) async fn run_all(s: &Subject, prefix: &str) {
    offsets_are_contiguous_and_delivered_in_order(s, prefix).await;
    recovery_semantics(s, prefix).await;
    trimmed_or_absent_history_is_not_recovered(s, prefix).await;
    idempotency_within_the_window(s, prefix).await;
    history_pages(s, prefix).await;
    history_limit_zero_and_newest(s, prefix).await;
    presence_with_join_and_leave(s, prefix).await;
    disconnect_reaches_the_user(s, prefix).await;
    expired_history_is_not_recovered(s, prefix).await;
    s.broker.check().await.unwrap();
}

async fn offsets_are_contiguous_and_delivered_in_order(s: &Subject, prefix: &str) {
    let t = topic(prefix, "order");
    let mut sub = Sub::attach(s, &t, "u").await;
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let broker = s.broker.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..25 {
                let req = PublishRequest {
                    topic: t.clone(),
                    event: "e".into(),
                    data: serde_json::json!([w, i]),
                    idempotency_key: None,
                    options: OPTIONS,
                };
                acked.push(broker.publish(req).await.unwrap().offset);
            }
            acked
        }));
    }
    let mut acked: Vec<u64> = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked.sort_unstable();
    assert_eq!(acked, (1..=100).collect::<Vec<_>>());
    for expected in 1..=100 {
        assert_eq!(sub.next_offset().await, expected);
    }
}

async fn recovery_semantics(s: &Subject, prefix: &str) {
    let t = topic(prefix, "recover");
    let fresh = s.broker.recover(&t, None, &OPTIONS).await.unwrap();
    assert_eq!(
        fresh.position.offset, 0,
        "a topic that never had a publication is at 0"
    );
    let first = publish(s, &t, 1, None, OPTIONS).await;
    assert_eq!(first.offset, 1);
    for n in 2..=5 {
        publish(s, &t, n, None, OPTIONS).await;
    }
    let top = s.broker.recover(&t, None, &OPTIONS).await.unwrap();
    assert_eq!(top.position.offset, 5);
    assert_eq!(
        top.position.epoch, first.epoch,
        "the epoch is stable while history lives"
    );
    assert!(
        top.publications.is_empty(),
        "nothing is recovered without since"
    );
    let at_top = s
        .broker
        .recover(&t, Some(&top.position), &OPTIONS)
        .await
        .unwrap();
    assert!(at_top.recovered && at_top.publications.is_empty());
    let missed = s.broker.recover(&t, Some(&first), &OPTIONS).await.unwrap();
    assert!(missed.recovered);
    let offsets: Vec<u64> = missed.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![2, 3, 4, 5]);
    assert_eq!(missed.publications[0].data, serde_json::json!({"n": 2}));
    let from_zero = Position {
        epoch: first.epoch.clone(),
        offset: 0,
    };
    assert_eq!(
        s.broker
            .recover(&t, Some(&from_zero), &OPTIONS)
            .await
            .unwrap()
            .publications
            .len(),
        5
    );
    let other_epoch = Position {
        epoch: super::Epoch::from_wire("not-this-one"),
        offset: 1,
    };
    let r = s
        .broker
        .recover(&t, Some(&other_epoch), &OPTIONS)
        .await
        .unwrap();
    assert!(!r.recovered && r.publications.is_empty());
    let ahead = Position {
        epoch: first.epoch.clone(),
        offset: 99,
    };
    assert!(
        !s.broker
            .recover(&t, Some(&ahead), &OPTIONS)
            .await
            .unwrap()
            .recovered
    );
}

async fn trimmed_or_absent_history_is_not_recovered(s: &Subject, prefix: &str) {
    let tiny = TopicOptions {
        history_size: 3,
        ..OPTIONS
    };
    let t = topic(prefix, "trim");
    let first = publish(s, &t, 1, None, tiny).await;
    for n in 2..=6 {
        publish(s, &t, n, None, tiny).await;
    }
    assert!(
        !s.broker
            .recover(&t, Some(&first), &tiny)
            .await
            .unwrap()
            .recovered
    );
    let at3 = Position {
        epoch: first.epoch.clone(),
        offset: 3,
    };
    let r = s.broker.recover(&t, Some(&at3), &tiny).await.unwrap();
    assert!(r.recovered);
    assert_eq!(
        r.publications.iter().map(|p| p.offset).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );

    let none = TopicOptions {
        history_size: 0,
        ..OPTIONS
    };
    let t = topic(prefix, "nohist");
    let p1 = publish(s, &t, 1, None, none).await;
    let p2 = publish(s, &t, 2, None, none).await;
    assert_eq!(p2.offset, 2, "offsets count without history");
    assert!(
        !s.broker
            .recover(&t, Some(&p1), &none)
            .await
            .unwrap()
            .recovered
    );
    assert!(
        s.broker
            .recover(&t, Some(&p2), &none)
            .await
            .unwrap()
            .recovered
    );
}

async fn idempotency_within_the_window(s: &Subject, prefix: &str) {
    let t = topic(prefix, "idem");
    let mut sub = Sub::attach(s, &t, "u").await;
    let a = publish(s, &t, 1, Some("k1"), OPTIONS).await;
    let b = publish(s, &t, 1, Some("k1"), OPTIONS).await;
    assert_eq!(a, b);
    let c = publish(s, &t, 2, Some("k2"), OPTIONS).await;
    assert_eq!(c.offset, 2);
    assert_eq!(sub.next_offset().await, 1);
    assert_eq!(
        sub.next_offset().await,
        2,
        "the repeated key delivered nothing"
    );
    let other = topic(prefix, "idem-other");
    assert_eq!(
        publish(s, &other, 1, Some("k1"), OPTIONS).await.offset,
        1,
        "keys are per topic"
    );
}

async fn history_pages(s: &Subject, prefix: &str) {
    let t = topic(prefix, "history");
    let first = publish(s, &t, 1, None, OPTIONS).await;
    for n in 2..=10 {
        publish(s, &t, n, None, OPTIONS).await;
    }
    let newest = s.broker.history(&t, None, 3, &OPTIONS).await.unwrap();
    assert_eq!(
        newest
            .publications
            .iter()
            .map(|p| p.offset)
            .collect::<Vec<_>>(),
        vec![8, 9, 10]
    );
    assert_eq!(newest.position.offset, 10);
    let after = s
        .broker
        .history(&t, Some(&first), 4, &OPTIONS)
        .await
        .unwrap();
    assert_eq!(
        after
            .publications
            .iter()
            .map(|p| p.offset)
            .collect::<Vec<_>>(),
        vec![2, 3, 4, 5]
    );
    let empty = s
        .broker
        .history(&topic(prefix, "history-none"), None, 10, &OPTIONS)
        .await
        .unwrap();
    assert!(empty.publications.is_empty());
    assert_eq!(empty.position.offset, 0);
}

/// `history` with limit 0 answers only the position (what a load-then-stream
/// handoff reads first); limit 1 without `since` is the newest publication
/// still in history (what `subscribe` with `latest` replies with).
async fn history_limit_zero_and_newest(s: &Subject, prefix: &str) {
    let t = topic(prefix, "limit-zero");
    let fresh = s.broker.history(&t, None, 0, &OPTIONS).await.unwrap();
    assert!(fresh.publications.is_empty());
    assert_eq!(fresh.position.offset, 0);
    let first = publish(s, &t, 1, None, OPTIONS).await;
    publish(s, &t, 2, None, OPTIONS).await;
    publish(s, &t, 3, None, OPTIONS).await;
    for since in [None, Some(&first)] {
        let page = s.broker.history(&t, since, 0, &OPTIONS).await.unwrap();
        assert!(page.publications.is_empty(), "limit 0 with since {since:?}");
        assert_eq!(page.position.offset, 3);
        assert_eq!(page.position.epoch, first.epoch);
    }
    let newest = s.broker.history(&t, None, 1, &OPTIONS).await.unwrap();
    assert_eq!(
        newest
            .publications
            .iter()
            .map(|p| p.offset)
            .collect::<Vec<_>>(),
        vec![3]
    );
    assert_eq!(newest.position.offset, 3);

    let none = TopicOptions {
        history_size: 0,
        ..OPTIONS
    };
    let t = topic(prefix, "limit-zero-nohist");
    publish(s, &t, 1, None, none).await;
    let newest = s.broker.history(&t, None, 1, &none).await.unwrap();
    assert!(
        newest.publications.is_empty(),
        "nothing kept, nothing newest"
    );
    assert_eq!(newest.position.offset, 1);
}

async fn presence_with_join_and_leave(s: &Subject, prefix: &str) {
    let t = topic(prefix, "presence");
    let mut watcher = Sub::attach(s, &t, "w").await;
    let member = |id: &str| Member {
        client_id: id.into(),
        user: format!("user-{id}"),
        info: serde_json::json!({"id": id}),
    };
    s.broker.join(&t, member("a"), true).await.unwrap();
    s.broker.join(&t, member("b"), false).await.unwrap();
    match watcher.next().await {
        BroadcastKind::Join(m) => assert_eq!(m, member("a")),
        other => panic!("{other:?}"),
    }
    let mut members = s.broker.presence(&t).await.unwrap();
    members.sort_by(|x, y| x.client_id.cmp(&y.client_id));
    assert_eq!(members, vec![member("a"), member("b")]);
    s.broker.leave(&t, member("a"), true).await.unwrap();
    match watcher.next().await {
        BroadcastKind::Leave(m) => assert_eq!(m.client_id, "a"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.broker.presence(&t).await.unwrap(), vec![member("b")]);
    s.broker.leave(&t, member("b"), false).await.unwrap();
    assert!(s.broker.presence(&t).await.unwrap().is_empty());
}

async fn disconnect_reaches_the_user(s: &Subject, prefix: &str) {
    let t = topic(prefix, "kick");
    let user = format!("{prefix}-kicked");
    let a = Sub::attach(s, &t, &user).await;
    let b = Sub::attach(s, &t, &user).await;
    let other = Sub::attach(s, &t, &format!("{prefix}-other")).await;
    let n = s
        .broker
        .disconnect_user(&user, CloseCode::Rebalance)
        .await
        .unwrap();
    assert_eq!(n, 2);
    for sub in [&a, &b] {
        let reason = tokio::time::timeout(WAIT, sub.conn.closed()).await.unwrap();
        assert_eq!(
            reason,
            crate::connection::handle::CloseReason::Code(CloseCode::Rebalance)
        );
    }
    assert_eq!(other.conn.close_reason(), None);
}

async fn expired_history_is_not_recovered(s: &Subject, prefix: &str) {
    let short = TopicOptions {
        history_ttl: Duration::from_secs(1),
        ..OPTIONS
    };
    let t = topic(prefix, "ttl");
    let first = publish(s, &t, 1, None, short).await;
    publish(s, &t, 2, None, short).await;
    assert!(
        s.broker
            .recover(&t, Some(&first), &short)
            .await
            .unwrap()
            .recovered
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = s.broker.recover(&t, Some(&first), &short).await.unwrap();
        if !r.recovered {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "history never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod memory {
    use super::*;
    use crate::broker::memory::MemoryBroker;
    use crate::metrics::Metrics;

    #[tokio::test]
    async fn the_memory_broker_keeps_the_contract() {
        let registry = Arc::new(Registry::new(Arc::new(Metrics::default())));
        let broker = MemoryBroker::start(registry.clone());
        run_all(&Subject { broker, registry }, "mem").await;
    }

    #[tokio::test]
    async fn idle_topics_are_swept_and_come_back_with_a_new_epoch() {
        let registry = Arc::new(Registry::new(Arc::new(Metrics::default())));
        let broker = MemoryBroker::start(registry.clone());
        let short = TopicOptions {
            history_ttl: Duration::from_millis(1),
            idempotency_window: Duration::from_millis(1),
            ..OPTIONS
        };
        let t = topic("mem", "sweep");
        let s = Subject {
            broker: broker.clone(),
            registry,
        };
        let first = publish(&s, &t, 1, None, short).await;
        let later = tokio::time::Instant::now() + Duration::from_secs(1);
        broker.recover(&t, None, &short).await.unwrap();
        assert_eq!(broker.sweep(later), 1);
        let again = publish(&s, &t, 1, None, short).await;
        assert_eq!(again.offset, 1);
        assert_ne!(again.epoch, first.epoch);
        assert!(
            !broker
                .recover(&t, Some(&first), &short)
                .await
                .unwrap()
                .recovered
        );
    }
}

/// The Redis the tests use: `HUBBUB_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`.
pub(crate) fn redis_test_url() -> String {
    std::env::var("HUBBUB_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The same suite against a real Redis at `HUBBUB_TEST_REDIS_URL` (default
/// `redis://127.0.0.1:6379`). It fails, never skips, when Redis does not answer.
#[cfg(test)]
mod redis {
    use super::*;
    use crate::broker::redis::{RedisBroker, RedisOptions};
    use crate::metrics::Metrics;

    fn url() -> String {
        super::redis_test_url()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_redis_broker_keeps_the_contract() {
        // Engine logs show up with a failure (the test writer is captured otherwise).
        let _ = tracing_subscriber::fmt()
            .with_env_filter("hubbub=debug")
            .with_test_writer()
            .try_init();
        let run = format!("{:08x}", rand::random::<u32>());
        let registry = Arc::new(Registry::new(Arc::new(Metrics::default())));
        let broker = RedisBroker::start(
            registry.clone(),
            RedisOptions {
                url: url(),
                key_prefix: format!("hubbub-test-{run}"),
                presence_ttl: Duration::from_secs(30),
                probe_interval: Duration::from_secs(1),
                node: format!("contract-{run}").into(),
                heartbeat: true,
            },
        )
        .expect("a usable redis URL");
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Err(e) = broker.check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "Redis at {} must answer for this test: {e}",
                url()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        run_all(&Subject { broker, registry }, &format!("redis-{run}")).await;
    }
}
