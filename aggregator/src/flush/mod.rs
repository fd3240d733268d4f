//! Writing a chunk of batches to MongoDB so that every accepted event is counted exactly once,
//! even when an aggregator dies halfway, several aggregators share the stream, and messages
//! come back.
//!
//! Each aggregator process is an *instance* with a random id. Its flushes are numbered 1, 2,
//! 3, … and run one at a time: flush `s + 1` starts only once flush `s` is done. Every rollup
//! document records, per instance, the highest flush sequence counted in it (its watermark,
//! see [`shared::rollup::Watermark`]) and a revision bumped by every write.
//!
//! A flush F = (instance I, sequence s):
//! 1. **Claim**: insert F's record ([`FlushRecord`]), state `applying`.
//! 2. **Raw batches**: insert one raw document per batch, `_id` = `site:batch_id`, `flush` = F.
//!    A batch whose raw document exists already is not new; see "Duplicates".
//! 3. **Visitor marks**: insert a mark per (site, day, visitor) with `f` = F. A mark inserted
//!    now, or found with `f` = F (inserted by an earlier attempt at F), is a new visitor of that
//!    day; any other existing mark is not.
//! 4. **Sessions, then rollups**: read the documents F touches (by `_id`); to each whose
//!    watermark for I is below s, add F's increments and set the watermark to s; write each
//!    back only if its revision is unchanged since the read. A rollup document is a site-day
//!    holding all its units, or, once that site-day has split, one unit ([`rollups`]). Top
//!    lists go before the series, so a reader never sees a batch in the summary before the top
//!    lists. A write that lost a race is read and merged again.
//! 5. **Done**: mark F's record `done`. Only then are the messages acked.
//!
//! **Duplicates.** A batch found stored belongs to a flush G. G done (or its record expired, a
//! day after it was done: records are inserted before their raw documents, so a missing record
//! is an expired one) means counted: ack. G applying and claimed less than a lease ago: G may
//! still be running, retry later. G older than the lease: its process died or stalled; recover
//! G — steps 3 to 5 for G's raw documents, under G's own id ([`recovery`]) — then ack.
//!
//! **Why each batch counts once.** Steps 1 to 3 are idempotent inserts. In step 4 a document
//! either has F's increments and a watermark ≥ s or has neither — one conditional write — so
//! whoever finishes F (its own process retrying, a recoverer, even both at once) skips a
//! document that already counts F. Watermarks only grow and an instance starts s + 1 only
//! after s is done, so a watermark ≥ s on a document F touches means F is counted there.
//! Step 3's answers do not depend on who asks: a mark belongs to F or it does not.
//!
//! The module is split by concern: this file runs the steps, [`marks`] is step 3,
//! [`revisioned`] the revision-checked read-merge-write steps 4a and 4b share (and which old
//! watermarks may go), [`rollups`] the site-day aware step 4b, [`merge`] computes what one
//! document becomes, [`duplicates`] settles batches stored already, [`recovery`] finishes the
//! flushes of others.
//! Tests stop a flush after any step ([`Step`]) and check that recovery counts every event
//! exactly once.

pub mod backfill;
mod duplicates;
mod import;
mod marks;
pub mod merge;
pub mod recovery;
mod revisioned;
mod rollups;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use mongodb::{
    Database,
    bson::{self, DateTime, Document, doc},
};
use shared::{
    clock::Clock,
    funnel::FunnelDoc,
    message::BatchMessage,
    names::collections as c,
    rollup::{Part, Watermark},
    site_config::{GoalDoc, SiteConfigDoc},
    store::{FlushRecord, FlushState, RawBatchDoc, flush_fields},
};

use crate::{
    rollup::{Capacities, FlushDeltas},
    sessions::{self, Effect, SessionDoc, SessionFacts, SessionState},
    writer::{self, Cost, WriteError},
};
use marks::NewMark;
use revisioned::{Stored, is_prunable};

/// How long visitor marks are kept: a local day lasts at most 26 h, plus redelivery time.
pub(super) const MARK_KEEP: Duration = Duration::from_secs(3 * 24 * 3600);
/// How long a session document is kept after the session was first seen.
pub(crate) const SESSION_KEEP: Duration = Duration::from_secs(2 * 24 * 3600);
/// A watermark of another instance untouched this long is dropped once none of that
/// instance's flushes is still applying.
const PRUNE_AFTER: Duration = Duration::from_secs(3600);
/// The instance ids of backfill chunks start so ([`shared::backfill::BackfillDoc::instance`]).
pub(crate) const BACKFILL_PREFIX: &str = "bf-";
/// How long a backfill's watermark is kept untouched.
const BACKFILL_PRUNE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// Lost races on one flush's documents before it gives up (and is retried as a whole).
const MAX_WRITE_ROUNDS: usize = 20;

