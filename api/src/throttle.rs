//! Failed-login throttling per email and per client IP: after too many failures in the window,
//! further attempts are refused with 429 until the window passes.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Failure counts in a sliding-ish window (reset when the window since the first failure ends).
pub struct LoginThrottle {
    max_failures: u32,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    pub fn new(max_failures: u32) -> Self {
        Self { max_failures: max_failures.max(1), failures: Mutex::new(HashMap::new()) }
    }

    /// Err(seconds to wait) when any of `keys` is locked out.
    pub fn check(&self, keys: &[String], now: Instant) -> Result<(), u64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, first)| now.duration_since(*first) < WINDOW);
        for key in keys {
            if let Some((count, first)) = map.get(key)
                && *count >= self.max_failures
            {
                return Err((WINDOW - now.duration_since(*first)).as_secs().max(1));
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, keys: &[String], now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            map.entry(key.clone()).or_insert((0, now)).0 += 1;
        }
    }

    pub fn clear(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_until_window_ends() {
        let t = LoginThrottle::new(3);
        let now = Instant::now();
        let keys = vec!["email:a".to_string(), "ip:1".to_string()];
        for _ in 0..3 {
            assert!(t.check(&keys, now).is_ok());
            t.record_failure(&keys, now);
        }
        assert!(t.check(&keys, now).is_err());
        assert!(t.check(&["ip:1".to_string()], now).is_err(), "the IP is locked too");
        assert!(t.check(&["email:b".to_string()], now).is_ok());
        assert!(t.check(&keys, now + WINDOW).is_ok());
    }
}
