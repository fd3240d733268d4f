//! JetStream setup shared by the services: the event stream and the key-value buckets.
//!
//! Every service calls the `ensure_*` function it depends on at start, so the start order of
//! the processes does not matter.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{Context, kv, stream};

use crate::names;

/// Limits of the event stream. File storage, and when full it refuses new batches (ingest then
/// answers 503) rather than dropping stored ones that the aggregator has not seen yet.
#[derive(Debug, Clone)]
pub struct StreamLimits {
    /// Most bytes on disk (`CP_STREAM_MAX_BYTES`, default 1 GiB).
    pub max_bytes: i64,
    /// Oldest message kept (`CP_STREAM_MAX_AGE_HOURS`, default 7 days).
    pub max_age: Duration,
    /// Window in which a repeated `Nats-Msg-Id` is stored once.
    pub duplicate_window: Duration,
}

impl StreamLimits {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            max_bytes: crate::config::parse("CP_STREAM_MAX_BYTES", 1_i64 << 30)?,
            max_age: Duration::from_secs(3600 * crate::config::parse("CP_STREAM_MAX_AGE_HOURS", 24 * 7_u64)?),
            duplicate_window: Duration::from_secs(5 * 60),
        })
    }
}

/// Connects to NATS, retrying for up to `patience` so services may start before NATS.
pub async fn connect(url: &str, service: &str, patience: Duration) -> anyhow::Result<async_nats::Client> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let attempt = async_nats::ConnectOptions::new()
            .name(service)
            .connection_timeout(Duration::from_secs(2))
            .max_reconnects(None)
            .connect(url)
            .await;
        match attempt {
            Ok(client) => return Ok(client),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, url, "nats not reachable yet, retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("connecting to NATS at {url}")),
        }
    }
}

/// Creates the event stream if absent and returns it.
pub async fn ensure_stream(js: &Context, limits: &StreamLimits) -> anyhow::Result<stream::Stream> {
    js.get_or_create_stream(stream::Config {
        name: names::STREAM.to_string(),
        subjects: vec![names::SUBJECTS.to_string()],
        storage: stream::StorageType::File,
        // Work-queue retention: a message is gone once the aggregator acked it, so the disk
        // holds only what MongoDB does not have yet.
        retention: stream::RetentionPolicy::WorkQueue,
        discard: stream::DiscardPolicy::New,
        max_bytes: limits.max_bytes,
        max_age: limits.max_age,
        max_message_size: 256 * 1024,
        duplicate_window: limits.duplicate_window,
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating stream {}", names::STREAM))
}

/// Opens a key-value bucket, creating its backing stream first when absent.
///
/// The stream is created by hand, with the settings the client library would use, because the
/// library's own `create_key_value` first asks for account info in a form nats-server 2.9 does
/// not send.
async fn ensure_kv(js: &Context, bucket: &str, description: &str, max_age: Duration) -> anyhow::Result<kv::Store> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(description.to_string()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        max_message_size: -1,
        max_bytes: -1,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating key-value bucket {bucket}"))?;
    js.get_key_value(bucket).await.with_context(|| format!("opening key-value bucket {bucket}"))
}

/// The bucket mapping API keys to sites (written by the api, watched by ingest).
pub async fn sites_bucket(js: &Context) -> anyhow::Result<kv::Store> {
    ensure_kv(js, names::KV_SITES, "site API key -> site entry", Duration::ZERO).await
}

/// The bucket of daily visitor-hash salts. A salt is gone 48 h after it was written.
pub async fn salts_bucket(js: &Context) -> anyhow::Result<kv::Store> {
    ensure_kv(js, names::KV_SALTS, "UTC day -> visitor hash salt", Duration::from_secs(48 * 3600)).await
}
