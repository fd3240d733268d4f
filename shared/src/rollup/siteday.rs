//! One document per site and local day: every unit of a small site-day in one place.
//!
//! A service for thousands of small sites sees most sites get a batch or two per flush. Stored
//! one unit per document, each such batch would cost a document per part of its day, of its
//! hour and of its minute (about 19); stored here, it costs one. A site-day document
//! ([`SiteDayDoc`], `_id` `site|c|2026-11-26`) holds the units of its day bucket in field `d`,
//! of its hours in `h` and of its minutes (the live view) in `m`, each field one binary
//! encoding of its units, so a reader fetches only the field it needs.
//!
//! **Splitting.** Once a write would make the encoded units pass [`COMPACT_MAX_BYTES`], the
//! site-day splits for good: each unit is written to a document of its own
//! ([`super::RollupDoc`], `_id` [`super::RollupKey::id`]) and then the site-day document is
//! rewritten with `split: true` and no units. The site-day document decides: while it is not
//! split, unit documents of that site-day are leftovers of a split that did not finish (a crash
//! between the two writes) and count for nothing; readers ignore them and the next split
//! overwrites them (it reads their revisions first). Units never leave a site-day (expired
//! hours and minutes excepted, which no reader asks for), so a leftover always has its unit
//! still inside the site-day document.
//!
//! Exactly once: a site-day document carries `rev` and `applied` like every rollup document
//! (see `aggregator/src/flush`); all its units count a flush or none does. A split gives every
//! unit document the site-day's `applied`, since each unit counted exactly those flushes.

use std::{collections::BTreeMap, time::Duration};

use chrono::{Datelike, NaiveDate};
use mongodb::bson::{Binary, DateTime, Document, doc, spec::BinarySubtype};
use serde::{Deserialize, Serialize};

use super::{
    Body, Bucket, LiveMinute, MINUTE_KEEP, Part, Series, TopList, VisitorSketch, Watermark,
    codec::{DecodeError, Reader, put_bytes, put_varint},
};
use crate::time;

/// Past this many bytes of encoded units a site-day splits into unit documents. A few batches
/// a day take a few hundred bytes; 64 KiB is a site with a few hundred sessions by the
/// afternoon, past which one document per unit costs less than rewriting the whole day at
/// every flush, and keeps what a 90-day read fetches per day bounded.
pub const COMPACT_MAX_BYTES: usize = 64 * 1024;

const FORMAT: u8 = 1;
const MAX_UNITS: usize = 1 << 16;
const MAX_BLOB: usize = 16 << 20;

/// A site and one of its local days: the holder of the units of that day, its hours and its
/// minutes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SiteDay {
    pub site_id: String,
    pub day: NaiveDate,
}

impl SiteDay {
    pub fn new(site_id: impl Into<String>, day: NaiveDate) -> Self {
        Self { site_id: site_id.into(), day }
    }

    /// `site|c|2026-11-26`.
    pub fn id(&self) -> String {
        Self::id_of(&self.site_id, self.day)
    }

    pub fn id_of(site_id: &str, day: NaiveDate) -> String {
        format!("{site_id}|c|{}", time::day_string(day))
    }
}

/// The field of a site-day document that holds the units of one kind of bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `d`: the day bucket's units.
    Days,
    /// `h`: the hours' units.
    Hours,
    /// `m`: the minutes' live units.
    Minutes,
}

impl Field {
    pub const ALL: [Field; 3] = [Field::Days, Field::Hours, Field::Minutes];

    pub fn of(bucket: &Bucket) -> Self {
        match bucket {
            Bucket::Day(_) => Self::Days,
            Bucket::Hour(_) => Self::Hours,
            Bucket::Minute(_) => Self::Minutes,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Days => "d",
            Self::Hours => "h",
            Self::Minutes => "m",
        }
    }
}

/// Field names of [`SiteDayDoc`] used in projections.
pub mod fields {
    pub const SPLIT: &str = "split";
}

/// What a reader fetches of site-day documents: whether each split, and the units of `field`.
pub fn projection(field: Field) -> Document {
    doc! {fields::SPLIT: 1, field.name(): 1}
}

