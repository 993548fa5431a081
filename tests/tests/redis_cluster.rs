//! The Redis engine on a real three-master Redis Cluster started by the test
//! on loopback ports: hash-tagged keys and sharded pub/sub put each topic on
//! one shard; topics spread over the shards still behave like one node.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::redis::{OwnCluster, command, unique_prefix};
use hubbub_tests::{Client, Proto, start_redis_node, token};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_a_three_master_cluster_behave_like_one() {
    let cluster = OwnCluster::start().await.unwrap();
    let prefix = unique_prefix("cluster");
    let a = start_redis_node!(&cluster.url(), &prefix, "cl-a")
        .await
        .unwrap();
    let b = start_redis_node!(&cluster.url(), &prefix, "cl-b")
        .await
        .unwrap();
    // Topics whose hash tags land on different shards.
    let topics: Vec<String> = (0..8).map(|i| format!("bookings:c{i}")).collect();
    let tok = token("u", &["bookings:*"], &[], 600);
    let (mut sub, _) = Client::connect(&a.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    for t in &topics {
        let r = sub.subscribe(t, None).await.unwrap();
        assert_eq!(r["type"], "subscribed", "{r}");
    }
    // Batch through node B (one pipeline across shards), then singles.
    let pubs: Vec<Value> = topics
        .iter()
        .map(|t| json!({"topic": t, "event": "e", "data": 1}))
        .collect();
    let r: Value = b
        .post("/api/v1/batch")
        .json(&json!({"publications": pubs}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for item in r["results"].as_array().unwrap() {
        assert_eq!(item["position"]["offset"], 1, "{r}");
    }
    for t in &topics {
        b.publish(t, "e", json!(2)).await.unwrap();
    }
    let mut seen: std::collections::HashMap<String, Vec<u64>> = Default::default();
    for _ in 0..topics.len() * 2 {
        let p = sub.next_of("pub").await.unwrap();
        seen.entry(p["topic"].as_str().unwrap().to_owned())
            .or_default()
            .push(p["offset"].as_u64().unwrap());
    }
    for t in &topics {
        assert_eq!(seen[t], vec![1, 2], "{t}");
    }
    for port in cluster.ports() {
        let keys = command(port, "DBSIZE").await.unwrap();
        assert_ne!(keys, ":0", "every shard holds some topics (port {port})");
    }
    // Recovery on the other node.
    let first = json!({"epoch": r["results"][0]["position"]["epoch"], "offset": 1});
    let (mut other, _) = Client::connect(&b.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let rec = other.subscribe(&topics[0], Some(&first)).await.unwrap();
    assert_eq!(rec["recovered"], true, "{rec}");
    assert_eq!(rec["publications"][0]["offset"], 2);
    // Idempotency across nodes.
    let key = |n: &hubbub_tests::Node| {
        n.post("/api/v1/publish")
            .json(&json!({"topic": topics[3], "event": "e", "data": 3, "idempotency_key": "k"}))
    };
    let p1: Value = key(&a).send().await.unwrap().json().await.unwrap();
    let p2: Value = key(&b).send().await.unwrap().json().await.unwrap();
    assert_eq!(p1, p2);
    assert_eq!(p1["position"]["offset"], 3);
    // Disconnect-by-user across nodes, through the cluster-wide control channel.
    let d: Value = b
        .post("/api/v1/disconnect")
        .json(&json!({"user": "u"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["disconnected"], 2, "{d}");
}
