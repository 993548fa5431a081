//! Every close code the contract lists that one node can trigger, each with
//! its `disconnect` frame, and a neighbouring connection that keeps working.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{Client, Closed, Proto, eventually, start_node, token};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn assert_closed(c: &Closed, code: u16, reason: &str, reconnect: bool) {
    assert_eq!(c.code, Some(code), "{c:?}");
    let d = c.disconnect.as_ref().expect("a disconnect frame");
    assert_eq!(d["type"], "disconnect");
    assert_eq!(d["code"], code);
    assert_eq!(d["reason"], reason);
    assert_eq!(d["reconnect"], reconnect);
}

#[tokio::test]
async fn protocol_error_4000_for_a_first_command_that_is_not_connect() {
    let node = start_node!().await.unwrap();
    let mut c = Client::open(&node.ws_url(), Proto::Json).await.unwrap();
    c.send(&json!({"type": "ping", "id": 1})).await.unwrap();
    assert_closed(&c.closed().await.unwrap(), 4000, "protocol_error", false);
}

#[tokio::test]
async fn protocol_error_4000_for_garbage_and_wrong_frame_kinds() {
    let node = start_node!().await.unwrap();
    let tok = token("a", &["bookings:*"], &[], 600);
    let (mut watcher, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    watcher.subscribe("bookings:n", None).await.unwrap();
    let garbage = [
        Message::text("{not json"),
        Message::text("[1,2,3]"),
        Message::binary(vec![1u8, 2, 3]),
    ];
    for (i, frame) in garbage.into_iter().enumerate() {
        let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
            .await
            .unwrap();
        c.send_raw(frame).await.unwrap();
        assert_closed(&c.closed().await.unwrap(), 4000, "protocol_error", false);
        node.publish("bookings:n", "e", json!(i)).await.unwrap();
        assert_eq!(
            watcher.next_of("pub").await.unwrap()["data"],
            json!(i),
            "the neighbour keeps receiving"
        );
    }
    let (mut m, _) = Client::connect(&node.ws_url(), Proto::MsgPack, &tok)
        .await
        .unwrap();
    m.send_raw(Message::text(r#"{"type":"ping","id":1}"#))
        .await
        .unwrap();
    assert_closed(&m.closed().await.unwrap(), 4000, "protocol_error", false);
}

#[tokio::test]
async fn unauthorized_4001_with_an_error_reply() {
    let node = start_node!().await.unwrap();
    let forged = {
        let good = token("a", &[], &[], 600);
        let (head, _) = good.rsplit_once('.').unwrap();
        format!("{head}.AAAA")
    };
    for bad in ["nope", forged.as_str(), ""] {
        let mut c = Client::open(&node.ws_url(), Proto::Json).await.unwrap();
        let reply = c
            .request(json!({"type": "connect", "token": bad}))
            .await
            .unwrap();
        assert_eq!(reply["type"], "error");
        assert_eq!(reply["code"], "unauthorized");
        assert_closed(&c.closed().await.unwrap(), 4001, "unauthorized", false);
    }
}

#[tokio::test]
async fn message_too_big_4009() {
    let node = start_node!("[limits]\nmax_frame_bytes = 4096")
        .await
        .unwrap();
    let tok = token("a", &["bookings:*"], &[], 600);
    let (mut watcher, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    watcher.subscribe("bookings:big", None).await.unwrap();
    // Just over the limit: read whole, refused with a clean close.
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    c.send(&json!({"type": "ping", "id": 1, "pad": "x".repeat(5_000)}))
        .await
        .unwrap();
    assert_closed(&c.closed().await.unwrap(), 4009, "message_too_big", false);
    // Far over it (more than twice the limit): refused from the frame header
    // without reading the payload. The `disconnect` frame says 4009; the close
    // frame may be lost to the TCP reset that unread input causes.
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    c.send(&json!({"type": "ping", "id": 1, "pad": "x".repeat(200_000)}))
        .await
        .unwrap();
    let closed = c.closed().await.unwrap();
    assert_eq!(
        closed.disconnect.as_ref().map(|d| d["code"].clone()),
        Some(json!(4009)),
        "{closed:?}"
    );
    assert!(matches!(closed.code, Some(4009) | None), "{closed:?}");
    node.publish("bookings:big", "e", json!("after"))
        .await
        .unwrap();
    assert_eq!(watcher.next_of("pub").await.unwrap()["data"], "after");
}

#[tokio::test]
async fn token_expired_4100_at_connect_and_without_refresh() {
    let node = start_node!().await.unwrap();
    let mut c = Client::open(&node.ws_url(), Proto::Json).await.unwrap();
    let reply = c
        .request(json!({"type": "connect", "token": token("a", &[], &[], -10)}))
        .await
        .unwrap();
    assert_eq!(reply["code"], "unauthorized");
    assert_closed(&c.closed().await.unwrap(), 4100, "token_expired", true);

    // A token that expires in 2 s and is never refreshed.
    let (mut c, reply) = Client::connect(&node.ws_url(), Proto::Json, &token("a", &[], &[], 2))
        .await
        .unwrap();
    assert!(reply["expires_in"].as_u64().unwrap() <= 2);
    assert_closed(&c.closed().await.unwrap(), 4100, "token_expired", true);
}

#[tokio::test]
async fn a_refreshed_token_outlives_the_first_one() {
    let node = start_node!().await.unwrap();
    let (mut c, _) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("a", &["bookings:*"], &[], 2),
    )
    .await
    .unwrap();
    c.request(json!({"type": "refresh", "token": token("a", &["bookings:*"], &[], 600)}))
        .await
        .unwrap();
    c.subscribe("bookings:r", None).await.unwrap();
    // Wait until the first token is certainly past its expiry, then prove the connection lives.
    let start = hubbub_tests::now();
    eventually("the first token's expiry to pass", || async {
        (hubbub_tests::now() > start + 3).then_some(())
    })
    .await;
    node.publish("bookings:r", "e", json!(1)).await.unwrap();
    assert_eq!(c.next_of("pub").await.unwrap()["data"], 1);
}

#[tokio::test]
async fn slow_consumer_4101_does_not_hold_back_its_neighbour() {
    let node = start_node!("[limits]\noutbox_size = 16\nmax_frame_bytes = 65536")
        .await
        .unwrap();
    let tok = token("a", &["bookings:*"], &[], 600);
    let (mut slow, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    slow.subscribe("bookings:flood", None).await.unwrap();
    let (mut fast, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    fast.subscribe("bookings:flood", None).await.unwrap();
    let payload = "x".repeat(60_000);
    let reader = tokio::spawn(async move {
        let mut last = 0;
        while last < 400 {
            let p = fast.next_of("pub").await.unwrap();
            last = p["offset"].as_u64().unwrap();
        }
        last
    });
    // `slow` reads nothing until the hub has cut it off; then it reads what
    // was already on its way, the `disconnect` frame and the close frame.
    let metrics_url = node.url("/metrics");
    let slow_side = tokio::spawn(async move {
        eventually("the slow consumer to be counted", || async {
            let text = reqwest::get(&metrics_url).await.ok()?.text().await.ok()?;
            text.lines()
                .any(|l| {
                    l.starts_with("hubbub_slow_consumer_disconnects_total ") && !l.ends_with(" 0")
                })
                .then_some(())
        })
        .await;
        slow.closed().await.unwrap()
    });
    for batch in 0..40 {
        let pubs: Vec<Value> = (0..10)
            .map(|i| json!({"topic": "bookings:flood", "event": "e", "data": {"i": batch * 10 + i, "pad": payload}}))
            .collect();
        let r = node
            .post("/api/v1/batch")
            .json(&json!({"publications": pubs}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    assert_eq!(
        reader.await.unwrap(),
        400,
        "the fast neighbour got everything"
    );
    assert_closed(&slow_side.await.unwrap(), 4101, "slow_consumer", true);
    assert_eq!(
        node.metric("hubbub_slow_consumer_disconnects_total")
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn connect_timeout_4104() {
    let node = start_node!("[limits]\nconnect_timeout = \"300ms\"")
        .await
        .unwrap();
    let mut c = Client::open(&node.ws_url(), Proto::Json).await.unwrap();
    assert_closed(&c.closed().await.unwrap(), 4104, "connect_timeout", true);
}

#[tokio::test]
async fn shutdown_4200_on_sigterm_and_the_process_exits() {
    let mut node = start_node!().await.unwrap();
    let tok = token("a", &["bookings:*"], &[], 600);
    let (mut a, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let (mut b, _) = Client::connect(&node.ws_url(), Proto::MsgPack, &tok)
        .await
        .unwrap();
    a.subscribe("bookings:s", None).await.unwrap();
    node.terminate().unwrap();
    assert_closed(&a.closed().await.unwrap(), 4200, "shutdown", true);
    assert_closed(&b.closed().await.unwrap(), 4200, "shutdown", true);
    let status = node.wait_exit().await.unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn disconnect_by_user_4201_reaches_only_that_user() {
    let node = start_node!().await.unwrap();
    let (mut a1, _) = Client::connect(&node.ws_url(), Proto::Json, &token("alice", &[], &[], 600))
        .await
        .unwrap();
    let (mut a2, _) = Client::connect(
        &node.ws_url(),
        Proto::MsgPack,
        &token("alice", &[], &[], 600),
    )
    .await
    .unwrap();
    let (mut b, _) = Client::connect(&node.ws_url(), Proto::Json, &token("bob", &[], &[], 600))
        .await
        .unwrap();
    let r: Value = node
        .post("/api/v1/disconnect")
        .json(&json!({"user": "alice"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r, json!({"disconnected": 2}));
    assert_closed(&a1.closed().await.unwrap(), 4201, "rebalance", true);
    assert_closed(&a2.closed().await.unwrap(), 4201, "rebalance", true);
    assert_eq!(
        b.request(json!({"type": "ping"})).await.unwrap()["type"],
        "pong"
    );
    let r: Value = node
        .post("/api/v1/disconnect")
        .json(&json!({"user": "bob", "reconnect": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["disconnected"], 1);
    assert_closed(&b.closed().await.unwrap(), 4003, "forbidden", false);
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_dropped() {
    let node = start_node!("[limits]\nping_interval = \"1s\"")
        .await
        .unwrap();
    let tok = token("quiet", &["bookings:*"], &[], 600);
    // A raw socket that authenticates and then never reads, so it never answers pings.
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    c.subscribe("bookings:q", None).await.unwrap();
    assert_eq!(node.metric("hubbub_connections").await.unwrap(), 1);
    let started = std::time::Instant::now();
    eventually("the silent peer to be dropped", || async {
        (node.metric("hubbub_connections").await.ok()? == 0).then_some(())
    })
    .await;
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "not before two ping intervals"
    );
    drop(c);
}

#[tokio::test]
async fn a_client_that_closes_first_gets_a_close_reply() {
    use futures_util::{SinkExt, StreamExt};
    let node = start_node!().await.unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(node.ws_url())
        .await
        .unwrap();
    let connect = json!({"type": "connect", "id": 1, "token": token("a", &[], &[], 600)});
    ws.send(Message::text(connect.to_string())).await.unwrap();
    let connected = ws.next().await.unwrap().unwrap();
    assert!(connected.to_text().unwrap().contains("connected"));
    ws.send(Message::Close(Some(
        tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 1000.into(),
            reason: "bye".into(),
        },
    )))
    .await
    .unwrap();
    let reply = tokio::time::timeout(hubbub_tests::WAIT, async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Close(frame)) => return Some(frame),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .unwrap();
    assert!(reply.is_some(), "the hub answered the close handshake");
}
