//! Wiring: connect, prepare indexes, the stream and the consumer, then consume and serve
//! health until shutdown.

use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::{self, consumer::pull};
use shared::serve;
use shared::telemetry::Chain;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    consumer::{self, ChunkSettings},
    flush::{self, Flusher},
    jobs,
    metrics::Metrics,
    migrate,
    rollup::Capacities,
    router::{AppState, router},
};

/// Runs the aggregator until `shutdown` resolves; the chunk in hand is flushed and acked first.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let nats = shared::bus::connect(&config.backends.nats, "convertpulse-aggregator", Duration::from_secs(30)).await?;
    let js = jetstream::new(nats.clone());
    let stream = shared::bus::ensure_stream(&js, &config.stream, config.backends.nats.replicas).await?;
    let db =
        shared::store::connect(&config.backends.mongodb_uri, &config.backends.mongodb_db, "convertpulse-aggregator").await?;
    let metrics = Metrics::new().context("registering metrics")?;

    let public = serve::bind(config.addr, "aggregator").await?;
    let internal = serve::bind(config.metrics_addr, "aggregator metrics").await?;
    let cancel = CancellationToken::new();
    let app = router(AppState { nats: nats.clone(), db: db.clone(), metrics: metrics.clone() });
    let mut servers =
        serve::Servers::spawn(public, app, internal, metrics.registry.clone(), &config.http, metrics.http.clone());

    // MongoDB may come up after us: keep trying the indexes rather than exiting.
    loop {
        match shared::indexes::ensure_indexes(&db, Some(config.raw_retention)).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %Chain(&*e), "mongodb not ready, retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    let settings = flush::Settings {
        lease: config.ack_wait,
        caps: Capacities::with_keys(config.top_keys_per_day, config.top_keys_per_hour),
        day_retention: config.rollup_retention,
        compact_max_bytes: shared::rollup::siteday::COMPACT_MAX_BYTES,
    };
    let clock = shared::clock::system();
    // Before consuming: stats must never mix the old layout and the new.
    loop {
        match migrate::run(&db, &settings, clock.as_ref()).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %Chain(&*e), "rollup migration failed, retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }

    let consumer: jetstream::consumer::PullConsumer = stream
        .get_or_create_consumer(
            shared::names::CONSUMER,
            pull::Config {
                durable_name: Some(shared::names::CONSUMER.to_string()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: config.ack_wait,
                max_deliver: -1,
                max_ack_pending: 20_000,
                ..Default::default()
            },
        )
        .await
        .context("creating the aggregator consumer")?;

    let flusher = Flusher::new(db.clone(), settings, clock);
    tracing::info!(instance = flusher.instance(), "aggregator instance");
    let mut scheduler =
        jobs::start(flusher.clone(), db, shared::indexes::expiries(config.raw_retention), metrics.clone()).await?;
    let settings = ChunkSettings { max_batches: config.max_batches, max_wait: config.flush_interval };
    let lag = tokio::spawn(consumer::watch_lag(consumer.clone(), metrics.clone(), cancel.clone()));
    let backfills = {
        let (flusher, backlog, cancel) =
            (flusher.clone(), flush::backfill::Backlog::Stream(Box::new(js.clone())), cancel.clone());
        tokio::spawn(async move { flusher.run_backfills(backlog, cancel).await })
    };
    let mut work = tokio::spawn(consumer::run(consumer, flusher, metrics, settings, cancel.clone()));

    let mut shutdown = std::pin::pin!(shutdown);
    let result = tokio::select! {
        () = &mut shutdown => Ok(()),
        r = &mut work => Err(anyhow::anyhow!("consumer loop ended unexpectedly: {r:?}")),
        e = servers.failed() => Err(e),
    };
    cancel.cancel();
    if result.is_ok() {
        // The loop finishes the chunk in hand; bounded so that shutdown stays under 10 s.
        if tokio::time::timeout(Duration::from_secs(8), &mut work).await.is_err() {
            tracing::warn!("consumer did not stop in time");
        }
    }
    let _ = scheduler.shutdown().await;
    let _ = lag.await;
    // A backfill stopped halfway resumes from its last chunk, here or elsewhere.
    backfills.abort();
    servers.stop().await;
    tracing::info!("aggregator stopped");
    result
}
