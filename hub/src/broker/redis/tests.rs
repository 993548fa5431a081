//! Engine tests against a real Redis (`HUBBUB_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`): the probe repairing a silently dead
//! subscription, per-topic routing (subscribed only while served), and
//! concurrent publications each answered with their own reply.

mod probe {
    use super::super::RedisBroker;
    use super::super::tasks::check;
    use crate::broker::contract::OPTIONS;
    use crate::broker::redis::RedisOptions;
    use crate::broker::testing::RecordingDelivery;
    use crate::broker::{ControlPlane, PublishRequest, StreamStore};
    use crate::fanout::BroadcastKind;
    use crate::topic::Topic;
    use fred::prelude::PubsubInterface;
    use std::sync::Arc;
    use std::time::Duration;

    async fn ready(b: &RedisBroker) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while let Err(e) = check(b).await {
            assert!(tokio::time::Instant::now() < deadline, "not ready: {e}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A subscription that dies without the connection noticing (here: the
    /// channels are unsubscribed behind the engine's back) is found by the
    /// probe and rebuilt; the subscriber that missed a publication is told
    /// to re-subscribe.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_probe_finds_a_silently_dead_subscription_and_repairs_it() {
        let run = format!("{:08x}", rand::random::<u32>());
        let delivery = Arc::new(RecordingDelivery::default());
        let b = RedisBroker::start(
            delivery.clone(),
            RedisOptions {
                url: crate::broker::contract::redis_test_url(),
                key_prefix: format!("hubbub-probe-{run}"),
                presence_ttl: Duration::from_secs(30),
                probe_interval: Duration::from_millis(100),
                node: format!("probe-{run}").into(),
                heartbeat: false,
            },
        )
        .unwrap();
        ready(&b).await;
        let t: Topic = format!("bookings:probe-{run}").parse().unwrap();
        let (mut inbox, _) = delivery.subscribe(&t, "u");
        b.watch(&t).await.unwrap();
        b.recover(&t, None, &OPTIONS).await.unwrap();
        let publish = || PublishRequest {
            topic: t.clone(),
            event: "e".into(),
            data: serde_json::json!(1),
            idempotency_key: None,
            options: OPTIONS,
        };
        b.publish(publish()).await.unwrap();
        let wait = Duration::from_secs(10);
        assert!(inbox.next(wait).await.is_some(), "delivered while healthy");
        // Kill the subscriptions silently.
        let channels = vec![b.keys().channel(&t), b.keys().probe(&b.node)];
        let () = b.subscriber.sunsubscribe(channels).await.unwrap();
        // fred does not wait for SUNSUBSCRIBE's reply: wait until Redis applied it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while super::routing::subscribers_of(&b, &b.keys().channel(&t)).await != 0 {
            assert!(tokio::time::Instant::now() < deadline, "never unsubscribed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        b.publish(publish()).await.unwrap();
        // The probe notices, the subscriber is rebuilt and resynced, and the
        // local subscriber, which missed offset 2, is told to re-subscribe.
        let deadline = tokio::time::Instant::now() + wait;
        while !inbox.closed() {
            assert!(tokio::time::Instant::now() < deadline, "never repaired");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(delivery.rebalanced(&t), 1);
        ready(&b).await;
        let (mut fresh, _) = delivery.subscribe(&t, "d");
        b.publish(publish()).await.unwrap();
        let got = fresh.next(wait).await.expect("delivered after the repair");
        assert!(matches!(got, BroadcastKind::Pub(p) if p.offset == 3));
    }
}

mod routing {
    use super::super::RedisBroker;
    use super::super::tasks::UNWATCH_EVERY;
    use crate::broker::ControlPlane;
    use crate::broker::redis::RedisOptions;
    use crate::broker::testing::RecordingDelivery;
    use crate::topic::Topic;
    use fred::prelude::ClientLike;
    use fred::types::{ClusterHash, CustomCommand, Value};
    use std::sync::Arc;
    use std::time::Duration;

    /// Subscribers of a sharded channel, as Redis counts them.
    pub(super) async fn subscribers_of(b: &RedisBroker, channel: &str) -> i64 {
        let cmd = CustomCommand::new_static("PUBSUB", ClusterHash::Random, false);
        let args: Vec<Value> = vec!["SHARDNUMSUB".into(), channel.into()];
        let reply: Value = b.store.client.custom(cmd, args).await.unwrap();
        reply
            .into_array()
            .get(1)
            .and_then(Value::as_i64)
            .unwrap_or(-1)
    }

    /// A node subscribes to a topic's channel only while it has local
    /// subscribers, and a lazy unsubscribe never undoes a newer subscription.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_topic_channel_is_subscribed_only_while_it_has_local_subscribers() {
        let run = format!("{:08x}", rand::random::<u32>());
        let delivery = Arc::new(RecordingDelivery::default());
        let b = RedisBroker::start(
            delivery.clone(),
            RedisOptions {
                url: crate::broker::contract::redis_test_url(),
                key_prefix: format!("hubbub-route-{run}"),
                presence_ttl: Duration::from_secs(30),
                probe_interval: Duration::from_secs(1),
                node: format!("route-{run}").into(),
                heartbeat: false,
            },
        )
        .unwrap();
        let t: Topic = format!("bookings:route-{run}").parse().unwrap();
        let channel = b.keys().channel(&t);
        assert!(delivery.subscribe(&t, "u").1);
        b.watch(&t).await.unwrap();
        assert_eq!(subscribers_of(&b, &channel).await, 1);
        // Leaves and comes back before the sweep: still subscribed after it.
        delivery.unsubscribe_all(&t);
        b.unwatch(&t).await.unwrap();
        assert!(delivery.subscribe(&t, "u").1);
        b.watch(&t).await.unwrap();
        tokio::time::sleep(UNWATCH_EVERY * 3).await;
        assert_eq!(subscribers_of(&b, &channel).await, 1);
        // Leaves for good: unsubscribed by the sweep.
        delivery.unsubscribe_all(&t);
        b.unwatch(&t).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while subscribers_of(&b, &channel).await != 0 {
            assert!(tokio::time::Instant::now() < deadline, "never unsubscribed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

mod concurrent_publishes {
    use super::super::RedisBroker;
    use crate::broker::contract::OPTIONS;
    use crate::broker::redis::RedisOptions;
    use crate::broker::testing::RecordingDelivery;
    use crate::broker::{BrokerError, PublishRequest, StreamStore};
    use crate::topic::Topic;
    use fred::prelude::KeysInterface;
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    /// Concurrent single publications (fred writes them back to back on one
    /// connection, so their round trips overlap) are each answered with their
    /// own script's reply: distinct offsets per topic, the
    /// same position for a repeated idempotency key, and a failing
    /// publication (its topic's meta key has the wrong type) fails only its
    /// own callers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_publishes_are_answered_each_with_their_own_reply() {
        let run = format!("{:08x}", rand::random::<u32>());
        let b = RedisBroker::start(
            Arc::new(RecordingDelivery::default()),
            RedisOptions {
                url: crate::broker::contract::redis_test_url(),
                key_prefix: format!("hubbub-batch-{run}"),
                presence_ttl: Duration::from_secs(30),
                probe_interval: Duration::from_secs(1),
                node: format!("batch-{run}").into(),
                heartbeat: false,
            },
        )
        .unwrap();
        let topics: Vec<Topic> = (0..4)
            .map(|i| format!("bookings:batch-{run}-{i}").parse().unwrap())
            .collect();
        let broken = &topics[3];
        let () = b
            .store
            .client
            .set(b.keys().meta(broken), "not a hash", None, None, false)
            .await
            .unwrap();
        let mut calls = Vec::new();
        for n in 0..400usize {
            let b = b.clone();
            let topic = topics[n % 4].clone();
            // Every fifth publication of topic 0 repeats one key.
            let idempotency_key = (n % 20 == 0).then(|| "same".to_string());
            calls.push(tokio::spawn(async move {
                let req = PublishRequest {
                    topic: topic.clone(),
                    event: "e".into(),
                    data: serde_json::json!({ "n": n }),
                    idempotency_key: idempotency_key.clone(),
                    options: OPTIONS,
                };
                (topic, idempotency_key, b.publish(req).await)
            }));
        }
        let mut offsets: HashMap<Topic, Vec<u64>> = HashMap::new();
        let mut keyed = Vec::new();
        for call in calls {
            let (topic, key, result) = call.await.unwrap();
            if &topic == broken {
                assert!(
                    matches!(result, Err(BrokerError::Unavailable(_))),
                    "{result:?}"
                );
                continue;
            }
            let position = result.unwrap();
            if key.is_some() {
                keyed.push(position.offset);
            } else {
                offsets.entry(topic).or_default().push(position.offset);
            }
        }
        // The 20 keyed publications of topic 0 stored once, all answered with it.
        assert_eq!(keyed.len(), 20);
        assert!(keyed.iter().all(|o| *o == keyed[0]), "{keyed:?}");
        offsets.get_mut(&topics[0]).unwrap().push(keyed[0]);
        // Topic 0: 80 unkeyed and one keyed publication stored.
        for (topic, stored) in topics[..3].iter().zip([81, 100, 100]) {
            let mut got = offsets.remove(topic).unwrap();
            got.sort_unstable();
            assert_eq!(got, (1..=stored).collect::<Vec<u64>>(), "{topic}");
        }
        let history = b
            .history(&topics[1], None, 100, &OPTIONS)
            .await
            .unwrap()
            .publications;
        let stored: Vec<u64> = history.iter().map(|p| p.offset).collect();
        assert_eq!(stored, (1..=100).collect::<Vec<u64>>());
    }
}
