//! Reading the merged TOML table into the typed [`Config`]: one [`Section`]
//! per table, each key taken out once and checked, leftovers refused.

use super::auth_keys::read_auth;
use super::*;

/// Shared state of one load: which keys came from the environment, and where
/// the file lives.
pub(super) struct Ctx<'a> {
    pub(super) env_keys: &'a BTreeMap<String, String>,
    pub(super) base_dir: Option<&'a Path>,
}

impl Ctx<'_> {
    /// The key path for messages, with the variable it came from if any.
    pub(super) fn describe(&self, path: &str) -> String {
        let from_env = self.env_keys.iter().find(|(key, _)| {
            path.strip_prefix(key.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        });
        match from_env {
            Some((_, var)) => format!("{path} (from {var})"),
            None => path.to_owned(),
        }
    }

    pub(super) fn is_from_env(&self, path: &str) -> bool {
        self.env_keys.contains_key(path)
    }
}

/// A table being read: known keys are taken out, leftovers are unknown keys.
pub(super) struct Section<'c> {
    ctx: &'c Ctx<'c>,
    prefix: String,
    table: Table,
}

impl<'c> Section<'c> {
    pub(super) fn new(ctx: &'c Ctx<'c>, prefix: String, table: Table) -> Self {
        Self { ctx, prefix, table }
    }

    pub(super) fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    pub(super) fn key(&self, name: &str) -> String {
        self.ctx.describe(&self.path(name))
    }

    pub(super) fn wrong_type(
        &self,
        name: &str,
        expected: &'static str,
        found: &Value,
    ) -> ConfigError {
        ConfigError::WrongType {
            key: self.key(name),
            expected,
            found: found.type_str(),
        }
    }

    pub(super) fn string(&mut self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.table.remove(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Err(ConfigError::Empty {
                key: self.key(name),
            }),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(name, "a string", &other)),
        }
    }

    pub(super) fn required_string(&mut self, name: &str) -> Result<String, ConfigError> {
        self.string(name)?.ok_or_else(|| ConfigError::Missing {
            key: self.key(name),
        })
    }

    pub(super) fn size(
        &mut self,
        name: &str,
        bounds: Bounds<usize>,
        default: usize,
    ) -> Result<usize, ConfigError> {
        let got = match self.table.remove(name) {
            None => return Ok(default),
            Some(Value::Integer(i)) => i,
            Some(other) => return Err(self.wrong_type(name, "an integer", &other)),
        };
        usize::try_from(got)
            .ok()
            .filter(|v| (bounds.0..=bounds.1).contains(v))
            .ok_or_else(|| ConfigError::OutOfRange {
                key: self.key(name),
                min: bounds.0 as u64,
                max: bounds.1 as u64,
                got,
            })
    }

    pub(super) fn duration(
        &mut self,
        name: &str,
        bounds: Bounds<Duration>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let text = match self.table.remove(name) {
            None => return Ok(default),
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(self.wrong_type(name, "a duration string such as \"5s\"", &other));
            }
        };
        let got =
            humantime::parse_duration(&text).map_err(|source| ConfigError::InvalidDuration {
                key: self.key(name),
                value: text.clone(),
                source,
            })?;
        if !(bounds.0..=bounds.1).contains(&got) {
            return Err(ConfigError::DurationOutOfRange {
                key: self.key(name),
                min: bounds.0,
                max: bounds.1,
                got,
            });
        }
        Ok(got)
    }

    pub(super) fn boolean(&mut self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.table.remove(name) {
            None => Ok(default),
            Some(Value::Boolean(b)) => Ok(b),
            Some(other) => Err(self.wrong_type(name, "true or false", &other)),
        }
    }

    pub(super) fn table(&mut self, name: &str) -> Result<Option<Section<'c>>, ConfigError> {
        match self.table.remove(name) {
            None => Ok(None),
            Some(Value::Table(t)) => Ok(Some(Section::new(self.ctx, self.path(name), t))),
            Some(other) => Err(self.wrong_type(name, "a table", &other)),
        }
    }

    pub(super) fn array(&mut self, name: &str) -> Result<Option<Vec<Value>>, ConfigError> {
        match self.table.remove(name) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(other) => Err(self.wrong_type(name, "an array", &other)),
        }
    }

    /// Fails on the first key that was not taken out.
    pub(super) fn finish(self) -> Result<(), ConfigError> {
        match self.table.keys().next() {
            Some(name) => Err(ConfigError::UnknownKey {
                key: self.key(name),
            }),
            None => Ok(()),
        }
    }
}

