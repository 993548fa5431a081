//! The guarantee: contiguous offsets delivered in order, recovery with
//! `since` (exactly the missed publications, or `recovered: false`),
//! idempotency, and JSON and MessagePack subscribers on one topic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{API_KEY, Client, Proto, start_node, token};
use serde_json::{Value, json};

fn offsets(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn concurrent_publishers_produce_contiguous_offsets_in_order() {
    let node = start_node!().await.unwrap();
    let tok = token("a", &["bookings:*"], &[], 600);
    let (mut json_sub, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let (mut mp_sub, _) = Client::connect(&node.ws_url(), Proto::MsgPack, &tok)
        .await
        .unwrap();
    json_sub.subscribe("bookings:race", None).await.unwrap();
    mp_sub.subscribe("bookings:race", None).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let url = node.url("/api/v1/publish");
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut got = Vec::new();
            for i in 0..25 {
                let r: Value = http
                    .post(&url)
                    .bearer_auth(API_KEY)
                    .json(
                        &json!({"topic": "bookings:race", "event": "e", "data": {"w": w, "i": i}}),
                    )
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                got.push(r["position"]["offset"].as_u64().unwrap());
            }
            got
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked.sort_unstable();
    assert_eq!(
        acked,
        (1..=200).collect::<Vec<_>>(),
        "every offset once, no gaps"
    );
    for sub in [&mut json_sub, &mut mp_sub] {
        let mut ids = std::collections::HashSet::new();
        for expected in 1..=200u64 {
            let p = sub.next_of("pub").await.unwrap();
            assert_eq!(p["offset"], expected, "delivered in offset order");
            assert_eq!(p["topic"], "bookings:race");
            assert_eq!(p["event"], "e");
            assert!(p["ts"].as_u64().unwrap() > 0);
            assert!(
                ids.insert(p["id"].as_str().unwrap().to_owned()),
                "publication ids are unique"
            );
        }
    }
}

#[tokio::test]
async fn recovery_delivers_exactly_the_missed_publications_then_live_ones() {
    let node = start_node!().await.unwrap();
    let tok = token("a", &["bookings:*"], &[], 600);
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let sub = c.subscribe("bookings:rec", None).await.unwrap();
    let epoch = sub["position"]["epoch"].clone();
    for i in 1..=3 {
        node.publish("bookings:rec", "e", json!(i)).await.unwrap();
    }
    for i in 1..=3 {
        assert_eq!(c.next_of("pub").await.unwrap()["offset"], i);
    }
    drop(c);
    for i in 4..=7 {
        node.publish("bookings:rec", "e", json!(i)).await.unwrap();
    }
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::MsgPack, &tok)
        .await
        .unwrap();
    // Publish concurrently with the re-subscription: still each offset exactly once, in order.
    let url = node.url("/api/v1/publish");
    let publisher = tokio::spawn(async move {
        let http = reqwest::Client::new();
        for i in 8..=30 {
            http.post(&url)
                .bearer_auth(API_KEY)
                .json(&json!({"topic": "bookings:rec", "event": "e", "data": i}))
                .send()
                .await
                .unwrap();
        }
    });
    let r = c
        .subscribe("bookings:rec", Some(&json!({"epoch": epoch, "offset": 3})))
        .await
        .unwrap();
    assert_eq!(r["type"], "subscribed", "{r}");
    assert_eq!(r["recovered"], true);
    let recovered = offsets(&r["publications"]);
    let top = r["position"]["offset"].as_u64().unwrap();
    assert_eq!(recovered, (4..=top).collect::<Vec<_>>());
    assert_eq!(r["publications"][0]["data"], 4);
    publisher.await.unwrap();
    for expected in top + 1..=30 {
        assert_eq!(c.next_of("pub").await.unwrap()["offset"], expected);
    }
    // Every publication was queued before the ping's reply, so a duplicate
    // would be buffered ahead of the pong.
    let pong = c.request(json!({"type": "ping"})).await.unwrap();
    assert_eq!(pong["type"], "pong");
    assert_eq!(c.buffered(), 0, "no duplicate after the live tail");
}

#[tokio::test]
async fn recovery_at_the_current_offset_is_recovered_and_empty() {
    let node = start_node!().await.unwrap();
    let pos = node.publish("bookings:cur", "e", json!(1)).await.unwrap();
    let (mut c, _) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("a", &["bookings:*"], &[], 600),
    )
    .await
    .unwrap();
    let r = c.subscribe("bookings:cur", Some(&pos)).await.unwrap();
    assert_eq!(r["recovered"], true);
    assert_eq!(r["publications"], json!([]));
}

