//! Imports of Plausible's "Export data" zip and exports in the same format (v3).
//!
//! The zip holds one CSV per table, named `imported_<table>_<YYYYMMDD>_<YYYYMMDD>.csv` (or
//! without the `imported_` prefix), with a header row: the names and columns of Plausible's own
//! CSV importer (`Plausible.Imported.CSVImporter`). Columns are found by name, so their order
//! and extra columns do not matter. [`parse_zip`] reads every file before anything is applied:
//! a bad file fails the whole import with its name and line. What a day holds is an
//! [`ImportedDay`]; the aggregator counts it under the import's own site id ([`lens_site`]),
//! so that deleting an import removes exactly what it added.

use std::{
    collections::BTreeMap,
    io::{Cursor, Read, Write},
};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::urls;

/// Largest upload (the zip as sent).
pub const MAX_UPLOAD_BYTES: usize = 32 * 1024 * 1024;
/// Largest total of the files once unzipped: a zip that inflates past it is refused.
pub const MAX_UNZIPPED_BYTES: u64 = 128 * 1024 * 1024;
/// Most days one import may cover (first to last date).
pub const MAX_DAYS: i64 = 3 * 366;
/// Most imports a site keeps.
pub const MAX_IMPORTS: usize = 10;
/// Most names a day keeps per table (pages, sources, …); the rest of a table's rows for that
/// day add to `(other)`, as the rollups' lists would.
pub const MAX_NAMES_PER_DAY: usize = 1000;
/// Longest page path or name accepted, in characters.
pub const MAX_NAME_CHARS: usize = crate::event::MAX_URL_CHARS;
/// A count no row may pass (sums of a year stay far inside 64 bits).
const MAX_COUNT: u64 = 1_000_000_000_000;
/// The name of what is folded past [`MAX_NAMES_PER_DAY`].
pub const OTHER: &str = "(other)";

/// The separator of an import's site id: `site^import`.
pub const IMPORT_SEP: char = '^';

/// The site id an import's days are counted under: `site^import`.
pub fn lens_site(site_id: &str, import_id: &str) -> String {
    format!("{site_id}{IMPORT_SEP}{import_id}")
}

/// The site id an import's **months** are counted under: `site^import^m`, one day unit per
/// month (on its first day) holding the lists of the whole month. Imported days never change
/// once counted, so a range reads a whole month's lists there instead of from each of its days.
pub fn month_lens_site(site_id: &str, import_id: &str) -> String {
    format!("{site_id}{IMPORT_SEP}{import_id}{IMPORT_SEP}m")
}

/// The site id an import's **month suffixes** are counted under: `site^import^s`, one day unit
/// on each day `a` of a month but the import's first day in it, holding the lists (and, like a
/// month unit, the series list) of the import's days from `a` to the month's end. A range that
/// starts inside a month reads that month's rest in one unit ([`suffix_starts`]).
pub fn suffix_lens_site(site_id: &str, import_id: &str) -> String {
    format!("{site_id}{IMPORT_SEP}{import_id}{IMPORT_SEP}s")
}

/// The days whose suffix unit an imported `date` adds to, for an import starting `from`: each
/// day after the import's first day in `date`'s month, up to `date` itself (the suffix from the
/// first is the month unit).
pub fn suffix_starts(from: NaiveDate, date: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    let first = month_of(date).max(from);
    first.iter_days().skip(1).take_while(move |a| *a <= date)
}

/// The list of a month unit that holds its days' series, one entry a day keyed `YYYY-MM-DD`
/// ([`series_counts`]): a list no site-wide read asks a site for.
pub const SERIES_DIM: crate::rollup::Dim = crate::rollup::Dim::Filter;

/// An imported day's series as the counts of its entry in the month's [`SERIES_DIM`] list.
pub fn series_counts(d: &ImportedDay) -> crate::rollup::Counts {
    let mut c = crate::rollup::Counts::of(d.pageviews);
    c.ext[0] = d.visits;
    c.ext[1] = d.visits.saturating_sub(d.bounces);
    c.ext[2] = d.visitors;
    c.ext[3] = d.visit_duration;
    c.ext[4] = d.pages.iter().map(|p| p.scroll).sum();
    c
}

/// A day's series back from its [`series_counts`].
pub fn series_of(c: &crate::rollup::Counts) -> crate::rollup::Series {
    let n = |v: u64| v as i64;
    crate::rollup::Series {
        pageviews: n(c.n),
        sessions: n(c.ext[0]),
        started: n(c.ext[0]),
        engaged: n(c.ext[1]),
        visitors: n(c.ext[2]),
        time_sum: c.ext[3] as f64,
        scroll_sum: n(c.ext[4]),
        ..crate::rollup::Series::default()
    }
}

/// The first day of `day`'s month.
pub fn month_of(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

/// The last day of the month that starts on `first`.
pub fn month_end(first: NaiveDate) -> NaiveDate {
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    };
    next.and_then(|n| n.pred_opt()).unwrap_or(first)
}

