//! Failures of the moving parts: the aggregator killed mid-stream, NATS stopped, graceful
//! shutdown.

use std::time::{Duration, Instant};

use cp_tests::{
    batch::{batch as make_batch, click, id, pageview},
    client::Api,
    stack::{Backlog, Proc, Stack},
    wait,
};
use futures::StreamExt;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregator_killed_mid_stream_counts_every_accepted_event_exactly_once() {
    // Small chunks, so the kill lands between the writes of a flush more often than not.
    let mut stack = Stack::start_with(&[("CP_FLUSH_MAX_BATCHES", "10"), ("CP_FLUSH_INTERVAL_MS", "5")]).await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;

    let send = |n: usize| {
        let api = api.clone();
        let key = t.key.clone();
        async move {
            futures::stream::iter(0..n)
                .map(|_| {
                    let api = api.clone();
                    let key = key.clone();
                    async move {
                        let page = id("page");
                        let b = make_batch(
                            &key,
                            &id("session"),
                            vec![
                                pageview(&page, "https://example.com/", "", true),
                                click(&page, "https://example.com/", "button#buy", "Buy"),
                            ],
                        );
                        api.post_batch(&b).await.0
                    }
                })
                .buffer_unordered(8)
                .filter(|s| futures::future::ready(*s == StatusCode::ACCEPTED))
                .count()
                .await
        }
    };

    let first = send(150).await;
    // Kill while the aggregator is still working through the backlog.
    stack.kill(Proc::Aggregator);
    let second = send(150).await;
    stack.start_proc(Proc::Aggregator);
    stack.wait_ready(Proc::Aggregator).await;
    let third = send(100).await;
    let accepted = (first + second + third) as i64;
    assert_eq!(accepted, 400, "every batch was accepted");

    let s = api.stats_when(&t.token, &t.site_id, "", |s| s["summary"]["pageviews"].as_i64() >= Some(accepted)).await;
    assert_eq!(s["summary"]["pageviews"], accepted, "pageviews counted once each: {}", s["summary"]);
    assert_eq!(s["summary"]["clicks"], accepted, "clicks counted once each: {}", s["summary"]);
    assert_eq!(s["summary"]["sessions"], accepted);
    assert_eq!(s["top_clicks"][0]["clicks"], accepted);

    // Nothing is left in flight that could still change the numbers.
    stack.wait_drained().await;
    let again = api.stats(&t.token, &t.site_id, "").await;
    assert_eq!(again["summary"], s["summary"], "numbers are stable after the drain");
}

