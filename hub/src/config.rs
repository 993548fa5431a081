//! The hub's one validated [`Config`]: built-in defaults, then an optional
//! TOML file, then `HUBBUB_*` environment variables, checked once at start.
//!
//! # Rules
//! - Every key is checked: an unknown key in the file or a bad value is a
//!   [`ConfigError`] that names the key (and the variable it came from);
//!   nothing silently falls back to a default. An unknown `HUBBUB_*`
//!   variable is a [`ConfigWarning`] naming the nearest key (the binary logs
//!   it), and Kubernetes service links (`HUBBUB_PORT=tcp://…`,
//!   `HUBBUB_SERVICE_HOST`, `HUBBUB_PORT_8080_TCP…`, `HUBBUB_SERVICE_PORT…`)
//!   are ignored.
//! - Namespaces, one rule for file and environment: configured namespaces
//!   (a `namespaces` table in the file and/or `HUBBUB_NAMESPACES__*`
//!   variables) replace the built-in set (`bookings`, `guests`, `tables`,
//!   `food`, `cities`, each with presence and join/leave on) entirely; the
//!   environment's are merged into the file's, key by key.
//! - `auth.jwt_public_key_file` given in the file is relative to the file's
//!   directory; given by the environment, to the working directory. The PEM
//!   is read and parsed at load time.
//!
//! # Environment
//! Every key has an environment form: `HUBBUB_` + the key path upper-cased,
//! with `__` between table levels: `HUBBUB_LISTEN`, `HUBBUB_REDIS_URL`,
//! `HUBBUB_AUTH__JWT_SECRET`, `HUBBUB_LIMITS__MAX_FRAME_BYTES`, `HUBBUB_REDIS__KEY_PREFIX`,
//! `HUBBUB_NAMESPACES__BOOKINGS__HISTORY_SIZE` (the namespace name is
//! lower-cased, so namespaces with capitals cannot be set this way).
//! `HUBBUB_API_KEYS` is a TOML inline array of tables and replaces the
//! file's `api_keys` entirely:
//! `[{name="x", key_sha256="…", publish=["a:*"]}]`. `HUBBUB_WEBHOOKS` is the same
//! for the `webhooks` array.
//! Values are typed by the key: strings stay strings (a secret `123` is the
//! string `"123"`), integers and `true`/`false` are parsed strictly, durations
//! use humantime (`5s`, `24h`). Environment wins over the file, but cannot
//! unset a file key (e.g. `HUBBUB_AUTH__JWT_SECRET` next to the file's
//! `jwt_public_key_file` is a conflict, not a replacement).
//! `HUBBUB_CONFIG` and `HUBBUB_LOG` are left to the binary; any other unknown
//! `HUBBUB_*` variable is a warning (see Rules).
//!
//! # Layout
//! - this file: the typed [`Config`] and its parts, and [`Config::load`];
//! - `config/env.rs`: `HUBBUB_*` variables onto the TOML table;
//! - `config/read.rs`: the table into typed sections, key by key;
//! - `config/auth_keys.rs`: the `[auth]` table and its key sources;
//! - `config/read.rs` also reads `[memory]`, the memory engine's caps;
//! - `config/outbox.rs`: the `[outbox]` table (PostgreSQL outbox consumer);
//! - `config/print.rs`: [`Config::to_toml`], the redacted effective configuration;
//! - `config/error.rs`: [`ConfigError`] and [`ConfigWarning`];
//! - `config/webhooks.rs`: the `[[webhooks]]` sinks.
//!
//! # Dev mode
//! With no file, no JWT key and no production setting (`redis_url`,
//! `api_keys`, `outbox`, `webhooks`) in the environment, [`Config::dev_mode`]
//! is set: tokens are verified with HS256 and [`DEV_SECRET`], and `listen`
//! defaults to [`DEV_LISTEN`] (loopback; the binary warns, at ERROR when
//! `listen` is set beyond loopback). Changing the port, namespaces or limits
//! keeps dev mode. A production setting without a JWT key is
//! [`ConfigError::ProductionWithoutKey`]. Outside dev mode the auth key must
//! be configured, and [`DEV_SECRET`] itself is refused.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io;
use std::net::{AddrParseError, IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use humantime::format_duration;
use jsonwebtoken::DecodingKey;
use toml::{Table, Value};

use crate::topic::{PatternError, TopicError, TopicPattern, validate_namespace};

mod auth_keys;
mod env;
mod error;
mod outbox;
mod print;
mod read;
#[cfg(test)]
mod tests;
mod webhooks;

use env::apply_env;
pub use error::{ConfigError, ConfigWarning};
pub use outbox::{
    DEFAULT_OUTBOX_TABLE, MAX_OUTBOX_TABLE_LEN, OutboxConfig, PostgresUrl, is_outbox_table,
};
use read::{Ctx, Section, read_config};
pub use webhooks::{
    EventGlob, LifecycleEvent, WebhookConfig, WebhookConfigError, WebhookOrdering, WebhookSecret,
};

/// The well-known HS256 secret of dev mode. Never accepted outside dev mode.
pub const DEV_SECRET: &str = "hubbub-dev-secret-not-for-production";

/// The shortest accepted `auth.jwt_secret`, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// The namespaces configured when the file has no `namespaces` table.
pub const DEFAULT_NAMESPACES: [&str; 5] = ["bookings", "guests", "tables", "food", "cities"];

/// `HUBBUB_*` variables that [`Config::load`] ignores because the binary reads them.
pub const ENV_HANDLED_BY_BINARY: [&str; 2] = ["HUBBUB_CONFIG", "HUBBUB_LOG"];

const ENV_PREFIX: &str = "HUBBUB_";
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);
/// Where dev mode binds unless `listen` is set: loopback only.
pub const DEV_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
const MAX_NODE_NAME_LEN: usize = 64;

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Inclusive bounds of a setting.
type Bounds<T> = (T, T);

