//! Saved segments (issue 21) over real processes: CRUD and refusals naming the field; a
//! segment's stats are the whole stats response of its sessions (equal to the one-click filter
//! of the same value); and a segment created after the data, once backfilled, answers exactly
//! what a segment that existed from the start answers — every figure and list.

use cp_tests::v2;

use std::time::Duration;

use cp_tests::{
    batch::{batch as make_batch, click, id, pageview, scroll},
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

fn google() -> Value {
    json!([{"dimension": "source", "op": "is", "value": "google.com"}, {"dimension": "device", "op": "is", "value": "desktop"}])
}

async fn create(api: &Api, t: &Tenant, name: &str, filters: Value) -> Value {
    let (status, s) = api
        .post(&format!("/api/sites/{}/segments", t.site_id), Some(&t.token), &json!({"name": name, "filters": filters}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    s
}

async fn wait_backfilled(api: &Api, t: &Tenant) {
    wait::until("every segment backfilled", Duration::from_secs(90), || async {
        let (_, list) = api.get(&format!("/api/sites/{}/segments", t.site_id), Some(&t.token)).await;
        list.as_array()?.iter().all(|s| s["backfilling"] == json!(false)).then_some(())
    })
    .await;
}

/// A stats response without what names the segment.
fn figures(mut s: Value) -> Value {
    for k in ["segment", "backfilling"] {
        s.as_object_mut().expect("object").remove(k);
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_are_created_listed_and_deleted_and_refusals_name_the_field() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let path = format!("/api/sites/{}/segments", t.site_id);
    let s = create(&api, &t, "Google desktop", google()).await;
    assert_eq!(
        (s["name"].clone(), s["filters"].clone(), s["backfilling"].clone()),
        (json!("Google desktop"), google(), json!(true))
    );
    let sid = s["id"].as_str().expect("id").to_string();

    let ok = json!({"dimension": "source", "op": "is", "value": "x"});
    let cases = [
        (json!({"filters": [ok]}), "name"),
        (json!({"name": "S"}), "filters"),
        (json!({"name": "S", "filters": []}), "filters"),
        (json!({"name": "S", "filters": vec![ok.clone(); 6]}), "filters"),
        (json!({"name": "S", "filters": [{"dimension": "planet", "op": "is", "value": "x"}]}), "filters[0].dimension"),
        (json!({"name": "S", "filters": [ok, {"dimension": "os", "op": "like", "value": "x"}]}), "filters[1].op"),
        (json!({"name": "S", "filters": [{"dimension": "os", "op": "is", "value": ""}]}), "filters[0].value"),
    ];
    for (body, field) in cases {
        let (status, err) = api.post(&path, Some(&t.token), &body).await;
        assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_segment")), "case {body}");
        assert!(err["message"].as_str().is_some_and(|m| m.starts_with(&format!("{field}:"))), "case {body}: {err}");
    }
    let intruder = api.register(&format!("{}@example.com", id("intruder"))).await;
    for (method, p) in [
        (Method::GET, path.clone()),
        (Method::DELETE, format!("{path}/{sid}")),
        (Method::GET, format!("/api/stats/{}?timeframe=7d&segment={sid}", t.site_id)),
    ] {
        let (status, _) = api.send(method.clone(), &p, Some(&intruder), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "case {method} {p}");
    }
    for i in 1..10 {
        create(&api, &t, &format!("S{i}"), google()).await;
    }
    let (status, err) = api.post(&path, Some(&t.token), &json!({"name": "S11", "filters": google()})).await;
    assert_eq!((status, err["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_segment")));
    let (status, _) = api.send(Method::DELETE, &format!("{path}/{sid}"), Some(&t.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.get(&format!("/api/stats/{}?timeframe=7d&segment={sid}", t.site_id), Some(&t.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a deleted segment has no stats");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_answers_its_sessions_and_a_backfilled_one_equals_one_from_the_start() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let tz = v2::noon_zone();
    let t = api.tenant("example.com", &tz).await;
    let (status, _) = api
        .post(
            &format!("/api/sites/{}/goals", t.site_id),
            Some(&t.token),
            &json!({"name": "Signup", "kind": "event", "match": "Signup"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let old = create(&api, &t, "From the start", google()).await;
    wait_backfilled(&api, &t).await;
    let past = PastWriter::new(&stack).await;
    past.backdate_goals(&t.site_id, 10 * DAY_MS).await;

    // History two and one days ago: Google and Bing sessions, one across midnight.
    let site = PastSite { site_id: t.site_id.clone(), timezone: tz.clone(), domain: "example.com".into() };
    let now = chrono::Utc::now().timestamp_millis();
    let noon = |d| v2::local_noon_days_ago(now, &tz, d);
    let g = "https://www.google.com/";
    let mut history = Vec::new();
    for i in 0..6_i64 {
        let p = id("page");
        let referrer = if i % 2 == 0 { g } else { "https://www.bing.com/" };
        let at = noon(1 + i % 2) + i * 60_000;
        let session = format!("sess_segment_{i}");
        history.push(site.msg(
            &session,
            &format!("v{i}"),
            at,
            vec![pageview(&p, &u(&format!("/p{}", i % 3)), referrer, true), click(&p, &u("/"), "button#cta", "Go")],
        ));
        history.push(site.msg(
            &session,
            &format!("v{i}"),
            at + 11 * HOUR_MS + 30 * 60_000,
            vec![scroll(&p, &u("/"), 70, 0), custom(&p, &u("/"), "Signup", json!({}))],
        ));
    }
    past.write(&history).await;
    let new = create(&api, &t, "Created later", google()).await;

    // And live: one more Google session, one Bing.
    for (i, referrer) in [g, "https://www.bing.com/"].into_iter().enumerate() {
        let p = id("page");
        let b = make_batch(&t.key, &format!("sess_segment_live_{i}"), vec![pageview(&p, &u("/"), referrer, true)]);
        send(&api, &b, &chrome(40 + i as u32)).await;
    }
    wait::until("the live batches counted", Duration::from_secs(30), || async {
        let s = api.stats(&t.token, &t.site_id, "timeframe=7d").await;
        (s["summary"]["pageviews"] == 8).then_some(())
    })
    .await;
    wait_backfilled(&api, &t).await;

    let (old_id, new_id) = (old["id"].as_str().expect("id"), new["id"].as_str().expect("id"));
    for q in ["timeframe=7d", "timeframe=30d", "timeframe=7d&page=/p0", "timeframe=7d&filter=entry_page:/p2"] {
        let a = api.stats(&t.token, &t.site_id, &format!("{q}&segment={old_id}")).await;
        let b = api.stats(&t.token, &t.site_id, &format!("{q}&segment={new_id}")).await;
        assert_eq!(b["backfilling"], false);
        assert_eq!(figures(a.clone()), figures(b), "{q}: the backfilled segment equals the one from the start");
        if q == "timeframe=7d" {
            // Google: sessions 0, 2, 4 (history) and the live one.
            let s = &a["summary"];
            assert_eq!(
                (s["pageviews"].clone(), s["sessions"].clone(), s["clicks"].clone(), s["conversions"].clone()),
                (json!(4), json!(4), json!(3), json!(3)),
                "{a}"
            );
            let sources: Vec<&str> =
                a["top_referrers"].as_array().expect("sources").iter().filter_map(|r| r["source"].as_str()).collect();
            assert_eq!(sources, vec!["google.com"]);
            // The same sessions as the one-click filter on their source.
            let f = api.stats(&t.token, &t.site_id, "timeframe=7d&filter=source:google.com").await;
            assert_eq!(f["summary"], a["summary"]);
        }
    }
}
