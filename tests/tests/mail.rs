//! The mail outbox against a real SMTP server (aiosmtpd, `cp_tests::smtp`): one mail per
//! outbox id however many api processes queue it, and a mail queued while the server is down
//! sent once it is back, by another process after a restart. Library-level: the api's own
//! outbox and sender code over a MongoDB of the test's, with a clock the test moves.

use std::{sync::Arc, time::Duration};

use api::mail::{Mail, MailSettings, Mailer, sender};
use cp_tests::{mongo::Mongo, smtp::SmtpSink, stack::free_port};
use shared::clock::ManualClock;

const T0: i64 = 1_795_000_000_000;

fn settings(sink_url: &str) -> MailSettings {
    MailSettings::parse(sink_url, "ConvertPulse <reports@convertpulse.test>", Duration::from_secs(5))
        .expect("valid settings")
        .expect("mail on")
}

fn mail(id: &str) -> Mail {
    Mail {
        id: id.into(),
        to: "ann@example.org".into(),
        subject: "Weekly report: landing.example — 12 visitors".into(),
        text: "Visitors 12 (was 10, +20.0%)\n".into(),
        html: "<p>Visitors <b>12</b> (was 10, +20.0%)</p>\n".into(),
    }
}

#[tokio::test]
async fn a_mail_queued_by_two_processes_is_sent_once_with_its_exact_contents() {
    let mongo = Mongo::start().await;
    let db = mongo.database().await;
    let sink = SmtpSink::start().await;
    let clock = Arc::new(ManualClock::at(T0));
    let replicas: Vec<Mailer> = (0..2).map(|_| Mailer::new(Some(settings(&sink.url())), &db, clock.clone())).collect();
    let transports: Vec<_> = replicas.iter().map(|_| settings(&sink.url()).smtp.transport().expect("transport")).collect();

    let queued = [
        replicas[0].queue(mail("report:s1:2026-11-23:u1")).await.expect("queue"),
        replicas[1].queue(mail("report:s1:2026-11-23:u1")).await.expect("queue"),
    ];
    let (a, b) = tokio::join!(sender::pass(&replicas[0], &transports[0]), sender::pass(&replicas[1], &transports[1]));

    assert_eq!(queued, [true, false], "the second queueing finds the first");
    assert_eq!(a.expect("pass").sent + b.expect("pass").sent, 1);
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert_eq!(
        (m.mail_from.as_str(), m.rcpt_tos.as_slice()),
        ("reports@convertpulse.test", &["ann@example.org".to_string()][..])
    );
    assert_eq!((m.from.as_str(), m.to.as_str()), ("ConvertPulse <reports@convertpulse.test>", "ann@example.org"));
    assert_eq!(m.subject, "Weekly report: landing.example — 12 visitors");
    assert_eq!(m.message_id, "<report.s1.2026-11-23.u1@convertpulse.test>");
    assert_eq!(m.text.as_deref(), Some("Visitors 12 (was 10, +20.0%)\n"));
    assert_eq!(m.html.as_deref(), Some("<p>Visitors <b>12</b> (was 10, +20.0%)</p>\n"));
    // Queued again later (a replica that evaluated the same window late): still one mail.
    assert!(!replicas[0].queue(mail("report:s1:2026-11-23:u1")).await.expect("queue"));
    assert_eq!(sender::pass(&replicas[0], &transports[0]).await.expect("pass"), sender::Pass::default());
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn a_mail_queued_while_the_server_is_down_is_sent_once_after_it_is_back_and_the_api_restarted() {
    let mongo = Mongo::start().await;
    let db = mongo.database().await;
    let mut sink = SmtpSink::stopped(free_port());
    let clock = Arc::new(ManualClock::at(T0));
    let first = Mailer::new(Some(settings(&sink.url())), &db, clock.clone());
    let transport = settings(&sink.url()).smtp.transport().expect("transport");

    // Down: the attempt fails and the mail waits for its backoff.
    first.queue(mail("alert:s1:a1:1795000000:u1")).await.expect("queue");
    let down = sender::pass(&first, &transport).await.expect("pass");
    assert_eq!(down, sender::Pass { sent: 0, failed: 0, retried: 1 });
    clock.advance(4_999);
    assert_eq!(sender::pass(&first, &transport).await.expect("pass"), sender::Pass::default(), "not due before 5 s");
    drop(first);

    // The server is back, and a new api process (same database) takes over.
    sink.resume().await;
    clock.advance(1);
    let restarted = Mailer::new(Some(settings(&sink.url())), &db, clock.clone());
    let back = sender::pass(&restarted, &transport).await.expect("pass");
    clock.advance(3_600_000);
    let later = sender::pass(&restarted, &transport).await.expect("pass");

    assert_eq!((back.sent, later), (1, sender::Pass::default()));
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text.as_deref(), Some("Visitors 12 (was 10, +20.0%)\n"));
}
