//! The one-off migration from the first rollup layout: old documents keep answering with the
//! same numbers, an old flush left half done is finished exactly once, and running the
//! migration again changes nothing.

use std::{sync::Arc, time::Duration};

use aggregator::{
    flush::{Flusher, Settings},
    migrate,
    rollup::Capacities,
};
use api::{
    stats::{self, Meta},
    stats_store,
    timeframe::Range,
};
use chrono_tz::Tz;
use cp_tests::mongo::Mongo;
use mongodb::{
    Database,
    bson::{self, DateTime, Document, doc},
};
use serde_json::{Value, json};
use shared::{
    clock::{Clock, ManualClock},
    event::{ClientId, Event, EventKind},
    message::BatchMessage,
    names::collections as c,
    time,
};

/// 10:00Z tomorrow: the fixture's time. Relative to now, because the MongoDB-wire server
/// expires documents (visitor marks, sessions) by the real clock.
fn t0() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    now - now.rem_euclid(86_400_000) + 86_400_000 + 10 * 3_600_000
}
fn hour_s() -> i64 {
    t0() / 1000
}
const OLD_FLUSH: &str = "abcdef0123456789";

fn settings() -> Settings {
    Settings {
        lease: Duration::from_secs(30),
        caps: Capacities::with_keys(1000, 1000),
        day_retention: Duration::from_secs(400 * 86_400),
        compact_max_bytes: shared::rollup::siteday::COMPACT_MAX_BYTES,
    }
}

/// The two batches of the old flush left half done.
fn half_done_batches() -> Vec<BatchMessage> {
    (0..2)
        .map(|i| BatchMessage {
            site_id: "s1".into(),
            batch_id: shared::ids::BatchId::new(format!("old_batch_{i}")),
            session_id: "old_sess_1".into(),
            received_at: t0() + 60_000,
            visitor: "vF".into(),
            timezone: "UTC".into(),
            domain: "example.com".into(),
            device: Default::default(),
            browser: Default::default(),
            os: Default::default(),
            country: Default::default(),
            currency: "USD".into(),
            events: vec![
                Event {
                    ts: 0,
                    page_id: ClientId::parse("page_0001").expect("id"),
                    url: "https://example.com/pricing".into(),
                    kind: EventKind::Pageview {
                        referrer: String::new(),
                        title: "P".into(),
                        new_session: false,
                        variant: None,
                    },
                },
                Event {
                    ts: 0,
                    page_id: ClientId::parse("page_0001").expect("id"),
                    url: "https://example.com/pricing".into(),
                    kind: EventKind::Click {
                        selector: "button#cta".into(),
                        text: "Go".into(),
                        href: None,
                        marks: Default::default(),
                    },
                },
            ],
        })
        .collect()
}

