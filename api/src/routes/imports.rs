//! Imports of Plausible's "Export data" zip and exports in the same format (v3;
//! [`shared::imports`]):
//! Uploading and deleting are the owner's; members list imports and, like a Stats API key,
//! read `export.zip`.
//! - `POST /api/sites/{id}/imports` — the zip as the body; read whole before anything is kept,
//!   its days stored as chunks for an aggregator to count ([`shared::backfill::ItemKind::Import`]);
//!   202 `{id}`. A bad file is listed `failed` with its file and line, and applies nothing.
//! - `GET /api/sites/{id}/imports` — the site's imports.
//! - `DELETE /api/sites/{id}/imports/{import_id}` — the stats stop counting it at once; its
//!   data is removed.
//! - `GET /api/sites/{id}/export.zip` — the site's days (its own and imported) as Plausible's
//!   export, so that importing it into another site gives that site the same stats.

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{delete, get},
};
use chrono::{Duration, NaiveDate};
use chrono_tz::Tz;
use mongodb::bson::{self, Document, doc};
use serde::Serialize;
use shared::{
    backfill::{BackfillDoc, ItemKind, Phase},
    imports::{self, ImportChunkDoc, ImportEntry, ImportError, ImportState, ImportedDay},
    names::collections as c,
    rollup::{Dim, Part},
    store::{SiteDoc, imports_rev_filter, site_fields as f},
    team::Role,
    time,
};

use crate::{
    access::{readable_site, site_for},
    error::ApiError,
    extractors::{AuthUser, Reader},
    keys,
    state::AppState,
    stats_store::{self, Scope},
};

/// How long an upload or an export may take: a year of a busy site's days is tens of
/// megabytes to read or write (`make bench-history`), past the 10 s of every other route.
pub const SLOW_ROUTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// These routes run under [`SLOW_ROUTE_TIMEOUT`] instead of the api's 10 s (`crate::router`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sites/{id}/imports", get(list).post(upload))
        .route("/api/sites/{id}/imports/{import_id}", delete(remove))
        .route("/api/sites/{id}/export.zip", get(export))
        .layer(axum::middleware::from_fn(shared::http::envelope_405))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, SLOW_ROUTE_TIMEOUT))
}

/// An import as listed.
#[derive(Serialize)]
struct ImportView {
    id: String,
    state: ImportState,
    from: Option<String>,
    to: Option<String>,
    error: Option<String>,
}

impl From<&ImportEntry> for ImportView {
    fn from(e: &ImportEntry) -> Self {
        Self { id: e.id.clone(), state: e.state, from: e.from.clone(), to: e.to.clone(), error: e.error.clone() }
    }
}

#[derive(Serialize)]
struct Created {
    id: String,
}

async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<ImportView>>, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Viewer).await?.site;
    Ok(Json(site.imports.iter().map(ImportView::from).collect()))
}

fn too_large() -> ApiError {
    ApiError::UploadTooLarge(format!(
        "body: an import is at most {} MiB (the zip as exported)",
        imports::MAX_UPLOAD_BYTES / (1024 * 1024)
    ))
}

async fn upload(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Owner).await?.site;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.starts_with("multipart/") {
        return Err(ApiError::InvalidRequest(
            "body: send the zip file itself (Content-Type: application/zip), not a form".into(),
        ));
    }
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > imports::MAX_UPLOAD_BYTES as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, imports::MAX_UPLOAD_BYTES).await.map_err(|_| too_large())?;
    if bytes.is_empty() && content_type.is_empty() {
        return Err(ApiError::InvalidRequest(
            "body: required: the zip that Plausible's \"Export data\" produces (Content-Type: application/zip)".into(),
        ));
    }
    // An empty file is an import with nothing in it: listed failed, like any bad file.
    let parsed = if bytes.is_empty() {
        Ok(Vec::new())
    } else {
        tokio::task::spawn_blocking(move || imports::parse_zip(&bytes))
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("import parse: {e}")))?
    };
    let import_id = format!("imp{}", keys::new_id()?);
    let now = state.clock.now_ms();
    let mut entry = ImportEntry {
        id: import_id.clone(),
        state: ImportState::Failed,
        from: None,
        to: None,
        error: None,
        created_ms: now,
        merged: false,
    };
    let days = match parsed {
        Ok(days) if days.is_empty() => {
            entry.error = Some("no day to import: send the zip that Plausible's \"Export data\" produces".into());
            None
        }
        Ok(days) => Some(days),
        Err(e) => {
            entry.error = Some(e.to_string());
            None
        }
    };
    let Some(days) = days else {
        add_entry(&state, &site, entry).await?;
        return Ok((StatusCode::ACCEPTED, Json(Created { id: import_id })));
    };
    entry.from = days.first().map(|d| d.date.clone());
    entry.to = days.last().map(|d| d.date.clone());
    entry.state = ImportState::Running;
    check_room(&site, &entry)?;
    let chunks = imports::chunks(days);
    let chunk_docs = chunks
        .into_iter()
        .enumerate()
        .map(|(i, days)| {
            bson::to_document(&ImportChunkDoc {
                id: ImportChunkDoc::id_of(&site.id, &import_id, i as i64 + 1),
                days,
                stored: Some(bson::DateTime::from_millis(now)),
            })
        })
        .collect::<Result<Vec<Document>, _>>()
        .map_err(|e| ApiError::Internal(e.into()))?;
    // A task of its own: a client that goes away (or the route's timeout) must not leave chunks
    // behind without their job and entry.
    let id = import_id.clone();
    tokio::spawn(async move { store(&state, &site, &id, entry, chunk_docs, now).await })
        .await
        .map_err(|e| ApiError::Internal(e.into()))??;
    Ok((StatusCode::ACCEPTED, Json(Created { id: import_id })))
}