/// The identity of a flush: `<instance>:<sequence>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlushId {
    pub inst: String,
    pub seq: i64,
}

impl FlushId {
    pub fn parse(raw: &str) -> Option<Self> {
        let (inst, seq) = raw.rsplit_once(':')?;
        Some(Self { inst: inst.to_string(), seq: seq.parse().ok()? })
    }
}

impl std::fmt::Display for FlushId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.inst, self.seq)
    }
}

/// The steps of the protocol, named so that tests can stop a flush right after one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Claim,
    RawBatches,
    VisitorMarks,
    /// After writing this many session documents of the flush.
    SessionDocs(usize),
    /// After writing this many rollup documents of the flush.
    RollupDocs(usize),
    /// A backfill: after writing chunk n (from 1), before recording its progress.
    BackfillChunk(usize),
    Done,
}

/// What to do with one message after a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its effects are in MongoDB.
    Ack,
    /// Not yet: deliver again after this long.
    Retry(Duration),
}

/// What a flush did, for metrics.
#[derive(Debug, Default)]
pub struct FlushReport {
    pub new_batches: usize,
    /// Events in the new batches.
    pub events: u64,
    pub duplicates: usize,
    pub recovered_flushes: usize,
    /// Rollup writes that lost a race and were merged again.
    pub conflicts: u64,
    /// Rollup documents written (site-days and units).
    pub rollup_writes: u64,
    pub cost: Cost,
}

/// Why a step of a flush failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// MongoDB refused or failed a read or a write (or a stored document does not read).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A test stopped the flush right after this step ([`Flusher::failing_after`]).
    #[error("stopped after step {0:?} (injected fault)")]
    Injected(Step),
}

impl From<mongodb::error::Error> for StepError {
    fn from(e: mongodb::error::Error) -> Self {
        Self::Write(e.into())
    }
}

impl From<mongodb::bson::ser::Error> for StepError {
    fn from(e: mongodb::bson::ser::Error) -> Self {
        Self::Write(e.into())
    }
}

/// Why a flush failed.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    /// Nothing was claimed: the messages may simply be redelivered.
    #[error("claiming a flush: {0}")]
    NotClaimed(StepError),
    /// Flush `flush` is claimed and maybe partly applied: it must be finished ([`Flusher::recover`])
    /// before this instance starts another.
    #[error("flush {flush}: {error}")]
    Claimed { flush: FlushId, error: StepError },
}

/// Settings of the protocol.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A flush claimed longer ago than this and not done belongs to a dead or stalled process.
    pub lease: Duration,
    pub caps: Capacities,
    /// How long daily rollups are kept.
    pub day_retention: Duration,
    /// Bytes of encoded units past which a site-day splits into unit documents
    /// ([`shared::rollup::siteday::COMPACT_MAX_BYTES`] in production; tests move it).
    pub compact_max_bytes: usize,
}

/// Writes chunks of batches; one per aggregator process (clones share the instance).
#[derive(Clone)]
pub struct Flusher {
    db: Database,
    inst: Arc<str>,
    next_seq: Arc<AtomicI64>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    fault: Option<Step>,
    split_memory: Arc<rollups::SplitMemory>,
    /// Raw batches per backfill chunk ([`backfill::CHUNK_BATCHES`]; tests make it small).
    backfill_chunk: usize,
}

