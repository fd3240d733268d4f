//! Helpers of the v2 stats tests: tracker events of the v2 wire format, batches sent with a
//! chosen User-Agent and forwarded address, a site time zone far from midnight, and a writer
//! of batches received on past days straight into a stack's database (the aggregator's own
//! flush code, with a clock the test sets), so the real api serves data of earlier days.

use std::{sync::Arc, time::Duration};

use aggregator::{
    flush::{Flusher, Settings, Verdict},
    rollup::Capacities,
};
use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use mongodb::{Database, bson::doc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::{clock::ManualClock, event::Event, message::BatchMessage, names::collections as c};

use crate::{client::Api, stack::Stack};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Desktop Chrome on Windows; [`chrome`] makes distinct visitors of it.
pub const CHROME_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

/// Desktop Chrome on Windows with build number `n`: the same audience, another visitor (the
/// visitor hash covers the User-Agent).
pub fn chrome(n: u32) -> String {
    format!(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.{n} Safari/537.36"
    )
}

/// A pageview with an A/B variant.
pub fn pageview_variant(page_id: &str, url: &str, referrer: &str, new_session: bool, variant: &str) -> Value {
    let mut e = crate::batch::pageview(page_id, url, referrer, new_session);
    e["variant"] = json!(variant);
    e
}

/// A custom event (`type: event`); `props` null sends none.
pub fn custom(page_id: &str, url: &str, name: &str, props: Value) -> Value {
    let mut e = json!({"type": "event", "ts": 1_764_000_000_000_i64, "page_id": page_id, "url": url, "name": name});
    if !props.is_null() {
        e["props"] = props;
    }
    e
}

/// Posts a batch to ingest as a browser on `https://example.com` would, with `user_agent` and
/// optionally an `X-Forwarded-For`.
pub async fn post_from(api: &Api, b: &Value, user_agent: &str, forwarded_for: Option<&str>) -> (StatusCode, Value) {
    let mut req = api
        .http
        .post(format!("{}/api/events/batch", api.ingest))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("user-agent", user_agent)
        .header("origin", "https://example.com")
        .body(serde_json::to_vec(b).expect("json"));
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    Api::json(req.send().await.expect("ingest reachable")).await
}

/// Posts a batch and insists on `202 {"accepted": N}`.
pub async fn send(api: &Api, b: &Value, user_agent: &str) {
    let (status, body) = post_from(api, b, user_agent, None).await;
    let n = b["events"].as_array().map_or(0, Vec::len);
    assert_eq!((status, &body), (StatusCode::ACCEPTED, &json!({"accepted": n})), "batch {}", b["batch_id"]);
}

/// A fixed-offset IANA zone (`Etc/GMT±N`) in which it is now around noon: a test that sends
/// events "today" and reads "today" cannot straddle a local midnight.
pub fn noon_zone() -> String {
    noon_zone_at(Utc::now().timestamp_millis())
}

pub fn noon_zone_at(now_ms: i64) -> String {
    let utc_hour = (now_ms.rem_euclid(DAY_MS) / HOUR_MS) as i32;
    // Local = UTC + offset; offsets from -11 to +12 are all valid zones.
    let offset = 12 - utc_hour;
    match offset {
        0 => "Etc/GMT".to_string(),
        // The Etc/ names count the other way round: Etc/GMT-5 is UTC+5.
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// The local day (`YYYY-MM-DD`) of `ms` in `tz`.
pub fn day_of(ms: i64, tz: &str) -> String {
    let tz: Tz = tz.parse().expect("a zone");
    tz.timestamp_millis_opt(ms).single().expect("a time").format("%Y-%m-%d").to_string()
}

/// The local hour label (`YYYY-MM-DDTHH:00`) of `ms` in `tz`.
pub fn hour_of(ms: i64, tz: &str) -> String {
    let tz: Tz = tz.parse().expect("a zone");
    tz.timestamp_millis_opt(ms).single().expect("a time").format("%Y-%m-%dT%H:00").to_string()
}

/// The local minute label (`HH:MM`) of `ms` in `tz`.
pub fn minute_of(ms: i64, tz: &str) -> String {
    let tz: Tz = tz.parse().expect("a zone");
    tz.timestamp_millis_opt(ms).single().expect("a time").format("%H:%M").to_string()
}

/// Noon (local) of the day `days_ago` days before the local day of `now_ms`, in epoch ms.
pub fn local_noon_days_ago(now_ms: i64, tz: &str, days_ago: i64) -> i64 {
    let zone: Tz = tz.parse().expect("a zone");
    let today = zone.timestamp_millis_opt(now_ms).single().expect("a time").date_naive();
    let day = today - chrono::Duration::days(days_ago);
    let noon = day.and_hms_opt(12, 0, 0).expect("noon");
    zone.from_local_datetime(&noon).single().expect("noon exists").timestamp_millis()
}

/// Writes batches received at chosen (past) times into a stack's database with the
/// aggregator's flush code: what the running aggregator would have written had the batches
/// arrived then.
pub struct PastWriter {
    pub db: Database,
    flusher: Flusher,
}

impl PastWriter {
    pub async fn new(stack: &Stack) -> Self {
        let client = mongodb::Client::with_uri_str(&stack.mongo_uri).await.expect("mongodb client");
        let db = client.database(&stack.mongo_db);
        let settings = Settings {
            lease: Duration::from_secs(30),
            caps: Capacities::with_keys(1000, 1000),
            day_retention: Duration::from_secs(400 * 86_400),
            compact_max_bytes: shared::rollup::siteday::COMPACT_MAX_BYTES,
        };
        let clock = ManualClock::at(Utc::now().timestamp_millis());
        Self { flusher: Flusher::new(db.clone(), settings, Arc::new(clock)), db }
    }

    /// Flushes `msgs` (distinct batches) and insists that every one is acked.
    pub async fn write(&self, msgs: &[BatchMessage]) {
        let (verdicts, _) = self.flusher.flush(msgs).await.expect("the flush succeeds");
        assert!(verdicts.iter().all(|v| *v == Verdict::Ack), "every batch written: {verdicts:?}");
    }

    /// Moves the creation time of every goal and funnel of `site_id` back by `by_ms` (keeping
    /// their order), so that they apply to batches written for earlier days: a goal counts
    /// what arrives after it was created.
    pub async fn backdate_goals(&self, site_id: &str, by_ms: i64) {
        let configs = self.db.collection::<shared::site_config::SiteConfigDoc>(c::SITE_CONFIG);
        let mut config = configs.find_one(doc! {"_id": site_id}).await.expect("config read").expect("the site has goals");
        assert!(!(config.goals.is_empty() && config.funnels.is_empty() && config.segments.is_empty()), "something to move");
        for g in &mut config.goals {
            g.created_ms -= by_ms;
        }
        for f in &mut config.funnels {
            f.created_ms -= by_ms;
        }
        for s in &mut config.segments {
            s.created_ms -= by_ms;
        }
        let (filter, update) = config.write_statement(config.rev).expect("statement");
        let res = configs.update_one(filter, update).await.expect("config written");
        assert_eq!(res.matched_count, 1, "nobody changed the goals meanwhile");
    }
}

/// Where a past batch comes from: the site and the visitor.
#[derive(Debug, Clone)]
pub struct PastSite {
    pub site_id: String,
    pub timezone: String,
    pub domain: String,
}

impl PastSite {
    /// A batch of `session`, received at `received_at`, by `visitor`, with tracker events in
    /// the wire format ([`cp_tests::batch`], [`custom`], [`pageview_variant`]).
    pub fn msg(&self, session: &str, visitor: &str, received_at: i64, events: Vec<Value>) -> BatchMessage {
        BatchMessage {
            site_id: self.site_id.clone(),
            batch_id: shared::ids::BatchId::new(crate::batch::id("past")),
            session_id: session.to_string(),
            received_at,
            visitor: format!("{:0>32}", visitor),
            timezone: self.timezone.clone(),
            domain: self.domain.clone(),
            device: Default::default(),
            browser: Default::default(),
            os: Default::default(),
            country: Default::default(),
            currency: "USD".into(),
            events: events
                .into_iter()
                .map(|e| serde_json::from_value::<Event>(e).expect("an event of the wire format"))
                .collect(),
        }
    }
}

/// The CSV the export should answer for a JSON `series` and the conversions of each point.
pub fn expected_csv(series: &Value, conversions: &[i64]) -> String {
    let points = series.as_array().expect("series");
    assert_eq!(points.len(), conversions.len(), "one conversion figure per point");
    let mut out = String::from("start,pageviews,visitors,sessions,clicks,conversions\n");
    for (p, conv) in points.iter().zip(conversions) {
        let s = p["start"].as_str().expect("start");
        out.push_str(&format!("{s},{},{},{},{},{conv}\n", p["pageviews"], p["visitors"], p["sessions"], p["clicks"]));
    }
    out
}

/// `v` without the fields issue 22 added to stats rows and the summary (`revenue`,
/// `time_to_conversion`), recursively: what the v2-era tests compare exactly.
/// tests/tests/experiments.rs holds those fields to exact figures.
pub fn only_v2(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "revenue" | "time_to_conversion"))
                .map(|(k, v)| (k.clone(), only_v2(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(only_v2).collect()),
        other => other.clone(),
    }
}
