//! The scenarios, one file each, and what they share: spawning receivers,
//! waiting for deliveries, reporting connection failures.

mod fanout;
mod idle;
mod publish;
mod storm;
mod topics;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::Command;
use crate::client::Ws;
use crate::hubs::Hubs;
use crate::receiver::{Recorder, receive};
use crate::report::Run;

/// Runs one command.
pub(crate) async fn run(command: Command) -> Result<()> {
    match command {
        Command::Idle(a) => idle::run(a).await,
        Command::Fanout(a) => fanout::run(a).await,
        Command::Topics(a) => topics::run(a).await,
        Command::Storm(a) => storm::run(a).await,
        Command::Publish(a) => publish::run(a).await,
        Command::Report(a) => crate::report::markdown(&a),
    }
}

/// Runs `body` against the hubs `common` names, stopping started hubs after.
async fn with_hubs<F, Fut>(common: &crate::cli::Common, body: F) -> Result<()>
where
    F: FnOnce(Arc<Hubs>) -> Fut,
    Fut: Future<Output = Result<Run>>,
{
    let hubs = Arc::new(Hubs::from(common).await?);
    let result = body(hubs.clone()).await;
    match Arc::try_unwrap(hubs) {
        Ok(hubs) => hubs.stop().await,
        Err(_) => eprintln!("hubs still shared at the end; they stop with the process"),
    }
    result?.emit(common)
}

/// One receiver task per socket; `first_node` tells apart the sockets of
/// other nodes (by peer address), whose latency is also recorded separately.
fn spawn_receivers(
    sockets: Vec<Ws>,
    rec: &Arc<Recorder>,
    stop: &CancellationToken,
    first_node: std::net::SocketAddr,
) -> Vec<JoinHandle<()>> {
    sockets
        .into_iter()
        .map(|ws| {
            let other = ws.get_ref().peer_addr().is_ok_and(|a| a != first_node);
            tokio::spawn(receive(ws, rec.clone(), stop.clone(), other))
        })
        .collect()
}

/// Hub and generator counters at one moment of a delivery run.
pub(crate) struct Counters {
    hub_cpu: Option<f64>,
    gen_cpu: Option<f64>,
    hub_wait: Option<f64>,
    at_us: u64,
}

impl Counters {
    /// Reads the counters now.
    pub(crate) fn now(hubs: &Hubs) -> Counters {
        Counters {
            hub_cpu: hubs.cpu_seconds(),
            gen_cpu: crate::hubs::cpu_seconds("self"),
            hub_wait: hubs.runq_wait_seconds(),
            at_us: crate::client::now_us(),
        }
    }
}

/// The delivery figures every push scenario reports: delivered against
/// `expected`, rates, hub and generator CPU and run-queue wait between
/// `start` and `end`, latency percentiles, and the hubs' resident memory.
pub(crate) fn report_deliveries(
    run: &mut Run,
    hubs: &Hubs,
    rec: &Recorder,
    (start, end): (&Counters, &Counters),
    expected: u64,
    publish_s: f64,
    rss: Option<u64>,
) {
    let delivered = rec.received.load(Ordering::Relaxed);
    let span_s = (rec
        .last_us
        .load(Ordering::Relaxed)
        .saturating_sub(start.at_us)) as f64
        / 1e6;
    let window_s = span_s.max(publish_s);
    run.set("delivered", delivered);
    run.set("expected", expected);
    let ratio = if expected > 0 {
        delivered as f64 / expected as f64
    } else {
        0.0
    };
    run.set("delivered_ratio", ratio);
    run.set("deliveries_per_s", delivered as f64 / window_s);
    run.set("disconnected", rec.dropped.load(Ordering::Relaxed));
    if let (Some(h0), Some(h1)) = (start.hub_cpu, end.hub_cpu) {
        run.set("hub_cpu_s", h1 - h0);
        if delivered > 0 {
            run.set(
                "hub_cpu_us_per_delivery",
                (h1 - h0) * 1e6 / delivered as f64,
            );
        }
    }
    if let (Some(w0), Some(w1)) = (start.hub_wait, end.hub_wait) {
        run.set("hub_runq_wait_pct", (w1 - w0) * 100.0 / window_s);
    }
    if let (Some(g0), Some(g1)) = (start.gen_cpu, end.gen_cpu) {
        run.set("gen_cpu_pct", (g1 - g0) * 100.0 / window_s);
    }
    if let Ok(h) = rec.latency.lock() {
        run.latency("", &h);
    }
    other_node_latency(run, hubs, rec);
    if let Some(rss) = rss {
        run.set("hub_rss_mib", rss as f64 / 1048576.0);
    }
}

/// Sets `other_node_p50_ms` … when several nodes served clients.
fn other_node_latency(run: &mut Run, hubs: &Hubs, rec: &Recorder) {
    if hubs.addrs.len() > 1
        && let Ok(h) = rec.other_node_latency.lock()
    {
        run.latency("other_node_", &h);
    }
}

/// Stops the receivers and waits for them to merge their samples.
async fn stop_receivers(stop: CancellationToken, handles: Vec<JoinHandle<()>>) {
    stop.cancel();
    for h in handles {
        if let Err(e) = h.await {
            eprintln!("receiver task: {e}");
        }
    }
}

/// Waits until `expected` pushes arrived, or `within` passed since the last one.
async fn wait_delivered(rec: &Recorder, expected: u64, within: Duration) {
    let mut last = rec.received.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    while last < expected && quiet_since.elapsed() < within {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = rec.received.load(Ordering::Relaxed);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
}

/// Records connection failures in `run` and prints the first one.
fn note_failures(run: &mut Run, errors: &[anyhow::Error]) {
    run.set("connect_failed", errors.len() as u64);
    if let Some(e) = errors.first() {
        eprintln!("{} connections failed; first: {e:#}", errors.len());
    }
}
