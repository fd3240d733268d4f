//! Reading stats from the rollup documents (see [`shared::rollup`] and docs/rollups.md).
//!
//! Every document is addressed by its `_id`, computed from the site, the range and the parts
//! needed — never found by a filter — so a site's stats cost the same however many sites,
//! days or documents the database holds. First the range's site-days (one per local day,
//! fetching only the field of the bucket kind needed); a site-day that has not split answers
//! from there. For the site-days that have split, a second read fetches their units — at most
//! `buckets × parts` — with top lists read by their heads (their 64 highest entries); only
//! when the heads cannot settle a list's top rows does a third read fetch the tails of that
//! dimension's units. A request reads at most `site-days + buckets × (parts + dimensions)`
//! documents ([`read_bound`]), whatever the traffic, the distinct keys or the visitors, and
//! never raw events.
//!
//! With a page filter the request reads the page list and the page breakdowns of each bucket
//! instead (two parts, whole lists): the page's own counters and the breakdowns keyed by it.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use chrono_tz::Tz;
use futures::TryStreamExt;
use mongodb::{
    Database,
    bson::{self, Document},
};
use shared::{
    names::collections as c,
    rollup::{
        self, Body, Bucket, Counts, Dim, LiveMinute, Part, Rollup, RollupDoc, RollupKey, Series, SiteDay, TopList,
        VisitorSketch,
        siteday::{self, Field},
        split_page_attr_key,
        toplist::{self, page_ext},
    },
    time,
};

use crate::{
    error::ApiError,
    stats::{Inputs, RollupRow, TopRow},
    timeframe::Range,
};

/// Most entries in a top list.
pub const TOP_N: usize = 10;
/// Goals are listed whole (a site has at most 20 live ones).
const ALL_GOALS: usize = 1000;
/// Pages ranked for entry and exit pages (v3): each is listed from the pages with the most
/// pageviews, exact within these.
const ALL_PAGES: usize = 1000;
/// Revenue, time-to-conversion and property entries read whole (v3).
const ALL_DETAILS: usize = 4000;
/// Most distinct names a page filter sums per breakdown over its range; names past it (a
/// page whose sources change every day of a year) are summed into `(other)`.
const MAX_PAGE_NAMES: usize = 20_000;

/// What a request read, and how many documents that took.
pub struct Loaded {
    pub inputs: Inputs,
    pub docs_read: usize,
}

fn buckets_in(range: &Range) -> usize {
    match range {
        Range::Days { from, to, .. } => Range::days(*from, *to).len(),
        Range::Hours { hours, .. } => hours.len(),
    }
}

/// The most documents a site-wide request for `range` may read: its site-days (at most one per
/// bucket), every part it reads of every bucket once, plus its top lists' tails once. (A page's
/// views read two parts a bucket, whole: fewer.)
pub fn read_bound(range: &Range) -> usize {
    buckets_in(range) * (1 + site_parts().len() + site_dims().count())
}

/// The dimensions a site-wide request ranks.
fn site_dims() -> impl Iterator<Item = Dim> {
    Dim::ALL.into_iter().filter(|d| !is_per_page(*d))
}

/// The dimensions of one page's views (page filters, the attention view) and of funnels,
/// never of a site-wide request.
fn is_per_page(dim: Dim) -> bool {
    matches!(dim, Dim::PageAttr | Dim::Attention | Dim::Funnel | Dim::Filter)
}

/// The parts a site-wide request reads.
fn site_parts() -> Vec<Part> {
    Part::all().into_iter().filter(|p| !matches!(p, Part::Top(d) if is_per_page(*d))).collect()
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("a rollup document does not read: {e}"))
}

/// Most ids in one `_id $in` read.
const READ_CHUNK: usize = 1000;

/// Documents fetched per batch of a cursor: what a reader holds at once besides what it keeps.
const CURSOR_BATCH: u32 = 16;

/// Calls `visit` with each document of these ids, by `_id $in` in chunks, as they stream in.
async fn for_each_by_id(
    db: &Database,
    ids: &[String],
    projection: &Document,
    mut visit: impl FnMut(Document) -> Result<(), ApiError>,
) -> Result<usize, ApiError> {
    let mut read = 0;
    for chunk in ids.chunks(READ_CHUNK) {
        let mut cursor = db
            .collection::<Document>(c::ROLLUPS)
            .find(rollup::ids_filter(chunk))
            .projection(projection.clone())
            .batch_size(CURSOR_BATCH)
            .await?;
        while let Some(raw) = cursor.try_next().await? {
            read += 1;
            visit(raw)?;
        }
    }
    Ok(read)
}

/// A unit as read: the `_id` of its document (a unit document's, or its site-day's when it
/// came inside one), its bucket, its part and what it holds.
struct Unit {
    id: String,
    bucket: Bucket,
    part: Part,
    body: Body,
}

/// What a stats read reads: a site id (the site's own, or a segment's) and the imports whose
/// days add to it (v3: each import's days are counted under a site id of its own,
/// [`shared::imports::lens_site`], so that deleting it removes exactly what it added).
#[derive(Debug, Clone)]
pub struct Scope {
    pub site_id: String,
    /// Each counted import.
    pub imports: Vec<ImportScope>,
    /// Read an import's months (or their rests) from its month units and month suffixes
    /// ([`shared::imports::month_lens_site`], [`shared::imports::suffix_lens_site`]): for
    /// site-wide lists, not for a page filter
    /// (whose series comes from the page list of each day).
    pub months: bool,
}

/// Which units of a site-day document a read keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Keep {
    All,
    /// An import's month unit or month suffix: the lists of its days, and their series from
    /// its series list ([`shared::imports::SERIES_DIM`]).
    Merged,
}

