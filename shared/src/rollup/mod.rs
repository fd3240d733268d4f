//! The rollup model: what the aggregator writes, the api reads and the index setup indexes.
//!
//! Stats are served from one collection, [`crate::names::collections::ROLLUPS`]. What it counts
//! is cut into **units**: one per site, bucket (a local day, a local hour kept [`HOURLY_KEEP`]
//! — its counters [`HOURLY_SERIES_KEEP`] — or a minute of the live view kept [`MINUTE_KEEP`]) and part (the bucket's counters, one
//! [`TopList`] per dimension, or a live minute). Every unit belongs to a **site-day**: the site
//! and the local day its bucket falls in ([`RollupKey::day`]).
//!
//! A site-day is stored as one document ([`SiteDayDoc`], `_id` `site|c|2026-11-26`) that holds
//! all its units while it is small: a site that gets a few batches a day costs one document per
//! flush, whatever the number of parts, hours and minutes those batches touch. Once the encoded
//! units pass [`siteday::COMPACT_MAX_BYTES`] the site-day **splits**: every unit moves to a
//! document of its own ([`RollupDoc`], `_id` `site|c|2026-11-26|h|1795687200|top:page`) and
//! the site-day document keeps only `split: true`. A busy site-day then costs what one unit
//! document per part and bucket costs, and reads fetch heads of lists, not whole days. Every
//! read, the flush's and the api's, addresses documents by their `_id`, computed from the site,
//! the days and the parts it needs (see docs/rollups.md and docs/queries.md).
//!
//! Top lists and visitor sketches are stored as compact binary (see [`codec`]): they are read
//! and written whole, and a binary field costs MongoDB (and the MongoDB-wire stand-in our tests
//! use) far less than a document with a thousand sub-documents.
//!
//! Every document carries `rev`, bumped by each write (writers replace a document only if its
//! `rev` is unchanged), and `applied`, the highest flush sequence of each aggregator instance
//! already counted in it: the exactly-once protocol in `aggregator/src/flush` rests on both.

pub mod attention;
pub mod codec;
pub mod live;
pub mod siteday;
pub mod sketch;
pub mod toplist;

use std::{collections::BTreeMap, time::Duration};

use chrono::NaiveDate;
use mongodb::{
    IndexModel,
    bson::{Binary, DateTime, Document, doc, spec::BinarySubtype},
};
use serde::{Deserialize, Serialize};

pub use codec::DecodeError;
pub use live::LiveMinute;
pub use siteday::{SiteDay, SiteDayDoc, SiteDayRollup};
pub use sketch::VisitorSketch;
pub use toplist::{Capacity, Counts, TopDelta, TopList};

use crate::time;

/// How long hourly documents are kept: the 24-hour view needs the last 25 local hours.
pub const HOURLY_KEEP: Duration = Duration::from_secs(49 * 3600);
/// How long an hour's counters and visitor sketch ([`Part::Series`]) are kept, its top lists
/// going after [`HOURLY_KEEP`]: an alert compares its window (at most 168 hours, ending at the
/// last full hour) with the same hours a week before, so it reads hours up to 14 days back;
/// one day more covers a late evaluation.
pub const HOURLY_SERIES_KEEP: Duration = Duration::from_secs(15 * 24 * 3600);
/// How long minute documents (the live view) are kept: it shows the last 30 minutes.
pub const MINUTE_KEEP: Duration = Duration::from_secs(3600);

/// Which bucket a document covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    /// A local calendar day.
    Day(NaiveDate),
    /// The local hour starting at these epoch seconds.
    Hour(i64),
    /// The minute starting at these epoch seconds (the live view).
    Minute(i64),
}

impl Bucket {
    pub fn is_day(&self) -> bool {
        matches!(self, Self::Day(_))
    }

