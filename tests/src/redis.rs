//! Redis for the multi-node tests: the shared server (`HUBBUB_TEST_REDIS_URL`,
//! default `redis://127.0.0.1:6379`), private `redis-server` processes on free
//! loopback ports (for tests that stop and restart Redis), a three-master
//! cluster, and the TOML that points a node at one of them with a key prefix
//! of its own, so tests never see each other's nodes or topics.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::WAIT;

/// The shared Redis URL.
pub fn shared_url() -> String {
    std::env::var("HUBBUB_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test uses.
pub fn unique_prefix(test: &str) -> String {
    format!("t-{test}-{:08x}", rand_u32())
}

fn rand_u32() -> u32 {
    rand::random()
}

/// Waits until `node` answers `/readyz` with 200 (its Redis pub/sub path works).
pub async fn wait_ready(node: &crate::Node) -> Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ok = node
            .http()
            .get(node.url("/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("node {} never became ready", node.addr);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Extra node TOML for Redis at `url` with `prefix`, fast presence expiry
/// and probing, and the node name `name`.
pub fn node_toml(url: &str, prefix: &str, name: &str) -> String {
    format!(
        "redis_url = \"{url}\"\nnode_name = \"{name}\"\n\n[redis]\nkey_prefix = \"{prefix}\"\npresence_ttl = \"2s\"\nprobe_interval = \"200ms\"\n"
    )
}

/// A loopback port for a private `redis-server`, handed out once per process.
///
/// Ports come from below the kernel's ephemeral range (and their cluster bus
/// port, +10000, too), so no port-0 bind (hub nodes) and no outgoing
/// connection can take one between the check and the server's own bind, nor
/// while a test has its server stopped for a restart. Where the ephemeral
/// range starts too low for that, it falls back to a port the kernel picks.
pub fn free_port() -> Result<u16> {
    use std::sync::Mutex;
    static NEXT: Mutex<Option<u16>> = Mutex::new(None);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if low < 22_000 {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        return Ok(l.local_addr()?.port());
    }
    let (start, end) = (low - 20_000, low - 10_000);
    let mut next = NEXT
        .lock()
        .map_err(|_| anyhow::anyhow!("port lock poisoned"))?;
    let mut p = next.unwrap_or_else(|| start + (rand_u32() % 4_000) as u16);
    for _ in 0..(end - start) {
        p = if p + 1 >= end { start } else { p + 1 };
        let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free(p) && free(p + 10_000) {
            *next = Some(p);
            return Ok(p);
        }
    }
    bail!("no free port in {start}..{end}")
}

/// Sends one inline command and returns the first reply line.
pub async fn command(port: u16, cmd: &str) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("{cmd}\r\n").as_bytes()).await?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await??;
    Ok(String::from_utf8_lossy(&buf[..n]).trim_end().to_owned())
}

/// A private `redis-server` on a loopback port, killed when dropped.
#[derive(Debug)]
pub struct OwnRedis {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl OwnRedis {
    /// Starts one with an append-only file (fsync always), so a restart keeps its data.
    pub async fn start() -> Result<OwnRedis> {
        Self::start_with(&[]).await
    }

    /// Starts one with extra `redis-server` arguments.
    pub async fn start_with(extra: &[&str]) -> Result<OwnRedis> {
        let mut tries = 0;
        loop {
            let port = free_port()?;
            let dir = std::env::temp_dir().join(format!("hubbub-redis-{port}-{:08x}", rand_u32()));
            std::fs::create_dir_all(&dir)?;
            let mut r = OwnRedis {
                child: None,
                port,
                dir,
                extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            };
            match r.spawn().await {
                Ok(()) => return Ok(r),
                // Someone took the port after the check: take another one.
                Err(e) if tries < 3 => {
                    tries += 1;
                    eprintln!("{e:#}; trying another port");
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn spawn(&mut self) -> Result<()> {
        let mut child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server")?;
        let pid = child.id().context("redis-server has no pid")?;
        // Ready means *this* child answers: another server on the port (a
        // port taken behind our back) must fail the start, never stand in.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "redis-server on port {} exited at start: {status}",
                    self.port
                );
            }
            let info = command(self.port, "INFO server").await.unwrap_or_default();
            if info.contains(&format!("process_id:{pid}\r\n")) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("redis-server on port {} did not answer", self.port);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.child = Some(child);
        Ok(())
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to clients).
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().await?;
            c.wait().await?;
        }
        Ok(())
    }

    /// Starts it again on the same port; `keep_data` false wipes its files first.
    pub async fn restart(&mut self, keep_data: bool) -> Result<()> {
        self.stop().await?;
        if !keep_data {
            std::fs::remove_dir_all(&self.dir)?;
            std::fs::create_dir_all(&self.dir)?;
        }
        self.spawn().await
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A three-master Redis Cluster on loopback ports (no replicas), built with
/// plain commands (`CLUSTER ADDSLOTSRANGE`, `CLUSTER MEET`), so only
/// `redis-server` is needed. Killed when dropped.
#[derive(Debug)]
pub struct OwnCluster {
    servers: Vec<OwnRedis>,
}

impl OwnCluster {
    /// Starts the three servers and waits until the cluster is `ok` on each.
    pub async fn start() -> Result<OwnCluster> {
        let mut servers = Vec::new();
        for _ in 0..3 {
            servers.push(
                OwnRedis::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "2000",
                    "--appendonly",
                    "no",
                ])
                .await?,
            );
        }
        let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
        for (i, (s, (from, to))) in servers.iter().zip(ranges).enumerate() {
            let r = command(s.port, &format!("CLUSTER SET-CONFIG-EPOCH {}", i + 1)).await?;
            if !r.starts_with("+OK") {
                bail!("set-config-epoch: {r}");
            }
            let r = command(s.port, &format!("CLUSTER ADDSLOTSRANGE {from} {to}")).await?;
            if !r.starts_with("+OK") {
                bail!("addslotsrange: {r}");
            }
        }
        for other in &servers[1..] {
            let r = command(
                servers[0].port,
                &format!("CLUSTER MEET 127.0.0.1 {}", other.port),
            )
            .await?;
            if !r.starts_with("+OK") {
                bail!("meet: {r}");
            }
        }
        let deadline = tokio::time::Instant::now() + WAIT * 3;
        for s in &servers {
            loop {
                let info = command(s.port, "CLUSTER INFO").await.unwrap_or_default();
                if info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3") {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    bail!("cluster not ok on port {}: {info}", s.port);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(OwnCluster { servers })
    }

    /// The masters' ports.
    pub fn ports(&self) -> Vec<u16> {
        self.servers.iter().map(|s| s.port).collect()
    }

    /// `redis-cluster://127.0.0.1:P1?node=127.0.0.1:P2&node=127.0.0.1:P3`.
    pub fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.servers[0].port);
        for (i, s) in self.servers[1..].iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{}", s.port));
        }
        url
    }
}
