//! The aggregator's Prometheus figures: what an operator scales aggregation on.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use shared::metrics::{HttpMetrics, LATENCY_BUCKETS};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub http: HttpMetrics,
    /// Messages handled, by outcome: `new`, `duplicate`, `retry`, `invalid`.
    pub messages: IntCounterVec,
    /// Time to write one chunk to MongoDB.
    pub flush_seconds: Histogram,
    /// Batches per flush.
    pub flush_batches: Histogram,
    /// Failed MongoDB writes (each fails a whole flush, which is redelivered).
    pub mongo_write_errors: IntCounter,
    /// Flushes left half done by a dead process and finished by this one.
    pub recoveries: IntCounter,
    /// Messages in the stream not yet acked by the aggregators (consumer lag).
    pub pending: IntGauge,
    /// Events in the batches counted.
    pub events: IntCounter,
    /// MongoDB commands sent by flushes.
    pub round_trips: IntCounter,
    /// Documents inserted or replaced by flushes.
    pub docs_written: IntCounter,
    /// Rollup writes that lost a race with another aggregator and were merged again.
    pub conflicts: IntCounter,
    /// Documents removed by the expiry job, by collection (a fixed set of names).
    pub expired: IntCounterVec,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let http = HttpMetrics::register(&registry)?;
        let messages = IntCounterVec::new(
            Opts::new("convertpulse_aggregator_messages_total", "Stream messages handled, by outcome"),
            &["outcome"],
        )?;
        let flush_seconds = Histogram::with_opts(
            HistogramOpts::new("convertpulse_aggregator_flush_seconds", "Time to write one chunk to MongoDB")
                .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let flush_batches = Histogram::with_opts(
            HistogramOpts::new("convertpulse_aggregator_flush_batches", "Batches per flush")
                .buckets(vec![1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0]),
        )?;
        let mongo_write_errors =
            IntCounter::new("convertpulse_aggregator_mongo_write_errors_total", "Failed MongoDB writes")?;
        let recoveries = IntCounter::new("convertpulse_aggregator_recoveries_total", "Half-done flushes finished")?;
        let pending = IntGauge::new("convertpulse_aggregator_consumer_pending", "Messages not yet acked (lag)")?;
        registry.register(Box::new(messages.clone()))?;
        registry.register(Box::new(flush_seconds.clone()))?;
        registry.register(Box::new(flush_batches.clone()))?;
        registry.register(Box::new(mongo_write_errors.clone()))?;
        registry.register(Box::new(recoveries.clone()))?;
        let events = IntCounter::new("convertpulse_aggregator_events_total", "Events in the batches counted")?;
        let round_trips =
            IntCounter::new("convertpulse_aggregator_mongo_round_trips_total", "MongoDB commands sent by flushes")?;
        let docs_written =
            IntCounter::new("convertpulse_aggregator_documents_written_total", "Documents inserted or replaced by flushes")?;
        let conflicts = IntCounter::new(
            "convertpulse_aggregator_rollup_conflicts_total",
            "Rollup writes that lost a race and were merged again",
        )?;
        registry.register(Box::new(pending.clone()))?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(round_trips.clone()))?;
        registry.register(Box::new(docs_written.clone()))?;
        registry.register(Box::new(conflicts.clone()))?;
        let expired = IntCounterVec::new(
            Opts::new(
                "convertpulse_aggregator_expired_documents_total",
                "Documents removed by the expiry job, by collection",
            ),
            &["collection"],
        )?;
        registry.register(Box::new(expired.clone()))?;
        Ok(Self {
            registry,
            http,
            messages,
            flush_seconds,
            flush_batches,
            mongo_write_errors,
            recoveries,
            pending,
            events,
            round_trips,
            docs_written,
            conflicts,
            expired,
        })
    }
}
