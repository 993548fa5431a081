//! Absurd token times (issue 16 point 7, issue 9 "a panic in a session leaks
//! it"): an `exp` beyond the year 9999 is refused with a clear error, one
//! far away but before it is capped, never a panic, and a connection that
//! ends always gives back its registration, so `max_connections_per_user`
//! cannot be exhausted by dead sessions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{Client, Node, Proto, eventually, now, sign, start_node, token};
use serde_json::json;

/// An `exp` far beyond `i64::MAX` seconds (the issue saw a panic above ~9.22e18).
const HUGE_EXP: u64 = 18_000_000_000_000_000_000;
/// An `exp` in the year 9998: valid, thousands of years away.
const FAR_EXP: u64 = 253_370_000_000;

async fn gauge(node: &Node, series: &str) -> u64 {
    node.metric(series).await.unwrap()
}

#[tokio::test]
async fn an_absurd_exp_is_refused_or_capped_and_the_connection_is_released() {
    let node = start_node!("[limits]\nmax_connections_per_user = 2")
        .await
        .unwrap();
    // Beyond the year 9999: refused with a clear error, nothing registered.
    let huge =
        sign(&json!({"sub": "eve", "exp": HUGE_EXP, "iat": now(), "subscribe": ["bookings:*"]}));
    for _ in 0..3 {
        let mut c = Client::open(&node.ws_url(), Proto::Json).await.unwrap();
        let r = c
            .request(json!({"type": "connect", "token": huge}))
            .await
            .unwrap();
        assert_eq!(r["code"], "unauthorized", "a clear error: {r}");
        let closed = c.closed().await.unwrap();
        assert_eq!(closed.code, Some(4001), "{closed:?}");
    }
    assert_eq!(gauge(&node, "hubbub_connections").await, 0);
    // Thousands of years away but valid: capped.
    let far =
        sign(&json!({"sub": "eve", "exp": FAR_EXP, "iat": now(), "subscribe": ["bookings:*"]}));
    // More connections in a row than the per-user limit: none may stay registered.
    for round in 0..4 {
        let (mut c, connected) = Client::connect(&node.ws_url(), Proto::Json, &far)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:#}"));
        let expires_in = connected["expires_in"].as_u64().unwrap();
        assert!(
            expires_in == hubbub::auth::MAX_EXPIRES_IN,
            "capped at 100 years: {connected}"
        );
        let sub = c.subscribe("bookings:huge", None).await.unwrap();
        assert_eq!(sub["type"], "subscribed", "{sub}");
        let r = c
            .request(json!({"type": "refresh", "token": far}))
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
