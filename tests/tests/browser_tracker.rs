//! The tracker snippet in real headless Chromium against the real stack.

use cp_tests::{
    browser::{self, Driver, gzip_len},
    client::Api,
    stack::{Proc, Stack},
};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn assert_clean(report: &Value) {
    assert_eq!(report["pageErrors"], json!([]), "exceptions reached the page: {report}");
    assert_eq!(report["windowErrors"], json!([]), "window.onerror saw something: {report}");
    assert_eq!(report["consoleErrors"], json!([]), "the page logged errors: {report}");
}

async fn setup(stack: &Stack) -> (Api, cp_tests::client::Tenant, String) {
    let api = Api::new(stack);
    let t = api.tenant("127.0.0.1", "UTC").await;
    let page = browser::serve_page(browser::landing_page(&api.api, &api.ingest, &t.key)).await;
    (api, t, page)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snippet_is_served_small_cacheable_and_javascript() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let res = api.http.get(format!("{}/convertpulse.js", api.api)).send().await.expect("snippet");
    assert_eq!(res.status(), StatusCode::OK);
    let ct = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let cache = res.headers().get("cache-control").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body = res.bytes().await.expect("body");
    assert!(ct.starts_with("application/javascript"), "content type {ct}");
    assert!(cache.contains("max-age=86400"), "cache-control {cache}");
    let gz = gzip_len(&body);
    eprintln!("convertpulse.js: {} bytes, {gz} gzipped", body.len());
    assert!(gz <= 2048, "snippet is {gz} bytes gzipped, over 2048");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_reports_one_pageview_three_clicks_full_scroll_and_visible_time() {
    let stack = Stack::start().await;
    let (api, t, page) = setup(&stack).await;

    let report = browser::run("main", &format!("{page}/landing")).await;
    assert_clean(&report);

    let s = api.stats_when(&t.token, &t.site_id, "", |s| s["summary"]["clicks"] == 3 && s["summary"]["avg_time_seconds"].as_f64() > Some(0.0)).await;
    let sum = &s["summary"];
    assert_eq!((sum["pageviews"].as_i64(), sum["sessions"].as_i64(), sum["visitors"].as_i64()), (Some(1), Some(1), Some(1)), "{s}");
    assert_eq!(sum["avg_scroll_depth"], 100.0, "{s}");
    let dist: Vec<i64> = s["scroll_distribution"].as_array().expect("dist").iter().map(|b| b["pageviews"].as_i64().unwrap_or(-1)).collect();
    assert_eq!(dist, vec![0, 0, 0, 0, 1]);
    let visible = report["visibleMs"].as_f64().expect("visibleMs") / 1000.0;
    let avg_time = sum["avg_time_seconds"].as_f64().expect("avg time");
    assert!((avg_time - visible).abs() <= 1.0, "avg time {avg_time} vs visible {visible}");
    assert_eq!(
        s["top_clicks"],
        json!([
            {"selector": "button#cta", "text": "Start free trial", "clicks": 2},
            {"selector": "section#pricing > article.plan.featured > button.btn.primary", "text": "Choose Pro", "clicks": 1}
        ])
    );
    assert_eq!(s["top_pages"], json!([{"path": "/landing", "pageviews": 1}]));
    assert_eq!(s["top_referrers"], json!([{"source": "(direct)", "visits": 1}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_page_app_navigation_is_a_second_pageview_in_the_same_session() {
    let stack = Stack::start().await;
    let (api, t, page) = setup(&stack).await;
    let report = browser::run("spa", &format!("{page}/spa/first")).await;
    assert_clean(&report);
    let s = api.stats_when(&t.token, &t.site_id, "", |s| s["summary"]["pageviews"] == 2 && s["summary"]["clicks"] == 1).await;
    assert_eq!(s["summary"]["sessions"], 1, "{s}");
    assert_eq!(s["top_pages"], json!([{"path": "/spa/first", "pageviews": 1}, {"path": "/spa/second", "pageviews": 1}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_events_is_batched_by_ten_and_counted_exactly() {
    let stack = Stack::start().await;
    let (api, t, page) = setup(&stack).await;
    let report = browser::run("burst", &format!("{page}/burst")).await;
    assert_clean(&report);
    let s = api.stats_when(&t.token, &t.site_id, "", |s| s["summary"]["clicks"].as_i64() >= Some(25)).await;
    stack.wait_drained().await;
    let s2 = api.stats(&t.token, &t.site_id, "").await;
    assert_eq!((s2["summary"]["clicks"].as_i64(), s2["summary"]["pageviews"].as_i64()), (Some(25), Some(1)), "{}", s["summary"]);
    let reached = s2["scroll_distribution"].as_array().expect("dist");
    assert_eq!(reached.iter().map(|b| b["pageviews"].as_i64().unwrap_or(0)).sum::<i64>(), 1, "one pageview in the distribution");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_not_track_and_global_privacy_control_send_nothing() {
    let stack = Stack::start().await;
    let (_api, _t, page) = setup(&stack).await;
    for scenario in ["dnt", "gpc"] {
        let report = browser::run(scenario, &format!("{page}/")).await;
        assert_clean(&report);
        assert_eq!(report["batchRequests"], 0, "{scenario}: ingest received requests: {report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ingest_down_nothing_breaks_and_the_kept_batch_arrives_once() {
    let mut stack = Stack::start().await;
    let (api, t, page) = setup(&stack).await;
    stack.terminate(Proc::Ingest);

    let mut driver = Driver::start("tracker.mjs", &["offline", &format!("{page}/offline")]);
    driver.expect_line("KEPT").await;
    stack.start_proc(Proc::Ingest);
    stack.wait_ready(Proc::Ingest).await;
    driver.send_line("RESUMED").await;
    let report = driver.finish().await;
    assert_clean(&report);
    assert!(report["accepted"].as_i64() >= Some(1), "the kept batch was accepted: {report}");

    let s = api.stats_when(&t.token, &t.site_id, "", |s| s["summary"]["pageviews"] == 1 && s["summary"]["clicks"] == 1).await;
    assert_eq!(s["summary"]["sessions"], 1);
    // Counted once, even if a retry and the final beacon both carried it.
    stack.wait_drained().await;
    let again = api.stats(&t.token, &t.site_id, "").await;
    assert_eq!((again["summary"]["pageviews"].as_i64(), again["summary"]["clicks"].as_i64()), (Some(1), Some(1)));
}
