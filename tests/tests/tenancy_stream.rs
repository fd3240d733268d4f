//! Many sites, one event stream: a site that holds its whole share of the stream (its
//! `CP_STREAM_MAX_MSGS_PER_SITE` messages not yet taken by the aggregator) gets 429 for its own
//! batches only; every other site is still accepted; once the aggregator runs, the flooding
//! site is accepted again and every batch that got a 202 is counted once. The stream as a whole
//! being full stays a 503 for everyone. And an existing stream gets the share at ingest's start
//! without losing a stored batch.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use async_nats::jetstream::{self, stream};
use cp_tests::{
    batch::{batch as make_batch, id, pageview, time},
    client::Api,
    stack::{Proc, Stack, free_port},
    wait,
};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use shared::{
    bus::{self, StreamLimits},
    names,
    site_share::{self, Outcome},
};

/// The share per site the stacks below run with.
const CAP: usize = 20;

/// One batch of one pageview (a new session) for `key`.
fn one_pageview(key: &str) -> Value {
    let page = id("page");
    make_batch(key, &id("session"), vec![pageview(&page, "https://example.com/", "", true)])
}

/// Posts `batch`; returns the status, the body and the `Retry-After` header.
async fn post(api: &Api, batch: &Value) -> (StatusCode, Value, Option<String>) {
    let (status, body, headers) =
        api.post_batch_raw(serde_json::to_vec(batch).expect("json"), "application/json", None).await;
    let retry_after = headers.get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    (status, body, retry_after)
}

