//! Scheduled jobs: every 10 s, make the sites key-value bucket match MongoDB, repairing a
//! create, rotate or delete whose bucket write failed.

use mongodb::Collection;
use shared::store::SiteDoc;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::keys::KeyRegistry;

pub async fn start(keys: KeyRegistry, sites: Collection<SiteDoc>) -> anyhow::Result<JobScheduler> {
    let scheduler = JobScheduler::new().await?;
    scheduler
        .add(Job::new_async("*/10 * * * * *", move |_id, _sched| {
            let (keys, sites) = (keys.clone(), sites.clone());
            Box::pin(async move {
                match keys.reconcile(&sites).await {
                    Ok((0, 0)) => {}
                    Ok((published, revoked)) => tracing::warn!(published, revoked, "site keys reconciled"),
                    Err(e) => tracing::warn!(error = %format!("{e:#}"), "site key reconcile failed"),
                }
            })
        })?)
        .await?;
    scheduler.start().await?;
    Ok(scheduler)
}
