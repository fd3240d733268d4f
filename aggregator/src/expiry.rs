//! Removing what has expired (`shared::indexes::Expiry`): rollups past their retention, sessions,
//! visitor marks, done flush records, recovery leases and raw batches.
//!
//! Once a minute each aggregator finds, per collection, the documents whose date field is past
//! its keep — by the plain index on that field — and deletes them by `_id`, in rounds of
//! [`ROUND`] and at most [`MAX_ROUNDS`] rounds a run, so a run is bounded and a backlog (after
//! an outage, or the first run after an upgrade) is worked off over a few minutes. Several
//! aggregators may sweep at once: a document deleted twice is deleted once.
//!
//! This is the work TTL indexes would do; why a job of our own does it instead is in
//! `shared::indexes::Expiry`.

use futures::TryStreamExt;
use mongodb::{
    Database,
    bson::{Bson, DateTime, Document, doc},
};
use shared::indexes::Expiry;

/// Documents deleted per round.
const ROUND: i64 = 1000;
/// Rounds per collection and run.
const MAX_ROUNDS: usize = 50;

/// Removes what has expired at `now_ms`; returns how many documents each collection lost.
pub async fn sweep(db: &Database, plan: &[Expiry], now_ms: i64) -> Result<Vec<(&'static str, u64)>, mongodb::error::Error> {
    let mut out = Vec::with_capacity(plan.len());
    for e in plan {
        let cutoff = DateTime::from_millis(now_ms - e.after.as_millis() as i64);
        let collection = db.collection::<Document>(e.collection);
        let mut removed = 0;
        for _ in 0..MAX_ROUNDS {
            let expired = doc! {e.field: {"$lt": cutoff}};
            let ids: Vec<Bson> = collection
                .find(expired.clone())
                .projection(doc! {"_id": 1})
                .limit(ROUND)
                .await?
                .try_collect::<Vec<Document>>()
                .await?
                .into_iter()
                .filter_map(|d| d.get("_id").cloned())
                .collect();
            if ids.is_empty() {
                break;
            }
            let full = ids.len() as i64 == ROUND;
            let mut filter = expired;
            filter.insert("_id", doc! {"$in": ids});
            removed += collection.delete_many(filter).await?.deleted_count;
            if !full {
                break;
            }
        }
        out.push((e.collection, removed));
    }
    Ok(out)
}
