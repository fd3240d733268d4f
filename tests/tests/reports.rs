//! The weekly report (contract "Teams, reports, alerts"): `report/send` mails the caller the
//! figures of the 7 days up to now against the 7 days before, from history written through the
//! aggregator's flush into the stack's database, to a real SMTP server; exact contents.

use std::time::Duration;

use chrono::Utc;
use cp_tests::{
    batch::{id, pageview},
    client::Api,
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
