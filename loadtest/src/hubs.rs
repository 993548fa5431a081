//! The hub processes under test: started here (each on 127.0.0.1, port 0,
//! optionally pinned with `taskset`) or given by URL and pid; and their
//! figures from `/proc`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::Digest;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::cli::Common;

/// The API key a generated bench config accepts (publish `*`).
pub(crate) const BENCH_API_KEY: &str = "hubbub-loadtest-api-key";
/// The HS256 secret of a generated bench config.
const BENCH_SECRET: &str = "hubbub-loadtest-secret-0123456789abcdef";
/// The hub's dev-mode secret (a hub started without a config).
const DEV_SECRET: &str = "hubbub-dev-secret-not-for-production";

/// The hub nodes a scenario talks to.
#[derive(Debug)]
pub(crate) struct Hubs {
    /// Node addresses; clients are spread over them, publications go to the first.
    pub(crate) addrs: Vec<SocketAddr>,
    /// Pids for `/proc` figures (may be empty for a remote hub).
    pub(crate) pids: Vec<u32>,
    /// The API key to publish with, if known.
    pub(crate) api_key: Option<String>,
    /// The HS256 secret to mint tokens with.
    pub(crate) secret: String,
    children: Vec<Child>,
    config: Option<PathBuf>,
}

impl Hubs {
    /// Starts hubs or adopts the running ones `common` names.
    pub(crate) async fn from(common: &Common) -> Result<Hubs> {
        match &common.hub_bin {
            Some(bin) => start(common, bin).await,
            None => {
                if common.urls.is_empty() {
                    bail!("give --url (and --hub-pid) of a running hub, or --hub-bin to start one");
                }
                let addrs = common
                    .urls
                    .iter()
                    .map(|u| parse_addr(u))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Hubs {
                    addrs,
                    pids: common.hub_pids.clone(),
                    api_key: common.api_key.clone(),
                    secret: common.secret.clone().unwrap_or_else(|| DEV_SECRET.into()),
                    children: Vec::new(),
                    config: None,
                })
            }
        }
    }

    /// The first node's base URL.
    pub(crate) fn http_base(&self) -> String {
        format!("http://{}", self.addrs[0])
    }

    /// Resident memory of all hub processes, bytes.
    pub(crate) fn rss_bytes(&self) -> Option<u64> {
        self.pids.iter().map(|&p| rss_bytes(p)).sum()
    }

    /// CPU time (user + system) of all hub processes, seconds.
    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        self.pids.iter().map(|&p| cpu_seconds(&p.to_string())).sum()
    }

    /// Time the hub's threads spent runnable but waiting for a CPU, seconds
    /// (from `/proc/<pid>/task/*/schedstat`): on a shared machine this shows
    /// how much other processes held the hub back.
    pub(crate) fn runq_wait_seconds(&self) -> Option<f64> {
        self.pids.iter().map(|&p| runq_wait_seconds(p)).sum()
    }

    /// Stops started hubs.
    pub(crate) async fn stop(mut self) {
        for child in &mut self.children {
            if let Err(e) = child.kill().await {
                eprintln!("stopping hub: {e}");
            }
        }
        if let Some(path) = self.config.take()
            && let Err(e) = std::fs::remove_file(&path)
        {
            eprintln!("removing {}: {e}", path.display());
        }
    }
}

fn parse_addr(url: &str) -> Result<SocketAddr> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .unwrap_or(url);
    let hostport = rest.split('/').next().unwrap_or(rest);
    use std::net::ToSocketAddrs;
    hostport
        .to_socket_addrs()
        .with_context(|| format!("resolving {hostport}"))?
        .next()
        .with_context(|| format!("{hostport} resolves to nothing"))
}

