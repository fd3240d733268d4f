//! Backfills (issue 21) against a real MongoDB-wire server and a clock the test moves: a goal
//! and a funnel created after three days of data count, once backfilled, exactly what they
//! would have counted had they existed from the start — also when the backfill dies after any
//! write of any chunk (scan or resolve) and another aggregator resumes it after its lease.

use aggregator::flush::{Flusher, Step, Verdict, backfill::Backlog};
use api::{stats_store, timeframe::Range};
use chrono_tz::Tz;
use cp_tests::mongo::{Mongo, flusher};
use mongodb::{Database, bson::doc};
use shared::{
    backfill::{BackfillDoc, ItemKind},
    clock::ManualClock,
    event::{ClientId, Event, EventKind},
    funnel::{FunnelDoc, FunnelStep},
    goal::GoalKind,
    ids::BatchId,
    message::BatchMessage,
    names::collections as c,
    rollup::Dim,
    site_config::{GoalDoc, SiteConfigDoc},
    time,
};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 10:00Z tomorrow: relative to now, because the MongoDB-wire server expires documents by the
/// real clock.
fn t0() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    now - now.rem_euclid(DAY) + DAY + 10 * HOUR
}
/// When the goal and the funnel under test are created: after every batch.
fn cut() -> i64 {
    t0() + HOUR
}
const SITE: &str = "site-a";

fn event(ts: i64, page: &str, kind: EventKind) -> Event {
    Event { ts, page_id: ClientId::parse(page).expect("id"), url: "https://example.com/".into(), kind }
}

/// 90 batches of 30 sessions (three batches each, an hour apart, so some run across midnight)
/// over three days: pageviews, clicks on the CTA or elsewhere, and Signup events, in a mix
/// that reaches every step of the funnel and some steps out of order.
fn fixture() -> Vec<BatchMessage> {
    (0..90_i64)
        .map(|i| {
            let session = i / 3;
            let part = i % 3;
            let received_at = t0() - 2 * DAY - 5 * HOUR + session * 90 * 60_000 + part * HOUR;
            let page = format!("page_{session:04}");
            let mut events = Vec::new();
            let ts = received_at;
            if part == 0 && session % 5 == 4 {
                // Out of order: the event before the page.
                events.push(event(ts, &page, custom("Signup")));
            }
            if part == 0 {
                let pv =
                    EventKind::Pageview { referrer: String::new(), title: "T".into(), new_session: true, variant: None };
                events.push(event(ts + 1, &page, pv));
            }
            if (part == 1 && session % 5 != 3) || (part == 2 && session % 5 == 3) {
                let selector = if session % 7 == 0 { "a#other" } else { "button#cta" };
                events.push(event(ts + 2, &page, click(selector)));
            }
            if part == 2 && session % 2 == 0 {
                events.push(event(ts + 3, &page, custom("Signup")));
            }
            if events.is_empty() {
                events.push(event(ts, &page, EventKind::Time { seconds: 2.0 }));
            }
            BatchMessage {
                site_id: SITE.into(),
                batch_id: BatchId::new(format!("batch_{i:04}")),
                session_id: format!("sess_{session:04}"),
                received_at,
                visitor: format!("{session:032x}"),
                timezone: "UTC".into(),
                domain: "example.com".into(),
                device: Default::default(),
                browser: Default::default(),
                os: Default::default(),
                country: Default::default(),
                currency: "USD".into(),
                events,
            }
        })
        .collect()
}

fn custom(name: &str) -> EventKind {
    EventKind::Event { name: name.into(), props: Default::default() }
}

fn click(selector: &str) -> EventKind {
    EventKind::Click { selector: selector.into(), text: "Go".into(), href: None, marks: Default::default() }
}

fn items(created_ms: i64, backfilling: bool) -> (GoalDoc, FunnelDoc) {
    let step = |kind, m: &str| FunnelStep { kind, matcher: m.into() };
    (
        GoalDoc {
            id: "g-signup".into(),
            name: "Signup".into(),
            kind: GoalKind::Event,
            matcher: "Signup".into(),
            created_ms,
            deleted_ms: None,
            backfilling,
        },
        FunnelDoc {
            id: "f-signup".into(),
            name: "Signup flow".into(),
            steps: vec![step(GoalKind::Pageview, "/"), step(GoalKind::Click, "button#cta"), step(GoalKind::Event, "Signup")],
            created_ms,
            deleted_ms: None,
            backfilling,
        },
    )
}

