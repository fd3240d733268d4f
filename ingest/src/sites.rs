//! The API key → site map ingest checks every batch against.
//!
//! It lives in memory and is kept current by a watch on the `cp_sites` key-value bucket, which
//! the api writes on site create, rotate and delete. A lookup is a read lock and a hash probe:
//! no network call and no MongoDB on the request path. A deleted key disappears as soon as the
//! watch delivers the delete, well within the contract's 5 s.
//!
//! The api purges a revoked key's delete marker from the bucket an hour later (`api/src/keys.rs`
//! rule 6). A watch that was away then never sees that delete, so every new watch replays the
//! whole bucket and, once caught up, drops the keys the replay did not hold; the watch is
//! renewed every [`RESYNC_EVERY`] even while it is healthy, since the client can resume a
//! watch after a disconnect without a replay.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_nats::{
    Subject,
    jetstream::kv::{self, Operation},
};
use futures::StreamExt;
use shared::telemetry::Chain;
use shared::{names, site::SiteEntry};

use crate::publisher::Lane;

/// How often the watch is renewed, replaying the bucket (a bucket of 10,000 sites is about a
/// megabyte).
pub const RESYNC_EVERY: Duration = Duration::from_secs(300);

/// A live site, with what publishing its batches needs worked out once.
#[derive(Debug)]
pub struct Site {
    pub entry: SiteEntry,
    /// The group commit of its batches, on its stream subject.
    pub lane: Arc<Lane>,
}

impl Site {
    pub fn new(entry: SiteEntry) -> Self {
        Self { lane: Lane::new(Subject::from(names::event_subject(&entry.site_id))), entry }
    }
}

/// Drops `domain`'s mapping if it still names `key` (a newer site may have taken the domain).
fn forget_domain(domains: &mut HashMap<String, String>, domain: &str, key: &str) {
    if domains.get(domain).is_some_and(|k| k == key) {
        domains.remove(domain);
    }
}

/// Shared handle to the key map.
#[derive(Clone, Default)]
pub struct SiteDirectory {
    entries: Arc<RwLock<HashMap<String, Arc<Site>>>>,
    /// The key of each site that takes Plausible's Events API, by domain (v3).
    domains: Arc<RwLock<HashMap<String, String>>>,
    synced: Arc<AtomicBool>,
}

impl SiteDirectory {
    /// The site for `key`, if the key is live.
    pub fn lookup(&self, key: &str) -> Option<Arc<Site>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    /// The key and site that take Plausible's Events API for `domain` (v3).
    pub fn lookup_domain(&self, domain: &str) -> Option<(String, Arc<Site>)> {
        let key = self.domains.read().unwrap_or_else(|p| p.into_inner()).get(domain).cloned()?;
        let site = self.lookup(&key)?;
        (site.entry.plausible && site.entry.domain == domain).then_some((key, site))
    }

    /// A directory holding exactly `entries` (API key, site), caught up as a watch over a
    /// bucket holding them would leave it: for tests and tools that run without NATS, which
    /// change it with [`Self::put`] and [`Self::remove`].
    pub fn from_entries(entries: impl IntoIterator<Item = (String, SiteEntry)>) -> Self {
        let dir = Self::default();
        for (key, entry) in entries {
            dir.put(key, entry);
        }
        dir.synced.store(true, Ordering::Relaxed);
        dir
    }

