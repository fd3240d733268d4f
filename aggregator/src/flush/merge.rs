//! What one rollup document becomes when a flush is applied to it: pure, so the watermark rule
//! and the pruning of old watermarks are unit-tested apart from MongoDB.

use std::collections::HashSet;

use mongodb::bson::DateTime;
use shared::rollup::{Rollup, RollupKey, Watermark};

use super::FlushId;
use crate::rollup::{Capacities, DocDelta};

/// The document after flush `flush` adds `delta` to `current` (as read; `None` when not stored
/// yet), or `None` when the document already counts that flush. Watermarks of the instances
/// in `prunable` are dropped on the way.
pub fn merge(
    current: Option<Rollup>,
    key: &RollupKey,
    delta: &DocDelta,
    flush: &FlushId,
    now: DateTime,
    caps: &Capacities,
    prunable: &HashSet<String>,
) -> Option<Rollup> {
    let mut doc = current.unwrap_or_else(|| Rollup::empty(key.clone()));
    if doc.applied.get(&flush.inst).is_some_and(|w| w.seq >= flush.seq) {
        return None;
    }
    delta.apply(&mut doc.body, &caps.of(&key.bucket, key.part));
    doc.applied.retain(|inst, _| !prunable.contains(inst));
    doc.applied.insert(flush.inst.clone(), Watermark { seq: flush.seq, at: now });
    doc.rev += 1;
    Some(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::rollup::{Body, Bucket, Part, Series};

    fn key() -> RollupKey {
        RollupKey { site_id: "s".into(), bucket: Bucket::Hour(3600), part: Part::Series }
    }

    fn delta(pageviews: i64, visitor: u64) -> DocDelta {
        DocDelta::Series { counters: Series { pageviews, ..Default::default() }, visitors: vec![visitor] }
    }

    fn flush(inst: &str, seq: i64) -> FlushId {
        FlushId { inst: inst.into(), seq }
    }

    fn pageviews(r: &Rollup) -> i64 {
        match &r.body {
            Body::Series { counters, .. } => counters.pageviews,
            Body::Top(_) | Body::Live(_) => panic!("series"),
        }
    }

    #[test]
    fn a_flush_is_counted_once_per_document_and_later_flushes_still_count() {
        let caps = Capacities::with_keys(10, 10);
        let none = HashSet::new();
        let now = DateTime::from_millis(5);
        let first = merge(None, &key(), &delta(2, 1), &flush("a", 1), now, &caps, &none).expect("new document");
        assert_eq!((first.rev, pageviews(&first)), (1, 2));
        assert_eq!(merge(Some(first.clone()), &key(), &delta(2, 1), &flush("a", 1), now, &caps, &none), None, "replay of a:1");
        let second = merge(Some(first), &key(), &delta(3, 2), &flush("a", 2), now, &caps, &none).expect("a:2 counts");
        assert_eq!((second.rev, pageviews(&second)), (2, 5));
        assert_eq!(merge(Some(second.clone()), &key(), &delta(3, 2), &flush("a", 1), now, &caps, &none), None, "older flush of a");
        let other = merge(Some(second), &key(), &delta(1, 3), &flush("b", 1), now, &caps, &none).expect("another instance");
        assert_eq!(pageviews(&other), 6);
        assert_eq!(other.applied.len(), 2);
    }

    #[test]
    fn prunable_watermarks_are_dropped_and_ours_kept() {
        let caps = Capacities::with_keys(10, 10);
        let now = DateTime::from_millis(5);
        let doc = merge(None, &key(), &delta(1, 1), &flush("old", 9), now, &caps, &HashSet::new()).expect("doc");
        let prunable: HashSet<String> = ["old".to_string()].into();
        let doc = merge(Some(doc), &key(), &delta(1, 2), &flush("new", 1), now, &caps, &prunable).expect("doc");
        assert_eq!(doc.applied.keys().collect::<Vec<_>>(), vec!["new"]);
    }
}
