//! Site API keys: generation, and publishing them to the `cp_sites` key-value bucket that
//! ingest watches. MongoDB is the source of truth for which key a site holds; the bucket
//! follows it, written by the site handlers and repaired by a reconcile every 10 s.
//!
//! Writers race: a rotate, a delete, a domain change and the reconcile can all touch one key
//! at once. These rules keep a revoked key revoked and one key live per site:
//!
//! 1. Keys are random and never reused, and a key is only ever held by the site it was made
//!    for. Revoking one writes a delete marker, and no writer ever puts a value over a marker.
//!    A revoked key is held by no site, then or later: a rotate revokes the old key after
//!    swapping it out, a delete after the document is gone, a failed create after deleting
//!    its site, the reconcile only a key its site does not hold.
//! 2. A new key is published with a create that only succeeds while the bucket has no history
//!    for it ([`KeyRegistry::publish_new`]).
//! 3. Every other write ([`KeyRegistry::refresh`]) reads the key's bucket entry first, *then*
//!    reads from MongoDB the site the key was made for, holding the key (`{_id, api_key}`:
//!    by rule 1 no other site can), then writes that value only if the entry is still the
//!    revision it read. A revoke or another write in between makes the write fail and it
//!    starts over, seeing the newer state; a value read from MongoDB before the revoke can
//!    never be written after it.
//! 4. Rotate publishes the new key first, then swaps it into the site only if the site still
//!    holds the key it read (compare-and-set), then revokes the old key. Of two concurrent
//!    rotates one swap wins; the loser revokes the key it published and starts over. A delete
//!    takes the site out and revokes the key the deleted document held, whatever rotate did
//!    before.
//! 5. The reconcile ([`KeyRegistry::reconcile`]) reads one listing of the sites (the fields
//!    an entry is made of) and makes one pass over the bucket's latest entries, and compares
//!    them in memory: a bucket in step costs no round trip per site. It uses the listing only
//!    to find keys to look at, and repairs each through rule 3. A key live in the bucket that
//!    no listed site holds is revoked once its entry is older than [`ORPHAN_GRACE`] and its
//!    site (the entry names it) does not hold it: a rotate publishes before it swaps (rule
//!    4), and that window must not look like an orphan.
//! 6. A delete marker older than the purge grace (`CP_KEY_PURGE_GRACE_SECS`, 1 h) is purged
//!    from the bucket's stream, up to its own revision (a later message would stay). So the
//!    bucket, and ingest's replay of it at start, hold one message per live key plus the
//!    markers of the last hour, not every key ever revoked. After the purge the bucket has no
//!    history for the key, and rule 2's create would succeed for it again. That is safe:
//!    - no writer means to publish it: `publish_new` only gets fresh keys, and `refresh` finds
//!      no site holding it (rule 1), so it writes nothing;
//!    - a write that read the entry when it was live or a marker expects that revision, and
//!      the key's subject now has no message: it fails. Only a write expecting "no history"
//!      (a `publish_new`, or a `refresh` from before the first publication) could land, if
//!      it were delayed past the revoke *and* the grace; requests end within 10 s and bucket
//!      operations within [`KV_TIMEOUT`], and the grace leaves a wide margin for a message
//!      held in a client's buffer across a reconnect. Should one land anyway, rule 5 revokes
//!      it once it is [`ORPHAN_GRACE`] old;
//!    - ingest removed the key when its watch delivered the marker, within milliseconds. A
//!      watch that was away never sees a marker purged meanwhile; ingest re-reads the whole
//!      bucket on every new watch and every few minutes and drops the keys it no longer holds
//!      (`ingest/src/sites.rs`).
//!
//! Each reconcile run is bounded: at most [`MAX_REPAIRS_PER_RUN`] keys repaired or checked,
//! [`MAX_ORPHANS_PER_RUN`] orphans revoked and [`MAX_PURGES_PER_RUN`] markers purged; the rest
//! waits for the next run. Memory is the listing and the entries: O(sites).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use async_nats::jetstream::kv::{self, Operation, UpdateErrorKind};
use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use mongodb::{Collection, bson::doc};
use shared::{
    clock::{self, Clock},
    ids::SiteKey,
    site::SiteEntry,
    store::{SiteDoc, SiteKeys, site_fields as f},
};