    /// True once the initial contents of the bucket have been loaded.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    /// Makes `key` live for `entry`, as a put in the bucket does.
    pub fn put(&self, key: String, entry: SiteEntry) {
        // Domains, then entries: the order every writer takes them in.
        let mut domains = self.domains.write().unwrap_or_else(|p| p.into_inner());
        let old =
            self.entries.write().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), Arc::new(Site::new(entry.clone())));
        if let Some(old) = old {
            forget_domain(&mut domains, &old.entry.domain, &key);
        }
        if entry.plausible {
            domains.insert(entry.domain, key);
        }
    }

    /// Ends `key`, as a delete in the bucket does.
    pub fn remove(&self, key: &str) {
        let mut domains = self.domains.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = self.entries.write().unwrap_or_else(|p| p.into_inner()).remove(key) {
            forget_domain(&mut domains, &old.entry.domain, key);
        }
    }

    fn apply(&self, key: String, operation: Operation, value: &[u8]) {
        match operation {
            Operation::Put => match serde_json::from_slice::<SiteEntry>(value) {
                Ok(site) => self.put(key, site),
                Err(e) => {
                    // A bad value must not leave a stale, possibly revoked, entry behind.
                    self.remove(&key);
                    tracing::error!(error = %Chain(&e), "unreadable site entry in key-value bucket");
                }
            },
            Operation::Delete | Operation::Purge => self.remove(&key),
        }
    }

    /// Drops every key a full replay of the bucket did not deliver.
    fn keep_only(&self, replayed: &HashSet<String>) {
        // Domains, then entries: the order every writer takes them in.
        let mut domains = self.domains.write().unwrap_or_else(|p| p.into_inner());
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        let before = map.len();
        map.retain(|key, _| replayed.contains(key));
        domains.retain(|_, key| map.contains_key(key));
        if map.len() < before {
            tracing::info!(dropped = before - map.len(), "keys gone from the sites bucket dropped");
        }
    }

    /// Follows the bucket until `stop` resolves, re-establishing the watch whenever it breaks.
    pub async fn follow(self, store: kv::Store, stop: impl std::future::Future<Output = ()>) {
        let stop = std::pin::pin!(stop);
        let work = async {
            loop {
                match store.watch_with_history(">").await {
                    Ok(mut watch) => {
                        // Keys the replay delivered, until it has caught up.
                        let mut replayed = Some(HashSet::new());
                        // An empty bucket has no history to deliver: caught up right away.
                        // Asked after the watch began, so a write since then is delivered
                        // anyway; and asked afresh (`Store::status` answers from the info
                        // cached when the bucket was opened).
                        if store.stream.clone().info().await.is_ok_and(|i| i.state.messages == 0) {
                            self.keep_only(&HashSet::new());
                            replayed = None;
                            self.synced.store(true, Ordering::Relaxed);
                        }
                        let renew = tokio::time::sleep(RESYNC_EVERY);
                        tokio::pin!(renew);
                        loop {
                            let next = tokio::select! {
                                next = watch.next() => next,
                                () = &mut renew => break,
                            };
                            match next {
                                Some(Ok(entry)) => {
                                    let caught_up = entry.delta == 0 || entry.seen_current;
                                    if let Some(keys) = replayed.as_mut() {
                                        keys.insert(entry.key.clone());
                                    }
                                    self.apply(entry.key, entry.operation, &entry.value);
                                    if caught_up {
                                        if let Some(keys) = replayed.take() {
                                            self.keep_only(&keys);
                                        }
                                        self.synced.store(true, Ordering::Relaxed);
                                    }
                                }
                                Some(Err(e)) => {
                                    tracing::warn!(error = %Chain(&e), "site watch error");
                                    break;
                                }
                                None => break,
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %Chain(&e), "cannot watch sites bucket"),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        tokio::select! {
            () = stop => {},
            () = work => {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &SiteDirectory, key: &str, site_id: &str) {
        let value = serde_json::to_vec(&SiteEntry {
            site_id: site_id.into(),
            domain: "example.com".into(),
            timezone: "UTC".into(),
            currency: "USD".into(),
            plausible: false,
        })
        .expect("json");
        dir.apply(key.to_string(), Operation::Put, &value);
    }

    #[test]
    fn a_replay_drops_the_keys_the_bucket_no_longer_holds() {
        let dir = SiteDirectory::default();
        put(&dir, "cp_live", "a");
        put(&dir, "cp_purged_while_away", "b");
        // The new watch replays only the live key; the other's delete marker was purged.
        let replayed: HashSet<String> = ["cp_live".to_string()].into();
        dir.keep_only(&replayed);
        assert!(dir.lookup("cp_live").is_some(), "a replayed key stays");
        assert!(dir.lookup("cp_purged_while_away").is_none(), "a key the replay did not hold is dropped");
    }

    #[test]
    fn deletes_and_unreadable_values_remove_a_key() {
        let dir = SiteDirectory::default();
        for (case, op, value) in
            [("delete", Operation::Delete, &b""[..]), ("purge", Operation::Purge, b""), ("unreadable", Operation::Put, b"{")]
        {
            put(&dir, "cp_k", "a");
            dir.apply("cp_k".into(), op, value);
            assert!(dir.lookup("cp_k").is_none(), "case {case}");
        }
    }
}
