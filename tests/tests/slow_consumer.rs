//! A client that sends requests with large replies and never reads (issue 16
//! point 1): its outbox is bounded in bytes, its writer gives up after the
//! write timeout, and the hub closes it as a slow consumer (4101) with its
//! memory bounded, while other clients are unaffected.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use std::time::Duration;

use futures_util::SinkExt;
use hubbub_tests::{Client, Node, Proto, WAIT, eventually, start_node, token};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The node's resident set, in KiB.
fn rss_kib(node: &Node) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.pid().unwrap())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_as_slow_consumer_with_memory_bounded() {
    let node = start_node!("[limits]\nping_interval = \"1s\"\ncommand_rate = 0")
        .await
        .unwrap();
    let topic = "bookings:fat";
    // 100 publications of 2.5 KB: each `history` reply is about 250 KB.
    let pad = "x".repeat(2500);
    let pubs: Vec<Value> = (0..100)
        .map(|i| json!({"topic": topic, "event": "e", "data": {"n": i, "pad": pad}}))
        .collect();
    let resp = node
        .post("/api/v1/batch")
        .json(&json!({"publications": pubs}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let tok = token("slow", &["bookings:*"], &[], 600);
    let (mut neighbour, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    neighbour.subscribe(topic, None).await.unwrap();
    let before = rss_kib(&node);

    // A raw socket: connect, then only write.
    let req = node.ws_url().into_client_request().unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let connect = json!({"type": "connect", "id": 1, "token": tok}).to_string();
    ws.send(Message::text(connect)).await.unwrap();
    let attacker = tokio::spawn(async move {
        let mut sent = 0u32;
        for id in 2..2000u32 {
            let cmd = json!({"type": "history", "id": id, "topic": topic, "limit": 100});
            match tokio::time::timeout(
                Duration::from_secs(3),
                ws.send(Message::text(cmd.to_string())),
            )
            .await
            {
                Ok(Ok(())) => sent += 1,
                // Blocked (the hub stopped reading) or closed.
                _ => break,
            }
        }
        (sent, ws)
    });
    // Watch the hub's memory until it drops the client (or the deadline).
    let mut peak = before;
    let deadline = tokio::time::Instant::now() + 2 * WAIT;
    let dropped = loop {
        peak = peak.max(rss_kib(&node));
        let n = node
            .metric("hubbub_disconnects_total{code=\"4101\",reason=\"slow_consumer\"}")
            .await
            .unwrap_or(0);
        if n >= 1 || tokio::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (sent, _ws) = tokio::time::timeout(WAIT, attacker).await.unwrap().unwrap();
    let after = rss_kib(&node);
    eprintln!(
        "RSS before {before} KiB, peak {peak} KiB, at the end {after} KiB; \
         {sent} history requests sent; slow-consumer closes: {dropped}"
    );
    assert_eq!(
        dropped,
        1,
        "dropped as a slow consumer within {:?}",
        2 * WAIT
    );
    assert!(
        peak.saturating_sub(before) < 48 * 1024,
        "hub RSS grew by {} KiB (before {before}, peak {peak})",
        peak - before
    );
    eventually("the slow consumer to be unregistered", || async {
        (node.metric("hubbub_connections").await.ok()? == 1).then_some(())
    })
    .await;
    // The neighbour is unaffected.
    node.publish(topic, "after", json!(1)).await.unwrap();
    assert_eq!(neighbour.next_of("pub").await.unwrap()["event"], "after");
}
