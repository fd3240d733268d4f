//! Reading stats from the rollup documents (see [`shared::rollup`]).
//!
//! One query per request, for the documents of the range's buckets: at most
//! `buckets × (1 + dimensions)` of them (a 90-day range: 90 × 4 = 360; 24 hours: 25 × 4 = 100),
//! whatever the traffic, the distinct keys or the visitors. Never raw events.

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

/// The most documents a request for `range` may read: the bound the read path keeps.
pub fn read_bound(range: &Range) -> usize {
    let buckets = match range {
        Range::Days { from, to, .. } => Range::days(*from, *to).len(),
        Range::Hours { hours, .. } => hours.len(),
    };
    buckets * Part::all().len()
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
    let mut tops: HashMap<Dim, Vec<TopList>> = HashMap::new();
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
            (Part::Top(dim), Body::Top(list)) => tops.entry(dim).or_default().push(list),
            (part, _) => return Err(ApiError::Internal(anyhow::anyhow!("rollup {} holds the body of another part than {part:?}", r.key.id()))),
        }
    }
    let mut top = |dim: Dim| -> Vec<TopRow> {
        let lists = tops.remove(&dim).unwrap_or_default();
        toplist::merge(lists.iter(), TOP_N)
            .into_iter()
            .map(|r| TopRow { key: r.key, count: r.counts.n as i64, text: r.text })
            .collect()
    };
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
    let inputs = Inputs { points, distinct_visitors, clicks: top(Dim::Click), pages: top(Dim::Page), referrers: top(Dim::Source) };
    Ok(Loaded { inputs, docs_read })
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
