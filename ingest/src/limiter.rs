//! Token-bucket rate limits, one bucket per key (a site id or a client network).
//!
//! A bucket that has refilled completely is the same as no bucket, so idle buckets are dropped
//! by a sweep that runs at most once a second; the map therefore holds only clients seen in the
//! last few seconds. A flood of distinct clients is bounded by a hard cap: past it, the buckets
//! touched longest ago are evicted (an eighth of the cap at a time, so the cost of finding them
//! is spread over many requests). The limiter never resets itself, so a flood cannot buy the
//! clients still sending a fresh burst.
//!
//! Client addresses are keyed by [`shared::client_ip::client_net`] (IPv6 by its /64): one
//! subscriber line or host usually gets a whole /64, and rotating addresses inside it must not
//! escape the limit.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Time between sweeps.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Most buckets kept by default.
pub const MAX_BUCKETS: usize = 1_000_000;

struct Buckets<K> {
    /// Tokens banked and when the bucket was last touched.
    map: HashMap<K, (f64, Instant)>,
    last_sweep: Instant,
}

/// A keyed token bucket: `rate` tokens per second, at most `burst` banked.
pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    max_buckets: usize,
    buckets: Mutex<Buckets<K>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self::with_max_buckets(rate, burst, MAX_BUCKETS)
    }

    /// A limiter holding at most `max_buckets` buckets.
    pub fn with_max_buckets(rate: f64, burst: f64, max_buckets: usize) -> Self {
        Self {
            rate: rate.max(0.001),
            burst: burst.max(1.0),
            max_buckets: max_buckets.max(8),
            buckets: Mutex::new(Buckets { map: HashMap::new(), last_sweep: Instant::now() }),
        }
    }

    /// Takes one token for `key` at `now`; on refusal, the whole seconds until one is available.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), u64> {
        let (rate, burst) = (self.rate, self.burst);
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_duration_since(b.last_sweep) >= SWEEP_EVERY {
            self.sweep(&mut b, now);
        }
        let bucket = match b.map.get_mut(key) {
            Some(bucket) => bucket,
            None => {
                if b.map.len() >= self.max_buckets {
                    self.sweep(&mut b, now);
                    if b.map.len() >= self.max_buckets {
                        self.evict_oldest(&mut b);
                    }
                }
                b.map.entry(key.clone()).or_insert((burst, now))
            }
        };
        let (tokens, last) = bucket;
        *tokens = (*tokens + now.saturating_duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate).ceil().max(1.0) as u64)
        }
    }

    /// Drops the buckets that have refilled: they are the same as no bucket.
    fn sweep(&self, b: &mut Buckets<K>, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        b.map.retain(|_, (tokens, last)| *tokens + now.saturating_duration_since(*last).as_secs_f64() * rate < burst);
        b.last_sweep = now;
    }

    /// Drops the eighth of the buckets touched longest ago.
    fn evict_oldest(&self, b: &mut Buckets<K>) {
        let mut touched: Vec<Instant> = b.map.values().map(|(_, last)| *last).collect();
        let n = (self.max_buckets / 8).clamp(1, touched.len().saturating_sub(1).max(1));
        let (_, cutoff, _) = touched.select_nth_unstable(n - 1);
        let cutoff = *cutoff;
        let before = b.map.len();
        b.map.retain(|_, (_, last)| *last > cutoff);
        tracing::warn!(
            evicted = before - b.map.len(),
            buckets = b.map.len(),
            "rate limiter full, evicted the oldest buckets"
        );
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

    #[test]
    fn a_flood_of_new_clients_evicts_the_oldest_and_keeps_limiting_the_rest() {
        let limiter = RateLimiter::with_max_buckets(0.01, 2.0, 64);
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // An abuser drains its bucket early on and keeps sending.
        assert!(limiter.check(&u32::MAX, ms(0)).is_ok());
        assert!(limiter.check(&u32::MAX, ms(0)).is_ok());
        for i in 0..10_000u32 {
            // Within one sweep interval: nothing has refilled, so only eviction bounds the map.
            let now = ms(u64::from(i) / 20);
            let _ = limiter.check(&i, now);
            assert!(limiter.len() <= 64, "bounded after {i} clients: {}", limiter.len());
            if i % 16 == 0 {
                assert!(limiter.check(&u32::MAX, now).is_err(), "abuser still limited after {i} new clients");
            }
        }
        assert!(limiter.len() > 32, "evicts a fraction, never the whole map: {}", limiter.len());
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        use shared::client_ip::client_net;
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        let limiter = RateLimiter::new(0.01, 2.0);
        let t0 = Instant::now();
        for (i, addr) in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:dead:beef::9"].iter().enumerate() {
            let result = limiter.check(&client_net(ip(addr)), t0);
            assert_eq!(result.is_ok(), i < 2, "case {addr}: rotating within a /64 shares one bucket");
        }
        assert!(limiter.check(&client_net(ip("2001:db8:1:3::1")), t0).is_ok(), "another /64 has its own bucket");
    }
}
