//! Funnels and backfills (issue 21) over real processes, with exact figures: CRUD and
//! refusals naming the field; steps counted per session in step order by event time (steps out
//! of order, event times out of order across batches, a session spanning midnight, a
//! redelivered batch); and a funnel and a goal created after the data, whose backfill makes
//! their figures equal those of a funnel and a goal that existed from the start — including a
//! session that runs across the creation.

use cp_tests::v2;

use std::time::Duration;

use cp_tests::{
    batch::{batch as make_batch, click, id, pageview},
    client::{Api, Tenant},
    stack::Stack,
    wait,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use v2::{DAY_MS, HOUR_MS, PastSite, PastWriter, chrome, custom, send};

fn u(path: &str) -> String {
    format!("https://example.com{path}")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `e` at event time `ts`.
fn at(mut e: Value, ts: i64) -> Value {
    e["ts"] = json!(ts);
    e
}

fn steps() -> Value {
    json!([
        {"kind": "pageview", "match": "/"},
        {"kind": "click", "match": "button#cta"},
        {"kind": "event", "match": "Signup"}
    ])
}

async fn create_funnel(api: &Api, t: &Tenant, name: &str) -> Value {
    let (status, f) = api
        .post(&format!("/api/sites/{}/funnels", t.site_id), Some(&t.token), &json!({"name": name, "steps": steps()}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{f}");
    f
}

async fn create_goal(api: &Api, t: &Tenant, name: &str) -> Value {
    let body = json!({"name": name, "kind": "event", "match": "Signup"});
    let (status, g) = api.post(&format!("/api/sites/{}/goals", t.site_id), Some(&t.token), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    g
}

async fn funnel_stats(api: &Api, t: &Tenant, funnel_id: &str, query: &str) -> Value {
    let (status, s) = api.get(&format!("/api/stats/{}/funnels/{funnel_id}?{query}", t.site_id), Some(&t.token)).await;
    assert_eq!(status, StatusCode::OK, "{s}");
    s
}

fn sessions_per_step(s: &Value) -> Vec<i64> {
    s["steps"].as_array().expect("steps").iter().map(|s| s["sessions"].as_i64().expect("sessions")).collect()
}

/// Waits until every goal and funnel of the site is backfilled.
async fn wait_backfilled(api: &Api, t: &Tenant) {
    wait::until("every backfill done", Duration::from_secs(90), || async {
        let mut all = Vec::new();
        for what in ["goals", "funnels"] {
            let (_, list) = api.get(&format!("/api/sites/{}/{what}", t.site_id), Some(&t.token)).await;
            all.extend(list.as_array().cloned().unwrap_or_default());
        }
        all.iter().all(|i| i["backfilling"] == json!(false)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn funnels_are_created_listed_and_deleted_and_refusals_name_the_field() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let path = format!("/api/sites/{}/funnels", t.site_id);

    let f = create_funnel(&api, &t, "Signup flow").await;
    assert_eq!(f["name"], "Signup flow");
    assert_eq!(f["steps"], steps());
    assert_eq!(f["backfilling"], true, "a new funnel counts the raw batches kept: {f}");
    let fid = f["id"].as_str().expect("id").to_string();
    let (status, list) = api.get(&path, Some(&t.token)).await;
    assert_eq!((status, list.as_array().map(Vec::len)), (StatusCode::OK, Some(1)));

    let step = json!({"kind": "pageview", "match": "/"});
    let cases = [
        (json!({"steps": [step, step]}), "name"),
        (json!({"name": "F"}), "steps"),
        (json!({"name": "F", "steps": [step]}), "steps"),
        (json!({"name": "F", "steps": vec![step.clone(); 9]}), "steps"),
        (json!({"name": "F", "steps": [step, "x"]}), "steps[1]"),
        (json!({"name": "F", "steps": [step, {"kind": "hover", "match": "a"}]}), "steps[1].kind"),
        (json!({"name": "F", "steps": [step, {"kind": "event", "match": ""}]}), "steps[1].match"),
        (json!({"name": "F", "steps": [{"kind": "pageview", "match": "pricing"}, step]}), "steps[0].match"),
    ];
    for (body, field) in cases {
        let (status, err) = api.post(&path, Some(&t.token), &body).await;
        assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_funnel")), "case {body}");
        assert!(err["message"].as_str().is_some_and(|m| m.starts_with(&format!("{field}:"))), "case {body}: {err}");
    }

    // Someone else's site: 404 everywhere.
    let intruder = api.register(&format!("{}@example.com", id("intruder"))).await;
    let stats_path = format!("/api/stats/{}/funnels/{fid}?timeframe=7d", t.site_id);
    for (method, p) in
        [(Method::GET, path.clone()), (Method::DELETE, format!("{path}/{fid}")), (Method::GET, stats_path.clone())]
    {
        let (status, _) = api.send(method.clone(), &p, Some(&intruder), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "case {method} {p}");
    }

    // At most 10 a site.
    for i in 1..10 {
        create_funnel(&api, &t, &format!("F{i}")).await;
    }
    let (status, err) = api.post(&path, Some(&t.token), &json!({"name": "F11", "steps": steps()})).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_funnel")), "{err}");

    let (status, _) = api.send(Method::DELETE, &format!("{path}/{fid}"), Some(&t.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.get(&stats_path, Some(&t.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a deleted funnel has no stats");
    create_funnel(&api, &t, "room again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfilled_funnel_and_goal_equal_those_that_existed_from_the_start() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let tz = v2::noon_zone();
    let t = api.tenant("example.com", &tz).await;
    let past = PastWriter::new(&stack).await;
    let site = PastSite { site_id: t.site_id.clone(), timezone: tz.clone(), domain: "example.com".into() };

    // The funnel and the goal that existed from the start: created, backfilled (nothing yet),
    // then moved back ten days so that they apply to everything written below.
    let old_funnel = create_funnel(&api, &t, "From the start").await;
    let old_goal = create_goal(&api, &t, "Signup from the start").await;
    wait_backfilled(&api, &t).await;
    past.backdate_goals(&t.site_id, 10 * DAY_MS).await;

    let now = now_ms();
    let noon = |days_ago| v2::local_noon_days_ago(now, &tz, days_ago);
    let p = || id("page");
    let (pv, cta, signup) = (
        |page: &str, new: bool| pageview(page, &u("/"), "", new),
        |page: &str| click(page, &u("/"), "button#cta", "Start"),
        |page: &str| custom(page, &u("/"), "Signup", json!({})),
    );
    let (p1, p2, p3, p4, p5, p6, p7) = (p(), p(), p(), p(), p(), p(), p());
    let history = vec![
        // S1, three days ago: all three steps in one batch.
        site.msg("sess_funnel_1", "v1", noon(3), vec![pv(&p1, true), cta(&p1), signup(&p1)]),
        // S2: the page and the event, never the click: step 1.
        site.msg("sess_funnel_2", "v2", noon(3) + 60_000, vec![pv(&p2, true), signup(&p2)]),
        // S3, steps out of order: the click before the page, so the event after them only
        // follows step 1: step 1.
        site.msg(
            "sess_funnel_3",
            "v3",
            noon(2),
            vec![at(cta(&p3), 1_000), at(pv(&p3, true), 2_000), at(signup(&p3), 3_000)],
        ),
        // S4, across midnight: page and click at 23:50, the event at 00:10 the next day; all
        // its steps count on its first day.
        site.msg("sess_funnel_4", "v4", noon(2) + 11 * HOUR_MS + 50 * 60_000, vec![pv(&p4, true), cta(&p4)]),
        site.msg("sess_funnel_4", "v4", noon(2) + 12 * HOUR_MS + 10 * 60_000, vec![signup(&p4)]),
        // S6, event times out of order across batches: the event arrives first, with a time
        // before the page and the click of the next batch, so it follows no step: steps 1, 2.
        site.msg("sess_funnel_6", "v6", noon(1), vec![at(signup(&p6), 5_000)]),
        site.msg("sess_funnel_6", "v6", noon(1) + 60_000, vec![at(pv(&p6, true), 6_000), at(cta(&p6), 7_000)]),
        // S7, running across the creation below: the page and the event an hour ago.
        site.msg(
            "sess_funnel_7",
            "v7",
            now - HOUR_MS,
            vec![at(pv(&p7, true), now - HOUR_MS), at(signup(&p7), now - HOUR_MS)],
        ),
    ];
    past.write(&history).await;
    // S5, redelivered: the same batch twice (steps 1 and 2), counted once.
    let s5 = site.msg("sess_funnel_5", "v5", noon(1) + 2 * 60_000, vec![pv(&p5, true), cta(&p5)]);
    past.write(std::slice::from_ref(&s5)).await;
    past.write(std::slice::from_ref(&s5)).await;

    // Created now, after all of it.
    let new_funnel = create_funnel(&api, &t, "Created later").await;
    let new_goal = create_goal(&api, &t, "Signup created later").await;
    let (old_id, new_id) = (old_funnel["id"].as_str().expect("id"), new_funnel["id"].as_str().expect("id"));
    let first = funnel_stats(&api, &t, new_id, "timeframe=7d").await;
    assert_eq!(first["backfilling"], true, "{first}");

    // S7 goes on through ingest, after the creation: the click and the event again.
    let live = make_batch(&t.key, "sess_funnel_7", vec![at(cta(&p7), now + 1_000), at(signup(&p7), now + 2_000)]);
    send(&api, &live, &chrome(7)).await;
    wait::until("the live batch counted", Duration::from_secs(30), || async {
        (sessions_per_step(&funnel_stats(&api, &t, old_id, "timeframe=7d").await) == vec![7, 5, 3]).then_some(())
    })
    .await;

    wait_backfilled(&api, &t).await;
    for query in ["timeframe=7d", "timeframe=30d"] {
        let old = funnel_stats(&api, &t, old_id, query).await;
        let new = funnel_stats(&api, &t, new_id, query).await;
        assert_eq!(new["backfilling"], false);
        assert_eq!(sessions_per_step(&old), vec![7, 5, 3], "{query}: {old}");
        assert_eq!(old["steps"], new["steps"], "{query}: the backfilled funnel equals the one from the start");
        let rates: Vec<(f64, f64)> = new["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| (s["rate_from_previous"].as_f64().expect("rate"), s["rate_from_start"].as_f64().expect("rate")))
            .collect();
        assert_eq!(rates, vec![(1.0, 1.0), (0.7143, 0.7143), (0.6, 0.4286)]);
    }
    // One day: S4 counts on its first day, all three steps; S6's events are a day earlier.
    let two_days_ago = v2::day_of(noon(2), &tz);
    let day = format!("from={two_days_ago}&to={two_days_ago}");
    assert_eq!(sessions_per_step(&funnel_stats(&api, &t, new_id, &day).await), vec![2, 1, 1], "S3 and S4");

    // The goal: six sessions completed it (S4 on the day after its start), once each.
    let stats = api.stats(&t.token, &t.site_id, "timeframe=7d").await;
    let goal_row =
        |gid: &Value| stats["goals"].as_array().expect("goals").iter().find(|g| g["id"] == *gid).cloned().expect("goal row");
    let (old_row, new_row) = (goal_row(&old_goal["id"]), goal_row(&new_goal["id"]));
    assert_eq!(old_row["conversions"], 6, "{stats}");
    assert_eq!(
        (new_row["conversions"].clone(), new_row["rate"].clone()),
        (old_row["conversions"].clone(), old_row["rate"].clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_whose_aggregator_is_killed_finishes_in_the_next_one_and_counts_once() {
    let mut stack = Stack::start().await;
    let api = Api::new(&stack);
    let tz = v2::noon_zone();
    let t = api.tenant("example.com", &tz).await;
    let past = PastWriter::new(&stack).await;
    let site = PastSite { site_id: t.site_id.clone(), timezone: tz.clone(), domain: "example.com".into() };
    let now = now_ms();
    // Twelve sessions two days ago: all reach step 1, the even ones step 2, every fourth step 3.
    let history: Vec<_> = (0..12_i64)
        .map(|i| {
            let p = id("page");
            let mut events = vec![pageview(&p, &u("/"), "", true)];
            if i % 2 == 0 {
                events.push(click(&p, &u("/"), "button#cta", "Start"));
            }
            if i % 4 == 0 {
                events.push(custom(&p, &u("/"), "Signup", json!({})));
            }
            site.msg(
                &format!("sess_killed_{i}"),
                &format!("k{i}"),
                v2::local_noon_days_ago(now, &tz, 2) + i * 60_000,
                events,
            )
        })
        .collect();
    past.write(&history).await;
    let funnel = create_funnel(&api, &t, "Across a kill").await;
    let fid = funnel["id"].as_str().expect("id");

    // The aggregator dies while the job waits for the stream (or has just taken it), and
    // another one starts: the job is taken again once its lease has run out.
    stack.kill(cp_tests::stack::Proc::Aggregator);
    assert_eq!(funnel_stats(&api, &t, fid, "timeframe=7d").await["backfilling"], true);
    stack.start_proc(cp_tests::stack::Proc::Aggregator);
    stack.wait_ready(cp_tests::stack::Proc::Aggregator).await;
    wait_backfilled(&api, &t).await;
    assert_eq!(sessions_per_step(&funnel_stats(&api, &t, fid, "timeframe=7d").await), vec![12, 6, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_funnel_and_segment_creations_racing_on_one_site_leave_exactly_ten_of_each() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    for (what, body, code) in [
        ("funnels", json!({"name": "F", "steps": steps()}), "invalid_funnel"),
        (
            "segments",
            json!({"name": "S", "filters": [{"dimension": "source", "op": "is", "value": "x"}]}),
            "invalid_segment",
        ),
    ] {
        let path = format!("/api/sites/{}/{what}", t.site_id);
        let requests = (0..40).map(|_| {
            let (api, path, token, body) = (api.clone(), path.clone(), t.token.clone(), body.clone());
            tokio::spawn(async move { api.post(&path, Some(&token), &body).await })
        });
        let mut created = 0;
        for r in futures::future::join_all(requests).await {
            let (status, body) = r.expect("request task");
            match status {
                StatusCode::CREATED => created += 1,
                StatusCode::BAD_REQUEST => assert_eq!(body["error"], code, "{body}"),
                other => panic!("a racing create answered {other}: {body}"),
            }
        }
        assert_eq!(created, 10, "{what}: exactly the limit is created");
        let (_, list) = api.get(&path, Some(&t.token)).await;
        assert_eq!(list.as_array().map(Vec::len), Some(10), "{what}");
    }
}
