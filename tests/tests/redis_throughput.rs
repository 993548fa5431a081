//! REST publish throughput through Redis, single and batch. Ignored by
//! default (it measures, it does not check): run it against a release build,
//! `cargo test --release -p hubbub-tests --test redis_throughput -- --ignored --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use std::time::{Duration, Instant};

use hubbub_tests::redis::{shared_url, unique_prefix};
use hubbub_tests::{API_KEY, start_redis_node};
use serde_json::{Value, json};

const RUN_FOR: Duration = Duration::from_secs(5);

async fn run(url: String, workers: usize, batch: usize) -> u64 {
    let deadline = Instant::now() + RUN_FOR;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut done = 0u64;
            let topic = format!("bookings:tp-{w}");
            while Instant::now() < deadline {
                if batch == 1 {
                    let r = http
                        .post(format!("{url}/api/v1/publish"))
                        .bearer_auth(API_KEY)
                        .json(&json!({"topic": topic, "event": "e", "data": {"n": done}}))
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success());
                    done += 1;
                } else {
                    let pubs: Vec<Value> = (0..batch)
                        .map(|i| json!({"topic": topic, "event": "e", "data": {"n": i}}))
                        .collect();
                    let r: Value = http
                        .post(format!("{url}/api/v1/batch"))
                        .bearer_auth(API_KEY)
                        .json(&json!({"publications": pubs}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    done += r["results"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|x| x["position"].is_object())
                        .count() as u64;
                }
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run it on a release build"]
async fn rest_publish_throughput_through_redis() {
    let node = start_redis_node!(&shared_url(), &unique_prefix("tp"), "tp-0")
        .await
        .unwrap();
    for (workers, batch) in [(16, 1), (4, 100)] {
        let n = run(node.url(""), workers, batch).await;
        eprintln!(
            "throughput: {workers} workers, batch {batch}: {n} publications in {RUN_FOR:?} = {:.0}/s",
            n as f64 / RUN_FOR.as_secs_f64()
        );
    }
}
