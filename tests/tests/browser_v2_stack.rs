//! The v2 features in real browsers against the real stack (nats-server, the MongoDB-wire
//! server, ingest, aggregator, api): no capture server, no fake api.
//!
//! - Conversions (issue 9), in Chromium and Firefox: a visitor converts on a real landing page
//!   whose snippet, served by the api, loads late with calls queued before it; the api's stats
//!   then hold exactly the events, goals and conversions of that visit, and no request body the
//!   browser sent carries a form field's value.
//! - The dashboard (issue 10), in Chromium, logged in with an api token: the live counter moves
//!   after a visit without a reload; a click on a top page filters the dashboard to the api's
//!   figures for that page and the chip removes it; a public link renders the owner's figures
//!   read-only until it is revoked; screenshots for review go to
//!   `target/cp-artifacts/screenshots/stack-*.png`.
//!
//! Landing pages come from `tests/browser/pages/` through a page server of each test's own,
//! wired to the stack's snippet URL, site key and ingest endpoint. The page server answers on
//! `127.0.0.1` (the site's domain) and on `localhost` (another host, for the outbound link).
//! Each driver report is kept as `target/cp-artifacts/reports/stack-*.json`.

use std::{path::Path, time::Duration};

use axum::{
    Router,
    http::{Uri, header},
    response::{Html, IntoResponse, Response},
};
use cp_tests::{
    batch::{self, click, id, pageview, scroll, time},
    browser::Driver,
    capture,
    client::{Api, Tenant},
    stack::Stack,
    wait,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// The page server.

/// What the page server wires the pages to.
#[derive(Clone)]
struct Wiring {
    api: String,
    ingest: String,
    key: String,
    port: u16,
}

/// The pages' snippet tag as the capture-site tests write it.
const SNIPPET_TAG: &str =
    r#"<script defer src="/convertpulse.js" data-key="site_key_test" data-endpoint="__INGEST__"></script>"#;

/// Serves `tests/browser/pages/landing.html` at `/landing` with the snippet added by a tag
/// manager after the load event, `thank-you.html` at `/thank-you` (any method: the signup
/// form posts to it) with the snippet deferred, and a plain page without the snippet on any
/// other path (the outbound link's target). Returns `(http://127.0.0.1:P, http://localhost:P)`.
async fn page_server(api: &Api, key: &str) -> (String, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind page server");
    let port = listener.local_addr().expect("addr").port();
    let wiring = Wiring { api: api.api.clone(), ingest: api.ingest.clone(), key: key.to_string(), port };
    let app = Router::new().fallback(move |uri: Uri| {
        let wiring = wiring.clone();
        async move { page(&wiring, &uri) }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}"))
}

fn page(w: &Wiring, uri: &Uri) -> Response {
    let file = |name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/pages").join(name);
        let html = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            html.contains(SNIPPET_TAG),
            "{name} no longer carries the snippet tag this page server rewires: {SNIPPET_TAG}"
        );
        html
    };
    let endpoint = format!("{}/api/events/batch", w.ingest);
    let html = match uri.path() {
        "/__errors.js" => {
            return ([(header::CONTENT_TYPE, "application/javascript; charset=utf-8")], capture::ERROR_COLLECTOR)
                .into_response();
        }
        "/landing" => {
            // A tag manager adds the real snippet 300 ms after the load event: the stub's
            // calls queue up until then. What had queued is noted as the tag is added, so the
            // check does not race the snippet on a slow machine.
            let late = format!(
                "<script>\n  window.addEventListener('load', function () {{\n    setTimeout(function () {{\n      \
                 window.__queuedBeforeSnippet = (window.convertpulse.q || []).length;\n      \
                 var s = document.createElement('script');\n      s.src = '{api}/convertpulse.js';\n      \
                 s.setAttribute('data-key', '{key}');\n      s.setAttribute('data-endpoint', '{endpoint}');\n      \
                 document.head.appendChild(s);\n    }}, 300);\n  }});\n</script>",
                api = w.api,
                key = w.key,
            );
            file("landing.html").replace(SNIPPET_TAG, &late)
        }
        "/thank-you" => file("thank-you.html").replace(
            SNIPPET_TAG,
            &format!(
                r#"<script defer src="{}/convertpulse.js" data-key="{}" data-endpoint="{endpoint}"></script>"#,
                w.api, w.key
            ),
        ),
        _ => return Html("<!doctype html><title>Elsewhere</title><p>Another site.</p>".to_string()).into_response(),
    };
    let html = html.replace("__OTHER__", &format!("http://localhost:{}", w.port)).replace(
        "__LOREM__",
        &"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.</p>\n".repeat(60),
    );
    Html(html).into_response()
}

