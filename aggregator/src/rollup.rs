//! What batches add to the rollups: pure functions from [`BatchMessage`]s to the increments of
//! each rollup document, so the arithmetic is unit-tested apart from MongoDB.
//!
//! Every batch is bucketed by its server receive time in the site's time zone, into a local
//! day and a local hour, and adds to the series document and the top-list documents of both.

use std::collections::BTreeMap;

use chrono_tz::Tz;
use shared::{
    event::EventKind,
    message::BatchMessage,
    rollup::{Body, Bucket, Capacity, Counts, Dim, Part, RollupKey, Series, TopDelta, sketch},
    time, urls,
};

/// Scroll depths whose reach is counted for the scroll distribution.
pub const MILESTONES: [u8; 4] = [25, 50, 75, 100];

/// How much a top list may hold, for day and for hour buckets.
#[derive(Debug, Clone, Copy)]
pub struct Capacities {
    pub day: Capacity,
    pub hour: Capacity,
}

impl Capacities {
    /// `keys` per list; 512 KiB of keys and texts; fold filters of 32 KiB a day and 16 KiB an
    /// hour, which keep false "folded" answers under 1 % up to about 25,000 and 12,000
    /// folded keys (see `shared::rollup::toplist`).
    pub fn with_keys(day_keys: usize, hour_keys: usize) -> Self {
        Self {
            day: Capacity { keys: day_keys, bytes: 512 * 1024, filter_bits_log2: 18 },
            hour: Capacity { keys: hour_keys, bytes: 512 * 1024, filter_bits_log2: 17 },
        }
    }

    pub fn of(&self, bucket: &Bucket) -> &Capacity {
        if bucket.is_day() { &self.day } else { &self.hour }
    }
}

/// What a flush adds to one document.
#[derive(Debug, Clone, PartialEq)]
pub enum DocDelta {
    /// Counters, and (hours) the visitors seen.
    Series { counters: Series, visitors: Vec<u64> },
    Top(BTreeMap<String, TopDelta>),
}

impl DocDelta {
    fn empty(part: Part) -> Self {
        match part {
            Part::Series => Self::Series { counters: Series::default(), visitors: Vec::new() },
            Part::Top(_) => Self::Top(BTreeMap::new()),
        }
    }

    /// Adds this delta to a document's body (of the same part).
    pub fn apply(&self, body: &mut Body, cap: &Capacity) {
        match (self, body) {
            (Self::Series { counters, visitors }, Body::Series { counters: into, visitors: sketch }) => {
                into.add(counters);
                if let Some(sketch) = sketch {
                    visitors.iter().for_each(|&h| sketch.insert(h));
                }
            }
            (Self::Top(deltas), Body::Top(list)) => list.apply(deltas, cap),
            // Keys carry the part, so a delta never meets the body of another part.
            _ => debug_assert!(false, "delta and body of different parts"),
        }
    }
}

/// Everything a flush adds, by document.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlushDeltas {
    pub docs: BTreeMap<RollupKey, DocDelta>,
}

impl FlushDeltas {
    fn entry(&mut self, site: &str, bucket: Bucket, part: Part) -> &mut DocDelta {
        self.docs.entry(RollupKey { site_id: site.to_string(), bucket, part }).or_insert_with(|| DocDelta::empty(part))
    }

    fn series(&mut self, site: &str, bucket: Bucket) -> (&mut Series, &mut Vec<u64>) {
        match self.entry(site, bucket, Part::Series) {
            DocDelta::Series { counters, visitors } => (counters, visitors),
            DocDelta::Top(_) => unreachable!("series key holds a series delta"),
        }
    }

    fn top(&mut self, site: &str, bucket: Bucket, dim: Dim) -> &mut BTreeMap<String, TopDelta> {
        match self.entry(site, bucket, Part::Top(dim)) {
            DocDelta::Top(t) => t,
            DocDelta::Series { .. } => unreachable!("top key holds a top delta"),
        }
    }

