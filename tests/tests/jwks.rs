//! Tokens verified with keys fetched from `auth.jwks_url`: readiness waits
//! for the first fetch, and a rotated key (a new `kid`) is picked up without
//! a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use std::sync::{Arc, Mutex};

use hubbub_tests::{Client, Proto, eventually, now, start_node_raw};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY_A: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbpy96NeJFih0Gbed
iIa4xNfr/iyL6ljYFU0AQX/kWo2hRANCAASV3Kvy0uoxy+qigQUUabxuPCHRE1UQ
lzDIfLYJxxdqoOH+vQxaU+qzXfIpeoUr07YIWHEUyU/C0uqX5lri671/
-----END PRIVATE KEY-----
";
const JWK_A: &str = r#"{"kty":"EC","crv":"P-256","kid":"a","alg":"ES256","x":"ldyr8tLqMcvqooEFFGm8bjwh0RNVEJcwyHy2CccXaqA","y":"4f69DFpT6rNd8il6hSvTtghYcRTJT8LS6pfmWuLrvX8"}"#;
const KEY_B: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgLC/BhdLpdBWKezfK
awhkqf7WGlNzS3jsmP8a05JPtGahRANCAAQzLxDU8aYpfEuswxnLaqmx//nsPl0w
sphXtrrvTURAHTk2q8fEI4/0ZY4AmAoLYDI4vsSUTVlP+XiNs5xGVkcf
-----END PRIVATE KEY-----
";
const JWK_B: &str = r#"{"kty":"EC","crv":"P-256","kid":"b","alg":"ES256","x":"My8Q1PGmKXxLrMMZy2qpsf_57D5dMLKYV7a6701EQB0","y":"OTarx8Qjj_RljgCYCgtgMji-xJRNWU_5eI2znEZWRx8"}"#;

fn sign(kid: &str, key: &str, sub: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let claims = json!({"sub": sub, "exp": now() + 600, "subscribe": ["bookings:*"]});
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ec_pem(key.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A one-route HTTP server answering every request with the current document.
async fn jwks_server(doc: Arc<Mutex<String>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let body = doc.lock().unwrap().clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = sock.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/.well-known/jwks.json")
}

#[tokio::test]
async fn keys_come_from_the_jwks_url_and_rotate_without_a_restart() {
    let doc = Arc::new(Mutex::new(format!(r#"{{"keys":[{JWK_A}]}}"#)));
    let url = jwks_server(doc.clone()).await;
    let node = start_node_raw!(&format!(
        "[auth]\njwt_algorithm = \"ES256\"\njwks_url = \"{url}\"\njwks_refresh = \"1h\"\n[namespaces.bookings]\n"
    ))
    .await
    .unwrap();
    eventually("the first JWKS fetch (readiness)", || async {
        let r = reqwest::get(node.url("/readyz")).await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &sign("a", KEY_A, "ann"))
        .await
        .unwrap();
    assert_eq!(
        c.subscribe("bookings:1", None).await.unwrap()["type"],
        "subscribed"
    );

    // The identity provider rotates to key b; the hub has not seen it yet.
    *doc.lock().unwrap() = format!(r#"{{"keys":[{JWK_A},{JWK_B}]}}"#);
    let token_b = sign("b", KEY_B, "bea");
    let connected = eventually("the new kid to be fetched", || {
        let (url, token) = (node.ws_url(), token_b.clone());
        async move { Client::connect(&url, Proto::Json, &token).await.ok() }
    })
    .await;
    assert_eq!(connected.1["type"], "connected");
    // A token signed by b but claiming kid a is refused.
    let mut forged = Client::open(&node.ws_url(), Proto::Json).await.unwrap();
    let reply = forged
        .request(json!({"type": "connect", "token": sign("a", KEY_B, "eve")}))
        .await
        .unwrap();
    assert_eq!(reply["code"], "unauthorized");
}

/// A `jwks_file` holding one unusable key next to a good one: the hub starts
/// (the bad key is skipped with a warning naming its `kid`) and verifies
/// tokens with the good key; a file with no usable key is still refused.
#[tokio::test]
async fn a_jwks_file_with_one_bad_key_uses_the_others() {
    let dir = std::env::temp_dir().join(format!("hubbub-jwks-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = r#"{"kty":"EC","crv":"P-256","kid":"broken","alg":"ES256","x":"!!","y":"!!"}"#;
    let unknown = r#"{"kty":"nonsense","kid":"odd"}"#;
    let mixed = dir.join("mixed.json");
    std::fs::write(
        &mixed,
        format!(r#"{{"keys":[{broken},{JWK_A},{unknown}]}}"#),
    )
    .unwrap();
    let only_bad = dir.join("bad.json");
    std::fs::write(&only_bad, format!(r#"{{"keys":[{broken}]}}"#)).unwrap();
    let config = |file: &std::path::Path| {
        format!(
            "[auth]\njwt_algorithm = \"ES256\"\njwks_file = \"{}\"\n[namespaces.bookings]\n",
            file.display()
        )
    };
    let bin = env!("CARGO_BIN_EXE_hubbub-node");
    let check = |file: &std::path::Path| {
        let toml = dir.join(format!(
            "{}.toml",
            file.file_stem().unwrap().to_str().unwrap()
        ));
        std::fs::write(&toml, format!("listen = \"127.0.0.1:0\"\n{}", config(file))).unwrap();
        std::process::Command::new(bin)
            .args(["--config", toml.to_str().unwrap(), "check-config"])
            .env_remove("HUBBUB_CONFIG")
            .output()
            .unwrap()
    };
    let out = check(&mixed);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "one bad key rejects the set: {stderr}"
    );
    assert!(
        stderr.contains("\"broken\""),
        "the warning names the kid: {stderr}"
    );
    assert!(
        stderr.contains("\"odd\""),
        "the warning names the kid: {stderr}"
    );
    let out = check(&only_bad);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("auth.jwks_file") && stderr.contains("\"broken\""),
        "{stderr}"
    );

    let node = start_node_raw!(&config(&mixed)).await.unwrap();
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &sign("a", KEY_A, "ann"))
        .await
        .unwrap();
    assert_eq!(
        c.subscribe("bookings:1", None).await.unwrap()["type"],
        "subscribed"
    );
    std::fs::remove_dir_all(&dir).ok();
}
