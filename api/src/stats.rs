//! The stats response and its arithmetic, from rollup rows already read. Pure, so every
//! definition of the contract is unit-tested here.

use serde::Serialize;

/// Counters of one rollup document (a day or an hour).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupRow {
    pub pageviews: i64,
    pub sessions: i64,
    pub clicks: i64,
    pub visitors: i64,
    pub scroll_sum: i64,
    pub time_sum: f64,
    /// Scroll events that reached 25, 50, 75 and 100 percent.
    pub reached: [i64; 4],
}

impl RollupRow {
    fn add(&mut self, o: &RollupRow) {
        self.pageviews += o.pageviews;
        self.sessions += o.sessions;
        self.clicks += o.clicks;
        self.visitors += o.visitors;
        self.scroll_sum += o.scroll_sum;
        self.time_sum += o.time_sum;
        for (a, b) in self.reached.iter_mut().zip(o.reached) {
            *a += b;
        }
    }
}

/// One entry of a top list as read: key, summed count, a text seen (clicks only).
#[derive(Debug, Clone, PartialEq)]
pub struct TopRow {
    pub key: String,
    pub count: i64,
    pub text: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Summary {
    pub pageviews: i64,
    pub visitors: i64,
    pub sessions: i64,
    pub clicks: i64,
    pub avg_scroll_depth: f64,
    pub avg_time_seconds: f64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Point {
    pub start: String,
    pub pageviews: i64,
    pub visitors: i64,
    pub sessions: i64,
    pub clicks: i64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ScrollBucket {
    pub bucket: &'static str,
    pub pageviews: i64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct TopClick {
    pub selector: String,
    pub text: String,
    pub clicks: i64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct TopPage {
    pub path: String,
    pub pageviews: i64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct TopReferrer {
    pub source: String,
    pub visits: i64,
}

/// The body of `GET /api/stats/{id}`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Stats {
    pub site_id: String,
    pub timeframe: String,
    pub timezone: String,
    pub from: String,
    pub to: String,
    pub granularity: &'static str,
    pub summary: Summary,
    pub series: Vec<Point>,
    pub scroll_distribution: Vec<ScrollBucket>,
    pub top_clicks: Vec<TopClick>,
    pub top_pages: Vec<TopPage>,
    pub top_referrers: Vec<TopReferrer>,
}

/// What [`assemble`] needs besides the identity of the request.
pub struct Inputs {
    /// (label, counters) per point of the series, oldest first, zeros included.
    pub points: Vec<(String, RollupRow)>,
    /// Distinct visitors over the whole range when the sum of points would over-count
    /// (hourly points); `None` to sum the points.
    pub distinct_visitors: Option<i64>,
    pub clicks: Vec<TopRow>,
    pub pages: Vec<TopRow>,
    pub referrers: Vec<TopRow>,
}

/// Identity of the request, echoed back.
pub struct Meta {
    pub site_id: String,
    pub timeframe: String,
    pub timezone: String,
    pub from: String,
    pub to: String,
    pub hourly: bool,
}

fn ratio(sum: f64, pageviews: i64) -> f64 {
    if pageviews > 0 { sum / pageviews as f64 } else { 0.0 }
}

/// Builds the response from rollup rows.
pub fn assemble(meta: Meta, inputs: Inputs) -> Stats {
    let mut total = RollupRow::default();
    for (_, row) in &inputs.points {
        total.add(row);
    }
    let visitors = inputs.distinct_visitors.unwrap_or(total.visitors);
    let [r25, r50, r75, r100] = total.reached;
    // Clamped at zero: a scroll can arrive in a later bucket than its pageview.
    let dist = [
        ("0-25", total.pageviews - r25),
        ("25-50", r25 - r50),
        ("50-75", r50 - r75),
        ("75-100", r75 - r100),
        ("100", r100),
    ];
    Stats {
        site_id: meta.site_id,
        timeframe: meta.timeframe,
        timezone: meta.timezone,
        from: meta.from,
        to: meta.to,
        granularity: if meta.hourly { "hour" } else { "day" },
        summary: Summary {
            pageviews: total.pageviews,
            visitors,
            sessions: total.sessions,
            clicks: total.clicks,
            avg_scroll_depth: ratio(total.scroll_sum as f64, total.pageviews),
            avg_time_seconds: ratio(total.time_sum, total.pageviews),
        },
        series: inputs
            .points
            .into_iter()
            .map(|(start, r)| Point { start, pageviews: r.pageviews, visitors: r.visitors, sessions: r.sessions, clicks: r.clicks })
            .collect(),
        scroll_distribution: dist.into_iter().map(|(bucket, n)| ScrollBucket { bucket, pageviews: n.max(0) }).collect(),
        top_clicks: inputs
            .clicks
            .into_iter()
            .map(|t| TopClick { selector: t.key, text: t.text.unwrap_or_default(), clicks: t.count })
            .collect(),
        top_pages: inputs.pages.into_iter().map(|t| TopPage { path: t.key, pageviews: t.count }).collect(),
        top_referrers: inputs.referrers.into_iter().map(|t| TopReferrer { source: t.key, visits: t.count }).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(hourly: bool) -> Meta {
        Meta {
            site_id: "s".into(),
            timeframe: "7d".into(),
            timezone: "UTC".into(),
            from: "2026-11-19".into(),
            to: "2026-11-25".into(),
            hourly,
        }
    }

    #[test]
    fn summary_sums_points_and_divides_by_pageviews() {
        let day1 = RollupRow { pageviews: 3, sessions: 2, clicks: 4, visitors: 2, scroll_sum: 150, time_sum: 9.0, reached: [2, 1, 1, 1] };
        let day2 = RollupRow { pageviews: 1, sessions: 1, clicks: 0, visitors: 1, scroll_sum: 10, time_sum: 1.5, reached: [0, 0, 0, 0] };
        let s = assemble(
            meta(false),
            Inputs {
                points: vec![("2026-11-24".into(), day1), ("2026-11-25".into(), day2)],
                distinct_visitors: None,
                clicks: vec![],
                pages: vec![],
                referrers: vec![],
            },
        );
        assert_eq!(
            s.summary,
            Summary { pageviews: 4, visitors: 3, sessions: 3, clicks: 4, avg_scroll_depth: 40.0, avg_time_seconds: 2.625 }
        );
        let dist: Vec<(&str, i64)> = s.scroll_distribution.iter().map(|b| (b.bucket, b.pageviews)).collect();
        assert_eq!(dist, vec![("0-25", 2), ("25-50", 1), ("50-75", 0), ("75-100", 0), ("100", 1)]);
        assert_eq!(s.series.len(), 2);
        assert_eq!(s.granularity, "day");
    }

    #[test]
    fn empty_range_is_all_zeros() {
        let s = assemble(
            meta(true),
            Inputs { points: vec![("2026-11-25T10:00".into(), RollupRow::default())], distinct_visitors: Some(0), clicks: vec![], pages: vec![], referrers: vec![] },
        );
        assert_eq!(s.summary.avg_scroll_depth, 0.0);
        assert_eq!(s.summary.avg_time_seconds, 0.0);
        assert!(s.scroll_distribution.iter().all(|b| b.pageviews == 0));
        assert_eq!(s.granularity, "hour");
    }

    #[test]
    fn distinct_visitors_override_the_sum_of_hours() {
        let hour = RollupRow { visitors: 1, pageviews: 1, ..Default::default() };
        let s = assemble(
            meta(true),
            Inputs { points: vec![("a".into(), hour.clone()), ("b".into(), hour)], distinct_visitors: Some(1), clicks: vec![], pages: vec![], referrers: vec![] },
        );
        assert_eq!(s.summary.visitors, 1);
        assert_eq!(s.series.iter().map(|p| p.visitors).sum::<i64>(), 2);
    }
}
