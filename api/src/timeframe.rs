//! Which buckets a stats request covers: `24h`, `7d`, `30d`, `90d`, or a `from`/`to` range of
//! local days, resolved against the site's time zone and the current time.

use chrono::{Duration as Days, NaiveDate};
use chrono_tz::Tz;
use shared::time;

use crate::error::ApiError;

/// Longest custom range, in days.
pub const MAX_RANGE_DAYS: i64 = 366;

/// A resolved range.
#[derive(Debug, Clone, PartialEq)]
pub enum Range {
    /// The 24 local hours ending with the current one (epoch seconds of each start).
    Hours { label: String, hours: Vec<i64> },
    /// Local days from `from` to `to`, inclusive.
    Days { label: String, from: NaiveDate, to: NaiveDate },
}

impl Range {
    /// Resolves the query parameters at `now_ms` in `tz`.
    pub fn resolve(
        timeframe: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        tz: Tz,
        now_ms: i64,
    ) -> Result<Self, ApiError> {
        if from.is_some() || to.is_some() {
            let (Some(from), Some(to)) = (from, to) else {
                return Err(ApiError::InvalidTimeframe("from and to must be given together".into()));
            };
            let from_day =
                time::parse_day(from).ok_or_else(|| ApiError::InvalidTimeframe("from: must be a date YYYY-MM-DD".into()))?;
            let to_day =
                time::parse_day(to).ok_or_else(|| ApiError::InvalidTimeframe("to: must be a date YYYY-MM-DD".into()))?;
            if from_day > to_day {
                return Err(ApiError::InvalidTimeframe("from: must not be after to".into()));
            }
            if (to_day - from_day).num_days() + 1 > MAX_RANGE_DAYS {
                return Err(ApiError::InvalidTimeframe(format!("range must be at most {MAX_RANGE_DAYS} days")));
            }
            return Ok(Self::Days { label: "custom".into(), from: from_day, to: to_day });
        }
        let today = time::local_day(now_ms, tz);
        let days = match timeframe.unwrap_or("7d") {
            "24h" => return Ok(Self::Hours { label: "24h".into(), hours: time::last_24_hours(now_ms, tz) }),
            "7d" => 7,
            "30d" => 30,
            "90d" => 90,
            other => {
                let shown: String = other.chars().take(20).collect();
                return Err(ApiError::InvalidTimeframe(format!("timeframe: {shown:?} is not one of 24h, 7d, 30d, 90d")));
            }
        };
        Ok(Self::Days { label: format!("{days}d"), from: today - Days::days(days - 1), to: today })
    }

    /// The range of the same length just before this one (`?compare=previous`).
    pub fn previous(&self, tz: Tz) -> Self {
        match self {
            Self::Days { label, from, to } => {
                let len = (*to - *from).num_days() + 1;
                Self::Days { label: label.clone(), from: *from - Days::days(len), to: *from - Days::days(1) }
            }
            Self::Hours { label, hours } => {
                let first = hours.first().copied().unwrap_or_default();
                Self::Hours { label: label.clone(), hours: time::last_24_hours(first * 1000 - 1, tz) }
            }
        }
    }

    /// Every day of a day range, oldest first.
    pub fn days(from: NaiveDate, to: NaiveDate) -> Vec<String> {
        from.iter_days().take_while(|d| *d <= to).map(time::day_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> i64 {
        chrono::DateTime::parse_from_rfc3339("2026-11-25T03:00:00Z").expect("time").timestamp_millis()
    }

    #[test]
    fn presets_end_today_in_the_site_zone() {
        let ny: Tz = "America/New_York".parse().expect("tz");
        // 03:00Z is still the 24th in New York.
        match Range::resolve(Some("7d"), None, None, ny, now()).expect("valid") {
            Range::Days { label, from, to } => {
                assert_eq!(label, "7d");
                assert_eq!(time::day_string(from), "2026-11-18");
                assert_eq!(time::day_string(to), "2026-11-24");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(Range::resolve(None, None, None, Tz::UTC, now()), Ok(Range::Days { label, .. }) if label == "7d"));
        assert!(
            matches!(Range::resolve(Some("24h"), None, None, Tz::UTC, now()), Ok(Range::Hours { hours, .. }) if hours.len() == 24)
        );
    }

    #[test]
    fn bad_timeframes_are_refused() {
        let cases: [(Option<&str>, Option<&str>, Option<&str>); 6] = [
            (Some("1y"), None, None),
            (None, Some("2026-11-01"), None),
            (None, Some("2026-11-10"), Some("2026-11-01")),
            (None, Some("2026-13-01"), Some("2026-11-01")),
            (None, Some("2024-01-01"), Some("2026-11-01")),
            (None, Some("yesterday"), Some("2026-11-01")),
        ];
        for (tf, from, to) in cases {
            assert!(Range::resolve(tf, from, to, Tz::UTC, now()).is_err(), "case {tf:?} {from:?} {to:?}");
        }
    }

    #[test]
    fn the_previous_range_has_the_same_length_and_ends_just_before() {
        let from = time::parse_day("2026-11-19").expect("day");
        let to = time::parse_day("2026-11-25").expect("day");
        match (Range::Days { label: "7d".into(), from, to }).previous(Tz::UTC) {
            Range::Days { from, to, .. } => {
                assert_eq!((time::day_string(from), time::day_string(to)), ("2026-11-12".into(), "2026-11-18".into()))
            }
            other => panic!("{other:?}"),
        }
        let hours = time::last_24_hours(now(), Tz::UTC);
        match (Range::Hours { label: "24h".into(), hours: hours.clone() }).previous(Tz::UTC) {
            Range::Hours { hours: before, .. } => {
                assert_eq!(before.len(), 24);
                assert_eq!(before[23] + 3600, hours[0], "ends right before");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn day_list_is_inclusive() {
        let from = time::parse_day("2026-02-27").expect("day");
        let to = time::parse_day("2026-03-02").expect("day");
        assert_eq!(Range::days(from, to), vec!["2026-02-27", "2026-02-28", "2026-03-01", "2026-03-02"]);
    }
}
