//! A bounded top list: the keys of one dimension (pages, click selectors, sources, …) in one
//! bucket, with exact counts, and everything else folded into one `(other)` entry.
//!
//! Anyone holding a site's public key can mint new keys, so the list must not grow with them.
//! It keeps at most [`Capacity::keys`] entries and [`Capacity::bytes`] of key and text. The
//! rules, which keep every stored count exact:
//!
//! 1. A key already in the list adds to its own entry.
//! 2. A key the list has ever folded (kept in a Bloom filter) adds to `(other)`, for good: its
//!    earlier occurrences are in `(other)`, so an entry for it would undercount.
//! 3. A new key takes a free slot. When the list is full it evicts the lowest entry — fewest
//!    occurrences, then least recently counted — provided that entry has no more occurrences
//!    than the newcomer brings; the evicted entry's counts move to `(other)` and its key into
//!    the filter. Otherwise the newcomer itself is folded.
//!
//! So the entries plus `(other)` always add up to the bucket's total, each entry's count is
//! exact (a key is only ever admitted on its first occurrence in the bucket), and a key that
//! becomes popular late still gets in as long as it arrives before the filter saturates: a
//! full filter answers "folded" for everything, which freezes the list rather than making a
//! count wrong.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use super::codec::{DecodeError, Reader, put_bytes, put_varint};

/// The label of the folded entry.
pub const OTHER: &str = "(other)";

const FORMAT: u8 = 1;
/// Entries stored in a list's head: what a reader fetches first (see [`merge_heads`]).
pub const HEAD_ENTRIES: usize = 64;
/// Longest key or text stored, in bytes: the tracker's own bounds are well below.
const MAX_STORED: usize = 16 * 1024;
const MAX_ENTRIES: usize = 1 << 20;
/// Bloom filter probes per key.
const PROBES: u64 = 4;

/// Occurrences of a key: `n` is what the list ranks by (pageviews, clicks, visits, …);
/// `conv` is conversions, for the dimensions that have them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub n: u64,
    pub conv: u64,
    /// Further counters of a key, for the dimensions that keep them (see [`page_ext`]).
    pub ext: [u64; EXT],
}

/// How many further counters a key may carry.
pub const EXT: usize = 11;

/// The further counters of a page ([`super::Dim::Page`]): what a page filter reports.
pub mod page_ext {
    /// Sum of `depth - prev` of the page's scroll events.
    pub const SCROLL_SUM: usize = 0;
    /// Engaged milliseconds of the page's time events.
    pub const TIME_MS: usize = 1;
    /// The page's click events.
    pub const CLICKS: usize = 2;
    /// Scroll events that reached 25, 50, 75 and 100 percent: `REACHED + 0..4`.
    pub const REACHED: usize = 3;
    /// Sessions that entered on the page.
    pub const ENTRIES: usize = 7;
    /// Of those, sessions that did not bounce.
    pub const ENGAGED: usize = 8;
    /// Distinct visitors who viewed the page in the bucket.
    pub const VISITORS: usize = 9;
    /// Pageviews of the page that were followed by another pageview of their session (v3):
    /// its exits are its pageviews less these.
    pub const CONTINUED: usize = 10;
}

impl Counts {
    /// `n` occurrences and nothing else.
    pub fn of(n: u64) -> Self {
        Self { n, ..Self::default() }
    }

    pub fn add(&mut self, o: Counts) {
        self.n += o.n;
        self.conv += o.conv;
        for (a, b) in self.ext.iter_mut().zip(o.ext) {
            *a += b;
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        put_varint(out, self.n);
        put_varint(out, self.conv);
        let mask = self.ext.iter().enumerate().filter(|(_, v)| **v != 0).fold(0_u64, |m, (i, _)| m | 1 << i);
        put_varint(out, mask);
        for v in self.ext.iter().filter(|v| **v != 0) {
            put_varint(out, *v);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut c = Self { n: r.varint()?, conv: r.varint()?, ext: [0; EXT] };
        let mask = r.varint()?;
        if mask >> EXT != 0 {
            return Err(DecodeError::new("top list", "unknown counter"));
        }
        for (i, slot) in c.ext.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                *slot = r.varint()?;
            }
        }
        Ok(c)
    }
}

