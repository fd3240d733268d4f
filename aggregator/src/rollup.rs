//! What one batch adds to the rollups: pure functions from a [`BatchMessage`] to counter
//! increments, so the arithmetic is unit-tested apart from MongoDB.
//!
//! Every batch is bucketed by its server receive time in the site's time zone, into a day and an
//! hour. Series counters go to one document per (site, day) and per (site, hour); top-list
//! counters to one per (site, day or hour, dimension, key).

use std::collections::BTreeMap;

use chrono_tz::Tz;
use shared::{event::EventKind, message::BatchMessage, time, urls};

/// Scroll depths whose reach is counted for the scroll distribution.
pub const MILESTONES: [u8; 4] = [25, 50, 75, 100];

/// Which bucket a rollup document covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    /// Local calendar day, `YYYY-MM-DD`.
    Day(String),
    /// Epoch seconds at which the local hour starts.
    Hour(i64),
}

impl Bucket {
    /// `d|2026-11-25` or `h|1764064800`: part of a document id.
    pub fn id_part(&self) -> String {
        match self {
            Self::Day(d) => format!("d|{d}"),
            Self::Hour(h) => format!("h|{h}"),
        }
    }
}

/// Top-list dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dim {
    Click,
    Page,
    Referrer,
}

impl Dim {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Click => "click",
            Self::Page => "page",
            Self::Referrer => "referrer",
        }
    }
}

/// Series counters of one bucket. `visitors` is filled in by the writer, which alone knows
/// whether a visitor is new in the bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub pageviews: i64,
    pub sessions: i64,
    pub clicks: i64,
    pub visitors: i64,
    pub scroll_sum: i64,
    pub time_sum: f64,
    pub reached: [i64; 4],
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.pageviews += other.pageviews;
        self.sessions += other.sessions;
        self.clicks += other.clicks;
        self.visitors += other.visitors;
        self.scroll_sum += other.scroll_sum;
        self.time_sum += other.time_sum;
        for (a, b) in self.reached.iter_mut().zip(other.reached) {
            *a += b;
        }
    }

    /// Field name → increment, for the non-zero counters only.
    pub fn increments(&self) -> Vec<(&'static str, IncValue)> {
        let mut out = Vec::new();
        let ints = [
            ("pageviews", self.pageviews),
            ("sessions", self.sessions),
            ("clicks", self.clicks),
            ("visitors", self.visitors),
            ("scroll_sum", self.scroll_sum),
            ("r25", self.reached[0]),
            ("r50", self.reached[1]),
            ("r75", self.reached[2]),
            ("r100", self.reached[3]),
        ];
        out.extend(ints.into_iter().filter(|(_, v)| *v != 0).map(|(k, v)| (k, IncValue::Int(v))));
        if self.time_sum != 0.0 {
            out.push(("time_sum", IncValue::Float(self.time_sum)));
        }
        out
    }
}

/// An `$inc` amount.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IncValue {
    Int(i64),
    Float(f64),
}

/// A top-list key within a bucket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopKey {
    pub bucket: Bucket,
    pub dim: Dim,
    pub key: String,
}

/// A top-list increment; `text` is a click text seen for the selector.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopDelta {
    pub count: i64,
    pub text: Option<String>,
}

/// Everything one or more batches of one site add, keyed by document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SiteDeltas {
    pub series: BTreeMap<Bucket, Counters>,
    pub tops: BTreeMap<TopKey, TopDelta>,
}

/// The day and hour buckets a batch belongs to.
pub fn buckets_of(msg: &BatchMessage) -> (Bucket, Bucket) {
    let tz: Tz = time::parse_tz(&msg.timezone).unwrap_or(Tz::UTC);
    (
        Bucket::Day(time::day_string(time::local_day(msg.received_at, tz))),
        Bucket::Hour(time::hour_start(msg.received_at, tz)),
    )
}