// ---------------------------------------------------------------------------------------------
// Shared steps.

fn shots() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cp-artifacts/screenshots").to_string_lossy().to_string()
}

/// Runs a scenario of `tests/browser/v2_stack.mjs` to its end; returns its report, also kept
/// for review as `target/cp-artifacts/reports/stack-<scenario>[-<engine>].json`.
async fn drive(scenario: &str, config: Value) -> Value {
    let report = Driver::start("v2_stack.mjs", &[scenario, &config.to_string()]).finish().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cp-artifacts/reports");
    let name = match (config["report"].as_str(), config["engine"].as_str()) {
        (Some(name), _) => format!("stack-{name}.json"),
        (None, Some(engine)) => format!("stack-{scenario}-{engine}.json"),
        (None, None) => format!("stack-{scenario}.json"),
    };
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join(name), serde_json::to_string_pretty(&report).unwrap_or_default());
    }
    report
}

/// Nothing reached the page's error handlers or its console.
fn assert_clean(report: &Value, what: &str) {
    assert_eq!(report["pageErrors"], json!([]), "{what}: exceptions reached a page: {report}");
    assert_eq!(report["windowErrors"], json!([]), "{what}: window.onerror saw something: {report}");
    assert_eq!(report["consoleErrors"], json!([]), "{what}: a page logged errors (CSP refusals included): {report}");
}

/// Creates a goal through the api.
async fn goal(api: &Api, t: &Tenant, name: &str, kind: &str, matcher: &str) -> Value {
    let (status, g) = api
        .post(
            &format!("/api/sites/{}/goals", t.site_id),
            Some(&t.token),
            &json!({"name": name, "kind": kind, "match": matcher}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "goal {name}: {g}");
    g
}

/// Waits until the stats satisfy `done` and the consumer has drained (nothing accepted can
/// still change them), then returns them as read after the drain.
async fn settled_stats(
    stack: &Stack,
    api: &Api,
    t: &Tenant,
    query: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let done = &done;
    let found = wait::poll(Duration::from_secs(20), || async move {
        let s = cp_tests::v2::only_v2(&api.stats(&t.token, &t.site_id, query).await);
        done(&s).then_some(s)
    })
    .await;
    if found.is_none() {
        panic!("timed out after 20 s waiting for {what}; stats: {}", api.stats(&t.token, &t.site_id, query).await);
    }
    stack.wait_drained().await;
    api.stats(&t.token, &t.site_id, query).await
}

// ---------------------------------------------------------------------------------------------
// Issue 9: a visitor converts on a real landing page, in Chromium and in Firefox.

/// What the visitor typed or the form holds, the fragment's token, and the fields' names:
/// none may leave the page.
const SECRETS: [&str; 9] = [
    "jane.secret",
    "Secretname",
    "Hunter2",
    "HIDDEN-COUPON",
    "FRAGMENT-SECRET",
    "access_token",
    "coupon_code",
    "full_name",
    "password",
];

/// The batches the browser sent, each once (a retry resends the same `batch_id`).
fn distinct_batches(report: &Value) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for b in report["batches"].as_array().expect("batches") {
        assert!(b["bodyError"].is_null(), "the driver could not read a request body: {b}");
        let body = b["body"].as_str().unwrap_or_else(|| panic!("a batch request without a body: {b}"));
        let batch: Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("a batch body that is not JSON ({e}): {body}"));
        if seen.insert(batch["batch_id"].as_str().unwrap_or_default().to_string()) {
            out.push(batch);
        }
    }
    out
}

