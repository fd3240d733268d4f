//! Site API keys: generation, and publishing them to the `cp_sites` key-value bucket that
//! ingest watches. MongoDB is the source of truth for which key a site holds; the bucket
//! follows it, written by the site handlers and repaired by a reconcile every 10 s.
//!
//! Writers race: a rotate, a delete, a domain change and the reconcile can all touch one key
//! at once. These rules keep a revoked key revoked and one key live per site:
//!
//! 1. Keys are random and never reused, and revoking one writes a delete marker that stays in
//!    the bucket. So "the bucket holds a delete marker for K" means "K was revoked", for good:
//!    no writer ever puts a value over a marker.
//! 2. A new key is published with a create that only succeeds while the bucket has no history
//!    for it ([`KeyRegistry::publish_new`]).
//! 3. Every other write ([`KeyRegistry::refresh`]) reads the key's bucket entry first, *then*
//!    reads the site holding the key from MongoDB, then writes that value only if the entry
//!    is still the revision it read. A revoke or another write in between makes the write
//!    fail and it starts over, seeing the newer state; a value read from MongoDB before the
//!    revoke can never be written after it.
//! 4. Rotate publishes the new key first, then swaps it into the site only if the site still
//!    holds the key it read (compare-and-set), then revokes the old key. Of two concurrent
//!    rotates one swap wins; the loser revokes the key it published. A delete takes the site
//!    out and revokes the key the deleted document held, whatever rotate did before.
//! 5. The reconcile uses its MongoDB listing only to find keys to look at, and repairs each
//!    through rule 3. A key live in the bucket that no site holds is revoked once its entry is
//!    older than [`ORPHAN_GRACE`]: a rotate publishes before it swaps (rule 4), and that
//!    window must not look like an orphan.

use std::{collections::HashSet, time::Duration};

use async_nats::jetstream::kv::{self, Operation, UpdateErrorKind};
use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use mongodb::{Collection, bson::doc};
use shared::{site::SiteEntry, store::SiteDoc};

use crate::error::ApiError;

/// How long a bucket operation may take before the request fails with 503.
const KV_TIMEOUT: Duration = Duration::from_secs(2);
/// Age below which a live key that no site holds is left alone (a rotate between publishing
/// and swapping; requests end within 10 s).
pub const ORPHAN_GRACE: Duration = Duration::from_secs(30);
/// Revision conflicts a refresh retries before giving up.
const REFRESH_TRIES: usize = 5;

/// A new key: 192 random bits, URL-safe base64, prefixed so it is recognisable in a page.
pub fn new_site_key() -> Result<String, ApiError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    Ok(format!("cp_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

/// A new share token: 256 random bits, URL-safe.
pub fn new_share_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A new opaque id (96 random bits, hex).
pub fn new_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What the bucket holds for a key after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Live with the site's current entry.
    Live,
    /// Revoked, or held by no site any more: nothing was written.
    Revoked,
}

/// What a reconcile changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Repairs {
    pub published: usize,
    pub revoked: usize,
}

/// Writes to the sites bucket.
#[derive(Clone)]
pub struct KeyRegistry {
    store: kv::Store,
    sites: Collection<SiteDoc>,
}

fn entry_of(site: &SiteDoc) -> Result<Vec<u8>, ApiError> {
    let entry = SiteEntry { site_id: site.id.clone(), domain: site.domain.clone(), timezone: site.timezone.clone() };
    serde_json::to_vec(&entry).map_err(|e| ApiError::Internal(e.into()))
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(anyhow::anyhow!("sites bucket {what}: {e}"))
}

async fn within<T, E: std::fmt::Display>(what: &str, op: impl Future<Output = Result<T, E>>) -> Result<T, ApiError> {
    tokio::time::timeout(KV_TIMEOUT, op).await.map_err(|_| unavailable(what, "timed out"))?.map_err(|e| unavailable(what, e))
}

/// Writes `value` if the key is still at `revision` (0: has no history). `Ok(false)` when it
/// is not.
async fn write_if(store: &kv::Store, key: &str, value: Vec<u8>, revision: u64) -> Result<bool, ApiError> {
    match tokio::time::timeout(KV_TIMEOUT, store.update(key, value.into(), revision)).await {
        Err(_) => Err(unavailable("update", "timed out")),
        Ok(Ok(_)) => Ok(true),
        Ok(Err(e)) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
        Ok(Err(e)) => Err(unavailable("update", e)),
    }
}

impl KeyRegistry {
    pub fn new(store: kv::Store, sites: Collection<SiteDoc>) -> Self {
        Self { store, sites }
    }

