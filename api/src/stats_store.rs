//! Reading stats from the rollup documents (see [`shared::rollup`]).
//!
//! One query for the documents of the range's buckets — at most `buckets × parts` of them
//! (a 90-day range: 90 × 4 = 360; 24 hours: 24 × 4 = 96) — whatever the traffic, the distinct
//! keys or the visitors, and never raw events. Top lists are read by their heads (their 64
//! highest entries); only when the heads cannot settle a list's top rows does a second query
//! fetch the tails of that dimension's documents, so a request reads at most twice the bound.

use std::collections::HashMap;

use chrono_tz::Tz;
use futures::TryStreamExt;
use mongodb::{
    Database,
    bson::{self, Document},
};
use shared::{
    names::collections as c,
    rollup::{self, Body, Bucket, Dim, Part, Rollup, RollupDoc, Series, TopList, VisitorSketch, toplist},
    time,
};

use crate::{
    error::ApiError,
    stats::{Inputs, RollupRow, TopRow},
    timeframe::Range,
};

/// Most entries in a top list.
pub const TOP_N: usize = 10;

/// What a request read, and how many documents that took.
pub struct Loaded {
    pub inputs: Inputs,
    pub docs_read: usize,
}

/// The most documents a request for `range` may read: every part of every bucket once, plus
/// the top lists' tails once.
pub fn read_bound(range: &Range) -> usize {
    let buckets = match range {
        Range::Days { from, to, .. } => Range::days(*from, *to).len(),
        Range::Hours { hours, .. } => hours.len(),
    };
    buckets * Part::all().len() + buckets * Dim::ALL.len()
}

/// Reads everything a stats response needs for `range`.
pub async fn load(db: &Database, site_id: &str, range: &Range, tz: Tz) -> Result<Loaded, ApiError> {
    let parts = Part::all();
    let filter = match range {
        Range::Days { from, to, .. } => rollup::days_filter(site_id, *from, *to, &parts),
        Range::Hours { hours, .. } => {
            let (first, last) = (hours.first().copied().unwrap_or_default(), hours.last().copied().unwrap_or_default());
            rollup::hours_filter(site_id, first, last, &parts)
        }
    };
    let mut series: HashMap<Bucket, (Series, Option<VisitorSketch>)> = HashMap::new();
    let mut tops: HashMap<Dim, Vec<(String, TopList)>> = HashMap::new();
    let mut docs_read = 0;
    let mut cursor = db.collection::<Document>(c::ROLLUPS).find(filter).projection(rollup::read_projection()).await?;
    while let Some(raw) = cursor.try_next().await? {
        docs_read += 1;
        let doc: RollupDoc = bson::from_document(raw).map_err(|e| ApiError::Internal(anyhow::anyhow!("a rollup document does not read: {e}")))?;
        let r = Rollup::from_doc(doc).map_err(|e| ApiError::Internal(e.into()))?;
        match (r.key.part, r.body) {
            (Part::Series, Body::Series { counters, visitors }) => {
                series.insert(r.key.bucket, (counters, visitors));
            }
            (Part::Top(dim), Body::Top(list)) => tops.entry(dim).or_default().push((r.key.id(), list)),
            (part, _) => return Err(ApiError::Internal(anyhow::anyhow!("rollup {} holds the body of another part than {part:?}", r.key.id()))),
        }
    }
    let mut top_rows = HashMap::new();
    for dim in Dim::ALL {
        let lists = tops.remove(&dim).unwrap_or_default();
        let (rows, read) = top(db, lists).await?;
        docs_read += read;
        top_rows.insert(dim, rows.into_iter().map(|r| TopRow { key: r.key, count: r.counts.n as i64, text: r.text }).collect::<Vec<_>>());
    }
    let mut rows_of = |dim: Dim| top_rows.remove(&dim).unwrap_or_default();
    let (points, distinct_visitors) = match range {
        Range::Days { from, to, .. } => {
            let points = from
                .iter_days()
                .take_while(|d| d <= to)
                .map(|day| {
                    let counters = series.remove(&Bucket::Day(day)).map(|(s, _)| s).unwrap_or_default();
                    (time::day_string(day), row(&counters, counters.visitors))
                })
                .collect();
            (points, None)
        }
        Range::Hours { hours, .. } => {
            let mut all = VisitorSketch::default();
            let points = hours
                .iter()
                .map(|h| {
                    let (counters, sketch) = series.remove(&Bucket::Hour(*h)).unwrap_or_default();
                    let visitors = sketch.as_ref().map_or(0, |s| s.count() as i64);
                    if let Some(s) = &sketch {
                        all.merge(s);
                    }
                    (time::hour_label(*h, tz), row(&counters, visitors))
                })
                .collect();
            (points, Some(all.count() as i64))
        }
    };
    let inputs = Inputs { points, distinct_visitors, clicks: rows_of(Dim::Click), pages: rows_of(Dim::Page), referrers: rows_of(Dim::Source) };
    Ok(Loaded { inputs, docs_read })
}

/// The top rows of one dimension's lists (read by their heads), fetching the tails the heads
/// cannot do without. Returns the rows and how many documents the tails took.
async fn top(db: &Database, mut lists: Vec<(String, TopList)>) -> Result<(Vec<toplist::Ranked>, usize), ApiError> {
    let heads: Vec<&TopList> = lists.iter().map(|(_, l)| l).collect();
    let need = match toplist::merge_heads(&heads, TOP_N) {
        toplist::HeadMerge::Exact(rows) => return Ok((rows, 0)),
        toplist::HeadMerge::NeedTails(need) => need,
    };
    let ids: Vec<String> = need.iter().map(|&i| lists[i].0.clone()).collect();
    let mut tails: HashMap<String, Vec<u8>> = HashMap::new();
    let mut cursor = db.collection::<Document>(c::ROLLUPS).find(rollup::ids_filter(&ids)).projection(rollup::tail_projection()).await?;
    let mut read = 0;
    while let Some(d) = cursor.try_next().await? {
        read += 1;
        let id = d.get_str("_id").map_err(|e| ApiError::Internal(anyhow::anyhow!("rollup without _id: {e}")))?.to_string();
        if let Ok(tail) = d.get_binary_generic("tail") {
            tails.insert(id, tail.clone());
        }
    }
    for &i in &need {
        let (id, list) = &mut lists[i];
        let Some(tail) = tails.get(id.as_str()) else { continue };
        *list = list.with_tail(tail).map_err(|e| ApiError::Internal(e.into()))?;
    }
    Ok((toplist::merge(lists.iter().map(|(_, l)| l), TOP_N), read))
}

fn row(s: &Series, visitors: i64) -> RollupRow {
    RollupRow {
        pageviews: s.pageviews,
        sessions: s.sessions,
        clicks: s.clicks,
        visitors,
        scroll_sum: s.scroll_sum,
        time_sum: s.time_sum,
        reached: s.reached,
    }
}
