//! `GET /sse` with the token in `Authorization: Bearer` (what the SDK sends
//! when it reads the stream with fetch) instead of the query string.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use futures_util::StreamExt;
use hubbub_tests::{WAIT, start_node, token};

#[tokio::test]
async fn the_sse_token_may_come_in_the_authorization_header() {
    let node = start_node!().await.unwrap();
    let tok = token("hdr", &["bookings:*"], &[], 600);
    let resp = node
        .http()
        .get(node.url("/sse?topic=bookings:hdr"))
        .header("Authorization", format!("Bearer {tok}"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(WAIT, body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: subscribed"), "{text}");

    let bad = node
        .http()
        .get(node.url("/sse?topic=bookings:hdr"))
        .header("Authorization", "Bearer garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401, "a bad header token is refused");
}
