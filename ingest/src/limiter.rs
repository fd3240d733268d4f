//! Token-bucket rate limits, one bucket per key (a site id or a client IP).

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Buckets idle this long are forgotten when the map grows.
const IDLE: Duration = Duration::from_secs(60);
/// Map size past which idle buckets are swept.
const SWEEP_AT: usize = 50_000;

/// A keyed token bucket: `rate` tokens per second, at most `burst` banked.
pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, (f64, Instant)>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self { rate: rate.max(0.001), burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `key` at `now`; on refusal, the whole seconds until one is available.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > SWEEP_AT {
            buckets.retain(|_, (_, last)| now.duration_since(*last) < IDLE);
        }
        let (tokens, last) = buckets.entry(key.clone()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let limiter = RateLimiter::new(2.0, 3.0);
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(limiter.check(&"a", t0).is_ok(), "token {i}");
        }
        assert_eq!(limiter.check(&"a", t0), Err(1));
        assert!(limiter.check(&"b", t0).is_ok(), "other keys have their own bucket");
        assert!(limiter.check(&"a", t0 + Duration::from_millis(500)).is_ok(), "refilled one token");
        assert!(limiter.check(&"a", t0 + Duration::from_millis(500)).is_err());
    }
}