/// Adds the contribution of `msg` to `deltas` (visitors excluded).
pub fn add_batch(deltas: &mut SiteDeltas, msg: &BatchMessage) {
    let (day, hour) = buckets_of(msg);
    let mut counters = Counters::default();
    let mut tops: Vec<(Dim, String, Option<String>)> = Vec::new();
    for ev in &msg.events {
        match &ev.kind {
            EventKind::Pageview { referrer, new_session, .. } => {
                counters.pageviews += 1;
                tops.push((Dim::Page, urls::page_path(&ev.url), None));
                if *new_session {
                    counters.sessions += 1;
                    tops.push((Dim::Referrer, urls::referrer_source(&ev.url, referrer, &msg.domain), None));
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
                tops.push((Dim::Click, selector.clone(), Some(text.trim().to_string())));
            }
            EventKind::Time { seconds } => counters.time_sum += seconds,
            // Custom events (v2) are not rolled up yet.
            EventKind::Event { .. } => {}
        }
    }
    for bucket in [day, hour] {
        deltas.series.entry(bucket.clone()).or_default().add(&counters);
        for (dim, key, text) in &tops {
            let top = deltas.tops.entry(TopKey { bucket: bucket.clone(), dim: *dim, key: key.clone() }).or_default();
            top.count += 1;
            // Prefer a non-empty text; among several, the greatest, so redelivery cannot flip it.
            if let Some(t) = text
                && top.text.as_ref().is_none_or(|cur| t > cur)
            {
                top.text = Some(t.clone());
            }
        }
    }
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
            visitor: "v".into(),
            timezone: tz.into(),
            domain: "example.com".into(),
            device: Default::default(),
            browser: Default::default(),
            os: Default::default(),
            country: Default::default(),
            events,
        }
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
        let mut d = SiteDeltas::default();
        add_batch(&mut d, &m);
        let day = d.series.get(&Bucket::Day("2025-11-25".into())).expect("day bucket");
        assert_eq!(
            *day,
            Counters { pageviews: 2, sessions: 1, clicks: 2, visitors: 0, scroll_sum: 100, time_sum: 3.5, reached: [1, 1, 1, 1] }
        );
        assert_eq!(d.series.len(), 2, "one day and one hour bucket");
        let click = d.tops.get(&TopKey { bucket: Bucket::Day("2025-11-25".into()), dim: Dim::Click, key: "button#cta".into() });
        assert_eq!(click, Some(&TopDelta { count: 2, text: Some("Buy".into()) }));
        let pricing = d.tops.get(&TopKey { bucket: Bucket::Day("2025-11-25".into()), dim: Dim::Page, key: "/pricing".into() });
        assert_eq!(pricing.map(|t| t.count), Some(1));
        let google = d.tops.get(&TopKey { bucket: Bucket::Day("2025-11-25".into()), dim: Dim::Referrer, key: "google.com".into() });
        assert_eq!(google.map(|t| t.count), Some(1), "only new-session pageviews count as referrals");
        assert_eq!(d.tops.keys().filter(|k| k.dim == Dim::Referrer).count(), 2, "day and hour, google only");
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
            let mut d = SiteDeltas::default();
            add_batch(&mut d, &msg(vec![ev(EventKind::Scroll { depth, prev }, "https://example.com/")], "UTC", 0));
            let day = d.series.values().next().expect("bucket");
            assert_eq!(day.reached, want, "case depth {depth} prev {prev}");
            assert_eq!(day.scroll_sum, i64::from(depth - prev), "case depth {depth} prev {prev}");
        }
    }

    #[test]
    fn buckets_use_the_site_time_zone() {
        // 2025-11-25T03:00Z is 2025-11-24 22:00 in New York.
        let m = msg(vec![], "America/New_York", 1_764_039_600_000);
        let (day, hour) = buckets_of(&m);
        assert_eq!(day, Bucket::Day("2025-11-24".into()));
        assert_eq!(hour, Bucket::Hour(1_764_039_600));
    }
}
