//! The answer to a [`Query`] from its rows, shaped as Plausible shapes it:
//! `{"results": [{"metrics": [...], "dimensions": [...]}], "meta": {...}, "query": {...}}`,
//! metrics in the order asked for, rows in `order_by` order then paginated. Every figure comes
//! from the native arithmetic ([`crate::stats`]); only the rounding is Plausible's: bounce rate
//! and scroll depth in whole percent, conversion rate in percent with two decimals.

use std::cmp::Ordering;

use chrono::{NaiveDate, NaiveTime, SecondsFormat, TimeZone};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Dimension, Metric, OrderKey, Query};
use crate::stats::{self, RollupRow};

/// What a row's metrics are computed from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Traffic: the native counters of the site, a day, a page or a visit property's value
    /// (what the stats report for it), and the custom events of it when they were read.
    Traffic { row: RollupRow, events: i64 },
    /// A goal: the visits that completed it, of all the visits of its scope.
    Goal { conversions: i64, sessions: i64 },
}

/// One row before ordering: its dimension's value (none without a dimension) and its figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub dimension: Option<String>,
    pub source: Source,
}

/// The body of a `200`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Answer {
    pub results: Vec<ResultRow>,
    pub meta: Meta,
    pub query: Echo,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ResultRow {
    pub metrics: Vec<Value>,
    pub dimensions: Vec<String>,
}

/// `meta`: empty unless `include` asks.
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct Meta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_labels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_rows: Option<usize>,
}

