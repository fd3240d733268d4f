//! The static site: landing, login, register, dashboard, the demo landing page, the tracker
//! snippet and assets. Every page carries a strict Content-Security-Policy: scripts only from
//! our origin, no inline script, no eval.

use axum::{
    Router,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use mongodb::bson::doc;
use shared::store::{site_fields, user_fields};
use shared::telemetry::Chain;
use tower_http::{
    services::{ServeDir, ServeFile},
    set_header::SetResponseHeaderLayer,
};

use crate::state::AppState;

/// The policy of our own pages.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn router(state: &AppState) -> Router<AppState> {
    let assets = ServeDir::new(state.config.web_dir.join("assets"));
    // The charting library comes from npm (package-lock.json), never from a CDN.
    let chart_js = ServeFile::new(state.config.node_modules_dir.join("chart.js/dist/chart.umd.min.js"));
    Router::new()
        .route("/", get(|s: State<AppState>| page(s, "index")))
        .route("/login", get(|s: State<AppState>| page(s, "login")))
        .route("/register", get(|s: State<AppState>| page(s, "register")))
        .route("/dashboard", get(|s: State<AppState>| page(s, "dashboard")))
        .route("/share/{token}", get(shared_page))
        .route("/demo", get(demo))
        .route("/invite/{token}", get(|s: State<AppState>| page(s, "invite")))
        .route("/convertpulse.js", get(snippet))
        .nest_service("/assets", assets)
        .route_service("/vendor/chart.umd.min.js", chart_js)
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        ))
}

fn html(body: String, cache: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, cache)], body).into_response()
}

async fn read_or_404(path: std::path::PathBuf) -> Result<String, Response> {
    tokio::fs::read_to_string(&path).await.map_err(|e| {
        tracing::error!(error = %Chain(&e), path = %path.display(), "static file missing");
        shared::http::error_response(StatusCode::NOT_FOUND, shared::error::ErrorCode::NotFound, "page not found")
    })
}

async fn page(State(state): State<AppState>, name: &str) -> Response {
    match read_or_404(state.config.web_dir.join(format!("{name}.html"))).await {
        Ok(body) => {
            html(body.replace("__CP_INGEST__", &html_attr(state.config.ingest_public_url.trim_end_matches('/'))), "no-cache")
        }
        Err(res) => res,
    }
}

/// A shared dashboard: the read-only page, answered 404 (same page, which then says the link
/// is no longer valid) when the token opens nothing. The token never leaves in a Referer.
async fn shared_page(State(state): State<AppState>, axum::extract::Path(token): axum::extract::Path<String>) -> Response {
    let status = match crate::share_links::site_by_token(&state, &token).await {
        Ok(Some(_)) => StatusCode::OK,
        Ok(None) => StatusCode::NOT_FOUND,
        Err(e) => return e.into_response(),
    };
    let mut res = page(State(state), "share").await;
    if res.status() == StatusCode::OK {
        *res.status_mut() = status;
        res.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The tracker: long-lived in caches (its URL is what customers paste, so it cannot carry a
/// version; a day keeps updates reasonably quick).
async fn snippet(State(state): State<AppState>) -> Response {
    tracker_script(&state, "convertpulse.min.js", "convertpulse.js", "public, max-age=86400, stale-while-revalidate=604800")
        .await
}

/// A script of the tracker's folder for any page to load: `dist/<minified>` when built, else
/// `<source>`.
pub async fn tracker_script(state: &AppState, minified: &str, source: &str, cache: &'static str) -> Response {
    let dir = &state.config.tracker_dir;
    let built = dir.join("dist").join(minified);
    let path = if tokio::fs::try_exists(&built).await.unwrap_or(false) { built } else { dir.join(source) };
    match read_or_404(path).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, cache),
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            ],
            body,
        )
            .into_response(),
        Err(res) => res,
    }
}

/// The demo landing page, wired to the demo account's first site. It is on only when
/// `CP_DEMO_EMAIL` names an account that exists and has a site (what `make run` seeds);
/// otherwise it answers 404, so the page never reports to an account anyone could register.
async fn demo(State(state): State<AppState>) -> Response {
    let Some(key) = demo_key(&state).await else {
        let body = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Demo off · ConvertPulse</title>\
<link rel=\"stylesheet\" href=\"/assets/app.css\"></head><body class=\"auth\"><main class=\"auth-card\"><h1>The demo is off</h1>\
<p>This server has no demo site. <code>make run</code> seeds one and turns this page on.</p>\
<p><a href=\"/\">ConvertPulse</a></p></main></body></html>";
        return (StatusCode::NOT_FOUND, html(body.to_string(), "no-store")).into_response();
    };
    let template = match read_or_404(state.config.tracker_dir.join("demo.html")).await {
        Ok(t) => t,
        Err(res) => return res,
    };
    let endpoint = format!("{}/api/events/batch", state.config.ingest_public_url.trim_end_matches('/'));
    let body = template.replace("__CP_KEY__", &html_attr(&key)).replace("__CP_ENDPOINT__", &html_attr(&endpoint));
    let csp = format!("{CSP}; connect-src 'self' {}", origin_of(&state.config.ingest_public_url))
        .replace("connect-src 'self'; ", "");
    let mut res = html(body, "no-cache");
    if let Ok(v) = HeaderValue::from_str(&csp) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

async fn demo_key(state: &AppState) -> Option<String> {
    let email = state.config.demo_email.as_deref()?;
    let user = state.users.find_one(doc! {user_fields::EMAIL: email}).await.ok()??;
    let site = state
        .sites
        .find_one(doc! {site_fields::OWNER_ID: &user.id})
        .sort(doc! {site_fields::CREATED_AT: 1})
        .await
        .ok()??;
    Some(site.api_key.into_string())
}

fn origin_of(url: &str) -> String {
    url::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_default()
}

fn html_attr(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}