/// The list parts an import writes (its day units also hold the series).
pub const LIST_PARTS: [crate::rollup::Part; 9] = {
    use crate::rollup::{Dim, Part};
    [
        Part::Top(Dim::Page),
        Part::Top(Dim::Source),
        Part::Top(Dim::Campaign),
        Part::Top(Dim::Medium),
        Part::Top(Dim::Country),
        Part::Top(Dim::Device),
        Part::Top(Dim::Browser),
        Part::Top(Dim::Os),
        Part::Top(Dim::Event),
    ]
};

/// The rollup documents an import's days may be held in: each day's site-day document of
/// the import's site id and, had it split, the day units an import writes; the same of its
/// month units and of its month suffixes.
pub fn lens_doc_ids(site_id: &str, import_id: &str, from: NaiveDate, to: NaiveDate) -> Vec<String> {
    use crate::rollup::{Bucket, Part, RollupKey, SiteDay};
    let lens = lens_site(site_id, import_id);
    let months = month_lens_site(site_id, import_id);
    let suffixes = suffix_lens_site(site_id, import_id);
    let parts: Vec<Part> = std::iter::once(Part::Series).chain(LIST_PARTS).collect();
    let days = from.iter_days().take_while(|d| *d <= to).flat_map(|d| {
        let lens = lens.clone();
        let parts = parts.clone();
        std::iter::once(SiteDay::id_of(&lens, d))
            .chain(parts.into_iter().map(move |p| RollupKey::new(&lens, d, Bucket::Day(d), p).id()))
    });
    let mut firsts: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).map(month_of).collect();
    firsts.dedup();
    let merged = |site: String, d: NaiveDate| {
        std::iter::once(SiteDay::id_of(&site, d)).chain(
            LIST_PARTS
                .into_iter()
                .chain(std::iter::once(Part::Top(SERIES_DIM)))
                .map(move |p| RollupKey::new(&site, d, Bucket::Day(d), p).id()),
        )
    };
    let month_ids = firsts.into_iter().flat_map(|m| merged(months.clone(), m));
    let suffix_ids = from.iter_days().skip(1).take_while(|d| *d <= to).flat_map(|d| merged(suffixes.clone(), d));
    days.chain(month_ids).chain(suffix_ids).collect()
}

/// Where an import stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportState {
    Running,
    Done,
    Failed,
}

/// One import, as the site keeps it and `GET /api/sites/{id}/imports` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportEntry {
    pub id: String,
    pub state: ImportState,
    /// The first and last day the files hold (`YYYY-MM-DD`); absent when it failed before.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Why it failed: the file and line to blame, where one is.
    pub error: Option<String>,
    /// When it was uploaded (epoch ms).
    pub created_ms: i64,
    /// Counted with its month units and month suffixes ([`month_lens_site`],
    /// [`suffix_lens_site`]): set with `done` by an aggregator that writes them. An import
    /// counted by an earlier release has not (or only month units) and is read by day.
    #[serde(default)]
    pub merged: bool,
}

impl ImportEntry {
    /// The days it covers, when known.
    pub fn span(&self) -> Option<(NaiveDate, NaiveDate)> {
        let day = |s: &Option<String>| s.as_deref().and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        Some((day(&self.from)?, day(&self.to)?))
    }

    /// True when its days count in the stats.
    pub fn counts(&self) -> bool {
        self.state == ImportState::Done
    }
}

/// Days of an import waiting to be counted, in [`crate::names::collections::IMPORT_CHUNKS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportChunkDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub days: Vec<ImportedDay>,
    /// When the api stored it: a chunk left behind (the api stopped between storing the chunks
    /// and their job) expires [`CHUNK_KEEP`] later. Absent in an earlier release's chunks.
    #[serde(default)]
    pub stored: Option<mongodb::bson::DateTime>,
}

/// How long a stored chunk is kept for its job: far past any job's run (a job counts a chunk
/// in seconds, and one waiting for its import's listing gives up after a minute).
pub const CHUNK_KEEP: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// The field of [`ImportChunkDoc::stored`].
pub const CHUNK_STORED: &str = "stored";

impl ImportChunkDoc {
    /// Chunk `n` (from 1) of import `import_id` of `site_id`.
    pub fn id_of(site_id: &str, import_id: &str, n: i64) -> String {
        format!("{site_id}|{import_id}|{n}")
    }
}

/// Most bytes (by [`ImportedDay::weight`]) a chunk holds: well inside a document's 16 MiB,
/// and what one chunk's write of the rollups costs.
pub const CHUNK_WEIGHT: usize = 1024 * 1024;

/// Cuts `days` into chunks of at most [`CHUNK_WEIGHT`] (a heavier day is a chunk of its own).
pub fn chunks(days: Vec<ImportedDay>) -> Vec<Vec<ImportedDay>> {
    let mut out: Vec<Vec<ImportedDay>> = Vec::new();
    let mut weight = 0;
    for d in days {
        let w = d.weight();
        match out.last_mut() {
            Some(last) if weight + w <= CHUNK_WEIGHT => last.push(d),
            _ => {
                out.push(vec![d]);
                weight = 0;
            }
        }
        weight += w;
    }
    out
}

/// A breakdown table whose rows count visits by one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VisitDim {
    Source,
    Campaign,
    Medium,
    Country,
    Device,
    Browser,
    Os,
}