/// A site-day document as stored. Read it through [`SiteDayRollup::from_doc`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteDayDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub site_id: String,
    pub day: String,
    pub rev: i64,
    pub applied: BTreeMap<String, Watermark>,
    pub expire_at: DateTime,
    /// True once the units live in documents of their own.
    #[serde(with = "crate::store::flag")]
    pub split: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<Binary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h: Option<Binary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<Binary>,
}

/// The units of a site-day, by bucket and part.
pub type Units = BTreeMap<(Bucket, Part), Body>;

/// A site-day document, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteDayRollup {
    pub key: SiteDay,
    /// 0 for a document not stored yet.
    pub rev: i64,
    pub applied: BTreeMap<String, Watermark>,
    pub split: bool,
    /// Empty once split.
    pub units: Units,
}

impl SiteDayRollup {
    /// A site-day not stored yet.
    pub fn empty(key: SiteDay) -> Self {
        Self { key, rev: 0, applied: BTreeMap::new(), split: false, units: Units::new() }
    }

    pub fn from_doc(doc: SiteDayDoc) -> Result<Self, DecodeError> {
        let bad = |reason: String| DecodeError::new("site-day", format!("{}: {reason}", doc.id));
        let day = time::parse_day(&doc.day).ok_or_else(|| bad(format!("day {:?} is not a date", doc.day)))?;
        let key = SiteDay::new(doc.site_id.clone(), day);
        if key.id() != doc.id {
            return Err(bad(format!("_id does not match its fields ({})", key.id())));
        }
        let mut units = Units::new();
        for (field, blob) in [(Field::Days, &doc.d), (Field::Hours, &doc.h), (Field::Minutes, &doc.m)] {
            let Some(blob) = blob else { continue };
            if doc.split {
                return Err(bad("a split site-day holds no units".into()));
            }
            for (bucket, part, body) in decode_units(&blob.bytes, field, day)? {
                units.insert((bucket, part), body);
            }
        }
        Ok(Self { key, rev: doc.rev, applied: doc.applied, split: doc.split, units })
    }

    pub fn to_doc(&self, day_retention: Duration) -> SiteDayDoc {
        self.to_doc_encoded(self.encode(), day_retention)
    }

    /// [`Self::to_doc`] with the units already encoded ([`Self::encode`]).
    pub fn to_doc_encoded(&self, [d, h, m]: [Option<Vec<u8>>; 3], day_retention: Duration) -> SiteDayDoc {
        let binary = |bytes: Option<Vec<u8>>| bytes.map(|bytes| Binary { subtype: BinarySubtype::Generic, bytes });
        SiteDayDoc {
            id: self.key.id(),
            site_id: self.key.site_id.clone(),
            day: time::day_string(self.key.day),
            rev: self.rev,
            applied: self.applied.clone(),
            expire_at: Bucket::Day(self.key.day).expire_at(Part::Series, day_retention),
            split: self.split,
            d: binary(d),
            h: binary(h),
            m: binary(m),
        }
    }

    /// The write of this site-day conditional on its revision being `read_rev`
    /// ([`crate::store::revisioned_write`]), removing the unit fields it no longer has (a
    /// split leaves none).
    pub fn write_statement(&self, day_retention: Duration, read_rev: i64) -> Result<Document, mongodb::bson::ser::Error> {
        self.write_statement_encoded(self.encode(), day_retention, read_rev)
    }

    /// [`Self::write_statement`] with the units already encoded ([`Self::encode`]).
    pub fn write_statement_encoded(
        &self,
        encoded: [Option<Vec<u8>>; 3],
        day_retention: Duration,
        read_rev: i64,
    ) -> Result<Document, mongodb::bson::ser::Error> {
        let doc = self.to_doc_encoded(encoded, day_retention);
        let gone: Vec<&str> = [(Field::Days, &doc.d), (Field::Hours, &doc.h), (Field::Minutes, &doc.m)]
            .into_iter()
            .filter(|(_, v)| v.is_none())
            .map(|(f, _)| f.name())
            .collect();
        let mut statement = crate::store::revisioned_write(&doc, &doc.id, read_rev)?;
        if !gone.is_empty()
            && read_rev > 0
            && let Ok(u) = statement.get_document_mut("u")
        {
            // Only when there is something to remove: MongoDB before 5.0 refuses an empty `$unset`.
            u.insert(
                "$unset",
                gone.into_iter().map(|f| (f.to_string(), mongodb::bson::Bson::String(String::new()))).collect::<Document>(),
            );
        }
        Ok(statement)
    }

