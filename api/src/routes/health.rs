//! `/healthz` and `/readyz`, on the public port for load balancers. `/metrics` is served on
//! the internal listener (`shared::http::metrics_router`).

use axum::{Router, extract::State, response::Response, routing::get};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(|| async { "ok" })).route("/readyz", get(readyz))
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
