//! Ingest's routes and the state they share.

use std::{net::IpAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    http::{HeaderValue, header},
    middleware,
    routing::{get, post},
};
use tower::ServiceBuilder;
use tower_http::{set_header::SetResponseHeaderLayer, timeout::TimeoutLayer};

use shared::client_ip::TrustedProxies;

use crate::{
    audience::UserAgents, geo::Countries, limiter::RateLimiter, metrics::Metrics, publisher::Publisher, routes,
    salt::SaltCache, sites::SiteDirectory,
};

/// What every request shares, behind one `Arc` so that handing it to a request is one
/// reference-count increment rather than a clone of each handle.
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The handles inside [`AppState`].
pub struct Shared {
    pub sites: SiteDirectory,
    pub salts: SaltCache,
    pub publisher: Publisher,
    pub key_limiter: Arc<RateLimiter<String>>,
    pub ip_limiter: Arc<RateLimiter<IpAddr>>,
    pub trusted: Arc<TrustedProxies>,
    /// Device, browser, OS and bot verdicts per User-Agent.
    pub user_agents: UserAgents,
    /// Client IP to country.
    pub countries: Countries,
    pub metrics: Metrics,
    pub nats: async_nats::Client,
}

/// The whole public HTTP surface of ingest (`/metrics` is on the internal listener).
pub fn router(state: AppState) -> Router {
    let http_metrics = state.metrics.http.clone();
    Router::new()
        .route("/api/events/batch", post(routes::batch::post_batch).options(routes::batch::preflight))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .fallback(shared::http::not_found)
        // One `layer` call with the whole stack, outermost first: each `Router::layer` boxes
        // every route once more, which the hot path pays per request.
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn_with_state(http_metrics, shared::http::track_metrics))
                .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(10)))
                .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
                // Tracker pages live on other origins; no credentials are ever involved.
                .layer(SetResponseHeaderLayer::if_not_present(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")))
                .layer(middleware::from_fn(shared::http::envelope_405)),
        )
        .with_state(state)
}