impl Keep {
    /// The parts to fetch of a document of this kind, for a read of `parts`.
    fn parts(self, parts: &[Part]) -> Vec<Part> {
        match self {
            Keep::All => parts.to_vec(),
            Keep::Merged => {
                let mut month: Vec<Part> = parts.iter().copied().filter(|p| *p != Part::Series).collect();
                if parts.contains(&Part::Series) {
                    month.push(Part::Top(shared::imports::SERIES_DIM));
                }
                month
            }
        }
    }
}

/// A unit as the read wants it: a month unit's series list becomes each day's series.
fn visit_kept(keep: Keep, unit: Unit, visit: &mut impl FnMut(Unit) -> Result<(), ApiError>) -> Result<(), ApiError> {
    match (keep, unit.part, unit.body) {
        (Keep::Merged, Part::Top(dim), Body::Top(list)) if dim == shared::imports::SERIES_DIM => {
            for e in list.entries() {
                let day = NaiveDate::parse_from_str(&e.key, "%Y-%m-%d").map_err(internal)?;
                let counters = shared::imports::series_of(&e.counts);
                visit(Unit {
                    id: unit.id.clone(),
                    bucket: Bucket::Day(day),
                    part: Part::Series,
                    body: Body::Series { counters, visitors: None },
                })?;
            }
            Ok(())
        }
        (_, part, body) => visit(Unit { id: unit.id, bucket: unit.bucket, part, body }),
    }
}

/// A counted import, as a read sees it.
#[derive(Debug, Clone)]
pub struct ImportScope {
    /// Its own site id ([`shared::imports::lens_site`]), and those of its month units and month
    /// suffixes ([`shared::imports::month_lens_site`], [`shared::imports::suffix_lens_site`]).
    pub lens: String,
    pub months: String,
    pub suffixes: String,
    /// Its first and last day.
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// It has month units and month suffixes ([`shared::imports::ImportEntry::merged`]).
    pub merged: bool,
}

impl Scope {
    /// `site_id` alone.
    pub fn bare(site_id: &str) -> Self {
        Self { site_id: site_id.to_string(), imports: Vec::new(), months: false }
    }

    /// The site with its imports that are done.
    pub fn of_site(site: &shared::store::SiteDoc) -> Self {
        let imports = site
            .imports
            .iter()
            .filter(|i| i.counts())
            .filter_map(|i| {
                let (from, to) = i.span()?;
                Some(ImportScope {
                    lens: shared::imports::lens_site(&site.id, &i.id),
                    months: shared::imports::month_lens_site(&site.id, &i.id),
                    suffixes: shared::imports::suffix_lens_site(&site.id, &i.id),
                    from,
                    to,
                    merged: i.merged,
                })
            })
            .collect();
        Self { site_id: site.id.clone(), imports, months: true }
    }

    /// Whole days only: no month units (a page filter's series, events per day and an export
    /// need each day's own lists).
    pub fn by_days(&self) -> Self {
        Self { months: false, ..self.clone() }
    }

    /// The site-day documents to read for `days` (sorted, distinct), each with the site id and
    /// day it holds and what of it to keep: the site's own days; each import's days, but where
    /// the range holds all of an import's days of a month from some day on, one merged unit
    /// instead of each day: the month unit when that day is the import's first of the month,
    /// else the month suffix starting on it (a range starting inside a month, or the import's
    /// last month). A month the range leaves before the import's days in it end is read by day.
    fn site_days(&self, days: &[NaiveDate], field: Field) -> Vec<(String, NaiveDate, Keep)> {
        use shared::imports::{month_end, month_of};
        let mut out: Vec<(String, NaiveDate, Keep)> = days.iter().map(|d| (self.site_id.clone(), *d, Keep::All)).collect();
        if field != Field::Days {
            return out;
        }
        for ImportScope { lens, months, suffixes, from, to, merged } in &self.imports {
            let held: Vec<NaiveDate> = days.iter().copied().filter(|d| from <= d && d <= to).collect();
            for month in held.chunk_by(|a, b| month_of(*a) == month_of(*b)) {
                let (first, last) = (month[0], month[month.len() - 1]);
                let (lo, hi) = (month_of(first).max(*from), month_end(month_of(first)).min(*to));
                let rest = self.months && *merged && last == hi && (last - first).num_days() + 1 == month.len() as i64;
                if rest && first == lo {
                    out.push((months.clone(), month_of(first), Keep::Merged));
                } else if rest {
                    out.push((suffixes.clone(), first, Keep::Merged));
                } else {
                    out.extend(month.iter().map(|d| (lens.clone(), *d, Keep::All)));
                }
            }
        }
        out
    }
}

