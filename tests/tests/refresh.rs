//! `refresh` to a narrower token (issue 16 point 6): every subscription the
//! new token no longer allows ends with an `unsubscribed` push carrying
//! `forbidden` (before the `refreshed` reply), its publications stop, and its
//! presence membership goes; subscriptions still allowed are untouched.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{Client, Proto, start_node, token};
use serde_json::{Value, json};

#[tokio::test]
async fn a_narrowed_refresh_ends_the_subscriptions_it_no_longer_allows() {
    let node = start_node!().await.unwrap();
    let wide = token("ann", &["bookings:*", "chat:*"], &[], 600);
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &wide)
        .await
        .unwrap();
    for topic in ["bookings:1", "bookings:2", "chat:1", "public:x"] {
        let r = c.subscribe(topic, None).await.unwrap();
        assert_eq!(r["type"], "subscribed", "{r}");
    }
    let (mut watcher, _) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("bob", &["chat:*"], &[], 600),
    )
    .await
    .unwrap();
    let members = watcher
        .request(json!({"type": "presence", "topic": "chat:1"}))
        .await
        .unwrap();
    assert_eq!(members["members"].as_array().unwrap().len(), 1, "{members}");

    let narrow = token("ann", &["bookings:1"], &[], 600);
    let r = c
        .request(json!({"type": "refresh", "token": narrow}))
        .await
        .unwrap();
    assert_eq!(r["type"], "refreshed", "{r}");
    // The pushes came before the reply, so they are buffered now.
    let mut ended: Vec<Value> = Vec::new();
    while c.buffered() > 0 {
        let f = c.next().await.unwrap();
        if f["type"] == "unsubscribed" {
            ended.push(f);
        }
    }
    let mut topics: Vec<&str> = ended.iter().map(|f| f["topic"].as_str().unwrap()).collect();
    topics.sort_unstable();
    assert_eq!(topics, ["bookings:2", "chat:1"], "{ended:?}");
    for f in &ended {
        assert_eq!(f["type"], "unsubscribed", "{f}");
        assert_eq!(f["code"], "forbidden", "{f}");
        assert!(f.get("id").is_none(), "a push, not a reply: {f}");
    }

    // Publications of ended topics stop (`gone` would come first); the others flow.
    node.publish("bookings:2", "gone", json!(1)).await.unwrap();
    node.publish("bookings:1", "kept", json!(1)).await.unwrap();
    node.publish("public:x", "public", json!(1)).await.unwrap();
    assert_eq!(c.next_of("pub").await.unwrap()["event"], "kept");
    assert_eq!(c.next_of("pub").await.unwrap()["event"], "public");
    // The presence membership went with the subscription.
    let members = watcher
        .request(json!({"type": "presence", "topic": "chat:1"}))
        .await
        .unwrap();
    assert_eq!(members["members"], json!([]), "{members}");
    // And the narrowed token cannot subscribe again.
    let again = c.subscribe("bookings:2", None).await.unwrap();
    assert_eq!(again["code"], "forbidden", "{again}");
    assert_eq!(
        c.request(json!({"type": "ping"})).await.unwrap()["type"],
        "pong"
    );
}
