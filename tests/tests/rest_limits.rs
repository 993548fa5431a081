//! Issue 16, point 5 (REST side): `limits.api_rate` applies per caller to
//! user tokens (JWT bearers, by `sub`) as it does to API keys.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{start_node, token};
use serde_json::json;

#[tokio::test]
async fn user_tokens_are_rate_limited_per_user_on_rest() {
    let node = start_node!("[limits]\napi_rate = 1").await.unwrap();
    let publish = |bearer: String| {
        node.http()
            .post(node.url("/api/v1/publish"))
            .bearer_auth(bearer)
            .json(&json!({"topic": "bookings:1", "event": "e"}))
            .send()
    };
    let mallory = token("mallory", &[], &["bookings:*"], 600);
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(publish(mallory.clone()).await.unwrap().status().as_u16());
    }
    assert!(
        statuses.contains(&429),
        "10 requests at once from one user with api_rate = 1 (burst 2): {statuses:?}"
    );
    let body: serde_json::Value = publish(mallory.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Another user has a bucket of their own.
    let other = token("trudy", &[], &["bookings:*"], 600);
    assert_eq!(publish(other).await.unwrap().status(), 200);
}