    /// When a document of this bucket and `part` may be deleted: hours after [`HOURLY_KEEP`]
    /// (their series after [`HOURLY_SERIES_KEEP`]), days `day_retention` after the day ended.
    pub fn expire_at(&self, part: Part, day_retention: Duration) -> DateTime {
        let ms = match self {
            Self::Day(day) => {
                let end =
                    day.succ_opt().unwrap_or(*day).and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or(0);
                end + day_retention.as_millis() as i64
            }
            Self::Hour(start) => start * 1000 + Self::hour_keep(part).as_millis() as i64,
            Self::Minute(start) => start * 1000 + MINUTE_KEEP.as_millis() as i64,
        };
        DateTime::from_millis(ms)
    }

    /// How long a unit `part` of an hour is kept.
    pub fn hour_keep(part: Part) -> Duration {
        if part == Part::Series { HOURLY_SERIES_KEEP } else { HOURLY_KEEP }
    }
}

/// Top-list dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dim {
    /// Pageviews by URL path, with the page's own counters ([`toplist::page_ext`]) and the
    /// conversions of sessions that entered on it.
    Page,
    /// Clicks by selector, with a text seen.
    Click,
    /// Visits (sessions started) by source, with their conversions.
    Source,
    /// Visits by `utm_campaign`, with their conversions.
    Campaign,
    /// Visits by `utm_medium`, with their conversions.
    Medium,
    /// Visits by A/B variant, with their conversions.
    Variant,
    /// Custom events by name.
    Event,
    /// Sessions that completed a goal, by goal id.
    Goal,
    /// Visits by device class.
    Device,
    /// Visits by browser family.
    Browser,
    /// Visits by operating system family.
    Os,
    /// Visits by country.
    Country,
    /// Breakdowns of one page, keyed `path␟kind␟name` ([`page_attr_key`]): what a page filter
    /// shows in its lists (sources, campaigns, … of the sessions that entered on it, clicks and
    /// events on it, goals those sessions completed).
    PageAttr,
    /// On-page attention (v3), keyed `path␟kind␟name` ([`attention::key`]): sections seen,
    /// CTAs seen and clicked, rage and dead clicks, forms, the scroll map and the click map.
    Attention,
    /// One-click filters (v3), keyed `dimension␟value␟kind␟name` ([`filter_key`]): for each
    /// attribution value of a session, the counters of its events (kind `all`, counted like a
    /// page's own, [`toplist::page_ext`]), its pages (`page`) and its goals (`goal`).
    Filter,
    /// Funnel steps (v3), keyed `funnel_id␟step` ([`funnel_key`]): sessions that reached the
    /// step, counted in the bucket where the session reached the first step.
    Funnel,
    /// Revenue, times to conversion and event properties (v3), keyed by [`detail`]: revenue
    /// sums per currency (in thousandths) for the site, its goals and its sessions' source,
    /// campaign, medium and variant; first conversions per time bucket, for the site and those
    /// attributes; custom events per property value.
    Detail,
}

impl Dim {
    pub const ALL: [Dim; 17] = [
        Dim::Page,
        Dim::Click,
        Dim::Source,
        Dim::Campaign,
        Dim::Medium,
        Dim::Variant,
        Dim::Event,
        Dim::Goal,
        Dim::Device,
        Dim::Browser,
        Dim::Os,
        Dim::Country,
        Dim::PageAttr,
        Dim::Attention,
        Dim::Funnel,
        Dim::Filter,
        Dim::Detail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Page => "page",
            Self::Click => "click",
            Self::Source => "source",
            Self::Campaign => "campaign",
            Self::Medium => "medium",
            Self::Variant => "variant",
            Self::Event => "event",
            Self::Goal => "goal",
            Self::Device => "device",
            Self::Browser => "browser",
            Self::Os => "os",
            Self::Country => "country",
            Self::PageAttr => "page_attr",
            Self::Attention => "attention",
            Self::Funnel => "funnel",
            Self::Filter => "filter",
            Self::Detail => "detail",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == raw)
    }
}

