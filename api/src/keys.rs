//! Site API keys: generation, and publishing them to the `cp_sites` key-value bucket that
//! ingest watches. MongoDB is the source of truth; the bucket is kept consistent on every
//! create / rotate / update / delete, and a scheduled reconcile repairs any drift.

use std::{collections::HashMap, time::Duration};

use async_nats::jetstream::kv;
use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use mongodb::{Collection, bson::doc};
use shared::{site::SiteEntry, store::SiteDoc};

use crate::error::ApiError;

/// How long a bucket write may take before the request fails with 503.
const KV_TIMEOUT: Duration = Duration::from_secs(2);

/// A new key: 192 random bits, URL-safe base64, prefixed so it is recognisable in a page.
pub fn new_site_key() -> Result<String, ApiError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    Ok(format!("cp_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

/// A new opaque id (96 random bits, hex).
pub fn new_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes to the sites bucket.
#[derive(Clone)]
pub struct KeyRegistry {
    store: kv::Store,
}

fn entry_of(site: &SiteDoc) -> SiteEntry {
    SiteEntry { site_id: site.id.clone(), domain: site.domain.clone(), timezone: site.timezone.clone() }
}

impl KeyRegistry {
    pub fn new(store: kv::Store) -> Self {
        Self { store }
    }

    /// Makes `site.api_key` live with the site's current domain and time zone.
    pub async fn publish(&self, site: &SiteDoc) -> Result<(), ApiError> {
        let value = serde_json::to_vec(&entry_of(site)).map_err(|e| ApiError::Internal(e.into()))?;
        tokio::time::timeout(KV_TIMEOUT, self.store.put(&site.api_key, value.into()))
            .await
            .map_err(|_| ApiError::Unavailable(anyhow::anyhow!("sites bucket put timed out")))?
            .map_err(|e| ApiError::Unavailable(e.into()))?;
        Ok(())
    }

    /// Revokes `key`, retrying briefly: a revoked key must stop working within seconds.
    pub async fn revoke(&self, key: &str) -> Result<(), ApiError> {
        let mut last = None;
        for attempt in 0..3 {
            match tokio::time::timeout(KV_TIMEOUT, self.store.delete(key)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = Some(anyhow::Error::from(e)),
                Err(_) => last = Some(anyhow::anyhow!("sites bucket delete timed out")),
            }
            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
        }
        Err(ApiError::Unavailable(last.unwrap_or_else(|| anyhow::anyhow!("revoke failed"))))
    }

    /// Makes the bucket hold exactly the keys of `sites`; returns (published, revoked).
    pub async fn reconcile(&self, sites: &Collection<SiteDoc>) -> anyhow::Result<(usize, usize)> {
        let mut want: HashMap<String, SiteDoc> = HashMap::new();
        let mut cursor = sites.find(doc! {}).await?;
        while let Some(site) = cursor.try_next().await? {
            want.insert(site.api_key.clone(), site);
        }
        let mut have: Vec<String> = Vec::new();
        let mut keys = self.store.keys().await?;
        while let Some(key) = keys.next().await {
            have.push(key?);
        }
        let mut revoked = 0;
        for key in &have {
            if !want.contains_key(key) {
                self.store.delete(key).await?;
                revoked += 1;
            }
        }
        let mut published = 0;
        for (key, site) in &want {
            let current = self.store.get(key).await?;
            let fresh = serde_json::to_vec(&entry_of(site))?;
            if current.as_deref() != Some(fresh.as_slice()) {
                self.store.put(key, fresh.into()).await?;
                published += 1;
            }
        }
        Ok((published, revoked))
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