/// Calls `visit` with the units `parts` of the `buckets` wanted (all of one kind), each bucket in
/// the site-day it falls in by `tz` (a day bucket is its own site-day), of the scope's site and
/// of its imports that hold that day (an import's whole months: their lists from its month
/// units, [`Scope::site_days`]): site-days first, then the units of those that have split
/// (fetched with `projection`), one document at a time, so that a reader keeping only part of
/// each unit holds little whatever the range. Returns how many documents that took.
async fn visit_units(
    db: &Database,
    scope: &Scope,
    buckets: &[Bucket],
    tz: Tz,
    parts: &[Part],
    projection: Document,
    mut visit: impl FnMut(Unit) -> Result<(), ApiError>,
) -> Result<usize, ApiError> {
    let Some(first) = buckets.first() else { return Ok(0) };
    let field = Field::of(first);
    debug_assert!(buckets.iter().all(|b| Field::of(b) == field), "one kind of bucket per visit");
    let home = |b: &Bucket| local_day_of(b, tz);
    let mut days: Vec<NaiveDate> = buckets.iter().map(home).collect();
    days.sort_unstable();
    days.dedup();
    let by_id: HashMap<String, (String, NaiveDate, Keep)> = scope
        .site_days(&days, field)
        .into_iter()
        .map(|(site, d, keep)| (SiteDay::id_of(&site, d), (site, d, keep)))
        .collect();
    let ids: Vec<String> = by_id.keys().cloned().collect();
    let wanted: HashSet<Bucket> = buckets.iter().copied().collect();
    let mut split: Vec<(String, NaiveDate, Keep)> = Vec::new();
    let mut read = for_each_by_id(db, &ids, &siteday::projection(field), |raw| {
        let id = raw.get_str("_id").map_err(internal)?.to_string();
        let (_, _, keep) = by_id.get(&id).ok_or_else(|| internal(format!("{id} was not asked for")))?;
        let keep = *keep;
        let f = siteday::read_fetched(&raw, field).map_err(internal)?;
        if f.split {
            split.push(by_id[&id].clone());
        }
        let keep_parts = keep.parts(parts);
        // A merged unit is wanted whole: its day (a month's first) may be before the range.
        let wanted = |b: &Bucket| keep == Keep::Merged || wanted.contains(b);
        for (bucket, part, body) in f.units.into_iter().filter(|(b, p, _)| wanted(b) && keep_parts.contains(p)) {
            visit_kept(keep, Unit { id: id.clone(), bucket, part, body }, &mut visit)?;
        }
        Ok(())
    })
    .await?;
    if split.is_empty() {
        return Ok(read);
    }
    let unit_ids: Vec<String> = split
        .iter()
        .flat_map(|(site, d, keep)| {
            let keep_parts = keep.parts(parts);
            let of_day: Vec<Bucket> = match keep {
                Keep::All => buckets.iter().copied().filter(|b| home(b) == *d).collect(),
                Keep::Merged => vec![Bucket::Day(*d)],
            };
            of_day
                .into_iter()
                .flat_map(move |b| keep_parts.clone().into_iter().map(move |p| RollupKey::new(site, *d, b, p).id()))
        })
        .collect();
    let merged_sites: HashSet<&str> =
        split.iter().filter(|(_, _, keep)| *keep == Keep::Merged).map(|(site, _, _)| site.as_str()).collect();
    read += for_each_by_id(db, &unit_ids, &projection, |raw| {
        let doc: RollupDoc = bson::from_document(raw).map_err(internal)?;
        let r = Rollup::from_doc(doc).map_err(internal)?;
        let keep = if merged_sites.contains(r.key.site_id.as_str()) { Keep::Merged } else { Keep::All };
        visit_kept(keep, Unit { id: r.key.id(), bucket: r.key.bucket, part: r.key.part, body: r.body }, &mut visit)
    })
    .await?;
    Ok(read)
}

/// [`visit_units`] for every bucket of `range`.
async fn visit_range(
    db: &Database,
    scope: &Scope,
    range: &Range,
    tz: Tz,
    parts: &[Part],
    projection: Document,
    visit: impl FnMut(Unit) -> Result<(), ApiError>,
) -> Result<usize, ApiError> {
    match range {
        Range::Days { from, to, .. } => {
            let buckets: Vec<Bucket> = from.iter_days().take_while(|d| d <= to).map(Bucket::Day).collect();
            visit_units(db, scope, &buckets, tz, parts, projection, visit).await
        }
        Range::Hours { hours, .. } => {
            let buckets: Vec<Bucket> = hours.iter().map(|h| Bucket::Hour(*h)).collect();
            visit_units(db, scope, &buckets, tz, parts, projection, visit).await
        }
    }
}

/// The local day (in `tz`) a bucket falls in: its site-day.
fn local_day_of(b: &Bucket, tz: Tz) -> NaiveDate {
    match b {
        Bucket::Day(d) => *d,
        Bucket::Hour(s) | Bucket::Minute(s) => time::local_day(s * 1000, tz),
    }
}

/// The buckets of `range` with their labels, oldest first.
fn labelled_buckets(range: &Range, tz: Tz) -> Vec<(Bucket, String)> {
    match range {
        Range::Days { from, to, .. } => {
            from.iter_days().take_while(|d| d <= to).map(|day| (Bucket::Day(day), time::day_string(day))).collect()
        }
        Range::Hours { hours, .. } => hours.iter().map(|h| (Bucket::Hour(*h), time::hour_label(*h, tz))).collect(),
    }
}

/// The points of `range`, oldest first, from each bucket's row (zeros where none).
fn points(range: &Range, tz: Tz, mut rows: HashMap<Bucket, RollupRow>) -> Vec<(String, RollupRow)> {
    labelled_buckets(range, tz).into_iter().map(|(b, label)| (label, rows.remove(&b).unwrap_or_default())).collect()
}

/// Reads everything a stats response needs for `range`, for the site or (`page`) one page.
pub async fn load(db: &Database, scope: &Scope, range: &Range, tz: Tz, page: Option<&str>) -> Result<Loaded, ApiError> {
    match page {
        None => load_site(db, scope, range, tz).await,
        Some(path) => load_page(db, &scope.by_days(), range, tz, path).await,
    }
}

/// Reads only the counters and visitor sketches of `range`, no top list: what an alert
/// compares (`crate::alerts`). At most `site-days + buckets` documents.
pub async fn load_series(db: &Database, scope: &Scope, range: &Range, tz: Tz) -> Result<Loaded, ApiError> {
    load_parts(db, scope, range, tz, &[Part::Series]).await
}

async fn load_site(db: &Database, scope: &Scope, range: &Range, tz: Tz) -> Result<Loaded, ApiError> {
    load_parts(db, scope, range, tz, &site_parts()).await
}

