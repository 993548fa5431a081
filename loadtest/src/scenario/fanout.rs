//! `fanout`: S subscribers of one topic, publications at rate R through REST.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::{
    Counters, note_failures, report_deliveries, spawn_receivers, stop_receivers, wait_delivered,
    with_hubs,
};
use crate::cli::Fanout;
use crate::client::{Dialer, connect_all, token};
use crate::hubs::Hubs;
use crate::publisher::Publisher;
use crate::receiver::Recorder;
use crate::report::Run;

pub(super) async fn run(a: Fanout) -> Result<()> {
    let common = a.common.clone();
    with_hubs(&common, |hubs| body(a, hubs)).await
}

async fn body(a: Fanout, hubs: Arc<Hubs>) -> Result<Run> {
    let c = &a.common;
    let mut run = Run::new("fanout", c);
    run.set("subs", a.subs as u64);
    run.set("rate", a.rate);
    run.set("bytes", a.bytes as u64);
    run.set("duration_s", a.duration);
    let topic = format!("{}:fan", c.namespace);
    let dialer = Dialer::new(hubs.addrs.clone(), c.source_addrs)?;
    let tokens = vec![token(
        &hubs.secret,
        "loadtest",
        std::slice::from_ref(&topic),
        &[],
    )];
    let t = Instant::now();
    let (sockets, errors, _) = connect_all(&dialer, a.subs, c.connect_concurrency, &tokens, |_| {
        vec![topic.clone()]
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
    let pub_topic = topic.clone();
    let sent = publisher
        .at_rate(
            a.rate,
            Duration::from_secs(a.duration),
            a.publishers,
            false,
            move |_| pub_topic.clone(),
        )
        .await;
    let publish_s = t.elapsed().as_secs_f64();
    let ok = sent.ok.load(Ordering::Relaxed);
    let expected = ok * subscribed;
    wait_delivered(&rec, expected, Duration::from_secs(5)).await;
    let end = Counters::now(&hubs);
    let rss = hubs.rss_bytes();
    stop_receivers(stop, receivers).await;

    run.set("published", ok);
    run.set("publish_failed", sent.failed.load(Ordering::Relaxed));
    report_deliveries(
        &mut run,
        &hubs,
        &rec,
        (&start, &end),
        expected,
        publish_s,
        rss,
    );
    Ok(run)
}
