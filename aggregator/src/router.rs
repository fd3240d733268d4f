//! The aggregator's HTTP surface: health and readiness only (`/metrics` is on the internal
//! listener).

use axum::{Router, extract::State, middleware, response::Response, routing::get};
use mongodb::Database;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub nats: async_nats::Client,
    pub db: Database,
    pub metrics: Metrics,
}

pub fn router(state: AppState) -> Router {
    let http_metrics = state.metrics.http.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(shared::http::not_found)
        .layer(middleware::from_fn(shared::http::envelope_405))
        .layer(middleware::from_fn_with_state(http_metrics, shared::http::track_metrics))
        .with_state(state)
}

/// 200 when NATS and MongoDB both answer; 503 naming the ones that do not.
async fn readyz(State(state): State<AppState>) -> Response {
    let mut failing = Vec::new();
    if state.nats.connection_state() != async_nats::connection::State::Connected {
        failing.push("nats");
    }
    if !shared::store::ping(&state.db).await {
        failing.push("mongodb");
    }
    shared::http::readiness(&failing)
}
