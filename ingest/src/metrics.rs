//! Ingest's Prometheus figures.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};
use shared::{
    event::EVENT_TYPES,
    metrics::{HttpMetrics, LATENCY_BUCKETS},
};

use crate::audience::BotReason;

/// Every figure ingest exports.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub http: HttpMetrics,
    /// Events in accepted batches, by event type, in the order of [`EVENT_TYPES`].
    pub events_accepted: [IntCounter; EVENT_TYPES.len()],
    /// Batches from bots, answered 202 and published nowhere, by [`BotReason`] in its order.
    pub bot_batches: [IntCounter; BotReason::ALL.len()],
    /// Accepted batches.
    pub batches_accepted: IntCounter,
    /// Refused batches, by reason (the error code).
    pub batches_rejected: IntCounterVec,
    /// Publishes that failed or timed out.
    pub publish_failures: IntCounter,
    /// Batches answered 429 because their site holds its whole share of the event stream.
    pub site_share_full: IntCounter,
    /// Time from publish to the stream's ack.
    pub publish_latency: Histogram,
    /// Batches per stream message (group commit, see `publisher.rs`).
    pub publish_group: Histogram,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let http = HttpMetrics::register(&registry)?;
        let events_accepted = IntCounterVec::new(
            Opts::new("convertpulse_ingest_events_accepted_total", "Events in accepted batches, by type"),
            &["type"],
        )?;
        let batches_accepted =
            IntCounter::new("convertpulse_ingest_batches_accepted_total", "Batches acked by the event stream")?;
        let batches_rejected = IntCounterVec::new(
            Opts::new("convertpulse_ingest_batches_rejected_total", "Refused batches, by reason"),
            &["reason"],
        )?;
        let publish_failures =
            IntCounter::new("convertpulse_ingest_publish_failures_total", "Publishes not acked by the stream")?;
        let site_share_full = IntCounter::new(
            "convertpulse_ingest_site_share_full_total",
            "Batches refused (429) because their site holds its whole share of the event stream",
        )?;
        let publish_latency = Histogram::with_opts(
            HistogramOpts::new("convertpulse_ingest_publish_seconds", "Publish to stream ack")
                .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let publish_group = Histogram::with_opts(
            HistogramOpts::new("convertpulse_ingest_publish_group_batches", "Batches per stream message")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )?;
        let bot_batches = IntCounterVec::new(
            Opts::new("convertpulse_ingest_bot_batches_total", "Batches from bots, answered 202 and not counted, by reason"),
            &["reason"],
        )?;
        registry.register(Box::new(events_accepted.clone()))?;
        let by_type = EVENT_TYPES.map(|t| events_accepted.with_label_values(&[t]));
        registry.register(Box::new(bot_batches.clone()))?;
        let bot_batches = BotReason::ALL.map(|r| bot_batches.with_label_values(&[r.as_str()]));
        registry.register(Box::new(batches_accepted.clone()))?;
        registry.register(Box::new(batches_rejected.clone()))?;
        registry.register(Box::new(publish_failures.clone()))?;
        registry.register(Box::new(site_share_full.clone()))?;
        registry.register(Box::new(publish_latency.clone()))?;
        registry.register(Box::new(publish_group.clone()))?;
        Ok(Self {
            registry,
            http,
            events_accepted: by_type,
            bot_batches,
            batches_accepted,
            batches_rejected,
            publish_failures,
            site_share_full,
            publish_latency,
            publish_group,
        })
    }
}
