//! The `[[webhooks]]` array: webhook sinks (see `docs/webhooks.md`), read
//! and validated key by key. A bad URL, pattern, event glob, secret or name
//! is a start-up error naming the key.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::Url;

use super::read::{Ctx, Section};
use super::*;
use crate::topic::Topic;

const TIMEOUT: Bounds<Duration> = (Duration::from_millis(10), secs(300));
const MAX_ATTEMPTS: Bounds<usize> = (1, 1000);
const BACKOFF: Bounds<Duration> = (Duration::from_millis(1), secs(24 * 3600));
const MAX_IN_FLIGHT: Bounds<usize> = (1, 10_000);
const MAX_PENDING: Bounds<usize> = (1, 10_000_000);
const MAX_PENDING_BYTES: Bounds<usize> = (64 * 1024, 16 * 1024 * 1024 * 1024);
const MAX_DEAD: Bounds<usize> = (1, 10_000_000);
const VACATED_GRACE: Bounds<Duration> = (Duration::ZERO, secs(3600));
const MAX_SINK_NAME_LEN: usize = 64;
const MAX_GLOB_LEN: usize = 255;
/// Standard Webhooks: a secret is 24 to 64 random bytes.
const SECRET_BYTES: Bounds<usize> = (24, 64);

/// Why a webhook sink's value is refused (wrapped in [`ConfigError::InvalidWebhook`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookConfigError {
    /// A name outside `[a-z0-9-]` or longer than 64 bytes.
    #[error("{0:?} must be 1 to 64 bytes of a-z 0-9 -")]
    Name(String),
    /// Two sinks with one name.
    #[error("{0:?} is the name of an earlier sink")]
    DuplicateName(String),
    /// The URL does not parse.
    #[error("{value:?} is not a URL: {reason}")]
    Url {
        /// The text given.
        value: String,
        /// The parser's reason.
        reason: String,
    },
    /// A scheme other than https, or http to a public host.
    #[error(
        "{0:?} must be https:// (http:// only to a loopback or private host: an IP in a private range, localhost, a name without dots or ending in .internal/.local/.lan/.svc/.localhost)"
    )]
    UrlScheme(String),
    /// `{sub}` has no meaning for a sink.
    #[error("{0:?}: `{{sub}}` is not allowed in a sink's topics")]
    SubInPattern(String),
    /// An event glob that is empty, too long or has bytes outside printable ASCII.
    #[error("{0:?} must be 1 to 255 bytes of printable ASCII (`*` matches any run)")]
    EventGlob(String),
    /// A secret without the `whsec_` prefix (the value is not echoed).
    #[error("a secret must start with `whsec_` followed by base64")]
    SecretPrefix,
    /// A secret whose base64 does not decode.
    #[error("the secret after `whsec_` is not valid base64: {0}")]
    SecretBase64(String),
    /// A secret of the wrong length.
    #[error("the secret decodes to {0} bytes; Standard Webhooks secrets are 24 to 64 bytes")]
    SecretLength(usize),
    /// No secret: every delivery is signed.
    #[error("at least one secret is required (every delivery is signed)")]
    NoSecret,
    /// No topic pattern.
    #[error("at least one topic pattern is required")]
    NoTopics,
    /// `backoff_min` above `backoff_max`.
    #[error("backoff_min must not be above backoff_max")]
    BackoffOrder,
}

/// How a sink orders its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookOrdering {
    /// One delivery in flight per topic, in offset order; a topic's next
    /// delivery waits for the previous one's success or dead-lettering.
    #[default]
    Topic,
    /// Parallel, up to `max_in_flight`, in no particular order.
    None,
}

/// Presence lifecycle events a sink may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LifecycleEvent {
    /// A topic's first subscriber anywhere.
    Occupied,
    /// A topic's last subscriber gone for `vacated_grace`.
    Vacated,
    /// A presence member joined.
    Join,
    /// A presence member left.
    Leave,
}

impl LifecycleEvent {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleEvent::Occupied => "occupied",
            LifecycleEvent::Vacated => "vacated",
            LifecycleEvent::Join => "join",
            LifecycleEvent::Leave => "leave",
        }
    }
}

/// One Standard Webhooks signing secret (the bytes after `whsec_`, decoded).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<WebhookSecret, WebhookConfigError> {
        let b64 = text
            .strip_prefix("whsec_")
            .ok_or(WebhookConfigError::SecretPrefix)?;
        let bytes = BASE64
            .decode(b64)
            .map_err(|e| WebhookConfigError::SecretBase64(e.to_string()))?;
        if !(SECRET_BYTES.0..=SECRET_BYTES.1).contains(&bytes.len()) {
            return Err(WebhookConfigError::SecretLength(bytes.len()));
        }
        Ok(WebhookSecret(bytes))
    }

    /// The key bytes; never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// A glob on event names: `*` matches any run of bytes, everything else itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventGlob(String);

