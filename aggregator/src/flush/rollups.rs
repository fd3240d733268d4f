//! Step 4b: the flush's increments merged into the rollup documents, site-day by site-day.
//!
//! A site-day that has not split is one document: read it, add every unit's increments, write
//! it back if its revision is unchanged — one conditional write counts the flush in all its
//! units at once. If the result would pass [`Settings::compact_max_bytes`] the site-day splits
//! instead: the writer reads the unit documents a split that did not finish may have left
//! (their revisions), writes every unit to its own document with the site-day's watermarks,
//! then the site-day document as `split` (see `shared::rollup::siteday`). A split site-day's
//! touched units are read, merged and written one document each, as before site-days existed.
//!
//! Everything is read by `_id`: the site-days, then the units of those found split. Site-days
//! this process has seen split are remembered (a split is for good), so a busy site's units are
//! read directly, in the same round trip as the other site-days. Statements run in one ordered
//! command: list units first, then series, then live minutes, then site-day documents, so that
//! a reader never sees a batch in a summary before its lists, nor a split site-day before its
//! units. A statement that lost a race sends its whole site-day back for another round.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Mutex,
};

use mongodb::bson::{self, Document};
use shared::{
    names::collections as c,
    rollup::{self, Part, Rollup, RollupDoc, RollupKey, SiteDay, SiteDayDoc, SiteDayRollup},
};

use super::{FlushId, FlushReport, Flusher, MAX_WRITE_ROUNDS, Step, StepError, merge};
use crate::{
    rollup::{DocDelta, FlushDeltas},
    writer::WriteError,
};

/// Most site-days a process remembers as split; past it, the memory starts over (a forgotten
/// site-day costs one more read, once).
const SPLIT_MEMORY: usize = 100_000;

/// The site-days this process has seen split.
#[derive(Default)]
pub struct SplitMemory(Mutex<HashSet<String>>);

impl SplitMemory {
    fn contains(&self, id: &str) -> bool {
        self.0.lock().map(|s| s.contains(id)).unwrap_or(false)
    }

    fn insert(&self, id: String) {
        if let Ok(mut s) = self.0.lock() {
            if s.len() >= SPLIT_MEMORY {
                s.clear();
            }
            s.insert(id);
        }
    }
}

/// Order of statements in the command: lists, series, live minutes, site-days.
fn class(part: Option<Part>) -> u8 {
    match part {
        Some(Part::Top(_)) => 0,
        Some(Part::Series) => 1,
        Some(Part::Live) => 2,
        None => 3,
    }
}

fn decode<T: serde::de::DeserializeOwned>(raw: Document) -> Result<T, WriteError> {
    let id = raw.get_str("_id").unwrap_or("?").to_string();
    bson::from_document(raw).map_err(|e| WriteError::Decode(format!("{id}: {e}")))
}

fn read_unit(raw: Option<Document>) -> Result<Option<Rollup>, WriteError> {
    raw.map(|d| decode::<RollupDoc>(d).and_then(|doc| Rollup::from_doc(doc).map_err(|e| WriteError::Decode(e.to_string()))))
        .transpose()
}

fn read_site_day(raw: Option<Document>) -> Result<Option<SiteDayRollup>, WriteError> {
    raw.map(|d| {
        decode::<SiteDayDoc>(d).and_then(|doc| SiteDayRollup::from_doc(doc).map_err(|e| WriteError::Decode(e.to_string())))
    })
    .transpose()
}

/// The revision of a stored document.
fn rev_of(raw: &Document) -> Result<i64, WriteError> {
    match raw.get("rev") {
        Some(mongodb::bson::Bson::Int64(v)) => Ok(*v),
        Some(mongodb::bson::Bson::Int32(v)) => Ok(i64::from(*v)),
        other => Err(WriteError::Decode(format!("{}: rev is {other:?}", raw.get_str("_id").unwrap_or("?")))),
    }
}

fn is_split(raw: Option<&Document>) -> bool {
    raw.and_then(|d| d.get(rollup::siteday::fields::SPLIT)).and_then(shared::store::flag::read).unwrap_or(false)
}