const DRAIN_TIMEOUT: Bounds<Duration> = (Duration::ZERO, secs(600));
const MAX_FRAME_BYTES: Bounds<usize> = (256, 16 * 1024 * 1024);
const CONNECT_TIMEOUT: Bounds<Duration> = (Duration::from_millis(100), secs(300));
const PING_INTERVAL: Bounds<Duration> = (secs(1), secs(600));
const MAX_SUBSCRIPTIONS: Bounds<usize> = (1, 100_000);
const IDEMPOTENCY_WINDOW: Bounds<Duration> = (secs(1), secs(24 * 3600));
const OUTBOX_SIZE: Bounds<usize> = (16, 1 << 20);
const OUTBOX_BYTES: Bounds<usize> = (4096, 1 << 30);
const WRITE_TIMEOUT: Bounds<Duration> = (secs(1), secs(3600));
const HEADER_READ_TIMEOUT: Bounds<Duration> = (Duration::from_millis(100), secs(600));
const HISTORY_SIZE: Bounds<usize> = (0, 100_000);
const HISTORY_TTL: Bounds<Duration> = (secs(1), secs(365 * 24 * 3600));
const MAX_CONNECTIONS: Bounds<usize> = (1, 10_000_000);
const PER_USER: Bounds<usize> = (0, 1_000_000);
const RATE: Bounds<usize> = (0, 10_000_000);
const BURST: Bounds<usize> = (1, 10_000_000);
const MAX_REQUEST_BYTES: Bounds<usize> = (1024, 64 * 1024 * 1024);
const LEEWAY: Bounds<Duration> = (Duration::ZERO, secs(300));
const JWKS_REFRESH: Bounds<Duration> = (secs(10), secs(24 * 3600));
const PRESENCE_TTL: Bounds<Duration> = (secs(1), secs(3600));
const PROBE_INTERVAL: Bounds<Duration> = (Duration::from_millis(100), secs(60));
const MAX_KEY_PREFIX_LEN: usize = 64;
const MAX_TOPICS: Bounds<usize> = (1, 100_000_000);
const MAX_HISTORY_BYTES: Bounds<usize> = (64 * 1024, 1 << 40);

