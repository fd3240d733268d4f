//! Wiring: connect to MongoDB and NATS, prepare indexes and the sites bucket, serve.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use async_nats::jetstream;
use shared::names::collections as c;
use tokio::net::TcpListener;

use crate::{
    config::Config,
    jobs,
    keys::KeyRegistry,
    metrics::Metrics,
    passwords,
    router::{AppState, router},
    throttle::LoginThrottle,
    tokens::Tokens,
};

/// Builds the state: connections, indexes, the bucket, and a first reconcile of the keys.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let db = shared::store::connect(&config.backends.mongodb_uri, &config.backends.mongodb_db, "convertpulse-api").await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match shared::store::ensure_indexes(&db, None).await {
            Ok(()) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %format!("{e:#}"), "mongodb not ready, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
    let nats = shared::bus::connect(&config.backends.nats, "convertpulse-api", Duration::from_secs(30)).await?;
    let js = jetstream::new(nats.clone());
    let keys = KeyRegistry::new(shared::bus::sites_bucket(&js, config.backends.nats.replicas).await?);
    let sites = db.collection(c::SITES);
    keys.reconcile(&sites).await.context("publishing site keys")?;
    let dummy_hash = passwords::hash("not a password anyone has".into(), config.bcrypt_cost)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(AppState {
        tokens: Arc::new(Tokens::new(&config.jwt_secret, config.jwt_ttl)),
        throttle: Arc::new(LoginThrottle::new(config.login_max_failures)),
        users: db.collection(c::USERS),
        sites,
        db,
        keys,
        dummy_hash: Arc::new(dummy_hash),
        metrics: Metrics::new().context("registering metrics")?,
        nats,
        config: Arc::new(config),
    })
}

/// Runs the api until `shutdown` resolves; in-flight requests finish first.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let addr = config.addr;
    let state = build_state(config).await?;
    let mut scheduler = jobs::start(state.keys.clone(), state.sites.clone()).await?;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving")?;
    let _ = scheduler.shutdown().await;
    tracing::info!("api stopped");
    Ok(())
}
