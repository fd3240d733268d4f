//! Prometheus helpers shared by the services: a registry per process, HTTP request metrics,
//! and rendering the text exposition format.

use crate::telemetry::Chain;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Latency buckets in seconds, from 250 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Request counter and latency histogram per route template, method and status, and the
/// public listener's connections.
#[derive(Clone)]
pub struct HttpMetrics {
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    /// Connections open on the public listener.
    pub connections_open: IntGauge,
    /// Connections closed at once because the listener was at its connection cap.
    pub connections_refused: IntCounter,
}

impl HttpMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new("convertpulse_http_requests_total", "HTTP requests by route, method and status"),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("convertpulse_http_request_duration_seconds", "HTTP request latency")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method", "status"],
        )?;
        let connections_open =
            IntGauge::new("convertpulse_http_connections_open", "Connections open on the public listener")?;
        let connections_refused = IntCounter::new(
            "convertpulse_http_connections_refused_total",
            "Connections closed at once because the public listener was at its connection cap",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(connections_open.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        Ok(Self { requests, latency, connections_open, connections_refused })
    }

    /// `method` must come from a closed set (see [`method_label`]).
    pub fn observe(&self, route: &str, method: &'static str, status: axum::http::StatusCode, seconds: f64) {
        let labels = [route, method, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }
}

/// The label of an HTTP method: the standard ones by name, anything else `other`, so a client
/// inventing method tokens cannot create label values.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The registry's metrics in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::error!(error = %Chain(&e), "encoding metrics");
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;

    #[test]
    fn only_standard_methods_get_their_own_label() {
        let cases = [(Method::GET, "GET"), (Method::DELETE, "DELETE"), (Method::OPTIONS, "OPTIONS")];
        for (method, want) in cases {
            assert_eq!(method_label(&method), want, "case {method}");
        }
        for token in ["FOO", "get", "PROPFIND", "X-ANYTHING-1"] {
            let method = Method::from_bytes(token.as_bytes()).expect("a valid token");
            assert_eq!(method_label(&method), "other", "case {token}");
        }
    }
}
