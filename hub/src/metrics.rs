//! Process-wide counters, exported as Prometheus text on `GET /metrics`.
//! Counters are plain atomics bumped on the hot path; gauges (connections,
//! subscriptions, topics) are read from the registry when scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::protocol::{CloseCode, ErrorCode};

/// Upper bounds (seconds) of the latency histograms' buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A Prometheus histogram with fixed [`LATENCY_BUCKETS`], lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Hub counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Time from a publish request reaching the hub to the broker accepting it.
    pub publish_latency: Histogram,
    /// Time from a publication's acceptance (`ts`) to its frame being written
    /// to a subscriber's socket (sampled: the first publication of each write).
    pub delivery_latency: Histogram,
    connections_accepted: AtomicU64,
    publications: AtomicU64,
    deliveries: AtomicU64,
    slow_consumers: AtomicU64,
    rejected: [AtomicU64; Rejection::ALL.len()],
    errors: [AtomicU64; ErrorCode::ALL.len()],
    disconnects: [AtomicU64; CloseCode::ALL.len()],
    /// The PostgreSQL outbox consumer's counters (`hubbub_outbox_*`).
    pub outbox: crate::outbox::OutboxMetrics,
}

/// Why a new connection or request was refused before it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The node or the user was at `max_connections(_per_user)`.
    ConnectionLimit,
    /// The client IP or API key was over its rate.
    RateLimited,
    /// The browser origin is not allowed.
    Origin,
}

impl Rejection {
    /// Every reason, in a stable order.
    pub const ALL: [Rejection; 3] = [
        Rejection::ConnectionLimit,
        Rejection::RateLimited,
        Rejection::Origin,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::ConnectionLimit => "connection_limit",
            Rejection::RateLimited => "rate_limited",
            Rejection::Origin => "origin",
        }
    }
}

/// A copy of the counters, for tests and `/api/v1/info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// WebSocket connections accepted since start.
    pub connections_accepted: u64,
    /// Publications accepted since start.
    pub publications: u64,
    /// Publication frames written to subscribers since start.
    pub deliveries: u64,
    /// Connections closed with 4101 since start.
    pub slow_consumers: u64,
}

/// Gauges read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Open, authenticated connections.
    pub connections: usize,
    /// (connection, topic) subscriptions.
    pub subscriptions: usize,
    /// Topics with local subscribers.
    pub topics: usize,
    /// What the memory engine holds against its caps (`None` on Redis).
    pub store: Option<crate::broker::StoreUsage>,
}

