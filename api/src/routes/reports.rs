//! `/api/sites/{id}/report`: the caller's weekly report of a site (opt-in, per member and
//! site), and `report/send`, the report of the 7 days up to now against the 7 days before,
//! mailed to the caller now. Any role may ask for its own report ([`crate::reports`]).

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use chrono::Duration as Days;
use chrono_tz::Tz;
use mongodb::bson::doc;
use serde::{Deserialize, Serialize};
use shared::{team::Role, time};

use crate::{
    access::{change_team, read_team, site_for},
    error::ApiError,
    extractors::{ApiJson, AuthUser},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/sites/{id}/report", get(read).put(set)).route("/api/sites/{id}/report/send", post(send_now))
}

#[derive(Debug, Serialize)]
struct ReportView {
    weekly: bool,
}

async fn read(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<Json<ReportView>, ApiError> {
    let access = site_for(&state, &auth, &id, Role::Viewer).await?;
    let team = read_team(&state, &id).await?;
    let weekly = match (access.role, team) {
        (_, None) => false,
        (Role::Owner, Some(t)) => t.owner_weekly,
        (_, Some(t)) => t.member(&auth.user_id).is_some_and(|m| m.weekly),
    };
    Ok(Json(ReportView { weekly }))
}

#[derive(Deserialize)]
struct SetBody {
    weekly: Option<serde_json::Value>,
}

async fn set(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetBody>,
) -> Result<Json<ReportView>, ApiError> {
    let weekly = body
        .weekly
        .as_ref()
        .and_then(serde_json::Value::as_bool)
        .ok_or_else(|| ApiError::InvalidRequest("weekly: must be true or false".into()))?;
    let access = site_for(&state, &auth, &id, Role::Viewer).await?;
    change_team(&state, &id, |team| {
        if access.role == Role::Owner {
            team.owner_weekly = weekly;
        } else {
            let m = team.members.iter_mut().find(|m| m.user_id.as_deref() == Some(auth.user_id.as_str()));
            // Removed meanwhile: as if the site did not exist.
            m.ok_or(ApiError::NotFound)?.weekly = weekly;
        }
        Ok(())
    })
    .await?;
    Ok(Json(ReportView { weekly }))
}

#[derive(Debug, Serialize)]
struct Sent {
    /// The caller's email.
    to: String,
    /// The first and last local day reported.
    from: String,
    until: String,
}

/// 202: queued; mailed within seconds while the SMTP server is up. At most one a minute per
/// caller and site (the outbox id has the minute): a second within it answers the same.
async fn send_now(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Viewer).await?.site;
    if !state.mailer.enabled() {
        return Err(ApiError::MailNotConfigured);
    }
    let user = state.users.find_one(doc! {"_id": &auth.user_id}).await?.ok_or(ApiError::NotFound)?;
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let now = state.clock.now_ms();
    let to = time::local_day(now, tz);
    let from = to - Days::days(6);
    let mail_id = format!("report-now:{}:{}:{}", site.id, auth.user_id, now / 60_000);
    let mail = crate::reports::mail(&state, &site, from, to, mail_id, user.email.as_str()).await?;
    state.mailer.queue(mail).await?;
    let body = Sent { to: user.email.as_str().to_string(), from: time::day_string(from), until: time::day_string(to) };
    Ok((StatusCode::ACCEPTED, Json(body)))
}
