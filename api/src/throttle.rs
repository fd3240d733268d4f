//! Attempt throttling for logins (per email and per client IP) and registrations (per client
//! IP): at most `max` attempts per key in a window that starts with the key's first attempt;
//! past that, 429 until the window ends.
//!
//! 1. An attempt is counted *before* the work it guards (bcrypt), in the same critical section
//!    as the check. Were it recorded after the work, 300 parallel wrong passwords would all
//!    pass a check that none of them had yet been recorded against.
//! 2. The outcome settles the attempt ([`Attempt`]): a failure stays counted; a login that
//!    succeeds clears its email's count and gives the IP its attempt back; an attempt that ends
//!    without a verdict (a dependency failed, the client went away before the answer) is
//!    given back, since it told the client nothing.
//! 3. The map is bounded. Entries expire with their window; a key that would grow the map past
//!    `capacity` first evicts the oldest entry. Pushing a lockout out that way takes `capacity`
//!    fresh keys, each of which is itself throttled per IP.
//!
//! Callers pass the clock (`now`), so every step is tested deterministically.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// The login window.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The registration window.
pub const REGISTER_WINDOW: Duration = Duration::from_secs(60 * 60);
/// Most keys one throttle remembers.
pub const CAPACITY: usize = 100_000;

/// Attempts per key in a fixed window.
pub struct Throttle {
    max: u32,
    window: Duration,
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    slots: HashMap<String, Slot>,
    /// Keys in the order their slots began, which is also the order they expire in. An entry
    /// whose slot was cleared or began again later is stale and skipped.
    order: VecDeque<(Instant, String)>,
}

#[derive(Clone, Copy)]
struct Slot {
    count: u32,
    since: Instant,
}

impl State {
    fn is_current(&self, since: Instant, key: &str) -> bool {
        self.slots.get(key).is_some_and(|s| s.since == since)
    }

    /// Drops expired slots and stale order entries from the front.
    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some((since, key)) = self.order.front() {
            let current = self.is_current(*since, key);
            if current && now.duration_since(*since) < window {
                break;
            }
            if current {
                self.slots.remove(key);
            }
            self.order.pop_front();
        }
    }

    /// Evicts the oldest slots until one more fits.
    fn make_room(&mut self, capacity: usize) {
        while self.slots.len() >= capacity {
            let Some((since, key)) = self.order.pop_front() else { break };
            if self.is_current(since, &key) {
                self.slots.remove(&key);
            }
        }
        // Clears and re-begins leave stale entries; keep the queue within a constant of the map.
        if self.order.len() > 2 * capacity.max(1) {
            let slots = &self.slots;
            self.order.retain(|(since, key)| slots.get(key).is_some_and(|s| s.since == *since));
        }
    }
}