impl Flusher {
    /// Merges `deltas` into their site-days and units (see the module documentation).
    pub(super) async fn write_rollups(
        &self,
        id: &FlushId,
        deltas: FlushDeltas,
        report: &mut FlushReport,
    ) -> Result<(), StepError> {
        let mut pending: BTreeMap<SiteDay, Vec<(RollupKey, DocDelta)>> = BTreeMap::new();
        for (key, delta) in deltas.docs {
            pending.entry(key.site_day()).or_default().push((key, delta));
        }
        let now = self.now();
        let caps = self.settings.caps;
        let retention = self.settings.day_retention;
        let mut written = 0_usize;
        for _round in 0..MAX_WRITE_ROUNDS {
            if pending.is_empty() {
                return Ok(());
            }
            // Site-days remembered as split: their units. The others: the site-day document.
            let mut split: HashSet<String> =
                pending.keys().map(SiteDay::id).filter(|id| self.split_memory.contains(id)).collect();
            let unit_ids = |units: &[(RollupKey, DocDelta)]| units.iter().map(|(k, _)| k.id()).collect::<Vec<_>>();
            let mut ids = Vec::new();
            for (sd, units) in &pending {
                if split.contains(&sd.id()) { ids.extend(unit_ids(units)) } else { ids.push(sd.id()) }
            }
            let mut docs = self.read_raw(c::ROLLUPS, &ids, &mut report.cost).await?;
            let newly_split: Vec<&SiteDay> =
                pending.keys().filter(|sd| !split.contains(&sd.id()) && is_split(docs.get(&sd.id()))).collect();
            if !newly_split.is_empty() {
                let more: Vec<String> = newly_split.iter().flat_map(|sd| unit_ids(&pending[*sd])).collect();
                for sd in newly_split {
                    self.split_memory.insert(sd.id());
                    split.insert(sd.id());
                }
                docs.extend(self.read_raw(c::ROLLUPS, &more, &mut report.cost).await?);
            }
            let mut units_read: HashMap<String, Rollup> = HashMap::new();
            let mut days_read: HashMap<String, SiteDayRollup> = HashMap::new();
            for (sd, units) in &pending {
                if split.contains(&sd.id()) {
                    for (key, _) in units {
                        if let Some(r) = read_unit(docs.remove(&key.id()))? {
                            units_read.insert(key.id(), r);
                        }
                    }
                } else if let Some(r) = read_site_day(docs.remove(&sd.id()))? {
                    days_read.insert(sd.id(), r);
                }
            }
            let applied = units_read.values().map(|r| &r.applied).chain(days_read.values().map(|r| &r.applied));
            let prunable = self.prunable_watermarks(applied, &mut report.cost).await?;

            // (class, site-day, statement)
            let mut statements: Vec<(u8, SiteDay, Document)> = Vec::new();
            let mut splitting: Vec<(SiteDay, i64, SiteDayRollup)> = Vec::new();
            for (sd, units) in &pending {
                if split.contains(&sd.id()) {
                    for (key, delta) in units {
                        let read = units_read.remove(&key.id());
                        let read_rev = read.as_ref().map_or(0, |r| r.rev);
                        if let Some(doc) = merge::merge(read, key, delta, id, now, &caps, &prunable) {
                            statements.push((
                                class(Some(key.part)),
                                sd.clone(),
                                rollup::replace_statement(&doc.to_doc(retention), read_rev)?,
                            ));
                        }
                    }
                    continue;
                }
                let read = days_read.remove(&sd.id());
                let read_rev = read.as_ref().map_or(0, |r| r.rev);
                let Some(merged) =
                    merge::merge_site_day(read, sd, units.iter().map(|(k, d)| (k, d)), id, now, &caps, &prunable)
                else {
                    continue;
                };
                let encoded = merged.encode();
                if encoded.iter().flatten().map(Vec::len).sum::<usize>() <= self.settings.compact_max_bytes {
                    statements.push((
                        class(None),
                        sd.clone(),
                        merged.write_statement_encoded(encoded, retention, read_rev)?,
                    ));
                } else {
                    splitting.push((sd.clone(), read_rev, merged));
                }
            }
            if !splitting.is_empty() {
                self.plan_splits(splitting, &mut statements, report).await?;
            }
            statements.sort_by_key(|(class, _, _)| *class);
            let owners: Vec<SiteDay> = statements.iter().map(|(_, sd, _)| sd.clone()).collect();
            let commands: Vec<Document> = statements.into_iter().map(|(_, _, s)| s).collect();
            let outcome =
                self.run_statements(c::ROLLUPS, commands, &mut written, Step::RollupDocs, &mut report.cost).await?;
            report.rollup_writes = written as u64;
            match outcome {
                None => return Ok(()),
                Some(lost) => {
                    report.conflicts += 1;
                    tracing::debug!(lost, "a rollup write lost a race; merging its site-day again");
                    let again: HashSet<&SiteDay> = owners[lost..].iter().collect();
                    pending.retain(|sd, _| again.contains(sd));
                }
            }
        }
        Err(WriteError::Statement { collection: c::ROLLUPS.into(), code: 11000, message: "writes kept losing races".into() }
            .into())
    }

    /// The statements of site-days that split now: each unit to its own document (over
    /// whatever an unfinished split left, by its revision), then the site-day as split.
    async fn plan_splits(
        &self,
        splitting: Vec<(SiteDay, i64, SiteDayRollup)>,
        statements: &mut Vec<(u8, SiteDay, Document)>,
        report: &mut FlushReport,
    ) -> Result<(), StepError> {
        let retention = self.settings.day_retention;
        let keys = |m: &SiteDayRollup| {
            m.units.keys().map(|(b, p)| RollupKey::new(m.key.site_id.clone(), m.key.day, *b, *p)).collect::<Vec<_>>()
        };
        let ids: Vec<String> = splitting.iter().flat_map(|(_, _, m)| keys(m)).map(|k| k.id()).collect();
        let leftovers: HashMap<String, Document> =
            self.read_raw_projected(c::ROLLUPS, &ids, mongodb::bson::doc! {"rev": 1}, &mut report.cost).await?;
        for (sd, read_rev, merged) in splitting {
            tracing::info!(site_day = %sd.id(), units = merged.units.len(), "site-day splits into unit documents");
            for key in keys(&merged) {
                let id = key.id();
                let leftover_rev = leftovers.get(&id).map(rev_of).transpose()?.unwrap_or(0);
                let Some(body) = merged.units.get(&(key.bucket, key.part)).cloned() else { continue };
                let unit = Rollup { key: key.clone(), rev: leftover_rev + 1, applied: merged.applied.clone(), body };
                statements.push((
                    class(Some(key.part)),
                    sd.clone(),
                    rollup::replace_statement(&unit.to_doc(retention), leftover_rev)?,
                ));
            }
            let marker = SiteDayRollup { units: Default::default(), split: true, ..merged };
            statements.push((class(None), sd.clone(), marker.write_statement(retention, read_rev)?));
        }
        Ok(())
    }
}