/// What one flush adds to one key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopDelta {
    pub counts: Counts,
    /// A text seen with the key (click texts); among several, the greatest is kept so that
    /// replaying a flush cannot change it.
    pub text: Option<String>,
}

impl TopDelta {
    pub fn add(&mut self, counts: Counts, text: Option<&str>) {
        self.counts.add(counts);
        keep_text(&mut self.text, text);
    }
}

fn keep_text(current: &mut Option<String>, seen: Option<&str>) {
    if let Some(t) = seen.filter(|t| !t.is_empty())
        && current.as_deref().is_none_or(|cur| t > cur)
    {
        *current = Some(t.to_string());
    }
}

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopEntry {
    pub key: String,
    pub counts: Counts,
    pub text: Option<String>,
    /// The list's apply sequence when this entry last counted something (eviction order).
    last: u64,
}

impl TopEntry {
    fn bytes(&self) -> usize {
        self.key.len() + self.text.as_ref().map_or(0, String::len)
    }
}

/// How much one list may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Most entries.
    pub keys: usize,
    /// Most bytes of keys and texts.
    pub bytes: usize,
    /// Size of the fold filter, as log2 of its bits; allocated at the first fold.
    pub filter_bits_log2: u8,
}

/// A bounded top list; see the module documentation for its rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopList {
    entries: Vec<TopEntry>,
    other: Counts,
    folded: Bloom,
    seq: u64,
    /// How many entries the list holds; more than `entries.len()` when only its head was read.
    stored: usize,
}

impl TopList {
    pub fn entries(&self) -> &[TopEntry] {
        &self.entries
    }

    /// The folded counts.
    pub fn other(&self) -> Counts {
        self.other
    }

    /// False when only the list's head was read: `entries` are then its highest ones.
    pub fn is_complete(&self) -> bool {
        self.entries.len() >= self.stored
    }

    /// Entries plus `(other)`: the bucket's total for this dimension (of a complete list).
    pub fn total(&self) -> Counts {
        debug_assert!(self.is_complete(), "total of a list read without its tail");
        let mut t = self.other;
        for e in &self.entries {
            t.add(e.counts);
        }
        t
    }

    /// Adds one flush's increments.
    pub fn apply(&mut self, deltas: &BTreeMap<String, TopDelta>, cap: &Capacity) {
        self.seq += 1;
        let seq = self.seq;
        let index: HashMap<&str, usize> = self.entries.iter().enumerate().map(|(i, e)| (e.key.as_str(), i)).collect();
        let mut hits: Vec<(usize, &TopDelta)> = Vec::new();
        let mut newcomers: Vec<(&String, &TopDelta)> = Vec::new();
        for (key, delta) in deltas {
            if let Some(&i) = index.get(key.as_str()) {
                hits.push((i, delta));
            } else if self.folded.contains(key) {
                self.other.add(delta.counts);
            } else {
                newcomers.push((key, delta));
            }
        }
        drop(index);
        for (i, delta) in hits {
            let e = &mut self.entries[i];
            e.counts.add(delta.counts);
            keep_text(&mut e.text, delta.text.as_deref());
            e.last = seq;
        }
        if newcomers.is_empty() {
            return;
        }
        debug_assert!(self.is_complete(), "a list read without its tail is never written");
        // Biggest newcomers first, so a burst of one-offs cannot crowd out a key that arrived
        // with many occurrences in the same flush.
        newcomers.sort_by(|a, b| b.1.counts.n.cmp(&a.1.counts.n).then_with(|| a.0.cmp(b.0)));

        // Candidates for eviction, lowest first: untouched in this flush, fewest occurrences,
        // least recently counted, then by key for determinism.
        let mut victims: Vec<usize> = (0..self.entries.len()).filter(|&i| self.entries[i].last < seq).collect();
        victims.sort_by(|&a, &b| {
            let (x, y) = (&self.entries[a], &self.entries[b]);
            x.counts.n.cmp(&y.counts.n).then(x.last.cmp(&y.last)).then_with(|| y.key.cmp(&x.key))
        });
        let mut slots: Vec<Option<TopEntry>> = std::mem::take(&mut self.entries).into_iter().map(Some).collect();
        let mut live = slots.len();
        let mut bytes: usize = slots.iter().flatten().map(TopEntry::bytes).sum();
        let mut next_victim = 0;
        for (key, delta) in newcomers {
            let entry = TopEntry { key: key.clone(), counts: delta.counts, text: delta.text.clone(), last: seq };
            let need = entry.bytes();
            // How many of the next victims must go to make room, if they may.
            let (mut free_keys, mut free_bytes, mut take) =
                (cap.keys.saturating_sub(live), cap.bytes.saturating_sub(bytes), 0);
            while free_keys == 0 || free_bytes < need {
                let Some(v) = victims.get(next_victim + take).and_then(|&v| slots[v].as_ref()) else { break };
                if v.counts.n > delta.counts.n {
                    break;
                }
                free_keys += 1;
                free_bytes += v.bytes();
                take += 1;
            }
            if free_keys == 0 || free_bytes < need {
                self.other.add(delta.counts);
                self.folded.insert(key, cap.filter_bits_log2);
                continue;
            }
            for &v in &victims[next_victim..next_victim + take] {
                if let Some(gone) = slots[v].take() {
                    self.other.add(gone.counts);
                    self.folded.insert(&gone.key, cap.filter_bits_log2);
                    bytes -= gone.bytes();
                    live -= 1;
                }
            }
            next_victim += take;
            bytes += need;
            live += 1;
            slots.push(Some(entry));
        }
        self.entries = slots.into_iter().flatten().collect();
        self.stored = self.entries.len();
    }