/// Stores an import's chunks, then its job, then lists it; undoes what it wrote when it fails.
async fn store(
    state: &AppState,
    site: &SiteDoc,
    import_id: &str,
    entry: ImportEntry,
    chunk_docs: Vec<Document>,
    now: i64,
) -> Result<(), ApiError> {
    let n = chunk_docs.len() as i64;
    let job = BackfillDoc { phase: Phase::Scan, chunks: n, ..BackfillDoc::new(&site.id, ItemKind::Import, import_id, now) };
    let stored = async {
        // One chunk per insert: a chunk may be a megabyte, a batch of them more than a message.
        for d in chunk_docs {
            state.db.collection::<Document>(c::IMPORT_CHUNKS).insert_one(d).await?;
        }
        state.db.collection::<BackfillDoc>(c::BACKFILLS).insert_one(&job).await?;
        add_entry(state, site, entry).await
    }
    .await;
    if let Err(e) = stored {
        // Not listed: nothing of it may stay.
        let _ = state.db.collection::<Document>(c::BACKFILLS).delete_one(doc! {"_id": &job.id}).await;
        drop_chunks(state, &site.id, import_id, n).await;
        return Err(e);
    }
    Ok(())
}

/// Refuses `entry` when the site has no room for it or its days overlap a kept import's.
fn check_room(site: &SiteDoc, entry: &ImportEntry) -> Result<(), ApiError> {
    if let Some((from, to)) = entry.span() {
        let overlapping = site
            .imports
            .iter()
            .filter(|i| i.state != ImportState::Failed)
            .find(|i| i.span().is_some_and(|(a, b)| a <= to && from <= b));
        if let Some(other) = overlapping {
            return Err(ApiError::InvalidRequest(format!(
                "body: its days ({} to {}) overlap those of import {} ({} to {}); delete that one first",
                from,
                to,
                other.id,
                other.from.as_deref().unwrap_or(""),
                other.to.as_deref().unwrap_or("")
            )));
        }
    }
    let kept = site.imports.iter().filter(|i| i.state != ImportState::Failed).count();
    if kept >= imports::MAX_IMPORTS {
        return Err(ApiError::InvalidRequest(format!(
            "body: a site keeps at most {} imports; delete one first",
            imports::MAX_IMPORTS
        )));
    }
    Ok(())
}

/// Lists `entry` on the site, by compare-and-set on `imports_rev`, making room by dropping the
/// oldest failed imports.
async fn add_entry(state: &AppState, site: &SiteDoc, entry: ImportEntry) -> Result<(), ApiError> {
    let mut site = site.clone();
    for _ in 0..20 {
        if entry.state != ImportState::Failed {
            check_room(&site, &entry)?;
        }
        let mut list = site.imports.clone();
        while list.len() >= imports::MAX_IMPORTS {
            match list.iter().position(|i| i.state == ImportState::Failed) {
                Some(i) => {
                    list.remove(i);
                }
                None => break,
            }
        }
        if list.len() >= imports::MAX_IMPORTS {
            // Only failed ones can be here past the check above: the list is full of kept ones.
            return Err(ApiError::InvalidRequest(format!(
                "body: a site keeps at most {} imports; delete one first",
                imports::MAX_IMPORTS
            )));
        }
        list.push(entry.clone());
        if write_list(state, &site, &list).await? {
            return Ok(());
        }
        site = state.sites.find_one(doc! {f::ID: &site.id}).await?.ok_or(ApiError::NotFound)?;
    }
    Err(ApiError::Unavailable(anyhow::anyhow!("site {}: import list writes kept losing races", site.id)))
}

/// Writes the site's import list if it is still at the revision read; false when it is not.
async fn write_list(state: &AppState, site: &SiteDoc, list: &[ImportEntry]) -> Result<bool, ApiError> {
    let set = doc! {
        f::IMPORTS: bson::to_bson(list).map_err(|e| ApiError::Internal(e.into()))?,
        f::IMPORTS_REV: site.imports_rev + 1,
    };
    let r = state.sites.update_one(imports_rev_filter(&site.id, site.imports_rev), doc! {"$set": set}).await?;
    Ok(r.matched_count == 1)
}

