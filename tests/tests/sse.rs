//! `GET /sse`: subscribed and pub events with position ids, recovery through
//! `Last-Event-ID`, errors as REST-shaped JSON, and disconnects.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::sse::SseStream;
use hubbub_tests::{Node, start_node, token};
use serde_json::{Value, json};

fn sse_url(node: &Node, query: &str) -> String {
    node.url(&format!("/sse?{query}"))
}

#[tokio::test]
async fn events_carry_every_topic_position_and_resume_from_last_event_id() {
    let node = start_node!().await.unwrap();
    let tok = token("sam", &["bookings:*"], &[], 600);
    let url = sse_url(
        &node,
        &format!("topic=bookings:1&topic=bookings:2&token={tok}"),
    );
    let mut s = SseStream::open(&url, None).await.unwrap();
    let a = s.next_of("subscribed").await.unwrap();
    let b = s.next_of("subscribed").await.unwrap();
    let mut topics = vec![
        a.data["topic"].as_str().unwrap().to_owned(),
        b.data["topic"].as_str().unwrap().to_owned(),
    ];
    topics.sort();
    assert_eq!(topics, vec!["bookings:1", "bookings:2"]);
    assert!(a.data.get("recovered").is_none());
    node.publish("bookings:1", "booking.created", json!({"id": 1}))
        .await
        .unwrap();
    let p1 = node
        .publish("bookings:2", "booking.created", json!({"id": 2}))
        .await
        .unwrap();
    let e1 = s.next_of("pub").await.unwrap();
    assert_eq!(e1.data["type"], "pub");
    assert_eq!(e1.data["topic"], "bookings:1");
    assert_eq!(e1.data["data"], json!({"id": 1}));
    let e2 = s.next_of("pub").await.unwrap();
    let id = e2.id.clone().unwrap();
    let epoch = p1["epoch"].as_str().unwrap();
    assert!(id.contains("bookings:1|") && id.contains("|1"), "{id}");
    assert!(id.contains(&format!("bookings:2|{epoch}|1")), "{id}");
    drop(s);

    for n in 2..=4 {
        node.publish("bookings:2", "booking.updated", json!({"n": n}))
            .await
            .unwrap();
    }
    let mut s = SseStream::open(&url, Some(&id)).await.unwrap();
    let mut recovered: Vec<u64> = Vec::new();
    for _ in 0..2 {
        let sub = s.next_of("subscribed").await.unwrap();
        assert_eq!(sub.data["recovered"], true, "{:?}", sub.data);
        if sub.data["topic"] == "bookings:2" {
            recovered = sub.data["publications"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["offset"].as_u64().unwrap())
                .collect();
        } else {
            assert_eq!(sub.data["publications"], json!([]));
        }
    }
    assert_eq!(recovered, vec![2, 3, 4]);
    node.publish("bookings:2", "booking.updated", json!({"n": 5}))
        .await
        .unwrap();
    let live = s.next_of("pub").await.unwrap();
    assert_eq!(live.data["offset"], 5);
    assert!(live.id.unwrap().contains(&format!("bookings:2|{epoch}|5")));
}

#[tokio::test]
async fn an_unrecoverable_position_says_recovered_false() {
    let node = start_node!().await.unwrap();
    let tok = token("sam", &["bookings:*"], &[], 600);
    node.publish("bookings:9", "e", json!(1)).await.unwrap();
    let url = sse_url(
        &node,
        &format!("topic=bookings:9&token={tok}&since=bookings:9|other-epoch|1"),
    );
    let mut s = SseStream::open(&url, None).await.unwrap();
    let sub = s.next_of("subscribed").await.unwrap();
    assert_eq!(sub.data["recovered"], false);
    assert_eq!(sub.data["position"]["offset"], 1);
}

#[tokio::test]
async fn errors_are_json_with_rest_statuses() {
    let node = start_node!().await.unwrap();
    let tok = token("sam", &["bookings:*"], &[], 600);
    let cases = [
        ("topic=bookings:1".to_owned(), 401, "unauthorized"),
        (
            "topic=bookings:1&token=garbage".to_owned(),
            401,
            "unauthorized",
        ),
        (
            format!(
                "topic=bookings:1&token={}",
                token("sam", &["bookings:*"], &[], -5)
            ),
            401,
            "unauthorized",
        ),
        (format!("token={tok}"), 400, "bad_request"),
        (
            format!("topic=nowhere:1&token={tok}"),
            404,
            "unknown_namespace",
        ),
        (
            format!("topic=bad%20topic&token={tok}"),
            400,
            "invalid_topic",
        ),
        (format!("topic=chat:1&token={tok}"), 403, "forbidden"),
        (
            format!("topic=bookings:1&token={tok}&since=nonsense"),
            400,
            "bad_request",
        ),
        (
            format!("topic=bookings:1&token={tok}&colour=blue"),
            400,
            "bad_request",
        ),
    ];
    for (query, status, code) in cases {
        let resp = node
            .http()
            .get(sse_url(&node, &query))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{query}");
    }
}

#[tokio::test]
async fn disconnect_by_user_ends_the_stream_with_a_disconnect_event() {
    let node = start_node!().await.unwrap();
    let tok = token("sue", &[], &[], 600);
    let mut s = SseStream::open(
        &sse_url(&node, &format!("topic=public:x&token={tok}")),
        None,
    )
    .await
    .unwrap();
    s.next_of("subscribed").await.unwrap();
    let r: Value = node
        .post("/api/v1/disconnect")
        .json(&json!({"user": "sue"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["disconnected"], 1);
    let bye = s.next_of("disconnect").await.unwrap();
    assert_eq!(
        bye.data,
        json!({"type": "disconnect", "code": 4201, "reason": "rebalance", "reconnect": true})
    );
    assert_eq!(s.next().await.unwrap(), None, "the stream ends");
}

#[tokio::test]
async fn an_sse_stream_expires_with_its_token() {
    let node = start_node!().await.unwrap();
    let tok = token("sue", &[], &[], 2);
    let mut s = SseStream::open(
        &sse_url(&node, &format!("topic=public:x&token={tok}")),
        None,
    )
    .await
    .unwrap();
    let bye = s.next_of("disconnect").await.unwrap();
    assert_eq!(bye.data["code"], 4100);
}
