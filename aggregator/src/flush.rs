//! Writing a chunk of batches to MongoDB so that every accepted event is counted exactly once,
//! even when the aggregator is killed halfway and the stream redelivers.
//!
//! Without multi-document transactions, the protocol is:
//! 1. Insert one raw document per batch, `_id` = `site:batch_id`, marked `applied: false` and
//!    claimed by this flush's id `F`. A batch whose raw document already exists is not new.
//! 2. Insert visitor marks for (site, day, visitor) and (site, hour, visitor); a mark that was
//!    inserted is a new unique visitor.
//! 3. Apply the rollup increments, one statement per rollup document, each guarded by a field
//!    `f_F`: the filter requires it absent and the update sets it, so applying `F` twice to a
//!    document is impossible.
//! 4. Mark the raw documents of `F` applied; then the messages are acked.
//! 5. Remove the `f_F` guards.
//!
//! When a redelivered batch finds its raw document still pending and its claim older than the
//! lease, the flush that claimed it died. Any aggregator then takes a lease on that flush and
//! replays steps 2 to 5 for it under the same id: guards already in place skip the documents
//! the dead flush had reached, so each increment lands once.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use chrono::Utc;
use futures::TryStreamExt;
use mongodb::{
    Database,
    bson::{self, Bson, DateTime, Document, doc},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::{
    message::BatchMessage,
    names::collections as c,
};

use crate::{
    rollup::{self, Bucket, Counters, IncValue, SiteDeltas},
    writer::{self, WriteError},
};

/// How long hourly rollups and hourly visitor marks are kept: the 24 h view needs 24 h.
const HOURLY_KEEP: Duration = Duration::from_secs(49 * 3600);
/// How long daily visitor marks are kept: a local day is at most 26 h long.
const DAILY_MARK_KEEP: Duration = Duration::from_secs(3 * 24 * 3600);

/// The raw document of one accepted batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawBatchDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(flatten)]
    pub msg: BatchMessage,
    /// Receive time as a date, for the retention TTL index.
    pub received: DateTime,
    pub applied: bool,
    pub flush: String,
    pub claimed_at: DateTime,
}

/// What to do with one message after a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its effects are in MongoDB.
    Ack,
    /// Not yet: deliver again after this long.
    Retry(Duration),
}

/// What a flush did, for metrics and the guard cleanup.
#[derive(Debug, Default)]
pub struct FlushReport {
    pub new_batches: usize,
    pub duplicates: usize,
    pub recovered_flushes: usize,
    pub cleanup: Option<Cleanup>,
}

/// Guards to remove once the flush's messages are acked.
#[derive(Debug)]
pub struct Cleanup {
    flush: String,
    series_ids: Vec<String>,
    top_ids: Vec<String>,
}

/// Writes chunks of batches.
#[derive(Clone)]
pub struct Flusher {
    db: Database,
    /// A claim older than this belongs to a dead flush.
    lease: Duration,
}

impl Flusher {
    pub fn new(db: Database, lease: Duration) -> Self {
        Self { db, lease }
    }

