//! Deciding what to do with batches found stored already (their raw document existed): a
//! batch of a flush that is done is acked; of a flush that may still be running (claimed less
//! than a lease ago), retried later; of a flush whose process died or stalled, acked once that
//! flush is finished here ([`super::recovery`]).

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use shared::{
    message::BatchMessage,
    names::collections as c,
    store::{FlushRecord, FlushState, raw_fields},
};

use super::{FlushId, FlushReport, Flusher, StepError, Verdict};
use crate::writer::WriteError;

impl Flusher {
    /// Decides what to do with batches whose raw document already existed.
    pub(super) async fn settle_duplicates(
        &self,
        msgs: &[BatchMessage],
        dups: &HashSet<usize>,
        verdicts: &mut [Verdict],
        report: &mut FlushReport,
    ) -> Result<(), StepError> {
        let ids: Vec<String> = dups.iter().map(|i| msgs[*i].msg_id()).collect();
        let mut owner: HashMap<String, String> = HashMap::new();
        let mut cursor = self
            .db
            .collection::<Document>(c::RAW_BATCHES)
            .find(doc! {"_id": {"$in": &ids}})
            .projection(doc! {raw_fields::FLUSH: 1})
            .await?;
        report.cost.round_trips += 1;
        while let Some(d) = cursor.try_next().await? {
            let get =
                |k: &str| d.get_str(k).map(str::to_string).map_err(|e| WriteError::Decode(format!("raw batch {k}: {e}")));
            owner.insert(get("_id")?, get(raw_fields::FLUSH)?);
        }
        let flush_ids: Vec<&String> = owner.values().collect::<HashSet<_>>().into_iter().collect();
        let mut records: HashMap<String, FlushRecord> = HashMap::new();
        let mut cursor = self.db.collection::<FlushRecord>(c::FLUSHES).find(doc! {"_id": {"$in": flush_ids}}).await?;
        report.cost.round_trips += 1;
        while let Some(r) = cursor.try_next().await? {
            records.insert(r.id.clone(), r);
        }
        let mut recovered: HashMap<String, bool> = HashMap::new();
        let lease_ms = self.settings.lease.as_millis() as i64;
        for &i in dups {
            let record = owner.get(&msgs[i].msg_id()).and_then(|f| records.get(f));
            verdicts[i] = match record {
                // Expired: done a day ago at least. (A raw document gone too: past retention.)
                None => {
                    report.duplicates += 1;
                    Verdict::Ack
                }
                Some(r) if r.state == FlushState::Done => {
                    report.duplicates += 1;
                    Verdict::Ack
                }
                Some(r) => {
                    let age = self.clock.now_ms() - r.claimed_at.timestamp_millis();
                    if age < lease_ms {
                        // Its flush may still be running elsewhere.
                        Verdict::Retry(Duration::from_millis((lease_ms - age) as u64 + 100))
                    } else {
                        let done = match recovered.get(&r.id) {
                            Some(done) => *done,
                            None => {
                                let flush = FlushId::parse(&r.id)
                                    .ok_or_else(|| WriteError::Decode(format!("flush id {:?}", r.id)))?;
                                let done = self.recover(&flush).await?;
                                if done {
                                    report.recovered_flushes += 1;
                                }
                                recovered.insert(r.id.clone(), done);
                                done
                            }
                        };
                        if done { Verdict::Ack } else { Verdict::Retry(Duration::from_secs(1)) }
                    }
                }
            };
        }
        Ok(())
    }
}