/// A page's imported counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRow {
    pub path: String,
    pub visitors: u64,
    pub pageviews: u64,
    /// Sum of scroll depths (percent) over `pageviews`, as the rollups keep it.
    pub scroll: u64,
    /// Visits that entered on the page, and of those, bounces.
    pub entrances: u64,
    pub bounces: u64,
    /// Visits that left from the page.
    pub exits: u64,
}

impl PageRow {
    /// Adds `o`'s counters (of the same page, or folded into `(other)`).
    pub fn add(&mut self, o: &PageRow) {
        self.visitors += o.visitors;
        self.pageviews += o.pageviews;
        self.scroll += o.scroll;
        self.entrances += o.entrances;
        self.bounces += o.bounces;
        self.exits += o.exits;
    }
}

/// Visits (or, for events, occurrences) of one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedRow {
    pub dim: VisitDim,
    pub name: String,
    pub visits: u64,
}

/// Everything an import says about one day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportedDay {
    /// `YYYY-MM-DD`, the site's local day.
    pub date: String,
    pub visitors: u64,
    pub pageviews: u64,
    pub visits: u64,
    pub bounces: u64,
    /// Sum of visit durations, seconds.
    pub visit_duration: u64,
    #[serde(default)]
    pub pages: Vec<PageRow>,
    #[serde(default)]
    pub named: Vec<NamedRow>,
    /// Custom events by name: occurrences.
    #[serde(default)]
    pub events: Vec<(String, u64)>,
}

impl ImportedDay {
    pub fn day(&self) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(&self.date, "%Y-%m-%d").ok()
    }

    /// A rough size in bytes, to cut chunks.
    pub fn weight(&self) -> usize {
        64 + self.pages.iter().map(|p| p.path.len() + 64).sum::<usize>()
            + self.named.iter().map(|n| n.name.len() + 32).sum::<usize>()
            + self.events.iter().map(|e| e.0.len() + 16).sum::<usize>()
    }
}

/// What is wrong with an upload: the file and line (1 = the header) when one is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ImportError {
    pub file: Option<String>,
    pub line: Option<u64>,
    pub message: String,
}

impl ImportError {
    fn whole(message: impl Into<String>) -> Self {
        Self { file: None, line: None, message: message.into() }
    }

    fn file(file: &str, message: impl Into<String>) -> Self {
        Self { file: Some(file.to_string()), line: None, message: message.into() }
    }

    fn at(file: &str, line: u64, message: impl Into<String>) -> Self {
        Self { file: Some(file.to_string()), line: Some(line), message: message.into() }
    }

    fn describe(&self) -> String {
        match (&self.file, self.line) {
            (Some(f), Some(l)) => format!("{f} line {l}: {}", self.message),
            (Some(f), None) => format!("{f}: {}", self.message),
            _ => self.message.clone(),
        }
    }
}

/// The tables read, by their name without `imported_`.
const TABLES: [&str; 10] = [
    "visitors",
    "pages",
    "entry_pages",
    "exit_pages",
    "sources",
    "locations",
    "devices",
    "browsers",
    "operating_systems",
    "custom_events",
];

/// The table a file name names, as Plausible's `parse_filename!`: `[imported_]<table>_<8
/// digits>_<8 digits>.csv`.
pub fn table_of(file_name: &str) -> Option<&'static str> {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    let stem = base.strip_suffix(".csv")?;
    let stem = stem.strip_prefix("imported_").unwrap_or(stem);
    let (rest, end) = stem.rsplit_once('_')?;
    let (table, start) = rest.rsplit_once('_')?;
    let dates_ok = [start, end].iter().all(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()));
    if !dates_ok {
        return None;
    }
    TABLES.iter().find(|t| **t == table).copied()
}

/// One table's rows being read: a header's column positions and the file for errors.
struct Rows<'a> {
    file: &'a str,
    columns: HashMapLite,
}

type HashMapLite = Vec<(String, usize)>;

impl<'a> Rows<'a> {
    fn new(file: &'a str, header: &csv::StringRecord) -> Self {
        Self { file, columns: header.iter().enumerate().map(|(i, h)| (h.trim().to_string(), i)).collect() }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, i)| *i)
    }

    fn require(&self, names: &[&str]) -> Result<(), ImportError> {
        match names.iter().find(|n| self.position(n).is_none()) {
            Some(missing) => Err(ImportError::at(self.file, 1, format!("column \"{missing}\" is missing"))),
            None => Ok(()),
        }
    }

    fn text<'r>(&self, rec: &'r csv::StringRecord, line: u64, name: &str) -> Result<&'r str, ImportError> {
        let v = self.position(name).and_then(|i| rec.get(i)).unwrap_or("");
        if v.chars().count() > MAX_NAME_CHARS {
            return Err(ImportError::at(
                self.file,
                line,
                format!("column \"{name}\": longer than {MAX_NAME_CHARS} characters"),
            ));
        }
        Ok(v)
    }

    /// A count; an absent column, an empty cell or ClickHouse's `\N` is 0.
    fn count(&self, rec: &csv::StringRecord, line: u64, name: &str) -> Result<u64, ImportError> {
        let raw = self.position(name).and_then(|i| rec.get(i)).unwrap_or("").trim();
        if raw.is_empty() || raw == "\\N" {
            return Ok(0);
        }
        match raw.parse::<u64>() {
            Ok(n) if n <= MAX_COUNT => Ok(n),
            _ => Err(ImportError::at(
                self.file,
                line,
                format!("column \"{name}\": not a whole number from 0 to 10^12: {raw:?}"),
            )),
        }
    }

    fn date(&self, rec: &csv::StringRecord, line: u64) -> Result<String, ImportError> {
        let raw = self.position("date").and_then(|i| rec.get(i)).unwrap_or("").trim();
        match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            Ok(d) => Ok(d.format("%Y-%m-%d").to_string()),
            Err(_) => Err(ImportError::at(self.file, line, format!("column \"date\": not a date (YYYY-MM-DD): {raw:?}"))),
        }
    }
}

