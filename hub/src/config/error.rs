//! [`ConfigError`]: every way a configuration is refused, each naming the
//! key (and the environment variable) it came from.

use super::*;

/// Why the configuration was refused. `key` fields hold the dotted key path,
/// followed by `(from HUBBUB_…)` when the value came from the environment.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The config file is not valid TOML.
    #[error("invalid TOML in {origin}: {source}")]
    Syntax {
        /// The file path, or `config text`.
        origin: String,
        /// The parser's error.
        source: Box<toml::de::Error>,
    },
    /// An `allowed_origins` entry that is not `scheme://host[:port]`.
    #[error("{key}: {value:?} is not an origin such as \"https://app.example.com\"")]
    InvalidOrigin {
        /// The key path.
        key: String,
        /// The entry.
        value: String,
    },
    /// A timestamp that is not RFC 3339.
    #[error("{key}: {value:?} is not an RFC 3339 time such as \"2026-12-01T00:00:00Z\"")]
    InvalidTime {
        /// The key path.
        key: String,
        /// The text.
        value: String,
    },
    /// A `jwks_url` that is neither https nor a loopback http URL.
    #[error("{key}: {value:?} must be an https:// URL (http:// only to a loopback address)")]
    InvalidJwksUrl {
        /// The key path.
        key: String,
        /// The URL.
        value: String,
    },
    /// A JWKS document that cannot be used.
    #[error("{key}: invalid JWKS document: {reason}")]
    InvalidJwks {
        /// The key path.
        key: String,
        /// Why.
        reason: String,
    },
    /// A key that needs another one.
    #[error("{key} needs {needs}")]
    Requires {
        /// The key path.
        key: String,
        /// What else must be set.
        needs: String,
    },
    /// A key that the configuration does not have.
    #[error("unknown key `{key}`")]
    UnknownKey {
        /// The key path.
        key: String,
    },
    /// A `HUBBUB_*` variable that names no key.
    #[error("unknown environment variable `{var}`: it names no configuration key")]
    UnknownEnvVar {
        /// The variable name.
        var: String,
    },
    /// A variable whose text does not parse as its key's type.
    #[error("{var}: expected {expected}, got {value:?}")]
    InvalidEnvValue {
        /// The variable name.
        var: String,
        /// What the key takes.
        expected: &'static str,
        /// The variable's text.
        value: String,
    },
    /// `HUBBUB_API_KEYS` is not a TOML value.
    #[error("{var}: not a TOML inline array: {source}")]
    EnvToml {
        /// The variable name.
        var: String,
        /// The parser's error.
        source: Box<toml::de::Error>,
    },
    /// A webhook sink's value that is refused.
    #[error("{key}: {source}")]
    InvalidWebhook {
        /// The key path.
        key: String,
        /// Why.
        source: WebhookConfigError,
    },
    /// A value of the wrong TOML type.
    #[error("{key}: expected {expected}, got {found}")]
    WrongType {
        /// The key path.
        key: String,
        /// What the key takes.
        expected: &'static str,
        /// The TOML type found.
        found: &'static str,
    },
    /// A required key is absent.
    #[error("{key}: missing")]
    Missing {
        /// The key path.
        key: String,
    },
    /// An empty string where text is required.
    #[error("{key}: must not be empty")]
    Empty {
        /// The key path.
        key: String,
    },
    /// An integer outside its bounds.
    #[error("{key}: must be between {min} and {max}, got {got}")]
    OutOfRange {
        /// The key path.
        key: String,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
        /// The value given.
        got: i64,
    },
    /// Not a humantime duration.
    #[error("{key}: invalid duration {value:?} (use e.g. \"5s\", \"10m\", \"24h\"): {source}")]
    InvalidDuration {
        /// The key path.
        key: String,
        /// The text given.
        value: String,
        /// The parser's error.
        source: humantime::DurationError,
    },
    /// A duration outside its bounds.
    #[error(
        "{key}: must be between {} and {}, got {}",
        format_duration(*.min), format_duration(*.max), format_duration(*.got)
    )]
    DurationOutOfRange {
        /// The key path.
        key: String,
        /// Shortest accepted value.
        min: Duration,
        /// Longest accepted value.
        max: Duration,
        /// The value given.
        got: Duration,
    },
    /// Not an `IP:port` socket address.
    #[error("{key}: invalid socket address {value:?} (use IP:port): {source}")]
    InvalidAddress {
        /// The key path.
        key: String,
        /// The text given.
        value: String,
        /// The parser's error.
        source: AddrParseError,
    },
    /// A value outside a fixed set of choices.
    #[error("{key}: expected {expected}, got {value:?}")]
    InvalidChoice {
        /// The key path.
        key: String,
        /// The text given.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// Not a Redis URL (the value is not echoed: it may hold a password).
    #[error("{key}: expected a Redis URL such as redis://[user:password@]host:6379")]
    InvalidRedisUrl {
        /// The key path.
        key: String,
    },
    /// A node name with bytes outside `A-Z a-z 0-9 _ - .` or too long.
    #[error("{key}: must be 1 to {MAX_NODE_NAME_LEN} bytes of A-Z a-z 0-9 _ - ., got {value:?}")]
    InvalidNodeName {
        /// The key path.
        key: String,
        /// The text given.
        value: String,
    },
    /// A Redis key prefix with bytes outside `A-Z a-z 0-9 _ - . :` or too long.
    #[error("{key}: must be 1 to {MAX_KEY_PREFIX_LEN} bytes of A-Z a-z 0-9 _ - . :, got {value:?}")]
    InvalidKeyPrefix {
        /// The key path.
        key: String,
        /// The text given.
        value: String,
    },
    /// A namespace name that is not a valid topic namespace.
    #[error("{key}: invalid namespace name: {source}")]
    InvalidNamespace {
        /// The key path.
        key: String,
        /// Why.
        source: TopicError,
    },
    /// A `namespaces` table with no namespace.
    #[error("{key}: at least one namespace must be configured")]
    NoNamespaces {
        /// The key path.
        key: String,
    },
    /// An invalid topic pattern.
    #[error("{key}: invalid pattern {pattern:?}: {source}")]
    InvalidPattern {
        /// The key path.
        key: String,
        /// The pattern given.
        pattern: String,
        /// Why.
        source: PatternError,
    },
    /// `key_sha256` is not 64 hex digits.
    #[error("{key}: expected 64 hex digits (a SHA-256): {source}")]
    InvalidKeyHash {
        /// The key path.
        key: String,
        /// Why.
        source: hex::FromHexError,
    },
    /// Two API keys with one name.
    #[error("{key}: API key name {name:?} is used twice")]
    DuplicateApiKeyName {
        /// The key path.
        key: String,
        /// The name.
        name: String,
    },
    /// Two API keys with one hash.
    #[error("{key}: the same key hash is configured twice")]
    DuplicateApiKeyHash {
        /// The key path.
        key: String,
    },
    /// Production settings (Redis, API keys, an outbox, webhooks) without a
    /// JWT key: dev mode is off, so a key is needed.
    #[error(
        "{settings} configured but no JWT key: these are production settings, so dev mode \
         (the public dev secret) is off. Set HUBBUB_AUTH__JWT_SECRET (auth.jwt_secret, at least \
         16 bytes) or, for RS256/ES256, HUBBUB_AUTH__JWT_ALGORITHM with \
         HUBBUB_AUTH__JWT_PUBLIC_KEY_FILE, HUBBUB_AUTH__JWKS_FILE or HUBBUB_AUTH__JWKS_URL"
    )]
    ProductionWithoutKey {
        /// The production settings seen, with the variables they came from.
        settings: String,
    },
    /// The key the algorithm needs is not configured.
    #[error("{key}: required for {algorithm}")]
    MissingKey {
        /// The key path.
        key: String,
        /// The configured algorithm.
        algorithm: JwtAlgorithm,
    },
    /// A key of the other family than the algorithm.
    #[error("{key}: cannot be used with {algorithm}")]
    KeyNotForAlgorithm {
        /// The key path.
        key: String,
        /// The configured algorithm.
        algorithm: JwtAlgorithm,
    },
    /// Both `auth.jwt_secret` and `auth.jwt_public_key_file` are set.
    #[error("{key} and {other} are both set; set exactly one")]
    ConflictingKeys {
        /// One key path.
        key: String,
        /// The other key path.
        other: String,
    },
    /// A shared secret shorter than [`MIN_SECRET_LEN`].
    #[error("{key}: must be at least {MIN_SECRET_LEN} bytes, got {len}")]
    SecretTooShort {
        /// The key path.
        key: String,
        /// Its length.
        len: usize,
    },
    /// [`DEV_SECRET`] configured explicitly.
    #[error("{key}: the public dev-mode secret is refused; configure a real secret")]
    DevSecretRefused {
        /// The key path.
        key: String,
    },
    /// The public key file could not be read.
    #[error("{key}: cannot read {}: {source}", path.display())]
    ReadKeyFile {
        /// The key path.
        key: String,
        /// The resolved file path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The public key file holds a private key.
    #[error("{key}: {} holds a private key; give the hub only the public key", path.display())]
    PrivateKeyGiven {
        /// The key path.
        key: String,
        /// The resolved file path.
        path: PathBuf,
    },
    /// The public key file is not a key of the algorithm's kind.
    #[error("{key}: {} is not a usable {algorithm} public key: {source}", path.display())]
    InvalidPublicKey {
        /// The key path.
        key: String,
        /// The resolved file path.
        path: PathBuf,
        /// The configured algorithm.
        algorithm: JwtAlgorithm,
        /// Why.
        source: jsonwebtoken::errors::Error,
    },
    /// An EC key on another curve than P-256 for ES256.
    #[error("{key}: {} is not a P-256 key, which ES256 requires", path.display())]
    WrongCurve {
        /// The key path.
        key: String,
        /// The resolved file path.
        path: PathBuf,
    },
    /// An `outbox.postgres_url` the PostgreSQL client cannot parse.
    #[error("{key}: not a PostgreSQL URL such as postgres://user@host:5432/db: {reason}")]
    InvalidPostgresUrl {
        /// The key path.
        key: String,
        /// The client's parse error (it never contains the password).
        reason: String,
    },
    /// An `outbox.table` that is not a plain lower-case identifier.
    #[error(
        "{key}: must be 1 to {MAX_OUTBOX_TABLE_LEN} bytes of a-z 0-9 _, not starting with a digit, got {value:?}"
    )]
    InvalidOutboxTable {
        /// The key path.
        key: String,
        /// The name.
        value: String,
    },
}

/// A configuration problem that does not stop the hub; the binary logs each
/// at WARN once tracing is set up (and `check-config` prints them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigWarning {
    /// A `HUBBUB_*` variable that names no key (and is not a Kubernetes
    /// service link): ignored.
    #[error("{var} is not a hubbub setting and is ignored{}", match suggestion {
        Some(s) => format!("; did you mean `{s}`?"),
        None => String::new(),
    })]
    UnknownEnvVar {
        /// The variable name.
        var: String,
        /// The nearest known variable, with the value when it is safe to print.
        suggestion: Option<String>,
    },
    /// A key of `auth.jwks_file` that cannot be used: skipped, the other
    /// keys are used.
    #[error(
        "{key}: JWKS key {kid} cannot be used and is skipped ({reason}); the other keys are used"
    )]
    JwksKeySkipped {
        /// The key path (`auth.jwks_file`).
        key: String,
        /// The key's `kid`, quoted, or `#N` (its index) when it has none.
        kid: String,
        /// Why it cannot be used.
        reason: String,
    },
}