impl EventGlob {
    /// Parses a glob (1 to 255 bytes of printable ASCII).
    pub fn parse(text: &str) -> Result<EventGlob, WebhookConfigError> {
        let ok = !text.is_empty()
            && text.len() <= MAX_GLOB_LEN
            && text.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(EventGlob(text.to_owned()))
        } else {
            Err(WebhookConfigError::EventGlob(text.to_owned()))
        }
    }

    /// Whether `event` matches.
    pub fn matches(&self, event: &str) -> bool {
        glob_match(self.0.as_bytes(), event.as_bytes())
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `*`-only glob matching, linear with backtracking to the last star.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// One webhook sink (`[[webhooks]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Unique name, `[a-z0-9-]`, at most 64 bytes; in metrics, logs and the API.
    pub name: String,
    /// Where deliveries are POSTed.
    pub url: Url,
    /// Topics whose publications are delivered.
    pub topics: Vec<TopicPattern>,
    /// Event-name globs; `None`: every event.
    pub events: Option<Vec<EventGlob>>,
    /// Signing secrets; the first signs, all are sent while rotating.
    pub secrets: Vec<WebhookSecret>,
    /// Per-request timeout (10 ms ..= 5 min; default 10 s).
    pub timeout: Duration,
    /// Attempts before dead-lettering (1 ..= 1000; default 10).
    pub max_attempts: u32,
    /// Shortest retry delay (default 1 s).
    pub backoff_min: Duration,
    /// Longest retry delay, also the cap on `Retry-After` (default 10 min).
    pub backoff_max: Duration,
    /// `"topic"` (default) or `"none"`.
    pub ordering: WebhookOrdering,
    /// Deliveries in flight at once (1 ..= 10000; default 64).
    pub max_in_flight: usize,
    /// Lifecycle events asked for (default none).
    pub lifecycle: Vec<LifecycleEvent>,
    /// How long a topic stays without subscribers before `vacated` (default 5 s).
    pub vacated_grace: Duration,
    /// Memory engine: deliveries queued at most (default 100000); beyond,
    /// new ones are refused with an error log and metric.
    pub max_pending: usize,
    /// Memory engine: bytes of queued bodies at most (default 64 MiB).
    pub max_pending_bytes: usize,
    /// Dead letters kept (default 10000); beyond, the oldest is dropped with
    /// an error log and metric.
    pub max_dead: usize,
}

impl WebhookConfig {
    /// Whether a publication of `event` on `topic` goes to this sink.
    pub fn wants(&self, topic: &Topic, event: &str) -> bool {
        self.topics.iter().any(|p| p.matches(topic))
            && self
                .events
                .as_ref()
                .is_none_or(|globs| globs.iter().any(|g| g.matches(event)))
    }

    /// Whether the lifecycle event `kind` on `topic` goes to this sink
    /// (`events` globs do not apply: `lifecycle` is its own filter).
    pub fn wants_lifecycle(&self, topic: &Topic, kind: LifecycleEvent) -> bool {
        self.lifecycle.contains(&kind) && self.topics.iter().any(|p| p.matches(topic))
    }

    /// Whether the sink asks for `occupied` or `vacated` (and so needs
    /// occupancy to be tracked for its topics).
    pub fn wants_occupancy(&self) -> bool {
        self.lifecycle
            .iter()
            .any(|l| matches!(l, LifecycleEvent::Occupied | LifecycleEvent::Vacated))
    }
}

fn webhook_error(section: &Section<'_>, name: &str, source: WebhookConfigError) -> ConfigError {
    ConfigError::InvalidWebhook {
        key: section.key(name),
        source,
    }
}

/// Whether plain `http://` may go to `url`'s host.
fn private_host(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return private_ip(ip);
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || !name.contains('.')
        || [
            ".internal",
            ".local",
            ".lan",
            ".svc",
            ".localhost",
            ".home.arpa",
        ]
        .iter()
        .any(|suffix| name.ends_with(suffix))
}

fn private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