    /// The binary form stored in MongoDB, in two parts: the head (format, `(other)`, how many
    /// entries, and the [`HEAD_ENTRIES`] highest entries) and the tail (the other entries,
    /// `None` when there are none). Entries are sorted most counted first, ties by key, so the
    /// head is exactly the list's top [`HEAD_ENTRIES`].
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut sorted: Vec<&TopEntry> = self.entries.iter().collect();
        sorted.sort_by(|a, b| rank(a.counts.n, &a.key, b.counts.n, &b.key));
        let mut head = Vec::with_capacity(64 + HEAD_ENTRIES * 32);
        head.push(FORMAT);
        put_varint(&mut head, self.seq);
        self.other.put(&mut head);
        put_varint(&mut head, sorted.len() as u64);
        let split = sorted.len().min(HEAD_ENTRIES);
        for e in &sorted[..split] {
            put_entry(&mut head, e);
        }
        if split == sorted.len() {
            return (head, None);
        }
        let mut tail = Vec::with_capacity((sorted.len() - split) * 32);
        for e in &sorted[split..] {
            put_entry(&mut tail, e);
        }
        (head, Some(tail))
    }

    /// The fold filter's bits, stored apart from the entries so that readers, who do not need
    /// it, can leave it out of what they fetch. `None` while nothing has been folded.
    pub fn filter_bits(&self) -> Option<&[u8]> {
        (!self.folded.bits.is_empty()).then_some(self.folded.bits.as_slice())
    }

    /// Decodes a list from its head and, when fetched, its tail and filter. Without the tail
    /// the list is incomplete ([`Self::is_complete`]): fine for [`merge_heads`], not for writing.
    pub fn decode(head: &[u8], tail: Option<&[u8]>, filter: Option<&[u8]>) -> Result<Self, DecodeError> {
        let mut r = Reader::new(head, "top list");
        let format = r.u8()?;
        if format != FORMAT {
            return Err(DecodeError::new("top list", format!("unknown format {format}")));
        }
        let seq = r.varint()?;
        let other = Counts::read(&mut r)?;
        let stored = r.len(MAX_ENTRIES)?;
        let in_head = stored.min(HEAD_ENTRIES);
        let mut entries = Vec::with_capacity(if tail.is_some() { stored.min(4096) } else { in_head });
        for _ in 0..in_head {
            entries.push(read_entry(&mut r)?);
        }
        r.finish()?;
        if let Some(bytes) = tail {
            let mut t = Reader::new(bytes, "top list tail");
            for _ in in_head..stored {
                entries.push(read_entry(&mut t)?);
            }
            t.finish()?;
        }
        let bits = filter.unwrap_or_default().to_vec();
        if !(bits.is_empty() || (bits.len().is_power_of_two() && bits.len() >= 8 && bits.len() <= 1 << 21)) {
            return Err(DecodeError::new("fold filter", "size is not a power of two from 8 bytes to 2 MiB"));
        }
        Ok(Self { entries, other, folded: Bloom { bits }, seq, stored })
    }
}