/// Documents as the first layout wrote them. The old flush reached the day's series and the
/// day's `/pricing` entry before its process died; the hour documents do not have it.
async fn seed_old_layout(db: &Database) {
    let hour = hour_s();
    let today = time::day_string(time::local_day(t0(), Tz::UTC));
    let guard = format!("f_{OLD_FLUSH}");
    let hour_expire = DateTime::from_millis(t0() + 49 * 3_600_000);
    let mut day_series = doc! {"_id": format!("s1|d|{today}"), "site_id": "s1", "day": &today,
    "pageviews": 7_i64, "sessions": 2_i64, "clicks": 5_i64, "visitors": 3_i64, "scroll_sum": 100_i64, "time_sum": 7.5,
    "r25": 2_i64, "r50": 1_i64};
    day_series.insert(&guard, 1);
    let hour_series = doc! {"_id": format!("s1|h|{hour}"), "site_id": "s1", "hour": hour, "expire_at": hour_expire,
    "pageviews": 5_i32, "sessions": 2_i32, "clicks": 3_i32, "visitors": 2_i32, "scroll_sum": 100_i32, "time_sum": 7.5,
    "r25": 2_i32, "r50": 1_i32};
    db.collection::<Document>(c::LEGACY_ROLLUPS).insert_many([day_series, hour_series]).await.expect("old series");

    let mut tops = Vec::new();
    for (bucket, is_day) in [(Some(today.as_str()), true), (None, false)] {
        let top = |dim: &str, key: &str, count: i64, text: Option<&str>| {
            let mut d = doc! {"_id": format!("s1|{}|{dim}|{key}", if is_day { format!("d|{today}") } else { format!("h|{hour}") }),
            "site_id": "s1", "dim": dim, "key": key, "count": count};
            match bucket {
                Some(day) => d.insert("day", day),
                None => d.insert("hour", hour),
            };
            if let Some(t) = text {
                d.insert("text", t);
            }
            d
        };
        tops.push(top("page", "/", 3, None));
        let mut pricing = top("page", "/pricing", if is_day { 4 } else { 2 }, None);
        if is_day {
            pricing.insert(&guard, 1);
        }
        tops.push(pricing);
        tops.push(top("click", "button#cta", 3, Some("Go")));
        tops.push(top("referrer", "google.com", 1, None));
        tops.push(top("referrer", "(direct)", 1, None));
    }
    db.collection::<Document>(c::LEGACY_TOP_ROLLUPS).insert_many(tops).await.expect("old tops");

    let mark = |id: String, v: &str, f: &str, day: bool| {
        let mut d =
            doc! {"_id": id, "site_id": "s1", "v": v, "f": f, "expire_at": DateTime::from_millis(t0() + 3 * 86_400_000)};
        if day {
            d.insert("day", &today)
        } else {
            d.insert("hour", hour)
        };
        d
    };
    let mut marks = Vec::new();
    for v in ["va", "vb"] {
        marks.push(mark(format!("s1|d|{today}|{v}"), v, "older", true));
        marks.push(mark(format!("s1|h|{hour}|{v}"), v, "older", false));
    }
    marks.push(mark(format!("s1|d|{today}|vF"), "vF", OLD_FLUSH, true));
    marks.push(mark(format!("s1|h|{hour}|vF"), "vF", OLD_FLUSH, false));
    db.collection::<Document>(c::VISITOR_MARKS).insert_many(marks).await.expect("old marks");

    let raws: Vec<Document> = half_done_batches()
        .into_iter()
        .map(|m| {
            let mut d = bson::to_document(&m).expect("bson");
            d.insert("_id", m.msg_id());
            d.insert("received", DateTime::from_millis(m.received_at));
            d.insert("applied", false);
            d.insert("flush", OLD_FLUSH);
            d.insert("claimed_at", DateTime::from_millis(t0() + 61_000));
            d
        })
        .collect();
    db.collection::<Document>(c::RAW_BATCHES).insert_many(raws).await.expect("old raw batches");
}

