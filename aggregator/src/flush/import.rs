//! Imports (v3): the days of a Plausible export, stored by the api as chunks, counted into the
//! rollups under the import's own site id (`shared::imports::lens_site`), one chunk at a time
//! like a backfill's (each day also adds its lists and its series to its month's units,
//! [`shared::imports::month_lens_site`], so that a long range reads a whole month once, and to
//! the suffix of its month starting on each earlier day, [`shared::imports::suffix_lens_site`],
//! so that a range starting inside a month reads its rest once), chunk `n` is written as flush
//! (`bf-<import>`, `n`), so a chunk applied
//! twice (a kill, a lost lease) counts once. Once every chunk is in, the site's entry turns
//! `done` (stats read it from then on) and the chunks are removed.

use mongodb::bson::{Document, doc};
use shared::{
    backfill::BackfillDoc,
    imports::{self, ImportChunkDoc, ImportEntry, ImportState, lens_site},
    names::collections as c,
    rollup::Bucket,
    store::{SiteDoc, site_fields as f},
};

use super::{
    FlushId, FlushReport, Flusher, StepError,
    backfill::{LEASE, Turn},
};
use crate::{rollup::FlushDeltas, writer::WriteError};

impl Flusher {
    /// Runs the import `job` (held by this process) to its end.
    pub(super) async fn import_turn(&self, mut job: BackfillDoc) -> Result<Turn, StepError> {
        let jobs = self.db.collection::<BackfillDoc>(c::BACKFILLS);
        let site: Option<SiteDoc> = self.db.collection::<SiteDoc>(c::SITES).find_one(doc! {f::ID: &job.site_id}).await?;
        let entry = site.as_ref().and_then(|s| s.imports.iter().find(|i| i.id == job.item_id).cloned());
        // The import's first day: where its first month's suffixes start.
        let from = match entry {
            Some(e) if e.state == ImportState::Running => e.span().map(|(from, _)| from),
            // Deleted (its data removed by the api), or never listed (the api failed before
            // it listed it: not before a lease has passed, the api may still be at it).
            None if self.clock.now_ms() - job.cut_ms <= LEASE.as_millis() as i64 => return Ok(Turn::Waiting),
            _ => {
                self.drop_chunks(&job).await?;
                jobs.delete_one(doc! {"_id": &job.id}).await?;
                return Ok(Turn::Done);
            }
        };
        let lens = lens_site(&job.site_id, &job.item_id);
        let months = imports::month_lens_site(&job.site_id, &job.item_id);
        let suffixes = imports::suffix_lens_site(&job.site_id, &job.item_id);
        let inst = job.instance();
        while job.seq < job.chunks {
            let n = job.seq + 1;
            let id = ImportChunkDoc::id_of(&job.site_id, &job.item_id, n);
            let Some(chunk) = self.db.collection::<ImportChunkDoc>(c::IMPORT_CHUNKS).find_one(doc! {"_id": &id}).await?
            else {
                // Expired (`imports::CHUNK_KEEP`): the import cannot be finished; it fails, and
                // deleting it removes what it counted so far.
                tracing::warn!(site = %job.site_id, import = %job.item_id, chunk = n, "import chunk missing: import failed");
                let why = "its uploaded days expired before they were counted: delete it and upload the export again";
                self.set_import_state(&job.site_id, &job.item_id, ImportState::Failed, Some(why)).await?;
                self.drop_chunks(&job).await?;
                jobs.delete_one(doc! {"_id": &job.id, "owner": &*self.inst}).await?;
                return Ok(Turn::Done);
            };
            let mut deltas = FlushDeltas::default();
            for day in &chunk.days {
                let date = day.day().ok_or_else(|| WriteError::Decode(format!("{id}: bad date {}", day.date)))?;
                deltas.add_imported_day(&lens, date, day);
                let month = Bucket::Day(imports::month_of(date));
                deltas.add_imported_lists(&months, month, day);
                deltas.add_imported_month_series(&months, month, day);
                for a in imports::suffix_starts(from.unwrap_or(chrono::NaiveDate::MIN), date) {
                    deltas.add_imported_lists(&suffixes, Bucket::Day(a), day);
                    deltas.add_imported_month_series(&suffixes, Bucket::Day(a), day);
                }
            }
            self.write_rollups(&FlushId { inst: inst.clone(), seq: n }, deltas, &mut FlushReport::default()).await?;
            self.stop_if(super::Step::BackfillChunk(n as usize))?;
            job.seq = n;
            if !self.save_progress(&job).await? {
                return Ok(Turn::LostLease);
            }
        }
        self.set_import_state(&job.site_id, &job.item_id, ImportState::Done, None).await?;
        self.drop_chunks(&job).await?;
        jobs.delete_one(doc! {"_id": &job.id, "owner": &*self.inst}).await?;
        tracing::info!(site = %job.site_id, import = %job.item_id, chunks = job.chunks, "import done");
        Ok(Turn::Done)
    }

    async fn drop_chunks(&self, job: &BackfillDoc) -> Result<(), StepError> {
        let ids: Vec<String> = (1..=job.chunks).map(|n| ImportChunkDoc::id_of(&job.site_id, &job.item_id, n)).collect();
        for group in ids.chunks(1000) {
            self.db.collection::<Document>(c::IMPORT_CHUNKS).delete_many(doc! {"_id": {"$in": group}}).await?;
        }
        Ok(())
    }

    /// Sets the state (and the error, if any) of a site's import entry, by compare-and-set on
    /// `imports_rev`.
    async fn set_import_state(
        &self,
        site_id: &str,
        import_id: &str,
        state: ImportState,
        error: Option<&str>,
    ) -> Result<(), StepError> {
        let sites = self.db.collection::<SiteDoc>(c::SITES);
        for _ in 0..20 {
            let Some(site) = sites.find_one(doc! {f::ID: site_id}).await? else { return Ok(()) };
            let mut imports: Vec<ImportEntry> = site.imports.clone();
            let Some(e) = imports.iter_mut().find(|i| i.id == import_id) else { return Ok(()) };
            e.state = state;
            e.error = error.map(str::to_string);
            // Done here: with its merged units (this release writes them).
            e.merged = state == ImportState::Done;
            let set = doc! {f::IMPORTS: mongodb::bson::to_bson(&imports)?, f::IMPORTS_REV: site.imports_rev + 1};
            let r =
                sites.update_one(shared::store::imports_rev_filter(site_id, site.imports_rev), doc! {"$set": set}).await?;
            if r.matched_count == 1 {
                return Ok(());
            }
        }
        Err(WriteError::Decode(format!("site {site_id}: import state writes kept losing races")).into())
    }
}
