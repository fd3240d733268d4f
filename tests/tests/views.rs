//! The views of issue 10 against the contract, with exact figures: the live view within 2 s of
//! the 202, `?compare=previous` over data of earlier days and hours written into the stack's
//! database, `?page=` restricting every figure and list to one page, and the CSV export
//! equal to the JSON series.

use cp_tests::v2;

use std::time::Duration;

use cp_tests::{
    batch::{batch as make_batch, click, id, pageview, scroll, time},
    client::{Api, Tenant},
    stack::Stack,
    wait,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use v2::{DAY_MS, HOUR_MS, PastSite, PastWriter, chrome, custom, pageview_variant, send};

fn u(path: &str) -> String {
    format!("https://example.com{path}")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn goal(api: &Api, t: &Tenant, name: &str, kind: &str, matcher: &str) -> String {
    let (status, g) = api
        .post(
            &format!("/api/sites/{}/goals", t.site_id),
            Some(&t.token),
            &json!({"name": name, "kind": kind, "match": matcher}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "goal {name}: {g}");
    g["id"].as_str().expect("goal id").to_string()
}

/// `GET export.csv?query` as the owner: (status, content type, content disposition, body).
async fn export(api: &Api, t: &Tenant, site_id: &str, query: &str) -> (StatusCode, String, String, String) {
    let res = api
        .http
        .get(format!("{}/api/stats/{site_id}/export.csv?{query}", api.api))
        .bearer_auth(&t.token)
        .send()
        .await
        .expect("api");
    let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (ct, cd) = (header("content-type"), header("content-disposition"));
    (res.status(), ct, cd, res.text().await.expect("body"))
}

fn zero_summary() -> Value {
    json!({"pageviews": 0, "visitors": 0, "sessions": 0, "clicks": 0, "avg_scroll_depth": 0.0, "avg_time_seconds": 0.0,
           "conversions": 0, "conversion_rate": 0.0, "bounce_rate": 0.0})
}

fn point(start: &str, pageviews: i64, visitors: i64, sessions: i64, clicks: i64) -> Value {
    json!({"start": start, "pageviews": pageviews, "visitors": visitors, "sessions": sessions, "clicks": clicks})
}

#[test]
fn the_noon_zone_puts_now_between_noon_and_one() {
    for utc_hour in 0..24 {
        let now = 1_795_651_200_000 + utc_hour * HOUR_MS + 30 * 60_000; // 2026-11-26T00:30Z + h
        let zone = v2::noon_zone_at(now);
        assert_eq!(v2::minute_of(now, &zone), "12:30", "case {utc_hour}: {zone}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_shows_an_accepted_pageview_within_two_seconds_in_thirty_local_minutes() {
    // Arrange: a site half an hour off UTC, so that labels in the site's zone show.
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let tz = "Asia/Kolkata";
    let t = api.tenant("example.com", tz).await;
    let path = format!("/api/stats/{}/realtime", t.site_id);
    let before = now_ms();
    let (status, live) = api.get(&path, Some(&t.token)).await;
    let after = now_ms();
    assert_eq!(status, StatusCode::OK, "{live}");
    assert_eq!((&live["visitors_5m"], &live["top_pages_5m"]), (&json!(0), &json!([])), "{live}");
    let points = live["pageviews_30m"].as_array().expect("points");
    assert_eq!(points.len(), 30, "{live}");
    let labels: Vec<&str> = points.iter().filter_map(|p| p["minute"].as_str()).collect();
    let ends_now = [v2::minute_of(before, tz), v2::minute_of(after, tz)];
    let last = labels.last().copied().unwrap_or_default();
    assert!(ends_now.iter().any(|m| m == last), "the last point is the current local minute {ends_now:?}: {labels:?}");
    let end = if last == ends_now[0] { before } else { after };
    let want: Vec<String> = (0..30).rev().map(|i| v2::minute_of(end - i * 60_000, tz)).collect();
    assert_eq!(labels, want, "30 consecutive local minutes, oldest first");
    assert!(points.iter().all(|p| p["pageviews"] == 0), "{live}");

    // Act: two visitors, three pageviews.
    let sent_from = now_ms();
    let (a, b, c) = (id("page"), id("page"), id("page"));
    send(
        &api,
        &make_batch(
            &t.key,
            &id("sess"),
            vec![pageview(&a, &u("/pricing"), "", true), pageview(&b, &u("/"), &u("/pricing"), false)],
        ),
        &chrome(1),
    )
    .await;
    send(&api, &make_batch(&t.key, &id("sess"), vec![pageview(&c, &u("/?utm_source=x"), "", true)]), &chrome(2)).await;
    let accepted = now_ms();

    // Assert: within 2 s of the 202 (the last check starts before the deadline).
    let want_pages = json!([{"path": "/", "visitors": 2}, {"path": "/pricing", "visitors": 1}]);
    let this = (api.clone(), path.clone(), t.token.clone());
    let seen = wait::poll(Duration::from_secs(2), || {
        let (api, path, token) = this.clone();
        let want_pages = want_pages.clone();
        async move {
            let (status, live) = api.get(&path, Some(&token)).await;
            let total: i64 = live["pageviews_30m"].as_array()?.iter().filter_map(|p| p["pageviews"].as_i64()).sum();
            (status == StatusCode::OK && live["visitors_5m"] == 2 && total == 3 && live["top_pages_5m"] == want_pages)
                .then_some(live)
        }
    })
    .await;
    let live = match seen {
        Some(live) => live,
        None => {
            panic!("realtime did not show the pageviews within 2 s of the 202: {}", api.get(&path, Some(&t.token)).await.1)
        }
    };
    let sent_minutes = [v2::minute_of(sent_from, tz), v2::minute_of(accepted, tz)];
    for p in live["pageviews_30m"].as_array().expect("points") {
        let label = p["minute"].as_str().unwrap_or_default();
        if !sent_minutes.iter().any(|m| m == label) {
            assert_eq!(p["pageviews"], 0, "only the minute of the 202 has pageviews: {live}");
        }
    }
    if sent_minutes[0] == sent_minutes[1] {
        let last = live["pageviews_30m"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["minute"] == sent_minutes[0].as_str()))
            .cloned();
        assert_eq!(last, Some(json!({"minute": sent_minutes[0], "pageviews": 3})), "{live}");
    }

    // Someone else's site and no token.
    let other = api.tenant("example.org", "UTC").await;
    let (status, err) = api.get(&path, Some(&other.token)).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    assert_eq!(api.get(&path, None).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_previous_gives_the_exact_summary_and_series_of_the_range_just_before() {
    // Arrange: days of the previous and the current 7 days (and one before both) written into
    // the stack's database; a goal that applies to them.
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let tz = v2::noon_zone();
    let t = api.tenant("example.com", &tz).await;
    let signup = goal(&api, &t, "Signup", "event", "Signup").await;
    let writer = PastWriter::new(&stack).await;
    writer.backdate_goals(&t.site_id, 20 * DAY_MS).await;
    let site = PastSite { site_id: t.site_id.clone(), timezone: tz.clone(), domain: "example.com".into() };
    let now = now_ms();
    let at = |days_ago: i64| v2::local_noon_days_ago(now, &tz, days_ago);
    let day = |days_ago: i64| v2::day_of(at(days_ago), &tz);
    let pages: Vec<String> = (0..12).map(|_| id("page")).collect();
    let pv = |i: usize, path: &str, new_session: bool| pageview(&pages[i], &u(path), "", new_session);
    writer
        .write(&[
            // Before both ranges.
            site.msg("sess_x_prev", "x", at(14), vec![pv(0, "/", true)]),
            // The previous 7 days.
            site.msg(
                "sess_p1_prev",
                "p1",
                at(13),
                vec![
                    pv(1, "/", true),
                    click(&pages[1], &u("/"), "button#cta", "Go"),
                    scroll(&pages[1], &u("/"), 50, 0),
                    time(&pages[1], &u("/"), 10.0),
                ],
            ),
            site.msg("sess_p2_prev", "p2", at(10), vec![pv(2, "/", true)]),
            site.msg(
                "sess_p3_prev",
                "p3",
                at(10) + 60_000,
                vec![pv(3, "/pricing", true), custom(&pages[3], &u("/pricing"), "Signup", Value::Null)],
            ),
            site.msg("sess_p4_prev", "p4", at(7), vec![pv(4, "/", true), pv(5, "/pricing", false)]),
            // The current 7 days (today: half an hour ago).
            site.msg("sess_c1_prev", "c1", at(6), vec![pv(6, "/", true), custom(&pages[6], &u("/"), "Signup", Value::Null)]),
            site.msg("sess_c2_prev", "c2", at(2), vec![pv(7, "/", true)]),
            site.msg("sess_c3_prev", "c3", now - 30 * 60_000, vec![pv(8, "/pricing", true)]),
        ])
        .await;

    // Act.
    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, "timeframe=7d&compare=previous").await);

    // Assert.
    assert_eq!(
        s["summary"],
        json!({"pageviews": 3, "visitors": 3, "sessions": 3, "clicks": 0, "avg_scroll_depth": 0.0, "avg_time_seconds": 0.0,
               "conversions": 1, "conversion_rate": 0.3333, "bounce_rate": 0.6667}),
        "current 7 days: {s}"
    );
    assert_eq!(
        s["previous"],
        json!({"pageviews": 5, "visitors": 4, "sessions": 4, "clicks": 1, "avg_scroll_depth": 10.0, "avg_time_seconds": 2.0,
               "conversions": 1, "conversion_rate": 0.25, "bounce_rate": 0.25}),
        "previous 7 days: {s}"
    );
    let want_series = json!([
        point(&day(13), 1, 1, 1, 1),
        point(&day(12), 0, 0, 0, 0),
        point(&day(11), 0, 0, 0, 0),
        point(&day(10), 2, 2, 2, 0),
        point(&day(9), 0, 0, 0, 0),
        point(&day(8), 0, 0, 0, 0),
        point(&day(7), 2, 1, 1, 0),
    ]);
    assert_eq!(s["previous_series"], want_series, "{s}");
    assert_eq!(s["goals"], json!([{"id": signup, "name": "Signup", "conversions": 1, "rate": 0.3333}]), "{s}");

    // A custom range of 4 days: the 4 days before it.
    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, &format!("from={}&to={}&compare=previous", day(10), day(7))).await);
    assert_eq!(
        s["previous"],
        json!({"pageviews": 2, "visitors": 2, "sessions": 2, "clicks": 1, "avg_scroll_depth": 25.0, "avg_time_seconds": 5.0,
               "conversions": 0, "conversion_rate": 0.0, "bounce_rate": 0.5}),
        "{s}"
    );
    assert_eq!(
        s["previous_series"],
        json!([
            point(&day(14), 1, 1, 1, 0),
            point(&day(13), 1, 1, 1, 1),
            point(&day(12), 0, 0, 0, 0),
            point(&day(11), 0, 0, 0, 0)
        ]),
        "{s}"
    );

    // With a page filter: that page's previous figures.
    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, "timeframe=7d&compare=previous&page=/pricing").await);
    assert_eq!(
        s["previous"],
        json!({"pageviews": 2, "visitors": 2, "sessions": 1, "clicks": 0, "avg_scroll_depth": 0.0, "avg_time_seconds": 0.0,
               "conversions": 1, "conversion_rate": 1.0, "bounce_rate": 0.0}),
        "/pricing: P3 entered on it and converted, P4 reached it second: {s}"
    );

    // Without the parameter there is no comparison; another value is refused.
    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, "timeframe=7d").await);
    assert!(s.get("previous").is_none() && s.get("previous_series").is_none(), "{s}");
    let (status, err) = api.get(&format!("/api/stats/{}?compare=last_year", t.site_id), Some(&t.token)).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_timeframe")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_previous_over_24_hours_gives_the_24_hours_before() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let tz = v2::noon_zone();
    let t = api.tenant("example.com", &tz).await;
    let writer = PastWriter::new(&stack).await;
    let site = PastSite { site_id: t.site_id.clone(), timezone: tz.clone(), domain: "example.com".into() };
    let now = now_ms();
    let hour_start = now - now.rem_euclid(HOUR_MS);
    let pages: Vec<String> = (0..6).map(|_| id("page")).collect();
    writer
        .write(&[
            site.msg("sess_h4_24h", "h4", now - 50 * HOUR_MS, vec![pageview(&pages[0], &u("/"), "", true)]),
            site.msg(
                "sess_h2_24h",
                "h2",
                now - 30 * HOUR_MS,
                vec![pageview(&pages[1], &u("/"), "", true), pageview(&pages[2], &u("/a"), "", false)],
            ),
            site.msg("sess_h3_24h", "h3", now - 30 * HOUR_MS + 1000, vec![pageview(&pages[3], &u("/"), "", true)]),
            site.msg(
                "sess_h1_24h",
                "h1",
                now - 2 * HOUR_MS,
                vec![pageview(&pages[4], &u("/"), "", true), click(&pages[4], &u("/"), "a.x", "X")],
            ),
        ])
        .await;

    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, "timeframe=24h&compare=previous").await);
    assert_eq!(
        s["summary"],
        json!({"pageviews": 1, "visitors": 1, "sessions": 1, "clicks": 1, "avg_scroll_depth": 0.0, "avg_time_seconds": 0.0,
               "conversions": 0, "conversion_rate": 0.0, "bounce_rate": 0.0}),
        "{s}"
    );
    assert_eq!(
        s["previous"],
        json!({"pageviews": 3, "visitors": 2, "sessions": 2, "clicks": 0, "avg_scroll_depth": 0.0, "avg_time_seconds": 0.0,
               "conversions": 0, "conversion_rate": 0.0, "bounce_rate": 0.5}),
        "{s}"
    );
    // The 24 hours ending right before the first hour of the current 24.
    let busy = v2::hour_of(now - 30 * HOUR_MS, &tz);
    let want: Vec<Value> = (24..48)
        .rev()
        .map(|h| {
            let label = v2::hour_of(hour_start - h * HOUR_MS, &tz);
            if label == busy { point(&label, 3, 2, 2, 0) } else { point(&label, 0, 0, 0, 0) }
        })
        .collect();
    assert_eq!(s["previous_series"], Value::Array(want), "{s}");
}

