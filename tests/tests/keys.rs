//! Key rotation and site deletion reach ingest within 5 s, and stay race-free against each
//! other and the reconcile job.

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

/// The contract: a rotated or deleted key is refused, and a new one accepted, within 5 s of
/// the api acknowledging the change.
const CONTRACT: Duration = Duration::from_secs(5);

/// Waits until ingest refuses every key of `refused` and knows every key of `live`, probing all
/// of them in each round, and panics unless all of that happened within [`CONTRACT`] of
/// `acked`, the moment the api acknowledged the change: a key looked at last gets no more time
/// than the first.
async fn in_effect_within_five_seconds(api: &Api, acked: Instant, refused: Vec<&str>, live: Vec<&str>) {
    let probes: Vec<(String, bool)> =
        refused.iter().map(|k| (k.to_string(), false)).chain(live.iter().map(|k| (k.to_string(), true))).collect();
    let probes = &probes;
    wait::until_within("ingest to refuse the old keys and know the new ones", acked, CONTRACT, || async move {
        let answers = futures::future::join_all(probes.iter().map(|(key, _)| api.key_known(key))).await;
        probes.iter().zip(answers).all(|((_, want), got)| got == Some(*want)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_key_is_refused_within_five_seconds_and_the_new_one_works() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    assert_eq!(status_for(&api, &t.key).await, StatusCode::ACCEPTED);

    let (status, site) =
        api.post(&format!("/api/sites/{}/rotate-key", t.site_id), Some(&t.token), &serde_json::json!({})).await;
    let acked = Instant::now();
    assert_eq!(status, StatusCode::OK, "{site}");
    let new_key = site["api_key"].as_str().expect("key").to_string();
    assert_ne!(new_key, t.key);

    in_effect_within_five_seconds(&api, acked, vec![&t.key], vec![&new_key]).await;
    eprintln!("old key refused and new key live after {:?}", acked.elapsed());
    assert_eq!(status_for(&api, &t.key).await, StatusCode::UNAUTHORIZED, "the old key is refused");
    assert_eq!(status_for(&api, &new_key).await, StatusCode::ACCEPTED, "the new key works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_sites_key_is_refused_within_five_seconds() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    assert_eq!(status_for(&api, &t.key).await, StatusCode::ACCEPTED);

    let (status, _) = api.send(Method::DELETE, &format!("/api/sites/{}", t.site_id), Some(&t.token), None).await;
    let acked = Instant::now();
    assert_eq!(status, StatusCode::NO_CONTENT);
    in_effect_within_five_seconds(&api, acked, vec![&t.key], vec![]).await;
    assert_eq!(status_for(&api, &t.key).await, StatusCode::UNAUTHORIZED);
    let (status, _) = api.get(&format!("/api/sites/{}", t.site_id), Some(&t.token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The stack's sites bucket and collection, driven through the api's own key registry.
async fn registry(stack: &Stack) -> (api::keys::KeyRegistry, async_nats::jetstream::kv::Store) {
    let nats = async_nats::connect(format!("nats://127.0.0.1:{}", stack.nats_port)).await.expect("nats");
    let bucket = shared::bus::sites_bucket(&async_nats::jetstream::new(nats), 1).await.expect("bucket");
    let db = shared::store::connect(&stack.mongo_uri, &stack.mongo_db, "cp-tests").await.expect("mongodb");
    (api::keys::KeyRegistry::new(bucket.clone(), db.collection(shared::names::collections::SITES)), bucket)
}

/// Keys the bucket holds live for `site_id`.
async fn live_keys_of(bucket: &async_nats::jetstream::kv::Store, site_id: &str) -> Vec<String> {
    use futures::StreamExt;
    let mut live = Vec::new();
    let mut keys = bucket.keys().await.expect("keys");
    while let Some(key) = keys.next().await {
        let key = key.expect("key");
        let Some(value) = bucket.get(&key).await.expect("get") else { continue };
        let entry: shared::site::SiteEntry = serde_json::from_slice(&value).expect("site entry");
        if entry.site_id == site_id {
            live.push(key);
        }
    }
    live
}

async fn is_revoked(bucket: &async_nats::jetstream::kv::Store, key: &str) -> bool {
    let entry = bucket.entry(key).await.expect("entry").expect("the key has history");
    entry.operation == async_nats::jetstream::kv::Operation::Delete
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotates_leave_exactly_one_live_key() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let (registry, bucket) = registry(&stack).await;

    // As many as the hour allows (tests/tests/tenancy_limits.rs races more).
    let rotates = (0..shared::store::MAX_KEY_ROTATIONS_PER_HOUR).map(|_| {
        let api = api.clone();
        let (path, token) = (format!("/api/sites/{}/rotate-key", t.site_id), t.token.clone());
        async move {
            let (status, body) = api.post(&path, Some(&token), &serde_json::json!({})).await;
            (status, body, Instant::now())
        }
    });
    let answers = futures::future::join_all(rotates).await;
    assert!(
        answers.iter().all(|(s, _, _)| *s == StatusCode::OK),
        "{:?}",
        answers.iter().map(|(s, b, _)| (s, b["error"].clone())).collect::<Vec<_>>()
    );
    let distinct: std::collections::HashSet<&str> = answers.iter().filter_map(|(_, b, _)| b["api_key"].as_str()).collect();
    assert_eq!(distinct.len(), answers.len(), "every 200 is a rotation of its own, with a key of its own");
    let (_, site) = api.get(&format!("/api/sites/{}", t.site_id), Some(&t.token)).await;
    let current = site["api_key"].as_str().expect("key").to_string();

    // When the first rotation was acknowledged, the first key had been replaced; when the last
    // was, every other key had been, and the current one made.
    let first_ack = answers.iter().map(|(_, _, at)| *at).min().expect("answers");
    let last_ack = answers.iter().map(|(_, _, at)| *at).max().expect("answers");
    let replaced: Vec<&str> =
        answers.iter().filter_map(|(_, b, _)| b["api_key"].as_str()).filter(|k| *k != current).collect();
    tokio::join!(
        in_effect_within_five_seconds(&api, first_ack, vec![&t.key], vec![]),
        in_effect_within_five_seconds(&api, last_ack, replaced, vec![&current]),
    );
    assert_eq!(status_for(&api, &current).await, StatusCode::ACCEPTED);

    // Exactly one live key, and it is the one the site holds; a reconcile changes nothing.
    assert_eq!(live_keys_of(&bucket, &t.site_id).await, vec![current.clone()]);
    registry.reconcile().await.expect("reconcile");
    assert_eq!(live_keys_of(&bucket, &t.site_id).await, vec![current.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_that_read_mongodb_before_a_rotate_or_delete_never_revives_the_old_key() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let rotated = api.tenant("example.com", "UTC").await;
    let deleted = api.tenant("example.org", "UTC").await;
    let (registry, bucket) = registry(&stack).await;

    // The reconcile job reads MongoDB ...
    let listing = registry.list_sites().await.expect("listing");
    assert!(listing.iter().any(|s| s.api_key == rotated.key) && listing.iter().any(|s| s.api_key == deleted.key));
    // ... a rotate and a delete land ...
    let (status, site) =
        api.post(&format!("/api/sites/{}/rotate-key", rotated.site_id), Some(&rotated.token), &serde_json::json!({})).await;
    let rotate_acked = Instant::now();
    assert_eq!(status, StatusCode::OK);
    let new_key = site["api_key"].as_str().expect("key").to_string();
    let (status, _) = api.send(Method::DELETE, &format!("/api/sites/{}", deleted.site_id), Some(&deleted.token), None).await;
    let delete_acked = Instant::now();
    assert_eq!(status, StatusCode::NO_CONTENT);
    // ... then the job writes the bucket from what it read.
    let report = registry.reconcile_from(&listing).await.expect("reconcile");
    assert_eq!((report.published, report.revoked), (0, 0), "nothing to repair: {report:?}");

    for (what, key) in [("rotated", &rotated.key), ("deleted", &deleted.key)] {
        assert!(is_revoked(&bucket, key).await, "the {what} key stays revoked in the bucket");
    }
    tokio::join!(
        in_effect_within_five_seconds(&api, rotate_acked, vec![&rotated.key], vec![&new_key]),
        in_effect_within_five_seconds(&api, delete_acked, vec![&deleted.key], vec![]),
    );
    assert_eq!(live_keys_of(&bucket, &rotated.site_id).await, vec![new_key.clone()]);
    assert!(live_keys_of(&bucket, &deleted.site_id).await.is_empty());
    assert_eq!(status_for(&api, &new_key).await, StatusCode::ACCEPTED);
}
