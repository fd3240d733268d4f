//! Revenue, time to conversion, entry and exit pages and event properties (issue 22) against
//! the contract, with exact figures, over real processes: a site whose currency is EUR, three
//! scripted sessions over two variants with revenue in two currencies, conversions 20 s and
//! 400 s after the first pageview, and a purchase that arrives before its session's first
//! pageview; bad revenue and currencies refused naming the field.

use cp_tests::{
    batch::{batch as make_batch, id, pageview},
    client::{Api, Tenant},
    stack::Stack,
    v2::{self, chrome, custom, pageview_variant, send},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const T0: i64 = 1_764_000_000_000;

fn u(path: &str) -> String {
    format!("https://example.com{path}")
}

fn at(mut e: Value, ts: i64) -> Value {
    e["ts"] = json!(ts);
    e
}

/// A new user with a site whose currency is `currency`.
async fn tenant_in(api: &Api, currency: &str) -> Tenant {
    let token = api.register(&format!("{}@example.com", id("user"))).await;
    let body = json!({"name": "Shop", "domain": "example.com", "timezone": v2::noon_zone(), "currency": currency});
    let (status, site) = api.post("/api/sites", Some(&token), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{site}");
    assert_eq!(site["currency"], currency);
    let key = site["api_key"].as_str().expect("key").to_string();
    api.wait_key_live(&key).await;
    Tenant { token, site_id: site["id"].as_str().expect("id").to_string(), key }
}

fn row<'a>(list: &'a Value, field: &str, name: &str) -> &'a Value {
    list.as_array().and_then(|l| l.iter().find(|r| r[field] == name)).unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revenue_time_to_conversion_entry_exit_pages_and_properties_are_exact() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = tenant_in(&api, "EUR").await;
    let (status, g) = api
        .post(
            &format!("/api/sites/{}/goals", t.site_id),
            Some(&t.token),
            &json!({"name": "Purchase", "kind": "event", "match": "Purchase"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    let purchase = g["id"].as_str().expect("goal id").to_string();
    let p: Vec<String> = (0..6).map(|_| id("page")).collect();

    // S1: newsletter / spring / A; lands on /, goes to /checkout and buys 20 s after landing
    // for 49.50 in the site's currency (none named). The purchase batch arrives first.
    let s1_buy = make_batch(
        &t.key,
        "sess_xx_1",
        vec![
            at(pageview(&p[1], &u("/checkout"), &u("/"), false), T0 + 15_000),
            at(custom(&p[1], &u("/checkout"), "Purchase", json!({"revenue": 49.5, "plan": "pro"})), T0 + 20_000),
        ],
    );
    let s1_land = make_batch(
        &t.key,
        "sess_xx_1",
        vec![at(pageview_variant(&p[0], &u("/?utm_source=newsletter&utm_campaign=spring"), "", true, "A"), T0)],
    );
    // S2: google / B; buys on the landing page 400 s after landing, for 10 USD.
    let s2 = make_batch(
        &t.key,
        "sess_xx_2",
        vec![
            at(pageview_variant(&p[2], &u("/"), "https://www.google.com/", true, "B"), T0),
            at(custom(&p[2], &u("/"), "Purchase", json!({"revenue": 10, "currency": "USD", "plan": "basic"})), T0 + 400_000),
        ],
    );
    // S3: direct / B; /, /pricing, back to /: no purchase, leaves from /.
    let s3 = make_batch(
        &t.key,
        "sess_xx_3",
        vec![
            at(pageview_variant(&p[3], &u("/"), "", true, "B"), T0),
            at(pageview(&p[4], &u("/pricing"), &u("/"), false), T0 + 5_000),
            at(pageview(&p[5], &u("/"), &u("/pricing"), false), T0 + 9_000),
        ],
    );
    for b in [&s1_buy, &s1_land, &s2, &s3] {
        send(&api, b, &chrome(1)).await;
    }
    let s = api
        .stats_when(&t.token, &t.site_id, "timeframe=7d", |s| {
            s["summary"]["conversions"] == 2 && s["summary"]["pageviews"] == 6 && s["top_exit_pages"][1]["exits"] == 1
        })
        .await;

    assert_eq!(s["summary"]["revenue"], json!({"EUR": 49.5, "USD": 10.0}), "{s}");
    let goal = row(&s["goals"], "id", &purchase);
    assert_eq!(goal["revenue"], json!({"EUR": 49.5, "USD": 10.0}), "{s}");
    assert_eq!(row(&s["top_referrers"], "source", "newsletter")["revenue"], json!({"EUR": 49.5}), "{s}");
    assert_eq!(row(&s["top_referrers"], "source", "google.com")["revenue"], json!({"EUR": 0.0, "USD": 10.0}), "{s}");
    assert_eq!(row(&s["top_referrers"], "source", "(direct)")["revenue"], json!({"EUR": 0.0}), "{s}");
    assert_eq!(row(&s["top_campaigns"], "name", "spring")["revenue"], json!({"EUR": 49.5}), "{s}");
    assert_eq!(row(&s["variants"], "variant", "A")["revenue"], json!({"EUR": 49.5}), "{s}");
    assert_eq!(row(&s["variants"], "variant", "B")["revenue"], json!({"EUR": 0.0, "USD": 10.0}), "{s}");

    assert_eq!(
        s["time_to_conversion"],
        json!([
            {"bucket": "<10s", "conversions": 0}, {"bucket": "10-30s", "conversions": 1},
            {"bucket": "30s-1m", "conversions": 0}, {"bucket": "1-5m", "conversions": 0},
            {"bucket": "5-30m", "conversions": 1}, {"bucket": "30m-2h", "conversions": 0},
            {"bucket": ">2h", "conversions": 0}
        ]),
        "{s}"
    );
    assert_eq!(row(&s["variants"], "variant", "B")["time_to_conversion"], json!([0, 0, 0, 0, 1, 0, 0]), "{s}");
    assert_eq!(row(&s["top_referrers"], "source", "newsletter")["time_to_conversion"], json!([0, 1, 0, 0, 0, 0, 0]));

    // Three sessions entered on /, two converted, none bounced (S1 saw two pages, S2 sent an
    // event, S3 saw three).
    assert_eq!(s["top_entry_pages"], json!([{"path": "/", "visits": 3, "conversions": 2, "bounce_rate": 0.0}]), "{s}");
    // S1 left from /checkout (its landing on / arrived after it, but came first by event
    // time), S2 and S3 from /.
    let exits: Vec<(String, i64)> = s["top_exit_pages"]
        .as_array()
        .expect("exits")
        .iter()
        .map(|r| (r["path"].as_str().unwrap_or_default().to_string(), r["exits"].as_i64().unwrap_or(-1)))
        .collect();
    assert_eq!(exits, vec![("/".to_string(), 2), ("/checkout".to_string(), 1)], "{s}");

    let (status, ev) = api.get(&format!("/api/stats/{}/events/Purchase?timeframe=7d", t.site_id), Some(&t.token)).await;
    assert_eq!(status, StatusCode::OK, "{ev}");
    assert_eq!(
        ev,
        json!({"name": "Purchase", "count": 2, "props": [
            {"key": "plan", "values": [{"value": "basic", "count": 1}, {"value": "pro", "count": 1}]},
            {"key": "revenue", "values": [{"value": "10", "count": 1}, {"value": "49.5", "count": 1}]},
            {"key": "currency", "values": [{"value": "USD", "count": 1}]}
        ]})
    );
    let (status, none) = api.get(&format!("/api/stats/{}/events/Nothing?timeframe=7d", t.site_id), Some(&t.token)).await;
    assert_eq!((status, none), (StatusCode::OK, json!({"name": "Nothing", "count": 0, "props": []})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_revenue_and_currencies_are_refused_naming_the_field() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = tenant_in(&api, "USD").await;
    let page = id("page");
    let cases = [
        (json!({"revenue": -1}), "events[1].props.revenue"),
        (json!({"revenue": 1.5e9}), "events[1].props.revenue"),
        (json!({"revenue": "12"}), "events[1].props.revenue"),
        (json!({"revenue": 5, "currency": "usd"}), "events[1].props.currency"),
        (json!({"currency": "ABC"}), "events[1].props.currency"),
    ];
    for (props, field) in cases {
        let b = make_batch(
            &t.key,
            "sess_bad",
            vec![pageview(&page, &u("/"), "", true), custom(&page, &u("/"), "Purchase", props.clone())],
        );
        let (status, body) = v2::post_from(&api, &b, &chrome(1), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{props}: {body}");
        assert_eq!(body["error"], "invalid_batch", "{body}");
        assert!(body["message"].as_str().unwrap_or_default().contains(field), "{props}: {body}");
    }
    // The site setting: an ISO 4217 code, else 400 naming it.
    let path = format!("/api/sites/{}", t.site_id);
    let (status, body) = api.send(Method::PATCH, &path, Some(&t.token), Some(&json!({"currency": "euro"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_site");
    assert!(body["message"].as_str().unwrap_or_default().contains("currency"), "{body}");
    let (status, body) = api.send(Method::PATCH, &path, Some(&t.token), Some(&json!({"currency": "JPY"}))).await;
    assert_eq!((status, &body["currency"]), (StatusCode::OK, &json!("JPY")), "{body}");
    let (status, site) = api.get(&path, Some(&t.token)).await;
    assert_eq!((status, &site["currency"]), (StatusCode::OK, &json!("JPY")));
}
