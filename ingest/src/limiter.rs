//! Token-bucket rate limits, one bucket per key (a site id or a client IP).
//!
//! A bucket that has refilled completely is the same as no bucket, so idle buckets are dropped
//! by a sweep that runs at most once a second; the map therefore holds only clients seen in the
//! last few seconds, and a flood of distinct addresses costs memory only up to a hard cap.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Time between sweeps.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Most buckets kept; past this (a flood of distinct clients) the map is reset, failing open.
const MAX_BUCKETS: usize = 1_000_000;

struct Buckets<K> {
    map: HashMap<K, (f64, Instant)>,
    last_sweep: Instant,
}

/// A keyed token bucket: `rate` tokens per second, at most `burst` banked.
pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    buckets: Mutex<Buckets<K>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            buckets: Mutex::new(Buckets { map: HashMap::new(), last_sweep: Instant::now() }),
        }
    }

    /// Takes one token for `key` at `now`; on refusal, the whole seconds until one is available.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), u64> {
        let (rate, burst) = (self.rate, self.burst);
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_duration_since(b.last_sweep) >= SWEEP_EVERY {
            b.map.retain(|_, (tokens, last)| *tokens + now.saturating_duration_since(*last).as_secs_f64() * rate < burst);
            if b.map.len() > MAX_BUCKETS {
                tracing::warn!(buckets = b.map.len(), "rate limiter full, resetting");
                b.map.clear();
            }
            b.last_sweep = now;
        }
        let (tokens, last) = b.map.entry(key.clone()).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }

    /// Buckets currently held.
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    #[test]
    fn refilled_buckets_are_swept_and_limits_survive_the_sweep() {
        let limiter = RateLimiter::new(10.0, 2.0);
        let t0 = Instant::now();
        for i in 0..1000 {
            assert!(limiter.check(&i, t0).is_ok());
        }
        assert!(limiter.check(&0, t0).is_ok());
        assert!(limiter.check(&0, t0).is_err(), "key 0 is out of tokens");
        assert_eq!(limiter.len(), 1000);
        // 1.05 s later every bucket refilled (2 tokens at 10/s) except none: all are swept.
        let later = t0 + Duration::from_millis(1050);
        assert!(limiter.check(&5000, later).is_ok());
        assert_eq!(limiter.len(), 1, "only the new key remains");
    }
}