impl TopList {
    /// This list (read by its head alone) completed with its tail.
    pub fn with_tail(&self, tail: &[u8]) -> Result<Self, DecodeError> {
        let mut t = Reader::new(tail, "top list tail");
        let mut full = self.clone();
        for _ in full.entries.len()..full.stored {
            full.entries.push(read_entry(&mut t)?);
        }
        t.finish()?;
        Ok(full)
    }
}

/// Order of rows: most counted first, ties by key ascending.
fn rank(an: u64, ak: &str, bn: u64, bk: &str) -> std::cmp::Ordering {
    bn.cmp(&an).then_with(|| ak.cmp(bk))
}

fn put_entry(out: &mut Vec<u8>, e: &TopEntry) {
    put_bytes(out, e.key.as_bytes());
    e.counts.put(out);
    put_varint(out, e.last);
    put_bytes(out, e.text.as_deref().unwrap_or("").as_bytes());
}

fn read_entry(r: &mut Reader<'_>) -> Result<TopEntry, DecodeError> {
    let key = r.string(MAX_STORED)?;
    let counts = Counts::read(r)?;
    let last = r.varint()?;
    let text = r.string(MAX_STORED)?;
    Ok(TopEntry { key, counts, text: Some(text).filter(|t| !t.is_empty()), last })
}

/// A Bloom filter of folded keys. Empty until the first fold, so small sites store nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Bloom {
    bits: Vec<u8>,
}

impl Bloom {
    fn probes(key: &str, nbits: u64) -> impl Iterator<Item = u64> {
        // SHA-256 rather than std's hasher: the filter is stored, so its hash must never change.
        let h = Sha256::digest(key.as_bytes());
        let h1 = u64::from_le_bytes(h[0..8].try_into().unwrap_or_default());
        let h2 = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default()) | 1;
        (0..PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) & (nbits - 1))
    }

    fn contains(&self, key: &str) -> bool {
        if self.bits.is_empty() {
            return false;
        }
        let nbits = self.bits.len() as u64 * 8;
        Self::probes(key, nbits).all(|bit| self.bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
    }

    fn insert(&mut self, key: &str, bits_log2: u8) {
        if self.bits.is_empty() {
            self.bits = vec![0; (1_usize << bits_log2.clamp(6, 24)) / 8];
        }
        let nbits = self.bits.len() as u64 * 8;
        for bit in Self::probes(key, nbits) {
            self.bits[(bit / 8) as usize] |= 1 << (bit % 8);
        }
    }
}

/// One row of a merged list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub key: String,
    pub counts: Counts,
    pub text: Option<String>,
}

/// Merges the lists of several buckets into the `limit` highest rows, most counted first,
/// ties by key ascending. The buckets' `(other)` counts add up into one `(other)` row, listed
/// only when it ranks within the limit.
pub fn merge<'a>(lists: impl IntoIterator<Item = &'a TopList>, limit: usize) -> Vec<Ranked> {
    let mut by_key: HashMap<&'a str, (Counts, Option<String>)> = HashMap::new();
    let mut other = Counts::default();
    for list in lists {
        other.add(list.other);
        for e in &list.entries {
            let slot = by_key.entry(e.key.as_str()).or_default();
            slot.0.add(e.counts);
            keep_text(&mut slot.1, e.text.as_deref());
        }
    }
    let mut rows: Vec<Ranked> =
        by_key.into_iter().map(|(key, (counts, text))| Ranked { key: key.to_string(), counts, text }).collect();
    if other.n > 0 {
        rows.push(Ranked { key: OTHER.to_string(), counts: other, text: None });
    }
    let rank = |a: &Ranked, b: &Ranked| b.counts.n.cmp(&a.counts.n).then_with(|| a.key.cmp(&b.key));
    if rows.len() > limit {
        rows.select_nth_unstable_by(limit, rank);
        rows.truncate(limit);
    }
    rows.sort_by(rank);
    rows
}

