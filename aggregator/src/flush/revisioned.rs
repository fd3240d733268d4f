//! The revision-checked read-merge-write that steps 4a and 4b of the protocol rest on: read
//! documents by `_id`, compute what each becomes, write each back only if its `rev` is still
//! the one read, and plan again from a fresh read what lost a race.
//!
//! Also which watermarks may be pruned from the documents written, so that `applied` maps do
//! not grow with every instance that ever ran: see [`Flusher::prunable_watermarks`].

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::TryStreamExt;
use mongodb::bson::{self, Document, doc};
use serde::de::DeserializeOwned;
use shared::{
    names::collections as c,
    rollup::Watermark,
    store::{FlushRecord, FlushState},
};

use super::{
    BACKFILL_PREFIX, BACKFILL_PRUNE_AFTER, FlushId, FlushReport, Flusher, MAX_WRITE_ROUNDS, PRUNE_AFTER, Step, StepError,
};
use crate::writer::{self, Cost, WriteError};

/// Most ids in one `_id $in` read.
pub(super) const READ_CHUNK: usize = 1000;

/// What [`Flusher::write_rounds`] needs of a stored document.
pub(super) trait Stored {
    fn applied(&self) -> &BTreeMap<String, Watermark>;
}

impl Flusher {
    /// Read → merge → conditional write, in rounds, until each document is written or needs
    /// no write: `plan` gets a document's id and its stored version and returns the statement
    /// (or `None`); a statement that lost a race is planned again from a fresh read.
    pub(super) async fn write_rounds<T>(
        &self,
        collection: &str,
        mut pending: Vec<String>,
        fault: fn(usize) -> Step,
        report: &mut FlushReport,
        mut plan: impl FnMut(&str, Option<&T>, &HashSet<String>) -> Result<Option<Document>, StepError>,
    ) -> Result<(), StepError>
    where
        T: DeserializeOwned + Stored,
    {
        let mut written = 0_usize;
        for _round in 0..MAX_WRITE_ROUNDS {
            if pending.is_empty() {
                return Ok(());
            }
            let current: HashMap<String, T> = self.read_docs(collection, &pending, &mut report.cost).await?;
            let prunable = self.prunable_watermarks(current.values().map(Stored::applied), &mut report.cost).await?;
            let mut statements = Vec::new();
            let mut statement_ids = Vec::new();
            for doc_id in &pending {
                if let Some(statement) = plan(doc_id, current.get(doc_id), &prunable)? {
                    statements.push(statement);
                    statement_ids.push(doc_id.clone());
                }
            }
            match self.run_statements(collection, statements, &mut written, fault, &mut report.cost).await? {
                None => return Ok(()),
                Some(lost) => {
                    report.conflicts += 1;
                    tracing::debug!(collection, lost, "a write lost a race; merging again");
                    pending = statement_ids.split_off(lost);
                }
            }
        }
        Err(WriteError::Statement { collection: collection.into(), code: 11000, message: "writes kept losing races".into() }
            .into())
    }

    /// Runs `statements` in order ([`writer::update_ordered`]), stopping with the injected
    /// fault once `fault(n)` is the step this flusher fails after; `written` counts the
    /// statements this flush ran before. Returns the index of a statement that lost a race.
    pub(super) async fn run_statements(
        &self,
        collection: &str,
        mut statements: Vec<Document>,
        written: &mut usize,
        fault: fn(usize) -> Step,
        cost: &mut Cost,
    ) -> Result<Option<usize>, StepError> {
        if let Some(step) = self.fault
            && let Some(n) = (0..=statements.len() + *written).find(|n| fault(*n) == step && *n >= *written)
        {
            statements.truncate(n - *written);
            writer::update_ordered(&self.db, collection, statements, cost).await?;
            return Err(StepError::Injected(step));
        }
        let count = statements.len();
        let outcome = writer::update_ordered(&self.db, collection, statements, cost).await?;
        *written += outcome.unwrap_or(count);
        Ok(outcome)
    }