/// Separates the parts of a [`Dim::PageAttr`] key (the ASCII unit separator, which no page
/// path holds: paths are percent-encoded).
pub const PAGE_ATTR_SEP: char = '\u{1f}';

/// The key of a page's breakdown entry: `path␟kind␟name`, `kind` being a [`Dim`] name.
pub fn page_attr_key(path: &str, kind: Dim, name: &str) -> String {
    let mut k = String::with_capacity(path.len() + name.len() + 12);
    k.push_str(path);
    k.push(PAGE_ATTR_SEP);
    k.push_str(kind.as_str());
    k.push(PAGE_ATTR_SEP);
    k.push_str(name);
    k
}

/// The key of a funnel step's entry: `funnel_id␟step`, steps counted from 1.
pub fn funnel_key(funnel_id: &str, step: usize) -> String {
    format!("{funnel_id}{PAGE_ATTR_SEP}{step}")
}

/// The attribution dimensions a filter (and a segment) selects sessions by.
pub const FILTER_DIMS: [&str; 9] =
    ["source", "campaign", "medium", "variant", "country", "device", "browser", "os", "entry_page"];

/// What a [`Dim::Filter`] entry counts for its dimension and value.
pub mod filter_kind {
    /// The value's own counters, as a page's ([`super::toplist::page_ext`]).
    pub const ALL: &str = "all";
    pub const PAGE: &str = "page";
    pub const GOAL: &str = "goal";
}

/// The key of a filter entry: `dimension␟value␟kind␟name`.
pub fn filter_key(dim: &str, value: &str, kind: &str, name: &str) -> String {
    [dim, value, kind, name].join(&PAGE_ATTR_SEP.to_string())
}

/// The key prefix of every entry of `dim` = `value`: `dimension␟value␟`.
pub fn filter_prefix(dim: &str, value: &str) -> String {
    format!("{dim}{PAGE_ATTR_SEP}{value}{PAGE_ATTR_SEP}")
}

/// Splits the rest of a filter key after its [`filter_prefix`] into kind and name.
pub fn split_filter_rest(rest: &str) -> Option<(&str, &str)> {
    rest.split_once(PAGE_ATTR_SEP)
}

/// The keys of [`Dim::Detail`] entries, each `kind␟…` with the parts separated by
/// [`PAGE_ATTR_SEP`].
pub mod detail {
    use super::PAGE_ATTR_SEP as SEP;

    /// Revenue: `r␟scope␟name␟currency`, `n` = the sum in thousandths of the unit.
    pub const REVENUE: &str = "r";
    /// First conversions by time from the session's first pageview:
    /// `t␟scope␟name␟bucket`, `n` = sessions.
    pub const TTC: &str = "t";
    /// Custom event properties: `p␟event␟key␟value`, `n` = events.
    pub const PROP: &str = "p";
    /// The scope of site-wide entries (its name is empty); the others are the attribution
    /// dimensions' names (`source`, `campaign`, `medium`, `variant`) and `goal`.
    pub const ALL: &str = "all";
    pub const GOAL: &str = "goal";

    /// The contract's time-to-conversion buckets, and their upper bounds in seconds.
    pub const TTC_BUCKETS: [&str; 7] = ["<10s", "10-30s", "30s-1m", "1-5m", "5-30m", "30m-2h", ">2h"];
    const TTC_BOUNDS_S: [i64; 6] = [10, 30, 60, 300, 1800, 7200];

    /// The bucket of a time to conversion (a negative one, from clocks out of order, is `<10s`).
    pub fn ttc_bucket(ms: i64) -> usize {
        let s = ms.max(0) / 1000;
        TTC_BOUNDS_S.iter().position(|&b| s < b).unwrap_or(TTC_BUCKETS.len() - 1)
    }

