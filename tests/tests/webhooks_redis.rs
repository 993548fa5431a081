//! Webhook sinks on the Redis engine, with real hub nodes on a private Redis
//! and a real receiver: kill -9 of the delivering node mid-stream, with two
//! and with three nodes (every publication still arrives, a re-sent one with
//! its webhook-id and body, order per topic kept), a receiver down for a long
//! stretch of retries that then gets everything once, in order, signed, dead
//! letters and replay, and a Redis restart on its AOF losing nothing queued.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hubbub_tests::receiver::{Answer, Receiver, Request, verify};
use hubbub_tests::redis::{OwnRedis, command, node_toml, unique_prefix, wait_ready};
use hubbub_tests::{Node, start_node};
use serde_json::{Value, json};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const LONG: Duration = Duration::from_secs(90);

/// The sink `svc` on `bookings:*`, fast backoff unless `extra` sets it.
fn sink(url: &str, extra: &str) -> String {
    let backoff = if extra.contains("backoff") {
        ""
    } else {
        "backoff_min = \"10ms\"\nbackoff_max = \"200ms\"\n"
    };
    format!(
        "[[webhooks]]\nname = \"svc\"\nurl = \"{url}\"\ntopics = [\"bookings:*\"]\nsecrets = [\"{SECRET}\"]\n{backoff}{extra}\n"
    )
}

async fn node(redis: &OwnRedis, prefix: &str, name: &str, sink: &str) -> Node {
    let config = format!("{}\n{sink}", node_toml(&redis.url(), prefix, name));
    let node = start_node!(&config).await.unwrap();
    wait_ready(&node).await.unwrap();
    node
}

async fn stat(node: &Node, field: &str) -> u64 {
    let v: Value = node
        .get("/api/v1/webhooks")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["sinks"][0][field].as_u64().unwrap_or(u64::MAX)
}

/// Offsets per topic in first-success order, and how many successes were repeats.
fn first_successes(requests: &[Request]) -> (BTreeMap<String, Vec<u64>>, usize) {
    let mut seen = HashSet::new();
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut repeats = 0;
    for r in requests.iter().filter(|r| r.succeeded()) {
        if !seen.insert(r.id.clone()) {
            repeats += 1;
            continue;
        }
        let b = r.json();
        order
            .entry(b["topic"].as_str().unwrap().to_owned())
            .or_default()
            .push(b["offset"].as_u64().unwrap());
    }
    (order, repeats)
}

#[tokio::test]
async fn kill_9_of_the_delivering_node_loses_nothing_and_keeps_order_per_topic() {
    let redis = OwnRedis::start().await.unwrap();
    let prefix = unique_prefix("wh-kill");
    let rx = Receiver::with(|_, _| Answer::Status(200)).await.unwrap();
    let config = sink(&rx.url(), "");
    let a = node(&redis, &prefix, "wh-a", &config).await;
    let b = node(&redis, &prefix, "wh-b", &config).await;
    let lease_key = format!("GET {prefix}:{{wh:svc}}:lease");
    let holder = hubbub_tests::eventually("a lease holder", || async {
        let v = command(redis.port, &lease_key).await.ok()?;
        v.contains("wh-").then_some(v)
    })
    .await;
    let (mut victim, survivor) = if holder.contains("wh-a") {
        (a, b)
    } else {
        (b, a)
    };

    let topics = ["bookings:1", "bookings:2", "bookings:3", "bookings:4"];
    let per_topic = 150u64;
    let mut published = 0;
    for i in 0..per_topic / 2 {
        for t in topics {
            survivor.publish(t, "e", json!(i)).await.unwrap();
            published += 1;
        }
    }
    // Kill the delivering node as soon as deliveries flow.
    rx.wait_until(LONG, "deliveries to start", |r| r.len() >= 20)
        .await;
    let before_kill = rx.requests().len();
    std::process::Command::new("kill")
        .args(["-KILL", &victim.pid().unwrap().to_string()])
        .status()
        .unwrap();
    victim.wait_exit().await.unwrap();
    for i in per_topic / 2..per_topic {
        for t in topics {
            survivor.publish(t, "e", json!(i)).await.unwrap();
            published += 1;
        }
    }
    let got = rx
        .wait_until(LONG, "every publication delivered", |r| {
            r.iter()
                .filter(|r| r.succeeded())
                .map(|r| r.id.as_str())
                .collect::<HashSet<_>>()
                .len()
                >= published
        })
        .await;
    let (order, repeats) = first_successes(&got);
    for t in topics {
        assert_eq!(
            order[t],
            (1..=per_topic).collect::<Vec<_>>(),
            "{t}: every offset, in order"
        );
    }
    let mut bodies: HashMap<&str, &[u8]> = HashMap::new();
    for r in &got {
        let first = bodies.entry(&r.id).or_insert(&r.body);
        assert_eq!(
            *first,
            &r.body[..],
            "a re-sent delivery is the same delivery"
        );
    }
    eprintln!(
        "kill -9 result: {published} published, {before_kill} requests before the kill, {} requests in all, {repeats} re-sent after the takeover",
        got.len()
    );
    hubbub_tests::eventually("nothing pending", || async {
        (stat(&survivor, "pending").await == 0).then_some(())
    })
    .await;
    // The stream holds only what is pending: trimmed to (about) nothing.
    let len = hubbub_tests::eventually("the stream trimmed", || async {
        let v = command(redis.port, &format!("XLEN {prefix}:{{wh:svc}}:q"))
            .await
            .ok()?;
        let n: u64 = v.trim_start_matches(':').parse().ok()?;
        (n == 0).then_some(n)
    })
    .await;
    assert_eq!(len, 0);
}

