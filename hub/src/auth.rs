//! Who is asking, and what they may do: JWT → [`Claims`] → [`Identity`] with
//! [`Permissions`], and API keys → [`ApiKeyIdentity`].
//!
//! - [`Verifier`] checks a token against the configured algorithm and key
//!   (never `none`), requires `exp` (valid while `now < exp`, no leeway),
//!   checks `nbf` when present and `iss`/`aud` when configured.
//! - [`AuthError::is_expired`] separates an expired token (close 4100
//!   `token_expired`) from every other failure of [`Verifier::verify`]
//!   (`unauthorized`).
//! - [`ApiKeys`] finds an API key by the SHA-256 of the bearer value.
//! - [`mint`] signs HS* tokens for `hubbub token` and for tests.
//!
//! Permissions only say what a token or key allows; whether a namespace
//! exists, is `public` or allows `client_publish` is the caller's check.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{ApiKeyConfig, AuthConfig, JwtAlgorithm, JwtKey};
use crate::topic::{PatternError, Topic, TopicPattern};

/// Tokens longer than this (in bytes) are refused before decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The latest time a token may name in `exp`, `iat` or `nbf`:
/// 9999-12-31T23:59:59Z in Unix seconds. Later values are refused
/// ([`AuthError::TimeOutOfRange`]), so every expiry the hub turns into an
/// `Instant` or a timer is at most ~8,000 years away (far from the ~2.9e11
/// years at which `Instant + Duration` overflows).
pub const MAX_TOKEN_TIME: u64 = 253_402_300_799;

/// The claims of a hub token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, unix seconds.
    pub exp: u64,
    /// Issue time, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Patterns of the topics the user may subscribe to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribe: Vec<String>,
    /// Patterns of the topics the user may publish to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
    /// Shown in presence; must be a JSON object when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<serde_json::Value>,
}

/// The claims as decoded from a token: `exp` is optional here so that its
/// absence is reported as [`AuthError::MissingClaim`] by the validation.
#[derive(Deserialize)]
struct WireClaims {
    sub: String,
    exp: Option<u64>,
    #[serde(default)]
    iat: Option<u64>,
    /// Checked by the library against the clock; here only for its range.
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    info: Option<serde_json::Value>,
}

/// Why a token was refused, or a key could not be used.
///
/// From [`Verifier::verify`], [`AuthError::Expired`] is `token_expired`
/// (close 4100); every other variant is `unauthorized` (close 4001 / HTTP 401).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("token is {len} bytes, the maximum is {MAX_TOKEN_LEN}")]
    TooLarge {
        /// The token's length.
        len: usize,
    },
    /// The token's `exp` has passed.
    #[error("token expired")]
    Expired,
    /// The token's `nbf` is in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// The token's `kid` names no key of the configured JWKS.
    #[error("no key with kid {kid:?} in the configured JWKS")]
    UnknownKeyId {
        /// The `kid` (empty when the token has none and the JWKS has several keys).
        kid: String,
    },
    /// The signature does not verify with the configured key.
    #[error("token signature is invalid")]
    BadSignature,
    /// The token's `alg` is not the configured algorithm.
    #[error("token algorithm is not the configured {expected}")]
    WrongAlgorithm {
        /// The configured algorithm.
        expected: JwtAlgorithm,
    },
    /// `iss` differs from the configured issuer.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// `aud` differs from the configured audience.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// A required claim (`exp`, or a configured `iss`/`aud`) is absent.
    #[error("token lacks the required claim `{claim}`")]
    MissingClaim {
        /// The claim's name.
        claim: String,
    },
    /// Not a well-formed JWT, or a claim of the wrong type.
    #[error("malformed token")]
    Malformed(#[source] jsonwebtoken::errors::Error),
    /// `sub` is the empty string.
    #[error("token `sub` is empty")]
    EmptySubject,
    /// `exp`, `iat` or `nbf` is after [`MAX_TOKEN_TIME`] (the year 9999).
    #[error("token claim `{claim}` is {value}, after the year 9999")]
    TimeOutOfRange {
        /// The claim's name.
        claim: &'static str,
        /// Its value, Unix seconds.
        value: u64,
    },
    /// `info` is present but not a JSON object.
    #[error("token claim `info` must be a JSON object")]
    InfoNotObject,
    /// A `subscribe` or `publish` entry is not a valid pattern.
    #[error("token claim `{claim}` holds an invalid pattern {pattern:?}")]
    InvalidPattern {
        /// `subscribe` or `publish`.
        claim: &'static str,
        /// The pattern as written.
        pattern: String,
        /// Why it is invalid.
        source: PatternError,
    },
    /// The configured key cannot be used with the configured algorithm.
    #[error("the configured key is not a usable {algorithm} key")]
    InvalidKey {
        /// The configured algorithm.
        algorithm: JwtAlgorithm,
        /// Why.
        source: jsonwebtoken::errors::Error,
    },
    /// [`mint`] with an RS/ES configuration: the hub holds only the public key.
    #[error("minting needs the HS shared secret; {algorithm} is verified with a public key only")]
    MintNeedsSecret {
        /// The configured algorithm.
        algorithm: JwtAlgorithm,
    },
    /// Signing failed.
    #[error("cannot sign the token")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

impl AuthError {
    /// Whether the token was valid but has expired (close 4100 `token_expired`).
    pub fn is_expired(&self) -> bool {
        matches!(self, Self::Expired)
    }
}

/// What a verified token or an API key may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Patterns of the topics that may be subscribed to.
    pub subscribe: Vec<TopicPattern>,
    /// Patterns of the topics that may be published to.
    pub publish: Vec<TopicPattern>,
}

impl Permissions {
    /// Parses the claims' patterns with `{sub}` replaced by `claims.sub`; an
    /// invalid pattern refuses the whole token.
    pub fn from_claims(claims: &Claims) -> Result<Self, AuthError> {
        Ok(Self {
            subscribe: parse_patterns("subscribe", &claims.subscribe, &claims.sub)?,
            publish: parse_patterns("publish", &claims.publish, &claims.sub)?,
        })
    }

    /// Publish rights only, as for an API key.
    pub fn publish_only(patterns: Vec<TopicPattern>) -> Self {
        Self {
            subscribe: Vec::new(),
            publish: patterns,
        }
    }

    /// Whether some subscribe pattern matches `topic`.
    pub fn can_subscribe(&self, topic: &Topic) -> bool {
        self.subscribe.iter().any(|p| p.matches(topic))
    }

    /// Whether some publish pattern matches `topic`.
    pub fn can_publish(&self, topic: &Topic) -> bool {
        self.publish.iter().any(|p| p.matches(topic))
    }

