//! The consumer loop of one node: connect, take the table's leader lock (or
//! stand by), then read → publish → acknowledge batches in `id` order,
//! woken by `NOTIFY` and every `poll_interval`; reconnect with backoff on
//! any PostgreSQL failure; stop when the node drains.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_postgres::error::SqlState;
use tracing::{error, info, warn};

use super::OutboxError;
use super::publish::{Row, publish};
use super::session::Session;
use super::sql::Statements;
use crate::config::OutboxConfig;
use crate::hub::Hub;

/// First wait after a failure; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between attempts (connect, missing table, broker down).
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A failure that repeats unchanged is logged again after this long.
const RELOG_AFTER: Duration = Duration::from_secs(60);

/// Runs the consumer until the node drains.
pub(crate) async fn run(hub: Arc<Hub>, config: OutboxConfig) {
    let metrics = &hub.metrics.outbox;
    metrics.enable();
    let sql = Statements::new(&config.table);
    let mut report = Reporter::default();
    let mut backoff = MIN_BACKOFF;
    info!(
        url = %config.postgres_url,
        table = %config.table,
        "outbox: consuming PostgreSQL outbox"
    );
    while !hub.is_draining() {
        let mut worker = Worker {
            hub: &hub,
            config: &config,
            sql: &sql,
            report: &mut report,
            backoff: &mut backoff,
        };
        match worker.session().await {
            Ok(()) => break,
            Err(e) => {
                metrics.down();
                metrics.failed(report.failed(&e, &config));
                if !sleep_unless_draining(&hub, backoff).await {
                    break;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    metrics.set_leader(false);
    info!(table = %config.table, "outbox: consumer stopped");
}

struct Worker<'a> {
    hub: &'a Arc<Hub>,
    config: &'a OutboxConfig,
    sql: &'a Statements,
    report: &'a mut Reporter,
    backoff: &'a mut Duration,
}

impl Worker<'_> {
    /// One session: returns `Ok` when the node drains, `Err` to reconnect.
    async fn session(&mut self) -> Result<(), OutboxError> {
        let hub = self.hub;
        let metrics = &hub.metrics.outbox;
        let sql = self.sql;
        let session =
            Session::connect(&self.config.postgres_url, &format!("hubbub {}", hub.node)).await?;
        let client = &session.client;
        // Preparing checks that both tables exist (a clear error otherwise).
        metrics.query();
        let fetch = client.prepare(&sql.fetch).await.map_err(missing)?;
        metrics.query();
        let ack = client.prepare(&sql.ack).await.map_err(missing)?;
        metrics.query();
        let lag = client.prepare(&sql.lag).await.map_err(missing)?;
        self.report.ok(&self.config.table);
        *self.backoff = MIN_BACKOFF;
        let limit = i64::try_from(self.config.batch_size).unwrap_or(i64::MAX);
        let mut broker_backoff = MIN_BACKOFF;
        // Standby until the leader lock is ours; the lock lives as long as
        // this session, so a node that dies (or loses PostgreSQL) frees it.
        loop {
            metrics.query();
            let locked: bool = client
                .query_one(sql.try_lock, &[&sql.table])
                .await?
                .try_get(0)?;
            if locked {
                break;
            }
            metrics.query();
            let age: f64 = client.query_one(&lag, &[]).await?.try_get(0)?;
            metrics.checked(age_of(age));
            if !wait(hub, self.config.poll_interval, &session.wake).await {
                return Ok(());
            }
        }
        metrics.query();
        client.batch_execute(&sql.listen).await?;
        metrics.set_leader(true);
        info!(table = %sql.table, node = %hub.node, "outbox: this node now publishes the outbox");
        loop {
            metrics.query();
            let rows = client
                .query(&fetch, &[&limit])
                .await
                .map_err(missing)?
                .iter()
                .map(Row::from_pg)
                .collect::<Result<Vec<_>, _>>()?;
            metrics.checked(rows.first().and_then(|r| age_of(r.age_ms)));
            metrics.read(rows.len(), self.config.batch_size);
            if rows.is_empty() {
                if !wait(hub, self.config.poll_interval, &session.wake).await {
                    return Ok(());
                }
                continue;
            }
            let outcome = publish(hub, &rows).await;
            for (id, why) in &outcome.dead {
                warn!(table = %sql.table, id, error = %why, "outbox: row cannot be published; moved to the dead-letter table");
                metrics.failed(format!("row {id} moved to {}_dead: {why}", sql.table));
            }
            if !outcome.published.is_empty() || !outcome.dead.is_empty() {
                let dead_ids: Vec<i64> = outcome.dead.iter().map(|(id, _)| *id).collect();
                let dead_errors: Vec<&str> = outcome.dead.iter().map(|(_, e)| e.as_str()).collect();
                metrics.query();
                client
                    .execute(&ack, &[&outcome.published, &dead_ids, &dead_errors])
                    .await
                    .map_err(missing)?;
                metrics.batch(outcome.published.len() as u64, dead_ids.len() as u64);
            }
            if let Some((id, e)) = &outcome.waiting {
                if hub.is_draining() {
                    return Ok(());
                }
                warn!(table = %sql.table, id, rows = outcome.waiting_rows, error = %e, retry_in = ?broker_backoff, "outbox: cannot publish now; the rows wait");
                metrics.failed(format!(
                    "cannot publish now, {} rows wait from id {id}: {e}",
                    outcome.waiting_rows
                ));
                if !sleep_unless_draining(hub, broker_backoff).await {
                    return Ok(());
                }
                broker_backoff = (broker_backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            broker_backoff = MIN_BACKOFF;
            if rows.len() < self.config.batch_size
                && !wait(hub, self.config.poll_interval, &session.wake).await
            {
                return Ok(());
            }
        }
    }
}

fn age_of(ms: f64) -> Option<Duration> {
    (ms > 0.0).then(|| Duration::from_secs_f64(ms / 1000.0))
}

/// A missing table gets its own, actionable error.
fn missing(e: tokio_postgres::Error) -> OutboxError {
    match e.as_db_error() {
        Some(db) if db.code() == &SqlState::UNDEFINED_TABLE => OutboxError::MissingTable {
            message: db.message().to_owned(),
        },
        _ => OutboxError::Postgres(e),
    }
}

/// Waits for a NOTIFY, `period` or the end of the connection; `false` when
/// the node started draining.
async fn wait(hub: &Hub, period: Duration, wake: &Notify) -> bool {
    tokio::select! {
        () = hub.draining() => false,
        () = tokio::time::sleep(period) => true,
        () = wake.notified() => true,
    }
}

async fn sleep_unless_draining(hub: &Hub, period: Duration) -> bool {
    tokio::select! {
        () = hub.draining() => false,
        () = tokio::time::sleep(period) => true,
    }
}

/// Logs failures once (again after [`RELOG_AFTER`] if they persist) and recovery.
#[derive(Debug, Default)]
struct Reporter {
    last: Option<(String, Instant)>,
}

impl Reporter {
    /// Logs `e` unless it repeats; returns its full text (with causes).
    fn failed(&mut self, e: &OutboxError, config: &OutboxConfig) -> String {
        // tokio-postgres keeps the cause (e.g. "Connection refused") in `source`.
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            let c_text = c.to_string();
            if !text.contains(&c_text) {
                text.push_str(": ");
                text.push_str(&c_text);
            }
            cause = c.source();
        }
        let repeat = self
            .last
            .as_ref()
            .is_some_and(|(t, at)| *t == text && at.elapsed() < RELOG_AFTER);
        if !repeat {
            error!(
                url = %config.postgres_url,
                table = %config.table,
                error = %text,
                "outbox: cannot consume the outbox; retrying (rows wait in PostgreSQL, nothing is lost)"
            );
            self.last = Some((text.clone(), Instant::now()));
        }
        text
    }

    fn ok(&mut self, table: &str) {
        if self.last.take().is_some() {
            info!(table, "outbox: PostgreSQL outbox readable again");
        }
    }
}
