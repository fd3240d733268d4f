//! The web app in real headless Chromium against the real stack: sign-up, site creation,
//! exact numbers in cards, charts and tables, inert injection payloads, timeframes, log-out (on
//! the server too) and expired tokens. Screenshots go to `target/cp-artifacts/screenshots/` for review.

use cp_tests::{
    batch::{batch as make_batch, click, id, pageview, scroll, time},
    browser::Driver,
    client::Api,
    stack::{Proc, Stack},
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const IMG: &str = "<img src=x onerror=\"window.__xss=1;alert(1)\">";
const SCRIPT: &str = "<script>window.__xss=2;alert(2)</script>";

fn fmt(n: &Value) -> String {
    let n = n.as_i64().expect("integer");
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_the_apis_numbers_as_inert_text_and_handles_sessions() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cp-artifacts/screenshots");
    let shots = shots.to_string_lossy().to_string();
    let mut driver = Driver::start("dashboard.mjs", &[&stack.url(Proc::Api), &shots]);

    let site: Value = serde_json::from_str(&driver.expect_line("SITE ").await).expect("site json");
    let (site_id, token) = (site["id"].as_str().expect("id"), site["token"].as_str().expect("token"));
    let (status, created) = api.get(&format!("/api/sites/{site_id}"), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "the site was created through the UI: {created}");
    let key = created["api_key"].as_str().expect("key");
    api.wait_key_live(key).await;

    // Batches whose every tracked string is hostile.
    let (p1, p2) = (id("page"), id("page"));
    let evil_url = format!("https://example.com/{IMG}?utm_source={}", "%3Cscript%3Ewindow.__xss%3D3%3C%2Fscript%3E");
    let plain = "https://example.com/pricing";
    let batches = [
        make_batch(
            key,
            "session_ui_1",
            vec![
                pageview(&p1, &evil_url, "javascript:alert(4)", true),
                click(&p1, &evil_url, IMG, SCRIPT),
                click(&p1, &evil_url, "a[href=\"javascript:alert(5)\"]", "\"quoted\" & <b>bold</b>"),
                scroll(&p1, &evil_url, 60, 0),
                time(&p1, &evil_url, 12.0),
            ],
        ),
        make_batch(
            key,
            "session_ui_2",
            vec![
                pageview(&p2, plain, &format!("https://evil.example/{SCRIPT}"), true),
                click(&p2, plain, "button#cta", "Start free trial"),
                scroll(&p2, plain, 100, 0),
            ],
        ),
    ];
    for b in &batches {
        assert_eq!(api.post_batch(b).await.0, StatusCode::ACCEPTED);
    }
    let week = api
        .stats_when(token, site_id, "timeframe=7d", |s| s["summary"]["pageviews"] == 2 && s["summary"]["clicks"] == 3)
        .await;
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "someone", "exp": chrono::Utc::now().timestamp() - 600}),
        &jsonwebtoken::EncodingKey::from_secret(b"test-secret-that-is-at-least-32-bytes-long"),
    )
    .expect("token");
    driver.send_line(&format!("SENT {} {expired}", week["summary"]["pageviews"])).await;
    let r = driver.finish().await;

    // No page errors, no payload executed, no dialog but the app's own.
    assert_eq!(r["pageErrors"], json!([]), "{r}");
    assert_eq!(r["consoleErrors"], json!([]), "{r}");
    assert_eq!(r["dialogs"], json!([]), "{r}");
    assert!(r["week"]["xss"].is_null() && r["xssAtEnd"].is_null(), "a payload ran: {r}");
    assert_eq!(r["week"]["injectedElements"], 0, "payload markup became elements: {r}");

    // Sign-up form validated inline; the snippet is the site's and copies to the clipboard.
    assert!(
        r["inlineErrors"][0].as_str().is_some_and(|e| !e.is_empty())
            && r["inlineErrors"][1].as_str().is_some_and(|e| !e.is_empty()),
        "{r}"
    );
    assert!(r["snippet"].as_str().is_some_and(|s| s.contains(key) && s.contains("/convertpulse.js")), "{r}");
    assert_eq!(r["clipboard"], r["snippet"]);
    assert_eq!(r["emptyStateShown"], true, "a new site shows the empty state");

    // Cards equal the API's numbers.
    let sum = &week["summary"];
    let cards = &r["week"]["cards"];
    assert_eq!(cards["c-pageviews"], fmt(&sum["pageviews"]));
    assert_eq!(cards["c-visitors"], fmt(&sum["visitors"]));
    assert_eq!(cards["c-sessions"], fmt(&sum["sessions"]));
    assert_eq!(cards["c-clicks"], fmt(&sum["clicks"]));
    assert_eq!(cards["c-scroll"], format!("{}%", sum["avg_scroll_depth"].as_f64().expect("f64").round()));
    assert_eq!(r["week"]["emptyShown"], false);

    // Charts were given the API's data.
    let charts = &r["week"]["charts"];
    let pv: Vec<Value> = week["series"].as_array().expect("series").iter().map(|p| p["pageviews"].clone()).collect();
    assert_eq!(charts["series"]["data"][0], json!(pv));
    let dist: Vec<Value> =
        week["scroll_distribution"].as_array().expect("dist").iter().map(|b| b["pageviews"].clone()).collect();
    assert_eq!(charts["scroll"]["data"][0], json!(dist));
    let click_labels: Vec<Value> = week["top_clicks"]
        .as_array()
        .expect("clicks")
        .iter()
        .map(|c| if c["text"] == "" { c["selector"].clone() } else { c["text"].clone() })
        .collect();
    assert_eq!(charts["clicks"]["labels"], json!(click_labels), "payloads are chart labels as plain strings");
    assert!(charts["clicks"]["labels"].as_array().expect("labels").contains(&json!(SCRIPT)));

    // Tables hold the payloads as text.
    let pages: Vec<Value> = week["top_pages"].as_array().expect("pages").iter().map(|p| p["path"].clone()).collect();
    let shown: Vec<Value> =
        r["week"]["tables"]["pages"].as_array().expect("rows").iter().map(|row| row[0].clone()).collect();
    assert_eq!(shown, pages);
    let clicks_rows = r["week"]["tables"]["clicks"].as_array().expect("rows");
    assert!(clicks_rows.iter().any(|row| row[0] == IMG && row[1] == SCRIPT), "{clicks_rows:?}");
    let refs: Vec<Value> =
        r["week"]["tables"]["referrers"].as_array().expect("rows").iter().map(|row| row[0].clone()).collect();
    assert!(refs.contains(&json!("<script>window.__xss=3</script>")), "utm_source payload shown as text: {refs:?}");
    assert!(
        r["week"]["links"].as_array().expect("links").iter().all(|h| h.as_str().is_some_and(|h| h.starts_with("https://"))),
        "only http(s) links: {r}"
    );

    // 24h: another request, hourly points.
    assert!(
        r["statsRequests"]
            .as_array()
            .expect("requests")
            .iter()
            .any(|u| u.as_str().is_some_and(|u| u.ends_with("timeframe=24h")))
    );
    assert_eq!(r["day"]["charts"]["series"]["labels"].as_array().map(Vec::len), Some(24));
    assert_eq!(r["day"]["cards"]["c-pageviews"], fmt(&sum["pageviews"]));

    // Responsive, and sessions end on /login.
    assert_eq!(r["overflowAt375"], false, "no horizontal scroll at 375 px: {}", r["overflowing"]);
    assert!(r["afterLogout"].as_str().is_some_and(|u| u.contains("/login?reason=logout")), "{r}");
    // "Log out" ended the token on the server, not only in the browser.
    let (status, body) = api.get("/api/auth/me", Some(token)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized")),
        "the token after the UI's logout"
    );
    assert!(r["afterExpired"].as_str().is_some_and(|u| u.contains("/login?reason=expired")), "{r}");
    assert!(r["expiredNotice"].as_str().is_some_and(|n| n.contains("expired")), "{r}");
    for shot in
        ["landing-1280", "landing-375", "register-1280", "dashboard-1280", "dashboard-375", "login-1280", "login-375"]
    {
        assert!(std::path::Path::new(&format!("{shots}/{shot}.png")).exists(), "screenshot {shot}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_has_a_strict_content_security_policy() {
    let stack = Stack::start_with(&[("CP_DEMO_EMAIL", "demo@convertpulse.dev")]).await;
    let api = Api::new(&stack);
    // What `make run` seeds: the demo account and its site, which turn /demo on.
    let token = api.register("demo@convertpulse.dev").await;
    api.create_site(&token, "localhost", "UTC").await;
    for path in ["/", "/login", "/register", "/dashboard", "/demo", "/assets/app.css"] {
        let res = api.http.get(format!("{}{path}", api.api)).send().await.expect("page");
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let csp = res.headers().get("content-security-policy").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{path}: {csp}"
        );
        assert!(csp.contains("object-src 'none'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        let body = res.text().await.expect("body");
        if path != "/assets/app.css" {
            assert!(!body.contains("<script>") && !body.contains("onclick="), "{path} has inline script");
        }
    }
    let chart = api.http.get(format!("{}/vendor/chart.umd.min.js", api.api)).send().await.expect("chart.js");
    assert_eq!(chart.status(), StatusCode::OK, "Chart.js is served from our origin");
}
