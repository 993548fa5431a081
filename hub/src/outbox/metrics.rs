//! [`OutboxMetrics`]: what the consumer reports, as Prometheus series on
//! `/metrics` and as an [`OutboxStatus`] for anything that shows a node's
//! state (a console, `/api/v1/info`).

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// "No value" for the millisecond stamps.
const NONE: i64 = i64::MIN;

/// The consumer's counters and gauges; all zero on a node without `[outbox]`.
#[derive(Debug)]
pub struct OutboxMetrics {
    base: Instant,
    enabled: AtomicBool,
    up: AtomicBool,
    leader: AtomicBool,
    published: AtomicU64,
    dead: AtomicU64,
    batches: AtomicU64,
    queries: AtomicU64,
    /// When the oldest unpublished row was written, in ms after `base`
    /// (estimated from its age when last seen; negative when before `base`);
    /// [`NONE`]: the table was empty.
    oldest_ms: AtomicI64,
    /// When the table was last read successfully, in ms after `base`.
    checked_ms: AtomicI64,
    /// Rows in the leader's last read of the table; [`NONE`]: no read as leader.
    last_read_rows: AtomicI64,
    /// Whether that read was a full batch (more rows may wait behind it).
    last_read_full: AtomicBool,
    /// The last failure (PostgreSQL, or rows that had to wait) and when, in
    /// ms after `base`. Never held across an `.await`.
    last_error: Mutex<Option<(String, i64)>>,
}

impl Default for OutboxMetrics {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            enabled: AtomicBool::new(false),
            up: AtomicBool::new(false),
            leader: AtomicBool::new(false),
            published: AtomicU64::new(0),
            dead: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            queries: AtomicU64::new(0),
            oldest_ms: AtomicI64::new(NONE),
            checked_ms: AtomicI64::new(NONE),
            last_read_rows: AtomicI64::new(NONE),
            last_read_full: AtomicBool::new(false),
            last_error: Mutex::new(None),
        }
    }
}

/// A node's view of the outbox, for a console or `/api/v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxStatus {
    /// The node runs a consumer (`[outbox]` is configured).
    pub enabled: bool,
    /// The last read of the table succeeded (PostgreSQL reachable, table present).
    pub up: bool,
    /// This node holds the table's lock and publishes its rows.
    pub leader: bool,
    /// Rows published (and deleted) by this node since start.
    pub published: u64,
    /// Rows moved to `<table>_dead` by this node since start.
    pub dead: u64,
    /// Batches this node published.
    pub batches: u64,
    /// Queries this node sent to PostgreSQL.
    pub queries: u64,
    /// Age of the oldest unpublished row; while PostgreSQL cannot be read, at
    /// least the time since it last could.
    pub lag: Duration,
    /// How long ago the table was last read successfully (`None`: never).
    pub last_read_ago: Option<Duration>,
    /// Rows in this node's last read as leader: the whole backlog when below
    /// the batch size, else at least that many (`pending_full`). `None`
    /// while the node is not the leader.
    pub pending: Option<u64>,
    /// The last read as leader was a full batch: more rows may wait.
    pub pending_full: bool,
    /// The last failure (PostgreSQL unreachable, table missing, rows that
    /// had to wait for the broker) and how long ago; kept after recovery.
    pub last_error: Option<(String, Duration)>,
}

impl OutboxMetrics {
    fn now_ms(&self) -> i64 {
        i64::try_from(self.base.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    pub(crate) fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    pub(crate) fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
        if !leader {
            self.last_read_rows.store(NONE, Ordering::Relaxed);
        }
    }

    /// The leader read `rows` rows of at most `limit`.
    pub(crate) fn read(&self, rows: usize, limit: usize) {
        self.last_read_rows
            .store(i64::try_from(rows).unwrap_or(i64::MAX), Ordering::Relaxed);
        self.last_read_full.store(rows >= limit, Ordering::Relaxed);
    }

    /// Something failed; `error` is what an operator should read.
    pub(crate) fn failed(&self, error: String) {
        let now = self.now_ms();
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some((error, now));
        }
    }

