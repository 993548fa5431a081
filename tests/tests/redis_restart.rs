//! Failure behaviour against a private Redis that the test stops and
//! restarts (never the shared one): while it is down REST publish answers 503
//! `unavailable`, `/readyz` 503, clients stay connected; when it returns the
//! nodes re-subscribe by themselves; if it lost its data the epoch changes and
//! clients are told `recovered: false`; a killed pub/sub connection is
//! rebuilt and nothing is lost silently.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::redis::{OwnRedis, command, unique_prefix};
use hubbub_tests::{Client, Node, Proto, eventually, start_redis_node, token};
use serde_json::{Value, json};

async fn two_nodes(redis: &OwnRedis, test: &str) -> (Node, Node) {
    let prefix = unique_prefix(test);
    let a = start_redis_node!(&redis.url(), &prefix, &format!("{test}-a"))
        .await
        .unwrap();
    let b = start_redis_node!(&redis.url(), &prefix, &format!("{test}-b"))
        .await
        .unwrap();
    (a, b)
}

async fn status(node: &Node, path: &str) -> u16 {
    node.http()
        .get(node.url(path))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

async fn subscriber(node: &Node, topic: &str, since: Option<&Value>) -> (Client, Value) {
    let tok = token("u", &["bookings:*"], &[], 600);
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let r = c.subscribe(topic, since).await.unwrap();
    assert_eq!(r["type"], "subscribed", "{r}");
    (c, r)
}

#[tokio::test]
async fn redis_down_means_503_and_not_ready_then_nodes_resubscribe_when_it_returns() {
    let mut redis = OwnRedis::start().await.unwrap();
    let (a, b) = two_nodes(&redis, "down").await;
    let (mut c, _) = subscriber(&a, "bookings:d", None).await;
    b.publish("bookings:d", "e", json!(1)).await.unwrap();
    assert_eq!(c.next_of("pub").await.unwrap()["offset"], 1);

    redis.stop().await.unwrap();
    let resp = a
        .post("/api/v1/publish")
        .json(&json!({"topic": "bookings:d", "event": "e", "data": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        503,
        "never a 200 for what was not stored"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    eventually("readyz 503 while redis is down", || async {
        (status(&a, "/readyz").await == 503).then_some(())
    })
    .await;
    assert_eq!(status(&a, "/healthz").await, 200);
    let pong = c.request(json!({"type": "ping"})).await.unwrap();
    assert_eq!(pong["type"], "pong", "live clients stay connected");

    redis.restart(true).await.unwrap();
    for n in [&a, &b] {
        eventually("ready again", || async {
            (status(n, "/readyz").await == 200).then_some(())
        })
        .await;
    }
    let p = b.publish("bookings:d", "e", json!(2)).await.unwrap();
    assert_eq!(p["offset"], 2, "data kept: same stream");
    let got = c.next_of("pub").await.unwrap();
    assert_eq!(
        (got["offset"].clone(), got["data"].clone()),
        (json!(2), json!(2))
    );
}

#[tokio::test]
async fn redis_losing_its_data_changes_the_epoch_and_clients_are_told() {
    let mut redis = OwnRedis::start().await.unwrap();
    let (a, b) = two_nodes(&redis, "loss").await;
    let (mut c, _) = subscriber(&a, "bookings:l", None).await;
    b.publish("bookings:l", "e", json!(1)).await.unwrap();
    let before = b.publish("bookings:l", "e", json!(2)).await.unwrap();
    assert_eq!(c.next_of("pub").await.unwrap()["offset"], 1);
    assert_eq!(c.next_of("pub").await.unwrap()["offset"], 2);

    redis.restart(false).await.unwrap();
    // Node A notices the new stream on resubscribing and sends its subscriber
    // to re-subscribe (4201), since offsets restart at 1.
    let closed = c.closed().await.unwrap();
    assert_eq!(closed.code, Some(4201), "{closed:?}");
    for n in [&a, &b] {
        eventually("ready again", || async {
            (status(n, "/readyz").await == 200).then_some(())
        })
        .await;
    }
    let (mut c, r) = subscriber(&a, "bookings:l", Some(&before)).await;
    assert_eq!(r["recovered"], false, "loss is never silent: {r}");
    assert_ne!(r["position"]["epoch"], before["epoch"]);
    let p = b.publish("bookings:l", "e", json!("after")).await.unwrap();
    assert_eq!(p["offset"], 1);
    assert_eq!(p["epoch"], r["position"]["epoch"]);
    let got = c.next_of("pub").await.unwrap();
    assert_eq!(
        got["offset"], 1,
        "the new stream's offset 1 is not taken for a duplicate"
    );
    assert_eq!(got["data"], "after");
}

#[tokio::test]
async fn a_killed_pubsub_connection_is_rebuilt_and_nothing_is_lost_silently() {
    let redis = OwnRedis::start().await.unwrap();
    let (a, b) = two_nodes(&redis, "kill").await;
    let (mut c, first) = subscriber(&a, "bookings:k", None).await;
    let mut last = first["position"].clone();
    for round in 0..3 {
        let killed = command(redis.port, "CLIENT KILL TYPE pubsub")
            .await
            .unwrap();
        assert!(killed.starts_with(':'), "{killed}");
        let p = b.publish("bookings:k", "e", json!(round)).await.unwrap();
        // Either it arrives live, or the node tells the client to re-subscribe
        // and history has it.
        match c.next().await {
            Ok(v) if v["type"] == "pub" => assert_eq!(v["offset"], p["offset"]),
            _ => {
                let (c2, r) = eventually("a re-subscription with since", || async {
                    let tok = token("u", &["bookings:*"], &[], 600);
                    let (mut c2, _) = Client::connect(&a.ws_url(), Proto::Json, &tok).await.ok()?;
                    let r = c2.subscribe("bookings:k", Some(&last)).await.ok()?;
                    (r["type"] == "subscribed").then_some((c2, r))
                })
                .await;
                assert_eq!(r["recovered"], true, "{r}");
                assert_eq!(r["publications"][0]["offset"], p["offset"]);
                c = c2;
            }
        }
        last = p;
    }
    eventually("ready after the kills", || async {
        (status(&a, "/readyz").await == 200).then_some(())
    })
    .await;
}
