//! Every REST endpoint with its success shape and its error statuses, plus
//! health, readiness and metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{BOOKINGS_KEY, Client, Proto, start_node, token};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn call(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// Sends only the head of a POST announcing `len` body bytes; returns the
/// status and body of the answer.
async fn raw_post_head(addr: &str, path: &str, len: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
        hubbub_tests::API_KEY
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(hubbub_tests::WAIT, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn assert_error(got: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(got.0.as_u16(), status, "{got:?}");
    assert_eq!(got.1["error"]["code"], code, "{got:?}");
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{got:?}"
    );
}

#[tokio::test]
async fn publish_answers_positions_and_errors() {
    let node = start_node!("[limits]\nmax_frame_bytes = 4096")
        .await
        .unwrap();
    let ok = call(
        node.post("/api/v1/publish")
            .json(&json!({"topic": "bookings:1", "event": "booking.created", "data": {"id": 1}})),
    )
    .await;
    assert_eq!(ok.0, StatusCode::OK);
    assert_eq!(ok.1["position"]["offset"], 1);
    assert!(
        ok.1["position"]["epoch"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );

    let http = node.http();
    let url = node.url("/api/v1/publish");
    let body = json!({"topic": "bookings:1", "event": "e", "data": 1});
    assert_error(
        &call(http.post(&url).json(&body)).await,
        401,
        "unauthorized",
    );
    assert_error(
        &call(http.post(&url).bearer_auth("wrong-key").json(&body)).await,
        401,
        "unauthorized",
    );
    assert_error(
        &call(
            http.post(&url)
                .header("Authorization", "Basic abc")
                .json(&body),
        )
        .await,
        401,
        "unauthorized",
    );
    let scoped = json!({"topic": "chat:menu", "event": "e", "data": 1});
    assert_error(
        &call(http.post(&url).bearer_auth(BOOKINGS_KEY).json(&scoped)).await,
        403,
        "forbidden",
    );
    assert_eq!(
        call(http.post(&url).bearer_auth(BOOKINGS_KEY).json(&body))
            .await
            .0,
        StatusCode::OK
    );
    assert_error(
        &call(
            node.post("/api/v1/publish")
                .json(&json!({"topic": "nope:1", "event": "e"})),
        )
        .await,
        404,
        "unknown_namespace",
    );
    assert_error(
        &call(
            node.post("/api/v1/publish")
                .json(&json!({"topic": "bad topic", "event": "e"})),
        )
        .await,
        400,
        "invalid_topic",
    );
    assert_error(
        &call(
            node.post("/api/v1/publish")
                .json(&json!({"topic": "bookings:1"})),
        )
        .await,
        400,
        "bad_request",
    );
    assert_error(
        &call(
            node.post("/api/v1/publish")
                .json(&json!({"topic": 5, "event": "e"})),
        )
        .await,
        400,
        "bad_request",
    );
    assert_error(
        &call(
            node.post("/api/v1/publish")
                .json(&json!({"topic": "bookings:1", "event": "e", "extra": 1})),
        )
        .await,
        400,
        "bad_request",
    );
    assert_error(
        &call(
            node.post("/api/v1/publish")
                .body("{not json")
                .header("content-type", "application/json"),
        )
        .await,
        400,
        "bad_request",
    );
    let big = json!({"topic": "bookings:1", "event": "e", "data": "x".repeat(5000)});
    assert_error(
        &call(node.post("/api/v1/publish").json(&big)).await,
        413,
        "too_large",
    );
    // A body over the REST limit is refused from its Content-Length, before it is sent.
    let (status, answer) = raw_post_head(&node.addr, "/api/v1/publish", 8 << 20).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("too_large"), "{answer}");

    // A user token with a publish claim may publish within it.
    let user = token("svc", &[], &["bookings:*"], 600);
    assert_eq!(
        call(http.post(&url).bearer_auth(&user).json(&body)).await.0,
        StatusCode::OK
    );
    assert_error(
        &call(http.post(&url).bearer_auth(&user).json(&scoped)).await,
        403,
        "forbidden",
    );
    let expired = token("svc", &[], &["bookings:*"], -5);
    assert_error(
        &call(http.post(&url).bearer_auth(&expired).json(&body)).await,
        401,
        "unauthorized",
    );
}

#[tokio::test]
async fn batch_results_follow_request_order() {
    let node = start_node!().await.unwrap();
    let (mut c, _) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("a", &["bookings:*"], &[], 600),
    )
    .await
    .unwrap();
    c.subscribe("bookings:b", None).await.unwrap();
    let body = json!({"publications": [
        {"topic": "bookings:b", "event": "one", "data": 1},
        {"topic": "nope:1", "event": "bad"},
        {"topic": "bookings:b", "event": "two", "data": 2, "idempotency_key": "k"},
        {"topic": "bookings:b"},
        {"topic": "bookings:b", "event": "two-again", "data": 2, "idempotency_key": "k"},
    ]});
    let (status, r) = call(node.post("/api/v1/batch").json(&body)).await;
    assert_eq!(status, StatusCode::OK);
    let results = r["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    assert_eq!(results[0]["position"]["offset"], 1);
    assert_eq!(results[1]["error"]["code"], "unknown_namespace");
    assert_eq!(results[2]["position"]["offset"], 2);
    assert_eq!(results[3]["error"]["code"], "bad_request");
    assert_eq!(
        results[4]["position"], results[2]["position"],
        "idempotent within the batch"
    );
    assert_eq!(c.next_of("pub").await.unwrap()["event"], "one");
    assert_eq!(c.next_of("pub").await.unwrap()["event"], "two");
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"topic": "bookings:b", "event": "e"}))
        .collect();
    assert_error(
        &call(
            node.post("/api/v1/batch")
                .json(&json!({"publications": too_many})),
        )
        .await,
        413,
        "too_large",
    );
    assert_error(
        &call(node.post("/api/v1/batch").json(&json!({"pubs": []}))).await,
        400,
        "bad_request",
    );
}

