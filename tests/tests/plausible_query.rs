//! Plausible's Stats API v2 query (issue 23) over real processes: every answer of
//! `POST /api/v2/query` — each metric, dimension, filter and date range of the subset — equals
//! the native `GET /api/stats/{id}` of the same range and filter, and exact figures of a known
//! history; a key reads only the sites it may (the oldest on a shared domain), and what is
//! outside the subset is refused in Plausible's words.

use std::time::Duration;

use chrono::{Datelike, Days, Months, NaiveDate};
use cp_tests::{
    batch::{batch as make_batch, click, id, pageview, scroll, time},
    client::{Api, Tenant},
    stack::Stack,
    v2::{self, DAY_MS, PastSite, PastWriter, chrome, custom, send},
    wait,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::audience::{Browser, Country, Device, Os};

fn u(path: &str) -> String {
    format!("https://example.com{path}")
}

const MISSING_KEY: &str = "Missing API key. Please use a valid Plausible API key as a Bearer Token.";
const INVALID_KEY: &str =
    "Invalid API key or site ID. Please make sure you're using a valid API key with access to the site you've requested.";

/// `POST /api/v2/query` with `auth`.
async fn query(api: &Api, auth: Option<&str>, body: &Value) -> (StatusCode, Value) {
    api.post("/api/v2/query", auth, body).await
}

/// A read-only key of `t`'s user for `sites` (ids or `"*"`).
async fn make_key(api: &Api, t: &Tenant, sites: Value) -> String {
    let (status, k) = api.post("/api/keys", Some(&t.token), &json!({"name": "Plausible client", "sites": sites})).await;
    assert_eq!(status, StatusCode::CREATED, "{k}");
    k["key"].as_str().expect("key").to_string()
}

/// The rows of a 200: (dimensions, metrics) in the answer's order.
type Rows = Vec<(Vec<String>, Vec<Value>)>;

fn rows(body: &Value) -> Rows {
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("results: {body}"))
        .iter()
        .map(|r| {
            let dims =
                r["dimensions"].as_array().expect("dimensions").iter().map(|d| d.as_str().expect("a string").to_string());
            (dims.collect(), r["metrics"].as_array().expect("metrics").clone())
        })
        .collect()
}

fn day(d: NaiveDate) -> String {
    shared::time::day_string(d)
}

/// A native rate (a fraction) as Plausible's whole percent.
fn percent(rate: &Value) -> Value {
    json!((rate.as_f64().expect("a rate") * 100.0).round() as i64)
}

/// A native rate as Plausible's percent with two decimals.
fn percent2(rate: &Value) -> Value {
    json!((rate.as_f64().expect("a rate") * 10_000.0).round() / 100.0)
}

/// The native figures Plausible's `visitors, visits, pageviews, bounce_rate, events` name.
fn site_figures(native: &Value) -> Vec<Value> {
    let s = &native["summary"];
    let custom: i64 = native["top_events"].as_array().expect("events").iter().filter_map(|e| e["count"].as_i64()).sum();
    vec![
        s["visitors"].clone(),
        s["sessions"].clone(),
        s["pageviews"].clone(),
        percent(&s["bounce_rate"]),
        json!(s["pageviews"].as_i64().expect("pageviews") + custom),
    ]
}

/// The native figures of `visits, pageviews, bounce_rate` of a filtered view.
fn visit_figures(native: &Value) -> Vec<Value> {
    let s = &native["summary"];
    vec![s["sessions"].clone(), s["pageviews"].clone(), percent(&s["bounce_rate"])]
}

/// The native figures of `visitors, pageviews, bounce_rate, scroll_depth` of a page.
fn page_figures(native: &Value) -> Vec<Value> {
    let s = &native["summary"];
    let scroll = s["avg_scroll_depth"].as_f64().expect("scroll").round() as i64;
    vec![s["visitors"].clone(), s["pageviews"].clone(), percent(&s["bounce_rate"]), json!(scroll)]
}