impl Metrics {
    /// A WebSocket connection was accepted.
    pub fn connection_accepted(&self) {
        self.connections_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// A publication was accepted by the broker.
    pub fn publication(&self) {
        self.publications.fetch_add(1, Ordering::Relaxed);
    }

    /// Publication frames were written to a subscriber.
    pub fn deliveries(&self, n: u64) {
        self.deliveries.fetch_add(n, Ordering::Relaxed);
    }

    /// A connection was cut off as a slow consumer.
    pub fn slow_consumer(&self) {
        self.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection or request was refused before it started.
    pub fn rejected(&self, why: Rejection) {
        self.rejected[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// An `error` reply (or REST error) with `code` was sent.
    pub fn error(&self, code: ErrorCode) {
        self.errors[code.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed by the hub with `code`.
    pub fn disconnect(&self, code: CloseCode) {
        self.disconnects[code.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Current counter values.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            connections_accepted: self.connections_accepted.load(Ordering::Relaxed),
            publications: self.publications.load(Ordering::Relaxed),
            deliveries: self.deliveries.load(Ordering::Relaxed),
            slow_consumers: self.slow_consumers.load(Ordering::Relaxed),
        }
    }

    /// Prometheus text exposition (version 0.0.4).
    pub fn render(&self, gauges: Gauges) -> String {
        let s = self.snapshot();
        let mut out = String::with_capacity(2048);
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "hubbub_connections_accepted_total",
            "WebSocket connections accepted.",
            s.connections_accepted,
        );
        counter(
            "hubbub_publications_total",
            "Publications accepted.",
            s.publications,
        );
        counter(
            "hubbub_deliveries_total",
            "Publication frames written to subscribers.",
            s.deliveries,
        );
        counter(
            "hubbub_slow_consumer_disconnects_total",
            "Connections closed with 4101 slow_consumer.",
            s.slow_consumers,
        );
        let mut gauge = |name: &str, help: &str, value: usize| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            "hubbub_connections",
            "Open authenticated connections.",
            gauges.connections,
        );
        gauge(
            "hubbub_subscriptions",
            "Connection-topic subscriptions.",
            gauges.subscriptions,
        );
        gauge(
            "hubbub_topics",
            "Topics with local subscribers.",
            gauges.topics,
        );
        if let Some(store) = gauges.store {
            gauge(
                "hubbub_memory_topics",
                "Topics with a stream in the memory engine.",
                store.topics,
            );
            gauge(
                "hubbub_memory_max_topics",
                "memory.max_topics: beyond it a new topic's publication is refused.",
                store.max_topics,
            );
            gauge(
                "hubbub_memory_history_bytes",
                "Bytes of history and idempotency keys in the memory engine.",
                store.history_bytes,
            );
            gauge(
                "hubbub_memory_max_history_bytes",
                "memory.max_history_bytes: beyond it a publication is refused.",
                store.max_history_bytes,
            );
        }
        let _ = writeln!(
            out,
            "# HELP hubbub_errors_total Error replies by code.\n# TYPE hubbub_errors_total counter"
        );
        for code in ErrorCode::ALL {
            let v = self.errors[code.index()].load(Ordering::Relaxed);
            let _ = writeln!(out, "hubbub_errors_total{{code=\"{}\"}} {v}", code.as_str());
        }
        self.publish_latency.render(
            &mut out,
            "hubbub_publish_duration_seconds",
            "Publish requests, from arrival to acceptance by the broker.",
        );
        self.delivery_latency.render(
            &mut out,
            "hubbub_delivery_latency_seconds",
            "Publication acceptance to socket write (first publication of each write).",
        );
        let _ = writeln!(
            out,
            "# HELP hubbub_rejected_total Connections and requests refused before they started, by reason.\n# TYPE hubbub_rejected_total counter"
        );
        for why in Rejection::ALL {
            let v = self.rejected[why as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "hubbub_rejected_total{{reason=\"{}\"}} {v}",
                why.as_str()
            );
        }
        let _ = writeln!(
            out,
            "# HELP hubbub_disconnects_total Connections closed by the hub, by close code.\n# TYPE hubbub_disconnects_total counter"
        );
        for code in CloseCode::ALL {
            let v = self.disconnects[code.index()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "hubbub_disconnects_total{{code=\"{}\",reason=\"{}\"}} {v}",
                code.code(),
                code.reason()
            );
        }
        self.outbox.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.publication();
        m.error(ErrorCode::Forbidden);
        m.disconnect(CloseCode::SlowConsumer);
        let text = m.render(Gauges {
            connections: 3,
            subscriptions: 4,
            topics: 1,
            store: Some(crate::broker::StoreUsage {
                topics: 5,
                max_topics: 10,
                history_bytes: 600,
                max_history_bytes: 1000,
            }),
        });
        assert!(text.contains("hubbub_publications_total 1\n"));
        assert!(text.contains("hubbub_memory_topics 5\n"));
        assert!(text.contains("hubbub_memory_max_history_bytes 1000\n"));
        assert!(!m.render(Gauges::default()).contains("hubbub_memory_"));
        assert!(text.contains("hubbub_connections 3\n"));
        m.publish_latency
            .observe(std::time::Duration::from_micros(700));
        m.publish_latency
            .observe(std::time::Duration::from_secs(10));
        let text = m.render(Gauges::default());
        assert!(text.contains("hubbub_publish_duration_seconds_bucket{le=\"0.0005\"} 0\n"));
        assert!(text.contains("hubbub_publish_duration_seconds_bucket{le=\"0.001\"} 1\n"));
        assert!(text.contains("hubbub_publish_duration_seconds_bucket{le=\"2.5\"} 1\n"));
        assert!(text.contains("hubbub_publish_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("hubbub_publish_duration_seconds_count 2\n"));
        assert!(text.contains("hubbub_errors_total{code=\"forbidden\"} 1\n"));
        assert!(
            text.contains("hubbub_disconnects_total{code=\"4101\",reason=\"slow_consumer\"} 1\n")
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                line.rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some(),
                "{line}"
            );
        }
    }
}
