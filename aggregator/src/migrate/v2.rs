//! The one-off migration from the first rollup layout to the second (`rollups_v2`: one
//! document per unit), run by the aggregator at start, before it consumes anything; the
//! migration to site-days ([`super::v3`]) runs right after it.
//!
//! The first layout kept counters in `rollups` (one document per site and day or hour, with
//! `$inc`ed fields), top lists in `top_rollups` (one document per site, bucket, dimension and
//! key), day and hour visitor marks in `visitor_marks`, and an `applied` flag on raw batches.
//! Its flushes guarded each document with a field `f_<flush>` until done.
//!
//! 1. Take the migration lease (one aggregator migrates; the others wait for `done`; see
//!    [`super::run_once`]).
//! 2. Find the old flushes left half done (raw batches with `applied: false`).
//! 3. Series documents become [`Part::Series`] documents; an `f_F` guard of a half-done flush F
//!    becomes a watermark of instance `F` at sequence 1: F is counted there. Hour documents get
//!    a visitor sketch built from the hour's old marks.
//! 4. Each (site, bucket, dimension) group of top documents becomes one bounded [`TopList`].
//!    The increments a half-done flush F made to some of them are taken out again (they are
//!    known from F's raw batches), so that F counts in none of them.
//! 5. Half-done flushes become flush records `F:1` in state `applying` (their raw batches and
//!    visitor marks renamed to match), which the usual recovery then finishes.
//! 6. Delete the hourly marks, drop the old collections, record `done`.
//!
//! Every step writes documents whose content depends only on the old data, which stays until
//! step 6: an interrupted migration simply runs again.

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;
use futures::TryStreamExt;
use mongodb::{
    Database,
    bson::{self, Bson, DateTime, Document, doc},
};
use shared::{
    clock::Clock,
    message::BatchMessage,
    names::collections as c,
    rollup::{Body, Bucket, Counts, Dim, Part, Rollup, RollupKey, Series, TopDelta, VisitorSketch, Watermark, sketch},
    store::{FlushRecord, FlushState, RawBatchDoc},
    time,
};

use crate::{
    flush::Settings,
    rollup::{DocDelta, FlushDeltas},
};

/// This migration's id in [`c::MIGRATIONS`].
pub const ID: &str = "rollups-v2";

/// Migrates the first layout, if present, into `rollups_v2` (the caller holds the lease).
pub(super) async fn migrate(db: &Database, settings: &Settings, clock: &dyn Clock) -> anyhow::Result<()> {
    if !has_legacy_data(db).await? {
        return Ok(());
    }
    tracing::warn!("migrating rollups to the bounded layout (one-off)");
    let half_done = half_done_flushes(db).await?;
    migrate_series(db, settings, clock, &half_done).await.context("migrating series")?;
    migrate_tops(db, settings, &half_done).await.context("migrating top lists")?;
    requeue_half_done(db, &half_done).await.context("re-queueing half-done flushes")?;
    db.collection::<Document>(c::VISITOR_MARKS).delete_many(doc! {"hour": {"$exists": true}}).await?;
    db.collection::<Document>(c::LEGACY_ROLLUPS).drop().await?;
    db.collection::<Document>(c::LEGACY_TOP_ROLLUPS).drop().await?;
    tracing::warn!("rollup migration to the bounded layout done");
    Ok(())
}

async fn has_legacy_data(db: &Database) -> anyhow::Result<bool> {
    for name in [c::LEGACY_ROLLUPS, c::LEGACY_TOP_ROLLUPS] {
        if db.collection::<Document>(name).find_one(doc! {}).await?.is_some() {
            return Ok(true);
        }
    }
    Ok(db.collection::<Document>(c::RAW_BATCHES).find_one(doc! {"applied": false}).await?.is_some())
}

/// A half-done old flush: its id and its batches.
struct HalfDone {
    batches: Vec<BatchMessage>,
    claimed_at: DateTime,
}

/// Old flushes with batches not applied, by old id (a re-run finds them renamed `F:1`).
async fn half_done_flushes(db: &Database) -> anyhow::Result<HashMap<String, HalfDone>> {
    let mut out: HashMap<String, HalfDone> = HashMap::new();
    let mut cursor = db.collection::<Document>(c::RAW_BATCHES).find(doc! {"applied": false}).await?;
    while let Some(d) = cursor.try_next().await? {
        let claimed_at = d.get_datetime("claimed_at").copied().unwrap_or_else(|_| DateTime::from_millis(0));
        let raw: RawBatchDoc = bson::from_document(d).context("reading an old raw batch")?;
        let id = raw.flush.strip_suffix(":1").unwrap_or(&raw.flush).to_string();
        out.entry(id).or_insert_with(|| HalfDone { batches: Vec::new(), claimed_at }).batches.push(raw.msg);
    }
    Ok(out)
}

