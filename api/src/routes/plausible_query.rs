//! `POST /api/v2/query`: Plausible's Stats API v2 query (issue 23), answered from the rollups
//! with the native stats' own reads and arithmetic ([`crate::plausible_query`] says which
//! subset, and words every refusal). In Plausible's order:
//!
//! 1. The body: at most the api's 16 KiB (413 `payload_too_large` past it, as every route).
//!    Read as JSON when sent as JSON; any other body has no fields, as Plausible reads it.
//! 2. Who asks: a Stats API key, or a login token. Without `Authorization: Bearer`, 401 "Missing
//!    API key…"; with a key or token that is not live, 401 "Invalid API key or site ID…".
//! 3. The site: `site_id` is a domain (400 "Missing site ID…" without one). The oldest site on
//!    that domain that the caller may read answers; none is 401 "Invalid API key or site ID…",
//!    Plausible's answer for a site the key cannot read, so a key cannot probe domains.
//! 4. The query, parsed and checked (400 `{"error": …}`), then its goal by name.
//! 5. The rows, read by `_id` like every stats read, then the answer.
//!
//! Every error is `{"error": message}`, Plausible's shape, except what any route answers
//! (413, 503 with the envelope).

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode, header},
    routing::post,
};
use chrono_tz::Tz;
use serde_json::{Map, Value};
use shared::{rollup::Dim, store::SiteDoc, time};

use crate::{
    error::ApiError,
    extractors::Reader,
    plausible_query::{self as pq, Answer, Dimension, Metric, Query, QueryError, Row, Scope, Source},
    routes::{goals::live_goals, sites::readable_site_by_domain},
    state::AppState,
    stats::{self, RollupRow},
    stats_store,
    timeframe::Range,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v2/query", post(query))
}

const MISSING_KEY: &str = "Missing API key. Please use a valid Plausible API key as a Bearer Token.";
const INVALID_KEY: &str =
    "Invalid API key or site ID. Please make sure you're using a valid API key with access to the site you've requested.";
const MISSING_SITE: &str = "Missing site ID. Please provide the required site_id parameter with your request.";

fn plausible(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError::Plausible { status, message: message.into() }
}

impl From<QueryError> for ApiError {
    fn from(QueryError(message): QueryError) -> Self {
        plausible(StatusCode::BAD_REQUEST, message)
    }
}

/// The request's fields: a JSON object sent as JSON, else none.
fn params(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"));
    if !json || body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        // Plausible keeps a body that is not an object aside: the request has no fields.
        Ok(_) => Ok(Map::new()),
        Err(e) => Err(plausible(StatusCode::BAD_REQUEST, format!("Invalid JSON body: {e}"))),
    }
}

fn has_bearer(headers: &HeaderMap) -> bool {
    // The schemes the api's own extractor takes.
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    value.is_some_and(|v| v.starts_with("Bearer ") || v.starts_with("bearer "))
}

async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    reader: Result<Reader, ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Answer>, ApiError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        _ => plausible(StatusCode::BAD_REQUEST, rejection.body_text()),
    })?;
    let params = params(&headers, &body)?;
    let reader = match reader {
        Ok(reader) => reader,
        Err(ApiError::Unauthorized(_)) if has_bearer(&headers) => {
            return Err(plausible(StatusCode::UNAUTHORIZED, INVALID_KEY));
        }
        Err(ApiError::Unauthorized(_)) => return Err(plausible(StatusCode::UNAUTHORIZED, MISSING_KEY)),
        Err(other) => return Err(other),
    };
    let site_id =
        params.get("site_id").and_then(Value::as_str).ok_or_else(|| plausible(StatusCode::BAD_REQUEST, MISSING_SITE))?;
    let invalid = || plausible(StatusCode::UNAUTHORIZED, INVALID_KEY);
    let domain = shared::site::parse_domain(site_id).ok_or_else(invalid)?;
    let site = readable_site_by_domain(&state, &reader, &domain).await?.ok_or_else(invalid)?;
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let query = pq::parse(&params, time::local_day(state.clock.now_ms(), tz))?;
    let rows = rows(&state, &site, tz, &query).await?;
    Ok(Json(pq::answer(&query, &site.domain, tz, rows)))
}

fn traffic(row: RollupRow, events: i64) -> Source {
    Source::Traffic { row, events }
}

/// The rows of the site, a day range or a page or value's points: one row of their total
/// without a dimension, else one per day with data.
fn point_rows(points: Vec<(String, RollupRow)>, events: &HashMap<String, i64>, dimension: Option<Dimension>) -> Vec<Row> {
    match dimension {
        Some(Dimension::Day) => pq::day_rows(points, events),
        _ => vec![Row { dimension: None, source: traffic(stats::total(&points), events.values().sum()) }],
    }
}

