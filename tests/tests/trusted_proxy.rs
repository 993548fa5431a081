//! Issue 16, point 8: behind a proxy every client shares the proxy's TCP
//! address. With `trusted_proxies`, the per-IP connection limit counts the
//! address in `client_ip_header` (`Fly-Client-IP`, `X-Forwarded-For`), and
//! only when the TCP peer is a trusted proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{Client, Node, Proto, start_node, token};
use serde_json::json;

/// Opens a WebSocket with `headers` and connects: `true` when connected,
/// `false` when refused with 4102 (`rate_limited`).
async fn attempt(node: &Node, headers: &[(&'static str, &str)]) -> bool {
    let mut c = Client::open_with(&node.ws_url(), Proto::Json, headers)
        .await
        .unwrap();
    match c
        .request(json!({"type": "connect", "token": token("u", &[], &[], 600)}))
        .await
    {
        Ok(reply) => {
            assert_eq!(reply["type"], "connected", "{reply}");
            true
        }
        Err(e) => {
            assert!(format!("{e:#}").contains("4102"), "{e:#}");
            false
        }
    }
}

const LIMIT: &str = "[limits]\nconnection_rate_per_ip = 1";

#[tokio::test]
async fn the_client_ip_header_counts_only_from_a_trusted_proxy() {
    // Trusted (the tests connect from 127.0.0.1): each client address has
    // its own bucket, so every first connection of an address passes...
    let fly = start_node!(&format!(
        "trusted_proxies = [\"127.0.0.0/8\"]\nclient_ip_header = \"Fly-Client-IP\"\n{LIMIT}"
    ))
    .await
    .unwrap();
    for i in 1..=5 {
        let ip = format!("203.0.113.{i}");
        assert!(
            attempt(&fly, &[("Fly-Client-IP", &ip)]).await,
            "first connection of {ip}"
        );
    }
    // ...and one address going fast is limited.
    let mut same = Vec::new();
    for _ in 0..5 {
        same.push(attempt(&fly, &[("Fly-Client-IP", "198.51.100.1")]).await);
    }
    assert!(same.contains(&false), "{same:?}");

    // X-Forwarded-For: the rightmost untrusted address counts, so a client
    // cannot pick its bucket by sending the header itself.
    let xff = start_node!(&format!(
        "trusted_proxies = [\"127.0.0.1\"]\nclient_ip_header = \"X-Forwarded-For\"\n{LIMIT}"
    ))
    .await
    .unwrap();
    let mut spoofed = Vec::new();
    for i in 1..=5 {
        let header = format!("10.9.9.{i}, 198.51.100.2");
        spoofed.push(attempt(&xff, &[("X-Forwarded-For", &header)]).await);
    }
    assert!(
        spoofed.contains(&false),
        "spoofed first entries share a bucket: {spoofed:?}"
    );
    for i in 1..=5 {
        let header = format!("198.51.100.{}", 10 + i);
        assert!(
            attempt(&xff, &[("X-Forwarded-For", &header)]).await,
            "{header}"
        );
    }

    // Untrusted peer (no trusted_proxies): the header is ignored.
    let plain = start_node!(LIMIT).await.unwrap();
    let mut ignored = Vec::new();
    for i in 1..=5 {
        let ip = format!("203.0.113.{i}");
        ignored.push(attempt(&plain, &[("Fly-Client-IP", &ip)]).await);
    }
    assert!(ignored.contains(&false), "{ignored:?}");
}
