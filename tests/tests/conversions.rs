//! Conversions (issue 9) against the contract, with exact figures: goals of each kind, the
//! conversions and rates of a scripted mix of sessions over three campaigns and two variants,
//! attribution to the session's first pageview (also when it arrives after the conversion),
//! bounces and custom events over real processes; a redelivered batch counted once; a goal
//! created mid-stream counting from then on; and a session converting on two days, written
//! into the stack's database for past days, counted on each day, in the series and the CSV.

use cp_tests::v2;

use cp_tests::{
    batch::{batch as make_batch, click, id, pageview, scroll, time},
    client::{Api, Tenant},
    stack::Stack,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use v2::{DAY_MS, PastSite, PastWriter, chrome, custom, pageview_variant, send};

fn u(path: &str) -> String {
    format!("https://example.com{path}")
}

/// Creates a goal and returns its id.
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

fn conversions(s: &Value) -> i64 {
    s["summary"]["conversions"].as_i64().unwrap_or(-1)
}

fn sessions(s: &Value) -> i64 {
    s["summary"]["sessions"].as_i64().unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_rates_and_first_pageview_attribution_are_exact_for_a_scripted_mix_of_sessions() {
    // Arrange: a site where it is now around noon (no local midnight during the test), and a
    // goal of each kind.
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", &v2::noon_zone()).await;
    let thanks = goal(&api, &t, "Thanks", "pageview", "/thank-you*").await;
    let cta = goal(&api, &t, "CTA", "click", "button#cta").await;
    let form = goal(&api, &t, "Form", "event", "form_submit").await;
    let outbound = goal(&api, &t, "Outbound", "event", "outbound").await;
    let q = "timeframe=7d";

    // The sessions (one visitor each), as a table: what each shows is in the comments.
    let p: Vec<String> = (0..11).map(|_| id("page")).collect();
    // S1: newsletter / spring / email / A; converts on /thank-you/pro in a later batch.
    let s1_first = make_batch(
        &t.key,
        "sess_s1_conv",
        vec![pageview_variant(&p[1], &u("/?utm_source=newsletter&utm_campaign=spring&utm_medium=email"), "", true, "A")],
    );
    let s1_later = make_batch(&t.key, "sess_s1_conv", vec![pageview(&p[0], &u("/thank-you/pro"), &u("/"), false)]);
    // S2: google / spring / email / B; clicks the CTA.
    let s2 = make_batch(
        &t.key,
        "sess_s2_conv",
        vec![
            pageview_variant(&p[2], &u("/?utm_campaign=spring&utm_medium=email"), "https://www.google.com/", true, "B"),
            click(&p[2], &u("/"), "button#cta", "Start free trial"),
        ],
    );
    // S3: google / summer / cpc / B; submits the form and leaves by an outbound link: two
    // goals, one converting session.
    let s3 = make_batch(
        &t.key,
        "sess_s3_conv",
        vec![
            pageview_variant(
                &p[3],
                &u("/pricing?utm_campaign=summer&utm_medium=cpc"),
                "https://www.google.com/search?q=landing",
                true,
                "B",
            ),
            custom(&p[3], &u("/pricing"), "form_submit", json!({"form": "form#signup"})),
            custom(&p[3], &u("/pricing"), "outbound", json!({"url": "https://docs.example.org/start"})),
        ],
    );
    // S4: news.ycombinator.com / summer / cpc / A; scrolls 20 %: a bounce.
    let s4 = make_batch(
        &t.key,
        "sess_s4_conv",
        vec![
            pageview_variant(
                &p[4],
                &u("/pricing?utm_campaign=summer&utm_medium=cpc"),
                "https://news.ycombinator.com/item?id=1",
                true,
                "A",
            ),
            scroll(&p[4], &u("/pricing"), 20, 0),
        ],
    );
    // S5: t.co / autumn / social / no variant; a click that is not the goal's selector and a
    // custom event no goal names: engaged, no conversion.
    let s5 = make_batch(
        &t.key,
        "sess_s5_conv",
        vec![
            pageview(&p[5], &u("/?utm_campaign=autumn&utm_medium=social"), "https://t.co/abc", true),
            click(&p[5], &u("/"), "button#cta-secondary", "Later"),
            custom(&p[5], &u("/"), "Signup", json!({"plan": "pro"})),
        ],
    );
    // S6: direct, lands on /thanks (not /thank-you*), reads 5 s: a bounce.
    let s6 =
        make_batch(&t.key, "sess_s6_conv", vec![pageview(&p[6], &u("/thanks"), "", true), time(&p[6], &u("/thanks"), 5.0)]);
    // S7: direct / A; scrolls 60 % and sends `Outbound` (goal names match exactly): engaged.
    let s7 = make_batch(
        &t.key,
        "sess_s7_conv",
        vec![
            pageview_variant(&p[7], &u("/"), "", true, "A"),
            scroll(&p[7], &u("/"), 60, 0),
            custom(&p[7], &u("/"), "Outbound", Value::Null),
        ],
    );
    // S8: bing / autumn (no medium) / B; its form_submit batch is delivered three times.
    let s8_first = make_batch(
        &t.key,
        "sess_s8_conv",
        vec![pageview_variant(&p[8], &u("/landing?utm_campaign=autumn"), "https://www.bing.com/", true, "B")],
    );
    let s8_form =
        make_batch(&t.key, "sess_s8_conv", vec![custom(&p[8], &u("/landing"), "form_submit", json!({"form": "form#lead"}))]);
    // S10: the CTA click arrives before the session's first pageview (own-domain referrer:
    // direct / summer / cpc / A).
    let s10_click =
        make_batch(&t.key, "sess_s10_conv", vec![click(&p[10], &u("/pricing"), "button#cta", "Start free trial")]);
    let s10_start = make_batch(
        &t.key,
        "sess_s10_conv",
        vec![pageview_variant(&p[10], &u("/pricing?utm_campaign=summer&utm_medium=cpc"), &u("/"), true, "A")],
    );

    // Act 1: everything but S1's later batch and S10's first pageview.
    let phase1 = [
        (&s1_first, 1),
        (&s2, 2),
        (&s3, 3),
        (&s4, 4),
        (&s5, 5),
        (&s6, 6),
        (&s7, 7),
        (&s8_first, 8),
        (&s8_form, 8),
        (&s8_form, 8),
        (&s10_click, 10),
    ];
    for (b, visitor) in phase1 {
        send(&api, b, &chrome(visitor)).await;
    }

    // Assert 1: S10 converts before anyone knows where it came from.
    api.stats_when(&t.token, &t.site_id, q, |s| sessions(s) == 8 && conversions(s) == 4).await;
    stack.wait_drained().await;
    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, q).await);
    assert_eq!((sessions(&s), conversions(&s)), (8, 4), "S2, S3, S8 and S10 converted: {s}");
    assert_eq!(
        s["top_campaigns"],
        json!([
            {"name": "autumn", "visits": 2, "conversions": 1},
            {"name": "spring", "visits": 2, "conversions": 1},
            {"name": "summer", "visits": 2, "conversions": 1},
        ]),
        "S1 has not converted and S10 is not attributed yet: {s}"
    );
    assert_eq!(
        s["goals"][1],
        json!({"id": cta, "name": "CTA", "conversions": 2, "rate": 0.25}),
        "S2 and S10 of 8 sessions: {s}"
    );
    assert_eq!(s["goals"][2]["conversions"], 2, "S8's redelivered form_submit counted once: {s}");

    // Act 2: S1's thank-you page and S10's first pageview.
    send(&api, &s1_later, &chrome(1)).await;
    send(&api, &s10_start, &chrome(10)).await;

    // Assert 2: every figure.
    api.stats_when(&t.token, &t.site_id, q, |s| sessions(s) == 9 && conversions(s) == 5 && s["summary"]["pageviews"] == 10)
        .await;
    stack.wait_drained().await;
    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, q).await);
    assert_eq!(
        s["summary"],
        json!({
            "pageviews": 10, "visitors": 9, "sessions": 9, "clicks": 3,
            "avg_scroll_depth": 8.0, "avg_time_seconds": 0.5,
            // S1, S2, S3, S8, S10 of 9; S4 and S6 bounced.
            "conversions": 5, "conversion_rate": 0.5556, "bounce_rate": 0.2222
        }),
        "summary: {s}"
    );
    let today = s["to"].as_str().expect("to").to_string();
    assert_eq!(s["series"][6], json!({"start": today, "pageviews": 10, "visitors": 9, "sessions": 9, "clicks": 3}), "{s}");
    assert_eq!(
        s["goals"],
        json!([
            {"id": thanks, "name": "Thanks", "conversions": 1, "rate": 0.1111},
            {"id": cta, "name": "CTA", "conversions": 2, "rate": 0.2222},
            {"id": form, "name": "Form", "conversions": 2, "rate": 0.2222},
            {"id": outbound, "name": "Outbound", "conversions": 1, "rate": 0.1111},
        ]),
        "goals in creation order: {s}"
    );
    let cases: [(&str, Value); 9] = [
        (
            "top_referrers",
            json!([
                {"source": "(direct)", "visits": 3, "conversions": 1},
                {"source": "google.com", "visits": 2, "conversions": 2},
                {"source": "bing.com", "visits": 1, "conversions": 1},
                {"source": "news.ycombinator.com", "visits": 1, "conversions": 0},
                {"source": "newsletter", "visits": 1, "conversions": 1},
                {"source": "t.co", "visits": 1, "conversions": 0},
            ]),
        ),
        (
            "top_campaigns",
            json!([
                {"name": "summer", "visits": 3, "conversions": 2},
                {"name": "autumn", "visits": 2, "conversions": 1},
                {"name": "spring", "visits": 2, "conversions": 2},
            ]),
        ),
        (
            "top_mediums",
            json!([
                {"name": "cpc", "visits": 3, "conversions": 2},
                {"name": "email", "visits": 2, "conversions": 2},
                {"name": "social", "visits": 1, "conversions": 0},
            ]),
        ),
        (
            "variants",
            json!([
                {"variant": "A", "visits": 4, "conversions": 2, "rate": 0.5, "ci_low": 0.15, "ci_high": 0.85, "p_beat_control": null},
                {"variant": "B", "visits": 3, "conversions": 3, "rate": 1.0, "ci_low": 0.4385, "ci_high": 1.0, "p_beat_control": 0.881},
            ]),
        ),
        // Values from SciPy: Wilson intervals, the integral of B's posterior density times A's
        // posterior CDF, and the chi-square test of a 4 / 3 split.
        ("experiment", json!({"control": "A", "sample_ratio_p": 0.7055, "enough_data": false})),
        (
            "top_events",
            json!([
                {"name": "form_submit", "count": 2},
                {"name": "Outbound", "count": 1},
                {"name": "Signup", "count": 1},
                {"name": "outbound", "count": 1},
            ]),
        ),
        (
            "top_pages",
            json!([
                {"path": "/", "pageviews": 4},
                {"path": "/pricing", "pageviews": 3},
                {"path": "/landing", "pageviews": 1},
                {"path": "/thank-you/pro", "pageviews": 1},
                {"path": "/thanks", "pageviews": 1},
            ]),
        ),
        (
            "top_clicks",
            json!([
                {"selector": "button#cta", "text": "Start free trial", "clicks": 2},
                {"selector": "button#cta-secondary", "text": "Later", "clicks": 1},
            ]),
        ),
        (
            "scroll_distribution",
            json!([
                {"bucket": "0-25", "pageviews": 9}, {"bucket": "25-50", "pageviews": 0},
                {"bucket": "50-75", "pageviews": 1}, {"bucket": "75-100", "pageviews": 0},
                {"bucket": "100", "pageviews": 0},
            ]),
        ),
    ];
    for (list, want) in cases {
        assert_eq!(s[list], want, "case {list}: {}", s[list]);
    }
    for (list, key, name) in [
        ("top_devices", "name", "desktop"),
        ("top_browsers", "name", "Chrome"),
        ("top_os", "name", "Windows"),
        ("top_countries", "country", "(unknown)"),
    ] {
        assert_eq!(s[list], json!([{key: name, "visits": 9}]), "case {list}");
    }

    // Act 3: the converting batches come back once more.
    send(&api, &s8_form, &chrome(8)).await;
    send(&api, &s1_later, &chrome(1)).await;
    send(&api, &s10_click, &chrome(10)).await;
    stack.wait_drained().await;

    // Assert 3: nothing changes.
    let again = v2::only_v2(&api.stats(&t.token, &t.site_id, q).await);
    assert_eq!(again, s, "redelivered batches are counted once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goal_created_mid_stream_counts_the_batches_received_after_it_and_none_before() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", &v2::noon_zone()).await;
    let q = "timeframe=7d";

    // Arrange: session X sends `Late` before any goal names it.
    let (px, py) = (id("page"), id("page"));
    let before =
        make_batch(&t.key, "sess_x_mid", vec![pageview(&px, &u("/"), "", true), custom(&px, &u("/"), "Late", Value::Null)]);
    send(&api, &before, &chrome(1)).await;
    let s = v2::only_v2(
        &api.stats_when(&t.token, &t.site_id, q, |s| s["top_events"] == json!([{"name": "Late", "count": 1}])).await,
    );
    assert_eq!((conversions(&s), &s["goals"]), (0, &json!([])), "no goal yet: {s}");

    // Act: the goal, then at once session Y sends `Late` and X a pageview without it.
    let late = goal(&api, &t, "Late", "event", "Late").await;
    let y = make_batch(
        &t.key,
        "sess_y_mid",
        vec![pageview(&py, &u("/pricing"), "", true), custom(&py, &u("/pricing"), "Late", Value::Null)],
    );
    send(&api, &y, &chrome(2)).await;
    let x_again = make_batch(&t.key, "sess_x_mid", vec![pageview(&id("page"), &u("/about"), "", false)]);
    send(&api, &x_again, &chrome(1)).await;
    // A goal created after everything: listed, with nothing counted for it.
    let home = goal(&api, &t, "Home", "pageview", "/").await;

    // Assert: only Y converted; the late-created goal counts nothing that came before.
    api.stats_when(&t.token, &t.site_id, q, |s| s["summary"]["pageviews"] == 3).await;
    stack.wait_drained().await;
    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, q).await);
    assert_eq!(
        (conversions(&s), &s["summary"]["conversion_rate"], &s["top_events"]),
        (1, &json!(0.5), &json!([{"name": "Late", "count": 2}])),
        "{s}"
    );
    assert_eq!(
        s["goals"],
        json!([
            {"id": late, "name": "Late", "conversions": 1, "rate": 0.5},
            {"id": home, "name": "Home", "conversions": 0, "rate": 0.0},
        ]),
        "{s}"
    );
    assert_eq!(s["top_referrers"], json!([{"source": "(direct)", "visits": 2, "conversions": 1}]), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_converting_on_two_days_counts_on_each_and_the_range_adds_the_days_up() {
    // Arrange: a site with two goals; batches of two past days written into the stack's
    // database, the goals moved back to before them.
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let tz = "Europe/Berlin";
    let t = api.tenant("example.com", tz).await;
    let signup = goal(&api, &t, "Signup", "event", "Signup").await;
    let thanks = goal(&api, &t, "Thanks", "pageview", "/thank-you*").await;
    let writer = PastWriter::new(&stack).await;
    writer.backdate_goals(&t.site_id, 5 * DAY_MS).await;
    let site = PastSite { site_id: t.site_id.clone(), timezone: tz.into(), domain: "example.com".into() };
    let now = chrono::Utc::now().timestamp_millis();
    let d1 = v2::local_noon_days_ago(now, tz, 3);
    let d2 = v2::local_noon_days_ago(now, tz, 2);
    let (day1, day2) = (v2::day_of(d1, tz), v2::day_of(d2, tz));
    let (pa, pa2, pb, pc, pd) = (id("page"), id("page"), id("page"), id("page"), id("page"));
    let min = 60_000;

    // Act: day 1, A lands on /spring (google / spring / email / B) and signs up; B bounces.
    // Day 2, A
    // (a new visitor hash: the salt rotated) reaches the thank-you page and signs up twice; C
    // lands and signs up twice; D bounces.
    writer
        .write(&[
            site.msg(
                "sess_a_2day",
                "a1",
                d1,
                vec![
                    pageview_variant(
                        &pa,
                        &u("/spring?utm_campaign=spring&utm_medium=email"),
                        "https://www.google.com/",
                        true,
                        "B",
                    ),
                    custom(&pa, &u("/spring"), "Signup", Value::Null),
                ],
            ),
            site.msg("sess_b_2day", "b1", d1 + min, vec![pageview(&pb, &u("/pricing"), "", true)]),
        ])
        .await;
    writer
        .write(&[
            site.msg(
                "sess_a_2day",
                "a2",
                d2,
                vec![pageview(&pa2, &u("/thank-you"), "", false), custom(&pa2, &u("/thank-you"), "Signup", Value::Null)],
            ),
            site.msg("sess_a_2day", "a2", d2 + min, vec![custom(&pa2, &u("/thank-you"), "Signup", Value::Null)]),
            site.msg(
                "sess_c_2day",
                "c2",
                d2 + 2 * min,
                vec![pageview(&pc, &u("/"), "https://t.co/x", true), custom(&pc, &u("/"), "Signup", Value::Null)],
            ),
        ])
        .await;
    writer
        .write(&[
            site.msg("sess_c_2day", "c2", d2 + 3 * min, vec![custom(&pc, &u("/"), "Signup", Value::Null)]),
            site.msg("sess_d_2day", "d2", d2 + 4 * min, vec![pageview(&pd, &u("/"), "", true)]),
        ])
        .await;

    // Assert: each day on its own, then the two days together.
    let one_day = |day: &str| format!("from={day}&to={day}");
    let s1 = v2::only_v2(&api.stats(&t.token, &t.site_id, &one_day(&day1)).await);
    assert_eq!(
        s1["summary"],
        json!({"pageviews": 2, "visitors": 2, "sessions": 2, "clicks": 0, "avg_scroll_depth": 0.0, "avg_time_seconds": 0.0,
               "conversions": 1, "conversion_rate": 0.5, "bounce_rate": 0.5}),
        "day 1: {s1}"
    );
    assert_eq!(s1["top_campaigns"], json!([{"name": "spring", "visits": 1, "conversions": 1}]), "day 1: {s1}");
    assert_eq!(
        s1["top_pages"],
        json!([{"path": "/pricing", "pageviews": 1}, {"path": "/spring", "pageviews": 1}]),
        "day 1: {s1}"
    );
    let s2 = v2::only_v2(&api.stats(&t.token, &t.site_id, &one_day(&day2)).await);
    assert_eq!(
        s2["summary"],
        json!({"pageviews": 3, "visitors": 3, "sessions": 2, "clicks": 0, "avg_scroll_depth": 0.0, "avg_time_seconds": 0.0,
               "conversions": 2, "conversion_rate": 1.0, "bounce_rate": 0.5}),
        "day 2: A and C converted; C engaged, D bounced: {s2}"
    );
    assert_eq!(
        s2["goals"],
        json!([{"id": signup, "name": "Signup", "conversions": 2, "rate": 1.0}, {"id": thanks, "name": "Thanks", "conversions": 1, "rate": 0.5}]),
        "day 2: {s2}"
    );
    assert_eq!(
        s2["top_campaigns"],
        json!([{"name": "spring", "visits": 0, "conversions": 1}]),
        "day 2: A's second conversion is still attributed to its first pageview's campaign: {s2}"
    );
    assert_eq!(
        s2["top_pages"],
        json!([{"path": "/", "pageviews": 2}, {"path": "/thank-you", "pageviews": 1}]),
        "day 2: pages viewed that day only (A's entry page /spring was not viewed on day 2): {s2}"
    );

    let range = format!("from={day1}&to={day2}");
    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, &range).await);
    assert_eq!(
        s["summary"],
        json!({"pageviews": 5, "visitors": 5, "sessions": 4, "clicks": 0, "avg_scroll_depth": 0.0, "avg_time_seconds": 0.0,
               "conversions": 3, "conversion_rate": 0.75, "bounce_rate": 0.5}),
        "the days add up: {s}"
    );
    assert_eq!(
        s["series"],
        json!([
            {"start": day1, "pageviews": 2, "visitors": 2, "sessions": 2, "clicks": 0},
            {"start": day2, "pageviews": 3, "visitors": 3, "sessions": 2, "clicks": 0},
        ]),
        "{s}"
    );
    assert_eq!(
        s["goals"],
        json!([{"id": signup, "name": "Signup", "conversions": 3, "rate": 0.75}, {"id": thanks, "name": "Thanks", "conversions": 1, "rate": 0.25}]),
        "{s}"
    );
    let cases: [(&str, Value); 6] = [
        ("top_campaigns", json!([{"name": "spring", "visits": 1, "conversions": 2}])),
        ("top_mediums", json!([{"name": "email", "visits": 1, "conversions": 2}])),
        // The contract's rate is conversions / visits, days added up: 2 / 1.
        (
            "variants",
            json!([{"variant": "B", "visits": 1, "conversions": 2, "rate": 2.0, "ci_low": 0.2065, "ci_high": 1.0, "p_beat_control": null}]),
        ),
        (
            "top_referrers",
            json!([
                {"source": "(direct)", "visits": 2, "conversions": 0},
                {"source": "google.com", "visits": 1, "conversions": 2},
                {"source": "t.co", "visits": 1, "conversions": 1},
            ]),
        ),
        ("top_events", json!([{"name": "Signup", "count": 5}])),
        (
            "top_pages",
            json!([
                {"path": "/", "pageviews": 2}, {"path": "/pricing", "pageviews": 1},
                {"path": "/spring", "pageviews": 1}, {"path": "/thank-you", "pageviews": 1},
            ]),
        ),
    ];
    for (list, want) in cases {
        assert_eq!(s[list], want, "case {list}: {}", s[list]);
    }

    // The CSV export of the range and of 7 days: the same points, with conversions per day.
    let csv = |query: String| {
        let api = api.clone();
        let (token, site) = (t.token.clone(), t.site_id.clone());
        async move {
            let res = api
                .http
                .get(format!("{}/api/stats/{site}/export.csv?{query}", api.api))
                .bearer_auth(&token)
                .send()
                .await
                .expect("api");
            assert_eq!(res.status(), StatusCode::OK, "export {query}");
            res.text().await.expect("csv")
        }
    };
    assert_eq!(csv(range.clone()).await, v2::expected_csv(&s["series"], &[1, 2]), "range CSV");
    let week = v2::only_v2(&api.stats(&t.token, &t.site_id, "timeframe=7d").await);
    assert_eq!(week["summary"], s["summary"], "7 days hold both days: {week}");
    let mut per_day = vec![0; 7];
    let days: Vec<&str> = week["series"].as_array().expect("series").iter().filter_map(|p| p["start"].as_str()).collect();
    for (day, n) in [(&day1, 1), (&day2, 2)] {
        let i = days.iter().position(|d| d == day).unwrap_or_else(|| panic!("{day} is one of the 7 days: {days:?}"));
        per_day[i] = n;
    }
    assert_eq!(csv("timeframe=7d".into()).await, v2::expected_csv(&week["series"], &per_day), "7d CSV");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_that_arrives_before_the_first_pageview_counts_for_the_entry_page_in_every_figure() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", &v2::noon_zone()).await;
    let cta = goal(&api, &t, "CTA", "click", "button#cta").await;
    let signup = goal(&api, &t, "Signup", "event", "Signup").await;
    let q = "timeframe=7d";

    // Arrange: Q's Signup is counted before Q's first pageview arrives (a batch retried late).
    let (pq, pr) = (id("page"), id("page"));
    send(&api, &make_batch(&t.key, "sess_q_early", vec![custom(&pq, &u("/pricing"), "Signup", Value::Null)]), &chrome(1))
        .await;
    api.stats_when(&t.token, &t.site_id, q, |s| conversions(s) == 1).await;

    // Act: Q's first pageview; R lands on the same page and clicks the CTA.
    send(
        &api,
        &make_batch(&t.key, "sess_q_early", vec![pageview_variant(&pq, &u("/pricing?utm_campaign=spring"), "", true, "B")]),
        &chrome(1),
    )
    .await;
    send(
        &api,
        &make_batch(
            &t.key,
            "sess_r_early",
            vec![pageview(&pr, &u("/pricing"), "", true), click(&pr, &u("/pricing"), "button#cta", "Go")],
        ),
        &chrome(2),
    )
    .await;
    api.stats_when(&t.token, &t.site_id, q, |s| sessions(s) == 2 && conversions(s) == 2).await;
    stack.wait_drained().await;

    // Assert: the site, and the page both sessions entered on, count Q's conversion alike.
    let goals = json!([{"id": cta, "name": "CTA", "conversions": 1, "rate": 0.5}, {"id": signup, "name": "Signup", "conversions": 1, "rate": 0.5}]);
    for query in [q, "timeframe=7d&page=/pricing"] {
        let s = v2::only_v2(&api.stats(&t.token, &t.site_id, query).await);
        assert_eq!(
            (sessions(&s), conversions(&s), &s["summary"]["conversion_rate"]),
            (2, 2, &json!(1.0)),
            "case {query}: {s}"
        );
        assert_eq!(s["goals"], goals, "case {query}: goals");
        assert_eq!(
            s["top_campaigns"],
            json!([{"name": "spring", "visits": 1, "conversions": 1}]),
            "case {query}: campaigns"
        );
        assert_eq!(
            s["variants"],
            json!([{"variant": "B", "visits": 1, "conversions": 1, "rate": 1.0, "ci_low": 0.2065, "ci_high": 1.0, "p_beat_control": null}]),
            "case {query}: variants"
        );
        assert_eq!(
            s["top_referrers"],
            json!([{"source": "(direct)", "visits": 2, "conversions": 2}]),
            "case {query}: referrers"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_goal_is_no_longer_listed_and_counts_nothing_received_after_its_deletion() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", &v2::noon_zone()).await;
    let first = goal(&api, &t, "First", "event", "First").await;
    let second = goal(&api, &t, "Second", "event", "Second").await;
    let q = "timeframe=7d";

    // Arrange: S completes both goals.
    let (ps, pz) = (id("page"), id("page"));
    send(
        &api,
        &make_batch(
            &t.key,
            "sess_s_deleted",
            vec![
                pageview(&ps, &u("/"), "", true),
                custom(&ps, &u("/"), "First", Value::Null),
                custom(&ps, &u("/"), "Second", Value::Null),
            ],
        ),
        &chrome(1),
    )
    .await;
    api.stats_when(&t.token, &t.site_id, q, |s| conversions(s) == 1).await;

    // Act: delete the first goal; Z then sends only its event.
    let (status, _) =
        api.send(reqwest::Method::DELETE, &format!("/api/sites/{}/goals/{first}", t.site_id), Some(&t.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    send(
        &api,
        &make_batch(
            &t.key,
            "sess_z_deleted",
            vec![pageview(&pz, &u("/"), "", true), custom(&pz, &u("/"), "First", Value::Null)],
        ),
        &chrome(2),
    )
    .await;
    api.stats_when(&t.token, &t.site_id, q, |s| sessions(s) == 2).await;
    stack.wait_drained().await;

    // Assert: Z did not convert; the deleted goal is gone from the list.
    let s = v2::only_v2(&api.stats(&t.token, &t.site_id, q).await);
    assert_eq!((conversions(&s), &s["summary"]["conversion_rate"]), (1, &json!(0.5)), "{s}");
    assert_eq!(s["goals"], json!([{"id": second, "name": "Second", "conversions": 1, "rate": 0.5}]), "{s}");
    assert_eq!(s["top_events"], json!([{"name": "First", "count": 2}, {"name": "Second", "count": 1}]), "{s}");
}