    /// Publishes a key that has never been live (rule 2). `Revoked` when the bucket already
    /// holds a delete marker for it; a live entry written first by a refresh is left as is.
    pub async fn publish_new(&self, site: &SiteDoc) -> Result<KeyState, ApiError> {
        if write_if(&self.store, &site.api_key, entry_of(site)?, 0).await? {
            return Ok(KeyState::Live);
        }
        match within("read", self.store.entry(site.api_key.as_str())).await? {
            Some(e) if e.operation == Operation::Put => Ok(KeyState::Live),
            _ => Ok(KeyState::Revoked),
        }
    }

    /// Makes the bucket hold the current entry of the site holding `key`, unless the key was
    /// revoked (rule 3).
    pub async fn refresh(&self, key: &str) -> Result<KeyState, ApiError> {
        for _ in 0..REFRESH_TRIES {
            let entry = within("read", self.store.entry(key)).await?;
            let revision = match &entry {
                Some(e) if e.operation != Operation::Put => return Ok(KeyState::Revoked),
                Some(e) => e.revision,
                None => 0,
            };
            // Read after the entry: whatever MongoDB says now is at least as new as that entry.
            let Some(site) = self.sites.find_one(doc! {"api_key": key}).await? else {
                return Ok(KeyState::Revoked);
            };
            let value = entry_of(&site)?;
            if entry.as_ref().is_some_and(|e| e.value.as_ref() == value.as_slice()) {
                return Ok(KeyState::Live);
            }
            if write_if(&self.store, key, value, revision).await? {
                return Ok(KeyState::Live);
            }
        }
        Err(unavailable("refresh", "the entry kept changing"))
    }

    /// Revokes `key`, retrying briefly: a revoked key must stop working within seconds. The
    /// delete marker it leaves is permanent (rule 1).
    pub async fn revoke(&self, key: &str) -> Result<(), ApiError> {
        let mut last = None;
        for attempt in 0..3 {
            match within("delete", self.store.delete(key)).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
        }
        Err(last.unwrap_or_else(|| unavailable("delete", "failed")))
    }

    /// Every site, as MongoDB has them now.
    pub async fn list_sites(&self) -> anyhow::Result<Vec<SiteDoc>> {
        Ok(self.sites.find(doc! {}).await?.try_collect().await?)
    }

    /// Repairs the bucket against MongoDB (rule 5).
    pub async fn reconcile(&self) -> anyhow::Result<Repairs> {
        let listing = self.list_sites().await?;
        self.reconcile_from(&listing).await
    }

    /// [`Self::reconcile`] with a listing of the sites taken earlier, however stale: it only
    /// says which keys to look at.
    pub async fn reconcile_from(&self, listing: &[SiteDoc]) -> anyhow::Result<Repairs> {
        let mut repairs = Repairs::default();
        let listed: HashSet<&str> = listing.iter().map(|s| s.api_key.as_str()).collect();
        for site in listing {
            let before = self.store.entry(site.api_key.as_str()).await?;
            let stale = match &before {
                None => true,
                Some(e) if e.operation == Operation::Put => e.value.as_ref() != entry_of(site)?.as_slice(),
                Some(_) => {
                    // Revoked after the listing was read, as a rotate or delete does. A site
                    // that still holds a revoked key now would be a bug: say so, never revive it.
                    if let Some(holder) = self.sites.find_one(doc! {"api_key": &site.api_key}).await? {
                        tracing::error!(site_id = %holder.id, "site holds a revoked key; rotating it fixes the site");
                    }
                    false
                }
            };
            if stale && self.refresh(&site.api_key).await? == KeyState::Live {
                repairs.published += 1;
            }
        }
        let mut live = Vec::new();
        let mut keys = self.store.keys().await?;
        while let Some(key) = keys.next().await {
            let key = key?;
            if !listed.contains(key.as_str()) {
                live.push(key);
            }
        }
        let now = chrono::Utc::now().timestamp();
        for key in live {
            let Some(entry) = self.store.entry(key.as_str()).await? else { continue };
            let age = now - entry.created.unix_timestamp();
            if entry.operation != Operation::Put || age < ORPHAN_GRACE.as_secs() as i64 {
                continue;
            }
            if self.sites.find_one(doc! {"api_key": &key}).await?.is_some() {
                continue;
            }
            if self.store.delete_expect_revision(&key, Some(entry.revision)).await.is_ok() {
                repairs.revoked += 1;
            }
        }
        Ok(repairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_url_safe_and_distinct() {
        let a = new_site_key().expect("key");
        let b = new_site_key().expect("key");
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 32);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
