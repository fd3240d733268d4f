//! On-page attention (issue 20) in real browsers against the real stack (nats-server, the
//! MongoDB-wire server, ingest, aggregator, api), on a landing page with marked sections and
//! CTAs (`tests/browser/pages/attention.html`, served by a page server of the test's own on the
//! site's host and wired to the stack's snippet):
//!
//! - a scripted visit, in Chromium, Firefox and WebKit — the CTA clicked, a rage burst on an image,
//!   a click on a price that does nothing, the pricing section reached and its form left at the
//!   email field, the FAQ never reached — gives exactly the contract's page view;
//! - the owner opens the overlay from the dashboard's page view; opened on the page, it paints
//!   the click map, the scroll map and the sections, switches a layer off, closes, and the page
//!   sends nothing meanwhile — on the test page, and on the api's own `/demo` page after a visit
//!   there (screenshots in `target/cp-artifacts/screenshots/stack-attention-*`).

use std::path::Path;

use axum::{
    Router,
    http::{Uri, header},
    response::{Html, IntoResponse, Response},
};
use cp_tests::{
    batch::id,
    browser::Driver,
    capture,
    client::{Api, Tenant},
    stack::Stack,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The page's snippet tag, rewired to the stack.
const SNIPPET_TAG: &str =
    r#"<script defer src="/convertpulse.js" data-key="site_key_test" data-endpoint="__INGEST__"></script>"#;

/// Serves the attention page at every path; returns `http://127.0.0.1:P`.
async fn page_server(api: &Api, key: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/pages/attention.html");
    let html = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(html.contains(SNIPPET_TAG), "attention.html no longer carries the snippet tag this server rewires");
    let tag = format!(
        r#"<script defer src="{}/convertpulse.js" data-key="{key}" data-endpoint="{}/api/events/batch"></script>"#,
        api.api, api.ingest
    );
    let html = html.replace(SNIPPET_TAG, &tag);
    let app = Router::new().fallback(move |uri: Uri| {
        let html = html.clone();
        async move {
            let res: Response = match uri.path() {
                "/__errors.js" => {
                    ([(header::CONTENT_TYPE, "application/javascript; charset=utf-8")], capture::ERROR_COLLECTOR)
                        .into_response()
                }
                _ => Html(html).into_response(),
            };
            res
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind page server");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://127.0.0.1:{port}")
}

fn shots() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cp-artifacts/screenshots").to_string_lossy().to_string()
}

struct Site {
    _stack: Stack,
    api: Api,
    t: Tenant,
    landing: String,
}

async fn site() -> Site {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let email = format!("{}@example.com", id("owner"));
    api.register(&email).await;
    let (status, login) = api.post("/api/auth/login", None, &json!({"email": email, "password": "correct horse 1"})).await;
    assert_eq!(status, StatusCode::OK, "log in: {login}");
    let token = login["token"].as_str().expect("token").to_string();
    let (site_id, key) = api.create_site(&token, "127.0.0.1", "UTC").await;
    let landing = page_server(&api, &key).await;
    Site { _stack: stack, api, t: Tenant { token, site_id, key }, landing }
}

async fn drive(s: &Site, scenario: &str, engine: &str) -> Value {
    drive_with(s, scenario, engine, json!({})).await
}

async fn drive_with(s: &Site, scenario: &str, engine: &str, extra: Value) -> Value {
    let mut config = json!({"api": s.api.api, "landing": s.landing, "siteId": s.t.site_id, "token": s.t.token,
                            "shots": shots(), "engine": engine});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        config[k] = v;
    }
    let report = Driver::start("attention_stack.mjs", &[scenario, &config.to_string()]).finish().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cp-artifacts/reports");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ =
            std::fs::write(dir.join(format!("stack-attention-{scenario}-{engine}.json")), report.to_string().into_bytes());
    }
    assert_eq!(report["driverError"], Value::Null, "{scenario} ({engine}): {report}");
    for key in ["pageErrors", "consoleErrors", "windowErrors"] {
        assert_eq!(report[key], json!([]), "{scenario} ({engine}): {key}");
    }
    report
}

