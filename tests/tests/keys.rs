//! Key rotation and site deletion reach ingest within 5 s.

use std::time::{Duration, Instant};

use cp_tests::{
    batch::{batch as make_batch, id, pageview},
    client::Api,
    stack::Stack,
    wait,
};
use reqwest::{Method, StatusCode};

async fn status_for(api: &Api, key: &str) -> StatusCode {
    let b = make_batch(key, "session_key", vec![pageview(&id("page"), "https://example.com/", "", false)]);
    api.post_batch(&b).await.0
}

async fn refused_within_five_seconds(api: &Api, key: &str) -> Duration {
    let started = Instant::now();
    let api2 = api.clone();
    wait::until("the old key to be refused", Duration::from_secs(5), || {
        let api = api2.clone();
        let key = key.to_string();
        async move { (status_for(&api, &key).await == StatusCode::UNAUTHORIZED).then_some(()) }
    })
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_key_is_refused_within_five_seconds_and_the_new_one_works() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    assert_eq!(status_for(&api, &t.key).await, StatusCode::ACCEPTED);

    let (status, site) = api.post(&format!("/api/sites/{}/rotate-key", t.site_id), Some(&t.token), &serde_json::json!({})).await;
    assert_eq!(status, StatusCode::OK, "{site}");
    let new_key = site["api_key"].as_str().expect("key").to_string();
    assert_ne!(new_key, t.key);

    let took = refused_within_five_seconds(&api, &t.key).await;
    eprintln!("old key refused after {took:?}");
    api.wait_key_live(&new_key).await;
    assert_eq!(status_for(&api, &new_key).await, StatusCode::ACCEPTED, "the new key works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_sites_key_is_refused_within_five_seconds() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    assert_eq!(status_for(&api, &t.key).await, StatusCode::ACCEPTED);

    let (status, _) = api.send(Method::DELETE, &format!("/api/sites/{}", t.site_id), Some(&t.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    refused_within_five_seconds(&api, &t.key).await;
    let (status, _) = api.get(&format!("/api/sites/{}", t.site_id), Some(&t.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
