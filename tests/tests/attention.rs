//! On-page attention (issue 20) through the real stack: batches with views, marked clicks,
//! scrolls and form events go through ingest and the aggregator, and the page view answers the
//! contract's figures exactly — for the owner, through a shared link and through an overlay
//! link — and refuses what it must.

use std::time::Duration;

use cp_tests::{
    batch::{batch, click, id, pageview, scroll},
    client::{Api, Tenant},
    stack::Stack,
    v2::{chrome, custom, send},
    wait,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const URL: &str = "https://example.com/landing";

fn view(page_id: &str, kind: &str, name: &str, order: Option<u8>, seen: bool, ms: u32) -> Value {
    let mut e = json!({"type": "view", "ts": 1_764_000_000_000_i64, "page_id": page_id, "url": URL,
                       "kind": kind, "name": name, "seen": seen, "ms": ms});
    if let Some(o) = order {
        e["order"] = json!(o);
    }
    e
}

fn marked_click(page_id: &str, selector: &str, marks: Value) -> Value {
    let mut e = click(page_id, URL, selector, "Buy now");
    for (k, v) in marks.as_object().expect("marks") {
        e[k] = v.clone();
    }
    e
}

/// Three pageviews of /landing by two visitors, in four batches (a pageview's events span
/// batches, as the tracker sends them).
async fn send_visits(api: &Api, t: &Tenant) {
    let (p1, p2, p3) = (id("page"), id("page"), id("page"));
    let (s1, s2) = (id("sess"), id("sess"));
    let batches = [
        (
            &s1,
            1,
            vec![
                pageview(&p1, URL, "", true),
                view(&p1, "section", "hero", Some(0), true, 2000),
                view(&p1, "section", "pricing", Some(3), true, 1500),
                view(&p1, "cta", "a#buy", None, true, 0),
                marked_click(&p1, "a#buy", json!({"x": 0.52, "y": 0.31})),
                scroll(&p1, URL, 60, 0),
                custom(&p1, URL, "form_start", json!({"form": "form#signup"})),
            ],
        ),
        (
            &s1,
            1,
            vec![
                // The same pageview again: a second click on a#buy is no second clicker.
                marked_click(&p1, "a#buy", json!({"x": 0.52, "y": 0.31, "rage": true})),
                view(&p1, "section", "pricing", Some(3), false, 500),
                custom(&p1, URL, "form_abandon", json!({"form": "form#signup", "field": "email"})),
            ],
        ),
        (
            &s1,
            1,
            vec![
                pageview(&p2, URL, "", false),
                view(&p2, "section", "hero", Some(0), true, 1000),
                view(&p2, "cta", "a#buy", None, true, 0),
                marked_click(&p2, "div.price", json!({"x": 0.1, "y": 0.9, "dead": true})),
                scroll(&p2, URL, 100, 0),
                custom(&p2, URL, "form_start", json!({"form": "form#signup"})),
                custom(&p2, URL, "form_submit", json!({"form": "form#signup"})),
            ],
        ),
        (
            &s2,
            3,
            vec![
                pageview(&p3, URL, "", true),
                view(&p3, "section", "hero", Some(0), true, 3000),
                view(&p3, "cta", "button#trial", None, true, 0),
                // Clicked before it was seen: the tracker reports it seen.
                view(&p3, "cta", "a#buy", None, true, 0),
                marked_click(&p3, "a#buy", json!({"x": 0.52, "y": 0.31})),
                scroll(&p3, URL, 9, 0),
            ],
        ),
    ];
    for (session, visitor, events) in batches {
        let mut b = batch(&t.key, session, events);
        b["batch_id"] = json!(id("batch"));
        send(api, &b, &chrome(visitor)).await;
    }
}

fn expected() -> Value {
    let mut scroll_map = vec![0; 20];
    // 60 %, 100 % and 9 %: bins 0 (5 %) by three, bins 1-11 by two, 12-19 by one.
    scroll_map[0] = 3;
    (1..12).for_each(|i| scroll_map[i] = 2);
    (12..20).for_each(|i| scroll_map[i] = 1);
    json!({
        "path": "/landing", "pageviews": 3, "visitors": 2,
        "sections": [
            {"name": "hero", "order": 0, "viewers": 3, "view_rate": 1.0, "avg_visible_seconds": 2.0},
            {"name": "pricing", "order": 3, "viewers": 1, "view_rate": 0.3333, "avg_visible_seconds": 2.0}
        ],
        "ctas": [
            {"selector": "a#buy", "text": "Buy now", "viewers": 3, "clickers": 2, "ctr": 0.6667},
            {"selector": "button#trial", "text": "", "viewers": 1, "clickers": 0, "ctr": 0.0}
        ],
        "rage_clicks": [{"selector": "a#buy", "count": 1}],
        "dead_clicks": [{"selector": "div.price", "count": 1}],
        "forms": [{"form": "form#signup", "starts": 2, "submits": 1, "abandons": [{"field": "email", "count": 1}]}],
        "scroll_map": scroll_map,
        "click_map": {"cols": 20, "rows": 50, "cells": [[2, 45, 1], [10, 15, 3]]}
    })
}

async fn page_view(api: &Api, t: &Tenant, query: &str) -> (StatusCode, Value) {
    api.get(&format!("/api/stats/{}/page?{query}", t.site_id), Some(&t.token)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pages_attention_adds_up_exactly_for_the_owner_a_shared_link_and_an_overlay() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    send_visits(&api, &t).await;

    let want = expected();
    let got = wait::until("the page view to count every batch", Duration::from_secs(15), || async {
        let (status, body) = page_view(&api, &t, "path=/landing&timeframe=7d").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (body["pageviews"] == 3
            && body["forms"][0]["abandons"].as_array().is_some_and(|a| !a.is_empty())
            && body["ctas"][0]["clickers"] == 2)
            .then_some(body)
    })
    .await;
    assert_eq!(got, want);
    // The hours say the same for the last 24 hours.
    assert_eq!(page_view(&api, &t, "path=/landing&timeframe=24h").await, (StatusCode::OK, want.clone()));
    // Another page has nothing.
    let (status, other) = page_view(&api, &t, "path=/other").await;
    assert_eq!((status, &other["pageviews"], &other["sections"]), (StatusCode::OK, &json!(0), &json!([])));

    // A shared link reads the same.
    let (status, link) = api.post(&format!("/api/sites/{}/share", t.site_id), Some(&t.token), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{link}");
    let token = link["token"].as_str().expect("share token");
    assert_eq!(api.get(&format!("/api/public/{token}/page?path=/landing"), None).await, (StatusCode::OK, want.clone()));

    // An overlay link opens that page on the site's domain, and its token reads that page only.
    let (status, overlay) =
        api.post(&format!("/api/sites/{}/overlay", t.site_id), Some(&t.token), &json!({"path": "/landing"})).await;
    assert_eq!(status, StatusCode::OK, "{overlay}");
    let url = overlay["url"].as_str().expect("url");
    let prefix = "https://example.com/landing?cp_overlay=";
    assert!(url.starts_with(prefix), "{url}");
    let res = api.http.get(format!("{}/api/overlay/{}", api.api, &url[prefix.len()..])).send().await.expect("api");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers().get("access-control-allow-origin").map(|v| v.as_bytes()), Some(&b"*"[..]));
    assert_eq!(res.json::<Value>().await.expect("json"), want);
    // Not a user's token: it opens no other route.
    let (status, _) = api.get(&format!("/api/stats/{}", t.site_id), Some(&url[prefix.len()..])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_view_refuses_what_it_must() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let other = api.tenant("example.com", "UTC").await;
    let cases: [(&str, StatusCode, &str, &str); 5] = [
        ("timeframe=7d", StatusCode::BAD_REQUEST, "invalid_request", "path: is required"),
        ("path=landing", StatusCode::BAD_REQUEST, "invalid_request", "path: must be a URL path"),
        ("path=/a%3Fb", StatusCode::BAD_REQUEST, "invalid_request", "path: must be a URL path"),
        ("path=/&timeframe=2y", StatusCode::BAD_REQUEST, "invalid_timeframe", ""),
        ("path=/&from=2026-01-02&to=2026-01-01", StatusCode::BAD_REQUEST, "invalid_timeframe", ""),
    ];
    for (query, status, code, message) in cases {
        let (got, body) = page_view(&api, &t, query).await;
        assert_eq!((got, body["error"].as_str()), (status, Some(code)), "case {query}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| m.starts_with(message)), "case {query}: {body}");
    }
    let long = format!("path=/{}", "a".repeat(2048));
    assert_eq!(page_view(&api, &t, &long).await.0, StatusCode::BAD_REQUEST);
    // Someone else's site, and no token.
    assert_eq!(api.get(&format!("/api/stats/{}/page?path=/", other.site_id), Some(&t.token)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.get(&format!("/api/stats/{}/page?path=/", t.site_id), None).await.0, StatusCode::UNAUTHORIZED);
    // Overlay links: the owner's sites only, a path, and a token that is signed and current.
    let overlay = |site: &str| format!("/api/sites/{site}/overlay");
    assert_eq!(api.post(&overlay(&other.site_id), Some(&t.token), &json!({"path": "/"})).await.0, StatusCode::NOT_FOUND);
    let (status, body) = api.post(&overlay(&t.site_id), Some(&t.token), &json!({"path": 3})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.starts_with("path:")), "{body}");
    let (status, body) = api.get("/api/overlay/not.a.token", None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")), "{body}");
    // The overlay script is served to any page.
    let res = api.http.get(format!("{}/convertpulse-overlay.js", api.api)).send().await.expect("api");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"].to_str().unwrap_or_default().starts_with("application/javascript"));
}