/// The whole validated configuration of a hub node.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP/WebSocket server binds (`listen`, default
    /// `0.0.0.0:8080`; in dev mode `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Redis broker URL; `None` selects the in-memory broker (one node).
    pub redis_url: Option<RedisUrl>,
    /// Redis engine settings (`[redis]`; used only with `redis_url`).
    pub redis: RedisSettings,
    /// Memory engine settings (`[memory]`; used only without `redis_url`).
    pub memory: MemorySettings,
    /// This node's name; `None` lets the caller generate one.
    pub node_name: Option<String>,
    /// Graceful shutdown budget (`drain_timeout`, default 10 s).
    pub drain_timeout: Duration,
    /// Log output format (`log_format`, default text).
    pub log_format: LogFormat,
    /// How tokens are verified.
    pub auth: AuthConfig,
    /// API keys for the REST publish side.
    pub api_keys: Vec<ApiKeyConfig>,
    /// Protocol and resource limits.
    pub limits: Limits,
    /// Configured namespaces by name; a topic outside them is `unknown_namespace`.
    pub namespaces: BTreeMap<String, NamespaceConfig>,
    /// Proxies whose client-IP header is believed (`trusted_proxies`,
    /// `client_ip_header`); empty, the default, counts every TCP peer.
    pub trusted_proxies: TrustedProxies,
    /// Browser origins allowed to open WebSockets and call the REST API
    /// (`allowed_origins`; empty, the default, allows every origin).
    pub allowed_origins: Vec<String>,
    /// No file, no JWT key and no production setting: tokens use HS256
    /// with [`DEV_SECRET`].
    pub dev_mode: bool,
    /// Problems that do not stop the hub (unknown `HUBBUB_*` variables), for
    /// the binary to log.
    pub warnings: Vec<ConfigWarning>,
    /// Webhook sinks (`[[webhooks]]`; `HUBBUB_WEBHOOKS` replaces them; see `config/webhooks.rs`).
    pub webhooks: Vec<WebhookConfig>,
    /// The PostgreSQL outbox consumer (`[outbox]`); `None`: no consumer.
    pub outbox: Option<OutboxConfig>,
}

/// The header a trusted proxy puts the client address in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For`, read right to left past trusted proxies (the default).
    #[default]
    XForwardedFor,
    /// `Fly-Client-IP` (Fly.io's proxy), one address.
    FlyClientIp,
}

impl ClientIpHeader {
    /// The header name as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::XForwardedFor => "X-Forwarded-For",
            Self::FlyClientIp => "Fly-Client-IP",
        }
    }
}

/// Which TCP peers are proxies whose client-IP header is used for the
/// per-IP connection limit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustedProxies {
    /// The proxies' networks (`trusted_proxies`, CIDRs; a bare address is a /32 or /128).
    pub cidrs: Vec<ipnet::IpNet>,
    /// The header to read (`client_ip_header`).
    pub header: ClientIpHeader,
}

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.cidrs.iter().any(|net| net.contains(&ip))
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A secret string whose `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A Redis URL; `Debug` and `Display` hide its password(s).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// Checks the scheme (`redis`, `rediss`, `redis-cluster`, `valkey`, …);
    /// the broker parses the rest when it connects.
    pub fn new(url: impl Into<String>) -> Option<Self> {
        let url = url.into();
        let (scheme, rest) = url.split_once("://")?;
        let scheme_ok = (scheme.starts_with("redis") || scheme.starts_with("valkey"))
            && scheme
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'+');
        (scheme_ok && !rest.is_empty()).then_some(Self(url))
    }

    /// The full URL, credentials included: for the broker only, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the userinfo password and `*password*` query values replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({:?})", self.redacted())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces the password of `scheme://user:password@…` and the values of
