//! `storm`: connect + authenticate + subscribe as fast as possible.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;

use super::{note_failures, with_hubs};
use crate::cli::Storm;
use crate::client::{Dialer, connect_all, token};
use crate::hubs::{Hubs, cpu_seconds};
use crate::receiver::histogram;
use crate::report::Run;

pub(super) async fn run(a: Storm) -> Result<()> {
    let common = a.common.clone();
    with_hubs(&common, |hubs| body(a, hubs)).await
}

async fn body(a: Storm, hubs: Arc<Hubs>) -> Result<Run> {
    let c = &a.common;
    let ns = c.namespace.clone();
    let mut run = Run::new("storm", c);
    run.set("clients", a.clients as u64);
    run.set("concurrency", c.connect_concurrency as u64);
    let dialer = Dialer::new(hubs.addrs.clone(), c.source_addrs)?;
    // One token per client (its own `sub`), minted before the clock starts.
    let tokens: Vec<String> = (0..a.clients)
        .map(|i| token(&hubs.secret, &format!("u{i}"), &[format!("{ns}:s{i}")], &[]))
        .collect();
    let (hub0, gen0) = (hubs.cpu_seconds(), cpu_seconds("self"));
    let wait0 = hubs.runq_wait_seconds();
    let t = Instant::now();
    let (sockets, errors, setup) =
        connect_all(&dialer, a.clients, c.connect_concurrency, &tokens, |i| {
            vec![format!("{ns}:s{i}")]
        })
        .await;
    let elapsed = t.elapsed().as_secs_f64();
    let (hub1, gen1) = (hubs.cpu_seconds(), cpu_seconds("self"));
    let wait1 = hubs.runq_wait_seconds();
    let connected = sockets.len() as u64;
    run.set("connected", connected);
    note_failures(&mut run, &errors);
    run.set("elapsed_s", elapsed);
    run.set("conn_per_s", connected as f64 / elapsed);
    let mut h = histogram()?;
    for us in setup {
        h.saturating_record(us);
    }
    run.latency("setup_", &h);
    if let (Some(h0), Some(h1)) = (hub0, hub1)
        && connected > 0
    {
        run.set("hub_cpu_us_per_conn", (h1 - h0) * 1e6 / connected as f64);
    }
    if let (Some(w0), Some(w1)) = (wait0, wait1) {
        run.set("hub_runq_wait_pct", (w1 - w0) * 100.0 / elapsed);
    }
    if let (Some(g0), Some(g1)) = (gen0, gen1) {
        run.set("gen_cpu_pct", (g1 - g0) * 100.0 / elapsed);
    }
    drop(sockets);
    Ok(run)
}
