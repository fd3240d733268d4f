//! The api's scheduled jobs (weekly reports, alerts): every tick of its cron expression each
//! api process tries the job's lease ([`Lease`]); the one that takes it runs the job, bounded
//! by half the lease. Here once: how a job is added, run and logged.

use std::future::Future;

use shared::telemetry::Chain;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::{
    error::ApiError,
    lease::{Lease, Run},
    state::AppState,
};

/// One tick: `job` (which returns how many mails it queued) if this process takes `lease`.
pub async fn run_leased(lease: &Lease, job: impl Future<Output = Result<usize, ApiError>>) -> Run<Result<usize, ApiError>> {
    let name = lease.job();
    let run = match lease.run(job).await {
        Ok(run) => run,
        Err(e) => {
            tracing::warn!(job = name, error = %Chain(&e), "lease not taken");
            return Run::Busy;
        }
    };
    match &run {
        Run::Busy | Run::Done(Ok(0)) => {}
        Run::Done(Ok(n)) => tracing::info!(job = name, queued = n, "mails queued"),
        Run::Done(Err(e)) => tracing::warn!(job = name, error = %Chain(e), "job failed; the next tick tries again"),
        Run::CutOff => tracing::warn!(job = name, "job cut off; the next tick goes on"),
    }
    run
}

/// Adds `job` to `scheduler`, run on `state` every `tick` (a cron expression, seconds first)
/// under `lease` ([`run_leased`]).
pub async fn add<F, Fut>(scheduler: &JobScheduler, tick: &str, lease: Lease, state: AppState, job: F) -> anyhow::Result<()>
where
    F: Fn(AppState) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<usize, ApiError>> + Send + 'static,
{
    scheduler
        .add(Job::new_async(tick, move |_id, _sched| {
            let (lease, job, state) = (lease.clone(), job.clone(), state.clone());
            Box::pin(async move {
                run_leased(&lease, job(state)).await;
            })
        })?)
        .await?;
    Ok(())
}