impl Flusher {
    pub fn new(db: Database, settings: Settings, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            inst: Arc::from(new_instance_id()),
            next_seq: Arc::new(AtomicI64::new(1)),
            settings: Arc::new(settings),
            clock,
            fault: None,
            split_memory: Arc::default(),
            backfill_chunk: backfill::CHUNK_BATCHES,
        }
    }

    /// A flusher whose backfills write chunks of `batches` raw batches: for tests that stop a
    /// backfill between chunks.
    pub fn with_backfill_chunk(mut self, batches: usize) -> Self {
        self.backfill_chunk = batches.max(1);
        self
    }

    /// A flusher that stops with [`StepError::Injected`] right after `step`: for tests of
    /// the protocol's crash points.
    pub fn failing_after(mut self, step: Step) -> Self {
        self.fault = Some(step);
        self
    }

    pub fn instance(&self) -> &str {
        &self.inst
    }

    fn now(&self) -> DateTime {
        DateTime::from_millis(self.clock.now_ms())
    }

    fn stop_if(&self, step: Step) -> Result<(), StepError> {
        if self.fault == Some(step) { Err(StepError::Injected(step)) } else { Ok(()) }
    }

    /// Writes `msgs` (distinct batches) and says, per message, whether it may be acked. Runs in a
    /// `flush` span naming the flush, its batches, sites and new events, so what it logs says
    /// which flush it was about.
    #[tracing::instrument(name = "flush", skip_all, fields(batches = msgs.len(), sites, events, flush))]
    pub async fn flush(&self, msgs: &[BatchMessage]) -> Result<(Vec<Verdict>, FlushReport), FlushError> {
        let id = FlushId { inst: self.inst.to_string(), seq: self.next_seq.fetch_add(1, Ordering::SeqCst) };
        let span = tracing::Span::current();
        span.record("flush", tracing::field::display(&id));
        span.record("sites", msgs.iter().map(|m| m.site_id.as_str()).collect::<HashSet<_>>().len());
        let mut report = FlushReport::default();
        self.claim(&id, &mut report.cost).await.map_err(|e| FlushError::NotClaimed(e.into()))?;
        let claimed = |error: StepError| FlushError::Claimed { flush: id.clone(), error };
        self.stop_if(Step::Claim).map_err(claimed)?;

        let raw_docs = msgs
            .iter()
            .map(|m| {
                bson::to_document(&RawBatchDoc {
                    id: m.msg_id(),
                    msg: m.clone(),
                    received: DateTime::from_millis(m.received_at),
                    flush: id.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| claimed(e.into()))?;
        let dups: HashSet<usize> = writer::insert_unordered(&self.db, c::RAW_BATCHES, raw_docs, &mut report.cost)
            .await
            .map_err(|e| claimed(e.into()))?
            .into_iter()
            .collect();
        self.stop_if(Step::RawBatches).map_err(claimed)?;

        let fresh: Vec<&BatchMessage> = msgs.iter().enumerate().filter(|(i, _)| !dups.contains(i)).map(|(_, m)| m).collect();
        report.new_batches = fresh.len();
        report.events = fresh.iter().map(|m| m.events.len() as u64).sum();
        span.record("events", report.events);
        self.apply(&id, &fresh, &mut report).await.map_err(claimed)?;

        let mut verdicts = vec![Verdict::Ack; msgs.len()];
        if !dups.is_empty() {
            // F is done: whatever settling the duplicates costs no longer holds it up.
            self.settle_duplicates(msgs, &dups, &mut verdicts, &mut report).await.map_err(claimed)?;
        }
        Ok((verdicts, report))
    }

    /// Step 1.
    async fn claim(&self, id: &FlushId, cost: &mut Cost) -> Result<(), WriteError> {
        let record = FlushRecord {
            id: id.to_string(),
            inst: id.inst.clone(),
            seq: id.seq,
            state: FlushState::Applying,
            claimed_at: self.now(),
            done_at: None,
        };
        let dups = writer::insert_unordered(&self.db, c::FLUSHES, vec![bson::to_document(&record)?], cost).await?;
        if dups.is_empty() {
            Ok(())
        } else {
            Err(WriteError::Statement {
                collection: c::FLUSHES.into(),
                code: 11000,
                message: format!("flush {id} claimed twice"),
            })
        }
    }

    /// Steps 3 to 5 for the batches of flush `id`.
    async fn apply(&self, id: &FlushId, msgs: &[&BatchMessage], report: &mut FlushReport) -> Result<(), StepError> {
        let configs = self.read_configs(msgs, &mut report.cost).await?;
        // Oldest first, and in the same order however the batches were read (a recovery).
        let mut ordered: Vec<&BatchMessage> = msgs.to_vec();
        ordered.sort_by(|a, b| (a.received_at, &a.site_id, &a.batch_id).cmp(&(b.received_at, &b.site_id, &b.batch_id)));
        let mut deltas = FlushDeltas::default();
        let mut facts = Vec::new();
        for m in &ordered {
            let config = configs.get(&m.site_id);
            let site_goals: Vec<&GoalDoc> = config.map(|c| c.goals.iter().collect()).unwrap_or_default();
            let site_funnels: Vec<&FunnelDoc> = config.map(|c| c.funnels.iter().collect()).unwrap_or_default();
            // Every batch's session is read, even when the batch changes nothing in it: its
            // start puts the batch under the one-click filters. (Read in the same `_id $in`
            // round trip; a session the batch does not change is not written.)
            facts.push(deltas.add_batch_with(m, &site_goals, &site_funnels));
        }
        self.add_marks(id, &ordered, &mut deltas, report).await?;
        self.stop_if(Step::VisitorMarks)?;
        let (effects, starts) = self.write_sessions(id, facts, report).await?;

        // Segments: every batch and session change of a session in a segment counts once
        // more under the segment's own site id (`shared::segment`), once the session's first
        // pageview is known.
        let mut lens_msgs: Vec<BatchMessage> = Vec::new();
        let mut lenses: HashMap<String, Vec<String>> = HashMap::new();
        for m in &ordered {
            let session = SessionDoc::id_of(&m.site_id, &m.session_id);
            let (Some(start), Some(config)) = (starts.get(&session), configs.get(&m.site_id)) else { continue };
            let values = start.filter_values();
            for seg in config.segments.iter().filter(|s| s.applies_at(m.received_at) && s.matches(&values)) {
                let lens = shared::segment::lens_site(&m.site_id, &seg.id);
                lens_msgs.push(BatchMessage { site_id: lens.clone(), ..(*m).clone() });
                let of_session = lenses.entry(session.clone()).or_default();
                if !of_session.contains(&lens) {
                    of_session.push(lens);
                }
            }
        }
        for lm in &lens_msgs {
            deltas.add_batch(lm, &[]);
        }
        let lens_refs: Vec<&BatchMessage> = lens_msgs.iter().collect();
        self.add_marks(id, &lens_refs, &mut deltas, report).await?;
        // A segment has no live view.
        deltas.docs.retain(|k, _| !(k.part == Part::Live && k.site_id.contains(shared::segment::LENS_SEP)));

        for (site, session, effect) in effects {
            deltas.add_effect(&site, &effect);
            if let Some(start) = starts.get(&session) {
                deltas.add_effect_filtered(&site, start, &effect);
            }
            for lens in lenses.get(&session).into_iter().flatten() {
                deltas.add_effect(lens, &effect);
            }
        }
        // One-click filters: each batch under its session's attribution, once the session's
        // first pageview is known (a batch that arrives in an earlier flush than it is not).
        for m in &ordered {
            if let Some(start) = starts.get(&SessionDoc::id_of(&m.site_id, &m.session_id)) {
                deltas.add_filtered(m, start);
            }
        }
        self.write_rollups(id, deltas, report).await?;
        // The server's date: a client-set date would be stored as a string by the stand-in.
        let done = doc! {"$set": {flush_fields::STATE: flush_fields::DONE}, "$currentDate": {flush_fields::DONE_AT: true}};
        self.db.collection::<Document>(c::FLUSHES).update_one(doc! {"_id": id.to_string()}, done).await?;
        report.cost.round_trips += 1;
        report.cost.docs_written += 1;
        self.stop_if(Step::Done)
    }

    /// Step 3 for `msgs`: their visitor marks, and the new visitors they make in `deltas`.
    async fn add_marks(
        &self,
        id: &FlushId,
        msgs: &[&BatchMessage],
        deltas: &mut FlushDeltas,
        report: &mut FlushReport,
    ) -> Result<(), StepError> {
        if msgs.is_empty() {
            return Ok(());
        }
        for mark in self.new_marks(id, msgs, &mut report.cost).await? {
            match mark {
                NewMark::Visitor { site, day } => deltas.add_new_visitor(site, day),
                NewMark::PageVisitor { site, buckets, path } => {
                    buckets.into_iter().for_each(|b| deltas.add_page_visitor(site, buckets[0], b, &path))
                }
            }
        }
        Ok(())
    }

    /// The goals and funnels of the sites of `msgs`, deleted ones included (they still apply
    /// to batches received before their deletion): the sites' configs, by `_id`.
    async fn read_configs(
        &self,
        msgs: &[&BatchMessage],
        cost: &mut Cost,
    ) -> Result<HashMap<String, SiteConfigDoc>, WriteError> {
        let sites: Vec<String> = msgs.iter().map(|m| m.site_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        self.read_docs(c::SITE_CONFIG, &sites, cost).await
    }

    fn expire_in(&self, keep: Duration) -> DateTime {
        DateTime::from_millis(self.clock.now_ms() + keep.as_millis() as i64)
    }

    /// Step 4a: the sessions of the batches; returns the effects their changes have on the
    /// rollups (see [`crate::sessions`]), as (site, session document id, effect), and the
    /// sessions' starts where known.
    async fn write_sessions(
        &self,
        id: &FlushId,
        facts: Vec<SessionFacts>,
        report: &mut FlushReport,
    ) -> Result<(Vec<(String, String, Effect)>, HashMap<String, sessions::Start>), StepError> {
        let mut by_session: BTreeMap<String, Vec<&SessionFacts>> = BTreeMap::new();
        for f in &facts {
            by_session.entry(SessionDoc::id_of(&f.site_id, &f.session_id)).or_default().push(f);
        }
        let mut effects: BTreeMap<String, Vec<Effect>> = BTreeMap::new();
        let mut starts: HashMap<String, sessions::Start> = HashMap::new();
        let now = self.now();
        let expire_at = self.expire_in(SESSION_KEEP);
        let ids: Vec<String> = by_session.keys().cloned().collect();
        self.write_rounds::<SessionDoc>(c::SESSIONS, ids, Step::SessionDocs, report, |sid, current, prunable| {
            let batches = &by_session[sid];
            let site_id = batches[0].site_id.clone();
            let mut doc = current.cloned().unwrap_or_else(|| SessionDoc {
                id: sid.to_string(),
                site_id,
                rev: 0,
                applied: BTreeMap::new(),
                effects: BTreeMap::new(),
                expire_at,
                state: SessionState {
                    first_ms: batches.iter().filter(|f| !f.is_empty()).map(|f| f.received_at).min(),
                    ..SessionState::default()
                },
            });
            if let Some(stored) = stored_effects(&doc, id) {
                // An earlier attempt at this flush wrote the session: its effects are stored.
                effects.insert(sid.to_string(), stored);
                starts.extend(doc.state.start.clone().map(|s| (sid.to_string(), s)));
                return Ok(None);
            }
            let before = doc.state.clone();
            let fx = sessions::transition(&mut doc.state, batches);
            starts.extend(doc.state.start.clone().map(|s| (sid.to_string(), s)));
            if fx.is_empty() && doc.state == before {
                // Nothing changes: no write (a replay computes the same nothing).
                effects.insert(sid.to_string(), fx);
                return Ok(None);
            }
            let statement = record_session(&mut doc, id, now, prunable, fx.clone())?;
            effects.insert(sid.to_string(), fx);
            Ok(Some(statement))
        })
        .await?;
        let effects = by_session
            .iter()
            .flat_map(|(sid, batches)| {
                let site = batches[0].site_id.clone();
                effects.remove(sid).unwrap_or_default().into_iter().map(move |e| (site.clone(), sid.clone(), e))
            })
            .collect();
        Ok((effects, starts))
    }
}

impl Stored for SessionDoc {
    fn applied(&self) -> &BTreeMap<String, Watermark> {
        &self.applied
    }
}

/// The effects flush `id` counted in `doc`, when `doc` already counts it (an earlier attempt
/// wrote it); empty when a later flush of that instance has written it since.
fn stored_effects(doc: &SessionDoc, id: &FlushId) -> Option<Vec<Effect>> {
    let w = doc.applied.get(&id.inst).filter(|w| w.seq >= id.seq)?;
    Some(if w.seq == id.seq { doc.effects.get(&id.inst).cloned().unwrap_or_default() } else { Vec::new() })
}

/// Records flush `id` and its effects `fx` in `doc` (dropping prunable watermarks) and returns
/// the write of `doc`, conditional on the revision it was read at.
fn record_session(
    doc: &mut SessionDoc,
    id: &FlushId,
    now: DateTime,
    prunable: &HashSet<String>,
    fx: Vec<Effect>,
) -> Result<Document, StepError> {
    let read_rev = doc.rev;
    doc.applied.retain(|inst, w| !is_prunable(prunable, inst, w));
    doc.effects.retain(|inst, _| doc.applied.contains_key(inst));
    doc.applied.insert(id.inst.clone(), Watermark { seq: id.seq, at: now });
    doc.effects.insert(id.inst.clone(), fx);
    doc.rev += 1;
    Ok(shared::store::revisioned_write(&*doc, &doc.id, read_rev)?)
}

fn new_instance_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = (chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64).to_be_bytes();
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_ids_round_trip() {
        let id = FlushId { inst: "a1b2c3d4e5f60718".into(), seq: 42 };
        assert_eq!(FlushId::parse(&id.to_string()), Some(id));
        assert_eq!(FlushId::parse("no-sequence"), None);
        assert_eq!(FlushId::parse("x:notanumber"), None);
    }
}
