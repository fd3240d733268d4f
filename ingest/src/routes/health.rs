//! `/healthz` and `/readyz`, on the public port for load balancers. `/metrics` is served on
//! the internal listener (`shared::http::metrics_router`).

use axum::{extract::State, response::Response};

use crate::state::AppState;

/// 200 while the process runs.
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when NATS is connected and the site keys are loaded; 503 naming what is not.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let mut failing = Vec::new();
    if !state.publisher.is_connected() {
        failing.push("nats");
    }
    if !state.sites.is_synced() {
        failing.push("site_keys");
    }
    shared::http::readiness(&failing)
}
