//! Issue 16, point 5 (memory engine): a node without Redis keeps at most
//! `memory.max_topics` topics and `memory.max_history_bytes` of history. A
//! publication beyond either is refused with `limit_exceeded` on the
//! WebSocket and on REST; nothing stored is dropped, other publications keep
//! working, and room comes back once history expires.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{Client, Node, Proto, eventually, start_node, token};
use serde_json::{Value, json};

/// Short retention, so expired history gives its room back within seconds.
const NAMESPACES: &str = r#"
[limits]
idempotency_window = "1s"

[namespaces.short]
history_size = 1000
history_ttl = "1s"
client_publish = true

[namespaces.nohist]
history_size = 0
"#;

/// A REST publish: the HTTP status and the body.
async fn rest_publish(node: &Node, topic: &str, data: Value) -> (u16, Value) {
    let resp = node
        .post("/api/v1/publish")
        .json(&json!({"topic": topic, "event": "e", "data": data}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_topic_beyond_max_topics_is_refused_until_the_others_expire() {
    let node = start_node!(&format!("[memory]\nmax_topics = 3\n{NAMESPACES}"))
        .await
        .unwrap();
    for t in ["short:a", "short:b", "short:c"] {
        assert_eq!(rest_publish(&node, t, json!(1)).await.0, 200, "{t}");
    }
    let (status, body) = rest_publish(&node, "short:d", json!(1)).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("limit_exceeded")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("memory.max_topics"),
        "the message names the key to raise: {body}"
    );

    let publisher = token("svc", &[], &["short:*"], 600);
    let (mut ws, _) = Client::connect(&node.ws_url(), Proto::Json, &publisher)
        .await
        .unwrap();
    let reply = ws
        .request(json!({"type": "publish", "topic": "short:e", "event": "e", "data": 1}))
        .await
        .unwrap();
    assert_eq!(
        (&reply["type"], &reply["code"]),
        (&json!("error"), &json!("limit_exceeded")),
        "{reply}"
    );
    // The topics already kept go on, and the connection is unharmed.
    let reply = ws
        .request(json!({"type": "publish", "topic": "short:a", "event": "e", "data": 2}))
        .await
        .unwrap();
    assert_eq!(reply["type"], "published", "{reply}");
    assert_eq!(reply["position"]["offset"], 2, "{reply}");
    assert_eq!(node.metric("hubbub_memory_topics").await.unwrap(), 3);

    // Once the three topics' history and idempotency windows (1 s) have
    // passed, a new topic is taken again.
    let node = &node;
    eventually(
        "a new topic accepted after the others expired",
        || async move { (rest_publish(node, "short:d", json!(1)).await.0 == 200).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn history_beyond_max_history_bytes_is_refused_and_nothing_stored_is_lost() {
    let node = start_node!(&format!(
        "[memory]\nmax_history_bytes = 65536\n{NAMESPACES}"
    ))
    .await
    .unwrap();
    let payload = json!("x".repeat(2048));
    let mut accepted = 0u64;
    let refused = loop {
        let (status, body) = rest_publish(&node, "short:big", payload.clone()).await;
        match status {
            200 => accepted += 1,
            _ => break body,
        }
        assert!(
            accepted < 1000,
            "64 KiB of history took 1000 × 2 KiB publications"
        );
    };
    assert_eq!(refused["error"]["code"], "limit_exceeded", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("memory.max_history_bytes"),
        "{refused}"
    );
    assert!(
        accepted >= 10,
        "only {accepted} publications of 2 KiB fit in 64 KiB"
    );
    let held = node.metric("hubbub_memory_history_bytes").await.unwrap();
    assert!(held <= 65_536, "holds {held} bytes, over the cap");

    // A topic that keeps no history still publishes; everything accepted is
    // still in history, in order, none dropped to make room.
    assert_eq!(rest_publish(&node, "nohist:x", json!(1)).await.0, 200);
    let history: Value = node
        .get("/api/v1/topics/short:big/history?limit=1000")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let offsets: Vec<u64> = history["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, (1..=accepted).collect::<Vec<_>>(), "{history}");

    // The WebSocket publisher gets the same answer.
    let publisher = token("svc", &[], &["short:*"], 600);
    let (mut ws, _) = Client::connect(&node.ws_url(), Proto::MsgPack, &publisher)
        .await
        .unwrap();
    let reply = ws
        .request(json!({"type": "publish", "topic": "short:big", "event": "e", "data": payload}))
        .await
        .unwrap();
    assert_eq!(reply["code"], "limit_exceeded", "{reply}");

    // After the history expires (1 s), there is room again.
    let (node, payload) = (&node, &payload);
    eventually("history accepted again after it expired", || async move {
        (rest_publish(node, "short:big", payload.clone()).await.0 == 200).then_some(())
    })
    .await;
}
