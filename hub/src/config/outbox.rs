//! The `[outbox]` section: where the PostgreSQL outbox table lives and how
//! often the consumer looks at it (see `docs/outbox.md`). Its keys, their
//! environment forms (`HUBBUB_OUTBOX__POSTGRES_URL`, `HUBBUB_OUTBOX__TABLE`,
//! `HUBBUB_OUTBOX__POLL_INTERVAL`, `HUBBUB_OUTBOX__BATCH_SIZE`) and their checks.

use std::str::FromStr;

use super::read::Section;
use super::*;

/// The default outbox table.
pub const DEFAULT_OUTBOX_TABLE: &str = "hubbub_outbox";
/// The longest table name: PostgreSQL's 63-byte identifiers, less `_dead`
/// and `_notify` for the twin table and the trigger function.
pub const MAX_OUTBOX_TABLE_LEN: usize = 63 - "_notify".len();

const POLL_INTERVAL: Bounds<Duration> = (Duration::from_millis(10), secs(3600));
const BATCH_SIZE: Bounds<usize> = (1, 10_000);

/// The PostgreSQL outbox consumer's settings (`[outbox]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxConfig {
    /// The database holding the outbox table (`postgres_url`, required).
    pub postgres_url: PostgresUrl,
    /// The outbox table: a lower-case identifier, `[a-z_][a-z0-9_]*`, at most
    /// [`MAX_OUTBOX_TABLE_LEN`] bytes (`table`, default `hubbub_outbox`).
    /// Its dead-letter twin is `<table>_dead`; the NOTIFY channel is `<table>`.
    pub table: String,
    /// How often the table is read without a NOTIFY, and how often a standby
    /// node tries to take over (10 ms ..= 1 h; default 1 s).
    pub poll_interval: Duration,
    /// Rows read and published per batch (1 ..= 10000; default 500).
    pub batch_size: usize,
}

