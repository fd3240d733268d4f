//! The api's routes, the state they share, and the headers every answer carries.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, header},
    middleware,
};
use mongodb::{Collection, Database};
use shared::{
    site_config::SiteConfigDoc,
    store::{SiteDoc, UserDoc},
};
use tower_http::{set_header::SetResponseHeaderLayer, timeout::TimeoutLayer};

use crate::{
    config::Config,
    keys::KeyRegistry,
    metrics::Metrics,
    passwords::Hasher,
    revocation::TokenVersions,
    routes,
    throttle::{LoginThrottle, Throttle},
    tokens::Tokens,
};

/// Largest request body: the api takes small JSON documents only.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The policy of answers that are not pages (JSON, errors): load nothing, be framed nowhere.
/// Pages set their own (`routes::web::CSP`).
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Cheap handles shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Database,
    pub users: Collection<UserDoc>,
    pub sites: Collection<SiteDoc>,
    /// What each site counts (its goals), one document per site.
    pub site_config: Collection<SiteConfigDoc>,
    pub tokens: Arc<Tokens>,
    pub keys: KeyRegistry,
    /// Login (and password change) attempts per (email, client address) and per address.
    pub login_throttle: Arc<LoginThrottle>,
    /// The users' token versions: what ends a token before it expires.
    pub token_versions: Arc<TokenVersions>,
    /// Registrations per client IP.
    pub register_throttle: Arc<Throttle>,
    /// Shared-link stats requests per client IP.
    pub public_throttle: Arc<Throttle>,
    /// bcrypt with bounded concurrency.
    pub hasher: Hasher,
    /// A bcrypt hash of nothing anyone knows, verified against when the email is unknown.
    pub dummy_hash: Arc<String>,
    pub metrics: Metrics,
    pub nats: async_nats::Client,
}

/// The whole public HTTP surface of the api (`/metrics` is on the internal listener).
pub fn router(state: AppState) -> Router {
    let http_metrics = state.metrics.http.clone();
    let default_header = |name: HeaderName, value: &'static str| SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value));
    Router::new()
        .merge(routes::auth::router())
        .merge(routes::sites::router())
        .merge(routes::goals::router())
        .merge(routes::share::router())
        .merge(routes::stats::router())
        .merge(routes::health::router())
        .merge(routes::web::router(&state))
        .fallback(shared::http::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(shared::http::envelope_405))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(10)))
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
