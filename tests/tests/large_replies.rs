//! Replies larger than a socket's write buffer (issue 9 part 3): a
//! `history` of 1,000 publications of 3 KB and a recovery (`subscribe` with
//! `since`) of the same 1,000 both arrive whole, in order, on the JSON and
//! the MessagePack sub-protocols, and the connection stays usable.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{Client, Node, Proto, start_node, token};
use serde_json::{Value, json};

const COUNT: u64 = 1000;
const DATA_BYTES: usize = 3 * 1024;

async fn fill(node: &Node, topic: &str) -> Value {
    let data = "x".repeat(DATA_BYTES);
    let mut last = Value::Null;
    for chunk in 0..COUNT / 100 {
        let pubs: Vec<Value> = (0..100)
            .map(|i| json!({"topic": topic, "event": "e", "data": {"n": chunk * 100 + i, "pad": data}}))
            .collect();
        let resp = node
            .post("/api/v1/batch")
            .json(&json!({"publications": pubs}))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let body: Value = resp.json().await.unwrap();
        last = body["results"][99]["position"].clone();
        assert!(last.is_object(), "{body}");
    }
    assert_eq!(last["offset"], COUNT);
    last
}

fn offsets(pubs: &Value) -> Vec<u64> {
    pubs.as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect()
}

async fn check(node: &Node, proto: Proto, topic: &str, position: &Value) {
    let tok = token("big", &["bookings:*"], &[], 600);
    let (mut c, _) = Client::connect(&node.ws_url(), proto, &tok).await.unwrap();
    let h = c
        .request(json!({"type": "history", "topic": topic, "limit": 1000}))
        .await
        .unwrap();
    assert_eq!(h["type"], "history", "{proto:?}: {}", h["type"]);
    assert_eq!(offsets(&h["publications"]), (1..=COUNT).collect::<Vec<_>>());
    assert_eq!(
        h["publications"][0]["data"]["pad"].as_str().unwrap().len(),
        DATA_BYTES
    );

    let since = json!({"epoch": position["epoch"], "offset": 0});
    let r = c.subscribe(topic, Some(&since)).await.unwrap();
    assert_eq!(r["type"], "subscribed", "{proto:?}: {}", r["type"]);
    assert_eq!(r["recovered"], true);
    assert_eq!(r["position"]["offset"], COUNT);
    assert_eq!(offsets(&r["publications"]), (1..=COUNT).collect::<Vec<_>>());

    // Still usable: a live publication follows the recovery.
    node.publish(topic, "live", json!(1)).await.unwrap();
    let live = c.next_of("pub").await.unwrap();
    assert_eq!(live["event"], "live");
    assert_eq!(
        c.request(json!({"type": "ping"})).await.unwrap()["type"],
        "pong"
    );
}

#[tokio::test]
async fn a_history_and_a_recovery_of_1000_x_3kb_arrive_whole_on_json() {
    let node = start_node!().await.unwrap();
    let position = fill(&node, "bookings:bigjson").await;
    check(&node, Proto::Json, "bookings:bigjson", &position).await;
}

#[tokio::test]
async fn a_history_and_a_recovery_of_1000_x_3kb_arrive_whole_on_msgpack() {
    let node = start_node!().await.unwrap();
    let position = fill(&node, "bookings:bigmp").await;
    check(&node, Proto::MsgPack, "bookings:bigmp", &position).await;
}
