//! `GET /api/stats/{id}`, `/api/stats/{id}/export.csv` and `/api/stats/{id}/realtime`:
//! precomputed stats of one of the caller's sites. [`compute`] also serves shared links.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use chrono_tz::Tz;
use serde::Serialize;
use shared::{store::SiteDoc, time};

use crate::{
    access::readable_site,
    error::ApiError,
    extractors::Reader,
    routes::goals::live_goals,
    state::AppState,
    stats::{self, GoalName, Meta, Stats},
    stats_store,
    timeframe::Range,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/stats/{id}", get(read))
        .route("/api/stats/{id}/export.csv", get(export))
        .route("/api/stats/{id}/realtime", get(realtime))
        .route("/api/stats/{id}/page", get(page))
        .route("/api/stats/{id}/events/{name}", get(event_props))
}

/// Longest page filter, in bytes: a longer one names no page.
pub const MAX_PAGE_FILTER: usize = 2048;

/// The `path` of a page view or an overlay: `/` then anything but a query or a fragment, at
/// most [`MAX_PAGE_FILTER`] characters.
pub fn page_path(raw: Option<&str>) -> Result<String, ApiError> {
    let invalid = |why: &str| ApiError::InvalidRequest(format!("path: {why}"));
    let p = raw.ok_or_else(|| invalid("is required"))?;
    if !p.starts_with('/') || p.contains(['?', '#']) {
        return Err(invalid("must be a URL path: / then no ? or #"));
    }
    if p.chars().count() > MAX_PAGE_FILTER {
        return Err(invalid("must be at most 2048 characters"));
    }
    Ok(p.to_string())
}

/// The attention view of one page of `site` (`path`, `timeframe` or `from`/`to` in `params`):
/// what the owner, a shared link and an overlay see.
pub async fn page_view(
    state: &AppState,
    site: &SiteDoc,
    path: &str,
    params: &HashMap<String, String>,
) -> Result<crate::attention::PageView, ApiError> {
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let get = |k: &str| params.get(k).map(String::as_str);
    let range = Range::resolve(get("timeframe"), get("from"), get("to"), tz, state.clock.now_ms())?;
    let (view, docs_read) = stats_store::load_attention(&state.db, &site.id, &range, tz, path).await?;
    state.metrics.stats_documents_read.observe(docs_read as f64);
    Ok(view)
}

