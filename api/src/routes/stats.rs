//! `GET /api/stats/{id}`: precomputed stats of one of the caller's sites.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    routing::get,
};
use chrono_tz::Tz;
use shared::time;

use crate::{
    error::ApiError,
    extractors::AuthUser,
    router::AppState,
    routes::sites::owned_site,
    stats::{self, Meta, Stats},
    stats_store,
    timeframe::Range,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/stats/{id}", get(read))
}

async fn read(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Stats>, ApiError> {
    let site = owned_site(&state, &auth, &id).await?;
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let range = Range::resolve(
        params.get("timeframe").map(String::as_str),
        params.get("from").map(String::as_str),
        params.get("to").map(String::as_str),
        tz,
        now_ms,
    )?;
    let loaded = stats_store::load(&state.db, &site.id, &range, tz).await?;
    state.metrics.stats_documents_read.observe(loaded.docs_read as f64);
    let inputs = loaded.inputs;
    let (label, from, to, hourly) = match &range {
        Range::Days { label, from, to } => (label.clone(), time::day_string(*from), time::day_string(*to), false),
        Range::Hours { label, hours } => {
            let first = hours.first().copied().unwrap_or_default();
            (label.clone(), time::day_string(time::local_day(first * 1000, tz)), time::day_string(time::local_day(now_ms, tz)), true)
        }
    };
    let meta = Meta { site_id: site.id.clone(), timeframe: label, timezone: site.timezone.clone(), from, to, hourly };
    Ok(Json(stats::assemble(meta, inputs)))
}
