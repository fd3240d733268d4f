//! The api's Prometheus figures.

use prometheus::{Histogram, HistogramOpts, Registry};
use shared::metrics::HttpMetrics;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub http: HttpMetrics,
    /// Rollup documents read per stats request: bounded by buckets × parts, never by traffic.
    pub stats_documents_read: Histogram,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let http = HttpMetrics::register(&registry)?;
        let stats_documents_read = Histogram::with_opts(
            HistogramOpts::new("convertpulse_api_stats_documents_read", "Rollup documents read per stats request")
                .buckets(vec![1.0, 10.0, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0]),
        )?;
        registry.register(Box::new(stats_documents_read.clone()))?;
        Ok(Self { registry, http, stats_documents_read })
    }
}