use crate::error::ApiError;

/// How long a bucket operation may take before the request fails with 503.
pub const KV_TIMEOUT: Duration = Duration::from_secs(2);
/// Age below which a live key that no site holds is left alone (a rotate between publishing
/// and swapping; requests end within 10 s).
pub const ORPHAN_GRACE: Duration = Duration::from_secs(30);
/// The purge grace unless told otherwise (`CP_KEY_PURGE_GRACE_SECS`).
pub const DEFAULT_PURGE_GRACE: Duration = Duration::from_secs(3600);
/// Keys one reconcile run repairs or checks one by one (a bucket in step needs none).
pub const MAX_REPAIRS_PER_RUN: usize = 1000;
/// Orphaned live keys one reconcile run revokes.
pub const MAX_ORPHANS_PER_RUN: usize = 1000;
/// Delete markers one reconcile run purges.
pub const MAX_PURGES_PER_RUN: usize = 1000;
/// Revision conflicts a refresh retries before giving up.
const REFRESH_TRIES: usize = 5;

/// A new key: 192 random bits, URL-safe base64, prefixed so it is recognisable in a page.
pub fn new_site_key() -> Result<SiteKey, ApiError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    Ok(SiteKey::from_random(&bytes))
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

/// What a reconcile run saw and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Sites in the listing.
    pub sites: usize,
    /// Keys in the pass over the bucket (live and revoked).
    pub entries: usize,
    /// Keys written live again (missing or stale entries).
    pub published: usize,
    /// Orphaned live keys revoked.
    pub revoked: usize,
    /// Delete markers purged (rule 6).
    pub purged: usize,
    /// Reads made for one key (a bucket entry, a site by `_id`): none while the bucket is in
    /// step with the listing.
    pub key_reads: usize,
    /// Keys left for the next run by the per-run bounds.
    pub deferred: usize,
}

impl Report {
    /// True when the run changed nothing.
    pub fn is_quiet(&self) -> bool {
        self.published == 0 && self.revoked == 0 && self.purged == 0 && self.deferred == 0
    }
}

/// The latest entry of one key, from the pass over the bucket.
struct Latest {
    live: bool,
    revision: u64,
    created_ms: i64,
    value: Vec<u8>,
}

/// Writes to the sites bucket.
#[derive(Clone)]
pub struct KeyRegistry {
    /// The sites bucket; `None` in a [`KeyRegistry::detached`] one.
    store: Option<kv::Store>,
    sites: Collection<SiteKeys>,
    purge_grace: Duration,
    clock: Arc<dyn Clock>,
}

