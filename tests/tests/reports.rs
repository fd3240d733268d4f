//! The weekly report (contract "Teams, reports, alerts"): `report/send` mails the caller the
//! figures of the 7 days up to now against the 7 days before, from history written through the
//! aggregator's flush into the stack's database, to a real SMTP server; exact contents. The
//! scheduled report, run by two api replicas in the test's process (`cp_tests::replica`) at
//! Monday 08:05 by their clock, is mailed once.

use std::time::Duration;

use api::{lease::Run, mail::sender, reports};
use chrono::Utc;
use cp_tests::{
    batch::{id, pageview},
    client::Api,
    replica,
    smtp::SmtpSink,
    stack::Stack,
    v2::{PastSite, PastWriter, day_of, local_noon_days_ago, noon_zone},
};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_sent_now_has_the_exact_figures_against_the_week_before() {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let stack =
        Stack::start_with(&[("CP_SMTP_URL", url.as_str()), ("CP_MAIL_FROM", "ConvertPulse <reports@convertpulse.test>")])
            .await;
    let api = Api::new(&stack);
    let tz = noon_zone();
    let email = format!("{}@example.org", id("owner"));
    let owner = api.register(&email).await;
    let (site, _) = api.create_site(&owner, "report.example", &tz).await;
    let writer = PastWriter::new(&stack).await;
    let past = PastSite { site_id: site.clone(), timezone: tz.clone(), domain: "report.example".into() };
    let now = Utc::now().timestamp_millis();
    // This week: 3 visitors from google.com on /, one of them also on /pricing; the week
    // before: 2 visitors on / with no referrer.
    let this_week = local_noon_days_ago(now, &tz, 2);
    let week_before = local_noon_days_ago(now, &tz, 9);
    let mut msgs = Vec::new();
    for v in 0..3 {
        let mut events = vec![pageview(&id("p"), "https://report.example/", "https://www.google.com/", true)];
        if v == 0 {
            events.push(pageview(&id("p"), "https://report.example/pricing", "", false));
        }
        msgs.push(past.msg(&id("s"), &format!("a{v}"), this_week, events));
    }
    for v in 0..2 {
        msgs.push(past.msg(
            &id("s"),
            &format!("b{v}"),
            week_before,
            vec![pageview(&id("p"), "https://report.example/", "", true)],
        ));
    }
    writer.write(&msgs).await;

    let (status, body) = api.send(Method::POST, &format!("/api/sites/{site}/report/send"), Some(&owner), None).await;
    let from = day_of(now - 6 * 86_400_000, &tz);
    let until = day_of(now, &tz);
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({"to": email, "from": from, "until": until})));
    let mails = sink.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(
        (m.to.as_str(), m.subject.as_str()),
        (email.as_str(), format!("Landing: 3 visitors, 0 conversions ({from} to {until})").as_str())
    );
    let text = format!(
        "Landing (report.example), {from} to {until}, against the 7 days before\n\n\
         Visitors: 3 (was 2, +50%)\n\
         Pageviews: 4 (was 2, +100%)\n\
         Conversions: 0 (was 0, =)\n\
         Conversion rate: 0.00% (was 0.00%, =)\n\
         Revenue: 0.00 USD (was 0.00 USD, =)\n\
         \nTop sources\n  google.com: 3 (was 0, new)\n\
         \nTop pages\n  /: 3 (was 2, +50%)\n  /pricing: 1 (was 0, new)\n"
    );
    assert_eq!(m.text.as_deref(), Some(text.as_str()));
    let html = format!(
        "<h1>Landing (report.example)</h1>\n<p>{from} to {until}, against the 7 days before</p>\n<table>\n\
         <tr><th>Visitors</th><td>3 (was 2, +50%)</td></tr>\n\
         <tr><th>Pageviews</th><td>4 (was 2, +100%)</td></tr>\n\
         <tr><th>Conversions</th><td>0 (was 0, =)</td></tr>\n\
         <tr><th>Conversion rate</th><td>0.00% (was 0.00%, =)</td></tr>\n\
         <tr><th>Revenue</th><td>0.00 USD (was 0.00 USD, =)</td></tr>\n</table>\n\
         <h2>Top sources</h2>\n<ul>\n<li>google.com: 3 (was 0, new)</li>\n</ul>\n\
         <h2>Top pages</h2>\n<ul>\n<li>/: 3 (was 2, +50%)</li>\n<li>/pricing: 1 (was 0, new)</li>\n</ul>\n"
    );
    assert_eq!(m.html.as_deref(), Some(html.as_str()));

    // Opting in, as any member may; a body that is not a flag names the field.
    let (status, body) =
        api.send(Method::PUT, &format!("/api/sites/{site}/report"), Some(&owner), Some(&json!({"weekly": true}))).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"weekly": true})));
    let (_, body) = api.get(&format!("/api/sites/{site}/report"), Some(&owner)).await;
    assert_eq!(body, json!({"weekly": true}));
    let (status, body) =
        api.send(Method::PUT, &format!("/api/sites/{site}/report"), Some(&owner), Some(&json!({"weekly": "yes"}))).await;
    assert_eq!((status, body["message"].as_str()), (StatusCode::BAD_REQUEST, Some("weekly: must be true or false")));
}