async fn page(
    State(state): State<AppState>,
    reader: Reader,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<crate::attention::PageView>, ApiError> {
    let site = readable_site(&state, &reader, &id).await?;
    let path = page_path(params.get("path").map(String::as_str))?;
    Ok(Json(page_view(&state, &site, &path, &params).await?))
}

/// The properties of custom event `name` of `site` (v3): what the owner and a shared link see.
pub async fn event_view(
    state: &AppState,
    site: &SiteDoc,
    name: &str,
    params: &HashMap<String, String>,
) -> Result<stats_store::EventProps, ApiError> {
    if name.is_empty() || name.chars().count() > shared::event::MAX_EVENT_NAME_CHARS {
        return Err(ApiError::InvalidRequest("name: must be 1 to 64 characters".into()));
    }
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let get = |k: &str| params.get(k).map(String::as_str);
    let range = Range::resolve(get("timeframe"), get("from"), get("to"), tz, state.clock.now_ms())?;
    let (view, docs_read) = stats_store::load_event_props(&state.db, &site.id, &range, tz, name).await?;
    state.metrics.stats_documents_read.observe(docs_read as f64);
    Ok(view)
}

async fn event_props(
    State(state): State<AppState>,
    reader: Reader,
    Path((id, name)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<stats_store::EventProps>, ApiError> {
    let site = readable_site(&state, &reader, &id).await?;
    Ok(Json(event_view(&state, &site, &name, &params).await?))
}

/// The query of a stats view: range, comparison, page filter.
pub struct StatsQuery {
    pub range: Range,
    pub compare: bool,
    pub page: Option<String>,
    /// A one-click filter: (dimension, value).
    pub filter: Option<(String, String)>,
    /// A saved segment's id.
    pub segment: Option<String>,
    /// The experiment's control variant (`?control=NAME`).
    pub control: Option<String>,
}

/// Longest filter value, in characters.
pub const MAX_FILTER_VALUE: usize = 2048;

/// `filter=dimension:value`: one of the segment dimensions, an exact value.
fn parse_filter(raw: &str) -> Result<(String, String), ApiError> {
    let invalid = |why: String| ApiError::InvalidRequest(format!("filter: {why}"));
    let (dim, value) = raw.split_once(':').ok_or_else(|| invalid("must be dimension:value".into()))?;
    if !shared::rollup::FILTER_DIMS.contains(&dim) {
        let shown: String = dim.chars().take(40).collect();
        return Err(invalid(format!("{shown:?} is not one of {}", shared::rollup::FILTER_DIMS.join(", "))));
    }
    if value.is_empty() || value.chars().count() > MAX_FILTER_VALUE {
        return Err(invalid(format!("the value must be 1 to {MAX_FILTER_VALUE} characters")));
    }
    Ok((dim.to_string(), value.to_string()))
}

impl StatsQuery {
    /// Parses `timeframe`, `from`/`to`, `compare` and `page` in the site's zone at `now_ms`.
    pub fn parse(params: &HashMap<String, String>, tz: Tz, now_ms: i64) -> Result<Self, ApiError> {
        let get = |k: &str| params.get(k).map(String::as_str);
        let range = Range::resolve(get("timeframe"), get("from"), get("to"), tz, now_ms)?;
        let compare = match get("compare") {
            None | Some("") => false,
            Some("previous") => true,
            Some(other) => {
                let shown: String = other.chars().take(20).collect();
                return Err(ApiError::InvalidTimeframe(format!("compare: {shown:?} is not 'previous'")));
            }
        };
        // Any other value is simply a page nobody viewed: zeros, as for an unknown path.
        let page = get("page")
            .filter(|p| !p.is_empty())
            .map(|p| if p.len() > MAX_PAGE_FILTER { "\u{0}".to_string() } else { p.to_string() });
        let filter = get("filter").filter(|f| !f.is_empty()).map(parse_filter).transpose()?;
        if filter.is_some() && page.is_some() {
            return Err(ApiError::InvalidRequest("filter: cannot be combined with page".into()));
        }
        let segment = get("segment").filter(|s| !s.is_empty()).map(str::to_string);
        let control = get("control").filter(|c| !c.is_empty()).map(str::to_string);
        Ok(Self { range, compare, page, filter, segment, control })
    }
}

/// The stats of `site` for `query`: what the owner and a shared link see.
pub async fn compute(state: &AppState, site: &SiteDoc, query: &StatsQuery) -> Result<Stats, ApiError> {
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let now_ms = state.clock.now_ms();
    let page = query.page.as_deref();
    // A segment is read as a site of its own: its rollups are written under its lens id.
    let segment = match &query.segment {
        Some(id) => Some(
            crate::routes::segments::live_segments(state, &site.id)
                .await?
                .into_iter()
                .find(|s| s.id == *id)
                .ok_or(ApiError::NotFound)?,
        ),
        None => None,
    };
    // Imported days add to the site's own stats; a segment's sessions are not known of them.
    let scope = match &segment {
        Some(s) => stats_store::Scope::bare(&shared::segment::lens_site(&site.id, &s.id)),
        None => stats_store::Scope::of_site(site),
    };
    let scope = &scope;
    let load = |range: Range| async move {
        match &query.filter {
            Some((dim, value)) => stats_store::load_filter(&state.db, &scope.site_id, &range, tz, dim, value).await,
            None => stats_store::load(&state.db, scope, &range, tz, page).await,
        }
    };
    let loaded = load(query.range.clone()).await?;
    state.metrics.stats_documents_read.observe(loaded.docs_read as f64);
    let goals: Vec<GoalName> =
        live_goals(state, &site.id).await?.into_iter().map(|g| GoalName { id: g.id, name: g.name }).collect();
    let (label, from, to, hourly) = match &query.range {
        Range::Days { label, from, to } => (label.clone(), time::day_string(*from), time::day_string(*to), false),
        Range::Hours { label, hours } => {
            let first = hours.first().copied().unwrap_or_default();
            (
                label.clone(),
                time::day_string(time::local_day(first * 1000, tz)),
                time::day_string(time::local_day(now_ms, tz)),
                true,
            )
        }
    };
    let meta = Meta {
        site_id: site.id.clone(),
        timeframe: label,
        timezone: site.timezone.clone(),
        from,
        to,
        hourly,
        page: query.page.clone(),
        currency: site.currency.clone(),
    };
    let mut out = stats::assemble(meta, loaded.inputs, &goals);
    out.filter = query.filter.as_ref().map(|(d, v)| format!("{d}:{v}"));
    out.segment = segment.as_ref().map(|s| s.id.clone());
    if query.control.is_some() {
        out.experiment = stats::experiment(&mut out.variants, query.control.as_deref());
    }
    out.backfilling = segment.as_ref().map(|s| s.backfilling);
    if query.compare {
        let previous = query.range.previous(tz);
        let before = load(previous).await?;
        state.metrics.stats_documents_read.observe(before.docs_read as f64);
        out.previous = Some(stats::summarize(&before.inputs.points, before.inputs.distinct_visitors));
        out.previous_series = Some(stats::series(before.inputs.points));
    }
    Ok(out)
}

async fn read(
    State(state): State<AppState>,
    reader: Reader,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Stats>, ApiError> {
    let site = readable_site(&state, &reader, &id).await?;
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let query = StatsQuery::parse(&params, tz, state.clock.now_ms())?;
    Ok(Json(compute(&state, &site, &query).await?))
}

/// The series of a view as CSV: a header, then one row per point.
pub fn csv(stats: &Stats) -> String {
    let mut out = String::from("start,pageviews,visitors,sessions,clicks,conversions\n");
    for p in &stats.series {
        // Every field is a date or a number: nothing to quote, nothing a spreadsheet evaluates.
        out.push_str(&format!("{},{},{},{},{},{}\n", p.start, p.pageviews, p.visitors, p.sessions, p.clicks, p.conversions));
    }
    out
}

async fn export(
    State(state): State<AppState>,
    reader: Reader,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let site = readable_site(&state, &reader, &id).await?;
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let mut query = StatsQuery::parse(&params, tz, state.clock.now_ms())?;
    query.compare = false;
    let stats = compute(&state, &site, &query).await?;
    let filename = format!("convertpulse-{}-{}-{}.csv", site.id, stats.from, stats.to);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        csv(&stats),
    )
        .into_response())
}

#[derive(Serialize)]
struct Minute {
    minute: String,
    pageviews: u64,
}

#[derive(Serialize)]
struct PageNow {
    path: String,
    visitors: u64,
}

#[derive(Serialize)]
struct Realtime {
    visitors_5m: u64,
    pageviews_30m: Vec<Minute>,
    top_pages_5m: Vec<PageNow>,
}

async fn realtime(
    State(state): State<AppState>,
    reader: Reader,
    Path(id): Path<String>,
) -> Result<Json<Realtime>, ApiError> {
    let site = readable_site(&state, &reader, &id).await?;
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let live = stats_store::load_live(&state.db, &site.id, tz, state.clock.now_ms()).await?;
    Ok(Json(Realtime {
        visitors_5m: live.visitors_5m,
        pageviews_30m: live.pageviews.into_iter().map(|(minute, pageviews)| Minute { minute, pageviews }).collect(),
        top_pages_5m: live.top_pages_5m.into_iter().map(|(path, visitors)| PageNow { path, visitors }).collect(),
    }))
}
