//! Backfills: a new goal or funnel counts the raw batches kept from before it existed
//! (phases and the job document: [`shared::backfill`]).
//!
//! **What it counts.** The live path counts an item from its creation (`cut_ms`, by receive
//! time) on; the backfill counts the batches received before it, so that afterwards the
//! item's figures equal what it would have counted had it existed from the start. It replays
//! the raw batches in receive order (the order a flush counts them in) through the same
//! matching as the live path ([`FlushDeltas::add_batch_with`]) and keeps each session's state
//! in memory as the session document would: a goal completes once per session and day, a
//! funnel advances one step per matching event in order of event time.
//!
//! **Sessions across the cut.** A session first seen less than a session document's keep
//! before the cut ([`SESSION_KEEP`]) may still be running, and the live path may already have
//! counted it since the cut. Its figures go through its session document instead, in the
//! resolve phase: a goal day the live path counted is not counted again (and one the backfill
//! counts is recorded, so the live path will not count it), and a funnel continues from the
//! progress before the cut over the hits the live path kept pending ([`FunnelState`]).
//!
//! **Exactly once.** Each chunk is written like a flush: under the instance `bf-<item>` and
//! the chunk's number as its sequence, so a document that already counts the chunk is not
//! counted again. A chunk is the next [`CHUNK_BATCHES`] raw batches after the cursor (or the
//! next [`RESOLVE_SESSIONS`] sessions), so a resumed job computes the same chunk again; the
//! sessions' states at the cursor are rebuilt by reading two session keeps before it again,
//! without writing. Only a session id in use for longer than a keep (two days, which the live
//! path also starts afresh) may then be rebuilt differently.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use futures::TryStreamExt;
use mongodb::bson::{self, Document, doc};
use shared::{
    backfill::{BackfillDoc, ItemKind, Phase},
    funnel::FunnelDoc,
    message::BatchMessage,
    names::collections as c,
    rollup::{Bucket, Part},
    segment::{SegmentDoc, lens_site},
    site_config::{GoalDoc, SiteConfigDoc},
    store::RawBatchDoc,
    telemetry::Chain,
};

use super::{FlushId, FlushReport, Flusher, SESSION_KEEP, StepError, record_session, stored_effects};
use crate::{
    rollup::FlushDeltas,
    sessions::{Effect, FunnelState, GoalDone, SessionDoc, SessionFacts, SessionState},
    writer::WriteError,
};

/// Raw batches per scan chunk.
pub const CHUNK_BATCHES: usize = 2000;
/// Sessions per resolve chunk.
pub const RESOLVE_SESSIONS: usize = 500;
/// How long a job is held without renewal.
pub(super) const LEASE: Duration = Duration::from_secs(60);
/// How long after an item's creation a batch received before it may still be on its way to
/// the stream (ingest answers only once the stream has it, within its publish timeout).
const PUBLISH_MARGIN: Duration = Duration::from_secs(10);
/// Most sessions a job keeps in memory; past it the oldest are forgotten (a forgotten
/// session's later batches start it afresh).
const MAX_SESSIONS: usize = 1_000_000;
/// Hours kept in the rollups: older hours are not written (no reader asks for them).
const HOUR_KEEP: Duration = Duration::from_secs(49 * 3600);
/// Goal days a session keeps (as the session document does).
const MAX_GOAL_DAYS: usize = 31;

/// Where the event stream stands, for the wait phase.
#[derive(Clone)]
pub enum Backlog {
    /// No stream (tests that write through the flusher directly): nothing is in flight.
    Nothing,
    /// The event stream, a work queue: a message leaves it once acked (its flush done).
    Stream(Box<async_nats::jetstream::Context>),
}

impl Backlog {
    async fn info(js: &async_nats::jetstream::Context) -> anyhow::Result<async_nats::jetstream::stream::State> {
        let mut stream = js.get_stream(shared::names::STREAM).await?;
        Ok(stream.info().await?.state.clone())
    }