fn num(d: &Document, key: &str) -> f64 {
    match d.get(key) {
        Some(Bson::Int32(v)) => f64::from(*v),
        Some(Bson::Int64(v)) => *v as f64,
        Some(Bson::Double(v)) => *v,
        _ => 0.0,
    }
}

fn int(d: &Document, key: &str) -> i64 {
    num(d, key).round() as i64
}

/// The bucket of an old document (`day` string or `hour` epoch seconds).
fn bucket_of(d: &Document) -> anyhow::Result<Bucket> {
    if let Ok(day) = d.get_str("day") {
        return time::parse_day(day).map(Bucket::Day).with_context(|| format!("old document with day {day:?}"));
    }
    match d.get("hour") {
        Some(Bson::Int64(h)) => Ok(Bucket::Hour(*h)),
        Some(Bson::Int32(h)) => Ok(Bucket::Hour(i64::from(*h))),
        other => anyhow::bail!("old document without a day or hour: {other:?}"),
    }
}

/// Old flush ids guarding `d` (fields `f_<id>`).
fn guards(d: &Document) -> impl Iterator<Item = &str> {
    d.keys().filter_map(|k| k.strip_prefix("f_"))
}

/// Writes `rollup` as a document of the second layout (its `_id` and no site-day), which
/// [`super::v3`] then moves to site-days.
async fn write(db: &Database, rollup: &Rollup, settings: &Settings) -> anyhow::Result<()> {
    let mut fields = bson::to_document(&rollup.to_doc(settings.day_retention))?;
    fields.remove("_id");
    fields.remove("site_day");
    let expire_at = fields.remove("expire_at").unwrap_or(Bson::Null);
    let k = &rollup.key;
    let id = match k.bucket {
        Bucket::Day(d) => format!("{}|d|{}|{}", k.site_id, time::day_string(d), k.part.name()),
        Bucket::Hour(h) => format!("{}|h|{h}|{}", k.site_id, k.part.name()),
        Bucket::Minute(m) => format!("{}|m|{m}|{}", k.site_id, k.part.name()),
    };
    db.collection::<Document>(c::LEGACY_V2_ROLLUPS)
        .update_one(doc! {"_id": id}, doc! {"$set": fields, "$setOnInsert": {"expire_at": expire_at}})
        .upsert(true)
        .await?;
    Ok(())
}

/// A unit of the second layout, which knew no site-days: any day serves (it is not written).
fn key(site_id: String, bucket: Bucket, part: Part) -> RollupKey {
    let day = match bucket {
        Bucket::Day(d) => d,
        Bucket::Hour(s) | Bucket::Minute(s) => time::local_day(s * 1000, chrono_tz::Tz::UTC),
    };
    RollupKey::new(site_id, day, bucket, part)
}

async fn migrate_series(
    db: &Database,
    settings: &Settings,
    clock: &dyn Clock,
    half_done: &HashMap<String, HalfDone>,
) -> anyhow::Result<()> {
    let now = DateTime::from_millis(clock.now_ms());
    let mut cursor = db.collection::<Document>(c::LEGACY_ROLLUPS).find(doc! {}).await?;
    while let Some(d) = cursor.try_next().await? {
        let site_id = d.get_str("site_id").context("old series without site_id")?.to_string();
        let bucket = bucket_of(&d)?;
        let counters = Series {
            pageviews: int(&d, "pageviews"),
            sessions: int(&d, "sessions"),
            clicks: int(&d, "clicks"),
            visitors: int(&d, "visitors"),
            scroll_sum: int(&d, "scroll_sum"),
            time_sum: num(&d, "time_sum"),
            reached: [int(&d, "r25"), int(&d, "r50"), int(&d, "r75"), int(&d, "r100")],
            // The first layout counted none of these: its sessions stay out of bounce rates.
            conversions: 0,
            engaged: 0,
            started: 0,
        };
        let visitors = match bucket {
            Bucket::Day(_) | Bucket::Minute(_) => None,
            Bucket::Hour(h) => Some(hour_sketch(db, &site_id, h).await?),
        };
        let mut rollup = Rollup::empty(key(site_id, bucket, Part::Series));
        rollup.body = Body::Series { counters, visitors };
        rollup.rev = 1;
        for f in guards(&d).filter(|f| half_done.contains_key(*f)) {
            rollup.applied.insert(f.to_string(), Watermark { seq: 1, at: now });
        }
        write(db, &rollup, settings).await?;
    }
    Ok(())
}

