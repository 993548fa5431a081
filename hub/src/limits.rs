//! Rate limiting: a token bucket, a keyed limiter (governor) per client IP
//! or API caller, and the client IP behind trusted proxies. Limits themselves are configured in `[limits]`; exceeding one
//! is answered with the contract's codes (4102 / `rate_limited` / 429) by
//! the caller.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub use crate::config::{ClientIpHeader, TrustedProxies};

/// A token bucket: `rate` tokens per second, at most `burst` stored.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: usize, burst: usize, now: Instant) -> TokenBucket {
        let burst = burst.max(1) as f64;
        TokenBucket {
            rate: rate as f64,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Per-key rate limits (an IP address, an API caller): governor's keyed
/// GCRA limiter, whose state sits in a sharded `DashMap` (no global lock on
/// the request path). Keys whose bucket has refilled are pruned by a task
/// every [`PRUNE_EVERY`] (not by an O(n) scan on the request path), so a
/// flood of distinct keys costs memory only until the next prune. A rate of
/// 0 disables the limiter.
#[derive(Debug)]
pub struct KeyedLimiter<K: Hash + Eq + Clone + Send + Sync + 'static> {
    limiter: Option<Arc<DefaultKeyedRateLimiter<K>>>,
}

/// How often idle keys are dropped from a [`KeyedLimiter`].
pub const PRUNE_EVERY: Duration = Duration::from_secs(30);

impl<K: Hash + Eq + Clone + Send + Sync + 'static> KeyedLimiter<K> {
    /// `rate` per second per key with `burst`; `rate == 0` never limits.
    /// Inside a Tokio runtime, starts the pruning task (it ends with the limiter).
    pub fn new(rate: usize, burst: usize) -> KeyedLimiter<K> {
        let clamp = |n: usize| NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX).max(1));
        let limiter = (rate > 0).then(|| {
            let quota = Quota::per_second(clamp(rate).unwrap_or(NonZeroU32::MIN))
                .allow_burst(clamp(burst).unwrap_or(NonZeroU32::MIN));
            Arc::new(RateLimiter::dashmap(quota))
        });
        if let (Some(limiter), Ok(runtime)) = (&limiter, tokio::runtime::Handle::try_current()) {
            let weak = Arc::downgrade(limiter);
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(PRUNE_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(limiter) = weak.upgrade() else { break };
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
            });
        }
        KeyedLimiter { limiter }
    }

    /// Whether `key` may go ahead now.
    pub fn allow(&self, key: &K) -> bool {
        self.limiter
            .as_ref()
            .is_none_or(|l| l.check_key(key).is_ok())
    }

    /// Keys currently tracked (0 when disabled).
    pub fn len(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the keys whose bucket has refilled (what the pruning task does).
    pub fn prune(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// The address a connection is counted under for `connection_rate_per_ip`:
/// the TCP peer, unless the peer is one of `trusted_proxies`; then the
/// client address its header names. `Fly-Client-IP` holds one address;
/// `X-Forwarded-For` is read right to left, skipping trusted proxies, so a
/// client cannot choose its address by sending the header itself. A missing
/// or malformed header counts the peer.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, proxies: &TrustedProxies) -> IpAddr {
    if !proxies.trusts(peer) {
        return peer;
    }
    let parse = |s: &str| s.trim().parse::<IpAddr>().ok();
    match proxies.header {
        ClientIpHeader::FlyClientIp => headers
            .get("fly-client-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(parse)
            .unwrap_or(peer),
        ClientIpHeader::XForwardedFor => {
            let mut chain = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(parse)
                .collect::<Vec<_>>();
            // Right to left: the first address that is not a trusted proxy.
            let mut found = peer;
            while let Some(hop) = chain.pop() {
                let Some(ip) = hop else { return found };
                found = ip;
                if !proxies.trusts(ip) {
                    break;
                }
            }
            found
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 3, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(50)));
        assert!(b.take(t0 + Duration::from_millis(160)));
        assert!(!b.take(t0 + Duration::from_millis(160)));
        // Refill never exceeds the burst.
        let later = t0 + Duration::from_secs(60);
        assert!(b.take(later) && b.take(later) && b.take(later));
        assert!(!b.take(later));
    }

    #[test]
    fn keyed_limits_are_per_key_and_zero_disables() {
        let l = KeyedLimiter::new(1, 2);
        assert!(l.allow(&"a") && l.allow(&"a"));
        assert!(!l.allow(&"a"));
        assert!(l.allow(&"b"));
        assert_eq!(l.len(), 2);
        let off = KeyedLimiter::new(0, 1);
        assert!((0..100).all(|_| off.allow(&"a")));
        assert!(off.is_empty());
    }

    #[test]
    fn refilled_keys_are_pruned() {
        let l = KeyedLimiter::new(1_000_000, 1);
        for i in 0..1000u32 {
            assert!(l.allow(&i));
        }
        assert_eq!(l.len(), 1000);
        std::thread::sleep(Duration::from_millis(5));
        l.prune();
        assert_eq!(l.len(), 0, "every bucket refilled long ago");
    }

    fn proxies(header: ClientIpHeader) -> TrustedProxies {
        TrustedProxies {
            cidrs: vec!["10.0.0.0/8".parse().unwrap(), "fdaa::/16".parse().unwrap()],
            header,
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_header_counts_only_behind_a_trusted_proxy() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let fly = proxies(ClientIpHeader::FlyClientIp);
        let h = headers(&[("fly-client-ip", "203.0.113.7")]);
        assert_eq!(client_ip(ip("10.1.2.3"), &h, &fly), ip("203.0.113.7"));
        assert_eq!(client_ip(ip("fdaa::1"), &h, &fly), ip("203.0.113.7"));
        assert_eq!(
            client_ip(ip("198.51.100.1"), &h, &fly),
            ip("198.51.100.1"),
            "untrusted peer"
        );
        let bad = headers(&[("fly-client-ip", "nope")]);
        assert_eq!(client_ip(ip("10.1.2.3"), &bad, &fly), ip("10.1.2.3"));
        let xff = proxies(ClientIpHeader::XForwardedFor);
        // The client spoofs a first entry; the proxies append the real one.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.0.0.5")]);
        assert_eq!(client_ip(ip("10.1.2.3"), &h, &xff), ip("203.0.113.7"));
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(client_ip(ip("10.1.2.3"), &h, &xff), ip("203.0.113.9"));
        let none = TrustedProxies::default();
        assert_eq!(client_ip(ip("10.1.2.3"), &h, &none), ip("10.1.2.3"));
    }
}
