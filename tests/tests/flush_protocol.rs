//! The aggregator's flush protocol, step by step, against a real MongoDB-wire server and a
//! clock the test moves: a flush stopped right after each step is finished by recovery and
//! every event counts exactly once; and a stats read stays within its document bound however
//! many distinct keys a day has.

use std::{sync::Arc, time::Duration};

use aggregator::{
    flush::{FlushError, FlushId, Flusher, Settings, Step, Verdict},
    rollup::Capacities,
};
use api::{
    stats::{self, GoalName, Meta},
    stats_store,
    timeframe::Range,
};
use chrono_tz::Tz;
use cp_tests::mongo::Mongo;
use mongodb::{Database, bson::doc};
use serde_json::{Value, json};
use shared::{
    clock::ManualClock,
    event::{ClientId, Event, EventKind},
    goal::GoalKind,
    ids::{BatchId, SiteKey},
    message::BatchMessage,
    names::collections as c,
    site_config::{GoalDoc, SiteConfigDoc},
    time,
};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 10:00Z tomorrow: the fixture's time. Relative to now, because the MongoDB-wire server
/// expires documents (visitor marks, sessions) by the real clock.
fn t0() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    now - now.rem_euclid(DAY) + DAY + 10 * HOUR
}
const LEASE: Duration = Duration::from_secs(30);

fn flusher(db: &Database, clock: &ManualClock) -> Flusher {
    flusher_with(db, clock, shared::rollup::siteday::COMPACT_MAX_BYTES)
}

/// A flusher whose site-days split past `compact_max_bytes` (0: at their first write).
fn flusher_with(db: &Database, clock: &ManualClock, compact_max_bytes: usize) -> Flusher {
    Flusher::new(db.clone(), flusher_settings(compact_max_bytes), Arc::new(clock.clone()))
}

/// Entries a top list keeps, per day and per hour.
const LIST_KEYS: usize = 1000;

fn flusher_settings(compact_max_bytes: usize) -> Settings {
    Settings {
        lease: LEASE,
        caps: Capacities::with_keys(LIST_KEYS, LIST_KEYS),
        day_retention: Duration::from_secs(400 * 86_400),
        compact_max_bytes,
    }
}

fn event(kind: EventKind, path: &str) -> Event {
    Event { ts: 0, page_id: ClientId::parse("page_0001").expect("id"), url: format!("https://example.com{path}"), kind }
}

