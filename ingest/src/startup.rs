//! Wiring: connect to NATS, prepare the stream and buckets, start the key watcher, serve the
//! public and the internal (metrics) listener.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use async_nats::jetstream;
use shared::serve;
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
    let sites_store = shared::bus::sites_bucket(&js, config.backends.nats.replicas).await?;
    let salts_store = shared::bus::salts_bucket(&js, config.backends.nats.replicas).await?;

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let sites = SiteDirectory::default();
    let follower = tokio::spawn(sites.clone().follow(sites_store, async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));

    let metrics = Metrics::new().context("registering metrics")?;
    let state = AppState(Arc::new(Shared {
        sites,
        salts: SaltCache::new(salts_store),
        publisher: Publisher::new(nats.clone(), config.publish_timeout, config.publish_in_flight, config.publish_group_max, metrics.publish_group.clone()),
        key_limiter: Arc::new(RateLimiter::new(config.key_rate, config.key_burst)),
        ip_limiter: Arc::new(RateLimiter::new(config.ip_rate, config.ip_burst)),
        trusted: Arc::new(config.trusted_proxies.clone()),
        user_agents: crate::audience::UserAgents::new(),
        countries: crate::geo::Countries::open(config.geoip_db.as_deref()),
        metrics,
        nats: nats.clone(),
    }));

    let public = serve::bind(config.addr, "ingest").await?;
    let internal = serve::bind(config.metrics_addr, "ingest metrics").await?;
    let (registry, http_metrics) = (state.metrics.registry.clone(), state.metrics.http.clone());
    let mut servers = serve::Servers::spawn(public, router(state), internal, registry, &config.http, http_metrics);
    let result = tokio::select! {
        () = shutdown => Ok(()),
        e = servers.failed() => Err(e),
    };
    servers.stop().await;

    let _ = stop_tx.send(true);
    let _ = follower.await;
    if let Err(e) = nats.drain().await {
        tracing::warn!(error = %e, "draining nats");
    }
    tracing::info!("ingest stopped");
    result
}
