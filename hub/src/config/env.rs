//! The `HUBBUB_*` environment: which variable names which key, how its text
//! is typed, and how it is written over the file's table.

use super::*;

/// How an environment variable's text becomes a TOML value.
#[derive(Clone, Copy)]
pub(super) enum EnvKind {
    Str,
    Int,
    Bool,
    Toml,
}

/// The type of the key at `path` (lower-cased segments), or `None` if there is no such key.
pub(super) fn env_kind(path: &[String]) -> Option<EnvKind> {
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    Some(match segments.as_slice() {
        ["listen" | "redis_url" | "node_name" | "drain_timeout" | "log_format"] => EnvKind::Str,
        ["api_keys"] => EnvKind::Toml,
        ["redis", "key_prefix" | "presence_ttl" | "probe_interval"] => EnvKind::Str,
        [
            "auth",
            "jwt_algorithm"
            | "jwt_secret"
            | "jwt_public_key_file"
            | "jwks_file"
            | "jwks_url"
            | "jwks_refresh"
            | "issuer"
            | "audience"
            | "leeway"
            | "previous_jwt_secret"
            | "previous_secret_until",
        ] => EnvKind::Str,
        [
            "limits",
            "max_frame_bytes"
            | "max_subscriptions"
            | "outbox_size"
            | "max_connections"
            | "max_connections_per_user"
            | "connection_rate_per_ip"
            | "command_rate"
            | "command_burst"
            | "api_rate"
            | "max_request_bytes",
        ] => EnvKind::Int,
        ["allowed_origins"] => EnvKind::Toml,
        [
            "limits",
            "connect_timeout" | "ping_interval" | "idempotency_window",
        ] => EnvKind::Str,
        ["namespaces", ns, field] if !ns.is_empty() => match *field {
            "history_size" => EnvKind::Int,
            "history_ttl" => EnvKind::Str,
            "presence" | "join_leave" | "client_publish" | "public" => EnvKind::Bool,
            _ => return None,
        },
        _ => return None,
    })
}

/// Writes every `HUBBUB_*` variable into `root`; returns dotted key → variable.
pub(super) fn apply_env(
    root: &mut Table,
    env: &[(String, String)],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut env_keys = BTreeMap::new();
    for (var, text) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if ENV_HANDLED_BY_BINARY.contains(&var.as_str()) {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let kind =
            env_kind(&path).ok_or_else(|| ConfigError::UnknownEnvVar { var: var.clone() })?;
        let invalid = |expected| ConfigError::InvalidEnvValue {
            var: var.clone(),
            expected,
            value: text.clone(),
        };
        let value = match kind {
            EnvKind::Str => Value::String(text.clone()),
            EnvKind::Int => Value::Integer(text.parse().map_err(|_| invalid("an integer"))?),
            EnvKind::Bool => match text.as_str() {
                "true" => Value::Boolean(true),
                "false" => Value::Boolean(false),
                _ => return Err(invalid("true or false")),
            },
            EnvKind::Toml => text
                .parse::<Value>()
                .map_err(|source| ConfigError::EnvToml {
                    var: var.clone(),
                    source: Box::new(source),
                })?,
        };
        let dotted = path.join(".");
        insert_at(root, &path, value, &dotted, var)?;
        env_keys.insert(dotted, var.clone());
    }
    Ok(env_keys)
}

pub(super) fn insert_at(
    root: &mut Table,
    path: &[String],
    value: Value,
    dotted: &str,
    var: &str,
) -> Result<(), ConfigError> {
    let Some((last, parents)) = path.split_last() else {
        return Err(ConfigError::UnknownEnvVar {
            var: var.to_owned(),
        });
    };
    let mut table = root;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = table
            .entry(segment.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(t) => t,
            other => {
                let key = parents[..=depth].join(".");
                return Err(ConfigError::WrongType {
                    key: format!("{key} (while applying {var} to {dotted})"),
                    expected: "a table",
                    found: other.type_str(),
                });
            }
        };
    }
    table.insert(last.clone(), value);
    Ok(())
}
