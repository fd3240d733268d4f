//! Reading stats from the rollup collections. Each request reads a bounded number of rollup
//! documents (one per day or hour of the range, plus the top-list keys), never raw events.

use std::collections::HashMap;

use chrono_tz::Tz;
use futures::TryStreamExt;
use mongodb::{
    Database,
    bson::{Bson, Document, doc},
};
use shared::{names::collections as c, time};

use crate::{
    error::ApiError,
    stats::{Inputs, RollupRow, TopRow},
    timeframe::Range,
};

/// Most entries in a top list.
pub const TOP_N: i64 = 10;

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

fn row(d: &Document) -> RollupRow {
    RollupRow {
        pageviews: int(d, "pageviews"),
        sessions: int(d, "sessions"),
        clicks: int(d, "clicks"),
        visitors: int(d, "visitors"),
        scroll_sum: int(d, "scroll_sum"),
        time_sum: num(d, "time_sum"),
        reached: [int(d, "r25"), int(d, "r50"), int(d, "r75"), int(d, "r100")],
    }
}

/// Reads everything a stats response needs for `range`.
pub async fn load(db: &Database, site_id: &str, range: &Range, tz: Tz) -> Result<Inputs, ApiError> {
    let rollups = db.collection::<Document>(c::ROLLUPS);
    match range {
        Range::Days { from, to, .. } => {
            let (from_s, to_s) = (time::day_string(*from), time::day_string(*to));
            let span = doc! {"$gte": &from_s, "$lte": &to_s};
            let mut by_day: HashMap<String, RollupRow> = HashMap::new();
            let mut cursor = rollups.find(doc! {"site_id": site_id, "day": span.clone()}).await?;
            while let Some(d) = cursor.try_next().await? {
                if let Ok(day) = d.get_str("day") {
                    by_day.insert(day.to_string(), row(&d));
                }
            }
            let points = Range::days(*from, *to)
                .into_iter()
                .map(|day| {
                    let r = by_day.remove(&day).unwrap_or_default();
                    (day, r)
                })
                .collect();
            let by_bucket = doc! {"day": span};
            Ok(Inputs {
                points,
                distinct_visitors: None,
                clicks: top(db, site_id, "click", by_bucket.clone()).await?,
                pages: top(db, site_id, "page", by_bucket.clone()).await?,
                referrers: top(db, site_id, "referrer", by_bucket).await?,
            })
        }
        Range::Hours { hours, .. } => {
            let (first, last) = (hours.first().copied().unwrap_or_default(), hours.last().copied().unwrap_or_default());
            let span = doc! {"$gte": first, "$lte": last};
            let mut by_hour: HashMap<i64, RollupRow> = HashMap::new();
            let mut cursor = rollups.find(doc! {"site_id": site_id, "hour": span.clone()}).await?;
            while let Some(d) = cursor.try_next().await? {
                by_hour.insert(int(&d, "hour"), row(&d));
            }
            let points = hours.iter().map(|h| (time::hour_label(*h, tz), by_hour.remove(h).unwrap_or_default())).collect();
            let by_bucket = doc! {"hour": span.clone()};
            Ok(Inputs {
                points,
                distinct_visitors: Some(distinct_visitors(db, site_id, span).await?),
                clicks: top(db, site_id, "click", by_bucket.clone()).await?,
                pages: top(db, site_id, "page", by_bucket.clone()).await?,
                referrers: top(db, site_id, "referrer", by_bucket).await?,
            })
        }
    }
}

/// Distinct visitors over a span of hours. Hashes are salted per day, so this equals the sum
/// over the days of each day's distinct visitors within the span.
async fn distinct_visitors(db: &Database, site_id: &str, hour_span: Document) -> Result<i64, ApiError> {
    let pipeline = vec![
        doc! {"$match": {"site_id": site_id, "hour": hour_span}},
        doc! {"$group": {"_id": "$v"}},
        doc! {"$group": {"_id": Bson::Null, "n": {"$sum": 1}}},
    ];
    let mut cursor = db.collection::<Document>(c::VISITOR_MARKS).aggregate(pipeline).await?;
    Ok(cursor.try_next().await?.map(|d| int(&d, "n")).unwrap_or(0))
}

/// The top `TOP_N` keys of a dimension, most counted first, ties by key ascending.
async fn top(db: &Database, site_id: &str, dim: &str, bucket_filter: Document) -> Result<Vec<TopRow>, ApiError> {
    let mut filter = doc! {"site_id": site_id, "dim": dim};
    filter.extend(bucket_filter);
    let pipeline = vec![
        doc! {"$match": filter},
        doc! {"$group": {"_id": "$key", "count": {"$sum": "$count"}, "text": {"$max": "$text"}}},
        doc! {"$sort": {"count": -1, "_id": 1}},
        doc! {"$limit": TOP_N},
    ];
    let mut cursor = db.collection::<Document>(c::TOP_ROLLUPS).aggregate(pipeline).await?;
    let mut out = Vec::new();
    while let Some(d) = cursor.try_next().await? {
        out.push(TopRow {
            key: d.get_str("_id").unwrap_or_default().to_string(),
            count: int(&d, "count"),
            text: d.get_str("text").ok().map(str::to_string),
        });
    }
    Ok(out)
}