    /// Writes `msgs` (distinct batches) and says, per message, whether it may be acked.
    pub async fn flush(&self, msgs: &[BatchMessage]) -> Result<(Vec<Verdict>, FlushReport), WriteError> {
        let started = Instant::now();
        let flush_id = new_flush_id();
        let now = DateTime::now();
        let raw_docs = msgs
            .iter()
            .map(|m| {
                bson::to_document(&RawBatchDoc {
                    id: m.msg_id(),
                    msg: m.clone(),
                    received: DateTime::from_millis(m.received_at),
                    applied: false,
                    flush: flush_id.clone(),
                    claimed_at: now,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dup_indexes: HashSet<usize> = writer::insert_unordered(&self.db, c::RAW_BATCHES, raw_docs).await?.into_iter().collect();
        if started.elapsed() > self.lease / 2 {
            // Too slow to be sure nobody will start recovering this flush while it runs: stop
            // here, and let redelivery hand the claimed batches to the recovery path.
            return Err(WriteError::TooSlow(started.elapsed()));
        }

        let mut verdicts = vec![Verdict::Ack; msgs.len()];
        let mut report = FlushReport::default();
        let fresh: Vec<&BatchMessage> = msgs.iter().enumerate().filter(|(i, _)| !dup_indexes.contains(i)).map(|(_, m)| m).collect();
        report.new_batches = fresh.len();
        if !fresh.is_empty() {
            let cleanup = self.apply(&flush_id, &fresh, false).await?;
            report.cleanup = Some(cleanup);
        }
        if !dup_indexes.is_empty() {
            self.settle_duplicates(msgs, &dup_indexes, &mut verdicts, &mut report).await?;
        }
        Ok((verdicts, report))
    }

    /// Decides what to do with batches whose raw document already existed.
    async fn settle_duplicates(
        &self,
        msgs: &[BatchMessage],
        dups: &HashSet<usize>,
        verdicts: &mut [Verdict],
        report: &mut FlushReport,
    ) -> Result<(), WriteError> {
        let ids: Vec<String> = dups.iter().map(|i| msgs[*i].msg_id()).collect();
        let mut states: HashMap<String, (bool, String, DateTime)> = HashMap::new();
        let mut cursor = self
            .db
            .collection::<Document>(c::RAW_BATCHES)
            .find(doc! {"_id": {"$in": &ids}})
            .projection(doc! {"applied": 1, "flush": 1, "claimed_at": 1})
            .await?;
        while let Some(d) = cursor.try_next().await? {
            let id = d.get_str("_id").unwrap_or_default().to_string();
            let applied = d.get_bool("applied").unwrap_or(true);
            let flush = d.get_str("flush").unwrap_or_default().to_string();
            let claimed = d.get_datetime("claimed_at").copied().unwrap_or_else(|_| DateTime::now());
            states.insert(id, (applied, flush, claimed));
        }
        let mut recovered: HashMap<String, bool> = HashMap::new();
        for &i in dups {
            let id = msgs[i].msg_id();
            verdicts[i] = match states.get(&id) {
                Some((true, _, _)) => {
                    report.duplicates += 1;
                    Verdict::Ack
                }
                Some((false, flush, claimed)) => {
                    let age = Duration::from_millis((DateTime::now().timestamp_millis() - claimed.timestamp_millis()).max(0) as u64);
                    if age < self.lease {
                        // Its flush may still be running elsewhere.
                        Verdict::Retry(self.lease - age + Duration::from_millis(100))
                    } else {
                        let done = match recovered.get(flush) {
                            Some(done) => *done,
                            None => {
                                let done = self.recover(flush).await?;
                                if done {
                                    report.recovered_flushes += 1;
                                }
                                recovered.insert(flush.clone(), done);
                                done
                            }
                        };
                        if done { Verdict::Ack } else { Verdict::Retry(Duration::from_secs(1)) }
                    }
                }
                // Expired by retention between the insert and the read: nothing left to count.
                None => Verdict::Ack,
            };
        }
        Ok(())
    }

    /// Finishes flush `flush_id`, left half done by a dead process. Returns false when another
    /// process holds the recovery lease.
    pub async fn recover(&self, flush_id: &str) -> Result<bool, WriteError> {
        let now = DateTime::now();
        let until = DateTime::from_millis(now.timestamp_millis() + self.lease.as_millis() as i64);
        let leases = self.db.collection::<Document>(c::RECOVERIES);
        let taken = leases
            .update_one(doc! {"_id": flush_id, "until": {"$lt": now}}, doc! {"$set": {"until": until}})
            .upsert(true)
            .await;
        match taken {
            Ok(_) => {}
            Err(e) if is_duplicate_key(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let mut cursor = self
            .db
            .collection::<RawBatchDoc>(c::RAW_BATCHES)
            .find(doc! {"flush": flush_id, "applied": false})
            .await?;
        let mut msgs = Vec::new();
        while let Some(raw) = cursor.try_next().await? {
            msgs.push(raw.msg);
        }
        if !msgs.is_empty() {
            tracing::warn!(flush = flush_id, batches = msgs.len(), "recovering a flush left half done");
            let refs: Vec<&BatchMessage> = msgs.iter().collect();
            let cleanup = self.apply(flush_id, &refs, true).await?;
            self.cleanup(cleanup).await?;
        }
        leases.delete_one(doc! {"_id": flush_id}).await?;
        Ok(true)
    }

    /// Steps 2 to 4 of the protocol for the batches claimed by `flush_id`.
    async fn apply(&self, flush_id: &str, msgs: &[&BatchMessage], recovering: bool) -> Result<Cleanup, WriteError> {
        let guard = guard_field(flush_id);
        let mut per_site: BTreeMap<&str, SiteDeltas> = BTreeMap::new();
        for m in msgs {
            rollup::add_batch(per_site.entry(m.site_id.as_str()).or_default(), m);
        }
        for (site, bucket) in self.new_visitor_marks(flush_id, msgs, recovering).await? {
            per_site.entry(site).or_default().series.entry(bucket).or_default().visitors += 1;
        }

        let mut series_stmts = Vec::new();
        let mut top_stmts = Vec::new();
        let now_ms = Utc::now().timestamp_millis();
        for (site, deltas) in &per_site {
            for (bucket, counters) in &deltas.series {
                series_stmts.push(series_statement(site, bucket, counters, &guard, now_ms));
            }
            for (key, delta) in &deltas.tops {
                top_stmts.push(top_statement(site, key, delta, &guard, now_ms));
            }
        }
        // Top lists first, then the series: a reader who sees a batch in the summary (what the
        // dashboard and freshness checks look at) also sees it in the top lists.
        let top_ids = self.apply_guarded(c::TOP_ROLLUPS, top_stmts, &guard).await?;
        let series_ids = self.apply_guarded(c::ROLLUPS, series_stmts, &guard).await?;
        self.db
            .collection::<Document>(c::RAW_BATCHES)
            .update_many(doc! {"flush": flush_id, "applied": false}, doc! {"$set": {"applied": true}})
            .await?;
        Ok(Cleanup { flush: flush_id.to_string(), series_ids, top_ids })
    }

    /// Inserts the visitor marks of `msgs`; returns (site, bucket) once per mark that is new for
    /// this flush.
    async fn new_visitor_marks<'m>(
        &self,
        flush_id: &str,
        msgs: &[&'m BatchMessage],
        recovering: bool,
    ) -> Result<Vec<(&'m str, Bucket)>, WriteError> {
        let now_ms = Utc::now().timestamp_millis();
        let mut seen = HashSet::new();
        let mut marks: Vec<(String, &'m str, Bucket)> = Vec::new();
        let mut docs = Vec::new();
        for m in msgs {
            let (day, hour) = rollup::buckets_of(m);
            for bucket in [day, hour] {
                let id = format!("{}|{}|{}", m.site_id, bucket.id_part(), m.visitor);
                if !seen.insert(id.clone()) {
                    continue;
                }
                let mut d = doc! {"_id": &id, "site_id": &m.site_id, "v": &m.visitor, "f": flush_id};
                match &bucket {
                    Bucket::Day(day) => {
                        d.insert("day", day.as_str());
                        d.insert("expire_at", DateTime::from_millis(now_ms + DAILY_MARK_KEEP.as_millis() as i64));
                    }
                    Bucket::Hour(h) => {
                        d.insert("hour", *h);
                        d.insert("expire_at", DateTime::from_millis(h * 1000 + HOURLY_KEEP.as_millis() as i64));
                    }
                }
                docs.push(d);
                marks.push((id, m.site_id.as_str(), bucket));
            }
        }
        let dups: HashSet<usize> = writer::insert_unordered(&self.db, c::VISITOR_MARKS, docs).await?.into_iter().collect();
        let mut ours: HashSet<String> = HashSet::new();
        if recovering && !dups.is_empty() {
            // A mark inserted by the dead run of this same flush is still new for it.
            let ids: Vec<&str> = dups.iter().map(|i| marks[*i].0.as_str()).collect();
            let mut cursor = self
                .db
                .collection::<Document>(c::VISITOR_MARKS)
                .find(doc! {"_id": {"$in": ids}, "f": flush_id})
                .projection(doc! {"_id": 1})
                .await?;
            while let Some(d) = cursor.try_next().await? {
                ours.insert(d.get_str("_id").unwrap_or_default().to_string());
            }
        }
        Ok(marks
            .into_iter()
            .enumerate()
            .filter(|(i, (id, _, _))| !dups.contains(i) || ours.contains(id))
            .map(|(_, (_, site, bucket))| (site, bucket))
            .collect())
    }

    /// Runs guarded upserts until each has either applied or is found already applied. A
    /// duplicate-key answer means the guard filter did not match an existing document: either
    /// this flush already reached it, or a concurrent upsert raced us and it must be retried.
    async fn apply_guarded(&self, collection: &str, statements: Vec<Document>, guard: &str) -> Result<Vec<String>, WriteError> {
        let ids: Vec<String> = statements
            .iter()
            .map(|s| s.get_document("q").ok().and_then(|q| q.get_str("_id").ok()).unwrap_or_default().to_string())
            .collect();
        let mut pending = statements;
        for _ in 0..5 {
            let dups = writer::update_unordered(&self.db, collection, pending.clone()).await?;
            if dups.is_empty() {
                return Ok(ids);
            }
            let dup_ids: Vec<String> = dups
                .iter()
                .filter_map(|i| pending[*i].get_document("q").ok().and_then(|q| q.get_str("_id").ok()).map(str::to_string))
                .collect();
            let mut applied = HashSet::new();
            let mut cursor = self
                .db
                .collection::<Document>(collection)
                .find(doc! {"_id": {"$in": &dup_ids}, guard: {"$exists": true}})
                .projection(doc! {"_id": 1})
                .await?;
            while let Some(d) = cursor.try_next().await? {
                applied.insert(d.get_str("_id").unwrap_or_default().to_string());
            }
            pending = dups
                .into_iter()
                .map(|i| pending[i].clone())
                .filter(|s| {
                    let id = s.get_document("q").ok().and_then(|q| q.get_str("_id").ok()).unwrap_or_default();
                    !applied.contains(id)
                })
                .collect();
            if pending.is_empty() {
                return Ok(ids);
            }
        }
        Err(WriteError::Statement {
            collection: collection.to_string(),
            code: 11000,
            message: "guarded upserts kept colliding".to_string(),
        })
    }

    /// Step 5: removes the guards of a finished flush.
    pub async fn cleanup(&self, cleanup: Cleanup) -> Result<(), WriteError> {
        let guard = guard_field(&cleanup.flush);
        for (collection, ids) in [(c::ROLLUPS, cleanup.series_ids), (c::TOP_ROLLUPS, cleanup.top_ids)] {
            for chunk in ids.chunks(1000) {
                self.db
                    .collection::<Document>(collection)
                    .update_many(doc! {"_id": {"$in": chunk}}, doc! {"$unset": {&guard: ""}})
                    .await?;
            }
        }
        Ok(())
    }

    /// Recovers every flush whose claim is older than twice the lease: a backstop for batches
    /// whose messages will not be redelivered (for example, the stream was purged).
    pub async fn sweep(&self) -> Result<usize, WriteError> {
        let cutoff = DateTime::from_millis(DateTime::now().timestamp_millis() - 2 * self.lease.as_millis() as i64);
        let pipeline = vec![
            doc! {"$match": {"applied": false, "claimed_at": {"$lt": cutoff}}},
            doc! {"$group": {"_id": "$flush"}},
            doc! {"$limit": 100},
        ];
        let mut cursor = self.db.collection::<Document>(c::RAW_BATCHES).aggregate(pipeline).await?;
        let mut flushes = Vec::new();
        while let Some(d) = cursor.try_next().await? {
            if let Some(Bson::String(f)) = d.get("_id") {
                flushes.push(f.clone());
            }
        }
        let mut done = 0;
        for f in &flushes {
            if self.recover(f).await? {
                done += 1;
            }
        }
        Ok(done)
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => e.to_string().contains("E11000") || e.to_string().contains("UNIQUE constraint"),
    }
}

fn new_flush_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = (Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64).to_be_bytes();
    }
    hex::encode(bytes)
}

fn guard_field(flush_id: &str) -> String {
    format!("f_{flush_id}")
}

fn bucket_fields(d: &mut Document, bucket: &Bucket, now_ms: i64) {
    match bucket {
        Bucket::Day(day) => {
            d.insert("day", day.as_str());
        }
        Bucket::Hour(h) => {
            d.insert("hour", *h);
            d.insert("expire_at", DateTime::from_millis((h * 1000).max(now_ms - 3_600_000) + HOURLY_KEEP.as_millis() as i64));
        }
    }
}

fn inc_doc(pairs: impl IntoIterator<Item = (&'static str, IncValue)>) -> Document {
    let mut inc = Document::new();
    for (k, v) in pairs {
        match v {
            IncValue::Int(i) => inc.insert(k, i),
            IncValue::Float(f) => inc.insert(k, f),
        };
    }
    inc
}

fn series_statement(site: &str, bucket: &Bucket, counters: &Counters, guard: &str, now_ms: i64) -> Document {
    let id = format!("{site}|{}", bucket.id_part());
    let mut on_insert = doc! {"site_id": site};
    bucket_fields(&mut on_insert, bucket, now_ms);
    doc! {
        "q": {"_id": id, guard: {"$exists": false}},
        "u": {"$inc": inc_doc(counters.increments()), "$set": {guard: 1}, "$setOnInsert": on_insert},
        "upsert": true,
    }
}

fn top_statement(site: &str, key: &rollup::TopKey, delta: &rollup::TopDelta, guard: &str, now_ms: i64) -> Document {
    let key_hash = hex::encode(&Sha256::digest(key.key.as_bytes())[..12]);
    let id = format!("{site}|{}|{}|{key_hash}", key.bucket.id_part(), key.dim.as_str());
    let mut on_insert = doc! {"site_id": site, "dim": key.dim.as_str(), "key": &key.key};
    bucket_fields(&mut on_insert, &key.bucket, now_ms);
    let mut update = doc! {"$inc": {"count": delta.count}, "$set": {guard: 1}, "$setOnInsert": on_insert};
    if let Some(text) = &delta.text {
        update.insert("$max", doc! {"text": text});
    }
    doc! {"q": {"_id": id, guard: {"$exists": false}}, "u": update, "upsert": true}
}