    /// Adds the contribution of `msg` (its day's new visitor excluded: see [`Self::add_new_visitor`]).
    pub fn add_batch(&mut self, msg: &BatchMessage) {
        let (day, hour) = buckets_of(msg);
        let mut counters = Series::default();
        let mut tops: Vec<(Dim, String, Option<&str>)> = Vec::new();
        for ev in &msg.events {
            match &ev.kind {
                EventKind::Pageview { referrer, new_session, .. } => {
                    counters.pageviews += 1;
                    tops.push((Dim::Page, urls::page_path(&ev.url), None));
                    if *new_session {
                        counters.sessions += 1;
                        tops.push((Dim::Source, urls::referrer_source(&ev.url, referrer, &msg.domain), None));
                    }
                }
                EventKind::Scroll { depth, prev } => {
                    counters.scroll_sum += i64::from(depth - prev);
                    for (slot, m) in MILESTONES.iter().enumerate() {
                        if prev < m && m <= depth {
                            counters.reached[slot] += 1;
                        }
                    }
                }
                EventKind::Click { selector, text, .. } => {
                    counters.clicks += 1;
                    tops.push((Dim::Click, selector.clone(), Some(text.trim())));
                }
                EventKind::Time { seconds } => counters.time_sum += seconds,
                EventKind::Event { .. } => {}
            }
        }
        let visitor = sketch::visitor_hash64(&msg.visitor);
        for bucket in [day, hour] {
            let (series, visitors) = self.series(&msg.site_id, bucket);
            series.add(&counters);
            if !bucket.is_day() {
                visitors.push(visitor);
            }
            for (dim, key, text) in &tops {
                self.top(&msg.site_id, bucket, *dim).entry(key.clone()).or_default().add(Counts { n: 1, conv: 0 }, *text);
            }
        }
    }

    /// Counts one new distinct visitor of `site` on `day`.
    pub fn add_new_visitor(&mut self, site: &str, day: Bucket) {
        self.series(site, day).0.visitors += 1;
    }
}

