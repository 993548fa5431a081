//! Each WebSocket command with its reply and its errors, on a real node.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{Client, Proto, start_node, token};
use serde_json::json;

#[tokio::test]
async fn connect_reports_client_id_node_expiry_and_ping_interval() {
    let node = start_node!().await.unwrap();
    let (mut c, reply) =
        Client::connect(&node.ws_url(), Proto::Json, &token("alice", &[], &[], 600))
            .await
            .unwrap();
    assert_eq!(reply["type"], "connected");
    assert!(reply["client_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(reply["node"].as_str().is_some_and(|s| !s.is_empty()));
    let exp = reply["expires_in"].as_u64().unwrap();
    assert!((590..=600).contains(&exp), "{exp}");
    assert_eq!(reply["ping_interval"], 25);
    let pong = c.request(json!({"type": "ping"})).await.unwrap();
    assert_eq!(pong["type"], "pong");
    let again = c
        .request(json!({"type": "connect", "token": token("alice", &[], &[], 600)}))
        .await
        .unwrap();
    assert_eq!(again["code"], "bad_request");
}

#[tokio::test]
async fn subscribe_errors_carry_the_contract_codes() {
    let node = start_node!("[limits]\nmax_subscriptions = 2")
        .await
        .unwrap();
    let tok = token("alice", &["bookings:*", "chat:*", "tiny:*"], &[], 600);
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let cases = [
        ("bad topic!", "invalid_topic"),
        ("", "invalid_topic"),
        ("nowhere:1", "unknown_namespace"),
        ("nohist:1", "forbidden"),
        ("bookings", "forbidden"),
    ];
    for (topic, code) in cases {
        let r = c.subscribe(topic, None).await.unwrap();
        assert_eq!(r["type"], "error", "{topic}: {r}");
        assert_eq!(r["code"], code, "{topic}: {r}");
        assert!(r["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let long = format!("bookings:{}", "x".repeat(250));
    assert_eq!(
        c.subscribe(&long, None).await.unwrap()["code"],
        "invalid_topic"
    );
    let ok = c.subscribe("bookings:1", None).await.unwrap();
    assert_eq!(ok["type"], "subscribed", "{ok}");
    assert_eq!(ok["topic"], "bookings:1");
    assert_eq!(ok["position"]["offset"], 0);
    assert!(
        ok.get("recovered").is_none(),
        "recovered only when since was sent"
    );
    assert_eq!(
        c.subscribe("bookings:1", None).await.unwrap()["code"],
        "already_subscribed"
    );
    assert_eq!(
        c.subscribe("chat:1", None).await.unwrap()["type"],
        "subscribed"
    );
    assert_eq!(
        c.subscribe("tiny:1", None).await.unwrap()["code"],
        "limit_exceeded"
    );
    let r = c
        .request(json!({"type": "unsubscribe", "topic": "bookings:2"}))
        .await
        .unwrap();
    assert_eq!(r["code"], "not_subscribed");
    let r = c
        .request(json!({"type": "unsubscribe", "topic": "bookings:1"}))
        .await
        .unwrap();
    assert_eq!(
        r,
        json!({"type": "unsubscribed", "id": r["id"], "topic": "bookings:1"})
    );
    assert_eq!(
        c.subscribe("tiny:1", None).await.unwrap()["type"],
        "subscribed"
    );
}

#[tokio::test]
async fn public_namespace_needs_no_claim() {
    let node = start_node!().await.unwrap();
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &token("bob", &[], &[], 600))
        .await
        .unwrap();
    assert_eq!(
        c.subscribe("public:news", None).await.unwrap()["type"],
        "subscribed"
    );
    assert_eq!(
        c.subscribe("bookings:1", None).await.unwrap()["code"],
        "forbidden"
    );
}

#[tokio::test]
async fn sub_placeholder_gives_personal_topics() {
    let node = start_node!().await.unwrap();
    let (mut c, _) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("u7", &["bookings:user-{sub}"], &[], 600),
    )
    .await
    .unwrap();
    assert_eq!(
        c.subscribe("bookings:user-u7", None).await.unwrap()["type"],
        "subscribed"
    );
    assert_eq!(
        c.subscribe("bookings:user-u8", None).await.unwrap()["code"],
        "forbidden"
    );
}

#[tokio::test]
async fn client_publish_needs_namespace_option_and_claim() {
    let node = start_node!().await.unwrap();
    let tok = token(
        "carol",
        &["chat:*", "bookings:*"],
        &["chat:*", "bookings:*"],
        600,
    );
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    c.subscribe("chat:room", None).await.unwrap();
    let r = c
        .request(json!({"type": "publish", "topic": "chat:room", "event": "msg", "data": {"text": "hi"}}))
        .await
        .unwrap();
    assert_eq!(r["type"], "published", "{r}");
    assert_eq!(r["position"]["offset"], 1);
    let p = c.next_of("pub").await.unwrap();
    assert_eq!(p["data"], json!({"text": "hi"}));
    let r = c
        .request(json!({"type": "publish", "topic": "bookings:1", "event": "x", "data": 1}))
        .await
        .unwrap();
    assert_eq!(
        r["code"], "forbidden",
        "bookings has client_publish = false"
    );
    let (mut d, _) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("dave", &["chat:*"], &[], 600),
    )
    .await
    .unwrap();
    let r = d
        .request(json!({"type": "publish", "topic": "chat:room", "event": "x", "data": 1}))
        .await
        .unwrap();
    assert_eq!(r["code"], "forbidden", "no publish claim");
    let r = c
        .request(json!({"type": "publish", "topic": "chat:room", "event": "", "data": 1}))
        .await
        .unwrap();
    assert_eq!(r["code"], "bad_request");
}

#[tokio::test]
async fn history_command_and_limits() {
    let node = start_node!().await.unwrap();
    for i in 1..=5 {
        node.publish("bookings:h", "booking.created", json!({"n": i}))
            .await
            .unwrap();
    }
    let (mut c, _) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("e", &["bookings:*"], &[], 600),
    )
    .await
    .unwrap();
    let h = c
        .request(json!({"type": "history", "topic": "bookings:h", "limit": 2}))
        .await
        .unwrap();
    assert_eq!(h["type"], "history", "{h}");
    let offsets: Vec<u64> = h["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![4, 5], "newest two, oldest first");
    assert_eq!(h["position"]["offset"], 5);
    let epoch = h["position"]["epoch"].clone();
    let h = c
        .request(json!({"type": "history", "topic": "bookings:h", "since": {"epoch": epoch, "offset": 1}, "limit": 2}))
        .await
        .unwrap();
    let offsets: Vec<u64> = h["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![2, 3]);
    assert_eq!(h["publications"][0]["event"], "booking.created");
    assert_eq!(h["publications"][0]["data"], json!({"n": 2}));
    let r = c
        .request(json!({"type": "history", "topic": "bookings:h", "limit": 1001}))
        .await
        .unwrap();
    assert_eq!(r["code"], "limit_exceeded");
    let r = c
        .request(json!({"type": "history", "topic": "chat:x"}))
        .await
        .unwrap();
    assert_eq!(r["code"], "forbidden");
}

#[tokio::test]
async fn presence_and_join_leave() {
    let node = start_node!().await.unwrap();
    let info_tok = hubbub_tests::sign(&json!({
        "sub": "ann", "exp": hubbub_tests::now() + 600, "subscribe": ["chat:*"], "info": {"name": "Ann"}
    }));
    let (mut a, ca) = Client::connect(&node.ws_url(), Proto::Json, &info_tok)
        .await
        .unwrap();
    a.subscribe("chat:lobby", None).await.unwrap();
    let join = a.next_of("join").await.unwrap();
    assert_eq!(join["member"]["user"], "ann");
    let (mut b, cb) = Client::connect(
        &node.ws_url(),
        Proto::MsgPack,
        &token("ben", &["chat:*"], &[], 600),
    )
    .await
    .unwrap();
    b.subscribe("chat:lobby", None).await.unwrap();
    let join = a.next_of("join").await.unwrap();
    assert_eq!(join["topic"], "chat:lobby");
    assert_eq!(join["member"]["user"], "ben");
    assert_eq!(join["member"]["client_id"], cb["client_id"]);
    let p = a
        .request(json!({"type": "presence", "topic": "chat:lobby"}))
        .await
        .unwrap();
    let mut users: Vec<&str> = p["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"].as_str().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, vec!["ann", "ben"]);
    let ann = p["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"] == "ann")
        .unwrap();
    assert_eq!(ann["info"], json!({"name": "Ann"}));
    assert_eq!(ann["client_id"], ca["client_id"]);
    drop(b);
    let leave = a.next_of("leave").await.unwrap();
    assert_eq!(leave["member"]["user"], "ben");
    let r = a
        .request(json!({"type": "presence", "topic": "nohist:1"}))
        .await
        .unwrap();
    assert_eq!(r["type"], "error");
}

#[tokio::test]
async fn refresh_extends_and_checks_the_user() {
    let node = start_node!().await.unwrap();
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &token("fay", &[], &[], 60))
        .await
        .unwrap();
    let r = c
        .request(json!({"type": "refresh", "token": token("fay", &[], &[], 3600)}))
        .await
        .unwrap();
    assert_eq!(r["type"], "refreshed", "{r}");
    assert!(r["expires_in"].as_u64().unwrap() > 3000);
    let r = c
        .request(json!({"type": "refresh", "token": token("mallory", &[], &[], 3600)}))
        .await
        .unwrap();
    assert_eq!(r["code"], "unauthorized");
    let r = c
        .request(json!({"type": "refresh", "token": "not.a.jwt"}))
        .await
        .unwrap();
    assert_eq!(r["code"], "unauthorized");
    assert_eq!(
        c.request(json!({"type": "ping"})).await.unwrap()["type"],
        "pong"
    );
}

