//! [`Node`]: a real hub process with its own configuration file, bound to an
//! ephemeral port, stopped (SIGKILL) when dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sha2::Digest;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::WAIT;

/// The HS256 secret every test node uses.
pub const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
/// An operator API key with `publish = ["*"]`.
pub const API_KEY: &str = "test-api-key-all-topics";
/// An API key that may only publish to `bookings:*`.
pub const BOOKINGS_KEY: &str = "test-api-key-bookings";

/// A running hub process.
#[derive(Debug)]
pub struct Node {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    config: PathBuf,
    http: reqwest::Client,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// The configuration every test node starts from; tests append to it.
pub fn base_config() -> String {
    format!(
        r#"[auth]
jwt_algorithm = "HS256"
jwt_secret = "{SECRET}"

[[api_keys]]
name = "all"
key_sha256 = "{all}"
publish = ["*"]
operator = true

[[api_keys]]
name = "bookings-only"
key_sha256 = "{bookings}"
publish = ["bookings:*"]
"#,
        all = sha256_hex(API_KEY),
        bookings = sha256_hex(BOOKINGS_KEY),
    )
}

/// Namespaces most tests use: `bookings` (history, presence), `chat`
/// (client publish, join/leave), `public` (public), `nohist` (no history),
/// `tiny` (history of 3).
pub const NAMESPACES: &str = r#"
[namespaces.bookings]
history_size = 1000
history_ttl = "1h"
presence = true

[namespaces.chat]
history_size = 100
history_ttl = "1h"
presence = true
join_leave = true
client_publish = true

[namespaces.public]
public = true

[namespaces.nohist]
history_size = 0

[namespaces.tiny]
history_size = 3
history_ttl = "1h"
"#;

impl Node {
    /// Starts `bin` with the base config, [`NAMESPACES`] unless `extra`
    /// declares its own, and `extra`.
    pub async fn start(bin: &Path, extra: &str) -> Result<Node> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let namespaces = if extra.contains("[namespaces.") {
            ""
        } else {
            NAMESPACES
        };
        let config = std::env::temp_dir().join(format!(
            "hubbub-test-{}-{}.toml",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        // Top-level keys first, then `extra` (its own top-level keys, then
        // tables), then the base tables.
        let text = format!(
            "listen = \"127.0.0.1:0\"\ndrain_timeout = \"5s\"\n{extra}\n{}\n{namespaces}",
            base_config()
        );
        Node::start_with(bin, &config, &text).await
    }

    /// Starts `bin` with exactly `toml` as its configuration file (listen is
    /// still forced to an ephemeral loopback port).
    pub async fn start_raw(bin: &Path, toml: &str) -> Result<Node> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let config = std::env::temp_dir().join(format!(
            "hubbub-test-raw-{}-{}.toml",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        Node::start_with(bin, &config, &format!("listen = \"127.0.0.1:0\"\n{toml}")).await
    }

    async fn start_with(bin: &Path, config: &Path, text: &str) -> Result<Node> {
        let config = config.to_path_buf();
        std::fs::write(&config, text).context("writing the test config")?;
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .env_remove("HUBBUB_CONFIG")
            .env(
                "HUBBUB_LOG",
                std::env::var("HUBBUB_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .context("the node did not report its address in time")??
            .context("the node exited before listening")?;
        let Some(addr) = line.strip_prefix("listening on http://") else {
            bail!("unexpected first line: {line}");
        };
        // Keep draining stdout so the node never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Node {
            child,
            addr: addr.to_owned(),
            config,
            http: reqwest::Client::new(),
        })
    }

    /// `ws://ADDR/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// A REST request builder with the all-topics API key.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(API_KEY)
    }

    /// A GET with the all-topics API key.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(API_KEY)
    }

    /// A plain HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Publishes through the REST API and returns `position`.
    pub async fn publish(&self, topic: &str, event: &str, data: Value) -> Result<Value> {
        let resp = self
            .post("/api/v1/publish")
            .json(&json!({"topic": topic, "event": event, "data": data}))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        if !status.is_success() {
            bail!("publish answered {status}: {body}");
        }
        Ok(body["position"].clone())
    }

    /// Reads a Prometheus counter or gauge (unlabelled or with its label set).
    pub async fn metric(&self, series: &str) -> Result<u64> {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .with_context(|| format!("no series {series}"))?
            .trim()
            .parse()
            .context("not a number")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) -> Result<()> {
        let pid = self.pid().context("already exited")?;
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        Ok(())
    }

    /// Waits for the process to exit (with [`WAIT`] as deadline).
    pub async fn wait_exit(&mut self) -> Result<std::process::ExitStatus> {
        Ok(tokio::time::timeout(WAIT, self.child.wait())
            .await
            .context("node did not exit")??)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Mints an HS256 token with [`SECRET`]; `exp_in` seconds from now (may be negative).
pub fn token(sub: &str, subscribe: &[&str], publish: &[&str], exp_in: i64) -> String {
    let exp = now().saturating_add_signed(exp_in);
    let claims =
        json!({"sub": sub, "exp": exp, "iat": now(), "subscribe": subscribe, "publish": publish});
    sign(&claims)
}

/// Signs arbitrary claims with [`SECRET`] (HS256).
pub fn sign(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap_or_default()
}