/// `(label, visits)` of a native list, as v2 spells the labels.
fn native_visits(native: &Value, list: &str, label: &str, dim: &str) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = native[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list}: {native}"))
        .iter()
        .map(|r| (plausible_value(dim, r[label].as_str().expect("label")), r["visits"].as_i64().expect("visits")))
        .collect();
    out.sort();
    out
}

/// A stored value as v2 answers it: the direct source and devices in Plausible's words.
fn plausible_value(dim: &str, stored: &str) -> String {
    match (dim, stored) {
        ("visit:source", "(direct)") => "Direct / None".to_string(),
        ("visit:device", d) => d[..1].to_uppercase() + &d[1..],
        (_, v) => v.to_string(),
    }
}

/// The native one-click filter of a v2 value.
fn native_filter(dim: &str, value: &str) -> String {
    let native_dim = match dim {
        "visit:utm_campaign" => "campaign",
        "visit:utm_medium" => "medium",
        other => other.trim_start_matches("visit:"),
    };
    let stored = match (dim, value) {
        ("visit:source", "Direct / None") => "(direct)".to_string(),
        ("visit:device", d) => d.to_lowercase(),
        (_, v) => v.to_string(),
    };
    format!("&filter={native_dim}:{}", url_encode(&stored))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The history every comparison reads, in a site where it is now around noon:
///
/// | day | session | visitor | source, campaign, medium | audience | events |
/// |---|---|---|---|---|---|
/// | −2 | S1 | v1 | google.com, spring, email | desktop DE Chrome Windows | `/` (click, Signup), `/pricing` (scroll 80 %) |
/// | −2 | S2 | v2 | direct | mobile US Safari iOS | `/pricing`, bounces |
/// | −1 | S3 | v1 | bing.com | desktop DE Firefox Linux | `/` (10 s), bounces |
/// | −1 | S4 | v3 | google.com, spring | tablet FR Chrome Android | `/` (Download), `/blog` |
/// | −1 | S5 | v3 | direct | tablet FR Chrome Android | `/blog`, bounces |
/// | today | S6 | (live) | google.com | (from ingest) | `/` (Signup) |
///
/// Goals: Signup (event) and Pricing (a pageview of /pricing).
struct History {
    api: Api,
    t: Tenant,
    key: String,
    today: NaiveDate,
}

async fn history(stack: &Stack) -> History {
    let api = Api::new(stack);
    let tz = v2::noon_zone();
    let t = api.tenant("example.com", &tz).await;
    api.create_goal(&t, "Signup", "event", "Signup").await;
    api.create_goal(&t, "Pricing", "pageview", "/pricing").await;
    let past = PastWriter::new(stack).await;
    past.backdate_goals(&t.site_id, 10 * DAY_MS).await;
    let site = PastSite { site_id: t.site_id.clone(), timezone: tz.clone(), domain: "example.com".into() };
    let now = chrono::Utc::now().timestamp_millis();
    let noon = |days_ago| v2::local_noon_days_ago(now, &tz, days_ago);
    let google = "https://www.google.com/search?q=landing";
    let p: Vec<String> = (0..7).map(|_| id("page")).collect();
    let sessions = [
        (
            "sess_v2q_1",
            "v1",
            noon(2),
            (Device::Desktop, "DE", Browser::Chrome, Os::Windows),
            vec![
                pageview(&p[0], &u("/?utm_campaign=spring&utm_medium=email"), google, true),
                click(&p[0], &u("/"), "button#cta", "Start"),
                custom(&p[0], &u("/"), "Signup", json!({})),
                pageview(&p[1], &u("/pricing"), &u("/"), false),
                scroll(&p[1], &u("/pricing"), 80, 0),
            ],
        ),
        (
            "sess_v2q_2",
            "v2",
            noon(2) + 60_000,
            (Device::Mobile, "US", Browser::Safari, Os::Ios),
            vec![pageview(&p[2], &u("/pricing"), "", true)],
        ),
        (
            "sess_v2q_3",
            "v1",
            noon(1),
            (Device::Desktop, "DE", Browser::Firefox, Os::Linux),
            vec![pageview(&p[3], &u("/"), "https://www.bing.com/", true), time(&p[3], &u("/"), 10.0)],
        ),
        (
            "sess_v2q_4",
            "v3",
            noon(1) + 60_000,
            (Device::Tablet, "FR", Browser::Chrome, Os::Android),
            vec![
                pageview(&p[4], &u("/?utm_campaign=spring"), google, true),
                custom(&p[4], &u("/"), "Download", json!({})),
                pageview(&p[5], &u("/blog"), &u("/"), false),
            ],
        ),
        (
            "sess_v2q_5",
            "v3",
            noon(1) + 2 * 60_000,
            (Device::Tablet, "FR", Browser::Chrome, Os::Android),
            vec![pageview(&p[6], &u("/blog"), "", true)],
        ),
    ];
    let msgs: Vec<_> = sessions
        .into_iter()
        .map(|(session, visitor, at, (device, country, browser, os), events)| {
            let mut m = site.msg(session, visitor, at, events);
            (m.device, m.country, m.browser, m.os) = (device, Country::parse(country), browser, os);
            m
        })
        .collect();
    past.write(&msgs).await;
    // Today, through ingest.
    let live = id("page");
    let b = make_batch(
        &t.key,
        "sess_v2q_6",
        vec![pageview(&live, &u("/"), google, true), custom(&live, &u("/"), "Signup", json!({}))],
    );
    send(&api, &b, &chrome(61)).await;
    wait::until("today's session counted", Duration::from_secs(30), || async {
        let s = api.stats(&t.token, &t.site_id, "timeframe=7d").await;
        (s["series"].as_array().and_then(|p| p.last()).is_some_and(|p| p["pageviews"] == 1)).then_some(())
    })
    .await;
    let key = make_key(&api, &t, json!([t.site_id])).await;
    let today = shared::time::parse_day(&v2::day_of(now, &tz)).expect("today");
    History { api, t, key, today }
}

impl History {
    /// A 200 answer to `body` (with the site and `metrics` filled in), read with the key.
    async fn v2(&self, metrics: &[&str], range: Value, extra: Value) -> Value {
        let mut body = json!({"site_id": "example.com", "metrics": metrics, "date_range": range});
        for (k, v) in extra.as_object().expect("an object") {
            body[k] = v.clone();
        }
        let (status, answer) = query(&self.api, Some(&self.key), &body).await;
        assert_eq!(status, StatusCode::OK, "{body}: {answer}");
        answer
    }

    /// The native stats of `from`..`to` with `extra` (`&page=…`, `&filter=…`).
    async fn native(&self, from: NaiveDate, to: NaiveDate, extra: &str) -> Value {
        self.api.stats(&self.t.token, &self.t.site_id, &format!("from={}&to={}{extra}", day(from), day(to))).await
    }

    fn days_ago(&self, n: u64) -> NaiveDate {
        self.today.checked_sub_days(Days::new(n)).expect("a day")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v2_answer_equals_the_native_stats_of_the_same_range_and_filter() {
    let stack = Stack::start().await;
    let h = history(&stack).await;
    let (today, week_from, week_to) = (h.today, h.days_ago(7), h.days_ago(1));
    let site = ["visitors", "visits", "pageviews", "bounce_rate", "events"];

    // Every date range: the totals of the same days.
    let month = today.with_day(1).expect("first");
    let ranges = [
        (json!("day"), today, today),
        (json!("7d"), week_from, week_to),
        (json!("30d"), h.days_ago(30), week_to),
        (json!("month"), month, month.checked_add_months(Months::new(1)).expect("next").pred_opt().expect("last")),
        (json!("6mo"), month.checked_sub_months(Months::new(6)).expect("6mo"), month.pred_opt().expect("last")),
        (json!("12mo"), month.checked_sub_months(Months::new(12)).expect("12mo"), month.pred_opt().expect("last")),
        (json!([day(h.days_ago(2)), day(today)]), h.days_ago(2), today),
    ];
    for (range, from, to) in ranges {
        let answer = h.v2(&site, range.clone(), json!({})).await;
        let native = h.native(from, to, "").await;
        assert_eq!(rows(&answer), vec![(vec![], site_figures(&native))], "{range}");
        let echoed = answer["query"]["date_range"].as_array().expect("range").clone();
        assert!(
            echoed[0].as_str().is_some_and(|s| s.starts_with(&format!("{}T00:00:00", day(from)))),
            "{range}: {echoed:?}"
        );
        assert!(echoed[1].as_str().is_some_and(|s| s.starts_with(&format!("{}T23:59:59", day(to)))), "{range}: {echoed:?}");
    }
    // And the figures themselves: 4 visitors (two a day), 5 visits, 7 pageviews, 3 of 5 visits
    // bounced, 7 pageviews and 2 custom events; today 1 visit that did not bounce.
    let week = h.v2(&site, json!("7d"), json!({})).await;
    assert_eq!(rows(&week), vec![(vec![], vec![json!(4), json!(5), json!(7), json!(60), json!(9)])]);
    assert_eq!(
        week["query"],
        json!({"site_id": "example.com", "metrics": site, "date_range": week["query"]["date_range"], "filters": [],
               "dimensions": [], "order_by": [["visitors", "desc"]], "include": {}, "pagination": {"limit": 10000, "offset": 0}})
    );
    assert_eq!(week["meta"], json!({}));
    let today_rows = rows(&h.v2(&site, json!("day"), json!({})).await);
    assert_eq!(today_rows, vec![(vec![], vec![json!(1), json!(1), json!(1), json!(0), json!(2)])]);

    // time:day: each day with data, as the native stats of that day alone.
    let three = json!([day(h.days_ago(2)), day(today)]);
    let by_day = h.v2(&site, three.clone(), json!({"dimensions": ["time:day"], "include": {"time_labels": true}})).await;
    let days = [h.days_ago(2), h.days_ago(1), today];
    let mut want = Vec::new();
    for d in days {
        want.push((vec![day(d)], site_figures(&h.native(d, d, "").await)));
    }
    assert_eq!(rows(&by_day), want);
    assert_eq!(
        rows(&by_day)[1].1,
        vec![json!(2), json!(3), json!(4), json!(67), json!(5)],
        "the day before: 2 of 3 bounced"
    );
    assert_eq!(by_day["meta"]["time_labels"], json!(days.map(day)));

    // event:page: each page as the native page filter shows it, the pages of top_pages.
    let page_metrics = ["visitors", "pageviews", "bounce_rate", "scroll_depth"];
    let pages = h.v2(&page_metrics, json!("7d"), json!({"dimensions": ["event:page"]})).await;
    let native_week = h.native(week_from, week_to, "").await;
    let mut listed: Vec<String> = rows(&pages).into_iter().map(|(d, _)| d[0].clone()).collect();
    let mut native_pages: Vec<String> = native_week["top_pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|p| p["path"].as_str().expect("path").to_string())
        .collect();
    listed.sort();
    native_pages.sort();
    assert_eq!(listed, native_pages);
    for (dims, figures) in rows(&pages) {
        let native = h.native(week_from, week_to, &format!("&page={}", url_encode(&dims[0]))).await;
        assert_eq!(figures, page_figures(&native), "{dims:?}");
    }
    assert_eq!(
        rows(&pages),
        vec![
            (vec!["/".into()], vec![json!(3), json!(3), json!(33), json!(0)]),
            (vec!["/pricing".into()], vec![json!(2), json!(2), json!(100), json!(40)]),
            (vec!["/blog".into()], vec![json!(1), json!(2), json!(100), json!(0)]),
        ],
        "most visitors first; /pricing scrolled to 80 % in one of two pageviews"
    );
    let second = h
        .v2(
            &page_metrics,
            json!("7d"),
            json!({"dimensions": ["event:page"], "pagination": {"limit": 1, "offset": 1},
                                                          "include": {"total_rows": true}}),
        )
        .await;
    assert_eq!(rows(&second).into_iter().map(|(d, _)| d).collect::<Vec<_>>(), vec![vec!["/pricing".to_string()]]);
    assert_eq!(second["meta"], json!({"total_rows": 3}));

    // visit:*: each value's visits as the native list counts them, and its figures as the
    // native one-click filter shows them.
    let lists = [
        ("visit:source", "top_referrers", "source"),
        ("visit:utm_campaign", "top_campaigns", "name"),
        ("visit:utm_medium", "top_mediums", "name"),
        ("visit:country", "top_countries", "country"),
        ("visit:device", "top_devices", "name"),
        ("visit:browser", "top_browsers", "name"),
        ("visit:os", "top_os", "name"),
        ("visit:entry_page", "top_entry_pages", "path"),
    ];
    for (dim, list, label) in lists {
        let answer = h.v2(&["visits", "pageviews", "bounce_rate"], json!("7d"), json!({"dimensions": [dim]})).await;
        let mut visits: Vec<(String, i64)> =
            rows(&answer).iter().map(|(d, m)| (d[0].clone(), m[0].as_i64().expect("visits"))).collect();
        visits.sort();
        assert_eq!(visits, native_visits(&native_week, list, label, dim), "{dim}");
        for (dims, figures) in rows(&answer) {
            let native = h.native(week_from, week_to, &native_filter(dim, &dims[0])).await;
            assert_eq!(figures, visit_figures(&native), "{dim} {dims:?}");
            // The same value as a filter: the same figures.
            let filtered = h
                .v2(&["visits", "pageviews", "bounce_rate"], json!("7d"), json!({"filters": [["is", dim, [dims[0]]]]}))
                .await;
            assert_eq!(rows(&filtered), vec![(vec![], figures.clone())], "{dim} {dims:?} as a filter");
        }
    }
    let sources = h.v2(&["visits", "pageviews", "bounce_rate"], json!("7d"), json!({"dimensions": ["visit:source"]})).await;
    assert_eq!(
        rows(&sources),
        vec![
            (vec!["Direct / None".into()], vec![json!(2), json!(2), json!(100)]),
            (vec!["google.com".into()], vec![json!(2), json!(4), json!(0)]),
            (vec!["bing.com".into()], vec![json!(1), json!(1), json!(100)]),
        ],
        "most visits first, ties by value"
    );
    let by_pageviews = h
        .v2(
            &["visits", "pageviews"],
            json!("7d"),
            json!({"dimensions": ["visit:device"], "order_by": [["pageviews", "asc"]]}),
        )
        .await;
    assert_eq!(
        rows(&by_pageviews),
        vec![
            (vec!["Mobile".into()], vec![json!(1), json!(1)]),
            (vec!["Desktop".into()], vec![json!(2), json!(3)]),
            (vec!["Tablet".into()], vec![json!(2), json!(3)]),
        ]
    );

    // time:day under a filter: the native filter's series.
    let google = h
        .v2(
            &["visits", "pageviews"],
            three.clone(),
            json!({"dimensions": ["time:day"], "filters": [["is", "visit:source", ["google.com"]]]}),
        )
        .await;
    let native_google = h.native(h.days_ago(2), today, "&filter=source:google.com").await;
    let series: Vec<(Vec<String>, Vec<Value>)> = native_google["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter(|p| p["pageviews"] != 0)
        .map(|p| {
            (vec![p["start"].as_str().expect("start").to_string()], vec![p["sessions"].clone(), p["pageviews"].clone()])
        })
        .collect();
    assert_eq!(rows(&google), series);
    assert_eq!(series.len(), 3, "Google on each of the three days");

    // A page filter: the native page view, by day too.
    let pricing = h.v2(&page_metrics, json!("7d"), json!({"filters": [["is", "event:page", ["/pricing"]]]})).await;
    let native_pricing = h.native(week_from, week_to, "&page=/pricing").await;
    assert_eq!(rows(&pricing), vec![(vec![], page_figures(&native_pricing))]);
    let pricing_days = h
        .v2(
            &["pageviews"],
            json!("7d"),
            json!({"filters": [["is", "event:page", ["/pricing"]]], "dimensions": ["time:day"]}),
        )
        .await;
    assert_eq!(rows(&pricing_days), vec![(vec![day(h.days_ago(2))], vec![json!(2)])]);

    // event:goal: the native goals with conversions; rates in percent.
    let goal_metrics = ["visits", "conversion_rate"];
    let goals = h.v2(&goal_metrics, json!("7d"), json!({"dimensions": ["event:goal"]})).await;
    let native_goals: Vec<(Vec<String>, Vec<Value>)> = native_week["goals"]
        .as_array()
        .expect("goals")
        .iter()
        .filter(|g| g["conversions"] != 0)
        .map(|g| (vec![g["name"].as_str().expect("name").to_string()], vec![g["conversions"].clone(), percent2(&g["rate"])]))
        .collect();
    let mut got = rows(&goals);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = native_goals;
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);
    assert_eq!(
        rows(&goals),
        vec![(vec!["Pricing".into()], vec![json!(2), json!(40.0)]), (vec!["Signup".into()], vec![json!(1), json!(20.0)])]
    );
    // A goal filter: that goal's row; by source, the native filter's goal row of each source.
    let signup = h.v2(&goal_metrics, json!("7d"), json!({"filters": [["is", "event:goal", ["Signup"]]]})).await;
    assert_eq!(rows(&signup), vec![(vec![], vec![json!(1), json!(20.0)])]);
    let pricing_by_source = h
        .v2(
            &goal_metrics,
            json!("7d"),
            json!({"filters": [["is", "event:goal", ["Pricing"]]], "dimensions": ["visit:source"]}),
        )
        .await;
    assert_eq!(
        rows(&pricing_by_source),
        vec![
            (vec!["Direct / None".into()], vec![json!(1), json!(50.0)]),
            (vec!["google.com".into()], vec![json!(1), json!(50.0)])
        ]
    );
    for (dims, figures) in rows(&pricing_by_source) {
        let native = h.native(week_from, week_to, &native_filter("visit:source", &dims[0])).await;
        let row =
            native["goals"].as_array().expect("goals").iter().find(|g| g["name"] == "Pricing").cloned().expect("Pricing");
        assert_eq!(figures, vec![row["conversions"].clone(), percent2(&row["rate"])], "{dims:?}");
    }
    // A source's goals: the native filter's goals.
    let google_goals = h
        .v2(
            &goal_metrics,
            json!("7d"),
            json!({"filters": [["is", "visit:source", ["google.com"]]], "dimensions": ["event:goal"]}),
        )
        .await;
    assert_eq!(
        rows(&google_goals),
        vec![(vec!["Pricing".into()], vec![json!(1), json!(50.0)]), (vec!["Signup".into()], vec![json!(1), json!(50.0)])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reads_the_oldest_readable_site_on_its_domain_and_everything_else_is_refused_in_plausibles_words() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let (other, _) = api.create_site(&t.token, "other.example", "UTC").await;
    // Someone else's site, on a domain of its own.
    api.tenant("stranger.example", "UTC").await;
    let b = make_batch(&t.key, "sess_v2q_auth", vec![pageview(&id("page"), &u("/"), "", true)]);
    send(&api, &b, &chrome(7)).await;
    api.stats_when(&t.token, &t.site_id, "timeframe=7d", |s| s["summary"]["pageviews"] == 1).await;
    // A newer site of the same user on the same domain, without data.
    let (newer, _) = api.create_site(&t.token, "example.com", "UTC").await;
    let visits = |site_id: &str| json!({"site_id": site_id, "metrics": ["visits"], "date_range": "day"});

    let all = make_key(&api, &t, json!("*")).await;
    let only_newer = make_key(&api, &t, json!([newer])).await;
    let only_other = make_key(&api, &t, json!([other])).await;
    // (case, Authorization, site_id, the site's domain, its visits today)
    for (case, auth, site, domain, want) in [
        ("every site: the oldest on the domain", all.as_str(), "example.com", "example.com", 1),
        ("the domain as typed: case and a final dot", all.as_str(), "Example.COM.", "example.com", 1),
        ("a key of the newer site only: that one", only_newer.as_str(), "example.com", "example.com", 0),
        ("the owner's login token: the oldest", t.token.as_str(), "example.com", "example.com", 1),
        ("a key of another site, for that site", only_other.as_str(), "other.example", "other.example", 0),
    ] {
        let (status, answer) = query(&api, Some(auth), &visits(site)).await;
        assert_eq!(status, StatusCode::OK, "{case}: {answer}");
        assert_eq!(rows(&answer), vec![(vec![], vec![json!(want)])], "{case}");
        assert_eq!(answer["query"]["site_id"], domain, "{case}");
    }

    // Who may not: Plausible's 401s, a deleted key included.
    let (status, deleted) = api.post("/api/keys", Some(&t.token), &json!({"name": "Gone", "sites": "*"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!("/api/keys/{}", deleted["id"].as_str().expect("id"));
    let (status, _) = api.send(Method::DELETE, &path, Some(&t.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let deleted = deleted["key"].as_str().expect("key");
    for (case, auth, site, message) in [
        ("no key", None, "example.com", MISSING_KEY),
        ("a key of another site", Some(only_other.as_str()), "example.com", INVALID_KEY),
        ("someone else's site", Some(all.as_str()), "stranger.example", INVALID_KEY),
        ("a domain nobody has", Some(all.as_str()), "nowhere.example", INVALID_KEY),
        ("a deleted key", Some(deleted), "example.com", INVALID_KEY),
        (
            "a key never made",
            Some("cps_abababababababababababab_cdcdcdcdcdcdcdcdcdcdcdcd_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            "example.com",
            INVALID_KEY,
        ),
    ] {
        let (status, answer) = query(&api, auth, &visits(site)).await;
        assert_eq!((status, answer), (StatusCode::UNAUTHORIZED, json!({"error": message})), "{case}");
    }
    let (status, answer) = query(&api, Some(&all), &json!({"metrics": ["visits"], "date_range": "day"})).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "Missing site ID. Please provide the required site_id parameter with your request."})
        )
    );

    // What is outside the subset: 400 in Plausible's words.
    api.create_goal(&t, "Signup", "event", "Signup").await;
    let base = |extra: Value| {
        let mut b = json!({"site_id": "example.com", "metrics": ["visits"], "date_range": "7d"});
        for (k, v) in extra.as_object().expect("object") {
            b[k] = v.clone();
        }
        b
    };
    for (body, message) in [
        (base(json!({"metrics": ["visit_duration"]})), "#/metrics/0: Unsupported metric \"visit_duration\""),
        (base(json!({"metrics": ["foo"]})), "#/metrics/0: Invalid metric \"foo\""),
        (base(json!({"dimensions": ["visit:city"]})), "#/dimensions/0: Unsupported dimension \"visit:city\""),
        (
            base(json!({"filters": [["contains", "event:page", ["/blog"]]]})),
            "#/filters/0: Unsupported filter [\"contains\", \"event:page\", [\"/blog\"]]: ConvertPulse filters with `is` only",
        ),
        (
            base(json!({"date_range": "all"})),
            "#/date_range: Unsupported date range \"all\": ConvertPulse answers day, 7d, 30d, month, 6mo, 12mo or two dates",
        ),
        (
            base(json!({"metrics": ["visitors"], "dimensions": ["visit:source"]})),
            "Metric `visitors` cannot be queried with the `visit:source` dimension in ConvertPulse: visits are counted by visit property, distinct visitors are not: ask for `visits`.",
        ),
        (
            base(json!({"filters": [["is", "event:goal", ["Trial"]]]})),
            "The goal `Trial` is not configured for this site. Find out how to configure goals here: https://plausible.io/docs/stats-api#filtering-by-goals",
        ),
        (
            base(json!({"metrics": ["conversion_rate"]})),
            "Metric `conversion_rate` can only be queried with event:goal filters or dimensions.",
        ),
    ] {
        let (status, answer) = query(&api, Some(&all), &body).await;
        assert_eq!((status, answer), (StatusCode::BAD_REQUEST, json!({"error": message})), "{body}");
    }
}
