//! Issue 16, point 7: tokens with absurd times (`exp` above ~9.22e18, `iat`
//! or `nbf` as large) are refused cleanly, over WebSocket, SSE and REST:
//! an `unauthorized` answer, never a panic, and the node keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{Client, Proto, now, sign, start_node, token};
use serde_json::{Value, json};

fn absurd_tokens() -> Vec<(&'static str, String)> {
    let base = |extra: Value| {
        let mut claims = json!({"sub": "mallory", "exp": now() + 600, "subscribe": ["bookings:*"], "publish": ["bookings:*"]});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        sign(&claims)
    };
    vec![
        (
            "exp 1e19",
            base(json!({"exp": 10_000_000_000_000_000_000_u64})),
        ),
        ("exp u64::MAX", base(json!({"exp": u64::MAX}))),
        (
            "exp i64::MAX + 1",
            base(json!({"exp": 9_223_372_036_854_775_808_u64})),
        ),
        ("exp year 10000", base(json!({"exp": 253_402_300_800_u64}))),
        ("iat u64::MAX", base(json!({"iat": u64::MAX}))),
        ("nbf u64::MAX", base(json!({"nbf": u64::MAX}))),
    ]
}

#[tokio::test]
async fn absurd_token_times_are_refused_without_a_panic() {
    let node = start_node!().await.unwrap();
    let (mut bystander, _) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("bystander", &["bookings:*"], &[], 600),
    )
    .await
    .unwrap();
    for (what, tok) in absurd_tokens() {
        for proto in [Proto::Json, Proto::MsgPack] {
            let mut c = Client::open(&node.ws_url(), proto).await.unwrap();
            let reply = c
                .request(json!({"type": "connect", "token": tok}))
                .await
                .unwrap_or_else(|e| panic!("{what} ({proto:?}): no reply: {e:#}"));
            assert_eq!(reply["type"], "error", "{what}: {reply}");
            assert_eq!(reply["code"], "unauthorized", "{what}: {reply}");
            let closed = c.closed().await.unwrap();
            assert_eq!(closed.code, Some(4001), "{what}: {closed:?}");
        }
        let rest = node
            .http()
            .post(node.url("/api/v1/publish"))
            .bearer_auth(&tok)
            .json(&json!({"topic": "bookings:1", "event": "e"}))
            .send()
            .await
            .unwrap();
        assert_eq!(rest.status(), 401, "{what}");
        let sse = node
            .http()
            .get(node.url("/sse?topic=bookings:1"))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(sse.status(), 401, "{what}");
    }
    // A token that expires in the far but plausible future still works.
    let far =
        sign(&json!({"sub": "patient", "exp": 253_402_300_799_u64, "subscribe": ["bookings:*"]}));
    let (_c, connected) = Client::connect(&node.ws_url(), Proto::Json, &far)
        .await
        .unwrap();
    assert!(connected["expires_in"].as_u64().unwrap() > 1_000_000_000);
    assert_eq!(
        bystander.request(json!({"type": "ping"})).await.unwrap()["type"],
        "pong",
        "the node kept serving"
    );
    assert_eq!(node.metric("hubbub_connections").await.unwrap(), 2);
}
