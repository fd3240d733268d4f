//! `POST /api/keys`, `GET /api/keys`, `DELETE /api/keys/{id}`: a user's Stats API keys (v3;
//! [`crate::stats_keys`]). Only a logged-in user manages keys: a key answers 403 `read_only`.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::IntoResponse,
    routing::{delete, get},
};
use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use serde::{Deserialize, Serialize};
use shared::{names::collections as c, store::site_fields};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::{
    error::ApiError,
    extractors::{ApiJson, AuthUser},
    state::AppState,
    stats_keys::{self, ALL_SITES, KeyView, MAX_KEY_SITES},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/keys", get(list).post(create))
        .route("/api/keys/{id}", delete(remove))
        // The key is shown once: no cache keeps it.
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
}

#[derive(Deserialize)]
struct CreateBody {
    name: Option<serde_json::Value>,
    sites: Option<serde_json::Value>,
}

/// The key as made: the only time it is shown.
#[derive(Serialize)]
struct Created {
    #[serde(flatten)]
    view: KeyView,
    key: String,
}

fn invalid(why: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest(why.into())
}

async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let name = match body.name {
        Some(serde_json::Value::String(n)) => n,
        _ => return Err(invalid("name: must be a string of 1 to 100 characters")),
    };
    let name = shared::goal::parse_name(Some(&name))
        .map_err(|_| invalid("name: must be 1 to 100 characters, without control characters"))?;
    let sites = match body.sites {
        Some(serde_json::Value::String(s)) if s == ALL_SITES => vec![ALL_SITES.to_string()],
        Some(serde_json::Value::Array(ids)) if !ids.is_empty() && ids.len() <= MAX_KEY_SITES => {
            let own: Vec<String> = state
                .db
                .collection::<Document>(c::SITES)
                .find(doc! {site_fields::OWNER_ID: &auth.user_id})
                .projection(doc! {site_fields::ID: 1})
                .await?
                .try_collect::<Vec<Document>>()
                .await?
                .iter()
                .filter_map(|d| d.get_str(site_fields::ID).ok().map(str::to_string))
                .collect();
            let mut out: Vec<String> = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                match id.as_str() {
                    Some(id) if own.iter().any(|o| o == id) => {
                        if !out.iter().any(|o| o == id) {
                            out.push(id.to_string());
                        }
                    }
                    _ => return Err(invalid(format!("sites[{i}]: must be the id of one of your sites"))),
                }
            }
            out
        }
        _ => return Err(invalid(format!("sites: must be \"*\" or a list of 1 to {MAX_KEY_SITES} of your site ids"))),
    };
    let (entry, key) = stats_keys::create(&state, &auth.user_id, name, sites).await?;
    Ok((StatusCode::CREATED, Json(Created { view: KeyView::from(&entry), key })))
}

async fn list(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Vec<KeyView>>, ApiError> {
    Ok(Json(stats_keys::list(&state, &auth.user_id).await?.iter().map(KeyView::from).collect()))
}

async fn remove(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    stats_keys::delete(&state, &auth.user_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
