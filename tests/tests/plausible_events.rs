//! Plausible's Events API on ingest (issue 23), over real processes: a site that turns
//! `plausible_compatible` on takes Plausible's events by its domain (one site per domain, 409
//! `domain_taken` for a second); pageviews, custom events with props, revenue and engagement
//! land in the stats with exact figures, a retry counts once, bad fields are refused by name;
//! and Plausible's own official tracker (npm `@plausible-analytics/tracker`) in Chromium,
//! pointed at ingest, fills the same figures.

use std::path::Path;

use axum::{Router, http::header, response::IntoResponse, routing::get};
use cp_tests::{
    browser::Driver,
    client::{Api, Tenant},
    stack::Stack,
    v2::chrome,
    wait,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn plausible_site(api: &Api, domain: &str) -> Tenant {
    let t = api.tenant(domain, "UTC").await;
    let (status, site) = api
        .send(
            Method::PATCH,
            &format!("/api/sites/{}", t.site_id),
            Some(&t.token),
            Some(&json!({"plausible_compatible": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{site}");
    assert_eq!(site["plausible_compatible"], true);
    t
}

/// Posts Plausible's body as its tracker does (`text/plain`), from one desktop Chrome.
async fn event(api: &Api, body: &Value) -> (StatusCode, String) {
    let res = api
        .http
        .post(format!("{}/api/event", api.ingest))
        .header("content-type", "text/plain")
        .header("user-agent", chrome(7))
        .body(body.to_string())
        .send()
        .await
        .expect("ingest");
    (res.status(), res.text().await.unwrap_or_default())
}

/// Sends `body` until ingest takes it (the site's entry reaches ingest through the bucket).
async fn first_event(api: &Api, body: &Value) {
    wait::until("ingest to take the site's Plausible events", std::time::Duration::from_secs(15), || async {
        let (status, text) = event(api, body).await;
        (status == StatusCode::ACCEPTED).then_some(text)
    })
    .await;
}

fn rows(v: &Value, key: &str, count: &str) -> Vec<(String, i64)> {
    v.as_array()
        .map(|l| l.iter().map(|r| (r[key].as_str().unwrap_or("").to_string(), r[count].as_i64().unwrap_or(-1))).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plausibles_events_land_in_the_stats_of_the_site_on_their_domain() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = plausible_site(&api, "shop.example").await;
    // One site per domain: a second one is refused, and may take it once the first lets go.
    let other = api.tenant("shop.example", "UTC").await;
    let turn_on = json!({"plausible_compatible": true});
    let path = format!("/api/sites/{}", other.site_id);
    let (status, e) = api.send(Method::PATCH, &path, Some(&other.token), Some(&turn_on)).await;
    assert_eq!((status, e["error"].as_str()), (StatusCode::CONFLICT, Some("domain_taken")), "{e}");
    assert!(e["message"].as_str().is_some_and(|m| m.starts_with("plausible_compatible:")), "{e}");
    let (status, e) = api
        .post(
            "/api/sites",
            Some(&other.token),
            &json!({"name": "B", "domain": "shop.example", "plausible_compatible": true}),
        )
        .await;
    assert_eq!((status, e["error"].as_str()), (StatusCode::CONFLICT, Some("domain_taken")), "{e}");

    let u = |p: &str| format!("https://shop.example{p}");
    let landing = json!({"n": "pageview", "u": u("/?utm_campaign=spring"), "d": "shop.example", "r": "https://news.ycombinator.com/item?id=1", "v": 36});
    first_event(&api, &landing).await;
    // The same body again within seconds: a retry, counted once.
    assert_eq!(event(&api, &landing).await, (StatusCode::ACCEPTED, "ok".to_string()));
    for body in [
        json!({"n": "Signup", "u": u("/"), "d": "shop.example", "p": {"plan": "pro"}}),
        json!({"name": "Purchase", "url": u("/"), "domain": "other.example,shop.example", "revenue": {"amount": "49.50", "currency": "EUR"}}),
        json!({"n": "engagement", "u": u("/"), "d": "shop.example", "sd": 80, "e": 12000}),
        json!({"n": "pageview", "u": u("/pricing"), "d": "shop.example", "r": null}),
        json!({"n": "engagement", "u": u("/pricing"), "d": "shop.example", "sd": 30, "e": 3000}),
    ] {
        assert_eq!(event(&api, &body).await, (StatusCode::ACCEPTED, "ok".to_string()), "{body}");
    }
    let s = api
        .stats_when(&t.token, &t.site_id, "timeframe=7d", |s| {
            s["summary"]["pageviews"] == 2 && s["top_events"].as_array().is_some_and(|e| e.len() == 2)
        })
        .await;
    let sum = &s["summary"];
    assert_eq!(
        (sum["pageviews"].as_i64(), sum["visitors"].as_i64(), sum["sessions"].as_i64()),
        (Some(2), Some(1), Some(1)),
        "{sum}"
    );
    assert_eq!(sum["bounce_rate"].as_f64(), Some(0.0));
    // Scroll: 80 on the landing page, 30 on /pricing, over two pageviews; 15 s engaged.
    assert_eq!(sum["avg_scroll_depth"].as_f64(), Some(55.0));
    assert_eq!(sum["avg_time_seconds"].as_f64(), Some(7.5));
    assert_eq!(sum["revenue"]["EUR"].as_f64(), Some(49.5), "{sum}");
    assert_eq!(rows(&s["top_referrers"], "source", "visits"), vec![("news.ycombinator.com".to_string(), 1)]);
    assert_eq!(rows(&s["top_campaigns"], "name", "visits"), vec![("spring".to_string(), 1)]);
    assert_eq!(rows(&s["top_events"], "name", "count"), vec![("Purchase".to_string(), 1), ("Signup".to_string(), 1)]);
    assert_eq!(rows(&s["top_pages"], "path", "pageviews"), vec![("/".to_string(), 1), ("/pricing".to_string(), 1)]);
    assert_eq!(rows(&s["top_entry_pages"], "path", "visits"), vec![("/".to_string(), 1)]);
    assert_eq!(rows(&s["top_browsers"], "name", "visits"), vec![("Chrome".to_string(), 1)]);
    let (_, props) = api.get(&format!("/api/stats/{}/events/Signup?timeframe=7d", t.site_id), Some(&t.token)).await;
    assert_eq!(props["props"], json!([{"key": "plan", "values": [{"value": "pro", "count": 1}]}]), "{props}");

    // Refusals name the field; an unknown domain, or a site that turned it off, is refused.
    for (body, want) in [
        (json!({"u": u("/"), "d": "shop.example"}), "name: required"),
        (json!({"n": "pageview", "u": "shop.example/", "d": "shop.example"}), "url: must be an http(s) URL"),
        (json!({"n": "Buy", "u": u("/"), "d": "shop.example", "$": {"amount": 5, "currency": "EURO"}}), "revenue.currency:"),
        (
            json!({"n": "engagement", "u": u("/"), "d": "shop.example", "sd": 140}),
            "scroll_depth: must be a number from 0 to 100",
        ),
        (
            json!({"n": "pageview", "u": u("/"), "d": "nobody.example"}),
            "domain: no site takes Plausible's events for nobody.example",
        ),
    ] {
        let (status, text) = event(&api, &body).await;
        let e: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_batch")), "{body}: {text}");
        assert!(e["message"].as_str().is_some_and(|m| m.starts_with(want)), "{body}: {text}");
    }
    let off = json!({"plausible_compatible": false});
    let (status, _) = api.send(Method::PATCH, &format!("/api/sites/{}", t.site_id), Some(&t.token), Some(&off)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, e) = api.send(Method::PATCH, &path, Some(&other.token), Some(&turn_on)).await;
    assert_eq!(status, StatusCode::OK, "the domain is free again: {e}");
}

/// The test's landing pages: Plausible's tracker from node_modules, initialised with ingest's
/// endpoint and the page server's host as the domain.
async fn tracker_pages(ingest: &str) -> String {
    let tracker = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../node_modules/@plausible-analytics/tracker/plausible.js"),
    )
    .expect("the tracker is installed (npm ci)");
    let init = format!(
        "import {{ init, track }} from '/plausible.js';\n\
         init({{ domain: '127.0.0.1', endpoint: '{ingest}/api/event', captureOnLocalhost: true }});\n\
         document.getElementById('signup').addEventListener('click', () => track('Signup', {{ props: {{ plan: 'pro' }} }}));\n\
         document.getElementById('buy').addEventListener('click', () => track('Purchase', {{ revenue: {{ amount: 15.99, currency: 'USD' }} }}));"
    );
    let page = move |title: &str| {
        format!(
            "<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1>\
             <button id=signup>Sign up</button> <button id=buy>Buy</button> <a id=next href=/pricing>Pricing</a>\
             {}<p>The end.</p><script type=module>{init}</script>",
            "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>".repeat(120)
        )
    };
    let (landing, pricing) = (page("Landing"), page("Pricing"));
    let app = Router::new()
        .route(
            "/plausible.js",
            get(move || async move { ([(header::CONTENT_TYPE, "text/javascript")], tracker).into_response() }),
        )
        .route("/pricing", get(move || async move { axum::response::Html(pricing) }))
        .route("/", get(move || async move { axum::response::Html(landing) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://127.0.0.1:{}/", listener.local_addr().expect("addr").port());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plausibles_official_tracker_fills_the_stats_from_a_real_browser() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = plausible_site(&api, "127.0.0.1").await;
    api.wait_key_live(&t.key).await;
    let page = tracker_pages(&api.ingest).await;
    let r = Driver::start("plausible.mjs", &[&json!({"page": page}).to_string()]).finish().await;
    assert!(r["driverError"].is_null(), "{}", r["driverError"]);
    assert_eq!((&r["pageErrors"], &r["consoleErrors"]), (&json!([]), &json!([])), "{r}");
    assert_eq!(r["webdriver"], false, "the tracker sends nothing under automation");
    let events = r["events"].as_array().expect("events");
    assert!(events.iter().all(|e| e["status"] == 202), "{events:?}");

    let s = api
        .stats_when(&t.token, &t.site_id, "timeframe=7d", |s| {
            s["summary"]["pageviews"] == 2
                && s["top_events"].as_array().is_some_and(|e| e.len() == 2)
                && s["summary"]["avg_time_seconds"].as_f64().unwrap_or(0.0) > 0.0
                && s["summary"]["avg_scroll_depth"].as_f64().unwrap_or(0.0) > 0.0
        })
        .await;
    let sum = &s["summary"];
    assert_eq!(
        (sum["pageviews"].as_i64(), sum["visitors"].as_i64(), sum["sessions"].as_i64()),
        (Some(2), Some(1), Some(1)),
        "{sum}"
    );
    assert_eq!(rows(&s["top_pages"], "path", "pageviews"), vec![("/".to_string(), 1), ("/pricing".to_string(), 1)]);
    assert_eq!(rows(&s["top_events"], "name", "count"), vec![("Purchase".to_string(), 1), ("Signup".to_string(), 1)]);
    assert_eq!(sum["revenue"]["USD"].as_f64(), Some(15.99), "{sum}");
    // Engagement, as the tracker measured it when the pages were left (sent as they unload, so
    // only the stats show it): the landing page was scrolled to its end, half of the two
    // pageviews' scroll at least, and was looked at for 3.5 s.
    assert!(sum["avg_scroll_depth"].as_f64().unwrap_or(0.0) >= 50.0, "{sum}");
    assert!(sum["avg_time_seconds"].as_f64().unwrap_or(0.0) >= 1.0, "{sum}");
    let (_, props) = api.get(&format!("/api/stats/{}/events/Signup?timeframe=7d", t.site_id), Some(&t.token)).await;
    assert_eq!(props["props"], json!([{"key": "plan", "values": [{"value": "pro", "count": 1}]}]), "{props}");
}
