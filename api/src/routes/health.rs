//! `/healthz`, `/readyz` and `/metrics`.

use axum::{Router, extract::State, response::Response, routing::get};

use crate::router::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(|State(s): State<AppState>| async move { shared::http::metrics_text(&s.metrics.registry) }))
}

/// 200 when MongoDB and NATS answer; 503 naming the ones that do not.
async fn readyz(State(state): State<AppState>) -> Response {
    let mut failing = Vec::new();
    if !shared::store::ping(&state.db).await {
        failing.push("mongodb");
    }
    if state.nats.connection_state() != async_nats::connection::State::Connected {
        failing.push("nats");
    }
    shared::http::readiness(&failing)
}
