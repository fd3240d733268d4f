//! `/api/sites*`: a user's sites and their keys. Another user's site is 404, never 403, so
//! ids cannot be probed.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use futures::TryStreamExt;
use mongodb::bson::{DateTime, doc};
use serde::{Deserialize, Serialize};
use shared::{site::parse_domain, store::SiteDoc, time::parse_tz};

use crate::{
    error::ApiError,
    extractors::{ApiJson, AuthUser},
    keys,
    router::AppState,
    routes::auth::rfc3339,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sites", get(list).post(create))
        .route("/api/sites/{id}", get(read).patch(update).delete(remove))
        .route("/api/sites/{id}/rotate-key", post(rotate))
}

/// `site` as the API shows it.
#[derive(Debug, Serialize)]
pub struct SiteView {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub timezone: String,
    pub api_key: String,
    pub created_at: String,
}

impl From<&SiteDoc> for SiteView {
    fn from(s: &SiteDoc) -> Self {
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            domain: s.domain.clone(),
            timezone: s.timezone.clone(),
            api_key: s.api_key.clone(),
            created_at: rfc3339(s.created_at),
        }
    }
}

fn parse_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::InvalidSite("name: must be 1 to 100 characters".into()));
    }
    Ok(name.to_string())
}

fn parse_site_domain(raw: &str) -> Result<String, ApiError> {
    parse_domain(raw).ok_or_else(|| ApiError::InvalidSite("domain: must be a bare host name like example.com (no scheme, port or path)".into()))
}

fn parse_timezone(raw: &str) -> Result<String, ApiError> {
    parse_tz(raw.trim())
        .map(|tz| tz.name().to_string())
        .ok_or_else(|| ApiError::InvalidSite("timezone: must be an IANA time zone such as Europe/Berlin".into()))
}

/// The caller's site `id`, or 404.
pub async fn owned_site(state: &AppState, user: &AuthUser, id: &str) -> Result<SiteDoc, ApiError> {
    state.sites.find_one(doc! {"_id": id, "owner_id": &user.user_id}).await?.ok_or(ApiError::NotFound)
}

async fn list(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Vec<SiteView>>, ApiError> {
    let sites: Vec<SiteDoc> = state.sites.find(doc! {"owner_id": &auth.user_id}).sort(doc! {"created_at": 1}).await?.try_collect().await?;
    Ok(Json(sites.iter().map(SiteView::from).collect()))
}

#[derive(Deserialize)]
struct CreateBody {
    name: Option<String>,
    domain: Option<String>,
    timezone: Option<String>,
}

async fn create(State(state): State<AppState>, auth: AuthUser, ApiJson(body): ApiJson<CreateBody>) -> Result<impl IntoResponse, ApiError> {
    let site = SiteDoc {
        id: keys::new_id()?,
        owner_id: auth.user_id,
        name: parse_name(body.name.as_deref().unwrap_or_default())?,
        domain: parse_site_domain(body.domain.as_deref().unwrap_or_default())?,
        timezone: parse_timezone(body.timezone.as_deref().unwrap_or("UTC"))?,
        api_key: keys::new_site_key()?,
        created_at: DateTime::now(),
    };
    state.sites.insert_one(&site).await?;
    if let Err(e) = state.keys.publish(&site).await {
        // Keep MongoDB and the bucket consistent: no site without a live key.
        let _ = state.sites.delete_one(doc! {"_id": &site.id}).await;
        return Err(e);
    }
    Ok((StatusCode::CREATED, Json(SiteView::from(&site))))
}

async fn read(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<Json<SiteView>, ApiError> {
    Ok(Json(SiteView::from(&owned_site(&state, &auth, &id).await?)))
}

#[derive(Deserialize)]
struct UpdateBody {
    name: Option<String>,
    domain: Option<String>,
    timezone: Option<String>,
}

async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<SiteView>, ApiError> {
    let mut site = owned_site(&state, &auth, &id).await?;
    if let Some(name) = &body.name {
        site.name = parse_name(name)?;
    }
    if let Some(domain) = &body.domain {
        site.domain = parse_site_domain(domain)?;
    }
    if let Some(tz) = &body.timezone {
        site.timezone = parse_timezone(tz)?;
    }
    state
        .sites
        .update_one(
            doc! {"_id": &site.id, "owner_id": &site.owner_id},
            doc! {"$set": {"name": &site.name, "domain": &site.domain, "timezone": &site.timezone}},
        )
        .await?;
    if body.domain.is_some() || body.timezone.is_some() {
        state.keys.publish(&site).await?;
    }
    Ok(Json(SiteView::from(&site)))
}

async fn remove(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let site = owned_site(&state, &auth, &id).await?;
    state.sites.delete_one(doc! {"_id": &site.id, "owner_id": &site.owner_id}).await?;
    state.keys.revoke(&site.api_key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<Json<SiteView>, ApiError> {
    let mut site = owned_site(&state, &auth, &id).await?;
    let old_key = std::mem::replace(&mut site.api_key, keys::new_site_key()?);
    state.sites.update_one(doc! {"_id": &site.id}, doc! {"$set": {"api_key": &site.api_key}}).await?;
    if let Err(e) = state.keys.publish(&site).await {
        let _ = state.sites.update_one(doc! {"_id": &site.id}, doc! {"$set": {"api_key": &old_key}}).await;
        return Err(e);
    }
    state.keys.revoke(&old_key).await?;
    Ok(Json(SiteView::from(&site)))
}