    /// The subscribe patterns as text (after `{sub}` substitution), for messages.
    pub fn subscribe_text(&self) -> Vec<String> {
        self.subscribe.iter().map(ToString::to_string).collect()
    }

    /// The publish patterns as text (after `{sub}` substitution), for messages.
    pub fn publish_text(&self) -> Vec<String> {
        self.publish.iter().map(ToString::to_string).collect()
    }
}

fn parse_patterns(
    claim: &'static str,
    patterns: &[String],
    sub: &str,
) -> Result<Vec<TopicPattern>, AuthError> {
    patterns
        .iter()
        .map(|pattern| {
            TopicPattern::parse(pattern, Some(sub)).map_err(|source| AuthError::InvalidPattern {
                claim,
                pattern: pattern.clone(),
                source,
            })
        })
        .collect()
}

/// A verified token's user.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user id (`sub`).
    pub user: Arc<str>,
    /// When the token expires, unix seconds (`exp`, plus the leeway); at
    /// most [`MAX_TOKEN_TIME`] plus 5 minutes.
    pub expires_at: u64,
    /// The `info` object shown in presence.
    pub info: Option<Arc<serde_json::Value>>,
    /// What the token allows.
    pub permissions: Permissions,
}

/// The longest a token is treated as valid for, in seconds (100 years): an
/// `exp` further away is capped to it, so every deadline built from a token
/// fits an `Instant` and `expires_in` is exact as a JavaScript number.
pub const MAX_EXPIRES_IN: u64 = 100 * 365 * 24 * 3600;

impl Identity {
    /// Seconds until the token expires (0 once it has), at most [`MAX_EXPIRES_IN`].
    pub fn expires_in(&self) -> u64 {
        self.expires_at
            .saturating_sub(crate::broker::now_ms() / 1000)
            .min(MAX_EXPIRES_IN)
    }

    /// When a connection holding this token must end (4100 `token_expired`)
    /// unless it refreshes: now plus [`Identity::expires_in`], saturating.
    pub fn deadline(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let left = std::time::Duration::from_secs(self.expires_in());
        now.checked_add(left).unwrap_or(now)
    }
}

/// Keys of a JWKS, each with its `kid`.
type KeyList = Vec<(Option<String>, DecodingKey)>;

/// The verification keys: one key, a JWKS chosen by the token's `kid`, or a
/// JWKS fetched from a URL.
#[derive(Clone)]
enum Keys {
    Single(DecodingKey),
    ByKid(KeyList),
    Remote(Arc<RemoteJwks>),
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keys::Single(_) => f.write_str("Single(..)"),
            Keys::ByKid(keys) => f
                .debug_list()
                .entries(keys.iter().map(|(kid, _)| kid))
                .finish(),
            Keys::Remote(r) => write!(f, "Remote({})", r.url),
        }
    }
}

/// Picks the key named by `kid` (a list with one key also serves tokens without `kid`).
fn pick<'k>(keys: &'k KeyList, kid: Option<&str>) -> Result<&'k DecodingKey, AuthError> {
    match kid {
        Some(kid) => keys
            .iter()
            .find(|(k, _)| k.as_deref() == Some(kid))
            .map(|(_, key)| key)
            .ok_or_else(|| AuthError::UnknownKeyId {
                kid: kid.to_owned(),
            }),
        None if keys.len() == 1 => Ok(&keys[0].1),
        None => Err(AuthError::UnknownKeyId { kid: String::new() }),
    }
}

fn key_list(
    set: &jsonwebtoken::jwk::JwkSet,
    algorithm: JwtAlgorithm,
) -> Result<KeyList, AuthError> {
    set.keys
        .iter()
        .map(|jwk| {
            DecodingKey::from_jwk(jwk)
                .map(|k| (jwk.common.key_id.clone(), k))
                .map_err(|source| AuthError::InvalidKey { algorithm, source })
        })
        .collect()
}

/// The largest JWKS document fetched from `auth.jwks_url`; a longer body is
/// refused (a real key set is a few KiB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// A JWKS key that converted, with its decoding key.
pub(crate) type UsableJwk = (jsonwebtoken::jwk::Jwk, DecodingKey);

/// Converts a JWKS document's keys one by one (for `jwks_url` and
/// `jwks_file` alike): the keys that parse and convert, each with its
/// decoding key, and for every other one its `kid` (or `#index`) and why.
pub(crate) fn split_jwks(
    values: Vec<serde_json::Value>,
) -> (Vec<UsableJwk>, Vec<(String, String)>) {
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let kid = value
            .get("kid")
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| format!("#{i}"), |k| format!("{k:?}"));
        let converted = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(value)
            .map_err(|e| e.to_string())
            .and_then(|jwk| match DecodingKey::from_jwk(&jwk) {
                Ok(k) => Ok((jwk, k)),
                Err(e) => Err(e.to_string()),
            });
        match converted {
            Ok(pair) => usable.push(pair),
            Err(reason) => skipped.push((kid, reason)),
        }
    }
    (usable, skipped)
}

/// Converts a fetched JWKS document key by key: a key that does not parse
/// or convert (an unknown `kty`, an encryption key, a broken value) is
/// skipped and described in the second list, so one odd key does not reject
/// the set. An error when the document is not a key set or holds no usable key.
fn usable_jwks(
    body: &[u8],
    algorithm: JwtAlgorithm,
) -> Result<(KeyList, Vec<String>), JwksFetchError> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let raw: RawSet = serde_json::from_slice(body)
        .map_err(|e| JwksFetchError::Document(format!("not a JWKS document: {e}")))?;
    let (usable, skipped) = split_jwks(raw.keys);
    let keys: KeyList = usable
        .into_iter()
        .map(|(jwk, k)| (jwk.common.key_id, k))
        .collect();
    let skipped: Vec<String> = skipped
        .into_iter()
        .map(|(kid, why)| format!("key {kid}: {why}"))
        .collect();
    if keys.is_empty() {
        return Err(JwksFetchError::Document(format!(
            "it holds no usable {algorithm} key ({})",
            if skipped.is_empty() {
                "no keys".to_owned()
            } else {
                skipped.join("; ")
            }
        )));
    }
    Ok((keys, skipped))
}

/// Why a JWKS fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum JwksFetchError {
    /// The request failed.
    #[error("fetching the JWKS: {0}")]
    Http(#[from] reqwest::Error),
    /// The server answered something else than 2xx (redirects are not followed).
    #[error("the JWKS URL answered {0} (redirects are not followed)")]
    Status(reqwest::StatusCode),
    /// The body is longer than [`MAX_JWKS_BYTES`].
    #[error("the JWKS document is over {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    /// The document is not a usable JWKS.
    #[error("the JWKS document is unusable: {0}")]
    Document(String),
}

