//! The `[auth]` table: algorithm, secret or public keys (PEM, JWKS file or
//! URL), issuer and audience, leeway and secret rotation, and dev mode.

use super::read::{Ctx, Section};
use super::*;

/// Where asymmetric verification keys come from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum KeySource {
    Pem,
    JwksFile,
    JwksUrl,
}

impl KeySource {
    pub(super) fn key(self) -> &'static str {
        match self {
            KeySource::Pem => "jwt_public_key_file",
            KeySource::JwksFile => "jwks_file",
            KeySource::JwksUrl => "jwks_url",
        }
    }
}

/// An `https://` URL, or `http://` to a loopback host (for local key
/// servers), parsed with a URL parser (so `http://127.0.0.1:80@evil/` is
/// the host `evil`, and refused); no credentials in the URL.
pub(super) fn is_jwks_url(text: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(text) else {
        return false;
    };
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return false;
    };
    match url.scheme() {
        "https" => true,
        "http" => {
            let ip = host.trim_start_matches('[').trim_end_matches(']');
            host == "localhost" || ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

pub(super) fn read_auth(
    ctx: &Ctx<'_>,
    mut auth: Section<'_>,
    from_file: bool,
    production: &[String],
    warnings: &mut Vec<ConfigWarning>,
) -> Result<(AuthConfig, bool), ConfigError> {
    let algorithm = match auth.string("jwt_algorithm")? {
        None => JwtAlgorithm::default(),
        Some(text) => JwtAlgorithm::parse(&text).ok_or_else(|| ConfigError::InvalidChoice {
            key: auth.key("jwt_algorithm"),
            value: text.clone(),
            expected: "HS256, HS384, HS512, RS256 or ES256",
        })?,
    };
    let secret = auth.string("jwt_secret")?;
    let key_file = auth.string("jwt_public_key_file")?;
    let jwks_file = auth.string("jwks_file")?;
    let jwks_url = auth.string("jwks_url")?;
    let jwks_refresh = auth.duration("jwks_refresh", JWKS_REFRESH, secs(600))?;
    let issuer = auth.string("issuer")?;
    let audience = auth.string("audience")?;
    let leeway = auth.duration("leeway", LEEWAY, Duration::ZERO)?;
    let previous = auth.string("previous_jwt_secret")?;
    let previous_until = auth.string("previous_secret_until")?;
    let previous_secret = match (previous, previous_until) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError::Requires {
                key: auth.key("previous_jwt_secret"),
                needs: auth.key("previous_secret_until"),
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::Requires {
                key: auth.key("previous_secret_until"),
                needs: auth.key("previous_jwt_secret"),
            });
        }
        (Some(old), Some(until)) => {
            let key = auth.key("previous_jwt_secret");
            if !algorithm.is_hmac() {
                return Err(ConfigError::KeyNotForAlgorithm { key, algorithm });
            }
            if old == DEV_SECRET {
                return Err(ConfigError::DevSecretRefused { key });
            }
            if old.len() < MIN_SECRET_LEN {
                return Err(ConfigError::SecretTooShort {
                    key,
                    len: old.len(),
                });
            }
            let until_at =
                humantime::parse_rfc3339_weak(&until).map_err(|_| ConfigError::InvalidTime {
                    key: auth.key("previous_secret_until"),
                    value: until.clone(),
                })?;
            Some((Secret::new(old), until_at))
        }
    };
    // At most one source of asymmetric keys.
    let mut sources = [
        key_file.map(|f| (KeySource::Pem, f)),
        jwks_file.map(|f| (KeySource::JwksFile, f)),
        jwks_url.map(|u| (KeySource::JwksUrl, u)),
    ]
    .into_iter()
    .flatten();
    let source = sources.next();
    if let Some((other, _)) = sources.next() {
        return Err(ConfigError::ConflictingKeys {
            key: auth.key(
                source
                    .as_ref()
                    .map_or("jwt_public_key_file", |(s, _)| s.key()),
            ),
            other: auth.key(other.key()),
        });
    }
    let no_key = secret.is_none() && source.is_none();
    if !from_file && no_key && !production.is_empty() {
        return Err(ConfigError::ProductionWithoutKey {
            settings: production.join(", "),
        });
    }
    let dev_mode = !from_file && no_key;
    let secret_key = auth.key("jwt_secret");
    let key = match (algorithm.is_hmac(), secret, source) {
        (_, Some(_), Some((src, _))) => {
            return Err(ConfigError::ConflictingKeys {
                key: secret_key,
                other: auth.key(src.key()),
            });
        }
        (true, None, None) if dev_mode => JwtKey::Secret(Secret::new(DEV_SECRET)),
        (true, Some(secret), None) => {
            if secret == DEV_SECRET {
                return Err(ConfigError::DevSecretRefused { key: secret_key });
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(ConfigError::SecretTooShort {
                    key: secret_key,
                    len: secret.len(),
                });
            }
            JwtKey::Secret(Secret::new(secret))
        }
        (true, None, Some((src, _))) => {
            return Err(ConfigError::KeyNotForAlgorithm {
                key: auth.key(src.key()),
                algorithm,
            });
        }
        (true, None, None) => {
            return Err(ConfigError::MissingKey {
                key: secret_key,
                algorithm,
            });
        }
        (false, Some(_), None) => {
            return Err(ConfigError::KeyNotForAlgorithm {
                key: secret_key,
                algorithm,
            });
        }
        (false, None, None) => {
            return Err(ConfigError::MissingKey {
                key: auth.key("jwt_public_key_file"),
                algorithm,
            });
        }
        (false, None, Some((KeySource::JwksUrl, url))) => {
            if !is_jwks_url(&url) {
                return Err(ConfigError::InvalidJwksUrl {
                    key: auth.key("jwks_url"),
                    value: url,
                });
            }
            JwtKey::JwksUrl {
                url,
                refresh: jwks_refresh,
            }
        }
        (false, None, Some((src, file))) => {
            let name = format!("auth.{}", src.key());
            let base = if ctx.is_from_env(&name) {
                None
            } else {
                ctx.base_dir
            };
            let path = match base {
                Some(dir) => dir.join(&file),
                None => PathBuf::from(&file),
            };
            match src {
                KeySource::JwksFile => {
                    JwtKey::Jwks(read_jwks(auth.key(src.key()), path, warnings)?)
                }
                _ => JwtKey::PublicKeyPem(read_public_key(auth.key(src.key()), path, algorithm)?),
            }
        }
    };
    auth.finish()?;
    let config = AuthConfig {
        algorithm,
        key,
        issuer,
        audience,
        leeway,
        previous_secret,
    };
    Ok((config, dev_mode))
}

