//! The stats response and its arithmetic, from rollup rows already read. Pure, so every
//! definition of the contract is unit-tested here.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use shared::{
    money,
    rollup::{Counts, Dim, Series, detail, toplist::page_ext},
};

/// Counters of one bucket (a day or an hour), of the site or, with a page filter, of a page:
/// the stored [`Series`] itself (a page's are read from its entry in the page list), with
/// `visitors` the distinct visitors of the bucket.
pub type RollupRow = Series;

/// One row of a top list as read: key, count, conversions, a text seen (clicks only).
#[derive(Debug, Clone, PartialEq)]
pub struct TopRow {
    pub key: String,
    pub count: i64,
    pub conversions: i64,
    pub text: Option<String>,
}

/// A goal of the site, as the response names it.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalName {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub pageviews: i64,
    pub visitors: i64,
    pub sessions: i64,
    pub clicks: i64,
    pub avg_scroll_depth: f64,
    pub avg_time_seconds: f64,
    pub conversions: i64,
    pub conversion_rate: f64,
    pub bounce_rate: f64,
    /// Revenue per currency (v3); absent from `previous`, which reads no revenue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revenue: Option<Revenue>,
}

/// Sums per currency code (v3): the site's currency always, at 0 when nothing came in.
pub type Revenue = BTreeMap<String, f64>;