/// `subscribe` with `latest: true` replies with the topic's newest publication
/// (then live ones, no duplicate); `since` wins over `latest`; a topic without
/// history or publications replies `[]`. `history` with `limit: 0` answers the
/// position only. On both sub-protocols and both engines.
async fn latest_and_position_only(node: &hubbub_tests::Node, proto: Proto, run: &str) {
    let topic = format!("bookings:latest-{run}");
    let tok = token("l", &["bookings:*", "nohist:*"], &[], 600);
    let (mut c, _) = Client::connect(&node.ws_url(), proto, &tok).await.unwrap();
    let empty = c
        .request(json!({"type": "subscribe", "topic": format!("{topic}-empty"), "latest": true}))
        .await
        .unwrap();
    assert_eq!(empty["type"], "subscribed", "{empty}");
    assert_eq!(empty["publications"], json!([]));
    assert!(empty.get("recovered").is_none(), "{empty}");

    for n in 1..=3 {
        node.publish(&topic, "booking.updated", json!({"n": n}))
            .await
            .unwrap();
    }
    let h = c
        .request(json!({"type": "history", "topic": topic, "limit": 0}))
        .await
        .unwrap();
    assert_eq!(h["type"], "history", "{h}");
    assert_eq!(h["publications"], json!([]), "limit 0: the position only");
    assert_eq!(h["position"]["offset"], 3);
    let epoch = h["position"]["epoch"].clone();

    let r = c
        .request(json!({"type": "subscribe", "topic": topic, "latest": true}))
        .await
        .unwrap();
    assert_eq!(r["type"], "subscribed", "{r}");
    assert_eq!(r["position"]["offset"], 3);
    let pubs = r["publications"].as_array().unwrap();
    assert_eq!(pubs.len(), 1, "{r}");
    assert_eq!(pubs[0]["offset"], 3);
    assert_eq!(pubs[0]["data"], json!({"n": 3}));
    assert!(r.get("recovered").is_none(), "{r}");
    node.publish(&topic, "booking.updated", json!({"n": 4}))
        .await
        .unwrap();
    let live = c.next_of("pub").await.unwrap();
    assert_eq!(live["offset"], 4, "the next live one, nothing repeated");

    let (mut d, _) = Client::connect(&node.ws_url(), proto, &tok).await.unwrap();
    let r = d
        .request(json!({"type": "subscribe", "topic": topic, "latest": true,
                        "since": {"epoch": epoch, "offset": 1}}))
        .await
        .unwrap();
    assert_eq!(r["recovered"], true, "since wins over latest: {r}");
    let offsets: Vec<u64> = r["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![2, 3, 4]);

    let nohist = format!("nohist:latest-{run}");
    node.publish(&nohist, "e", json!({})).await.unwrap();
    let r = d
        .request(json!({"type": "subscribe", "topic": nohist, "latest": true}))
        .await
        .unwrap();
    assert_eq!(r["publications"], json!([]), "nothing kept: {r}");
    assert_eq!(r["position"]["offset"], 1);
}

#[tokio::test]
async fn subscribe_latest_and_history_limit_zero_on_memory() {
    let node = start_node!().await.unwrap();
    latest_and_position_only(&node, Proto::Json, "json").await;
    latest_and_position_only(&node, Proto::MsgPack, "msgpack").await;
}

#[tokio::test]
async fn subscribe_latest_and_history_limit_zero_on_redis() {
    use hubbub_tests::redis::{shared_url, unique_prefix};
    let node = hubbub_tests::start_redis_node!(&shared_url(), &unique_prefix("latest"), "latest")
        .await
        .unwrap();
    latest_and_position_only(&node, Proto::Json, "json").await;
    latest_and_position_only(&node, Proto::MsgPack, "msgpack").await;
}
