//! The api's Prometheus figures.

use prometheus::Registry;
use shared::metrics::HttpMetrics;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub http: HttpMetrics,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let http = HttpMetrics::register(&registry)?;
        Ok(Self { registry, http })
    }
}