/// Days being assembled from the tables.
#[derive(Default)]
struct Days {
    days: BTreeMap<String, Assembling>,
}

#[derive(Default)]
struct Assembling {
    day: ImportedDay,
    pages: BTreeMap<String, PageRow>,
    named: BTreeMap<(VisitDim, String), u64>,
    events: BTreeMap<String, u64>,
}

impl Days {
    fn day(&mut self, date: String) -> &mut Assembling {
        self.days
            .entry(date.clone())
            .or_insert_with(|| Assembling { day: ImportedDay { date, ..ImportedDay::default() }, ..Assembling::default() })
    }
}

fn page_path(raw: &str) -> String {
    if raw.is_empty() { "/".to_string() } else { raw.to_string() }
}

/// Plausible's device names (`Desktop`, `Mobile`, `Tablet`) as the rollups keep them.
fn device_name(raw: &str) -> String {
    raw.to_ascii_lowercase()
}

/// A source as the rollups keep it: Plausible's empty source is direct traffic.
fn source_name(raw: &str) -> String {
    if raw.is_empty() { urls::DIRECT.to_string() } else { raw.to_string() }
}

fn read_table(days: &mut Days, table: &str, file: &str, data: &[u8]) -> Result<(), ImportError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(data);
    let header = reader.headers().map_err(|e| ImportError::at(file, 1, format!("not CSV: {e}")))?.clone();
    let rows = Rows::new(file, &header);
    let required: &[&str] = match table {
        "visitors" => &["date", "visitors", "pageviews", "bounces", "visits", "visit_duration"],
        "pages" => &["date", "page", "visitors", "pageviews"],
        "entry_pages" => &["date", "entry_page", "entrances", "bounces"],
        "exit_pages" => &["date", "exit_page", "exits"],
        "sources" => &["date", "source", "visits"],
        "locations" => &["date", "country", "visits"],
        "devices" => &["date", "device", "visits"],
        "browsers" => &["date", "browser", "visits"],
        "operating_systems" => &["date", "operating_system", "visits"],
        _ => &["date", "name", "events"],
    };
    rows.require(required)?;
    let mut record = csv::StringRecord::new();
    let mut line = 1_u64;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(ImportError::at(file, line + 1, format!("not CSV: {e}"))),
        }
        line = record.position().map(|p| p.line()).unwrap_or(line + 1);
        let date = rows.date(&record, line)?;
        let count = |name: &str| rows.count(&record, line, name);
        let a = days.day(date);
        match table {
            "visitors" => {
                a.day.visitors += count("visitors")?;
                a.day.pageviews += count("pageviews")?;
                a.day.bounces += count("bounces")?;
                a.day.visits += count("visits")?;
                a.day.visit_duration += count("visit_duration")?;
            }
            "pages" => {
                let path = page_path(rows.text(&record, line, "page")?);
                let pageviews = count("pageviews")?;
                let (depth, leaves) = (count("scroll_depth")?, count("pageleave_visitors")?);
                let p = a.pages.entry(path.clone()).or_insert_with(|| PageRow { path, ..PageRow::default() });
                p.visitors += count("visitors")?;
                p.pageviews += pageviews;
                // Plausible's scroll depth is a sum over the visitors who left the page;
                // the rollups keep a sum over pageviews.
                p.scroll += depth.saturating_mul(pageviews).checked_div(leaves).unwrap_or(0);
            }
            "entry_pages" => {
                let path = page_path(rows.text(&record, line, "entry_page")?);
                let p = a.pages.entry(path.clone()).or_insert_with(|| PageRow { path, ..PageRow::default() });
                p.entrances += count("entrances")?;
                p.bounces += count("bounces")?;
            }
            "exit_pages" => {
                let path = page_path(rows.text(&record, line, "exit_page")?);
                let p = a.pages.entry(path.clone()).or_insert_with(|| PageRow { path, ..PageRow::default() });
                p.exits += count("exits")?;
            }
            "sources" => {
                let visits = count("visits")?;
                let source = rows.text(&record, line, "source")?;
                let campaign = rows.text(&record, line, "utm_campaign")?;
                let medium = rows.text(&record, line, "utm_medium")?;
                // An empty source with a campaign or medium is a row of those only (as
                // ConvertPulse exports them); with neither it is direct traffic.
                if !source.is_empty() || (campaign.is_empty() && medium.is_empty()) {
                    *a.named.entry((VisitDim::Source, source_name(source))).or_default() += visits;
                }
                if !campaign.is_empty() {
                    *a.named.entry((VisitDim::Campaign, campaign.to_string())).or_default() += visits;
                }
                if !medium.is_empty() {
                    *a.named.entry((VisitDim::Medium, medium.to_string())).or_default() += visits;
                }
            }
            "locations" | "devices" | "browsers" | "operating_systems" => {
                let (dim, column) = match table {
                    "locations" => (VisitDim::Country, "country"),
                    "devices" => (VisitDim::Device, "device"),
                    "browsers" => (VisitDim::Browser, "browser"),
                    _ => (VisitDim::Os, "operating_system"),
                };
                let raw = rows.text(&record, line, column)?;
                let name = match dim {
                    VisitDim::Device => device_name(raw),
                    // Plausible leaves an unknown country empty.
                    VisitDim::Country => crate::audience::Country::parse(raw).as_str().to_string(),
                    _ => raw.to_string(),
                };
                if !name.is_empty() {
                    *a.named.entry((dim, name)).or_default() += count("visits")?;
                }
            }
            _ => {
                let name = rows.text(&record, line, "name")?;
                if name.is_empty() {
                    return Err(ImportError::at(file, line, "column \"name\": empty"));
                }
                *a.events.entry(name.to_string()).or_default() += count("events")?;
            }
        }
    }
    Ok(())
}

