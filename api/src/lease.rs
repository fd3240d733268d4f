//! A lease on a scheduled job, so that of several api processes one runs it at a time.
//!
//! One document per job in [`c::LEASES`], `_id` = the job's name ([`LeaseDoc`]):
//!
//! 1. Take: an upsert on `{_id: job, until: {$lt: now}}` that sets this holder and
//!    `until = now + ttl`. It matches an expired lease and takes it over, or finds no document
//!    and inserts one. A lease that has not expired matches nothing, so the upsert tries to
//!    insert a second document with that `_id` and fails: someone else holds it.
//! 2. The holder runs the job for at most half the ttl (the caller bounds it with a timeout),
//!    so it is done before the lease can pass to another process.
//! 3. Release: delete the document, only if it is still this holder's at this `until`.
//!
//! A holder that dies keeps the lease until `until`; then the next taker takes it over.
//! `until` is written by the holder's clock and read by the others', so the processes' clocks
//! must agree to within the other half of the ttl (NTP does far better).

use std::{future::Future, sync::Arc, time::Duration};

use mongodb::{Collection, Database, bson::doc};
use shared::{
    clock::Clock,
    names::collections as c,
    store::{LeaseDoc, is_duplicate_key, lease_fields as f},
    telemetry::Chain,
};

/// What a run under the lease ([`Lease::run`]) came to.
#[derive(Debug, PartialEq)]
pub enum Run<T> {
    /// Another holder has the lease: nothing was run.
    Busy,
    /// The job ran to its end with this outcome.
    Done(T),
    /// The job was cut off after half the lease's ttl (step 2).
    CutOff,
}

/// One job's lease, as seen by one holder.
#[derive(Clone)]
pub struct Lease {
    leases: Collection<LeaseDoc>,
    job: &'static str,
    holder: String,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

/// A lease this holder took; give it to [`Lease::release`].
#[derive(Debug)]
#[must_use = "a lease not released blocks the job until it expires"]
pub struct Held {
    until: i64,
}

impl Lease {
    /// The lease of `job` for `holder` (unique per process), `ttl` long once taken.
    pub fn new(db: &Database, job: &'static str, holder: String, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self { leases: db.collection(c::LEASES), job, holder, ttl, clock }
    }

    /// Step 1: `Some` when this holder has the lease now, `None` when another holds it.
    pub async fn try_take(&self) -> Result<Option<Held>, mongodb::error::Error> {
        let now = self.clock.now_ms();
        let until = now.saturating_add(self.ttl.as_millis() as i64);
        let taken = self
            .leases
            .update_one(
                doc! {"_id": self.job, f::UNTIL: {"$lt": now}},
                doc! {"$set": {f::HOLDER: &self.holder, f::UNTIL: until}},
            )
            .upsert(true)
            .await;
        match taken {
            Ok(_) => Ok(Some(Held { until })),
            Err(e) if is_duplicate_key(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The job's name.
    pub fn job(&self) -> &'static str {
        self.job
    }

    /// Steps 1 to 3: `job` if this holder takes the lease, bounded by half the ttl. A lease
    /// that cannot be released is logged and left to expire.
    pub async fn run<T>(&self, job: impl Future<Output = T>) -> Result<Run<T>, mongodb::error::Error> {
        let Some(held) = self.try_take().await? else { return Ok(Run::Busy) };
        let out = match tokio::time::timeout(self.ttl / 2, job).await {
            Ok(v) => Run::Done(v),
            Err(_) => Run::CutOff,
        };
        if let Err(e) = self.release(held).await {
            tracing::warn!(job = self.job, error = %Chain(&e), "lease not released; it expires");
        }
        Ok(out)
    }

    /// Step 3.
    pub async fn release(&self, held: Held) -> Result<(), mongodb::error::Error> {
        self.leases.delete_one(doc! {"_id": self.job, f::HOLDER: &self.holder, f::UNTIL: held.until}).await?;
        Ok(())
    }
}
