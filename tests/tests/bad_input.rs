//! Bad input on one connection: it gets the contract's error (a `bad_request`
//! reply when the frame is a message object, a 4000 close when it is not),
//! and a neighbouring subscriber keeps receiving everything, in order.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{Client, Proto, start_node, token};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn malformed_commands_get_bad_request_and_the_connection_goes_on() {
    let node = start_node!().await.unwrap();
    let tok = token("a", &["bookings:*", "chat:*"], &["chat:*"], 600);
    let (mut neighbour, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    neighbour.subscribe("bookings:n", None).await.unwrap();
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let cases: Vec<(Value, Option<u64>)> = vec![
        (json!({"type": "teleport", "id": 1}), Some(1)),
        (json!({"type": "subscribe", "id": 2, "topic": 42}), Some(2)),
        (json!({"type": "subscribe", "id": 3}), Some(3)),
        (
            json!({"type": "publish", "id": 4, "topic": "chat:x", "event": ["e"], "data": 1}),
            Some(4),
        ),
        (
            json!({"type": "history", "id": 5, "topic": "bookings:n", "limit": "ten"}),
            Some(5),
        ),
        (
            json!({"type": "subscribe", "id": 6, "topic": "bookings:n", "since": {"epoch": 1, "offset": "x"}}),
            Some(6),
        ),
        (json!({"type": "ping", "id": 4294967296u64}), None),
        (json!({"type": "ping", "id": "seven"}), None),
        (json!({"id": 8}), Some(8)),
        (json!({}), None),
    ];
    for (i, (cmd, id)) in cases.into_iter().enumerate() {
        c.send(&cmd).await.unwrap();
        let reply = c.next().await.unwrap();
        assert_eq!(reply["type"], "error", "{cmd} → {reply}");
        assert_eq!(reply["code"], "bad_request", "{cmd} → {reply}");
        assert_eq!(reply["id"].as_u64(), id, "{cmd} → {reply}");
        node.publish("bookings:n", "e", json!(i)).await.unwrap();
        assert_eq!(neighbour.next_of("pub").await.unwrap()["data"], json!(i));
    }
    assert_eq!(
        c.request(json!({"type": "ping"})).await.unwrap()["type"],
        "pong",
        "still connected"
    );
    assert_eq!(
        node.metric("hubbub_errors_total{code=\"bad_request\"}")
            .await
            .unwrap(),
        10
    );
}

#[tokio::test]
async fn msgpack_data_that_json_cannot_carry_is_refused() {
    let node = start_node!().await.unwrap();
    let tok = token("a", &["chat:*"], &["chat:*"], 600);
    let (mut j, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    j.subscribe("chat:bin", None).await.unwrap();
    let (mut m, _) = Client::connect(&node.ws_url(), Proto::MsgPack, &tok)
        .await
        .unwrap();
    // A MessagePack map whose `data` is binary: no JSON subscriber could decode it.
    let mut frame = Vec::new();
    rmp::encode::write_map_len(&mut frame, 5).unwrap();
    for (k, v) in [("type", "publish"), ("topic", "chat:bin"), ("event", "e")] {
        rmp::encode::write_str(&mut frame, k).unwrap();
        rmp::encode::write_str(&mut frame, v).unwrap();
    }
    rmp::encode::write_str(&mut frame, "id").unwrap();
    rmp::encode::write_uint(&mut frame, 9).unwrap();
    rmp::encode::write_str(&mut frame, "data").unwrap();
    rmp::encode::write_bin(&mut frame, &[0, 159, 146, 150]).unwrap();
    m.send_raw(Message::binary(frame)).await.unwrap();
    let reply = m.next().await.unwrap();
    assert_eq!(
        (reply["code"].as_str(), reply["id"].as_u64()),
        (Some("bad_request"), Some(9)),
        "{reply}"
    );
    let ok = m
        .request(json!({"type": "publish", "topic": "chat:bin", "event": "e", "data": [1, 2]}))
        .await
        .unwrap();
    assert_eq!(ok["type"], "published");
    assert_eq!(
        j.next_of("pub").await.unwrap()["offset"],
        1,
        "only the valid publication was accepted"
    );
}

#[tokio::test]
async fn unknown_topics_and_namespaces_do_not_disturb_others() {
    let node = start_node!().await.unwrap();
    let tok = token("a", &["*"], &["*"], 600);
    let (mut neighbour, _) = Client::connect(&node.ws_url(), Proto::MsgPack, &tok)
        .await
        .unwrap();
    neighbour.subscribe("chat:ok", None).await.unwrap();
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    for topic in [
        "ghost:1",
        "chat:",
        ":x",
        "chat:a b",
        "chat:ä",
        "chat:*",
        &"c".repeat(300),
    ] {
        let r = c.subscribe(topic, None).await.unwrap();
        assert_eq!(r["type"], "error", "{topic}");
        assert!(
            r["code"] == "invalid_topic" || r["code"] == "unknown_namespace",
            "{topic}: {r}"
        );
        let r = c
            .request(json!({"type": "publish", "topic": topic, "event": "e", "data": 1}))
            .await
            .unwrap();
        assert!(
            r["code"] == "invalid_topic" || r["code"] == "unknown_namespace",
            "{topic}: {r}"
        );
    }
    let r = c
        .request(json!({"type": "publish", "topic": "chat:ok", "event": "e", "data": 1}))
        .await
        .unwrap();
    assert_eq!(r["position"]["offset"], 1);
    assert_eq!(neighbour.next_of("pub").await.unwrap()["offset"], 1);
}

#[tokio::test]
async fn deeply_nested_frames_close_that_connection_and_the_node_lives_on() {
    // Found while writing the fuzz targets: 1000 nested MessagePack arrays (a 1 KiB frame) used to
    // overflow a worker's stack and abort the whole node.
    let node = start_node!().await.unwrap();
    let tok = token("a", &["bookings:*", "chat:*"], &["chat:*"], 600);
    let (mut neighbour, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    neighbour.subscribe("bookings:deep", None).await.unwrap();
    let head = json!({"type": "publish", "id": 1, "topic": "chat:deep", "event": "e"});
    let mut msgpack = rmp_serde::to_vec_named(&head).unwrap();
    msgpack[0] += 1; // a fifth map entry: `data`
    msgpack.extend_from_slice(b"\xa4data");
    msgpack.extend(std::iter::repeat_n(0x91u8, 1000));
    msgpack.push(0xc0);
    let json = format!(
        r#"{{"type":"publish","id":1,"topic":"chat:deep","event":"e","data":{}null{}}}"#,
        "[".repeat(1000),
        "]".repeat(1000)
    );
    for (i, (proto, frame)) in [
        (Proto::MsgPack, Message::binary(msgpack)),
        (Proto::Json, Message::text(json)),
    ]
    .into_iter()
    .enumerate()
    {
        let (mut c, _) = Client::connect(&node.ws_url(), proto, &tok).await.unwrap();
        c.send_raw(frame).await.unwrap();
        let closed = c.closed().await.unwrap();
        assert_eq!(closed.code, Some(4000), "{proto:?}: {closed:?}");
        node.publish("bookings:deep", "e", json!(i)).await.unwrap();
        assert_eq!(
            neighbour.next_of("pub").await.unwrap()["data"],
            json!(i),
            "the node and its neighbour live on"
        );
    }
}
