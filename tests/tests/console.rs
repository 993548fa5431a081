//! The operations console's side of the hub against a real binary: the
//! landing page and the console's assets, `GET /api/v1/topics` and
//! `POST /api/v1/tokens/subscribe` (operators only), and a wrong API key's
//! message. The console itself is driven in Chromium by
//! `client-sdk-ts/test/browser/console.test.ts`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::sse::SseStream;
use hubbub_tests::{BOOKINGS_KEY, Client, Proto, start_node, token};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn call(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn landing_page_and_console_assets_are_served_with_a_strict_policy() {
    let node = start_node!().await.unwrap();
    let landing = node.http().get(node.url("/")).send().await.unwrap();
    assert_eq!(landing.status(), StatusCode::OK);
    let html = landing.text().await.unwrap();
    for link in [
        "/console",
        "/api/openapi.json",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            html.contains(&format!("href=\"{link}\"")),
            "{link} in {html}"
        );
    }
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let resp = node.http().get(node.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let headers = resp.headers();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}: {headers:?}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    }
}

#[tokio::test]
async fn topics_lists_subscribed_topics_with_counts_and_positions_for_operators() {
    let node = start_node!().await.unwrap();
    let (mut a, _) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("a", &["bookings:*", "chat:*"], &[], 60),
    )
    .await
    .unwrap();
    let (mut b, _) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("b", &["bookings:*"], &[], 60),
    )
    .await
    .unwrap();
    for topic in ["bookings:1", "bookings:2", "chat:1"] {
        a.subscribe(topic, None).await.unwrap();
    }
    b.subscribe("bookings:1", None).await.unwrap();
    node.publish("bookings:1", "e", json!({})).await.unwrap();
    node.publish("bookings:1", "e", json!({})).await.unwrap();

    let (status, body) = call(node.get("/api/v1/topics")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows: Vec<(String, u64, u64)> = body["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["topic"].as_str().unwrap().to_owned(),
                t["subscribers"].as_u64().unwrap(),
                t["position"]["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("bookings:1".to_owned(), 2, 2),
            ("bookings:2".to_owned(), 1, 0),
            ("chat:1".to_owned(), 1, 0)
        ]
    );
    assert_eq!(body["truncated"], false);

    let (_, body) = call(node.get("/api/v1/topics?prefix=bookings:&limit=1")).await;
    assert_eq!(body["topics"].as_array().unwrap().len(), 1);
    assert_eq!(body["topics"][0]["topic"], "bookings:1");
    assert_eq!(body["truncated"], true);

    // Unsubscribing removes a topic from the list.
    a.request(json!({"type": "unsubscribe", "topic": "chat:1"}))
        .await
        .unwrap();
    let (_, body) = call(node.get("/api/v1/topics?prefix=chat")).await;
    assert_eq!(body["topics"], json!([]));

    let (status, body) = call(node.get("/api/v1/topics?limit=0")).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("bad_request"))
    );
    let long = "b".repeat(256);
    let (status, _) = call(node.get(&format!("/api/v1/topics?prefix={long}"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A publish-scoped key and a user token are no operators.
    let (status, _) = call(
        node.http()
            .get(node.url("/api/v1/topics"))
            .bearer_auth(BOOKINGS_KEY),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let user = token("a", &["*"], &["*"], 60);
    let (status, body) = call(
        node.http()
            .get(node.url("/api/v1/topics"))
            .bearer_auth(user),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
}

#[tokio::test]
async fn a_subscribe_token_opens_sse_on_its_topics_only_and_publishes_nothing() {
    let node = start_node!().await.unwrap();
    let (status, minted) = call(
        node.post("/api/v1/tokens/subscribe")
            .json(&json!({"topics": ["bookings:7"], "ttl_secs": 60})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{minted}");
    assert_eq!(minted["expires_in"], 60);
    assert_eq!(minted["sub"], "operator:all");
    let jwt = minted["token"].as_str().unwrap();

    let mut sse = SseStream::open(
        &node.url(&format!("/sse?topic=bookings:7&token={jwt}")),
        None,
    )
    .await
    .unwrap();
    sse.next_of("subscribed").await.unwrap();
    node.publish("bookings:7", "booking.created", json!({"id": "b-7"}))
        .await
        .unwrap();
    let publication = sse.next_of("pub").await.unwrap();
    assert_eq!(publication.data["data"]["id"], "b-7");

    // Another topic: refused. Publishing with it: refused.
    let other = node
        .http()
        .get(node.url(&format!("/sse?topic=bookings:8&token={jwt}")))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    let (status, _) = call(
        node.http()
            .post(node.url("/api/v1/publish"))
            .bearer_auth(jwt)
            .json(&json!({"topic": "bookings:7", "event": "x", "data": {}})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    for (body, status, code) in [
        (json!({"topics": ["nope:1"]}), 404, "unknown_namespace"),
        (json!({"topics": ["bad topic"]}), 400, "invalid_topic"),
        (json!({"topics": []}), 400, "bad_request"),
        (
            json!({"topics": ["bookings:1"], "ttl_secs": 3601}),
            400,
            "bad_request",
        ),
    ] {
        let (got, answer) = call(node.post("/api/v1/tokens/subscribe").json(&body)).await;
        assert_eq!(
            (got.as_u16(), &answer["error"]["code"]),
            (status, &json!(code)),
            "{body}"
        );
    }
    let (status, _) = call(
        node.http()
            .post(node.url("/api/v1/tokens/subscribe"))
            .bearer_auth(BOOKINGS_KEY)
            .json(&json!({"topics": ["bookings:7"]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let user = token("a", &["*"], &["*"], 60);
    let (status, _) = call(
        node.http()
            .post(node.url("/api/v1/tokens/subscribe"))
            .bearer_auth(user)
            .json(&json!({"topics": ["bookings:7"]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Issue 13, point 5: a wrong API key said "malformed token".
#[tokio::test]
async fn a_wrong_api_key_is_called_a_wrong_api_key() {
    let node = start_node!().await.unwrap();
    let (status, body) = call(
        node.http()
            .get(node.url("/api/v1/info"))
            .bearer_auth("sk_live_typo"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.contains("malformed"), "{message}");
    assert!(message.contains("not a valid API key"), "{message}");
    assert!(message.contains("key_sha256"), "{message}");
    // A JWT-shaped bearer still gets the token's own reason.
    let (_, body) = call(
        node.http()
            .get(node.url("/api/v1/info"))
            .bearer_auth("a.b.c"),
    )
    .await;
    assert_eq!(body["error"]["code"], "unauthorized");
}
