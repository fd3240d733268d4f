//! Scheduled jobs: every 10 s, make the sites key-value bucket match MongoDB, repairing a
//! create, rotate or delete whose bucket write failed.

use tokio_cron_scheduler::{Job, JobScheduler};

use crate::keys::{KeyRegistry, Repairs};

/// Starts the scheduler; the caller shuts it down. The reconcile is race-free against the
/// site handlers (see `keys`), so overlapping runs are harmless.
pub async fn start(keys: KeyRegistry) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new().await?;
    scheduler
        .add(Job::new_async("*/10 * * * * *", move |_id, _sched| {
            let keys = keys.clone();
            Box::pin(async move {
                match keys.reconcile().await {
                    Ok(Repairs { published: 0, revoked: 0 }) => {}
                    Ok(Repairs { published, revoked }) => tracing::warn!(published, revoked, "site keys reconciled"),
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "site key reconcile failed"),
                }
            })
        })?)
        .await?;
    scheduler.start().await?;
    Ok(scheduler)
}