#[tokio::test]
async fn dead_letters_replay_and_a_redis_restart_on_its_aof_loses_nothing_queued() {
    let mut redis = OwnRedis::start().await.unwrap();
    let prefix = unique_prefix("wh-aof");
    let rx = Receiver::with(|_, _| Answer::Status(500)).await.unwrap();
    let n = node(
        &redis,
        &prefix,
        "wh-aof-a",
        &sink(&rx.url(), "max_attempts = 2"),
    )
    .await;
    for i in 0..3 {
        n.publish("bookings:d", "e", json!(i)).await.unwrap();
    }
    hubbub_tests::eventually("3 dead letters", || async {
        (stat(&n, "dead").await == 3).then_some(())
    })
    .await;
    let dead: Value = n
        .get("/api/v1/webhooks/svc/dead")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dead_ids: Vec<String> = dead["dead"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["webhook_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(dead_ids.len(), 3);
    assert_eq!(dead["dead"][0]["attempts"], 2);
    assert_eq!(dead["dead"][0]["last_status"], 500);

    // Queued while the receiver is down: a node that retries only every 5 s
    // publishes them, and is killed; then Redis restarts from its AOF.
    drop(n);
    let patient = "max_attempts = 1000\nbackoff_min = \"5s\"\nbackoff_max = \"5s\"";
    let publisher = node(&redis, &prefix, "wh-aof-p", &sink(&rx.url(), patient)).await;
    for i in 0..20 {
        publisher
            .publish("bookings:q", "e", json!(i))
            .await
            .unwrap();
    }
    drop(publisher);
    redis.restart(true).await.unwrap();
    rx.set_policy(|_, _| Answer::Status(200));
    let n = node(
        &redis,
        &prefix,
        "wh-aof-b",
        &sink(&rx.url(), "max_attempts = 2"),
    )
    .await;
    let got = rx
        .wait_until(LONG, "20 queued deliveries after the restart", |r| {
            r.iter().filter(|r| r.succeeded()).count() >= 20
        })
        .await;
    let (order, _) = first_successes(&got);
    assert_eq!(order["bookings:q"], (1..=20).collect::<Vec<_>>());
    assert_eq!(
        stat(&n, "dead").await,
        3,
        "dead letters survive the restart"
    );

    let replayed: Value = n
        .post("/api/v1/webhooks/svc/dead/replay")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replayed["replayed"], 3);
    let got = rx
        .wait_until(LONG, "the replayed deliveries", |r| {
            r.iter().filter(|r| r.succeeded()).count() >= 23
        })
        .await;
    let replayed_ids: HashSet<String> = got
        .iter()
        .filter(|r| r.succeeded() && r.json()["topic"] == "bookings:d")
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(
        replayed_ids,
        dead_ids.into_iter().collect(),
        "replayed with their webhook-id"
    );
    assert_eq!(stat(&n, "dead").await, 0);
}

/// Every request carries the same body for the same webhook-id, and a valid signature.
fn same_body_per_id_and_signed(got: &[Request]) {
    let mut bodies: HashMap<&str, &[u8]> = HashMap::new();
    for r in got {
        let first = bodies.entry(&r.id).or_insert(&r.body);
        assert_eq!(
            *first,
            &r.body[..],
            "a re-sent delivery is the same delivery"
        );
        assert!(
            verify(SECRET, &r.id, &r.timestamp, &r.body, &r.signature),
            "{} is signed",
            r.id
        );
    }
}

async fn lease_holder(redis: &OwnRedis, prefix: &str) -> String {
    let lease_key = format!("GET {prefix}:{{wh:svc}}:lease");
    hubbub_tests::eventually("a lease holder", || async {
        let v = command(redis.port, &lease_key).await.ok()?;
        v.contains("wh-").then_some(v)
    })
    .await
}

#[tokio::test]
async fn three_nodes_kill_9_of_the_delivering_node_mid_stream_loses_nothing() {
    let redis = OwnRedis::start().await.unwrap();
    let prefix = unique_prefix("wh-kill3");
    let rx = Receiver::with(|_, _| Answer::Status(200)).await.unwrap();
    let config = sink(&rx.url(), "");
    let mut nodes = Vec::new();
    for name in ["wh-3a", "wh-3b", "wh-3c"] {
        nodes.push((name, node(&redis, &prefix, name, &config).await));
    }
    let holder = lease_holder(&redis, &prefix).await;
    let at = nodes
        .iter()
        .position(|(name, _)| holder.contains(name))
        .unwrap();
    let (victim_name, mut victim) = nodes.remove(at);
    let survivors: Vec<Node> = nodes.into_iter().map(|(_, n)| n).collect();

    let topics = [
        "bookings:1",
        "bookings:2",
        "bookings:3",
        "bookings:4",
        "bookings:5",
    ];
    let per_topic = 120u64;
    let mut published = 0;
    let publish_round = async |i: u64| {
        for (k, t) in topics.iter().enumerate() {
            // Publications come in through both survivors, in turn.
            survivors[(i as usize + k) % 2]
                .publish(t, "booking.created", json!({"i": i}))
                .await
                .unwrap();
        }
    };
    for i in 0..per_topic / 2 {
        publish_round(i).await;
        published += topics.len();
    }
    rx.wait_until(LONG, "deliveries to start", |r| r.len() >= 30)
        .await;
    let before_kill = rx.requests().len();
    std::process::Command::new("kill")
        .args(["-KILL", &victim.pid().unwrap().to_string()])
        .status()
        .unwrap();
    victim.wait_exit().await.unwrap();
    for i in per_topic / 2..per_topic {
        publish_round(i).await;
        published += topics.len();
    }
    let got = rx
        .wait_until(LONG, "every publication delivered", |r| {
            r.iter()
                .filter(|r| r.succeeded())
                .map(|r| r.id.as_str())
                .collect::<HashSet<_>>()
                .len()
                >= published
        })
        .await;
    assert!(
        before_kill < published,
        "the kill came mid-stream ({before_kill} of {published} delivered before it)"
    );
    let (order, repeats) = first_successes(&got);
    for t in topics {
        assert_eq!(
            order[t],
            (1..=per_topic).collect::<Vec<_>>(),
            "{t}: every offset, in order"
        );
    }
    same_body_per_id_and_signed(&got);
    let new_holder = lease_holder(&redis, &prefix).await;
    assert!(
        !new_holder.contains(victim_name),
        "a survivor took the lease"
    );
    eprintln!(
        "three-node kill -9 result: {published} published, {before_kill} requests before the kill of {victim_name}, {} requests in all, {repeats} re-sent after the takeover",
        got.len()
    );
    hubbub_tests::eventually("nothing pending", || async {
        (stat(&survivors[0], "pending").await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_receiver_down_through_many_retries_then_up_gets_everything_once_in_order_signed() {
    let redis = OwnRedis::start().await.unwrap();
    let prefix = unique_prefix("wh-down");
    let down = Arc::new(AtomicBool::new(true));
    let is_down = down.clone();
    let rx = Receiver::with(move |_, _| {
        if is_down.load(Ordering::SeqCst) {
            Answer::Status(503)
        } else {
            Answer::Status(204)
        }
    })
    .await
    .unwrap();
    let config = sink(
        &rx.url(),
        "max_attempts = 1000\nbackoff_min = \"5ms\"\nbackoff_max = \"50ms\"",
    );
    let a = node(&redis, &prefix, "wh-down-a", &config).await;
    let b = node(&redis, &prefix, "wh-down-b", &config).await;
    let topics = ["bookings:x", "bookings:y", "bookings:z"];
    let per_topic = 40u64;
    for i in 0..per_topic {
        for t in topics {
            let via = if i % 2 == 0 { &a } else { &b };
            via.publish(t, "booking.created", json!({"booking": i}))
                .await
                .unwrap();
        }
    }
    // Down until the head of every topic has been refused many times over.
    let attempts = 25;
    rx.wait_until(LONG, "many refused attempts per topic head", |r| {
        let mut per_id: HashMap<&str, usize> = HashMap::new();
        for r in r {
            *per_id.entry(&r.id).or_default() += 1;
        }
        per_id.values().filter(|&&n| n >= attempts).count() >= topics.len()
    })
    .await;
    assert!(rx.delivered().is_empty());
    assert_eq!(stat(&a, "dead").await, 0, "nothing dead-lettered");
    let refused = rx.requests().len();
    down.store(false, Ordering::SeqCst);
    let total = topics.len() * per_topic as usize;
    let got = rx
        .wait_until(LONG, "every publication after the receiver is up", |r| {
            r.iter()
                .filter(|r| r.succeeded())
                .map(|r| r.id.as_str())
                .collect::<HashSet<_>>()
                .len()
                >= total
        })
        .await;
    let (order, repeats) = first_successes(&got);
    for t in topics {
        assert_eq!(
            order[t],
            (1..=per_topic).collect::<Vec<_>>(),
            "{t}: every booking once, in order"
        );
    }
    same_body_per_id_and_signed(&got);
    for r in got.iter().filter(|r| r.succeeded()) {
        assert_eq!(r.json()["event"], "booking.created");
    }
    eprintln!(
        "receiver down: {refused} refused requests (>= {attempts} per topic head) before it came up; {total} delivered, {repeats} duplicate successes"
    );
    hubbub_tests::eventually("nothing pending", || async {
        (stat(&a, "pending").await == 0).then_some(())
    })
    .await;
}
