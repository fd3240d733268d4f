//! Read-only public links to a site's stats: `POST`/`DELETE /api/sites/{id}/share` (the owner),
//! `GET /api/public/{token}/stats` (anyone with the link; rate-limited per client address).
//!
//! A token carries 256 random bits and is shown once; the site keeps only its SHA-256, so a
//! database reader cannot use the links. Every request looks the token up, so a revoked or
//! rotated link answers 404 at once. A token reaches nothing but the stats of its one site:
//! no write route accepts it.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
};
use chrono_tz::Tz;
use mongodb::bson::doc;
use serde::Serialize;
use sha2::{Digest, Sha256};
use shared::{store::SiteDoc, time};

use crate::{
    error::ApiError,
    extractors::{AuthUser, ClientIp},
    keys,
    router::AppState,
    routes::{
        sites::owned_site,
        stats::{StatsQuery, compute},
    },
    stats::Stats,
    throttle,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sites/{id}/share", post(create).delete(revoke))
        .route("/api/public/{token}/stats", get(public_stats))
}

/// Longest token accepted (ours are 43 characters).
const MAX_TOKEN: usize = 128;

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The site a share token opens, if the link is live.
pub async fn site_by_token(state: &AppState, token: &str) -> Result<Option<SiteDoc>, ApiError> {
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Ok(None);
    }
    Ok(state.sites.find_one(doc! {"share_hash": token_hash(token)}).await?)
}

#[derive(Serialize)]
struct ShareLink {
    token: String,
    url: String,
}

/// A new link; the previous one, if any, stops working.
async fn create(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<Json<ShareLink>, ApiError> {
    let site = owned_site(&state, &auth, &id).await?;
    let token = keys::new_share_token()?;
    state.sites.update_one(doc! {"_id": &site.id}, doc! {"$set": {"share_hash": token_hash(&token)}}).await?;
    Ok(Json(ShareLink { url: format!("/share/{token}"), token }))
}

async fn revoke(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let site = owned_site(&state, &auth, &id).await?;
    state.sites.update_one(doc! {"_id": &site.id}, doc! {"$unset": {"share_hash": ""}}).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn public_stats(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(token): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Stats>, ApiError> {
    state
        .public_throttle
        .admit(vec![throttle::ip_key(ip)], std::time::Instant::now())
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?
        .keep();
    let site = site_by_token(&state, &token).await?.ok_or(ApiError::NotFound)?;
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let query = StatsQuery::parse(&params, tz, chrono::Utc::now().timestamp_millis())?;
    Ok(Json(compute(&state, &site, &query).await?))
}