async fn hour_sketch(db: &Database, site_id: &str, hour: i64) -> anyhow::Result<VisitorSketch> {
    let mut s = VisitorSketch::default();
    let mut cursor = db
        .collection::<Document>(c::VISITOR_MARKS)
        .find(doc! {"site_id": site_id, "hour": hour})
        .projection(doc! {"v": 1})
        .await?;
    while let Some(m) = cursor.try_next().await? {
        if let Ok(v) = m.get_str("v") {
            s.insert(sketch::visitor_hash64(v));
        }
    }
    Ok(s)
}

fn legacy_dim(name: &str) -> Option<Dim> {
    match name {
        "page" => Some(Dim::Page),
        "click" => Some(Dim::Click),
        "referrer" => Some(Dim::Source),
        _ => None,
    }
}

async fn migrate_tops(db: &Database, settings: &Settings, half_done: &HashMap<String, HalfDone>) -> anyhow::Result<()> {
    // What each half-done flush added, by document and key, to take out where it landed.
    let mut partial: HashMap<&str, FlushDeltas> = HashMap::new();
    for (id, f) in half_done {
        let mut d = FlushDeltas::default();
        for m in &f.batches {
            // The first layout had no goals.
            d.add_batch(m, &[]);
        }
        partial.insert(id.as_str(), d);
    }
    let mut groups: BTreeMap<RollupKey, BTreeMap<String, TopDelta>> = BTreeMap::new();
    let mut cursor = db.collection::<Document>(c::LEGACY_TOP_ROLLUPS).find(doc! {}).await?;
    while let Some(d) = cursor.try_next().await? {
        let Some(dim) = d.get_str("dim").ok().and_then(legacy_dim) else { continue };
        let site_id = d.get_str("site_id").context("old top entry without site_id")?.to_string();
        let key = key(site_id, bucket_of(&d)?, Part::Top(dim));
        let name = d.get_str("key").context("old top entry without key")?.to_string();
        let mut count = int(&d, "count");
        for f in guards(&d) {
            // Matched without the site-day, which the second layout did not have.
            let added = partial.get(f).and_then(|p| {
                p.docs.iter().find(|(k, _)| (&k.site_id, k.bucket, k.part) == (&key.site_id, key.bucket, key.part))
            });
            if let Some((_, DocDelta::Top(added))) = added {
                count -= added.get(&name).map_or(0, |t| t.counts.n as i64);
            }
        }
        if count <= 0 {
            continue;
        }
        let text = d.get_str("text").ok().map(str::to_string);
        groups.entry(key).or_default().insert(name, TopDelta { counts: Counts::of(count as u64), text });
    }
    for (key, deltas) in groups {
        let cap = settings.caps.of(&key.bucket, key.part);
        let mut rollup = Rollup::empty(key);
        if let Body::Top(list) = &mut rollup.body {
            list.apply(&deltas, &cap);
        }
        rollup.rev = 1;
        write(db, &rollup, settings).await?;
    }
    Ok(())
}

async fn requeue_half_done(db: &Database, half_done: &HashMap<String, HalfDone>) -> anyhow::Result<()> {
    for (old, f) in half_done {
        let id = format!("{old}:1");
        let record = FlushRecord {
            id: id.clone(),
            inst: old.clone(),
            seq: 1,
            state: FlushState::Applying,
            claimed_at: f.claimed_at,
            done_at: None,
        };
        let inserted = db.collection::<FlushRecord>(c::FLUSHES).insert_one(&record).await;
        if let Err(e) = inserted
            && !e.to_string().contains("11000")
            && !e.to_string().contains("UNIQUE")
        {
            return Err(e.into());
        }
        db.collection::<Document>(c::RAW_BATCHES).update_many(doc! {"flush": old}, doc! {"$set": {"flush": &id}}).await?;
        db.collection::<Document>(c::VISITOR_MARKS).update_many(doc! {"f": old}, doc! {"$set": {"f": &id}}).await?;
        tracing::warn!(flush = %id, batches = f.batches.len(), "an old half-done flush will be finished by recovery");
    }
    Ok(())
}
