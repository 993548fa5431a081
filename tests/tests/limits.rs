//! Limits and abuse control: each limit answers with the contract's code and
//! leaves other clients unaffected.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{Client, Proto, start_node, token};
use serde_json::json;

#[tokio::test]
async fn command_rate_answers_rate_limited_then_closes_4102() {
    let node = start_node!("[limits]\ncommand_rate = 1\ncommand_burst = 3")
        .await
        .unwrap();
    let tok = token("a", &["bookings:*"], &[], 600);
    let (mut neighbour, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    neighbour.subscribe("bookings:rl", None).await.unwrap();
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    // The burst of 3 goes through; the first refusal comes right after it.
    let mut answered = 0;
    let refusal = loop {
        let r = c.request(json!({"type": "ping"})).await.unwrap();
        if r["type"] == "error" {
            break r;
        }
        answered += 1;
        assert!(answered < 10, "never refused");
    };
    assert_eq!(refusal["code"], "rate_limited", "{refusal}");
    assert!(answered >= 3, "the burst is honoured");
    // Flooding past another burst of refusals closes the connection.
    for i in 0..20u32 {
        if c.send(&json!({"type": "ping", "id": 100 + i}))
            .await
            .is_err()
        {
            break;
        }
    }
    let closed = c.closed().await.unwrap();
    assert_eq!(
        closed.disconnect.as_ref().map(|d| d["code"].clone()),
        Some(json!(4102)),
        "{closed:?}"
    );
    node.publish("bookings:rl", "e", json!(1)).await.unwrap();
    assert_eq!(
        neighbour.next_of("pub").await.unwrap()["offset"],
        1,
        "the neighbour is unaffected"
    );
    assert!(
        node.metric("hubbub_errors_total{code=\"rate_limited\"}")
            .await
            .unwrap()
            >= 1
    );
}

#[tokio::test]
async fn connection_limits_per_user_and_per_node_close_4103() {
    let node = start_node!("[limits]\nmax_connections = 3\nmax_connections_per_user = 2")
        .await
        .unwrap();
    let alice = token("alice", &[], &[], 600);
    let (_a1, _) = Client::connect(&node.ws_url(), Proto::Json, &alice)
        .await
        .unwrap();
    let (_a2, _) = Client::connect(&node.ws_url(), Proto::Json, &alice)
        .await
        .unwrap();
    let mut a3 = Client::open(&node.ws_url(), Proto::Json).await.unwrap();
    a3.send(&json!({"type": "connect", "id": 1, "token": alice}))
        .await
        .unwrap();
    let closed = a3.closed().await.unwrap();
    assert_eq!(closed.code, Some(4103), "{closed:?}");
    assert_eq!(closed.disconnect.unwrap()["reason"], "connection_limit");
    let (mut b1, _) = Client::connect(&node.ws_url(), Proto::Json, &token("bob", &[], &[], 600))
        .await
        .unwrap();
    assert_eq!(
        b1.request(json!({"type": "ping"})).await.unwrap()["type"],
        "pong"
    );
    let mut c1 = Client::open(&node.ws_url(), Proto::Json).await.unwrap();
    c1.send(&json!({"type": "connect", "id": 1, "token": token("carol", &[], &[], 600)}))
        .await
        .unwrap();
    assert_eq!(
        c1.closed().await.unwrap().code,
        Some(4103),
        "the node is full"
    );
    assert_eq!(
        node.metric("hubbub_rejected_total{reason=\"connection_limit\"}")
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn connection_rate_per_ip_closes_4102() {
    let node = start_node!("[limits]\nconnection_rate_per_ip = 1")
        .await
        .unwrap();
    let tok = token("a", &[], &[], 600);
    let (mut first, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let mut refused = None;
    for _ in 0..10 {
        let mut c = Client::open(&node.ws_url(), Proto::Json).await.unwrap();
        c.send(&json!({"type": "connect", "id": 1, "token": tok}))
            .await
            .ok();
        let next = c.next().await;
        if next.is_err() || next.as_ref().is_ok_and(|v| v["type"] == "disconnect") {
            refused = Some(next.ok());
            break;
        }
    }
    let refused = refused.expect("one of ten rapid connections is refused at 1/s");
    if let Some(frame) = refused {
        assert_eq!(frame["code"], 4102);
    }
    assert!(
        node.metric("hubbub_rejected_total{reason=\"rate_limited\"}")
            .await
            .unwrap()
            >= 1
    );
    assert_eq!(
        first.request(json!({"type": "ping"})).await.unwrap()["type"],
        "pong"
    );
}

#[tokio::test]
async fn api_rate_per_key_answers_429() {
    let node = start_node!("[limits]\napi_rate = 1").await.unwrap();
    let mut statuses = Vec::new();
    for i in 0..10 {
        let r = node
            .post("/api/v1/publish")
            .json(&json!({"topic": "bookings:api", "event": "e", "data": i}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
            break;
        }
    }
    assert_eq!(statuses[0], 200);
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // Another key has its own budget.
    let other = node
        .http()
        .post(node.url("/api/v1/publish"))
        .bearer_auth(hubbub_tests::BOOKINGS_KEY)
        .json(&json!({"topic": "bookings:api", "event": "e"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn origin_allow_list_guards_websockets_and_cors() {
    let node = start_node!("allowed_origins = [\"https://app.example.com\"]")
        .await
        .unwrap();
    let tok = token("a", &[], &[], 600);
    let bad = Client::open_with(
        &node.ws_url(),
        Proto::Json,
        &[("Origin", "https://evil.example")],
    )
    .await;
    let err = bad.err().expect("a foreign origin is refused").to_string();
    assert!(err.contains("403"), "{err}");
    let (mut ok, _) = {
        let mut c = Client::open_with(
            &node.ws_url(),
            Proto::Json,
            &[("Origin", "https://app.example.com")],
        )
        .await
        .unwrap();
        let r = c
            .request(json!({"type": "connect", "token": tok}))
            .await
            .unwrap();
        (c, r)
    };
    assert_eq!(
        ok.request(json!({"type": "ping"})).await.unwrap()["type"],
        "pong"
    );
    Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .expect("no Origin: not a browser, allowed");
    let preflight = |origin: &'static str| {
        node.http()
            .request(reqwest::Method::OPTIONS, node.url("/api/v1/publish"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "https://app.example.com"
    );
    let denied = preflight("https://evil.example").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert!(
        node.metric("hubbub_rejected_total{reason=\"origin\"}")
            .await
            .unwrap()
            >= 1
    );
}

#[tokio::test]
async fn request_body_limit_is_configurable() {
    let node = start_node!("[limits]\nmax_frame_bytes = 1024\nmax_request_bytes = 2048")
        .await
        .unwrap();
    let big: Vec<serde_json::Value> = (0..100)
        .map(|i| json!({"topic": "bookings:b", "event": "e", "data": i}))
        .collect();
    let r = node
        .post("/api/v1/batch")
        .json(&json!({"publications": big}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_large");
}
