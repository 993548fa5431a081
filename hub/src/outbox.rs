//! The PostgreSQL outbox consumer (`[outbox]`, `docs/outbox.md`): services
//! insert publications into an outbox table in the same transaction as their
//! own change, and the hub publishes what was committed, through the same
//! path as `POST /api/v1/batch`.
//!
//! # Design
//! - **One leader per table.** Every node opens one PostgreSQL session and
//!   tries `pg_try_advisory_lock` on it; the holder publishes, the others
//!   stand by and try again every `poll_interval`. The lock is the session's:
//!   when the leader dies (kill -9, network, PostgreSQL restart) PostgreSQL
//!   frees it and a standby takes over. So two nodes never publish the same
//!   rows at the same time, and one reader in `id` order keeps each topic in
//!   order.
//! - **Batches.** The leader reads the oldest `batch_size` rows, publishes
//!   them in one [`Hub::publish_batch`](crate::hub::Hub::publish_batch) call
//!   with each row's idempotency key (or `outbox:<id>`), then deletes the
//!   published rows and moves poison rows to `<table>_dead` in one statement.
//!   A crash between publish and delete re-publishes at most, and the key
//!   makes that a no-op within the idempotency window.
//! - **Waiting rows.** A broker outage (or a draining node) is not the row's
//!   fault: such rows stay and the batch is retried with backoff, so later
//!   rows of their topic never overtake them.
//! - **Wake-ups.** The leader `LISTEN`s on the channel named like the table;
//!   the trigger from `hubbub outbox init` sends a `NOTIFY` on commit.
//!
//! # Layout
//! - `outbox/sql.rs`: the schema and the statements, per table;
//! - `outbox/session.rs`: a connection (TLS for `sslmode=require`) and its NOTIFY wake-up;
//! - `outbox/consumer.rs`: the lock, the batch loop, reconnects and logging;
//! - `outbox/publish.rs`: one batch through the hub, sorted into published, dead, waiting;
//! - `outbox/metrics.rs`: [`OutboxMetrics`] and [`OutboxStatus`];
//! - `outbox/cli.rs`: `hubbub outbox init [--apply]`.

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::hub::Hub;

pub mod cli;
mod consumer;
mod metrics;
mod publish;
mod session;
pub mod sql;

pub use metrics::{OutboxMetrics, OutboxStatus};

/// Why the consumer could not read or acknowledge the outbox (it retries).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// PostgreSQL refused or the connection failed.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The TLS client could not be set up.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The outbox table or its `_dead` twin does not exist.
    #[error("{message}; create the outbox tables with `hubbub outbox init --apply`")]
    MissingTable {
        /// PostgreSQL's message, naming the relation.
        message: String,
    },
}

/// Starts the node's outbox consumer when `[outbox]` is configured; it
/// stops when the node drains (await the handle to know it has).
pub fn spawn(hub: &Arc<Hub>) -> Option<JoinHandle<()>> {
    let config = hub.config.outbox.clone()?;
    // Before the task first runs, so `GET /api/v1/outbox` never calls a
    // consuming node unconfigured; a process that never calls this (the
    // standalone REST API) stays "not configured".
    hub.metrics.outbox.enable();
    Some(tokio::spawn(consumer::run(hub.clone(), config)))
}