fn entry_of(site: &SiteKeys) -> Result<Vec<u8>, ApiError> {
    let entry = SiteEntry {
        site_id: site.id.clone(),
        domain: site.domain.clone(),
        timezone: site.timezone.clone(),
        currency: site.currency.clone(),
        plausible: site.plausible_compatible,
    };
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
        Self { store: Some(store), ..Self::detached(sites) }
    }

    /// A registry with no bucket behind it: every bucket operation answers 503 `unavailable`.
    /// For tests of the routes that refuse a request before it reaches the bucket
    /// (`api/tests/router.rs`).
    pub fn detached(sites: Collection<SiteDoc>) -> Self {
        Self { store: None, sites: sites.clone_with_type(), purge_grace: DEFAULT_PURGE_GRACE, clock: clock::system() }
    }

    fn store(&self) -> Result<&kv::Store, ApiError> {
        self.store.as_ref().ok_or_else(|| unavailable("access", "this registry is detached from the bucket"))
    }

    /// Purges delete markers once they are `grace` old (rule 6).
    pub fn with_purge_grace(mut self, grace: Duration) -> Self {
        self.purge_grace = grace;
        self
    }

    /// The clock entry ages are measured against (the bucket stamps entries with the NATS
    /// server's time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Publishes a key that has never been live (rule 2). `Revoked` when the bucket already
    /// holds a delete marker for it; a live entry written first by a refresh is left as is.
    pub async fn publish_new(&self, site: &SiteKeys) -> Result<KeyState, ApiError> {
        if write_if(self.store()?, site.api_key.as_str(), entry_of(site)?, 0).await? {
            return Ok(KeyState::Live);
        }
        match within("read", self.store()?.entry(site.api_key.as_str())).await? {
            Some(e) if e.operation == Operation::Put => Ok(KeyState::Live),
            _ => Ok(KeyState::Revoked),
        }
    }

    /// Makes the bucket hold the current entry of site `site_id` under `key`, unless the key
    /// was revoked or the site holds it no more (rule 3).
    pub async fn refresh(&self, site_id: &str, key: &SiteKey) -> Result<KeyState, ApiError> {
        Ok(self.refresh_counted(site_id, key, &mut 0).await?.0)
    }

    /// [`Self::refresh`], adding its reads to `reads`; true when it wrote.
    async fn refresh_counted(&self, site_id: &str, key: &SiteKey, reads: &mut usize) -> Result<(KeyState, bool), ApiError> {
        for _ in 0..REFRESH_TRIES {
            *reads += 1;
            let entry = within("read", self.store()?.entry(key.as_str())).await?;
            let revision = match &entry {
                Some(e) if e.operation != Operation::Put => return Ok((KeyState::Revoked, false)),
                Some(e) => e.revision,
                None => 0,
            };
            // Read after the entry: whatever MongoDB says now is at least as new as that entry.
            *reads += 1;
            let Some(site) = self.holder(site_id, key).await? else {
                return Ok((KeyState::Revoked, false));
            };
            let value = entry_of(&site)?;
            if entry.as_ref().is_some_and(|e| e.value.as_ref() == value.as_slice()) {
                return Ok((KeyState::Live, false));
            }
            if write_if(self.store()?, key.as_str(), value, revision).await? {
                return Ok((KeyState::Live, true));
            }
        }
        Err(unavailable("refresh", "the entry kept changing"))
    }

    /// Site `site_id` if it holds `key` now: an `_id` lookup.
    async fn holder(&self, site_id: &str, key: &SiteKey) -> Result<Option<SiteKeys>, ApiError> {
        Ok(self.sites.find_one(doc! {f::ID: site_id, f::API_KEY: key}).projection(SiteKeys::projection()).await?)
    }

    /// Revokes `key`, retrying briefly: a revoked key must stop working within seconds. The
    /// delete marker it leaves stays until the purge grace has passed (rule 6).
    pub async fn revoke(&self, key: &SiteKey) -> Result<(), ApiError> {
        let mut last = None;
        for attempt in 0..3 {
            match within("delete", self.store()?.delete(key.as_str())).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
        }
        Err(last.unwrap_or_else(|| unavailable("delete", "failed")))
    }

    /// Every site as MongoDB has them now: the fields an entry is made of.
    pub async fn list_sites(&self) -> anyhow::Result<Vec<SiteKeys>> {
        Ok(self.sites.find(doc! {}).projection(SiteKeys::projection()).await?.try_collect().await?)
    }

    /// The latest entry of every key: one pass over the bucket's stream, which keeps one
    /// message per key.
    async fn latest_entries(&self) -> anyhow::Result<HashMap<SiteKey, Latest>> {
        let mut latest = HashMap::new();
        let store = self.store()?;
        let mut watch = store.watch_with_history(">").await?;
        // An empty bucket delivers nothing. Asked after the watch began: anything written
        // since is delivered, the last with nothing left behind it (`delta` 0). (`Store::status`
        // would answer from the info cached when the bucket was opened.)
        if store.stream.clone().info().await?.state.messages == 0 {
            return Ok(latest);
        }
        while let Some(entry) = watch.next().await {
            let entry = entry?;
            let caught_up = entry.delta == 0;
            let live = entry.operation == Operation::Put;
            let created_ms = i64::try_from(entry.created.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
            latest.insert(
                SiteKey::from_stored(entry.key),
                Latest {
                    live,
                    revision: entry.revision,
                    created_ms,
                    value: if live { entry.value.to_vec() } else { Vec::new() },
                },
            );
            if caught_up {
                break;
            }
        }
        Ok(latest)
    }

    /// Repairs the bucket against MongoDB (rules 5 and 6).
    pub async fn reconcile(&self) -> anyhow::Result<Report> {
        let listing = self.list_sites().await?;
        self.reconcile_from(&listing).await
    }

    /// [`Self::reconcile`] with a listing of the sites taken earlier, however stale: it only
    /// says which keys to look at.
    pub async fn reconcile_from(&self, listing: &[SiteKeys]) -> anyhow::Result<Report> {
        let latest = self.latest_entries().await?;
        let mut report = Report { sites: listing.len(), entries: latest.len(), ..Report::default() };
        let mut checks = 0;
        for site in listing {
            let stale = match latest.get(&site.api_key) {
                None => true,
                Some(e) if e.live => e.value != entry_of(site)?,
                // Revoked after the listing was read, as a rotate or delete does. A site that
                // still holds a revoked key now would be a bug: say so, never revive it.
                Some(_) => {
                    if checks == MAX_REPAIRS_PER_RUN {
                        report.deferred += 1;
                        continue;
                    }
                    checks += 1;
                    report.key_reads += 1;
                    if self.holder(&site.id, &site.api_key).await?.is_some() {
                        tracing::error!(site_id = %site.id, "site holds a revoked key; rotating it fixes the site");
                    }
                    false
                }
            };
            if !stale {
                continue;
            }
            if checks == MAX_REPAIRS_PER_RUN {
                report.deferred += 1;
                continue;
            }
            checks += 1;
            if self.refresh_counted(&site.id, &site.api_key, &mut report.key_reads).await?.1 {
                report.published += 1;
            }
        }

        let listed: HashSet<&SiteKey> = listing.iter().map(|s| &s.api_key).collect();
        let now = self.clock.now_ms();
        let orphan_before = now - ORPHAN_GRACE.as_millis() as i64;
        let purge_before = now - self.purge_grace.as_millis() as i64;
        let (mut orphans, mut purges) = (0, 0);
        for (key, entry) in &latest {
            if entry.live && entry.created_ms < orphan_before && !listed.contains(key) {
                if orphans == MAX_ORPHANS_PER_RUN {
                    report.deferred += 1;
                    continue;
                }
                orphans += 1;
                if self.revoke_orphan(key, entry, &mut report.key_reads).await? {
                    report.revoked += 1;
                }
            } else if !entry.live && entry.created_ms < purge_before {
                if purges == MAX_PURGES_PER_RUN {
                    report.deferred += 1;
                    continue;
                }
                purges += 1;
                if self.purge_marker(key, entry.revision).await? {
                    report.purged += 1;
                }
            }
        }
        Ok(report)
    }

    /// Revokes a live key no listed site holds, if its site does not hold it now either and
    /// the entry is still the one read (rule 5).
    async fn revoke_orphan(&self, key: &SiteKey, entry: &Latest, reads: &mut usize) -> anyhow::Result<bool> {
        let Ok(value) = serde_json::from_slice::<SiteEntry>(&entry.value) else {
            // Unreadable: ingest refuses it anyway; take it out.
            return Ok(self.store()?.delete_expect_revision(key.as_str(), Some(entry.revision)).await.is_ok());
        };
        *reads += 1;
        if self.holder(&value.site_id, key).await?.is_some() {
            return Ok(false);
        }
        Ok(self.store()?.delete_expect_revision(key.as_str(), Some(entry.revision)).await.is_ok())
    }

    /// Removes a key's delete marker at `revision` from the bucket's stream (rule 6). Only
    /// messages up to that revision go: a later write, which no writer should make, would
    /// stay.
    async fn purge_marker(&self, key: &SiteKey, revision: u64) -> anyhow::Result<bool> {
        let store = self.store()?;
        let subject = format!("{}{key}", store.prefix);
        let purge = store.stream.purge().filter(subject).sequence(revision + 1);
        let done = tokio::time::timeout(KV_TIMEOUT, std::future::IntoFuture::into_future(purge))
            .await
            .map_err(|_| anyhow::anyhow!("purging a key timed out"))??;
        Ok(done.purged > 0)
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
        assert_eq!(a.as_str().len(), 3 + 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