#[tokio::test]
async fn trimmed_history_or_another_epoch_is_not_recovered() {
    let node = start_node!().await.unwrap();
    let tok = token("a", &["tiny:*", "nohist:*"], &[], 600);
    let first = node.publish("tiny:t", "e", json!(1)).await.unwrap();
    for i in 2..=6 {
        node.publish("tiny:t", "e", json!(i)).await.unwrap();
    }
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    // history_size = 3 keeps 4..6; since 1 needs 2 and 3.
    let r = c.subscribe("tiny:t", Some(&first)).await.unwrap();
    assert_eq!(r["recovered"], false, "{r}");
    assert_eq!(r["publications"], json!([]));
    assert_eq!(r["position"]["offset"], 6);
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let r = c
        .subscribe(
            "tiny:t",
            Some(&json!({"epoch": first["epoch"], "offset": 3})),
        )
        .await
        .unwrap();
    assert_eq!(r["recovered"], true);
    assert_eq!(offsets(&r["publications"]), vec![4, 5, 6]);
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let r = c
        .subscribe(
            "tiny:t",
            Some(&json!({"epoch": "another-epoch", "offset": 5})),
        )
        .await
        .unwrap();
    assert_eq!(r["recovered"], false);
    // history_size = 0: offsets still count; anything behind is unrecoverable.
    let p = node.publish("nohist:n", "e", json!(1)).await.unwrap();
    node.publish("nohist:n", "e", json!(2)).await.unwrap();
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let r = c.subscribe("nohist:n", Some(&p)).await.unwrap();
    assert_eq!(r["recovered"], false);
    assert_eq!(r["position"]["offset"], 2);
}

#[tokio::test]
async fn idempotency_key_returns_the_first_position_and_delivers_once() {
    let node = start_node!().await.unwrap();
    let (mut c, _) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("a", &["bookings:*"], &[], 600),
    )
    .await
    .unwrap();
    c.subscribe("bookings:idem", None).await.unwrap();
    let body = json!({"topic": "bookings:idem", "event": "payment.updated", "data": {"amount": 5}, "idempotency_key": "pay-1"});
    let mut positions = Vec::new();
    for _ in 0..3 {
        let r: Value = node
            .post("/api/v1/publish")
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        positions.push(r["position"].clone());
    }
    assert!(
        positions.iter().all(|p| *p == positions[0]),
        "{positions:?}"
    );
    node.publish("bookings:idem", "other", json!(null))
        .await
        .unwrap();
    let p = c.next_of("pub").await.unwrap();
    assert_eq!(
        (p["offset"].as_u64(), p["event"].as_str()),
        (Some(1), Some("payment.updated"))
    );
    let p = c.next_of("pub").await.unwrap();
    assert_eq!(
        (p["offset"].as_u64(), p["event"].as_str()),
        (Some(2), Some("other"))
    );
}

#[tokio::test]
async fn json_and_msgpack_subscribers_see_the_same_publication() {
    let node = start_node!().await.unwrap();
    let tok = token("a", &["chat:*"], &["chat:*"], 600);
    let (mut j, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let (mut m, _) = Client::connect(&node.ws_url(), Proto::MsgPack, &tok)
        .await
        .unwrap();
    j.subscribe("chat:mixed", None).await.unwrap();
    m.subscribe("chat:mixed", None).await.unwrap();
    let data = json!({"text": "héllo", "n": [1, 2.5, null, true], "nested": {"k": "v"}});
    let r = m
        .request(json!({"type": "publish", "topic": "chat:mixed", "event": "msg", "data": data}))
        .await
        .unwrap();
    assert_eq!(r["type"], "published");
    let pj = j.next_of("pub").await.unwrap();
    let pm = m.next_of("pub").await.unwrap();
    assert_eq!(pj, pm);
    assert_eq!(pj["data"], data);
}
