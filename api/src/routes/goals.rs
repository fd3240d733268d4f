//! `/api/sites/{id}/goals`: what counts as a conversion on a site. At most
//! [`MAX_GOALS_PER_SITE`]; another user's site is 404.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{delete, get},
};
use futures::TryStreamExt;
use mongodb::bson::{DateTime, doc};
use serde::{Deserialize, Serialize};
use shared::{
    goal::{GoalKind, GoalSpec, MAX_GOALS_PER_SITE},
    store::{GoalDoc, goal_fields},
};

use crate::{
    error::ApiError,
    extractors::{ApiJson, AuthUser},
    keys,
    router::AppState,
    routes::{auth::rfc3339, sites::owned_site},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sites/{id}/goals", get(list).post(create))
        .route("/api/sites/{id}/goals/{goal_id}", delete(remove))
}

/// `goal` as the API shows it.
#[derive(Debug, Serialize)]
pub struct GoalView {
    pub id: String,
    pub name: String,
    pub kind: GoalKind,
    #[serde(rename = "match")]
    pub matcher: String,
    pub created_at: String,
}

impl From<&GoalDoc> for GoalView {
    fn from(g: &GoalDoc) -> Self {
        Self { id: g.id.clone(), name: g.name.clone(), kind: g.kind, matcher: g.matcher.clone(), created_at: rfc3339(g.created_at) }
    }
}

/// The live (not deleted) goals of a site, oldest first.
pub async fn live_goals(state: &AppState, site_id: &str) -> Result<Vec<GoalDoc>, ApiError> {
    let filter = doc! {goal_fields::SITE_ID: site_id, goal_fields::DELETED_AT: {"$exists": false}};
    Ok(state.goals.find(filter).sort(doc! {goal_fields::CREATED_AT: 1}).limit(MAX_GOALS_PER_SITE as i64 * 2).await?.try_collect().await?)
}

async fn list(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<Json<Vec<GoalView>>, ApiError> {
    let site = owned_site(&state, &auth, &id).await?;
    Ok(Json(live_goals(&state, &site.id).await?.iter().map(GoalView::from).collect()))
}

#[derive(Deserialize)]
struct CreateBody {
    name: Option<serde_json::Value>,
    kind: Option<serde_json::Value>,
    #[serde(rename = "match")]
    matcher: Option<serde_json::Value>,
}

fn text<'a>(v: &'a Option<serde_json::Value>, field: &str) -> Result<Option<&'a str>, ApiError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::InvalidGoal(format!("{field}: must be a string"))),
    }
}

async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let site = owned_site(&state, &auth, &id).await?;
    let spec = GoalSpec::parse(text(&body.name, "name")?, text(&body.kind, "kind")?, text(&body.matcher, "match")?)
        .map_err(|e| ApiError::InvalidGoal(e.to_string()))?;
    if live_goals(&state, &site.id).await?.len() >= MAX_GOALS_PER_SITE {
        return Err(ApiError::InvalidGoal(format!("goals: a site has at most {MAX_GOALS_PER_SITE} goals; delete one first")));
    }
    let goal = GoalDoc {
        id: keys::new_id()?,
        site_id: site.id,
        name: spec.name,
        kind: spec.kind,
        matcher: spec.matcher,
        created_at: DateTime::now(),
        deleted_at: None,
    };
    state.goals.insert_one(&goal).await?;
    Ok((StatusCode::CREATED, Json(GoalView::from(&goal))))
}

async fn remove(State(state): State<AppState>, auth: AuthUser, Path((id, goal_id)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    let site = owned_site(&state, &auth, &id).await?;
    // Kept, marked with the database's clock, so that the aggregator can replay a flush that
    // matched it; a TTL index removes it two days later.
    let res = state
        .goals
        .update_one(
            doc! {"_id": &goal_id, goal_fields::SITE_ID: &site.id, goal_fields::DELETED_AT: {"$exists": false}},
            doc! {"$currentDate": {goal_fields::DELETED_AT: true}},
        )
        .await?;
    if res.matched_count == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}