/// The sessions of the page-filter tests, sent now; returns the goals (CTA, Signup).
///
/// - P1 (visitor 1): lands on /pricing from google, campaign spring, variant A; scrolls 60 %,
///   clicks the CTA (a goal), reads 10 s; then / (clicks a.nav, reads 5 s).
/// - P2 (visitor 2): lands on / (direct); then /pricing: clicks button#buy, sends Signup (a
///   goal), scrolls 30 %.
/// - P3 (visitor 1 again): lands on /pricing from t.co, reads 4 s: a bounce.
/// - P4 (visitor 3): lands on /: a bounce.
async fn page_fixture(stack: &Stack, api: &Api, t: &Tenant) -> (String, String) {
    let cta = goal(api, t, "CTA", "click", "button#cta").await;
    let signup = goal(api, t, "Signup", "event", "Signup").await;
    let p: Vec<String> = (0..6).map(|_| id("page")).collect();
    let pricing = u("/pricing");
    let home = u("/");
    let (s1, s2) = (id("sess"), id("sess"));
    let batches = [
        (
            make_batch(
                &t.key,
                &s1,
                vec![
                    pageview_variant(&p[0], &u("/pricing?utm_campaign=spring"), "https://www.google.com/", true, "A"),
                    scroll(&p[0], &pricing, 60, 0),
                    click(&p[0], &pricing, "button#cta", "Start"),
                    time(&p[0], &pricing, 10.0),
                ],
            ),
            1,
        ),
        (
            make_batch(
                &t.key,
                &s1,
                vec![pageview(&p[1], &home, &pricing, false), click(&p[1], &home, "a.nav", "Docs"), time(&p[1], &home, 5.0)],
            ),
            1,
        ),
        (
            make_batch(
                &t.key,
                &s2,
                vec![
                    pageview(&p[2], &home, "", true),
                    pageview(&p[3], &pricing, &home, false),
                    click(&p[3], &pricing, "button#buy", "Buy"),
                    custom(&p[3], &pricing, "Signup", Value::Null),
                    scroll(&p[3], &pricing, 30, 0),
                ],
            ),
            2,
        ),
        (
            make_batch(
                &t.key,
                &id("sess"),
                vec![pageview(&p[4], &u("/pricing#plans"), "https://t.co/x", true), time(&p[4], &pricing, 4.0)],
            ),
            1,
        ),
        (make_batch(&t.key, &id("sess"), vec![pageview(&p[5], &home, "", true)]), 3),
    ];
    for (b, visitor) in &batches {
        send(api, b, &chrome(*visitor)).await;
    }
    api.stats_when(&t.token, &t.site_id, "timeframe=7d", |s| {
        s["summary"]["pageviews"] == 6 && s["summary"]["conversions"] == 2
    })
    .await;
    stack.wait_drained().await;
    (cta, signup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_filter_restricts_the_summary_series_and_every_list_to_the_page() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", &v2::noon_zone()).await;
    let (cta, signup) = page_fixture(&stack, &api, &t).await;

    // /pricing: its 3 pageviews, 2 visitors, the 2 sessions that entered on it (P1 converted,
    // P3 bounced), the clicks, scroll and time on it.
    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, "timeframe=7d&page=/pricing").await);
    assert_eq!(s["page"], "/pricing", "{s}");
    assert_eq!(
        s["summary"],
        json!({"pageviews": 3, "visitors": 2, "sessions": 2, "clicks": 2, "avg_scroll_depth": 30.0, "avg_time_seconds": 14.0 / 3.0,
               "conversions": 1, "conversion_rate": 0.5, "bounce_rate": 0.5}),
        "/pricing summary: {s}"
    );
    let today = s["to"].as_str().expect("to").to_string();
    let series = s["series"].as_array().expect("series");
    assert_eq!(series.len(), 7);
    assert_eq!(series[6], point(&today, 3, 2, 2, 2), "{s}");
    assert!(series[..6].iter().all(|p| p["pageviews"] == 0 && p["sessions"] == 0), "{s}");
    let cases: [(&str, Value); 15] = [
        ("top_pages", json!([{"path": "/pricing", "pageviews": 3}])),
        (
            "top_referrers",
            json!([{"source": "google.com", "visits": 1, "conversions": 1}, {"source": "t.co", "visits": 1, "conversions": 0}]),
        ),
        ("top_campaigns", json!([{"name": "spring", "visits": 1, "conversions": 1}])),
        ("top_mediums", json!([])),
        (
            "variants",
            json!([{"variant": "A", "visits": 1, "conversions": 1, "rate": 1.0, "ci_low": 0.2065, "ci_high": 1.0, "p_beat_control": null}]),
        ),
        (
            "top_clicks",
            json!([{"selector": "button#buy", "text": "Buy", "clicks": 1}, {"selector": "button#cta", "text": "Start", "clicks": 1}]),
        ),
        ("top_events", json!([{"name": "Signup", "count": 1}])),
        // P2's Signup happened on /pricing, but P2 entered on /.
        (
            "goals",
            json!([{"id": cta, "name": "CTA", "conversions": 1, "rate": 0.5}, {"id": signup, "name": "Signup", "conversions": 0, "rate": 0.0}]),
        ),
        (
            "scroll_distribution",
            json!([
                {"bucket": "0-25", "pageviews": 1}, {"bucket": "25-50", "pageviews": 1}, {"bucket": "50-75", "pageviews": 1},
                {"bucket": "75-100", "pageviews": 0}, {"bucket": "100", "pageviews": 0},
            ]),
        ),
        ("top_devices", json!([{"name": "desktop", "visits": 2}])),
        ("top_browsers", json!([{"name": "Chrome", "visits": 2}])),
        ("top_os", json!([{"name": "Windows", "visits": 2}])),
        ("top_countries", json!([{"country": "(unknown)", "visits": 2}])),
        ("timeframe", json!("7d")),
        ("granularity", json!("day")),
    ];
    for (field, want) in cases {
        assert_eq!(s[field], want, "case /pricing {field}: {}", s[field]);
    }

    // /: 3 pageviews by 3 visitors; P2 and P4 entered on it, P2 converted (on /pricing).
    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, "timeframe=7d&page=/").await);
    assert_eq!(
        s["summary"],
        json!({"pageviews": 3, "visitors": 3, "sessions": 2, "clicks": 1, "avg_scroll_depth": 0.0, "avg_time_seconds": 5.0 / 3.0,
               "conversions": 1, "conversion_rate": 0.5, "bounce_rate": 0.5}),
        "/ summary: {s}"
    );
    let cases: [(&str, Value); 6] = [
        ("top_pages", json!([{"path": "/", "pageviews": 3}])),
        ("top_referrers", json!([{"source": "(direct)", "visits": 2, "conversions": 1}])),
        ("top_clicks", json!([{"selector": "a.nav", "text": "Docs", "clicks": 1}])),
        ("top_events", json!([])),
        (
            "goals",
            json!([{"id": cta, "name": "CTA", "conversions": 0, "rate": 0.0}, {"id": signup, "name": "Signup", "conversions": 1, "rate": 0.5}]),
        ),
        ("variants", json!([])),
    ];
    for (field, want) in cases {
        assert_eq!(s[field], want, "case / {field}: {}", s[field]);
    }

    // The last 24 hours hold the same figures for the page.
    let h = v2::only_v2(&api.stats(&t.token, &t.site_id, "timeframe=24h&page=/pricing").await);
    let d = v2::only_v2(&api.stats(&t.token, &t.site_id, "timeframe=7d&page=/pricing").await);
    assert_eq!(h["summary"], d["summary"], "24h vs 7d for /pricing: {h}");
    let hours = h["series"].as_array().expect("series");
    assert_eq!(hours.len(), 24);
    let sum = |k: &str| hours.iter().filter_map(|p| p[k].as_i64()).sum::<i64>();
    assert_eq!((sum("pageviews"), sum("visitors"), sum("sessions"), sum("clicks")), (3, 2, 2, 2), "{h}");

    // A page nobody viewed: 200 and zeros; the goals are listed with nothing.
    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, "timeframe=7d&page=/nope").await);
    assert_eq!(s["summary"], zero_summary(), "{s}");
    assert!(
        s["series"].as_array().is_some_and(|p| p.len() == 7 && p.iter().all(|p| p["pageviews"] == 0 && p["visitors"] == 0)),
        "{s}"
    );
    for list in [
        "top_pages",
        "top_clicks",
        "top_referrers",
        "top_campaigns",
        "top_mediums",
        "variants",
        "top_events",
        "top_devices",
        "top_browsers",
        "top_os",
        "top_countries",
    ] {
        assert_eq!(s[list], json!([]), "case /nope {list}");
    }
    assert_eq!(
        s["goals"],
        json!([{"id": cta, "name": "CTA", "conversions": 0, "rate": 0.0}, {"id": signup, "name": "Signup", "conversions": 0, "rate": 0.0}])
    );
    assert!(s["scroll_distribution"].as_array().is_some_and(|b| b.iter().all(|b| b["pageviews"] == 0)), "{s}");

    // The site as a whole is unchanged by all this.
    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, "timeframe=7d").await);
    assert_eq!(
        (&s["summary"]["pageviews"], &s["summary"]["sessions"], &s["summary"]["conversions"]),
        (&json!(6), &json!(4), &json!(2)),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_export_equals_the_json_series_for_days_hours_and_a_page() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let tz = v2::noon_zone();
    let t = api.tenant("example.com", &tz).await;
    let sent_from = now_ms();
    page_fixture(&stack, &api, &t).await;
    let sent_until = now_ms();

    // (query, conversions of the day or hour the fixture was sent in).
    let cases = [
        ("timeframe=7d", 2),
        ("timeframe=24h", 2),
        ("timeframe=7d&page=/pricing", 1),
        ("timeframe=24h&page=/pricing", 1),
        ("timeframe=30d&page=/", 1),
        // The export is of the view's own series; a comparison adds no rows.
        ("timeframe=7d&compare=previous", 2),
    ];
    for (query, converted) in cases {
        let s = v2::only_v2(&api.stats(&t.token, &t.site_id, query).await);
        let (status, content_type, disposition, body) = export(&api, &t, &t.site_id, query).await;
        assert_eq!(status, StatusCode::OK, "case {query}: {body}");
        assert!(content_type.starts_with("text/csv"), "case {query}: {content_type}");
        assert!(disposition.starts_with("attachment"), "case {query}: {disposition}");
        let hourly = s["granularity"] == "hour";
        let label = |ms: i64| if hourly { v2::hour_of(ms, &tz) } else { v2::day_of(ms, &tz) };
        let series = s["series"].as_array().expect("series");
        if label(sent_from) == label(sent_until) {
            let conversions: Vec<i64> =
                series.iter().map(|p| if p["start"] == label(sent_from).as_str() { converted } else { 0 }).collect();
            assert_eq!(body, v2::expected_csv(&s["series"], &conversions), "case {query}");
        } else {
            // The fixture straddled an hour: the figures still match, conversions add up.
            let rows: Vec<&str> = body.lines().collect();
            let without_conversions: Vec<String> =
                rows.iter().map(|r| r.rsplit_once(',').map(|(a, _)| a.to_string()).unwrap_or_default()).collect();
            let want = v2::expected_csv(&s["series"], &vec![0; series.len()]);
            let want_rows: Vec<String> =
                want.lines().map(|r| r.rsplit_once(',').map(|(a, _)| a.to_string()).unwrap_or_default()).collect();
            assert_eq!(without_conversions, want_rows, "case {query}");
            let total: i64 = rows[1..].iter().filter_map(|r| r.rsplit(',').next()?.parse::<i64>().ok()).sum();
            assert_eq!(total, converted, "case {query}");
        }
    }

    // A custom range, and errors as for stats.
    let day = v2::day_of(sent_from, &tz);
    let query = format!("from={day}&to={day}");
    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, &query).await);
    assert_eq!(export(&api, &t, &t.site_id, &query).await.3, v2::expected_csv(&s["series"], &[2]), "case {query}");
    let (status, _, _, body) = export(&api, &t, &t.site_id, "timeframe=1y").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).ok().map(|e| e["error"].clone()),
        Some(json!("invalid_timeframe")),
        "{body}"
    );
    let other = api.tenant("example.org", "UTC").await;
    let (status, _, _, body) = export(&api, &other, &t.site_id, "timeframe=7d").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "someone else's site: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_counts_a_visitor_whose_accepted_events_in_the_last_five_minutes_are_not_pageviews() {
    // A visitor still reading a page loaded earlier sends time, scroll, click and custom
    // events but no pageview: "an accepted event" shows in the live view within 2 s.
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let path = format!("/api/stats/{}/realtime", t.site_id);
    let page = id("page");
    let pricing = u("/pricing");
    send(
        &api,
        &make_batch(
            &t.key,
            &id("sess"),
            vec![
                time(&page, &pricing, 12.0),
                scroll(&page, &pricing, 40, 10),
                click(&page, &pricing, "button#cta", "Go"),
                custom(&page, &pricing, "Signup", Value::Null),
            ],
        ),
        &chrome(1),
    )
    .await;

    let this = (api.clone(), path.clone(), t.token.clone());
    let seen = wait::poll(Duration::from_secs(2), || {
        let (api, path, token) = this.clone();
        async move {
            let (_, live) = api.get(&path, Some(&token)).await;
            (live["visitors_5m"] == 1).then_some(live)
        }
    })
    .await;
    let (_, last) = api.get(&path, Some(&t.token)).await;
    let live = seen.unwrap_or_else(|| panic!("the visitor is not in the live view within 2 s of the 202: {last}"));
    let total: i64 = live["pageviews_30m"].as_array().expect("points").iter().filter_map(|p| p["pageviews"].as_i64()).sum();
    assert_eq!(total, 0, "no pageview was sent: {live}");
}
