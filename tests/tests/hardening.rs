//! Issue 16, point 9: JWKS fetching (URL parsed with a URL parser, no
//! redirects, a capped body, unusable keys skipped), and Redis failures that
//! stay in the log: `/readyz` and REST 503 bodies carry no Redis error text,
//! and expected 503s are not logged at ERROR.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hubbub_tests::redis::OwnRedis;
use hubbub_tests::{Client, Proto, eventually, now, start_node_raw};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_hubbub-node");

const KEY_A: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbpy96NeJFih0Gbed
iIa4xNfr/iyL6ljYFU0AQX/kWo2hRANCAASV3Kvy0uoxy+qigQUUabxuPCHRE1UQ
lzDIfLYJxxdqoOH+vQxaU+qzXfIpeoUr07YIWHEUyU/C0uqX5lri671/
-----END PRIVATE KEY-----
";
const JWK_A: &str = r#"{"kty":"EC","crv":"P-256","kid":"a","alg":"ES256","x":"ldyr8tLqMcvqooEFFGm8bjwh0RNVEJcwyHy2CccXaqA","y":"4f69DFpT6rNd8il6hSvTtghYcRTJT8LS6pfmWuLrvX8"}"#;

fn sign_a(sub: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("a".to_owned());
    let claims = json!({"sub": sub, "exp": now() + 600, "subscribe": ["bookings:*"]});
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ec_pem(KEY_A.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// An HTTP server answering every request with `response` (a full HTTP/1.1
/// response); returns its address and a request counter.
async fn http_server(response: String) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let response = Arc::new(response);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(response.as_bytes()).await;
            });
        }
    });
    (addr, hits)
}

fn ok_json(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn jwks_node_toml(url: &str) -> String {
    format!(
        "[auth]\njwt_algorithm = \"ES256\"\njwks_url = \"{url}\"\njwks_refresh = \"1h\"\n[namespaces.bookings]\n"
    )
}

fn check_config(env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("check-config");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("HUBBUB_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied()).output().unwrap()
}

#[test]
fn jwks_urls_are_parsed_with_a_url_parser() {
    for url in [
        "http://127.0.0.1:80@evil.example/jwks.json",
        "http://localhost@evil.example/jwks.json",
        "http://127.0.0.1.evil.example/jwks.json",
        "http://localhost.evil.example/jwks.json",
        "https://",
        "ftp://127.0.0.1/jwks.json",
    ] {
        let out = check_config(&[
            ("HUBBUB_AUTH__JWT_ALGORITHM", "ES256"),
            ("HUBBUB_AUTH__JWKS_URL", url),
        ]);
        assert_eq!(out.status.code(), Some(64), "{url} must be refused");
    }
    for url in [
        "http://127.0.0.1:8081/jwks.json",
        "http://[::1]:8081/jwks.json",
        "http://localhost/jwks.json",
        "https://idp.example/.well-known/jwks.json",
    ] {
        let out = check_config(&[
            ("HUBBUB_AUTH__JWT_ALGORITHM", "ES256"),
            ("HUBBUB_AUTH__JWKS_URL", url),
        ]);
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn one_unusable_key_does_not_reject_the_set() {
    let doc = format!(
        r#"{{"keys":[{{"kty":"XYZ","kid":"future"}},{{"kty":"EC","crv":"P-256","kid":"broken","x":"!!","y":"!!"}},{JWK_A}]}}"#
    );
    let (addr, _) = http_server(ok_json(&doc)).await;
    let node = start_node_raw!(&jwks_node_toml(&format!("http://{addr}/jwks.json")))
        .await
        .unwrap();
    eventually("ready with the usable key", || async {
        let r = reqwest::get(node.url("/readyz")).await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let (_c, connected) = Client::connect(&node.ws_url(), Proto::Json, &sign_a("ann"))
        .await
        .unwrap();
    assert_eq!(connected["type"], "connected");
}

#[tokio::test]
async fn jwks_redirects_are_not_followed_and_huge_bodies_are_refused() {
    let (target, target_hits) = http_server(ok_json(&format!(r#"{{"keys":[{JWK_A}]}}"#))).await;
    let redirect = format!(
        "HTTP/1.1 302 Found\r\nlocation: http://{target}/jwks.json\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    let (redirector, redirector_hits) = http_server(redirect).await;
    // A valid document behind 2 MiB of whitespace.
    let padded = format!("{}{{\"keys\":[{JWK_A}]}}", " ".repeat(2 << 20));
    let (huge, huge_hits) = http_server(ok_json(&padded)).await;
    for (addr, hits) in [(&redirector, &redirector_hits), (&huge, &huge_hits)] {
        let node = start_node_raw!(&jwks_node_toml(&format!("http://{addr}/jwks.json")))
            .await
            .unwrap();
        // A failed fetch is retried after a few seconds: the second request
        // proves the first was refused.
        eventually("a retried fetch", || async {
            (hits.load(Ordering::SeqCst) >= 2).then_some(())
        })
        .await;
        let ready = reqwest::get(node.url("/readyz")).await.unwrap();
        assert_eq!(ready.status(), 503, "{addr}");
    }
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn redis_errors_stay_in_the_log_and_expected_503s_are_not_errors() {
    let mut redis = OwnRedis::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("hubbub-hardening-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hub.toml");
    let prefix = hubbub_tests::redis::unique_prefix("errtext");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nredis_url = \"{}\"\n[redis]\nkey_prefix = \"{prefix}\"\n{}",
            redis.url(),
            hubbub_tests::node::base_config()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .env_remove("HUBBUB_CONFIG")
        .env("HUBBUB_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(hubbub_tests::WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let base = format!(
        "http://{}",
        line.strip_prefix("listening on http://").unwrap()
    );
    let http = reqwest::Client::new();
    eventually("ready", || async {
        let r = http.get(format!("{base}/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    redis.stop().await.unwrap();
    let body = eventually("readyz 503", || async {
        let r = http.get(format!("{base}/readyz")).send().await.ok()?;
        if r.status() != 503 {
            return None;
        }
        r.text().await.ok()
    })
    .await;
    assert_eq!(body, "not ready: broker unavailable\n");
    let resp = http
        .post(format!("{base}/api/v1/publish"))
        .bearer_auth(hubbub_tests::API_KEY)
        .json(&json!({"topic": "bookings:1", "event": "e"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(
        body["error"]["message"],
        "the engine is unavailable and nothing was stored; retry (with the same idempotency key)",
        "{body}"
    );
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") && (l.contains("503") || l.contains("response failed")))
        .collect();
    assert!(
        errors.is_empty(),
        "expected 503s logged at ERROR: {errors:#?}"
    );
    assert!(
        log.contains("WARN"),
        "the Redis failure is in the log, at WARN: {log}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