pub(super) fn read_config(
    ctx: &Ctx<'_>,
    mut root: Section<'_>,
    from_file: bool,
) -> Result<Config, ConfigError> {
    let listen: Option<SocketAddr> = match root.string("listen")? {
        None => None,
        Some(text) => Some(text.parse().map_err(|source| ConfigError::InvalidAddress {
            key: root.key("listen"),
            value: text.clone(),
            source,
        })?),
    };
    let production = production_settings(&root);
    let redis_url = match root.string("redis_url")? {
        None => None,
        Some(text) => Some(
            RedisUrl::new(text).ok_or_else(|| ConfigError::InvalidRedisUrl {
                key: root.key("redis_url"),
            })?,
        ),
    };
    let node_name = root.string("node_name")?;
    if let Some(name) = &node_name {
        let valid = name.len() <= MAX_NODE_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid {
            return Err(ConfigError::InvalidNodeName {
                key: root.key("node_name"),
                value: name.clone(),
            });
        }
    }
    let drain_timeout = root.duration("drain_timeout", DRAIN_TIMEOUT, secs(10))?;
    let log_format = match root.string("log_format")?.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(ConfigError::InvalidChoice {
                key: root.key("log_format"),
                value: other.to_owned(),
                expected: "\"text\" or \"json\"",
            });
        }
    };
    let auth_section = match root.table("auth")? {
        Some(section) => section,
        None => Section::new(ctx, "auth".to_owned(), Table::new()),
    };
    let mut warnings = Vec::new();
    let (auth, dev_mode) = read_auth(ctx, auth_section, from_file, &production, &mut warnings)?;
    let listen = listen.unwrap_or(if dev_mode { DEV_LISTEN } else { DEFAULT_LISTEN });
    let api_keys = match root.array("api_keys")? {
        Some(items) => read_api_keys(ctx, items)?,
        None => Vec::new(),
    };
    let limits = match root.table("limits")? {
        Some(section) => read_limits(section)?,
        None => Limits::default(),
    };
    let redis = match root.table("redis")? {
        Some(section) => read_redis(section)?,
        None => RedisSettings::default(),
    };
    let memory = match root.table("memory")? {
        Some(section) => read_memory(section)?,
        None => MemorySettings::default(),
    };
    let outbox = root
        .table("outbox")?
        .map(super::outbox::read_outbox)
        .transpose()?;
    let namespaces = match root.table("namespaces")? {
        Some(section) => read_namespaces(section)?,
        None => BTreeMap::new(),
    };
    let allowed_origins = match root.array("allowed_origins")? {
        None => Vec::new(),
        Some(items) => {
            let key = root.key("allowed_origins");
            items
                .into_iter()
                .map(|item| match item {
                    Value::String(origin) if is_origin(&origin) => {
                        Ok(origin.trim_end_matches('/').to_owned())
                    }
                    Value::String(origin) => Err(ConfigError::InvalidOrigin {
                        key: key.clone(),
                        value: origin,
                    }),
                    other => Err(ConfigError::WrongType {
                        key: key.clone(),
                        expected: "an array of strings",
                        found: other.type_str(),
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?
        }
    };
    let webhooks = match root.array("webhooks")? {
        Some(items) => super::webhooks::read_webhooks(ctx, items)?,
        None => Vec::new(),
    };
    let trusted_proxies = read_trusted_proxies(&mut root)?;
    if namespaces.is_empty() {
        return Err(ConfigError::NoNamespaces {
            key: root.key("namespaces"),
        });
    }
    root.finish()?;
    Ok(Config {
        listen,
        redis_url,
        redis,
        memory,
        node_name,
        drain_timeout,
        log_format,
        auth,
        api_keys,
        limits,
        namespaces,
        allowed_origins,
        trusted_proxies,
        dev_mode,
        warnings,
        webhooks,
        outbox,
    })
}

/// `trusted_proxies` (CIDRs or addresses) and `client_ip_header`.
fn read_trusted_proxies(root: &mut Section<'_>) -> Result<TrustedProxies, ConfigError> {
    let key = root.key("trusted_proxies");
    let mut cidrs = Vec::new();
    for item in root.array("trusted_proxies")?.unwrap_or_default() {
        let Value::String(text) = item else {
            return Err(ConfigError::WrongType {
                key,
                expected: "an array of CIDR strings",
                found: item.type_str(),
            });
        };
        let net = text
            .parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| ConfigError::InvalidChoice {
                key: key.clone(),
                value: text.clone(),
                expected: "a CIDR such as \"10.0.0.0/8\" or \"fdaa::/16\", or an address",
            })?;
        cidrs.push(net);
    }
    let header = match root.string("client_ip_header")? {
        None => ClientIpHeader::default(),
        Some(text) if text.eq_ignore_ascii_case("x-forwarded-for") => ClientIpHeader::XForwardedFor,
        Some(text) if text.eq_ignore_ascii_case("fly-client-ip") => ClientIpHeader::FlyClientIp,
        Some(text) => {
            return Err(ConfigError::InvalidChoice {
                key: root.key("client_ip_header"),
                value: text,
                expected: "\"Fly-Client-IP\" or \"X-Forwarded-For\"",
            });
        }
    };
    Ok(TrustedProxies { cidrs, header })
}

/// The settings present that only make sense in production (and so rule
/// out dev mode): `redis_url`, a non-empty `api_keys`, `outbox`, `webhooks`.
/// Each is described with the variable it came from, if any.
fn production_settings(root: &Section<'_>) -> Vec<String> {
    let present = |name: &str| match root.table.get(name) {
        None => false,
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Table(t)) => !t.is_empty(),
        Some(_) => true,
    };
    ["redis_url", "api_keys", "outbox", "webhooks"]
        .into_iter()
        .filter(|name| present(name))
        .map(|name| root.key(name))
        .collect()
}

/// `scheme://host[:port]` with an http(s) scheme and nothing after the authority.
pub(super) fn is_origin(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    let rest = rest.trim_end_matches('/');
    !rest.is_empty() && !rest.contains(['/', '?', '#', ' ', '@'])
}

pub(super) fn read_api_keys(
    ctx: &Ctx<'_>,
    items: Vec<Value>,
) -> Result<Vec<ApiKeyConfig>, ConfigError> {
    let mut keys = Vec::with_capacity(items.len());
    let mut names = HashSet::new();
    let mut hashes = HashSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let prefix = format!("api_keys[{i}]");
        let table = match item {
            Value::Table(t) => t,
            other => {
                return Err(ConfigError::WrongType {
                    key: ctx.describe(&prefix),
                    expected: "a table {name, key_sha256, publish, operator}",
                    found: other.type_str(),
                });
            }
        };
        let mut section = Section::new(ctx, prefix, table);
        let name = section.required_string("name")?;
        let hash_text = section.required_string("key_sha256")?;
        let mut key_sha256 = [0u8; 32];
        hex::decode_to_slice(&hash_text, &mut key_sha256).map_err(|source| {
            ConfigError::InvalidKeyHash {
                key: section.key("key_sha256"),
                source,
            }
        })?;
        let mut publish = Vec::new();
        for (j, value) in section
            .array("publish")?
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let item_name = format!("publish[{j}]");
            let Value::String(pattern) = value else {
                return Err(section.wrong_type(&item_name, "a pattern string", &value));
            };
            let parsed = TopicPattern::parse(&pattern, None).map_err(|source| {
                ConfigError::InvalidPattern {
                    key: section.key(&item_name),
                    pattern: pattern.clone(),
                    source,
                }
            })?;
            publish.push(parsed);
        }
        let operator = section.boolean("operator", false)?;
        if !names.insert(name.clone()) {
            return Err(ConfigError::DuplicateApiKeyName {
                key: section.key("name"),
                name,
            });
        }
        if !hashes.insert(key_sha256) {
            return Err(ConfigError::DuplicateApiKeyHash {
                key: section.key("key_sha256"),
            });
        }
        section.finish()?;
        keys.push(ApiKeyConfig {
            name,
            key_sha256,
            publish,
            operator,
        });
    }
    Ok(keys)
}

