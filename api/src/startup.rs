//! Wiring: connect to MongoDB and NATS, prepare indexes and the sites bucket, serve the public
//! and the internal (metrics) listener.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use async_nats::jetstream;
use shared::telemetry::Chain;
use shared::{names::collections as c, serve};

use crate::{
    config::Config,
    jobs::{self, Reconciler},
    keys::{self, KeyRegistry},
    metrics::Metrics,
    passwords::{self, Hasher},
    revocation::TokenVersions,
    router::{AppState, router},
    throttle::{self, LoginThrottle, Throttle},
    tokens::Tokens,
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
    let sites = db.collection(c::SITES);
    let keys = KeyRegistry::new(shared::bus::sites_bucket(&js, config.backends.nats.replicas).await?, sites.clone())
        .with_purge_grace(config.key_purge_grace);
    let dummy_hash =
        passwords::hash("not a password anyone has".into(), config.bcrypt_cost).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(AppState {
        tokens: Arc::new(Tokens::new(&config.jwt_secret, config.jwt_ttl)),
        login_throttle: Arc::new(LoginThrottle::new(
            config.login_max_failures,
            config.login_max_failures_per_ip,
            config.login_throttle_keys,
        )),
        token_versions: Arc::new(TokenVersions::new(db.collection(c::USERS))),
        register_throttle: Arc::new(Throttle::new(
            config.register_max_per_ip,
            throttle::REGISTER_WINDOW,
            throttle::CAPACITY,
        )),
        public_throttle: Arc::new(Throttle::new(
            config.public_stats_per_min.max(1),
            std::time::Duration::from_secs(60),
            throttle::CAPACITY,
        )),
        hasher: Hasher::new(config.bcrypt_cost, config.bcrypt_concurrency),
        users: db.collection(c::USERS),
        sites,
        site_config: db.collection(c::SITE_CONFIG),
        db,
        keys,
        dummy_hash: Arc::new(dummy_hash),
        metrics: Metrics::new().context("registering metrics")?,
        nats,
        config: Arc::new(config),
    })
}

/// Runs the api until `shutdown` resolves; in-flight requests finish first. If either
/// listener fails, the other stops too and the error is returned.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let (addr, metrics_addr, limits) = (config.addr, config.metrics_addr, config.http.clone());
    let state = build_state(config).await?;
    // A first reconcile before serving, unless another api process is running one.
    let reconciler = Reconciler::new(state.keys.clone(), &state.db, keys::new_id()?, shared::clock::system());
    let first = reconciler.run_once().await.context("publishing site keys")?;
    jobs::log(&Ok(first));
    let mut scheduler = jobs::start(reconciler).await?;
    let public = serve::bind(addr, "api").await?;
    let internal = serve::bind(metrics_addr, "api metrics").await?;

    let (registry, http_metrics) = (state.metrics.registry.clone(), state.metrics.http.clone());
    let mut servers = serve::Servers::spawn(public, router(state), internal, registry, &limits, http_metrics);
    let result = tokio::select! {
        () = shutdown => Ok(()),
        e = servers.failed() => Err(e),
    };
    servers.stop().await;
    let _ = scheduler.shutdown().await;
    tracing::info!("api stopped");
    result
}