/// Keys fetched from `auth.jwks_url`: cached, refetched every `refresh`, and
/// refetched early (at most every [`RemoteJwks::MIN_KICK`]) when a token names
/// a `kid` the cache does not have, which is how key rotation shows up.
pub struct RemoteJwks {
    url: String,
    refresh: std::time::Duration,
    algorithm: JwtAlgorithm,
    keys: std::sync::RwLock<Arc<KeyList>>,
    loaded: std::sync::atomic::AtomicBool,
    kick: tokio::sync::Notify,
    last_kick: std::sync::Mutex<Option<std::time::Instant>>,
}

impl RemoteJwks {
    /// The shortest time between two refetches asked for by unknown `kid`s.
    pub const MIN_KICK: std::time::Duration = std::time::Duration::from_secs(5);

    fn new(url: String, refresh: std::time::Duration, algorithm: JwtAlgorithm) -> RemoteJwks {
        RemoteJwks {
            url,
            refresh,
            algorithm,
            keys: std::sync::RwLock::new(Arc::new(Vec::new())),
            loaded: std::sync::atomic::AtomicBool::new(false),
            kick: tokio::sync::Notify::new(),
            last_kick: std::sync::Mutex::new(None),
        }
    }

    /// Whether keys have been fetched at least once.
    pub fn loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Acquire)
    }

    fn current(&self) -> Arc<KeyList> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn ask_for_refresh(&self) {
        let mut last = self
            .last_kick
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if last.is_none_or(|t| now.duration_since(t) >= Self::MIN_KICK) {
            *last = Some(now);
            self.kick.notify_one();
        }
    }

    /// Fetches the document once and replaces the cached keys.
    /// Only a 2xx answer counts, its body at most [`MAX_JWKS_BYTES`]; keys
    /// that cannot be used are skipped (logged at WARN).
    pub async fn fetch(&self, http: &reqwest::Client) -> Result<usize, JwksFetchError> {
        let mut resp = http.get(&self.url).send().await?;
        if !resp.status().is_success() {
            return Err(JwksFetchError::Status(resp.status()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err(JwksFetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksFetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let (keys, skipped) = usable_jwks(&body, self.algorithm)?;
        for why in &skipped {
            tracing::warn!(url = %self.url, "JWKS {why}; skipped, the other keys are used");
        }
        let n = keys.len();
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys);
        self.loaded
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(n)
    }

    /// Keeps the cache fresh until the process ends: every `refresh`, after a
    /// failure every few seconds, and when asked by an unknown `kid`.
    pub async fn run(self: Arc<Self>) {
        let http = match reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the JWKS HTTP client");
                return;
            }
        };
        loop {
            let wait = match self.fetch(&http).await {
                Ok(n) => {
                    tracing::debug!(url = %self.url, keys = n, "JWKS fetched");
                    self.refresh
                }
                Err(e) => {
                    tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed; keeping the cached keys");
                    std::time::Duration::from_secs(3)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.kick.notified() => {}
            }
        }
    }
}

/// Verifies tokens against one [`AuthConfig`]; build it once and share it.
#[derive(Debug, Clone)]
pub struct Verifier {
    algorithm: JwtAlgorithm,
    keys: Keys,
    /// The HS secret being rotated out and until when it is accepted.
    previous: Option<(PreviousKey, std::time::SystemTime)>,
    validation: Validation,
    leeway_secs: u64,
}

#[derive(Clone)]
struct PreviousKey(DecodingKey);

impl std::fmt::Debug for PreviousKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreviousKey(..)")
    }
}

impl Verifier {
    /// Prepares the key and the validation rules of `auth`.
    pub fn new(auth: &AuthConfig) -> Result<Self, AuthError> {
        let algorithm = auth.algorithm;
        let keys = match &auth.key {
            JwtKey::Jwks(set) => Keys::ByKid(key_list(set, algorithm)?),
            JwtKey::JwksUrl { url, refresh } => {
                Keys::Remote(Arc::new(RemoteJwks::new(url.clone(), *refresh, algorithm)))
            }
            _ => Keys::Single(decoding_key(auth)?),
        };
        let previous = auth.previous_secret.as_ref().map(|(secret, until)| {
            (
                PreviousKey(DecodingKey::from_secret(secret.expose().as_bytes())),
                *until,
            )
        });
        let leeway_secs = auth.leeway.as_secs();
        let mut validation = Validation::new(algorithm.to_jsonwebtoken());
        validation.leeway = leeway_secs;
        // Valid while now < exp (RFC 7519 4.1.4); with this set the library
        // refuses exp <= now instead of exp < now.
        validation.reject_tokens_expiring_in_less_than = 1;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &auth.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.validate_aud = auth.audience.is_some();
        if let Some(audience) = &auth.audience {
            validation.set_audience(&[audience]);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Ok(Self {
            algorithm,
            keys,
            previous,
            validation,
            leeway_secs,
        })
    }

    /// The keys fetched from `auth.jwks_url`, when configured (the server runs
    /// their refresher and reports readiness from them).
    pub fn remote_jwks(&self) -> Option<Arc<RemoteJwks>> {
        match &self.keys {
            Keys::Remote(r) => Some(r.clone()),
            _ => None,
        }
    }

    fn decode(
        &self,
        token: &str,
        key: &DecodingKey,
    ) -> Result<jsonwebtoken::TokenData<WireClaims>, AuthError> {
        match jsonwebtoken::decode::<WireClaims>(token, key, &self.validation) {
            Ok(data) => Ok(data),
            // During a rotation the previous secret still verifies until its deadline.
            Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => match &self.previous {
                Some((old, until)) if std::time::SystemTime::now() < *until => {
                    jsonwebtoken::decode::<WireClaims>(token, &old.0, &self.validation)
                        .map_err(|e| self.map_error(e))
                }
                _ => Err(self.map_error(e)),
            },
            Err(e) => Err(self.map_error(e)),
        }
    }

    /// The one algorithm this verifier accepts.
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    /// Verifies `token` and returns its user and permissions.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::TooLarge { len: token.len() });
        }
        let data = match &self.keys {
            Keys::Single(key) => self.decode(token, key)?,
            Keys::ByKid(keys) => {
                let header = jsonwebtoken::decode_header(token).map_err(|e| self.map_error(e))?;
                self.decode(token, pick(keys, header.kid.as_deref())?)?
            }
            Keys::Remote(remote) => {
                let header = jsonwebtoken::decode_header(token).map_err(|e| self.map_error(e))?;
                let keys = remote.current();
                match pick(&keys, header.kid.as_deref()) {
                    Ok(key) => self.decode(token, key)?,
                    Err(e) => {
                        // A new kid is how a rotation shows: refetch soon.
                        remote.ask_for_refresh();
                        return Err(e);
                    }
                }
            }
        };
        let wire = data.claims;
        let exp = wire.exp.ok_or_else(|| AuthError::MissingClaim {
            claim: "exp".to_owned(),
        })?;
        if let Some(nbf) = wire.nbf {
            check_time("nbf", nbf)?;
        }
        let claims = Claims {
            sub: wire.sub,
            exp,
            iat: wire.iat,
            subscribe: wire.subscribe,
            publish: wire.publish,
            info: wire.info,
        };
        let mut identity = identity(claims)?;
        // The hub keeps the connection for the leeway past `exp`, as it accepted it.
        identity.expires_at = identity.expires_at.saturating_add(self.leeway_secs);
        Ok(identity)
    }

    fn map_error(&self, error: jsonwebtoken::errors::Error) -> AuthError {
        match error.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                AuthError::WrongAlgorithm {
                    expected: self.algorithm,
                }
            }
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim {
                claim: claim.clone(),
            },
            _ => AuthError::Malformed(error),
        }
    }
}

