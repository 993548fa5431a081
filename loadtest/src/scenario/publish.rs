//! `publish`: REST publish throughput, single (`/publish`) or batch (`/batch`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::with_hubs;
use crate::cli::Publish;
use crate::hubs::{Hubs, cpu_seconds};
use crate::publisher::Publisher;
use crate::receiver::histogram;
use crate::report::Run;

pub(super) async fn run(a: Publish) -> Result<()> {
    let common = a.common.clone();
    with_hubs(&common, |hubs| body(a, hubs)).await
}

async fn body(a: Publish, hubs: Arc<Hubs>) -> Result<Run> {
    let c = &a.common;
    let mut run = Run::new("publish", c);
    let batch = a.batch.max(1);
    run.set("batch", batch as u64);
    run.set("concurrency", a.concurrency as u64);
    run.set("count", a.count as u64);
    run.set("bytes", a.bytes as u64);
    let publisher = Publisher::new(c, &hubs, a.bytes)?;
    let requests = a.count.div_ceil(batch) as u64;
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(a.max_seconds);
    let (hub0, gen0) = (hubs.cpu_seconds(), cpu_seconds("self"));
    let wait0 = hubs.runq_wait_seconds();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency.max(1) {
        let (p, next, ok, failed) = (publisher.clone(), next.clone(), ok.clone(), failed.clone());
        let (ns, topics) = (c.namespace.clone(), a.topics.max(1) as u64);
        tasks.push(tokio::spawn(async move {
            let mut lat = histogram()?;
            loop {
                let r = next.fetch_add(1, Ordering::Relaxed);
                if r >= requests || Instant::now() > deadline {
                    break;
                }
                let sent = Instant::now();
                if batch == 1 {
                    let counter = if p.publish(&format!("{ns}:p{}", r % topics), false).await {
                        &ok
                    } else {
                        &failed
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                } else {
                    let names: Vec<String> = (0..batch as u64)
                        .map(|k| format!("{ns}:p{}", (r * batch as u64 + k) % topics))
                        .collect();
                    match p.batch(&names).await {
                        Ok(n) => {
                            ok.fetch_add(n as u64, Ordering::Relaxed);
                            failed.fetch_add((batch - n) as u64, Ordering::Relaxed);
                        }
                        Err(_) => {
                            failed.fetch_add(batch as u64, Ordering::Relaxed);
                        }
                    }
                }
                lat.saturating_record(sent.elapsed().as_micros() as u64);
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut lat = histogram()?;
    for task in tasks {
        lat.add(task.await??)?;
    }
    let elapsed = t.elapsed().as_secs_f64();
    let (hub1, gen1) = (hubs.cpu_seconds(), cpu_seconds("self"));
    let wait1 = hubs.runq_wait_seconds();
    let ok = ok.load(Ordering::Relaxed);
    run.set("published", ok);
    run.set("failed", failed.load(Ordering::Relaxed));
    run.set("elapsed_s", elapsed);
    run.set("pubs_per_s", ok as f64 / elapsed);
    run.latency("req_", &lat);
    if let (Some(h0), Some(h1)) = (hub0, hub1)
        && ok > 0
    {
        run.set("hub_cpu_us_per_pub", (h1 - h0) * 1e6 / ok as f64);
    }
    if let (Some(w0), Some(w1)) = (wait0, wait1) {
        run.set("hub_runq_wait_pct", (w1 - w0) * 100.0 / elapsed);
    }
    if let (Some(g0), Some(g1)) = (gen0, gen1) {
        run.set("gen_cpu_pct", (g1 - g0) * 100.0 / elapsed);
    }
    Ok(run)
}
