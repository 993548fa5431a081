//! Support for Hubbub's black-box tests: start a real `hubbub` process on
//! port 0 with a generated configuration, mint tokens, drive it with a typed
//! WebSocket client (JSON or MessagePack) and a REST client. Every wait has a
//! deadline; nothing sleeps and hopes.

pub mod chaos;
pub mod client;
pub mod node;
pub mod postgres;
pub mod receiver;
pub mod redis;
pub mod sse;

pub use client::{Client, Closed, Proto};
pub use node::{API_KEY, BOOKINGS_KEY, Node, SECRET, now, sign, token};

use std::time::Duration;

/// How long any single expected event may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Starts a node from the test package's `hubbub-node` binary with `extra`
/// TOML appended to the base configuration.
#[macro_export]
macro_rules! start_node {
    ($extra:expr) => {
        $crate::Node::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_hubbub-node")),
            $extra,
        )
    };
    () => {
        $crate::start_node!("")
    };
}

/// Starts a node with exactly the given TOML (plus an ephemeral `listen`).
#[macro_export]
macro_rules! start_node_raw {
    ($toml:expr) => {
        $crate::Node::start_raw(
            std::path::Path::new(env!("CARGO_BIN_EXE_hubbub-node")),
            $toml,
        )
    };
}

/// Starts a node on Redis at `$url` with key prefix `$prefix` and node name
/// `$name` (see [`redis::node_toml`]) and waits until it is ready.
#[macro_export]
macro_rules! start_redis_node {
    ($url:expr, $prefix:expr, $name:expr) => {
        async {
            let node = $crate::start_node!(&$crate::redis::node_toml($url, $prefix, $name)).await?;
            $crate::redis::wait_ready(&node).await?;
            anyhow::Ok(node)
        }
    };
}

/// Polls `check` until it returns `Some`, failing after [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
