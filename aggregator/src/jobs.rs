//! Scheduled jobs, once a minute: the sweep that finishes flushes left half done whose
//! messages will not come back (the normal path is redelivery; this is the backstop), and the
//! expiry of what is past its keep ([`crate::expiry`]).

use mongodb::Database;
use shared::indexes::Expiry;
use shared::telemetry::Chain;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::{expiry, flush::Flusher, metrics::Metrics};

/// Starts the scheduler; the caller shuts it down.
pub async fn start(flusher: Flusher, db: Database, expiries: Vec<Expiry>, metrics: Metrics) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new().await?;
    scheduler
        .add(Job::new_async("0 * * * * *", move |_id, _sched| {
            let flusher = flusher.clone();
            Box::pin(async move {
                match flusher.sweep().await {
                    Ok(0) => {}
                    Ok(n) => tracing::warn!(flushes = n, "sweep recovered half-done flushes"),
                    Err(e) => tracing::warn!(error = %Chain(&e), "recovery sweep failed"),
                }
            })
        })?)
        .await?;
    scheduler
        .add(Job::new_async("30 * * * * *", move |_id, _sched| {
            let (db, expiries, metrics) = (db.clone(), expiries.clone(), metrics.clone());
            Box::pin(async move {
                match expiry::sweep(&db, &expiries, chrono::Utc::now().timestamp_millis()).await {
                    Ok(removed) => {
                        for (collection, n) in removed.into_iter().filter(|(_, n)| *n > 0) {
                            metrics.expired.with_label_values(&[collection]).inc_by(n);
                            tracing::debug!(collection, documents = n, "expired documents removed");
                        }
                    }
                    Err(e) => tracing::warn!(error = %Chain(&e), "expiry sweep failed"),
                }
            })
        })?)
        .await?;
    scheduler.start().await?;
    Ok(scheduler)
}
