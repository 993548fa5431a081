//! `hubbub-outbox-bench`: the PostgreSQL outbox under load, against a real
//! PostgreSQL and a `hubbub` process it starts (memory engine, one node).
//!
//! 1. Latency: rows are committed at a fixed rate (every 10 ms one
//!    transaction with rate/100 rows, round-robin over 10 topics) while a
//!    WebSocket client subscribed to every topic records when each arrives;
//!    commit-to-subscriber latency is the arrival minus the moment the
//!    writer's COMMIT returned (clamped at 0: the NOTIFY can beat the ack).
//! 2. Throughput: a backlog of rows is committed before the hub starts;
//!    rows/s is the backlog over the time from the first published row to
//!    the table being empty; queries per row from `hubbub_outbox_queries_total`.
//!
//! Usage: `hubbub-outbox-bench --hub-bin target/release/hubbub
//! [--postgres postgres://postgres@127.0.0.1:5432/postgres] [--seconds 10]
//! [--backlog 100000] [--batch-size 500]`. It creates and drops a database
//! of its own.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_postgres::{Client, NoTls};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "hubbub-outbox-bench-secret-0123456789";
const TOPICS: usize = 10;

#[derive(Debug, Parser)]
struct Args {
    /// The `hubbub` binary to start.
    #[arg(long)]
    hub_bin: String,
    /// A PostgreSQL server (any database; the bench creates its own).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Seconds per latency rate.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Rows committed before the hub starts, for the throughput run.
    #[arg(long, default_value_t = 100_000)]
    backlog: u64,
    /// `outbox.batch_size`.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Latency rates, rows/s.
    #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
    rates: Vec<u64>,
}

async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("postgres connection: {e}");
        }
    });
    Ok(client)
}

fn with_db(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let start = base.find("://").map_or(0, |i| i + 3);
    let end = base[start..].find('/').map_or(base.len(), |j| start + j);
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{db}{q}", &base[..end])
}

struct Hub {
    child: Child,
    addr: String,
    config: std::path::PathBuf,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_file(&self.config);
    }
}

impl Hub {
    async fn start(bin: &str, db_url: &str, batch_size: usize) -> Result<Hub> {
        let config =
            std::env::temp_dir().join(format!("hubbub-outbox-bench-{}.toml", std::process::id()));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\n[auth]\njwt_secret = \"{SECRET}\"\n\
                 [outbox]\npostgres_url = \"{db_url}\"\npoll_interval = \"1s\"\nbatch_size = {batch_size}\n\
                 [limits]\noutbox_size = 65536\n\
                 [namespaces.bookings]\nhistory_size = 100\n"
            ),
        )?;
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .env_remove("HUBBUB_CONFIG")
            .env("HUBBUB_LOG", "warn")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await??
            .context("hub exited")?;
        let addr = line
            .strip_prefix("listening on http://")
            .with_context(|| format!("unexpected: {line}"))?
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Hub {
            child,
            addr,
            config,
        })
    }

    async fn metric(&self, name: &str) -> Result<f64> {
        let text = reqwest::get(format!("http://{}/metrics", self.addr))
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .with_context(|| format!("no {name}"))?
            .trim()
            .parse()
            .context("not a number")
    }
}

fn token() -> Result<String> {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "bench", "exp": exp, "subscribe": ["bookings:*"]}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )?)
}

type Arrivals = Arc<Mutex<HashMap<u64, Instant>>>;

/// A subscriber to every bench topic recording arrival times by `data.seq`.
async fn subscribe(addr: &str, arrivals: Arrivals) -> Result<tokio::task::JoinHandle<()>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await?;
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({"id": 1, "type": "connect", "token": token()?})))
        .await?;
    for t in 0..TOPICS {
        ws.send(send(
            json!({"id": 2 + t, "type": "subscribe", "topic": format!("bookings:o{t}")}),
        ))
        .await?;
    }
    let mut acks = 0;
    while acks < TOPICS {
        let Some(msg) = ws.next().await else {
            bail!("socket closed");
        };
        if let Message::Text(t) = msg? {
            let v: Value = serde_json::from_str(&t)?;
            if v["type"] == "subscribed" {
                acks += 1;
            } else if v["type"] == "error" {
                bail!("subscribe failed: {v}");
            }
        }
    }
    Ok(tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let now = Instant::now();
            if let Message::Text(t) = msg
                && let Ok(v) = serde_json::from_str::<Value>(&t)
                && v["type"] == "pub"
                && let Some(seq) = v["data"]["seq"].as_u64()
                && let Ok(mut a) = arrivals.lock()
            {
                a.insert(seq, now);
            }
        }
    }))
}

