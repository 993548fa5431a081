//! Rate limiting: a token bucket, and a table of buckets keyed by client IP
//! or API key. Limits themselves are configured in `[limits]`; exceeding one
//! is answered with the contract's codes (4102 / `rate_limited` / 429) by
//! the caller.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

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

    /// Whether the bucket has refilled completely (so it can be forgotten).
    fn full(&self, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * self.rate
            >= self.burst
    }
}

/// Buckets per key (an IP address, an API key name). A rate of 0 disables it.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    rate: usize,
    burst: usize,
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

/// Buckets kept before full ones are forgotten.
const SWEEP_AT: usize = 10_000;

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// `rate` per second per key with `burst`; `rate == 0` never limits.
    pub fn new(rate: usize, burst: usize) -> KeyedLimiter<K> {
        KeyedLimiter {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` may go ahead now.
    pub fn allow(&self, key: &K) -> bool {
        if self.rate == 0 {
            return true;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, b| !b.full(now));
        }
        buckets
            .entry(key.clone())
            .or_insert_with(|| TokenBucket::new(self.rate, self.burst, now))
            .take(now)
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
        let off = KeyedLimiter::new(0, 1);
        assert!((0..100).all(|_| off.allow(&"a")));
    }
}
