//! Scheduled jobs: a once-a-minute sweep that finishes flushes left half done whose messages
//! will not come back (the normal path is redelivery; this is the backstop).

use tokio_cron_scheduler::{Job, JobScheduler};

use crate::flush::Flusher;

/// Starts the scheduler; the caller shuts it down.
pub async fn start(flusher: Flusher) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new().await?;
    scheduler
        .add(Job::new_async("0 * * * * *", move |_id, _sched| {
            let flusher = flusher.clone();
            Box::pin(async move {
                match flusher.sweep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(flushes = n, "sweep recovered half-done flushes"),
                    Err(e) => tracing::warn!(error = %e, "recovery sweep failed"),
                }
            })
        })?)
        .await?;
    scheduler.start().await?;
    Ok(scheduler)
}