/// The day and hour buckets a batch belongs to.
pub fn buckets_of(msg: &BatchMessage) -> (Bucket, Bucket) {
    let tz: Tz = time::parse_tz(&msg.timezone).unwrap_or(Tz::UTC);
    (Bucket::Day(time::local_day(msg.received_at, tz)), Bucket::Hour(time::hour_start(msg.received_at, tz)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::event::{ClientId, Event};

    fn ev(kind: EventKind, url: &str) -> Event {
        Event { ts: 0, page_id: ClientId::parse("page_0001").expect("id"), url: url.to_string(), kind }
    }

    fn msg(events: Vec<Event>, tz: &str, received_at: i64) -> BatchMessage {
        BatchMessage {
            site_id: "s1".into(),
            batch_id: "b1234567".into(),
            session_id: "sess1234".into(),
            received_at,
            visitor: "00000000000000ff".into(),
            timezone: tz.into(),
            domain: "example.com".into(),
            device: Default::default(),
            browser: Default::default(),
            os: Default::default(),
            country: Default::default(),
            events,
        }
    }

    fn key(bucket: Bucket, part: Part) -> RollupKey {
        RollupKey { site_id: "s1".into(), bucket, part }
    }

    fn day(s: &str) -> Bucket {
        Bucket::Day(time::parse_day(s).expect("day"))
    }

    #[test]
    fn counts_every_event_kind() {
        let url = "https://example.com/pricing?x=1";
        let m = msg(
            vec![
                ev(EventKind::Pageview { referrer: "https://www.google.com/".into(), title: "P".into(), new_session: true, variant: None }, url),
                ev(EventKind::Pageview { referrer: "".into(), title: "P".into(), new_session: false, variant: None }, "https://example.com/"),
                ev(EventKind::Scroll { depth: 30, prev: 0 }, url),
                ev(EventKind::Scroll { depth: 100, prev: 30 }, url),
                ev(EventKind::Click { selector: "button#cta".into(), text: "Buy".into(), href: None }, url),
                ev(EventKind::Click { selector: "button#cta".into(), text: "".into(), href: None }, url),
                ev(EventKind::Time { seconds: 2.5 }, url),
                ev(EventKind::Time { seconds: 1.0 }, url),
            ],
            "UTC",
            1_764_064_800_000, // 2025-11-25T10:00:00Z
        );
        let mut d = FlushDeltas::default();
        d.add_batch(&m);
        let want = Series { pageviews: 2, sessions: 1, clicks: 2, visitors: 0, scroll_sum: 100, time_sum: 3.5, reached: [1, 1, 1, 1] };
        assert_eq!(d.docs.get(&key(day("2025-11-25"), Part::Series)), Some(&DocDelta::Series { counters: want.clone(), visitors: vec![] }));
        assert_eq!(
            d.docs.get(&key(Bucket::Hour(1_764_064_800), Part::Series)),
            Some(&DocDelta::Series { counters: want, visitors: vec![sketch::visitor_hash64("00000000000000ff")] }),
            "hours carry the visitor for their sketch"
        );
        let top = |bucket, dim| match d.docs.get(&key(bucket, Part::Top(dim))) {
            Some(DocDelta::Top(t)) => t.clone(),
            other => panic!("no top delta: {other:?}"),
        };
        let clicks = top(day("2025-11-25"), Dim::Click);
        assert_eq!(clicks.get("button#cta"), Some(&TopDelta { counts: Counts { n: 2, conv: 0 }, text: Some("Buy".into()) }));
        let pages = top(day("2025-11-25"), Dim::Page);
        assert_eq!((pages["/pricing"].counts.n, pages["/"].counts.n), (1, 1));
        let sources = top(Bucket::Hour(1_764_064_800), Dim::Source);
        assert_eq!(sources.keys().collect::<Vec<_>>(), vec!["google.com"], "only session starts count as visits");
        assert_eq!(d.docs.len(), 8, "series and three top lists, for a day and an hour");
    }

    #[test]
    fn scroll_reach_counts_milestones_crossed() {
        let cases: [(u8, u8, [i64; 4]); 6] = [
            (24, 0, [0, 0, 0, 0]),
            (25, 0, [1, 0, 0, 0]),
            (50, 25, [0, 1, 0, 0]),
            (99, 10, [1, 1, 1, 0]),
            (100, 99, [0, 0, 0, 1]),
            (100, 0, [1, 1, 1, 1]),
        ];
        for (depth, prev, want) in cases {
            let mut d = FlushDeltas::default();
            d.add_batch(&msg(vec![ev(EventKind::Scroll { depth, prev }, "https://example.com/")], "UTC", 0));
            let Some(DocDelta::Series { counters, .. }) = d.docs.get(&key(day("1970-01-01"), Part::Series)) else { panic!("series") };
            assert_eq!(counters.reached, want, "case depth {depth} prev {prev}");
            assert_eq!(counters.scroll_sum, i64::from(depth - prev), "case depth {depth} prev {prev}");
        }
    }

    #[test]
    fn buckets_use_the_site_time_zone() {
        // 2025-11-25T03:00Z is 2025-11-24 22:00 in New York.
        let m = msg(vec![], "America/New_York", 1_764_039_600_000);
        assert_eq!(buckets_of(&m), (day("2025-11-24"), Bucket::Hour(1_764_039_600)));
    }

    #[test]
    fn new_visitors_count_on_the_day_series() {
        let mut d = FlushDeltas::default();
        d.add_new_visitor("s1", day("2025-11-24"));
        d.add_new_visitor("s1", day("2025-11-24"));
        let Some(DocDelta::Series { counters, .. }) = d.docs.get(&key(day("2025-11-24"), Part::Series)) else { panic!("series") };
        assert_eq!(counters.visitors, 2);
    }
}