    /// The stream's last sequence now.
    async fn last_seq(&self) -> anyhow::Result<i64> {
        match self {
            Self::Nothing => Ok(0),
            Self::Stream(js) => Ok(Self::info(js).await?.last_sequence as i64),
        }
    }

    /// True when every message up to `seq` has left the stream.
    async fn drained_to(&self, seq: i64) -> anyhow::Result<bool> {
        match self {
            Self::Nothing => Ok(true),
            Self::Stream(js) => {
                let state = Self::info(js).await?;
                Ok(state.messages == 0 || state.first_sequence as i64 > seq)
            }
        }
    }
}

/// What a job did in one turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Finished (or its item is gone): the document is removed.
    Done,
    /// Not yet: the stream still holds batches from before the item.
    Waiting,
    /// Another process took the job.
    LostLease,
}

/// The item a job counts, as the live path matches it, but applying to every batch.
enum Item {
    Goal(GoalDoc),
    Funnel(FunnelDoc),
    /// A segment, with the site's goals (which its sessions' conversions count).
    Segment(SegmentDoc, Vec<GoalDoc>),
}

/// What a chunk writes: session effects (with the site id they count under) and, for a
/// segment, the batches of its sessions under the segment's site id.
#[derive(Default)]
struct Chunk {
    effects: Vec<(String, Effect)>,
    lens_msgs: Vec<BatchMessage>,
}

/// A session as the job keeps it in memory.
struct Mem {
    first_ms: i64,
    /// First seen within a session document's keep before the cut: resolved through its
    /// document.
    tail: bool,
    entry: Option<String>,
    /// Goal: the days completed, (day, hour, counted for the entry page).
    goal_days: Vec<(Bucket, Bucket, bool)>,
    /// Funnel: the progress.
    funnel: FunnelState,
    /// Segment: the session's whole state, as its document would hold it.
    state: SessionState,
}

/// The sessions a job keeps, and what it reads.
struct Pass {
    item: Item,
    cut_ms: i64,
    sessions: HashMap<String, Mem>,
    events: i64,
}

impl Pass {
    fn new(item: Item, cut_ms: i64) -> Self {
        Self { item, cut_ms, sessions: HashMap::new(), events: 0 }
    }

    fn item_id(&self) -> &str {
        match &self.item {
            Item::Goal(g) => &g.id,
            Item::Funnel(f) => &f.id,
            Item::Segment(s, _) => &s.id,
        }
    }

    /// One raw batch: updates its session and adds what to count now to `chunk` (nothing for
    /// a tail session of a goal or a funnel, whose figures wait for the resolve phase).
    fn add(&mut self, msg: &BatchMessage, chunk: &mut Chunk) {
        self.events += msg.events.len() as i64;
        let facts = match &self.item {
            Item::Goal(g) => FlushDeltas::default().add_batch(msg, &[g]),
            Item::Funnel(f) => FlushDeltas::default().add_batch_with(msg, &[], &[f]),
            Item::Segment(_, goals) => {
                let goals: Vec<&GoalDoc> = goals.iter().collect();
                FlushDeltas::default().add_batch(msg, &goals)
            }
        };
        let known = self.sessions.contains_key(&facts.session_id);
        // A batch that changes nothing in a session the live path has no document of yet is
        // not counted there either (only a segment counts such batches of known sessions).
        if facts.is_empty() && !(known && matches!(self.item, Item::Segment(..))) {
            return;
        }
        let keep = SESSION_KEEP.as_millis() as i64;
        if self.sessions.len() >= MAX_SESSIONS {
            self.forget_oldest(msg.received_at);
        }
        let key = facts.session_id.clone();
        let cut = self.cut_ms;
        let item_id = self.item_id().to_string();
        let resolves = !matches!(self.item, Item::Segment(..));
        let fresh = || Mem {
            first_ms: msg.received_at,
            tail: resolves && msg.received_at >= cut - keep,
            entry: None,
            goal_days: Vec::new(),
            funnel: FunnelState { id: item_id.clone(), p: None, pending: Vec::new(), resolved: true },
            state: SessionState::default(),
        };
        let mem = self.sessions.entry(key).or_insert_with(fresh);
        // The session document is gone by then: the live path starts the session afresh.
        if msg.received_at - mem.first_ms >= keep {
            *mem = fresh();
        }
        let mut effects = Vec::new();
        if let Item::Segment(seg, _) = &self.item {
            let fx = crate::sessions::transition(&mut mem.state, &[&facts]);
            let Some(start) = &mem.state.start else { return };
            if seg.matches(&start.filter_values()) {
                let lens = lens_site(&msg.site_id, &seg.id);
                chunk.effects.extend(fx.into_iter().map(|e| (lens.clone(), e)));
                chunk.lens_msgs.push(BatchMessage { site_id: lens, ..msg.clone() });
            }
            return;
        }
        apply(mem, &self.item, &facts, &mut effects);
        if !mem.tail {
            chunk.effects.extend(effects.into_iter().map(|e| (msg.site_id.clone(), e)));
        }
    }

