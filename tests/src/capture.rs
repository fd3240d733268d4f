//! A capture site for tracker tests that need the exact request bodies rather than stats: one
//! test-owned server that serves the landing pages in `tests/browser/pages/`, the snippet
//! minified from the current source, and a stand-in ingest endpoint that keeps every body it
//! receives and answers as told (202, or scripted 429/503 first).
//!
//! The pages reach it under two host names, `127.0.0.1` (the page's own host) and `localhost`
//! ("another host": the ingest endpoint and the outbound links), so cross-origin requests and
//! outbound clicks are real while nothing leaves the machine.
//!
//! Pages load `/__errors.js` ([`ERROR_COLLECTOR`]) first: it records what reaches their error
//! handlers and `console.error` where the driver has no error events of its own (WebKit over
//! classic WebDriver), from the page's first script on.
//!
//! [`batch_violation`] checks a body against the contract's bounds (v1 plus the v2 `event`
//! type and `variant`), so a test proves the server would never refuse what the snippet sent.

use std::{
    collections::{HashSet, VecDeque},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, Uri, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::wait;

/// The site key every capture page carries.
pub const SITE_KEY: &str = "site_key_test";

/// One request to the stand-in ingest endpoint.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The status it was answered with.
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

#[derive(Default)]
struct Inner {
    requests: Vec<Captured>,
    /// Statuses to answer the next requests with, before 202s.
    fail_with: VecDeque<u16>,
}

#[derive(Clone)]
struct AppState {
    inner: Arc<Mutex<Inner>>,
    port: u16,
}

/// A running capture site; lives as long as the test's runtime.
pub struct CaptureSite {
    /// `http://127.0.0.1:<port>`: where the pages are loaded from.
    pub base: String,
    /// `http://localhost:<port>`: the same server as another host.
    pub other: String,
    inner: Arc<Mutex<Inner>>,
}

impl CaptureSite {
    /// Starts a site whose ingest endpoint accepts everything.
    pub async fn start() -> Self {
        Self::start_failing(&[]).await
    }

    /// Starts a site whose ingest endpoint answers the first requests with `fail_with`
    /// (429 with Retry-After, 503, ...), then 202.
    pub async fn start_failing(fail_with: &[u16]) -> Self {
        // Minify before serving, off the runtime: it runs npm.
        tokio::task::spawn_blocking(minified_snippet).await.expect("minify task");
        let inner = Arc::new(Mutex::new(Inner { requests: Vec::new(), fail_with: fail_with.iter().copied().collect() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind capture site");
        let port = listener.local_addr().expect("addr").port();
        let app = Router::new()
            .route("/convertpulse.js", get(snippet))
            .route("/__errors.js", get(error_collector))
            .route("/api/events/batch", post(collect).options(preflight))
            .route("/__captured", get(counts))
            .fallback(page)
            .with_state(AppState { inner: inner.clone(), port });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base: format!("http://127.0.0.1:{port}"), other: format!("http://localhost:{port}"), inner }
    }

    /// Every request the ingest endpoint received, in arrival order.
    pub fn requests(&self) -> Vec<Captured> {
        self.inner.lock().expect("capture lock").requests.clone()
    }

    /// The events of every distinct batch (a retried batch_id once), ordered by client time,
    /// arrival order breaking ties. Panics on a body that is not JSON.
    pub fn events(&self) -> Vec<Value> {
        let mut seen = HashSet::new();
        let mut events = Vec::new();
        for r in self.requests() {
            let batch: Value = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("body is JSON ({e}): {}", r.body));
            if seen.insert(batch["batch_id"].as_str().unwrap_or_default().to_string()) {
                events.extend(batch["events"].as_array().cloned().unwrap_or_default());
            }
        }
        events.sort_by_key(|e| e["ts"].as_i64().unwrap_or(i64::MAX));
        events
    }

    /// Waits (with a deadline) until the received events satisfy `done`; returns them.
    pub async fn events_when(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let done = &done;
        match wait::poll(Duration::from_secs(10), || {
            let events = self.events();
            async move { done(&events).then_some(events) }
        })
        .await
        {
            Some(events) => events,
            None => panic!("timed out waiting for {what}; received: {}", json!(self.events())),
        }
    }
}

/// The snippet as `npm run build:tracker` minifies the current source (same flags, written to
/// stdout instead of `tracker/dist/`), once per test process.
pub fn minified_snippet() -> &'static [u8] {
    static SNIPPET: OnceLock<Vec<u8>> = OnceLock::new();
    SNIPPET.get_or_init(|| {
        let out = std::process::Command::new("npm")
            .args(["run", "-s", "build:tracker", "--", "--outfile=/dev/stdout"])
            .current_dir(workspace_root())
            .output()
            .expect("npm is installed (make test installs it)");
        assert!(out.status.success(), "npm run build:tracker failed: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!out.stdout.is_empty(), "esbuild printed nothing");
        out.stdout
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

async fn snippet() -> Response {
    ([(header::CONTENT_TYPE, "application/javascript; charset=utf-8")], minified_snippet()).into_response()
}

/// `tests/browser/page-errors.js`: records what reaches a page's error handlers and
/// `console.error`, for drivers without error events or init scripts (WebKit over classic
/// WebDriver). Test pages load it first, as `/__errors.js`.
pub const ERROR_COLLECTOR: &str = include_str!("../browser/page-errors.js");

async fn error_collector() -> Response {
    ([(header::CONTENT_TYPE, "application/javascript; charset=utf-8")], ERROR_COLLECTOR).into_response()
}

const CORS: (header::HeaderName, &str) = (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");

async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [CORS, (header::ACCESS_CONTROL_ALLOW_METHODS, "POST"), (header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type")],
    )
        .into_response()
}

async fn collect(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body = String::from_utf8_lossy(&body).into_owned();
    let accepted = serde_json::from_str::<Value>(&body).ok().and_then(|b| b["events"].as_array().map(Vec::len)).unwrap_or(0);
    let status = {
        let mut inner = state.inner.lock().expect("capture lock");
        let status = inner.fail_with.pop_front().unwrap_or(202);
        inner.requests.push(Captured { status, content_type, body });
        status
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED);
    match status {
        202 => (code, [CORS], axum::Json(json!({"accepted": accepted}))).into_response(),
        429 => (code, [CORS, (header::RETRY_AFTER, "1")], axum::Json(json!({"error": "rate_limited"}))).into_response(),
        _ => (code, [CORS, (header::RETRY_AFTER, "1")], axum::Json(json!({"error": "unavailable"}))).into_response(),
    }
}

async fn counts(State(state): State<AppState>) -> Response {
    let inner = state.inner.lock().expect("capture lock");
    let accepted = inner.requests.iter().filter(|r| r.status == 202).count();
    ([CORS], axum::Json(json!({"requests": inner.requests.len(), "accepted": accepted}))).into_response()
}

/// `/<name>[/...]` serves `pages/<name>.html` (so `/hostile/next` is the same single-page app);
/// any other path a plain page without the snippet (the outbound link's target).
async fn page(State(state): State<AppState>, uri: Uri) -> Response {
    let name = uri.path().trim_start_matches('/').split('/').next().unwrap_or_default().to_string();
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/pages").join(format!("{name}.html"));
    let html = match tokio::fs::read_to_string(&file).await {
        Ok(html) if valid => html,
        _ => return Html("<!doctype html><title>Elsewhere</title><p>Another site.</p>".to_string()).into_response(),
    };
    let port = state.port;
    let html = html
        .replace("__INGEST__", &format!("http://localhost:{port}/api/events/batch"))
        .replace("__OTHER__", &format!("http://localhost:{port}"))
        .replace(
            "__LOREM__",
            &"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.</p>\n".repeat(60),
        )
        .replace("__LONG_TITLE__", &long_title());
    Html(html).into_response()
}

/// A 600-character title whose 512th character is an emoji (its 512th UTF-16 unit the first
/// half of it): cut by UTF-16 units, it would leave a lone surrogate the server refuses.
pub fn long_title() -> String {
    format!("{}\u{1F600}{}", "T".repeat(511), "x".repeat(87))
}

/// The first way `batch` breaks the contract's bounds, if any (v1 and the v2 additions).
pub fn batch_violation(batch: &Value) -> Option<String> {
    let id_ok = |v: &Value| {
        v.as_str().is_some_and(|s| {
            (8..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
    };
    let chars = |v: &Value| v.as_str().map(|s| s.chars().count());
    let within = |v: &Value, max: usize| chars(v).is_some_and(|n| n <= max);
    if batch["key"] != SITE_KEY {
        return Some("key".into());
    }
    if !id_ok(&batch["batch_id"]) || !id_ok(&batch["session_id"]) {
        return Some("batch_id or session_id".into());
    }
    let Some(events) = batch["events"].as_array() else { return Some("events".into()) };
    if events.is_empty() || events.len() > 50 {
        return Some("events: 1 to 50".into());
    }
    for (i, e) in events.iter().enumerate() {
        let url_ok =
            e["url"].as_str().is_some_and(|u| (u.starts_with("http://") || u.starts_with("https://")) && !u.contains('#'));
        if !url_ok || !within(&e["url"], 2048) || !id_ok(&e["page_id"]) || !e["ts"].is_i64() {
            return Some(format!("events[{i}]: url, page_id or ts: {e}"));
        }
        let ok = match e["type"].as_str().unwrap_or_default() {
            "pageview" => {
                within(&e["referrer"], 2048)
                    && within(&e["title"], 512)
                    && e["new_session"].is_boolean()
                    && !e["referrer"].as_str().unwrap_or_default().contains('#')
                    && (e.get("variant").is_none()
                        || e["variant"].as_str().is_some_and(|v| {
                            (1..=64).contains(&v.len())
                                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b" _.-".contains(&b))
                        }))
            }
            "scroll" => {
                let (depth, prev) = (e["depth"].as_i64().unwrap_or(-1), e["prev"].as_i64().unwrap_or(-1));
                (1..=100).contains(&depth) && (0..=99).contains(&prev) && prev < depth
            }
            "click" => {
                let fraction = |k: &str| e[k].as_f64().is_some_and(|f| (0.0..=1.0).contains(&f));
                let flag = |k: &str| e.get(k).is_none_or(Value::is_boolean);
                within(&e["selector"], 256)
                    && within(&e["text"], 128)
                    && (e.get("href").is_none() || within(&e["href"], 2048))
                    && (e.get("x").is_none() && e.get("y").is_none() || fraction("x") && fraction("y"))
                    && flag("rage")
                    && flag("dead")
            }
            "view" => {
                let name = chars(&e["name"]).unwrap_or(0);
                let placed = match e["kind"].as_str() {
                    Some("section") => (1..=64).contains(&name) && e["order"].as_u64().is_some_and(|o| o < 50),
                    Some("cta") => (1..=256).contains(&name),
                    _ => false,
                };
                placed && e["seen"].is_boolean() && e["ms"].as_f64().is_some_and(|ms| (0.0..=600_000.0).contains(&ms))
            }
            "time" => e["seconds"].as_f64().is_some_and(|s| s > 0.0 && s <= 1800.0),
            "event" => {
                let prop = |k: &str| chars(&e["props"][k]).is_some_and(|n| n > 0);
                let reserved = match e["name"].as_str() {
                    Some("form_start") => prop("form"),
                    Some("form_abandon") => prop("form") && prop("field"),
                    _ => true,
                };
                chars(&e["name"]).is_some_and(|n| (1..=64).contains(&n)) && props_ok(e.get("props")) && reserved
            }
            _ => false,
        };
        if !ok {
            return Some(format!("events[{i}]: {e}"));
        }
    }
    None
}

fn props_ok(props: Option<&Value>) -> bool {
    let Some(props) = props else { return true };
    let Some(map) = props.as_object() else { return false };
    map.len() <= 10
        && map.iter().all(|(k, v)| {
            (1..=40).contains(&k.len())
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && (v.is_boolean() || v.is_number() || v.as_str().is_some_and(|s| s.chars().count() <= 200))
        })
}
