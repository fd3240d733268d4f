//! Many sites at once: every site's stats count exactly what it was sent, and a site with a
//! few batches a day costs one rollup document.

use std::collections::BTreeMap;

use cp_tests::{
    batch::{batch, click, id, pageview, scroll},
    client::Api,
    stack::Stack,
};
use futures::{StreamExt, stream};
use mongodb::bson::{Document, doc};
use reqwest::StatusCode;
use serde_json::Value;

/// Sites, and batches each site gets (one visitor and one session each).
const SITES: usize = 60;
const BATCHES: usize = 3;

/// What one site was sent.
#[derive(Debug, Default, Clone, PartialEq)]
struct Sent {
    pageviews: i64,
    clicks: i64,
    sessions: i64,
    visitors: i64,
    pages: BTreeMap<String, i64>,
    sources: BTreeMap<String, i64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_sites_sent_a_few_batches_each_count_exactly_what_each_was_sent_in_one_document_a_site() {
    let stack = Stack::start_with(&[("CP_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let api = Api::new(&stack);
    let token = api.register(&format!("{}@example.com", id("agency"))).await;
    let mut sites = Vec::new();
    for i in 0..SITES {
        let (site_id, key) = api.create_site(&token, &format!("site{i}.example.com"), "UTC").await;
        sites.push((site_id, key));
    }

    // Every batch: a session start with the site's own page and referrer, a click, a scroll;
    // a visitor of its own (address and User-Agent).
    let mut work = Vec::new();
    let mut sent: Vec<Sent> = vec![Sent::default(); SITES];
    for (i, (_, key)) in sites.iter().enumerate() {
        for b in 0..BATCHES {
            let page = format!("/landing/{}", (i + b) % 4);
            let url = format!("https://site{i}.example.com{page}?utm_source=news{b}");
            let page_id = id("page");
            let events = vec![
                pageview(&page_id, &url, "https://www.google.com/", true),
                click(&page_id, &url, &format!("button#cta-{b}"), "Start"),
                scroll(&page_id, &url, 60, 0),
            ];
            let s = &mut sent[i];
            s.pageviews += 1;
            s.clicks += 1;
            s.sessions += 1;
            s.visitors += 1;
            *s.pages.entry(page).or_default() += 1;
            *s.sources.entry(format!("news{b}")).or_default() += 1;
            let visitor = i * BATCHES + b;
            work.push((
                batch(key, &id("session"), events),
                format!("2001:db8:{:x}:{:x}::1", visitor >> 8, visitor & 0xff),
                format!("Mozilla/5.0 (X11; Linux x86_64) Tenancy/{visitor}"),
            ));
        }
    }
    let statuses: Vec<StatusCode> = stream::iter(work)
        .map(|(body, ip, ua)| {
            let api = api.clone();
            async move {
                let res = api
                    .http
                    .post(format!("{}/api/events/batch", api.ingest))
                    .header("content-type", "text/plain")
                    .header("x-forwarded-for", ip)
                    .header("user-agent", ua)
                    .body(serde_json::to_vec(&body).expect("json"))
                    .send()
                    .await
                    .expect("ingest reachable");
                res.status()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::ACCEPTED), "every batch accepted: {statuses:?}");

    for (i, (site_id, _)) in sites.iter().enumerate() {
        let want = &sent[i];
        let s = api
            .stats_when(&token, site_id, "timeframe=7d", |s| s["summary"]["pageviews"].as_i64() == Some(want.pageviews))
            .await;
        let got = Sent {
            pageviews: s["summary"]["pageviews"].as_i64().unwrap_or(-1),
            clicks: s["summary"]["clicks"].as_i64().unwrap_or(-1),
            sessions: s["summary"]["sessions"].as_i64().unwrap_or(-1),
            visitors: s["summary"]["visitors"].as_i64().unwrap_or(-1),
            pages: rows(&s["top_pages"], "path", "pageviews"),
            sources: rows(&s["top_referrers"], "source", "visits"),
        };
        assert_eq!(&got, want, "site {i} ({site_id}): its stats are what it was sent, nothing of the others");
        let day = api.stats(&token, site_id, "timeframe=24h").await;
        assert_eq!(day["summary"]["visitors"].as_i64(), Some(want.visitors), "site {i}: 24 hours");
        assert_eq!(day["summary"]["clicks"].as_i64(), Some(want.clicks), "site {i}: 24 hours");
    }

    // Each site got a few batches on one day: its day, hours and minutes are one document.
    let client = mongodb::Client::with_uri_str(&stack.mongo_uri).await.expect("mongodb");
    let rollups = client.database(&stack.mongo_db).collection::<Document>(shared::names::collections::ROLLUPS);
    let stored = rollups.count_documents(doc! {}).await.expect("count");
    assert_eq!(stored, SITES as u64, "one site-day document per site, none split");
}

fn rows(list: &Value, key: &str, count: &str) -> BTreeMap<String, i64> {
    list.as_array()
        .map(|a| a.iter().map(|r| (r[key].as_str().unwrap_or("?").to_string(), r[count].as_i64().unwrap_or(-1))).collect())
        .unwrap_or_default()
}