#[tokio::test]
async fn history_and_presence_endpoints() {
    let node = start_node!().await.unwrap();
    let first = node
        .publish("bookings:7", "booking.created", json!({"n": 1}))
        .await
        .unwrap();
    for n in 2..=4 {
        node.publish("bookings:7", "booking.updated", json!({"n": n}))
            .await
            .unwrap();
    }
    let (s, h) = call(node.get("/api/v1/topics/bookings:7/history")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["publications"].as_array().unwrap().len(), 4);
    assert_eq!(h["position"]["offset"], 4);
    assert_eq!(h["publications"][0]["event"], "booking.created");
    let since = format!(
        "/api/v1/topics/bookings:7/history?since={}:{}&limit=2",
        first["epoch"].as_str().unwrap(),
        1
    );
    let (_, h) = call(node.get(&since)).await;
    let offsets: Vec<u64> = h["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![2, 3]);
    assert_error(
        &call(node.get("/api/v1/topics/bookings:7/history?since=garbage")).await,
        400,
        "bad_request",
    );
    assert_error(
        &call(node.get("/api/v1/topics/bookings:7/history?limit=5000")).await,
        400,
        "limit_exceeded",
    );
    assert_error(
        &call(node.get("/api/v1/topics/bookings:7/history?limit=abc")).await,
        400,
        "bad_request",
    );
    assert_error(
        &call(node.get("/api/v1/topics/nowhere:1/history")).await,
        404,
        "unknown_namespace",
    );
    // An API key reads the topics it may publish to.
    let (s, _) = call(
        node.http()
            .get(node.url("/api/v1/topics/bookings:7/history"))
            .bearer_auth(BOOKINGS_KEY),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_error(
        &call(
            node.http()
                .get(node.url("/api/v1/topics/chat:menu/history"))
                .bearer_auth(BOOKINGS_KEY),
        )
        .await,
        403,
        "forbidden",
    );

    let (_, p) = call(node.get("/api/v1/topics/bookings:7/presence")).await;
    assert_eq!(p, json!({"members": []}));
    let (mut c, connected) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("pia", &["bookings:*"], &[], 600),
    )
    .await
    .unwrap();
    c.subscribe("bookings:7", None).await.unwrap();
    let (s, p) = call(node.get("/api/v1/topics/bookings:7/presence")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["members"][0]["user"], "pia");
    assert_eq!(p["members"][0]["client_id"], connected["client_id"]);
    assert_error(
        &call(node.get("/api/v1/topics/nohist:1/presence")).await,
        400,
        "bad_request",
    );
}

#[tokio::test]
async fn disconnect_and_info_need_an_api_key() {
    let node = start_node!().await.unwrap();
    let (_c, _) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("zed", &["bookings:*"], &[], 600),
    )
    .await
    .unwrap();
    let (s, info) = call(node.get("/api/v1/info")).await;
    assert_eq!(s, StatusCode::OK);
    let nodes = info["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["connections"], 1);
    assert!(nodes[0]["name"].as_str().is_some_and(|n| !n.is_empty()));
    let user = token("zed", &[], &["*"], 600);
    assert_error(
        &call(node.http().get(node.url("/api/v1/info")).bearer_auth(&user)).await,
        403,
        "forbidden",
    );
    assert_error(
        &call(
            node.http()
                .post(node.url("/api/v1/disconnect"))
                .bearer_auth(&user)
                .json(&json!({"user": "zed"})),
        )
        .await,
        403,
        "forbidden",
    );
    assert_error(
        &call(node.post("/api/v1/disconnect").json(&json!({"who": "zed"}))).await,
        400,
        "bad_request",
    );
    let (s, r) = call(
        node.post("/api/v1/disconnect")
            .json(&json!({"user": "nobody"})),
    )
    .await;
    assert_eq!((s, r), (StatusCode::OK, json!({"disconnected": 0})));
}

#[tokio::test]
async fn openapi_health_readiness_and_metrics() {
    let node = start_node!().await.unwrap();
    let (s, doc) = call(node.http().get(node.url("/api/openapi.json"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/api/v1/publish",
        "/api/v1/batch",
        "/api/v1/topics/{topic}/history",
        "/api/v1/topics/{topic}/presence",
        "/api/v1/disconnect",
        "/api/v1/info",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    let health = node.http().get(node.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = node.http().get(node.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    node.publish("bookings:m", "e", json!(1)).await.unwrap();
    let _ = call(
        node.post("/api/v1/publish")
            .json(&json!({"topic": "nope:1", "event": "e"})),
    )
    .await;
    assert!(node.metric("hubbub_publications_total").await.unwrap() >= 1);
    assert!(
        node.metric("hubbub_publish_duration_seconds_count")
            .await
            .unwrap()
            >= 1
    );
    let answered = node
        .get("/api/v1/info")
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        answered.headers().get("x-request-id").unwrap(),
        "trace-me-42",
        "a caller's request id is kept"
    );
    let generated = node.get("/api/v1/info").send().await.unwrap();
    assert!(
        generated
            .headers()
            .get("x-request-id")
            .is_some_and(|v| v.len() >= 32),
        "one is made otherwise"
    );
    assert_eq!(
        node.metric("hubbub_errors_total{code=\"unknown_namespace\"}")
            .await
            .unwrap(),
        1
    );
    let text = node
        .http()
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "hubbub_connections ",
        "hubbub_subscriptions ",
        "hubbub_deliveries_total ",
        "hubbub_slow_consumer_disconnects_total ",
    ] {
        assert!(text.contains(series), "{series}");
    }
}

/// Issue 16, point 6: only an operator key (`operator = true`) may call the
/// operator endpoints; a key scoped to `bookings:*` gets 403 `forbidden`, and
/// its disconnect reaches nobody.
#[tokio::test]
async fn scoped_keys_are_not_operators() {
    let node = start_node!().await.unwrap();
    let (mut victim, _) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("victim", &["bookings:*"], &[], 600),
    )
    .await
    .unwrap();
    let scoped = |req: reqwest::RequestBuilder| req.bearer_auth(BOOKINGS_KEY);
    assert_error(
        &call(scoped(node.http().get(node.url("/api/v1/info")))).await,
        403,
        "forbidden",
    );
    assert_error(
        &call(
            scoped(node.http().post(node.url("/api/v1/disconnect")))
                .json(&json!({"user": "victim", "reconnect": false})),
        )
        .await,
        403,
        "forbidden",
    );
    // The victim is still connected and served.
    assert_eq!(
        victim.request(json!({"type": "ping"})).await.unwrap()["type"],
        "pong"
    );
    // The scoped key keeps what v1 gives it.
    let (s, _) = call(
        scoped(node.http().post(node.url("/api/v1/publish")))
            .json(&json!({"topic": "bookings:1", "event": "e"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // The operator key (the test base config's `all`) may.
    let (s, info) = call(node.get("/api/v1/info")).await;
    assert_eq!(s, StatusCode::OK, "{info}");
}
