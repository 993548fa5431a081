//! Per-sink counters (delivered, retried, dead, refused on overflow, dead
//! letters dropped), the request latency histogram, the last error and
//! success, and their Prometheus text (labelled `sink="NAME"`).

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::LATENCY_BUCKETS;

/// Counters of one sink, bumped by its deliverer.
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// Deliveries answered 2xx.
    pub delivered: AtomicU64,
    /// Failed attempts that were scheduled again.
    pub retried: AtomicU64,
    /// Deliveries dead-lettered after `max_attempts`.
    pub dead: AtomicU64,
    /// Deliveries refused because the queue was full (memory engine).
    pub overflow: AtomicU64,
    /// Dead letters dropped because `max_dead` was reached.
    pub dead_dropped: AtomicU64,
    /// Attempts running now.
    pub in_flight: AtomicU64,
    /// ms since the Unix epoch of the last 2xx (0: never).
    pub last_success_ts: AtomicU64,
    last_error: Mutex<Option<String>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl SinkCounters {
    /// Records one request's duration (whatever its outcome).
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Remembers the last failure, for `GET /api/v1/webhooks`.
    pub fn set_last_error(&self, error: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
    }

    /// The last failure, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A relaxed read of a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one sink reports (`GET /api/v1/webhooks`, `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkStats {
    /// Sink name.
    pub name: String,
    /// Sink URL.
    pub url: String,
    /// Deliveries queued or in flight, not yet delivered or dead.
    pub pending: u64,
    /// Attempts running now (on this node).
    pub in_flight: u64,
    /// Delivered since start (this node).
    pub delivered: u64,
    /// Retried attempts since start (this node).
    pub retried: u64,
    /// Dead letters held now.
    pub dead: u64,
    /// Age of the oldest pending delivery, ms (0: none pending).
    pub oldest_pending_age_ms: u64,
    /// The last failure's description.
    pub last_error: Option<String>,
    /// ms since the Unix epoch of the last success.
    pub last_success_ts: Option<u64>,
}

/// A series: name, help, and how to read it.
type Series<T> = (&'static str, &'static str, fn(&T) -> u64);

/// Appends the Prometheus text of every sink: `stats` (gauges from the
/// queue) and each sink's counters, in the same order.
pub fn render(out: &mut String, sinks: &[(SinkStats, &SinkCounters)]) {
    if sinks.is_empty() {
        return;
    }
    let counters: [Series<SinkCounters>; 5] = [
        (
            "hubbub_webhook_delivered_total",
            "Webhook deliveries answered 2xx.",
            |c| SinkCounters::get(&c.delivered),
        ),
        (
            "hubbub_webhook_retried_total",
            "Webhook attempts that failed and were retried.",
            |c| SinkCounters::get(&c.retried),
        ),
        (
            "hubbub_webhook_dead_lettered_total",
            "Webhook deliveries dead-lettered after max_attempts.",
            |c| SinkCounters::get(&c.dead),
        ),
        (
            "hubbub_webhook_overflow_total",
            "Webhook deliveries refused because the sink's queue was full (memory engine); each is also logged as an error.",
            |c| SinkCounters::get(&c.overflow),
        ),
        (
            "hubbub_webhook_dead_dropped_total",
            "Dead letters dropped because the sink held max_dead; each is also logged as an error.",
            |c| SinkCounters::get(&c.dead_dropped),
        ),
    ];
    for (name, help, read) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (s, c) in sinks {
            let _ = writeln!(out, "{name}{{sink=\"{}\"}} {}", s.name, read(c));
        }
    }
    let gauges: [Series<SinkStats>; 4] = [
        (
            "hubbub_webhook_pending",
            "Webhook deliveries queued or in flight.",
            |s| s.pending,
        ),
        (
            "hubbub_webhook_in_flight",
            "Webhook requests running on this node.",
            |s| s.in_flight,
        ),
        ("hubbub_webhook_dead", "Dead letters held.", |s| s.dead),
        (
            "hubbub_webhook_oldest_pending_age_seconds",
            "Age of the oldest pending webhook delivery.",
            |s| s.oldest_pending_age_ms / 1000,
        ),
    ];
    for (name, help, read) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (s, _) in sinks {
            let _ = writeln!(out, "{name}{{sink=\"{}\"}} {}", s.name, read(s));
        }
    }
    let name = "hubbub_webhook_request_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Duration of webhook requests, any outcome.\n# TYPE {name} histogram"
    );
    for (s, c) in sinks {
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += SinkCounters::get(&c.latency_buckets[i]);
            let _ = writeln!(
                out,
                "{name}_bucket{{sink=\"{}\",le=\"{bound}\"}} {cumulative}",
                s.name
            );
        }
        let count = SinkCounters::get(&c.latency_count);
        let sum = SinkCounters::get(&c.latency_sum_micros) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{sink=\"{0}\",le=\"+Inf\"}} {count}\n{name}_sum{{sink=\"{0}\"}} {sum}\n{name}_count{{sink=\"{0}\"}} {count}",
            s.name
        );
    }
}