async fn load_parts(db: &Database, scope: &Scope, range: &Range, tz: Tz, parts: &[Part]) -> Result<Loaded, ApiError> {
    let mut units = Vec::new();
    let mut docs_read = visit_range(db, scope, range, tz, parts, rollup::read_projection(), |u| {
        units.push(u);
        Ok(())
    })
    .await?;
    let mut rows: HashMap<Bucket, RollupRow> = HashMap::new();
    let mut sketches: Vec<VisitorSketch> = Vec::new();
    let mut tops: HashMap<Dim, Vec<(String, TopList)>> = HashMap::new();
    for u in units {
        match (u.part, u.body) {
            (Part::Series, Body::Series { counters, visitors }) => {
                let distinct = match &visitors {
                    Some(sketch) => sketch.count() as i64,
                    None => counters.visitors,
                };
                // A bucket held by two site-days (written under two time zones) adds up.
                rows.entry(u.bucket).or_default().add(&series_row(&counters, distinct));
                sketches.extend(visitors);
            }
            (Part::Top(dim), Body::Top(list)) => tops.entry(dim).or_default().push((u.id, list)),
            (part, _) => return Err(internal(format!("{} holds the body of another part than {part:?}", u.id))),
        }
    }
    let mut lists = HashMap::new();
    let (mut pages, mut details) = (Vec::new(), Vec::new());
    for dim in site_dims() {
        let limit = match dim {
            Dim::Goal => ALL_GOALS,
            Dim::Page => ALL_PAGES,
            Dim::Detail => ALL_DETAILS,
            _ => TOP_N,
        };
        let (rows, read) = top(db, tops.remove(&dim).unwrap_or_default(), limit).await?;
        docs_read += read;
        match dim {
            Dim::Page => pages = rows.iter().map(|r| (r.key.clone(), r.counts)).collect(),
            Dim::Detail => {
                details = rows.into_iter().map(|r| (r.key, r.counts.n)).collect();
                continue;
            }
            _ => {}
        }
        let mut rows: Vec<TopRow> = rows.into_iter().map(top_row).collect();
        if dim == Dim::Page {
            // A page's entry also carries the conversions of sessions that entered on it and
            // the scrolls and clicks on it, which may land in a bucket without its pageviews.
            rows.retain(|r| r.count > 0);
            rows.truncate(TOP_N);
        }
        lists.insert(dim, rows);
    }
    let distinct_visitors = match range {
        Range::Hours { .. } => {
            let mut all = VisitorSketch::default();
            sketches.iter().for_each(|s| all.merge(s));
            Some(all.count() as i64)
        }
        Range::Days { .. } => None,
    };
    let inputs = Inputs { points: points(range, tz, rows), distinct_visitors, lists, pages, details };
    Ok(Loaded { inputs, docs_read })
}

async fn load_page(db: &Database, scope: &Scope, range: &Range, tz: Tz, path: &str) -> Result<Loaded, ApiError> {
    let parts = [Part::Top(Dim::Page), Part::Top(Dim::PageAttr)];
    let mut rows: HashMap<Bucket, RollupRow> = HashMap::new();
    let mut breakdowns = KindSums::new(MAX_PAGE_NAMES);
    // Each list is looked at as it arrives and only the path's entries are kept: a year's
    // page lists are never all in memory at once.
    let docs_read = visit_range(db, scope, range, tz, &parts, bson::doc! {"folded": 0}, |u| {
        let Body::Top(list) = u.body else { return Err(internal(format!("{} is not a list", u.id))) };
        match u.part {
            Part::Top(Dim::Page) => {
                if let Some(e) = list.entries().iter().find(|e| e.key == path) {
                    rows.entry(u.bucket).or_default().add(&page_row(&e.counts));
                }
            }
            _ => {
                for e in list.entries() {
                    if let Some((p, kind, name)) = split_page_attr_key(&e.key)
                        && p == path
                    {
                        breakdowns.add(kind, name, e.counts, e.text.as_deref());
                    }
                }
            }
        }
        Ok(())
    })
    .await?;
    let points = points(range, tz, rows);
    let pageviews: i64 = points.iter().map(|(_, r)| r.pageviews).sum();
    let mut lists: HashMap<Dim, Vec<TopRow>> = HashMap::new();
    if pageviews > 0 {
        lists.insert(Dim::Page, vec![TopRow { key: path.to_string(), count: pageviews, conversions: 0, text: None }]);
    }
    for (kind, names) in breakdowns.by_kind {
        let mut ranked: Vec<TopRow> = names
            .into_iter()
            .map(|(key, (counts, text))| TopRow { key, count: counts.n as i64, conversions: counts.conv as i64, text })
            .collect();
        ranked.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        ranked.truncate(if kind == Dim::Goal { ALL_GOALS } else { TOP_N });
        lists.insert(kind, ranked);
    }
    Ok(Loaded { inputs: Inputs { points, distinct_visitors: None, lists, ..Inputs::default() }, docs_read })
}

/// The stats of the sessions whose `dim` is `value` (a one-click filter) over `range`: the
/// filter list of each bucket, whole, each looked at as it arrives and only the value's
/// entries kept (at most `site-days + buckets` documents). Summary and series come from the
/// value's own counters, `top_pages` and `goals` from its pages and goals; the other lists are
/// empty.
pub async fn load_filter(
    db: &Database,
    site_id: &str,
    range: &Range,
    tz: Tz,
    dim: &str,
    value: &str,
) -> Result<Loaded, ApiError> {
    let prefix = rollup::filter_prefix(dim, value);
    let mut rows: HashMap<Bucket, RollupRow> = HashMap::new();
    let mut names = KindSums::new(MAX_PAGE_NAMES);
    let docs_read =
        visit_range(db, &Scope::bare(site_id), range, tz, &[Part::Top(Dim::Filter)], bson::doc! {"folded": 0}, |u| {
            let Body::Top(list) = u.body else { return Err(internal(format!("{} is not a list", u.id))) };
            for e in list.entries() {
                let Some((kind, name)) = e.key.strip_prefix(&prefix).and_then(rollup::split_filter_rest) else { continue };
                match kind {
                    rollup::filter_kind::ALL => rows.entry(u.bucket).or_default().add(&page_row(&e.counts)),
                    rollup::filter_kind::PAGE => names.add(Dim::Page, name, e.counts, None),
                    rollup::filter_kind::GOAL => names.add(Dim::Goal, name, e.counts, None),
                    _ => {}
                }
            }
            Ok(())
        })
        .await?;
    let mut lists: HashMap<Dim, Vec<TopRow>> = HashMap::new();
    for (kind, entries) in names.by_kind {
        let mut ranked: Vec<TopRow> = entries
            .into_iter()
            .map(|(key, (counts, _))| TopRow { key, count: counts.n as i64, conversions: counts.conv as i64, text: None })
            .collect();
        ranked.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        ranked.truncate(if kind == Dim::Goal { ALL_GOALS } else { TOP_N });
        lists.insert(kind, ranked);
    }
    Ok(Loaded {
        inputs: Inputs { points: points(range, tz, rows), distinct_visitors: None, lists, ..Inputs::default() },
        docs_read,
    })
}