/// Keeps the `MAX_NAMES_PER_DAY` largest of `rows` (ties by name) and folds the rest into
/// `(other)`.
fn bounded<K: Ord + Clone>(rows: BTreeMap<K, u64>, other: impl Fn(&K) -> K) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = rows.into_iter().collect();
    if v.len() <= MAX_NAMES_PER_DAY {
        return v;
    }
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let rest = v.split_off(MAX_NAMES_PER_DAY);
    let folded: u64 = rest.iter().map(|r| r.1).sum();
    let key = other(&v[0].0);
    v.push((key, folded));
    v
}

impl Days {
    fn finish(self) -> Vec<ImportedDay> {
        self.days
            .into_values()
            .map(|a| {
                let mut day = a.day;
                let mut pages: Vec<PageRow> = a.pages.into_values().collect();
                if pages.len() > MAX_NAMES_PER_DAY {
                    pages.sort_by(|x, y| y.pageviews.cmp(&x.pageviews).then_with(|| x.path.cmp(&y.path)));
                    let rest = pages.split_off(MAX_NAMES_PER_DAY);
                    let mut other = PageRow { path: OTHER.to_string(), ..PageRow::default() };
                    rest.iter().for_each(|r| other.add(r));
                    pages.push(other);
                }
                day.pages = pages;
                let mut by_dim: BTreeMap<VisitDim, BTreeMap<String, u64>> = BTreeMap::new();
                for ((dim, name), n) in a.named {
                    by_dim.entry(dim).or_default().insert(name, n);
                }
                day.named = by_dim
                    .into_iter()
                    .flat_map(|(dim, rows)| {
                        bounded(rows, |_| OTHER.to_string()).into_iter().map(move |(name, visits)| NamedRow {
                            dim,
                            name,
                            visits,
                        })
                    })
                    .collect();
                day.events = bounded(a.events, |_| OTHER.to_string());
                day
            })
            .collect()
    }
}

/// Reads an export zip into its days, oldest first. Nothing is returned unless every file
/// is good.
pub fn parse_zip(bytes: &[u8]) -> Result<Vec<ImportedDay>, ImportError> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| ImportError::whole(format!("not a zip archive: {e}")))?;
    let mut days = Days::default();
    let mut unzipped: u64 = 0;
    let mut tables = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| ImportError::whole(format!("zip entry {i}: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().map_err(|e| ImportError::whole(format!("zip entry {i}: {e}")))?.to_string();
        let Some(table) = table_of(&name) else {
            return Err(ImportError::file(
                &name,
                "not one of Plausible's export files (imported_<table>_<YYYYMMDD>_<YYYYMMDD>.csv)",
            ));
        };
        let mut data = Vec::new();
        let budget = MAX_UNZIPPED_BYTES - unzipped;
        (&mut entry)
            .take(budget + 1)
            .read_to_end(&mut data)
            .map_err(|e| ImportError::file(&name, format!("cannot be unzipped: {e}")))?;
        unzipped += data.len() as u64;
        if unzipped > MAX_UNZIPPED_BYTES {
            return Err(ImportError::file(&name, format!("the files unzip to more than {MAX_UNZIPPED_BYTES} bytes")));
        }
        read_table(&mut days, table, &name, &data)?;
        tables += 1;
    }
    if tables == 0 {
        return Err(ImportError::whole("the zip holds no imported_*.csv file"));
    }
    let days = days.finish();
    if let (Some(first), Some(last)) = (days.first().and_then(ImportedDay::day), days.last().and_then(ImportedDay::day))
        && (last - first).num_days() >= MAX_DAYS
    {
        return Err(ImportError::whole(format!("the files cover more than {MAX_DAYS} days")));
    }
    Ok(days)
}

/// One table of an export: its file's table name and rows after the header.
pub struct ExportTable {
    pub table: &'static str,
    pub header: &'static [&'static str],
    pub rows: Vec<Vec<String>>,
}

