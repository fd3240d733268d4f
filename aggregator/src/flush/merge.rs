//! What one rollup document — a unit, or a site-day holding units — becomes when a flush is
//! applied to it: pure, so the watermark rule and the pruning of old watermarks are
//! unit-tested apart from MongoDB.

use std::collections::{BTreeMap, HashSet};

use mongodb::bson::DateTime;
use shared::rollup::{Body, Rollup, RollupKey, SiteDay, SiteDayRollup, Watermark};

use super::{FlushId, revisioned::is_prunable};
use crate::rollup::{Capacities, DocDelta};

/// Counts `flush` in a document's watermarks, dropping the prunable ones on the way.
fn stamp(applied: &mut BTreeMap<String, Watermark>, flush: &FlushId, now: DateTime, prunable: &HashSet<String>) {
    applied.retain(|inst, w| !is_prunable(prunable, inst, w));
    applied.insert(flush.inst.clone(), Watermark { seq: flush.seq, at: now });
}

fn counts(applied: &BTreeMap<String, Watermark>, flush: &FlushId) -> bool {
    applied.get(&flush.inst).is_some_and(|w| w.seq >= flush.seq)
}

/// The unit document after flush `flush` adds `delta` to `current` (as read; `None` when not
/// stored yet), or `None` when the document already counts that flush. The prunable watermarks
/// are dropped on the way.
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
    if counts(&doc.applied, flush) {
        return None;
    }
    delta.apply(&mut doc.body, &caps.of(&key.bucket, key.part));
    stamp(&mut doc.applied, flush, now, prunable);
    doc.rev += 1;
    Some(doc)
}

/// The site-day document (not split) after flush `flush` adds `deltas` to its units, or `None`
/// when it already counts that flush. Hours and minutes no reader asks for any more are
/// dropped ([`SiteDayRollup::drop_expired`]), as are the prunable watermarks.
pub fn merge_site_day<'a>(
    current: Option<SiteDayRollup>,
    key: &SiteDay,
    deltas: impl IntoIterator<Item = (&'a RollupKey, &'a DocDelta)>,
    flush: &FlushId,
    now: DateTime,
    caps: &Capacities,
    prunable: &HashSet<String>,
) -> Option<SiteDayRollup> {
    let mut doc = current.unwrap_or_else(|| SiteDayRollup::empty(key.clone()));
    debug_assert!(!doc.split, "units of a split site-day merge one by one");
    if counts(&doc.applied, flush) {
        return None;
    }
    for (unit, delta) in deltas {
        let body = doc.units.entry((unit.bucket, unit.part)).or_insert_with(|| Body::empty(unit.bucket, unit.part));
        delta.apply(body, &caps.of(&unit.bucket, unit.part));
    }
    doc.drop_expired(now.timestamp_millis());
    stamp(&mut doc.applied, flush, now, prunable);
    doc.rev += 1;
    Some(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::rollup::{Body, Bucket, Part, Series};

    fn key() -> RollupKey {
        RollupKey::new("s", shared::time::parse_day("1970-01-01").expect("day"), Bucket::Hour(3600), Part::Series)
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
        assert_eq!(
            merge(Some(first.clone()), &key(), &delta(2, 1), &flush("a", 1), now, &caps, &none),
            None,
            "replay of a:1"
        );
        let second = merge(Some(first), &key(), &delta(3, 2), &flush("a", 2), now, &caps, &none).expect("a:2 counts");
        assert_eq!((second.rev, pageviews(&second)), (2, 5));
        assert_eq!(
            merge(Some(second.clone()), &key(), &delta(3, 2), &flush("a", 1), now, &caps, &none),
            None,
            "older flush of a"
        );
        let other = merge(Some(second), &key(), &delta(1, 3), &flush("b", 1), now, &caps, &none).expect("another instance");
        assert_eq!(pageviews(&other), 6);
        assert_eq!(other.applied.len(), 2);
    }

    #[test]
    fn prunable_watermarks_are_dropped_and_ours_kept() {
        let caps = Capacities::with_keys(10, 10);
        let now = DateTime::from_millis(5);
        let doc = merge(None, &key(), &delta(1, 1), &flush("old", 9), now, &caps, &HashSet::new()).expect("doc");
        let prunable: HashSet<String> = ["old:9".to_string()].into();
        let doc = merge(Some(doc), &key(), &delta(1, 2), &flush("new", 1), now, &caps, &prunable).expect("doc");
        assert_eq!(doc.applied.keys().collect::<Vec<_>>(), vec!["new"]);
    }

    #[test]
    fn a_site_day_counts_a_flush_once_in_all_its_units_and_drops_expired_hours() {
        let caps = Capacities::with_keys(10, 10);
        let day = shared::time::parse_day("2026-11-26").expect("day");
        let sd = SiteDay::new("s", day);
        let hour = 1_795_687_200;
        let unit = |bucket: Bucket| RollupKey::new("s", day, bucket, Part::Series);
        let units = [(unit(Bucket::Day(day)), delta(2, 1)), (unit(Bucket::Hour(hour)), delta(2, 1))];
        let now = DateTime::from_millis(hour * 1000);
        let none = HashSet::new();
        let merged = merge_site_day(None, &sd, units.iter().map(|(k, d)| (k, d)), &flush("a", 1), now, &caps, &none)
            .expect("new site-day");
        assert_eq!((merged.rev, merged.units.len()), (1, 2));
        assert_eq!(
            merge_site_day(Some(merged.clone()), &sd, units.iter().map(|(k, d)| (k, d)), &flush("a", 1), now, &caps, &none),
            None,
            "replay"
        );
        // An hour's series is kept longest (shared::rollup::HOURLY_SERIES_KEEP, for alerts).
        let later = DateTime::from_millis((hour + shared::rollup::HOURLY_SERIES_KEEP.as_secs() as i64) * 1000);
        let day_only = [(unit(Bucket::Day(day)), delta(1, 2))];
        let next =
            merge_site_day(Some(merged), &sd, day_only.iter().map(|(k, d)| (k, d)), &flush("a", 2), later, &caps, &none)
                .expect("a:2");
        assert_eq!(
            next.units.keys().map(|(b, _)| *b).collect::<Vec<_>>(),
            vec![Bucket::Day(day)],
            "the hour is past its keep"
        );
        match &next.units[&(Bucket::Day(day), Part::Series)] {
            Body::Series { counters, .. } => assert_eq!(counters.pageviews, 3),
            other => panic!("series: {other:?}"),
        }
    }
}
