//! `hubbub publish TOPIC EVENT JSON` against a real hub: with an API key,
//! with a token minted from the configured secret, and its messages for bad
//! JSON, a wrong key and a hub that is not there.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use std::process::{Command, Output};

use hubbub_tests::{API_KEY, Client, Proto, SECRET, start_node, token};

const BIN: &str = env!("CARGO_BIN_EXE_hubbub-node");

/// Runs `hubbub --config <HS256 with the test secret> args…` off the async runtime.
async fn hubbub(args: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("hubbub-cli-publish-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cli.toml");
    std::fs::write(
        &file,
        format!("[auth]\njwt_algorithm = \"HS256\"\njwt_secret = \"{SECRET}\"\n"),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--config").arg(&file).args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HUBBUB_")) {
        cmd.env_remove(k);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn publish_reaches_subscribers_with_a_key_or_a_minted_token() {
    let node = start_node!().await.unwrap();
    let url = format!("http://{}", node.addr);
    let (mut sub, _) = Client::connect(
        &node.ws_url(),
        Proto::Json,
        &token("ada", &["bookings:*"], &[], 60),
    )
    .await
    .unwrap();
    sub.subscribe("bookings:cli", None).await.unwrap();

    let out = hubbub(&[
        "publish",
        "--url",
        &url,
        "--key",
        API_KEY,
        "bookings:cli",
        "booking.created",
        r#"{"id":"b-1","guest":"Ada"}"#,
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("published to bookings:cli at offset 1"),
        "{}",
        text(&out)
    );
    let publication = sub.next_of("pub").await.unwrap();
    assert_eq!(publication["data"]["guest"], "Ada");

    // No key: a token minted with the configured secret, for this topic only.
    let out = hubbub(&[
        "publish",
        "--url",
        &url,
        "bookings:cli",
        "booking.updated",
        "42",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let publication = sub.next_of("pub").await.unwrap();
    assert_eq!(
        (publication["offset"].as_u64(), &publication["data"]),
        (Some(2), &serde_json::json!(42))
    );

    // Bad JSON: a usage error that says so, nothing sent.
    let out = hubbub(&[
        "publish",
        "--url",
        &url,
        "bookings:cli",
        "e",
        "{guest: Ada}",
    ])
    .await;
    assert_eq!(out.status.code(), Some(64));
    assert!(text(&out).contains("not valid JSON"), "{}", text(&out));

    // A wrong key: the hub's reason.
    let out = hubbub(&[
        "publish",
        "--url",
        &url,
        "--key",
        "sk_typo",
        "bookings:cli",
        "e",
        "{}",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not a valid API key"), "{}", text(&out));

    // An unknown namespace: the hub's reason too.
    let out = hubbub(&["publish", "--url", &url, "nope:1", "e", "{}"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("unknown_namespace"), "{}", text(&out));
}

#[tokio::test]
async fn publish_to_a_hub_that_is_not_there_says_how_to_point_at_one() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = hubbub(&["publish", "--url", &url, "bookings:1", "e", "{}"]).await;
    assert_eq!(out.status.code(), Some(1));
    let message = text(&out);
    assert!(message.contains("cannot reach the hub"), "{message}");
    assert!(message.contains("--url"), "{message}");
}
