//! The memory engine's caps and byte accounting: refusals at each cap, the
//! counters back to zero after trimming, expiry and sweeping, and reads that
//! create nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::broker::testing::RecordingDelivery;
use serde_json::json;

const TTL: Duration = Duration::from_secs(10);

fn options(history_size: usize) -> TopicOptions {
    TopicOptions {
        history_size,
        history_ttl: TTL,
        idempotency_window: Duration::from_secs(5),
    }
}

fn broker(max_topics: usize, max_history_bytes: usize) -> Arc<MemoryBroker> {
    MemoryBroker::start(
        Arc::new(RecordingDelivery::default()),
        MemoryCaps {
            max_topics,
            max_history_bytes,
        },
    )
}

fn topic(name: &str) -> Topic {
    format!("mem:{name}").parse().unwrap()
}

async fn publish(
    b: &MemoryBroker,
    t: &str,
    data: serde_json::Value,
    key: Option<&str>,
    history_size: usize,
) -> Result<Position, BrokerError> {
    b.publish(PublishRequest {
        topic: topic(t),
        event: "e".into(),
        data,
        idempotency_key: key.map(str::to_owned),
        options: options(history_size),
    })
    .await
}

/// The sum of every topic's own count: what the node's counter must equal.
fn summed(b: &MemoryBroker) -> usize {
    b.topics.iter().map(|e| lock(e.value()).bytes()).sum()
}

#[tokio::test(start_paused = true)]
async fn the_byte_counter_follows_trimming_expiry_and_sweeping_back_to_zero() {
    let b = broker(1000, 1 << 30);
    for i in 0..50u32 {
        let key = format!("k{i}");
        publish(
            &b,
            "a",
            json!({"n": i, "s": "x".repeat(100)}),
            Some(&key),
            10,
        )
        .await
        .unwrap();
        publish(&b, "b", json!([i, "y"]), None, 0).await.unwrap();
        assert_eq!(b.held().history_bytes, summed(&b));
    }
    let held = b.held();
    assert_eq!(held.topics, 2);
    assert!(held.history_bytes > 0);
    // Trimmed by size: ten publications of `a` and its 50 keys.
    let ten = held.history_bytes;
    publish(&b, "a", json!({"n": 99, "s": "x".repeat(100)}), None, 10)
        .await
        .unwrap();
    assert_eq!(
        b.held().history_bytes,
        ten,
        "one in, one of the same size out"
    );

    // The keys expire after 5 s, the history after 10 s.
    tokio::time::advance(Duration::from_secs(6)).await;
    b.sweep(Instant::now());
    assert!(b.held().history_bytes < ten);
    assert_eq!(b.held().history_bytes, summed(&b));
    assert_eq!(b.held().topics, 2, "not idle yet");
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(b.sweep(Instant::now()), 2);
    assert_eq!(
        b.held(),
        StoreUsage {
            topics: 0,
            history_bytes: 0,
            ..b.held()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_swept_topic_with_unexpired_entries_gives_its_bytes_back() {
    let b = broker(10, 1 << 30);
    // A later publish with a short TTL: the sweep sees the topic idle while
    // entries stored under the long TTL are still in its ring.
    publish(&b, "a", json!("x".repeat(1000)), Some("k"), 100)
        .await
        .unwrap();
    let short = TopicOptions {
        history_size: 100,
        history_ttl: Duration::from_secs(1),
        idempotency_window: Duration::from_secs(1),
    };
    tokio::time::advance(Duration::from_millis(500)).await;
    b.publish(PublishRequest {
        topic: topic("a"),
        event: "e".into(),
        data: json!(1),
        idempotency_key: None,
        options: short,
    })
    .await
    .unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(b.sweep(Instant::now()), 1);
    assert_eq!(b.held().history_bytes, 0);
    assert_eq!(b.held().topics, 0);
}

#[tokio::test(start_paused = true)]
async fn a_new_topic_beyond_max_topics_is_refused_and_the_others_keep_working() {
    let b = broker(3, 1 << 30);
    for t in ["a", "b", "c"] {
        publish(&b, t, json!(1), None, 10).await.unwrap();
    }
    let err = publish(&b, "d", json!(1), None, 10).await.unwrap_err();
    assert!(
        matches!(err, BrokerError::Full(StoreFull::Topics { max: 3 })),
        "{err:?}"
    );
    assert!(err.to_string().contains("memory.max_topics"), "{err}");
    assert_eq!(
        publish(&b, "a", json!(2), None, 10).await.unwrap().offset,
        2
    );
    assert_eq!(b.held().topics, 3);
    // Once the others expired and are swept (the refusal sweeps), it fits.
    tokio::time::advance(TTL + Duration::from_secs(1)).await;
    assert_eq!(
        publish(&b, "d", json!(1), None, 10).await.unwrap().offset,
        1
    );
    assert_eq!(b.held().topics, 1);
}

#[tokio::test(start_paused = true)]
async fn history_beyond_max_history_bytes_is_refused_until_it_expires() {
    let blob = json!({"blob": "x".repeat(10_000)});
    let one = usage::publication_bytes("e", &"0".repeat(32), &blob);
    let b = broker(100, one * 5 + one / 2);
    for i in 0..5 {
        publish(&b, &format!("t{i}"), blob.clone(), None, 100)
            .await
            .unwrap();
    }
    let before = b.held();
    let err = publish(&b, "t0", blob.clone(), None, 100)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::Full(StoreFull::HistoryBytes { .. })),
        "{err:?}"
    );
    let err = publish(&b, "new", blob.clone(), None, 100)
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Full(_)), "{err:?}");
    assert_eq!(
        b.held(),
        before,
        "a refusal stores nothing, not even the topic"
    );
    // Nothing stored was dropped: the history is whole.
    let page = b
        .history(&topic("t0"), None, 10, &options(100))
        .await
        .unwrap();
    assert_eq!(page.publications.len(), 1);
    // A small publication still fits; one in a topic at its history size
    // replaces the oldest of the same size.
    publish(&b, "t1", json!(1), None, 100).await.unwrap();
    publish(&b, "t2", blob.clone(), None, 1).await.unwrap();
    // Without history nothing is counted, so nothing is refused.
    publish(&b, "t3", blob.clone(), None, 0).await.unwrap();
    tokio::time::advance(TTL + Duration::from_secs(1)).await;
    publish(&b, "t0", blob.clone(), None, 100).await.unwrap();
    assert_eq!(b.held().history_bytes, summed(&b));
}