/// Reads a JWKS document key by key: a key that does not parse or convert
/// (an unknown `kty`, a broken value) is skipped with a
/// [`ConfigWarning::JwksKeySkipped`] naming its `kid`, as for `jwks_url`;
/// an error only when the document is not a key set or no usable key remains.
pub(super) fn read_jwks(
    key: String,
    path: PathBuf,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<jsonwebtoken::jwk::JwkSet, ConfigError> {
    #[derive(serde::Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::ReadKeyFile {
        key: key.clone(),
        path: path.clone(),
        source,
    })?;
    let raw: RawSet = serde_json::from_str(&text).map_err(|e| ConfigError::InvalidJwks {
        key: key.clone(),
        reason: e.to_string(),
    })?;
    let (usable, skipped) = crate::auth::split_jwks(raw.keys);
    let keys: Vec<jsonwebtoken::jwk::Jwk> = usable.into_iter().map(|(jwk, _)| jwk).collect();
    if keys.is_empty() {
        let why: Vec<String> = skipped
            .iter()
            .map(|(kid, reason)| format!("key {kid}: {reason}"))
            .collect();
        return Err(ConfigError::InvalidJwks {
            key,
            reason: if why.is_empty() {
                "it holds no keys".into()
            } else {
                format!("it holds no usable key ({})", why.join("; "))
            },
        });
    }
    warnings.extend(
        skipped
            .into_iter()
            .map(|(kid, reason)| ConfigWarning::JwksKeySkipped {
                key: key.clone(),
                kid,
                reason,
            }),
    );
    Ok(jsonwebtoken::jwk::JwkSet { keys })
}

/// Reads the PEM at `path` and checks it is a public key usable with `algorithm`.
pub(super) fn read_public_key(
    key: String,
    path: PathBuf,
    algorithm: JwtAlgorithm,
) -> Result<String, ConfigError> {
    let pem = match std::fs::read_to_string(&path) {
        Ok(pem) => pem,
        Err(source) => return Err(ConfigError::ReadKeyFile { key, path, source }),
    };
    if pem.contains("PRIVATE KEY-----") {
        return Err(ConfigError::PrivateKeyGiven { key, path });
    }
    let invalid = |key: String, path: PathBuf, source| ConfigError::InvalidPublicKey {
        key,
        path,
        algorithm,
        source,
    };
    let checked = match algorithm {
        JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(pem.as_bytes()).and_then(|decoding| {
            // Parses the RSA public key itself, not only the PEM framing.
            jsonwebtoken::jwk::Jwk::from_decoding_key(&decoding, Some(algorithm.to_jsonwebtoken()))
                .map(drop)
        }),
        JwtAlgorithm::ES256 => {
            let decoding = match DecodingKey::from_ec_pem(pem.as_bytes()) {
                Ok(decoding) => decoding,
                Err(source) => return Err(invalid(key, path, source)),
            };
            // An uncompressed P-256 point is 65 bytes (P-384: 97).
            if decoding.try_get_as_bytes().map(<[u8]>::len).ok() != Some(65) {
                return Err(ConfigError::WrongCurve { key, path });
            }
            // Building a verifier checks the point is on the curve; the
            // dummy signature itself is expected not to verify.
            jsonwebtoken::crypto::verify("AA", b"probe", &decoding, algorithm.to_jsonwebtoken())
                .map(drop)
        }
        JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512 => Ok(()),
    };
    match checked {
        Ok(()) => Ok(pem),
        Err(source) => Err(invalid(key, path, source)),
    }
}
