//! `hubbub-webhook-bench`: webhook sink delivery (docs/webhooks.md) against
//! `hubbub` processes it starts, one node each, all on loopback: a private
//! `redis-server` (no persistence) for the Redis engine, and a receiver of
//! its own, a minimal HTTP/1.1 server that answers `204` at once.
//!
//! 1. Throughput, per engine and `ordering`: `--deliveries` publications
//!    over `--topics` topics are published through `/api/v1/batch` while the
//!    sink delivers; reported as deliveries/s from the first publish to the
//!    last delivery, and between the first and the last delivery.
//! 2. Added cost per publication: single REST publishes, one at a time,
//!    alternating between a topic one sink matches and a topic no sink
//!    matches, on the same hub in the same run; p50/p99 of each.
//! 3. Memory with a backlog (Redis engine only): the receiver is down
//!    (connection refused), `--backlog` publications are published, and the
//!    hub's VmRSS is read at every quarter of the backlog.
//!
//! Every figure is printed with the 1-minute load average at its end.
//! Usage: `hubbub-webhook-bench --hub-bin target/release/hubbub
//! [--deliveries 100000] [--topics 100] [--samples 2000] [--backlog 1000000]
//! [--only throughput,cost,backlog]`.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::json;
use sha2::Digest;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

const API_KEY: &str = "sk_webhook_bench_0123456789abcdef";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Debug, Parser)]
struct Args {
    /// The `hubbub` binary to start.
    #[arg(long)]
    hub_bin: String,
    /// The `redis-server` binary (a private one is started per run).
    #[arg(long, default_value = "redis-server")]
    redis_server: String,
    /// Publications per throughput run.
    #[arg(long, default_value_t = 100_000)]
    deliveries: u64,
    /// Topics the throughput runs spread over.
    #[arg(long, default_value_t = 100)]
    topics: u64,
    /// REST publishes per topic kind (with and without a sink) in the cost run.
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Publications queued while the receiver is down, in the backlog run.
    #[arg(long, default_value_t = 1_000_000)]
    backlog: u64,
    /// Which parts to run.
    #[arg(long, value_delimiter = ',', default_value = "throughput,cost,backlog")]
    only: Vec<String>,
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn rss_mib(pid: Option<u32>) -> f64 {
    let status = pid
        .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

async fn start_redis(bin: &str) -> Result<(Proc, String)> {
    let port = free_port()?;
    let child = Command::new(bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir", "/tmp"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {bin}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("redis-server did not listen on {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((Proc(child), format!("redis://127.0.0.1:{port}")))
}

/// Counts the requests answered; answers each `204` as soon as it is read.
struct Receiver {
    url: String,
    count: Arc<AtomicU64>,
    first: Arc<std::sync::OnceLock<Instant>>,
}

async fn receiver() -> Result<Receiver> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let count = Arc::new(AtomicU64::new(0));
    let first = Arc::new(std::sync::OnceLock::new());
    let (c, f) = (count.clone(), first.clone());
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (c, f) = (c.clone(), f.clone());
            tokio::spawn(async move {
                let _ = serve(sock, &c, &f).await;
            });
        }
    });
    Ok(Receiver { url, count, first })
}

async fn serve(
    mut sock: tokio::net::TcpStream,
    count: &AtomicU64,
    first: &std::sync::OnceLock<Instant>,
) -> Result<()> {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        // One request: the head, then `content-length` bytes of body.
        let (head, body) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            if let httparse::Status::Complete(n) = req.parse(&buf)? {
                let len = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                    .unwrap_or(0);
                break (n, len);
            }
            if sock.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        while buf.len() < head + body {
            if sock.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        buf.drain(..head + body);
        first.get_or_init(Instant::now);
        sock.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await?;
        count.fetch_add(1, Ordering::Relaxed);
    }
}

struct Hub {
    proc: Proc,
    base: String,
    http: reqwest::Client,
}

impl Hub {
    async fn start(bin: &str, redis: Option<&str>, sink: &str) -> Result<Hub> {
        let key = hex::encode(sha2::Sha256::digest(API_KEY.as_bytes()));
        let engine = redis.map_or(String::new(), |u| {
            format!("redis_url = \"{u}\"\n[redis]\nkey_prefix = \"whbench\"\n")
        });
        let config = std::env::temp_dir().join(format!(
            "hubbub-webhook-bench-{}-{}.toml",
            std::process::id(),
            free_port()?
        ));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\n{engine}\n[auth]\njwt_secret = \"webhook-bench-secret-0123456789abcdef\"\n\
                 [[api_keys]]\nname = \"bench\"\nkey_sha256 = \"{key}\"\npublish = [\"*\"]\noperator = true\n\
                 [namespaces.bookings]\nhistory_size = 10\n[namespaces.other]\nhistory_size = 10\n{sink}"
            ),
        )?;
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .env_remove("HUBBUB_CONFIG")
            .env("HUBBUB_LOG", "error")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await??
            .context("hub exited")?;
        let _ = std::fs::remove_file(&config);
        let base = line
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected: {line}"))?
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            if Instant::now() > deadline {
                bail!("hub never ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Hub {
            proc: Proc(child),
            base,
            http,
        })
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> Result<()> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(API_KEY)
            .json(&body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "{path}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Publishes `n` publications from `from` over `topics` topics, 1,000 per batch.
    async fn batches(&self, from: u64, n: u64, topics: u64) -> Result<()> {
        let mut i = from;
        while i < from + n {
            let end = (i + 1000).min(from + n);
            let publications: Vec<_> = (i..end)
                .map(|k| json!({"topic": format!("bookings:t{}", k % topics), "event": "booking.created", "data": {"k": k, "pad": "0123456789012345678901234567890123456789012345678901234567890123456789"}}))
                .collect();
            self.post("/api/v1/batch", json!({ "publications": publications }))
                .await?;
            i = end;
        }
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.proc.0.id()
    }
}