/// query parameters whose name contains `password` by `***`. Conservative:
/// everything up to the last `@` counts as userinfo.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[redacted]".to_owned();
    };
    let mut out = format!("{scheme}://");
    let tail = match rest.rsplit_once('@') {
        Some((userinfo, tail)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push_str(":***@");
                }
                None => {
                    out.push_str(userinfo);
                    out.push('@');
                }
            }
            tail
        }
        None => rest,
    };
    // Every `key=value` piece between `?`/`&` separators is checked.
    let mut piece_start = 0;
    for (i, c) in tail.char_indices().chain([(tail.len(), '&')]) {
        if c != '?' && c != '&' {
            continue;
        }
        let piece = &tail[piece_start..i];
        match piece.split_once('=') {
            Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                out.push_str(key);
                out.push_str("=***");
            }
            _ => out.push_str(piece),
        }
        if i < tail.len() {
            out.push(c);
        }
        piece_start = i + 1;
    }
    out
}

/// A JWT signature algorithm the hub accepts (exactly one is configured).
#[allow(clippy::upper_case_acronyms, reason = "the JOSE algorithm names")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 and a shared secret.
    #[default]
    HS256,
    /// HMAC with SHA-384 and a shared secret.
    HS384,
    /// HMAC with SHA-512 and a shared secret.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and an RSA public key.
    RS256,
    /// ECDSA on P-256 with SHA-256 and an EC public key.
    ES256,
}

impl JwtAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [Self; 5] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::ES256,
    ];

    /// The JOSE name, e.g. `HS256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
        }
    }

    /// Whether this is an HMAC (shared secret) algorithm.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    /// The matching `jsonwebtoken` algorithm.
    pub fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::HS256 => jsonwebtoken::Algorithm::HS256,
            Self::HS384 => jsonwebtoken::Algorithm::HS384,
            Self::HS512 => jsonwebtoken::Algorithm::HS512,
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key tokens are verified with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKey {
    /// The HS* shared secret.
    Secret(Secret),
    /// The RS256/ES256 public key, PEM text (already checked to parse).
    PublicKeyPem(String),
    /// RS256/ES256 keys from a JWKS document (`auth.jwks_file`), chosen by the
    /// token's `kid` (already checked: every key converts).
    Jwks(jsonwebtoken::jwk::JwkSet),
    /// RS256/ES256 keys fetched from `auth.jwks_url`, cached, refetched every
    /// `refresh` and when a token names an unknown `kid`.
    JwksUrl {
        /// `https://…` (or `http://` to a loopback address).
        url: String,
        /// How often the document is refetched (`auth.jwks_refresh`, default 10 min).
        refresh: Duration,
    },
}

/// How tokens are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// The one accepted algorithm (`auth.jwt_algorithm`, default HS256).
    pub algorithm: JwtAlgorithm,
    /// The verification key, matching `algorithm`'s family.
    pub key: JwtKey,
    /// Required `iss` when set.
    pub issuer: Option<String>,
    /// Required `aud` when set.
    pub audience: Option<String>,
    /// Clock-skew allowance for `exp` and `nbf` (`auth.leeway`, 0 ..= 5 min; default 0).
    pub leeway: Duration,
    /// The HS secret being rotated out, accepted until the given time
    /// (`auth.previous_jwt_secret` + `auth.previous_secret_until`).
    pub previous_secret: Option<(Secret, std::time::SystemTime)>,
}

/// One API key of the REST publish side, stored as the SHA-256 of the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyConfig {
    /// A name for logs and metrics.
    pub name: String,
    /// SHA-256 of the bearer key.
    pub key_sha256: [u8; 32],
    /// Topics this key may publish to (`{sub}` is not allowed here).
    pub publish: Vec<TopicPattern>,
    /// Whether the key may call the operator endpoints (`disconnect`,
    /// `info`, webhooks, topic listings): `operator`, default `false`.
    pub operator: bool,
}

