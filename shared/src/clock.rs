//! Time as a dependency: code whose correctness depends on the clock (leases, expiry, rate
//! limits) takes a [`Clock`], so tests can move time instead of waiting for it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the epoch.
    fn now_ms(&self) -> i64;

    /// Monotonic time, for intervals (rate limits, cache freshness): unlike the wall clock it
    /// never steps back. The system's [`Instant::now`] unless the clock is a test's.
    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that moves only when told to; clones share the time. Its [`Clock::instant`] moves
/// with its milliseconds, from the instant it was made at.
#[derive(Debug, Clone)]
pub struct ManualClock {
    ms: Arc<AtomicI64>,
    start_ms: i64,
    start: Instant,
}

impl ManualClock {
    pub fn at(ms: i64) -> Self {
        Self { ms: Arc::new(AtomicI64::new(ms)), start_ms: ms, start: Instant::now() }
    }

    pub fn advance(&self, ms: i64) {
        self.ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }

    /// Moved back past where it started, it reads as its start.
    fn instant(&self) -> Instant {
        let since_start = u64::try_from(self.now_ms() - self.start_ms).unwrap_or(0);
        self.start + Duration::from_millis(since_start)
    }
}

/// The clock services use unless a test gives another.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_its_instant_with_its_milliseconds() {
        let clock = ManualClock::at(1_000_000);
        let t0 = clock.instant();
        assert_eq!(clock.instant(), t0, "nothing moves by itself");
        clock.advance(1500);
        assert_eq!((clock.now_ms(), clock.instant() - t0), (1_001_500, Duration::from_millis(1500)));
        clock.advance(-5000);
        assert_eq!((clock.now_ms(), clock.instant()), (996_500, t0), "back past the start reads as the start");
    }
}
