//! Aggregator settings, from environment variables.

use std::{net::SocketAddr, time::Duration};

use shared::{bus::StreamLimits, config as env, config::Backends};

#[derive(Debug, Clone)]
pub struct Config {
    /// `CP_AGGREGATOR_ADDR`: listen address of health and metrics, default `127.0.0.1:8082`.
    pub addr: SocketAddr,
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
    /// `CP_STREAM_MAX_BYTES`, `CP_STREAM_MAX_AGE_HOURS`: event stream limits.
    pub stream: StreamLimits,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let max_batches: usize = env::parse("CP_FLUSH_MAX_BATCHES", 500)?;
        let ack_wait: u64 = env::parse("CP_ACK_WAIT_SECS", 30)?;
        anyhow::ensure!(max_batches >= 1, "CP_FLUSH_MAX_BATCHES must be at least 1");
        anyhow::ensure!(ack_wait >= 2, "CP_ACK_WAIT_SECS must be at least 2");
        Ok(Self {
            addr: env::addr("CP_AGGREGATOR_ADDR", "127.0.0.1:8082")?,
            backends: Backends::from_env()?,
            max_batches,
            flush_interval: env::millis("CP_FLUSH_INTERVAL_MS", 50)?,
            ack_wait: Duration::from_secs(ack_wait),
            raw_retention: Duration::from_secs(24 * 3600 * env::parse::<u64>("CP_RAW_RETENTION_DAYS", 90)?),
            stream: StreamLimits::from_env()?,
        })
    }
}
