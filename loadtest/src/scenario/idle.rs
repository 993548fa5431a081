//! `idle`: N connections, connected and subscribed, held; connect rate and the
//! hub's resident memory per connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::{note_failures, spawn_receivers, stop_receivers, with_hubs};
use crate::cli::Idle;
use crate::client::{Dialer, connect_all, token};
use crate::hubs::Hubs;
use crate::receiver::Recorder;
use crate::report::Run;

pub(super) async fn run(a: Idle) -> Result<()> {
    let common = a.common.clone();
    with_hubs(&common, |hubs| body(a, hubs)).await
}

async fn body(a: Idle, hubs: Arc<Hubs>) -> Result<Run> {
    let c = &a.common;
    let ns = c.namespace.clone();
    let mut run = Run::new("idle", c);
    run.set("clients", a.clients as u64);
    run.set("own_topics", !a.shared_topic);
    run.set("hold_s", a.hold);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = hubs.rss_bytes();
    let dialer = Dialer::new(hubs.addrs.clone(), c.source_addrs)?;
    let tokens = vec![token(&hubs.secret, "loadtest", &[format!("{ns}:*")], &[])];
    let shared = a.shared_topic;
    let t = Instant::now();
    let (sockets, errors, _) =
        connect_all(&dialer, a.clients, c.connect_concurrency, &tokens, |i| {
            if shared {
                vec![format!("{ns}:idle")]
            } else {
                vec![format!("{ns}:i{i}")]
            }
        })
        .await;
    let connect_s = t.elapsed().as_secs_f64();
    let connected = sockets.len() as u64;
    run.set("connected", connected);
    note_failures(&mut run, &errors);
    run.set("connect_per_s", connected as f64 / connect_s);
    let rec = Arc::new(Recorder::new()?);
    let stop = CancellationToken::new();
    let receivers = spawn_receivers(sockets, &rec, &stop, hubs.addrs[0]);
    tokio::time::sleep(Duration::from_secs(a.hold)).await;
    let held = hubs.rss_bytes();
    stop_receivers(stop, receivers).await;
    run.set(
        "disconnected",
        rec.dropped.load(std::sync::atomic::Ordering::Relaxed),
    );
    if let (Some(base), Some(held)) = (base, held) {
        run.set("hub_rss_base_mib", base as f64 / 1048576.0);
        run.set("hub_rss_mib", held as f64 / 1048576.0);
        if connected > 0 {
            run.set(
                "kib_per_conn",
                held.saturating_sub(base) as f64 / 1024.0 / connected as f64,
            );
        }
    }
    Ok(run)
}
