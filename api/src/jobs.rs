//! Scheduled jobs: every 10 s, make the sites key-value bucket match MongoDB, repairing a
//! create, rotate or delete whose bucket write failed, and purging old delete markers
//! (`keys` rules 5 and 6).
//!
//! Runs never overlap. Within a process, a tick that finds the previous run still going is
//! skipped. Across api processes, a run holds the lease [`LEASE_JOB`] ([`crate::lease`]) and
//! is cut off after [`RUN_LIMIT`], half the lease, so it has ended before the lease can pass
//! on. A run cut off leaves nothing half done: each repair is one race-free write.

use std::{sync::Arc, time::Duration};

use mongodb::Database;
use shared::clock::Clock;
use shared::telemetry::Chain;
use tokio::{sync::Mutex, time::Instant};
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::{
    keys::{KeyRegistry, Report},
    lease::Lease,
};

/// The reconcile's lease in [`shared::names::collections::LEASES`].
pub const LEASE_JOB: &str = "site-key-reconcile";
/// Longest reconcile run.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);
/// How long the lease is taken for: twice [`RUN_LIMIT`] (see `lease` step 2).
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// What one attempt to run the reconcile came to.
#[derive(Debug)]
pub enum Outcome {
    /// It ran: what it did, and when it held the lease (from after taking it to before
    /// releasing it).
    Ran { report: Report, started: Instant, ended: Instant },
    /// The previous run of this process is still going.
    Busy,
    /// Another process holds the lease.
    Leased,
}

/// The key reconcile, at most one run at a time across every api process.
#[derive(Clone)]
pub struct Reconciler {
    keys: KeyRegistry,
    lease: Lease,
    running: Arc<Mutex<()>>,
}

impl Reconciler {
    /// `holder` names this process in the lease (unique per process).
    pub fn new(keys: KeyRegistry, db: &Database, holder: String, clock: Arc<dyn Clock>) -> Self {
        Self { keys, lease: Lease::new(db, LEASE_JOB, holder, LEASE_TTL, clock), running: Arc::new(Mutex::new(())) }
    }

    /// Runs the reconcile once, unless a run is going here or elsewhere.
    pub async fn run_once(&self) -> anyhow::Result<Outcome> {
        let Ok(_running) = self.running.try_lock() else {
            return Ok(Outcome::Busy);
        };
        let Some(held) = self.lease.try_take().await? else {
            return Ok(Outcome::Leased);
        };
        let started = Instant::now();
        let run = tokio::time::timeout(RUN_LIMIT, self.keys.reconcile()).await;
        let ended = Instant::now();
        let released = self.lease.release(held).await;
        let report = run.map_err(|_| anyhow::anyhow!("the reconcile took longer than {RUN_LIMIT:?}; cut off"))??;
        released?;
        Ok(Outcome::Ran { report, started, ended })
    }
}

/// Logs what a run came to.
pub fn log(outcome: &anyhow::Result<Outcome>) {
    match outcome {
        Ok(Outcome::Ran { report, .. }) if report.is_quiet() => {}
        Ok(Outcome::Ran { report, .. }) => tracing::warn!(
            published = report.published,
            revoked = report.revoked,
            purged = report.purged,
            deferred = report.deferred,
            "site keys reconciled"
        ),
        Ok(Outcome::Busy) => tracing::info!("site key reconcile still running; tick skipped"),
        Ok(Outcome::Leased) => tracing::debug!("site key reconcile runs in another api process"),
        Err(e) => tracing::warn!(error = %Chain(e.as_ref()), "site key reconcile failed"),
    }
}

/// Starts the scheduler; the caller shuts it down.
pub async fn start(reconciler: Reconciler) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new().await?;
    scheduler
        .add(Job::new_async("*/10 * * * * *", move |_id, _sched| {
            let reconciler = reconciler.clone();
            Box::pin(async move { log(&reconciler.run_once().await) })
        })?)
        .await?;
    scheduler.start().await?;
    Ok(scheduler)
}