fn visitor(n: u64) -> String {
    format!("{:032x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// 80 batches over two sites and two days: repeated pages, selectors, sources and visitors.
fn fixture() -> Vec<BatchMessage> {
    let sources = ["", "https://www.google.com/", "https://news.ycombinator.com/", "https://example.com/x"];
    (0..80_u64)
        .map(|i| {
            let site = if i % 4 == 3 { "site-b" } else { "site-a" };
            let path = format!("/p{}", i % 7);
            let received_at = t0() + (i as i64) * 60_000 + if i >= 60 { DAY } else { 0 };
            BatchMessage {
                site_id: site.into(),
                batch_id: BatchId::new(format!("batch_{i:04}")),
                session_id: format!("sess_{:04}", i / 3),
                received_at,
                visitor: visitor(i % 17),
                timezone: if site == "site-b" { "Europe/Berlin".into() } else { "UTC".into() },
                domain: "example.com".into(),
                device: Default::default(),
                browser: Default::default(),
                os: Default::default(),
                country: Default::default(),
                currency: "USD".into(),
                events: vec![
                    event(
                        EventKind::Pageview {
                            referrer: sources[(i % 4) as usize].into(),
                            title: "T".into(),
                            new_session: i % 3 == 0,
                            variant: None,
                        },
                        &path,
                    ),
                    event(
                        EventKind::Click {
                            selector: format!("button.s{}", i % 5),
                            text: format!("Go {}", i % 5),
                            href: None,
                            marks: Default::default(),
                        },
                        &path,
                    ),
                    event(EventKind::Scroll { depth: (i % 100) as u8 + 1, prev: 0 }, &path),
                    event(EventKind::Time { seconds: 1.5 }, &path),
                ],
            }
        })
        .collect()
}

/// A database of its own, with goals on site-a: a click goal and a pageview goal, so that the
/// crash points also cover conversions, their attribution and the session documents.
async fn database(mongo: &Mongo) -> Database {
    let db = mongo.database().await;
    let goal = |id: &str, kind: GoalKind, matcher: &str| GoalDoc {
        id: id.into(),
        name: id.into(),
        kind,
        matcher: matcher.into(),
        created_ms: t0() - DAY,
        deleted_ms: None,
        backfilling: false,
    };
    let config = SiteConfigDoc {
        id: "site-a".into(),
        rev: 1,
        goals: vec![goal("g-click", GoalKind::Click, "button.s1"), goal("g-page", GoalKind::Pageview, "/p3")],
        funnels: Vec::new(),
        segments: Vec::new(),
    };
    db.collection::<SiteConfigDoc>(c::SITE_CONFIG).insert_one(config).await.expect("goals");
    db
}

async fn goal_names() -> Vec<GoalName> {
    ["g-click", "g-page"].iter().map(|g| GoalName { id: g.to_string(), name: g.to_string() }).collect()
}

/// Stats of both sites over both days and over the 24 hours up to the first day's end, as
/// the api would answer them.
async fn snapshot(db: &Database) -> Value {
    let mut out = serde_json::Map::new();
    for (site, tz) in [("site-a", Tz::UTC), ("site-b", Tz::Europe__Berlin)] {
        let day = |ms: i64| time::local_day(ms, tz);
        let ranges = [
            Range::Days { label: "custom".into(), from: day(t0()), to: day(t0() + DAY) },
            Range::Hours { label: "24h".into(), hours: time::last_24_hours(t0() + 3 * HOUR, tz) },
        ];
        for range in ranges {
            let loaded = stats_store::load(db, &stats_store::Scope::bare(site), &range, tz, None).await.expect("stats load");
            assert!(loaded.docs_read <= stats_store::read_bound(&range), "read bound");
            let hourly = matches!(range, Range::Hours { .. });
            let meta = Meta {
                site_id: site.into(),
                timeframe: "t".into(),
                timezone: tz.name().into(),
                from: String::new(),
                to: String::new(),
                hourly,
                page: None,
                currency: "USD".into(),
            };
            let s = serde_json::to_value(stats::assemble(meta, loaded.inputs, &goal_names().await)).expect("json");
            out.insert(format!("{site} {}", if hourly { "24h" } else { "days" }), s);
        }
    }
    Value::Object(out)
}

fn split(batches: &[BatchMessage]) -> (&[BatchMessage], &[BatchMessage]) {
    batches.split_at(50)
}

/// The figures of a run without faults, checked against the fixture by hand.
async fn reference(mongo: &Mongo) -> Value {
    let db = database(mongo).await;
    let clock = ManualClock::at(t0() + 2 * DAY);
    let f = flusher(&db, &clock);
    let all = fixture();
    let (first, second) = split(&all);
    for chunk in [first, second] {
        let (verdicts, _) = f.flush(chunk).await.expect("clean flush");
        assert!(verdicts.iter().all(|v| *v == Verdict::Ack));
    }
    let snap = snapshot(&db).await;
    // site-a holds batches with i % 4 != 3: 60 of 80; 45 of them on the first day (i < 60).
    let a = &snap["site-a days"]["summary"];
    assert_eq!((a["pageviews"].as_i64(), a["clicks"].as_i64()), (Some(60), Some(60)), "{a}");
    let sessions_a = (0..80).filter(|i| i % 4 != 3 && i % 3 == 0).count() as i64;
    assert_eq!(a["sessions"].as_i64(), Some(sessions_a));
    assert_eq!(snap["site-a days"]["series"][0]["pageviews"], 45);
    // Visitors: i % 17 over site-a's batches of each day, summed over the days.
    let distinct = |lo: u64, hi: u64| {
        (lo..hi).filter(|i| i % 4 != 3).map(|i| i % 17).collect::<std::collections::HashSet<_>>().len() as i64
    };
    assert_eq!(a["visitors"].as_i64(), Some(distinct(0, 60) + distinct(60, 80)));
    // Conversions: sessions (3 batches each) of site-a that clicked button.s1 (i % 5 == 1) or
    // viewed /p3 (i % 7 == 3), once per session and day.
    let converted = |lo: u64, hi: u64| {
        (lo..hi)
            .filter(|i| i % 4 != 3 && (i % 5 == 1 || i % 7 == 3))
            .map(|i| i / 3)
            .collect::<std::collections::HashSet<_>>()
            .len() as i64
    };
    assert_eq!(a["conversions"].as_i64(), Some(converted(0, 60) + converted(60, 80)), "{a}");
    assert!(a["conversions"].as_i64() > Some(0));
    let pages: i64 = snap["site-a days"]["top_pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|p| p["pageviews"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(pages, 60, "seven paths, all within the list");
    assert_eq!(snap["site-b days"]["summary"]["pageviews"], 20);
    snap
}

/// Rollup documents written by a clean first flush on a fresh database, with site-days
/// splitting past `compact_max_bytes`.
async fn first_flush_rollup_writes(mongo: &Mongo, compact_max_bytes: usize) -> usize {
    let db = database(mongo).await;
    let clock = ManualClock::at(t0() + 2 * DAY);
    let (_, report) = flusher_with(&db, &clock, compact_max_bytes).flush(split(&fixture()).0).await.expect("clean flush");
    report.rollup_writes as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_stopped_after_any_step_is_finished_by_redelivery_and_counts_once() {
    let mongo = Mongo::start().await;
    let want = reference(&mongo).await;
    let all = fixture();
    let (first, second) = split(&all);
    // Site-days compact (the first flush writes one document per site-day), and split from
    // their first write (every unit a document, then each site-day marked split: stopping
    // before the markers leaves a split half done).
    for compact_max_bytes in [shared::rollup::siteday::COMPACT_MAX_BYTES, 0] {
        let total = first_flush_rollup_writes(&mongo, compact_max_bytes).await;
        assert!(total >= 2, "two site-days at least: {total}");
        let mut steps =
            vec![Step::Claim, Step::RawBatches, Step::VisitorMarks, Step::SessionDocs(0), Step::SessionDocs(5), Step::Done];
        let mut writes = vec![0, 1, total / 2, total - 2, total - 1];
        writes.dedup();
        steps.extend(writes.into_iter().map(Step::RollupDocs));
        for step in steps {
            let case = format!("{step:?} of {total} writes, compact up to {compact_max_bytes} bytes");
            let db = database(&mongo).await;
            let clock = ManualClock::at(t0() + 2 * DAY);
            let dying = flusher_with(&db, &clock, compact_max_bytes).failing_after(step);
            let err = dying.flush(first).await.expect_err("stops after the step");
            assert!(matches!(err, FlushError::Claimed { .. }), "case {case}: {err}");
            if let Step::RollupDocs(n) = step {
                let stored =
                    db.collection::<mongodb::bson::Document>(c::ROLLUPS).count_documents(doc! {}).await.expect("count");
                assert_eq!(stored, n as u64, "case {case}: the flush stopped with {n} documents written");
            }

            // The messages come back after the lease, to another aggregator.
            clock.advance(LEASE.as_millis() as i64 + 1000);
            let other = flusher_with(&db, &clock, compact_max_bytes);
            let (verdicts, report) = other.flush(first).await.unwrap_or_else(|e| panic!("case {case}: redelivery: {e}"));
            assert!(verdicts.iter().all(|v| *v == Verdict::Ack), "case {case}: {verdicts:?}");
            let expect_recovered = usize::from(!matches!(step, Step::Claim | Step::Done));
            assert_eq!(report.recovered_flushes, expect_recovered, "case {case}");
            other.flush(second).await.unwrap_or_else(|e| panic!("case {case}: later flush: {e}"));
            assert_eq!(snapshot(&db).await, want, "case {case}: every event counted once, the same stats in either layout");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_day_splitting_in_a_flush_that_dies_counts_every_event_once() {
    let mongo = Mongo::start().await;
    let want = reference(&mongo).await;
    let all = fixture();
    let (first, second) = split(&all);
    // The limit: what site-a's first day holds after the first flush, so that the first
    // flush keeps it compact and the second splits it.
    let limit = {
        let db = database(&mongo).await;
        let clock = ManualClock::at(t0() + 2 * DAY);
        flusher(&db, &clock).flush(first).await.expect("clean flush");
        let id = shared::rollup::SiteDay::new("site-a", time::local_day(t0(), Tz::UTC)).id();
        let stored: shared::rollup::SiteDayDoc =
            db.collection(c::ROLLUPS).find_one(doc! {"_id": &id}).await.expect("read").expect("compact site-day");
        shared::rollup::SiteDayRollup::from_doc(stored).expect("decodes").encoded_len()
    };
    let writes = {
        let db = database(&mongo).await;
        let clock = ManualClock::at(t0() + 2 * DAY);
        let f = flusher_with(&db, &clock, limit);
        let (_, report) = f.flush(first).await.expect("clean flush");
        assert_eq!(report.rollup_writes, 2, "two compact site-days");
        let (_, report) = f.flush(second).await.expect("clean flush");
        let split: Option<shared::rollup::SiteDayDoc> = db
            .collection(c::ROLLUPS)
            .find_one(doc! {"_id": shared::rollup::SiteDay::new("site-a", time::local_day(t0(), Tz::UTC)).id()})
            .await
            .expect("read");
        assert!(split.expect("site-day").split, "site-a's first day split in the second flush");
        assert_eq!(snapshot(&db).await, want, "a clean split changes no figure");
        report.rollup_writes as usize
    };
    let mut cases = vec![0, 1, writes / 2, writes - 2, writes - 1];
    cases.dedup();
    for n in cases {
        let case = format!("stopped after {n} of {writes} writes");
        let db = database(&mongo).await;
        let clock = ManualClock::at(t0() + 2 * DAY);
        flusher_with(&db, &clock, limit).flush(first).await.expect("clean first flush");
        let err =
            flusher_with(&db, &clock, limit).failing_after(Step::RollupDocs(n)).flush(second).await.expect_err("stops");
        assert!(matches!(err, FlushError::Claimed { .. }), "case {case}: {err}");
        clock.advance(LEASE.as_millis() as i64 + 1000);
        let other = flusher_with(&db, &clock, limit);
        let (verdicts, report) = other.flush(second).await.unwrap_or_else(|e| panic!("case {case}: redelivery: {e}"));
        assert!(verdicts.iter().all(|v| *v == Verdict::Ack), "case {case}: {verdicts:?}");
        assert_eq!(report.recovered_flushes, 1, "case {case}");
        assert_eq!(snapshot(&db).await, want, "case {case}: every event counted once");
    }
}

/// Rewrites the unit documents of `rollups_v3` as the layout before site-days stored them
/// (`rollups_v2`: other ids, no site-day) and removes the site-days: a database as the
/// previous release left it. Returns how many site-days the units belonged to.
async fn as_second_layout(db: &Database) -> usize {
    use mongodb::bson::Document;
    let current = db.collection::<Document>(c::ROLLUPS);
    let mut old = Vec::new();
    let mut site_days = std::collections::HashSet::new();
    let mut cursor = current.find(doc! {}).await.expect("read");
    while cursor.advance().await.expect("next") {
        let mut d = cursor.deserialize_current().expect("document");
        let Ok(part) = d.get_str("part").map(str::to_string) else { continue };
        let site = d.get_str("site_id").expect("site").to_string();
        let int = |k: &str| d.get(k).and_then(|v| v.as_i64().or_else(|| v.as_i32().map(i64::from)));
        let bucket = match (d.get_str("day"), int("hour"), int("minute")) {
            (Ok(day), _, _) => format!("d|{day}"),
            (_, Some(h), _) => format!("h|{h}"),
            (_, _, Some(m)) => format!("m|{m}"),
            _ => panic!("unit without a bucket: {d}"),
        };
        site_days.insert(format!("{site}|{}", d.get_str("site_day").expect("site_day")));
        d.remove("site_day");
        d.insert("_id", format!("{site}|{bucket}|{part}"));
        old.push(d);
    }
    assert!(!old.is_empty(), "the flush wrote units");
    db.collection::<Document>(c::LEGACY_V2_ROLLUPS).insert_many(old).await.expect("old layout");
    current.delete_many(doc! {}).await.expect("clear");
    let site = |id: &str, tz: &str| shared::store::SiteDoc {
        id: id.into(),
        owner_id: "owner".into(),
        name: id.into(),
        domain: "example.com".into(),
        timezone: tz.into(),
        currency: "USD".into(),
        api_key: SiteKey::from_stored(format!("key-{id}")),
        created_at: mongodb::bson::DateTime::from_millis(0),
        share_hash: None,
        key_rotations: Vec::new(),
        imports: Vec::new(),
        imports_rev: 0,
        plausible_compatible: false,
    };
    db.collection(c::SITES).insert_many([site("site-a", "UTC"), site("site-b", "Europe/Berlin")]).await.expect("sites");
    site_days.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_of_the_previous_layout_move_into_split_site_days_and_a_half_done_flush_counts_once() {
    let mongo = Mongo::start().await;
    let want = reference(&mongo).await;
    let all = fixture();
    let (first, second) = split(&all);
    let total = first_flush_rollup_writes(&mongo, 0).await;
    for n in [total / 3, total - 2] {
        let case = format!("the previous release stopped after {n} of {total} unit writes");
        let db = database(&mongo).await;
        let clock = ManualClock::at(t0() + 2 * DAY);
        // Every unit its own document, as the previous layout wrote them; a flush left half done.
        flusher_with(&db, &clock, 0).failing_after(Step::RollupDocs(n)).flush(first).await.expect_err("stops");
        let site_days = as_second_layout(&db).await;

        aggregator::migrate::run(&db, &flusher_settings(shared::rollup::siteday::COMPACT_MAX_BYTES), &clock)
            .await
            .expect("migration");
        let left =
            db.collection::<mongodb::bson::Document>(c::LEGACY_V2_ROLLUPS).count_documents(doc! {}).await.expect("count");
        assert_eq!(left, 0, "case {case}: the old collection is gone");
        assert_eq!(
            db.collection::<mongodb::bson::Document>(c::ROLLUPS).count_documents(doc! {}).await.expect("count"),
            (n + site_days) as u64,
            "case {case}: each old unit moved, and its {site_days} site-days marked split"
        );
        aggregator::migrate::run(&db, &flusher_settings(shared::rollup::siteday::COMPACT_MAX_BYTES), &clock)
            .await
            .expect("second run: nothing");

        clock.advance(LEASE.as_millis() as i64 + 1000);
        let other = flusher(&db, &clock);
        let (verdicts, report) = other.flush(first).await.unwrap_or_else(|e| panic!("case {case}: redelivery: {e}"));
        assert!(verdicts.iter().all(|v| *v == Verdict::Ack), "case {case}: {verdicts:?}");
        assert_eq!(report.recovered_flushes, 1, "case {case}");
        other.flush(second).await.unwrap_or_else(|e| panic!("case {case}: later flush: {e}"));
        assert_eq!(snapshot(&db).await, want, "case {case}: every event counted once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_is_finished_by_its_own_instance_by_the_sweep_or_by_recoverers_in_turn() {
    let mongo = Mongo::start().await;
    let want = reference(&mongo).await;
    let all = fixture();
    let (first, second) = split(&all);
    let failed_id = |e: FlushError| match e {
        FlushError::Claimed { flush, .. } => flush,
        other => panic!("expected a claimed flush: {other}"),
    };

    // Site-days split from their first write: every unit is a document, so a flush has many
    // writes to stop between.
    let flusher = |db: &Database, clock: &ManualClock| flusher_with(db, clock, 0);

    // Its own instance finishes it right away (what the consumer does), then flushes on.
    let db = database(&mongo).await;
    let clock = ManualClock::at(t0() + 2 * DAY);
    let healthy = flusher(&db, &clock);
    let id: FlushId = failed_id(healthy.clone().failing_after(Step::RollupDocs(5)).flush(first).await.expect_err("stops"));
    assert!(healthy.recover(&id).await.expect("recovers"), "no one else holds the lease");
    let (verdicts, report) = healthy.flush(first).await.expect("redelivered now");
    assert!(verdicts.iter().all(|v| *v == Verdict::Ack));
    assert_eq!((report.duplicates, report.new_batches), (50, 0));
    healthy.flush(second).await.expect("next flush");
    assert_eq!(snapshot(&db).await, want, "own recovery");

    // Nobody redelivers: the sweep finishes it once two leases have passed, not before.
    let db = database(&mongo).await;
    let clock = ManualClock::at(t0() + 2 * DAY);
    flusher(&db, &clock).failing_after(Step::RollupDocs(3)).flush(first).await.expect_err("stops");
    let sweeper = flusher(&db, &clock);
    clock.advance(LEASE.as_millis() as i64);
    assert_eq!(sweeper.sweep().await.expect("sweep"), 0, "one lease: maybe still running");
    clock.advance(LEASE.as_millis() as i64 + 1000);
    assert_eq!(sweeper.sweep().await.expect("sweep"), 1);
    let (_, report) = sweeper.flush(first).await.expect("late redelivery");
    assert_eq!(report.duplicates, 50, "already counted");
    sweeper.flush(second).await.expect("next flush");
    assert_eq!(snapshot(&db).await, want, "sweep");

    // Two recoverers in turn, the first stopping halfway too: each skips the documents that
    // already count the flush (their watermark), whoever wrote them.
    let db = database(&mongo).await;
    let clock = ManualClock::at(t0() + 2 * DAY);
    let id = failed_id(flusher(&db, &clock).failing_after(Step::RollupDocs(2)).flush(first).await.expect_err("stops"));
    clock.advance(LEASE.as_millis() as i64 + 1000);
    let stalled = flusher(&db, &clock).failing_after(Step::RollupDocs(3));
    let err = stalled.recover(&id).await.expect_err("the first recoverer stops too");
    assert!(err.to_string().contains("injected"), "{err}");
    let stored = db.collection::<mongodb::bson::Document>(c::ROLLUPS).count_documents(doc! {}).await.expect("count");
    // The site-days had not been marked split: the recoverer splits them again, from the
    // start, over what the flush left (the same 2 unit documents first, then 1 more).
    assert_eq!(stored, 3, "2 documents from the flush, rewritten by its first recoverer, which wrote 1 more");
    clock.advance(LEASE.as_millis() as i64 + 1000);
    let last = flusher(&db, &clock);
    assert!(last.recover(&id).await.expect("recovers"), "the first recoverer's lease has passed");
    let (_, report) = last.flush(first).await.expect("settled");
    assert_eq!(report.duplicates, 50);
    last.flush(second).await.expect("next flush");
    assert_eq!(snapshot(&db).await, want, "two recoverers in turn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_read_a_bounded_number_of_documents_with_twenty_thousand_distinct_keys() {
    let mongo = Mongo::start().await;
    let db = mongo.database().await;
    let clock = ManualClock::at(t0() + 2 * HOUR);
    let f = flusher(&db, &clock);
    // 20,000 batches in one hour, each with its own page, selector, source and visitor, then
    // a popular page arriving late, a few views at a time.
    let distinct: Vec<BatchMessage> = (0..20_000_u64)
        .map(|i| BatchMessage {
            site_id: "big".into(),
            batch_id: BatchId::new(format!("batch_{i:06}")),
            session_id: format!("sess_{i:06}"),
            received_at: t0() + (i as i64) * 100,
            visitor: visitor(i + 1),
            timezone: "UTC".into(),
            domain: "example.com".into(),
            device: Default::default(),
            browser: Default::default(),
            os: Default::default(),
            country: Default::default(),
            currency: "USD".into(),
            events: vec![
                event(
                    EventKind::Pageview {
                        referrer: format!("https://ref{i}.example.org/"),
                        title: "T".into(),
                        new_session: true,
                        variant: None,
                    },
                    &format!("/page/{i}"),
                ),
                event(
                    EventKind::Click {
                        selector: format!("a#link-{i}"),
                        text: String::new(),
                        href: None,
                        marks: Default::default(),
                    },
                    &format!("/page/{i}"),
                ),
            ],
        })
        .collect();
    for chunk in distinct.chunks(500) {
        f.flush(chunk).await.expect("flush");
    }
    let popular: Vec<BatchMessage> = (0..300_u64)
        .map(|i| BatchMessage {
            site_id: "big".into(),
            batch_id: BatchId::new(format!("pop_{i:06}")),
            session_id: format!("popsess_{i:06}"),
            received_at: t0() + 2_000_000 + (i as i64),
            visitor: visitor(1),
            timezone: "UTC".into(),
            domain: "example.com".into(),
            device: Default::default(),
            browser: Default::default(),
            os: Default::default(),
            country: Default::default(),
            currency: "USD".into(),
            events: vec![event(
                EventKind::Pageview { referrer: String::new(), title: "T".into(), new_session: false, variant: None },
                "/pricing",
            )],
        })
        .collect();
    for chunk in popular.chunks(3) {
        f.flush(chunk).await.expect("flush");
    }

    let tz = Tz::UTC;
    let today = time::local_day(t0(), tz);
    let ranges = [
        Range::Hours { label: "24h".into(), hours: time::last_24_hours(t0() + HOUR, tz) },
        Range::Days { label: "7d".into(), from: today - chrono::Duration::days(6), to: today },
        Range::Days { label: "90d".into(), from: today - chrono::Duration::days(89), to: today },
    ];
    for range in ranges {
        let loaded = stats_store::load(&db, &stats_store::Scope::bare("big"), &range, tz, None).await.expect("load");
        let bound = stats_store::read_bound(&range);
        assert!(loaded.docs_read <= bound, "{range:?}: read {} documents, bound {bound}", loaded.docs_read);
        let hourly = matches!(range, Range::Hours { .. });
        assert!(
            loaded.docs_read <= shared::rollup::Part::all().len(),
            "{range:?}: one bucket's documents, no tails: {}",
            loaded.docs_read
        );
        let meta = Meta {
            site_id: "big".into(),
            timeframe: "t".into(),
            timezone: "UTC".into(),
            from: String::new(),
            to: String::new(),
            hourly,
            page: None,
            currency: "USD".into(),
        };
        let s = serde_json::to_value(stats::assemble(meta, loaded.inputs, &[])).expect("json");
        let summary = &s["summary"];
        assert_eq!((summary["pageviews"].as_i64(), summary["clicks"].as_i64()), (Some(20_300), Some(20_000)), "{range:?}");
        let visitors = summary["visitors"].as_i64().expect("visitors");
        if hourly {
            assert!((visitors - 20_000).abs() <= 400, "24h visitors from the sketch within 2 %: {visitors}");
        } else {
            assert_eq!(visitors, 20_000, "{range:?}: daily visitors exact");
        }
        // A list holds LIST_KEYS entries and folds the rest into (other), exactly. Pages: the
        // first LIST_KEYS one-offs fill it, each later one evicts the oldest one-off, and the
        // popular page evicts one more; so it keeps /pricing and LIST_KEYS - 1 one-offs, and
        // (other) is what is left of the 20,300 pageviews. (other) ranks first, /pricing next
        // with its exact count, then one-offs of one pageview each.
        let pages = s["top_pages"].as_array().expect("pages");
        let other_pageviews = 20_300 - 300 - (LIST_KEYS - 1);
        assert_eq!(pages[0], json!({"path": "(other)", "pageviews": other_pageviews}), "{range:?}");
        assert_eq!(pages[1], json!({"path": "/pricing", "pageviews": 300}), "{range:?}");
        assert_eq!(pages.len(), stats_store::TOP_N, "{range:?}");
        for p in &pages[2..] {
            assert!(p["path"].as_str().is_some_and(|path| path.starts_with("/page/")), "{range:?}: {p}");
            assert_eq!(p["pageviews"], 1, "{range:?}: a one-off page: {p}");
        }
        // Clicks: 20,000 one-off selectors; the list keeps the last LIST_KEYS of them.
        let clicks = s["top_clicks"].as_array().expect("clicks");
        assert_eq!(clicks[0], json!({"selector": "(other)", "text": "", "clicks": 20_000 - LIST_KEYS}), "{range:?}");
        assert_eq!(clicks.len(), stats_store::TOP_N, "{range:?}");
        assert!(clicks[1..].iter().all(|c| c["clicks"] == 1), "{range:?}: one-off selectors: {clicks:?}");
        assert_eq!(s["top_referrers"][0]["source"], "(other)");
    }
}