async fn drop_chunks(state: &AppState, site_id: &str, import_id: &str, n: i64) {
    let ids: Vec<String> = (1..=n).map(|i| ImportChunkDoc::id_of(site_id, import_id, i)).collect();
    for group in ids.chunks(1000) {
        if let Err(e) = state.db.collection::<Document>(c::IMPORT_CHUNKS).delete_many(doc! {"_id": {"$in": group}}).await {
            tracing::warn!(error = %e, "import chunks left behind (removed by their job)");
        }
    }
}

async fn remove(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, import_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let mut site = site_for(&state, &auth, &id, Role::Owner).await?.site;
    let mut removed = None;
    for _ in 0..20 {
        let Some(pos) = site.imports.iter().position(|i| i.id == import_id) else { return Err(ApiError::NotFound) };
        let mut list = site.imports.clone();
        let entry = list.remove(pos);
        if write_list(&state, &site, &list).await? {
            removed = Some(entry);
            break;
        }
        site = site_for(&state, &auth, &id, Role::Owner).await?.site;
    }
    let Some(entry) = removed else {
        return Err(ApiError::Unavailable(anyhow::anyhow!("site {id}: import list writes kept losing races")));
    };
    // The stats no longer read it; now its job, its chunks and what it counted go.
    let job_id = BackfillDoc::id_of(&site.id, &entry.id);
    let job = state.db.collection::<BackfillDoc>(c::BACKFILLS).find_one(doc! {"_id": &job_id}).await?;
    state.db.collection::<Document>(c::BACKFILLS).delete_one(doc! {"_id": &job_id}).await?;
    if let Some(job) = job {
        drop_chunks(&state, &site.id, &entry.id, job.chunks).await;
    }
    if let Some((from, to)) = entry.span() {
        let ids = imports::lens_doc_ids(&site.id, &entry.id, from, to);
        for group in ids.chunks(1000) {
            state.db.collection::<Document>(c::ROLLUPS).delete_many(doc! {"_id": {"$in": group}}).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The parts each exported table reads.
fn parts_of(table: &str) -> Vec<Part> {
    match table {
        "visitors" => vec![Part::Series],
        "pages" | "entry_pages" | "exit_pages" => vec![Part::Top(Dim::Page)],
        "sources" => vec![Part::Top(Dim::Source), Part::Top(Dim::Campaign), Part::Top(Dim::Medium)],
        "locations" => vec![Part::Top(Dim::Country)],
        "devices" => vec![Part::Top(Dim::Device)],
        "browsers" => vec![Part::Top(Dim::Browser)],
        "operating_systems" => vec![Part::Top(Dim::Os)],
        _ => vec![Part::Top(Dim::Event)],
    }
}

/// Days read at a time for an export: what it holds at once is a month of one table.
const EXPORT_DAYS_PER_READ: i64 = 31;

fn parse_day(params: &HashMap<String, String>, name: &str) -> Result<Option<NaiveDate>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(v) => NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| ApiError::InvalidRequest(format!("{name}: must be a date (YYYY-MM-DD)"))),
    }
}

async fn export(
    State(state): State<AppState>,
    reader: Reader,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let site = readable_site(&state, &reader, &id).await?;
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let today = time::local_day(state.clock.now_ms(), tz);
    let created = time::local_day(site.created_at.timestamp_millis(), tz);
    let first_import = site.imports.iter().filter(|i| i.counts()).filter_map(|i| i.span().map(|s| s.0)).min();
    let oldest = today - Duration::days(imports::MAX_DAYS - 1);
    let from = parse_day(&params, "from")?.unwrap_or_else(|| first_import.map_or(created, |d| d.min(created)).max(oldest));
    let to = parse_day(&params, "to")?.unwrap_or(today);
    if from > to {
        return Err(ApiError::InvalidRequest("from: must not be after to".into()));
    }
    if (to - from).num_days() >= imports::MAX_DAYS {
        return Err(ApiError::InvalidRequest(format!("from: an export covers at most {} days", imports::MAX_DAYS)));
    }
    let scope = Scope::of_site(&site);
    let failed = |e: ImportError| ApiError::Internal(anyhow::anyhow!("export: {e}"));
    let mut zip = imports::ExportWriter::new(from, to);
    let mut docs_read = 0;
    for table in imports::EXPORT_TABLES {
        zip.start_table(table).map_err(failed)?;
        let parts = parts_of(table);
        let mut start = from;
        while start <= to {
            let end = (start + Duration::days(EXPORT_DAYS_PER_READ - 1)).min(to);
            let (days, read): (Vec<ImportedDay>, usize) =
                stats_store::load_days(&state.db, &scope, start, end, tz, &parts).await?;
            docs_read += read;
            zip.rows(&imports::export_rows(table, &days, &site.domain)).map_err(failed)?;
            start = end + Duration::days(1);
        }
    }
    let bytes = zip.finish().map_err(failed)?;
    tracing::debug!(site = %site.id, docs_read, bytes = bytes.len(), "export written");
    let filename = format!("convertpulse_export_{}_{}_{}.zip", site.domain, from.format("%Y%m%d"), to.format("%Y%m%d"));
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}
