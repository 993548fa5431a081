//! `GET /api/v1/outbox` against a real hub binary and a real PostgreSQL:
//! `{"configured": false}` on a node without `[outbox]`, operators only;
//! on a node with one, the state follows the consumer: a missing table is
//! the last error with its fix, a node that cannot take the lock is a
//! standby that still sees the lag of the oldest row, and once it takes the
//! lock it publishes, its lag drops to zero and a poison row is counted dead.
//! The standalone `hubbub-api` (which never consumes) says it has none.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::postgres::{TestDb, insert_rows};
use hubbub_tests::{BOOKINGS_KEY, Node, eventually, start_node, token};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn outbox(node: &Node) -> Value {
    let resp = node.get("/api/v1/outbox").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// Polls the outbox state until `ok` holds for it.
async fn outbox_until(node: &Node, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    eventually(what, || async {
        let s = outbox(node).await;
        ok(&s).then_some(s)
    })
    .await
}

#[tokio::test]
async fn without_an_outbox_the_answer_says_so_and_only_operators_get_it() {
    let node = start_node!().await.unwrap();
    assert_eq!(outbox(&node).await, json!({"configured": false}));
    let as_key = |bearer: String| {
        node.http()
            .get(node.url("/api/v1/outbox"))
            .bearer_auth(bearer)
            .send()
    };
    for bearer in [BOOKINGS_KEY.to_owned(), token("u", &["*"], &["*"], 60)] {
        let resp = as_key(bearer).await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden", "{body}");
    }
    let resp = node
        .http()
        .get(node.url("/api/v1/outbox"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_state_follows_the_consumer_from_missing_table_to_standby_to_leader() {
    let db = TestDb::create("outbox_api").await.unwrap();
    let node = start_node!(&db.node_toml("ob_api", 500)).await.unwrap();

    // No table yet: not up, and the last error says how to create it.
    let s = outbox_until(&node, "the missing table reported", |s| {
        s["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("hubbub outbox init"))
    })
    .await;
    assert_eq!(
        (&s["configured"], &s["table"], &s["up"], &s["role"]),
        (
            &json!(true),
            &json!("ob_api"),
            &json!(false),
            &json!("standby")
        ),
        "{s}"
    );
    assert_eq!(
        (&s["batch_size"], &s["poll_interval_ms"]),
        (&json!(500), &json!(200))
    );
    assert!(s["last_error_ago_ms"].is_u64(), "{s}");

    // The table exists, but another session holds the table's leader lock:
    // this node stands by and still sees how old the oldest row is. The
    // lock is taken before the table exists: the node only tries for it once
    // its statements prepare, so it cannot win the lock first.
    let holder = db.client().await.unwrap();
    let locked: bool = holder
        .query_one(
            "SELECT pg_try_advisory_lock(1752523362, hashtext('ob_api'))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(locked);
    db.init_outbox("ob_api").await.unwrap();
    holder
        .batch_execute(
            "INSERT INTO ob_api (topic, event, data, created_at) VALUES
               ('bookings:o1', 'booking.created', '{\"id\": \"b-1\"}', now() - interval '30 seconds'),
               ('bookings:o1', 'booking.updated', '{\"id\": \"b-1\"}', now() - interval '20 seconds');",
        )
        .await
        .unwrap();
    let s = outbox_until(&node, "a standby that sees the lag", |s| {
        s["up"] == true && s["lag_ms"].as_u64().is_some_and(|l| l >= 30_000)
    })
    .await;
    assert_eq!(s["role"], "standby", "{s}");
    assert_eq!(
        s["pending_rows"],
        Value::Null,
        "a standby does not read rows: {s}"
    );
    assert_eq!(s["published"], 0);
    assert!(s["last_read_ago_ms"].is_u64(), "{s}");

    // The lock is freed: this node takes over and publishes both rows.
    holder
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    let s = outbox_until(&node, "the leader caught up", |s| {
        s["role"] == "leader" && s["published"] == 2 && s["lag_ms"] == 0
    })
    .await;
    assert_eq!(
        (&s["pending_rows"], &s["pending_rows_at_least"]),
        (&json!(0), &json!(false)),
        "{s}"
    );
    assert!(s["batches"].as_u64().unwrap() >= 1, "{s}");
    let history = node
        .get("/api/v1/topics/bookings:o1/history")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(history["position"]["offset"], 2, "{history}");

    // A row that can never be published is counted dead, and is the last error.
    insert_rows(
        &holder,
        "ob_api",
        &[("nowhere:o1".to_owned(), "e".to_owned(), json!({}))],
    )
    .await
    .unwrap();
    let s = outbox_until(&node, "the poison row counted dead", |s| s["dead"] == 1).await;
    let error = s["last_error"].as_str().unwrap();
    assert!(error.contains("moved to ob_api_dead"), "{s}");
    assert_eq!(s["published"], 2, "{s}");
}

/// The standalone `hubbub-api` never consumes the outbox, even with an
/// `[outbox]` section in its configuration: it says it has none, not that
/// it is a standby that cannot read PostgreSQL.
#[tokio::test]
async fn the_standalone_api_says_it_consumes_no_outbox() {
    use hubbub_tests::redis::{node_toml, shared_url, unique_prefix, wait_ready};
    let db = TestDb::create("outbox_api_rest").await.unwrap();
    db.init_outbox("ob_rest").await.unwrap();
    let toml = format!(
        "{}\n{}",
        node_toml(&shared_url(), &unique_prefix("outbox-api"), "api-rest"),
        db.node_toml("ob_rest", 500)
    );
    let api = Node::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_hubbub-api-node")),
        &toml,
    )
    .await
    .unwrap();
    wait_ready(&api).await.unwrap();
    assert_eq!(outbox(&api).await, json!({"configured": false}));
}