fn read_strings(section: &mut Section<'_>, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(items) = section.array(name)? else {
        return Ok(None);
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s),
            other => Err(section.wrong_type(&format!("{name}[{i}]"), "a string", &other)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Reads the `webhooks` array.
pub(super) fn read_webhooks(
    ctx: &Ctx<'_>,
    items: Vec<Value>,
) -> Result<Vec<WebhookConfig>, ConfigError> {
    let mut sinks: Vec<WebhookConfig> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let prefix = format!("webhooks[{i}]");
        let table = match item {
            Value::Table(t) => t,
            other => {
                return Err(ConfigError::WrongType {
                    key: ctx.describe(&prefix),
                    expected: "a table {name, url, topics, secrets, …}",
                    found: other.type_str(),
                });
            }
        };
        let mut s = Section::new(ctx, prefix, table);
        let sink = read_sink(&mut s)?;
        if sinks.iter().any(|o| o.name == sink.name) {
            return Err(webhook_error(
                &s,
                "name",
                WebhookConfigError::DuplicateName(sink.name),
            ));
        }
        s.finish()?;
        sinks.push(sink);
    }
    Ok(sinks)
}

fn read_sink(s: &mut Section<'_>) -> Result<WebhookConfig, ConfigError> {
    let name = s.required_string("name")?;
    let name_ok = name.len() <= MAX_SINK_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_ok {
        return Err(webhook_error(s, "name", WebhookConfigError::Name(name)));
    }
    let url_text = s.required_string("url")?;
    let url = Url::parse(&url_text).map_err(|e| {
        webhook_error(
            s,
            "url",
            WebhookConfigError::Url {
                value: url_text.clone(),
                reason: e.to_string(),
            },
        )
    })?;
    let scheme_ok = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => private_host(&url),
        _ => false,
    };
    if !scheme_ok {
        return Err(webhook_error(
            s,
            "url",
            WebhookConfigError::UrlScheme(url_text),
        ));
    }
    let mut topics = Vec::new();
    for (j, pattern) in read_strings(s, "topics")?
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let key = format!("topics[{j}]");
        if pattern.contains("{sub}") {
            return Err(webhook_error(
                s,
                &key,
                WebhookConfigError::SubInPattern(pattern),
            ));
        }
        let parsed =
            TopicPattern::parse(&pattern, None).map_err(|source| ConfigError::InvalidPattern {
                key: s.key(&key),
                pattern: pattern.clone(),
                source,
            })?;
        topics.push(parsed);
    }
    if topics.is_empty() {
        return Err(webhook_error(s, "topics", WebhookConfigError::NoTopics));
    }
    let events = match read_strings(s, "events")? {
        None => None,
        Some(globs) => Some(
            globs
                .iter()
                .enumerate()
                .map(|(j, g)| {
                    EventGlob::parse(g).map_err(|e| webhook_error(s, &format!("events[{j}]"), e))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let mut secrets = Vec::new();
    for (j, text) in read_strings(s, "secrets")?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        secrets.push(
            WebhookSecret::parse(text)
                .map_err(|e| webhook_error(s, &format!("secrets[{j}]"), e))?,
        );
    }
    if secrets.is_empty() {
        return Err(webhook_error(s, "secrets", WebhookConfigError::NoSecret));
    }
    let timeout = s.duration("timeout", TIMEOUT, secs(10))?;
    let max_attempts = s.size("max_attempts", MAX_ATTEMPTS, 10)?;
    let backoff_min = s.duration("backoff_min", BACKOFF, secs(1))?;
    let backoff_max = s.duration("backoff_max", BACKOFF, secs(600))?;
    if backoff_min > backoff_max {
        return Err(webhook_error(
            s,
            "backoff_min",
            WebhookConfigError::BackoffOrder,
        ));
    }
    let ordering = match s.string("ordering")?.as_deref() {
        None | Some("topic") => WebhookOrdering::Topic,
        Some("none") => WebhookOrdering::None,
        Some(other) => {
            return Err(ConfigError::InvalidChoice {
                key: s.key("ordering"),
                value: other.to_owned(),
                expected: "\"topic\" or \"none\"",
            });
        }
    };
    let max_in_flight = s.size("max_in_flight", MAX_IN_FLIGHT, 64)?;
    let mut lifecycle = Vec::new();
    for (j, text) in read_strings(s, "lifecycle")?
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let event = match text.as_str() {
            "occupied" => LifecycleEvent::Occupied,
            "vacated" => LifecycleEvent::Vacated,
            "join" => LifecycleEvent::Join,
            "leave" => LifecycleEvent::Leave,
            _ => {
                return Err(ConfigError::InvalidChoice {
                    key: s.key(&format!("lifecycle[{j}]")),
                    value: text,
                    expected: "\"occupied\", \"vacated\", \"join\" or \"leave\"",
                });
            }
        };
        if !lifecycle.contains(&event) {
            lifecycle.push(event);
        }
    }
    let vacated_grace = s.duration("vacated_grace", VACATED_GRACE, secs(5))?;
    let max_pending = s.size("max_pending", MAX_PENDING, 100_000)?;
    let max_pending_bytes = s.size("max_pending_bytes", MAX_PENDING_BYTES, 64 * 1024 * 1024)?;
    let max_dead = s.size("max_dead", MAX_DEAD, 10_000)?;
    Ok(WebhookConfig {
        name,
        url,
        topics,
        events,
        secrets,
        timeout,
        max_attempts: u32::try_from(max_attempts).unwrap_or(u32::MAX),
        backoff_min,
        backoff_max,
        ordering,
        max_in_flight,
        lifecycle,
        vacated_grace,
        max_pending,
        max_pending_bytes,
        max_dead,
    })
}

/// The sinks as TOML for `hubbub check-config`, secrets redacted.
pub(super) fn to_toml(sinks: &[WebhookConfig]) -> Value {
    let text = |s: &str| Value::String(s.to_owned());
    let list = |items: Vec<String>| Value::Array(items.into_iter().map(Value::String).collect());
    let dur = |d: Duration| Value::String(format_duration(d).to_string());
    let int = |n: usize| Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    Value::Array(
        sinks
            .iter()
            .map(|s| {
                let mut t = Table::new();
                t.insert("name".into(), text(&s.name));
                t.insert("url".into(), text(s.url.as_str()));
                t.insert(
                    "topics".into(),
                    list(s.topics.iter().map(|p| p.to_string()).collect()),
                );
                if let Some(events) = &s.events {
                    t.insert(
                        "events".into(),
                        list(events.iter().map(|g| g.0.clone()).collect()),
                    );
                }
                t.insert(
                    "secrets".into(),
                    list(s.secrets.iter().map(|_| "[redacted]".to_owned()).collect()),
                );
                t.insert("timeout".into(), dur(s.timeout));
                t.insert(
                    "max_attempts".into(),
                    Value::Integer(i64::from(s.max_attempts)),
                );
                t.insert("backoff_min".into(), dur(s.backoff_min));
                t.insert("backoff_max".into(), dur(s.backoff_max));
                let ordering = match s.ordering {
                    WebhookOrdering::Topic => "topic",
                    WebhookOrdering::None => "none",
                };
                t.insert("ordering".into(), text(ordering));
                t.insert("max_in_flight".into(), int(s.max_in_flight));
                t.insert(
                    "lifecycle".into(),
                    list(s.lifecycle.iter().map(|l| l.as_str().to_owned()).collect()),
                );
                t.insert("vacated_grace".into(), dur(s.vacated_grace));
                t.insert("max_pending".into(), int(s.max_pending));
                t.insert("max_pending_bytes".into(), int(s.max_pending_bytes));
                t.insert("max_dead".into(), int(s.max_dead));
                Value::Table(t)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn load(sink: &str) -> Result<Config, ConfigError> {
        let text = format!("[auth]\njwt_secret = \"0123456789abcdef0123\"\n[[webhooks]]\n{sink}\n");
        Config::from_toml_str(&text, &[])
    }

    fn err(sink: &str) -> String {
        match load(sink) {
            Ok(_) => panic!("accepted: {sink}"),
            Err(e) => e.to_string(),
        }
    }

    const BASE: &str = r#"name = "rider-city-sync"
url = "https://rider.example.com/hubbub"
topics = ["cities", "cities:*"]
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]"#;

    #[test]
    fn a_minimal_sink_gets_the_contract_defaults() {
        let config = load(BASE).unwrap();
        let sink = &config.webhooks[0];
        assert_eq!(sink.name, "rider-city-sync");
        assert_eq!(sink.timeout, secs(10));
        assert_eq!(sink.max_attempts, 10);
        assert_eq!(sink.backoff_min, secs(1));
        assert_eq!(sink.backoff_max, secs(600));
        assert_eq!(sink.ordering, WebhookOrdering::Topic);
        assert_eq!(sink.max_in_flight, 64);
        assert!(sink.events.is_none());
        assert!(sink.lifecycle.is_empty());
        assert!(sink.wants(&"cities:blr".parse().unwrap(), "anything"));
        assert!(!sink.wants(&"bookings:1".parse().unwrap(), "anything"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = err(&BASE.replace("https://rider.example.com/hubbub", "not a url"));
        assert!(e.starts_with("webhooks[0].url:"), "{e}");
        let e = err(&BASE.replace("https://rider.example.com", "http://rider.example.com"));
        assert!(e.starts_with("webhooks[0].url:"), "{e}");
        let e = err(&BASE.replace("\"cities:*\"", "\"cit ies:*\""));
        assert!(e.starts_with("webhooks[0].topics[1]"), "{e}");
        let e = err(&BASE.replace("whsec_", "wh_"));
        assert!(
            e.starts_with("webhooks[0].secrets[0]:") && e.contains("whsec_"),
            "{e}"
        );
        let e = err(&BASE.replace("whsec_MfKQ", "whsec_M!KQ"));
        assert!(
            e.starts_with("webhooks[0].secrets[0]:") && e.contains("base64"),
            "{e}"
        );
        assert!(!e.contains("LaLaSw"), "the secret is not echoed: {e}");
        let e = err(&BASE.replace("rider-city-sync", "Rider_City"));
        assert!(e.starts_with("webhooks[0].name:"), "{e}");
        let e = err(&format!("{BASE}\nordering = \"fifo\""));
        assert!(e.starts_with("webhooks[0].ordering"), "{e}");
        let e = err(&format!(
            "{BASE}\nbackoff_min = \"1h\"\nbackoff_max = \"1s\""
        ));
        assert!(e.starts_with("webhooks[0].backoff_min"), "{e}");
        let c = load(&format!(
            "{BASE}\nlifecycle = [\"occupied\", \"vacated\", \"join\", \"leave\", \"join\"]\nvacated_grace = \"250ms\""
        ))
        .unwrap();
        assert_eq!(
            c.webhooks[0].lifecycle,
            [
                LifecycleEvent::Occupied,
                LifecycleEvent::Vacated,
                LifecycleEvent::Join,
                LifecycleEvent::Leave
            ]
        );
        assert_eq!(c.webhooks[0].vacated_grace, Duration::from_millis(250));
        let e = err(&format!("{BASE}\nvacated_grace = \"2h\""));
        assert!(e.starts_with("webhooks[0].vacated_grace"), "{e}");
        let e = err(&format!("{BASE}\nlifecycle = [\"sometimes\"]"));
        assert!(e.starts_with("webhooks[0].lifecycle[0]"), "{e}");
        assert!(load(&format!("{BASE}\nlifecycle = []")).is_ok());
        let e = err(&format!("{BASE}\nretries = 3"));
        assert!(e.contains("webhooks[0].retries"), "{e}");
        let e = err(&BASE.replace("[\"cities\", \"cities:*\"]", "[\"users:{sub}\"]"));
        assert!(e.starts_with("webhooks[0].topics[0]"), "{e}");
        let two = format!("{BASE}\n[[webhooks]]\n{BASE}");
        let e = err(&two);
        assert!(e.starts_with("webhooks[1].name"), "{e}");
    }

    #[test]
    fn http_is_allowed_only_to_private_hosts() {
        for url in [
            "http://127.0.0.1:9000/h",
            "http://10.1.2.3/h",
            "http://[::1]:80/h",
            "http://localhost/h",
            "http://rider/h",
            "http://rider.internal/h",
        ] {
            assert!(
                load(&BASE.replace("https://rider.example.com/hubbub", url)).is_ok(),
                "{url}"
            );
        }
        for url in [
            "http://8.8.8.8/h",
            "http://example.com/h",
            "ftp://10.0.0.1/h",
        ] {
            assert!(
                load(&BASE.replace("https://rider.example.com/hubbub", url)).is_err(),
                "{url}"
            );
        }
    }

    #[test]
    fn event_globs_match_runs() {
        let g = EventGlob::parse("city.*").unwrap();
        assert!(g.matches("city.updated"));
        assert!(g.matches("city."));
        assert!(!g.matches("cities.updated"));
        let g = EventGlob::parse("*.created").unwrap();
        assert!(g.matches("booking.created"));
        assert!(!g.matches("booking.created.v2"));
        assert!(EventGlob::parse("a*b*c").unwrap().matches("aXbYbZc"));
        assert!(EventGlob::parse("").is_err());
    }

    #[test]
    fn the_env_form_replaces_the_array() {
        let env = vec![(
            "HUBBUB_WEBHOOKS".to_owned(),
            format!(
                "[{{name=\"a\", url=\"http://127.0.0.1:1/\", topics=[\"*\"], secrets=[\"{SECRET}\"]}}]"
            ),
        )];
        let text = "[auth]\njwt_secret = \"0123456789abcdef0123\"\n";
        let config = Config::from_toml_str(text, &env).unwrap();
        assert_eq!(config.webhooks.len(), 1);
        assert_eq!(config.webhooks[0].name, "a");
        assert!(format!("{:?}", config.webhooks[0]).contains("redacted"));
    }
}