/// What [`merge_heads`] concluded.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadMerge {
    /// The rows, exactly as [`merge`] of the complete lists would give them.
    Exact(Vec<Ranked>),
    /// The heads cannot settle the rows: read the tails of these lists (indexes) and [`merge`].
    NeedTails(Vec<usize>),
}

/// [`merge`] from lists of which only the heads may have been read, when their heads prove
/// the answer: the rows' counts must be complete, and nothing outside the heads may rank
/// among them. A key absent from a list's head has, in that list, at most the head's lowest
/// count `m`; a key seen in no head at most the sum of the `m`s.
pub fn merge_heads(lists: &[&TopList], limit: usize) -> HeadMerge {
    let partial: Vec<usize> = (0..lists.len()).filter(|&i| !lists[i].is_complete()).collect();
    if partial.is_empty() {
        return HeadMerge::Exact(merge(lists.iter().copied(), limit));
    }
    // The lowest head entry of each partial list: what its tail entries stay at or below.
    let floor = |i: usize| lists[i].entries.iter().map(|e| e.counts.n).min().unwrap_or(0);
    let floors: Vec<(usize, u64)> = partial.iter().map(|&i| (i, floor(i))).collect();
    let mut seen: HashMap<&str, (Counts, u64)> = HashMap::new();
    for list in lists {
        for e in &list.entries {
            seen.entry(e.key.as_str()).or_default().0.add(e.counts);
        }
    }
    // How much each seen key may still have in the tails of lists whose head lacks it.
    let heads: Vec<(std::collections::HashSet<&str>, u64)> =
        floors.iter().map(|&(i, f)| (lists[i].entries.iter().map(|e| e.key.as_str()).collect(), f)).collect();
    for (key, (_, missing)) in seen.iter_mut() {
        *missing = heads.iter().filter(|(keys, _)| !keys.contains(key)).map(|(_, f)| f).sum();
    }
    let unseen_bound: u64 = floors.iter().map(|(_, f)| f).sum();
    let rows = merge(lists.iter().copied(), limit);
    let need = || HeadMerge::NeedTails(partial.clone());
    // Every listed row exact.
    if rows.iter().any(|r| r.key != OTHER && seen.get(r.key.as_str()).is_some_and(|(_, missing)| *missing > 0)) {
        return need();
    }
    // Nothing unlisted could rank among the rows (strictly above the last one's count, or
    // level with it, since its key is unknown or its tail count is).
    let threshold = if rows.len() == limit { rows.last().map_or(0, |r| r.counts.n) } else { 0 };
    if rows.len() < limit && unseen_bound > 0 {
        return need();
    }
    let listed: std::collections::HashSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let single = partial.len() == 1 && lists.len() == 1;
    for (key, (counts, missing)) in &seen {
        if *missing > 0 && !listed.contains(key) && counts.n + missing >= threshold {
            return need();
        }
    }
    // One list read alone: its head is exactly its top entries, so a tail key ranks below
    // every head key. Otherwise the bound must be strict.
    if !single && unseen_bound >= threshold && unseen_bound > 0 {
        return need();
    }
    HeadMerge::Exact(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: Capacity = Capacity { keys: 3, bytes: 1 << 20, filter_bits_log2: 12 };

    fn deltas(items: &[(&str, u64)]) -> BTreeMap<String, TopDelta> {
        items.iter().map(|(k, n)| (k.to_string(), TopDelta { counts: Counts::of(*n), text: None })).collect()
    }

    fn counts(list: &TopList) -> BTreeMap<String, u64> {
        list.entries().iter().map(|e| (e.key.clone(), e.counts.n)).collect()
    }

    fn map(items: &[(&str, u64)]) -> BTreeMap<String, u64> {
        items.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn entries_plus_other_always_add_up_to_the_total() {
        let mut list = TopList::default();
        let mut total = 0;
        for round in 0..50_u64 {
            let keys: Vec<(String, u64)> =
                (0..7).map(|i| (format!("/p{}", (round * 7 + i * i) % 23), 1 + (round + i) % 3)).collect();
            let d: BTreeMap<String, TopDelta> = keys
                .iter()
                .map(|(k, n)| (k.clone(), TopDelta { counts: Counts { n: *n, conv: 1, ..Counts::default() }, text: None }))
                .collect();
            total += d.values().map(|x| x.counts.n).sum::<u64>();
            list.apply(&d, &CAP);
            assert!(list.entries().len() <= 3, "round {round}: capped");
            assert_eq!(list.total().n, total, "round {round}: entries + (other) = total");
        }
    }

    #[test]
    fn a_full_list_folds_one_offs_and_keeps_counting_its_keys_exactly() {
        let mut list = TopList::default();
        list.apply(&deltas(&[("/a", 5), ("/b", 3), ("/c", 2)]), &CAP);
        // A newcomer with one occurrence cannot evict entries with more.
        list.apply(&deltas(&[("/d", 1)]), &CAP);
        assert_eq!(counts(&list), map(&[("/a", 5), ("/b", 3), ("/c", 2)]));
        assert_eq!(list.other().n, 1);
        // Once folded, always folded: /d's later occurrences go to (other) too, even when it
        // now brings more than the lowest entry.
        list.apply(&deltas(&[("/d", 9), ("/a", 1)]), &CAP);
        assert_eq!(counts(&list), map(&[("/a", 6), ("/b", 3), ("/c", 2)]));
        assert_eq!(list.other().n, 10);
    }

    #[test]
    fn a_late_popular_key_evicts_the_lowest_entry_which_moves_to_other() {
        let mut list = TopList::default();
        list.apply(&deltas(&[("/x1", 1), ("/x2", 1), ("/x3", 1)]), &CAP);
        list.apply(&deltas(&[("/x1", 1), ("/x3", 1)]), &CAP);
        // /x2 is lowest (1 occurrence, least recent); /pricing brings 2.
        list.apply(&deltas(&[("/pricing", 2)]), &CAP);
        assert_eq!(counts(&list), map(&[("/x1", 2), ("/x3", 2), ("/pricing", 2)]));
        assert_eq!(list.other().n, 1, "/x2's occurrence");
        // /x2 comes back: folded, its count would be wrong as an entry.
        list.apply(&deltas(&[("/x2", 5)]), &CAP);
        assert_eq!(list.other().n, 6);
        assert_eq!(list.total().n, 12);
    }

    #[test]
    fn among_equal_one_offs_the_least_recent_makes_room() {
        let mut list = TopList::default();
        list.apply(&deltas(&[("/a", 1)]), &CAP);
        list.apply(&deltas(&[("/b", 1)]), &CAP);
        list.apply(&deltas(&[("/c", 1)]), &CAP);
        list.apply(&deltas(&[("/d", 1)]), &CAP);
        assert_eq!(counts(&list), map(&[("/b", 1), ("/c", 1), ("/d", 1)]));
        list.apply(&deltas(&[("/d", 1), ("/e", 1)]), &CAP);
        assert_eq!(counts(&list), map(&[("/c", 1), ("/d", 2), ("/e", 1)]));
        assert_eq!(list.other().n, 2);
    }

    #[test]
    fn the_byte_budget_bounds_long_keys() {
        let cap = Capacity { keys: 100, bytes: 25, filter_bits_log2: 12 };
        let mut list = TopList::default();
        let long = "/".to_string() + &"x".repeat(19);
        list.apply(&deltas(&[(long.as_str(), 1), ("/short", 1)]), &cap);
        assert_eq!(list.entries().len(), 1, "20 + 6 bytes do not fit in 25");
        assert_eq!(list.total().n, 2);
    }

    #[test]
    fn click_text_keeps_the_greatest_non_empty_one() {
        let mut list = TopList::default();
        let mut d = BTreeMap::new();
        d.entry("button#cta".to_string()).or_insert_with(TopDelta::default).add(Counts::of(1), Some(""));
        list.apply(&d, &CAP);
        assert_eq!(list.entries()[0].text, None);
        let mut d = BTreeMap::new();
        let slot = d.entry("button#cta".to_string()).or_insert_with(TopDelta::default);
        slot.add(Counts::of(1), Some("Buy"));
        slot.add(Counts::of(1), Some("Anmelden"));
        list.apply(&d, &CAP);
        assert_eq!((list.entries()[0].counts.n, list.entries()[0].text.as_deref()), (3, Some("Buy")));
    }

    #[test]
    fn encoding_round_trips_and_damage_is_an_error() {
        let mut list = TopList::default();
        list.apply(&deltas(&[("/a", 5), ("/b", 3), ("/c", 2), ("/d", 1)]), &CAP);
        list.apply(&deltas(&[("/é", 9)]), &CAP);
        let (head, tail) = list.encode();
        assert!(tail.is_none(), "5 entries fit in the head");
        let bytes = head;
        let back = TopList::decode(&bytes, None, list.filter_bits()).expect("decodes");
        assert_eq!(back.total(), list.total());
        assert_eq!(counts(&back), counts(&list));
        assert_eq!(back.entries()[0].key, "/é", "stored most counted first");
        assert!(back.folded.contains("/d") && back.folded.contains("/c"));
        for cut in [0, 1, 5, bytes.len() - 1] {
            assert!(TopList::decode(&bytes[..cut], None, None).is_err(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert!(TopList::decode(&bad, None, None).is_err(), "unknown format");
        assert!(TopList::decode(&bytes, None, Some(&[0; 12])).is_err(), "filter of a bad size");
        let unfiltered = TopList::decode(&bytes, None, None).expect("readers may skip the filter");
        assert_eq!(unfiltered.total(), list.total());
    }

    #[test]
    fn merge_sums_buckets_folds_other_and_breaks_ties_by_name() {
        let mut day1 = TopList::default();
        day1.apply(&deltas(&[("/a", 4), ("/b", 2), ("/c", 2)]), &CAP);
        day1.apply(&deltas(&[("/d", 1)]), &CAP); // folded: (other) 1
        let mut day2 = TopList::default();
        day2.apply(&deltas(&[("/b", 2), ("/e", 3)]), &CAP);
        let rows = merge([&day1, &day2], 10);
        let got: Vec<(&str, u64)> = rows.iter().map(|r| (r.key.as_str(), r.counts.n)).collect();
        assert_eq!(got, vec![("/a", 4), ("/b", 4), ("/e", 3), ("/c", 2), (OTHER, 1)]);
        let top2: Vec<String> = merge([&day1, &day2], 2).into_iter().map(|r| r.key).collect();
        assert_eq!(top2, vec!["/a", "/b"], "(other) is listed only when it ranks");
        assert_eq!(merge(std::iter::empty(), 10), vec![]);
    }

    #[test]
    fn many_distinct_keys_stay_within_the_capacity_and_the_filter_keeps_counts_exact() {
        let cap = Capacity { keys: 1000, bytes: 1 << 20, filter_bits_log2: 17 };
        let mut list = TopList::default();
        // 20,000 one-off paths, then a popular page arriving late, a few at a time.
        for chunk in 0..40 {
            let d: BTreeMap<String, TopDelta> = (0..500)
                .map(|i| (format!("/junk/{}", chunk * 500 + i), TopDelta { counts: Counts::of(1), text: None }))
                .collect();
            list.apply(&d, &cap);
        }
        for _ in 0..50 {
            list.apply(&deltas(&[("/pricing", 2)]), &cap);
        }
        assert_eq!(list.entries().len(), 1000);
        assert_eq!(list.total().n, 20_100);
        let pricing = list.entries().iter().find(|e| e.key == "/pricing").expect("admitted late");
        assert_eq!(pricing.counts.n, 100, "exact");
        let (head, tail) = list.encode();
        assert!(head.len() + tail.map_or(0, |t| t.len()) < 64 * 1024, "bounded document");
    }

    fn list_of(items: &[(&str, u64)]) -> TopList {
        let mut l = TopList::default();
        l.apply(&deltas(items), &Capacity { keys: 10_000, bytes: 1 << 22, filter_bits_log2: 12 });
        l
    }

    fn head_only(l: &TopList) -> TopList {
        let (head, _) = l.encode();
        TopList::decode(&head, None, None).expect("head decodes")
    }

    #[test]
    fn a_long_list_splits_into_a_head_of_its_top_entries_and_a_tail() {
        let items: Vec<(String, u64)> = (0..200).map(|i| (format!("/p{i:03}"), 1 + (i % 7) as u64)).collect();
        let refs: Vec<(&str, u64)> = items.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        let list = list_of(&refs);
        let (head, tail) = list.encode();
        let tail = tail.expect("a tail");
        let full = TopList::decode(&head, Some(&tail), None).expect("decodes");
        assert!(full.is_complete());
        assert_eq!(full.total(), list.total());
        let partial = TopList::decode(&head, None, None).expect("head alone");
        assert!(!partial.is_complete());
        assert_eq!(partial.entries().len(), HEAD_ENTRIES);
        let head_min = partial.entries().iter().map(|e| e.counts.n).min().unwrap_or(0);
        let tail_max = full.entries()[HEAD_ENTRIES..].iter().map(|e| e.counts.n).max().unwrap_or(0);
        assert!(head_min >= tail_max, "the head holds the highest counts: {head_min} < {tail_max}");
        assert!(TopList::decode(&head, Some(&tail[..tail.len() - 1]), None).is_err(), "cut tail");
    }

    #[test]
    fn heads_settle_a_single_bucket_and_clear_leaders_but_not_close_calls() {
        // One bucket of 1,000 one-off keys and a leader: its head is its top.
        let mut items: Vec<(String, u64)> = (0..1000).map(|i| (format!("/junk/{i:04}"), 1)).collect();
        items.push(("/pricing".into(), 300));
        let refs: Vec<(&str, u64)> = items.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        let day = list_of(&refs);
        let head = head_only(&day);
        assert_eq!(merge_heads(&[&head], 10), HeadMerge::Exact(merge([&day], 10)));

        // Seven days where the same pages lead every day: the heads settle it.
        let week: Vec<TopList> = (0..7)
            .map(|d| {
                let mut items: Vec<(String, u64)> = (0..100).map(|i| (format!("/tail/{d}/{i}"), 1)).collect();
                items.extend((0..12).map(|p| (format!("/page{p}"), 100 - p as u64)));
                let refs: Vec<(&str, u64)> = items.iter().map(|(k, n)| (k.as_str(), *n)).collect();
                list_of(&refs)
            })
            .collect();
        let heads: Vec<TopList> = week.iter().map(head_only).collect();
        let head_refs: Vec<&TopList> = heads.iter().collect();
        assert_eq!(merge_heads(&head_refs, 10), HeadMerge::Exact(merge(week.iter(), 10)));

        // Two days of nothing but one-offs: a tail key could tie with the tenth row.
        let a = list_of(
            &(0..100)
                .map(|i| (format!("/a{i:03}"), 1))
                .collect::<Vec<_>>()
                .iter()
                .map(|(k, n): &(String, u64)| (k.as_str(), *n))
                .collect::<Vec<_>>(),
        );
        let b = list_of(
            &(0..100)
                .map(|i| (format!("/b{i:03}"), 1))
                .collect::<Vec<_>>()
                .iter()
                .map(|(k, n): &(String, u64)| (k.as_str(), *n))
                .collect::<Vec<_>>(),
        );
        let (ha, hb) = (head_only(&a), head_only(&b));
        assert_eq!(merge_heads(&[&ha, &hb], 10), HeadMerge::NeedTails(vec![0, 1]));
        // A key high in one head and in the other's tail: its count is not known.
        let mut items_b: Vec<(String, u64)> = (0..100).map(|i| (format!("/b{i:03}"), 5)).collect();
        items_b.push(("/shared".into(), 2));
        let refs_b: Vec<(&str, u64)> = items_b.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        let c = list_of(&[("/shared", 50)]);
        let d = list_of(&refs_b);
        let hd = head_only(&d);
        assert_eq!(merge_heads(&[&c, &hd], 10), HeadMerge::NeedTails(vec![1]));
    }
}