    pub fn key(kind: &str, a: &str, b: &str, c: &str) -> String {
        let mut k = String::with_capacity(kind.len() + a.len() + b.len() + c.len() + 3);
        for (i, part) in [kind, a, b, c].into_iter().enumerate() {
            if i > 0 {
                k.push(SEP);
            }
            k.push_str(part);
        }
        k
    }

    /// Splits a key into its kind and three parts.
    pub fn split(key: &str) -> Option<(&str, &str, &str, &str)> {
        let mut p = key.splitn(4, SEP);
        Some((p.next()?, p.next()?, p.next()?, p.next()?))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn time_buckets_follow_the_contract() {
            let cases = [
                (0, 0),
                (9_999, 0),
                (10_000, 1),
                (29_999, 1),
                (30_000, 2),
                (59_999, 2),
                (60_000, 3),
                (299_000, 3),
                (300_000, 4),
                (1_799_000, 4),
                (1_800_000, 5),
                (7_199_000, 5),
                (7_200_000, 6),
                (-5, 0),
            ];
            for (ms, b) in cases {
                assert_eq!(ttc_bucket(ms), b, "{ms} ms");
            }
        }

        #[test]
        fn keys_split_back() {
            let k = key(REVENUE, "source", "google.com", "EUR");
            assert_eq!(split(&k), Some(("r", "source", "google.com", "EUR")));
            assert_eq!(split(&key(PROP, "Signup", "plan", "a\u{1f}b")), Some(("p", "Signup", "plan", "a\u{1f}b")));
        }
    }
}

/// Splits a [`Dim::Funnel`] key into the funnel id and the step.
pub fn split_funnel_key(key: &str) -> Option<(&str, usize)> {
    let (id, step) = key.split_once(PAGE_ATTR_SEP)?;
    Some((id, step.parse().ok()?))
}

/// Splits a [`Dim::PageAttr`] key into path, kind and name.
pub fn split_page_attr_key(key: &str) -> Option<(&str, Dim, &str)> {
    let mut parts = key.splitn(3, PAGE_ATTR_SEP);
    let path = parts.next()?;
    let kind = Dim::parse(parts.next()?)?;
    Some((path, kind, parts.next()?))
}

/// What a document holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Series,
    Top(Dim),
    /// A minute of the live view ([`LiveMinute`]); minute buckets only.
    Live,
}

impl Part {
    /// Every part of a day or hour bucket: what a full stats query reads.
    pub fn all() -> Vec<Part> {
        std::iter::once(Part::Series).chain(Dim::ALL.into_iter().map(Part::Top)).collect()
    }

    pub fn name(self) -> String {
        match self {
            Self::Series => "series".to_string(),
            Self::Top(d) => format!("top:{}", d.as_str()),
            Self::Live => "live".to_string(),
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<Self> {
        match raw {
            "series" => Some(Self::Series),
            "live" => Some(Self::Live),
            _ => raw.strip_prefix("top:").and_then(Dim::parse).map(Self::Top),
        }
    }
}

/// Identifies one unit: a part of a bucket of a site, held by the site-day `day`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RollupKey {
    pub site_id: String,
    /// The local day whose site-day holds the unit: a day bucket's own day; for an hour or a
    /// minute, the local day of the batches that counted in it (the writer's time zone).
    pub day: NaiveDate,
    pub bucket: Bucket,
    pub part: Part,
}

impl RollupKey {
    /// The unit `part` of `bucket`, held by the site-day `day`.
    pub fn new(site_id: impl Into<String>, day: NaiveDate, bucket: Bucket, part: Part) -> Self {
        Self { site_id: site_id.into(), day, bucket, part }
    }

    /// The unit `part` of the day bucket `day`.
    pub fn of_day(site_id: impl Into<String>, day: NaiveDate, part: Part) -> Self {
        Self::new(site_id, day, Bucket::Day(day), part)
    }

    /// The site-day holding this unit.
    pub fn site_day(&self) -> SiteDay {
        SiteDay { site_id: self.site_id.clone(), day: self.day }
    }

