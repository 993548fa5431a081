//! Bounded soak: thousands of publications through three nodes (single and
//! batch REST publishes) while clients keep dropping their connection and
//! re-subscribing with `since` on a random node. Every client must end with
//! every acknowledged publication exactly once, in order, or have been told
//! `recovered: false`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on purpose

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hubbub_tests::redis::{shared_url, unique_prefix};
use hubbub_tests::{API_KEY, Client, Proto, WAIT, start_redis_node, token};
use serde_json::{Value, json};

const TOPIC: &str = "bookings:soak";
const PER_PUBLISHER: u64 = 1000;
const BATCH: u64 = 50;
const CLIENTS: usize = 8;

#[derive(Debug, Default)]
struct Track {
    epoch: Value,
    last: u64,
    told_not_recovered: bool,
    reconnects: u32,
    violations: Vec<String>,
}

impl Track {
    fn take(&mut self, offset: u64) {
        if offset != self.last + 1 {
            self.violations
                .push(format!("expected {}, got {offset}", self.last + 1));
        }
        self.last = self.last.max(offset);
    }

    /// Applies a `subscribed` reply.
    fn subscribed(&mut self, r: &Value, with_since: bool) {
        if with_since && r["recovered"] == false {
            self.told_not_recovered = true;
            self.last = r["position"]["offset"].as_u64().unwrap();
        } else {
            for p in r["publications"].as_array().into_iter().flatten() {
                self.take(p["offset"].as_u64().unwrap());
            }
            if !with_since {
                self.last = r["position"]["offset"].as_u64().unwrap();
            }
        }
        self.epoch = r["position"]["epoch"].clone();
    }
}

fn pick(n: usize) -> usize {
    rand::random_range(0..n)
}

async fn connect(url: &str) -> Option<Client> {
    let tok = token("soak", &["bookings:*"], &[], 600);
    Client::connect(url, Proto::Json, &tok)
        .await
        .ok()
        .map(|(c, _)| c)
}

async fn run_client(
    urls: Vec<String>,
    mut c: Client,
    mut track: Track,
    total: Arc<AtomicU64>,
) -> Track {
    loop {
        let finished = total.load(Ordering::Acquire);
        if finished > 0 && track.last >= finished {
            return track;
        }
        let session = Duration::from_millis(rand::random_range(20..250));
        let deadline = tokio::time::Instant::now() + if finished > 0 { WAIT } else { session };
        loop {
            let finished = total.load(Ordering::Acquire);
            if finished > 0 && track.last >= finished {
                return track;
            }
            match tokio::time::timeout_at(deadline, c.next()).await {
                Err(_) | Ok(Err(_)) => break,
                Ok(Ok(v)) if v["type"] == "pub" => track.take(v["offset"].as_u64().unwrap()),
                Ok(Ok(_)) => {}
            }
        }
        drop(c);
        track.reconnects += 1;
        // Re-subscribe with since on a random node, until it works.
        loop {
            if let Some(mut next) = connect(&urls[pick(urls.len())]).await {
                let since = json!({"epoch": track.epoch, "offset": track.last});
                if let Ok(r) = next.subscribe(TOPIC, Some(&since)).await
                    && r["type"] == "subscribed"
                {
                    track.subscribed(&r, true);
                    c = next;
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn publisher(url: String, batch: bool) -> Vec<u64> {
    let http = reqwest::Client::new();
    let mut acked = Vec::new();
    if batch {
        for b in 0..PER_PUBLISHER / BATCH {
            let pubs: Vec<Value> = (0..BATCH)
                .map(|i| json!({"topic": TOPIC, "event": "e", "data": {"b": b, "i": i}}))
                .collect();
            let r: Value = http
                .post(format!("{url}/api/v1/batch"))
                .bearer_auth(API_KEY)
                .json(&json!({"publications": pubs}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for item in r["results"].as_array().unwrap() {
                acked.push(
                    item["position"]["offset"]
                        .as_u64()
                        .expect("batch item accepted"),
                );
            }
        }
    } else {
        for i in 0..PER_PUBLISHER {
            let r: Value = http
                .post(format!("{url}/api/v1/publish"))
                .bearer_auth(API_KEY)
                .json(&json!({"topic": TOPIC, "event": "e", "data": i}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            acked.push(r["position"]["offset"].as_u64().expect("accepted"));
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_that_keep_reconnecting_get_every_acknowledged_publication_once_in_order() {
    let started = tokio::time::Instant::now();
    let prefix = unique_prefix("soak");
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(
            start_redis_node!(&shared_url(), &prefix, &format!("soak-{i}"))
                .await
                .unwrap(),
        );
    }
    let ws: Vec<String> = nodes.iter().map(|n| n.ws_url()).collect();
    let total = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut c = connect(&ws[pick(ws.len())]).await.unwrap();
        let r = c.subscribe(TOPIC, None).await.unwrap();
        let mut track = Track::default();
        track.subscribed(&r, false);
        clients.push(tokio::spawn(run_client(
            ws.clone(),
            c,
            track,
            total.clone(),
        )));
    }
    let pubs: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| tokio::spawn(publisher(n.url(""), i == 0)))
        .collect();
    let mut acked = Vec::new();
    for p in pubs {
        acked.extend(p.await.unwrap());
    }
    acked.sort_unstable();
    let n = 3 * PER_PUBLISHER;
    assert_eq!(
        acked,
        (1..=n).collect::<Vec<_>>(),
        "every publication acknowledged once"
    );
    total.store(n, Ordering::Release);
    let (mut reconnects, mut told) = (0, 0);
    for c in clients {
        let t = tokio::time::timeout(WAIT * 3, c)
            .await
            .expect("client caught up")
            .unwrap();
        reconnects += t.reconnects;
        told += usize::from(t.told_not_recovered);
        if !t.told_not_recovered {
            assert!(
                t.violations.is_empty(),
                "{:?}",
                &t.violations[..t.violations.len().min(5)]
            );
            assert_eq!(t.last, n);
        }
    }
    eprintln!(
        "soak: {n} publications, {CLIENTS} clients, {reconnects} reconnects, \
         {told} told recovered:false, {:?}",
        started.elapsed()
    );
    assert!(
        reconnects > CLIENTS as u32,
        "clients did reconnect ({reconnects})"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "bounded: {:?}",
        started.elapsed()
    );
}