    /// The encoded units of each field (`d`, `h`, `m`), `None` for a field without units.
    pub fn encode(&self) -> [Option<Vec<u8>>; 3] {
        Field::ALL.map(|field| {
            let units: Vec<(&Bucket, &Part, &Body)> =
                self.units.iter().filter(|((b, _), _)| Field::of(b) == field).map(|((b, p), body)| (b, p, body)).collect();
            (!units.is_empty()).then(|| encode_units(&units))
        })
    }

    /// Bytes the units take encoded: what [`COMPACT_MAX_BYTES`] limits.
    pub fn encoded_len(&self) -> usize {
        self.encode().iter().flatten().map(Vec::len).sum()
    }

    /// Drops the hours and minutes no reader asks for any more (older than [`Bucket::hour_keep`]
    /// and [`MINUTE_KEEP`]; their unit documents would have expired too).
    pub fn drop_expired(&mut self, now_ms: i64) {
        let now = now_ms / 1000;
        self.units.retain(|(bucket, part), _| match bucket {
            Bucket::Day(_) => true,
            Bucket::Hour(start) => start + Bucket::hour_keep(*part).as_secs() as i64 > now,
            Bucket::Minute(start) => start + MINUTE_KEEP.as_secs() as i64 > now,
        });
    }
}

/// What a reader fetched of one site-day document with [`projection`].
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    pub split: bool,
    pub units: Vec<(Bucket, Part, Body)>,
}

/// Reads a site-day document fetched with [`projection`]`(field)`.
pub fn read_fetched(raw: &Document, field: Field) -> Result<Fetched, DecodeError> {
    let id = raw.get_str("_id").map_err(|e| DecodeError::new("site-day", format!("_id: {e}")))?;
    let bad = |reason: String| DecodeError::new("site-day", format!("{id}: {reason}"));
    let split =
        raw.get(fields::SPLIT).and_then(crate::store::flag::read).ok_or_else(|| bad("split is not a flag".into()))?;
    let day = id.rsplit('|').next().and_then(time::parse_day).ok_or_else(|| bad("_id names no day".into()))?;
    let units = match raw.get(field.name()) {
        None => Vec::new(),
        Some(_) if split => return Err(bad("a split site-day holds no units".into())),
        Some(v) => match v {
            mongodb::bson::Bson::Binary(b) => decode_units(&b.bytes, field, day)?,
            other => return Err(bad(format!("{} is {:?}, not binary", field.name(), other.element_type()))),
        },
    };
    Ok(Fetched { split, units })
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_series(out: &mut Vec<u8>, s: &Series) {
    for v in [s.pageviews, s.sessions, s.clicks, s.visitors, s.scroll_sum, s.conversions, s.engaged, s.started] {
        put_varint(out, zigzag(v));
    }
    for v in s.reached {
        put_varint(out, zigzag(v));
    }
    put_varint(out, s.time_sum.to_bits());
}

fn read_series(r: &mut Reader<'_>) -> Result<Series, DecodeError> {
    let mut next = || r.varint().map(unzigzag);
    let mut s = Series {
        pageviews: next()?,
        sessions: next()?,
        clicks: next()?,
        visitors: next()?,
        scroll_sum: next()?,
        conversions: next()?,
        engaged: next()?,
        started: next()?,
        ..Series::default()
    };
    for slot in s.reached.iter_mut() {
        *slot = next()?;
    }
    s.time_sum = f64::from_bits(r.varint()?);
    Ok(s)
}

fn put_opt(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            put_bytes(out, b);
        }
    }
}

fn read_opt<'a>(r: &mut Reader<'a>) -> Result<Option<&'a [u8]>, DecodeError> {
    match r.u8()? {
        0 => Ok(None),
        1 => {
            let n = r.len(MAX_BLOB)?;
            Ok(Some(r.bytes(n)?))
        }
        _ => Err(DecodeError::new("site-day", "bad option tag")),
    }
}

