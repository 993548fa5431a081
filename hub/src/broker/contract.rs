//! The broker contract: one suite of behaviour every engine must show,
//! run against the memory broker here and against Redis by the Redis engine's
//! tests. Each case uses its own topics (`prefix`), so engines that share
//! state between cases (a Redis server) need no cleanup.

use std::sync::Arc;
use std::time::Duration;

use super::testing::{Inbox, Proxy, RecordingDelivery};
use super::{Broker, ControlPlane, Position, PublishRequest, StreamStore, TopicOptions};
use crate::fanout::BroadcastKind;
use crate::protocol::CloseCode;
use crate::protocol::frames::Member;
use crate::topic::Topic;

const WAIT: Duration = Duration::from_secs(10);

/// Options used unless a case needs others.
pub(crate) const OPTIONS: TopicOptions = TopicOptions {
    history_size: 100,
    history_ttl: Duration::from_secs(3600),
    idempotency_window: Duration::from_secs(600),
};

/// A broker under test with the delivery it hands publications to.
pub(crate) struct Subject {
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) delivery: Arc<RecordingDelivery>,
    /// A proxy on the engine's pub/sub connection (engines that have one).
    pub(crate) pubsub: Option<Proxy>,
}

/// A local subscriber: what reaches it.
struct Sub {
    inbox: Inbox,
}

impl Sub {
    /// Registers a local subscriber and, as the callers do, routes the topic
    /// when it is the first.
    async fn attach(s: &Subject, topic: &Topic, user: &str) -> Sub {
        let (inbox, first) = s.delivery.subscribe(topic, user);
        if first {
            s.broker.watch(topic).await.unwrap();
        }
        Sub { inbox }
    }

    async fn next(&mut self) -> BroadcastKind {
        self.inbox.next(WAIT).await.expect("a delivery in time")
    }

    async fn next_offset(&mut self) -> u64 {
        match self.next().await {
            BroadcastKind::Pub(p) => p.offset,
            other => panic!("expected a publication, got {other:?}"),
        }
    }