fn sink(url: &str, ordering: &str, extra: &str) -> String {
    format!(
        "[[webhooks]]\nname = \"bench\"\nurl = \"{url}\"\ntopics = [\"bookings:*\"]\nsecrets = [\"{SECRET}\"]\n\
         ordering = \"{ordering}\"\nmax_in_flight = 64\nmax_pending = 2000000\nmax_pending_bytes = 4294967296\n{extra}\n"
    )
}

async fn throughput(args: &Args, engine: &str, ordering: &str) -> Result<()> {
    let redis = if engine == "redis" {
        Some(start_redis(&args.redis_server).await?)
    } else {
        None
    };
    let rx = receiver().await?;
    let hub = Hub::start(
        &args.hub_bin,
        redis.as_ref().map(|r| r.1.as_str()),
        &sink(&rx.url, ordering, ""),
    )
    .await?;
    let started = Instant::now();
    hub.batches(0, args.deliveries, args.topics).await?;
    let published = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while rx.count.load(Ordering::Relaxed) < args.deliveries {
        if Instant::now() > deadline {
            bail!("only {} delivered", rx.count.load(Ordering::Relaxed));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    let first = rx.first.get().map_or(started, |f| *f);
    let n = args.deliveries as f64;
    println!(
        "throughput {engine:6} ordering={ordering:5}: {} deliveries over {} topics: {:.0}/s first publish to last delivery ({:.2} s), {:.0}/s first to last delivery; publishing took {:.2} s; load {}",
        args.deliveries,
        args.topics,
        n / took.as_secs_f64(),
        took.as_secs_f64(),
        n / (took - first.duration_since(started)).as_secs_f64(),
        published.as_secs_f64(),
        load()
    );
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len().max(1) as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

async fn cost(args: &Args, engine: &str) -> Result<()> {
    let redis = if engine == "redis" {
        Some(start_redis(&args.redis_server).await?)
    } else {
        None
    };
    let rx = receiver().await?;
    let hub = Hub::start(
        &args.hub_bin,
        redis.as_ref().map(|r| r.1.as_str()),
        &sink(&rx.url, "topic", ""),
    )
    .await?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..args.samples * 2 + 200 {
        let topic = if i % 2 == 0 { "bookings:c" } else { "other:c" };
        let t = Instant::now();
        hub.post(
            "/api/v1/publish",
            json!({"topic": topic, "event": "e", "data": {"i": i}}),
        )
        .await?;
        // The first 200 warm the pools up.
        if i >= 200 {
            if i % 2 == 0 { &mut with } else { &mut without }.push(t.elapsed());
        }
    }
    with.sort();
    without.sort();
    println!(
        "cost {engine:6}: REST publish p50/p99 with one matching sink {:.2}/{:.2} ms, without {:.2}/{:.2} ms ({} each, alternating, one hub); {} delivered; load {}",
        percentile(&with, 0.5),
        percentile(&with, 0.99),
        percentile(&without, 0.5),
        percentile(&without, 0.99),
        args.samples,
        rx.count.load(Ordering::Relaxed),
        load()
    );
    Ok(())
}

async fn backlog(args: &Args) -> Result<()> {
    let (_redis, url) = start_redis(&args.redis_server).await?;
    // Nothing listens there: every attempt is refused, and retried later.
    let down = format!("http://127.0.0.1:{}/hook", free_port()?);
    let extra = "max_attempts = 1000\nbackoff_min = \"1s\"\nbackoff_max = \"30s\"";
    let hub = Hub::start(&args.hub_bin, Some(&url), &sink(&down, "none", extra)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "backlog redis: 0 queued: hub RSS {:.1} MiB; load {}",
        rss_mib(hub.pid()),
        load()
    );
    let quarter = args.backlog / 4;
    for q in 1..=4 {
        hub.batches((q - 1) * quarter, quarter, args.topics).await?;
        println!(
            "backlog redis: {} queued: hub RSS {:.1} MiB; load {}",
            q * quarter,
            rss_mib(hub.pid()),
            load()
        );
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = hub.http.get(format!("{}/api/v1/webhooks", hub.base));
    let stats: serde_json::Value = r.bearer_auth(API_KEY).send().await?.json().await?;
    println!(
        "backlog redis: 5 s later: hub RSS {:.1} MiB; sink pending {}; load {}",
        rss_mib(hub.pid()),
        stats["sinks"][0]["pending"],
        load()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let only = |part: &str| args.only.iter().any(|o| o == part);
    if only("throughput") {
        for engine in ["redis", "memory"] {
            for ordering in ["none", "topic"] {
                throughput(&args, engine, ordering).await?;
            }
        }
    }
    if only("cost") {
        for engine in ["redis", "memory"] {
            cost(&args, engine).await?;
        }
    }
    if only("backlog") {
        backlog(&args).await?;
    }
    Ok(())
}
