//! Read-only public links to a site's stats: `POST`/`DELETE /api/sites/{id}/share` (the owner),
//! `GET /api/public/{token}/stats` (anyone with the link; rate-limited per client address).
//!
//! A token carries 256 random bits and is shown once; only its SHA-256 is stored, so a
//! database reader cannot use the links: as the `_id` of a document of
//! [`c::SHARE_LINKS`] naming the site, and in the site's `share_hash`. Every request looks the
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
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::{
    names::collections as c,
    store::{SiteDoc, site_fields},
    time,
};

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

/// A share link: the hash of its token, and the site it opens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShareLinkDoc {
    /// SHA-256 (hex) of the token.
    #[serde(rename = "_id")]
    pub id: String,
    pub site_id: String,
}

fn links(state: &AppState) -> mongodb::Collection<ShareLinkDoc> {
    state.db.collection(c::SHARE_LINKS)
}

/// The site a share token opens, if the link is live.
pub async fn site_by_token(state: &AppState, token: &str) -> Result<Option<SiteDoc>, ApiError> {
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Ok(None);
    }
    let hash = token_hash(token);
    let Some(link) = links(state).find_one(doc! {"_id": &hash}).await? else { return Ok(None) };
    // The site must still hold this link: a link replaced or revoked meanwhile opens nothing.
    Ok(state.sites.find_one(doc! {"_id": &link.site_id, site_fields::SHARE_HASH: &hash}).await?)
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
    let site = owned_site(&state, &auth, &id).await?;
    let before = state
        .sites
        .find_one_and_update(doc! {"_id": &site.id}, doc! {"$unset": {site_fields::SHARE_HASH: ""}})
        .return_document(ReturnDocument::Before)
        .await?;
    forget_link(&state, before.and_then(|s| s.share_hash)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the link document of a hash the site no longer holds.
pub async fn forget_link(state: &AppState, hash: Option<String>) -> Result<(), ApiError> {
    if let Some(hash) = hash {
        links(state).delete_one(doc! {"_id": hash}).await?;
    }
    Ok(())
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