    /// The `_id` of the unit's own document once its site-day has split:
    /// `site|c|2026-11-26|d|series`, `site|c|2026-11-26|h|1764115200|top:page`,
    /// `site|c|2026-11-26|m|1764115260|live`.
    pub fn id(&self) -> String {
        let site_day = SiteDay::id_of(&self.site_id, self.day);
        match self.bucket {
            Bucket::Day(_) => format!("{site_day}|d|{}", self.part.name()),
            Bucket::Hour(h) => format!("{site_day}|h|{h}|{}", self.part.name()),
            Bucket::Minute(m) => format!("{site_day}|m|{m}|{}", self.part.name()),
        }
    }
}

/// Counters of one bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Pageview events.
    pub pageviews: i64,
    /// Pageviews that started a session.
    pub sessions: i64,
    /// Click events.
    pub clicks: i64,
    /// Distinct visitors of the day (day documents; hours count theirs in a sketch).
    pub visitors: i64,
    /// Sum of `depth - prev` over scroll events.
    pub scroll_sum: i64,
    /// Sum of engaged seconds over time events.
    pub time_sum: f64,
    /// Scroll events that reached 25, 50, 75 and 100 percent.
    pub reached: [i64; 4],
    /// Sessions that completed at least one goal in the bucket. (v2: absent in older
    /// documents, which counted no goals.)
    #[serde(default)]
    pub conversions: i64,
    /// Sessions started in the bucket that did not bounce (a second pageview, a click, a
    /// custom event or a scroll past 25 %). (v2, as `conversions`.)
    #[serde(default)]
    pub engaged: i64,
    /// Sessions started in the bucket since bounces are tracked: what the bounce rate divides
    /// by (`sessions` of documents migrated from the first layout are not among them). (v2.)
    #[serde(default)]
    pub started: i64,
}

impl Series {
    pub fn add(&mut self, o: &Series) {
        self.pageviews += o.pageviews;
        self.sessions += o.sessions;
        self.clicks += o.clicks;
        self.visitors += o.visitors;
        self.scroll_sum += o.scroll_sum;
        self.time_sum += o.time_sum;
        for (a, b) in self.reached.iter_mut().zip(o.reached) {
            *a += b;
        }
        self.conversions += o.conversions;
        self.engaged += o.engaged;
        self.started += o.started;
    }
}

/// The highest flush of one aggregator instance counted in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub seq: i64,
    /// When that instance last wrote the document.
    pub at: DateTime,
}

/// A rollup document as stored. Read it through [`Rollup::from_doc`], which checks that the
/// body matches the part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollupDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub site_id: String,
    /// The site-day holding the unit (`YYYY-MM-DD`). Absent in documents of the layout before
    /// site-days (`rollups_v2`), which the migration reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_day: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hour: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minute: Option<i64>,
    pub part: String,
    pub rev: i64,
    pub applied: BTreeMap<String, Watermark>,
    pub expire_at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<Series>,
    /// Hourly series: the [`VisitorSketch`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitors: Option<Binary>,
    /// Top documents: the head of the [`TopList`] (its top entries and `(other)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<Binary>,
    /// Top documents: the rest of the list's entries, when it has more than its head holds.
    /// Readers fetch it only when the heads cannot settle an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<Binary>,
    /// Top documents: the list's fold filter, once it has folded a key. Readers skip it
    /// ([`read_projection`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folded: Option<Binary>,
    /// Live documents: the [`LiveMinute`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<Binary>,
}

/// What a reader of stats fetches first: everything but the lists' tails and fold filters.
pub fn read_projection() -> Document {
    doc! {"tail": 0, "folded": 0}
}

/// What a reader fetches when it needs whole lists: their tails.
pub fn tail_projection() -> Document {
    doc! {"tail": 1}
}