/// The checks beyond the JWT validation: a non-empty `sub`, `info` an
/// object, every pattern valid.
fn check_claims(claims: &Claims) -> Result<Permissions, AuthError> {
    if claims.sub.is_empty() {
        return Err(AuthError::EmptySubject);
    }
    check_time("exp", claims.exp)?;
    if let Some(iat) = claims.iat {
        check_time("iat", iat)?;
    }
    if claims.info.as_ref().is_some_and(|info| !info.is_object()) {
        return Err(AuthError::InfoNotObject);
    }
    Permissions::from_claims(claims)
}

/// Refuses a token time after [`MAX_TOKEN_TIME`].
fn check_time(claim: &'static str, value: u64) -> Result<(), AuthError> {
    if value > MAX_TOKEN_TIME {
        return Err(AuthError::TimeOutOfRange { claim, value });
    }
    Ok(())
}

fn identity(claims: Claims) -> Result<Identity, AuthError> {
    let permissions = check_claims(&claims)?;
    Ok(Identity {
        user: Arc::from(claims.sub),
        expires_at: claims.exp,
        info: claims.info.map(Arc::new),
        permissions,
    })
}

fn decoding_key(auth: &AuthConfig) -> Result<DecodingKey, AuthError> {
    let algorithm = auth.algorithm;
    let invalid = |source| AuthError::InvalidKey { algorithm, source };
    match (&auth.key, algorithm) {
        (JwtKey::Secret(secret), alg) if alg.is_hmac() => {
            Ok(DecodingKey::from_secret(secret.expose().as_bytes()))
        }
        (JwtKey::PublicKeyPem(pem), JwtAlgorithm::RS256) => {
            DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(invalid)
        }
        (JwtKey::PublicKeyPem(pem), JwtAlgorithm::ES256) => {
            DecodingKey::from_ec_pem(pem.as_bytes()).map_err(invalid)
        }
        _ => Err(invalid(ErrorKind::InvalidKeyFormat.into())),
    }
}

/// The payload [`mint`] signs: the claims plus the configured `iss`/`aud`.
#[derive(Serialize)]
struct MintClaims<'a> {
    #[serde(flatten)]
    claims: &'a Claims,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// Signs `claims` with the configured HS* secret, adding the configured
/// `iss`/`aud`, so that a [`Verifier`] of the same config accepts it.
///
/// Claims the hub would refuse (empty `sub`, `info` not an object, an invalid
/// pattern) are refused here with the same error; `exp` is not checked, so
/// expired tokens can be minted for tests.
pub fn mint(auth: &AuthConfig, claims: &Claims) -> Result<String, AuthError> {
    let secret = match &auth.key {
        JwtKey::Secret(secret) if auth.algorithm.is_hmac() => secret,
        _ => {
            return Err(AuthError::MintNeedsSecret {
                algorithm: auth.algorithm,
            });
        }
    };
    check_claims(claims)?;
    let payload = MintClaims {
        claims,
        iss: auth.issuer.as_deref(),
        aud: auth.audience.as_deref(),
    };
    jsonwebtoken::encode(
        &Header::new(auth.algorithm.to_jsonwebtoken()),
        &payload,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .map_err(AuthError::Sign)
}

/// A matched API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyIdentity {
    /// The configured name, for logs and metrics.
    pub name: Arc<str>,
    /// Publish rights of the key.
    pub permissions: Permissions,
    /// Whether the key may call the operator endpoints (`operator = true`).
    pub operator: bool,
}

/// The configured API keys, found by the SHA-256 of the bearer value.
///
/// Lookup hashes the presented key and probes a map keyed by the hash, so
/// timing can only reveal information about hashes, not about keys.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    by_hash: HashMap<[u8; 32], ApiKeyIdentity>,
}

impl ApiKeys {
    /// Indexes `keys` (the config rejects duplicate hashes; here the last one wins).
    pub fn new(keys: &[ApiKeyConfig]) -> Self {
        let by_hash = keys
            .iter()
            .map(|key| {
                let identity = ApiKeyIdentity {
                    name: Arc::from(key.name.as_str()),
                    permissions: Permissions::publish_only(key.publish.clone()),
                    operator: key.operator,
                };
                (key.key_sha256, identity)
            })
            .collect();
        Self { by_hash }
    }

    /// The key whose hash is SHA-256(`bearer`), if any.
    pub fn lookup(&self, bearer: &str) -> Option<&ApiKeyIdentity> {
        let hash: [u8; 32] = Sha256::digest(bearer.as_bytes()).into();
        self.by_hash.get(&hash)
    }

    /// How many keys are configured.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// Key pairs generated once with `openssl` for tests only.
#[cfg(test)]
pub(crate) mod test_keys {
    /// RSA-2048 public key (SPKI PEM).
    pub(crate) const RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAllZ6IXQBYs6bXyM1ZrTD
ilSEsD/nf1hRAZasoj8HO8fMa713FKd8x5M6sJaSVmjSFLdB7WDrWm4wlSjwXXyD
gSHjfYqbFlaGwcYpcFXgg1G4+pSSYcizRMjLNudyuXV42J54rK6Sq+tUDKz1KZx9
gg3cMhkuIKTTRlWK+NbdpGBPEjU/VfTpE7b3GEOoxX9n4/Xru7waixLSAau3eLoV
XXtLM3HzuxQBUaqhseU9wqtGt8jPtZzt8a7EKi2rAWHqi+LXHVYOOStWR8UJxrb1
HttnRuFAq5HDs01lk9lSUVspKhcnUiF1pmxtJ+aIejpBRATLQvoaTZq6aTlZSZOT
tQIDAQAB
-----END PUBLIC KEY-----
";

