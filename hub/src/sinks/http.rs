//! One delivery attempt over HTTP (`POST url`, signed, with the sink's
//! timeout, redirects not followed) and the retry delay after a failure:
//! exponential backoff with full jitter, or the receiver's `Retry-After`
//! on 429/503, both capped at `backoff_max`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};

use super::Delivery;
use super::sign::signature_header;
use crate::config::WebhookConfig;

/// Why an attempt did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status, when the receiver answered.
    pub status: Option<u16>,
    /// A description (status line, timeout, connection error).
    pub error: String,
    /// The receiver's `Retry-After` (429/503 only).
    pub retry_after: Option<Duration>,
}

/// The shared HTTP client: pooled connections, no redirects (a 3xx is a
/// failure, as the contract says: only 2xx is success).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
}

/// Unix seconds now.
fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// POSTs `delivery` once; `Ok(status)` on 2xx. Returns the request's duration too.
pub async fn attempt(
    http: &reqwest::Client,
    sink: &WebhookConfig,
    delivery: &Delivery,
) -> (Result<u16, Failure>, Duration) {
    let timestamp = unix_secs();
    let signature = signature_header(
        &sink.secrets,
        &delivery.webhook_id,
        timestamp,
        &delivery.body,
    );
    let started = Instant::now();
    let sent = http
        .post(sink.url.clone())
        .timeout(sink.timeout)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(USER_AGENT, HeaderValue::from_static("hubbub-webhooks/1"))
        .header("webhook-id", delivery.webhook_id.as_str())
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.body.clone())
        .send()
        .await;
    let result = match sent {
        Ok(resp) if resp.status().is_success() => Ok(resp.status().as_u16()),
        Ok(resp) => {
            let status = resp.status();
            let retry_after = if status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE
            {
                resp.headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after)
            } else {
                None
            };
            Err(Failure {
                status: Some(status.as_u16()),
                error: format!("HTTP {status}"),
                retry_after,
            })
        }
        Err(e) => Err(Failure {
            status: None,
            error: describe(&e),
            retry_after: None,
        }),
    };
    (result, started.elapsed())
}

/// A short description of a transport failure (reqwest's own text names the URL).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_request() || e.is_body() {
        "request error"
    } else {
        "error"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut detail = None;
    while let Some(s) = source {
        detail = Some(s.to_string());
        source = s.source();
    }
    match detail {
        Some(d) => format!("{kind}: {d}"),
        None => kind.to_owned(),
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate_parse(v)?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send.
fn httpdate_parse(v: &str) -> Option<SystemTime> {
    let rfc3339 = {
        let parts: Vec<&str> = v.split_whitespace().collect();
        let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
            return None;
        };
        let months = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let m = months.iter().position(|x| x == month)? + 1;
        format!("{year}-{m:02}-{day:0>2}T{time}Z")
    };
    humantime::parse_rfc3339(&rfc3339).ok()
}

/// The delay before attempt `attempts + 1`, after `attempts` failed ones:
/// `Retry-After` when given (capped at `backoff_max`), else a uniformly
/// random delay in `[backoff_min, min(backoff_max, backoff_min · 2^(attempts-1))]`.
pub fn retry_delay(sink: &WebhookConfig, attempts: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(after) = retry_after {
        return after.clamp(sink.backoff_min.min(sink.backoff_max), sink.backoff_max);
    }
    let exp = attempts.saturating_sub(1).min(40);
    let ceiling = sink
        .backoff_min
        .saturating_mul(1u32 << exp.min(31))
        .min(sink.backoff_max);
    let lo = sink.backoff_min.as_secs_f64();
    let hi = ceiling.as_secs_f64().max(lo);
    Duration::from_secs_f64(lo + rand::random::<f64>() * (hi - lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(min: u64, max: u64) -> WebhookConfig {
        let text = format!(
            "[auth]\njwt_secret = \"0123456789abcdef0123\"\n[[webhooks]]\nname = \"s\"\nurl = \"http://127.0.0.1:1/\"\ntopics = [\"*\"]\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\nbackoff_min = \"{min}ms\"\nbackoff_max = \"{max}ms\"\n"
        );
        crate::config::Config::from_toml_str(&text, &[])
            .unwrap()
            .webhooks
            .remove(0)
    }

    #[test]
    fn backoff_grows_with_full_jitter_within_its_bounds() {
        let s = sink(100, 1000);
        for attempts in 1..20 {
            let ceiling = (100u64 << (attempts - 1).min(10)).min(1000);
            for _ in 0..50 {
                let d = retry_delay(&s, attempts, None).as_millis() as u64;
                assert!((100..=ceiling).contains(&d), "attempt {attempts}: {d} ms");
            }
        }
        let spread: std::collections::HashSet<u128> = (0..50)
            .map(|_| retry_delay(&s, 5, None).as_millis())
            .collect();
        assert!(spread.len() > 10, "jittered: {spread:?}");
    }

    #[test]
    fn retry_after_is_honoured_up_to_backoff_max() {
        let s = sink(100, 5000);
        assert_eq!(
            retry_delay(&s, 1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            retry_delay(&s, 1, Some(Duration::from_secs(60))),
            Duration::from_secs(5)
        );
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