/// What a document counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Series { counters: Series, visitors: Option<VisitorSketch> },
    Top(TopList),
    Live(LiveMinute),
}

/// A rollup document, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollup {
    pub key: RollupKey,
    /// 0 for a document not stored yet.
    pub rev: i64,
    pub applied: BTreeMap<String, Watermark>,
    pub body: Body,
}

impl Body {
    /// What an empty unit `part` of `bucket` holds.
    pub fn empty(bucket: Bucket, part: Part) -> Self {
        match (part, bucket) {
            (Part::Series, Bucket::Hour(_)) => {
                Body::Series { counters: Series::default(), visitors: Some(VisitorSketch::default()) }
            }
            (Part::Series, _) => Body::Series { counters: Series::default(), visitors: None },
            (Part::Top(_), _) => Body::Top(TopList::default()),
            (Part::Live, _) => Body::Live(LiveMinute::default()),
        }
    }
}

impl Rollup {
    /// An empty document, not stored yet.
    pub fn empty(key: RollupKey) -> Self {
        let body = Body::empty(key.bucket, key.part);
        Self { key, rev: 0, applied: BTreeMap::new(), body }
    }

    /// A document of the layout before site-days (`rollups_v2`, which had no `site_day` and
    /// other ids) as a unit of the site-day `site_day`: what the migration writes.
    pub fn from_legacy_doc(mut doc: RollupDoc, site_day: NaiveDate) -> Result<Self, DecodeError> {
        let bucket = match (&doc.day, doc.hour, doc.minute) {
            (Some(day), None, None) => Bucket::Day(
                time::parse_day(day).ok_or_else(|| DecodeError::new("fields", format!("{}: day {day:?}", doc.id)))?,
            ),
            (None, Some(hour), None) => Bucket::Hour(hour),
            (None, None, Some(minute)) => Bucket::Minute(minute),
            _ => return Err(DecodeError::new("fields", format!("{}: needs exactly one of day, hour and minute", doc.id))),
        };
        let part = Part::parse(&doc.part)
            .ok_or_else(|| DecodeError::new("fields", format!("{}: unknown part {:?}", doc.id, doc.part)))?;
        doc.id = RollupKey::new(doc.site_id.clone(), site_day, bucket, part).id();
        doc.site_day = Some(time::day_string(site_day));
        Self::from_doc(doc)
    }

    pub fn from_doc(doc: RollupDoc) -> Result<Self, DecodeError> {
        let bad = |reason: String| DecodeError::new("fields", format!("{}: {reason}", doc.id));
        let bucket = match (&doc.day, doc.hour, doc.minute) {
            (Some(day), None, None) => {
                Bucket::Day(time::parse_day(day).ok_or_else(|| bad(format!("day {day:?} is not a date")))?)
            }
            (None, Some(hour), None) => Bucket::Hour(hour),
            (None, None, Some(minute)) => Bucket::Minute(minute),
            _ => return Err(bad("needs exactly one of day, hour and minute".into())),
        };
        let part = Part::parse(&doc.part).ok_or_else(|| bad(format!("unknown part {:?}", doc.part)))?;
        let site_day = match &doc.site_day {
            Some(d) => time::parse_day(d).ok_or_else(|| bad(format!("site_day {d:?} is not a date")))?,
            None => return Err(bad("no site_day".into())),
        };
        if matches!(bucket, Bucket::Day(d) if d != site_day) {
            return Err(bad("a day's units belong to that day's site-day".into()));
        }
        let key = RollupKey { site_id: doc.site_id.clone(), day: site_day, bucket, part };
        if key.id() != doc.id {
            return Err(bad(format!("_id does not match its fields ({})", key.id())));
        }
        if (part == Part::Live) != doc.live.is_some() || (part == Part::Live) != matches!(bucket, Bucket::Minute(_)) {
            return Err(bad("live documents, and only they, are minutes holding a live body".into()));
        }
        let body = match (part, doc.series, doc.visitors, doc.top) {
            (Part::Live, None, None, None) => {
                Body::Live(LiveMinute::decode(doc.live.as_ref().map(|b| b.bytes.as_slice()).unwrap_or_default())?)
            }
            (Part::Series, _, _, _) if doc.folded.is_some() || doc.tail.is_some() => {
                return Err(bad("a series has no list".into()));
            }
            (Part::Series, Some(counters), visitors, None) => {
                let visitors = visitors.map(|b| VisitorSketch::decode(&b.bytes)).transpose()?;
                if visitors.is_some() == bucket.is_day() {
                    return Err(bad("hourly series carry a visitor sketch, daily ones do not".into()));
                }
                Body::Series { counters, visitors }
            }
            (Part::Top(_), None, None, Some(top)) => Body::Top(TopList::decode(
                &top.bytes,
                doc.tail.as_ref().map(|b| b.bytes.as_slice()),
                doc.folded.as_ref().map(|b| b.bytes.as_slice()),
            )?),
            _ => return Err(bad(format!("body does not match part {:?}", doc.part))),
        };
        Ok(Self { key, rev: doc.rev, applied: doc.applied, body })
    }

