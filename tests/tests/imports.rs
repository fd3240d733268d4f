//! Imports of Plausible's "Export data" zip and `export.zip` (issue 23) over real processes:
//! an export written with Plausible's own file names and columns adds exactly its days to the
//! stats (summary, series, pages, sources, campaigns, mediums, countries, devices, browsers,
//! OS, entry and exit pages, custom events, a page filter); deleting it takes them back at once;
//! a bad file fails naming its file and line and applies nothing; an upload past the limit is
//! refused; and a site's export imported into another site gives that site the same stats.

use std::io::{Cursor, Write};
use std::time::Duration;

use chrono::{Duration as Days, NaiveDate, Utc};
use cp_tests::{
    batch::{batch, id, pageview, scroll, time},
    client::{Api, Tenant},
    stack::Stack,
    v2::{chrome, custom, send},
    wait,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn zip_of(files: &[(String, String)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, body) in files {
        zip.start_file(name.as_str(), zip::write::SimpleFileOptions::default()).expect("start");
        zip.write_all(body.as_bytes()).expect("write");
    }
    zip.finish().expect("finish").into_inner()
}

fn ymd(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Plausible's export of two days, `d1` and `d2`, as its "Export data" writes it.
fn plausible_export(d1: NaiveDate, d2: NaiveDate) -> Vec<u8> {
    let span = format!("{}_{}", d1.format("%Y%m%d"), d2.format("%Y%m%d"));
    let (a, b) = (ymd(d1), ymd(d2));
    let file = |table: &str, body: String| (format!("imported_{table}_{span}.csv"), body);
    zip_of(&[
        file(
            "visitors",
            format!("date,visitors,pageviews,bounces,visits,visit_duration\n{a},10,30,4,12,600\n{b},5,6,1,5,50\n"),
        ),
        file(
            "pages",
            format!(
                "date,hostname,page,visits,visitors,pageviews,scroll_depth,pageleave_visitors\n\
                 {a},example.com,/,9,9,20,1000,10\n{a},example.com,/pricing,4,3,10,300,5\n{b},example.com,/,5,5,6,\\N,0\n"
            ),
        ),
        file(
            "entry_pages",
            format!(
                "date,entry_page,visitors,entrances,visit_duration,bounces,pageviews\n\
                 {a},/,8,9,500,3,18\n{a},/pricing,3,3,100,1,5\n{b},/,5,5,50,1,6\n"
            ),
        ),
        file(
            "exit_pages",
            format!(
                "date,exit_page,visitors,visit_duration,exits,bounces,pageviews\n\
                 {a},/,5,0,5,0,0\n{a},/pricing,7,0,7,0,0\n{b},/,5,0,5,0,0\n"
            ),
        ),
        file(
            "sources",
            format!(
                "date,source,referrer,utm_source,utm_medium,utm_campaign,utm_content,utm_term,pageviews,visitors,visits,visit_duration,bounces\n\
                 {a},Google,,google,cpc,spring,,,20,6,7,300,2\n{a},,,,,,,,10,4,5,300,2\n{b},Twitter,,,social,,,,6,5,5,50,1\n"
            ),
        ),
        file(
            "locations",
            format!(
                "date,country,region,city,visitors,visits,visit_duration,bounces,pageviews\n\
                 {a},DE,DE-BE,2950159,6,8,0,0,0\n{a},US,,0,4,4,0,0,0\n{b},DE,,0,5,5,0,0,0\n"
            ),
        ),
        file(
            "devices",
            format!(
                "date,device,visitors,visits,visit_duration,bounces,pageviews\n{a},Desktop,7,9,0,0,0\n{a},Mobile,3,3,0,0,0\n{b},Mobile,5,5,0,0,0\n"
            ),
        ),
        file(
            "browsers",
            format!(
                "date,browser,browser_version,visitors,visits,visit_duration,bounces,pageviews\n\
                 {a},Firefox,120,7,9,0,0,0\n{a},Chrome,119,3,3,0,0,0\n{b},Chrome,120,5,5,0,0,0\n"
            ),
        ),
        file(
            "operating_systems",
            format!(
                "date,operating_system,operating_system_version,visitors,visits,visit_duration,bounces,pageviews\n\
                 {a},Linux,,10,12,0,0,0\n{b},Android,14,5,5,0,0,0\n"
            ),
        ),
        file("custom_events", format!("date,name,link_url,path,visitors,events\n{a},Signup,,,2,3\n{b},Signup,,,1,1\n")),
    ])
}

async fn upload(api: &Api, token: &str, site: &str, zip: Vec<u8>) -> (StatusCode, Value) {
    let res = api
        .http
        .post(format!("{}/api/sites/{site}/imports", api.api))
        .bearer_auth(token)
        .header("content-type", "application/zip")
        .body(zip)
        .send()
        .await
        .expect("api");
    Api::json(res).await
}

/// An upload that declares `length` bytes and sends none of them: the status and JSON answer.
async fn declared_upload(api: &Api, token: &str, site: &str, length: usize) -> (StatusCode, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = api.api.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /api/sites/{site}/imports HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/zip\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("answered without the body")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let code = head.split(' ').nth(1).and_then(|c| c.parse::<u16>().ok()).expect("status");
    (StatusCode::from_u16(code).expect("status"), serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")))
}

async fn delete_import(api: &Api, t: &Tenant, import: &str) -> StatusCode {
    let url = format!("{}/api/sites/{}/imports/{import}", api.api, t.site_id);
    api.http.delete(url).bearer_auth(&t.token).send().await.expect("api").status()
}

/// Polls the site's imports until `import` has left `running`; returns its row.
async fn settled(api: &Api, token: &str, site: &str, import: &str) -> Value {
    wait::until("the import to finish", Duration::from_secs(60), || async {
        let (status, list) = api.get(&format!("/api/sites/{site}/imports"), Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let row = list.as_array()?.iter().find(|r| r["id"] == import)?.clone();
        (row["state"] != "running").then_some(row)
    })
    .await
}

fn rows(v: &Value, key: &str, count: &str) -> Vec<(String, i64)> {
    v.as_array()
        .map(|l| l.iter().map(|r| (r[key].as_str().unwrap_or("").to_string(), r[count].as_i64().unwrap_or(-1))).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plausible_export_adds_its_days_exactly_and_deleting_it_takes_them_back() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let today = Utc::now().date_naive();
    let (d1, d2) = (today - Days::days(3), today - Days::days(2));
    let (status, created) = upload(&api, &t.token, &t.site_id, plausible_export(d1, d2)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let import = created["id"].as_str().expect("id").to_string();
    let row = settled(&api, &t.token, &t.site_id, &import).await;
    assert_eq!(row, json!({"id": import, "state": "done", "from": ymd(d1), "to": ymd(d2), "error": null}));

    let s = api.stats(&t.token, &t.site_id, "timeframe=7d").await;
    let sum = &s["summary"];
    assert_eq!(
        (sum["pageviews"].as_i64(), sum["visitors"].as_i64(), sum["sessions"].as_i64()),
        (Some(36), Some(15), Some(17))
    );
    // 5 bounces of 17 visits; 650 s over 36 pageviews; scroll sums (1000·20/10 + 300·10/5) over 36.
    assert_eq!(sum["bounce_rate"].as_f64(), Some(0.2941));
    assert!((sum["avg_time_seconds"].as_f64().unwrap_or(0.0) - 650.0 / 36.0).abs() < 1e-9, "{sum}");
    assert!((sum["avg_scroll_depth"].as_f64().unwrap_or(0.0) - 2600.0 / 36.0).abs() < 1e-9, "{sum}");
    let series: Vec<(String, i64)> = rows(&s["series"], "start", "pageviews").into_iter().filter(|r| r.1 > 0).collect();
    assert_eq!(series, vec![(ymd(d1), 30), (ymd(d2), 6)]);
    assert_eq!(rows(&s["top_pages"], "path", "pageviews"), vec![("/".into(), 26), ("/pricing".into(), 10)]);
    assert_eq!(
        rows(&s["top_referrers"], "source", "visits"),
        vec![("Google".into(), 7), ("(direct)".into(), 5), ("Twitter".into(), 5)]
    );
    assert_eq!(rows(&s["top_campaigns"], "name", "visits"), vec![("spring".into(), 7)]);
    assert_eq!(rows(&s["top_mediums"], "name", "visits"), vec![("cpc".into(), 7), ("social".into(), 5)]);
    assert_eq!(rows(&s["top_countries"], "country", "visits"), vec![("DE".into(), 13), ("US".into(), 4)]);
    assert_eq!(rows(&s["top_devices"], "name", "visits"), vec![("desktop".into(), 9), ("mobile".into(), 8)]);
    assert_eq!(rows(&s["top_browsers"], "name", "visits"), vec![("Firefox".into(), 9), ("Chrome".into(), 8)]);
    assert_eq!(rows(&s["top_os"], "name", "visits"), vec![("Linux".into(), 12), ("Android".into(), 5)]);
    assert_eq!(rows(&s["top_events"], "name", "count"), vec![("Signup".into(), 4)]);
    assert_eq!(rows(&s["top_entry_pages"], "path", "visits"), vec![("/".into(), 14), ("/pricing".into(), 3)]);
    assert_eq!(s["top_entry_pages"][0]["bounce_rate"].as_f64(), Some(0.2857));
    assert_eq!(rows(&s["top_exit_pages"], "path", "exits"), vec![("/".into(), 10), ("/pricing".into(), 7)]);
    // A page filter sees the imported page.
    let p = api.stats(&t.token, &t.site_id, "timeframe=7d&page=/pricing").await;
    assert_eq!(p["summary"]["pageviews"].as_i64(), Some(10), "{p}");

    // An overlapping import is refused and listed nowhere.
    let (status, e) = upload(&api, &t.token, &t.site_id, plausible_export(d2, d2)).await;
    assert_eq!((status, e["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{e}");
    assert!(e["message"].as_str().unwrap_or("").contains(&import), "{e}");

    // Deleted: the stats no longer count it, at once.
    assert_eq!(delete_import(&api, &t, &import).await, StatusCode::NO_CONTENT);
    let s = api.stats(&t.token, &t.site_id, "timeframe=7d").await;
    assert_eq!((s["summary"]["pageviews"].as_i64(), s["summary"]["visitors"].as_i64()), (Some(0), Some(0)), "{s}");
    assert_eq!(s["top_pages"], json!([]));
    let (_, list) = api.get(&format!("/api/sites/{}/imports", t.site_id), Some(&t.token)).await;
    assert_eq!(list, json!([]));
    assert_eq!(delete_import(&api, &t, &import).await, StatusCode::NOT_FOUND);
    // The same days import again once the first is gone.
    let (status, again) = upload(&api, &t.token, &t.site_id, plausible_export(d1, d2)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    let again = again["id"].as_str().expect("id").to_string();
    assert_eq!(settled(&api, &t.token, &t.site_id, &again).await["state"], "done");
    assert_eq!(api.stats(&t.token, &t.site_id, "timeframe=7d").await["summary"]["pageviews"].as_i64(), Some(36));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_fails_naming_file_and_line_and_applies_nothing() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let today = Utc::now().date_naive();
    let d = today - Days::days(1);
    let name = format!("imported_pages_{}_{}.csv", d.format("%Y%m%d"), d.format("%Y%m%d"));
    let good_visitors = (
        format!("imported_visitors_{}_{}.csv", d.format("%Y%m%d"), d.format("%Y%m%d")),
        format!("date,visitors,pageviews,bounces,visits,visit_duration\n{},3,3,0,3,0\n", ymd(d)),
    );
    let bad_pages =
        (name.clone(), format!("date,hostname,page,visits,visitors,pageviews\n{0},a,/,1,1,1\n{0},a,/b,1,1,lots\n", ymd(d)));
    let (status, created) = upload(&api, &t.token, &t.site_id, zip_of(&[good_visitors, bad_pages])).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let import = created["id"].as_str().expect("id").to_string();
    let row = settled(&api, &t.token, &t.site_id, &import).await;
    assert_eq!(row["state"], "failed");
    assert_eq!(
        row["error"].as_str(),
        Some(format!("{name} line 3: column \"pageviews\": not a whole number from 0 to 10^12: \"lots\"").as_str())
    );
    let s = api.stats(&t.token, &t.site_id, "timeframe=7d").await;
    assert_eq!(s["summary"]["pageviews"].as_i64(), Some(0), "nothing of a failed import counts: {s}");

    // Not a zip at all.
    let (status, created) = upload(&api, &t.token, &t.site_id, b"date,visitors\n".to_vec()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let row = settled(&api, &t.token, &t.site_id, created["id"].as_str().expect("id")).await;
    assert!(row["error"].as_str().unwrap_or("").starts_with("not a zip archive"), "{row}");

    // Past the upload limit: refused before it is read — the answer comes with no byte of the
    // body sent. (Sending the 32 MiB anyway races the refusal: the api closes the connection
    // on what it has not read, and the client may see a broken pipe instead of the answer.)
    let (status, e) = declared_upload(&api, &t.token, &t.site_id, shared::imports::MAX_UPLOAD_BYTES + 1).await;
    assert_eq!((status, e["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")), "{e}");
    assert!(e["message"].as_str().unwrap_or("").contains("32 MiB"), "{e}");

    // Someone else's site: not found; a Stats API key: read only.
    let stranger = api.tenant("stranger.example", "UTC").await;
    let (status, _) = upload(&api, &stranger.token, &t.site_id, plausible_export(d, d)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, k) = api.post("/api/keys", Some(&t.token), &json!({"name": "k", "sites": "*"})).await;
    let (status, e) = upload(&api, k["key"].as_str().expect("key"), &t.site_id, plausible_export(d, d)).await;
    assert_eq!((status, e["error"].as_str()), (StatusCode::FORBIDDEN, Some("read_only")));
}

/// What an export carries of a stats response: the figures a Plausible export has columns for.
fn exported_figures(s: &Value) -> Value {
    let keep = |v: &Value, fields: &[&str]| -> Value {
        Value::Array(
            v.as_array()
                .map(|l| l.iter().map(|r| fields.iter().map(|f| (f.to_string(), r[*f].clone())).collect()).collect())
                .unwrap_or_default(),
        )
    };
    let sum = &s["summary"];
    json!({
        "summary": [sum["pageviews"], sum["visitors"], sum["sessions"], sum["bounce_rate"], sum["avg_scroll_depth"], sum["avg_time_seconds"]],
        "series": keep(&s["series"], &["start", "pageviews", "visitors", "sessions"]),
        "top_pages": keep(&s["top_pages"], &["path", "pageviews"]),
        "top_referrers": keep(&s["top_referrers"], &["source", "visits"]),
        "top_campaigns": keep(&s["top_campaigns"], &["name", "visits"]),
        "top_mediums": keep(&s["top_mediums"], &["name", "visits"]),
        "top_countries": keep(&s["top_countries"], &["country", "visits"]),
        "top_devices": keep(&s["top_devices"], &["name", "visits"]),
        "top_browsers": keep(&s["top_browsers"], &["name", "visits"]),
        "top_os": keep(&s["top_os"], &["name", "visits"]),
        "top_events": keep(&s["top_events"], &["name", "count"]),
        "top_entry_pages": keep(&s["top_entry_pages"], &["path", "visits", "bounce_rate"]),
        "top_exit_pages": keep(&s["top_exit_pages"], &["path", "exits"]),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_imported_into_another_site_gives_it_the_same_stats() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let a = api.tenant("example.com", "UTC").await;
    let today = Utc::now().date_naive();
    // Site A: imported history, and live traffic of today through ingest.
    let (status, created) =
        upload(&api, &a.token, &a.site_id, plausible_export(today - Days::days(3), today - Days::days(2))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    settled(&api, &a.token, &a.site_id, created["id"].as_str().expect("id")).await;
    send_live_traffic(&api, &a).await;
    let query = "timeframe=7d";
    let a_stats = api.stats_when(&a.token, &a.site_id, query, |s| s["summary"]["pageviews"].as_i64() == Some(36 + 5)).await;

    let res = api
        .http
        .get(format!("{}/api/sites/{}/export.zip", api.api, a.site_id))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let zip = res.bytes().await.expect("body").to_vec();
    let names: Vec<String> = {
        let archive = zip::ZipArchive::new(Cursor::new(zip.clone())).expect("a zip");
        archive.file_names().map(|n| n.expect("name").to_string()).collect()
    };
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("imported_") && n.ends_with(".csv")), "{names:?}");

    let b = api.tenant("example.org", "UTC").await;
    let (status, created) = upload(&api, &b.token, &b.site_id, zip).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    let row = settled(&api, &b.token, &b.site_id, created["id"].as_str().expect("id")).await;
    assert_eq!(row["state"], "done", "{row}");
    let b_stats = api.stats(&b.token, &b.site_id, query).await;
    assert_eq!(exported_figures(&b_stats), exported_figures(&a_stats));
    assert_eq!(b_stats["summary"]["pageviews"].as_i64(), Some(41));
}

/// Two sessions of today: one from a newsletter campaign that reads two pages, scrolls and
/// signs up; one direct that bounces.
async fn send_live_traffic(api: &Api, t: &Tenant) {
    let (p1, p2, p3) = (id("page"), id("page"), id("page"));
    let home = "https://example.com/";
    let spring = "https://example.com/?utm_source=newsletter&utm_medium=email&utm_campaign=autumn";
    let s1 = id("session");
    send(
        api,
        &batch(&t.key, &s1, vec![pageview(&p1, spring, "", true), scroll(&p1, spring, 50, 0), time(&p1, spring, 12.0)]),
        &chrome(1),
    )
    .await;
    send(
        api,
        &batch(
            &t.key,
            &s1,
            vec![
                pageview(&p2, "https://example.com/pricing", "", false),
                custom(&p2, "https://example.com/pricing", "Signup", json!({})),
            ],
        ),
        &chrome(1),
    )
    .await;
    send(api, &batch(&t.key, &id("session"), vec![pageview(&p3, home, "", true)]), &chrome(2)).await;
    let s4 = id("session");
    let p4 = id("page");
    send(
        api,
        &batch(&t.key, &s4, vec![pageview(&p4, home, "https://news.ycombinator.com/item", true), time(&p4, home, 30.0)]),
        &chrome(3),
    )
    .await;
    let p5 = id("page");
    send(api, &batch(&t.key, &s4, vec![pageview(&p5, "https://example.com/docs", "", false)]), &chrome(3)).await;
}