#[tokio::test(start_paused = true)]
async fn reads_of_never_published_topics_create_nothing_and_agree_on_the_epoch() {
    let b = broker(2, 1 << 20);
    for i in 0..1000 {
        let t = topic(&format!("never-{i}"));
        let r = b.recover(&t, None, &options(10)).await.unwrap();
        assert_eq!(r.position.offset, 0);
        assert!(
            b.recover(&t, Some(&r.position), &options(10))
                .await
                .unwrap()
                .recovered
        );
        b.history(&t, None, 10, &options(10)).await.unwrap();
        b.presence(&t).await.unwrap();
    }
    assert_eq!(b.held().topics, 0);
    assert!(b.topics.is_empty());
    // The first publication agrees with the epoch a subscriber at 0 got.
    let t = topic("later");
    let at0 = b.recover(&t, None, &options(10)).await.unwrap().position;
    let first = publish(&b, "later", json!(1), None, 10).await.unwrap();
    assert_eq!(first.epoch, at0.epoch);
    let r = b.recover(&t, Some(&at0), &options(10)).await.unwrap();
    assert!(r.recovered);
    assert_eq!(r.publications.len(), 1);
    // A position of another epoch on a topic without a stream is not recovered.
    let other = Position {
        epoch: Epoch::from_wire("elsewhere"),
        offset: 3,
    };
    assert!(
        !b.recover(&topic("never-0"), Some(&other), &options(10))
            .await
            .unwrap()
            .recovered
    );
}

#[tokio::test(start_paused = true)]
async fn presence_is_kept_apart_and_released_when_empty() {
    let b = broker(1, 1 << 20);
    let t = topic("room");
    let member = Member {
        client_id: "c1".into(),
        user: "u".into(),
        info: serde_json::Value::Null,
    };
    b.join(&t, member.clone(), false).await.unwrap();
    assert_eq!(b.presence(&t).await.unwrap().len(), 1);
    assert_eq!(b.held().topics, 0, "presence is not a stream");
    b.leave(&t, member, false).await.unwrap();
    assert!(b.presence.is_empty());
}