    pub fn to_doc(&self, day_retention: Duration) -> RollupDoc {
        let binary = |bytes: Vec<u8>| Binary { subtype: BinarySubtype::Generic, bytes };
        let (series, visitors, top, tail, folded, live) = match &self.body {
            Body::Series { counters, visitors } => {
                (Some(counters.clone()), visitors.as_ref().map(|v| binary(v.encode())), None, None, None, None)
            }
            Body::Top(list) => {
                let (head, tail) = list.encode();
                (None, None, Some(binary(head)), tail.map(binary), list.filter_bits().map(|b| binary(b.to_vec())), None)
            }
            Body::Live(minute) => (None, None, None, None, None, Some(binary(minute.encode()))),
        };
        let (day, hour, minute) = match self.key.bucket {
            Bucket::Day(d) => (Some(time::day_string(d)), None, None),
            Bucket::Hour(h) => (None, Some(h), None),
            Bucket::Minute(m) => (None, None, Some(m)),
        };
        RollupDoc {
            id: self.key.id(),
            site_id: self.key.site_id.clone(),
            site_day: Some(time::day_string(self.key.day)),
            day,
            hour,
            minute,
            part: self.key.part.name(),
            rev: self.rev,
            applied: self.applied.clone(),
            expire_at: self.key.bucket.expire_at(self.key.part, day_retention),
            series,
            visitors,
            top,
            tail,
            folded,
            live,
        }
    }
}

/// The documents with these ids.
pub fn ids_filter(ids: &[String]) -> Document {
    doc! {"_id": {"$in": ids}}
}

/// A write of `doc` conditional on its revision (see [`crate::store::revisioned_write`]).
pub fn replace_statement(doc: &RollupDoc, read_rev: i64) -> Result<Document, mongodb::bson::ser::Error> {
    crate::store::revisioned_write(doc, &doc.id, read_rev)
}

