//! Backfills: a new goal or funnel also counts the raw batches still kept from before it
//! existed. The api inserts a [`BackfillDoc`] before it stores the item (so an item never
//! lacks its backfill; a backfill whose item never got stored removes itself), and marks the
//! item `backfilling`; an aggregator takes the job under a lease, runs it in chunks that
//! survive a kill, clears the item's flag and removes the document.
//!
//! The phases, and what the document records of each so that another aggregator can resume:
//! 1. `wait`: until every batch received before the item existed is past the stream (its
//!    flush done), so that the raw batches hold all of them. `wait_seq` is the stream's last
//!    sequence seen once the item was older than the publish margin.
//! 2. `scan`: the raw batches received before `cut_ms`, in receive order, in chunks; `cursor`
//!    is the last batch of the last chunk counted, `seq` that chunk's number (the chunk's
//!    writes carry the watermark `bf-<item>` / `seq`, as a flush's do).
//! 3. `resolve`: the sessions that may still have a session document (first seen within its
//!    keep before the cut) are merged with what the live path kept of them since the cut, in
//!    chunks numbered on from the scan's.

use serde::{Deserialize, Serialize};

/// What a backfill counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    Goal,
    Funnel,
    Segment,
    /// An import of Plausible's export (v3): its chunks of days, counted under the import's
    /// own site id (`crate::imports`).
    Import,
}

/// Where a backfill stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Wait,
    Scan,
    Resolve,
}

/// One backfill, in [`crate::names::collections::BACKFILLS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillDoc {
    /// `site|item_id`.
    #[serde(rename = "_id")]
    pub id: String,
    pub site_id: String,
    pub kind: ItemKind,
    pub item_id: String,
    /// The item's creation (epoch ms): raw batches received before it are the backfill's.
    pub cut_ms: i64,
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seq: Option<i64>,
    /// The last raw batch counted: receive time (ms) and `_id`.
    #[serde(default)]
    pub cursor_ms: i64,
    #[serde(default)]
    pub cursor_id: String,
    /// Chunks written so far.
    #[serde(default)]
    pub seq: i64,
    /// Raw batches per scan chunk (and most sessions per resolve chunk), fixed by the first
    /// aggregator that takes the job, so that every resumption cuts the same chunks.
    #[serde(default)]
    pub chunk: i64,
    /// Raw events read so far (progress).
    #[serde(default)]
    pub events: i64,
    /// An import's number of chunks ([`ItemKind::Import`]): `seq` counts those applied.
    #[serde(default)]
    pub chunks: i64,
    /// The aggregator holding the job, until `lease_until_ms`.
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub lease_until_ms: i64,
}

impl BackfillDoc {
    pub fn id_of(site_id: &str, item_id: &str) -> String {
        format!("{site_id}|{item_id}")
    }

    /// A backfill of the item `item_id` created at `cut_ms`, not started.
    pub fn new(site_id: &str, kind: ItemKind, item_id: &str, cut_ms: i64) -> Self {
        Self {
            id: Self::id_of(site_id, item_id),
            site_id: site_id.to_string(),
            kind,
            item_id: item_id.to_string(),
            cut_ms,
            phase: Phase::Wait,
            wait_seq: None,
            cursor_ms: 0,
            cursor_id: String::new(),
            seq: 0,
            chunk: 0,
            events: 0,
            chunks: 0,
            owner: String::new(),
            lease_until_ms: 0,
        }
    }

    /// The instance id its chunks write under (a flush's `<instance>`).
    pub fn instance(&self) -> String {
        format!("bf-{}", self.item_id)
    }
}