/// The generated configuration of a started hub.
fn bench_config(common: &Common) -> String {
    let key = hex::encode(sha2::Sha256::digest(BENCH_API_KEY.as_bytes()));
    let redis = common
        .redis
        .as_ref()
        .map(|u| format!("redis_url = \"{u}\"\n"))
        .unwrap_or_default();
    // Bench keys apart from anything else on that Redis (e.g. a dev hub's).
    let redis_table = if common.redis.is_some() {
        "\n[redis]\nkey_prefix = \"hubbub-loadtest\"\n"
    } else {
        ""
    };
    format!(
        r#"{redis}log_format = "text"
drain_timeout = "1s"

[auth]
jwt_algorithm = "HS256"
jwt_secret = "{secret}"

[[api_keys]]
name = "loadtest"
key_sha256 = "{key}"
publish = ["*"]

[limits]
max_subscriptions = 256

[namespaces.{ns}]
history_size = 100
history_ttl = "10m"
presence = false
join_leave = false
{redis_table}"#,
        secret = common.secret.as_deref().unwrap_or(BENCH_SECRET),
        ns = common.namespace,
    )
}

async fn start(common: &Common, bin: &PathBuf) -> Result<Hubs> {
    if common.hub_nodes > 1 && common.redis.is_none() && common.hub_config.is_none() {
        bail!("--hub-nodes > 1 needs --redis: memory-broker nodes do not share publications");
    }
    let (config, generated) = match &common.hub_config {
        Some(path) => (path.clone(), None),
        None => {
            let path = std::env::temp_dir().join(format!(
                "hubbub-loadtest-{}-{}.toml",
                std::process::id(),
                rand_suffix()
            ));
            std::fs::write(&path, bench_config(common))?;
            (path.clone(), Some(path))
        }
    };
    let mut hubs = Hubs {
        addrs: Vec::new(),
        pids: Vec::new(),
        api_key: common
            .api_key
            .clone()
            .or_else(|| generated.as_ref().map(|_| BENCH_API_KEY.to_string())),
        secret: common.secret.clone().unwrap_or_else(|| BENCH_SECRET.into()),
        children: Vec::new(),
        config: generated,
    };
    for n in 0..common.hub_nodes.max(1) {
        let mut cmd = match &common.hub_cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("--config")
            .arg(&config)
            .env("HUBBUB_LISTEN", "127.0.0.1:0")
            .env("HUBBUB_NODE_NAME", format!("bench-{n}"))
            .env("HUBBUB_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("hub exited at once")?;
        let stdout = child.stdout.take().context("hub stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(a) = line.trim().strip_prefix("listening on http://") {
                    return Ok::<_, anyhow::Error>(a.parse::<SocketAddr>()?);
                }
            }
            bail!("hub exited before listening")
        })
        .await
        .context("hub did not print its address within 20 s")??;
        // Keep draining stdout so the hub never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        hubs.addrs.push(addr);
        hubs.pids.push(pid);
        hubs.children.push(child);
    }
    Ok(hubs)
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `VmRSS` of a process, bytes.
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// utime + stime of a process (`self` or a pid), seconds.
pub(crate) fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Run-queue wait of all threads of `pid`, seconds.
pub(crate) fn runq_wait_seconds(pid: u32) -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        ns += text.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

/// The 1, 5 and 15 minute load averages.
pub(crate) fn loadavg() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn common(args: &[&str]) -> Common {
        let mut argv = vec!["hubbub-loadtest", "storm"];
        argv.extend_from_slice(args);
        match Cli::parse_from(argv).command {
            Command::Storm(s) => s.common,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_redis_config_parses_and_keeps_bench_keys_apart() {
        let c = common(&["--redis", "redis://127.0.0.1:6379", "--hub-nodes", "2"]);
        let v: toml::Value = toml::from_str(&bench_config(&c)).unwrap();
        assert_eq!(v["redis_url"].as_str(), Some("redis://127.0.0.1:6379"));
        assert_eq!(v["redis"]["key_prefix"].as_str(), Some("hubbub-loadtest"));
        assert_eq!(c.label(), "redis-2node");
        let m: toml::Value = toml::from_str(&bench_config(&common(&[]))).unwrap();
        assert!(m.get("redis").is_none() && m.get("redis_url").is_none());
        assert_eq!(common(&[]).label(), "memory");
    }
}