/// The days `from..=to` of `scope` as an export holds them (`shared::imports`), oldest first,
/// each with what `parts` hold: the series, the page list with each page's counters, the
/// lists of visits by source, campaign, medium, country, device, browser and OS, and custom
/// events, whole (`(other)` as a name of its own). Days without data are left out. Reads at
/// most `site-days + days × parts` documents.
pub async fn load_days(
    db: &Database,
    scope: &Scope,
    from: NaiveDate,
    to: NaiveDate,
    tz: Tz,
    parts: &[Part],
) -> Result<(Vec<shared::imports::ImportedDay>, usize), ApiError> {
    use shared::imports::{ImportedDay, NamedRow, PageRow, VisitDim};
    let buckets: Vec<Bucket> = from.iter_days().take_while(|d| *d <= to).map(Bucket::Day).collect();
    let mut days: std::collections::BTreeMap<NaiveDate, ImportedDay> = std::collections::BTreeMap::new();
    let read = visit_units(db, &scope.by_days(), &buckets, tz, parts, bson::doc! {"folded": 0}, |u| {
        let Bucket::Day(date) = u.bucket else { return Ok(()) };
        let day = days.entry(date).or_insert_with(|| ImportedDay { date: time::day_string(date), ..ImportedDay::default() });
        match (u.part, u.body) {
            (Part::Series, Body::Series { counters: s, .. }) => {
                let n = |v: i64| v.max(0) as u64;
                day.visitors += n(s.visitors);
                day.pageviews += n(s.pageviews);
                day.visits += n(s.sessions);
                day.bounces += n(s.started - s.engaged);
                day.visit_duration += s.time_sum.max(0.0).round() as u64;
            }
            (Part::Top(dim), Body::Top(list)) => {
                let other = list.other();
                let entries = list.entries().iter().map(|e| (e.key.as_str(), e.counts));
                let all = entries.chain((other != Counts::default()).then_some((toplist::OTHER, other)));
                for (key, c) in all {
                    let visit_dim = match dim {
                        Dim::Page => {
                            let row = PageRow {
                                path: key.to_string(),
                                visitors: c.ext[page_ext::VISITORS],
                                pageviews: c.n,
                                scroll: c.ext[page_ext::SCROLL_SUM],
                                entrances: c.ext[page_ext::ENTRIES],
                                bounces: c.ext[page_ext::ENTRIES].saturating_sub(c.ext[page_ext::ENGAGED]),
                                exits: c.n.saturating_sub(c.ext[page_ext::CONTINUED]),
                            };
                            match day.pages.iter_mut().find(|p| p.path == row.path) {
                                Some(p) => p.add(&row),
                                None => day.pages.push(row),
                            }
                            continue;
                        }
                        Dim::Event => {
                            match day.events.iter_mut().find(|e| e.0 == key) {
                                Some(e) => e.1 += c.n,
                                None => day.events.push((key.to_string(), c.n)),
                            }
                            continue;
                        }
                        Dim::Source => VisitDim::Source,
                        Dim::Campaign => VisitDim::Campaign,
                        Dim::Medium => VisitDim::Medium,
                        Dim::Country => VisitDim::Country,
                        Dim::Device => VisitDim::Device,
                        Dim::Browser => VisitDim::Browser,
                        Dim::Os => VisitDim::Os,
                        _ => continue,
                    };
                    match day.named.iter_mut().find(|r| r.dim == visit_dim && r.name == key) {
                        Some(r) => r.visits += c.n,
                        None => day.named.push(NamedRow { dim: visit_dim, name: key.to_string(), visits: c.n }),
                    }
                }
            }
            _ => {}
        }
        Ok(())
    })
    .await?;
    Ok((days.into_values().collect(), read))
}

/// What the Stats API v2 query reads of a site beyond its series (issue 23): the custom
/// events and the goal completions of each bucket, summed from whole lists (entries and
/// `(other)` add up to the bucket's total).
pub struct Totals {
    /// As [`Inputs::points`]: every bucket of the range, oldest first, zeros included.
    pub points: Vec<(String, RollupRow)>,
    /// Custom events per point label (read when asked for).
    pub events: HashMap<String, i64>,
    /// Sessions that completed each goal, by goal id, over the range (read when asked for).
    pub goals: HashMap<String, i64>,
    pub docs_read: usize,
}

/// The series of `range` and, when asked for, its custom events and goal completions: the
/// series, event and goal parts of each bucket (at most `site-days + buckets × 3` documents).
pub async fn load_totals(
    db: &Database,
    scope: &Scope,
    range: &Range,
    tz: Tz,
    events: bool,
    goals: bool,
) -> Result<Totals, ApiError> {
    let mut parts = vec![Part::Series];
    parts.extend(events.then_some(Part::Top(Dim::Event)));
    parts.extend(goals.then_some(Part::Top(Dim::Goal)));
    let mut rows: HashMap<Bucket, RollupRow> = HashMap::new();
    let mut event_rows: HashMap<Bucket, i64> = HashMap::new();
    let mut goal_sums: HashMap<String, i64> = HashMap::new();
    let docs_read = visit_range(db, &scope.by_days(), range, tz, &parts, bson::doc! {"folded": 0}, |u| {
        match (u.part, u.body) {
            (Part::Series, Body::Series { counters, visitors }) => {
                let distinct = visitors.map_or(counters.visitors, |sketch| sketch.count() as i64);
                rows.entry(u.bucket).or_default().add(&series_row(&counters, distinct));
            }
            (Part::Top(Dim::Event), Body::Top(list)) => {
                *event_rows.entry(u.bucket).or_default() += list.entries().iter().map(|e| e.counts.n as i64).sum::<i64>();
            }
            (Part::Top(Dim::Goal), Body::Top(list)) => {
                // A goal folded into `(other)` (past the stored keys) is not one of the site's
                // goals and is left out, as the stats leave it out.
                for e in list.entries() {
                    *goal_sums.entry(e.key.clone()).or_default() += e.counts.n as i64;
                }
            }
            (part, _) => return Err(internal(format!("{} holds the body of another part than {part:?}", u.id))),
        }
        Ok(())
    })
    .await?;
    let events =
        labelled_buckets(range, tz).into_iter().filter_map(|(b, label)| event_rows.get(&b).map(|n| (label, *n))).collect();
    Ok(Totals { points: points(range, tz, rows), events, goals: goal_sums, docs_read })
}