async fn insert(pg: &Client, from: u64, n: u64) -> Result<()> {
    let topics: Vec<String> = (from..from + n)
        .map(|s| format!("bookings:o{}", s % TOPICS as u64))
        .collect();
    let data: Vec<String> = (from..from + n)
        .map(|s| json!({"seq": s, "city": "Paris"}).to_string())
        .collect();
    pg.execute(
        "INSERT INTO hubbub_outbox (topic, event, data) \
         SELECT t, 'city.updated', d::jsonb FROM unnest($1::text[], $2::text[]) \
         WITH ORDINALITY AS r(t, d, n) ORDER BY n",
        &[&topics, &data],
    )
    .await?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn latency(args: &Args, db_url: &str, hub: &Hub, rate: u64, seq0: u64) -> Result<u64> {
    let pg = connect(db_url).await?;
    let arrivals: Arrivals = Arc::default();
    let reader = subscribe(&hub.addr, arrivals.clone()).await?;
    // At 100 rows/s and more: one commit every 10 ms with rate/100 rows;
    // below, one row per commit.
    let (per_tick, ticks, period) = if rate >= 100 {
        (rate / 100, args.seconds * 100, Duration::from_millis(10))
    } else {
        (
            1,
            args.seconds * rate.max(1),
            Duration::from_secs(1) / rate.max(1) as u32,
        )
    };
    let mut committed: HashMap<u64, Instant> = HashMap::new();
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut seq = seq0;
    let started = Instant::now();
    for _ in 0..ticks {
        interval.tick().await;
        insert(&pg, seq, per_tick).await?;
        let now = Instant::now();
        for s in seq..seq + per_tick {
            committed.insert(s, now);
        }
        seq += per_tick;
    }
    let wrote_for = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = arrivals.lock().map(|a| a.len()).unwrap_or(0);
        if got as u64 >= seq - seq0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reader.abort();
    let arrivals = arrivals.lock().map(|a| a.clone()).unwrap_or_default();
    let mut lat: Vec<Duration> = committed
        .iter()
        .filter_map(|(s, c)| arrivals.get(s).map(|a| a.saturating_duration_since(*c)))
        .collect();
    lat.sort();
    let lost = committed.len() - lat.len();
    println!(
        "latency at {rate} rows/s ({} rows in {:.1} s, {per_tick} per commit): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, missing {lost}",
        committed.len(),
        wrote_for.as_secs_f64(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    Ok(seq)
}

async fn throughput(args: &Args, db_url: &str, pg: &Client, seq0: u64) -> Result<()> {
    let mut seq = seq0;
    while seq < seq0 + args.backlog {
        let n = 5000.min(seq0 + args.backlog - seq);
        insert(pg, seq, n).await?;
        seq += n;
    }
    let hub = Hub::start(&args.hub_bin, db_url, args.batch_size).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first: Option<Instant> = None;
    loop {
        let p = hub.metric("hubbub_outbox_published_total").await?;
        if first.is_none() && p > 0.0 {
            first = Some(Instant::now());
        }
        if p as u64 >= args.backlog {
            break;
        }
        if Instant::now() > deadline {
            bail!("backlog not drained");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = first.map_or(Duration::ZERO, |f| f.elapsed());
    let queries = hub.metric("hubbub_outbox_queries_total").await?;
    let batches = hub.metric("hubbub_outbox_batches_total").await?;
    println!(
        "throughput: {} rows in {:.2} s = {:.0} rows/s through one node (batch_size {}, {} batches, {:.4} queries per row)",
        args.backlog,
        took.as_secs_f64(),
        args.backlog as f64 / took.as_secs_f64().max(1e-9),
        args.batch_size,
        batches,
        queries / args.backlog as f64
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let name = format!("hubbub_outbox_bench_{}", std::process::id());
    let admin = connect(&args.postgres).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    let db_url = with_db(&args.postgres, &name);
    let result = run(&args, &db_url).await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    result
}

async fn run(args: &Args, db_url: &str) -> Result<()> {
    let init = std::process::Command::new(&args.hub_bin)
        .args(["outbox", "init", "--apply"])
        .env_remove("HUBBUB_CONFIG")
        .env("HUBBUB_AUTH__JWT_SECRET", SECRET)
        .env("HUBBUB_OUTBOX__POSTGRES_URL", db_url)
        .status()?;
    if !init.success() {
        bail!("hubbub outbox init --apply failed");
    }
    let mut seq = 0;
    {
        let hub = Hub::start(&args.hub_bin, db_url, args.batch_size).await?;
        for &rate in &args.rates {
            seq = latency(args, db_url, &hub, rate, seq).await?;
        }
        let published = hub.metric("hubbub_outbox_published_total").await?;
        let queries = hub.metric("hubbub_outbox_queries_total").await?;
        println!(
            "latency runs: {published} rows published with {queries} queries ({:.3} queries per row)",
            queries / published.max(1.0)
        );
    }
    let pg = connect(db_url).await?;
    throughput(args, db_url, &pg, seq).await
}
