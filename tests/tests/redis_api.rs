//! The standalone `hubbub-api` process: the REST API alone against Redis.
//! Its publications reach subscribers on hub nodes; it is not listed as a
//! node; it has no WebSocket endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use std::path::Path;

use hubbub_tests::redis::{node_toml, shared_url, unique_prefix, wait_ready};
use hubbub_tests::{Client, Node, Proto, start_redis_node, token};
use serde_json::{Value, json};

#[tokio::test]
async fn the_standalone_api_publishes_to_hub_nodes() {
    let prefix = unique_prefix("api");
    let hub = start_redis_node!(&shared_url(), &prefix, "api-hub")
        .await
        .unwrap();
    let api = Node::start(
        Path::new(env!("CARGO_BIN_EXE_hubbub-api-node")),
        &node_toml(&shared_url(), &prefix, "api-rest"),
    )
    .await
    .unwrap();
    wait_ready(&api).await.unwrap();
    let tok = token("u", &["bookings:*"], &[], 600);
    let (mut c, _) = Client::connect(&hub.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    c.subscribe("bookings:api", None).await.unwrap();
    let p = api
        .publish("bookings:api", "e", json!({"via": "api"}))
        .await
        .unwrap();
    assert_eq!(p["offset"], 1);
    let got = c.next_of("pub").await.unwrap();
    assert_eq!(got["data"], json!({"via": "api"}));
    let info: Value = api
        .get("/api/v1/info")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = info["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert!(names.contains(&"api-hub"), "{info}");
    assert!(
        !names.contains(&"api-rest"),
        "the API is not a hub node: {info}"
    );
    let ws = api.http().get(api.url("/ws")).send().await.unwrap();
    assert_eq!(ws.status().as_u16(), 404);
    let d: Value = api
        .post("/api/v1/disconnect")
        .json(&json!({"user": "u"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["disconnected"], 1, "{d}");
    assert_eq!(c.closed().await.unwrap().code, Some(4201));
}