    /// Drops the sessions past their keep at `now_ms`, and if that is not enough, the oldest
    /// half of the others that are not tail sessions.
    fn forget_oldest(&mut self, now_ms: i64) {
        let keep = SESSION_KEEP.as_millis() as i64;
        self.sessions.retain(|_, m| m.tail || now_ms - m.first_ms < keep);
        if self.sessions.len() >= MAX_SESSIONS {
            let mut firsts: Vec<i64> = self.sessions.values().filter(|m| !m.tail).map(|m| m.first_ms).collect();
            firsts.sort_unstable();
            if let Some(&cutoff) = firsts.get(firsts.len() / 2) {
                self.sessions.retain(|_, m| m.tail || m.first_ms > cutoff);
            }
            tracing::warn!(sessions = self.sessions.len(), "backfill: too many sessions at once; the oldest are forgotten");
        }
    }
}

/// What the session's batch means for the item, as the live path's session transition would
/// count it.
fn apply(mem: &mut Mem, item: &Item, facts: &SessionFacts, effects: &mut Vec<Effect>) {
    let entry_arrives = mem.entry.is_none() && facts.start.is_some();
    if let (true, Some(start)) = (entry_arrives, &facts.start) {
        mem.entry = Some(start.path.clone());
    }
    match item {
        Item::Goal(goal) => {
            if entry_arrives && let Some(entry) = &mem.entry {
                for (day, hour, attributed) in mem.goal_days.iter_mut().filter(|d| !d.2) {
                    *attributed = true;
                    effects.push(Effect::GoalEntry { day: *day, hour: *hour, goal: goal.id.clone(), entry: entry.clone() });
                }
            }
            let (day, hour) = (facts.buckets.day, facts.buckets.hour);
            if facts.goals.contains(&goal.id)
                && !mem.goal_days.iter().any(|d| d.0 == day)
                && mem.goal_days.len() < MAX_GOAL_DAYS
            {
                mem.goal_days.push((day, hour, mem.entry.is_some()));
                effects.push(Effect::Goal { day, hour, goal: goal.id.clone(), entry: mem.entry.clone() });
            }
        }
        Item::Funnel(funnel) => {
            if let Some(ff) = facts.funnels.iter().find(|f| f.id == funnel.id) {
                mem.funnel.advance(funnel.steps.len(), &ff.hits, effects);
            }
        }
        Item::Segment(..) => {}
    }
}

