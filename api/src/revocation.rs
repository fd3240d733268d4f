//! Ending tokens. A JWT cannot be taken back, so each user has a token version (`UserDoc::
//! token_version`), carried by every token issued (`tv`): logging out and changing the
//! password raise it, and a token whose version is not the user's current one is refused.
//!
//! 1. Every authenticated request reads the user's version by `_id`, through a cache that
//!    keeps a version at most [`FRESH_FOR`]: an ended token may serve until then on an api
//!    instance that did not end it (the contract allows 5 s); on the instance that did, it
//!    is refused at once, since the ending writes its new version into the cache.
//! 2. Versions only grow, so the cache keeps the highest version it has seen for a user: a
//!    read that started before an ending and finishes after it cannot bring the old version
//!    back.
//! 3. The cache holds at most [`CAPACITY`] users (only ids from validly signed tokens reach
//!    it); when full, expired entries go, and if none has expired the read is not cached.
//!
//! The cache takes the time as an argument (`now`), so every step is tested deterministically;
//! [`TokenVersions`] reads it from the clock it was given.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use mongodb::{Collection, bson::doc};
use shared::{clock::Clock, store::UserDoc};

use crate::error::ApiError;

/// Longest a cached version is believed.
pub const FRESH_FOR: Duration = Duration::from_secs(2);
/// Most users the cache holds.
pub const CAPACITY: usize = 10_000;

/// The users' current token versions, read by `_id` and cached briefly.
pub struct TokenVersions {
    users: Collection<UserDoc>,
    cache: VersionCache,
    clock: Arc<dyn Clock>,
}

impl TokenVersions {
    pub fn new(users: Collection<UserDoc>, clock: Arc<dyn Clock>) -> Self {
        Self { users, cache: VersionCache::new(CAPACITY, FRESH_FOR), clock }
    }

    /// The current version of `user_id`; `None` when the account no longer exists.
    pub async fn current(&self, user_id: &str) -> Result<Option<i64>, ApiError> {
        if let Some(v) = self.cache.get(user_id, self.clock.instant()) {
            return Ok(Some(v));
        }
        let Some(user) = self.users.find_one(doc! {"_id": user_id}).await? else { return Ok(None) };
        Ok(Some(self.cache.put(user_id, user.token_version, self.clock.instant())))
    }

    /// Records a version this instance has just written (a logout, a password change).
    pub fn ended(&self, user_id: &str, version: i64) {
        self.cache.put(user_id, version, self.clock.instant());
    }
}

/// A bounded map of versions, each believed for `fresh_for` from when it was put.
struct VersionCache {
    capacity: usize,
    fresh_for: Duration,
    map: Mutex<HashMap<String, (i64, Instant)>>,
}

impl VersionCache {
    fn new(capacity: usize, fresh_for: Duration) -> Self {
        Self { capacity, fresh_for, map: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, Instant)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, user_id: &str, now: Instant) -> Option<i64> {
        self.lock().get(user_id).filter(|(_, at)| now.duration_since(*at) < self.fresh_for).map(|(v, _)| *v)
    }

    /// Stores `version` (or keeps a higher one already held) and returns the version held.
    fn put(&self, user_id: &str, version: i64, now: Instant) -> i64 {
        let mut map = self.lock();
        if let Some((held, at)) = map.get_mut(user_id) {
            *held = (*held).max(version);
            *at = now;
            return *held;
        }
        if map.len() >= self.capacity {
            let fresh_for = self.fresh_for;
            map.retain(|_, (_, at)| now.duration_since(*at) < fresh_for);
            if map.len() >= self.capacity {
                return version;
            }
        }
        map.insert(user_id.to_string(), (version, now));
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_version_is_believed_only_while_fresh() {
        let cache = VersionCache::new(10, FRESH_FOR);
        let now = Instant::now();
        cache.put("u1", 3, now);
        assert_eq!(cache.get("u1", now + FRESH_FOR - Duration::from_millis(1)), Some(3));
        assert_eq!(cache.get("u1", now + FRESH_FOR), None, "stale: read again");
        assert_eq!(cache.get("u2", now), None);
    }

    #[test]
    fn a_late_read_of_an_older_version_cannot_undo_an_ending() {
        let cache = VersionCache::new(10, FRESH_FOR);
        let now = Instant::now();
        cache.put("u1", 4, now); // this instance ended the tokens at version 3
        assert_eq!(cache.put("u1", 3, now), 4, "a read that began before the ending");
        assert_eq!(cache.get("u1", now), Some(4));
    }

    #[test]
    fn the_cache_is_bounded_and_makes_room_from_expired_entries() {
        let cache = VersionCache::new(3, FRESH_FOR);
        let now = Instant::now();
        for i in 0..3 {
            cache.put(&format!("u{i}"), 0, now);
        }
        assert_eq!(cache.put("u3", 7, now), 7, "full of fresh entries: answered, not cached");
        assert_eq!(cache.get("u3", now), None);
        assert_eq!(cache.lock().len(), 3);
        let later = now + FRESH_FOR;
        cache.put("u4", 1, later);
        assert_eq!(cache.get("u4", later), Some(1), "expired entries made room");
        assert_eq!(cache.lock().len(), 1);
    }
}