async fn converting_visit(engine: &str) {
    let started = std::time::Instant::now();
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("127.0.0.1", "UTC").await;
    let (landing, _other) = page_server(&api, &t.key).await;
    // Goals first: a goal counts what arrives after it was created.
    let goals = [
        goal(&api, &t, "Thank-you page", "pageview", "/thank-you*").await,
        goal(&api, &t, "Hero CTA", "click", "button#hero-cta").await,
        goal(&api, &t, "Signup", "event", "Signup").await,
        goal(&api, &t, "Form sent", "event", "form_submit").await,
        goal(&api, &t, "Outbound", "event", "outbound").await,
    ];

    let r = drive("visit", json!({"engine": engine, "landing": landing})).await;
    assert_clean(&r, engine);
    let ua = r["userAgent"].as_str().unwrap_or_default();
    assert!(ua.starts_with("Mozilla/5.0") && !ua.contains("Headless"), "{engine}: User-Agent {ua:?}");
    assert_eq!(r["queuedBeforeSnippet"], 1, "{engine}: the stub queued the page's call before the late snippet loaded: {r}");
    assert_eq!(r["thankYouUrl"], "/thank-you", "{engine}: the form led to the thank-you page");

    // Every body the browser sent: what it holds, and what it never holds.
    let batches = distinct_batches(&r);
    for b in r["batches"].as_array().expect("batches") {
        let body = b["body"].as_str().unwrap_or_default();
        for secret in SECRETS {
            assert!(!body.contains(secret), "{engine}: {secret:?} was sent to ingest: {body}");
        }
    }
    let events: Vec<&Value> = batches.iter().flat_map(|b| b["events"].as_array().expect("events")).collect();
    let count = |kind: &str| events.iter().filter(|e| e["type"] == kind).count();
    assert_eq!(
        // The events: the page's four, the snippet's outbound, form_start and form_submit, and Signup.
        (count("pageview"), count("click"), count("event")),
        (2, 4, 8),
        "{engine}: pageviews, clicks and events sent, in {} requests ({} batches): {}",
        r["batches"].as_array().map_or(0, Vec::len),
        batches.len(),
        json!(events)
    );
    // One visitor: every request the proxy saw (Chromium) carried the same User-Agent.
    let agents: std::collections::BTreeSet<&str> =
        r["batches"].as_array().expect("batches").iter().filter_map(|b| b["userAgent"].as_str()).collect();
    assert!(agents.len() <= 1, "{engine}: batches left with different User-Agents: {agents:?}");
    let statuses: Vec<&Value> = r["batches"].as_array().expect("batches").iter().map(|b| &b["status"]).collect();
    assert!(statuses.iter().all(|s| **s == 202), "{engine}: ingest answered {statuses:?}");

    // The stats: exact.
    let s = settled_stats(&stack, &api, &t, "timeframe=24h", "the visit's conversions", |s| {
        s["summary"]["pageviews"] == 2 && s["top_events"].as_array().is_some_and(|e| e.iter().any(|e| e["name"] == "Signup"))
    })
    .await;
    let s = cp_tests::v2::only_v2(&s);
    let sum = &s["summary"];
    let got = [&sum["pageviews"], &sum["sessions"], &sum["visitors"], &sum["clicks"], &sum["conversions"]];
    assert_eq!(
        got.map(|v| v.as_i64()),
        [Some(2), Some(1), Some(1), Some(4), Some(1)],
        "{engine}: pageviews, sessions, visitors, clicks, conversions: {s}"
    );
    assert_eq!((sum["conversion_rate"].as_f64(), sum["bounce_rate"].as_f64()), (Some(1.0), Some(0.0)), "{engine}: {sum}");
    assert_eq!(
        s["top_events"],
        json!([
            {"name": "Signup intent", "count": 2},
            {"name": "Experiment viewed", "count": 1},
            {"name": "Pricing viewed", "count": 1},
            {"name": "Signup", "count": 1},
            {"name": "form_start", "count": 1},
            {"name": "form_submit", "count": 1},
            {"name": "outbound", "count": 1},
        ]),
        "{engine}: custom events, the snippet's own included"
    );
    // One session completes each goal once, however often it matched.
    let want_goals: Vec<Value> =
        goals.iter().map(|g| json!({"id": g["id"], "name": g["name"], "conversions": 1, "rate": 1.0})).collect();
    assert_eq!(s["goals"], json!(want_goals), "{engine}: goals");
    assert_eq!(
        s["top_clicks"],
        json!([
            {"selector": "button#hero-cta", "text": "★ Start free trial", "clicks": 2},
            {"selector": "form#signup > button.btn.primary", "text": "Create account", "clicks": 1},
            {"selector": "header.nav > nav > a.docs", "text": "Docs", "clicks": 1},
        ]),
        "{engine}: clicks on icons count for their button or link"
    );
    assert_eq!(
        s["top_pages"],
        json!([{"path": "/landing", "pageviews": 1}, {"path": "/thank-you", "pageviews": 1}]),
        "{engine}"
    );
    // Attributed to the first pageview's source, campaign, medium and variant.
    assert_eq!(s["top_referrers"], json!([{"source": "newsletter", "visits": 1, "conversions": 1}]), "{engine}");
    assert_eq!(s["top_campaigns"], json!([{"name": "spring_launch", "visits": 1, "conversions": 1}]), "{engine}");
    assert_eq!(s["top_mediums"], json!([{"name": "email", "visits": 1, "conversions": 1}]), "{engine}");
    assert_eq!(
        s["variants"],
        json!([{"variant": "B", "visits": 1, "conversions": 1, "rate": 1.0, "ci_low": 0.2065, "ci_high": 1.0, "p_beat_control": null}]),
        "{engine}"
    );
    let browser_name = if engine == "firefox" { "Firefox" } else { "Chrome" };
    assert_eq!(
        [&s["top_devices"], &s["top_browsers"], &s["top_os"], &s["top_countries"]],
        [
            &json!([{"name": "desktop", "visits": 1}]),
            &json!([{"name": browser_name, "visits": 1}]),
            &json!([{"name": "Linux", "visits": 1}]),
            &json!([{"country": "(unknown)", "visits": 1}]),
        ],
        "{engine}: audience"
    );
    eprintln!("{engine}: converting visit checked in {:.1} s", started.elapsed().as_secs_f64());
}

