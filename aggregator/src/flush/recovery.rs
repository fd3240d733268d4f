//! Finishing flushes that their process left half done.
//!
//! Normally a redelivered message finds its batch stored by a flush that is still `applying`
//! past the lease, and the aggregator holding the message finishes that flush (steps 3 to 5,
//! under the flush's own id). The sweep is the backstop for batches whose messages will not
//! come back: once a minute it finishes every flush left `applying` for two leases.
//!
//! A short lease in [`c::RECOVERIES`] keeps two processes from recovering the same flush at
//! once. It is an economy, not what correctness rests on: the watermarks make a flush applied
//! twice at the same time count once.

use futures::TryStreamExt;
use mongodb::bson::{DateTime, Document, doc};
use shared::{
    message::BatchMessage,
    names::collections as c,
    store::{FlushRecord, FlushState, RawBatchDoc, flush_fields, raw_fields},
};

use super::{FlushId, FlushReport, Flusher, StepError};

/// Most flushes one sweep finishes.
const SWEEP_LIMIT: i64 = 100;

impl Flusher {
    /// Finishes flush `flush`. Returns false when another process holds its recovery lease
    /// (it is being finished there).
    pub async fn recover(&self, flush: &FlushId) -> Result<bool, StepError> {
        let id = flush.to_string();
        let now = self.clock.now_ms();
        let until = DateTime::from_millis(now + self.settings.lease.as_millis() as i64);
        let leases = self.db.collection::<Document>(c::RECOVERIES);
        let taken = leases
            .update_one(doc! {"_id": &id, "until": {"$lt": DateTime::from_millis(now)}}, doc! {"$set": {"until": until}})
            .upsert(true)
            .await;
        match taken {
            Ok(_) => {}
            Err(e) if shared::store::is_duplicate_key(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let record = self.db.collection::<FlushRecord>(c::FLUSHES).find_one(doc! {"_id": &id}).await?;
        if record.is_some_and(|r| r.state == FlushState::Applying) {
            let mut cursor = self.db.collection::<RawBatchDoc>(c::RAW_BATCHES).find(doc! {raw_fields::FLUSH: &id}).await?;
            let mut msgs: Vec<BatchMessage> = Vec::new();
            while let Some(raw) = cursor.try_next().await? {
                msgs.push(raw.msg);
            }
            tracing::warn!(flush = %id, batches = msgs.len(), "finishing a flush left half done");
            let refs: Vec<&BatchMessage> = msgs.iter().collect();
            self.apply(flush, &refs, &mut FlushReport::default()).await?;
        }
        leases.delete_one(doc! {"_id": &id}).await?;
        Ok(true)
    }

    /// Finishes every flush left applying for two leases; returns how many.
    pub async fn sweep(&self) -> Result<usize, StepError> {
        let cutoff = DateTime::from_millis(self.clock.now_ms() - 2 * self.settings.lease.as_millis() as i64);
        let mut cursor = self
            .db
            .collection::<FlushRecord>(c::FLUSHES)
            .find(doc! {flush_fields::STATE: flush_fields::APPLYING, flush_fields::CLAIMED_AT: {"$lt": cutoff}})
            .limit(SWEEP_LIMIT)
            .await?;
        let mut stale = Vec::new();
        while let Some(r) = cursor.try_next().await? {
            stale.push(r.id);
        }
        let mut done = 0;
        for id in stale {
            let Some(flush) = FlushId::parse(&id) else {
                tracing::error!(flush = %id, "flush record with an unreadable id");
                continue;
            };
            if self.recover(&flush).await? {
                done += 1;
            }
        }
        Ok(done)
    }
}
