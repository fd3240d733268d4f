//! The API key → site map ingest checks every batch against.
//!
//! It lives in memory and is kept current by a watch on the `cp_sites` key-value bucket, which
//! the api writes on site create, rotate and delete. A lookup is a read lock and a hash probe:
//! no network call and no MongoDB on the request path. A deleted key disappears as soon as the
//! watch delivers the delete, well within the contract's 5 s.

use std::{
    collections::HashMap,
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
use shared::{names, site::SiteEntry};

use crate::publisher::Lane;

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

/// Shared handle to the key map.
#[derive(Clone, Default)]
pub struct SiteDirectory {
    entries: Arc<RwLock<HashMap<String, Arc<Site>>>>,
    synced: Arc<AtomicBool>,
}

impl SiteDirectory {
    /// The site for `key`, if the key is live.
    pub fn lookup(&self, key: &str) -> Option<Arc<Site>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    /// True once the initial contents of the bucket have been loaded.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }

    fn apply(&self, entry: kv::Entry) {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        match entry.operation {
            Operation::Put => match serde_json::from_slice::<SiteEntry>(&entry.value) {
                Ok(site) => {
                    map.insert(entry.key, Arc::new(Site::new(site)));
                }
                Err(e) => {
                    // A bad value must not leave a stale, possibly revoked, entry behind.
                    map.remove(&entry.key);
                    tracing::error!(error = %e, "unreadable site entry in key-value bucket");
                }
            },
            Operation::Delete | Operation::Purge => {
                map.remove(&entry.key);
            }
        }
    }

    /// Follows the bucket until `stop` resolves, re-establishing the watch whenever it breaks.
    pub async fn follow(self, store: kv::Store, stop: impl std::future::Future<Output = ()>) {
        let stop = std::pin::pin!(stop);
        let work = async {
            loop {
                match store.watch_with_history(">").await {
                    Ok(mut watch) => {
                        // An empty bucket has no history to deliver: synced right away.
                        if store.status().await.is_ok_and(|s| s.values() == 0) {
                            self.synced.store(true, Ordering::Relaxed);
                        }
                        while let Some(next) = watch.next().await {
                            match next {
                                Ok(entry) => {
                                    let caught_up = entry.delta == 0 || entry.seen_current;
                                    self.apply(entry);
                                    if caught_up {
                                        self.synced.store(true, Ordering::Relaxed);
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "site watch error");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot watch sites bucket"),
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