impl fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = hex::encode(&self.key_sha256[..4]);
        f.debug_struct("ApiKeyConfig")
            .field("name", &self.name)
            .field("key_sha256", &format_args!("{prefix}…"))
            .field("publish", &self.publish)
            .field("operator", &self.operator)
            .finish()
    }
}

/// Redis engine settings (`[redis]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// Prefix of every key and channel, so several deployments (or test runs)
    /// can share one Redis (1 to 64 bytes of `A-Z a-z 0-9 _ - . :`; default `hubbub`).
    pub key_prefix: String,
    /// How long a presence member outlives the last refresh by its node, i.e.
    /// how soon a crashed node's members disappear (1 s ..= 1 h; default 30 s).
    pub presence_ttl: Duration,
    /// How often the pub/sub path is probed (100 ms ..= 1 min; default 1 s).
    pub probe_interval: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            key_prefix: "hubbub".to_owned(),
            presence_ttl: secs(30),
            probe_interval: secs(1),
        }
    }
}

/// Memory engine settings (`[memory]`): what one node without Redis may
/// hold. A publication beyond either cap is refused with `limit_exceeded`
/// (REST 400); nothing stored is dropped to make room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemorySettings {
    /// Topics with a stream (published to within their retention, or
    /// subscribed) the node keeps (1 ..= 100000000; default 100000).
    pub max_topics: usize,
    /// Bytes of history and idempotency keys the node keeps, as estimated
    /// per stored entry (64 KiB ..= 1 TiB; default 256 MiB).
    pub max_history_bytes: usize,
}