    /// Offsets above `after` until `last` arrives or the subscriber is told
    /// to re-subscribe; panics when neither happens in time.
    async fn offsets_until(&mut self, after: u64, last: u64) -> (Vec<u64>, bool) {
        let mut got = Vec::new();
        if after >= last {
            return (got, false);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if self.inbox.closed() {
                return (got, true);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.inbox.next(left.min(Duration::from_millis(100))).await {
                Some(BroadcastKind::Pub(p)) if p.offset > after => {
                    got.push(p.offset);
                    if p.offset >= last {
                        return (got, false);
                    }
                }
                Some(_) => {}
                None => assert!(
                    tokio::time::Instant::now() < deadline,
                    "neither offset {last} nor a rebalance in time; got {got:?} after {after}"
                ),
            }
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
    concurrent_first_subscribers_race_a_publisher(s, prefix).await;
    a_thousand_large_publications_are_recovered(s, prefix).await;
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
    let other = format!("{prefix}-other");
    let _a = Sub::attach(s, &t, &user).await;
    let _b = Sub::attach(s, &t, &user).await;
    let _c = Sub::attach(s, &t, &other).await;
    let n = s
        .broker
        .disconnect_user(&user, CloseCode::Rebalance)
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(s.delivery.close_code(&user), Some(CloseCode::Rebalance));
    assert_eq!(s.delivery.close_code(&other), None);
}

/// Several subscribers of a fresh topic subscribe at once (only the first
/// routes the topic, as the callers do) while a publisher publishes: each
/// gets every offset after the position its read answered, or is told to
/// re-subscribe; never a silent gap. The Redis engine runs this with its
/// pub/sub connection delayed, so the subscription's confirmation is slow.
async fn concurrent_first_subscribers_race_a_publisher(s: &Subject, prefix: &str) {
    const LAST: u64 = 200;
    if let Some(p) = &s.pubsub {
        p.set_delay(Duration::from_millis(30));
    }
    for round in 0..3 {
        let t = topic(prefix, &format!("race-{round}"));
        let publisher = {
            let broker = s.broker.clone();
            let t = t.clone();
            tokio::spawn(async move {
                for n in 1..=LAST {
                    let req = PublishRequest {
                        topic: t.clone(),
                        event: "e".into(),
                        data: serde_json::json!(n),
                        idempotency_key: None,
                        options: OPTIONS,
                    };
                    broker.publish(req).await.unwrap();
                    if n % 10 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            })
        };
        // Publications are under way before anyone subscribes.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let mut subscribers = Vec::new();
        for i in 0..4 {
            let (inbox, first) = s.delivery.subscribe(&t, &format!("race-{i}"));
            let broker = s.broker.clone();
            let t = t.clone();
            subscribers.push(tokio::spawn(async move {
                if first {
                    broker.watch(&t).await.unwrap();
                }
                let r = broker.recover(&t, None, &OPTIONS).await.unwrap();
                let mut sub = Sub { inbox };
                let (got, rebalanced) = sub.offsets_until(r.position.offset, LAST).await;
                (r.position.offset, got, rebalanced)
            }));
        }
        publisher.await.unwrap();
        for (i, sub) in subscribers.into_iter().enumerate() {
            let (at, got, rebalanced) = sub.await.unwrap();
            let end = got.last().copied().unwrap_or(at);
            assert_eq!(
                got,
                (at + 1..=end).collect::<Vec<_>>(),
                "round {round}, subscriber {i} read offset {at}: a silent gap"
            );
            assert!(rebalanced || end == LAST);
        }
        s.delivery.unsubscribe_all(&t);
        s.broker.unwatch(&t).await.unwrap();
    }
    if let Some(p) = &s.pubsub {
        p.set_delay(Duration::ZERO);
    }
}

/// 1,000 publications of 3 KB each come back whole from recovery and history.
async fn a_thousand_large_publications_are_recovered(s: &Subject, prefix: &str) {
    let big = TopicOptions {
        history_size: 1000,
        ..OPTIONS
    };
    let t = topic(prefix, "big");
    let blob = "x".repeat(3 * 1024);
    let mut first = None;
    for chunk in 0..10u64 {
        let reqs = (0..100u64)
            .map(|i| PublishRequest {
                topic: t.clone(),
                event: "big".into(),
                data: serde_json::json!({"n": chunk * 100 + i, "blob": blob}),
                idempotency_key: None,
                options: big,
            })
            .collect();
        for r in s.broker.publish_batch(reqs).await {
            let p = r.unwrap();
            first.get_or_insert(p);
        }
    }
    let first = first.unwrap();
    let since = Position {
        epoch: first.epoch.clone(),
        offset: 0,
    };
    let r = s.broker.recover(&t, Some(&since), &big).await.unwrap();
    assert!(r.recovered);
    assert_eq!(r.position.offset, 1000);
    assert_eq!(
        r.publications.iter().map(|p| p.offset).collect::<Vec<_>>(),
        (1..=1000).collect::<Vec<_>>()
    );
    assert_eq!(r.publications[999].data["blob"], serde_json::json!(blob));
    let page = s.broker.history(&t, None, 1000, &big).await.unwrap();
    assert_eq!(page.publications.len(), 1000);
    assert_eq!(page.publications[0].offset, 1);
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

    fn subject() -> (Subject, Arc<MemoryBroker>) {
        let delivery = Arc::new(RecordingDelivery::default());
        let broker = MemoryBroker::start(delivery.clone(), Default::default());
        (
            Subject {
                broker: broker.clone(),
                delivery,
                pubsub: None,
            },
            broker,
        )
    }

    #[tokio::test]
    async fn the_memory_broker_keeps_the_contract() {
        run_all(&subject().0, "mem").await;
    }

    // Paused clock: a stream is swept only once it has been idle longer than
    // its retention, and the epoch of its successor depends on the time it is
    // created at, so the test moves time forward instead of sweeping "later".
    #[tokio::test(start_paused = true)]
    async fn idle_topics_are_swept_and_come_back_with_a_new_epoch() {
        let (s, broker) = subject();
        let short = TopicOptions {
            history_ttl: Duration::from_millis(1),
            idempotency_window: Duration::from_millis(1),
            ..OPTIONS
        };
        let t = topic("mem", "sweep");
        let first = publish(&s, &t, 1, None, short).await;
        broker.recover(&t, None, &short).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(broker.sweep(tokio::time::Instant::now()), 1);
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
/// `redis://127.0.0.1:6379`), plus the cases only an engine with a network
/// between it and its store has. It fails, never skips, when Redis does not
/// answer.
#[cfg(test)]
mod redis {
    use super::*;
    use crate::broker::Epoch;
    use crate::broker::redis::{RedisBroker, RedisOptions};
    use fred::prelude::{Builder, Client, ClientLike, Config, HashesInterface};
    use fred::types::{ClusterHash, CustomCommand, Value};

    fn url() -> String {
        super::redis_test_url()
    }

    /// A Redis engine whose pub/sub connection goes through a proxy, with
    /// its own key prefix, and a plain client to look at Redis directly.
    struct Rig {
        s: Subject,
        prefix: String,
        run: String,
        admin: Client,
    }

    async fn rig(name: &str) -> Rig {
        // Engine logs show up with a failure (the test writer is captured otherwise).
        let _ = tracing_subscriber::fmt()
            .with_env_filter("hubbub=debug")
            .with_test_writer()
            .try_init();
        let run = format!("{:08x}", rand::random::<u32>());
        let prefix = format!("hubbub-{name}-{run}");
        let upstream = url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let proxy = Proxy::start(upstream, Duration::ZERO).await;
        let delivery = Arc::new(RecordingDelivery::default());
        let broker = RedisBroker::start_with(
            delivery.clone(),
            RedisOptions {
                url: url(),
                key_prefix: prefix.clone(),
                presence_ttl: Duration::from_secs(30),
                probe_interval: Duration::from_millis(250),
                node: format!("{name}-{run}").into(),
                heartbeat: true,
            },
            Some(&proxy.url),
        )
        .expect("a usable redis URL");
        ready(broker.as_ref()).await;
        let admin = Builder::from_config(Config::from_url(&url()).unwrap())
            .build()
            .unwrap();
        admin.init().await.unwrap();
        Rig {
            s: Subject {
                broker,
                delivery,
                pubsub: Some(proxy),
            },
            prefix,
            run,
            admin,
        }
    }

    async fn ready(broker: &dyn ControlPlane) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Err(e) = broker.check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "Redis at {} must answer for this test: {e}",
                url()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Keys under `prefix`.
    async fn keys_under(admin: &Client, prefix: &str) -> usize {
        let keys: Value = admin
            .custom(
                CustomCommand::new_static("KEYS", ClusterHash::Random, false),
                vec![format!("{prefix}:{{contract:*")],
            )
            .await
            .unwrap();
        keys.into_array().len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_redis_broker_keeps_the_contract() {
        let r = rig("test").await;
        run_all(&r.s, &format!("redis-{}", r.run)).await;
    }

    /// A subscriber joins while the node's pub/sub connection is down and
    /// its command connection is up: its read sees offsets the node never
    /// received. After the reconnection the resync must find them missing,
    /// so the subscriber that was already there gets them or a rebalance,
    /// never a silent jump.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscribe_while_pubsub_is_down_leaves_no_silent_gap() {
        let r = rig("pubsub-down").await;
        let s = &r.s;
        let t = topic(&r.run, "pubsub-down");
        let mut a = Sub::attach(s, &t, "a").await;
        s.broker.recover(&t, None, &OPTIONS).await.unwrap();
        for n in 1..=3 {
            publish(s, &t, n, None, OPTIONS).await;
        }
        for n in 1..=3 {
            assert_eq!(a.next_offset().await, n);
        }
        let proxy = s.pubsub.as_ref().unwrap();
        proxy.cut(true);
        // The engine notices: readiness goes false.
        let deadline = tokio::time::Instant::now() + WAIT;
        while s.broker.check().await.is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "never noticed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for n in 4..=6 {
            publish(s, &t, n, None, OPTIONS).await;
        }
        let (_b, _) = s.delivery.subscribe(&t, "b");
        let read = s.broker.recover(&t, None, &OPTIONS).await.unwrap();
        assert_eq!(read.position.offset, 6);
        proxy.restore();
        ready(s.broker.as_ref()).await;
        publish(s, &t, 7, None, OPTIONS).await;
        let (got, rebalanced) = a.offsets_until(3, 7).await;
        assert_eq!(
            got,
            (4..4 + got.len() as u64).collect::<Vec<_>>(),
            "a silent gap"
        );
        assert!(rebalanced || got.last() == Some(&7));
    }

    /// Redis goes back to an older state of a topic (an older snapshot, a
    /// lagging replica): offsets 3..5 are reused. The node's subscribers are
    /// told to re-subscribe, the topic moves to a new epoch, and a position
    /// in the lost stretch is answered `recovered: false` even once the
    /// stream has passed it again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_offset_going_backwards_starts_a_new_epoch() {
        let r = rig("rollback").await;
        let s = &r.s;
        let t = topic(&r.run, "rollback");
        let mut a = Sub::attach(s, &t, "a").await;
        s.broker.recover(&t, None, &OPTIONS).await.unwrap();
        let mut at5 = None;
        for n in 1..=5 {
            at5 = Some(publish(s, &t, n, None, OPTIONS).await);
        }
        let at5 = at5.unwrap();
        for n in 1..=5 {
            assert_eq!(a.next_offset().await, n);
        }
        // Back to the state after offset 2.
        let meta = format!("{}:{{{t}}}:meta", r.prefix);
        let hist = format!("{}:{{{t}}}:hist", r.prefix);
        let () = r.admin.hset(&meta, ("o", 2)).await.unwrap();
        let _: Value = r
            .admin
            .custom(
                CustomCommand::new_static("XDEL", ClusterHash::FirstKey, false),
                vec![hist.clone(), "0-3".into(), "0-4".into(), "0-5".into()],
            )
            .await
            .unwrap();
        let _: Value = r
            .admin
            .custom(
                CustomCommand::new_static("XSETID", ClusterHash::FirstKey, false),
                vec![hist, "0-2".into()],
            )
            .await
            .unwrap();
        publish(s, &t, 3, None, OPTIONS).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while !a.inbox.closed() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the subscriber was never told"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut last = Position {
            epoch: Epoch::from_wire(""),
            offset: 0,
        };
        for n in 4..=8 {
            last = publish(s, &t, n, None, OPTIONS).await;
        }
        assert!(last.offset >= 6, "the stream passed offset 5 again");
        let r5 = s.broker.recover(&t, Some(&at5), &OPTIONS).await.unwrap();
        assert!(
            !r5.recovered,
            "offset 5 of the lost stretch must not be recovered from reused offsets"
        );
        assert_ne!(last.epoch, at5.epoch, "a new epoch");
    }

    /// Reads and subscriptions of topics that were never published leave no key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reading_never_published_topics_creates_no_keys() {
        let r = rig("nokeys").await;
        let s = &r.s;
        let before = keys_under(&r.admin, &r.prefix).await;
        for i in 0..1000 {
            let t = topic(&r.run, &format!("never-{i}"));
            match i % 3 {
                0 => {
                    s.broker.recover(&t, None, &OPTIONS).await.unwrap();
                }
                1 => {
                    s.broker.history(&t, None, 10, &OPTIONS).await.unwrap();
                }
                _ => {
                    let at = s.broker.recover(&t, None, &OPTIONS).await.unwrap();
                    let r = s
                        .broker
                        .recover(&t, Some(&at.position), &OPTIONS)
                        .await
                        .unwrap();
                    assert!(r.recovered);
                }
            }
        }
        for i in 0..20 {
            let t = topic(&r.run, &format!("never-sub-{i}"));
            let _sub = Sub::attach(s, &t, "u").await;
            s.broker.recover(&t, None, &OPTIONS).await.unwrap();
        }
        assert_eq!(keys_under(&r.admin, &r.prefix).await, before);
        // The first publication agrees with the epoch a subscriber at 0 got.
        let t = topic(&r.run, "never-then-once");
        let at0 = s.broker.recover(&t, None, &OPTIONS).await.unwrap().position;
        let first = publish(s, &t, 1, None, OPTIONS).await;
        assert_eq!(first.offset, 1);
        assert_eq!(first.epoch, at0.epoch);
        let r = s.broker.recover(&t, Some(&at0), &OPTIONS).await.unwrap();
        assert!(r.recovered);
        assert_eq!(r.publications.len(), 1);
    }
}