/// The pages of `range` with each page's own counters as a series row (what a page filter
/// reports for it): the page list of each bucket, whole, summed as it arrives (at most
/// `site-days + buckets` documents). At most `max_rows` pages are kept, the rest summed into
/// `(other)`; pages without a pageview in the range are left out, as the stats leave them out.
pub async fn load_page_rows(
    db: &Database,
    scope: &Scope,
    range: &Range,
    tz: Tz,
    max_rows: usize,
) -> Result<(Vec<(String, RollupRow)>, usize), ApiError> {
    let mut pages = KindSums::new(max_rows);
    let docs_read = visit_range(db, scope, range, tz, &[Part::Top(Dim::Page)], bson::doc! {"folded": 0}, |u| {
        let Body::Top(list) = u.body else { return Err(internal(format!("{} is not a list", u.id))) };
        for e in list.entries() {
            pages.add((), &e.key, e.counts, None);
        }
        Ok(())
    })
    .await?;
    let rows =
        pages.take(&()).into_iter().map(|(path, (counts, _))| (path, page_row(&counts))).filter(|(_, r)| r.pageviews > 0);
    Ok((rows.collect(), docs_read))
}

/// One value of a one-click filter dimension over a range: its sessions' counters (what
/// `?filter=dimension:value` reports) and the sessions of it that completed each goal.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FilterValue {
    pub row: RollupRow,
    /// Sessions that completed each goal, by goal id.
    pub goals: HashMap<String, i64>,
}

/// Every value of the one-click filter dimension `dim` seen in `range`, with what the filter
/// of each would report: the filter list of each bucket, whole, summed as it arrives (at most
/// `site-days + buckets` documents). At most `max_values` values are kept, the rest summed
/// into `(other)`. Exact within the stored keys, like every list.
pub async fn load_filter_values(
    db: &Database,
    site_id: &str,
    range: &Range,
    tz: Tz,
    dim: &str,
    max_values: usize,
) -> Result<(Vec<(String, FilterValue)>, usize), ApiError> {
    let prefix = format!("{dim}{}", rollup::PAGE_ATTR_SEP);
    let mut all = KindSums::new(max_values);
    // By goal id, then value: a site has few goals, and each holds at most `max_values`.
    let mut goals = KindSums::new(max_values);
    let docs_read =
        visit_range(db, &Scope::bare(site_id), range, tz, &[Part::Top(Dim::Filter)], bson::doc! {"folded": 0}, |u| {
            let Body::Top(list) = u.body else { return Err(internal(format!("{} is not a list", u.id))) };
            for e in list.entries() {
                // `value␟kind␟name`: a value is read up to its last two separators, so one that
                // holds the separator itself still reads whole.
                let Some(rest) = e.key.strip_prefix(&prefix) else { continue };
                let mut parts = rest.rsplitn(3, rollup::PAGE_ATTR_SEP);
                let (Some(name), Some(kind), Some(value)) = (parts.next(), parts.next(), parts.next()) else { continue };
                match kind {
                    rollup::filter_kind::ALL => all.add((), value, e.counts, None),
                    rollup::filter_kind::GOAL => goals.add(name.to_string(), value, e.counts, None),
                    _ => {}
                }
            }
            Ok(())
        })
        .await?;
    let mut values: HashMap<String, FilterValue> = all
        .take(&())
        .into_iter()
        .map(|(value, (counts, _))| (value, FilterValue { row: page_row(&counts), goals: HashMap::new() }))
        .collect();
    for (goal, by_value) in goals.by_kind {
        for (value, (counts, _)) in by_value {
            values.entry(value).or_default().goals.insert(goal.clone(), counts.n as i64);
        }
    }
    Ok((values.into_iter().collect(), docs_read))
}

/// The attention view of the page `path` over `range`: the page list and the attention list
/// of each bucket, whole, each looked at as it arrives and only the path's entries kept.
/// Returns the view and how many documents it read (at most `site-days + buckets × 2`).
pub async fn load_attention(
    db: &Database,
    site_id: &str,
    range: &Range,
    tz: Tz,
    path: &str,
) -> Result<(crate::attention::PageView, usize), ApiError> {
    let parts = [Part::Top(Dim::Page), Part::Top(Dim::Attention)];
    let mut page = crate::attention::PageAttention::default();
    let docs_read = visit_range(db, &Scope::bare(site_id), range, tz, &parts, bson::doc! {"folded": 0}, |u| {
        let Body::Top(list) = u.body else { return Err(internal(format!("{} is not a list", u.id))) };
        match u.part {
            Part::Top(Dim::Page) => {
                if let Some(e) = list.entries().iter().find(|e| e.key == path) {
                    page.add_page(&e.counts);
                }
            }
            _ => {
                for e in list.entries() {
                    if let Some((p, kind, name)) = rollup::attention::split_key(&e.key)
                        && p == path
                    {
                        page.add(kind, name, e.counts, e.text.as_deref());
                    }
                }
            }
        }
        Ok(())
    })
    .await?;
    Ok((page.finish(path), docs_read))
}