/// The Monday 08:05 (local, in `tz`) most recently passed, in epoch ms.
fn last_monday_morning(now_ms: i64, tz: &str) -> i64 {
    use chrono::{Datelike, TimeZone};
    let zone: chrono_tz::Tz = tz.parse().expect("a zone");
    let today = zone.timestamp_millis_opt(now_ms).single().expect("a time").date_naive();
    let mut monday = today - chrono::Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let at = |day: chrono::NaiveDate| {
        zone.from_local_datetime(&day.and_hms_opt(8, 5, 0).expect("08:05")).single().expect("exists").timestamp_millis()
    };
    if at(monday) > now_ms {
        monday -= chrono::Duration::days(7);
    }
    at(monday)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_report_run_by_two_replicas_on_monday_morning_is_mailed_once() {
    let stack = Stack::start().await;
    let sink = SmtpSink::start().await;
    let api = Api::new(&stack);
    let tz = "Etc/GMT-2";
    let email = format!("{}@example.org", id("owner"));
    let owner = api.register(&email).await;
    let (site, _) = api.create_site(&owner, "weekly.example", tz).await;
    let (status, _) =
        api.send(Method::PUT, &format!("/api/sites/{site}/report"), Some(&owner), Some(&json!({"weekly": true}))).await;
    assert_eq!(status, StatusCode::OK);
    let writer = PastWriter::new(&stack).await;
    let monday = last_monday_morning(Utc::now().timestamp_millis(), tz);
    let clock = std::sync::Arc::new(shared::clock::ManualClock::at(monday));
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(replica::state(writer.db.clone(), clock.clone(), Some(replica::mail_to(&sink.url()))).await);
    }
    let leases = [reports::lease(&replicas[0], "replica-a".into()), reports::lease(&replicas[1], "replica-b".into())];

    // Both replicas' ticks at once: one holds the lease and queues the report.
    let (a, b) = tokio::join!(reports::run_leased(&replicas[0], &leases[0]), reports::run_leased(&replicas[1], &leases[1]));
    let mut runs = [format!("{a:?}"), format!("{b:?}")];
    runs.sort();
    assert_eq!(runs, ["Busy".to_string(), "Done(Ok(1))".to_string()]);
    // Later ticks that day, by either, with the lease and without: nothing more.
    clock.advance(5 * 60_000);
    assert!(matches!(reports::run_leased(&replicas[1], &leases[1]).await, Run::Done(Ok(0))));
    let (a, b) = tokio::join!(reports::run_due(&replicas[0]), reports::run_due(&replicas[1]));
    assert_eq!((a.expect("run"), b.expect("run")), (0, 0));

    let transport = replica::mail_to(&sink.url()).smtp.transport().expect("transport");
    assert_eq!(sender::pass(&replicas[0].mailer, &transport).await.expect("pass").sent, 1);
    let mails = sink.wait_for(1, Duration::from_secs(15)).await;
    let (from, until) = (day_of(monday - 7 * 86_400_000, tz), day_of(monday - 86_400_000, tz));
    let got: Vec<(&str, &str)> = mails.iter().map(|m| (m.to.as_str(), m.subject.as_str())).collect();
    assert_eq!(got, [(email.as_str(), format!("Landing: 0 visitors, 0 conversions ({from} to {until})").as_str())]);
    assert_eq!(sender::pass(&replicas[1].mailer, &transport).await.expect("pass"), sender::Pass::default());
    assert_eq!(sink.received().len(), 1);
}