/// One row per live goal with conversions, oldest goal first (`counts` by goal id).
fn goal_rows(goals: &[(String, String)], counts: &HashMap<String, i64>, sessions: i64) -> Vec<Row> {
    goals
        .iter()
        .filter_map(|(id, name)| counts.get(id).filter(|n| **n > 0).map(|n| (name, *n)))
        .map(|(name, conversions)| Row { dimension: Some(name.clone()), source: Source::Goal { conversions, sessions } })
        .collect()
}

/// Reads what `query` needs and turns it into rows, the way the native stats read the same
/// range, page or filter.
async fn rows(state: &AppState, site: &SiteDoc, tz: Tz, query: &Query) -> Result<Vec<Row>, ApiError> {
    let range = Range::Days { label: "custom".into(), from: query.from, to: query.to };
    let (db, site_id) = (&state.db, site.id.as_str());
    // Imported days count as the site's own (Plausible's `include.imports` on), except under a
    // visit filter, which counts sessions an import does not have.
    let with_imports = stats_store::Scope::of_site(site);
    let observe = |docs: usize| state.metrics.stats_documents_read.observe(docs as f64);
    let goals: Vec<(String, String)> = if matches!(query.scope, Scope::Goal(_)) || query.dimension == Some(Dimension::Goal) {
        live_goals(state, site_id).await?.into_iter().map(|g| (g.id, g.name)).collect()
    } else {
        Vec::new()
    };
    let none = HashMap::new();
    let rows = match (&query.scope, query.dimension) {
        (Scope::Site, None | Some(Dimension::Day)) => {
            let t = stats_store::load_totals(db, &with_imports, &range, tz, query.metrics.contains(&Metric::Events), false)
                .await?;
            observe(t.docs_read);
            point_rows(t.points, &t.events, query.dimension)
        }
        (Scope::Site, Some(Dimension::Page)) => {
            let (pages, docs) = stats_store::load_page_rows(db, &with_imports, &range, tz, pq::MAX_LIMIT).await?;
            observe(docs);
            pages.into_iter().map(|(path, row)| Row { dimension: Some(path), source: traffic(row, 0) }).collect()
        }
        (Scope::Site, Some(Dimension::Visit(d))) => {
            let (values, docs) =
                stats_store::load_filter_values(db, site_id, &range, tz, d.filter_dim(), pq::MAX_LIMIT).await?;
            observe(docs);
            values
                .into_iter()
                .filter(|(_, v)| v.row.pageviews > 0 || v.row.sessions > 0)
                .map(|(value, v)| Row { dimension: Some(d.to_plausible(&value)), source: traffic(v.row, 0) })
                .collect()
        }
        (Scope::Site, Some(Dimension::Goal)) => {
            let t = stats_store::load_totals(db, &with_imports, &range, tz, false, true).await?;
            observe(t.docs_read);
            goal_rows(&goals, &t.goals, stats::total(&t.points).sessions)
        }
        (Scope::Page(path), _) => {
            let loaded = stats_store::load(db, &with_imports, &range, tz, Some(path)).await?;
            observe(loaded.docs_read);
            point_rows(loaded.inputs.points, &none, query.dimension)
        }
        (Scope::Visit(d, value), dimension) => {
            let mut loaded = stats_store::load_filter(db, site_id, &range, tz, d.filter_dim(), value).await?;
            observe(loaded.docs_read);
            if dimension == Some(Dimension::Goal) {
                let counts =
                    loaded.inputs.lists.remove(&Dim::Goal).unwrap_or_default().into_iter().map(|r| (r.key, r.count));
                goal_rows(&goals, &counts.collect(), stats::total(&loaded.inputs.points).sessions)
            } else {
                point_rows(loaded.inputs.points, &none, dimension)
            }
        }
        (Scope::Goal(name), Some(Dimension::Visit(d))) => {
            let goal = pq::goal_id(&goals, name)?;
            let (values, docs) =
                stats_store::load_filter_values(db, site_id, &range, tz, d.filter_dim(), pq::MAX_LIMIT).await?;
            observe(docs);
            values
                .into_iter()
                .filter_map(|(value, v)| {
                    let conversions = v.goals.get(goal).copied().filter(|n| *n > 0)?;
                    let source = Source::Goal { conversions, sessions: v.row.sessions };
                    Some(Row { dimension: Some(d.to_plausible(&value)), source })
                })
                .collect()
        }
        (Scope::Goal(name), dimension) => {
            let goal = pq::goal_id(&goals, name)?;
            let t = stats_store::load_totals(db, &with_imports, &range, tz, false, true).await?;
            observe(t.docs_read);
            let conversions = t.goals.get(goal).copied().unwrap_or(0);
            let source = Source::Goal { conversions, sessions: stats::total(&t.points).sessions };
            match dimension {
                None => vec![Row { dimension: None, source }],
                _ if conversions > 0 => vec![Row { dimension: Some(name.clone()), source }],
                _ => Vec::new(),
            }
        }
    };
    Ok(rows)
}
