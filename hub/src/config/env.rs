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

/// Every key outside `namespaces` that has an environment form, as a dotted
/// path, with how its text is typed.
pub(super) const ENV_KEYS: &[(&str, EnvKind)] = &[
    ("listen", EnvKind::Str),
    ("redis_url", EnvKind::Str),
    ("node_name", EnvKind::Str),
    ("drain_timeout", EnvKind::Str),
    ("log_format", EnvKind::Str),
    ("api_keys", EnvKind::Toml),
    ("webhooks", EnvKind::Toml),
    ("allowed_origins", EnvKind::Toml),
    ("trusted_proxies", EnvKind::Toml),
    ("client_ip_header", EnvKind::Str),
    ("redis.key_prefix", EnvKind::Str),
    ("redis.presence_ttl", EnvKind::Str),
    ("redis.probe_interval", EnvKind::Str),
    ("memory.max_topics", EnvKind::Int),
    ("memory.max_history_bytes", EnvKind::Int),
    ("auth.jwt_algorithm", EnvKind::Str),
    ("auth.jwt_secret", EnvKind::Str),
    ("auth.jwt_public_key_file", EnvKind::Str),
    ("auth.jwks_file", EnvKind::Str),
    ("auth.jwks_url", EnvKind::Str),
    ("auth.jwks_refresh", EnvKind::Str),
    ("auth.issuer", EnvKind::Str),
    ("auth.audience", EnvKind::Str),
    ("auth.leeway", EnvKind::Str),
    ("auth.previous_jwt_secret", EnvKind::Str),
    ("auth.previous_secret_until", EnvKind::Str),
    ("limits.max_frame_bytes", EnvKind::Int),
    ("limits.max_subscriptions", EnvKind::Int),
    ("limits.outbox_size", EnvKind::Int),
    ("limits.max_connections", EnvKind::Int),
    ("limits.max_connections_per_user", EnvKind::Int),
    ("limits.connection_rate_per_ip", EnvKind::Int),
    ("limits.command_rate", EnvKind::Int),
    ("limits.command_burst", EnvKind::Int),
    ("limits.api_rate", EnvKind::Int),
    ("limits.max_request_bytes", EnvKind::Int),
    ("limits.connect_timeout", EnvKind::Str),
    ("limits.ping_interval", EnvKind::Str),
    ("limits.idempotency_window", EnvKind::Str),
    ("limits.outbox_bytes", EnvKind::Int),
    ("limits.write_timeout", EnvKind::Str),
    ("limits.header_read_timeout", EnvKind::Str),
    ("outbox.postgres_url", EnvKind::Str),
    ("outbox.table", EnvKind::Str),
    ("outbox.poll_interval", EnvKind::Str),
    ("outbox.batch_size", EnvKind::Int),
];

/// The keys of one namespace (`HUBBUB_NAMESPACES__<NS>__<FIELD>`).
pub(super) const NAMESPACE_KEYS: &[(&str, EnvKind)] = &[
    ("history_size", EnvKind::Int),
    ("history_ttl", EnvKind::Str),
    ("presence", EnvKind::Bool),
    ("join_leave", EnvKind::Bool),
    ("client_publish", EnvKind::Bool),
    ("public", EnvKind::Bool),
];

/// The type of the key at `path` (lower-cased segments), or `None` if there is no such key.
pub(super) fn env_kind(path: &[String]) -> Option<EnvKind> {
    if let [ns, ns_name, field] = path
        && ns == "namespaces"
        && !ns_name.is_empty()
    {
        return NAMESPACE_KEYS
            .iter()
            .find(|(name, _)| name == field)
            .map(|&(_, kind)| kind);
    }
    let dotted = path.join(".");
    if path.iter().any(String::is_empty) {
        return None;
    }
    ENV_KEYS
        .iter()
        .find(|(name, _)| *name == dotted)
        .map(|&(_, kind)| kind)
}