pub(super) fn read_limits(mut section: Section<'_>) -> Result<Limits, ConfigError> {
    let d = Limits::default();
    let limits = Limits {
        max_frame_bytes: section.size("max_frame_bytes", MAX_FRAME_BYTES, d.max_frame_bytes)?,
        connect_timeout: section.duration("connect_timeout", CONNECT_TIMEOUT, d.connect_timeout)?,
        ping_interval: section.duration("ping_interval", PING_INTERVAL, d.ping_interval)?,
        max_subscriptions: section.size(
            "max_subscriptions",
            MAX_SUBSCRIPTIONS,
            d.max_subscriptions,
        )?,
        idempotency_window: section.duration(
            "idempotency_window",
            IDEMPOTENCY_WINDOW,
            d.idempotency_window,
        )?,
        outbox_size: section.size("outbox_size", OUTBOX_SIZE, d.outbox_size)?,
        max_connections: section.size("max_connections", MAX_CONNECTIONS, d.max_connections)?,
        max_connections_per_user: section.size(
            "max_connections_per_user",
            PER_USER,
            d.max_connections_per_user,
        )?,
        connection_rate_per_ip: section.size(
            "connection_rate_per_ip",
            RATE,
            d.connection_rate_per_ip,
        )?,
        command_rate: section.size("command_rate", RATE, d.command_rate)?,
        command_burst: section.size("command_burst", BURST, d.command_burst)?,
        api_rate: section.size("api_rate", RATE, d.api_rate)?,
        max_request_bytes: section.size(
            "max_request_bytes",
            MAX_REQUEST_BYTES,
            d.max_request_bytes,
        )?,
        outbox_bytes: section.size("outbox_bytes", OUTBOX_BYTES, d.outbox_bytes)?,
        write_timeout_setting: match section.table.contains_key("write_timeout") {
            true => Some(section.duration("write_timeout", WRITE_TIMEOUT, Duration::ZERO)?),
            false => None,
        },
        header_read_timeout: section.duration(
            "header_read_timeout",
            HEADER_READ_TIMEOUT,
            d.header_read_timeout,
        )?,
    };
    if limits.max_request_bytes < limits.max_frame_bytes {
        return Err(ConfigError::OutOfRange {
            key: section.key("max_request_bytes"),
            min: limits.max_frame_bytes as u64,
            max: MAX_REQUEST_BYTES.1 as u64,
            got: limits.max_request_bytes as i64,
        });
    }
    section.finish()?;
    Ok(limits)
}

