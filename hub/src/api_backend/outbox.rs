//! The hub's side of `GET /api/v1/outbox`: this node's
//! [`OutboxStatus`](crate::outbox::OutboxStatus) and `[outbox]` settings as
//! the API's [`OutboxState`].

use std::time::Duration;

use hubbub_api::outbox::{OutboxConsumer, OutboxRole, OutboxState};

use super::HubBackend;

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl HubBackend {
    /// The outbox consumer's state on this node (the caller was checked to
    /// be an operator); `configured: false` when this process runs no
    /// consumer (no `[outbox]`, or the standalone REST API, which never does).
    pub(super) fn outbox_state(&self) -> OutboxState {
        let s = self.0.metrics.outbox.status();
        let (Some(config), true) = (&self.0.config.outbox, s.enabled) else {
            return OutboxState {
                configured: false,
                consumer: None,
            };
        };
        let (last_error, last_error_ago_ms) = match s.last_error {
            Some((e, ago)) => (Some(e), Some(ms(ago))),
            None => (None, None),
        };
        OutboxState {
            configured: true,
            consumer: Some(OutboxConsumer {
                table: config.table.clone(),
                role: if s.leader {
                    OutboxRole::Leader
                } else {
                    OutboxRole::Standby
                },
                up: s.up,
                lag_ms: ms(s.lag),
                pending_rows: s.pending,
                pending_rows_at_least: s.pending.is_some() && s.pending_full,
                last_read_ago_ms: s.last_read_ago.map(ms),
                published: s.published,
                dead: s.dead,
                batches: s.batches,
                queries: s.queries,
                last_error,
                last_error_ago_ms,
                batch_size: config.batch_size as u64,
                poll_interval_ms: ms(config.poll_interval),
            }),
        }
    }
}