impl Throttle {
    pub fn new(max: u32, window: Duration, capacity: usize) -> Self {
        Self { max: max.max(1), window, capacity: capacity.max(1), state: Mutex::new(State::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one attempt against every key in `keys`, or against none when any of them is at
    /// its limit: then `Err(seconds until that key's window ends)`.
    pub fn admit(self: &Arc<Self>, keys: Vec<String>, now: Instant) -> Result<Attempt, u64> {
        let mut state = self.lock();
        state.expire(now, self.window);
        for key in &keys {
            if let Some(slot) = state.slots.get(key)
                && slot.count >= self.max
            {
                let left = self.window.saturating_sub(now.duration_since(slot.since));
                return Err(left.as_secs().max(1));
            }
        }
        for key in &keys {
            if let Some(slot) = state.slots.get_mut(key) {
                slot.count += 1;
                continue;
            }
            state.make_room(self.capacity);
            state.slots.insert(key.clone(), Slot { count: 1, since: now });
            state.order.push_back((now, key.clone()));
        }
        Ok(Attempt { throttle: Arc::clone(self), keys, settled: false })
    }

    fn refund(&self, key: &str) {
        let mut state = self.lock();
        if let Some(slot) = state.slots.get_mut(key) {
            slot.count = slot.count.saturating_sub(1);
        }
    }

    fn clear(&self, key: &str) {
        self.lock().slots.remove(key);
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One admitted attempt; see the module doc for how its outcome settles it.
#[must_use = "an attempt dropped unsettled is given back"]
pub struct Attempt {
    throttle: Arc<Throttle>,
    keys: Vec<String>,
    settled: bool,
}

impl Attempt {
    /// The attempt stays counted against every key (a failed login, a registration).
    pub fn keep(mut self) {
        self.settled = true;
    }

    /// A login succeeded: the first key (the email) starts over, the others get their attempt
    /// back.
    pub fn succeeded(mut self) {
        self.settled = true;
        if let Some((first, rest)) = self.keys.split_first() {
            self.throttle.clear(first);
            for key in rest {
                self.throttle.refund(key);
            }
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.settled {
            for key in &self.keys {
                self.throttle.refund(key);
            }
        }
    }
}

/// The throttle key of a client address. An IPv6 client usually holds a whole /64 and can
/// rotate through it, so IPv6 addresses are keyed by their /64.
pub fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|k| k.to_string()).collect()
    }

    fn throttle(max: u32, capacity: usize) -> Arc<Throttle> {
        Arc::new(Throttle::new(max, LOGIN_WINDOW, capacity))
    }

    #[test]
    fn attempts_are_counted_before_their_outcome_is_known() {
        let t = throttle(3, 100);
        let now = Instant::now();
        // Three attempts in flight at once: none has an outcome yet, the fourth is refused.
        let held: Vec<Attempt> = (0..3).map(|i| t.admit(keys(&["email:a", "ip:1"]), now).unwrap_or_else(|_| panic!("attempt {i}"))).collect();
        assert!(t.admit(keys(&["email:a", "ip:1"]), now).is_err(), "a fourth concurrent attempt is refused");
        for a in held {
            a.keep();
        }
        assert!(t.admit(keys(&["ip:1"]), now).is_err(), "the IP is locked too");
        assert!(t.admit(keys(&["email:b", "ip:2"]), now).is_ok(), "other keys are not");
    }

    #[test]
    fn the_window_ends_the_lockout_and_says_how_long_is_left() {
        let t = throttle(1, 100);
        let now = Instant::now();
        t.admit(keys(&["email:a"]), now).expect("first").keep();
        assert_eq!(t.admit(keys(&["email:a"]), now + Duration::from_secs(60)).err(), Some(LOGIN_WINDOW.as_secs() - 60));
        assert!(t.admit(keys(&["email:a"]), now + LOGIN_WINDOW).is_ok());
    }

    #[test]
    fn outcomes_settle_the_count() {
        // (case, how the attempt is settled, email locked after, ip locked after)
        type Case = (&'static str, fn(Attempt), bool, bool);
        let cases: [Case; 3] = [
            ("failure stays counted", Attempt::keep, true, true),
            ("success clears the email and refunds the ip", Attempt::succeeded, false, false),
            ("no verdict is refunded", drop, false, false),
        ];
        for (case, settle, email_locked, ip_locked) in cases {
            let t = throttle(1, 100);
            let now = Instant::now();
            settle(t.admit(keys(&["email:a", "ip:1"]), now).expect("admitted"));
            assert_eq!(t.admit(keys(&["email:a"]), now).is_err(), email_locked, "case {case}: email");
            assert_eq!(t.admit(keys(&["ip:1"]), now).is_err(), ip_locked, "case {case}: ip");
        }
    }

    #[test]
    fn the_map_is_bounded_and_evicts_the_oldest() {
        let t = throttle(1, 3);
        let now = Instant::now();
        for (i, key) in ["a", "b", "c", "d"].iter().enumerate() {
            t.admit(keys(&[key]), now + Duration::from_secs(i as u64)).expect("admitted").keep();
        }
        assert_eq!(t.len(), 3);
        let later = now + Duration::from_secs(10);
        assert!(t.admit(keys(&["a"]), later).is_ok(), "the oldest was evicted");
        assert!(t.admit(keys(&["d"]), later).is_err(), "the newest is still locked");
    }

    #[test]
    fn expired_entries_leave_the_map() {
        let t = throttle(5, 100);
        let now = Instant::now();
        for i in 0..50 {
            t.admit(keys(&[&format!("email:{i}")]), now).expect("admitted").keep();
        }
        assert_eq!(t.len(), 50);
        t.admit(keys(&["email:new"]), now + LOGIN_WINDOW).expect("admitted").keep();
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn cleared_and_restarted_keys_do_not_grow_the_queue_without_bound() {
        let t = throttle(5, 4);
        let now = Instant::now();
        for _ in 0..1000 {
            t.admit(keys(&["email:a", "ip:1"]), now).expect("admitted").succeeded();
        }
        assert!(t.lock().order.len() <= 2 * 4 + 2, "queue {}", t.lock().order.len());
    }

    #[test]
    fn ipv6_clients_share_a_key_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        assert_eq!(ip_key("::ffff:192.0.2.1".parse().expect("ip")), "ip:192.0.2.1");
    }
}
