//! The PostgreSQL outbox on one node (memory engine) against a real
//! PostgreSQL: committed rows reach a WebSocket subscriber, rolled-back rows
//! never do, poison rows go to `<table>_dead` without blocking the rows
//! behind them, a crash between publish and delete publishes nothing twice,
//! a missing table is an error the node retries (and stays ready), and
//! `hubbub outbox init` prints and applies the schema. Each test has a
//! database of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::postgres::{TestDb, count, insert_rows};
use hubbub_tests::{Client, Node, Proto, eventually, start_node, token};
use serde_json::{Value, json};

async fn subscriber(node: &Node, topic: &str) -> Client {
    let tok = token("u", &["bookings:*"], &[], 600);
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &tok)
        .await
        .unwrap();
    let r = c.subscribe(topic, None).await.unwrap();
    assert_eq!(r["type"], "subscribed", "{r}");
    c
}

fn rows(topic: &str, ns: impl IntoIterator<Item = u64>) -> Vec<(String, String, Value)> {
    ns.into_iter()
        .map(|n| {
            (
                topic.to_owned(),
                "booking.updated".to_owned(),
                json!({"n": n}),
            )
        })
        .collect()
}

async fn metrics_text(node: &Node) -> String {
    node.http()
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn committed_rows_arrive_and_rolled_back_rows_never_do() {
    let db = TestDb::create("commit").await.unwrap();
    db.init_outbox("hubbub_outbox").await.unwrap();
    let node = start_node!(&db.node_toml("hubbub_outbox", 500))
        .await
        .unwrap();
    let mut sub = subscriber(&node, "bookings:b1").await;
    let pg = db.client().await.unwrap();
    pg.batch_execute(
        "BEGIN;
         CREATE TABLE city (id int PRIMARY KEY, name text);
         INSERT INTO city VALUES (1, 'Paris');
         INSERT INTO hubbub_outbox (topic, event, data) VALUES ('bookings:b1', 'city.updated', '{\"n\": 1}');
         INSERT INTO hubbub_outbox (topic, event, data) VALUES ('bookings:b1', 'city.updated', '{\"n\": 2}');
         COMMIT;",
    )
    .await
    .unwrap();
    pg.batch_execute(
        "BEGIN;
         UPDATE city SET name = 'Lyon';
         INSERT INTO hubbub_outbox (topic, event, data) VALUES ('bookings:b1', 'city.updated', '{\"n\": 99}');
         ROLLBACK;",
    )
    .await
    .unwrap();
    insert_rows(&pg, "hubbub_outbox", &rows("bookings:b1", [3]))
        .await
        .unwrap();
    for n in 1..=3 {
        let p = sub.next_of("pub").await.unwrap();
        assert_eq!(p["data"]["n"], n, "{p}");
        let event = if n < 3 {
            "city.updated"
        } else {
            "booking.updated"
        };
        assert_eq!(p["event"], event);
        assert_eq!(p["offset"], n);
    }
    eventually("the table to be emptied", || async {
        (count(&pg, "hubbub_outbox").await.unwrap() == 0).then_some(())
    })
    .await;
    // The counter moves after the rows' delete commits, so an empty table
    // can be seen a moment before it.
    eventually("hubbub_outbox_published_total to reach 3", || async {
        (node.metric("hubbub_outbox_published_total").await.unwrap() == 3).then_some(())
    })
    .await;
    assert_eq!(node.metric("hubbub_outbox_dead_total").await.unwrap(), 0);
    assert_eq!(node.metric("hubbub_outbox_leader").await.unwrap(), 1);
    // The rolled-back row never reached history either.
    let h: Value = node
        .get("/api/v1/topics/bookings:b1/history")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ns: Vec<u64> = h["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, vec![1, 2, 3]);
}

#[tokio::test]
async fn poison_rows_go_dead_and_rows_behind_them_flow() {
    let db = TestDb::create("poison").await.unwrap();
    db.init_outbox("ob").await.unwrap();
    let node = start_node!(&db.node_toml("ob", 500)).await.unwrap();
    let mut sub = subscriber(&node, "bookings:p").await;
    let pg = db.client().await.unwrap();
    let big = json!({"blob": "x".repeat(70_000)});
    let batch = vec![
        ("bookings:p".to_owned(), "e".to_owned(), json!({"n": 1})),
        ("nowhere:p".to_owned(), "e".to_owned(), json!({})),
        ("bookings:".to_owned(), "e".to_owned(), json!({})),
        ("bookings:p".to_owned(), "e".to_owned(), big),
        ("bookings:p".to_owned(), String::new(), json!({})),
        ("bookings:p".to_owned(), "e".to_owned(), json!({"n": 2})),
    ];
    insert_rows(&pg, "ob", &batch).await.unwrap();
    pg.batch_execute(
        "INSERT INTO ob (topic, event, data, idempotency_key) VALUES ('bookings:p', 'e', '{}', repeat('k', 300));
         INSERT INTO ob (topic, event, data) VALUES ('bookings:p', 'e', '{\"n\": 3}');",
    )
    .await
    .unwrap();
    for n in 1..=3 {
        let p = sub.next_of("pub").await.unwrap();
        assert_eq!(p["data"]["n"], n, "{p}");
    }
    eventually("the table to be emptied", || async {
        (count(&pg, "ob").await.unwrap() == 0).then_some(())
    })
    .await;
    let dead = pg
        .query(
            "SELECT topic, event, error, failed_at IS NOT NULL FROM ob_dead ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let dead: Vec<(String, String, String, bool)> = dead
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(dead.len(), 5, "{dead:?}");
    assert!(dead[0].2.contains("namespace `nowhere`"), "{dead:?}");
    assert!(
        dead[1].0 == "bookings:" && !dead[1].2.is_empty(),
        "{dead:?}"
    );
    assert!(dead[2].2.contains("bytes"), "{dead:?}");
    assert!(dead[3].2.contains("event"), "{dead:?}");
    assert!(dead[4].2.contains("idempotency_key"), "{dead:?}");
    assert!(dead.iter().all(|d| d.3));
    assert_eq!(node.metric("hubbub_outbox_dead_total").await.unwrap(), 5);
    assert_eq!(
        node.metric("hubbub_outbox_published_total").await.unwrap(),
        3
    );
}

#[tokio::test]
async fn a_crash_between_publish_and_delete_publishes_nothing_twice() {
    let db = TestDb::create("crash").await.unwrap();
    db.init_outbox("hubbub_outbox").await.unwrap();
    let pg = db.client().await.unwrap();
    // The test's session holds the table's leader lock, so the node stands by.
    pg.batch_execute("SELECT pg_advisory_lock(1752523362, hashtext('hubbub_outbox'))")
        .await
        .unwrap();
    let node = start_node!(&db.node_toml("hubbub_outbox", 500))
        .await
        .unwrap();
    insert_rows(&pg, "hubbub_outbox", &rows("bookings:c", 1..=5))
        .await
        .unwrap();
    pg.batch_execute("UPDATE hubbub_outbox SET idempotency_key = 'own-' || id WHERE id = 5")
        .await
        .unwrap();
    // A leader published rows 1..=5 and died before deleting them: replay
    // that through the REST API with the keys the consumer uses.
    let ids: Vec<i64> = pg
        .query("SELECT id FROM hubbub_outbox ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let key = if i == 4 {
            format!("own-{id}")
        } else {
            format!("outbox:{id}")
        };
        let r = node
            .post("/api/v1/publish")
            .json(&json!({"topic": "bookings:c", "event": "booking.updated", "data": {"n": i + 1}, "idempotency_key": key}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    insert_rows(&pg, "hubbub_outbox", &rows("bookings:c", [6]))
        .await
        .unwrap();
    assert_eq!(node.metric("hubbub_outbox_leader").await.unwrap(), 0);
    assert_eq!(count(&pg, "hubbub_outbox").await.unwrap(), 6);
    // The lock is freed: the node takes over and publishes all six rows again.
    pg.batch_execute("SELECT pg_advisory_unlock(1752523362, hashtext('hubbub_outbox'))")
        .await
        .unwrap();
    eventually("the table to be emptied", || async {
        (count(&pg, "hubbub_outbox").await.unwrap() == 0).then_some(())
    })
    .await;
    assert_eq!(
        node.metric("hubbub_outbox_published_total").await.unwrap(),
        6
    );
    let h: Value = node
        .get("/api/v1/topics/bookings:c/history")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen: Vec<(u64, u64)> = h["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["offset"].as_u64().unwrap(),
                p["data"]["n"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        (1..=6).map(|n| (n, n)).collect::<Vec<_>>(),
        "each row once"
    );
}

#[tokio::test]
async fn a_missing_table_is_retried_and_the_node_stays_ready() {
    let db = TestDb::create("missing").await.unwrap();
    let node = start_node!(&db.node_toml("late_outbox", 500))
        .await
        .unwrap();
    let mut sub = subscriber(&node, "bookings:m").await;
    // Give the consumer time to fail a few times: it must not take the node down.
    eventually("the outbox to be reported down", || async {
        let text = metrics_text(&node).await;
        text.contains("hubbub_outbox_up 0\n").then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let ready = node.http().get(node.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "readyz stays green without the outbox");
    assert_eq!(node.metric("hubbub_outbox_up").await.unwrap(), 0);
    // `hubbub outbox init --apply` creates the tables; the consumer picks them up.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hubbub-node"))
        .args(["outbox", "init", "--apply"])
        .env_remove("HUBBUB_CONFIG")
        .env(
            "HUBBUB_AUTH__JWT_SECRET",
            "an-outbox-test-secret-0123456789",
        )
        .env("HUBBUB_OUTBOX__POSTGRES_URL", &db.url)
        .env("HUBBUB_OUTBOX__TABLE", "late_outbox")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("late_outbox_dead"));
    let pg = db.client().await.unwrap();
    insert_rows(&pg, "late_outbox", &rows("bookings:m", [1]))
        .await
        .unwrap();
    let p = sub.next_of("pub").await.unwrap();
    assert_eq!(p["data"]["n"], 1);
    assert_eq!(node.metric("hubbub_outbox_up").await.unwrap(), 1);
}

#[tokio::test]
async fn outbox_init_prints_the_schema_and_check_config_hides_the_password() {
    let bin = env!("CARGO_BIN_EXE_hubbub-node");
    let out = std::process::Command::new(bin)
        .args(["outbox", "init"])
        .env_remove("HUBBUB_CONFIG")
        .env(
            "HUBBUB_AUTH__JWT_SECRET",
            "an-outbox-test-secret-0123456789",
        )
        .env(
            "HUBBUB_OUTBOX__POSTGRES_URL",
            "postgres://app:s3cret@db.invalid/app",
        )
        .env("HUBBUB_OUTBOX__TABLE", "city_events")
        .output()
        .unwrap();
    assert!(out.status.success());
    let sql = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "CREATE TABLE IF NOT EXISTS \"city_events\"",
        "CREATE TABLE IF NOT EXISTS \"city_events_dead\"",
        "CREATE INDEX IF NOT EXISTS",
        "pg_notify('city_events', '')",
        "CREATE TRIGGER \"city_events_notify\"",
    ] {
        assert!(sql.contains(needle), "{needle} in {sql}");
    }
    assert!(!sql.contains("s3cret"));
    let out = std::process::Command::new(bin)
        .args(["check-config"])
        .env_remove("HUBBUB_CONFIG")
        .env(
            "HUBBUB_AUTH__JWT_SECRET",
            "an-outbox-test-secret-0123456789",
        )
        .env(
            "HUBBUB_OUTBOX__POSTGRES_URL",
            "postgres://app:s3cret@db.invalid/app",
        )
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("postgres://app:***@db.invalid/app"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    let out = std::process::Command::new(bin)
        .args(["check-config"])
        .env_remove("HUBBUB_CONFIG")
        .env(
            "HUBBUB_AUTH__JWT_SECRET",
            "an-outbox-test-secret-0123456789",
        )
        .env("HUBBUB_OUTBOX__POSTGRES_URL", "postgres://h/db")
        .env("HUBBUB_OUTBOX__TABLE", "bad-name")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("outbox.table (from HUBBUB_OUTBOX__TABLE)")
    );
}
