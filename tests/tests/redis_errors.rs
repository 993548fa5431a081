//! What a client is told when Redis is down: the contract's `unavailable`
//! with a fixed message, on every path (WebSocket `error` replies to
//! publish, history, presence and subscribe; REST; SSE), never the Redis
//! client's text (hosts, ports, "connection refused"), which is logged instead.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::redis::{OwnRedis, unique_prefix};
use hubbub_tests::{Client, Proto, start_redis_node, token};
use serde_json::{Value, json};

/// Panics when `text` names Redis, the server's address or a socket error.
fn assert_generic(what: &str, text: &str, redis: &OwnRedis) {
    let lower = text.to_lowercase();
    let url = redis.url();
    let port = url.rsplit(':').next().unwrap().trim_end_matches('/');
    for leak in [
        "redis",
        "refused",
        "timed out",
        "io error",
        "127.0.0.1",
        "socket",
        port,
    ] {
        assert!(!lower.contains(leak), "{what} leaks `{leak}`: {text}");
    }
}

#[tokio::test]
async fn redis_errors_never_reach_clients() {
    let mut redis = OwnRedis::start().await.unwrap();
    let node = start_redis_node!(&redis.url(), &unique_prefix("errors"), "errors")
        .await
        .unwrap();
    let tok = token("u", &["chat:*", "bookings:*"], &["chat:*"], 600);
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    assert_eq!(
        c.subscribe("chat:1", None).await.unwrap()["type"],
        "subscribed"
    );

    redis.stop().await.unwrap();
    let commands = [
        json!({"type": "publish", "topic": "chat:1", "event": "e", "data": 1}),
        json!({"type": "history", "topic": "chat:1"}),
        json!({"type": "presence", "topic": "chat:1"}),
        json!({"type": "subscribe", "topic": "bookings:2"}),
    ];
    for cmd in commands {
        let reply = c.request(cmd.clone()).await.unwrap();
        assert_eq!(reply["type"], "error", "{cmd} -> {reply}");
        assert_eq!(reply["code"], "unavailable", "{cmd} -> {reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(!message.is_empty(), "{reply}");
        assert_generic(&format!("the error to {}", cmd["type"]), message, &redis);
    }

    let rest = node
        .post("/api/v1/publish")
        .json(&json!({"topic": "bookings:1", "event": "e", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status().as_u16(), 503);
    let body: Value = rest.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert_generic("REST publish", &body.to_string(), &redis);

    let sse = node
        .http()
        .get(node.url(&format!("/sse?topic=bookings:3&token={tok}")))
        .send()
        .await
        .unwrap();
    let status = sse.status().as_u16();
    let text = sse.text().await.unwrap_or_default();
    assert_eq!(status, 503, "SSE open with Redis down: {text}");
    assert_generic("SSE open", &text, &redis);
}
