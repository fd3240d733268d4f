//! Wiring: connect to MongoDB and NATS, prepare indexes and the sites bucket, serve the public
//! and the internal (metrics) listener.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream;
use shared::telemetry::Chain;
use shared::{names::collections as c, serve};

use crate::{
    config::Config,
    jobs::{self, Reconciler},
    keys::{self, KeyRegistry},
    router::{AppState, router},
};

/// Builds the state: connections, indexes, the bucket.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let db = shared::store::connect(&config.backends.mongodb_uri, &config.backends.mongodb_db, "convertpulse-api").await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match shared::indexes::ensure_indexes(&db, None).await {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %Chain(&*e), "mongodb not ready, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
    let nats = shared::bus::connect(&config.backends.nats, "convertpulse-api", Duration::from_secs(30)).await?;
    let js = jetstream::new(nats.clone());
    let keys =
        KeyRegistry::new(shared::bus::sites_bucket(&js, config.backends.nats.replicas).await?, db.collection(c::SITES))
            .with_purge_grace(config.key_purge_grace);
    AppState::new(config, db, nats, keys, shared::clock::system()).await
}

/// Runs the api until `shutdown` resolves; in-flight requests finish first. If either
/// listener fails, the other stops too and the error is returned.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let (addr, metrics_addr, limits) = (config.addr, config.metrics_addr, config.http.clone());
    let state = build_state(config).await?;
    // A first reconcile before serving, unless another api process is running one.
    let reconciler = Reconciler::new(state.keys.clone(), &state.db, keys::new_id()?, state.clock.clone());
    let first = reconciler.run_once().await.context("publishing site keys")?;
    jobs::log(&Ok(first));
    let mut scheduler = jobs::start(reconciler).await?;
    crate::reports::schedule(&scheduler, state.clone(), keys::new_id()?).await?;
    crate::alerts::schedule(&scheduler, state.clone(), keys::new_id()?).await?;
    match state.config.mail.as_ref() {
        Some(m) => tracing::info!(host = %m.smtp.host, port = m.smtp.port, tls = m.smtp.implicit_tls, "mail on"),
        None => tracing::warn!("mail off: CP_SMTP_URL is not set, so no invitation, report or alert is mailed"),
    }
    let sender = tokio::spawn(crate::mail::sender::run(state.mailer.clone()));
    let public = serve::bind(addr, "api").await?;
    let internal = serve::bind(metrics_addr, "api metrics").await?;

    let (registry, http_metrics) = (state.metrics.registry.clone(), state.metrics.http.clone());
    let mut servers = serve::Servers::spawn(public, router(state), internal, registry, &limits, http_metrics);
    let result = tokio::select! {
        () = shutdown => Ok(()),
        e = servers.failed() => Err(e),
    };
    servers.stop().await;
    sender.abort();
    let _ = scheduler.shutdown().await;
    tracing::info!("api stopped");
    result
}