/// The visit, and the page view it must give.
async fn scripted_visit(engine: &str) -> (Site, Value) {
    let s = site().await;
    let r = drive(&s, "visit", engine).await;
    let v = &r["final"];
    assert_eq!(
        (v["path"].clone(), v["pageviews"].clone(), v["visitors"].clone()),
        (json!("/attention"), json!(1), json!(1))
    );

    // Hero and pricing seen, in page order; the FAQ never reached.
    let sections: Vec<(String, i64, i64, f64)> = v["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .map(|s| {
            let str_of = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (
                str_of("name"),
                s["order"].as_i64().unwrap_or(-1),
                s["viewers"].as_i64().unwrap_or(-1),
                s["view_rate"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    assert_eq!(sections, vec![("hero".into(), 0, 1, 1.0), ("pricing".into(), 1, 1, 1.0)], "{engine}: {v}");
    for s in v["sections"].as_array().expect("sections") {
        assert!(s["avg_visible_seconds"].as_f64().is_some_and(|t| t >= 1.0), "{engine}: seen means a second at least: {s}");
    }
    // The CTA seen and clicked; the form's button seen, not clicked.
    assert_eq!(
        v["ctas"],
        // (The driver's JSON writes whole rates without a fraction: 1, not 1.0.)
        json!([
            {"selector": "button#buy", "text": "Buy now", "viewers": 1, "clickers": 1, "ctr": 1},
            {"selector": "form#signup > button", "text": "", "viewers": 1, "clickers": 0, "ctr": 0}
        ]),
        "{engine}"
    );
    assert_eq!(v["rage_clicks"], json!([{"selector": "section#hero > img.hero", "count": 1}]), "{engine}");
    let dead = v["dead_clicks"].as_array().expect("dead clicks");
    assert!(dead.contains(&json!({"selector": "section#hero > div.price", "count": 1})), "{engine}: {dead:?}");
    assert!(
        dead.iter().all(|d| d["selector"].as_str().is_some_and(|s| s.ends_with("img.hero") || s.ends_with("div.price"))),
        "{engine}: only the image and the price do nothing: {dead:?}"
    );
    assert_eq!(
        v["forms"],
        json!([{"form": "form#signup", "starts": 1, "submits": 0, "abandons": [{"field": "email", "count": 1}]}]),
        "{engine}"
    );
    // The scroll map: one pageview reached every bin up to the depth the page reports.
    let depth = r["depth"].as_u64().expect("depth");
    let want: Vec<u64> = (1..=20).map(|i| u64::from(i * 5 <= depth)).collect();
    assert_eq!(v["scroll_map"], json!(want), "{engine}: depth {depth}");
    // The click map: the CTA once, the image three times, the price once, where they are.
    let cells = r["cells"].as_array().expect("cells");
    let mut want: Vec<[u64; 3]> = Vec::new();
    for (cell, clicks) in cells.iter().zip([1, 3, 1]) {
        let (col, row) = (cell[0].as_u64().expect("col"), cell[1].as_u64().expect("row"));
        match want.iter_mut().find(|c| c[0] == col && c[1] == row) {
            Some(c) => c[2] += clicks,
            None => want.push([col, row, clicks]),
        }
    }
    want.sort_unstable();
    assert_eq!(v["click_map"], json!({"cols": 20, "rows": 50, "cells": want}), "{engine}");
    (s, r)
}

mod a_scripted_visit_gives_the_exact_page_view {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chromium() {
        super::scripted_visit("chromium").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn firefox() {
        super::scripted_visit("firefox").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webkit() {
        super::scripted_visit("webkit").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overlay_opens_from_the_dashboard_and_paints_over_the_page_sending_nothing() {
    let (s, _) = scripted_visit("chromium").await;
    let r = drive(&s, "overlay", "chromium").await;
    assert_eq!(r["dashboard"]["title"], "On-page attention · /attention");
    assert_eq!(r["dashboard"]["sections"], 2);
    let link = r["link"].as_str().expect("overlay link");
    assert!(link.starts_with("https://127.0.0.1/attention?cp_overlay="), "{link}");
    let p = &r["painted"];
    assert!(p["cells"].as_u64().is_some_and(|n| (1..=3).contains(&n)), "the click map's cells: {p}");
    assert_eq!(p["bands"], 20, "{p}");
    assert_eq!(p["folds"].as_array().map(Vec::len), Some(4), "{p}");
    let labels = p["labels"].as_array().expect("labels");
    assert_eq!(labels.len(), 2, "hero and pricing: {labels:?}");
    assert!(labels[0].as_str().is_some_and(|l| l.starts_with("hero: 100 % viewed")), "{labels:?}");
    assert_eq!(p["layers"], json!({"clicks": true, "scroll": true, "sections": true}));
    assert_eq!(r["afterSwitch"]["layers"], json!({"clicks": false, "scroll": true, "sections": true}));
    assert_eq!(r["afterClose"], 0, "Close removes everything the overlay added");
    // The overlay page loaded the overlay and read its view, and sent no batch.
    let requests: Vec<&str> = r["requests"].as_array().expect("requests").iter().filter_map(Value::as_str).collect();
    assert!(requests.contains(&"/convertpulse-overlay.js"), "{requests:?}");
    assert!(requests.iter().any(|p| p.starts_with("/api/overlay/")), "{requests:?}");
    assert!(!requests.iter().any(|p| p.ends_with("/api/events/batch")), "the overlay page sends nothing: {requests:?}");
}

/// The demo account's site on the page server's host, as `make run` seeds it (`/demo` reports to
/// the first site of `CP_DEMO_EMAIL`).
async fn demo_site() -> Site {
    let email = format!("{}@example.com", id("demo"));
    let stack = Stack::start_with(&[("CP_DEMO_EMAIL", &email)]).await;
    let api = Api::new(&stack);
    api.register(&email).await;
    let (status, login) = api.post("/api/auth/login", None, &json!({"email": email, "password": "correct horse 1"})).await;
    assert_eq!(status, StatusCode::OK, "log in: {login}");
    let token = login["token"].as_str().expect("token").to_string();
    let (site_id, key) = api.create_site(&token, "127.0.0.1", "UTC").await;
    let landing = api.api.clone();
    Site { _stack: stack, api, t: Tenant { token, site_id, key }, landing }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overlay_opens_on_the_demo_page_after_a_visit_there() {
    let s = demo_site().await;
    let on_demo = json!({"path": "/demo", "shot": "demo-overlay"});
    let visit = drive_with(&s, "demo", "chromium", on_demo.clone()).await;
    let seen: Vec<&str> =
        visit["seen"]["sections"].as_array().expect("sections").iter().filter_map(|s| s["name"].as_str()).collect();
    // The visitor scrolled to the pricing at once: the hero was in view for less than a second.
    assert_eq!(seen, vec!["pricing"], "the demo's marked sections seen");
    let r = drive_with(&s, "overlay", "chromium", on_demo).await;
    let link = r["link"].as_str().expect("overlay link");
    assert!(link.starts_with("https://127.0.0.1/demo?cp_overlay="), "{link}");
    let p = &r["painted"];
    assert!(p["cells"].as_u64().is_some_and(|n| n >= 1), "the click map: {p}");
    assert_eq!(p["bands"], 20, "{p}");
    assert!(
        p["labels"]
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l.as_str().is_some_and(|l| l.starts_with("pricing: 100 % viewed")))),
        "{p}"
    );
    let requests: Vec<&str> = r["requests"].as_array().expect("requests").iter().filter_map(Value::as_str).collect();
    assert!(!requests.iter().any(|p| p.ends_with("/api/events/batch")), "the overlay page sends nothing: {requests:?}");
    assert_eq!(r["afterClose"], 0);
}
