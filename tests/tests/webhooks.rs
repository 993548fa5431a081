//! Webhook sinks on the memory engine, against a real receiver: the body,
//! signatures verified independently, order per topic under retries,
//! every kind of failure retried, dead letters and their replay with the
//! original `webhook-id`, isolation of a slow sink, operator-only endpoints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use hubbub_tests::receiver::{Answer, Receiver, Request, verify};
use hubbub_tests::{Node, start_node, token};
use serde_json::{Value, json};

const SECRET_A: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const LONG: Duration = Duration::from_secs(30);

/// A sink on `bookings:*` with both secrets, fast backoff (unless `extra` sets it) and `extra`.
fn sink(name: &str, url: &str, extra: &str) -> String {
    let backoff_max = if extra.contains("backoff_max") {
        ""
    } else {
        "backoff_max = \"100ms\"\n"
    };
    format!(
        "[[webhooks]]\nname = \"{name}\"\nurl = \"{url}\"\ntopics = [\"bookings:*\"]\nsecrets = [\"{SECRET_A}\", \"{SECRET_B}\"]\nbackoff_min = \"10ms\"\n{backoff_max}{extra}\n"
    )
}

async fn webhooks(node: &Node) -> Value {
    node.get("/api/v1/webhooks")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn sink_stat(node: &Node, name: &str, field: &str) -> u64 {
    let list = webhooks(node).await;
    list["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap()[field]
        .as_u64()
        .unwrap()
}

/// Offsets per topic in the order the receiver accepted them.
fn accepted_order(requests: &[Request]) -> BTreeMap<String, Vec<u64>> {
    let mut order: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in requests.iter().filter(|r| r.succeeded()) {
        let body = r.json();
        order
            .entry(body["topic"].as_str().unwrap().to_owned())
            .or_default()
            .push(body["offset"].as_u64().unwrap());
    }
    order
}

#[tokio::test]
async fn deliveries_carry_the_contract_body_and_verifiable_signatures_in_topic_order() {
    let rx = Receiver::start().await.unwrap();
    let node = start_node!(&sink("notify", &rx.url(), "")).await.unwrap();
    for i in 0..10 {
        for topic in ["bookings:1", "bookings:2"] {
            node.publish(topic, "booking.created", json!({"i": i}))
                .await
                .unwrap();
        }
    }
    node.publish("chat:1", "ignored", json!({})).await.unwrap();
    let got = rx
        .wait_until(LONG, "20 deliveries", |r| {
            r.iter().filter(|r| r.succeeded()).count() >= 20
        })
        .await;
    let order = accepted_order(&got);
    assert_eq!(order["bookings:1"], (1..=10).collect::<Vec<_>>());
    assert_eq!(order["bookings:2"], (1..=10).collect::<Vec<_>>());
    assert!(!order.contains_key("chat:1"), "not matched by the sink");
    for r in &got {
        assert_eq!(r.content_type, "application/json");
        assert!(r.id.starts_with("msg_"), "{}", r.id);
        let parts: Vec<&str> = r.signature.split(' ').collect();
        assert_eq!(parts.len(), 2, "one signature per secret: {}", r.signature);
        for secret in [SECRET_A, SECRET_B] {
            assert!(
                verify(secret, &r.id, &r.timestamp, &r.body, &r.signature),
                "signature verifies with {secret}"
            );
        }
        let ts: u64 = r.timestamp.parse().unwrap();
        assert!(ts.abs_diff(hubbub_tests::now()) < 60, "a current timestamp");
        let body = r.json();
        assert_eq!(body["type"], "publication");
        assert_eq!(body["sink"], "notify");
        assert_eq!(body["event"], "booking.created");
        assert!(body["epoch"].is_string() && body["id"].is_string() && body["ts"].is_u64());
        assert!(body["data"]["i"].is_u64());
    }
    // `WEBHOOK_FIXTURE_OUT=path` saves one real delivery for the TS SDK's
    // verifier test (client-sdk-ts/test/unit/fixtures/webhook-from-hub.json).
    if let Ok(path) = std::env::var("WEBHOOK_FIXTURE_OUT") {
        let r = &got[0];
        let fixture = json!({
            "secrets": [SECRET_A, SECRET_B],
            "headers": {"webhook-id": r.id, "webhook-timestamp": r.timestamp, "webhook-signature": r.signature},
            "body": String::from_utf8(r.body.to_vec()).unwrap(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&fixture).unwrap()).unwrap();
    }
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 20, "one webhook-id per publication");
    hubbub_tests::eventually("delivered stat", || async {
        (sink_stat(&node, "notify", "delivered").await == 20).then_some(())
    })
    .await;
    assert_eq!(
        node.metric("hubbub_webhook_delivered_total{sink=\"notify\"}")
            .await
            .unwrap(),
        20
    );
    assert_eq!(sink_stat(&node, "notify", "pending").await, 0);
}

#[tokio::test]
async fn every_kind_of_failure_is_retried_with_the_same_id_and_order_holds() {
    // Per webhook-id: 500, 429 + Retry-After 1, hang past the timeout, close
    // the connection, 302, then 200.
    let rx = Receiver::with(|_, earlier| match earlier {
        0 => Answer::Status(500),
        1 => Answer::RetryAfter(1),
        2 => Answer::Hang,
        3 => Answer::Close,
        4 => Answer::Redirect,
        _ => Answer::Status(204),
    })
    .await
    .unwrap();
    let node = start_node!(&sink(
        "flaky",
        &rx.url(),
        "timeout = \"300ms\"\nmax_attempts = 10\nbackoff_max = \"5s\""
    ))
    .await
    .unwrap();
    for i in 0..3 {
        for topic in ["bookings:a", "bookings:b"] {
            node.publish(topic, "e", json!(i)).await.unwrap();
        }
    }
    let got = rx
        .wait_until(LONG, "6 deliveries", |r| {
            r.iter().filter(|r| r.succeeded()).count() >= 6
        })
        .await;
    let order = accepted_order(&got);
    assert_eq!(order["bookings:a"], vec![1, 2, 3]);
    assert_eq!(order["bookings:b"], vec![1, 2, 3]);
    let mut by_id: HashMap<&str, Vec<&Request>> = HashMap::new();
    for r in &got {
        by_id.entry(&r.id).or_default().push(r);
    }
    assert_eq!(by_id.len(), 6);
    for (id, attempts) in &by_id {
        assert_eq!(attempts.len(), 6, "{id}: six attempts");
        let bodies: std::collections::HashSet<&[u8]> =
            attempts.iter().map(|r| &r.body[..]).collect();
        assert_eq!(bodies.len(), 1, "the same body on every attempt");
        // Retry-After: 1 was honoured (a lower bound, safe on a slow machine).
        assert!(attempts[2].at - attempts[1].at >= Duration::from_millis(950));
    }
    // Order under retries: no attempt of offset n+1 before offset n succeeded.
    for topic in ["bookings:a", "bookings:b"] {
        let mut done = 0;
        for r in got.iter().filter(|r| r.json()["topic"] == topic) {
            let offset = r.json()["offset"].as_u64().unwrap();
            assert_eq!(
                offset,
                done + 1,
                "{topic}: offset {offset} sent before {} was done",
                done + 1
            );
            if r.succeeded() {
                done = offset;
            }
        }
    }
    assert_eq!(sink_stat(&node, "flaky", "retried").await, 30);
    assert_eq!(sink_stat(&node, "flaky", "dead").await, 0);
}

#[tokio::test]
async fn dead_letters_after_max_attempts_replay_with_their_webhook_id_and_delete() {
    let rx = Receiver::with(|_, _| Answer::Status(500)).await.unwrap();
    let node = start_node!(&sink("dead", &rx.url(), "max_attempts = 3"))
        .await
        .unwrap();
    for i in 0..3 {
        node.publish("bookings:9", "booking.created", json!(i))
            .await
            .unwrap();
    }
    hubbub_tests::eventually("3 dead letters", || async {
        (sink_stat(&node, "dead", "dead").await == 3).then_some(())
    })
    .await;
    assert_eq!(rx.requests().len(), 9, "three attempts each");
    let dead: Value = node
        .get("/api/v1/webhooks/dead/dead?limit=10")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dead = dead["dead"].as_array().unwrap().clone();
    assert_eq!(dead.len(), 3);
    let offsets: Vec<u64> = dead.iter().map(|d| d["offset"].as_u64().unwrap()).collect();
    assert_eq!(offsets, vec![1, 2, 3], "oldest first");
    for d in &dead {
        assert_eq!(d["attempts"], 3);
        assert_eq!(d["last_status"], 500);
        assert_eq!(d["topic"], "bookings:9");
        assert_eq!(d["body"]["offset"], d["offset"]);
        assert!(d["last_error"].as_str().unwrap().contains("500"));
    }
    assert_eq!(
        node.metric("hubbub_webhook_dead_lettered_total{sink=\"dead\"}")
            .await
            .unwrap(),
        3
    );

    // Replay two by id once the receiver is back: same webhook-id, delivered.
    rx.set_policy(|_, _| Answer::Status(200));
    let ids: Vec<&str> = dead[..2]
        .iter()
        .map(|d| d["webhook_id"].as_str().unwrap())
        .collect();
    let replayed: Value = node
        .post("/api/v1/webhooks/dead/dead/replay")
        .json(&json!({"webhook_ids": ids}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replayed["replayed"], 2);
    let got = rx
        .wait_until(LONG, "2 replayed deliveries", |r| {
            r.iter().filter(|r| r.succeeded()).count() >= 2
        })
        .await;
    let delivered: Vec<&str> = got
        .iter()
        .filter(|r| r.succeeded())
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(
        delivered, ids,
        "replayed with their original webhook-id, in order"
    );
    assert_eq!(sink_stat(&node, "dead", "dead").await, 1);

    // Delete the last one: nothing left, nothing delivered.
    let deleted: Value = node
        .http()
        .delete(node.url("/api/v1/webhooks/dead/dead"))
        .bearer_auth(hubbub_tests::API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["deleted"], 1);
    assert_eq!(sink_stat(&node, "dead", "dead").await, 0);
    assert_eq!(rx.delivered().len(), 2);
}

#[tokio::test]
async fn a_hanging_sink_slows_neither_publishing_nor_other_sinks_nor_sockets() {
    let stuck = Receiver::with(|_, _| Answer::Hang).await.unwrap();
    let fine = Receiver::start().await.unwrap();
    let config = format!(
        "{}{}",
        sink(
            "stuck",
            &stuck.url(),
            "timeout = \"300s\"\nmax_in_flight = 2"
        ),
        sink("fine", &fine.url(), "ordering = \"none\"")
    );
    let node = start_node!(&config).await.unwrap();
    let (mut ws, _) = hubbub_tests::Client::connect(
        &node.ws_url(),
        hubbub_tests::Proto::Json,
        &token("u", &["bookings:*"], &[], 3600),
    )
    .await
    .unwrap();
    ws.subscribe("bookings:5", None).await.unwrap();
    for i in 0..50 {
        node.publish("bookings:5", "e", json!(i)).await.unwrap();
    }
    for i in 0..50u64 {
        let p = ws.next_of("pub").await.unwrap();
        assert_eq!(p["offset"], i + 1);
    }
    fine.wait_until(LONG, "50 deliveries to the healthy sink", |r| {
        r.iter().filter(|r| r.succeeded()).count() >= 50
    })
    .await;
    assert_eq!(sink_stat(&node, "stuck", "pending").await, 50);
    assert_eq!(
        sink_stat(&node, "stuck", "in_flight").await,
        1,
        "ordering = topic: one in flight"
    );
    // One request, hanging (its timeout is 5 min, far beyond this test).
    assert_eq!(stuck.requests().len(), 1);
}

#[tokio::test]
async fn webhook_endpoints_are_for_operators_only() {
    let rx = Receiver::start().await.unwrap();
    let node = start_node!(&sink("ops", &rx.url(), "")).await.unwrap();
    let jwt = token("alice", &["*"], &["*"], 3600);
    for (method, path) in [
        ("GET", "/api/v1/webhooks"),
        ("GET", "/api/v1/webhooks/ops/dead"),
        ("POST", "/api/v1/webhooks/ops/dead/replay"),
        ("DELETE", "/api/v1/webhooks/ops/dead"),
    ] {
        let resp = node
            .http()
            .request(method.parse().unwrap(), node.url(path))
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden");
    }
    let resp = node.get("/api/v1/webhooks/nope/dead").send().await.unwrap();
    assert_eq!(resp.status(), 404, "an unknown sink is not found");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let resp = node
        .get("/api/v1/webhooks/ops/dead?limit=0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let list = webhooks(&node).await;
    assert_eq!(list["sinks"][0]["name"], "ops");
    assert_eq!(list["sinks"][0]["url"], rx.url());
}

#[test]
fn a_bad_sink_stops_the_hub_at_start_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("hubbub-wh-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = sink("s", "http://127.0.0.1:9/hook", "");
    for (bad, key) in [
        (
            good.replace("http://127.0.0.1:9/hook", "::not a url"),
            "webhooks[0].url",
        ),
        (
            good.replace("http://127.0.0.1:9", "http://example.com"),
            "webhooks[0].url",
        ),
        (
            good.replace("bookings:*", "bookings:*x"),
            "webhooks[0].topics[0]",
        ),
        (
            good.replace(SECRET_A, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "webhooks[0].secrets[0]",
        ),
        (
            good.replace(SECRET_A, "whsec_not*base64"),
            "webhooks[0].secrets[0]",
        ),
        (
            good.replace("name = \"s\"", "name = \"Not A Name\""),
            "webhooks[0].name",
        ),
    ] {
        let file = dir.join("bad.toml");
        let text = format!(
            "listen = \"127.0.0.1:0\"\n{bad}\n{}",
            hubbub_tests::node::base_config()
        );
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hubbub-node"))
            .args(["--config", file.to_str().unwrap()])
            .env_remove("HUBBUB_WEBHOOKS")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{key}: {stderr}");
        assert!(stderr.contains(key), "names {key}: {stderr}");
        assert!(
            !stderr.contains("LaLaSw"),
            "never echoes a secret: {stderr}"
        );
    }
}