/// The value of an unlabelled counter in a Prometheus text page.
fn counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_over_its_stream_share_gets_429_while_other_sites_are_accepted_and_nothing_is_lost() {
    // Arrange: two sites, and no aggregator, so every accepted batch stays in the stream.
    let cap = CAP.to_string();
    let mut stack = Stack::start_with(&[("CP_STREAM_MAX_MSGS_PER_SITE", cap.as_str())]).await;
    let api = Api::new(&stack);
    let a = api.tenant("example.com", "UTC").await;
    let b = api.tenant("example.com", "UTC").await;
    stack.kill(Proc::Aggregator);

    // Act 1: site A, one batch at a time (one stream message each), until the stream refuses it.
    for n in 0..CAP {
        let (status, body, _) = post(&api, &one_pageview(&a.key)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "site A's batch {n} is within its share: {body}");
    }
    let refused_batch = one_pageview(&a.key);
    let (status, body, retry_after) = post(&api, &refused_batch).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "site A past its share: {body}");
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(retry_after.as_deref(), Some("2"));

    // Act 2: site A floods (its batches go out grouped) while site B sends; B stays under its own
    // share and is accepted every time, A is refused every time.
    let flood = futures::stream::iter(0..64)
        .map(|_| {
            let (api, key) = (api.clone(), a.key.clone());
            async move { post(&api, &one_pageview(&key)).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>();
    let steady = async {
        let mut answers = Vec::new();
        for _ in 0..CAP / 2 {
            answers.push(post(&api, &one_pageview(&b.key)).await);
        }
        answers
    };
    let (flooded, steady) = tokio::join!(flood, steady);
    for (status, body, retry_after) in &flooded {
        assert_eq!(
            (*status, body["error"].as_str(), retry_after.as_deref()),
            (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"), Some("2")),
            "site A's flood: {body}"
        );
    }
    for (status, body, _) in &steady {
        assert_eq!(*status, StatusCode::ACCEPTED, "site B is accepted while A floods: {body}");
    }
    let metrics = stack.metrics(Proc::Ingest).await;
    assert_eq!(
        counter(&metrics, "convertpulse_ingest_site_share_full_total"),
        (1 + flooded.len()) as f64,
        "every refusal is counted as such"
    );
    assert_eq!(
        counter(&metrics, "convertpulse_ingest_publish_failures_total"),
        0.0,
        "a site over its share is no publish failure"
    );

    // Act 3: the aggregator runs again and takes A's backlog; A is accepted again, and the
    // batch refused above, sent again as the tracker would, is accepted too.
    stack.start_proc(Proc::Aggregator);
    stack.wait_ready(Proc::Aggregator).await;
    wait::until("site A to be accepted again", Duration::from_secs(20), || {
        let (api, batch) = (api.clone(), refused_batch.clone());
        async move { (post(&api, &batch).await.0 == StatusCode::ACCEPTED).then_some(()) }
    })
    .await;
    let (status, body, _) = post(&api, &one_pageview(&a.key)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "site A within its share again: {body}");

    // Assert: every 202 counted exactly once, for each site.
    let (want_a, want_b) = (CAP as i64 + 2, (CAP / 2) as i64);
    let sa = api.stats_when(&a.token, &a.site_id, "", |s| s["summary"]["pageviews"].as_i64() >= Some(want_a)).await;
    let sb = api.stats_when(&b.token, &b.site_id, "", |s| s["summary"]["pageviews"].as_i64() >= Some(want_b)).await;
    stack.wait_drained().await;
    let sa_after = api.stats(&a.token, &a.site_id, "").await;
    let sb_after = api.stats(&b.token, &b.site_id, "").await;
    assert_eq!(sa_after["summary"], sa["summary"], "site A's numbers are stable after the drain");
    assert_eq!(sb_after["summary"], sb["summary"], "site B's numbers are stable after the drain");
    assert_eq!(sa["summary"]["pageviews"], want_a, "site A: every accepted batch once, no refused one: {}", sa["summary"]);
    assert_eq!(sb["summary"]["pageviews"], want_b, "site B: every accepted batch once: {}", sb["summary"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_full_as_a_whole_is_still_503_for_every_site() {
    // A 1 MiB stream (the smallest allowed) and a share larger than it: the stream's size is
    // what refuses, and that is no one site's fault.
    let mut stack = Stack::start_with(&[
        ("CP_STREAM_MAX_BYTES", "1048576"),
        ("CP_STREAM_MAX_MSGS_PER_SITE", "100000"),
        ("CP_PUBLISH_TIMEOUT_MS", "300"),
    ])
    .await;
    let api = Api::new(&stack);
    let a = api.tenant("example.com", "UTC").await;
    let b = api.tenant("example.com", "UTC").await;
    stack.kill(Proc::Aggregator);

    // About 30 KB a batch: the stream is full after a few dozen.
    let long_url = format!("https://example.com/{}", "p".repeat(1400));
    let big = |key: &str| {
        let page = id("page");
        make_batch(key, &id("session"), (0..20).map(|_| time(&page, &long_url, 1.0)).collect())
    };
    let mut accepted = 0;
    let (status, body, retry_after) = loop {
        let answer = post(&api, &big(&a.key)).await;
        if answer.0 != StatusCode::ACCEPTED {
            break answer;
        }
        accepted += 1;
        assert!(accepted < 100, "a 1 MiB stream took {accepted} batches of 30 KB");
    };
    assert!(accepted > 0, "the stream took nothing");
    assert_eq!(
        (status, body["error"].as_str(), retry_after.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"), Some("2")),
        "site A, stream full: {body}"
    );
    let (status, body, _) = post(&api, &big(&b.key)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")),
        "site B, stream full: {body}"
    );
    let metrics = stack.metrics(Proc::Ingest).await;
    assert_eq!(
        counter(&metrics, "convertpulse_ingest_site_share_full_total"),
        0.0,
        "a full stream is not a site over its share"
    );
}

/// A nats-server with JetStream alone, on a free port; killed when dropped.
struct Nats {
    child: Child,
    dir: std::path::PathBuf,
    url: String,
}

impl Nats {
    fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("cp-share-{}-{port}", std::process::id()));
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server");
        Self { child, dir, url: format!("nats://127.0.0.1:{port}") }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_stream_gets_the_share_without_losing_a_stored_batch() {
    let nats = Nats::start();
    let client =
        bus::connect(&bus::NatsSettings::plain(&nats.url), "test-share", Duration::from_secs(10)).await.expect("nats");
    let js = jetstream::new(client);
    let limits = |cap: i64| StreamLimits { max_msgs_per_site: cap, ..StreamLimits::from_env().expect("limits") };

    // A stream as ingest created it before there was a share: no per-subject limit.
    let created = bus::ensure_stream(&js, &limits(1), 1).await.expect("stream").cached_info().config.clone();
    js.delete_stream(names::STREAM).await.expect("delete");
    let old = stream::Config { max_messages_per_subject: 0, discard_new_per_subject: false, ..created };
    js.create_stream(old.clone()).await.expect("an old stream");
    for n in 0..10 {
        js.publish(names::event_subject("busy"), format!("{n}").into()).await.expect("publish").await.expect("stored");
    }
    js.publish(names::event_subject("quiet"), "q".into()).await.expect("publish").await.expect("stored");
    let stored = |js: jetstream::Context| async move {
        let mut s = js.get_stream(names::STREAM).await.expect("stream");
        let info = s.info().await.expect("info").clone();
        (info.state.messages, info.config)
    };

    // A cap the busy site's backlog is near (10 > 8 / 2) would have the server delete its oldest
    // batches: it waits.
    assert_eq!(site_share::ensure(&js, &limits(8)).await.expect("ensure"), Outcome::Deferred { held: 10 });
    let (messages, config) = stored(js.clone()).await;
    assert_eq!((messages, config.max_messages_per_subject), (11, -1), "nothing changed, nothing lost");

    // With room to spare it is applied, and only the share changes.
    assert_eq!(site_share::ensure(&js, &limits(40)).await.expect("ensure"), Outcome::Applied { from: -1 });
    let (messages, config) = stored(js.clone()).await;
    assert_eq!(messages, 11, "nothing lost");
    assert_eq!(
        (
            config.max_messages_per_subject,
            config.discard_new_per_subject,
            config.max_bytes,
            config.max_age,
            config.retention,
            config.subjects.clone()
        ),
        (40, true, old.max_bytes, old.max_age, old.retention, old.subjects.clone()),
        "the share and nothing else"
    );
    assert_eq!(
        site_share::ensure(&js, &limits(40)).await.expect("ensure"),
        Outcome::Unchanged,
        "the second time, nothing to do"
    );

    // Lowering waits the same way; raising is safe at any time.
    assert_eq!(site_share::ensure(&js, &limits(12)).await.expect("ensure"), Outcome::Deferred { held: 10 });
    assert_eq!(site_share::ensure(&js, &limits(100)).await.expect("ensure"), Outcome::Applied { from: 40 });
    assert_eq!(
        site_share::ensure(&js, &limits(20)).await.expect("ensure"),
        Outcome::Applied { from: 100 },
        "10 is at most half of 20"
    );
    let (messages, config) = stored(js.clone()).await;
    assert_eq!((messages, config.max_messages_per_subject), (11, 20), "nothing lost");

    // And the stream now refuses the busy site past its share, and only it.
    for n in 10..20 {
        js.publish(names::event_subject("busy"), format!("{n}").into())
            .await
            .expect("publish")
            .await
            .expect("within the share");
    }
    let refused =
        js.publish(names::event_subject("busy"), "over".into()).await.expect("publish").await.expect_err("over the share");
    let server =
        std::error::Error::source(&refused).and_then(|e| e.downcast_ref::<jetstream::Error>()).expect("a server error");
    assert!(site_share::is_refusal(server), "{refused}");
    js.publish(names::event_subject("quiet"), "q".into()).await.expect("publish").await.expect("another site is stored");
}
