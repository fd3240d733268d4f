//! Day and hour buckets in a site's time zone.
//!
//! Days are local calendar dates (`YYYY-MM-DD`). Hours are keyed by the UTC instant (epoch
//! seconds) at which the local hour starts, so that the repeated hour at a DST change stays two
//! buckets, and labelled with local time (`YYYY-MM-DDTHH:00`).

use chrono::{DateTime, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Parses an IANA time-zone name.
pub fn parse_tz(name: &str) -> Option<Tz> {
    name.parse::<Tz>().ok()
}

fn local(ts_ms: i64, tz: Tz) -> DateTime<Tz> {
    let utc = Utc.timestamp_millis_opt(ts_ms).single().unwrap_or_else(Utc::now);
    utc.with_timezone(&tz)
}

/// The local calendar day of an instant.
pub fn local_day(ts_ms: i64, tz: Tz) -> NaiveDate {
    local(ts_ms, tz).date_naive()
}

/// Epoch seconds at which the local hour holding `ts_ms` began.
pub fn hour_start(ts_ms: i64, tz: Tz) -> i64 {
    let t = local(ts_ms, tz);
    let into_hour_ms =
        i64::from(t.minute()) * 60_000 + i64::from(t.second()) * 1000 + i64::from(t.timestamp_subsec_millis());
    (ts_ms - into_hour_ms).div_euclid(1000)
}

/// Epoch seconds at which the minute holding `ts_ms` began.
pub fn minute_start(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(60_000) * 60
}

/// The local label of a minute: `HH:MM`.
pub fn minute_label(start_secs: i64, tz: Tz) -> String {
    local(start_secs * 1000, tz).format("%H:%M").to_string()
}

/// The local label of an hour bucket: `YYYY-MM-DDTHH:00`.
pub fn hour_label(start_secs: i64, tz: Tz) -> String {
    local(start_secs * 1000, tz).format("%Y-%m-%dT%H:00").to_string()
}

/// The starts of the 24 local hours ending with the one holding `now_ms`, oldest first.
pub fn last_24_hours(now_ms: i64, tz: Tz) -> Vec<i64> {
    last_hours(now_ms, tz, 24)
}

/// The starts of the `n` local hours ending with the one holding `now_ms`, oldest first.
pub fn last_hours(now_ms: i64, tz: Tz, n: usize) -> Vec<i64> {
    let mut hours = Vec::with_capacity(n);
    let mut start = hour_start(now_ms, tz);
    for _ in 0..n {
        hours.push(start);
        start = hour_start(start * 1000 - 1, tz);
    }
    hours.reverse();
    hours
}

/// `YYYY-MM-DD`.
pub fn day_string(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// Parses `YYYY-MM-DD`.
pub fn parse_day(raw: &str) -> Option<NaiveDate> {
    if raw.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()
}

/// The UTC day used to pick the visitor-hash salt.
pub fn utc_day(ts_ms: i64) -> String {
    day_string(local_day(ts_ms, Tz::UTC))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339).expect("valid time").timestamp_millis()
    }

    #[test]
    fn day_is_the_local_date() {
        let ny = parse_tz("America/New_York").expect("tz");
        // 03:30 UTC on the 25th is 22:30 on the 24th in New York (EST, UTC-5).
        assert_eq!(day_string(local_day(ms("2026-11-25T03:30:00Z"), ny)), "2026-11-24");
        assert_eq!(day_string(local_day(ms("2026-11-25T05:00:00Z"), ny)), "2026-11-25");
        let tokyo = parse_tz("Asia/Tokyo").expect("tz");
        assert_eq!(day_string(local_day(ms("2026-11-25T15:00:00Z"), tokyo)), "2026-11-26");
    }

    #[test]
    fn hour_buckets_follow_half_hour_zones() {
        let kolkata = parse_tz("Asia/Kolkata").expect("tz");
        // 10:10 UTC is 15:40 IST; that local hour began at 15:00 IST = 09:30 UTC.
        let start = hour_start(ms("2026-11-25T10:10:00Z"), kolkata);
        assert_eq!(start * 1000, ms("2026-11-25T09:30:00Z"));
        assert_eq!(hour_label(start, kolkata), "2026-11-25T15:00");
    }

    #[test]
    fn last_24_hours_are_consecutive_and_end_now() {
        let berlin = parse_tz("Europe/Berlin").expect("tz");
        let now = ms("2026-11-25T12:34:56Z");
        let hours = last_24_hours(now, berlin);
        assert_eq!(hours.len(), 24);
        assert_eq!(*hours.last().expect("24"), hour_start(now, berlin));
        assert!(hours.windows(2).all(|w| w[1] - w[0] == 3600));
        assert_eq!(hour_label(hours[0], berlin), "2026-11-24T14:00");
    }

    #[test]
    fn repeated_dst_hour_is_two_buckets() {
        let ny = parse_tz("America/New_York").expect("tz");
        // 2026-11-01 01:30 happens twice in New York: at 05:30Z (EDT) and 06:30Z (EST).
        let first = hour_start(ms("2026-11-01T05:30:00Z"), ny);
        let second = hour_start(ms("2026-11-01T06:30:00Z"), ny);
        assert_ne!(first, second);
        assert_eq!(hour_label(first, ny), hour_label(second, ny));
    }

    #[test]
    fn parse_day_is_strict() {
        assert!(parse_day("2026-11-25").is_some());
        for bad in ["2026-11-31", "2026-1-05", "26-11-25", "2026-11-25T00", ""] {
            assert!(parse_day(bad).is_none(), "case {bad}");
        }
    }
}
