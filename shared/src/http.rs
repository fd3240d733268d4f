//! HTTP plumbing every service shares: the request-metrics middleware, the JSON error
//! envelope as a response, fallbacks for unknown routes and methods, the internal metrics
//! router, and the shutdown signal. Listening and connection limits are in [`crate::serve`].

use std::time::Instant;

use axum::{
    Json, Router,
    extract::{MatchedPath, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use tracing::{Instrument, field::Empty};

use crate::telemetry::Chain;
use crate::{
    error::{ErrorBody, ErrorCode},
    metrics::{HttpMetrics, method_label},
};

/// An error envelope response.
pub fn error_response(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

/// Fallback for unknown routes: 404 with the envelope.
pub async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such route")
}

/// Turns axum's bare 405 (a known route, another method) into the envelope.
pub async fn envelope_405(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if res.status() == StatusCode::METHOD_NOT_ALLOWED && !res.headers().contains_key(header::CONTENT_TYPE) {
        let allow = res.headers().get(header::ALLOW).cloned();
        let mut out =
            error_response(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed, "method not allowed on this route");
        if let Some(allow) = allow {
            out.headers_mut().insert(header::ALLOW, allow);
        }
        return out;
    }
    res
}

/// Counts every request by route template, method and status, and runs it in a `request`
/// span (method, route; `site` and `events` for the handler to [`record_site`] and
/// [`record_events`]), so whatever a handler logs says which request, site and batch it was
/// about. Unmatched paths share the label `unmatched` and unknown methods the label `other`,
/// so a scanner cannot blow up the label set.
pub async fn track_metrics(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = method_label(req.method());
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!("request", method, route, site = Empty, events = Empty);
    let res = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    tracing::debug!(parent: &span, status = res.status().as_u16(), ms = elapsed.as_secs_f64() * 1e3, "answered");
    metrics.observe(route, method, res.status(), elapsed.as_secs_f64());
    res
}

/// Names the site of the current request in its span.
pub fn record_site(site_id: &str) {
    tracing::Span::current().record("site", site_id);
}

/// Records how many events the current request's batch holds in its span.
pub fn record_events(n: usize) {
    tracing::Span::current().record("events", n);
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %Chain(&e), "listening for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %Chain(&e), "listening for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// `/readyz` answer: 200 `{"status":"ready"}`, or 503 naming the dependencies that fail.
pub fn readiness(failing: &[&str]) -> Response {
    if failing.is_empty() {
        (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))).into_response()
    } else {
        let body = serde_json::json!({
            "status": "unavailable",
            "error": ErrorCode::Unavailable.as_str(),
            "failing": failing,
            "message": format!("not ready: {} unreachable", failing.join(", ")),
        });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// `/metrics` answer in the Prometheus text format.
pub fn metrics_text(registry: &prometheus::Registry) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], crate::metrics::render(registry)).into_response()
}

/// The router of a service's internal metrics listener (`CP_METRICS_ADDR`): `GET /metrics`
/// and nothing else. It has no CORS headers: no web page should read it.
pub fn metrics_router(registry: prometheus::Registry) -> Router {
    Router::new()
        .route("/metrics", get(move || std::future::ready(metrics_text(&registry))))
        .fallback(not_found)
        .layer(middleware::from_fn(envelope_405))
}
