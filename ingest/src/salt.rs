//! The daily visitor-hash salt.
//!
//! One random salt per UTC day lives in the `cp_salts` key-value bucket, so every ingest replica
//! hashes a visitor the same way; the bucket forgets a salt 48 h after it was written, so
//! yesterday's hashes cannot be recomputed after that. The first replica to need a day's salt
//! creates it; the others read it. Each replica caches the current one.
//!
//! Without NATS (tests of the HTTP surface), the salts live in this process only
//! ([`SaltCache::in_memory`]), made the same way: one random salt per UTC day.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, RwLock},
};

use async_nats::jetstream::kv::{self, CreateErrorKind};
use bytes::Bytes;

/// Milliseconds in a UTC day.
const DAY_MS: i64 = 86_400_000;

/// Days an in-memory store keeps, as the bucket keeps them for 48 h.
const MEMORY_DAYS: usize = 2;

/// Where the salts are kept.
#[derive(Clone)]
enum Store {
    /// The `cp_salts` bucket, shared by every replica.
    Bucket(Box<kv::Store>),
    /// This process only, by UTC day (`YYYY-MM-DD`, which sorts by date).
    Memory(Arc<Mutex<BTreeMap<String, Bytes>>>),
}

/// Cached access to the day's salt.
#[derive(Clone)]
pub struct SaltCache {
    store: Store,
    /// The cached salt and its UTC day, as days since the epoch (compared on every request, so
    /// no date is formatted unless the day changed).
    current: Arc<RwLock<Option<(i64, Bytes)>>>,
}

impl SaltCache {
    pub fn new(store: kv::Store) -> Self {
        Self::with_store(Store::Bucket(Box::new(store)))
    }

    /// Salts made and kept in this process only: for tests without NATS.
    pub fn in_memory() -> Self {
        Self::with_store(Store::Memory(Arc::default()))
    }

    fn with_store(store: Store) -> Self {
        Self { store, current: Arc::new(RwLock::new(None)) }
    }

    /// The salt of the UTC day holding `ts_ms`, from the cache or the bucket.
    pub async fn salt_at(&self, ts_ms: i64) -> anyhow::Result<Bytes> {
        let day = ts_ms.div_euclid(DAY_MS);
        if let Some((d, salt)) = self.current.read().unwrap_or_else(|p| p.into_inner()).as_ref()
            && *d == day
        {
            return Ok(salt.clone());
        }
        let salt = self.fetch_or_create(&shared::time::utc_day(ts_ms)).await?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some((day, salt.clone()));
        Ok(salt)
    }

    async fn fetch_or_create(&self, day: &str) -> anyhow::Result<Bytes> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let store = match &self.store {
            Store::Bucket(store) => store,
            Store::Memory(days) => {
                let mut days = days.lock().unwrap_or_else(|p| p.into_inner());
                let salt = days.entry(day.to_string()).or_insert_with(|| Bytes::copy_from_slice(&fresh)).clone();
                while days.len() > MEMORY_DAYS {
                    days.pop_first();
                }
                return Ok(salt);
            }
        };
        match store.create(day, Bytes::copy_from_slice(&fresh)).await {
            Ok(_) => Ok(Bytes::copy_from_slice(&fresh)),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                store.get(day).await?.ok_or_else(|| anyhow::anyhow!("salt for {day} vanished"))
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_in_memory_salt_is_one_per_utc_day_and_the_oldest_day_is_forgotten() {
        let salts = SaltCache::in_memory();
        let day0 = 20_000 * DAY_MS;
        let first = salts.salt_at(day0).await.expect("salt");
        assert_eq!(salts.salt_at(day0 + DAY_MS - 1).await.expect("salt"), first, "the same UTC day");
        let next = salts.salt_at(day0 + DAY_MS).await.expect("salt");
        assert_ne!(next, first, "the next day has its own");
        assert_eq!(salts.salt_at(day0).await.expect("salt"), first, "yesterday's is still known");
        salts.salt_at(day0 + 2 * DAY_MS).await.expect("salt");
        assert_ne!(salts.salt_at(day0).await.expect("salt"), first, "two days later it is gone for good");
    }
}