mod a_landing_visit_converts_exactly_in_the_real_stack {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chromium() {
        super::converting_visit("chromium").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn firefox() {
        super::converting_visit("firefox").await;
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 10: the owner's dashboard with real v2 data.

/// A seeded site, logged in through the api, and its landing pages.
struct Seeded {
    stack: Stack,
    api: Api,
    t: Tenant,
    landing: String,
    /// Distinct visitors the seed sent (all within the last 5 minutes).
    visitors: i64,
}

impl Seeded {
    fn config(&self, extra: Value) -> Value {
        let mut c = json!({"api": self.api.api, "landing": self.landing, "siteId": self.t.site_id, "token": self.t.token, "key": self.t.key, "shots": shots()});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            c[k] = v;
        }
        c
    }
}

const CHROME_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1";
const ANDROID_FIREFOX: &str = "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0";
const EDGE_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80";
const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

fn event(page_id: &str, url: &str, name: &str, props: Value) -> Value {
    json!({"type": "event", "ts": 1_764_000_000_000_i64, "page_id": page_id, "url": url, "name": name, "props": props})
}

fn with_variant(mut pv: Value, variant: &str) -> Value {
    pv["variant"] = json!(variant);
    pv
}

/// A registered owner (token from `POST /api/auth/login`), a site on the page server's host
/// with three goals, and six sessions from six visitors (devices, browsers, countries behind
/// the trusted proxy, campaigns, variants, custom events; four convert), settled in the stats.
async fn seeded() -> Seeded {
    let stack = Stack::start_with(&[("CP_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let api = Api::new(&stack);
    let email = format!("{}@example.com", id("owner"));
    api.register(&email).await;
    let (status, login) = api.post("/api/auth/login", None, &json!({"email": email, "password": "correct horse 1"})).await;
    assert_eq!(status, StatusCode::OK, "log in: {login}");
    let token = login["token"].as_str().expect("token").to_string();
    let (site_id, key) = api.create_site(&token, "127.0.0.1", "UTC").await;
    let t = Tenant { token, site_id, key };
    let (landing, _) = page_server(&api, &t.key).await;
    goal(&api, &t, "Thank-you page", "pageview", "/thank-you*").await;
    goal(&api, &t, "Signup", "event", "Signup").await;
    goal(&api, &t, "Hero CTA", "click", "button#hero-cta").await;

    let u = |path: &str| format!("{landing}{path}");
    let home = u("/");
    let pricing = u("/pricing");
    let thanks = u("/thank-you");
    let (p1, p2, p3) = (id("page"), id("page"), id("page"));
    let g = u("/?utm_source=google&utm_medium=cpc&utm_campaign=spring_sale");
    let s1 = vec![
        with_variant(pageview(&p1, &g, "https://www.google.com/", true), "A"),
        scroll(&p1, &g, 40, 0),
        time(&p1, &g, 21.5),
        pageview(&p2, &pricing, &g, false),
        click(&p2, &pricing, "button#hero-cta", "Start free trial"),
        scroll(&p2, &pricing, 100, 0),
        time(&p2, &pricing, 48.0),
        pageview(&p3, &thanks, &pricing, false),
        event(&p3, &thanks, "Signup", json!({"plan": "pro"})),
    ];
    let p4 = id("page");
    let s2 = vec![
        with_variant(pageview(&p4, &pricing, "https://news.ycombinator.com/item?id=1", true), "B"),
        scroll(&p4, &pricing, 80, 0),
        time(&p4, &pricing, 35.0),
        event(&p4, &pricing, "Pricing viewed", json!({"plan": "team"})),
    ];
    let p5 = id("page");
    let n = u("/?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale");
    let s3 = vec![
        with_variant(pageview(&p5, &n, "", true), "B"),
        click(&p5, &n, "header.nav > nav > a.docs", "Docs"),
        event(&p5, &n, "outbound", json!({"url": "https://docs.example.org/start"})),
        event(&p5, &n, "Signup", json!({"plan": "starter"})),
        time(&p5, &n, 64.0),
    ];
    let p6 = id("page");
    let blog = u("/blog/launch-notes");
    let s4 = vec![pageview(&p6, &blog, "https://www.google.com/", true), time(&p6, &blog, 6.0)];
    let (p7, p8) = (id("page"), id("page"));
    let s5 = vec![
        pageview(&p7, &pricing, "", true),
        click(&p7, &pricing, "button#hero-cta", "Start free trial"),
        scroll(&p7, &pricing, 30, 0),
        pageview(&p8, &home, &pricing, false),
        time(&p8, &home, 12.0),
    ];
    let (p9, p10) = (id("page"), id("page"));
    let tw = u("/pricing?utm_source=twitter&utm_campaign=launch_week");
    let s6 = vec![
        with_variant(pageview(&p9, &tw, "https://t.co/abc", true), "A"),
        event(&p9, &tw, "Signup intent", json!({"plan": "pro", "position": "pricing"})),
        pageview(&p10, &thanks, &tw, false),
        time(&p10, &thanks, 9.0),
    ];
    let sessions = [
        (CHROME_WINDOWS, "8.8.8.8", s1),
        (IPHONE, "193.99.144.80", s2),
        (ANDROID_FIREFOX, "133.11.0.1", s3),
        (EDGE_MAC, "2001:4860:4860::8888", s4),
        (IPAD, "10.1.2.3", s5),
        (CHROME_WINDOWS, "81.2.69.142", s6),
    ];
    let visitors = sessions.len() as i64;
    for (ua, ip, events) in sessions {
        let b = batch::batch(&t.key, &id("sess"), events);
        let res = api
            .http
            .post(format!("{}/api/events/batch", api.ingest))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("user-agent", ua)
            .header("origin", landing.as_str())
            .header("x-forwarded-for", ip)
            .body(serde_json::to_vec(&b).expect("json"))
            .send()
            .await
            .expect("ingest reachable");
        assert_eq!(res.status(), StatusCode::ACCEPTED, "seed batch from {ip}: {}", res.text().await.unwrap_or_default());
    }
    settled_stats(&stack, &api, &t, "timeframe=7d", "the seeded sessions", |s| {
        s["summary"]["pageviews"] == 10 && s["summary"]["conversions"] == 4
    })
    .await;
    let rt = realtime_when(&api, &t, |rt| rt["visitors_5m"] == visitors).await;
    assert_eq!(rt["visitors_5m"], visitors, "{rt}");
    Seeded { stack, api, t, landing, visitors }
}

async fn realtime(api: &Api, t: &Tenant) -> Value {
    let (status, rt) = api.get(&format!("/api/stats/{}/realtime", t.site_id), Some(&t.token)).await;
    assert_eq!(status, StatusCode::OK, "realtime: {rt}");
    rt
}

async fn realtime_when(api: &Api, t: &Tenant, done: impl Fn(&Value) -> bool) -> Value {
    let done = &done;
    match wait::poll(Duration::from_secs(15), || async move {
        let rt = realtime(api, t).await;
        done(&rt).then_some(rt)
    })
    .await
    {
        Some(rt) => rt,
        None => panic!("timed out waiting for the realtime figures; last: {}", realtime(api, t).await),
    }
}

// The dashboard's formatting (web/assets/format.js) of the small figures these tests make.

fn compact(n: &Value) -> String {
    let n = n.as_f64().unwrap_or_else(|| panic!("a number: {n}"));
    assert!(n.abs() < 1000.0, "these tests keep figures under 1,000: {n}");
    format!("{}", n.round())
}

fn percent(f: &Value) -> String {
    format!("{:.1}%", (f.as_f64().expect("fraction") * 1000.0).round() / 10.0)
}

fn duration(s: &Value) -> String {
    let s = s.as_f64().expect("seconds").round() as i64;
    if s < 60 { format!("{s} s") } else { format!("{} m {} s", s / 60, s % 60) }
}

/// The card values the dashboard shows for `summary`, by card id.
fn cards_of(summary: &Value) -> Value {
    json!({
        "pageviews": compact(&summary["pageviews"]),
        "visitors": compact(&summary["visitors"]),
        "sessions": compact(&summary["sessions"]),
        "bounce-rate": percent(&summary["bounce_rate"]),
        "time": duration(&summary["avg_time_seconds"]),
        "scroll": format!("{}%", summary["avg_scroll_depth"].as_f64().expect("scroll").round()),
        "clicks": compact(&summary["clicks"]),
        "conversions": compact(&summary["conversions"]),
        "conversion-rate": percent(&summary["conversion_rate"]),
    })
}

/// The card values a report's view shows, by card id.
fn shown_cards(view: &Value) -> Value {
    let cards = view["cards"].as_object().unwrap_or_else(|| panic!("cards: {view}"));
    Value::Object(cards.iter().filter(|(_, c)| c["shown"] == true).map(|(k, c)| (k.clone(), c["value"].clone())).collect())
}

/// Rows of the top-pages table for `stats`.
fn page_rows(stats: &Value) -> Value {
    json!(
        stats["top_pages"]
            .as_array()
            .expect("top_pages")
            .iter()
            .map(|p| json!([p["path"], compact(&p["pageviews"])]))
            .collect::<Vec<_>>()
    )
}

fn series_of(stats: &Value) -> Value {
    let series = stats["series"].as_array().expect("series");
    json!(["pageviews", "visitors", "clicks"].map(|k| series.iter().map(|p| p[k].clone()).collect::<Vec<_>>()))
}

fn dialogs_are_the_apps(r: &Value) {
    for d in r["dialogs"].as_array().expect("dialogs") {
        let d = d.as_str().unwrap_or_default();
        assert!(
            ["Replace the public link?", "Revoke the public link?"].iter().any(|own| d.starts_with(own)),
            "a dialog the app did not open: {d}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_counter_moves_after_a_visit_without_a_reload() {
    let started = std::time::Instant::now();
    let s = seeded().await;
    let r = drive("live", s.config(json!({}))).await;
    assert_clean(&r, "live");

    let before = s.visitors.to_string();
    assert_eq!(
        r["before"]["live"]["visitors"], before,
        "the counter showed the api's visitors_5m before the visit: {}",
        r["before"]["live"]
    );
    let after = (s.visitors + 1).to_string();
    assert_eq!(r["after"]["live"]["visitors"], after, "one more visitor after the visit: {}", r["after"]["live"]);
    assert_eq!(r["sameDocument"], true, "the page was not reloaded");
    assert_eq!(r["reloads"], 1, "the app started once");
    let rt = realtime(&s.api, &s.t).await;
    assert_eq!(rt["visitors_5m"], s.visitors + 1, "{rt}");
    let want: Vec<Value> = rt["top_pages_5m"]
        .as_array()
        .expect("top pages now")
        .iter()
        .map(|p| json!([p["path"], compact(&p["visitors"])]))
        .collect();
    assert_eq!(r["after"]["live"]["pages"], json!(want), "top pages now, as the api has them");
    assert!(want.contains(&json!(["/landing", "1"])), "the visited page is among the top pages now: {want:?}");
    // The per-minute chart moved with the counter: one more pageview in the last 30 minutes.
    let sum = |v: &Value| v.as_array().map(|a| a.iter().filter_map(Value::as_i64).sum::<i64>());
    assert_eq!(
        sum(&r["before"]["live"]["perMinute"]),
        Some(10),
        "pageviews per minute before: {}",
        r["before"]["live"]["perMinute"]
    );
    assert_eq!(
        sum(&r["after"]["live"]["perMinute"]),
        Some(11),
        "pageviews per minute after: {}",
        r["after"]["live"]["perMinute"]
    );
    let api_minutes: Vec<Value> =
        rt["pageviews_30m"].as_array().expect("pageviews_30m").iter().map(|m| m["pageviews"].clone()).collect();
    assert_eq!(sum(&json!(api_minutes)), Some(11), "{rt}");
    eprintln!(
        "live: visit took {} ms, the counter moved {} ms after it; test took {:.1} s",
        r["visitMs"],
        r["movedAfterMs"],
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clicking_a_top_page_filters_the_dashboard_to_the_apis_figures_for_it() {
    let started = std::time::Instant::now();
    let s = seeded().await;
    let r = drive("filter", s.config(json!({"page": "/pricing"}))).await;
    assert_clean(&r, "filter");
    let all = cp_tests::v2::only_v2(&s.api.stats(&s.t.token, &s.t.site_id, "timeframe=7d").await);
    let pricing = cp_tests::v2::only_v2(&s.api.stats(&s.t.token, &s.t.site_id, "timeframe=7d&page=%2Fpricing").await);
    // The filter means something: the page has fewer pageviews than the site.
    assert_eq!(
        (all["summary"]["pageviews"].as_i64(), pricing["summary"]["pageviews"].as_i64()),
        (Some(10), Some(4)),
        "{}",
        pricing["summary"]
    );

    assert_eq!(shown_cards(&r["before"]), cards_of(&all["summary"]), "unfiltered cards");
    assert_eq!(r["before"]["chip"]["shown"], false);

    let f = &r["filtered"];
    assert!(f["url"].as_str().is_some_and(|u| u.contains("page=%2Fpricing")), "the URL carries the filter: {}", f["url"]);
    assert_eq!(f["chip"], json!({"shown": true, "text": "/pricing"}), "a visible filter chip");
    assert_eq!(shown_cards(f), cards_of(&pricing["summary"]), "filtered cards equal GET /api/stats/{{id}}?page=/pricing");
    assert_eq!(f["tables"]["pages"], page_rows(&pricing), "filtered top pages");
    assert_eq!(f["series"], series_of(&pricing), "filtered chart");
    assert!(f["error"].is_null(), "{}", f["error"]);
    let calls = r["filteredCalls"].as_array().expect("calls");
    assert!(
        !calls.is_empty() && calls.iter().all(|c| c.as_str().is_some_and(|c| c.contains("page=%2Fpricing"))),
        "{calls:?}"
    );

    let c = &r["cleared"];
    assert_eq!(c["chip"]["shown"], false, "the chip is gone");
    assert!(c["url"].as_str().is_some_and(|u| !u.contains("page=")), "{}", c["url"]);
    assert_eq!(shown_cards(c), cards_of(&all["summary"]), "removing the chip restores the site's figures");
    assert_eq!(c["tables"]["pages"], page_rows(&all));

    let b = &r["back"];
    assert_eq!(b["chip"], json!({"shown": true, "text": "/pricing"}), "back restores the filter");
    assert_eq!(shown_cards(b), cards_of(&pricing["summary"]));
    eprintln!("filter: test took {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_link_shows_the_owners_figures_read_only_until_it_is_revoked() {
    let started = std::time::Instant::now();
    let s = seeded().await;
    let r = drive("share", s.config(json!({}))).await;
    assert_clean(&r, "share");
    dialogs_are_the_apps(&r);
    let stats = cp_tests::v2::only_v2(&s.api.stats(&s.t.token, &s.t.site_id, "timeframe=7d").await);

    let link = r["link"].as_str().expect("link");
    let token = link
        .strip_prefix(&format!("{}/share/", s.api.api))
        .unwrap_or_else(|| panic!("a link to this api's /share/: {link}"));
    assert!(token.len() >= 22, "a token of at least 128 bits: {token}");

    // The same figures as the owner's, and as the api's.
    assert_eq!(shown_cards(&r["owner"]), cards_of(&stats["summary"]), "owner's cards");
    assert_eq!(shown_cards(&r["shared"]), shown_cards(&r["owner"]), "shared cards equal the owner's");
    assert_eq!(r["shared"]["tables"], r["owner"]["tables"], "shared tables equal the owner's");
    assert_eq!(r["shared"]["series"], series_of(&stats), "shared chart");
    // Read-only: nothing of the owner's, no key, no snippet, no token, only public calls.
    let p = &r["sharedPage"];
    assert_eq!(p["ownerOnly"], json!([]), "owner-only controls on the shared page");
    assert_eq!((&p["keyInHtml"], &p["keyInText"], &p["snippetText"]), (&json!(false), &json!(false), &json!(false)), "{p}");
    assert_eq!((&p["editable"], &p["token"]), (&json!(0), &Value::Null), "{p}");
    let calls = r["sharedRequests"].as_array().expect("requests");
    assert!(
        !calls.is_empty()
            && calls.iter().all(|c| c["path"].as_str().is_some_and(|p| p.starts_with("/api/public/")) && c["auth"] == false),
        "{calls:?}"
    );
    assert_eq!(r["share375"]["scrolls"], false, "the shared page scrolls sideways at 375 px: {}", r["share375"]);
    // Layout of figures is judged on the owner's dashboard (same stylesheet and tables), in
    // screenshots_of_the_real_dashboard_with_v2_data; here it is only reported.
    if r["share375"]["wrapped"] != json!([]) {
        eprintln!("share: figures broken over two lines at 375 px: {}", r["share375"]["wrapped"]);
    }

    // Revoked in the UI: the page says so, and the api agrees.
    assert_eq!(r["revoked"]["invalidShown"], true, "{}", r["revoked"]);
    assert!(r["revoked"]["text"].as_str().is_some_and(|t| t.contains("no longer valid")), "{}", r["revoked"]);
    assert_eq!(r["revoked"]["statsShown"], false, "{}", r["revoked"]);
    assert!(
        r["revokedAfterMs"].as_i64().is_some_and(|ms| ms < 5000),
        "revoked link still served after {} ms",
        r["revokedAfterMs"]
    );
    let (status, _) = s.api.get(&format!("/api/public/{token}/stats"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "public stats of a revoked link");
    let page = s.api.http.get(link).send().await.expect("shared page");
    assert_eq!(page.status(), StatusCode::NOT_FOUND, "the revoked link's page");
    eprintln!(
        "share: revoked page shown after {} ms; test took {:.1} s",
        r["revokedAfterMs"],
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_of_the_real_dashboard_with_v2_data() {
    let started = std::time::Instant::now();
    let s = seeded().await;
    // And one real visitor, converting in Chromium.
    let visit = drive("visit", json!({"engine": "chromium", "landing": s.landing, "report": "screens-visit"})).await;
    assert_clean(&visit, "visit");
    let stats = settled_stats(&s.stack, &s.api, &s.t, "timeframe=7d", "the real visit", |st| {
        st["summary"]["pageviews"] == 12 && st["summary"]["conversions"] == 5
    })
    .await;

    let r = drive("screens", s.config(json!({}))).await;
    assert_clean(&r, "screens");
    assert_eq!(shown_cards(&r["view"]), cards_of(&stats["summary"]), "cards");
    assert_eq!(r["at1280"]["scrolls"], false, "sideways scroll at 1280 px: {}", r["at1280"]);
    assert_eq!(r["at375"]["scrolls"], false, "sideways scroll at 375 px: {}", r["at375"]);
    for shot in ["stack-dashboard-1280", "stack-dashboard-375"] {
        assert!(Path::new(&format!("{}/{shot}.png", shots())).exists(), "screenshot {shot}");
    }
    // Figures for humans: a rate is never split into "100.0" above "%".
    assert_eq!(r["at1280"]["wrapped"], json!([]), "figures broken over two lines at 1280 px");
    assert_eq!(r["at375"]["wrapped"], json!([]), "figures broken over two lines at 375 px");
    eprintln!("screens: test took {:.1} s", started.elapsed().as_secs_f64());
}

/// A Plausible export with `pageviews` pageviews over the two days before yesterday.
fn plausible_zip(pageviews: u64) -> Vec<u8> {
    let day = chrono::Utc::now().date_naive() - chrono::Duration::days(2);
    let d = shared::imports::ImportedDay {
        date: day.format("%Y-%m-%d").to_string(),
        visitors: 7,
        pageviews,
        visits: 8,
        bounces: 2,
        visit_duration: 240,
        pages: vec![shared::imports::PageRow {
            path: "/imported".into(),
            visitors: 7,
            pageviews,
            entrances: 8,
            exits: 8,
            ..Default::default()
        }],
        ..Default::default()
    };
    shared::imports::write_zip(&[d], "127.0.0.1", day, day).expect("zip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plausible_export_is_imported_in_the_dashboard_and_the_cards_follow_it() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("127.0.0.1", "UTC").await;
    let dir = std::env::temp_dir().join(id("imports"));
    std::fs::create_dir_all(&dir).expect("dir");
    let (zip, bad) = (dir.join("plausible-export.zip"), dir.join("imported_pages_20240101_20240101.csv.zip"));
    std::fs::write(&zip, plausible_zip(42)).expect("zip");
    std::fs::write(&bad, b"not a zip").expect("bad zip");
    let config = json!({
        "api": api.api, "siteId": t.site_id, "token": t.token, "shots": shots(),
        "zip": zip.to_string_lossy(), "badZip": bad.to_string_lossy(), "pageviews": 42,
    });
    let r = drive("imports", config).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(r["driverError"].is_null(), "{}", r["driverError"]);
    assert_clean(&r, "imports");
    assert_eq!(r["initial"], json!([["No imports yet."]]));
    assert_eq!(r["inline"], "Choose the zip that Plausible\u{2019}s \"Export data\" produced.");
    assert_eq!(r["postsAfterInline"], 0);
    let day = (chrono::Utc::now().date_naive() - chrono::Duration::days(2)).format("%Y-%m-%d").to_string();
    assert_eq!(r["done"], json!([[day, "Done", "", "Delete"]]));
    // (The api's figures once imported are held by tests/tests/imports.rs; the scenario deletes
    // the import before this test could ask.)
    assert_eq!(shown_cards(&r["after"])["pageviews"], "42");
    assert_eq!(shown_cards(&r["after"])["sessions"], "8");
    assert_eq!(r["after"]["tables"]["pages"][0][0], "/imported", "{}", r["after"]["tables"]);
    let failed = r["failed"].as_array().expect("rows");
    assert_eq!(failed.len(), 2);
    assert_eq!((failed[1][0].as_str(), failed[1][1].as_str()), (Some("\u{2014}"), Some("Failed")));
    assert!(failed[1][2].as_str().is_some_and(|e| e.starts_with("not a zip archive")), "{failed:?}");
    assert_eq!(r["narrow"]["scrolls"], false, "the imports panel fits 375 px: {}", r["narrow"]);
    assert_eq!(r["afterDelete"].as_array().map(Vec::len), Some(1), "{}", r["afterDelete"]);
    assert_eq!(r["afterDelete"][0][1], "Failed");
    assert_eq!(shown_cards(&r["deleted"])["pageviews"], "0");
    assert_eq!(api.stats(&t.token, &t.site_id, "timeframe=7d").await["summary"]["pageviews"], 0);
}
