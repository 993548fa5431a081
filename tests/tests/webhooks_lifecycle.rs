//! Webhook lifecycle events against a real receiver and real hub binaries:
//! on the memory engine `occupied`, `join`, `leave`, `vacated` after the
//! grace and none inside it (signed, retried with the same `webhook-id`, in
//! the topic's lane); on Redis with two nodes, one `occupied` and one
//! `vacated` per transition cluster-wide, and `vacated` after kill -9 of
//! the node holding a topic's last subscriber.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use hubbub_tests::client::{Client, Proto};
use hubbub_tests::receiver::{Answer, Receiver, Request, verify};
use hubbub_tests::redis::{OwnRedis, node_toml, unique_prefix, wait_ready};
use hubbub_tests::{Node, start_node, token};
use serde_json::{Value, json};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const LONG: Duration = Duration::from_secs(60);

fn sink(url: &str, lifecycle: &str, grace: &str) -> String {
    format!(
        "[[webhooks]]\nname = \"life\"\nurl = \"{url}\"\ntopics = [\"bookings:*\"]\nsecrets = [\"{SECRET}\"]\nbackoff_min = \"10ms\"\nbackoff_max = \"100ms\"\nlifecycle = {lifecycle}\nvacated_grace = \"{grace}\"\n"
    )
}