    /// The documents with these ids, as stored, in chunks of [`READ_CHUNK`].
    pub(super) async fn read_raw(
        &self,
        collection: &str,
        ids: &[String],
        cost: &mut Cost,
    ) -> Result<HashMap<String, Document>, WriteError> {
        self.read_raw_projected(collection, ids, Document::new(), cost).await
    }

    /// [`Self::read_raw`], fetching only the fields of `projection` (all when empty).
    pub(super) async fn read_raw_projected(
        &self,
        collection: &str,
        ids: &[String],
        projection: Document,
        cost: &mut Cost,
    ) -> Result<HashMap<String, Document>, WriteError> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(READ_CHUNK) {
            let coll = self.db.collection::<Document>(collection);
            let find = coll.find(doc! {"_id": {"$in": chunk}});
            let mut cursor = if projection.is_empty() { find.await? } else { find.projection(projection.clone()).await? };
            cost.round_trips += 1;
            while let Some(raw) = cursor.try_next().await? {
                let id = raw.get_str("_id").map_err(|e| WriteError::Decode(format!("{collection}: {e}")))?.to_string();
                out.insert(id, raw);
                cost.docs_read += 1;
            }
        }
        Ok(out)
    }

    pub(super) async fn read_docs<T: DeserializeOwned>(
        &self,
        collection: &str,
        ids: &[String],
        cost: &mut Cost,
    ) -> Result<HashMap<String, T>, WriteError> {
        self.read_raw(collection, ids, cost)
            .await?
            .into_iter()
            .map(|(id, raw)| {
                bson::from_document(raw)
                    .map(|doc| (id.clone(), doc))
                    .map_err(|e| WriteError::Decode(format!("{collection} {id}: {e}")))
            })
            .collect()
    }

    /// The watermarks (as flush ids) that may be dropped from these documents: of another
    /// instance, older than [`PRUNE_AFTER`], and whose flush is not applying — done, or its
    /// record gone (records are kept a day after they are done, and a watermark is only
    /// written by a claimed flush). Dropping one cannot count a flush twice: a done flush is
    /// never applied again (its redelivered batches settle as duplicates), and a later flush of
    /// that instance that touched the document would have left a later watermark. Read by
    /// `_id`, and only when some watermark is that old.
    pub(super) async fn prunable_watermarks<'a>(
        &self,
        applied: impl Iterator<Item = &'a BTreeMap<String, Watermark>>,
        cost: &mut Cost,
    ) -> Result<HashSet<String>, WriteError> {
        let cutoff = self.clock.now_ms() - PRUNE_AFTER.as_millis() as i64;
        // A backfill's chunks have no flush record; a backfill stalled (every aggregator down)
        // resumes its chunk within days, so its watermarks are kept a week.
        let backfill_cutoff = self.clock.now_ms() - BACKFILL_PRUNE_AFTER.as_millis() as i64;
        let mut stale: HashSet<String> = HashSet::new();
        for map in applied {
            for (inst, w) in map {
                let cutoff = if inst.starts_with(BACKFILL_PREFIX) { backfill_cutoff } else { cutoff };
                if inst.as_str() != &*self.inst && w.at.timestamp_millis() < cutoff {
                    stale.insert(FlushId { inst: inst.clone(), seq: w.seq }.to_string());
                }
            }
        }
        if stale.is_empty() {
            return Ok(stale);
        }
        let ids: Vec<String> = stale.iter().cloned().collect();
        let records: HashMap<String, FlushRecord> = self.read_docs(c::FLUSHES, &ids, cost).await?;
        stale.retain(|id| records.get(id).is_none_or(|r| r.state == FlushState::Done));
        Ok(stale)
    }
}

/// True when the watermark `w` of `inst` is among `prunable` ([`Flusher::prunable_watermarks`]).
pub fn is_prunable(prunable: &HashSet<String>, inst: &str, w: &Watermark) -> bool {
    !prunable.is_empty() && prunable.contains(&format!("{inst}:{}", w.seq))
}
