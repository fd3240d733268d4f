//! Audience in the stats (issue 10) over real processes behind a trusted proxy: real
//! User-Agent strings and client addresses give exact `top_devices`, `top_browsers`, `top_os`
//! and `top_countries`, session by session; only a session's first pageview counts a visit;
//! bots are answered 202 and counted in no figure and no list.

use cp_tests::v2;

use std::collections::BTreeMap;

use cp_tests::{
    batch::{batch as make_batch, click, id, pageview},
    client::Api,
    stack::{Proc, Stack},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use v2::post_from;

const CHROME_WIN: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const CHROME_MAC: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const CHROME_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36";
const CHROME_ANDROID_TABLET: &str =
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Safari/537.36";
const CHROME_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1";
const FIREFOX_WIN: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0";
const FIREFOX_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
const FIREFOX_UBUNTU: &str = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
const FIREFOX_ANDROID: &str = "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0";
const FIREFOX_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/125.0 Mobile/15E148 Safari/605.1.15";
const SAFARI_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1";
const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1";
const EDGE_WIN: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80";
const EDGE_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80";
const EDGE_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36 EdgA/124.0.2478.64";

/// One visitor: (case, User-Agent, X-Forwarded-For, (device, browser, OS, country)).
type Case = (&'static str, &'static str, Option<&'static str>, (&'static str, &'static str, &'static str, &'static str));

const CASES: [Case; 17] = [
    ("Chrome, Windows, US", CHROME_WIN, Some("8.8.8.8"), ("desktop", "Chrome", "Windows", "US")),
    ("Chrome, macOS, DE", CHROME_MAC, Some("193.99.144.80"), ("desktop", "Chrome", "macOS", "DE")),
    ("Chrome, Android phone, JP", CHROME_ANDROID, Some("133.11.0.1"), ("mobile", "Chrome", "Android", "JP")),
    ("Chrome, Android tablet, BR", CHROME_ANDROID_TABLET, Some("200.160.2.3"), ("tablet", "Chrome", "Android", "BR")),
    ("Chrome, iPhone, AU", CHROME_IPHONE, Some("139.130.4.5"), ("mobile", "Chrome", "iOS", "AU")),
    ("Firefox, Windows, FR", FIREFOX_WIN, Some("80.67.169.12"), ("desktop", "Firefox", "Windows", "FR")),
    ("Firefox, Linux, GB", FIREFOX_LINUX, Some("81.2.69.142"), ("desktop", "Firefox", "Linux", "GB")),
    ("Firefox, Ubuntu, US over IPv6", FIREFOX_UBUNTU, Some("2001:4860:4860::8888"), ("desktop", "Firefox", "Linux", "US")),
    ("Firefox, Android, CH", FIREFOX_ANDROID, Some("129.132.19.216"), ("mobile", "Firefox", "Android", "CH")),
    ("Firefox, iPhone, IE over IPv6", FIREFOX_IPHONE, Some("2a00:1450:4001:82b::200e"), ("mobile", "Firefox", "iOS", "IE")),
    // The proxy appends the address it saw; what the client wrote before it is not believed.
    (
        "Safari, macOS, DE behind a client-written hop",
        SAFARI_MAC,
        Some("6.6.6.6, 193.99.144.80"),
        ("desktop", "Safari", "macOS", "DE"),
    ),
    ("Safari, iPhone, US", SAFARI_IPHONE, Some("8.8.4.4"), ("mobile", "Safari", "iOS", "US")),
    ("Safari, iPad, private address", SAFARI_IPAD, Some("10.1.2.3"), ("tablet", "Safari", "iOS", "(unknown)")),
    ("Edge, Windows, DE", EDGE_WIN, Some("193.99.144.80"), ("desktop", "Edge", "Windows", "DE")),
    ("Edge, macOS, NL over IPv6", EDGE_MAC, Some("2001:67c:2e8:22::c100:68b"), ("desktop", "Edge", "macOS", "NL")),
    ("Edge, Android, US", EDGE_ANDROID, Some("8.8.8.8"), ("mobile", "Edge", "Android", "US")),
    // Straight from the proxy's own address: no country.
    ("Chrome, Windows, no forwarded address", CHROME_WIN, None, ("desktop", "Chrome", "Windows", "(unknown)")),
];

const BOTS: [&str; 8] = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.6367.60 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "curl/8.5.0",
    "python-requests/2.31.0",
];

/// A top list as the contract orders it: most visits first, ties by name, at most 10 rows.
fn ranked(counts: &BTreeMap<&str, i64>, key: &str) -> Value {
    let mut rows: Vec<(&str, i64)> = counts.iter().map(|(k, v)| (*k, *v)).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    rows.truncate(10);
    Value::Array(rows.into_iter().map(|(name, visits)| json!({key: name, "visits": visits})).collect())
}

fn audience_lists(s: &Value) -> Value {
    json!([s["top_devices"], s["top_browsers"], s["top_os"], s["top_countries"]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_browsers_os_and_countries_come_from_real_user_agents_and_addresses_and_bots_count_nowhere() {
    let stack = Stack::start_with(&[("CP_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", &v2::noon_zone()).await;
    let q = "timeframe=7d";
    let mut lists: [BTreeMap<&str, i64>; 4] = Default::default();

    // Act and assert, one visitor at a time: each adds exactly its own row to each list.
    for (n, (case, ua, xff, (device, browser, os, country))) in CASES.iter().enumerate() {
        let page = id("page");
        let b = make_batch(&t.key, &id("sess"), vec![pageview(&page, "https://example.com/", "", true)]);
        let (status, body) = post_from(&api, &b, ua, *xff).await;
        assert_eq!((status, &body), (StatusCode::ACCEPTED, &json!({"accepted": 1})), "case {case}");
        for (list, name) in lists.iter_mut().zip([device, browser, os, country]) {
            *list.entry(name).or_default() += 1;
        }
        let want = json!([
            ranked(&lists[0], "name"),
            ranked(&lists[1], "name"),
            ranked(&lists[2], "name"),
            ranked(&lists[3], "country")
        ]);
        let sessions = n as i64 + 1;
        let s = api.stats_when(&t.token, &t.site_id, q, |s| s["summary"]["sessions"] == sessions).await;
        assert_eq!(audience_lists(&s), want, "case {case}: [devices, browsers, OS, countries]");
    }

    // Eleven countries: the list shows the ten highest, and no (other) row (nothing folded).
    let s = api.stats(&t.token, &t.site_id, q).await;
    assert_eq!(
        s["top_countries"],
        json!([
            {"country": "US", "visits": 4}, {"country": "DE", "visits": 3}, {"country": "(unknown)", "visits": 2},
            {"country": "AU", "visits": 1}, {"country": "BR", "visits": 1}, {"country": "CH", "visits": 1},
            {"country": "FR", "visits": 1}, {"country": "GB", "visits": 1}, {"country": "IE", "visits": 1},
            {"country": "JP", "visits": 1},
        ]),
        "{s}"
    );

    // A later pageview of a session, from another device, counts no visit.
    let sess = id("sess");
    let first = make_batch(&t.key, &sess, vec![pageview(&id("page"), "https://example.com/", "", true)]);
    assert_eq!(post_from(&api, &first, SAFARI_IPHONE, Some("8.8.4.4")).await.0, StatusCode::ACCEPTED);
    let later = make_batch(&t.key, &sess, vec![pageview(&id("page"), "https://example.com/pricing", "", false)]);
    assert_eq!(post_from(&api, &later, FIREFOX_WIN, Some("80.67.169.12")).await.0, StatusCode::ACCEPTED);
    for (list, name) in lists.iter_mut().zip(["mobile", "Safari", "iOS", "US"]) {
        *list.entry(name).or_default() += 1;
    }
    let before_bots = api.stats_when(&t.token, &t.site_id, q, |s| s["summary"]["pageviews"] == 19).await;
    let want = json!([
        ranked(&lists[0], "name"),
        ranked(&lists[1], "name"),
        ranked(&lists[2], "name"),
        ranked(&lists[3], "country")
    ]);
    assert_eq!(audience_lists(&before_bots), want, "the first pageview's device, browser, OS and country only");

    // Bots, with every kind of event and from a country already listed: 202, nothing counted.
    for ua in BOTS {
        let page = id("page");
        let b = make_batch(
            &t.key,
            &id("sess"),
            vec![
                pageview(&page, "https://example.com/?utm_campaign=bots", "https://www.google.com/", true),
                click(&page, "https://example.com/", "button#cta", "Go"),
                v2::custom(&page, "https://example.com/", "Signup", Value::Null),
            ],
        );
        let (status, body) = post_from(&api, &b, ua, Some("193.99.144.80")).await;
        assert_eq!((status, &body), (StatusCode::ACCEPTED, &json!({"accepted": 3})), "case {ua}");
    }
    // A person after the bots: once counted, everything before it has been handled.
    let person = make_batch(&t.key, &id("sess"), vec![pageview(&id("page"), "https://example.com/", "", true)]);
    assert_eq!(post_from(&api, &person, EDGE_WIN, Some("193.99.144.80")).await.0, StatusCode::ACCEPTED);
    for (list, name) in lists.iter_mut().zip(["desktop", "Edge", "Windows", "DE"]) {
        *list.entry(name).or_default() += 1;
    }
    api.stats_when(&t.token, &t.site_id, q, |s| s["summary"]["pageviews"] == 20).await;
    stack.wait_drained().await;
    let s = api.stats(&t.token, &t.site_id, q).await;
    let want = json!([
        ranked(&lists[0], "name"),
        ranked(&lists[1], "name"),
        ranked(&lists[2], "name"),
        ranked(&lists[3], "country")
    ]);
    assert_eq!(audience_lists(&s), want, "bots are in no list: {s}");
    assert_eq!(
        (
            &s["summary"]["pageviews"],
            &s["summary"]["sessions"],
            &s["summary"]["clicks"],
            &s["top_events"],
            &s["top_campaigns"],
            &s["top_clicks"]
        ),
        (&json!(20), &json!(19), &json!(0), &json!([]), &json!([]), &json!([])),
        "bots are in no figure: {s}"
    );
    let metrics = stack.metrics(Proc::Ingest).await;
    let bots: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("convertpulse_ingest_bot_batches_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(bots, BOTS.len() as f64, "/metrics counts every bot batch:\n{metrics}");
}