/// `(type, topic)` of every first success, in arrival order.
fn events(requests: &[Request]) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    requests
        .iter()
        .filter(|r| r.succeeded() && seen.insert(r.id.clone()))
        .map(|r| {
            let b = r.json();
            (
                b["type"].as_str().unwrap().to_owned(),
                b["topic"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn kinds_on(requests: &[Request], topic: &str) -> Vec<String> {
    events(requests)
        .into_iter()
        .filter(|(_, t)| t == topic)
        .map(|(k, _)| k)
        .collect()
}

fn has(requests: &[Request], kind: &str, topic: &str) -> bool {
    kinds_on(requests, topic).iter().any(|k| k == kind)
}

async fn client(node: &Node, user: &str) -> Client {
    let tok = token(user, &["bookings:*"], &[], 3600);
    Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap()
        .0
}

async fn unsubscribe(c: &mut Client, topic: &str) {
    let r = c
        .request(json!({"type": "unsubscribe", "topic": topic}))
        .await
        .unwrap();
    assert_eq!(r["type"], "unsubscribed", "{r}");
}

#[tokio::test]
async fn memory_engine_sends_occupied_join_leave_and_vacated_after_the_grace_only() {
    // Every join fails once: retried with the same webhook-id.
    let rx = Receiver::with(|r, earlier| {
        if earlier == 0 && r.json()["type"] == "join" {
            Answer::Status(500)
        } else {
            Answer::Status(200)
        }
    })
    .await
    .unwrap();
    let grace = "1500ms";
    let config = sink(
        &rx.url(),
        "[\"occupied\", \"vacated\", \"join\", \"leave\"]",
        grace,
    );
    let node = start_node!(&config).await.unwrap();

    let mut alice = client(&node, "alice").await;
    assert_eq!(
        alice.subscribe("bookings:1", None).await.unwrap()["type"],
        "subscribed"
    );
    let got = rx
        .wait_until(LONG, "occupied and join", |r| has(r, "join", "bookings:1"))
        .await;
    assert_eq!(kinds_on(&got, "bookings:1"), ["occupied", "join"]);
    let join = got
        .iter()
        .find(|r| r.succeeded() && r.json()["type"] == "join")
        .unwrap();
    let body = join.json();
    assert_eq!(body["sink"], "life");
    assert_eq!(body["member"]["user"], "alice");
    assert!(body["member"]["client_id"].is_string(), "{body}");
    assert!(body["member"].get("info").is_some(), "{body}");
    assert!(body["ts"].is_u64());
    assert!(verify(
        SECRET,
        &join.id,
        &join.timestamp,
        &join.body,
        &join.signature
    ));
    let tries: Vec<&Request> = got.iter().filter(|r| r.id == join.id).collect();
    assert_eq!(tries.len(), 2, "the failed join was retried with its id");
    let occupied = got.iter().find(|r| r.json()["type"] == "occupied").unwrap();
    assert_eq!(
        occupied.json(),
        json!({"type": "occupied", "sink": "life", "topic": "bookings:1", "ts": occupied.json()["ts"]})
    );

    // Leave and come back inside the grace: leave, join, no vacated, no second occupied.
    unsubscribe(&mut alice, "bookings:1").await;
    alice.subscribe("bookings:1", None).await.unwrap();
    // A second topic as the clock: its vacated comes a grace after its last
    // subscriber left, which is after the first topic's grace would have ended.
    let mut bob = client(&node, "bob").await;
    bob.subscribe("bookings:2", None).await.unwrap();
    unsubscribe(&mut bob, "bookings:2").await;
    rx.wait_until(LONG, "vacated of bookings:2", |r| {
        has(r, "vacated", "bookings:2")
    })
    .await;
    // Anything queued for bookings:1 before this publication arrives before it (its lane).
    node.publish("bookings:1", "marker", json!({}))
        .await
        .unwrap();
    let got = rx
        .wait_until(LONG, "the marker", |r| has(r, "publication", "bookings:1"))
        .await;
    assert_eq!(
        kinds_on(&got, "bookings:1"),
        ["occupied", "join", "leave", "join", "publication"],
        "no vacated and no second occupied inside the grace"
    );
    assert_eq!(
        kinds_on(&got, "bookings:2"),
        ["occupied", "join", "leave", "vacated"]
    );

    // The last subscriber disconnects: leave, then vacated after the grace.
    let left = Instant::now();
    drop(alice);
    let got = rx
        .wait_until(LONG, "vacated of bookings:1", |r| {
            has(r, "vacated", "bookings:1")
        })
        .await;
    assert!(
        left.elapsed() >= Duration::from_millis(1500),
        "not before the grace"
    );
    assert_eq!(
        kinds_on(&got, "bookings:1"),
        [
            "occupied",
            "join",
            "leave",
            "join",
            "publication",
            "leave",
            "vacated"
        ]
    );
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), events(&got).len(), "one webhook-id per event");
}

async fn redis_node(redis: &OwnRedis, prefix: &str, name: &str, sink: &str) -> Node {
    let config = format!("{}\n{sink}", node_toml(&redis.url(), prefix, name));
    let node = start_node!(&config).await.unwrap();
    wait_ready(&node).await.unwrap();
    node
}

fn count(requests: &[Request], kind: &str, topic: &str) -> usize {
    kinds_on(requests, topic)
        .iter()
        .filter(|k| *k == kind)
        .count()
}

#[tokio::test]
async fn redis_occupancy_is_cluster_wide_and_survives_kill_9() {
    let redis = OwnRedis::start().await.unwrap();
    let rx = Receiver::start().await.unwrap();
    let prefix = unique_prefix("wh-life");
    let config = sink(&rx.url(), "[\"occupied\", \"vacated\"]", "1s");
    let a = redis_node(&redis, &prefix, "a", &config).await;
    let mut b = redis_node(&redis, &prefix, "b", &config).await;

    // Subscribers on both nodes: one occupied.
    let mut on_a = client(&a, "alice").await;
    let mut on_b = client(&b, "bob").await;
    on_a.subscribe("bookings:1", None).await.unwrap();
    rx.wait_until(LONG, "occupied", |r| has(r, "occupied", "bookings:1"))
        .await;
    on_b.subscribe("bookings:1", None).await.unwrap();
    unsubscribe(&mut on_a, "bookings:1").await;
    // The last one leaves on node B: one vacated.
    unsubscribe(&mut on_b, "bookings:1").await;
    let got = rx
        .wait_until(LONG, "vacated", |r| has(r, "vacated", "bookings:1"))
        .await;
    a.publish("bookings:1", "marker", json!({})).await.unwrap();
    let got2 = rx
        .wait_until(LONG, "marker", |r| has(r, "publication", "bookings:1"))
        .await;
    assert!(got2.len() >= got.len());
    assert_eq!(
        kinds_on(&got2, "bookings:1"),
        ["occupied", "vacated", "publication"],
        "exactly one occupied and one vacated across two nodes"
    );

    // kill -9 of the node holding the last subscriber: vacated within the bound.
    on_b.subscribe("bookings:2", None).await.unwrap();
    rx.wait_until(LONG, "occupied 2", |r| has(r, "occupied", "bookings:2"))
        .await;
    let killed = Instant::now();
    std::process::Command::new("kill")
        .args(["-KILL", &b.pid().unwrap().to_string()])
        .status()
        .unwrap();
    b.wait_exit().await.unwrap();
    let got = rx
        .wait_until(LONG, "vacated after kill -9", |r| {
            has(r, "vacated", "bookings:2")
        })
        .await;
    let took = killed.elapsed();
    eprintln!(
        "vacated {took:?} after kill -9 (liveness 5 s + grace 1 s + tick, + lease takeover 10 s if the killed node was delivering)"
    );
    // Liveness (5 s) + grace (1 s) + ticks, plus the 10 s lease when the
    // killed node held the sink's lease; a generous margin for a loaded machine.
    assert!(took < Duration::from_secs(45), "{took:?}");
    assert_eq!(count(&got, "occupied", "bookings:2"), 1);
    assert_eq!(count(&got, "vacated", "bookings:2"), 1);
    let _: Value = json!(null);
}
