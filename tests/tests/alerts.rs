//! Alerts (contract "Teams, reports, alerts"): managed by the owner and admins over HTTP, at
//! most 10 a site, each refusal naming its field; evaluated by the api's alert job from the
//! hours' counters of a window and of the same hours a week before, written through the
//! aggregator's flush into the stack's database. The job runs in two api replicas in the
//! test's process (`cp_tests::replica`) with a clock the test sets, against a real SMTP
//! server; the exact mails are checked.

use std::{sync::Arc, time::Duration};

use api::{alerts, lease::Run, mail::sender};
use chrono::Utc;
use cp_tests::{
    batch::{id, pageview},
    client::Api,
    replica,
    smtp::{Received, SmtpSink},
    stack::Stack,
    v2::{DAY_MS, HOUR_MS, PastSite, PastWriter, custom, hour_of},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::{clock::ManualClock, message::BatchMessage};

const TZ: &str = "Etc/GMT-2";

/// An account that accepted an invitation to `site` as `role`: its token.
async fn member(api: &Api, owner: &str, site: &str, role: &str) -> String {
    let email = format!("{}@example.org", id(role));
    let token = api.register(&email).await;
    let (status, m) =
        api.post(&format!("/api/sites/{site}/members"), Some(owner), &json!({"email": email, "role": role})).await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    let url = m["invite_url"].as_str().expect("invite_url");
    let invite = url.rsplit('/').next().expect("token");
    let (status, v) = api.post(&format!("/invite/{invite}"), Some(&token), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    token
}

async fn create(api: &Api, token: &str, site: &str, body: Value) -> (StatusCode, Value) {
    api.post(&format!("/api/sites/{site}/alerts"), Some(token), &body).await
}

async fn email_of(api: &Api, token: &str) -> (String, String) {
    let (_, me) = api.get("/api/auth/me", Some(token)).await;
    (me["id"].as_str().expect("id").to_string(), me["email"].as_str().expect("email").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_managed_by_admins_at_most_ten_a_site_each_refusal_naming_its_field() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let owner = api.register(&format!("{}@example.org", id("owner"))).await;
    let (site, _) = api.create_site(&owner, "alerts.example", TZ).await;
    let admin = member(&api, &owner, &site, "admin").await;
    let viewer = member(&api, &owner, &site, "viewer").await;
    let good = json!({"metric": "visitors", "change": "drop", "percent": 50, "window_hours": 24});

    let (status, a) = create(&api, &admin, &site, good.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    let created = a["created_at"].as_str().expect("created_at").to_string();
    let a_id = a["id"].as_str().expect("id").to_string();
    assert_eq!(
        a,
        json!({"id": a_id, "metric": "visitors", "change": "drop", "percent": 50, "window_hours": 24, "created_at": created})
    );
    let (status, list) = api.get(&format!("/api/sites/{site}/alerts"), Some(&owner)).await;
    assert_eq!((status, list), (StatusCode::OK, json!([a])));

    // (case, body, message): 400 invalid_alert naming the field.
    let cases = [
        (
            "metric",
            json!({"metric": "pageviews", "change": "drop", "percent": 50, "window_hours": 24}),
            "metric: must be visitors, conversions or conversion_rate",
        ),
        (
            "change",
            json!({"metric": "visitors", "change": "up", "percent": 50, "window_hours": 24}),
            "change: must be drop or spike",
        ),
        (
            "percent",
            json!({"metric": "visitors", "change": "drop", "percent": 5, "window_hours": 24}),
            "percent: must be a whole number from 10 to 1000",
        ),
        (
            "window",
            json!({"metric": "visitors", "change": "drop", "percent": 50, "window_hours": 169}),
            "window_hours: must be a whole number from 1 to 168",
        ),
    ];
    for (case, body, message) in cases {
        let (status, v) = create(&api, &owner, &site, body).await;
        assert_eq!(
            (status, v),
            (StatusCode::BAD_REQUEST, json!({"error": "invalid_alert", "message": message})),
            "case {case}"
        );
    }
    let (status, v) = create(&api, &viewer, &site, good.clone()).await;
    assert_eq!((status, v["error"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "a viewer manages none");
    let (status, _) = api.get(&format!("/api/sites/{site}/alerts"), Some(&viewer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "nor sees them");

    for _ in 1..10 {
        let (status, v) = create(&api, &owner, &site, good.clone()).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
    }
    let (status, v) = create(&api, &owner, &site, good.clone()).await;
    assert_eq!(
        (status, v),
        (
            StatusCode::CONFLICT,
            json!({"error": "invalid_alert", "message": "alerts: a site has at most 10 alerts; delete one first"})
        )
    );
    let path = format!("/api/sites/{site}/alerts/{a_id}");
    let (status, _) = api.send(Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.send(Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleted once");
    let (_, list) = api.get(&format!("/api/sites/{site}/alerts"), Some(&owner)).await;
    assert_eq!(list.as_array().map(Vec::len), Some(9));
}

/// A site with history: in the 3 hours before `t0`, 4 visitors (2 in the first hour, 2 in the
/// second, none in the third), 3 of them converting; in the same hours a week before, 10
/// visitors (4, 3, 3), one converting in the third hour.
fn history(past: &PastSite, t0: i64) -> Vec<BatchMessage> {
    let visit = |hour_start: i64, n: usize, converts: bool| {
        let mut events = vec![pageview(&id("p"), "https://alerts.example/", "", true)];
        if converts {
            events.push(custom(&id("p"), "https://alerts.example/", "Signup", Value::Null));
        }
        past.msg(&id("s"), &id("v"), hour_start + 10 * 60_000 + n as i64 * 1000, events)
    };
    let (h1, h2, h3) = (t0 - 3 * HOUR_MS, t0 - 2 * HOUR_MS, t0 - HOUR_MS);
    let week = 7 * DAY_MS;
    let mut msgs = vec![visit(h1, 0, true), visit(h1, 1, false), visit(h2, 0, true), visit(h2, 1, true)];
    msgs.extend((0..4).map(|n| visit(h1 - week, n, false)));
    msgs.extend((0..3).map(|n| visit(h2 - week, n, false)));
    msgs.extend((0..3).map(|n| visit(h3 - week, n, n == 0)));
    msgs
}

fn sorted(mut mails: Vec<Received>) -> Vec<Received> {
    mails.sort_by(|a, b| (&a.to, &a.subject).cmp(&(&b.to, &b.subject)));
    mails
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_and_a_spike_mail_the_owner_and_admins_once_for_their_window_and_one_within_its_threshold_does_not() {
    let stack = Stack::start().await;
    let sink = SmtpSink::start().await;
    let api = Api::new(&stack);
    let owner = api.register(&format!("{}@example.org", id("owner"))).await;
    let (site, _) = api.create_site(&owner, "alerts.example", TZ).await;
    let admin = member(&api, &owner, &site, "admin").await;
    member(&api, &owner, &site, "viewer").await;
    let (status, g) = api
        .post(
            &format!("/api/sites/{site}/goals"),
            Some(&owner),
            &json!({"name": "Signup", "kind": "event", "match": "Signup"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{g}");
    let mut ids = Vec::new();
    for (metric, change, percent) in
        [("visitors", "drop", 50), ("visitors", "drop", 70), ("conversions", "spike", 200), ("conversion_rate", "drop", 10)]
    {
        let body = json!({"metric": metric, "change": change, "percent": percent, "window_hours": 3});
        let (status, a) = create(&api, &admin, &site, body).await;
        assert_eq!(status, StatusCode::CREATED, "{a}");
        ids.push(a["id"].as_str().expect("id").to_string());
    }
    let writer = PastWriter::new(&stack).await;
    writer.backdate_goals(&site, 30 * DAY_MS).await;
    let t0 = Utc::now().timestamp_millis() / HOUR_MS * HOUR_MS;
    let past = PastSite { site_id: site.clone(), timezone: TZ.into(), domain: "alerts.example".into() };
    writer.write(&history(&past, t0)).await;

    // Two replicas at 10 minutes past the hour that ends the window, evaluating at once
    // without their lease: the outbox ids keep it to one mail per alert and recipient.
    let clock = Arc::new(ManualClock::at(t0 + 10 * 60_000));
    let mut replicas = Vec::new();
    for _ in 0..2 {
        replicas.push(replica::state(writer.db.clone(), clock.clone(), Some(replica::mail_to(&sink.url()))).await);
    }
    let (a, b) = tokio::join!(alerts::run_due(&replicas[0]), alerts::run_due(&replicas[1]));
    assert_eq!(a.expect("run") + b.expect("run"), 4, "2 alerts × owner and admin");
    let transport = replica::mail_to(&sink.url()).smtp.transport().expect("transport");
    let pass = sender::pass(&replicas[0].mailer, &transport).await.expect("pass");
    assert_eq!(pass, sender::Pass { sent: 4, failed: 0, retried: 0 });
    let mails = sorted(sink.wait_for(4, Duration::from_secs(15)).await);

    let (owner_id, owner_email) = email_of(&api, &owner).await;
    let (_, admin_email) = email_of(&api, &admin).await;
    let start = (t0 - 3 * HOUR_MS) / 1000;
    let period =
        format!("{} to {} ({TZ})", hour_of(t0 - 3 * HOUR_MS, TZ).replace('T', " "), hour_of(t0, TZ).replace('T', " "));
    let drop_text = format!(
        "Landing (alerts.example): visitors dropped 60% from {period}, against the same hours a week before.\n\n\
         Visitors: 4 (was 10, -60%)\n\nThis alert: a drop of at least 50% in visitors over 3 hours.\n\
         {}/dashboard\n",
        replica::PUBLIC_URL
    );
    let spike_text = format!(
        "Landing (alerts.example): conversions rose 200% from {period}, against the same hours a week before.\n\n\
         Conversions: 3 (was 1, +200%)\n\nThis alert: a spike of at least 200% in conversions over 3 hours.\n\
         {}/dashboard\n",
        replica::PUBLIC_URL
    );
    let drop_subject = "Landing: visitors dropped 60% in the last 3 hours";
    let spike_subject = "Landing: conversions rose 200% in the last 3 hours";
    let mut want = vec![
        (admin_email.clone(), spike_subject, spike_text.clone()),
        (admin_email.clone(), drop_subject, drop_text.clone()),
        (owner_email.clone(), spike_subject, spike_text.clone()),
        (owner_email.clone(), drop_subject, drop_text.clone()),
    ];
    want.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let got: Vec<(String, &str, String)> =
        mails.iter().map(|m| (m.to.clone(), m.subject.as_str(), m.text.clone().unwrap_or_default())).collect();
    assert_eq!(got, want);
    let owner_drop = mails.iter().find(|m| m.to == owner_email && m.subject == drop_subject).expect("the owner's drop");
    assert_eq!(owner_drop.message_id, format!("<alert.{site}.{}.{start}.{owner_id}@convertpulse.test>", ids[0]));
    assert_eq!(
        owner_drop.html.as_deref(),
        Some(
            format!(
                "<p><b>Landing</b> (alerts.example): visitors dropped 60% from {period}, against the same hours a week \
                 before.</p>\n<table>\n<tr><th>Visitors</th><td>4 (was 10, -60%)</td></tr>\n</table>\n\
                 <p>This alert: a drop of at least 50% in visitors over 3 hours.<br><a href=\"{url}/dashboard\">{url}/dashboard</a></p>\n",
                url = replica::PUBLIC_URL
            )
            .as_str()
        )
    );

    // Evaluated again, under the lease by both replicas at once, and later within the hour:
    // nothing more.
    let leases = [alerts::lease(&replicas[0], "replica-a".into()), alerts::lease(&replicas[1], "replica-b".into())];
    let (a, b) = tokio::join!(alerts::run_leased(&replicas[0], &leases[0]), alerts::run_leased(&replicas[1], &leases[1]));
    let mut runs = [format!("{a:?}"), format!("{b:?}")];
    runs.sort();
    assert_eq!(runs, ["Busy".to_string(), "Done(Ok(0))".to_string()], "one replica holds the lease");
    clock.advance(40 * 60_000);
    assert!(matches!(alerts::run_leased(&replicas[1], &leases[1]).await, Run::Done(Ok(0))));
    // An hour on, the window (two hours of this one and an empty one) still shows visitors
    // down 66% (2 against 6), but it overlaps the window that mailed: no second mail for the
    // same drop.
    clock.advance(HOUR_MS - 40 * 60_000);
    assert!(matches!(alerts::run_leased(&replicas[0], &leases[0]).await, Run::Done(Ok(0))));
    assert_eq!(sender::pass(&replicas[1].mailer, &transport).await.expect("pass"), sender::Pass::default());
    assert_eq!(sink.received().len(), 4);
}
