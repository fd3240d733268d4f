//! Ingest's routes and the headers every answer carries.

use std::time::Duration;

use axum::{
    Router,
    http::{HeaderValue, header},
    middleware,
    routing::{get, post},
};
use tower::ServiceBuilder;
use tower_http::{set_header::SetResponseHeaderLayer, timeout::TimeoutLayer};

use crate::routes;

pub use crate::state::{AppState, Shared};

/// The whole public HTTP surface of ingest (`/metrics` is on the internal listener).
pub fn router(state: AppState) -> Router {
    let http_metrics = state.metrics.http.clone();
    Router::new()
        .route("/api/events/batch", post(routes::batch::post_batch).options(routes::batch::preflight))
        // Plausible's Events API (v3), for Plausible's own tracker.
        .route("/api/event", post(routes::plausible::post_event).options(routes::batch::preflight))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .fallback(shared::http::not_found)
        // One `layer` call with the whole stack, outermost first: each `Router::layer` boxes
        // every route once more, which the hot path pays per request.
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(http_metrics, shared::http::track_metrics))
                .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(10)))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                // Tracker pages live on other origins; no credentials are ever involved.
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                ))
                .layer(middleware::from_fn(shared::http::envelope_405)),
        )
        .with_state(state)
}