    /// An RS256 token signed by `openssl dgst -sha256 -sign` with the private
    /// half of [`RSA_PUBLIC`]: `{"sub":"rsa-user","exp":4102444800,
    /// "subscribe":["bookings:*"]}` (expires in 2100).
    pub(crate) const RS256_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyc2EtdXNlciIsImV4cCI6NDEwMjQ0NDgwMCwic3Vic2NyaWJlIjpbImJvb2tpbmdzOioiXX0.T7g_uKcLV12u6yLDgKA0vrG1GDFL390yXJvFBKIFvp80Uhzegex7NN5RosiCPtpzqFsAEBLLS8WuutNsipfWU0RCal5Pm0h5BNlLXXc9zuL2-_1-bHsmV3l-uz9Am_1qi6mYE9v2SC20XTuUxkH0gm3T7hvgzwqb9FoSAIKk6lRMf5e2OkSuG1ds-JRNbFK_WydfwEYp77K_i39N8iI5aicyl9znBDJhTaTMMTiRNrAGPOklCy_WtkocuMpV6vwQSbFCr_zJkqmxzh_IxhDJQ_CgPDSbMKaFfmFOSM25bRQjM5dKw-Ec0ja2sp46p6VaGQVuTqAL9HIYT0tIrNIZ6A";

    /// P-256 private key (PKCS#8 PEM), test only.
    pub(crate) const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbpy96NeJFih0Gbed
iIa4xNfr/iyL6ljYFU0AQX/kWo2hRANCAASV3Kvy0uoxy+qigQUUabxuPCHRE1UQ
lzDIfLYJxxdqoOH+vQxaU+qzXfIpeoUr07YIWHEUyU/C0uqX5lri671/
-----END PRIVATE KEY-----
";

    /// The public half of [`EC_PRIVATE`].
    pub(crate) const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEldyr8tLqMcvqooEFFGm8bjwh0RNV
EJcwyHy2CccXaqDh/r0MWlPqs13yKXqFK9O2CFhxFMlPwtLql+Za4uu9fw==
-----END PUBLIC KEY-----
";

    /// A P-384 public key (wrong curve for ES256).
    pub(crate) const EC384_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAElPGlP6Z5c1BVY1UNRx9148YUyqKaJgiU
8oG1XvhVU82L7C/LG2wsxwdQyRR/psz1C1OOjvs+07jLyMmSZnYKZMvvKf6cRV2C
BV6ld/vIvVgZb+Zq0i8Nq4cd+8K2TiR/
-----END PUBLIC KEY-----
";
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, get_current_timestamp};
    use serde_json::json;

    use super::test_keys::*;
    use super::*;
    use crate::config::Secret;

    const SECRET: &str = "an-hs256-test-secret-0123456789";

    fn hs(algorithm: JwtAlgorithm, secret: &str) -> AuthConfig {
        AuthConfig {
            algorithm,
            key: JwtKey::Secret(Secret::new(secret)),
            issuer: None,
            audience: None,
            leeway: std::time::Duration::ZERO,
            previous_secret: None,
        }
    }

    fn hs256() -> AuthConfig {
        hs(JwtAlgorithm::HS256, SECRET)
    }

    fn claims(sub: &str) -> Claims {
        Claims {
            sub: sub.to_owned(),
            exp: get_current_timestamp() + 3600,
            iat: Some(get_current_timestamp()),
            subscribe: vec!["bookings:*".to_owned(), "users:{sub}".to_owned()],
            publish: vec!["chat:{sub}".to_owned()],
            info: Some(json!({"name": "Alice"})),
        }
    }

