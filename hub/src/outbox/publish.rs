//! One batch of outbox rows through the hub's publish path
//! ([`Hub::publish_batch`], as `POST /api/v1/batch` does), sorted into rows
//! to delete (published), rows to move to `<table>_dead` (they can never be
//! published) and rows that wait (the broker is unavailable).

use tokio_postgres::Row as PgRow;

use crate::hub::{Hub, HubError, PublishInput};

/// One outbox row as read by the consumer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) id: i64,
    pub(crate) topic: String,
    pub(crate) event: String,
    /// `data` as JSON text.
    pub(crate) data: String,
    pub(crate) idempotency_key: Option<String>,
    /// How old the row was when read, in ms.
    pub(crate) age_ms: f64,
}

impl Row {
    /// Reads the columns of the consumer's fetch statement.
    pub(crate) fn from_pg(row: &PgRow) -> Result<Row, tokio_postgres::Error> {
        Ok(Row {
            id: row.try_get(0)?,
            topic: row.try_get(1)?,
            event: row.try_get(2)?,
            data: row.try_get(3)?,
            idempotency_key: row.try_get(4)?,
            age_ms: row.try_get(5)?,
        })
    }

    /// The key the row is published with: its own, or `outbox:<id>`.
    pub(crate) fn key(&self) -> String {
        self.idempotency_key
            .clone()
            .unwrap_or_else(|| format!("outbox:{}", self.id))
    }
}

/// What became of a batch.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Published (or already published: same idempotency key): delete.
    pub(crate) published: Vec<i64>,
    /// Never publishable: move to `<table>_dead` with the error.
    pub(crate) dead: Vec<(i64, String)>,
    /// Failed for a reason that passes (broker unavailable, node draining):
    /// kept, retried in `id` order. The first such error.
    pub(crate) waiting: Option<(i64, HubError)>,
    /// How many rows wait.
    pub(crate) waiting_rows: usize,
}

/// Whether `err` is the broker's or the node's state rather than the row's.
pub(crate) fn is_transient(err: &HubError) -> bool {
    matches!(
        err,
        HubError::Broker(_) | HubError::Draining | HubError::RateLimited
    )
}

/// Publishes `rows` (in `id` order) in one batch.
pub(crate) async fn publish(hub: &Hub, rows: &[Row]) -> Outcome {
    let mut outcome = Outcome::default();
    let mut items = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    for row in rows {
        let data = match serde_json::from_str(&row.data) {
            Ok(v) => v,
            Err(e) => {
                outcome
                    .dead
                    .push((row.id, format!("data is not valid JSON: {e}")));
                continue;
            }
        };
        let (topic, ns) = match hub.resolve(&row.topic) {
            Ok(found) => found,
            Err(e) => {
                outcome.dead.push((row.id, e.to_string()));
                continue;
            }
        };
        let input = PublishInput {
            topic: row.topic.clone(),
            event: row.event.clone(),
            data,
            idempotency_key: Some(row.key()),
        };
        items.push((topic, ns, input));
        ids.push(row.id);
    }
    let results = hub.publish_batch(items).await;
    for (id, result) in ids.into_iter().zip(results) {
        match result {
            Ok(_) => outcome.published.push(id),
            Err(e) if is_transient(&e) => {
                outcome.waiting_rows += 1;
                if outcome.waiting.is_none() {
                    outcome.waiting = Some((id, e));
                }
            }
            Err(e) => outcome.dead.push((id, e.to_string())),
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn row(id: i64, topic: &str, event: &str, data: &str) -> Row {
        Row {
            id,
            topic: topic.to_owned(),
            event: event.to_owned(),
            data: data.to_owned(),
            idempotency_key: None,
            age_ms: 0.0,
        }
    }

    #[tokio::test]
    async fn poison_rows_are_dead_and_the_rest_published() {
        let config = Config::from_toml_str(
            "[auth]\njwt_secret = \"0123456789abcdef0123\"\n[limits]\nmax_frame_bytes = 2048\n",
            &[],
        )
        .unwrap();
        let hub = crate::server::build_hub(config).unwrap();
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(4096));
        let mut keyed = row(7, "cities:paris", "city.updated", "{}");
        keyed.idempotency_key = Some("k".repeat(300));
        let rows = vec![
            row(1, "cities:paris", "city.updated", "{\"n\":1}"),
            row(2, "nope:paris", "city.updated", "{}"),
            row(3, "cities:", "city.updated", "{}"),
            row(4, "cities:paris", "city.updated", &big),
            row(5, "cities:paris", "", "{}"),
            row(6, "cities:paris", "city.updated", "not json"),
            keyed,
            row(8, "cities:paris", "city.updated", "{\"n\":2}"),
        ];
        let out = publish(&hub, &rows).await;
        assert_eq!(out.published, vec![1, 8]);
        let dead: Vec<i64> = out.dead.iter().map(|(id, _)| *id).collect();
        assert_eq!(dead.len(), 6, "{:?}", out.dead);
        for id in 2..=7 {
            assert!(dead.contains(&id), "{id}: {:?}", out.dead);
        }
        assert!(
            out.dead
                .iter()
                .any(|(id, e)| *id == 2 && e.contains("namespace"))
        );
        assert!(out.waiting.is_none());
        // The same rows again: the idempotency keys make it a no-op.
        let again = publish(&hub, &rows[..1]).await;
        assert_eq!(again.published, vec![1]);
        let page = hub
            .history(
                &"cities:paris".parse().unwrap(),
                hub.config.namespace("cities").unwrap(),
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(page.publications.len(), 2);
        // A draining node: every row waits.
        hub.drain();
        let waiting = publish(&hub, &rows[7..]).await;
        assert_eq!(waiting.waiting_rows, 1);
        assert!(waiting.published.is_empty() && waiting.dead.is_empty());
    }
}
