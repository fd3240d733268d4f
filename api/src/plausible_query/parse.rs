//! The request body into a [`Query`], refusing in Plausible's words, in Plausible's order:
//! first what its JSON schema refuses (`#/metrics/0: Invalid metric "foo"`), then what it
//! answers and ConvertPulse does not (`#/metrics/0: Unsupported metric "visit_duration"`),
//! then its own rules across fields (order_by, include, the metrics that need a goal or a
//! page), then what the rollups cannot answer exactly ([`Query::check_support`]). The first
//! refusal is the answer. `site_id` is the route's: it finds the site before the query is read.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate};
use serde_json::{Map, Value};

use super::{Dimension, Include, Metric, OrderKey, Query, QueryError, Scope, VisitDim, inspect};

/// Longest range, in days: the native stats' bound.
const MAX_RANGE_DAYS: i64 = crate::timeframe::MAX_RANGE_DAYS;
/// Most rows an answer holds: Plausible's own maximum and default `pagination.limit`.
pub const MAX_LIMIT: usize = 10_000;
/// Longest filter value, in characters: past it, a value names nothing (the native filters').
const MAX_VALUE_CHARS: usize = crate::routes::stats::MAX_FILTER_VALUE;

/// The fields of a request (Plausible's public schema).
const FIELDS: [&str; 8] = ["site_id", "metrics", "date_range", "dimensions", "filters", "order_by", "include", "pagination"];

/// Metrics Plausible's public API answers.
const PLAUSIBLE_METRICS: [&str; 13] = [
    "visitors",
    "visits",
    "pageviews",
    "views_per_visit",
    "bounce_rate",
    "visit_duration",
    "events",
    "percentage",
    "conversion_rate",
    "group_conversion_rate",
    "total_revenue",
    "average_revenue",
    "scroll_depth",
];

/// Dimensions Plausible filters and breaks down by (besides `event:props:*`, `event:goal` and
/// time).
const SIMPLE_DIMENSIONS: [&str; 27] = [
    "event:name",
    "event:page",
    "event:hostname",
    "visit:source",
    "visit:channel",
    "visit:referrer",
    "visit:utm_medium",
    "visit:utm_source",
    "visit:utm_campaign",
    "visit:utm_content",
    "visit:utm_term",
    "visit:screen",
    "visit:device",
    "visit:browser",
    "visit:browser_version",
    "visit:os",
    "visit:os_version",
    "visit:country",
    "visit:region",
    "visit:city",
    "visit:country_name",
    "visit:region_name",
    "visit:city_name",
    "visit:entry_page",
    "visit:exit_page",
    "visit:entry_page_hostname",
    "visit:exit_page_hostname",
];

const TIME_DIMENSIONS: [&str; 5] = ["time", "time:month", "time:week", "time:day", "time:hour"];

fn err(message: impl Into<String>) -> QueryError {
    QueryError::new(message)
}

/// JSON Schema's name of a value's type, as Plausible's validator spells it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "Integer",
        Value::Number(_) => "Number",
        Value::String(_) => "String",
        Value::Array(_) => "Array",
        Value::Object(_) => "Object",
    }
}

fn mismatch(path: &str, expected: &str, v: &Value) -> QueryError {
    err(format!("{path}: Type mismatch. Expected {expected} but got {}.", type_name(v)))
}

/// A key as one step of a JSON pointer.
fn pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn array<'a>(path: &str, v: &'a Value) -> Result<&'a [Value], QueryError> {
    v.as_array().map(Vec::as_slice).ok_or_else(|| mismatch(path, "Array", v))
}

fn object<'a>(path: &str, v: &'a Value) -> Result<&'a Map<String, Value>, QueryError> {
    v.as_object().ok_or_else(|| mismatch(path, "Object", v))
}

fn only_fields(path: &str, map: &Map<String, Value>, allowed: &[&str]) -> Result<(), QueryError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(err(format!("{path}/{}: Schema does not allow additional properties.", pointer(k)))),
        None => Ok(()),
    }
}

fn unique(path: &str, items: &[Value]) -> Result<(), QueryError> {
    let mut seen = HashSet::new();
    if items.iter().all(|v| seen.insert(v.to_string())) {
        Ok(())
    } else {
        Err(err(format!("{path}: Expected items to be unique but they were not.")))
    }
}

fn at_most(path: &str, items: &[Value], max: usize) -> Result<(), QueryError> {
    if items.len() > max {
        return Err(err(format!("{path}: Expected a maximum of {max} items but got {}.", items.len())));
    }
    Ok(())
}

fn is_plausible_dimension(s: &str) -> bool {
    SIMPLE_DIMENSIONS.contains(&s) || is_custom_property(s) || s == "event:goal" || TIME_DIMENSIONS.contains(&s)
}

fn is_custom_property(s: &str) -> bool {
    // `^event:props:.+`: at least one character that is not a line break.
    s.strip_prefix("event:props:").and_then(|rest| rest.chars().next()).is_some_and(|c| c != '\n')
}

