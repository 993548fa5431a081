//! [`Config::to_toml`]: the effective configuration as TOML for
//! `hubbub check-config`, with every secret redacted.

use super::*;

/// What a redacted secret prints as.
const REDACTED: &str = "[redacted]";

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

fn int(n: usize) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn duration(d: Duration) -> Value {
    string(format_duration(d).to_string())
}

fn strings<T: ToString>(items: &[T]) -> Value {
    Value::Array(items.iter().map(|s| string(s.to_string())).collect())
}

impl Config {
    /// The effective configuration as TOML (keys as in the file; secrets as
    /// `[redacted]`, API key hashes shortened, key material summarised).
    pub fn to_toml(&self) -> String {
        let mut root = Table::new();
        root.insert("listen".into(), string(self.listen.to_string()));
        if let Some(url) = &self.redis_url {
            root.insert("redis_url".into(), string(url.redacted()));
        }
        if let Some(name) = &self.node_name {
            root.insert("node_name".into(), string(name.clone()));
        }
        root.insert("drain_timeout".into(), duration(self.drain_timeout));
        let format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        root.insert("log_format".into(), string(format));
        root.insert("allowed_origins".into(), strings(&self.allowed_origins));
        root.insert(
            "trusted_proxies".into(),
            strings(&self.trusted_proxies.cidrs),
        );
        root.insert(
            "client_ip_header".into(),
            string(self.trusted_proxies.header.as_str()),
        );
        root.insert("auth".into(), Value::Table(self.auth_table()));
        let keys = self
            .api_keys
            .iter()
            .map(|k| {
                let mut t = Table::new();
                t.insert("name".into(), string(k.name.clone()));
                let prefix = hex::encode(&k.key_sha256[..4]);
                t.insert("key_sha256".into(), string(format!("{prefix}…")));
                t.insert("publish".into(), strings(&k.publish));
                t.insert("operator".into(), Value::Boolean(k.operator));
                Value::Table(t)
            })
            .collect();
        root.insert("api_keys".into(), Value::Array(keys));
        root.insert("webhooks".into(), super::webhooks::to_toml(&self.webhooks));
        root.insert("limits".into(), Value::Table(self.limits_table()));
        let mut redis = Table::new();
        redis.insert("key_prefix".into(), string(self.redis.key_prefix.clone()));
        redis.insert("presence_ttl".into(), duration(self.redis.presence_ttl));
        redis.insert("probe_interval".into(), duration(self.redis.probe_interval));
        root.insert("redis".into(), Value::Table(redis));
        let mut memory = Table::new();
        memory.insert("max_topics".into(), int(self.memory.max_topics));
        memory.insert(
            "max_history_bytes".into(),
            int(self.memory.max_history_bytes),
        );
        root.insert("memory".into(), Value::Table(memory));
        if let Some(outbox) = &self.outbox {
            root.insert("outbox".into(), Value::Table(outbox.to_table()));
        }
        let mut namespaces = Table::new();
        for (name, ns) in &self.namespaces {
            let mut t = Table::new();
            t.insert("history_size".into(), int(ns.history_size));
            t.insert("history_ttl".into(), duration(ns.history_ttl));
            t.insert("presence".into(), Value::Boolean(ns.presence));
            t.insert("join_leave".into(), Value::Boolean(ns.join_leave));
            t.insert("client_publish".into(), Value::Boolean(ns.client_publish));
            t.insert("public".into(), Value::Boolean(ns.public));
            namespaces.insert(name.clone(), Value::Table(t));
        }
        root.insert("namespaces".into(), Value::Table(namespaces));
        toml::to_string(&root).unwrap_or_else(|e| format!("# cannot print as TOML: {e}\n"))
    }

    fn auth_table(&self) -> Table {
        let auth = &self.auth;
        let mut t = Table::new();
        t.insert("jwt_algorithm".into(), string(auth.algorithm.as_str()));
        match &auth.key {
            JwtKey::Secret(_) if self.dev_mode => {
                t.insert(
                    "jwt_secret".into(),
                    string(format!("{DEV_SECRET} (dev mode)")),
                );
            }
            JwtKey::Secret(_) => {
                t.insert("jwt_secret".into(), string(REDACTED));
            }
            JwtKey::PublicKeyPem(pem) => {
                let summary = format!("public key PEM, {} bytes", pem.len());
                t.insert("jwt_public_key_file".into(), string(summary));
            }
            JwtKey::Jwks(set) => {
                let summary = format!("JWKS document, {} keys", set.keys.len());
                t.insert("jwks_file".into(), string(summary));
            }
            JwtKey::JwksUrl { url, refresh } => {
                t.insert("jwks_url".into(), string(url.clone()));
                t.insert("jwks_refresh".into(), duration(*refresh));
            }
        }
        if let Some(issuer) = &auth.issuer {
            t.insert("issuer".into(), string(issuer.clone()));
        }
        if let Some(audience) = &auth.audience {
            t.insert("audience".into(), string(audience.clone()));
        }
        t.insert("leeway".into(), duration(auth.leeway));
        if let Some((_, until)) = &auth.previous_secret {
            t.insert("previous_jwt_secret".into(), string(REDACTED));
            let until = humantime::format_rfc3339_seconds(*until).to_string();
            t.insert("previous_secret_until".into(), string(until));
        }
        t
    }

    fn limits_table(&self) -> Table {
        let l = &self.limits;
        let mut t = Table::new();
        t.insert("max_frame_bytes".into(), int(l.max_frame_bytes));
        t.insert("connect_timeout".into(), duration(l.connect_timeout));
        t.insert("ping_interval".into(), duration(l.ping_interval));
        t.insert("max_subscriptions".into(), int(l.max_subscriptions));
        t.insert("idempotency_window".into(), duration(l.idempotency_window));
        t.insert("outbox_size".into(), int(l.outbox_size));
        t.insert("max_connections".into(), int(l.max_connections));
        t.insert(
            "max_connections_per_user".into(),
            int(l.max_connections_per_user),
        );
        t.insert(
            "connection_rate_per_ip".into(),
            int(l.connection_rate_per_ip),
        );
        t.insert("command_rate".into(), int(l.command_rate));
        t.insert("command_burst".into(), int(l.command_burst));
        t.insert("api_rate".into(), int(l.api_rate));
        t.insert("max_request_bytes".into(), int(l.max_request_bytes));
        t.insert("outbox_bytes".into(), int(l.outbox_bytes));
        // Printed as effective (the default follows ping_interval).
        t.insert("write_timeout".into(), duration(l.write_timeout()));
        t.insert(
            "header_read_timeout".into(),
            duration(l.header_read_timeout),
        );
        t
    }
}
