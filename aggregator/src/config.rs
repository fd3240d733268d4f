//! Aggregator settings, from environment variables.

use std::{net::SocketAddr, time::Duration};

use shared::{backends::Backends, bus::StreamLimits, config as env, serve::ServeLimits};

#[derive(Debug, Clone)]
pub struct Config {
    /// `CP_AGGREGATOR_ADDR`: listen address of `/healthz` and `/readyz`, default
    /// `127.0.0.1:8082`.
    pub addr: SocketAddr,
    /// `CP_METRICS_ADDR`: internal listen address of `/metrics`, default `127.0.0.1:9182`.
    pub metrics_addr: SocketAddr,
    /// `CP_HTTP_HEADER_TIMEOUT_MS`, `CP_HTTP_IDLE_TIMEOUT_MS`, `CP_HTTP_MAX_CONNECTIONS`.
    pub http: ServeLimits,
    /// `NATS_URL`, `MONGODB_URI`, `MONGODB_DB`.
    pub backends: Backends,
    /// `CP_FLUSH_MAX_BATCHES`: most batches per flush, default 500.
    pub max_batches: usize,
    /// `CP_FLUSH_INTERVAL_MS`: longest wait for a chunk to fill, default 50 ms.
    pub flush_interval: Duration,
    /// `CP_ACK_WAIT_SECS`: redelivery delay of an unacked message, and the lease after which
    /// a half-done flush is recovered by another process; default 30 s.
    pub ack_wait: Duration,
    /// `CP_RAW_RETENTION_DAYS`: how long raw batches are kept, default 90.
    pub raw_retention: Duration,
    /// `CP_ROLLUP_RETENTION_DAYS`: how long daily rollups are kept after their day, default
    /// 400 (a year-long custom range and then some). Hourly rollups are kept 49 h.
    pub rollup_retention: Duration,
    /// `CP_TOP_KEYS_PER_DAY`: keys kept with exact counts per top list and day, default 1000
    /// (1,000, the contract's floor, to 1,000,000); the rest is folded into `(other)`.
    pub top_keys_per_day: usize,
    /// `CP_TOP_KEYS_PER_HOUR`: the same per hour, default 1000 (1,000 to 1,000,000).
    pub top_keys_per_hour: usize,
    /// `CP_STREAM_MAX_BYTES`, `CP_STREAM_MAX_AGE_HOURS`: event stream limits.
    pub stream: StreamLimits,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let max_batches: usize = env::ranged("CP_FLUSH_MAX_BATCHES", 500, 1, 100_000)?;
        let ack_wait: u64 = env::ranged("CP_ACK_WAIT_SECS", 30, 2, 3600)?;
        // The contract promises at least 1,000 keys with exact counts per list and day.
        let top_keys_per_day: usize = env::ranged("CP_TOP_KEYS_PER_DAY", 1000, 1000, 1_000_000)?;
        let top_keys_per_hour: usize = env::ranged("CP_TOP_KEYS_PER_HOUR", 1000, 1000, 1_000_000)?;
        let rollup_days: u64 = env::ranged("CP_ROLLUP_RETENTION_DAYS", 400, 1, 3650)?;
        Ok(Self {
            addr: env::addr("CP_AGGREGATOR_ADDR", "127.0.0.1:8082")?,
            metrics_addr: env::addr("CP_METRICS_ADDR", "127.0.0.1:9182")?,
            http: ServeLimits::from_env()?,
            backends: Backends::from_env()?,
            max_batches,
            flush_interval: env::millis("CP_FLUSH_INTERVAL_MS", 50, 1, 60_000)?,
            ack_wait: Duration::from_secs(ack_wait),
            raw_retention: Duration::from_secs(24 * 3600 * env::ranged::<u64>("CP_RAW_RETENTION_DAYS", 90, 1, 3650)?),
            rollup_retention: Duration::from_secs(24 * 3600 * rollup_days),
            top_keys_per_day,
            top_keys_per_hour,
            stream: StreamLimits::from_env()?,
        })
    }
}
