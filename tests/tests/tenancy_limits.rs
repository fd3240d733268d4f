//! Many sites (contract v3): per-account site limit and per-site rotation limit under racing
//! requests, a sites bucket that stays about one message per live site, and a key reconcile
//! that is bounded with thousands of sites and never runs twice at once.

use std::{
    collections::HashSet,
    future::IntoFuture,
    sync::Arc,
    time::{Duration, Instant},
};

use api::{
    jobs::{LEASE_JOB, Outcome, Reconciler},
    keys::{KeyRegistry, MAX_REPAIRS_PER_RUN, Report},
};
use async_nats::jetstream::{self, kv};
use cp_tests::{
    batch::{batch as make_batch, id, pageview},
    client::Api,
    mongo::Mongo,
    nats::Nats,
    stack::{Proc, Stack},
    wait,
};
use futures::StreamExt;
use mongodb::{
    Collection, Database,
    bson::{DateTime, doc},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use shared::{
    clock::{self, Clock, ManualClock},
    names::{self, collections as c},
    site::SiteEntry,
    store::{LeaseDoc, SiteCountDoc, SiteDoc},
};

async fn batch_status(api: &Api, key: &str) -> StatusCode {
    let b = make_batch(key, "session_limits", vec![pageview(&id("page"), "https://example.com/", "", false)]);
    api.post_batch(&b).await.0
}

/// Waits until every key of `keys` is refused, and panics unless that happened within 5 s of
/// `acked` (the contract, from when the change was acknowledged); all are probed each round.
async fn refused_within_five_seconds(api: &Api, acked: Instant, keys: &[&str]) {
    wait::until_within("the replaced keys to be refused", acked, Duration::from_secs(5), || async move {
        let known = futures::future::join_all(keys.iter().map(|key| api.key_known(key))).await;
        known.iter().all(|k| *k == Some(false)).then_some(())
    })
    .await;
}

async fn stack_db(stack: &Stack) -> Database {
    shared::store::connect(&stack.mongo_uri, &stack.mongo_db, "cp-tests").await.expect("mongodb")
}

fn site_body(n: usize) -> Value {
    json!({"name": format!("Site {n}"), "domain": format!("s{n}.example.com")})
}

// ---- sites per account ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_racing_creates_with_a_limit_of_five_leave_exactly_five_sites_and_a_delete_frees_a_slot() {
    let stack = Stack::start_with(&[("CP_MAX_SITES_PER_ACCOUNT", "5")]).await;
    let api = Api::new(&stack);
    let token = api.register(&format!("{}@example.com", id("user"))).await;

    let creates = (0..40).map(|n| {
        let (api, token) = (api.clone(), token.clone());
        async move { api.post("/api/sites", Some(&token), &site_body(n)).await }
    });
    let answers = futures::future::join_all(creates).await;
    let created: Vec<&Value> = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).map(|(_, b)| b).collect();
    let refused: Vec<&Value> = answers.iter().filter(|(s, _)| *s == StatusCode::FORBIDDEN).map(|(_, b)| b).collect();
    assert_eq!(
        (created.len(), refused.len()),
        (5, 35),
        "{:?}",
        answers.iter().map(|(s, b)| (s, b["error"].clone())).collect::<Vec<_>>()
    );
    for body in &refused {
        assert_eq!(body["error"], "site_limit", "{body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains('5')), "the message names the limit: {body}");
    }
    let (status, sites) = api.get("/api/sites", Some(&token)).await;
    assert_eq!((status, sites.as_array().map(Vec::len)), (StatusCode::OK, Some(5)));
    let counter_of = |db: Database, owner: String| async move {
        db.collection::<SiteCountDoc>(c::SITE_COUNTS)
            .find_one(doc! {"_id": owner})
            .await
            .expect("read")
            .expect("a counter")
            .n
    };
    let db = stack_db(&stack).await;
    let owner = db.collection::<SiteDoc>(c::SITES).find_one(doc! {}).await.expect("read").expect("a site").owner_id;
    assert_eq!(counter_of(db.clone(), owner.clone()).await, 5, "the 35 refused creates took no slot");

    // Another account is not limited by this one's sites.
    let other = api.register(&format!("{}@example.com", id("user"))).await;
    assert_eq!(api.post("/api/sites", Some(&other), &site_body(100)).await.0, StatusCode::CREATED);

    // A delete frees exactly one slot.
    let first = created[0]["id"].as_str().expect("id");
    assert_eq!(api.send(Method::DELETE, &format!("/api/sites/{first}"), Some(&token), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(counter_of(db.clone(), owner.clone()).await, 4);
    assert_eq!(api.post("/api/sites", Some(&token), &site_body(41)).await.0, StatusCode::CREATED);
    let (status, body) = api.post("/api/sites", Some(&token), &site_body(42)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("site_limit")), "{body}");
    // An invalid create is refused as such, and takes no slot.
    let (status, body) = api.post("/api/sites", Some(&token), &json!({"name": "", "domain": "x.example.com"})).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_site")), "{body}");
    assert_eq!(counter_of(db, owner).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_whose_sites_predate_the_limit_is_counted_from_its_sites() {
    let stack = Stack::start_with(&[("CP_MAX_SITES_PER_ACCOUNT", "3")]).await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;
    let db = stack_db(&stack).await;
    // As an api before the limit left it: sites, and no counter.
    db.collection::<SiteCountDoc>(c::SITE_COUNTS).delete_many(doc! {}).await.expect("drop counters");
    let sites = db.collection::<SiteDoc>(c::SITES);
    let owner = sites.find_one(doc! {"_id": &t.site_id}).await.expect("read").expect("site").owner_id;
    for n in 0..2 {
        let site = SiteDoc {
            id: format!("old{n}{}", id("s")),
            owner_id: owner.clone(),
            name: format!("Old {n}"),
            domain: "old.example.com".into(),
            timezone: "UTC".into(),
            currency: "USD".into(),
            api_key: shared::ids::SiteKey::from_stored(format!("cp_old_{n}_{}", id("k"))),
            created_at: DateTime::now(),
            share_hash: None,
            key_rotations: Vec::new(),
            imports: Vec::new(),
            imports_rev: 0,
            plausible_compatible: false,
        };
        sites.insert_one(&site).await.expect("insert");
    }

    let (status, body) = api.post("/api/sites", Some(&t.token), &site_body(1)).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("site_limit")), "3 sites held: {body}");
    assert_eq!(
        api.send(Method::DELETE, &format!("/api/sites/{}", t.site_id), Some(&t.token), None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.post("/api/sites", Some(&t.token), &site_body(2)).await.0, StatusCode::CREATED);
    assert_eq!(api.post("/api/sites", Some(&t.token), &site_body(3)).await.0, StatusCode::FORBIDDEN);
}

// ---- key rotations per site -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_racing_rotates_of_one_site_let_exactly_ten_through_and_the_rest_get_429_with_retry_after() {
    let stack = Stack::start().await;
    let api = Api::new(&stack);
    let t = api.tenant("example.com", "UTC").await;

    let rotates = (0..40).map(|_| {
        let (http, url, token) =
            (api.http.clone(), format!("{}/api/sites/{}/rotate-key", api.api, t.site_id), t.token.clone());
        async move {
            let res = http.post(url).bearer_auth(token).json(&json!({})).send().await.expect("api reachable");
            let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            let (status, body) = Api::json(res).await;
            (status, body, retry_after, Instant::now())
        }
    });
    let answers = futures::future::join_all(rotates).await;
    let ok: Vec<&Value> = answers.iter().filter(|(s, ..)| *s == StatusCode::OK).map(|(_, b, ..)| b).collect();
    let limited: Vec<_> = answers.iter().filter(|(s, ..)| *s == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(
        (ok.len(), limited.len()),
        (10, 30),
        "{:?}",
        answers.iter().map(|(s, b, ..)| (s, b["error"].clone())).collect::<Vec<_>>()
    );
    // When the first rotation was acknowledged, the first key had been replaced; when the last
    // was, every other key had been.
    let acks = || answers.iter().filter(|(s, ..)| *s == StatusCode::OK).map(|(.., at)| *at);
    let (first_ack, last_ack) = (acks().min().expect("a rotation"), acks().max().expect("a rotation"));
    for (_, body, retry_after, _) in &limited {
        assert_eq!(body["error"], "rate_limited", "{body}");
        assert!(retry_after.is_some_and(|s| (1..=3600).contains(&s)), "Retry-After {retry_after:?}");
    }
    let keys: HashSet<&str> = ok.iter().filter_map(|b| b["api_key"].as_str()).collect();
    assert_eq!(keys.len(), 10, "each 200 is a rotation of its own");

    let (_, site) = api.get(&format!("/api/sites/{}", t.site_id), Some(&t.token)).await;
    let current = site["api_key"].as_str().expect("key").to_string();
    assert!(keys.contains(current.as_str()), "the site holds the last rotation's key");
    let stored = stack_db(&stack)
        .await
        .collection::<SiteDoc>(c::SITES)
        .find_one(doc! {"_id": &t.site_id})
        .await
        .expect("read")
        .expect("site");
    assert_eq!(stored.key_rotations.len(), 10, "the rotation times stay bounded");
    let replaced: Vec<&str> = keys.iter().copied().filter(|k| *k != current).collect();
    let first_key = [t.key.as_str()];
    tokio::join!(
        refused_within_five_seconds(&api, first_ack, &first_key),
        refused_within_five_seconds(&api, last_ack, &replaced),
    );
    wait::until_within("the last rotation's key to be live", last_ack, Duration::from_secs(5), || async {
        (api.key_known(&current).await == Some(true)).then_some(())
    })
    .await;
    assert_eq!(batch_status(&api, &current).await, StatusCode::ACCEPTED);

    // The limit is per site: another site of the account still rotates.
    let (other, _) = api.create_site(&t.token, "example.org", "UTC").await;
    assert_eq!(api.post(&format!("/api/sites/{other}/rotate-key"), Some(&t.token), &json!({})).await.0, StatusCode::OK);
}

// ---- the bucket stays bounded ---------------------------------------------------------------

/// Messages in the sites bucket's backing stream.
async fn bucket_messages(js: &jetstream::Context) -> u64 {
    js.get_stream(format!("KV_{}", names::KV_SITES)).await.expect("stream").info().await.expect("info").state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_rotations_and_deletions_the_sites_bucket_holds_one_message_per_live_site() {
    let mut stack = Stack::start_with(&[("CP_KEY_PURGE_GRACE_SECS", "1")]).await;
    let api = Api::new(&stack);
    let t = api.tenant("a.example.com", "UTC").await;
    let (kept, kept_key) = api.create_site(&t.token, "b.example.com", "UTC").await;
    let mut revoked = vec![t.key.clone()];
    let mut rotated_key = t.key.clone();
    for _ in 0..5 {
        let (status, site) = api.post(&format!("/api/sites/{}/rotate-key", t.site_id), Some(&t.token), &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{site}");
        rotated_key = site["api_key"].as_str().expect("key").to_string();
        revoked.push(rotated_key.clone());
    }
    revoked.pop();
    for n in 0..3 {
        let (gone, gone_key) = api.create_site(&t.token, &format!("gone{n}.example.com"), "UTC").await;
        assert_eq!(
            api.send(Method::DELETE, &format!("/api/sites/{gone}"), Some(&t.token), None).await.0,
            StatusCode::NO_CONTENT
        );
        revoked.push(gone_key);
    }

    // 2 live sites; 8 revoked keys whose markers the api's job purges once 1 s old.
    let js = jetstream::new(async_nats::connect(format!("nats://127.0.0.1:{}", stack.nats_port)).await.expect("nats"));
    let left = wait::poll(Duration::from_secs(40), || {
        let js = js.clone();
        async move { (bucket_messages(&js).await == 2).then_some(()) }
    })
    .await;
    assert!(left.is_some(), "the bucket holds {} messages for 2 live sites", bucket_messages(&js).await);

    for key in &revoked {
        assert_eq!(
            batch_status(&api, key).await,
            StatusCode::UNAUTHORIZED,
            "a revoked key stays refused after its marker is purged"
        );
    }
    for key in [&rotated_key, &kept_key] {
        assert_eq!(batch_status(&api, key).await, StatusCode::ACCEPTED, "a live key still works");
    }
    // A restarted ingest replays two entries, and knows exactly the live keys.
    stack.kill(Proc::Ingest);
    stack.start_proc(Proc::Ingest);
    stack.wait_ready(Proc::Ingest).await;
    for key in &revoked {
        assert_eq!(batch_status(&api, key).await, StatusCode::UNAUTHORIZED, "after a restart");
    }
    for key in [&rotated_key, &kept_key] {
        assert_eq!(batch_status(&api, key).await, StatusCode::ACCEPTED, "after a restart");
    }
    assert_eq!(bucket_messages(&js).await, 2, "{kept} and {} only", t.site_id);
}

// ---- the reconcile: bounded, never overlapping ----------------------------------------------

/// MongoDB and NATS without an api, so that no scheduled job repairs behind the test's back.
struct Keys {
    _mongo: Mongo,
    _nats: Nats,
    db: Database,
    sites: Collection<SiteDoc>,
    bucket: kv::Store,
}

fn site(n: usize) -> SiteDoc {
    SiteDoc {
        id: format!("site{n:05}"),
        owner_id: format!("owner{}", n % 50),
        name: format!("Site {n}"),
        domain: format!("s{n}.example.com"),
        timezone: "UTC".into(),
        currency: "USD".into(),
        api_key: shared::ids::SiteKey::from_stored(format!("cp_key_{n:05}_{}", id("k"))),
        created_at: DateTime::now(),
        share_hash: None,
        key_rotations: Vec::new(),
        imports: Vec::new(),
        imports_rev: 0,
        plausible_compatible: false,
    }
}

fn entry(site: &SiteDoc) -> Vec<u8> {
    serde_json::to_vec(&SiteEntry {
        site_id: site.id.clone(),
        domain: site.domain.clone(),
        timezone: site.timezone.clone(),
        currency: "USD".into(),
        plausible: false,
    })
    .expect("json")
}

/// `n` sites in MongoDB, and their entries in the bucket: in step.
async fn keys_with_sites(n: usize) -> (Keys, Vec<SiteDoc>) {
    let (mongo, nats) = tokio::join!(Mongo::start(), Nats::start());
    let db = mongo.database().await;
    let bucket = shared::bus::sites_bucket(&jetstream::new(nats.connect().await), 1).await.expect("bucket");
    let sites = db.collection::<SiteDoc>(c::SITES);
    let all: Vec<SiteDoc> = (0..n).map(site).collect();
    for chunk in all.chunks(1000) {
        sites.insert_many(chunk).await.expect("insert sites");
    }
    futures::stream::iter(all.iter())
        .map(|s| {
            let bucket = bucket.clone();
            async move { bucket.put(&s.api_key, entry(s).into()).await.expect("put") }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    (Keys { _mongo: mongo, _nats: nats, db, sites, bucket }, all)
}

/// Times a run, which must stay within the job's own limit.
async fn timed(registry: &KeyRegistry, what: &str) -> Report {
    let started = Instant::now();
    let report = registry.reconcile().await.expect("reconcile");
    let took = started.elapsed();
    eprintln!("{what}: {took:?} {report:?}");
    assert!(took < api::jobs::RUN_LIMIT, "{what} took {took:?}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_of_ten_thousand_sites_reads_no_key_when_in_step_and_repairs_exactly_the_broken_ones() {
    const N: usize = 10_000;
    let (k, all) = keys_with_sites(N).await;
    let clock = ManualClock::at(clock::system().now_ms());
    // Sets the registry's clock `ahead_ms` past the real time.
    let ahead = |ahead_ms: i64| clock.advance(clock::system().now_ms() + ahead_ms - clock.now_ms());
    let registry = KeyRegistry::new(k.bucket.clone(), k.sites.clone())
        .with_clock(Arc::new(clock.clone()))
        .with_purge_grace(Duration::from_secs(10));

    let in_step = timed(&registry, "in step").await;
    assert_eq!(in_step, Report { sites: N, entries: N, ..Report::default() }, "no per-key read, no write");

    // Break it: 5 entries gone, 4 stale, 3 live keys of no site, 2 old delete markers.
    for s in &all[0..5] {
        k.bucket.stream.purge().filter(format!("$KV.{}.{}", names::KV_SITES, s.api_key)).await.expect("purge");
    }
    for s in &all[5..9] {
        k.bucket
            .put(&s.api_key, entry(&SiteDoc { domain: "stale.example.com".into(), ..s.clone() }).into())
            .await
            .expect("put");
    }
    let orphans: Vec<SiteDoc> = (N..N + 3).map(site).collect();
    for s in &orphans {
        k.bucket.put(&s.api_key, entry(s).into()).await.expect("put");
    }
    for s in (N + 3..N + 5).map(site) {
        k.bucket.put(&s.api_key, entry(&s).into()).await.expect("put");
        k.bucket.delete(&s.api_key).await.expect("delete");
    }

    // Entries look a minute old, past the orphan grace; markers are purged once 10 s old.
    ahead(60_000);
    let repaired = timed(&registry, "repair").await;
    assert_eq!(
        repaired,
        Report { sites: N, entries: N - 5 + 3 + 2, published: 9, revoked: 3, purged: 2, key_reads: 9 * 2 + 3, deferred: 0 },
        "one entry read and one site read per repaired key, one site read per orphan"
    );
    for s in &all[0..9] {
        assert_eq!(k.bucket.get(&s.api_key).await.expect("get").as_deref(), Some(entry(s).as_slice()), "{} repaired", s.id);
    }
    for s in &orphans {
        let e = k.bucket.entry(&s.api_key).await.expect("entry").expect("a marker");
        assert_eq!(e.operation, kv::Operation::Delete, "orphan {} revoked", s.id);
    }

    // Now nothing looks old: the orphans' fresh markers stay, and nothing else is left to do.
    ahead(0);
    let after = timed(&registry, "after").await;
    assert_eq!(after, Report { sites: N, entries: N + 3, ..Report::default() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_run_repairs_at_most_its_bound_and_leaves_the_rest_to_the_next_run() {
    const BROKEN: usize = MAX_REPAIRS_PER_RUN + 5;
    let (k, all) = keys_with_sites(BROKEN + 500).await;
    futures::stream::iter(&all[..BROKEN])
        .map(|s| k.bucket.stream.purge().filter(format!("$KV.{}.{}", names::KV_SITES, s.api_key)).into_future())
        .buffer_unordered(64)
        .for_each(|purged| async move {
            purged.expect("purge");
        })
        .await;
    let registry = KeyRegistry::new(k.bucket.clone(), k.sites.clone());

    let first = timed(&registry, "first").await;
    assert_eq!((first.published, first.deferred), (MAX_REPAIRS_PER_RUN, 5), "{first:?}");
    let second = timed(&registry, "second").await;
    assert_eq!((second.published, second.deferred, second.key_reads), (5, 0, 10), "{second:?}");
    assert!(timed(&registry, "third").await.is_quiet());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_reconcilers_against_one_database_and_bucket_never_run_at_once() {
    let (k, _) = keys_with_sites(2000).await;
    let reconciler = |holder: &str| {
        let registry = KeyRegistry::new(k.bucket.clone(), k.sites.clone());
        Reconciler::new(registry, &k.db, holder.to_string(), clock::system())
    };
    let (a, b) = (reconciler("api-a"), reconciler("api-b"));
    let deadline = Instant::now() + Duration::from_secs(8);
    let drive = |r: Reconciler| async move {
        let (mut runs, mut leased) = (Vec::new(), 0);
        while Instant::now() < deadline {
            match r.run_once().await.expect("run") {
                Outcome::Ran { report, started, ended } => {
                    assert!(report.is_quiet() && report.key_reads == 0, "{report:?}");
                    runs.push((started, ended));
                }
                Outcome::Leased => leased += 1,
                Outcome::Busy => panic!("one driver per reconciler: never busy"),
            }
            // Pacing between attempts, not a wait for a condition.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (runs, leased)
    };
    let (done_a, done_b) = tokio::join!(tokio::spawn(drive(a)), tokio::spawn(drive(b)));
    let ((runs_a, leased_a), (runs_b, leased_b)) = (done_a.expect("a"), done_b.expect("b"));
    eprintln!("a ran {} times, found the lease taken {leased_a} times; b {} and {leased_b}", runs_a.len(), runs_b.len());
    assert!(leased_a + leased_b > 0, "the two tried to run at the same time");
    let mut runs: Vec<(tokio::time::Instant, tokio::time::Instant)> = runs_a.into_iter().chain(runs_b).collect();
    assert!(runs.len() >= 4, "{} runs in 8 s", runs.len());
    runs.sort();
    for pair in runs.windows(2) {
        assert!(pair[1].0 >= pair[0].1, "two runs overlapped: {pair:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_during_a_run_is_skipped_and_a_dead_holders_lease_expires() {
    let (k, _) = keys_with_sites(500).await;
    let clock = ManualClock::at(clock::system().now_ms());
    let registry = KeyRegistry::new(k.bucket.clone(), k.sites.clone());
    let r = Reconciler::new(registry, &k.db, "api-live".into(), Arc::new(clock.clone()));

    let (first, second) = tokio::join!(r.run_once(), r.run_once());
    let outcomes = [first.expect("run"), second.expect("run")];
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Outcome::Ran { .. })).count(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| matches!(o, Outcome::Busy)).count(), 1, "{outcomes:?}");

    let leases = k.db.collection::<LeaseDoc>(c::LEASES);
    assert!(leases.find_one(doc! {"_id": LEASE_JOB}).await.expect("read").is_none(), "a finished run releases its lease");
    leases
        .insert_one(LeaseDoc { id: LEASE_JOB.into(), holder: "api-dead".into(), until: clock.now_ms() + 60_000 })
        .await
        .expect("insert");
    assert!(matches!(r.run_once().await.expect("run"), Outcome::Leased), "the dead holder's lease holds until it expires");
    clock.advance(60_001);
    assert!(matches!(r.run_once().await.expect("run"), Outcome::Ran { .. }), "then it is taken over");
    assert!(leases.find_one(doc! {"_id": LEASE_JOB}).await.expect("read").is_none());
}
