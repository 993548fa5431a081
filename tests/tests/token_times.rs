//! Absurd token times (issue 16 point 7, issue 9 "a panic in a session leaks
//! it"): an `exp` beyond what `Instant` can hold is capped, never a panic, and
//! a connection that ends always gives back its registration, so
//! `max_connections_per_user` cannot be exhausted by dead sessions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{Client, Node, Proto, eventually, now, sign, start_node, token};
use serde_json::json;

/// An `exp` far beyond `i64::MAX` seconds (the issue saw a panic above ~9.22e18).
const HUGE_EXP: u64 = 18_000_000_000_000_000_000;

async fn gauge(node: &Node, series: &str) -> u64 {
    node.metric(series).await.unwrap()
}

#[tokio::test]
async fn a_huge_exp_is_capped_and_the_connection_is_released() {
    let node = start_node!("[limits]\nmax_connections_per_user = 2")
        .await
        .unwrap();
    let huge =
        sign(&json!({"sub": "eve", "exp": HUGE_EXP, "iat": now(), "subscribe": ["bookings:*"]}));
    // More connections in a row than the per-user limit: none may stay registered.
    for round in 0..4 {
        let (mut c, connected) = Client::connect(&node.ws_url(), Proto::Json, &huge)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:#}"));
        let expires_in = connected["expires_in"].as_u64().unwrap();
        assert!(
            expires_in > 365 * 24 * 3600 && expires_in < (1 << 53),
            "capped, and exact in a JavaScript number: {connected}"
        );
        let sub = c.subscribe("bookings:huge", None).await.unwrap();
        assert_eq!(sub["type"], "subscribed", "{sub}");
        let r = c
            .request(json!({"type": "refresh", "token": huge}))
            .await
            .unwrap();
        assert_eq!(r["type"], "refreshed", "{r}");
        assert_eq!(
            c.request(json!({"type": "ping"})).await.unwrap()["type"],
            "pong"
        );
        drop(c);
        eventually("the connection to be released", || async {
            (gauge(&node, "hubbub_connections").await == 0
                && gauge(&node, "hubbub_subscriptions").await == 0)
                .then_some(())
        })
        .await;
    }
    // The user is not locked out.
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &token("eve", &[], &[], 600))
        .await
        .unwrap();
    assert_eq!(
        c.request(json!({"type": "ping"})).await.unwrap()["type"],
        "pong"
    );
}