/// Writes every `HUBBUB_*` variable into `root`; returns dotted key →
/// variable. Unknown variables are not errors (a Kubernetes Service named
/// `hubbub` injects `HUBBUB_PORT`, …): service links are skipped, anything
/// else becomes a [`ConfigWarning`] naming the nearest key.
pub(super) fn apply_env(
    root: &mut Table,
    env: &[(String, String)],
    warnings: &mut Vec<ConfigWarning>,
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
        let Some(kind) = env_kind(&path) else {
            if !is_service_link(var, text) {
                warnings.push(ConfigWarning::UnknownEnvVar {
                    var: var.clone(),
                    suggestion: suggest(&path, text),
                });
            }
            continue;
        };
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

/// Whether `var` is one of the variables Kubernetes injects for a Service
/// whose name starts with `hubbub` (`{SVC}_SERVICE_HOST`,
/// `{SVC}_SERVICE_PORT[_NAME]`, `{SVC}_PORT=tcp://…`,
/// `{SVC}_PORT_{N}_{PROTO}[_PROTO|_PORT|_ADDR]`).
pub(super) fn is_service_link(var: &str, value: &str) -> bool {
    if var.ends_with("_SERVICE_HOST") || var.ends_with("_SERVICE_PORT") {
        return true;
    }
    if var.contains("_SERVICE_PORT_") {
        return true;
    }
    if var.ends_with("_PORT")
        && ["tcp://", "udp://", "sctp://"]
            .iter()
            .any(|scheme| value.starts_with(scheme))
    {
        return true;
    }
    // `…_PORT_8080_TCP` and its `_PROTO`, `_PORT`, `_ADDR` companions.
    let Some((_, tail)) = var
        .split_once("_PORT_")
        .filter(|(head, _)| !head.is_empty())
    else {
        return false;
    };
    let mut parts = tail.split('_');
    let port_ok = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let proto_ok = parts
        .next()
        .is_some_and(|p| matches!(p, "TCP" | "UDP" | "SCTP"));
    let rest_ok = matches!(
        (parts.next(), parts.next()),
        (None | Some("PROTO" | "PORT" | "ADDR"), None)
    );
    port_ok && proto_ok && rest_ok
}

/// The variable of a dotted key path.
fn var_name(path: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        path.replace('.', "__").to_ascii_uppercase()
    )
}

/// Whether a key's value may be repeated in a warning (not a secret, not a
/// URL that may carry credentials, not a key list).
fn value_is_printable(path: &str) -> bool {
    !(path.contains("secret") || path.contains("url") || path == "api_keys")
}

/// The nearest known variable to an unknown one, with its value when it is
/// safe to print: `HUBBUB_LISTEN=0.0.0.0:9000`, or `HUBBUB_AUTH__JWT_SECRET`.
pub(super) fn suggest(path: &[String], value: &str) -> Option<String> {
    // `HUBBUB_PORT=9000`: the newcomer wants another port.
    if let [only] = path
        && (only == "port" || only == "http_port")
        && value.parse::<u16>().is_ok()
    {
        return Some(format!("{}=0.0.0.0:{value}", var_name("listen")));
    }
    let wanted = path.join(".");
    if wanted.len() > 128 {
        return None;
    }
    let mut candidates: Vec<String> = ENV_KEYS.iter().map(|(k, _)| (*k).to_owned()).collect();
    if let [first, ns, ..] = path
        && first == "namespaces"
        && !ns.is_empty()
    {
        candidates.extend(
            NAMESPACE_KEYS
                .iter()
                .map(|(f, _)| format!("namespaces.{ns}.{f}")),
        );
    }
    let (best, distance) = candidates
        .into_iter()
        .map(|c| {
            let d = edit_distance(&wanted, &c);
            (c, d)
        })
        .min_by_key(|(_, d)| *d)?;
    // A near miss only: at most a third of the name, and at most 4 edits.
    if distance > 4 || distance * 3 > best.len() {
        return None;
    }
    let var = var_name(&best);
    Some(if value_is_printable(&best) && !value.is_empty() {
        format!("{var}={value}")
    } else {
        var
    })
}

/// Levenshtein distance on bytes (names are ASCII; non-ASCII only adds edits).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}
