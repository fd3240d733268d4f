//! Read-only public links to a site's stats: `POST`/`DELETE /api/sites/{id}/share` (the owner),
//! `GET /api/public/{token}/stats` (anyone with the link; rate-limited per client address).
//!
//! A token carries 256 random bits and is shown once; only its SHA-256 is stored, so a
//! database reader cannot use the links: as the `_id` of a document of
//! [`shared::names::collections::SHARE_LINKS`] naming the site, and in the site's `share_hash`. Every request looks the
//! token up by that `_id`, then the site by its `_id` holding that same hash, so a revoked or
//! rotated link answers 404 at once and no lookup scans. A token reaches nothing but the stats
//! of its one site: no write route accepts it.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
};
use chrono_tz::Tz;
use mongodb::{bson::doc, options::ReturnDocument};
use serde::Serialize;
use shared::{store::site_fields, time};

use shared::team::Role;

use crate::{
    access::site_for,
    error::ApiError,
    extractors::{AuthUser, ClientIp},
    keys,
    routes::stats::{StatsQuery, compute, page_path, page_view},
    share_links::{ShareLinkDoc, forget_link, links, site_by_token, token_hash},
    state::AppState,
    stats::Stats,
    throttle,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sites/{id}/share", post(create).delete(revoke))
        .route("/api/public/{token}/stats", get(public_stats))
        .route("/api/public/{token}/page", get(public_page))
        .route("/api/public/{token}/events/{name}", get(public_event))
}

#[derive(Serialize)]
struct ShareLink {
    token: String,
    url: String,
}

/// A new link; the previous one, if any, stops working.
async fn create(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<Json<ShareLink>, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Admin).await?.site;
    let token = keys::new_share_token()?;
    let hash = token_hash(&token);
    // The link first, then the site's hash, then the old link gone: a crash in between leaves
    // at most a link whose site does not hold it, which opens nothing.
    links(&state).insert_one(ShareLinkDoc { id: hash.clone(), site_id: site.id.clone() }).await?;
    let before = state
        .sites
        .find_one_and_update(doc! {"_id": &site.id}, doc! {"$set": {site_fields::SHARE_HASH: &hash}})
        .return_document(ReturnDocument::Before)
        .await?;
    forget_link(&state, before.and_then(|s| s.share_hash)).await?;
    Ok(Json(ShareLink { url: format!("/share/{token}"), token }))
}

async fn revoke(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Admin).await?.site;
    let before = state
        .sites
        .find_one_and_update(doc! {"_id": &site.id}, doc! {"$unset": {site_fields::SHARE_HASH: ""}})
        .return_document(ReturnDocument::Before)
        .await?;
    forget_link(&state, before.and_then(|s| s.share_hash)).await?;
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
        .admit(vec![throttle::ip_key(ip)], state.clock.instant())
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?
        .keep();
    let site = site_by_token(&state, &token).await?.ok_or(ApiError::NotFound)?;
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let query = StatsQuery::parse(&params, tz, state.clock.now_ms())?;
    Ok(Json(compute(&state, &site, &query).await?))
}

async fn public_event(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path((token, name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<crate::stats_store::EventProps>, ApiError> {
    state
        .public_throttle
        .admit(vec![throttle::ip_key(ip)], std::time::Instant::now())
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?
        .keep();
    let site = site_by_token(&state, &token).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(crate::routes::stats::event_view(&state, &site, &name, &params).await?))
}

async fn public_page(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(token): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<crate::attention::PageView>, ApiError> {
    state
        .public_throttle
        .admit(vec![throttle::ip_key(ip)], std::time::Instant::now())
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?
        .keep();
    let site = site_by_token(&state, &token).await?.ok_or(ApiError::NotFound)?;
    let path = page_path(params.get("path").map(String::as_str))?;
    Ok(Json(page_view(&state, &site, &path, &params).await?))
}