pub(super) fn read_redis(mut section: Section<'_>) -> Result<RedisSettings, ConfigError> {
    let d = RedisSettings::default();
    let key_prefix = match section.string("key_prefix")? {
        None => d.key_prefix,
        Some(prefix) => {
            let valid = !prefix.is_empty()
                && prefix.len() <= MAX_KEY_PREFIX_LEN
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
            if !valid {
                return Err(ConfigError::InvalidKeyPrefix {
                    key: section.key("key_prefix"),
                    value: prefix,
                });
            }
            prefix
        }
    };
    let settings = RedisSettings {
        key_prefix,
        presence_ttl: section.duration("presence_ttl", PRESENCE_TTL, d.presence_ttl)?,
        probe_interval: section.duration("probe_interval", PROBE_INTERVAL, d.probe_interval)?,
    };
    section.finish()?;
    Ok(settings)
}

pub(super) fn read_memory(mut section: Section<'_>) -> Result<MemorySettings, ConfigError> {
    let d = MemorySettings::default();
    let settings = MemorySettings {
        max_topics: section.size("max_topics", MAX_TOPICS, d.max_topics)?,
        max_history_bytes: section.size(
            "max_history_bytes",
            MAX_HISTORY_BYTES,
            d.max_history_bytes,
        )?,
    };
    section.finish()?;
    Ok(settings)
}

pub(super) fn read_namespaces(
    mut section: Section<'_>,
) -> Result<BTreeMap<String, NamespaceConfig>, ConfigError> {
    let names: Vec<String> = section.table.keys().cloned().collect();
    let mut namespaces = BTreeMap::new();
    for name in names {
        validate_namespace(&name).map_err(|source| ConfigError::InvalidNamespace {
            key: section.key(&name),
            source,
        })?;
        let Some(mut ns) = section.table(&name)? else {
            continue;
        };
        let d = NamespaceConfig::default();
        let config = NamespaceConfig {
            history_size: ns.size("history_size", HISTORY_SIZE, d.history_size)?,
            history_ttl: ns.duration("history_ttl", HISTORY_TTL, d.history_ttl)?,
            presence: ns.boolean("presence", d.presence)?,
            join_leave: ns.boolean("join_leave", d.join_leave)?,
            client_publish: ns.boolean("client_publish", d.client_publish)?,
            public: ns.boolean("public", d.public)?,
        };
        ns.finish()?;
        namespaces.insert(name, config);
    }
    section.finish()?;
    Ok(namespaces)
}
