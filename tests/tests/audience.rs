//! Audience at ingest over real processes: bots are answered 202 and counted nowhere; every
//! published batch carries device, browser, OS and country (from the client IP behind a trusted
//! proxy), and neither the IP nor the User-Agent.

use std::time::Duration;

use cp_tests::{
    batch::{batch as make_batch, id, pageview},
    client::Api,
    stack::{Proc, Stack},
    wait,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::message::BatchMessage;

const CHROME_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

async fn post_from(api: &Api, b: &Value, user_agent: &str, forwarded_for: Option<&str>) -> (StatusCode, Value) {
    let mut req = api
        .http
        .post(format!("{}/api/events/batch", api.ingest))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("user-agent", user_agent)
        .header("origin", "https://www.example.com")
        .body(serde_json::to_vec(b).expect("json"));
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    Api::json(req.send().await.expect("ingest reachable")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_are_answered_202_and_counted_nowhere() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    api.wait_key_live(&t.key).await;

    // Act: five bots, then one person, each with one pageview.
    let bots = [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.224 Safari/537.36",
        "curl/8.5.0",
        "python-requests/2.31.0",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    ];
    for ua in bots {
        let b = make_batch(&t.key, &id("sess"), vec![pageview(&id("page"), "https://example.com/bot", "", true)]);
        let (status, body) = post_from(&api, &b, ua, None).await;
        assert_eq!((status, &body), (StatusCode::ACCEPTED, &json!({"accepted": 1})), "case {ua}");
    }
    let person = make_batch(&t.key, &id("sess"), vec![pageview(&id("page"), "https://example.com/person", "", true)]);
    assert_eq!(post_from(&api, &person, CHROME_WINDOWS, None).await.0, StatusCode::ACCEPTED);

    // Assert: only the person's pageview is counted, also once everything is drained.
    api.stats_when(&t.token, &t.site_id, "timeframe=24h", |s| s["summary"]["pageviews"] == 1).await;
    stack.wait_drained().await;
    let stats = api.stats(&t.token, &t.site_id, "timeframe=24h").await;
    assert_eq!(stats["summary"]["pageviews"], 1, "{stats}");
    assert_eq!(stats["top_pages"], json!([{"path": "/person", "pageviews": 1}]), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_batches_carry_device_browser_os_and_country_and_never_the_ip_or_user_agent() {
    let mut stack = Stack::start_with(&[("CP_TRUSTED_PROXIES", "127.0.0.1")]).await;
    // Without the aggregator the batches stay in the stream, where the test reads them.
    stack.kill(Proc::Aggregator);
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    api.wait_key_live(&t.key).await;

    let cases = [
        ("desktop Chrome in the US", CHROME_WINDOWS, "8.8.8.8", ("desktop", "Chrome", "Windows", "US")),
        (
            "iPhone Safari in Germany, behind a client-written hop",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
            "6.6.6.6, 193.99.144.80",
            ("mobile", "Safari", "iOS", "DE"),
        ),
        (
            "Android Firefox in Japan",
            "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
            "133.11.0.1",
            ("mobile", "Firefox", "Android", "JP"),
        ),
        (
            "Edge on macOS, IPv6",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
            "2001:4860:4860::8888",
            ("desktop", "Edge", "macOS", "US"),
        ),
        (
            "iPad from a private address",
            "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            "10.1.2.3",
            ("tablet", "Safari", "iOS", "(unknown)"),
        ),
    ];
    let mut sent = Vec::new();
    for (case, ua, xff, want) in cases {
        let b = make_batch(&t.key, &id("sess"), vec![pageview(&id("page"), "https://example.com/#secret", "", true)]);
        let (status, body) = post_from(&api, &b, ua, Some(xff)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "case {case}: {body}");
        sent.push((case, ua, xff, b["batch_id"].as_str().expect("batch id").to_string(), want));
    }

    // Read what ingest published, without consuming it.
    let nats = async_nats::connect(format!("nats://127.0.0.1:{}", stack.nats_port)).await.expect("nats");
    let js = async_nats::jetstream::new(nats);
    let mut stream = js.get_stream(shared::names::STREAM).await.expect("event stream");
    let want = sent.len() as u64;
    let count = wait::until("the stream to hold every batch", Duration::from_secs(5), || {
        let mut stream = stream.clone();
        async move {
            let n = stream.info().await.expect("stream info").state.messages;
            (n >= want).then_some(n)
        }
    })
    .await;
    let mut published = Vec::new();
    let first = stream.info().await.expect("stream info").state.first_sequence;
    for seq in first..first + count {
        let raw = stream.get_raw_message(seq).await.expect("stored message");
        let text = String::from_utf8(raw.payload.to_vec()).expect("utf-8 JSON");
        let msg: BatchMessage = serde_json::from_str(&text).expect("a BatchMessage");
        published.push((msg, text));
    }

    for (case, ua, xff, batch_id, (device, browser, os, country)) in sent {
        let (msg, text) =
            published.iter().find(|(m, _)| m.batch_id == batch_id).unwrap_or_else(|| panic!("case {case}: not published"));
        let got = (msg.device.as_str(), msg.browser.as_str(), msg.os.as_str(), msg.country.as_str());
        assert_eq!(got, (device, browser, os, country), "case {case}");
        assert_eq!(msg.events[0].url, "https://example.com/", "case {case}: fragment dropped");
        assert!(!text.contains(ua), "case {case}: the User-Agent is not stored");
        for hop in xff.split(',').map(str::trim) {
            assert!(!text.contains(hop), "case {case}: the address {hop} is not stored");
        }
    }
}