    pub(crate) fn query(&self) {
        self.queries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn batch(&self, published: u64, dead: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.published.fetch_add(published, Ordering::Relaxed);
        self.dead.fetch_add(dead, Ordering::Relaxed);
    }

    /// The table was read: its oldest row is `oldest_age` old (`None`: empty).
    pub(crate) fn checked(&self, oldest_age: Option<Duration>) {
        let now = self.now_ms();
        let oldest = oldest_age.map_or(NONE, |age| {
            now.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
                .max(NONE + 1)
        });
        self.oldest_ms.store(oldest, Ordering::Relaxed);
        self.checked_ms.store(now, Ordering::Relaxed);
        self.up.store(true, Ordering::Relaxed);
    }

    /// The table could not be read (PostgreSQL down, table missing).
    pub(crate) fn down(&self) {
        self.up.store(false, Ordering::Relaxed);
        self.set_leader(false);
    }

    fn ago(&self, at_ms: i64) -> Duration {
        Duration::from_millis(u64::try_from(self.now_ms().saturating_sub(at_ms)).unwrap_or(0))
    }

    fn lag(&self) -> Duration {
        if !self.enabled.load(Ordering::Relaxed) {
            return Duration::ZERO;
        }
        let now = self.now_ms();
        let oldest = self.oldest_ms.load(Ordering::Relaxed);
        let since = if oldest != NONE {
            oldest
        } else if self.up.load(Ordering::Relaxed) {
            now
        } else {
            // Never read, or not since the last success: rows may be waiting.
            match self.checked_ms.load(Ordering::Relaxed) {
                NONE => 0,
                at => at,
            }
        };
        Duration::from_millis(u64::try_from(now.saturating_sub(since)).unwrap_or(0))
    }

    /// The current values.
    pub fn status(&self) -> OutboxStatus {
        OutboxStatus {
            enabled: self.enabled.load(Ordering::Relaxed),
            up: self.up.load(Ordering::Relaxed),
            leader: self.leader.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            queries: self.queries.load(Ordering::Relaxed),
            lag: self.lag(),
            last_read_ago: match self.checked_ms.load(Ordering::Relaxed) {
                NONE => None,
                at => Some(self.ago(at)),
            },
            pending: match self.last_read_rows.load(Ordering::Relaxed) {
                NONE => None,
                n => Some(u64::try_from(n).unwrap_or(0)),
            },
            pending_full: self.last_read_full.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .ok()
                .and_then(|last| last.clone())
                .map(|(e, at)| (e, self.ago(at))),
        }
    }

    /// Appends the `hubbub_outbox_*` series (Prometheus text).
    pub fn render(&self, out: &mut String) {
        let s = self.status();
        for (name, help, value) in [
            (
                "hubbub_outbox_published_total",
                "Outbox rows published and deleted by this node.",
                s.published,
            ),
            (
                "hubbub_outbox_dead_total",
                "Outbox rows moved to the dead-letter table by this node.",
                s.dead,
            ),
            (
                "hubbub_outbox_batches_total",
                "Outbox batches published by this node.",
                s.batches,
            ),
            (
                "hubbub_outbox_queries_total",
                "Queries this node's outbox consumer sent to PostgreSQL.",
                s.queries,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        for (name, help, value) in [
            (
                "hubbub_outbox_up",
                "1 when the outbox table was last read successfully.",
                u8::from(s.up),
            ),
            (
                "hubbub_outbox_leader",
                "1 when this node holds the outbox lock and publishes.",
                u8::from(s.leader),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP hubbub_outbox_lag_seconds Age of the oldest unpublished outbox row (while PostgreSQL cannot be read: at least the time since it last could).\n# TYPE hubbub_outbox_lag_seconds gauge\nhubbub_outbox_lag_seconds {:.3}",
            s.lag.as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_follows_the_oldest_row_and_grows_while_down() {
        let m = OutboxMetrics::default();
        assert_eq!(m.status().lag, Duration::ZERO, "disabled");
        m.enable();
        m.checked(Some(Duration::from_secs(3)));
        let lag = m.status().lag;
        assert!(
            lag >= Duration::from_secs(3) && lag < Duration::from_secs(60),
            "{lag:?}"
        );
        m.checked(None);
        assert_eq!(m.status().lag, Duration::ZERO);
        assert!(m.status().up);
        m.down();
        assert!(!m.status().up);
        std::thread::sleep(Duration::from_millis(20));
        assert!(m.status().lag >= Duration::from_millis(20));
        let mut text = String::new();
        m.render(&mut text);
        assert!(text.contains("hubbub_outbox_up 0\n"), "{text}");
        assert!(text.contains("hubbub_outbox_lag_seconds 0.0"), "{text}");
    }

    #[test]
    fn status_keeps_the_last_read_and_the_last_error() {
        let m = OutboxMetrics::default();
        m.enable();
        let s = m.status();
        assert_eq!(
            (s.pending, s.last_read_ago, s.last_error),
            (None, None, None)
        );
        m.set_leader(true);
        m.read(3, 500);
        m.checked(Some(Duration::from_secs(1)));
        let s = m.status();
        assert_eq!((s.pending, s.pending_full), (Some(3), false));
        assert!(s.last_read_ago.is_some());
        m.read(500, 500);
        assert!(m.status().pending_full);
        m.failed("PostgreSQL: connection refused".into());
        m.down();
        let s = m.status();
        assert_eq!(s.pending, None, "not the leader any more");
        let (e, _) = s.last_error.unwrap();
        assert_eq!(e, "PostgreSQL: connection refused");
        m.checked(None);
        assert!(m.status().last_error.is_some(), "kept after recovery");
    }
}
