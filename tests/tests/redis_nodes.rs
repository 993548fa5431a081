//! Several real nodes on one Redis behave, to a client, like one node:
//! cross-node delivery, order with publishers on several nodes, recovery on
//! another node, idempotency, presence (and a killed node's members
//! expiring), disconnect-by-user and the node list. Each test has its own
//! key prefix on the shared Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::redis::{shared_url, unique_prefix};
use hubbub_tests::{API_KEY, Client, Node, Proto, eventually, start_redis_node, token};
use serde_json::{Value, json};

async fn nodes(test: &str, n: usize) -> Vec<Node> {
    let prefix = unique_prefix(test);
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            start_redis_node!(&shared_url(), &prefix, &format!("{test}-{i}"))
                .await
                .unwrap(),
        );
    }
    out
}

async fn subscriber(node: &Node, user: &str, topic: &str) -> Client {
    let tok = token(user, &["bookings:*", "chat:*"], &[], 600);
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let r = c.subscribe(topic, None).await.unwrap();
    assert_eq!(r["type"], "subscribed", "{r}");
    c
}

async fn publish_with_key(node: &Node, topic: &str, data: Value, key: &str) -> Value {
    let r: Value = node
        .post("/api/v1/publish")
        .json(&json!({"topic": topic, "event": "e", "data": data, "idempotency_key": key}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["position"].clone()
}

#[tokio::test]
async fn a_publication_reaches_subscribers_on_every_node() {
    let ns = nodes("xnode", 3).await;
    let mut subs = Vec::new();
    for n in &ns {
        subs.push(subscriber(n, "u", "bookings:x").await);
    }
    ns[0]
        .publish("bookings:x", "e", json!({"from": 0}))
        .await
        .unwrap();
    ns[2]
        .publish("bookings:x", "e", json!({"from": 2}))
        .await
        .unwrap();
    for s in &mut subs {
        let p = s.next_of("pub").await.unwrap();
        assert_eq!(
            (p["offset"].clone(), p["data"].clone()),
            (json!(1), json!({"from": 0}))
        );
        let p = s.next_of("pub").await.unwrap();
        assert_eq!(
            (p["offset"].clone(), p["data"].clone()),
            (json!(2), json!({"from": 2}))
        );
    }
}

#[tokio::test]
async fn publishers_on_several_nodes_get_contiguous_offsets_delivered_in_order() {
    let ns = nodes("order", 3).await;
    let mut subs = Vec::new();
    for n in &ns {
        subs.push(subscriber(n, "u", "bookings:race").await);
    }
    let mut tasks = Vec::new();
    for n in &ns {
        let url = n.url("/api/v1/publish");
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut acked = Vec::new();
            for i in 0..40 {
                let r: Value = http
                    .post(&url)
                    .bearer_auth(API_KEY)
                    .json(&json!({"topic": "bookings:race", "event": "e", "data": i}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                acked.push(r["position"]["offset"].as_u64().unwrap());
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked.sort_unstable();
    assert_eq!(acked, (1..=120).collect::<Vec<_>>(), "contiguous, no gaps");
    for s in &mut subs {
        for expected in 1..=120u64 {
            assert_eq!(s.next_of("pub").await.unwrap()["offset"], expected);
        }
    }
}

#[tokio::test]
async fn a_client_recovers_exactly_what_it_missed_on_another_node() {
    let ns = nodes("recover", 2).await;
    let mut a = subscriber(&ns[0], "u", "bookings:r").await;
    let mut first = Value::Null;
    for i in 1..=3 {
        first = ns[0].publish("bookings:r", "e", json!(i)).await.unwrap();
    }
    for i in 1..=3 {
        assert_eq!(a.next_of("pub").await.unwrap()["offset"], i);
    }
    drop(a);
    for i in 4..=7 {
        ns[1].publish("bookings:r", "e", json!(i)).await.unwrap();
    }
    let tok = token("u", &["bookings:*"], &[], 600);
    let (mut b, _) = Client::connect(&ns[1].ws_url(), Proto::MsgPack, &tok)
        .await
        .unwrap();
    let r = b.subscribe("bookings:r", Some(&first)).await.unwrap();
    assert_eq!(r["recovered"], true, "{r}");
    let got: Vec<u64> = r["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(got, vec![4, 5, 6, 7]);
    assert_eq!(r["publications"][0]["data"], 4);
    ns[0].publish("bookings:r", "e", json!(8)).await.unwrap();
    assert_eq!(b.next_of("pub").await.unwrap()["offset"], 8);
    let pong = b.request(json!({"type": "ping"})).await.unwrap();
    assert_eq!(pong["type"], "pong");
    assert_eq!(b.buffered(), 0, "no duplicate");
}

#[tokio::test]
async fn an_idempotency_key_holds_across_nodes() {
    let ns = nodes("idem", 3).await;
    let mut s = subscriber(&ns[2], "u", "bookings:i").await;
    let a = publish_with_key(&ns[0], "bookings:i", json!(1), "order-77").await;
    let b = publish_with_key(&ns[1], "bookings:i", json!(1), "order-77").await;
    assert_eq!(a, b, "the second publish answers the first position");
    let c = publish_with_key(&ns[1], "bookings:i", json!(2), "order-78").await;
    assert_eq!(c["offset"], 2);
    assert_eq!(s.next_of("pub").await.unwrap()["offset"], 1);
    assert_eq!(
        s.next_of("pub").await.unwrap()["offset"],
        2,
        "delivered once"
    );
}

fn users(members: &Value) -> Vec<String> {
    let mut u: Vec<String> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"].as_str().unwrap().to_owned())
        .collect();
    u.sort();
    u
}

#[tokio::test]
async fn presence_spans_nodes_and_a_killed_node_members_expire() {
    let mut ns = nodes("presence", 2).await;
    let mut ann = subscriber(&ns[0], "ann", "chat:room").await;
    assert_eq!(ann.next_of("join").await.unwrap()["member"]["user"], "ann");
    let mut ben = subscriber(&ns[1], "ben", "chat:room").await;
    let join = ann.next_of("join").await.unwrap();
    assert_eq!(
        join["member"]["user"], "ben",
        "a join on another node reaches us"
    );
    let p = ben
        .request(json!({"type": "presence", "topic": "chat:room"}))
        .await
        .unwrap();
    assert_eq!(users(&p["members"]), vec!["ann", "ben"]);
    // A graceful leave on another node is announced.
    let cid = subscriber(&ns[1], "cid", "chat:room").await;
    assert_eq!(ann.next_of("join").await.unwrap()["member"]["user"], "cid");
    drop(cid);
    assert_eq!(ann.next_of("leave").await.unwrap()["member"]["user"], "cid");
    // A killed node cannot say goodbye: its members expire (presence_ttl =
    // 2s) and a node serving the topic announces their leave.
    let killed = ns.pop().unwrap();
    drop(killed);
    let _ = ben.closed().await;
    let leave = ann.next_of("leave").await.unwrap();
    assert_eq!(leave["member"]["user"], "ben");
    let p: Value = ns[0]
        .get("/api/v1/topics/chat:room/presence")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users(&p["members"]), vec!["ann"]);
}

#[tokio::test]
async fn disconnect_by_user_reaches_every_node() {
    let ns = nodes("kick", 3).await;
    let mut k1 = subscriber(&ns[0], "kicked", "bookings:k").await;
    let mut k2 = subscriber(&ns[1], "kicked", "bookings:k").await;
    let mut other = subscriber(&ns[1], "stays", "bookings:k").await;
    let r: Value = ns[2]
        .post("/api/v1/disconnect")
        .json(&json!({"user": "kicked"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["disconnected"], 2, "{r}");
    for k in [&mut k1, &mut k2] {
        let closed = k.closed().await.unwrap();
        assert_eq!(closed.code, Some(4201));
    }
    let pong = other.request(json!({"type": "ping"})).await.unwrap();
    assert_eq!(pong["type"], "pong");
}

#[tokio::test]
async fn info_lists_every_live_node_with_counts() {
    let ns = nodes("info", 2).await;
    let _c = subscriber(&ns[1], "u", "bookings:info").await;
    eventually("both nodes with node 1's counts", || async {
        let r: Value = ns[0]
            .get("/api/v1/info")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let list = r["nodes"].as_array()?;
        let names: Vec<&str> = list.iter().filter_map(|n| n["name"].as_str()).collect();
        let one = list.iter().find(|n| n["name"] == "info-1")?;
        (names.contains(&"info-0")
            && names.len() == 2
            && one["connections"] == 1
            && one["subscriptions"] == 1)
            .then_some(())
    })
    .await;
}