/// The effects a tail session's state before the cut counts, merged with its session document
/// (`doc`, if it still exists; changed to record what is counted).
fn resolve(mem: &Mem, item: &Item, cut_ms: i64, doc: Option<&mut SessionDoc>) -> Vec<Effect> {
    let mut effects = Vec::new();
    match item {
        Item::Goal(goal) => {
            let entry =
                mem.entry.clone().or_else(|| doc.as_ref().and_then(|d| d.state.start.as_ref()).map(|s| s.path.clone()));
            let mut doc = doc;
            for (day, hour, _) in &mem.goal_days {
                if let Some(d) = doc.as_deref_mut() {
                    if d.state.goals.iter().any(|g| g.day == *day && g.goal == goal.id) {
                        continue;
                    }
                    d.state.goals.push(GoalDone {
                        day: *day,
                        hour: *hour,
                        goal: goal.id.clone(),
                        attributed: entry.is_some(),
                    });
                }
                effects.push(Effect::Goal { day: *day, hour: *hour, goal: goal.id.clone(), entry: entry.clone() });
            }
        }
        Item::Funnel(funnel) => {
            let mut st = mem.funnel.clone();
            let reached = st.p.map_or(0, |p| p.reached as usize);
            effects.extend((1..=reached).map(|step| st.step_effect(step)));
            let Some(d) = doc else { return effects };
            let straddles = d.state.first_ms.unwrap_or(0) < cut_ms;
            match d.state.funnels.iter_mut().find(|s| s.id == funnel.id) {
                // Counted by the live path from its start, or resolved already: nothing before.
                Some(live) if live.resolved => {
                    if straddles && reached > 0 {
                        tracing::warn!(session = %d.id, "backfill: a resolved session had steps before the cut");
                    }
                    return if straddles { Vec::new() } else { effects };
                }
                Some(live) => {
                    st.advance(funnel.steps.len(), &live.pending, &mut effects);
                    *live = FunnelState { resolved: true, pending: Vec::new(), ..st };
                }
                // Resolved, even with nothing before the cut: the live path then counts what
                // comes (pending hits would wait for a next batch that may never come).
                None if straddles => d.state.funnels.push(FunnelState { resolved: true, ..st }),
                None => {}
            }
        }
        // Counted in full by the scan.
        Item::Segment(..) => {}
    }
    effects
}

