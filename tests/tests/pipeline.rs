//! The full flow over real processes: register → login → site → batches → stats, with exact
//! numbers; duplicates; isolation between users.

use cp_tests::{
    batch::{self, batch as make_batch, click, id, pageview, scroll, time},
    client::Api,
    stack::Stack,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn post_as(api: &Api, b: &Value, user_agent: &str) -> StatusCode {
    let res = api
        .http
        .post(format!("{}/api/events/batch", api.ingest))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("user-agent", user_agent)
        .header("origin", "https://www.example.com")
        .body(serde_json::to_vec(b).expect("json"))
        .send()
        .await
        .expect("ingest reachable");
    res.status()
}

fn summary(s: &Value) -> Value {
    s["summary"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_reports_exact_stats_for_7d_24h_and_a_range() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);

    // Arrange: register, log in, create a site in a non-UTC zone.
    let email = format!("{}@example.com", id("owner"));
    let (status, body) =
        api.post("/api/auth/register", None, &json!({"email": email, "password": "correct horse 1", "name": "Owner"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = api.post("/api/auth/login", None, &json!({"email": email, "password": "correct horse 1"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    let (status, me) = api.get("/api/auth/me", Some(&token)).await;
    assert_eq!((status, me["email"].as_str()), (StatusCode::OK, Some(email.as_str())));
    let (site_id, key) = api.create_site(&token, "example.com", "America/New_York").await;

    // Act: two visitors (different user agents), two sessions, three pageviews.
    let (pa, pb, pc) = (id("page"), id("page"), id("page"));
    let pricing = "https://example.com/pricing?plan=pro";
    let home = "https://example.com/";
    let batches = [
        (
            "UA-one",
            make_batch(
                &key,
                "session_one",
                vec![
                    pageview(&pa, pricing, "https://www.google.com/search?q=x", true),
                    scroll(&pa, pricing, 30, 0),
                    scroll(&pa, pricing, 80, 30),
                    click(&pa, pricing, "button#cta", "Start free trial"),
                    click(&pa, pricing, "button#cta", "Start free trial"),
                    time(&pa, pricing, 4.5),
                ],
            ),
        ),
        (
            "UA-one",
            make_batch(
                &key,
                "session_one",
                vec![
                    pageview(&pb, home, "https://example.com/pricing", false),
                    scroll(&pb, home, 100, 0),
                    click(&pb, home, "a.nav", "Docs"),
                    time(&pb, home, 1.5),
                ],
            ),
        ),
        (
            "UA-two",
            make_batch(
                &key,
                "session_two",
                vec![pageview(&pc, "https://example.com/?utm_source=newsletter", "", true), time(&pc, home, 2.0)],
            ),
        ),
    ];
    for (ua, b) in &batches {
        assert_eq!(post_as(&api, b, ua).await, StatusCode::ACCEPTED);
    }

    // Assert: 7d, exactly.
    let s = api.stats_when(&token, &site_id, "timeframe=7d", |s| s["summary"]["pageviews"] == 3).await;
    let expected_summary = json!({
        "pageviews": 3, "visitors": 2, "sessions": 2, "clicks": 3,
        "avg_scroll_depth": 60.0, "avg_time_seconds": 8.0 / 3.0,
        // session_one read two pages and clicked; session_two left after one page.
        "conversions": 0, "conversion_rate": 0.0, "bounce_rate": 0.5,
        "revenue": {"USD": 0.0}
    });
    assert_eq!(summary(&s), expected_summary, "7d summary: {s}");
    assert_eq!(s["timeframe"], "7d");
    assert_eq!(s["timezone"], "America/New_York");
    assert_eq!(s["granularity"], "day");
    let series = s["series"].as_array().expect("series");
    assert_eq!(series.len(), 7);
    let today = s["to"].as_str().expect("to").to_string();
    assert_eq!(series[6], json!({"start": today, "pageviews": 3, "visitors": 2, "sessions": 2, "clicks": 3}));
    assert!(series[..6].iter().all(|p| p["pageviews"] == 0 && p["visitors"] == 0), "earlier days are zero: {s}");
    assert_eq!(
        s["scroll_distribution"],
        json!([
            {"bucket": "0-25", "pageviews": 1}, {"bucket": "25-50", "pageviews": 0},
            {"bucket": "50-75", "pageviews": 0}, {"bucket": "75-100", "pageviews": 1},
            {"bucket": "100", "pageviews": 1}
        ])
    );
    assert_eq!(
        s["top_clicks"],
        json!([{"selector": "button#cta", "text": "Start free trial", "clicks": 2}, {"selector": "a.nav", "text": "Docs", "clicks": 1}])
    );
    assert_eq!(s["top_pages"], json!([{"path": "/", "pageviews": 2}, {"path": "/pricing", "pageviews": 1}]));
    assert_eq!(
        cp_tests::v2::only_v2(&s["top_referrers"]),
        json!([{"source": "google.com", "visits": 1, "conversions": 0}, {"source": "newsletter", "visits": 1, "conversions": 0}])
    );

    // 24h: same totals, 24 hourly points.
    let h = api.stats(&token, &site_id, "timeframe=24h").await;
    assert_eq!(summary(&h), expected_summary, "24h summary: {h}");
    assert_eq!(h["granularity"], "hour");
    let points = h["series"].as_array().expect("series");
    assert_eq!(points.len(), 24);
    assert!(
        points.iter().all(|p| {
            let start = p["start"].as_str().unwrap_or_default();
            start.len() == 16 && start.ends_with(":00") && start.as_bytes()[10] == b'T'
        }),
        "hourly labels: {h}"
    );
    assert_eq!(points.iter().map(|p| p["pageviews"].as_i64().unwrap_or(0)).sum::<i64>(), 3);
    assert_eq!(h["top_pages"], s["top_pages"]);

    // A from/to range ending today, and one in the past.
    let r =
        api.stats(&token, &site_id, &format!("from={}&to={today}", s["series"][5]["start"].as_str().expect("day"))).await;
    assert_eq!(summary(&r), expected_summary, "range summary: {r}");
    assert_eq!(r["series"].as_array().map(Vec::len), Some(2));
    assert_eq!(r["timeframe"], "custom");
    let past = api.stats(&token, &site_id, "from=2020-01-01&to=2020-01-03").await;
    assert_eq!(
        summary(&past),
        json!({"pageviews": 0, "visitors": 0, "sessions": 0, "clicks": 0, "avg_scroll_depth": 0.0, "avg_time_seconds": 0.0,
            "conversions": 0, "conversion_rate": 0.0, "bounce_rate": 0.0, "revenue": {"USD": 0.0}})
    );
    assert_eq!(past["series"].as_array().map(Vec::len), Some(3));
    assert_eq!(past["top_clicks"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_batch_id_sent_twice_is_counted_once() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let page = id("page");
    let b = make_batch(&t.key, "session_dup", vec![pageview(&page, "https://example.com/", "", true)]);

    assert_eq!(api.post_batch(&b).await, (StatusCode::ACCEPTED, json!({"accepted": 1})));
    assert_eq!(api.post_batch(&b).await, (StatusCode::ACCEPTED, json!({"accepted": 1})), "a retry is still 202");
    let sentinel = make_batch(&t.key, "session_dup", vec![click(&page, "https://example.com/", "a#x", "x")]);
    assert_eq!(api.post_batch(&sentinel).await.0, StatusCode::ACCEPTED);

    let s = api.stats_when(&t.token, &t.site_id, "", |s| s["summary"]["clicks"] == 1).await;
    assert_eq!(s["summary"]["pageviews"], 1, "the repeated batch counted once: {s}");
    assert_eq!(s["summary"]["sessions"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_site_is_not_found_on_every_route() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let owner = api.tenant("example.com", "UTC").await;
    let intruder = api.register(&format!("{}@example.com", batch::id("intruder"))).await;
    let site = &owner.site_id;
    let cases: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (reqwest::Method::GET, format!("/api/sites/{site}"), None),
        (reqwest::Method::PATCH, format!("/api/sites/{site}"), Some(json!({"name": "mine now"}))),
        (reqwest::Method::DELETE, format!("/api/sites/{site}"), None),
        (reqwest::Method::POST, format!("/api/sites/{site}/rotate-key"), None),
        (reqwest::Method::GET, format!("/api/stats/{site}?timeframe=7d"), None),
        (reqwest::Method::GET, format!("/api/stats/{site}?timeframe=24h"), None),
    ];
    for (method, path, body) in cases {
        let (status, err) = api.send(method.clone(), &path, Some(&intruder), body.as_ref()).await;
        assert_eq!(
            (status, err["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "case {method} {path}: {err}"
        );
    }
    let (status, list) = api.get("/api/sites", Some(&intruder)).await;
    assert_eq!((status, list), (StatusCode::OK, json!([])));
    let (status, mine) = api.get(&format!("/api/sites/{site}"), Some(&owner.token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((mine["name"].as_str(), mine["api_key"].as_str()), (Some("Landing"), Some(owner.key.as_str())), "untouched");
}

/// Reads one sample (`name` with no labels) from Prometheus text.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from the metrics"))
}

/// Ingest's group commit: batches of one site that arrive together share a stream message,
/// each is answered 202 only by that message's ack, and the aggregator still counts each once,
/// including a batch sent twice at the same moment (both copies may ride in one message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_share_stream_messages_and_count_once() {
    use futures::StreamExt;
    const BATCHES: usize = 600;
    const SENT_TWICE: usize = 50;
    let stack = Stack::start_with(&[("CP_RATE_LIMIT_IP_PER_SEC", "100000"), ("CP_RATE_LIMIT_IP_BURST", "100000")]).await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let batches: Vec<Value> = (0..BATCHES)
        .map(|i| {
            let page = id("page");
            make_batch(
                &t.key,
                &format!("session_group_{i:04}"),
                vec![pageview(&page, &format!("https://example.com/p{}", i % 7), "", true)],
            )
        })
        .collect();
    let sends: Vec<&Value> = batches.iter().chain(batches.iter().take(SENT_TWICE)).collect();

    let statuses: Vec<StatusCode> =
        futures::stream::iter(sends).map(|b| async { api.post_batch(b).await.0 }).buffer_unordered(64).collect().await;
    assert!(statuses.iter().all(|s| *s == StatusCode::ACCEPTED), "every batch accepted: {statuses:?}");

    let s = api.stats_when(&t.token, &t.site_id, "", |s| s["summary"]["pageviews"] == BATCHES).await;
    assert_eq!(s["summary"]["sessions"], BATCHES, "{s}");

    let m = stack.metrics(cp_tests::stack::Proc::Ingest).await;
    let published = sample(&m, "convertpulse_ingest_publish_group_batches_sum");
    let messages = sample(&m, "convertpulse_ingest_publish_group_batches_count");
    assert_eq!(published, (BATCHES + SENT_TWICE) as f64, "every accepted batch was published once");
    assert!(
        messages < published,
        "64 concurrent senders shared stream messages: {messages} messages for {published} batches"
    );
    // Nothing more was counted once the stream is drained.
    stack.wait_drained().await;
    assert_eq!(api.stats(&t.token, &t.site_id, "").await["summary"]["pageviews"], BATCHES);
}

/// Groups stay under the stream's message size: 64 KiB-class batches sent together (five of
/// them would exceed the stream's 256 KiB limit) are all stored and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_sent_together_are_all_stored() {
    use futures::StreamExt;
    const BATCHES: usize = 120;
    let stack = Stack::start_with(&[("CP_RATE_LIMIT_IP_PER_SEC", "100000"), ("CP_RATE_LIMIT_IP_BURST", "100000")]).await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let long_url = format!("https://example.com/landing?q={}", "x".repeat(1_900));
    let batches: Vec<Value> = (0..BATCHES)
        .map(|i| {
            let page = id("page");
            let mut events = vec![pageview(&page, &long_url, "", true)];
            events.extend((0..24).map(|_| click(&page, &long_url, "a#cta", "Sign up")));
            make_batch(&t.key, &format!("session_large_{i:04}"), events)
        })
        .collect();
    let size = serde_json::to_vec(&batches[0]).expect("json").len();
    assert!((45_000..65_536).contains(&size), "each batch is close to the body limit: {size} bytes");

    let statuses: Vec<StatusCode> =
        futures::stream::iter(&batches).map(|b| async { api.post_batch(b).await.0 }).buffer_unordered(32).collect().await;
    assert!(statuses.iter().all(|s| *s == StatusCode::ACCEPTED), "every batch accepted: {statuses:?}");

    let s = api.stats_when(&t.token, &t.site_id, "", |s| s["summary"]["pageviews"] == BATCHES).await;
    assert_eq!(s["summary"]["clicks"], BATCHES * 24, "{s}");
    let m = stack.metrics(cp_tests::stack::Proc::Ingest).await;
    assert_eq!(sample(&m, "convertpulse_ingest_publish_group_batches_sum"), BATCHES as f64);
    assert_eq!(sample(&m, "convertpulse_ingest_publish_failures_total"), 0.0, "no group was refused by the stream");
}
