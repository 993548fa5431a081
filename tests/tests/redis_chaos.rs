//! The chaos run (see `hubbub_tests::chaos`): three nodes on one private
//! Redis, reconnecting raw clients, an idempotent REST publisher, and each
//! fault in turn. The short version runs in `cargo test`; the long one is
//! `#[ignore]`d (command in docs/redis.md):
//!
//! ```text
//! cargo test --release -p hubbub-tests --test redis_chaos -- --ignored --nocapture
//! ```
//!
//! `HUBBUB_CHAOS_BIN` runs it against another hub binary (e.g. an older
//! build, for a before/after table); `HUBBUB_CHAOS_SECONDS` sets the long
//! run's publishing time per fault (default 120).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use std::path::PathBuf;
use std::time::Duration;

use hubbub_tests::chaos::{Fault, Report, Scale, run};

fn bin() -> PathBuf {
    std::env::var_os("HUBBUB_CHAOS_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_hubbub-node")),
        PathBuf::from,
    )
}

async fn all(scale: &Scale) -> Vec<Report> {
    let mut reports = Vec::new();
    println!("{}", Report::HEADER);
    for fault in Fault::ALL {
        let r = run(&bin(), fault, scale).await.unwrap();
        println!("{r}");
        reports.push(r);
    }
    reports
}

fn check(reports: &[Report]) {
    for r in reports {
        assert!(r.acknowledged > 0 && r.delivered > 0, "{r}");
        assert_eq!(
            (r.silent, r.duplicates, r.live_gaps),
            (0, 0, 0),
            "silent losses, duplicates, live gaps: {r}"
        );
    }
}

/// A few seconds per fault; asserts outcomes, never timings.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_fault_loses_a_publication_silently() {
    let reports = all(&Scale {
        topics: 3,
        clients_per_topic: 3,
        rate: 60,
        duration: Duration::from_secs(4),
        settle: Duration::from_secs(30),
    })
    .await;
    check(&reports);
}

/// The long run: 10 topics × 6 clients, 60 publications/s per topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long: minutes per fault; run explicitly"]
async fn long_chaos_run() {
    let seconds = std::env::var("HUBBUB_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let reports = all(&Scale {
        topics: 10,
        clients_per_topic: 6,
        rate: 60,
        duration: Duration::from_secs(seconds),
        settle: Duration::from_secs(60),
    })
    .await;
    check(&reports);
}