/// Sessions per time-to-conversion bucket, in [`detail::TTC_BUCKETS`] order (v3).
pub type TtcCounts = [i64; 7];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    pub start: String,
    pub pageviews: i64,
    pub visitors: i64,
    pub sessions: i64,
    pub clicks: i64,
    /// Not in the JSON series (the contract's point has no conversions); the CSV export has it.
    #[serde(skip)]
    pub conversions: i64,
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
    pub conversions: i64,
    pub revenue: Revenue,
    /// First conversions per time bucket (v3), as [`Stats::time_to_conversion`] orders them.
    pub time_to_conversion: TtcCounts,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct GoalStats {
    pub id: String,
    pub name: String,
    pub conversions: i64,
    pub rate: f64,
    pub revenue: Revenue,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Campaign {
    pub name: String,
    pub visits: i64,
    pub conversions: i64,
    pub revenue: Revenue,
    pub time_to_conversion: TtcCounts,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Variant {
    pub variant: String,
    pub visits: i64,
    pub conversions: i64,
    pub rate: f64,
    pub revenue: Revenue,
    pub time_to_conversion: TtcCounts,
    /// The Wilson 95 % interval of `rate` (v3).
    pub ci_low: f64,
    pub ci_high: f64,
    /// The probability that this variant's true rate exceeds the control's; `null` for the
    /// control (v3).
    pub p_beat_control: Option<f64>,
}

/// `experiment` (v3): the control and how far the comparison can be trusted.
#[derive(Debug, Serialize, PartialEq)]
pub struct Experiment {
    pub control: String,
    /// The chi-square test's p-value that visits are split evenly across the variants.
    pub sample_ratio_p: f64,
    /// Every variant has at least 100 visits and 10 conversions.
    pub enough_data: bool,
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Fills each variant's interval and probability to beat the control, and returns the
/// experiment: the control is `control` when it names a listed variant, else the variant named
/// `A` or `control`, else the one with the most visits (the first listed). `(other)` (variants
/// past the stored keys) takes no part. `None` without variants.
pub fn experiment(variants: &mut [Variant], control: Option<&str>) -> Option<Experiment> {
    let real = |v: &&mut Variant| v.variant != shared::rollup::toplist::OTHER;
    let names: Vec<String> = variants.iter_mut().filter(real).map(|v| v.variant.clone()).collect();
    let chosen = control
        .filter(|c| names.iter().any(|n| n == c))
        .map(str::to_string)
        .or_else(|| names.iter().find(|n| *n == "A" || *n == "control").cloned())
        .or_else(|| {
            // Most visits first, ties by name: the list's own order.
            names.first().cloned()
        })?;
    let of = |v: &Variant| (v.conversions.max(0) as u64, v.visits.max(0) as u64);
    let control_counts = variants.iter().find(|v| v.variant == chosen).map(of)?;
    let mut counts = Vec::new();
    for v in variants.iter_mut() {
        let (low, high) = crate::experiment::wilson(of(v).0, of(v).1);
        (v.ci_low, v.ci_high) = (round4(low), round4(high));
        let is_real = v.variant != shared::rollup::toplist::OTHER;
        v.p_beat_control =
            (is_real && v.variant != chosen).then(|| round4(crate::experiment::p_beat_control(control_counts, of(v))));
        if is_real {
            counts.push(of(v));
        }
    }
    let visits: Vec<u64> = counts.iter().map(|c| c.1).collect();
    Some(Experiment {
        control: chosen,
        sample_ratio_p: round4(crate::experiment::sample_ratio_p(&visits)),
        enough_data: crate::experiment::enough_data(&counts),
    })
}

/// A bucket of `time_to_conversion` (v3).
#[derive(Debug, Serialize, PartialEq)]
pub struct TtcBucket {
    pub bucket: &'static str,
    pub conversions: i64,
}

/// A row of `top_entry_pages` (v3): sessions that started on the page.
#[derive(Debug, Serialize, PartialEq)]
pub struct EntryPage {
    pub path: String,
    pub visits: i64,
    pub conversions: i64,
    pub bounce_rate: f64,
}

/// A row of `top_exit_pages` (v3): sessions whose last pageview was of the page.
#[derive(Debug, Serialize, PartialEq)]
pub struct ExitPage {
    pub path: String,
    pub exits: i64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct CustomEvent {
    pub name: String,
    pub count: i64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Audience {
    pub name: String,
    pub visits: i64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct CountryVisits {
    pub country: String,
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
    /// The page filter, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// The one-click filter (`dimension:value`), when one was asked for (v3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The segment (its id), when one was asked for (v3), and whether its backfill still runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backfilling: Option<bool>,
    pub summary: Summary,
    pub series: Vec<Point>,
    pub scroll_distribution: Vec<ScrollBucket>,
    pub top_clicks: Vec<TopClick>,
    pub top_pages: Vec<TopPage>,
    pub top_referrers: Vec<TopReferrer>,
    pub goals: Vec<GoalStats>,
    pub top_campaigns: Vec<Campaign>,
    pub top_mediums: Vec<Campaign>,
    pub variants: Vec<Variant>,
    /// With variants (v3): the control, the sample-ratio test and whether there is enough data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Experiment>,
    pub top_events: Vec<CustomEvent>,
    pub top_devices: Vec<Audience>,
    pub top_browsers: Vec<Audience>,
    pub top_os: Vec<Audience>,
    pub top_countries: Vec<CountryVisits>,
    /// Sessions by the time from their first pageview to their first goal completion (v3).
    pub time_to_conversion: Vec<TtcBucket>,
    pub top_entry_pages: Vec<EntryPage>,
    pub top_exit_pages: Vec<ExitPage>,
    /// `?compare=previous`: the summary of the range of the same length just before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Summary>,
    /// `?compare=previous`: that range's series, for drawing it beside this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_series: Option<Vec<Point>>,
}

/// What [`assemble`] needs besides the identity of the request.
#[derive(Debug, Default)]
pub struct Inputs {
    /// (label, counters) per point of the series, oldest first, zeros included.
    pub points: Vec<(String, RollupRow)>,
    /// Distinct visitors over the whole range when the sum of points would over-count
    /// (hourly points); `None` to sum the points.
    pub distinct_visitors: Option<i64>,
    /// The rows of each dimension's list, ranked, at most 10 (goals: every goal with
    /// conversions).
    pub lists: HashMap<Dim, Vec<TopRow>>,
    /// Every page entry read, with its counters, ranked (v3: entry and exit pages).
    pub pages: Vec<(String, Counts)>,
    /// Every [`Dim::Detail`] entry read: key and sum (v3: revenue, time to conversion).
    pub details: Vec<(String, u64)>,
}

/// Identity of the request, echoed back.
pub struct Meta {
    pub site_id: String,
    pub timeframe: String,
    pub timezone: String,
    pub from: String,
    pub to: String,
    pub hourly: bool,
    pub page: Option<String>,
    /// The site's currency: always shown in revenue sums (v3).
    pub currency: String,
}

fn ratio(sum: f64, pageviews: i64) -> f64 {
    if pageviews > 0 { sum / pageviews as f64 } else { 0.0 }
}

/// A fraction rounded to 4 decimals, 0 when there is no denominator.
pub fn rate(part: i64, whole: i64) -> f64 {
    if whole > 0 { (part.max(0) as f64 / whole as f64 * 10_000.0).round() / 10_000.0 } else { 0.0 }
}

/// The counters of points added up.
pub fn total(points: &[(String, RollupRow)]) -> RollupRow {
    let mut total = RollupRow::default();
    for (_, row) in points {
        total.add(row);
    }
    total
}

/// The parts of the bounce rate: (sessions that bounced, sessions whose bounce is tracked).
pub fn bounces(total: &RollupRow) -> (i64, i64) {
    (total.started - total.engaged, total.started)
}

/// The summary of points.
pub fn summarize(points: &[(String, RollupRow)], distinct_visitors: Option<i64>) -> Summary {
    let total = total(points);
    let (bounced, tracked) = bounces(&total);
    Summary {
        pageviews: total.pageviews,
        visitors: distinct_visitors.unwrap_or(total.visitors),
        sessions: total.sessions,
        clicks: total.clicks,
        avg_scroll_depth: ratio(total.scroll_sum as f64, total.pageviews),
        avg_time_seconds: ratio(total.time_sum, total.pageviews),
        conversions: total.conversions,
        conversion_rate: rate(total.conversions, total.sessions),
        bounce_rate: rate(bounced, tracked),
        revenue: None,
    }
}

/// Revenue sums and times to conversion, by scope and name, from [`Dim::Detail`] entries.
#[derive(Default)]
struct Details {
    revenue: HashMap<(String, String), Revenue>,
    ttc: HashMap<(String, String), TtcCounts>,
}

impl Details {
    fn of(entries: &[(String, u64)]) -> Self {
        let mut d = Self::default();
        for (key, n) in entries {
            let Some((kind, scope, name, last)) = detail::split(key) else { continue };
            let at = (scope.to_string(), name.to_string());
            match kind {
                detail::REVENUE => {
                    *d.revenue.entry(at).or_default().entry(last.to_string()).or_default() += money::from_milli(*n)
                }
                detail::TTC => {
                    if let Some(i) = detail::TTC_BUCKETS.iter().position(|b| *b == last) {
                        d.ttc.entry(at).or_default()[i] += *n as i64;
                    }
                }
                _ => {}
            }
        }
        d
    }

    /// The revenue of `scope` `name`, with `currency` at 0 when absent; sums rounded to cents'
    /// tenths (what was stored).
    fn revenue(&self, scope: &str, name: &str, currency: &str) -> Revenue {
        let mut r = self.revenue.get(&(scope.to_string(), name.to_string())).cloned().unwrap_or_default();
        r.entry(currency.to_string()).or_insert(0.0);
        r.values_mut().for_each(|v| *v = (*v * 1000.0).round() / 1000.0);
        r
    }

    fn ttc(&self, scope: &str, name: &str) -> TtcCounts {
        self.ttc.get(&(scope.to_string(), name.to_string())).copied().unwrap_or_default()
    }
}

/// Entry pages by visits and exit pages by exits, at most 10 each, ties by path, from every
/// page entry read. A page's exits are its pageviews not followed by another (clamped at 0:
/// a pageview and the one after it may fall on different days of the range's edge).
fn entry_exit(pages: &[(String, Counts)]) -> (Vec<EntryPage>, Vec<ExitPage>) {
    let e = |c: &Counts, i: usize| c.ext[i] as i64;
    let mut entries: Vec<EntryPage> = pages
        .iter()
        .filter(|(_, c)| e(c, page_ext::ENTRIES) > 0)
        .map(|(path, c)| EntryPage {
            path: path.clone(),
            visits: e(c, page_ext::ENTRIES),
            conversions: c.conv as i64,
            bounce_rate: rate(e(c, page_ext::ENTRIES) - e(c, page_ext::ENGAGED), e(c, page_ext::ENTRIES)),
        })
        .collect();
    entries.sort_by(|a, b| b.visits.cmp(&a.visits).then_with(|| a.path.cmp(&b.path)));
    entries.truncate(10);
    let mut exits: Vec<ExitPage> = pages
        .iter()
        .map(|(path, c)| ExitPage { path: path.clone(), exits: (c.n as i64 - e(c, page_ext::CONTINUED)).max(0) })
        .filter(|x| x.exits > 0)
        .collect();
    exits.sort_by(|a, b| b.exits.cmp(&a.exits).then_with(|| a.path.cmp(&b.path)));
    exits.truncate(10);
    (entries, exits)
}

/// The series of points, as the response shows it.
pub fn series(points: Vec<(String, RollupRow)>) -> Vec<Point> {
    points
        .into_iter()
        .map(|(start, r)| Point {
            start,
            pageviews: r.pageviews,
            visitors: r.visitors,
            sessions: r.sessions,
            clicks: r.clicks,
            conversions: r.conversions,
        })
        .collect()
}

/// Builds the response from rollup rows; `goals` are the site's live goals, oldest first.
pub fn assemble(meta: Meta, mut inputs: Inputs, goals: &[GoalName]) -> Stats {
    let summary = summarize(&inputs.points, inputs.distinct_visitors);
    let total = total(&inputs.points);
    let [r25, r50, r75, r100] = total.reached;
    // Clamped at zero: a scroll can arrive in a later bucket than its pageview.
    let dist =
        [("0-25", total.pageviews - r25), ("25-50", r25 - r50), ("50-75", r50 - r75), ("75-100", r75 - r100), ("100", r100)];
    let details = Details::of(&inputs.details);
    let cur = meta.currency.as_str();
    let (top_entry_pages, top_exit_pages) = entry_exit(&inputs.pages);
    let mut list = |dim: Dim| inputs.lists.remove(&dim).unwrap_or_default();
    let goal_rows: HashMap<String, i64> = list(Dim::Goal).into_iter().map(|r| (r.key, r.count)).collect();
    let visits = |rows: Vec<TopRow>| rows.into_iter().map(|t| Audience { name: t.key, visits: t.count }).collect();
    let campaigns = |rows: Vec<TopRow>, scope: Dim| {
        rows.into_iter()
            .map(|t| Campaign {
                revenue: details.revenue(scope.as_str(), &t.key, cur),
                time_to_conversion: details.ttc(scope.as_str(), &t.key),
                name: t.key,
                visits: t.count,
                conversions: t.conversions,
            })
            .collect()
    };
    let mut stats = Stats {
        site_id: meta.site_id,
        timeframe: meta.timeframe,
        timezone: meta.timezone,
        from: meta.from,
        to: meta.to,
        granularity: if meta.hourly { "hour" } else { "day" },
        page: meta.page,
        filter: None,
        segment: None,
        backfilling: None,
        goals: goals
            .iter()
            .map(|g| {
                let conversions = goal_rows.get(&g.id).copied().unwrap_or(0);
                GoalStats {
                    id: g.id.clone(),
                    name: g.name.clone(),
                    conversions,
                    rate: rate(conversions, summary.sessions),
                    revenue: details.revenue(detail::GOAL, &g.id, cur),
                }
            })
            .collect(),
        series: series(inputs.points),
        summary,
        scroll_distribution: dist.into_iter().map(|(bucket, n)| ScrollBucket { bucket, pageviews: n.max(0) }).collect(),
        top_clicks: list(Dim::Click)
            .into_iter()
            .map(|t| TopClick { selector: t.key, text: t.text.unwrap_or_default(), clicks: t.count })
            .collect(),
        top_pages: list(Dim::Page).into_iter().map(|t| TopPage { path: t.key, pageviews: t.count }).collect(),
        top_referrers: list(Dim::Source)
            .into_iter()
            .map(|t| TopReferrer {
                revenue: details.revenue(Dim::Source.as_str(), &t.key, cur),
                time_to_conversion: details.ttc(Dim::Source.as_str(), &t.key),
                source: t.key,
                visits: t.count,
                conversions: t.conversions,
            })
            .collect(),
        top_campaigns: campaigns(list(Dim::Campaign), Dim::Campaign),
        top_mediums: campaigns(list(Dim::Medium), Dim::Medium),
        variants: list(Dim::Variant)
            .into_iter()
            .map(|t| Variant {
                rate: rate(t.conversions, t.count),
                revenue: details.revenue(Dim::Variant.as_str(), &t.key, cur),
                time_to_conversion: details.ttc(Dim::Variant.as_str(), &t.key),
                variant: t.key,
                visits: t.count,
                conversions: t.conversions,
                ci_low: 0.0,
                ci_high: 0.0,
                p_beat_control: None,
            })
            .collect(),
        experiment: None,
        top_events: list(Dim::Event).into_iter().map(|t| CustomEvent { name: t.key, count: t.count }).collect(),
        top_devices: visits(list(Dim::Device)),
        top_browsers: visits(list(Dim::Browser)),
        top_os: visits(list(Dim::Os)),
        top_countries: list(Dim::Country).into_iter().map(|t| CountryVisits { country: t.key, visits: t.count }).collect(),
        time_to_conversion: {
            let all = details.ttc(detail::ALL, "");
            detail::TTC_BUCKETS.iter().zip(all).map(|(bucket, conversions)| TtcBucket { bucket, conversions }).collect()
        },
        top_entry_pages,
        top_exit_pages,
        previous: None,
        previous_series: None,
    };
    stats.experiment = experiment(&mut stats.variants, None);
    stats.summary.revenue = Some(details.revenue(detail::ALL, "", cur));
    stats
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
            page: None,
            currency: "USD".into(),
        }
    }

    fn row(key: &str, count: i64, conversions: i64) -> TopRow {
        TopRow { key: key.into(), count, conversions, text: None }
    }

    #[test]
    fn summary_sums_points_and_divides_by_pageviews_and_sessions() {
        let day1 = RollupRow {
            pageviews: 3,
            sessions: 2,
            clicks: 4,
            visitors: 2,
            scroll_sum: 150,
            time_sum: 9.0,
            reached: [2, 1, 1, 1],
            conversions: 1,
            engaged: 1,
            started: 2,
        };
        let day2 = RollupRow {
            pageviews: 1,
            sessions: 1,
            clicks: 0,
            visitors: 1,
            scroll_sum: 10,
            time_sum: 1.5,
            reached: [0, 0, 0, 0],
            conversions: 0,
            engaged: 0,
            started: 1,
        };
        let s = assemble(
            meta(false),
            Inputs { points: vec![("2026-11-24".into(), day1), ("2026-11-25".into(), day2)], ..Default::default() },
            &[],
        );
        assert_eq!(
            s.summary,
            Summary {
                pageviews: 4,
                visitors: 3,
                sessions: 3,
                clicks: 4,
                avg_scroll_depth: 40.0,
                avg_time_seconds: 2.625,
                conversions: 1,
                conversion_rate: 0.3333,
                bounce_rate: 0.6667,
                revenue: Some([("USD".to_string(), 0.0)].into()),
            }
        );
        let dist: Vec<(&str, i64)> = s.scroll_distribution.iter().map(|b| (b.bucket, b.pageviews)).collect();
        assert_eq!(dist, vec![("0-25", 2), ("25-50", 1), ("50-75", 0), ("75-100", 0), ("100", 1)]);
        assert_eq!(s.series.len(), 2);
        assert_eq!(s.granularity, "day");
        let json = serde_json::to_value(&s.series[0]).expect("json");
        assert_eq!(json.as_object().map(|o| o.len()), Some(5), "series points keep the contract's fields: {json}");
    }

    #[test]
    fn empty_range_is_all_zeros() {
        let s = assemble(
            meta(true),
            Inputs {
                points: vec![("2026-11-25T10:00".into(), RollupRow::default())],
                distinct_visitors: Some(0),
                ..Default::default()
            },
            &[],
        );
        assert_eq!(
            (s.summary.avg_scroll_depth, s.summary.avg_time_seconds, s.summary.conversion_rate, s.summary.bounce_rate),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert!(s.scroll_distribution.iter().all(|b| b.pageviews == 0));
        assert_eq!(s.granularity, "hour");
        let json = serde_json::to_value(&s).expect("json");
        for list in [
            "goals",
            "top_campaigns",
            "top_mediums",
            "variants",
            "top_events",
            "top_devices",
            "top_browsers",
            "top_os",
            "top_countries",
        ] {
            assert_eq!(json[list], serde_json::json!([]), "{list}");
        }
        assert!(json.get("previous").is_none() && json.get("page").is_none());
    }

    #[test]
    fn distinct_visitors_override_the_sum_of_hours() {
        let hour = RollupRow { visitors: 1, pageviews: 1, ..Default::default() };
        let s = assemble(
            meta(true),
            Inputs {
                points: vec![("a".into(), hour.clone()), ("b".into(), hour)],
                distinct_visitors: Some(1),
                ..Default::default()
            },
            &[],
        );
        assert_eq!(s.summary.visitors, 1);
        assert_eq!(s.series.iter().map(|p| p.visitors).sum::<i64>(), 2);
    }

    #[test]
    fn conversion_lists_and_rates() {
        let day = RollupRow { sessions: 8, started: 8, conversions: 3, engaged: 6, ..Default::default() };
        let lists = HashMap::from([
            (Dim::Goal, vec![row("g2", 2, 0), row("g1", 1, 0), row("deleted", 5, 0)]),
            (Dim::Source, vec![row("google.com", 5, 2), row("(direct)", 3, 1)]),
            (Dim::Campaign, vec![row("spring_sale", 4, 2)]),
            (Dim::Variant, vec![row("B", 3, 2), row("A", 3, 0)]),
            (Dim::Country, vec![row("DE", 5, 0), row("(unknown)", 3, 0)]),
        ]);
        let goals = [
            GoalName { id: "g1".into(), name: "Signup".into() },
            GoalName { id: "g2".into(), name: "Thanks".into() },
            GoalName { id: "g3".into(), name: "New".into() },
        ];
        let k = |kind, scope, name, last| detail::key(kind, scope, name, last);
        let details = vec![
            (k(detail::REVENUE, detail::ALL, "", "USD"), 30_500),
            (k(detail::REVENUE, detail::ALL, "", "EUR"), 9_990),
            (k(detail::REVENUE, detail::GOAL, "g2", "EUR"), 9_990),
            (k(detail::REVENUE, "source", "google.com", "USD"), 30_500),
            (k(detail::TTC, detail::ALL, "", "1-5m"), 2),
            (k(detail::TTC, detail::ALL, "", ">2h"), 1),
            (k(detail::TTC, "source", "google.com", "1-5m"), 2),
        ];
        let mut landing = Counts::of(6);
        (landing.ext[page_ext::ENTRIES], landing.ext[page_ext::ENGAGED], landing.ext[page_ext::CONTINUED]) = (4, 3, 5);
        landing.conv = 2;
        let mut pricing = Counts::of(3);
        (pricing.ext[page_ext::ENTRIES], pricing.ext[page_ext::CONTINUED]) = (1, 0);
        let pages = vec![("/landing".to_string(), landing), ("/pricing".to_string(), pricing)];
        let inputs = Inputs { points: vec![("d".into(), day)], distinct_visitors: None, lists, pages, details };
        let s = assemble(meta(false), inputs, &goals);
        let money = |pairs: &[(&str, f64)]| pairs.iter().map(|(c, v)| (c.to_string(), *v)).collect::<Revenue>();
        assert_eq!(s.summary.revenue, Some(money(&[("EUR", 9.99), ("USD", 30.5)])));
        assert_eq!(s.goals[1].revenue, money(&[("EUR", 9.99), ("USD", 0.0)]), "the site's currency always shows");
        let ttc: Vec<i64> = s.time_to_conversion.iter().map(|b| b.conversions).collect();
        assert_eq!(ttc, vec![0, 0, 0, 2, 0, 0, 1]);
        assert_eq!(s.time_to_conversion[3].bucket, "1-5m");
        assert_eq!(
            s.top_entry_pages,
            vec![
                EntryPage { path: "/landing".into(), visits: 4, conversions: 2, bounce_rate: 0.25 },
                EntryPage { path: "/pricing".into(), visits: 1, conversions: 0, bounce_rate: 1.0 },
            ]
        );
        assert_eq!(
            s.top_exit_pages,
            vec![ExitPage { path: "/pricing".into(), exits: 3 }, ExitPage { path: "/landing".into(), exits: 1 }]
        );
        assert_eq!((s.summary.conversion_rate, s.summary.bounce_rate), (0.375, 0.25));
        let goals: Vec<(&str, i64, f64)> = s.goals.iter().map(|g| (g.name.as_str(), g.conversions, g.rate)).collect();
        assert_eq!(
            goals,
            vec![("Signup", 1, 0.125), ("Thanks", 2, 0.25), ("New", 0, 0.0)],
            "every live goal, in their order; deleted ones hidden"
        );
        assert_eq!(
            s.top_referrers[0],
            TopReferrer {
                source: "google.com".into(),
                visits: 5,
                conversions: 2,
                revenue: money(&[("USD", 30.5)]),
                time_to_conversion: [0, 0, 0, 2, 0, 0, 0],
            }
        );
        let b = &s.variants[0];
        assert_eq!((b.variant.as_str(), b.visits, b.conversions, b.rate), ("B", 3, 2, 0.6667));
        // A is the control: it has no probability to beat itself.
        assert_eq!((s.variants[1].variant.as_str(), s.variants[1].p_beat_control), ("A", None));
        assert!(b.p_beat_control.is_some_and(|p| p > 0.5) && b.ci_low < b.rate && b.rate < b.ci_high);
        assert_eq!(s.experiment.as_ref().map(|e| (e.control.as_str(), e.enough_data)), Some(("A", false)));
        assert_eq!(
            s.top_campaigns[0],
            Campaign {
                name: "spring_sale".into(),
                visits: 4,
                conversions: 2,
                revenue: money(&[("USD", 0.0)]),
                time_to_conversion: [0; 7],
            }
        );
        assert_eq!(s.top_countries[1], CountryVisits { country: "(unknown)".into(), visits: 3 });
    }

    #[test]
    fn bounce_rate_divides_by_the_sessions_whose_bounce_is_tracked() {
        // A day migrated from the first layout (5 sessions, no bounce data) and a day after.
        let old = RollupRow { sessions: 5, ..Default::default() };
        let new = RollupRow { sessions: 4, started: 4, engaged: 1, ..Default::default() };
        let s = summarize(&[("a".into(), old), ("b".into(), new)], None);
        assert_eq!((s.sessions, s.bounce_rate), (9, 0.75));
    }

    #[test]
    fn rates_round_to_four_decimals() {
        assert_eq!(rate(1, 3), 0.3333);
        assert_eq!(rate(2, 3), 0.6667);
        assert_eq!(rate(5, 0), 0.0);
        assert_eq!(rate(-1, 4), 0.0, "never negative");
    }
}