impl Flusher {
    /// Runs backfill jobs until `cancel` fires: every two seconds, takes a job no one holds
    /// and runs a turn of it.
    pub async fn run_backfills(&self, backlog: Backlog, cancel: tokio_util::sync::CancellationToken) {
        while !cancel.is_cancelled() {
            match self.backfill_once(&backlog).await {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %Chain(&e), "backfill failed; retried later"),
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    /// Takes one job no one holds and runs a turn of it; `None` when there is none.
    pub async fn backfill_once(&self, backlog: &Backlog) -> Result<Option<(String, Turn)>, StepError> {
        let now = self.clock.now_ms();
        let coll = self.db.collection::<BackfillDoc>(c::BACKFILLS);
        // A handful of documents (one per item created in the last minutes): not a hot path.
        let open: Vec<BackfillDoc> = coll.find(doc! {"lease_until_ms": {"$lt": now}}).limit(20).await?.try_collect().await?;
        let mut waited = None;
        for job in open {
            let until = now + LEASE.as_millis() as i64;
            let taken = coll
                .update_one(
                    doc! {"_id": &job.id, "owner": &job.owner, "lease_until_ms": job.lease_until_ms},
                    doc! {"$set": {"owner": &*self.inst, "lease_until_ms": until}},
                )
                .await?;
            if taken.modified_count == 1 {
                let job = BackfillDoc { owner: self.inst.to_string(), lease_until_ms: until, ..job };
                let turn = self.backfill_turn(job.clone(), backlog).await?;
                if turn == Turn::Waiting {
                    // Let it go, so that the next turn (here or elsewhere) starts soon, and
                    // give the next job its turn: a job that waits never holds up the others.
                    coll.update_one(doc! {"_id": &job.id, "owner": &*self.inst}, doc! {"$set": {"lease_until_ms": 0_i64}})
                        .await?;
                    waited.get_or_insert((job.id, turn));
                    continue;
                }
                return Ok(Some((job.id, turn)));
            }
        }
        Ok(waited)
    }

    /// Runs `job` (held by this process) as far as it goes.
    async fn backfill_turn(&self, mut job: BackfillDoc, backlog: &Backlog) -> Result<Turn, StepError> {
        if job.kind == ItemKind::Import {
            return self.import_turn(job).await;
        }
        let coll = self.db.collection::<BackfillDoc>(c::BACKFILLS);
        let config: Option<SiteConfigDoc> =
            self.db.collection::<SiteConfigDoc>(c::SITE_CONFIG).find_one(doc! {"_id": &job.site_id}).await?;
        let item = config.as_ref().and_then(|cfg| match job.kind {
            ItemKind::Goal => cfg
                .goals
                .iter()
                .find(|g| g.id == job.item_id && g.is_live())
                .map(|g| Item::Goal(GoalDoc { created_ms: i64::MIN, backfilling: false, ..g.clone() })),
            ItemKind::Funnel => cfg
                .funnels
                .iter()
                .find(|f| f.id == job.item_id && f.is_live())
                .map(|f| Item::Funnel(FunnelDoc { created_ms: i64::MIN, backfilling: false, ..f.clone() })),
            // The goals as the live path had them: each from its creation on.
            ItemKind::Import => None,
            ItemKind::Segment => cfg.segments.iter().find(|s| s.id == job.item_id && s.is_live()).map(|s| {
                Item::Segment(SegmentDoc { created_ms: i64::MIN, backfilling: false, ..s.clone() }, cfg.goals.clone())
            }),
        });
        let Some(item) = item else {
            // Deleted, or never stored (the api failed between its two writes). Not before a
            // lease has passed since the creation: the api may still be storing the item.
            if self.clock.now_ms() - job.cut_ms > LEASE.as_millis() as i64 {
                coll.delete_one(doc! {"_id": &job.id}).await?;
                return Ok(Turn::Done);
            }
            return Ok(Turn::Waiting);
        };

        if job.chunk <= 0 {
            job.chunk = self.backfill_chunk as i64;
        }
        let chunk_size = job.chunk as usize;
        if job.phase == Phase::Wait {
            if self.clock.now_ms() < job.cut_ms + PUBLISH_MARGIN.as_millis() as i64 {
                return Ok(Turn::Waiting);
            }
            let wait_seq = match job.wait_seq {
                Some(s) => s,
                None => {
                    let s = backlog.last_seq().await.map_err(|e| WriteError::Decode(format!("stream: {e:#}")))?;
                    job.wait_seq = Some(s);
                    if !self.save_progress(&job).await? {
                        return Ok(Turn::LostLease);
                    }
                    s
                }
            };
            if !backlog.drained_to(wait_seq).await.map_err(|e| WriteError::Decode(format!("stream: {e:#}")))? {
                return Ok(Turn::Waiting);
            }
            job.phase = Phase::Scan;
            if !self.save_progress(&job).await? {
                return Ok(Turn::LostLease);
            }
        }

        let mut pass = Pass::new(item, job.cut_ms);
        let inst = job.instance();
        let keep = SESSION_KEEP.as_millis() as i64;
        // A resumed scan rebuilds the sessions' states at its cursor, a resolve its tail
        // sessions (first seen within a keep before the cut), by reading again from two keeps
        // before: every session alive there was first seen after that, and one first seen
        // within the first keep is known by its true first batch, so the tail sessions and
        // the chunks are those of the first attempt.
        let (from, write) = match job.phase {
            Phase::Scan if job.cursor_ms > 0 => (job.cursor_ms - 2 * keep, false),
            Phase::Scan => (0, true),
            _ => (job.cut_ms - 2 * keep, false),
        };
        let filter = doc! {"site_id": &job.site_id, "received_at": {"$gte": from, "$lt": job.cut_ms}};
        let mut cursor = self
            .db
            .collection::<RawBatchDoc>(c::RAW_BATCHES)
            .find(filter)
            .sort(doc! {"received_at": 1, "_id": 1})
            .batch_size(1000)
            .await?;
        let mut writing = write;
        let mut chunk = Chunk::default();
        let mut in_chunk = 0_usize;
        let mut last = (job.cursor_ms, job.cursor_id.clone());
        while let Some(raw) = cursor.try_next().await? {
            if !writing
                && job.phase == Phase::Scan
                && (raw.msg.received_at, raw.id.as_str()) > (job.cursor_ms, job.cursor_id.as_str())
            {
                writing = true;
            }
            if !writing || job.phase != Phase::Scan {
                pass.add(&raw.msg, &mut Chunk::default());
                continue;
            }
            pass.add(&raw.msg, &mut chunk);
            in_chunk += 1;
            last = (raw.msg.received_at, raw.id.clone());
            if in_chunk == chunk_size {
                job.seq += 1;
                self.write_backfill_chunk(&inst, job.seq, std::mem::take(&mut chunk)).await?;
                self.stop_if(super::Step::BackfillChunk(job.seq as usize))?;
                (job.cursor_ms, job.cursor_id) = last.clone();
                job.events = pass.events;
                in_chunk = 0;
                if !self.save_progress(&job).await? {
                    return Ok(Turn::LostLease);
                }
            }
        }
        if job.phase == Phase::Scan {
            if in_chunk > 0 {
                job.seq += 1;
                self.write_backfill_chunk(&inst, job.seq, chunk).await?;
                self.stop_if(super::Step::BackfillChunk(job.seq as usize))?;
                (job.cursor_ms, job.cursor_id) = last;
            }
            job.events = pass.events;
            job.phase = Phase::Resolve;
            job.cursor_id = String::new();
            if !self.save_progress(&job).await? {
                return Ok(Turn::LostLease);
            }
        }

        // Resolve: the tail sessions, in order of id, from the cursor on.
        let mut tails: Vec<(&String, &Mem)> =
            pass.sessions.iter().filter(|(sid, m)| m.tail && **sid > job.cursor_id).collect();
        tails.sort_by(|a, b| a.0.cmp(b.0));
        for group in tails.chunks(RESOLVE_SESSIONS.min(chunk_size)) {
            job.seq += 1;
            let id = FlushId { inst: inst.clone(), seq: job.seq };
            let effects = self.resolve_sessions(&id, &job, &pass, group).await?;
            let chunk =
                Chunk { effects: effects.into_iter().map(|e| (job.site_id.clone(), e)).collect(), lens_msgs: Vec::new() };
            self.write_backfill_chunk(&inst, job.seq, chunk).await?;
            self.stop_if(super::Step::BackfillChunk(job.seq as usize))?;
            job.cursor_id = group[group.len() - 1].0.clone();
            if !self.save_progress(&job).await? {
                return Ok(Turn::LostLease);
            }
        }

        // Done: the item counts as if it had existed from the start.
        self.end_backfill(&job).await?;
        coll.delete_one(doc! {"_id": &job.id, "owner": &*self.inst}).await?;
        tracing::info!(site = %job.site_id, item = %job.item_id, events = pass.events, chunks = job.seq, "backfill done");
        Ok(Turn::Done)
    }

    /// Writes a chunk to the rollups as flush (`inst`, `seq`): its effects, and a segment's
    /// batches with their visitor marks; hours past their keep and live minutes left out.
    async fn write_backfill_chunk(&self, inst: &str, seq: i64, chunk: Chunk) -> Result<(), StepError> {
        let id = FlushId { inst: inst.to_string(), seq };
        let mut report = FlushReport::default();
        let mut deltas = FlushDeltas::default();
        for (site, e) in &chunk.effects {
            deltas.add_effect(site, e);
        }
        for lm in &chunk.lens_msgs {
            deltas.add_batch(lm, &[]);
        }
        let lens_refs: Vec<&BatchMessage> = chunk.lens_msgs.iter().collect();
        self.add_marks(&id, &lens_refs, &mut deltas, &mut report).await?;
        let oldest_hour = (self.clock.now_ms() - HOUR_KEEP.as_millis() as i64) / 1000;
        deltas.docs.retain(|k, _| !matches!(k.bucket, Bucket::Hour(h) if h < oldest_hour) && k.part != Part::Live);
        self.write_rollups(&id, deltas, &mut report).await
    }

    /// The resolve chunk `id`: each session's document merged with its state before the cut
    /// (written only if it changes); returns the effects to count.
    async fn resolve_sessions(
        &self,
        id: &FlushId,
        job: &BackfillDoc,
        pass: &Pass,
        group: &[(&String, &Mem)],
    ) -> Result<Vec<Effect>, StepError> {
        let mems: BTreeMap<String, &Mem> = group.iter().map(|(sid, m)| (SessionDoc::id_of(&job.site_id, sid), *m)).collect();
        let mut effects: BTreeMap<String, Vec<Effect>> = BTreeMap::new();
        let now = self.now();
        let ids: Vec<String> = mems.keys().cloned().collect();
        self.write_rounds::<SessionDoc>(
            c::SESSIONS,
            ids,
            super::Step::SessionDocs,
            &mut FlushReport::default(),
            |sid, current, prunable| {
                let mem = mems[sid];
                let Some(stored) = current else {
                    effects.insert(sid.to_string(), resolve(mem, &pass.item, job.cut_ms, None));
                    return Ok(None);
                };
                if let Some(again) = stored_effects(stored, id) {
                    effects.insert(sid.to_string(), again);
                    return Ok(None);
                }
                let mut doc = stored.clone();
                let fx = resolve(mem, &pass.item, job.cut_ms, Some(&mut doc));
                if doc.state == stored.state {
                    effects.insert(sid.to_string(), fx);
                    return Ok(None);
                }
                let statement = record_session(&mut doc, id, now, prunable, fx.clone())?;
                effects.insert(sid.to_string(), fx);
                Ok(Some(statement))
            },
        )
        .await?;
        Ok(effects.into_values().flatten().collect())
    }

    /// Records the job's progress and renews its lease; false when another process holds it.
    pub(super) async fn save_progress(&self, job: &BackfillDoc) -> Result<bool, StepError> {
        let until = self.clock.now_ms() + LEASE.as_millis() as i64;
        let set = doc! {
            "phase": bson::to_bson(&job.phase)?,
            "wait_seq": job.wait_seq,
            "cursor_ms": job.cursor_ms,
            "cursor_id": &job.cursor_id,
            "seq": job.seq,
            "chunk": job.chunk,
            "events": job.events,
            "chunks": job.chunks,
            "lease_until_ms": until,
        };
        let r = self
            .db
            .collection::<Document>(c::BACKFILLS)
            .update_one(doc! {"_id": &job.id, "owner": &*self.inst}, doc! {"$set": set})
            .await?;
        Ok(r.matched_count == 1)
    }

    /// Clears the item's `backfilling` flag, by compare-and-set on the config's revision.
    async fn end_backfill(&self, job: &BackfillDoc) -> Result<(), StepError> {
        let configs = self.db.collection::<SiteConfigDoc>(c::SITE_CONFIG);
        for _ in 0..20 {
            let Some(mut config) = configs.find_one(doc! {"_id": &job.site_id}).await? else { return Ok(()) };
            let read_rev = config.rev;
            if !config.end_backfill(&job.item_id) {
                return Ok(());
            }
            let (filter, update) = config.write_statement(read_rev)?;
            match self.db.collection::<Document>(c::SITE_CONFIG).update_one(filter, update).upsert(true).await {
                Ok(_) => return Ok(()),
                Err(e) if shared::store::is_duplicate_key(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(WriteError::Decode(format!("site config {}: writes kept losing races", job.site_id)).into())
    }
}
