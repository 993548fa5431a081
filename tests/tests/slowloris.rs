//! Half-open HTTP request heads (issue 16 point 2): a connection that never
//! completes its request head, or never sends one, is closed after
//! `limits.header_read_timeout`, and does not stop anyone else.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use hubbub_tests::{Client, Proto, WAIT, start_node, token};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until end of stream (or a reset); fails if the hub keeps it open past [`WAIT`].
async fn wait_closed(mut s: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Err(_) => panic!("still open after {WAIT:?}; read so far: {got:?}"),
            Ok(Ok(0) | Err(_)) => return got,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn half_open_heads_and_silent_sockets_are_closed() {
    let node = start_node!("[limits]\nheader_read_timeout = \"1s\"")
        .await
        .unwrap();
    let mut held = Vec::new();
    for i in 0..50 {
        let mut s = TcpStream::connect(&node.addr).await.unwrap();
        if i % 2 == 0 {
            // Half a request head, and then nothing.
            s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
                .await
                .unwrap();
        }
        held.push(s);
    }
    // A keep-alive connection that finished a request and then idles.
    let mut idle = TcpStream::connect(&node.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    held.push(idle);
    // Everyone else is served meanwhile.
    let (mut c, _) = Client::connect(&node.ws_url(), Proto::Json, &token("a", &[], &[], 600))
        .await
        .unwrap();
    assert_eq!(
        c.request(json!({"type": "ping"})).await.unwrap()["type"],
        "pong"
    );
    let mut tasks = Vec::new();
    for s in held {
        tasks.push(tokio::spawn(wait_closed(s)));
    }
    let mut answered = 0;
    for t in tasks {
        let got = t.await.unwrap();
        if got.starts_with(b"HTTP/1.1 200") {
            answered += 1;
        }
    }
    assert_eq!(answered, 1, "the complete request was answered");
    // An upgraded WebSocket is not subject to the header timeout.
    assert_eq!(
        c.request(json!({"type": "ping"})).await.unwrap()["type"],
        "pong"
    );
}
