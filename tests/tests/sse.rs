//! `GET /sse`: recovered publications as `pub` events with ids, `reset` when
//! history is gone, `lastEventID` for reloaded pages, small ids with many
//! topics, REST-shaped errors, disconnects, and streams that stop reading.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::sse::{SseEvent, SseStream};
use hubbub_tests::{Node, eventually, start_node, token};
use serde_json::{Value, json};

fn sse_url(node: &Node, query: &str) -> String {
    node.url(&format!("/sse?{query}"))
}

#[tokio::test]
async fn subscribed_events_for_sdks_follow_the_recovered_pub_events() {
    let node = start_node!().await.unwrap();
    let tok = token("sam", &["bookings:*"], &[], 600);
    let url = sse_url(
        &node,
        &format!("topic=bookings:1&topic=bookings:2&token={tok}"),
    );
    let mut s = SseStream::open(&url, None).await.unwrap();
    let a = s.next_of("subscribed").await.unwrap();
    let b = s.next_of("subscribed").await.unwrap();
    assert_eq!(a.data["topic"], "bookings:1");
    assert_eq!(b.data["topic"], "bookings:2");
    assert!(a.data.get("recovered").is_none());
    // SSE is receive-only: it does not join presence (bookings has presence).
    let presence: Value = node
        .get("/api/v1/topics/bookings:1/presence")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(presence["members"], json!([]), "{presence}");
    let p1 = node
        .publish("bookings:2", "booking.created", json!({"id": 2}))
        .await
        .unwrap();
    let e1 = s.next_of("pub").await.unwrap();
    assert_eq!(
        e1.data,
        json!({"type": "pub", "topic": "bookings:2", "offset": 1, "event": "booking.created",
               "data": {"id": 2}, "ts": e1.data["ts"], "id": e1.data["id"]})
    );
    assert_eq!(p1["offset"], 1);
    let id = e1.id.clone().unwrap();
    drop(s);

    for n in 2..=4 {
        node.publish("bookings:2", "booking.updated", json!({"n": n}))
            .await
            .unwrap();
    }
    let mut s = SseStream::open(&url, Some(&id)).await.unwrap();
    let mut order = Vec::new();
    while order.len() < 5 {
        let e = s.next().await.unwrap().unwrap();
        if e.event == "subscribed" {
            assert_eq!(e.data["recovered"], true, "{:?}", e.data);
            assert_eq!(e.data["publications"], json!([]), "{:?}", e.data);
            if e.data["topic"] == "bookings:2" {
                assert_eq!(e.data["position"]["epoch"], p1["epoch"]);
            }
        }
        order.push(format!(
            "{} {} {}",
            e.event, e.data["topic"], e.data["offset"]
        ));
    }
    assert_eq!(
        order,
        vec![
            r#"subscribed "bookings:1" null"#,
            r#"pub "bookings:2" 2"#,
            r#"pub "bookings:2" 3"#,
            r#"pub "bookings:2" 4"#,
            r#"subscribed "bookings:2" null"#,
        ]
    );
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
    let reset = s.next().await.unwrap().unwrap();
    assert_eq!(reset.event, "reset");
    assert_eq!(reset.data["topic"], "bookings:9");
    assert_eq!(reset.data["position"]["offset"], 1);
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

// ---- issue 15: a plain EventSource page never misses a publication silently ----

/// Reads events until `n` `pub` events arrived; returns them with the other
/// events seen on the way.
async fn pubs(s: &mut SseStream, n: usize) -> (Vec<SseEvent>, Vec<SseEvent>) {
    let (mut pubs, mut other) = (Vec::new(), Vec::new());
    while pubs.len() < n {
        let e = s.next().await.unwrap().expect("stream ended");
        if e.event == "pub" {
            pubs.push(e);
        } else {
            other.push(e);
        }
    }
    (pubs, other)
}

fn offsets(events: &[SseEvent], topic: &str) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.data["topic"] == topic)
        .map(|e| e.data["offset"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn missed_publications_arrive_as_pub_events_with_ids_before_live_ones() {
    let node = start_node!().await.unwrap();
    let tok = token("sam", &["bookings:*"], &[], 600);
    let url = sse_url(
        &node,
        &format!("topic=bookings:1&topic=bookings:2&token={tok}"),
    );
    let mut s = SseStream::open(&url, None).await.unwrap();
    node.publish("bookings:1", "e", json!({"n": 1}))
        .await
        .unwrap();
    let (first, _) = pubs(&mut s, 1).await;
    let id = first[0].id.clone().expect("a pub event has an id");
    drop(s);

    for n in 1..=3 {
        node.publish("bookings:2", "e", json!({"n": n}))
            .await
            .unwrap();
    }
    node.publish("bookings:1", "e", json!({"n": 2}))
        .await
        .unwrap();
    let mut s = SseStream::open(&url, Some(&id)).await.unwrap();
    node.publish("bookings:2", "e", json!({"n": 4}))
        .await
        .unwrap();
    let (got, _) = pubs(&mut s, 5).await;
    assert_eq!(offsets(&got, "bookings:2"), vec![1, 2, 3, 4], "{got:?}");
    assert_eq!(offsets(&got, "bookings:1"), vec![2], "{got:?}");
    for e in &got {
        assert_eq!(e.data["type"], "pub");
        assert!(e.id.as_deref().is_some_and(|i| !i.is_empty()), "{e:?}");
    }
    // Resuming from the id of any event gives exactly what followed it.
    let third = got.iter().position(|e| e.data["offset"] == 3).unwrap();
    let id = got[third].id.clone().unwrap();
    drop(s);
    let mut s = SseStream::open(&url, Some(&id)).await.unwrap();
    node.publish("bookings:1", "e", json!({"n": 3}))
        .await
        .unwrap();
    let (after, _) = pubs(&mut s, got.len() - third).await;
    let expected: Vec<(String, u64)> = got[third + 1..]
        .iter()
        .map(|e| {
            (
                e.data["topic"].as_str().unwrap().to_owned(),
                e.data["offset"].as_u64().unwrap(),
            )
        })
        .chain([("bookings:1".to_owned(), 3)])
        .collect();
    let mut seen: Vec<(String, u64)> = after
        .iter()
        .map(|e| {
            (
                e.data["topic"].as_str().unwrap().to_owned(),
                e.data["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut expected_sorted = expected.clone();
    seen.sort();
    expected_sorted.sort();
    assert_eq!(seen, expected_sorted);
}

#[tokio::test]
async fn a_reloaded_page_resumes_from_the_last_event_id_query_parameter() {
    let node = start_node!().await.unwrap();
    let tok = token("sam", &["bookings:*"], &[], 600);
    let url = sse_url(&node, &format!("topic=bookings:7&token={tok}"));
    let mut s = SseStream::open(&url, None).await.unwrap();
    node.publish("bookings:7", "e", json!(1)).await.unwrap();
    let (first, _) = pubs(&mut s, 1).await;
    let id = first[0].id.clone().unwrap();
    drop(s);
    node.publish("bookings:7", "e", json!(2)).await.unwrap();
    node.publish("bookings:7", "e", json!(3)).await.unwrap();

    let stored = form_urlencoded_byte(&id);
    let mut s = SseStream::open(&format!("{url}&lastEventID={stored}"), None)
        .await
        .unwrap();
    let (got, _) = pubs(&mut s, 2).await;
    assert_eq!(offsets(&got, "bookings:7"), vec![2, 3]);
    drop(s);

    // The header wins over the query parameter.
    let mut s = SseStream::open(&format!("{url}&lastEventID={stored}"), got[0].id.as_deref())
        .await
        .unwrap();
    node.publish("bookings:7", "e", json!(4)).await.unwrap();
    let (got, _) = pubs(&mut s, 2).await;
    assert_eq!(offsets(&got, "bookings:7"), vec![3, 4]);
}

fn form_urlencoded_byte(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn ids_stay_small_and_resume_every_topic_with_many_long_topic_names() {
    let node = start_node!().await.unwrap();
    let tok = token("sam", &["bookings:*"], &[], 600);
    let topics: Vec<String> = (0..250)
        .map(|i| format!("bookings:{i:03}-{}", "x".repeat(240)))
        .collect();
    let mut query: String = topics.iter().map(|t| format!("topic={t}&")).collect();
    query.push_str(&format!("token={tok}"));
    let url = sse_url(&node, &query);
    let mut s = SseStream::open(&url, None).await.unwrap();
    node.publish(&topics[0], "e", json!(1)).await.unwrap();
    let (first, _) = pubs(&mut s, 1).await;
    let id = first[0].id.clone().unwrap();
    assert!(id.len() <= 1024, "{} bytes: {id}", id.len());
    drop(s);

    for t in [&topics[0], &topics[100], &topics[249], &topics[100]] {
        node.publish(t, "e", json!(2)).await.unwrap();
    }
    let mut s = SseStream::open(&url, Some(&id)).await.unwrap();
    let (got, other) = pubs(&mut s, 4).await;
    assert!(other.iter().all(|e| e.event != "reset"), "{other:?}");
    assert_eq!(offsets(&got, &topics[0]), vec![2]);
    assert_eq!(offsets(&got, &topics[100]), vec![1, 2]);
    assert_eq!(offsets(&got, &topics[249]), vec![1]);
    let last = got.last().unwrap().id.clone().unwrap();
    assert!(last.len() <= 1024, "{} bytes", last.len());
}

#[tokio::test]
async fn lost_history_is_an_event_a_plain_page_can_act_on() {
    let node = start_node!().await.unwrap();
    let tok = token("sam", &["tiny:*"], &[], 600);
    let url = sse_url(&node, &format!("topic=tiny:1&topic=tiny:2&token={tok}"));
    let mut s = SseStream::open(&url, None).await.unwrap();
    node.publish("tiny:1", "e", json!(1)).await.unwrap();
    let (first, _) = pubs(&mut s, 1).await;
    let id = first[0].id.clone().unwrap();
    drop(s);
    // tiny keeps 3 publications: 2..=6 cannot all be recovered.
    for n in 2..=6 {
        node.publish("tiny:1", "e", json!(n)).await.unwrap();
    }
    let mut s = SseStream::open(&url, Some(&id)).await.unwrap();
    let reset = s.next_of("reset").await.unwrap();
    assert_eq!(reset.data["topic"], "tiny:1", "{:?}", reset.data);
    assert_eq!(reset.data["position"]["offset"], 6);
    node.publish("tiny:1", "e", json!(7)).await.unwrap();
    let (got, _) = pubs(&mut s, 1).await;
    assert_eq!(offsets(&got, "tiny:1"), vec![7]);
    // After the reset, its id resumes from the new position.
    drop(s);
    node.publish("tiny:1", "e", json!(8)).await.unwrap();
    let mut s = SseStream::open(&url, got[0].id.as_deref()).await.unwrap();
    let (got, other) = pubs(&mut s, 1).await;
    assert_eq!(offsets(&got, "tiny:1"), vec![8]);
    assert!(other.iter().all(|e| e.event != "reset"), "{other:?}");
}

/// Opens `/sse` on a socket with a tiny receive buffer and never reads the body.
async fn stalled_stream(node: &Node, query: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr: std::net::SocketAddr = node
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET /sse?{query} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    tcp
}

async fn connections(node: &Node) -> u64 {
    node.metric("hubbub_connections").await.unwrap()
}

#[tokio::test]
async fn a_stream_whose_client_stops_reading_is_dropped_as_a_slow_consumer() {
    let node = start_node!("[limits]\noutbox_size = 16\n").await.unwrap();
    let tok = token("sam", &["bookings:*"], &[], 600);
    let _tcp = stalled_stream(&node, &format!("topic=bookings:slow&token={tok}")).await;
    eventually("the stream registers", || async {
        (connections(&node).await == 1).then_some(())
    })
    .await;
    let big = "x".repeat(48 * 1024);
    for _ in 0..400 {
        node.publish("bookings:slow", "e", json!(big))
            .await
            .unwrap();
        if node
            .metric("hubbub_slow_consumer_disconnects_total")
            .await
            .unwrap()
            > 0
        {
            break;
        }
    }
    assert_eq!(
        node.metric("hubbub_slow_consumer_disconnects_total")
            .await
            .unwrap(),
        1
    );
    eventually("the slow stream gives back its slot", || async {
        (connections(&node).await == 0 && node.metric("hubbub_subscriptions").await.unwrap() == 0)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_stalled_stream_ends_when_its_token_expires() {
    // Room for everything below in the outbox: this is about expiry, not a slow consumer.
    let node = start_node!("[limits]\noutbox_bytes = 67108864\n")
        .await
        .unwrap();
    let tok = token("sam", &["bookings:*"], &[], 6);
    let _tcp = stalled_stream(&node, &format!("topic=bookings:stall&token={tok}")).await;
    eventually("the stream registers", || async {
        (connections(&node).await == 1).then_some(())
    })
    .await;
    // Fill the socket and the server's buffers, not the outbox (1024 frames).
    let big = "x".repeat(48 * 1024);
    for _ in 0..200 {
        node.publish("bookings:stall", "e", json!(big))
            .await
            .unwrap();
    }
    assert_eq!(
        node.metric("hubbub_slow_consumer_disconnects_total")
            .await
            .unwrap(),
        0
    );
    eventually("the expired stream gives back its slot", || async {
        (connections(&node).await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn latest_starts_a_topic_with_its_newest_publication_as_a_pub_event() {
    let node = start_node!().await.unwrap();
    let tok = token("sam", &["bookings:*"], &[], 600);
    for n in 1..=3 {
        node.publish("bookings:L", "e", json!(n)).await.unwrap();
    }
    let url = sse_url(
        &node,
        &format!("topic=bookings:L&topic=bookings:empty&token={tok}&latest=1"),
    );
    let mut s = SseStream::open(&url, None).await.unwrap();
    let (got, other) = pubs(&mut s, 1).await;
    assert_eq!(offsets(&got, "bookings:L"), vec![3]);
    assert_eq!(got[0].data["data"], json!(3));
    assert!(other.iter().all(|e| e.event == "subscribed"), "{other:?}");
    let id = got[0].id.clone().unwrap();
    drop(s);
    node.publish("bookings:L", "e", json!(4)).await.unwrap();
    // Resuming from an id: `latest` applies only to topics without a position.
    let mut s = SseStream::open(&url, Some(&id)).await.unwrap();
    let (got, _) = pubs(&mut s, 1).await;
    assert_eq!(offsets(&got, "bookings:L"), vec![4]);
    let resp = node
        .http()
        .get(sse_url(
            &node,
            &format!("topic=bookings:L&token={tok}&latest=yes"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}
