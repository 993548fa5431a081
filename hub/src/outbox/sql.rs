//! The SQL the outbox speaks, for one (validated) table name: the schema
//! `hubbub outbox init` prints, and the statements the consumer runs.
//! Table names are checked by [`is_outbox_table`] at load time, so they are
//! safe to splice in (quoted all the same).

use crate::config::is_outbox_table;

/// The first key of the two-key advisory lock (`"hubb"`), so the outbox's
/// lock does not collide with an application's single-key locks.
pub const LOCK_CLASS: i32 = 0x6875_6262;

/// The statements for one outbox table.
#[derive(Debug, Clone)]
pub struct Statements {
    /// The table name (also the NOTIFY channel).
    pub table: String,
    /// `LISTEN` on the table's channel.
    pub listen: String,
    /// Takes the table's leader lock without waiting: `$1` the table name.
    pub try_lock: &'static str,
    /// The oldest rows in `id` order with their age in ms: `$1` the limit.
    pub fetch: String,
    /// Deletes published rows (`$1` ids) and moves poison rows (`$2` ids,
    /// `$3` errors) to the dead-letter table, in one statement.
    pub ack: String,
    /// The age in ms of the oldest row (0 when the table is empty).
    pub lag: String,
}

impl Statements {
    /// The statements for `table`.
    ///
    /// # Panics
    /// Never for a table that passed configuration; debug builds assert it.
    pub fn new(table: &str) -> Statements {
        debug_assert!(is_outbox_table(table), "unchecked table name {table:?}");
        let t = format!("\"{table}\"");
        let dead = format!("\"{table}_dead\"");
        Statements {
            table: table.to_owned(),
            listen: format!("LISTEN {t}"),
            try_lock: "SELECT pg_try_advisory_lock(1752523362, hashtext($1::text))",
            fetch: format!(
                "SELECT id, topic, event, data::text, idempotency_key, \
                 (extract(epoch FROM clock_timestamp() - created_at) * 1000)::float8 \
                 FROM {t} ORDER BY id LIMIT $1"
            ),
            ack: format!(
                "WITH done AS (DELETE FROM {t} WHERE id = ANY($1::bigint[])), \
                 bad AS (SELECT * FROM unnest($2::bigint[], $3::text[]) AS b(id, error)), \
                 moved AS (DELETE FROM {t} USING bad WHERE {t}.id = bad.id \
                   RETURNING {t}.id, {t}.topic, {t}.event, {t}.data, {t}.idempotency_key, \
                   {t}.created_at, bad.error) \
                 INSERT INTO {dead} (id, topic, event, data, idempotency_key, created_at, error) \
                 SELECT id, topic, event, data, idempotency_key, created_at, error FROM moved"
            ),
            lag: format!(
                "SELECT COALESCE((SELECT (extract(epoch FROM clock_timestamp() - created_at) \
                 * 1000)::float8 FROM {t} ORDER BY id LIMIT 1), 0)::float8"
            ),
        }
    }
}

/// The schema of an outbox table: the table (as in the contract), its
/// `_dead` twin with an index for operators, and the NOTIFY trigger. One
/// transaction; safe to run again (existing objects are kept, the trigger
/// replaced).
pub fn init_script(table: &str) -> String {
    debug_assert!(is_outbox_table(table), "unchecked table name {table:?}");
    format!(
        r#"-- Hubbub PostgreSQL outbox `{table}` (docs/outbox.md).
BEGIN;

-- The application inserts one row per publication, in its own transaction.
CREATE TABLE IF NOT EXISTS "{table}" (
  id              bigserial   PRIMARY KEY,
  topic           text        NOT NULL,
  event           text        NOT NULL,
  data            jsonb       NOT NULL DEFAULT '{{}}',
  idempotency_key text,                   -- absent: 'outbox:' || id
  created_at      timestamptz NOT NULL DEFAULT now()
);

-- Rows that can never be published, with why and when.
CREATE TABLE IF NOT EXISTS "{table}_dead" (
  dead_id         bigserial   PRIMARY KEY,
  id              bigint      NOT NULL,
  topic           text        NOT NULL,
  event           text        NOT NULL,
  data            jsonb       NOT NULL,
  idempotency_key text,
  created_at      timestamptz NOT NULL,
  error           text        NOT NULL,
  failed_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS "{table}_dead_failed_at" ON "{table}_dead" (failed_at);

-- One NOTIFY per inserting statement, delivered when its transaction commits
-- (never for a rolled-back one): the hub wakes at once instead of polling.
CREATE OR REPLACE FUNCTION "{table}_notify"() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('{table}', '');
  RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS "{table}_notify" ON "{table}";
CREATE TRIGGER "{table}_notify" AFTER INSERT ON "{table}"
  FOR EACH STATEMENT EXECUTE FUNCTION "{table}_notify"();

COMMIT;
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spliced_quoted() {
        let s = Statements::new("ob_1");
        assert_eq!(s.listen, "LISTEN \"ob_1\"");
        assert!(s.fetch.contains("FROM \"ob_1\" ORDER BY id LIMIT $1"));
        assert!(s.ack.contains("INSERT INTO \"ob_1_dead\""));
        let init = init_script("ob_1");
        for needle in [
            "CREATE TABLE IF NOT EXISTS \"ob_1\" (",
            "CREATE TABLE IF NOT EXISTS \"ob_1_dead\" (",
            "pg_notify('ob_1', '')",
            "AFTER INSERT ON \"ob_1\"",
            "DEFAULT '{}'",
        ] {
            assert!(init.contains(needle), "{needle}");
        }
    }

    #[test]
    fn lock_class_is_the_literal_in_the_statement() {
        assert_eq!(LOCK_CLASS, 1_752_523_362);
        assert!(Statements::new("t").try_lock.contains("1752523362"));
    }
}
