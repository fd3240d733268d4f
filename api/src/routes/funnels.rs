//! `/api/sites/{id}/funnels` and `GET /api/stats/{id}/funnels/{funnel_id}`: ordered steps a
//! session goes through (`shared::funnel`). At most [`MAX_FUNNELS_PER_SITE`] a site, however
//! many creates race (the site's config, changed by compare-and-set). A new funnel also counts
//! the raw batches kept from before it: `backfilling` is true until that is done.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{delete, get},
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use shared::{
    backfill::ItemKind,
    funnel::{FunnelDoc, FunnelSpec, FunnelStep, MAX_FUNNELS_PER_SITE},
    time,
};

use shared::team::Role;

use crate::{
    access::{readable_site, site_for},
    error::ApiError,
    extractors::{ApiJson, AuthUser, Reader},
    keys,
    routes::{
        auth::rfc3339,
        goals::{change_config, read_config, start_backfill},
    },
    state::AppState,
    stats::rate,
    stats_store,
    timeframe::Range,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sites/{id}/funnels", get(list).post(create))
        .route("/api/sites/{id}/funnels/{funnel_id}", delete(remove))
        .route("/api/stats/{id}/funnels/{funnel_id}", get(stats))
}

/// `funnel` as the API shows it.
#[derive(Debug, Serialize)]
pub struct FunnelView {
    pub id: String,
    pub name: String,
    pub steps: Vec<FunnelStep>,
    pub created_at: String,
    pub backfilling: bool,
}

impl From<&FunnelDoc> for FunnelView {
    fn from(f: &FunnelDoc) -> Self {
        Self {
            id: f.id.clone(),
            name: f.name.clone(),
            steps: f.steps.clone(),
            created_at: rfc3339(mongodb::bson::DateTime::from_millis(f.created_ms)),
            backfilling: f.backfilling,
        }
    }
}

/// The live funnels of a site, oldest first.
async fn live_funnels(state: &AppState, site_id: &str) -> Result<Vec<FunnelDoc>, ApiError> {
    Ok(read_config(state, site_id).await?.map(|c| c.live_funnels().cloned().collect()).unwrap_or_default())
}

async fn list(
    State(state): State<AppState>,
    reader: Reader,
    Path(id): Path<String>,
) -> Result<Json<Vec<FunnelView>>, ApiError> {
    let site = readable_site(&state, &reader, &id).await?;
    Ok(Json(live_funnels(&state, &site.id).await?.iter().map(FunnelView::from).collect()))
}

#[derive(Deserialize)]
struct CreateBody {
    name: Option<serde_json::Value>,
    steps: Option<serde_json::Value>,
}

async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Admin).await?.site;
    let spec =
        FunnelSpec::parse(body.name.as_ref(), body.steps.as_ref()).map_err(|e| ApiError::InvalidFunnel(e.to_string()))?;
    let full =
        || ApiError::InvalidFunnel(format!("funnels: a site has at most {MAX_FUNNELS_PER_SITE} funnels; delete one first"));
    // Refused before its backfill is recorded, when it is clear already.
    if live_funnels(&state, &site.id).await?.len() >= MAX_FUNNELS_PER_SITE {
        return Err(full());
    }
    let funnel = FunnelDoc {
        id: keys::new_id()?,
        name: spec.name,
        steps: spec.steps,
        created_ms: state.clock.now_ms(),
        deleted_ms: None,
        backfilling: true,
    };
    start_backfill(&state, &site.id, ItemKind::Funnel, &funnel.id, funnel.created_ms).await?;
    change_config(&state, &site.id, |config| config.add_funnel(funnel.clone(), state.clock.now_ms()).map_err(|_| full()))
        .await?;
    Ok((StatusCode::CREATED, Json(FunnelView::from(&funnel))))
}

async fn remove(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, funnel_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Admin).await?.site;
    // Kept two days, marked deleted, as goals are: a flush replayed after the deletion still
    // counts what its first attempt counted.
    change_config(&state, &site.id, |config| {
        if config.delete_funnel(&funnel_id, state.clock.now_ms()) { Ok(()) } else { Err(ApiError::NotFound) }
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One step's figures.
#[derive(Debug, Serialize)]
pub struct StepStats {
    pub kind: shared::goal::GoalKind,
    #[serde(rename = "match")]
    pub matcher: String,
    pub sessions: i64,
    pub rate_from_previous: f64,
    pub rate_from_start: f64,
}

/// `GET /api/stats/{id}/funnels/{funnel_id}`.
#[derive(Debug, Serialize)]
pub struct FunnelStats {
    pub id: String,
    pub name: String,
    pub backfilling: bool,
    pub steps: Vec<StepStats>,
}

/// The figures of `funnel` from the sessions that reached each step (`counts`). The first
/// step's rates are 1 when any session reached it.
pub fn funnel_stats(funnel: &FunnelDoc, counts: &[i64]) -> FunnelStats {
    let first = counts.first().copied().unwrap_or(0);
    let steps = funnel
        .steps
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(i, (step, &sessions))| {
            let previous = if i == 0 { first } else { counts[i - 1] };
            StepStats {
                kind: step.kind,
                matcher: step.matcher.clone(),
                sessions,
                rate_from_previous: rate(sessions, previous),
                rate_from_start: rate(sessions, first),
            }
        })
        .collect();
    FunnelStats { id: funnel.id.clone(), name: funnel.name.clone(), backfilling: funnel.backfilling, steps }
}

async fn stats(
    State(state): State<AppState>,
    reader: Reader,
    Path((id, funnel_id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<FunnelStats>, ApiError> {
    let site = readable_site(&state, &reader, &id).await?;
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let get = |k: &str| params.get(k).map(String::as_str);
    let range = Range::resolve(get("timeframe"), get("from"), get("to"), tz, state.clock.now_ms())?;
    let funnel = live_funnels(&state, &site.id).await?.into_iter().find(|f| f.id == funnel_id).ok_or(ApiError::NotFound)?;
    let (counts, docs_read) =
        stats_store::load_funnel(&state.db, &site.id, &range, tz, &funnel.id, funnel.steps.len()).await?;
    state.metrics.stats_documents_read.observe(docs_read as f64);
    Ok(Json(funnel_stats(&funnel, &counts)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::goal::GoalKind;

    #[test]
    fn rates_from_the_previous_step_and_from_the_start() {
        let step = |m: &str| FunnelStep { kind: GoalKind::Pageview, matcher: m.into() };
        let f = FunnelDoc {
            id: "f".into(),
            name: "F".into(),
            steps: vec![step("/"), step("/pricing"), step("/signup")],
            created_ms: 0,
            deleted_ms: None,
            backfilling: false,
        };
        let s = funnel_stats(&f, &[8, 4, 1]);
        let got: Vec<(i64, f64, f64)> =
            s.steps.iter().map(|s| (s.sessions, s.rate_from_previous, s.rate_from_start)).collect();
        assert_eq!(got, vec![(8, 1.0, 1.0), (4, 0.5, 0.5), (1, 0.25, 0.125)]);
        let none = funnel_stats(&f, &[0, 0, 0]);
        assert!(none.steps.iter().all(|s| s.rate_from_previous == 0.0 && s.rate_from_start == 0.0));
    }
}