impl Default for MemorySettings {
    fn default() -> Self {
        Self {
            max_topics: 100_000,
            max_history_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Protocol and resource limits (`[limits]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted WebSocket frame (256 B ..= 16 MiB; default 65536).
    pub max_frame_bytes: usize,
    /// Time allowed for the first `connect` command (100 ms ..= 5 min; default 5 s).
    pub connect_timeout: Duration,
    /// Heartbeat interval announced to clients (1 s ..= 10 min; default 25 s).
    pub ping_interval: Duration,
    /// Subscriptions per connection (1 ..= 100000; default 256).
    pub max_subscriptions: usize,
    /// How long an `idempotency_key` is remembered (1 s ..= 24 h; default 10 min).
    pub idempotency_window: Duration,
    /// Frames queued per connection before it is a slow consumer (16 ..= 1048576; default 1024).
    pub outbox_size: usize,
    /// Connections (WebSocket and SSE) this node accepts at once; more get 4103 (default 100000).
    pub max_connections: usize,
    /// Connections one user (`sub`) may hold on this node; more get 4103 (0 = no limit, the default).
    pub max_connections_per_user: usize,
    /// New connections per second from one IP address; more get 4102 (0 = no limit, the default).
    pub connection_rate_per_ip: usize,
    /// Commands per second a connection may send, sustained (0 = no limit; default 100).
    pub command_rate: usize,
    /// Commands a connection may send in a burst above `command_rate` (default 200).
    pub command_burst: usize,
    /// REST requests per second per caller (API key, or user token by `sub`),
    /// burst twice that; more get 429 (0 = no limit, the default).
    pub api_rate: usize,
    /// Largest REST request body (1 KiB ..= 64 MiB; default 1 MiB, at least `max_frame_bytes`).
    pub max_request_bytes: usize,
    /// Bytes queued per connection (4 KiB ..= 1 GiB; default 1 MiB); beyond
    /// it, a push closes the connection as a slow consumer (4101) and a
    /// reply waits for room at most `write_timeout`. One item larger than
    /// the budget is still admitted when the connection has nothing pending.
    pub outbox_bytes: usize,
    /// `write_timeout` as configured (1 s ..= 1 h); `None`: twice
    /// `ping_interval`. Read it with [`Limits::write_timeout`].
    pub write_timeout_setting: Option<Duration>,
    /// How long a client may take to send a whole HTTP request head, and how
    /// long an HTTP connection may idle before its next request; the
    /// connection is closed after it (100 ms ..= 10 min; default 10 s).
    /// Upgraded WebSockets and running SSE streams are not affected.
    pub header_read_timeout: Duration,
}

impl Limits {
    /// How long a connection's writer may be blocked on one batch, and a
    /// reply may wait for room in the outbox, before the connection is
    /// closed as a slow consumer (4101): `write_timeout`, by default twice
    /// `ping_interval`.
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout_setting
            .unwrap_or(self.ping_interval.saturating_mul(2))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 65_536,
            connect_timeout: secs(5),
            ping_interval: secs(25),
            max_subscriptions: 256,
            idempotency_window: secs(600),
            outbox_size: 1024,
            max_connections: 100_000,
            max_connections_per_user: 0,
            connection_rate_per_ip: 0,
            command_rate: 100,
            command_burst: 200,
            api_rate: 0,
            max_request_bytes: 1024 * 1024,
            outbox_bytes: 1024 * 1024,
            write_timeout_setting: None,
            header_read_timeout: secs(10),
        }
    }
}

/// Options of one namespace (`[namespaces.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceConfig {
    /// Publications kept per topic (0 ..= 100000; 0 = none; default 100).
    pub history_size: usize,
    /// How long an idle topic's history lives (1 s ..= 365 d; default 24 h).
    pub history_ttl: Duration,
    /// Whether presence is tracked.
    pub presence: bool,
    /// Whether `join`/`leave` events are sent (independent of `presence`).
    pub join_leave: bool,
    /// Whether clients may publish over the socket.
    pub client_publish: bool,
    /// Whether any authenticated client may subscribe without a claim.
    pub public: bool,
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        Self {
            history_size: 100,
            history_ttl: secs(24 * 3600),
            presence: false,
            join_leave: false,
            client_publish: false,
            public: false,
        }
    }
}

impl Config {
    /// Loads defaults < `file` (TOML, optional) < `HUBBUB_*` variables of `env`
    /// (pass `std::env::vars().collect::<Vec<_>>()`), and validates the result.
    pub fn load(file: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let Some(path) = file else {
            return Self::build(None, None, env);
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        let table = parse_toml(&text, &path.display().to_string())?;
        Self::build(Some(table), path.parent(), env)
    }

    /// Like [`Config::load`] with `text` as the file's content; a relative
    /// `auth.jwt_public_key_file` is resolved against the working directory.
    pub fn from_toml_str(text: &str, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let table = parse_toml(text, "config text")?;
        Self::build(Some(table), None, env)
    }

    /// The options of namespace `name`, or `None` when it is not configured.
    pub fn namespace(&self, name: &str) -> Option<&NamespaceConfig> {
        self.namespaces.get(name)
    }

    fn build(
        file: Option<Table>,
        base_dir: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let from_file = file.is_some();
        let mut root = file.unwrap_or_default();
        let mut warnings = Vec::new();
        let env_keys = apply_env(&mut root, env, &mut warnings)?;
        // One rule for file and environment: configured namespaces replace
        // the built-in set.
        if !root.contains_key("namespaces") {
            root.insert("namespaces".to_owned(), default_namespaces_table());
        }
        let ctx = Ctx {
            env_keys: &env_keys,
            base_dir,
        };
        let mut config = read_config(&ctx, Section::new(&ctx, String::new(), root), from_file)?;
        warnings.append(&mut config.warnings);
        config.warnings = warnings;
        Ok(config)
    }
}

fn parse_toml(text: &str, origin: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|source| ConfigError::Syntax {
        origin: origin.to_owned(),
        source: Box::new(source),
    })
}

fn default_namespaces_table() -> Value {
    let mut namespaces = Table::new();
    for name in DEFAULT_NAMESPACES {
        let mut ns = Table::new();
        ns.insert("presence".to_owned(), Value::Boolean(true));
        ns.insert("join_leave".to_owned(), Value::Boolean(true));
        namespaces.insert(name.to_owned(), Value::Table(ns));
    }
    Value::Table(namespaces)
}
