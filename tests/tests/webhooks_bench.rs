//! Webhook delivery throughput to one local receiver that answers at once
//! (ignored: run with `cargo test --release -p hubbub-tests --test
//! webhooks_bench -- --ignored --nocapture`). Prints deliveries per second
//! from the first publish to the last delivery, for each engine and ordering.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use hubbub_tests::receiver::{Answer, Receiver};
use hubbub_tests::redis::{OwnRedis, node_toml, unique_prefix, wait_ready};
use hubbub_tests::{Node, start_node};
use serde_json::json;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn sink(url: &str, ordering: &str) -> String {
    format!(
        "[[webhooks]]\nname = \"bench\"\nurl = \"{url}\"\ntopics = [\"bookings:*\"]\nsecrets = [\"{SECRET}\"]\nordering = \"{ordering}\"\nmax_in_flight = 64\nmax_pending = 1000000\nmax_pending_bytes = 1073741824\n"
    )
}

async fn run(node: &Node, rx: &Receiver, total: usize, topics: usize, label: &str) {
    let started = Instant::now();
    let mut sent = 0;
    while sent < total {
        let publications: Vec<_> = (sent..(sent + 1000).min(total))
            .map(|i| json!({"topic": format!("bookings:{}", i % topics), "event": "e", "data": {"i": i}}))
            .collect();
        sent += publications.len();
        let r = node
            .post("/api/v1/batch")
            .json(&json!({ "publications": publications }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let published = started.elapsed();
    rx.wait_until(Duration::from_secs(600), "every delivery", |r| {
        r.len() >= total
    })
    .await;
    let took = started.elapsed();
    eprintln!(
        "{label}: {total} deliveries over {topics} topics in {:.2} s = {:.0}/s (publishing took {:.2} s)",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64(),
        published.as_secs_f64()
    );
}

#[tokio::test]
#[ignore = "benchmark"]
async fn throughput_memory_engine() {
    for (ordering, total) in [("none", 50_000), ("topic", 20_000)] {
        let rx = Receiver::with(|_, _| Answer::Status(204)).await.unwrap();
        let node = start_node!(&sink(&rx.url(), ordering)).await.unwrap();
        run(
            &node,
            &rx,
            total,
            100,
            &format!("memory, ordering {ordering}"),
        )
        .await;
    }
}

#[tokio::test]
#[ignore = "benchmark"]
async fn throughput_redis_engine() {
    let redis = OwnRedis::start_with(&["--appendfsync", "everysec"])
        .await
        .unwrap();
    for (ordering, total) in [("none", 50_000), ("topic", 20_000)] {
        let rx = Receiver::with(|_, _| Answer::Status(204)).await.unwrap();
        let prefix = unique_prefix(&format!("wh-bench-{ordering}"));
        let config = format!(
            "{}\n{}",
            node_toml(&redis.url(), &prefix, "bench"),
            sink(&rx.url(), ordering)
        );
        let node = start_node!(&config).await.unwrap();
        wait_ready(&node).await.unwrap();
        run(
            &node,
            &rx,
            total,
            100,
            &format!("redis, ordering {ordering}"),
        )
        .await;
    }
}
