//! `hubbub publish TOPIC EVENT JSON`: publishes one publication through a
//! running hub's REST API, for trying things without curl. It authenticates
//! with `--key` (an API key), or else with a one-minute token that may
//! publish to exactly TOPIC, minted with the configured HS secret (so in dev
//! mode it works with no setup at all).

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::EXIT_CONFIG;
use crate::auth::{Claims, mint};
use crate::config::Config;

/// What `hubbub publish` was asked to do.
#[derive(Debug)]
pub(super) struct PublishArgs {
    pub(super) topic: String,
    pub(super) event: String,
    pub(super) data: String,
    pub(super) url: Option<String>,
    pub(super) key: Option<String>,
    pub(super) idempotency_key: Option<String>,
}

/// The hub's base URL: `--url`, else the configured `listen` address
/// (an unspecified address is reached on loopback).
fn base_url(config: &Config, url: Option<String>) -> Result<String, String> {
    if let Some(url) = url {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let mut addr = config.listen;
    if addr.port() == 0 {
        return Err(
            "listen has port 0, so the hub's port is not known here: pass --url http://HOST:PORT"
                .into(),
        );
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Ok(format!("http://{addr}"))
}

/// Runs the command; returns the process exit code (64 for a usage or
/// configuration problem, 1 when the hub refused or could not be reached).
pub(super) fn run(config: &Config, args: PublishArgs) -> ExitCode {
    let data: Value = match serde_json::from_str(&args.data) {
        Ok(v) => v,
        Err(e) => {
            eprintln!(
                "hubbub publish: JSON is not valid JSON ({e}); quote it for the shell, e.g. '{{\"guest\":\"Ada\"}}'"
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let base = match base_url(config, args.url) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("hubbub publish: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let bearer = match args.key {
        Some(key) => key,
        None => match publish_token(config, &args.topic) {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "hubbub publish: no --key given, and no token can be minted ({e}); pass --key with an API key that may publish to {}",
                    args.topic
                );
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    let mut body = serde_json::json!({"topic": args.topic, "event": args.event, "data": data});
    if let Some(k) = args.idempotency_key {
        body["idempotency_key"] = Value::String(k);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hubbub publish: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let url = format!("{base}/api/v1/publish");
    match runtime.block_on(send(&url, &bearer, &body)) {
        Ok(answer) => {
            println!(
                "published to {} at offset {} (epoch {})",
                body["topic"].as_str().unwrap_or_default(),
                answer["position"]["offset"],
                answer["position"]["epoch"].as_str().unwrap_or("?"),
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("hubbub publish: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A one-minute token that may publish to exactly `topic`.
fn publish_token(config: &Config, topic: &str) -> Result<String, crate::auth::AuthError> {
    let now = crate::broker::now_ms() / 1000;
    let claims = Claims {
        sub: "hubbub-cli".into(),
        exp: now + 60,
        iat: Some(now),
        subscribe: Vec::new(),
        publish: vec![topic.to_owned()],
        info: None,
    };
    mint(&config.auth, &claims)
}

async fn send(url: &str, bearer: &str, body: &Value) -> Result<Value, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let resp = client
        .post(url)
        .bearer_auth(bearer)
        .json(body)
        .send()
        .await
        .map_err(|e| {
            format!("cannot reach the hub at {url} ({e}); is it running? (--url, or `listen` in the configuration)")
        })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(answer);
    }
    let error = &answer["error"];
    match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => Err(format!("{status}: {code}: {message}")),
        _ => Err(format!("{status}: {}", text.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_comes_from_listen_on_loopback() {
        let mut config = Config::from_toml_str(
            "listen = \"0.0.0.0:9090\"\n[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(base_url(&config, None).unwrap(), "http://127.0.0.1:9090");
        assert_eq!(
            base_url(&config, Some("http://h:1/".into())).unwrap(),
            "http://h:1"
        );
        config.listen = "127.0.0.1:0".parse().unwrap();
        assert!(base_url(&config, None).unwrap_err().contains("--url"));
    }
}