    /// Signs an arbitrary JSON payload, for claims `Claims` cannot express.
    fn raw(alg: Algorithm, secret: &str, payload: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            payload,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn b64(json: &str) -> String {
        base64_url_nopad(json.as_bytes())
    }

    /// Minimal base64url without padding, to hand-craft tokens.
    fn base64_url_nopad(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            }
        }
        out
    }

    fn verify(auth: &AuthConfig, token: &str) -> Result<Identity, AuthError> {
        Verifier::new(auth).unwrap().verify(token)
    }

    fn topic(s: &str) -> Topic {
        s.parse().unwrap()
    }

    #[test]
    fn valid_token_gives_identity_and_permissions() {
        let c = claims("alice");
        let token = mint(&hs256(), &c).unwrap();
        let id = verify(&hs256(), &token).unwrap();
        assert_eq!(&*id.user, "alice");
        assert_eq!(id.expires_at, c.exp);
        assert_eq!(id.info.as_deref(), Some(&json!({"name": "Alice"})));
        let p = &id.permissions;
        assert!(p.can_subscribe(&topic("bookings:1")));
        assert!(!p.can_subscribe(&topic("bookings")));
        assert!(p.can_subscribe(&topic("users:alice")));
        assert!(!p.can_subscribe(&topic("users:bob")));
        assert!(p.can_publish(&topic("chat:alice")));
        assert!(!p.can_publish(&topic("bookings:1")));
    }

    #[test]
    fn minimal_token_has_no_permissions() {
        let exp = get_current_timestamp() + 60;
        let token = raw(Algorithm::HS256, SECRET, &json!({"sub": "u", "exp": exp}));
        let id = verify(&hs256(), &token).unwrap();
        assert_eq!(id.permissions, Permissions::default());
        assert!(id.info.is_none());
        // Unknown claims are ignored.
        let token = raw(
            Algorithm::HS256,
            SECRET,
            &json!({"sub": "u", "exp": exp, "jti": "x", "role": 1}),
        );
        assert!(verify(&hs256(), &token).is_ok());
    }

    #[test]
    fn all_hs_algorithms_verify_their_own_tokens() {
        for alg in [
            JwtAlgorithm::HS256,
            JwtAlgorithm::HS384,
            JwtAlgorithm::HS512,
        ] {
            let auth = hs(alg, SECRET);
            let token = mint(&auth, &claims("u")).unwrap();
            assert!(verify(&auth, &token).is_ok(), "{alg}");
        }
    }

    #[test]
    fn expired_token_is_expired_and_nothing_else_is() {
        let mut c = claims("u");
        c.exp = get_current_timestamp() - 10;
        let err = verify(&hs256(), &mint(&hs256(), &c).unwrap()).unwrap_err();
        assert!(err.is_expired(), "{err:?}");
        // exp == now is already expired (valid only while now < exp).
        c.exp = get_current_timestamp();
        let err = verify(&hs256(), &mint(&hs256(), &c).unwrap()).unwrap_err();
        assert!(err.is_expired(), "{err:?}");
        // An expired token with a wrong signature is a bad signature, not "expired".
        c.exp = get_current_timestamp() - 10;
        let forged = mint(&hs(JwtAlgorithm::HS256, "another-secret-0123456789"), &c).unwrap();
        let err = verify(&hs256(), &forged).unwrap_err();
        assert!(matches!(err, AuthError::BadSignature), "{err:?}");
    }

    #[test]
    fn not_yet_valid_token_is_refused() {
        let now = get_current_timestamp();
        let token = raw(
            Algorithm::HS256,
            SECRET,
            &json!({"sub": "u", "exp": now + 60, "nbf": now + 30}),
        );
        assert!(matches!(
            verify(&hs256(), &token),
            Err(AuthError::NotYetValid)
        ));
    }

    #[test]
    fn wrong_secret_is_a_bad_signature() {
        let token = mint(
            &hs(JwtAlgorithm::HS256, "wrong-secret-0123456789"),
            &claims("u"),
        )
        .unwrap();
        let err = verify(&hs256(), &token).unwrap_err();
        assert!(matches!(err, AuthError::BadSignature), "{err:?}");
        assert!(!err.is_expired());
    }

    #[test]
    fn alg_none_is_refused() {
        let exp = get_current_timestamp() + 3600;
        let payload = format!(r#"{{"sub":"u","exp":{exp},"subscribe":["*"]}}"#);
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"None"}"#,
        ] {
            for signature in ["", "x"] {
                let token = format!("{}.{}.{signature}", b64(header), b64(&payload));
                let err = verify(&hs256(), &token).unwrap_err();
                assert!(!err.is_expired(), "{header}");
                assert!(matches!(err, AuthError::Malformed(_)), "{header}: {err:?}");
            }
        }
    }

    #[test]
    fn other_algorithm_than_configured_is_refused() {
        let token = mint(&hs(JwtAlgorithm::HS384, SECRET), &claims("u")).unwrap();
        let err = verify(&hs256(), &token).unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::WrongAlgorithm {
                    expected: JwtAlgorithm::HS256
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn hs_token_signed_with_the_rsa_public_key_is_refused() {
        // The classic algorithm-confusion attack against RS256 verifiers.
        let token = raw(
            Algorithm::HS256,
            RSA_PUBLIC,
            &json!({"sub": "u", "exp": get_current_timestamp() + 60}),
        );
        let err = verify(&rs256(), &token).unwrap_err();
        assert!(matches!(err, AuthError::WrongAlgorithm { .. }), "{err:?}");
    }

    #[test]
    fn missing_exp_is_refused() {
        let token = raw(Algorithm::HS256, SECRET, &json!({"sub": "u"}));
        let err = verify(&hs256(), &token).unwrap_err();
        assert!(
            matches!(&err, AuthError::MissingClaim { claim } if claim == "exp"),
            "{err:?}"
        );
        assert!(!err.is_expired());
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let mut auth = hs256();
        auth.issuer = Some("https://auth.example.com".to_owned());
        auth.audience = Some("hubbub".to_owned());
        // mint adds the configured iss/aud.
        assert!(verify(&auth, &mint(&auth, &claims("u")).unwrap()).is_ok());
        let exp = get_current_timestamp() + 60;
        let with = |extra: serde_json::Value| {
            let mut payload = json!({"sub": "u", "exp": exp});
            if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
                p.extend(e.clone());
            }
            verify(&auth, &raw(Algorithm::HS256, SECRET, &payload))
        };
        assert!(matches!(
            with(json!({"iss": "https://evil.example.com", "aud": "hubbub"})),
            Err(AuthError::WrongIssuer)
        ));
        assert!(matches!(
            with(json!({"iss": "https://auth.example.com", "aud": "other"})),
            Err(AuthError::WrongAudience)
        ));
        assert!(matches!(
            with(json!({"aud": "hubbub"})),
            Err(AuthError::MissingClaim { .. })
        ));
        assert!(matches!(
            with(json!({"iss": "https://auth.example.com"})),
            Err(AuthError::MissingClaim { .. })
        ));
        assert!(with(json!({"iss": "https://auth.example.com", "aud": ["x", "hubbub"]})).is_ok());
        // Not configured: not checked, even when present.
        let token = raw(
            Algorithm::HS256,
            SECRET,
            &json!({"sub": "u", "exp": exp, "iss": "x", "aud": "y"}),
        );
        assert!(verify(&hs256(), &token).is_ok());
    }

    #[test]
    fn oversized_token_is_refused_before_decoding() {
        let token = "a".repeat(MAX_TOKEN_LEN + 1);
        assert!(
            matches!(verify(&hs256(), &token), Err(AuthError::TooLarge { len }) if len == MAX_TOKEN_LEN + 1)
        );
        // A genuinely signed but oversized token is refused too.
        let mut c = claims("u");
        c.subscribe = (0..800).map(|i| format!("bookings:{i}")).collect();
        let token = mint(&hs256(), &c).unwrap();
        assert!(token.len() > MAX_TOKEN_LEN);
        assert!(matches!(
            verify(&hs256(), &token),
            Err(AuthError::TooLarge { .. })
        ));
    }

    #[test]
    fn stripped_or_tampered_signature_is_refused() {
        let token = mint(&hs256(), &claims("u")).unwrap();
        let (message, _signature) = token.rsplit_once('.').unwrap();
        let err = verify(&hs256(), &format!("{message}.")).unwrap_err();
        assert!(matches!(err, AuthError::BadSignature), "{err:?}");
        let err = verify(&hs256(), message).unwrap_err();
        assert!(matches!(err, AuthError::Malformed(_)), "{err:?}");
        // Swap the payload for one granting everything, keep the signature.
        let (header, rest) = token.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let evil = b64(&format!(
            r#"{{"sub":"u","exp":{},"subscribe":["*"]}}"#,
            get_current_timestamp() + 60
        ));
        let err = verify(&hs256(), &format!("{header}.{evil}.{signature}")).unwrap_err();
        assert!(matches!(err, AuthError::BadSignature), "{err:?}");
        for junk in ["", "abc", "a.b.c", "...", "\u{0}.\u{0}.\u{0}"] {
            assert!(
                !verify(&hs256(), junk).unwrap_err().is_expired(),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn bad_claim_types_are_refused() {
        let exp = get_current_timestamp() + 60;
        for payload in [
            json!({"sub": 42, "exp": exp}),
            json!({"exp": exp}),
            json!({"sub": "u", "exp": "tomorrow"}),
            json!({"sub": "u", "exp": exp, "subscribe": "bookings:*"}),
            json!({"sub": "u", "exp": exp, "publish": [1]}),
            json!({"sub": "u", "exp": exp, "iat": "now"}),
        ] {
            let err = verify(&hs256(), &raw(Algorithm::HS256, SECRET, &payload)).unwrap_err();
            assert!(!err.is_expired(), "{payload}");
            assert!(
                matches!(
                    err,
                    AuthError::Malformed(_) | AuthError::MissingClaim { .. }
                ),
                "{payload}: {err:?}"
            );
        }
        let err = verify(
            &hs256(),
            &raw(Algorithm::HS256, SECRET, &json!({"sub": "", "exp": exp})),
        )
        .unwrap_err();
        assert!(matches!(err, AuthError::EmptySubject), "{err:?}");
        for info in [json!("name"), json!([1]), json!(3)] {
            let payload = json!({"sub": "u", "exp": exp, "info": info});
            let err = verify(&hs256(), &raw(Algorithm::HS256, SECRET, &payload)).unwrap_err();
            assert!(matches!(err, AuthError::InfoNotObject), "{err:?}");
        }
        // `info: null` counts as absent.
        let payload = json!({"sub": "u", "exp": exp, "info": null});
        assert!(
            verify(&hs256(), &raw(Algorithm::HS256, SECRET, &payload))
                .unwrap()
                .info
                .is_none()
        );
    }

    /// Signs `c` without [`mint`]'s checks.
    fn sign_unchecked(c: &Claims) -> String {
        raw(Algorithm::HS256, SECRET, &serde_json::to_value(c).unwrap())
    }

    #[test]
    fn absurd_token_times_are_refused_and_the_largest_accepted_is_safe() {
        let auth = hs256();
        for (claim, payload) in [
            ("exp", json!({"sub": "u", "exp": u64::MAX})),
            ("exp", json!({"sub": "u", "exp": MAX_TOKEN_TIME + 1})),
            (
                "iat",
                json!({"sub": "u", "exp": 4_000_000_000_u64, "iat": u64::MAX}),
            ),
        ] {
            let token = raw(Algorithm::HS256, SECRET, &payload);
            match verify(&auth, &token) {
                Err(AuthError::TimeOutOfRange { claim: c, .. }) => assert_eq!(c, claim),
                other => panic!("{payload}: {other:?}"),
            }
        }
        let nbf = raw(
            Algorithm::HS256,
            SECRET,
            &json!({"sub": "u", "exp": 4_000_000_000_u64, "nbf": u64::MAX}),
        );
        assert!(verify(&auth, &nbf).is_err());
        let last = raw(
            Algorithm::HS256,
            SECRET,
            &json!({"sub": "u", "exp": MAX_TOKEN_TIME}),
        );
        let id = verify(&auth, &last).unwrap();
        // What a session does with it must not overflow.
        let deadline =
            std::time::Instant::now().checked_add(std::time::Duration::from_secs(id.expires_in()));
        assert!(deadline.is_some());
        let mut c = claims("u");
        c.exp = u64::MAX;
        assert!(matches!(
            mint(&auth, &c),
            Err(AuthError::TimeOutOfRange { claim: "exp", .. })
        ));
    }

    #[test]
    fn mint_refuses_claims_the_hub_would_refuse() {
        let mut c = claims("u");
        c.publish = vec!["a*".to_owned()];
        let err = mint(&hs256(), &c).unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::InvalidPattern {
                    claim: "publish",
                    ..
                }
            ),
            "{err:?}"
        );
        let mut c = claims("u");
        c.info = Some(json!([1]));
        assert!(matches!(mint(&hs256(), &c), Err(AuthError::InfoNotObject)));
        assert!(matches!(
            mint(&hs256(), &claims("")),
            Err(AuthError::EmptySubject)
        ));
        // Expired claims can be minted (for tests).
        let mut c = claims("u");
        c.exp = 1;
        assert!(mint(&hs256(), &c).is_ok());
    }

    #[test]
    fn invalid_patterns_refuse_the_token() {
        let mut c = claims("u");
        c.subscribe.push("bookings:a*".to_owned());
        let err = verify(&hs256(), &sign_unchecked(&c)).unwrap_err();
        assert!(
            matches!(&err, AuthError::InvalidPattern { claim: "subscribe", pattern, .. } if pattern == "bookings:a*"),
            "{err:?}"
        );
        let mut c = claims("u");
        c.publish = vec!["{sub}:x".to_owned()];
        let err = verify(&hs256(), &sign_unchecked(&c)).unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::InvalidPattern {
                    claim: "publish",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn sub_injection_cannot_widen_permissions() {
        let probes = [
            "users:alice",
            "users:a",
            "users:a:b",
            "users",
            "bookings:1",
            "chat:x",
            "x",
        ];
        for sub in ["*", "a:*", ":*", "*:*", "users:*", "{sub}"] {
            let mut c = claims(sub);
            c.subscribe = vec!["users:{sub}".to_owned()];
            c.publish = vec!["chat:{sub}".to_owned()];
            let id = verify(&hs256(), &mint(&hs256(), &c).unwrap()).unwrap();
            for probe in probes {
                let t = topic(probe);
                assert_eq!(
                    id.permissions.can_subscribe(&t),
                    probe == format!("users:{sub}"),
                    "sub {sub:?} probe {probe}"
                );
                assert!(!id.permissions.can_publish(&t), "sub {sub:?} probe {probe}");
            }
        }
    }

    fn rs256() -> AuthConfig {
        AuthConfig {
            algorithm: JwtAlgorithm::RS256,
            key: JwtKey::PublicKeyPem(RSA_PUBLIC.to_owned()),
            issuer: None,
            audience: None,
            leeway: std::time::Duration::ZERO,
            previous_secret: None,
        }
    }

    fn es256() -> AuthConfig {
        AuthConfig {
            algorithm: JwtAlgorithm::ES256,
            key: JwtKey::PublicKeyPem(EC_PUBLIC.to_owned()),
            issuer: None,
            audience: None,
            leeway: std::time::Duration::ZERO,
            previous_secret: None,
        }
    }

    #[test]
    fn rs256_token_signed_by_openssl_verifies() {
        let id = verify(&rs256(), RS256_TOKEN).unwrap();
        assert_eq!(&*id.user, "rsa-user");
        assert_eq!(id.expires_at, 4_102_444_800);
        assert!(id.permissions.can_subscribe(&topic("bookings:7")));
        // One flipped signature byte breaks it.
        let mut tampered = RS256_TOKEN.to_owned();
        let at = tampered.len() - 10;
        let flipped = if &tampered[at..=at] == "A" { "B" } else { "A" };
        tampered.replace_range(at..=at, flipped);
        assert!(matches!(
            verify(&rs256(), &tampered),
            Err(AuthError::BadSignature)
        ));
        // The RS256 token against an HS256 verifier is the wrong algorithm.
        assert!(matches!(
            verify(&hs256(), RS256_TOKEN),
            Err(AuthError::WrongAlgorithm { .. })
        ));
    }

    #[test]
    fn es256_verifies_and_refuses_other_keys() {
        let c = claims("ec-user");
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            &c,
            &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
        )
        .unwrap();
        let id = verify(&es256(), &token).unwrap();
        assert_eq!(&*id.user, "ec-user");
        // An RSA key is not an EC key.
        let err = Verifier::new(&AuthConfig {
            key: JwtKey::PublicKeyPem(RSA_PUBLIC.to_owned()),
            ..es256()
        })
        .unwrap_err();
        assert!(matches!(err, AuthError::InvalidKey { .. }), "{err:?}");
        let mut expired = c;
        expired.exp = get_current_timestamp() - 1;
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            &expired,
            &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(verify(&es256(), &token).unwrap_err().is_expired());
    }

    #[test]
    fn mint_needs_the_hs_secret() {
        let err = mint(&rs256(), &claims("u")).unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::MintNeedsSecret {
                    algorithm: JwtAlgorithm::RS256
                }
            ),
            "{err:?}"
        );
        let err = mint(&es256(), &claims("u")).unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::MintNeedsSecret {
                    algorithm: JwtAlgorithm::ES256
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn claims_serde_round_trip() {
        let c = claims("alice");
        let json = serde_json::to_value(&c).unwrap();
        let back: Claims = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
        let minimal: Claims = serde_json::from_value(json!({"sub": "u", "exp": 1})).unwrap();
        assert!(minimal.subscribe.is_empty() && minimal.publish.is_empty());
        assert_eq!(
            serde_json::to_value(&minimal).unwrap(),
            json!({"sub": "u", "exp": 1})
        );
    }

    #[test]
    fn api_key_lookup() {
        let hash: [u8; 32] = Sha256::digest(b"the-booking-service-key").into();
        let keys = ApiKeys::new(&[ApiKeyConfig {
            name: "booking-service".to_owned(),
            key_sha256: hash,
            publish: vec![TopicPattern::parse("bookings:*", None).unwrap()],
            operator: false,
        }]);
        assert_eq!(keys.len(), 1);
        let id = keys.lookup("the-booking-service-key").unwrap();
        assert_eq!(&*id.name, "booking-service");
        assert!(!id.operator);
        assert!(id.permissions.can_publish(&topic("bookings:1")));
        assert!(!id.permissions.can_publish(&topic("payments:1")));
        assert!(!id.permissions.can_subscribe(&topic("bookings:1")));
        assert!(keys.lookup("the-booking-service-key ").is_none());
        assert!(keys.lookup("").is_none());
        assert!(
            keys.lookup(&hex::encode(hash)).is_none(),
            "the hash itself is not the key"
        );
        assert!(ApiKeys::default().lookup("x").is_none());
    }

    #[test]
    fn api_keys_from_the_example_config() {
        let config = crate::config::Config::from_toml_str(
            &format!(
                "[auth]\njwt_secret = \"{SECRET}\"\n[[api_keys]]\nname = \"svc\"\nkey_sha256 = \"{}\"\npublish = [\"bookings:*\"]",
                hex::encode(Sha256::digest(b"k-123"))
            ),
            &[],
        )
        .unwrap();
        let keys = ApiKeys::new(&config.api_keys);
        assert!(
            keys.lookup("k-123")
                .is_some_and(|id| id.permissions.can_publish(&topic("bookings:9")))
        );
        // The dev config verifies tokens minted with it.
        let dev = crate::config::Config::load(None, &[]).unwrap();
        let token = mint(&dev.auth, &claims("dev")).unwrap();
        assert!(verify(&dev.auth, &token).is_ok());
    }

    const EC_JWKS: &str = r#"{"keys":[
        {"kty":"EC","crv":"P-256","kid":"old","alg":"ES256","x":"My8Q1PGmKXxLrMMZy2qpsf_57D5dMLKYV7a6701EQB0","y":"OTarx8Qjj_RljgCYCgtgMji-xJRNWU_5eI2znEZWRx8"},
        {"kty":"EC","crv":"P-256","kid":"current","alg":"ES256","x":"ldyr8tLqMcvqooEFFGm8bjwh0RNVEJcwyHy2CccXaqA","y":"4f69DFpT6rNd8il6hSvTtghYcRTJT8LS6pfmWuLrvX8"}
    ]}"#;

    fn es256_token(kid: Option<&str>, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn jwks_picks_the_key_named_by_kid() {
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(EC_JWKS).unwrap();
        let v = Verifier::new(&AuthConfig {
            key: JwtKey::Jwks(set),
            ..es256()
        })
        .unwrap();
        let c = claims("jwks-user");
        assert_eq!(
            &*v.verify(&es256_token(Some("current"), &c)).unwrap().user,
            "jwks-user"
        );
        assert!(matches!(
            v.verify(&es256_token(Some("old"), &c)),
            Err(AuthError::BadSignature)
        ));
        assert!(matches!(
            v.verify(&es256_token(Some("nope"), &c)),
            Err(AuthError::UnknownKeyId { .. })
        ));
        assert!(matches!(
            v.verify(&es256_token(None, &c)),
            Err(AuthError::UnknownKeyId { .. })
        ));
    }

    #[test]
    fn a_previous_secret_verifies_until_its_deadline() {
        let old = "the-previous-hs-secret-0123456789";
        let c = claims("rotating");
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &c,
            &EncodingKey::from_secret(old.as_bytes()),
        )
        .unwrap();
        let future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        let during = Verifier::new(&AuthConfig {
            previous_secret: Some((Secret::new(old), future)),
            ..hs256()
        })
        .unwrap();
        assert_eq!(&*during.verify(&token).unwrap().user, "rotating");
        let after = Verifier::new(&AuthConfig {
            previous_secret: Some((Secret::new(old), past)),
            ..hs256()
        })
        .unwrap();
        assert!(matches!(after.verify(&token), Err(AuthError::BadSignature)));
        let current = mint(&hs256(), &c).unwrap();
        assert!(after.verify(&current).is_ok());
    }

    #[test]
    fn leeway_accepts_slightly_expired_tokens_and_extends_the_deadline() {
        let now = get_current_timestamp();
        let c = Claims {
            exp: now - 5,
            ..claims("skewed")
        };
        let token = mint(&hs256(), &c).unwrap();
        assert!(matches!(
            Verifier::new(&hs256()).unwrap().verify(&token),
            Err(AuthError::Expired)
        ));
        let lenient = Verifier::new(&AuthConfig {
            leeway: std::time::Duration::from_secs(30),
            ..hs256()
        })
        .unwrap();
        let id = lenient.verify(&token).unwrap();
        assert_eq!(id.expires_at, now - 5 + 30);
        let nbf = serde_json::json!({"sub": "early", "exp": now + 600, "nbf": now + 10});
        let early = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &nbf,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            Verifier::new(&hs256()).unwrap().verify(&early),
            Err(AuthError::NotYetValid)
        ));
        assert!(lenient.verify(&early).is_ok(), "nbf within the leeway");
    }
}