/// The header of each exported table, as Plausible's CSV importer reads it.
pub fn export_header(table: &str) -> &'static [&'static str] {
    match table {
        "visitors" => &["date", "visitors", "pageviews", "bounces", "visits", "visit_duration"],
        "pages" => &["date", "hostname", "page", "visits", "visitors", "pageviews", "scroll_depth", "pageleave_visitors"],
        "entry_pages" => &["date", "entry_page", "visitors", "entrances", "visit_duration", "bounces", "pageviews"],
        "exit_pages" => &["date", "exit_page", "visitors", "visit_duration", "exits", "bounces", "pageviews"],
        "sources" => &[
            "date",
            "source",
            "referrer",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_content",
            "utm_term",
            "pageviews",
            "visitors",
            "visits",
            "visit_duration",
            "bounces",
        ],
        "locations" => {
            &["date", "country", "region", "city", "visitors", "visits", "visit_duration", "bounces", "pageviews"]
        }
        "devices" => &["date", "device", "visitors", "visits", "visit_duration", "bounces", "pageviews"],
        "browsers" => {
            &["date", "browser", "browser_version", "visitors", "visits", "visit_duration", "bounces", "pageviews"]
        }
        "operating_systems" => &[
            "date",
            "operating_system",
            "operating_system_version",
            "visitors",
            "visits",
            "visit_duration",
            "bounces",
            "pageviews",
        ],
        _ => &["date", "name", "link_url", "path", "visitors", "events"],
    }
}

/// The export tables, in the order written.
pub const EXPORT_TABLES: [&str; 10] = TABLES;