/// A database with the goal and the funnel created at `created_ms`, and the fixture flushed.
async fn database(mongo: &Mongo, created_ms: i64, backfilling: bool) -> Database {
    let db = mongo.database().await;
    let (goal, funnel) = items(created_ms, backfilling);
    let config = SiteConfigDoc { id: SITE.into(), rev: 1, goals: vec![goal], funnels: vec![funnel], segments: Vec::new() };
    db.collection::<SiteConfigDoc>(c::SITE_CONFIG).insert_one(config).await.expect("config");
    if backfilling {
        let jobs = [
            BackfillDoc::new(SITE, ItemKind::Goal, "g-signup", created_ms),
            BackfillDoc::new(SITE, ItemKind::Funnel, "f-signup", created_ms),
        ];
        db.collection::<BackfillDoc>(c::BACKFILLS).insert_many(jobs).await.expect("jobs");
    }
    let clock = ManualClock::at(t0());
    let live = flusher(&db, &clock);
    let all = fixture();
    for chunk in all.chunks(40) {
        let (verdicts, _) = live.flush(chunk).await.expect("flush");
        assert!(verdicts.iter().all(|v| *v == Verdict::Ack));
    }
    db
}

/// The funnel's sessions per step and the goal's completions, over the fixture's days.
async fn figures(db: &Database) -> (Vec<i64>, i64) {
    let day = |ms: i64| time::local_day(ms, Tz::UTC);
    let range = Range::Days { label: "custom".into(), from: day(t0() - 3 * DAY), to: day(t0() + DAY) };
    let (steps, _) = stats_store::load_funnel(db, SITE, &range, Tz::UTC, "f-signup", 3).await.expect("funnel");
    let loaded = stats_store::load(db, &stats_store::Scope::bare(SITE), &range, Tz::UTC, None).await.expect("stats");
    let goal = loaded
        .inputs
        .lists
        .get(&Dim::Goal)
        .and_then(|rows| rows.iter().find(|r| r.key == "g-signup"))
        .map_or(0, |r| r.count);
    (steps, goal)
}

/// Runs backfill turns with `f` until no job is left or a turn fails; returns the error.
async fn run_until_done(f: &Flusher) -> Option<String> {
    for _ in 0..1000 {
        match f.backfill_once(&Backlog::Nothing).await {
            Ok(None) => return None,
            Ok(Some(_)) => {}
            Err(e) => return Some(e.to_string()),
        }
    }
    panic!("the backfill does not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_counts_what_the_items_would_have_counted_from_the_start_even_when_it_dies_midway() {
    let mongo = Mongo::start().await;
    let reference = figures(&database(&mongo, t0() - 10 * DAY, false).await).await;
    // By hand: 30 sessions reach step 1; those with a CTA click (not a#other: session % 7
    // == 0) reach step 2; of those, the even sessions whose Signup follows the click reach
    // step 3 — every fifth session's early Signup comes before its page and counts nothing.
    let step2: Vec<i64> = (0..30).filter(|s| s % 7 != 0).collect();
    let step3 = step2.iter().filter(|s| *s % 2 == 0).count() as i64;
    let signups = (0..30).filter(|s| s % 2 == 0 || s % 5 == 4).count() as i64;
    assert_eq!(reference, (vec![30, step2.len() as i64, step3], signups), "the reference by hand");

    // Without faults: the same figures, and the items no longer backfilling.
    let db = database(&mongo, cut(), true).await;
    assert_eq!(figures(&db).await, (vec![0, 0, 0], 0), "nothing counted before the backfill");
    let clock = ManualClock::at(cut() + 20_000);
    assert_eq!(run_until_done(&flusher(&db, &clock).with_backfill_chunk(7)).await, None);
    assert_eq!(figures(&db).await, reference);
    let config =
        db.collection::<SiteConfigDoc>(c::SITE_CONFIG).find_one(doc! {"_id": SITE}).await.expect("read").expect("config");
    assert!(!config.goals[0].backfilling && !config.funnels[0].backfilling, "flags cleared");
    clock.advance(61_000);
    let left = flusher(&db, &clock).backfill_once(&Backlog::Nothing).await.expect("a turn");
    assert_eq!(left, None, "the jobs are removed, not merely held");

    // Dying after a write of a scan chunk or of a resolve chunk: resumed by another process
    // once the lease has run out, with no write counted twice.
    // Scan chunks are 7 batches (13 chunks); the resolve's chunks of 7 sessions follow.
    let faults = [
        Step::RollupDocs(1),
        Step::RollupDocs(2),
        Step::BackfillChunk(1),
        Step::BackfillChunk(6),
        Step::BackfillChunk(13),
        Step::SessionDocs(1),
        Step::SessionDocs(5),
        Step::BackfillChunk(15),
    ];
    for fault in faults {
        let db = database(&mongo, cut(), true).await;
        let clock = ManualClock::at(cut() + 20_000);
        let dying = flusher(&db, &clock).with_backfill_chunk(7).failing_after(fault);
        let died = run_until_done(&dying).await;
        assert!(died.as_deref().is_some_and(|e| e.contains("injected")), "{fault:?}: the backfill died: {died:?}");
        clock.advance(61_000);
        // Another process, whose own chunk size differs: the job keeps the one it started with.
        assert_eq!(run_until_done(&flusher(&db, &clock).with_backfill_chunk(1000)).await, None, "{fault:?}");
        assert_eq!(figures(&db).await, reference, "{fault:?}");
    }
}
