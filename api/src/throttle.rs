//! Attempt throttling: logins (per email and client address, and per client address),
//! password changes (counted as logins), registrations and shared-link stats (per client
//! address): at most `max` attempts per key in a window that starts with the key's first
//! attempt; past that, 429 until the window ends.
//!
//! 1. An attempt is counted *before* the work it guards (bcrypt), in the same critical section
//!    as the check. Were it recorded after the work, 300 parallel wrong passwords would all
//!    pass a check that none of them had yet been recorded against.
//! 2. The outcome settles the attempt ([`Attempt`]): a failure stays counted; a login that
//!    succeeds clears its (email, address) count and gives the address its attempt back; an
//!    attempt that ends without a verdict (a dependency failed, the client went away before
//!    the answer) is given back, since it told the client nothing.
//! 3. Logins ([`LoginThrottle`]) count per (email, client network) — a client address, an IPv6
//!    client by its /64 ([`shared::client_ip::client_net`]) — so failures from other clients
//!    never lock the owner out, and per client network on its own, so one client cannot try
//!    many emails either.
//! 4. The map is bounded, and a lock is never evicted: evicting it would hand an attacker
//!    fresh guesses for the price of a few cheap requests. Entries expire with their window.
//!    A key that would grow the map past `capacity` first evicts the oldest *unlocked* entry;
//!    locked ones met on the way are set aside until their window ends. When every entry is
//!    locked, a new key is refused (429, until the oldest lock ends) rather than let in
//!    uncounted. For logins that state is out of reach in practice: only a failure that cost a
//!    bcrypt verification is counted, so the server's own bcrypt throughput bounds how many
//!    locks a window can hold (2 CPUs at cost 12: a few hundred, against 100,000 keys).
//!
//! Callers pass the clock (`now`), so every step is tested deterministically.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use shared::ids::Email;

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
    /// Entries moved out of `order` because their slot was locked when room was needed: they
    /// leave only by expiring (or by a success clearing them), never by eviction. Also in
    /// expiry order, since they left `order` from its front.
    locked: VecDeque<(Instant, String)>,
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

    /// Drops expired slots and stale entries from the front of both queues.
    fn expire(&mut self, now: Instant, window: Duration) {
        for locked in [false, true] {
            loop {
                let queue = if locked { &self.locked } else { &self.order };
                let Some((since, key)) = queue.front() else { break };
                let current = self.is_current(*since, key);
                if current && now.duration_since(*since) < window {
                    break;
                }
                let queue = if locked { &mut self.locked } else { &mut self.order };
                let Some((_, key)) = queue.pop_front() else { break };
                if current {
                    self.slots.remove(&key);
                }
            }
        }
    }

    /// Evicts the oldest unlocked slots until `needed` more fit; `Err(seconds)` until the
    /// oldest lock ends when every slot is locked.
    fn make_room(&mut self, needed: usize, capacity: usize, max: u32, now: Instant, window: Duration) -> Result<(), u64> {
        while self.slots.len() + needed > capacity {
            let Some((since, key)) = self.order.pop_front() else {
                let oldest = self.locked.iter().find(|(since, key)| self.is_current(*since, key)).map(|(since, _)| *since);
                let left = oldest.map_or(window, |since| window.saturating_sub(now.duration_since(since)));
                return Err(left.as_secs().max(1));
            };
            match self.slots.get(&key) {
                Some(slot) if slot.since == since && slot.count >= max => self.locked.push_back((since, key)),
                Some(slot) if slot.since == since => {
                    self.slots.remove(&key);
                }
                _ => {} // stale
            }
        }
        // Clears and re-begins leave stale entries; keep the queues within a constant of the map.
        let bound = 2 * capacity.max(1);
        for queue in [&mut self.order, &mut self.locked] {
            if queue.len() > bound {
                let slots = &self.slots;
                queue.retain(|(since, key)| slots.get(key).is_some_and(|s| s.since == *since));
            }
        }
        Ok(())
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
    /// its limit, or when the map is full of locks and a key is new: then `Err(seconds until
    /// that ends)`.
    pub fn admit(self: &Arc<Self>, keys: Vec<String>, now: Instant) -> Result<Attempt, u64> {
        let mut state = self.lock();
        state.expire(now, self.window);
        let mut new_keys = 0;
        for key in &keys {
            match state.slots.get(key) {
                Some(slot) if slot.count >= self.max => {
                    let left = self.window.saturating_sub(now.duration_since(slot.since));
                    return Err(left.as_secs().max(1));
                }
                Some(_) => {}
                None => new_keys += 1,
            }
        }
        if new_keys > 0 {
            state.make_room(new_keys, self.capacity, self.max, now, self.window)?;
        }
        for key in &keys {
            if let Some(slot) = state.slots.get_mut(key) {
                slot.count += 1;
                continue;
            }
            // (Room was made for every new key; one evicted meanwhile as the oldest unlocked
            // is taken back in, over the capacity by at most `keys.len()`.)
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

    /// A login succeeded: the first key starts over, the others get their attempt back.
    pub fn succeeded(mut self) {
        self.settled = true;
        if let Some((first, rest)) = self.keys.split_first() {
            self.throttle.clear(first);
            for key in rest {
                self.throttle.refund(key);
            }
        }
    }

    /// The attempt told the client nothing worth counting: every key gets it back.
    pub fn give_back(self) {
        drop(self);
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

/// The throttle key of a client address: its network ([`shared::client_ip::client_net`]), so an
/// IPv6 client rotating through its /64 stays one key.
pub fn ip_key(ip: IpAddr) -> String {
    match shared::client_ip::client_net(ip) {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => format!("ip:{v6}/64"),
    }
}

/// The login key of `email` (already normalised) tried from `ip`.
fn pair_key(email: &str, ip: IpAddr) -> String {
    format!("{}|email:{email}", ip_key(ip))
}

/// Login attempts, per (email, client network) and per client network (module doc, step 3).
pub struct LoginThrottle {
    pairs: Arc<Throttle>,
    addresses: Arc<Throttle>,
}

impl LoginThrottle {
    /// `per_pair` failures of one email from one client network, `per_address` failures of
    /// any emails from one client network, each map holding at most `capacity` keys.
    pub fn new(per_pair: u32, per_address: u32, capacity: usize) -> Self {
        Self {
            pairs: Arc::new(Throttle::new(per_pair, LOGIN_WINDOW, capacity)),
            addresses: Arc::new(Throttle::new(per_address, LOGIN_WINDOW, capacity)),
        }
    }

    /// Counts an attempt to prove the password of `email` from `ip`; `Err(seconds)` when
    /// either limit is reached.
    pub fn admit(&self, email: &Email, ip: IpAddr, now: Instant) -> Result<LoginAttempt, u64> {
        let pair = self.pairs.admit(vec![pair_key(email.as_str(), ip)], now)?;
        // Refused here, the pair's attempt is given back as it drops.
        let address = self.addresses.admit(vec![ip_key(ip)], now)?;
        Ok(LoginAttempt { pair, address })
    }
}

/// One admitted login attempt.
#[must_use = "an attempt dropped unsettled is given back"]
pub struct LoginAttempt {
    pair: Attempt,
    address: Attempt,
}

impl LoginAttempt {
    /// The password was wrong: counted against the pair and the address.
    pub fn failed(self) {
        self.pair.keep();
        self.address.keep();
    }

    /// The password was right: the pair starts over, the address gets its attempt back.
    pub fn succeeded(self) {
        self.pair.succeeded();
        self.address.give_back();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(s: &str) -> Email {
        Email::parse(s).expect("an email address")
    }

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
        let held: Vec<Attempt> =
            (0..3).map(|i| t.admit(keys(&["email:a", "ip:1"]), now).unwrap_or_else(|_| panic!("attempt {i}"))).collect();
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
    fn the_map_is_bounded_and_evicts_the_oldest_unlocked_entry() {
        let t = throttle(2, 3);
        let now = Instant::now();
        for (i, key) in ["a", "b", "c", "d"].iter().enumerate() {
            t.admit(keys(&[key]), now + Duration::from_secs(i as u64)).expect("admitted").keep();
        }
        assert_eq!(t.len(), 3);
        let later = now + Duration::from_secs(10);
        // a (one of two) was evicted for d: it starts over, with two attempts to go.
        t.admit(keys(&["a"]), later).expect("a, first of two").keep();
        t.admit(keys(&["a"]), later).expect("a, second of two: the first count was evicted").keep();
        assert!(t.admit(keys(&["a"]), later).is_err(), "a at its limit");
    }

    #[test]
    fn a_lock_survives_a_flood_of_new_keys() {
        let t = throttle(3, 10);
        let now = Instant::now();
        for _ in 0..3 {
            t.admit(keys(&["victim"]), now).expect("admitted").keep();
        }
        for i in 0..1000u64 {
            let at = now + Duration::from_millis(i);
            t.admit(keys(&[&format!("flood:{i}")]), at)
                .unwrap_or_else(|_| panic!("flood key {i}: unlocked keys make room"))
                .keep();
            assert!(t.len() <= 10, "bounded: {} after {i}", t.len());
        }
        let later = now + Duration::from_secs(60);
        assert_eq!(t.admit(keys(&["victim"]), later).err(), Some(LOGIN_WINDOW.as_secs() - 60), "the lock is still there");
        let queued = {
            let state = t.lock();
            state.locked.len() + state.order.len()
        };
        assert!(queued <= 4 * 10 + 2, "queues stay bounded: {queued}");
    }

    #[test]
    fn a_map_full_of_locks_refuses_new_keys_until_the_oldest_lock_ends() {
        let t = throttle(1, 2);
        let now = Instant::now();
        t.admit(keys(&["a"]), now).expect("a").keep();
        t.admit(keys(&["b"]), now + Duration::from_secs(10)).expect("b").keep();
        let at = now + Duration::from_secs(20);
        assert_eq!(t.admit(keys(&["c"]), at).err(), Some(LOGIN_WINDOW.as_secs() - 20), "no unlocked entry to evict");
        assert_eq!(t.len(), 2);
        assert!(t.admit(keys(&["a"]), at).is_err() && t.admit(keys(&["b"]), at).is_err(), "both locks hold");
        // The oldest lock ends: its room goes to the new key; the younger lock stays.
        let end = now + LOGIN_WINDOW;
        t.admit(keys(&["c"]), end).expect("c once a has expired").keep();
        assert!(t.admit(keys(&["b"]), end).is_err(), "b is still locked");
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn login_failures_count_per_email_and_address_and_per_address() {
        let t = LoginThrottle::new(2, 3, 100);
        let now = Instant::now();
        let (attacker, owner) = (ip("198.51.100.66"), ip("203.0.113.7"));
        for _ in 0..2 {
            t.admit(&email("victim@example.com"), attacker, now).expect("admitted").failed();
        }
        assert!(t.admit(&email("victim@example.com"), attacker, now).is_err(), "the attacker's pair is locked");
        assert!(
            t.admit(&email("victim@example.com"), ip("::ffff:198.51.100.66"), now).is_err(),
            "written IPv4-mapped, the same address"
        );
        t.admit(&email("victim@example.com"), owner, now).expect("the owner from elsewhere is not locked out").succeeded();
        // One address trying many emails: the third failure locks the address for every email.
        t.admit(&email("other@example.com"), attacker, now).expect("a third failure from the attacker's address").failed();
        assert!(t.admit(&email("third@example.com"), attacker, now).is_err(), "the address is locked");
        // A success clears its pair and gives the address its attempt back.
        let a = ip("192.0.2.1");
        t.admit(&email("owner@example.com"), a, now).expect("admitted").failed();
        t.admit(&email("owner@example.com"), a, now).expect("admitted").succeeded();
        t.admit(&email("owner@example.com"), a, now).expect("the pair started over after the success").failed();
        t.admit(&email("x@example.com"), a, now).expect("the address got the success's attempt back").failed();
        assert!(t.admit(&email("y@example.com"), a, now).is_err(), "three failures lock the address");
    }

    #[test]
    fn a_refused_login_costs_neither_key_an_attempt() {
        let t = LoginThrottle::new(1, 5, 100);
        let now = Instant::now();
        let a = ip("192.0.2.9");
        t.admit(&email("victim@example.com"), a, now).expect("admitted").failed();
        for _ in 0..10 {
            assert!(t.admit(&email("victim@example.com"), a, now).is_err());
        }
        for i in 0..4 {
            t.admit(&email(&format!("u{i}@example.com")), a, now)
                .unwrap_or_else(|_| panic!("failure {} of the address", i + 2))
                .failed();
        }
        assert!(
            t.admit(&email("u9@example.com"), a, now).is_err(),
            "five failures lock the address, the refusals counted none"
        );
    }

    #[test]
    fn ipv6_login_pairs_are_per_64() {
        let t = LoginThrottle::new(1, 100, 100);
        let now = Instant::now();
        t.admit(&email("victim@example.com"), ip("2001:db8:1:2::1"), now).expect("admitted").failed();
        assert!(t.admit(&email("victim@example.com"), ip("2001:db8:1:2:ffff::9"), now).is_err(), "rotating within the /64");
        assert!(t.admit(&email("victim@example.com"), ip("2001:db8:1:3::1"), now).is_ok(), "another /64");
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