async fn stats_of(db: &Database) -> (Value, Value) {
    let tz = Tz::UTC;
    let day = time::local_day(t0(), tz);
    let mut out = Vec::new();
    for range in [
        Range::Days { label: "custom".into(), from: day, to: day },
        Range::Hours { label: "24h".into(), hours: time::last_24_hours(t0() + 3_600_000, tz) },
    ] {
        let loaded = stats_store::load(db, &stats_store::Scope::bare("s1"), &range, tz, None).await.expect("load");
        let hourly = matches!(range, Range::Hours { .. });
        let meta = Meta {
            site_id: "s1".into(),
            timeframe: "t".into(),
            timezone: "UTC".into(),
            from: String::new(),
            to: String::new(),
            hourly,
            page: None,
            currency: "USD".into(),
        };
        out.push(cp_tests::v2::only_v2(&serde_json::to_value(stats::assemble(meta, loaded.inputs, &[])).expect("json")));
    }
    let hours = out.pop().expect("24h");
    (out.pop().expect("days"), hours)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_rollups_are_migrated_once_and_a_half_done_old_flush_is_finished_exactly_once() {
    let mongo = Mongo::start().await;
    let db = mongo.database().await;
    seed_old_layout(&db).await;
    let clock = ManualClock::at(t0() + 3_600_000);

    migrate::run(&db, &settings(), &clock).await.expect("migration");
    // The old half-done flush is now an applying record, finished by the usual recovery.
    let flusher = Flusher::new(db.clone(), settings(), Arc::new(clock.clone()));
    clock.advance(120_000);
    assert_eq!(flusher.sweep().await.expect("sweep"), 1, "the old flush, renamed {OLD_FLUSH}:1");

    let (days, hours) = stats_of(&db).await;
    // The old flush's 2 pageviews and 2 clicks count once, in the day (where they were) and
    // in the hour (where they were not yet).
    let want_summary = json!({"pageviews": 7, "visitors": 3, "sessions": 2, "clicks": 5,
        "avg_scroll_depth": 100.0 / 7.0, "avg_time_seconds": 7.5 / 7.0,
        "conversions": 0, "conversion_rate": 0.0, "bounce_rate": 0.0});
    assert_eq!(days["summary"], want_summary, "{days}");
    assert_eq!(hours["summary"], want_summary, "{hours}");
    for s in [&days, &hours] {
        assert_eq!(s["top_pages"], json!([{"path": "/pricing", "pageviews": 4}, {"path": "/", "pageviews": 3}]));
        assert_eq!(s["top_clicks"], json!([{"selector": "button#cta", "text": "Go", "clicks": 5}]));
        assert_eq!(
            s["top_referrers"],
            json!([{"source": "(direct)", "visits": 1, "conversions": 0}, {"source": "google.com", "visits": 1, "conversions": 0}])
        );
    }
    let hour_points: i64 =
        hours["series"].as_array().expect("series").iter().map(|p| p["visitors"].as_i64().unwrap_or(0)).sum();
    assert_eq!(hour_points, 3, "hour sketch from the old hourly marks");

    // The old layout is gone; running again changes nothing.
    for name in [c::LEGACY_ROLLUPS, c::LEGACY_TOP_ROLLUPS] {
        assert_eq!(db.collection::<Document>(name).count_documents(doc! {}).await.expect("count"), 0, "{name}");
    }
    let hourly_marks =
        db.collection::<Document>(c::VISITOR_MARKS).count_documents(doc! {"hour": {"$exists": true}}).await.expect("count");
    assert_eq!(hourly_marks, 0);
    migrate::run(&db, &settings(), &clock).await.expect("second run");
    assert_eq!(flusher.sweep().await.expect("sweep"), 0);
    assert_eq!(stats_of(&db).await, (days, hours), "idempotent");
    assert!(clock.now_ms() > t0());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_database_is_marked_migrated_without_work() {
    let mongo = Mongo::start().await;
    let db = mongo.database().await;
    let clock = ManualClock::at(t0());
    migrate::run(&db, &settings(), &clock).await.expect("migration");
    for id in migrate::IDS {
        let record =
            db.collection::<Document>(c::MIGRATIONS).find_one(doc! {"_id": id}).await.expect("read").expect("recorded");
        assert_eq!(record.get_str("state"), Ok("done"), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_goals_move_into_site_configs_and_old_share_links_get_their_documents() {
    let mongo = Mongo::start().await;
    let db = mongo.database().await;
    let goal = |id: &str, site: &str, created: i64, deleted: Option<i64>| {
        let mut d = doc! {"_id": id, "site_id": site, "name": format!("Goal {id}"), "kind": "event", "match": "Signup",
        "created_at": DateTime::from_millis(created)};
        if let Some(t) = deleted {
            d.insert("deleted_at", DateTime::from_millis(t));
        }
        d
    };
    let old_goals = [goal("g2", "s1", 2_000, None), goal("g1", "s1", 1_000, Some(5_000)), goal("g3", "s2", 3_000, None)];
    db.collection::<Document>(c::LEGACY_GOALS).insert_many(old_goals).await.expect("old goals");
    db.collection::<Document>(c::SITES)
        .insert_many([doc! {"_id": "s1", "share_hash": "abc"}, doc! {"_id": "s2"}])
        .await
        .expect("sites");
    let clock = ManualClock::at(t0());

    migrate::run(&db, &settings(), &clock).await.expect("migration");
    migrate::run(&db, &settings(), &clock).await.expect("second run: nothing");

    let configs = db.collection::<shared::site_config::SiteConfigDoc>(c::SITE_CONFIG);
    let s1 = configs.find_one(doc! {"_id": "s1"}).await.expect("read").expect("s1's config");
    let summary: Vec<(&str, i64, Option<i64>)> =
        s1.goals.iter().map(|g| (g.id.as_str(), g.created_ms, g.deleted_ms)).collect();
    assert_eq!(summary, vec![("g1", 1_000, Some(5_000)), ("g2", 2_000, None)], "oldest first, the deleted one kept");
    let s2 = configs.find_one(doc! {"_id": "s2"}).await.expect("read").expect("s2's config");
    assert_eq!(s2.goals.len(), 1);
    assert_eq!(
        db.collection::<Document>(c::LEGACY_GOALS).count_documents(doc! {}).await.expect("count"),
        0,
        "old goals gone"
    );
    let link =
        db.collection::<Document>(c::SHARE_LINKS).find_one(doc! {"_id": "abc"}).await.expect("read").expect("s1's link");
    assert_eq!(link.get_str("site_id"), Ok("s1"));
    assert_eq!(
        db.collection::<Document>(c::SHARE_LINKS).count_documents(doc! {}).await.expect("count"),
        1,
        "only s1 had a link"
    );
}
