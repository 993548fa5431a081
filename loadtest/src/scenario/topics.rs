//! `topics`: N connections each on its own topic plus a shared group topic;
//! publications spread over the own topics at rate R, and to the group topic
//! at its own rate.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::{
    Counters, note_failures, report_deliveries, spawn_receivers, stop_receivers, wait_delivered,
    with_hubs,
};
use crate::cli::Topics;
use crate::client::{Dialer, connect_all, token};
use crate::hubs::Hubs;
use crate::publisher::Publisher;
use crate::receiver::Recorder;
use crate::report::Run;

pub(super) async fn run(a: Topics) -> Result<()> {
    let common = a.common.clone();
    with_hubs(&common, |hubs| body(a, hubs)).await
}

async fn body(a: Topics, hubs: Arc<Hubs>) -> Result<Run> {
    let c = &a.common;
    let ns = c.namespace.clone();
    let mut run = Run::new("topics", c);
    run.set("clients", a.clients as u64);
    run.set("rate", a.rate);
    run.set("group_rate", a.group_rate);
    run.set("bytes", a.bytes as u64);
    run.set("duration_s", a.duration);
    let group = format!("{ns}:group");
    let dialer = Dialer::new(hubs.addrs.clone(), c.source_addrs)?;
    let tokens = vec![token(&hubs.secret, "loadtest", &[format!("{ns}:*")], &[])];
    let t = Instant::now();
    let (sockets, errors, _) =
        connect_all(&dialer, a.clients, c.connect_concurrency, &tokens, |i| {
            vec![format!("{ns}:c{i}"), group.clone()]
        })
        .await;
    run.set("connect_s", t.elapsed().as_secs_f64());
    note_failures(&mut run, &errors);
    let subscribed = sockets.len() as u64;
    let rec = Arc::new(Recorder::new()?);
    let stop = CancellationToken::new();
    let receivers = spawn_receivers(sockets, &rec, &stop, hubs.addrs[0]);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let publisher = Publisher::new(c, &hubs, a.bytes)?;
    let start = Counters::now(&hubs);
    let t = Instant::now();
    let n = a.clients as u64;
    let own_ns = ns.clone();
    let own = publisher.at_rate(
        a.rate,
        Duration::from_secs(a.duration),
        a.publishers,
        false,
        move |seq| format!("{own_ns}:c{}", seq % n),
    );
    let group_topic = group.clone();
    let grp = publisher.at_rate(
        a.group_rate,
        Duration::from_secs(a.duration),
        1,
        true,
        move |_| group_topic.clone(),
    );
    let (own, grp) = tokio::join!(own, grp);
    let publish_s = t.elapsed().as_secs_f64();
    let (own_ok, grp_ok) = (
        own.ok.load(Ordering::Relaxed),
        grp.ok.load(Ordering::Relaxed),
    );
    let expected = own_ok + grp_ok * subscribed;
    wait_delivered(&rec, expected, Duration::from_secs(5)).await;
    let end = Counters::now(&hubs);
    let rss = hubs.rss_bytes();
    stop_receivers(stop, receivers).await;

    run.set("published", own_ok);
    run.set("group_published", grp_ok);
    run.set(
        "publish_failed",
        own.failed.load(Ordering::Relaxed) + grp.failed.load(Ordering::Relaxed),
    );
    report_deliveries(
        &mut run,
        &hubs,
        &rec,
        (&start, &end),
        expected,
        publish_s,
        rss,
    );
    if let Ok(h) = rec.group_latency.lock() {
        run.latency("group_", &h);
    }
    Ok(run)
}