/// `Stack::wait_drained`, which other tests trust to mean "nothing accepted can still change
/// the numbers", holds while the aggregator is down and returns only once every accepted batch
/// shows in the stats: they are read once, right after it, without waiting for them. One batch
/// per flush, so the restarted aggregator takes a few seconds over the backlog: longer than
/// its lag gauge (0 at start, sampled every 2 s) would hold a wait on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_drained_only_once_every_accepted_batch_is_counted() {
    let mut stack = Stack::start_with(&[("CP_FLUSH_MAX_BATCHES", "1")]).await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    stack.terminate(Proc::Aggregator);

    const BATCHES: usize = 300;
    for _ in 0..BATCHES {
        let page = id("page");
        let b = make_batch(&t.key, &id("session"), vec![pageview(&page, "https://example.com/", "", true)]);
        assert_eq!(api.post_batch(&b).await.0, StatusCode::ACCEPTED);
    }
    // One at a time, so each batch is a stream message of its own, as ingest counts them.
    let published = stack.metrics(Proc::Ingest).await;
    assert!(
        published.lines().any(|l| l == format!("convertpulse_ingest_publish_group_batches_count {BATCHES}")),
        "{BATCHES} messages published: {published}"
    );
    let backlog = stack.backlog().await.expect("the stream and consumer answer");
    assert_eq!(backlog, Backlog { stored: BATCHES as u64, undelivered: BATCHES as u64, unacked: 0 }, "nobody consumes");
    assert!(!backlog.is_empty());
    assert_eq!(api.stats(&t.token, &t.site_id, "").await["summary"]["pageviews"], 0, "nothing counted yet");

    stack.start_proc(Proc::Aggregator);
    stack.wait_drained().await;
    let s = api.stats(&t.token, &t.site_id, "").await;
    assert_eq!(
        (s["summary"]["pageviews"].as_i64(), s["summary"]["sessions"].as_i64()),
        (Some(BATCHES as i64), Some(BATCHES as i64)),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_means_503_within_two_seconds_and_ingest_recovers_by_itself() {
    let mut stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let first = make_batch(&t.key, "session_nats", vec![pageview(&id("page"), "https://example.com/", "", true)]);
    assert_eq!(api.post_batch(&first).await.0, StatusCode::ACCEPTED);

    stack.kill(Proc::Nats);
    // The tracker keeps a refused batch and retries it with the same batch_id.
    let kept = make_batch(&t.key, "session_nats", vec![pageview(&id("page"), "https://example.com/", "", false)]);
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body, headers) =
            api.post_batch_raw(serde_json::to_vec(&kept).expect("json"), "application/json", None).await;
        let took = started.elapsed();
        assert_eq!((status, body["error"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")), "{body}");
        assert!(took < Duration::from_secs(2), "answered in {took:?}");
        assert!(headers.get("retry-after").is_some(), "Retry-After present");
    }
    let (status, ready) = Api::json(api.http.get(format!("{}/readyz", api.ingest)).send().await.expect("readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.to_string().contains("nats"), "readyz names nats: {ready}");

    stack.start_proc(Proc::Nats);
    let api2 = api.clone();
    let kept2 = kept.clone();
    wait::until("ingest to accept again after NATS returned", Duration::from_secs(30), || {
        let (api, kept) = (api2.clone(), kept2.clone());
        async move { (api.post_batch(&kept).await.0 == StatusCode::ACCEPTED).then_some(()) }
    })
    .await;
    // The kept batch counts once, however many of its attempts reached the stream.
    let s = api.stats_when(&t.token, &t.site_id, "", |s| s["summary"]["pageviews"].as_i64() >= Some(2)).await;
    assert_eq!(s["summary"]["pageviews"], 2, "{}", s["summary"]);
    assert_eq!(s["summary"]["sessions"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_down_loses_nothing_and_the_aggregator_catches_up() {
    let mut stack = Stack::start().await;
    assert!(!stack.external_mongo(), "this test stops the MongoDB-wire server it started; run it without MONGODB_URI");
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let send = |n: usize| {
        let (api, key) = (api.clone(), t.key.clone());
        async move {
            let mut accepted = 0;
            for _ in 0..n {
                let page = id("page");
                let b = make_batch(&key, &id("session"), vec![pageview(&page, "https://example.com/", "", true)]);
                if api.post_batch(&b).await.0 == StatusCode::ACCEPTED {
                    accepted += 1;
                }
            }
            accepted
        }
    };
    assert_eq!(send(1).await, 1);
    api.stats_when(&t.token, &t.site_id, "", |s| s["summary"]["pageviews"] == 1).await;

    stack.kill(Proc::Mongo);
    assert_eq!(send(20).await, 20, "ingest does not need MongoDB");
    // The aggregator is failing its flushes now; give it at least one failed attempt.
    wait::until("a failed flush", Duration::from_secs(15), || {
        let url = stack.metrics_url(Proc::Aggregator);
        let http = api.http.clone();
        async move {
            let text = http.get(&url).send().await.ok()?.text().await.ok()?;
            text.lines()
                .any(|l| l.starts_with("convertpulse_aggregator_mongo_write_errors_total ") && !l.ends_with(" 0"))
                .then_some(())
        }
    })
    .await;
    stack.start_proc(Proc::Mongo);

    let s = api.stats_when(&t.token, &t.site_id, "", |s| s["summary"]["pageviews"].as_i64() >= Some(21)).await;
    stack.wait_drained().await;
    let again = api.stats(&t.token, &t.site_id, "").await;
    assert_eq!(again["summary"]["pageviews"], 21, "every accepted batch counted once: {}", s["summary"]);
    assert_eq!(again["summary"]["sessions"], 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_stop_within_ten_seconds_on_sigterm() {
    let mut stack = Stack::start().await;
    for p in [Proc::Aggregator, Proc::Ingest, Proc::Api] {
        let took = stack.terminate(p);
        assert!(took < Duration::from_secs(10), "{p:?} took {took:?} to stop");
    }
}
