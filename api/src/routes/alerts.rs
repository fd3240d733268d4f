//! `/api/sites/{id}/alerts`: a site's alerts, at most [`MAX_ALERTS_PER_SITE`], kept in its team
//! document ([`shared::team`]). The owner and admins list, create and delete them, and get
//! their mail ([`crate::alerts`] evaluates them); viewers do not see them.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{delete, get},
};
use serde::Serialize;
use shared::team::{AlertChange, AlertEntry, AlertMetric, AlertSpec, MAX_ALERTS_PER_SITE, Role};

use crate::{
    access::{change_team, read_team, site_for},
    error::ApiError,
    extractors::{ApiJson, AuthUser},
    keys,
    routes::auth::rfc3339,
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sites/{id}/alerts", get(list).post(create))
        .route("/api/sites/{id}/alerts/{alert_id}", delete(remove))
}

/// An alert as the API shows it.
#[derive(Debug, Serialize)]
pub struct AlertView {
    pub id: String,
    pub metric: AlertMetric,
    pub change: AlertChange,
    pub percent: u32,
    pub window_hours: u32,
    pub created_at: String,
}

impl From<&AlertEntry> for AlertView {
    fn from(a: &AlertEntry) -> Self {
        Self {
            id: a.id.clone(),
            metric: a.metric,
            change: a.change,
            percent: a.percent,
            window_hours: a.window_hours,
            created_at: rfc3339(mongodb::bson::DateTime::from_millis(a.created_ms)),
        }
    }
}

async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<AlertView>>, ApiError> {
    site_for(&state, &auth, &id, Role::Admin).await?;
    let team = read_team(&state, &id).await?;
    Ok(Json(team.map(|t| t.alerts.iter().map(AlertView::from).collect()).unwrap_or_default()))
}

async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<impl IntoResponse, ApiError> {
    let spec = AlertSpec::parse(&body).map_err(ApiError::InvalidAlert)?;
    site_for(&state, &auth, &id, Role::Admin).await?;
    let entry = AlertEntry::new(keys::new_id()?, spec, state.clock.now_ms());
    change_team(&state, &id, |team| {
        if team.alerts.len() >= MAX_ALERTS_PER_SITE {
            return Err(ApiError::AlertConflict(format!(
                "alerts: a site has at most {MAX_ALERTS_PER_SITE} alerts; delete one first"
            )));
        }
        team.alerts.push(entry.clone());
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(AlertView::from(&entry))))
}

async fn remove(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, alert_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    site_for(&state, &auth, &id, Role::Admin).await?;
    change_team(&state, &id, |team| {
        let at = team.alerts.iter().position(|a| a.id == alert_id).ok_or(ApiError::NotFound)?;
        team.alerts.remove(at);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
