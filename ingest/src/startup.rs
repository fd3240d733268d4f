//! Wiring: connect to NATS, prepare the stream and buckets, start the key watcher, serve the
//! public and the internal (metrics) listener.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use async_nats::jetstream;
use shared::telemetry::Chain;
use shared::{serve, site_share::Outcome};
use tokio::sync::watch;

use crate::{
    config::Config,
    limiter::RateLimiter,
    metrics::Metrics,
    publisher::Publisher,
    router::{AppState, Shared, router},
    salt::SaltCache,
    sites::SiteDirectory,
};

/// Runs ingest until `shutdown` resolves; in-flight requests finish first.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let nats = shared::bus::connect(&config.backends.nats, "convertpulse-ingest", Duration::from_secs(30)).await?;
    let js = jetstream::new(nats.clone());
    shared::bus::ensure_stream(&js, &config.stream, config.backends.nats.replicas).await?;
    let share_applied = apply_site_share(&js, &config).await;
    let sites_store = shared::bus::sites_bucket(&js, config.backends.nats.replicas).await?;
    let salts_store = shared::bus::salts_bucket(&js, config.backends.nats.replicas).await?;

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let sites = SiteDirectory::default();
    let mut follower = tokio::spawn(sites.clone().follow(sites_store, async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    let share_keeper =
        (!share_applied).then(|| tokio::spawn(keep_site_share(js.clone(), config.clone(), stop_tx.subscribe())));

    let metrics = Metrics::new().context("registering metrics")?;
    let state = AppState(Arc::new(Shared {
        sites,
        salts: SaltCache::new(salts_store),
        publisher: Publisher::new(
            nats.clone(),
            config.publish_timeout,
            config.publish_in_flight,
            config.publish_group_max,
            metrics.publish_group.clone(),
        ),
        key_limiter: Arc::new(RateLimiter::new(config.key_rate, config.key_burst)),
        ip_limiter: Arc::new(RateLimiter::new(config.ip_rate, config.ip_burst)),
        trusted: Arc::new(config.trusted_proxies.clone()),
        user_agents: crate::audience::UserAgents::new(),
        countries: crate::geo::Countries::open(config.geoip_db.as_deref()),
        metrics,
        clock: shared::clock::system(),
    }));

    let public = serve::bind(config.addr, "ingest").await?;
    let internal = serve::bind(config.metrics_addr, "ingest metrics").await?;
    let (registry, http_metrics) = (state.metrics.registry.clone(), state.metrics.http.clone());
    let mut servers = serve::Servers::spawn(public, router(state), internal, registry, &config.http, http_metrics);
    // The key watcher is supervised like the aggregator's consumer: it only returns when told
    // to stop, so its end (a panic) is the end of ingest, and the orchestrator starts a fresh
    // one, rather than serving on with a key table nobody keeps current (a deleted key would
    // keep working).
    let result = tokio::select! {
        () = shutdown => Ok(()),
        e = servers.failed() => Err(e),
        r = &mut follower => Err(anyhow::anyhow!("site key watcher ended unexpectedly: {r:?}")),
    };
    servers.stop().await;

    let _ = stop_tx.send(true);
    if !follower.is_finished() {
        let _ = follower.await;
    }
    if let Some(keeper) = share_keeper {
        let _ = keeper.await;
    }
    if let Err(e) = nats.drain().await {
        tracing::warn!(error = %Chain(&e), "draining nats");
    }
    tracing::info!("ingest stopped");
    result
}

/// Time between two attempts at giving the event stream the configured per-site share.
const SHARE_RETRY: Duration = Duration::from_secs(30);

/// Gives the event stream the configured per-site share ([`shared::site_share`]); true once it
/// has it. Ingest serves either way: without the share it answers as before (503 for everyone
/// once the stream is full), which is better than not at all.
async fn apply_site_share(js: &jetstream::Context, config: &Config) -> bool {
    let cap = config.stream.max_msgs_per_site;
    match shared::site_share::ensure(js, &config.stream).await {
        Ok(Outcome::Unchanged) => true,
        Ok(Outcome::Applied { from }) => {
            tracing::info!(cap, from, "event stream share per site applied");
            true
        }
        Ok(Outcome::Deferred { held }) => {
            tracing::warn!(cap, held, "event stream share per site not applied yet: a site holds more than half of it");
            false
        }
        Err(e) => {
            tracing::warn!(cap, error = %Chain(&*e), "event stream share per site not applied");
            false
        }
    }
}

/// Tries again every [`SHARE_RETRY`] until the stream has the share or ingest stops.
async fn keep_site_share(js: jetstream::Context, config: Config, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(SHARE_RETRY) => {}
        }
        if apply_site_share(&js, &config).await {
            return;
        }
    }
}
