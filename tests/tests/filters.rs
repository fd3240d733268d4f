//! One-click filters (issue 21) over real processes, with exact figures: `?filter=dimension:value`
//! answers the summary, series, goals and top pages of the sessions with that attribution —
//! including batches of a session that carry no pageview — and refuses what it cannot answer,
//! naming the parameter.

use cp_tests::v2;

use std::time::Duration;

use cp_tests::{
    batch::{batch as make_batch, click, id, pageview, scroll, time},
    client::Api,
    stack::Stack,
    wait,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use v2::{chrome, custom, send};

fn u(path: &str) -> String {
    format!("https://example.com{path}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_answers_the_stats_of_the_sessions_with_that_value() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", &v2::noon_zone()).await;
    let body = json!({"name": "Signup", "kind": "event", "match": "Signup"});
    let (status, goal) = api.post(&format!("/api/sites/{}/goals", t.site_id), Some(&t.token), &body).await;
    assert_eq!(status, StatusCode::CREATED);

    // S1: from Google, campaign spring; clicks, converts, sees a second page; its scroll and
    // time come in a later batch without a pageview.
    let (p1, p1b, p2, p3) = (id("page"), id("page"), id("page"), id("page"));
    let s1 = make_batch(
        &t.key,
        "sess_filter_1",
        vec![
            pageview(&p1, &u("/?utm_campaign=spring"), "https://www.google.com/search?q=x", true),
            click(&p1, &u("/"), "button#cta", "Start"),
            custom(&p1, &u("/"), "Signup", json!({})),
            pageview(&p1b, &u("/pricing"), &u("/"), false),
        ],
    );
    let s1_later =
        make_batch(&t.key, "sess_filter_1", vec![scroll(&p1b, &u("/pricing"), 80, 0), time(&p1b, &u("/pricing"), 12.5)]);
    // S2: from Bing, enters on /pricing and bounces.
    let s2 = make_batch(&t.key, "sess_filter_2", vec![pageview(&p2, &u("/pricing"), "https://www.bing.com/", true)]);
    // S3: direct, scrolls.
    let s3 = make_batch(&t.key, "sess_filter_3", vec![pageview(&p3, &u("/"), "", true), scroll(&p3, &u("/"), 60, 0)]);
    for (i, b) in [&s1, &s1_later, &s2, &s3].into_iter().enumerate() {
        send(&api, b, &chrome(i as u32 + 1)).await;
    }
    let stats = |q: String| {
        let (api, t) = (api.clone(), t.clone());
        async move { api.stats(&t.token, &t.site_id, &q).await }
    };
    wait::until("every batch counted", Duration::from_secs(30), || async {
        let s = stats("timeframe=7d&filter=source:google.com".into()).await;
        (s["summary"]["pageviews"] == 2 && s["summary"]["clicks"] == 1 && s["summary"]["avg_time_seconds"] != 0.0)
            .then_some(())
    })
    .await;
    wait::until("the other sessions counted", Duration::from_secs(30), || async {
        (stats("timeframe=7d".into()).await["summary"]["pageviews"] == 4).then_some(())
    })
    .await;

    let google = stats("timeframe=7d&filter=source:google.com".into()).await;
    assert_eq!(google["filter"], "source:google.com");
    let summary = &google["summary"];
    let got = |k: &str| summary[k].clone();
    assert_eq!(
        (got("pageviews"), got("sessions"), got("clicks"), got("conversions"), got("conversion_rate"), got("bounce_rate")),
        (json!(2), json!(1), json!(1), json!(1), json!(1.0), json!(0.0)),
        "{summary}"
    );
    assert_eq!(
        (got("avg_scroll_depth"), got("avg_time_seconds")),
        (json!(40.0), json!(6.25)),
        "80 % and 12.5 s over 2 pageviews"
    );
    let pages: Vec<(String, i64)> = google["top_pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|p| (p["path"].as_str().unwrap_or_default().to_string(), p["pageviews"].as_i64().unwrap_or(-1)))
        .collect();
    assert_eq!(pages, vec![("/".to_string(), 1), ("/pricing".to_string(), 1)]);
    let goal_row = google["goals"].as_array().expect("goals").iter().find(|g| g["id"] == goal["id"]).cloned().expect("row");
    assert_eq!((goal_row["conversions"].clone(), goal_row["rate"].clone()), (json!(1), json!(1.0)));
    let series_pageviews: i64 =
        google["series"].as_array().expect("series").iter().filter_map(|p| p["pageviews"].as_i64()).sum();
    assert_eq!(series_pageviews, 2);

    // The same session by its campaign; another by its entry page.
    let spring = stats("timeframe=7d&filter=campaign:spring".into()).await;
    assert_eq!(spring["summary"], google["summary"]);
    let pricing = stats("timeframe=7d&filter=entry_page:/pricing".into()).await;
    let p = &pricing["summary"];
    assert_eq!(
        (p["pageviews"].clone(), p["sessions"].clone(), p["bounce_rate"].clone()),
        (json!(1), json!(1), json!(1.0)),
        "{p}"
    );
    let desktop = stats("timeframe=7d&filter=device:desktop".into()).await;
    assert_eq!((desktop["summary"]["pageviews"].clone(), desktop["summary"]["sessions"].clone()), (json!(4), json!(3)));
    // A value nobody has: zeros, not an error.
    let none = stats("timeframe=7d&filter=source:nowhere.example".into()).await;
    assert_eq!((none["summary"]["pageviews"].clone(), none["top_pages"].clone()), (json!(0), json!([])));

    for (query, starts) in [
        ("filter=planet:mars", "filter:"),
        ("filter=source", "filter:"),
        ("filter=source:", "filter:"),
        ("filter=source:google.com&page=/", "filter:"),
    ] {
        let (status, err): (StatusCode, Value) =
            api.get(&format!("/api/stats/{}?timeframe=7d&{query}", t.site_id), Some(&t.token)).await;
        assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{query}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| m.starts_with(starts)), "{query}: {err}");
    }
}