/// Parses the body of `POST /api/v2/query` with `today` the site's local day.
pub fn parse(body: &Map<String, Value>, today: NaiveDate) -> Result<Query, QueryError> {
    only_fields("#", body, &FIELDS)?;
    let missing: Vec<&str> = ["metrics", "date_range"].into_iter().filter(|f| !body.contains_key(*f)).collect();
    match missing.as_slice() {
        [] => {}
        [one] => return Err(err(format!("#: Required property {one} was not present."))),
        many => return Err(err(format!("#: Required properties {} were not present.", many.join(", ")))),
    }
    let empty = Value::Array(Vec::new());
    let field = |name: &str| body.get(name).unwrap_or(&empty);

    // What Plausible's schema refuses, field by field.
    let metrics = array("#/metrics", field("metrics"))?;
    if metrics.is_empty() {
        return Err(err("#/metrics: Expected a minimum of 1 items but got 0."));
    }
    for (i, m) in metrics.iter().enumerate() {
        if !m.as_str().is_some_and(|s| PLAUSIBLE_METRICS.contains(&s)) {
            return Err(err(format!("#/metrics/{i}: Invalid metric {}", inspect(m))));
        }
    }
    unique("#/metrics", metrics)?;
    let date_range = field("date_range");
    let range = plausible_range(date_range, today)
        .ok_or_else(|| err(format!("#/date_range: Invalid date range {}", inspect(date_range))))?;
    let dimensions = array("#/dimensions", field("dimensions"))?;
    for (i, d) in dimensions.iter().enumerate() {
        if !d.as_str().is_some_and(is_plausible_dimension) {
            return Err(err(format!("#/dimensions/{i}: Invalid dimension {}", inspect(d))));
        }
    }
    unique("#/dimensions", dimensions)?;
    let filters = array("#/filters", field("filters"))?;
    for (i, f) in filters.iter().enumerate() {
        if !is_filter_tree(f) {
            return Err(err(format!("#/filters/{i}: Invalid filter {}", inspect(f))));
        }
    }
    let order_by = match body.get("order_by") {
        Some(v) => Some(order_by_entries(array("#/order_by", v)?)?),
        None => None,
    };
    let include = match body.get("include") {
        Some(v) => include(v)?,
        None => Include::default(),
    };
    let (limit, offset) = match body.get("pagination") {
        Some(v) => pagination(v)?,
        None => (MAX_LIMIT, 0),
    };
    // What Plausible refuses once the schema holds: clause values.
    for f in filters {
        check_clauses(f)?;
    }

    // What Plausible answers and ConvertPulse does not.
    let metrics: Vec<Metric> = metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.as_str()
                .and_then(Metric::parse)
                .ok_or_else(|| err(format!("#/metrics/{i}: Unsupported metric {}", inspect(m))))
        })
        .collect::<Result<_, _>>()?;
    let (from, to) = match range {
        PlausibleRange::Days(from, to) if (to - from).num_days() < MAX_RANGE_DAYS => (from, to),
        PlausibleRange::Days(..) => {
            return Err(err(format!(
                "#/date_range: Unsupported date range {}: ConvertPulse answers at most {MAX_RANGE_DAYS} days",
                inspect(date_range)
            )));
        }
        PlausibleRange::Other => {
            return Err(err(format!(
                "#/date_range: Unsupported date range {}: ConvertPulse answers day, 7d, 30d, month, 6mo, 12mo or two dates",
                inspect(date_range)
            )));
        }
    };
    let dimension = dimensions
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.as_str()
                .and_then(Dimension::parse)
                .ok_or_else(|| err(format!("#/dimensions/{i}: Unsupported dimension {}", inspect(d))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    at_most("#/dimensions", dimensions, 1)?;
    let dimension = dimension.first().copied();
    let scopes = filters
        .iter()
        .enumerate()
        .map(|(i, f)| {
            scope(f).map_err(|why| err(format!("#/filters/{i}: Unsupported filter {}: ConvertPulse {why}", inspect(f))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    at_most("#/filters", filters, 1)?;
    let scope = scopes.into_iter().next().unwrap_or(Scope::Site);

    // Plausible's rules across fields.
    let order_by = match order_by {
        Some(entries) => resolve_order(entries, &metrics, dimension)?,
        None => {
            let time = (dimension == Some(Dimension::Day)).then_some((OrderKey::Dimension(Dimension::Day), false));
            time.into_iter().chain(metrics.first().map(|m| (OrderKey::Metric(*m), true))).collect()
        }
    };
    if include.time_labels && dimension != Some(Dimension::Day) {
        return Err(err("Invalid include.time_labels: requires a time dimension."));
    }
    let goal = matches!(scope, Scope::Goal(_)) || dimension == Some(Dimension::Goal);
    let page = matches!(scope, Scope::Page(_)) || dimension == Some(Dimension::Page);
    if metrics.contains(&Metric::ConversionRate) && !goal {
        return Err(err("Metric `conversion_rate` can only be queried with event:goal filters or dimensions."));
    }
    if metrics.contains(&Metric::ScrollDepth) && !page {
        return Err(err("Metric `scroll_depth` can only be queried with event:page filters or dimensions."));
    }
    if metrics.contains(&Metric::BounceRate) && dimension == Some(Dimension::Goal) {
        return Err(err("Session metric(s) `bounce_rate` cannot be queried along with event dimensions."));
    }

    let query = Query {
        metrics,
        from,
        to,
        dimension,
        scope,
        order_by,
        limit,
        offset,
        include,
        filters: Value::Array(filters.to_vec()),
    };
    query.check_support()?;
    Ok(query)
}

/// A date range Plausible's schema takes.
enum PlausibleRange {
    /// Local days, inclusive.
    Days(NaiveDate, NaiveDate),
    /// `all`, `year`, or two timestamps: Plausible answers them, ConvertPulse does not.
    Other,
}

/// `YYYY-MM-DD`, strictly (JSON Schema's `date` format).
fn iso_date(v: &Value) -> Option<NaiveDate> {
    v.as_str().filter(|s| s.len() == 10).and_then(shared::time::parse_day)
}

fn iso_datetime(v: &Value) -> bool {
    v.as_str().is_some_and(|s| DateTime::parse_from_rfc3339(s).is_ok())
}

/// Plausible's date ranges at `today`: `day` is today; `7d` and `30d` the whole days before
/// today; `month` this calendar month; `6mo` and `12mo` the whole calendar months before this
/// one. `None` for what its schema refuses (and for a pair of dates out of order).
fn plausible_range(v: &Value, today: NaiveDate) -> Option<PlausibleRange> {
    let days_before = |n: u64| Some(PlausibleRange::Days(today.checked_sub_days(Days::new(n))?, today.pred_opt()?));
    let this_month = today.with_day(1)?;
    let months_before =
        |n: u32| Some(PlausibleRange::Days(this_month.checked_sub_months(Months::new(n))?, this_month.pred_opt()?));
    match v {
        Value::String(s) => match s.as_str() {
            "day" => Some(PlausibleRange::Days(today, today)),
            "7d" => days_before(7),
            "30d" => days_before(30),
            "month" => Some(PlausibleRange::Days(this_month, this_month.checked_add_months(Months::new(1))?.pred_opt()?)),
            "6mo" => months_before(6),
            "12mo" => months_before(12),
            "all" | "year" => Some(PlausibleRange::Other),
            _ => None,
        },
        Value::Array(pair) if pair.len() == 2 => match (iso_date(&pair[0]), iso_date(&pair[1])) {
            (Some(from), Some(to)) => (from <= to).then_some(PlausibleRange::Days(from, to)),
            _ if pair.iter().all(iso_datetime) => Some(PlausibleRange::Other),
            _ => None,
        },
        _ => None,
    }
}

/// One entry of `filters` as Plausible's schema takes it: a condition, `and`/`or` of
/// conditions, or `not` of one.
fn is_filter_tree(v: &Value) -> bool {
    let Some(a) = v.as_array() else { return false };
    match (a.first().and_then(Value::as_str), a.len()) {
        (Some("and" | "or"), 2) => {
            a[1].as_array().is_some_and(|inner| !inner.is_empty() && inner.iter().all(is_filter_tree))
        }
        (Some("not"), 2) => is_filter_tree(&a[1]),
        _ => is_filter_entry(a),
    }
}

fn is_filter_entry(a: &[Value]) -> bool {
    let (Some(op), Some(dim)) = (a.first().and_then(Value::as_str), a.get(1).and_then(Value::as_str)) else {
        return false;
    };
    let clauses_ok =
        a.get(2).and_then(Value::as_array).is_some_and(|c| c.iter().all(|v| v.is_string() || v.is_i64() || v.is_u64()));
    let modifiers_ok = match a.get(3) {
        None => a.len() == 3,
        Some(Value::Object(m)) => a.len() == 4 && m.iter().all(|(k, v)| k == "case_sensitive" && v.is_boolean()),
        Some(_) => false,
    };
    let simple = SIMPLE_DIMENSIONS.contains(&dim) || is_custom_property(dim);
    if !clauses_ok {
        return false;
    }
    match op {
        "is_not" | "contains_not" => simple && modifiers_ok,
        "is" | "contains" if dim == "segment" => {
            op == "is" && a.len() == 3 && a[2].as_array().is_some_and(|c| c.iter().all(|v| v.is_i64() || v.is_u64()))
        }
        "is" | "contains" => (simple || dim == "event:goal") && modifiers_ok,
        "matches" | "matches_not" => simple && a.len() == 3,
        _ => false,
    }
}

/// Plausible's checks of a condition's values, once its schema holds: strings (numbers only
/// for cities and segments), and two-letter codes for `visit:country`.
fn check_clauses(f: &Value) -> Result<(), QueryError> {
    let Some(a) = f.as_array() else { return Ok(()) };
    match a.first().and_then(Value::as_str) {
        Some("and" | "or") => return a[1].as_array().into_iter().flatten().try_for_each(check_clauses),
        Some("not") => return check_clauses(&a[1]),
        _ => {}
    }
    let (op, dim) = (a[0].as_str().unwrap_or_default(), a[1].as_str().unwrap_or_default());
    let clauses = a.get(2).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let strings = clauses.iter().all(Value::is_string);
    let numbers = clauses.iter().all(|v| v.is_i64() || v.is_u64());
    if dim == "visit:country" && strings && matches!(op, "is" | "is_not") {
        if clauses.iter().filter_map(Value::as_str).all(|c| c.chars().count() == 2) {
            return Ok(());
        }
        return Err(err("Invalid visit:country filter, visit:country needs to be a valid 2-letter country code."));
    }
    let ok = match dim {
        "visit:city" => strings || numbers,
        "segment" => numbers,
        _ => strings,
    };
    if ok { Ok(()) } else { Err(err(format!("Invalid filter '{}'.", inspect(f)))) }
}

/// The scope of one filter of the subset, or why it is outside it ("filters …").
fn scope(f: &Value) -> Result<Scope, &'static str> {
    let a = f.as_array().ok_or("filters with one condition")?;
    let op = a.first().and_then(Value::as_str).unwrap_or_default();
    if matches!(op, "and" | "or" | "not") {
        return Err("filters with one condition, not `and`, `or` or `not`");
    }
    if op != "is" {
        return Err("filters with `is` only");
    }
    if a.len() != 3 {
        return Err("filters without modifiers (values match exactly)");
    }
    let [value] = a[2].as_array().map(Vec::as_slice).unwrap_or_default() else {
        return Err("filters on one value at a time");
    };
    let value = value.as_str().ok_or("filters on string values")?;
    // A value longer than any stored one names nothing: zeros, as the native filters answer.
    let value = if value.chars().count() > MAX_VALUE_CHARS { "\u{0}" } else { value };
    match a[1].as_str().unwrap_or_default() {
        "event:page" => Ok(Scope::Page(value.to_string())),
        "event:goal" => Ok(Scope::Goal(value.to_string())),
        dim => VisitDim::parse(dim)
            .map(|d| Scope::Visit(d, d.from_plausible(value)))
            .ok_or("filters on event:page, event:goal, visit:source, visit:utm_campaign, visit:utm_medium, visit:country, visit:device, visit:browser, visit:os or visit:entry_page"),
    }
}

/// An `order_by` entry as its schema takes it: the metric or dimension's name and whether it
/// is descending.
fn order_by_entries(entries: &[Value]) -> Result<Vec<(String, bool)>, QueryError> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let path = format!("#/order_by/{i}");
            let pair = array(&path, e)?;
            if pair.len() < 2 {
                return Err(err(format!("{path}: Expected a minimum of 2 items but got {}.", pair.len())));
            }
            at_most(&path, pair, 2)?;
            let name = pair[0]
                .as_str()
                .filter(|s| PLAUSIBLE_METRICS.contains(s) || is_plausible_dimension(s) && *s != "event:goal")
                .ok_or_else(|| err(format!("{path}/0: Invalid value in order_by {}", inspect(&pair[0]))))?;
            let desc = match pair[1].as_str() {
                Some("desc") => true,
                Some("asc") => false,
                Some(_) => return Err(err(format!("{path}/1: Value is not allowed in enum."))),
                None => return Err(mismatch(&format!("{path}/1"), "String", &pair[1])),
            };
            Ok((name.to_string(), desc))
        })
        .collect()
}

/// Each entry must name a metric or the dimension of the query.
fn resolve_order(
    entries: Vec<(String, bool)>,
    metrics: &[Metric],
    dimension: Option<Dimension>,
) -> Result<Vec<(OrderKey, bool)>, QueryError> {
    entries
        .into_iter()
        .map(|(name, desc)| {
            let metric = Metric::parse(&name).filter(|m| metrics.contains(m)).map(OrderKey::Metric);
            let dim = dimension.filter(|d| d.name() == name).map(OrderKey::Dimension);
            metric.or(dim).map(|key| (key, desc)).ok_or_else(|| {
                // Plausible shows the entry as the tuple it parsed: a metric as an atom.
                let shown = if PLAUSIBLE_METRICS.contains(&name.as_str()) {
                    format!(":{name}")
                } else {
                    inspect(&Value::String(name))
                };
                let dir = if desc { "desc" } else { "asc" };
                err(format!("Invalid order_by entry '{{{shown}, :{dir}}}'. Entry is not a queried metric or dimension."))
            })
        })
        .collect()
}

fn include(v: &Value) -> Result<Include, QueryError> {
    let map = object("#/include", v)?;
    only_fields("#/include", map, &["time_labels", "imports", "total_rows"])?;
    let flag = |name: &str| match map.get(name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(mismatch(&format!("#/include/{name}"), "Boolean", other)),
    };
    Ok(Include { time_labels: flag("time_labels")?, imports: flag("imports")?, total_rows: flag("total_rows")? })
}

fn pagination(v: &Value) -> Result<(usize, usize), QueryError> {
    let map = object("#/pagination", v)?;
    only_fields("#/pagination", map, &["limit", "offset"])?;
    let integer = |name: &str, min: i64, max: Option<i64>, default: usize| -> Result<usize, QueryError> {
        let path = format!("#/pagination/{name}");
        let Some(v) = map.get(name) else { return Ok(default) };
        let n = match v {
            Value::Number(n) if n.is_u64() => n.as_u64().map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            Value::Number(n) if n.is_i64() => {
                return Err(err(format!("{path}: Expected the value to be >= {min}")));
            }
            other => return Err(mismatch(&path, "Integer", other)),
        };
        if (n as u128) < min as u128 {
            return Err(err(format!("{path}: Expected the value to be >= {min}")));
        }
        if let Some(max) = max.filter(|max| n as u128 > *max as u128) {
            return Err(err(format!("{path}: Expected the value to be <= {max}")));
        }
        Ok(n)
    };
    Ok((integer("limit", 1, Some(MAX_LIMIT as i64), MAX_LIMIT)?, integer("offset", 0, None, 0)?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 15).expect("day")
    }

    fn day(s: &str) -> NaiveDate {
        shared::time::parse_day(s).expect("day")
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("an object")
    }

    fn parsed(v: Value) -> Query {
        parse(&body(v.clone()), today()).unwrap_or_else(|e| panic!("{v}: {e:?}"))
    }

    fn refusal(v: Value) -> String {
        match parse(&body(v.clone()), today()) {
            Ok(q) => panic!("{v} was taken: {q:?}"),
            Err(QueryError(message)) => message,
        }
    }

    #[test]
    fn a_plain_query_takes_plausibles_defaults() {
        let q = parsed(json!({"site_id": "example.com", "metrics": ["visitors", "pageviews"], "date_range": "7d"}));
        assert_eq!(q.metrics, vec![Metric::Visitors, Metric::Pageviews]);
        assert_eq!((q.from, q.to), (day("2026-03-08"), day("2026-03-14")), "the seven whole days before today");
        assert_eq!((q.dimension, &q.scope), (None, &Scope::Site));
        assert_eq!(q.order_by, vec![(OrderKey::Metric(Metric::Visitors), true)], "the first metric, descending");
        assert_eq!((q.limit, q.offset, q.include), (10_000, 0, Include::default()));
        assert_eq!(q.filters, json!([]));
    }

    #[test]
    fn date_ranges_are_plausibles() {
        let cases = [
            ("day", json!("day"), "2026-03-15", "2026-03-15"),
            ("7d excludes today", json!("7d"), "2026-03-08", "2026-03-14"),
            ("30d excludes today", json!("30d"), "2026-02-13", "2026-03-14"),
            ("month is this whole month", json!("month"), "2026-03-01", "2026-03-31"),
            ("6mo: the six months before this one", json!("6mo"), "2025-09-01", "2026-02-28"),
            ("12mo: the twelve months before this one", json!("12mo"), "2025-03-01", "2026-02-28"),
            ("two dates", json!(["2026-01-01", "2026-01-31"]), "2026-01-01", "2026-01-31"),
            ("one day", json!(["2026-01-05", "2026-01-05"]), "2026-01-05", "2026-01-05"),
            ("366 days", json!(["2024-01-01", "2024-12-31"]), "2024-01-01", "2024-12-31"),
        ];
        for (case, range, from, to) in cases {
            let q = parsed(json!({"site_id": "s", "metrics": ["visits"], "date_range": range}));
            assert_eq!((q.from, q.to), (day(from), day(to)), "case {case}");
        }
        // A leap year's March: the month before ends on the 29th.
        let leap = parse(&body(json!({"metrics": ["visits"], "date_range": "6mo"})), day("2024-03-10")).expect("leap");
        assert_eq!((leap.from, leap.to), (day("2023-09-01"), day("2024-02-29")));
    }

    #[test]
    fn every_refusal_is_worded_as_plausible_words_it() {
        let base = || json!({"site_id": "example.com", "metrics": ["visitors"], "date_range": "7d"});
        let with = |k: &str, v: Value| {
            let mut b = base();
            b[k] = v;
            b
        };
        let cases: Vec<(&str, Value, &str)> = vec![
            // The schema.
            ("an unknown field", with("date", json!("2026-01-01")), "#/date: Schema does not allow additional properties."),
            ("no metrics", json!({"site_id": "s", "date_range": "7d"}), "#: Required property metrics was not present."),
            ("neither", json!({"site_id": "s"}), "#: Required properties metrics, date_range were not present."),
            (
                "metrics not a list",
                with("metrics", json!("visitors")),
                "#/metrics: Type mismatch. Expected Array but got String.",
            ),
            ("no metric", with("metrics", json!([])), "#/metrics: Expected a minimum of 1 items but got 0."),
            ("an invalid metric", with("metrics", json!(["visitors", "foo"])), "#/metrics/1: Invalid metric \"foo\""),
            ("a metric not a string", with("metrics", json!([5])), "#/metrics/0: Invalid metric 5"),
            (
                "a metric twice",
                with("metrics", json!(["visits", "visits"])),
                "#/metrics: Expected items to be unique but they were not.",
            ),
            (
                "an invalid date range",
                with("date_range", json!("yesterday")),
                "#/date_range: Invalid date range \"yesterday\"",
            ),
            (
                "a range of one date",
                with("date_range", json!(["2026-01-01"])),
                "#/date_range: Invalid date range [\"2026-01-01\"]",
            ),
            (
                "a date and a timestamp",
                with("date_range", json!(["2026-01-01", "2026-01-02T00:00:00Z"])),
                "#/date_range: Invalid date range [\"2026-01-01\", \"2026-01-02T00:00:00Z\"]",
            ),
            (
                "dates out of order",
                with("date_range", json!(["2026-02-01", "2026-01-01"])),
                "#/date_range: Invalid date range [\"2026-02-01\", \"2026-01-01\"]",
            ),
            (
                "a loose date",
                with("date_range", json!(["2026-1-1", "2026-01-02"])),
                "#/date_range: Invalid date range [\"2026-1-1\", \"2026-01-02\"]",
            ),
            (
                "an invalid dimension",
                with("dimensions", json!(["visit:planet"])),
                "#/dimensions/0: Invalid dimension \"visit:planet\"",
            ),
            (
                "dimensions not a list",
                with("dimensions", json!("event:page")),
                "#/dimensions: Type mismatch. Expected Array but got String.",
            ),
            (
                "a dimension twice",
                with("dimensions", json!(["event:page", "event:page"])),
                "#/dimensions: Expected items to be unique but they were not.",
            ),
            (
                "an invalid filter",
                with("filters", json!([["is", "visit:planet", ["x"]]])),
                "#/filters/0: Invalid filter [\"is\", \"visit:planet\", [\"x\"]]",
            ),
            (
                "an invalid operator",
                with("filters", json!([["equals", "event:page", ["/"]]])),
                "#/filters/0: Invalid filter [\"equals\", \"event:page\", [\"/\"]]",
            ),
            ("a filter not a list", with("filters", json!(["is"])), "#/filters/0: Invalid filter \"is\""),
            ("an empty and", with("filters", json!([["and", []]])), "#/filters/0: Invalid filter [\"and\", []]"),
            (
                "a pattern with modifiers",
                with("filters", json!([["matches", "event:page", ["^/"], {}]])),
                "#/filters/0: Invalid filter [\"matches\", \"event:page\", [\"^/\"], %{}]",
            ),
            (
                "an unknown modifier",
                with("filters", json!([["is", "event:page", ["/"], {"exact": true}]])),
                "#/filters/0: Invalid filter [\"is\", \"event:page\", [\"/\"], %{\"exact\" => true}]",
            ),
            (
                "a goal with is_not",
                with("filters", json!([["is_not", "event:goal", ["Signup"]]])),
                "#/filters/0: Invalid filter [\"is_not\", \"event:goal\", [\"Signup\"]]",
            ),
            (
                "order_by not a list",
                with("order_by", json!("visitors")),
                "#/order_by: Type mismatch. Expected Array but got String.",
            ),
            (
                "an order_by entry of one",
                with("order_by", json!([["visitors"]])),
                "#/order_by/0: Expected a minimum of 2 items but got 1.",
            ),
            (
                "an invalid order_by value",
                with("order_by", json!([["foo", "desc"]])),
                "#/order_by/0/0: Invalid value in order_by \"foo\"",
            ),
            (
                "ordered by goal",
                with("order_by", json!([["event:goal", "desc"]])),
                "#/order_by/0/0: Invalid value in order_by \"event:goal\"",
            ),
            (
                "an invalid direction",
                with("order_by", json!([["visitors", "up"]])),
                "#/order_by/0/1: Value is not allowed in enum.",
            ),
            (
                "include not an object",
                with("include", json!(true)),
                "#/include: Type mismatch. Expected Object but got Boolean.",
            ),
            (
                "an unknown include",
                with("include", json!({"comparisons": {}})),
                "#/include/comparisons: Schema does not allow additional properties.",
            ),
            (
                "an include not a flag",
                with("include", json!({"total_rows": "yes"})),
                "#/include/total_rows: Type mismatch. Expected Boolean but got String.",
            ),
            (
                "pagination not an object",
                with("pagination", json!(5)),
                "#/pagination: Type mismatch. Expected Object but got Integer.",
            ),
            (
                "a page past the most",
                with("pagination", json!({"limit": 10_001})),
                "#/pagination/limit: Expected the value to be <= 10000",
            ),
            ("a page of none", with("pagination", json!({"limit": 0})), "#/pagination/limit: Expected the value to be >= 1"),
            (
                "a negative offset",
                with("pagination", json!({"offset": -1})),
                "#/pagination/offset: Expected the value to be >= 0",
            ),
            (
                "a limit not an integer",
                with("pagination", json!({"limit": 2.5})),
                "#/pagination/limit: Type mismatch. Expected Integer but got Number.",
            ),
            (
                "an unknown pagination field",
                with("pagination", json!({"page": 2})),
                "#/pagination/page: Schema does not allow additional properties.",
            ),
            // Plausible's checks of values.
            (
                "a country of three letters",
                with("filters", json!([["is", "visit:country", ["DEU"]]])),
                "Invalid visit:country filter, visit:country needs to be a valid 2-letter country code.",
            ),
            (
                "a number for a source",
                with("filters", json!([["is", "visit:source", [1]]])),
                "Invalid filter '[\"is\", \"visit:source\", [1]]'.",
            ),
            // Plausible answers it; ConvertPulse does not.
            (
                "a metric outside the subset",
                with("metrics", json!(["visitors", "visit_duration"])),
                "#/metrics/1: Unsupported metric \"visit_duration\"",
            ),
            (
                "all time",
                with("date_range", json!("all")),
                "#/date_range: Unsupported date range \"all\": ConvertPulse answers day, 7d, 30d, month, 6mo, 12mo or two dates",
            ),
            (
                "this year",
                with("date_range", json!("year")),
                "#/date_range: Unsupported date range \"year\": ConvertPulse answers day, 7d, 30d, month, 6mo, 12mo or two dates",
            ),
            (
                "two timestamps",
                with("date_range", json!(["2026-01-01T00:00:00Z", "2026-01-02T12:00:00+03:00"])),
                "#/date_range: Unsupported date range [\"2026-01-01T00:00:00Z\", \"2026-01-02T12:00:00+03:00\"]: ConvertPulse answers day, 7d, 30d, month, 6mo, 12mo or two dates",
            ),
            (
                "367 days",
                with("date_range", json!(["2024-01-01", "2025-01-01"])),
                "#/date_range: Unsupported date range [\"2024-01-01\", \"2025-01-01\"]: ConvertPulse answers at most 366 days",
            ),
            (
                "a dimension outside the subset",
                with("dimensions", json!(["visit:city"])),
                "#/dimensions/0: Unsupported dimension \"visit:city\"",
            ),
            ("time of any size", with("dimensions", json!(["time"])), "#/dimensions/0: Unsupported dimension \"time\""),
            (
                "two dimensions",
                with("dimensions", json!(["event:page", "visit:source"])),
                "#/dimensions: Expected a maximum of 1 items but got 2.",
            ),
            (
                "a filter with contains",
                with("filters", json!([["contains", "event:page", ["/blog"]]])),
                "#/filters/0: Unsupported filter [\"contains\", \"event:page\", [\"/blog\"]]: ConvertPulse filters with `is` only",
            ),
            (
                "a filter with is_not",
                with("filters", json!([["is_not", "visit:source", ["Google"]]])),
                "#/filters/0: Unsupported filter [\"is_not\", \"visit:source\", [\"Google\"]]: ConvertPulse filters with `is` only",
            ),
            (
                "two values",
                with("filters", json!([["is", "visit:source", ["a", "b"]]])),
                "#/filters/0: Unsupported filter [\"is\", \"visit:source\", [\"a\", \"b\"]]: ConvertPulse filters on one value at a time",
            ),
            (
                "no value",
                with("filters", json!([["is", "visit:source", []]])),
                "#/filters/0: Unsupported filter [\"is\", \"visit:source\", []]: ConvertPulse filters on one value at a time",
            ),
            (
                "case-insensitive",
                with("filters", json!([["is", "event:page", ["/"], {"case_sensitive": false}]])),
                "#/filters/0: Unsupported filter [\"is\", \"event:page\", [\"/\"], %{\"case_sensitive\" => false}]: ConvertPulse filters without modifiers (values match exactly)",
            ),
            (
                "a tree",
                with("filters", json!([["and", [["is", "event:page", ["/"]]]]])),
                "#/filters/0: Unsupported filter [\"and\", [[\"is\", \"event:page\", [\"/\"]]]]: ConvertPulse filters with one condition, not `and`, `or` or `not`",
            ),
            (
                "a segment",
                with("filters", json!([["is", "segment", [1]]])),
                "#/filters/0: Unsupported filter [\"is\", \"segment\", [1]]: ConvertPulse filters on string values",
            ),
            (
                "a dimension outside the filters",
                with("filters", json!([["is", "visit:city", ["Berlin"]]])),
                "#/filters/0: Unsupported filter [\"is\", \"visit:city\", [\"Berlin\"]]: ConvertPulse filters on event:page, event:goal, visit:source, visit:utm_campaign, visit:utm_medium, visit:country, visit:device, visit:browser, visit:os or visit:entry_page",
            ),
            (
                "two filters",
                with("filters", json!([["is", "event:page", ["/"]], ["is", "visit:source", ["Google"]]])),
                "#/filters: Expected a maximum of 1 items but got 2.",
            ),
            // Plausible's rules across fields.
            (
                "ordered by a metric not asked for",
                with("order_by", json!([["visits", "desc"]])),
                "Invalid order_by entry '{:visits, :desc}'. Entry is not a queried metric or dimension.",
            ),
            (
                "ordered by a dimension not asked for",
                with("order_by", json!([["visit:source", "asc"]])),
                "Invalid order_by entry '{\"visit:source\", :asc}'. Entry is not a queried metric or dimension.",
            ),
            (
                "time labels without time",
                with("include", json!({"time_labels": true})),
                "Invalid include.time_labels: requires a time dimension.",
            ),
            (
                "a conversion rate without a goal",
                with("metrics", json!(["conversion_rate"])),
                "Metric `conversion_rate` can only be queried with event:goal filters or dimensions.",
            ),
            (
                "a scroll depth without a page",
                with("metrics", json!(["scroll_depth"])),
                "Metric `scroll_depth` can only be queried with event:page filters or dimensions.",
            ),
            (
                "a bounce rate by goal",
                json!({"site_id": "s", "metrics": ["bounce_rate"], "date_range": "7d", "dimensions": ["event:goal"]}),
                "Session metric(s) `bounce_rate` cannot be queried along with event dimensions.",
            ),
            // What the rollups cannot answer exactly.
            (
                "visitors by source",
                json!({"site_id": "s", "metrics": ["visitors"], "date_range": "7d", "dimensions": ["visit:source"]}),
                "Metric `visitors` cannot be queried with the `visit:source` dimension in ConvertPulse: visits are counted by visit property, distinct visitors are not: ask for `visits`.",
            ),
            (
                "visitors of a source",
                json!({"site_id": "s", "metrics": ["visitors"], "date_range": "7d", "filters": [["is", "visit:source", ["Google"]]]}),
                "Metric `visitors` cannot be queried with a filter on `visit:source` in ConvertPulse: visits are counted by visit property, distinct visitors are not: ask for `visits`.",
            ),
            (
                "visits of a page",
                json!({"site_id": "s", "metrics": ["visits"], "date_range": "7d", "dimensions": ["event:page"]}),
                "Metric `visits` cannot be queried with the `event:page` dimension in ConvertPulse: a page's visits are counted by the page they entered on: ask for `visit:entry_page`.",
            ),
            (
                "events of a page",
                json!({"site_id": "s", "metrics": ["events"], "date_range": "7d", "filters": [["is", "event:page", ["/"]]]}),
                "Metric `events` cannot be queried with a filter on `event:page` in ConvertPulse: custom events are counted for the whole site only.",
            ),
            (
                "visitors of a goal",
                json!({"site_id": "s", "metrics": ["visitors", "conversion_rate"], "date_range": "7d", "filters": [["is", "event:goal", ["Signup"]]], "dimensions": ["visit:source"]}),
                "Metric `visitors` cannot be queried with a filter on `event:goal` and the `visit:source` dimension in ConvertPulse: goal completions are counted per visit: ask for `visits` (visits that completed the goal) or `conversion_rate`.",
            ),
            (
                "pageviews by goal",
                json!({"site_id": "s", "metrics": ["pageviews"], "date_range": "7d", "dimensions": ["event:goal"]}),
                "Metric `pageviews` cannot be queried with the `event:goal` dimension in ConvertPulse: goal completions are counted per visit: ask for `visits` (visits that completed the goal) or `conversion_rate`.",
            ),
            (
                "a page by source",
                json!({"site_id": "s", "metrics": ["pageviews"], "date_range": "7d", "filters": [["is", "event:page", ["/"]]], "dimensions": ["visit:source"]}),
                "Filtering on `event:page` cannot be combined with the `visit:source` dimension in ConvertPulse.",
            ),
            (
                "a goal by day",
                json!({"site_id": "s", "metrics": ["visits"], "date_range": "7d", "filters": [["is", "event:goal", ["Signup"]]], "dimensions": ["time:day"]}),
                "Filtering on `event:goal` cannot be combined with the `time:day` dimension in ConvertPulse.",
            ),
            (
                "a source by page",
                json!({"site_id": "s", "metrics": ["pageviews"], "date_range": "7d", "filters": [["is", "visit:source", ["Google"]]], "dimensions": ["event:page"]}),
                "Filtering on `visit:source` cannot be combined with the `event:page` dimension in ConvertPulse.",
            ),
        ];
        for (case, request, want) in cases {
            assert_eq!(refusal(request), want, "case {case}");
        }
    }

    #[test]
    fn the_subset_is_taken_whole() {
        let q = |extra: Value| {
            let mut b = json!({"site_id": "s", "metrics": ["visits"], "date_range": "day"});
            for (k, v) in extra.as_object().expect("object") {
                b[k] = v.clone();
            }
            parsed(b)
        };
        // Every dimension.
        for d in [
            "time:day",
            "visit:source",
            "visit:utm_campaign",
            "visit:utm_medium",
            "visit:country",
            "visit:device",
            "visit:browser",
            "visit:os",
            "visit:entry_page",
            "event:goal",
        ] {
            assert_eq!(q(json!({"dimensions": [d]})).dimension.map(Dimension::name), Some(d), "case {d}");
        }
        let pages = parsed(
            json!({"site_id": "s", "metrics": ["visitors", "pageviews", "bounce_rate", "scroll_depth"], "date_range": "day", "dimensions": ["event:page"]}),
        );
        assert_eq!(pages.dimension, Some(Dimension::Page));
        // Every filter, values as stored.
        let cases = [
            (json!(["is", "event:page", ["/pricing"]]), Scope::Page("/pricing".into())),
            (json!(["is", "visit:source", ["Direct / None"]]), Scope::Visit(VisitDim::Source, "(direct)".into())),
            (json!(["is", "visit:source", ["google.com"]]), Scope::Visit(VisitDim::Source, "google.com".into())),
            (json!(["is", "visit:device", ["Desktop"]]), Scope::Visit(VisitDim::Device, "desktop".into())),
            (json!(["is", "visit:country", ["DE"]]), Scope::Visit(VisitDim::Country, "DE".into())),
            (json!(["is", "visit:utm_campaign", ["spring"]]), Scope::Visit(VisitDim::Campaign, "spring".into())),
            (json!(["is", "visit:entry_page", ["/"]]), Scope::Visit(VisitDim::EntryPage, "/".into())),
            (json!(["is", "event:goal", ["Signup"]]), Scope::Goal("Signup".into())),
        ];
        for (filter, scope) in cases {
            // Pageviews of a page or a value; the visits that completed a goal.
            let metric = if matches!(scope, Scope::Goal(_)) { "visits" } else { "pageviews" };
            assert_eq!(q(json!({"metrics": [metric], "filters": [filter.clone()]})).scope, scope, "case {filter}");
        }
        let long = "/".to_string() + &"a".repeat(MAX_VALUE_CHARS);
        let far = q(json!({"metrics": ["pageviews"], "filters": [["is", "event:page", [long]]]}));
        assert_eq!(far.scope, Scope::Page("\u{0}".into()), "names nothing");
        // Order, pagination, include.
        let ordered = q(json!({"dimensions": ["time:day"], "order_by": [["time:day", "desc"], ["visits", "asc"]],
                              "pagination": {"limit": 5, "offset": 10}, "include": {"time_labels": true, "total_rows": true, "imports": true}}));
        assert_eq!(
            ordered.order_by,
            vec![(OrderKey::Dimension(Dimension::Day), true), (OrderKey::Metric(Metric::Visits), false)]
        );
        assert_eq!((ordered.limit, ordered.offset), (5, 10));
        assert_eq!(ordered.include, Include { time_labels: true, total_rows: true, imports: true });
        let by_day = q(json!({"dimensions": ["time:day"]}));
        assert_eq!(
            by_day.order_by,
            vec![(OrderKey::Dimension(Dimension::Day), false), (OrderKey::Metric(Metric::Visits), true)],
            "time ascending first"
        );
        // A goal's conversions by source; a goal's rate.
        let by_source = q(
            json!({"metrics": ["visits", "conversion_rate"], "filters": [["is", "event:goal", ["Signup"]]], "dimensions": ["visit:source"]}),
        );
        assert_eq!(
            (by_source.scope, by_source.dimension),
            (Scope::Goal("Signup".into()), Some(Dimension::Visit(VisitDim::Source)))
        );
    }

    #[test]
    fn stored_values_read_as_plausible_spells_them() {
        assert_eq!(VisitDim::Source.to_plausible("(direct)"), "Direct / None");
        assert_eq!(VisitDim::Source.to_plausible("google.com"), "google.com");
        assert_eq!(VisitDim::Device.to_plausible("desktop"), "Desktop");
        assert_eq!(VisitDim::Device.from_plausible("TABLET"), "tablet");
        assert_eq!(VisitDim::Os.to_plausible("macOS"), "macOS");
    }
}