/// Indexes of the rollup collection: only `expire_at`, for the expiry job
/// ([`crate::indexes::Expiry`]). Every read addresses documents by `_id`.
pub fn indexes() -> Vec<IndexModel> {
    vec![IndexModel::builder().keys(doc! {"expire_at": 1}).build()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        time::parse_day(s).expect("day")
    }

    fn round_trip(r: &Rollup) -> Rollup {
        let doc = r.to_doc(Duration::from_secs(86_400));
        let bson = mongodb::bson::to_document(&doc).expect("serializes");
        let back: RollupDoc = mongodb::bson::from_document(bson).expect("deserializes");
        Rollup::from_doc(back).expect("decodes")
    }

    #[test]
    fn every_part_round_trips_through_bson() {
        let mut top = Rollup::empty(RollupKey::of_day("s1", day("2026-11-26"), Part::Top(Dim::Click)));
        if let Body::Top(list) = &mut top.body {
            let mut d = BTreeMap::new();
            d.insert("button#cta".to_string(), TopDelta { counts: Counts::of(2), text: Some("Go".into()) });
            list.apply(&d, &Capacity { keys: 10, bytes: 1000, filter_bits_log2: 10 });
        }
        top.rev = 3;
        top.applied.insert("a1b2".into(), Watermark { seq: 7, at: DateTime::from_millis(1) });
        assert_eq!(round_trip(&top), top);
        let mut hour = Rollup::empty(RollupKey::new("s1", day("2025-11-26"), Bucket::Hour(1_764_115_200), Part::Series));
        if let Body::Series { counters, visitors: Some(v) } = &mut hour.body {
            counters.pageviews = 4;
            counters.time_sum = 2.5;
            v.insert(42);
        }
        assert_eq!(round_trip(&hour), hour);
        assert_eq!(hour.key.id(), "s1|c|2025-11-26|h|1764115200|series");
    }

    /// A way to damage a stored document.
    type Damage = Box<dyn Fn(&mut Document)>;

    #[test]
    fn a_field_that_does_not_read_is_an_error_not_a_zero() {
        let good = Rollup::empty(RollupKey::of_day("s", day("2026-11-26"), Part::Series)).to_doc(Duration::ZERO);
        let good = mongodb::bson::to_document(&good).expect("bson");
        let cases: Vec<(&str, Damage)> = vec![
            (
                "missing counter",
                Box::new(|d| {
                    d.get_document_mut("series").expect("series").remove("clicks");
                }),
            ),
            (
                "counter of the wrong type",
                Box::new(|d| {
                    d.get_document_mut("series").expect("series").insert("pageviews", "7");
                }),
            ),
            (
                "unknown part",
                Box::new(|d| {
                    d.insert("part", "top:weather");
                }),
            ),
            (
                "unknown field",
                Box::new(|d| {
                    d.insert("pageviews", 3);
                }),
            ),
            (
                "day and hour",
                Box::new(|d| {
                    d.insert("hour", 5_i64);
                }),
            ),
            (
                "id from another bucket",
                Box::new(|d| {
                    d.insert("day", "2026-11-25");
                }),
            ),
            (
                "day held by another site-day",
                Box::new(|d| {
                    d.insert("site_day", "2026-11-25");
                }),
            ),
            (
                "no site-day",
                Box::new(|d| {
                    d.remove("site_day");
                }),
            ),
            (
                "series without counters",
                Box::new(|d| {
                    d.remove("series");
                }),
            ),
            (
                "top body on a series",
                Box::new(|d| {
                    d.insert("top", Binary { subtype: BinarySubtype::Generic, bytes: vec![1] });
                }),
            ),
        ];
        for (case, mutate) in cases {
            let mut d = good.clone();
            mutate(&mut d);
            let decoded = mongodb::bson::from_document::<RollupDoc>(d)
                .map_err(|e| e.to_string())
                .and_then(|doc| Rollup::from_doc(doc).map_err(|e| e.to_string()));
            assert!(decoded.is_err(), "case {case}: read as {decoded:?}");
        }
    }

    #[test]
    fn documents_expire_after_their_retention() {
        let d = Bucket::Day(day("2025-11-26"));
        assert_eq!(
            d.expire_at(Part::Series, Duration::from_secs(86_400)).timestamp_millis(),
            1_764_201_600_000 + 86_400_000
        );
        let hour = Bucket::Hour(1_000);
        assert_eq!(hour.expire_at(Part::Top(Dim::Page), Duration::ZERO).timestamp_millis(), 1_000_000 + 49 * 3_600_000);
        assert_eq!(hour.expire_at(Part::Series, Duration::ZERO).timestamp_millis(), 1_000_000 + 15 * 86_400_000);
    }
}