/// Most property keys an event's answer lists, and values per key (v3, the contract's).
pub const MAX_PROP_KEYS: usize = 30;
pub const MAX_PROP_VALUES: usize = 10;

/// `GET /api/stats/{id}/events/{name}` (v3).
#[derive(Debug, serde::Serialize, PartialEq)]
pub struct EventProps {
    pub name: String,
    pub count: i64,
    pub props: Vec<PropKey>,
}

#[derive(Debug, serde::Serialize, PartialEq)]
pub struct PropKey {
    pub key: String,
    pub values: Vec<PropCount>,
}

#[derive(Debug, serde::Serialize, PartialEq)]
pub struct PropCount {
    pub value: String,
    pub count: i64,
}

/// The custom event `name` over `range` and its properties: the event and detail lists of
/// each bucket, whole, keeping only that event's entries (at most `site-days + 2 x buckets`
/// documents). Keys by events carrying them, most first, ties by key, at most
/// [`MAX_PROP_KEYS`]; each key's values likewise, at most [`MAX_PROP_VALUES`].
pub async fn load_event_props(
    db: &Database,
    site_id: &str,
    range: &Range,
    tz: Tz,
    name: &str,
) -> Result<(EventProps, usize), ApiError> {
    let mut count = 0_i64;
    let prefix = format!("{}{sep}{name}{sep}", rollup::detail::PROP, sep = rollup::PAGE_ATTR_SEP);
    let mut values = KindSums::<String>::new(MAX_PAGE_NAMES);
    let parts = [Part::Top(Dim::Event), Part::Top(Dim::Detail)];
    let docs_read = visit_range(db, &Scope::bare(site_id), range, tz, &parts, bson::doc! {"folded": 0}, |u| {
        let Body::Top(list) = u.body else { return Err(internal(format!("{} is not a list", u.id))) };
        for e in list.entries() {
            if u.part == Part::Top(Dim::Event) {
                if e.key == name {
                    count += e.counts.n as i64;
                }
            } else if let Some((key, value)) = e.key.strip_prefix(&prefix).and_then(|r| r.split_once(rollup::PAGE_ATTR_SEP))
            {
                values.add(key.to_string(), value, e.counts, None);
            }
        }
        Ok(())
    })
    .await?;
    let by_count = |a: &(String, i64), b: &(String, i64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    let mut keys: Vec<(String, Vec<(String, i64)>)> = values
        .by_kind
        .into_iter()
        .map(|(key, vals)| {
            let mut vals: Vec<(String, i64)> = vals.into_iter().map(|(v, (c, _))| (v, c.n as i64)).collect();
            vals.sort_by(by_count);
            (key, vals)
        })
        .collect();
    let total = |vals: &[(String, i64)]| vals.iter().map(|v| v.1).sum::<i64>();
    keys.sort_by(|a, b| total(&b.1).cmp(&total(&a.1)).then_with(|| a.0.cmp(&b.0)));
    keys.truncate(MAX_PROP_KEYS);
    let props = keys
        .into_iter()
        .map(|(key, vals)| PropKey {
            key,
            values: vals.into_iter().take(MAX_PROP_VALUES).map(|(value, count)| PropCount { value, count }).collect(),
        })
        .collect();
    Ok((EventProps { name: name.to_string(), count, props }, docs_read))
}

/// The sessions that reached each step of funnel `funnel_id` (of `steps` steps) over `range`:
/// the funnel list of each bucket, whole. Returns the counts and how many documents it read
/// (at most `site-days + buckets`).
pub async fn load_funnel(
    db: &Database,
    site_id: &str,
    range: &Range,
    tz: Tz,
    funnel_id: &str,
    steps: usize,
) -> Result<(Vec<i64>, usize), ApiError> {
    let mut counts = vec![0_i64; steps];
    let docs_read =
        visit_range(db, &Scope::bare(site_id), range, tz, &[Part::Top(Dim::Funnel)], bson::doc! {"folded": 0}, |u| {
            let Body::Top(list) = u.body else { return Err(internal(format!("{} is not a list", u.id))) };
            for e in list.entries() {
                if let Some((id, step)) = rollup::split_funnel_key(&e.key)
                    && id == funnel_id
                    && (1..=steps).contains(&step)
                {
                    counts[step - 1] += e.counts.n as i64;
                }
            }
            Ok(())
        })
        .await?;
    Ok((counts, docs_read))
}

/// Entries of one page summed over a range, by kind (a page breakdown's [`Dim`], an attention
/// [`rollup::attention::Kind`]): kind → name → counts and a text seen. Each kind holds at most
/// `max_names` names and `(other)`, which the names past them add to, so a year of lists never
/// holds more than that in memory.
pub(crate) struct KindSums<K> {
    max_names: usize,
    pub(crate) by_kind: HashMap<K, HashMap<String, (Counts, Option<String>)>>,
}

impl<K: Eq + std::hash::Hash> KindSums<K> {
    pub(crate) fn new(max_names: usize) -> Self {
        Self { max_names, by_kind: HashMap::new() }
    }

    pub(crate) fn add(&mut self, kind: K, name: &str, counts: Counts, text: Option<&str>) {
        let names = self.by_kind.entry(kind).or_default();
        let name = if names.len() >= self.max_names && !names.contains_key(name) { toplist::OTHER } else { name };
        let slot = names.entry(name.to_string()).or_default();
        slot.0.add(counts);
        // The greatest text seen, so the answer does not depend on the order documents come in.
        if let Some(t) = text.filter(|t| slot.1.as_deref().is_none_or(|cur| *t > cur)) {
            slot.1 = Some(t.to_string());
        }
    }

    /// The sums of one kind, taken out.
    pub(crate) fn take(&mut self, kind: &K) -> HashMap<String, (Counts, Option<String>)> {
        self.by_kind.remove(kind).unwrap_or_default()
    }
}

/// A bucket's counters, with its distinct visitors (an hour's come from its sketch).
fn series_row(s: &Series, visitors: i64) -> RollupRow {
    RollupRow { visitors, ..s.clone() }
}

/// A page's own counters, as a series row: its sessions are those that entered on it.
fn page_row(c: &Counts) -> RollupRow {
    let e = |i: usize| c.ext[i] as i64;
    RollupRow {
        pageviews: c.n as i64,
        sessions: e(page_ext::ENTRIES),
        clicks: e(page_ext::CLICKS),
        visitors: e(page_ext::VISITORS),
        scroll_sum: e(page_ext::SCROLL_SUM),
        time_sum: e(page_ext::TIME_MS) as f64 / 1000.0,
        reached: [e(page_ext::REACHED), e(page_ext::REACHED + 1), e(page_ext::REACHED + 2), e(page_ext::REACHED + 3)],
        conversions: c.conv as i64,
        engaged: e(page_ext::ENGAGED),
        started: e(page_ext::ENTRIES),
    }
}

fn top_row(r: toplist::Ranked) -> TopRow {
    TopRow { key: r.key, count: r.counts.n as i64, conversions: r.counts.conv as i64, text: r.text }
}

/// The top rows of one dimension's lists (read by their heads), fetching the tails the heads
/// cannot do without. Returns the rows and how many documents the tails took.
async fn top(
    db: &Database,
    mut lists: Vec<(String, TopList)>,
    limit: usize,
) -> Result<(Vec<toplist::Ranked>, usize), ApiError> {
    let heads: Vec<&TopList> = lists.iter().map(|(_, l)| l).collect();
    let need = match toplist::merge_heads(&heads, limit) {
        toplist::HeadMerge::Exact(rows) => return Ok((rows, 0)),
        toplist::HeadMerge::NeedTails(need) => need,
    };
    let ids: Vec<String> = need.iter().map(|&i| lists[i].0.clone()).collect();
    let mut tails: HashMap<String, Vec<u8>> = HashMap::new();
    let mut cursor =
        db.collection::<Document>(c::ROLLUPS).find(rollup::ids_filter(&ids)).projection(rollup::tail_projection()).await?;
    let mut read = 0;
    while let Some(d) = cursor.try_next().await? {
        read += 1;
        let id = d.get_str("_id").map_err(internal)?.to_string();
        if let Ok(tail) = d.get_binary_generic("tail") {
            tails.insert(id, tail.clone());
        }
    }
    for &i in &need {
        let (id, list) = &mut lists[i];
        let Some(tail) = tails.get(id.as_str()) else { continue };
        *list = list.with_tail(tail).map_err(internal)?;
    }
    Ok((toplist::merge(lists.iter().map(|(_, l)| l), limit), read))
}

/// The live view: the last 30 minutes, from their site-days (one or two) and, where those have
/// split, the minutes' own documents (at most 30).
pub struct Live {
    /// Pageviews per minute, oldest first, 30 of them: (`HH:MM` in the site's zone, pageviews).
    pub pageviews: Vec<(String, u64)>,
    pub visitors_5m: u64,
    /// (path, visitors) in the last 5 minutes, most first, ties by path, at most 10.
    pub top_pages_5m: Vec<(String, u64)>,
}

/// Reads the live view of a site at `now_ms`.
pub async fn load_live(db: &Database, site_id: &str, tz: Tz, now_ms: i64) -> Result<Live, ApiError> {
    let last = time::minute_start(now_ms);
    let first = last - 29 * 60;
    let mut minutes: HashMap<i64, LiveMinute> = HashMap::new();
    let buckets: Vec<Bucket> = (0..30).map(|i| Bucket::Minute(first + i * 60)).collect();
    visit_units(db, &Scope::bare(site_id), &buckets, tz, &[Part::Live], Document::new(), |u| {
        if let (Bucket::Minute(m), Body::Live(minute)) = (u.bucket, u.body) {
            minutes.entry(m).or_default().merge(&minute);
        }
        Ok(())
    })
    .await?;
    let pageviews = (0..30)
        .map(|i| first + i * 60)
        .map(|m| (time::minute_label(m, tz), minutes.get(&m).map_or(0, |x| x.pageviews)))
        .collect();
    let mut recent = LiveMinute::default();
    for m in (0..5).map(|i| last - i * 60) {
        if let Some(minute) = minutes.get(&m) {
            recent.merge(minute);
        }
    }
    let mut top: Vec<(String, u64)> = recent.pages.into_iter().map(|(path, v)| (path, v.len() as u64)).collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(TOP_N);
    Ok(Live { pageviews, visitors_5m: recent.visitors.count(), top_pages_5m: top })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(n: u64) -> Counts {
        Counts { n, ..Counts::default() }
    }

    #[test]
    fn a_page_filter_holds_at_most_its_bound_of_names_and_folds_the_rest_into_other() {
        let mut b = KindSums::new(3);
        // A year of days, each naming new selectors: what reaches memory stays at the bound.
        for day in 0..365u64 {
            for i in 0..50u64 {
                b.add(Dim::Click, &format!("#sel-{day}-{i}"), n(1), Some("Buy"));
            }
        }
        b.add(Dim::Click, "#sel-0-1", n(5), Some("Buy now"));
        b.add(Dim::Event, "Signup", n(2), None);
        let clicks = &b.by_kind[&Dim::Click];
        assert_eq!(clicks.len(), 4, "three names and (other)");
        assert_eq!(clicks["#sel-0-0"].0.n, 1);
        assert_eq!(clicks["#sel-0-1"], (n(6), Some("Buy now".to_string())), "a kept name still adds up, greatest text");
        assert_eq!(clicks[toplist::OTHER].0.n, 365 * 50 - 3, "every other click is in (other)");
        assert_eq!(b.by_kind[&Dim::Event]["Signup"].0.n, 2, "each kind has a bound of its own");
    }
}
