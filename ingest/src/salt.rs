//! The daily visitor-hash salt.
//!
//! One random salt per UTC day lives in the `cp_salts` key-value bucket, so every ingest replica
//! hashes a visitor the same way; the bucket forgets a salt 48 h after it was written, so
//! yesterday's hashes cannot be recomputed after that. The first replica to need a day's salt
//! creates it; the others read it. Each replica caches the current one.

use std::sync::{Arc, RwLock};

use async_nats::jetstream::kv::{self, CreateErrorKind};
use bytes::Bytes;

/// Milliseconds in a UTC day.
const DAY_MS: i64 = 86_400_000;

/// Cached access to the day's salt.
#[derive(Clone)]
pub struct SaltCache {
    store: kv::Store,
    /// The cached salt and its UTC day, as days since the epoch (compared on every request, so
    /// no date is formatted unless the day changed).
    current: Arc<RwLock<Option<(i64, Bytes)>>>,
}

impl SaltCache {
    pub fn new(store: kv::Store) -> Self {
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
        match self.store.create(day, Bytes::copy_from_slice(&fresh)).await {
            Ok(_) => Ok(Bytes::copy_from_slice(&fresh)),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                self.store.get(day).await?.ok_or_else(|| anyhow::anyhow!("salt for {day} vanished"))
            }
            Err(e) => Err(e.into()),
        }
    }
}
