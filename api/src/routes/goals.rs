//! `/api/sites/{id}/goals`: what counts as a conversion on a site. At most
//! [`MAX_GOALS_PER_SITE`], however many creates race: goals live in the site's config
//! ([`shared::site_config`]), changed by compare-and-set on its revision. Another user's site
//! is 404.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{delete, get},
};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde::{Deserialize, Serialize};
use shared::{
    backfill::{BackfillDoc, ItemKind},
    goal::{GoalKind, GoalSpec},
    names::collections as c,
    site_config::{GoalDoc, SiteConfigDoc},
    team::Role,
};

use crate::{
    access::site_for,
    error::ApiError,
    extractors::{ApiJson, AuthUser},
    keys,
    routes::auth::rfc3339,
    state::AppState,
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
    /// True while the backfill counts the raw batches kept from before the goal.
    pub backfilling: bool,
}

impl From<&GoalDoc> for GoalView {
    fn from(g: &GoalDoc) -> Self {
        Self {
            id: g.id.clone(),
            name: g.name.clone(),
            kind: g.kind,
            matcher: g.matcher.clone(),
            created_at: rfc3339(g.created_at()),
            backfilling: g.backfilling,
        }
    }
}

/// Compare-and-set rounds a goal change tries before answering 503.
const CONFIG_TRIES: usize = 20;

/// The stored config of a site, by `_id`; `None` when it has none yet.
pub(crate) async fn read_config(state: &AppState, site_id: &str) -> Result<Option<SiteConfigDoc>, ApiError> {
    Ok(state.site_config.find_one(doc! {"_id": site_id}).await?)
}

/// The live (not deleted) goals of a site, oldest first.
pub async fn live_goals(state: &AppState, site_id: &str) -> Result<Vec<GoalDoc>, ApiError> {
    Ok(read_config(state, site_id).await?.map(|c| c.live_goals().cloned().collect()).unwrap_or_default())
}

/// A config not stored yet: the site's goals from the collection of the layout before configs,
/// if the aggregator has not moved them yet (it does at start; see `aggregator/src/migrate`).
async fn first_config(state: &AppState, site_id: &str) -> Result<SiteConfigDoc, ApiError> {
    let mut config = SiteConfigDoc::empty(site_id);
    let legacy: Vec<Document> =
        state.db.collection::<Document>(c::LEGACY_GOALS).find(doc! {"site_id": site_id}).await?.try_collect().await?;
    config.goals = legacy.iter().filter_map(shared::site_config::legacy_goal).collect();
    config.goals.sort_by_key(|g| g.created_ms);
    Ok(config)
}

/// Changes a site's config with `change` (which may refuse), by compare-and-set on its
/// revision: a lost race reads again and retries.
pub(crate) async fn change_config<T>(
    state: &AppState,
    site_id: &str,
    mut change: impl FnMut(&mut SiteConfigDoc) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    for _ in 0..CONFIG_TRIES {
        let mut config = match read_config(state, site_id).await? {
            Some(c) => c,
            None => first_config(state, site_id).await?,
        };
        let read_rev = config.rev;
        let out = change(&mut config)?;
        let (filter, update) = config.write_statement(read_rev).map_err(|e| ApiError::Internal(e.into()))?;
        match state.site_config.update_one(filter, update).upsert(true).await {
            Ok(_) => return Ok(out),
            Err(e) if shared::store::is_duplicate_key(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Unavailable(anyhow::anyhow!("site config {site_id}: writes kept losing races")))
}

async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<GoalView>>, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Viewer).await?.site;
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
    let site = site_for(&state, &auth, &id, Role::Admin).await?.site;
    let spec = GoalSpec::parse(text(&body.name, "name")?, text(&body.kind, "kind")?, text(&body.matcher, "match")?)
        .map_err(|e| ApiError::InvalidGoal(e.to_string()))?;
    let goal = GoalDoc {
        id: keys::new_id()?,
        name: spec.name,
        kind: spec.kind,
        matcher: spec.matcher,
        created_ms: state.clock.now_ms(),
        deleted_ms: None,
        backfilling: true,
    };
    start_backfill(&state, &site.id, ItemKind::Goal, &goal.id, goal.created_ms).await?;
    change_config(&state, &site.id, |config| {
        let now = state.clock.now_ms();
        config.add_goal(goal.clone(), now).map_err(|e| ApiError::InvalidGoal(e.to_string()))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(GoalView::from(&goal))))
}

/// Records the backfill of a new item before the item itself, so that no stored item lacks
/// its backfill (one whose item never got stored removes itself; see `shared::backfill`).
pub(crate) async fn start_backfill(
    state: &AppState,
    site_id: &str,
    kind: ItemKind,
    item_id: &str,
    cut_ms: i64,
) -> Result<(), ApiError> {
    let job = BackfillDoc::new(site_id, kind, item_id, cut_ms);
    state.db.collection::<BackfillDoc>(c::BACKFILLS).insert_one(job).await?;
    Ok(())
}

async fn remove(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, goal_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Admin).await?.site;
    // Kept, marked with the time of deletion, so that the aggregator can replay a flush that
    // matched it; dropped two days later.
    change_config(&state, &site.id, |config| {
        if config.delete_goal(&goal_id, state.clock.now_ms()) { Ok(()) } else { Err(ApiError::NotFound) }
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