fn encode_units(units: &[(&Bucket, &Part, &Body)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + units.len() * 48);
    out.push(FORMAT);
    put_varint(&mut out, units.len() as u64);
    for (bucket, part, body) in units {
        let at = match bucket {
            Bucket::Day(d) => d.num_days_from_ce() as i64,
            Bucket::Hour(s) | Bucket::Minute(s) => *s,
        };
        put_varint(&mut out, zigzag(at));
        put_bytes(&mut out, part.name().as_bytes());
        match body {
            Body::Series { counters, visitors } => {
                put_series(&mut out, counters);
                put_opt(&mut out, visitors.as_ref().map(VisitorSketch::encode).as_deref());
            }
            Body::Top(list) => {
                let (head, tail) = list.encode();
                put_bytes(&mut out, &head);
                put_opt(&mut out, tail.as_deref());
                put_opt(&mut out, list.filter_bits());
            }
            Body::Live(minute) => put_bytes(&mut out, &minute.encode()),
        }
    }
    out
}

fn decode_units(bytes: &[u8], field: Field, day: NaiveDate) -> Result<Vec<(Bucket, Part, Body)>, DecodeError> {
    let bad = |reason: String| DecodeError::new("site-day units", reason);
    let mut r = Reader::new(bytes, "site-day units");
    let format = r.u8()?;
    if format != FORMAT {
        return Err(bad(format!("unknown format {format}")));
    }
    let n = r.len(MAX_UNITS)?;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let at = unzigzag(r.varint()?);
        let bucket = match field {
            Field::Days => {
                let d = i32::try_from(at)
                    .ok()
                    .and_then(NaiveDate::from_num_days_from_ce_opt)
                    .ok_or_else(|| bad(format!("day {at}")))?;
                if d != day {
                    return Err(bad(format!("day {d} inside the site-day of {day}")));
                }
                Bucket::Day(d)
            }
            Field::Hours => Bucket::Hour(at),
            Field::Minutes => Bucket::Minute(at),
        };
        let name = r.string(64)?;
        let part = Part::parse(&name).ok_or_else(|| bad(format!("unknown part {name:?}")))?;
        let body = match part {
            Part::Series => {
                let counters = read_series(&mut r)?;
                let visitors = read_opt(&mut r)?.map(VisitorSketch::decode).transpose()?;
                if visitors.is_some() != matches!(bucket, Bucket::Hour(_)) {
                    return Err(bad("hourly series carry a visitor sketch, and only they".into()));
                }
                Body::Series { counters, visitors }
            }
            Part::Top(_) => {
                let len = r.len(MAX_BLOB)?;
                let head = r.bytes(len)?;
                let tail = read_opt(&mut r)?;
                let filter = read_opt(&mut r)?;
                Body::Top(TopList::decode(head, tail, filter)?)
            }
            Part::Live => {
                let len = r.len(MAX_BLOB)?;
                Body::Live(LiveMinute::decode(r.bytes(len)?)?)
            }
        };
        if (part == Part::Live) != (field == Field::Minutes) || (part == Part::Series && field == Field::Minutes) {
            return Err(bad(format!("part {name} in field {}", field.name())));
        }
        out.push((bucket, part, body));
    }
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollup::{Capacity, Counts, Dim, HOURLY_KEEP, HOURLY_SERIES_KEEP, TopDelta};

    fn day() -> NaiveDate {
        time::parse_day("2026-11-26").expect("day")
    }

    fn sample() -> SiteDayRollup {
        let mut r = SiteDayRollup::empty(SiteDay::new("s1", day()));
        let series =
            Series { pageviews: 3, sessions: 1, time_sum: 2.5, reached: [1, 0, 0, 0], started: 1, ..Series::default() };
        r.units.insert((Bucket::Day(day()), Part::Series), Body::Series { counters: series.clone(), visitors: None });
        let mut sketch = VisitorSketch::default();
        sketch.insert(7);
        r.units
            .insert((Bucket::Hour(1_795_687_200), Part::Series), Body::Series { counters: series, visitors: Some(sketch) });
        let mut list = TopList::default();
        let deltas: BTreeMap<String, TopDelta> =
            [("/pricing".to_string(), TopDelta { counts: Counts::of(2), text: None })].into();
        list.apply(&deltas, &Capacity { keys: 10, bytes: 1000, filter_bits_log2: 10 });
        r.units.insert((Bucket::Day(day()), Part::Top(Dim::Page)), Body::Top(list));
        let mut minute = LiveMinute::default();
        minute.add_pageview("/", 9);
        r.units.insert((Bucket::Minute(1_795_687_260), Part::Live), Body::Live(minute));
        r.rev = 4;
        r.applied.insert("i1".into(), Watermark { seq: 3, at: DateTime::from_millis(1) });
        r
    }

    #[test]
    fn a_site_day_round_trips_through_bson_and_its_fields_read_alone() {
        let r = sample();
        let doc = r.to_doc(Duration::from_secs(86_400));
        assert_eq!(doc.id, "s1|c|2026-11-26");
        let bson = mongodb::bson::to_document(&doc).expect("bson");
        let back: SiteDayDoc = mongodb::bson::from_document(bson.clone()).expect("reads");
        assert_eq!(SiteDayRollup::from_doc(back).expect("decodes"), r);
        let hours = read_fetched(&bson, Field::Hours).expect("hours");
        assert_eq!((hours.split, hours.units.len()), (false, 1));
        assert_eq!(hours.units[0].0, Bucket::Hour(1_795_687_200));
        let days = read_fetched(&bson, Field::Days).expect("days");
        assert_eq!(days.units.len(), 2);
        assert!(r.encoded_len() > 0 && r.encoded_len() < 400, "{}", r.encoded_len());
    }

    #[test]
    fn expired_hours_and_minutes_are_dropped_and_days_kept() {
        let mut r = sample();
        let hour = Bucket::Hour(1_795_687_200);
        r.units.insert((hour, Part::Top(Dim::Page)), Body::Top(TopList::default()));
        r.drop_expired((1_795_687_260 + MINUTE_KEEP.as_secs() as i64) * 1000);
        assert_eq!(r.units.len(), 4, "the minute is gone");
        r.drop_expired((1_795_687_200 + HOURLY_KEEP.as_secs() as i64) * 1000);
        assert!(!r.units.contains_key(&(hour, Part::Top(Dim::Page))), "the hour's list is gone");
        assert!(r.units.contains_key(&(hour, Part::Series)), "the hour's series stays for the alerts");
        r.drop_expired((1_795_687_200 + HOURLY_SERIES_KEEP.as_secs() as i64) * 1000 - 1);
        assert_eq!(r.units.len(), 3, "kept until its keep is up");
        r.drop_expired((1_795_687_200 + HOURLY_SERIES_KEEP.as_secs() as i64) * 1000);
        assert_eq!(r.units.keys().map(|(b, _)| *b).collect::<Vec<_>>(), vec![Bucket::Day(day()); 2]);
    }

    /// A way to damage a stored document.
    type Damage = Box<dyn Fn(&mut Document)>;

    #[test]
    fn a_damaged_site_day_is_an_error_not_a_zero() {
        let good = mongodb::bson::to_document(&sample().to_doc(Duration::ZERO)).expect("bson");
        let cases: Vec<(&str, Damage)> = vec![
            (
                "units in a split site-day",
                Box::new(|d| {
                    d.insert("split", true);
                }),
            ),
            (
                "id of another day",
                Box::new(|d| {
                    d.insert("day", "2026-11-25");
                }),
            ),
            (
                "cut units",
                Box::new(|d| {
                    let b = d.get_binary_generic_mut("h").expect("h");
                    b.truncate(b.len() - 1);
                }),
            ),
            (
                "hours in the days field",
                Box::new(|d| {
                    let h = d.get("h").cloned().expect("h");
                    d.insert("d", h);
                }),
            ),
            (
                "unknown field",
                Box::new(|d| {
                    d.insert("x", 1);
                }),
            ),
        ];
        for (case, mutate) in cases {
            let mut d = good.clone();
            mutate(&mut d);
            let decoded = mongodb::bson::from_document::<SiteDayDoc>(d)
                .map_err(|e| e.to_string())
                .and_then(|doc| SiteDayRollup::from_doc(doc).map_err(|e| e.to_string()));
            assert!(decoded.is_err(), "case {case}: read as {decoded:?}");
        }
    }
}
