//! Ingest settings, from environment variables.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use shared::{backends::Backends, bus::StreamLimits, config as env, serve::ServeLimits};

use shared::client_ip::TrustedProxies;

/// Everything ingest can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// `CP_INGEST_ADDR`: listen address, default `127.0.0.1:8081`.
    pub addr: SocketAddr,
    /// `CP_METRICS_ADDR`: internal listen address of `/metrics`, default `127.0.0.1:9181`.
    pub metrics_addr: SocketAddr,
    /// `CP_HTTP_HEADER_TIMEOUT_MS`, `CP_HTTP_IDLE_TIMEOUT_MS`, `CP_HTTP_MAX_CONNECTIONS`.
    pub http: ServeLimits,
    /// `NATS_URL` (MongoDB settings are not used by ingest).
    pub backends: Backends,
    /// `CP_RATE_LIMIT_KEY_PER_SEC`: sustained batches per second per site key, default 1000.
    pub key_rate: f64,
    /// `CP_RATE_LIMIT_KEY_BURST`: burst per site key, default 2000.
    pub key_burst: f64,
    /// `CP_RATE_LIMIT_IP_PER_SEC`: sustained batches per second per client IP, default 20.
    pub ip_rate: f64,
    /// `CP_RATE_LIMIT_IP_BURST`: burst per client IP, default 60.
    pub ip_burst: f64,
    /// `CP_TRUSTED_PROXIES`: comma-separated IPs or CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// `CP_PUBLISH_TIMEOUT_MS`: how long to wait for the stream's ack before answering 503,
    /// default 1500.
    pub publish_timeout: Duration,
    /// `CP_PUBLISH_IN_FLIGHT`: publishes of one site awaiting their ack before its batches
    /// queue and go out grouped (see `publisher.rs`), default 1.
    pub publish_in_flight: usize,
    /// `CP_PUBLISH_GROUP_MAX`: most batches in one stream message, default 256; 1 turns
    /// grouping off (while an older aggregator still reads the stream).
    pub publish_group_max: usize,
    /// `CP_STREAM_MAX_BYTES`, `CP_STREAM_MAX_AGE_HOURS`: event stream limits.
    pub stream: StreamLimits,
    /// `CP_INGEST_WORKER_THREADS`: the runtime's worker threads, default one per two cores the
    /// process may use (at least one; see [`default_worker_threads`]).
    pub worker_threads: usize,
    /// `CP_GEOIP_DB`: path of the IP-to-country database (MaxMind DB format); unset, missing
    /// or unreadable means every country is `(unknown)`. `make run` points it at the package
    /// `deploy/local/deps.sh` installs.
    pub geoip_db: Option<PathBuf>,
}

/// Rates a limiter is given, per second: from one batch in about 17 minutes to a billion.
const MIN_RATE: f64 = 0.001;
const MAX_RATE: f64 = 1e9;

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let proxies = env::string("CP_TRUSTED_PROXIES", "");
        Ok(Self {
            addr: env::addr("CP_INGEST_ADDR", "127.0.0.1:8081")?,
            metrics_addr: env::addr("CP_METRICS_ADDR", "127.0.0.1:9181")?,
            http: ServeLimits::from_env()?,
            backends: Backends::from_env()?,
            key_rate: env::ranged("CP_RATE_LIMIT_KEY_PER_SEC", 1000.0, MIN_RATE, MAX_RATE)?,
            key_burst: env::ranged("CP_RATE_LIMIT_KEY_BURST", 2000.0, 1.0, MAX_RATE)?,
            ip_rate: env::ranged("CP_RATE_LIMIT_IP_PER_SEC", 20.0, MIN_RATE, MAX_RATE)?,
            ip_burst: env::ranged("CP_RATE_LIMIT_IP_BURST", 60.0, 1.0, MAX_RATE)?,
            trusted_proxies: TrustedProxies::parse(&proxies).context("CP_TRUSTED_PROXIES")?,
            // Below the 10 s a whole request may take (`router.rs`), so a slow stream is a 503
            // the tracker retries, not a cut connection.
            publish_timeout: env::millis("CP_PUBLISH_TIMEOUT_MS", 1500, 10, 9000)?,
            publish_in_flight: env::ranged("CP_PUBLISH_IN_FLIGHT", crate::publisher::DEFAULT_IN_FLIGHT, 1, 1024)?,
            publish_group_max: env::ranged("CP_PUBLISH_GROUP_MAX", crate::publisher::DEFAULT_GROUP_MAX, 1, 4096)?,
            stream: StreamLimits::from_env()?,
            worker_threads: env::ranged("CP_INGEST_WORKER_THREADS", default_worker_threads(), 1, 1024)?,
            geoip_db: Some(env::string("CP_GEOIP_DB", "")).filter(|p| !p.trim().is_empty()).map(PathBuf::from),
        })
    }
}

/// One worker thread per two cores the process may use (`available_parallelism` follows the
/// CPU affinity and a cgroup's CPU quota), rounded up. Ingest's work per batch is a few
/// microseconds between waits on the client and on the stream; a worker for every core mostly
/// adds wake-ups of one worker by another, and on a host it shares with NATS and its clients
/// those cost more than the parallelism gives. Measured with `make bench-wrk` on 2 cores
/// (docs/benchmarks.md): one worker instead of two, 16-24 against 23-37 µs of CPU per batch,
/// and more batches per second at every client concurrency tried.
pub fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(2))
}