/// Rows of `days` for `table` (in [`export_header`]'s columns); `hostname` is the site's domain.
pub fn export_rows(table: &str, days: &[ImportedDay], hostname: &str) -> Vec<Vec<String>> {
    let s = |n: u64| n.to_string();
    let mut out = Vec::new();
    for d in days {
        let date = d.date.clone();
        match table {
            "visitors" => {
                if d.visitors + d.pageviews + d.visits > 0 {
                    out.push(vec![date, s(d.visitors), s(d.pageviews), s(d.bounces), s(d.visits), s(d.visit_duration)]);
                }
            }
            "pages" => out.extend(d.pages.iter().filter(|p| p.pageviews > 0).map(|p| {
                vec![
                    date.clone(),
                    hostname.to_string(),
                    p.path.clone(),
                    s(p.visitors),
                    s(p.visitors),
                    s(p.pageviews),
                    s(p.scroll),
                    s(p.pageviews),
                ]
            })),
            "entry_pages" => out.extend(
                d.pages
                    .iter()
                    .filter(|p| p.entrances > 0)
                    .map(|p| vec![date.clone(), p.path.clone(), s(p.entrances), s(p.entrances), s(0), s(p.bounces), s(0)]),
            ),
            "exit_pages" => out.extend(
                d.pages
                    .iter()
                    .filter(|p| p.exits > 0)
                    .map(|p| vec![date.clone(), p.path.clone(), s(p.exits), s(0), s(p.exits), s(0), s(0)]),
            ),
            "sources" => out.extend(
                d.named.iter().filter(|n| matches!(n.dim, VisitDim::Source | VisitDim::Campaign | VisitDim::Medium)).map(
                    |n| {
                        let (source, medium, campaign) = match n.dim {
                            VisitDim::Source if n.name == urls::DIRECT => ("", "", ""),
                            VisitDim::Source => (n.name.as_str(), "", ""),
                            VisitDim::Medium => ("", n.name.as_str(), ""),
                            _ => ("", "", n.name.as_str()),
                        };
                        vec![
                            date.clone(),
                            source.to_string(),
                            String::new(),
                            String::new(),
                            medium.to_string(),
                            campaign.to_string(),
                            String::new(),
                            String::new(),
                            s(0),
                            s(n.visits),
                            s(n.visits),
                            s(0),
                            s(0),
                        ]
                    },
                ),
            ),
            "locations" | "devices" | "browsers" | "operating_systems" => {
                let dim = match table {
                    "locations" => VisitDim::Country,
                    "devices" => VisitDim::Device,
                    "browsers" => VisitDim::Browser,
                    _ => VisitDim::Os,
                };
                out.extend(d.named.iter().filter(|n| n.dim == dim).map(|n| {
                    let name = match dim {
                        VisitDim::Device => capitalized(&n.name),
                        VisitDim::Country if n.name == crate::audience::Country::UNKNOWN_NAME => String::new(),
                        _ => n.name.clone(),
                    };
                    let mut row = vec![date.clone(), name];
                    match dim {
                        VisitDim::Country => row.extend([String::new(), s(0)]),
                        VisitDim::Browser | VisitDim::Os => row.push(String::new()),
                        _ => {}
                    }
                    row.extend([s(n.visits), s(n.visits), s(0), s(0), s(0)]);
                    row
                }));
            }
            _ => out.extend(
                d.events
                    .iter()
                    .map(|(name, n)| vec![date.clone(), name.clone(), String::new(), String::new(), s(*n), s(*n)]),
            ),
        }
    }
    out
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// An export zip being written, table by table: each table's rows may come in several
/// pieces (days read a month at a time), so that an export holds little at once.
pub struct ExportWriter {
    zip: zip::ZipWriter<Cursor<Vec<u8>>>,
    span: String,
}

fn write_failed(e: &dyn std::fmt::Display) -> ImportError {
    ImportError::whole(format!("cannot write the zip: {e}"))
}

impl ExportWriter {
    /// An export of the days `from..=to` (its file names say so).
    pub fn new(from: NaiveDate, to: NaiveDate) -> Self {
        Self {
            zip: zip::ZipWriter::new(Cursor::new(Vec::new())),
            span: format!("{}_{}", from.format("%Y%m%d"), to.format("%Y%m%d")),
        }
    }

    /// Starts the file of `table`, with its header.
    pub fn start_table(&mut self, table: &str) -> Result<(), ImportError> {
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        self.zip.start_file(format!("imported_{table}_{}.csv", self.span), options).map_err(|e| write_failed(&e))?;
        self.rows(&[export_header(table).iter().map(|h| h.to_string()).collect()])
    }

    /// Appends rows to the table started last.
    pub fn rows(&mut self, rows: &[Vec<String>]) -> Result<(), ImportError> {
        let mut w = csv::Writer::from_writer(Vec::new());
        for row in rows {
            w.write_record(row).map_err(|e| write_failed(&e))?;
        }
        let data = w.into_inner().map_err(|e| write_failed(&e))?;
        self.zip.write_all(&data).map_err(|e| write_failed(&e))
    }

    pub fn finish(self) -> Result<Vec<u8>, ImportError> {
        Ok(self.zip.finish().map_err(|e| write_failed(&e))?.into_inner())
    }
}

/// Writes `days` (oldest first) as an export zip: one CSV per table, named for the days it
/// covers.
pub fn write_zip(days: &[ImportedDay], hostname: &str, from: NaiveDate, to: NaiveDate) -> Result<Vec<u8>, ImportError> {
    let mut w = ExportWriter::new(from, to);
    for table in EXPORT_TABLES {
        w.start_table(table)?;
        w.rows(&export_rows(table, days, hostname))?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, body) in files {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).expect("start");
            zip.write_all(body.as_bytes()).expect("write");
        }
        zip.finish().expect("finish").into_inner()
    }

    #[test]
    fn a_day_adds_to_the_suffixes_from_its_month_or_its_import_start_to_itself() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        let starts = |from: &str, day: &str| suffix_starts(d(from), d(day)).map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(starts("2024-01-01", "2024-03-04"), ["2024-03-02", "2024-03-03", "2024-03-04"]);
        assert_eq!(starts("2024-03-02", "2024-03-04"), ["2024-03-03", "2024-03-04"], "the import starts inside the month");
        assert_eq!(starts("2024-01-01", "2024-03-01"), Vec::<String>::new(), "a month's first day: its month unit only");
        assert_eq!(starts("2024-03-04", "2024-03-04"), Vec::<String>::new(), "the import's first day");
    }

    #[test]
    fn file_names_as_plausible_parses_them() {
        assert_eq!(table_of("imported_devices_20190101_20210101.csv"), Some("devices"));
        assert_eq!(table_of("devices_00010101_20250101.csv"), Some("devices"));
        assert_eq!(table_of("imported_operating_systems_20240101_20240131.csv"), Some("operating_systems"));
        assert_eq!(table_of("my_data.csv"), None);
        assert_eq!(table_of("imported_devices_2019_20210101.csv"), None);
        assert_eq!(table_of("imported_referrers_20190101_20210101.csv"), None);
    }

    #[test]
    fn tables_make_days() {
        let z = zip_of(&[
            (
                "imported_visitors_20240101_20240102.csv",
                "date,visitors,pageviews,bounces,visits,visit_duration\n2024-01-01,10,30,4,12,600\n2024-01-02,5,6,1,5,50\n",
            ),
            (
                "imported_pages_20240101_20240102.csv",
                "date,hostname,page,visits,visitors,pageviews,scroll_depth,pageleave_visitors\n2024-01-01,a.com,/,8,8,20,\\N,0\n2024-01-01,a.com,/pricing,3,3,10,400,5\n",
            ),
            (
                "imported_entry_pages_20240101_20240102.csv",
                "date,entry_page,visitors,entrances,visit_duration,bounces,pageviews\n2024-01-01,/,9,10,0,4,0\n",
            ),
            (
                "imported_exit_pages_20240101_20240102.csv",
                "date,exit_page,visitors,visit_duration,exits,bounces,pageviews\n2024-01-01,/pricing,3,0,3,0,0\n",
            ),
            (
                "imported_sources_20240101_20240102.csv",
                "date,source,referrer,utm_source,utm_medium,utm_campaign,utm_content,utm_term,pageviews,visitors,visits,visit_duration,bounces\n2024-01-01,Google,,,cpc,spring,,,0,7,7,0,0\n2024-01-01,,,,,,,,0,5,5,0,0\n",
            ),
            (
                "imported_devices_20240101_20240102.csv",
                "date,device,visitors,visits,visit_duration,bounces,pageviews\n2024-01-01,Mobile,4,4,0,0,0\n",
            ),
            (
                "imported_custom_events_20240101_20240102.csv",
                "date,name,link_url,path,visitors,events\n2024-01-01,Signup,,,2,3\n",
            ),
        ]);
        let days = parse_zip(&z).expect("parses");
        assert_eq!(days.len(), 2);
        let d = &days[0];
        assert_eq!((d.visitors, d.pageviews, d.bounces, d.visits, d.visit_duration), (10, 30, 4, 12, 600));
        let pricing = d.pages.iter().find(|p| p.path == "/pricing").expect("pricing");
        assert_eq!((pricing.pageviews, pricing.scroll, pricing.exits), (10, 800, 3));
        let home = d.pages.iter().find(|p| p.path == "/").expect("home");
        assert_eq!((home.pageviews, home.entrances, home.bounces, home.scroll), (20, 10, 4, 0));
        let visits = |dim: VisitDim, name: &str| d.named.iter().find(|n| n.dim == dim && n.name == name).map(|n| n.visits);
        assert_eq!(visits(VisitDim::Source, "Google"), Some(7));
        assert_eq!(visits(VisitDim::Source, urls::DIRECT), Some(5));
        assert_eq!(visits(VisitDim::Campaign, "spring"), Some(7));
        assert_eq!(visits(VisitDim::Medium, "cpc"), Some(7));
        assert_eq!(visits(VisitDim::Device, "mobile"), Some(4));
        assert_eq!(d.events, vec![("Signup".to_string(), 3)]);
    }

    #[test]
    fn a_bad_cell_names_the_file_line_and_column() {
        let z = zip_of(&[(
            "imported_visitors_20240101_20240102.csv",
            "date,visitors,pageviews,bounces,visits,visit_duration\n2024-01-01,1,1,0,1,0\n2024-01-02,x,1,0,1,0\n",
        )]);
        let e = parse_zip(&z).expect_err("bad");
        assert_eq!(
            e.to_string(),
            "imported_visitors_20240101_20240102.csv line 3: column \"visitors\": not a whole number from 0 to 10^12: \"x\""
        );
        let z = zip_of(&[("imported_pages_20240101_20240102.csv", "date,page\n")]);
        assert_eq!(
            parse_zip(&z).expect_err("bad").to_string(),
            "imported_pages_20240101_20240102.csv line 1: column \"visitors\" is missing"
        );
        let z = zip_of(&[("notes.txt", "hello")]);
        assert!(parse_zip(&z).expect_err("bad").to_string().starts_with("notes.txt: not one of"));
        assert_eq!(parse_zip(b"nope").expect_err("bad").file, None);
    }

    #[test]
    fn an_export_reads_back_as_the_same_days() {
        let day = ImportedDay {
            date: "2024-03-01".into(),
            visitors: 9,
            pageviews: 20,
            visits: 11,
            bounces: 3,
            visit_duration: 321,
            pages: vec![
                PageRow { path: "/".into(), visitors: 7, pageviews: 15, scroll: 700, entrances: 10, bounces: 3, exits: 8 },
                PageRow {
                    path: "/a,b \"q\"".into(),
                    visitors: 2,
                    pageviews: 5,
                    scroll: 0,
                    entrances: 1,
                    bounces: 0,
                    exits: 3,
                },
            ],
            named: vec![
                NamedRow { dim: VisitDim::Source, name: urls::DIRECT.into(), visits: 6 },
                NamedRow { dim: VisitDim::Source, name: "news.ycombinator.com".into(), visits: 5 },
                NamedRow { dim: VisitDim::Campaign, name: "spring".into(), visits: 2 },
                NamedRow { dim: VisitDim::Medium, name: "email".into(), visits: 2 },
                NamedRow { dim: VisitDim::Country, name: "DE".into(), visits: 11 },
                NamedRow { dim: VisitDim::Device, name: "desktop".into(), visits: 11 },
                NamedRow { dim: VisitDim::Browser, name: "Firefox".into(), visits: 11 },
                NamedRow { dim: VisitDim::Os, name: "Linux".into(), visits: 11 },
            ],
            events: vec![("Signup".into(), 4)],
        };
        let d = NaiveDate::from_ymd_opt(2024, 3, 1).expect("date");
        let z = write_zip(std::slice::from_ref(&day), "a.com", d, d).expect("zip");
        let back = parse_zip(&z).expect("parses");
        let mut want = day.clone();
        want.named.sort_by(|a, b| (a.dim, &a.name).cmp(&(b.dim, &b.name)));
        let mut got = back[0].clone();
        got.named.sort_by(|a, b| (a.dim, &a.name).cmp(&(b.dim, &b.name)));
        assert_eq!(got, want);
    }

    #[test]
    fn a_day_keeps_its_largest_names_and_folds_the_rest() {
        let mut body = String::from("date,name,events\n");
        for i in 0..(MAX_NAMES_PER_DAY + 5) {
            body.push_str(&format!("2024-01-01,e{i:05},{}\n", if i < 5 { 1 } else { 2 }));
        }
        let z = zip_of(&[("custom_events_20240101_20240101.csv", &body)]);
        let days = parse_zip(&z).expect("parses");
        assert_eq!(days[0].events.len(), MAX_NAMES_PER_DAY + 1);
        assert_eq!(days[0].events.last(), Some(&(OTHER.to_string(), 5)));
    }
}
