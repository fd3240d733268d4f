//! `/api/sites/{id}/segments`: saved segments, sessions selected by their attribution
//! (`shared::segment`). At most [`MAX_SEGMENTS_PER_SITE`] a site, however many creates race
//! (the site's config, changed by compare-and-set). `GET /api/stats/{id}?segment=` answers
//! from the segment's own rollups ([`crate::routes::stats`]); a new segment also counts the
//! raw batches kept from before it (`backfilling` until that is done).

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{delete, get},
};
use serde::{Deserialize, Serialize};
use shared::{
    backfill::ItemKind,
    segment::{MAX_SEGMENTS_PER_SITE, SegmentDoc, SegmentFilter, SegmentSpec},
};

use shared::team::Role;

use crate::{
    access::site_for,
    error::ApiError,
    extractors::{ApiJson, AuthUser},
    keys,
    routes::{
        auth::rfc3339,
        goals::{change_config, read_config, start_backfill},
    },
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sites/{id}/segments", get(list).post(create))
        .route("/api/sites/{id}/segments/{segment_id}", delete(remove))
}

/// `segment` as the API shows it.
#[derive(Debug, Serialize)]
pub struct SegmentView {
    pub id: String,
    pub name: String,
    pub filters: Vec<SegmentFilter>,
    pub created_at: String,
    pub backfilling: bool,
}

impl From<&SegmentDoc> for SegmentView {
    fn from(s: &SegmentDoc) -> Self {
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            filters: s.filters.clone(),
            created_at: rfc3339(mongodb::bson::DateTime::from_millis(s.created_ms)),
            backfilling: s.backfilling,
        }
    }
}

/// The live segments of a site, oldest first.
pub async fn live_segments(state: &AppState, site_id: &str) -> Result<Vec<SegmentDoc>, ApiError> {
    Ok(read_config(state, site_id).await?.map(|c| c.live_segments().cloned().collect()).unwrap_or_default())
}

async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<SegmentView>>, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Viewer).await?.site;
    Ok(Json(live_segments(&state, &site.id).await?.iter().map(SegmentView::from).collect()))
}

#[derive(Deserialize)]
struct CreateBody {
    name: Option<serde_json::Value>,
    filters: Option<serde_json::Value>,
}

async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Admin).await?.site;
    let spec = SegmentSpec::parse(body.name.as_ref(), body.filters.as_ref())
        .map_err(|e| ApiError::InvalidSegment(e.to_string()))?;
    let full = || {
        ApiError::InvalidSegment(format!("segments: a site has at most {MAX_SEGMENTS_PER_SITE} segments; delete one first"))
    };
    if live_segments(&state, &site.id).await?.len() >= MAX_SEGMENTS_PER_SITE {
        return Err(full());
    }
    let segment = SegmentDoc {
        id: keys::new_id()?,
        name: spec.name,
        filters: spec.filters,
        created_ms: state.clock.now_ms(),
        deleted_ms: None,
        backfilling: true,
    };
    start_backfill(&state, &site.id, ItemKind::Segment, &segment.id, segment.created_ms).await?;
    change_config(&state, &site.id, |config| config.add_segment(segment.clone(), state.clock.now_ms()).map_err(|_| full()))
        .await?;
    Ok((StatusCode::CREATED, Json(SegmentView::from(&segment))))
}

async fn remove(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, segment_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Admin).await?.site;
    change_config(&state, &site.id, |config| {
        if config.delete_segment(&segment_id, state.clock.now_ms()) { Ok(()) } else { Err(ApiError::NotFound) }
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
