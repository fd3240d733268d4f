//! The api's routes and the state they share.

use std::{sync::Arc, time::Duration};

use axum::{Router, middleware};
use mongodb::{Collection, Database};
use shared::store::{GoalDoc, SiteDoc, UserDoc};
use tower_http::timeout::TimeoutLayer;

use crate::{config::Config, keys::KeyRegistry, metrics::Metrics, routes, throttle::LoginThrottle, tokens::Tokens};

/// Cheap handles shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Database,
    pub users: Collection<UserDoc>,
    pub sites: Collection<SiteDoc>,
    pub goals: Collection<GoalDoc>,
    pub tokens: Arc<Tokens>,
    pub keys: KeyRegistry,
    pub throttle: Arc<LoginThrottle>,
    /// A bcrypt hash of nothing anyone knows, verified against when the email is unknown.
    pub dummy_hash: Arc<String>,
    pub metrics: Metrics,
    pub nats: async_nats::Client,
}

/// The whole HTTP surface of the api.
pub fn router(state: AppState) -> Router {
    let http_metrics = state.metrics.http.clone();
    Router::new()
        .merge(routes::auth::router())
        .merge(routes::sites::router())
        .merge(routes::goals::router())
        .merge(routes::stats::router())
        .merge(routes::health::router())
        .merge(routes::web::router(&state))
        .fallback(shared::http::not_found)
        .layer(middleware::from_fn(shared::http::envelope_405))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(10)))
        .layer(middleware::from_fn_with_state(http_metrics, shared::http::track_metrics))
        .with_state(state)
}
