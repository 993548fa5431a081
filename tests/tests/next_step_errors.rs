//! Error messages that say what to do next (issue 13, first hour point 3 and
//! 6): a `forbidden` names the caller's patterns and one that would cover the
//! topic, an unknown namespace lists the configured ones and how to add one,
//! a command before `connect` says that `connect` comes first, and an address
//! in use names the `listen` setting.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use std::process::Stdio;

use hubbub_tests::{BOOKINGS_KEY, Client, Proto, SECRET, start_node, token};
use serde_json::json;

#[tokio::test]
async fn forbidden_subscribe_names_the_patterns_and_one_that_would_cover_the_topic() {
    let node = start_node!().await.unwrap();
    let tok = token("alice", &["bookings:*"], &[], 600);
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let reply = c
        .request(json!({"type": "subscribe", "topic": "bookings"}))
        .await
        .unwrap();
    assert_eq!(reply["code"], "forbidden", "{reply}");
    let msg = reply["message"].as_str().unwrap();
    assert!(msg.contains("`bookings:*`"), "{msg}");
    assert!(msg.contains("a pattern `bookings` would cover it"), "{msg}");
    assert!(!msg.contains(&tok), "{msg}");
    // A topic with a resource: the exact topic or `ns:*` covers it.
    let reply = c
        .request(json!({"type": "subscribe", "topic": "chat:7"}))
        .await
        .unwrap();
    let msg = reply["message"].as_str().unwrap();
    assert!(msg.contains("`chat:7` or `chat:*`"), "{msg}");
}

#[tokio::test]
async fn a_forbidden_batch_item_names_the_key_patterns_and_no_secret() {
    let node = start_node!().await.unwrap();
    let res = node
        .http()
        .post(node.url("/api/v1/batch"))
        .bearer_auth(BOOKINGS_KEY)
        .json(&json!({"publications": [
            {"topic": "bookings:42", "event": "booking.updated", "data": {"id": "42"}},
            {"topic": "bookings", "event": "booking.updated", "data": {"id": "42"}},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["results"][0]["position"].is_object(), "{body}");
    let err = &body["results"][1]["error"];
    assert_eq!(err["code"], "forbidden", "{body}");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains("the API key's `publish` patterns are `bookings:*`"),
        "{msg}"
    );
    assert!(msg.contains("a pattern `bookings` would cover it"), "{msg}");
    assert!(!msg.contains(BOOKINGS_KEY), "{msg}");
}

#[tokio::test]
async fn unknown_namespace_lists_the_configured_ones_and_how_to_add_one() {
    let node = start_node!().await.unwrap();
    let tok = token("alice", &["*"], &[], 600);
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let reply = c
        .request(json!({"type": "subscribe", "topic": "rides:9"}))
        .await
        .unwrap();
    assert_eq!(reply["code"], "unknown_namespace", "{reply}");
    let msg = reply["message"].as_str().unwrap();
    assert!(msg.contains("`bookings`, `chat`"), "{msg}");
    assert!(msg.contains("[namespaces.rides]"), "{msg}");
    assert!(msg.contains("HUBBUB_NAMESPACES__RIDES__"), "{msg}");
}

#[tokio::test]
async fn a_subscribe_before_connect_says_connect_comes_first() {
    let node = start_node!().await.unwrap();
    let mut c = Client::open(&node.ws_url(), Proto::Json).await.unwrap();
    c.send(&json!({"type": "subscribe", "id": 5, "topic": "bookings:1"}))
        .await
        .unwrap();
    let reply = c.next().await.unwrap();
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["id"], 5, "{reply}");
    assert_eq!(reply["code"], "bad_request", "{reply}");
    let msg = reply["message"].as_str().unwrap();
    assert!(
        msg.contains("`subscribe` before `connect`: the first command must be `connect`"),
        "{msg}"
    );
    let closed = c.closed().await.unwrap();
    assert_eq!(closed.code, Some(4000), "{closed:?}");
}

#[test]
fn an_address_in_use_names_the_listen_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hubbub-node"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HUBBUB_")) {
        cmd.env_remove(k);
    }
    let out = cmd
        .env("HUBBUB_LISTEN", addr.to_string())
        .env("HUBBUB_AUTH__JWT_SECRET", SECRET)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot bind {addr}: the address is in use")),
        "{stderr}"
    );
    assert!(stderr.contains("`listen`"), "{stderr}");
    assert!(stderr.contains("HUBBUB_LISTEN="), "{stderr}");
    drop(taken);
}