/// `query`: the request as it was understood, Plausible's defaults filled in.
#[derive(Debug, Serialize, PartialEq)]
pub struct Echo {
    pub site_id: String,
    pub metrics: Vec<&'static str>,
    /// The first and last instants of the range in the site's zone.
    pub date_range: [String; 2],
    pub filters: Value,
    pub dimensions: Vec<&'static str>,
    pub order_by: Vec<[&'static str; 2]>,
    pub include: Map<String, Value>,
    pub pagination: Value,
}

/// Whole percent, as Plausible rounds a bounce rate.
fn whole_percent(part: i64, whole: i64) -> i64 {
    if whole > 0 { (part.max(0) as f64 * 100.0 / whole as f64).round() as i64 } else { 0 }
}

/// The value of `metric` for a row.
fn value(metric: Metric, source: &Source) -> Value {
    match source {
        Source::Traffic { row, events } => {
            let summary = stats::summarize(&[(String::new(), row.clone())], None);
            match metric {
                Metric::Visitors => json!(summary.visitors),
                Metric::Visits => json!(summary.sessions),
                Metric::Pageviews => json!(summary.pageviews),
                Metric::BounceRate => {
                    let (bounced, tracked) = stats::bounces(row);
                    json!(whole_percent(bounced, tracked))
                }
                Metric::Events => json!(summary.pageviews + events),
                Metric::ScrollDepth => json!(summary.avg_scroll_depth.round() as i64),
                // Refused for traffic rows before anything is read.
                Metric::ConversionRate => json!(0.0),
            }
        }
        Source::Goal { conversions, sessions } => match metric {
            Metric::Visits => json!(conversions),
            // The native rate has four decimals: in percent, Plausible's two.
            Metric::ConversionRate => json!((stats::rate(*conversions, *sessions) * 10_000.0).round() / 100.0),
            // Refused for goal rows before anything is read.
            _ => json!(0),
        },
    }
}

/// The rows of `time:day`: each day of `points` with a pageview or a visit (Plausible lists
/// the buckets that have data), with its custom events (`events`, by day label).
pub fn day_rows(points: Vec<(String, RollupRow)>, events: &std::collections::HashMap<String, i64>) -> Vec<Row> {
    points
        .into_iter()
        .map(|(day, row)| {
            let events = events.get(&day).copied().unwrap_or(0);
            (day, row, events)
        })
        .filter(|(_, row, events)| row.pageviews > 0 || row.sessions > 0 || *events > 0)
        .map(|(day, row, events)| Row { dimension: Some(day), source: Source::Traffic { row, events } })
        .collect()
}

/// The instant a local day starts (`end`: its last second) in `tz`, as Plausible writes it.
fn instant(day: NaiveDate, end: bool, tz: Tz) -> String {
    let time = if end { NaiveTime::from_hms_opt(23, 59, 59) } else { NaiveTime::from_hms_opt(0, 0, 0) };
    let local = day.and_time(time.unwrap_or_default());
    let at = if end { tz.from_local_datetime(&local).latest() } else { tz.from_local_datetime(&local).earliest() };
    // A local time skipped by a DST change: the day's first or last second is an hour off.
    let at = at.unwrap_or_else(|| tz.from_utc_datetime(&local));
    // Plausible writes UTC as `Z`, other zones with their offset.
    let utc = matches!(tz, Tz::UTC | Tz::Etc__UTC);
    at.to_rfc3339_opts(SecondsFormat::Secs, utc)
}

fn compare(a: &Value, b: &Value) -> Ordering {
    let num = |v: &Value| v.as_f64().unwrap_or(0.0);
    num(a).total_cmp(&num(b))
}

/// The answer to `query` about the site on `domain` (in `tz`) from its `rows`.
pub fn answer(query: &Query, domain: &str, tz: Tz, rows: Vec<Row>) -> Answer {
    let mut shaped: Vec<(Option<String>, Vec<Value>)> =
        rows.into_iter().map(|r| (r.dimension, query.metrics.iter().map(|m| value(*m, &r.source)).collect())).collect();
    let at = |m: Metric| query.metrics.iter().position(|x| *x == m).unwrap_or(0);
    shaped.sort_by(|a, b| {
        query
            .order_by
            .iter()
            .map(|(key, desc)| {
                let o = match key {
                    OrderKey::Metric(m) => compare(&a.1[at(*m)], &b.1[at(*m)]),
                    OrderKey::Dimension(_) => a.0.cmp(&b.0),
                };
                if *desc { o.reverse() } else { o }
            })
            .find(|o| o.is_ne())
            // Ties by the dimension's value, so pages of a listing never overlap.
            .unwrap_or_else(|| a.0.cmp(&b.0))
    });
    let total_rows = shaped.len();
    let results = shaped
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|(dimension, metrics)| ResultRow { metrics, dimensions: dimension.into_iter().collect() })
        .collect();
    let time_labels = query
        .include
        .time_labels
        .then(|| query.from.iter_days().take_while(|d| *d <= query.to).map(shared::time::day_string).collect());
    let mut include = Map::new();
    for (name, on) in [
        ("imports", query.include.imports),
        ("time_labels", query.include.time_labels),
        ("total_rows", query.include.total_rows),
    ] {
        if on {
            include.insert(name.to_string(), Value::Bool(true));
        }
    }
    Answer {
        results,
        meta: Meta { time_labels, total_rows: query.include.total_rows.then_some(total_rows) },
        query: Echo {
            site_id: domain.to_string(),
            metrics: query.metrics.iter().map(|m| m.name()).collect(),
            date_range: [instant(query.from, false, tz), instant(query.to, true, tz)],
            filters: query.filters.clone(),
            dimensions: query.dimension.map(Dimension::name).into_iter().collect(),
            order_by: query
                .order_by
                .iter()
                .map(|(key, desc)| {
                    let name = match key {
                        OrderKey::Metric(m) => m.name(),
                        OrderKey::Dimension(d) => d.name(),
                    };
                    [name, if *desc { "desc" } else { "asc" }]
                })
                .collect(),
            include,
            pagination: json!({"limit": query.limit, "offset": query.offset}),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::plausible_query::{Include, Scope, parse};

    fn query(v: Value) -> Query {
        parse(v.as_object().expect("object"), NaiveDate::from_ymd_opt(2026, 3, 15).expect("day")).expect("a query")
    }

    fn traffic(pageviews: i64, visitors: i64, sessions: i64, started: i64, engaged: i64, scroll_sum: i64) -> Source {
        let row = RollupRow { pageviews, visitors, sessions, started, engaged, scroll_sum, ..Default::default() };
        Source::Traffic { row, events: 0 }
    }

    fn row(dim: &str, source: Source) -> Row {
        Row { dimension: Some(dim.to_string()), source }
    }

    #[test]
    fn an_aggregate_is_one_row_of_plausibles_figures() {
        let q = query(
            json!({"site_id": "example.com", "metrics": ["visitors", "visits", "pageviews", "bounce_rate", "events"], "date_range": ["2026-03-01", "2026-03-02"]}),
        );
        // 3 bounces of 7 tracked sessions: 42.86 %, which Plausible shows as 43.
        let mut source = traffic(12, 5, 8, 7, 4, 0);
        if let Source::Traffic { events, .. } = &mut source {
            *events = 3;
        }
        let a = answer(&q, "example.com", Tz::UTC, vec![Row { dimension: None, source }]);
        assert_eq!(
            a.results,
            vec![ResultRow { metrics: vec![json!(5), json!(8), json!(12), json!(43), json!(15)], dimensions: vec![] }]
        );
        let body = serde_json::to_value(&a).expect("json");
        assert_eq!(
            body["query"],
            json!({"site_id": "example.com", "metrics": ["visitors", "visits", "pageviews", "bounce_rate", "events"],
                   "date_range": ["2026-03-01T00:00:00Z", "2026-03-02T23:59:59Z"], "filters": [], "dimensions": [],
                   "order_by": [["visitors", "desc"]], "include": {}, "pagination": {"limit": 10000, "offset": 0}})
        );
        assert_eq!(body["meta"], json!({}));
    }

    #[test]
    fn rates_round_as_plausible_rounds_them() {
        assert_eq!((whole_percent(1, 202), whole_percent(1, 200), whole_percent(0, 0), whole_percent(2, 3)), (0, 1, 0, 67));
        let goal = Source::Goal { conversions: 1, sessions: 3 };
        assert_eq!((value(Metric::Visits, &goal), value(Metric::ConversionRate, &goal)), (json!(1), json!(33.33)));
        assert_eq!(value(Metric::ConversionRate, &Source::Goal { conversions: 0, sessions: 0 }), json!(0.0));
        assert_eq!(value(Metric::ConversionRate, &Source::Goal { conversions: 2, sessions: 3 }), json!(66.67));
        // Scroll depth: the native average of a pageview's deepest scroll, in whole percent.
        assert_eq!(value(Metric::ScrollDepth, &traffic(3, 1, 1, 1, 1, 125)), json!(42));
        assert_eq!(value(Metric::ScrollDepth, &traffic(0, 0, 0, 0, 0, 0)), json!(0));
    }

    #[test]
    fn rows_are_ordered_then_paginated_and_ties_go_by_value() {
        let q = query(
            json!({"site_id": "s", "metrics": ["pageviews", "visitors"], "date_range": "day", "dimensions": ["event:page"],
                             "pagination": {"limit": 2, "offset": 1}, "include": {"total_rows": true}}),
        );
        let rows = vec![
            row("/b", traffic(5, 1, 0, 0, 0, 0)),
            row("/a", traffic(5, 2, 0, 0, 0, 0)),
            row("/c", traffic(9, 1, 0, 0, 0, 0)),
            row("/d", traffic(1, 9, 0, 0, 0, 0)),
        ];
        let a = answer(&q, "s", Tz::UTC, rows.clone());
        let got: Vec<&str> = a.results.iter().map(|r| r.dimensions[0].as_str()).collect();
        assert_eq!(got, vec!["/a", "/b"], "/c first by pageviews, then /a and /b tied, by path");
        assert_eq!(a.meta.total_rows, Some(4));
        let by_visitors = query(
            json!({"site_id": "s", "metrics": ["pageviews", "visitors"], "date_range": "day", "dimensions": ["event:page"],
                                       "order_by": [["visitors", "asc"], ["event:page", "desc"]]}),
        );
        let got: Vec<String> =
            answer(&by_visitors, "s", Tz::UTC, rows).results.into_iter().map(|r| r.dimensions[0].clone()).collect();
        assert_eq!(got, vec!["/c", "/b", "/a", "/d"]);
    }

    #[test]
    fn days_with_data_are_listed_and_labels_are_every_day() {
        let q = query(json!({"site_id": "s", "metrics": ["visitors", "events"], "date_range": ["2026-03-01", "2026-03-04"],
                             "dimensions": ["time:day"], "include": {"time_labels": true}}));
        let day = |pageviews: i64| RollupRow { pageviews, visitors: pageviews, sessions: pageviews, ..Default::default() };
        let points = vec![
            ("2026-03-01".to_string(), day(2)),
            ("2026-03-02".to_string(), day(0)),
            ("2026-03-03".to_string(), day(0)),
            ("2026-03-04".to_string(), day(1)),
        ];
        let events = HashMap::from([("2026-03-03".to_string(), 4), ("2026-03-04".to_string(), 1)]);
        let a = answer(&q, "s", Tz::UTC, day_rows(points, &events));
        let got: Vec<(String, Vec<Value>)> = a.results.into_iter().map(|r| (r.dimensions[0].clone(), r.metrics)).collect();
        assert_eq!(
            got,
            vec![
                ("2026-03-01".to_string(), vec![json!(2), json!(2)]),
                ("2026-03-03".to_string(), vec![json!(0), json!(4)]),
                ("2026-03-04".to_string(), vec![json!(1), json!(2)]),
            ],
            "time ascending; a day with custom events only has data too"
        );
        assert_eq!(
            a.meta.time_labels,
            Some(vec!["2026-03-01".into(), "2026-03-02".into(), "2026-03-03".into(), "2026-03-04".into()])
        );
        let body = serde_json::to_value(&a.query).expect("json");
        assert_eq!(body["include"], json!({"time_labels": true}));
        assert_eq!(body["order_by"], json!([["time:day", "asc"], ["visitors", "desc"]]));
    }

    #[test]
    fn the_range_is_echoed_in_the_sites_zone() {
        let q = query(json!({"site_id": "s", "metrics": ["visits"], "date_range": ["2026-03-28", "2026-03-29"]}));
        let berlin: Tz = "Europe/Berlin".parse().expect("tz");
        let a = answer(&q, "s", berlin, vec![]);
        assert_eq!(
            a.query.date_range,
            ["2026-03-28T00:00:00+01:00".to_string(), "2026-03-29T23:59:59+02:00".to_string()],
            "across the DST change"
        );
        assert!(a.results.is_empty());
        assert_eq!(q.scope, Scope::Site);
        assert_eq!(q.include, Include::default());
    }
}