/// A PostgreSQL connection URL (`postgres://` or `postgresql://`, or a
/// `key=value` string), checked by the client's own parser at load time.
/// `Debug` and `Display` hide its password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// Parses `url` as the client will when it connects.
    pub fn new(url: impl Into<String>) -> Result<Self, tokio_postgres::Error> {
        let url = url.into();
        tokio_postgres::Config::from_str(&url)?;
        Ok(Self(url))
    }

    /// The full URL, credentials included: for the client only, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password (userinfo, or a `password` parameter) replaced by `***`.
    pub fn redacted(&self) -> String {
        if self.0.contains("://") {
            redact_url(&self.0)
        } else {
            // `host=… password=…` form: every `password=` value is hidden.
            self.0
                .split_whitespace()
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
    }

    /// The parsed client configuration.
    pub fn parse(&self) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
        tokio_postgres::Config::from_str(&self.0)
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({:?})", self.redacted())
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Whether `name` is a table name the outbox accepts: it is used unquoted
/// in SQL, as the NOTIFY channel and in the names of its twin objects.
pub fn is_outbox_table(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && name.len() <= MAX_OUTBOX_TABLE_LEN
}

impl OutboxConfig {
    /// The section as TOML for `check-config`, the URL's password redacted.
    pub(super) fn to_table(&self) -> Table {
        let mut t = Table::new();
        t.insert(
            "postgres_url".into(),
            Value::String(self.postgres_url.redacted()),
        );
        t.insert("table".into(), Value::String(self.table.clone()));
        t.insert(
            "poll_interval".into(),
            Value::String(format_duration(self.poll_interval).to_string()),
        );
        t.insert(
            "batch_size".into(),
            Value::Integer(i64::try_from(self.batch_size).unwrap_or(i64::MAX)),
        );
        t
    }
}

/// Reads and checks the `[outbox]` table.
pub(super) fn read_outbox(mut section: Section<'_>) -> Result<OutboxConfig, ConfigError> {
    let url_text = section.required_string("postgres_url")?;
    let postgres_url =
        PostgresUrl::new(url_text).map_err(|source| ConfigError::InvalidPostgresUrl {
            key: section.key("postgres_url"),
            reason: source.to_string(),
        })?;
    let table = section
        .string("table")?
        .unwrap_or_else(|| DEFAULT_OUTBOX_TABLE.to_owned());
    if !is_outbox_table(&table) {
        return Err(ConfigError::InvalidOutboxTable {
            key: section.key("table"),
            value: table,
        });
    }
    let config = OutboxConfig {
        postgres_url,
        table,
        poll_interval: section.duration("poll_interval", POLL_INTERVAL, secs(1))?,
        batch_size: section.size("batch_size", BATCH_SIZE, 500)?,
    };
    section.finish()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_toml_str(
            &format!("[auth]\njwt_secret = \"0123456789abcdef0123\"\n{toml}"),
            &env,
        )
    }

    #[test]
    fn defaults_and_env_forms() {
        let c = load(
            "[outbox]\npostgres_url = \"postgres://app@127.0.0.1/app\"\n",
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let o = c.outbox.unwrap_or_else(|| panic!("no outbox"));
        assert_eq!(o.table, "hubbub_outbox");
        assert_eq!(o.poll_interval, secs(1));
        assert_eq!(o.batch_size, 500);
        let c = load(
            "",
            &[
                ("HUBBUB_OUTBOX__POSTGRES_URL", "postgres://a:pw@h/db"),
                ("HUBBUB_OUTBOX__TABLE", "events_out"),
                ("HUBBUB_OUTBOX__POLL_INTERVAL", "250ms"),
                ("HUBBUB_OUTBOX__BATCH_SIZE", "42"),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let o = c.outbox.unwrap_or_else(|| panic!("no outbox"));
        assert_eq!(o.table, "events_out");
        assert_eq!(o.poll_interval, Duration::from_millis(250));
        assert_eq!(o.batch_size, 42);
        assert!(load("", &[]).is_ok_and(|c| c.outbox.is_none()));
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = |toml: &str| match load(toml, &[]) {
            Ok(_) => panic!("accepted: {toml}"),
            Err(e) => e.to_string(),
        };
        assert!(err("[outbox]\ntable = \"x\"\n").contains("outbox.postgres_url: missing"));
        let e = err("[outbox]\npostgres_url = \"postgres://h/db\"\ntable = \"Robert'); DROP\"\n");
        assert!(e.contains("outbox.table"), "{e}");
        let e = err("[outbox]\npostgres_url = \"postgres://h/db?sslmode=sometimes\"\n");
        assert!(e.contains("outbox.postgres_url"), "{e}");
        let e = err("[outbox]\npostgres_url = \"postgres://h/db\"\nbatch_size = 0\n");
        assert!(e.contains("outbox.batch_size"), "{e}");
        let e = err("[outbox]\npostgres_url = \"postgres://h/db\"\npoll_interval = \"1ms\"\n");
        assert!(e.contains("outbox.poll_interval"), "{e}");
        let e = err("[outbox]\npostgres_url = \"postgres://h/db\"\nbatch = 1\n");
        assert!(e.contains("unknown key `outbox.batch`"), "{e}");
        let c = load("", &[("HUBBUB_OUTBOX__TABLES", "x")]).unwrap();
        let w: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
        assert!(
            w.iter()
                .any(|w| w.contains("HUBBUB_OUTBOX__TABLES") && w.contains("HUBBUB_OUTBOX__TABLE")),
            "{w:?}"
        );
    }

    #[test]
    fn table_names() {
        for ok in [
            "hubbub_outbox",
            "_x",
            "a1",
            &"a".repeat(MAX_OUTBOX_TABLE_LEN),
        ] {
            assert!(is_outbox_table(ok), "{ok}");
        }
        for bad in [
            "",
            "1a",
            "Outbox",
            "a-b",
            "s.t",
            "a\"b",
            &"a".repeat(MAX_OUTBOX_TABLE_LEN + 1),
        ] {
            assert!(!is_outbox_table(bad), "{bad}");
        }
    }

    #[test]
    fn password_is_redacted() {
        let url = PostgresUrl::new("postgres://app:s3cret@db:5432/app?sslmode=require")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            url.redacted(),
            "postgres://app:***@db:5432/app?sslmode=require"
        );
        assert!(!format!("{url:?} {url}").contains("s3cret"));
        let kv = PostgresUrl::new("host=db user=app password=s3cret dbname=app")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kv.redacted(), "host=db user=app password=*** dbname=app");
        let c = load(
            "[outbox]\npostgres_url = \"postgres://app:s3cret@db/app\"\n",
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{c:#?}").contains("s3cret"));
        let printed = c.to_toml();
        assert!(
            printed.contains("postgres_url = \"postgres://app:***@db/app\""),
            "{printed}"
        );
        assert!(!printed.contains("s3cret"));
    }
}
