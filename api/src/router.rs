//! The api's routes and the headers every answer carries.

use std::time::Duration;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, header},
    middleware,
};
use tower_http::{set_header::SetResponseHeaderLayer, timeout::TimeoutLayer};

use crate::routes;
pub use crate::state::AppState;

/// Largest request body: the api takes small JSON documents only.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The policy of answers that are not pages (JSON, errors): load nothing, be framed nowhere.
/// Pages set their own (`routes::web::CSP`).
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The whole public HTTP surface of the api (`/metrics` is on the internal listener).
pub fn router(state: AppState) -> Router {
    let http_metrics = state.metrics.http.clone();
    let default_header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    Router::new()
        .merge(routes::auth::router())
        .merge(routes::alerts::router())
        .merge(routes::sites::router())
        .merge(routes::goals::router())
        .merge(routes::funnels::router())
        .merge(routes::segments::router())
        .merge(routes::share::router())
        .merge(routes::stats::router())
        .merge(routes::stats_keys::router())
        .merge(routes::plausible_query::router())
        .merge(routes::overlay::router())
        .merge(routes::health::router())
        .merge(routes::members::router())
        .merge(routes::reports::router())
        .merge(routes::web::router(&state))
        .fallback(shared::http::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(shared::http::envelope_405))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(10)))
        // Imports and exports: merged after the 10 s timeout, under their own (longer) one.
        .merge(routes::imports::router())
        // Security headers on every answer, errors included; routes that need another value
        // (pages, the snippet, token and key answers) set their own first.
        .layer(default_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(default_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(default_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(default_header(header::CONTENT_SECURITY_POLICY, API_CSP))
        .layer(default_header(HeaderName::from_static("cross-origin-opener-policy"), "same-origin"))
        .layer(default_header(header::CACHE_CONTROL, "no-store"))
        .layer(middleware::from_fn_with_state(http_metrics, shared::http::track_metrics))
        .with_state(state)
}
