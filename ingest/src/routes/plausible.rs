//! `POST /api/event`: Plausible's Events API (v3), for sites that turned `plausible_compatible`
//! on, so that Plausible's own tracker (script or npm `@plausible-analytics/tracker`) can point
//! at ConvertPulse unchanged.
//!
//! The body is Plausible's, long keys (`name`, `url`, `domain`, `referrer`, `props`, `revenue`,
//! `interactive`) as its docs spell them or short ones as its tracker sends them (`n`, `u`,
//! `d`, `r`, `p`, `$`, `i`, and `sd`, `e` for engagement), as `text/plain` or JSON. It becomes a
//! native batch of one to two events and goes through the batch route's own checks, from the
//! key on ([`super::batch::accept_parsed`]): origin, bot filter, limits, the exactly-once
//! publish. What Plausible's events lack is made here:
//! - **The site**: the one on the first of `domain`'s comma-separated domains that takes
//!   Plausible's events (one site per domain, the api sees to it).
//! - **Sessions and pages**: Plausible's tracker keeps none; ingest keeps, per site and
//!   visitor (the day's salted visitor id), the current session (a new one after 30 minutes
//!   without an event), its current page and the deepest scroll reported on it, in a bounded
//!   cache of [`MAX_VISITS`]. A pageview is the session's entry when it is its first. With
//!   several ingest processes behind a balancer that is not sticky by client address, one
//!   visit's events may be split into several sessions.
//! - **Engagement**: `sd` (the deepest scroll, percent) adds a scroll event from the depth last
//!   reported on that page; `e` (engaged milliseconds since the last report) a time event.
//! - **The batch id**: derived from the visitor, the body and the 10 seconds it arrived in, so
//!   a retry counts once (an identical event of the same visitor within those 10 seconds too).
//!   `interactive: false` is not kept: ConvertPulse's bounce rule has no such flag.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::LazyLock,
};

use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use shared::{
    client_ip::{client_ip_from_headers, client_net},
    event::{Batch, MAX_EVENT_NAME_CHARS, MAX_URL_CHARS},
    visitor,
};

use super::batch::{accept_parsed, read_limited};
use crate::{
    error::{IngestError, UNAVAILABLE_RETRY_SECS},
    state::AppState,
};

/// Visitors whose session ingest remembers; the least recently seen are forgotten first (a
/// forgotten visitor's next event starts a new session).
pub const MAX_VISITS: usize = 100_000;
/// A session ends after this long without an event, as Plausible's do.
const SESSION_IDLE_MS: i64 = 30 * 60 * 1000;
/// A retry of the same event of the same visitor within this window counts once.
const RETRY_WINDOW_MS: i64 = 10_000;
/// Longest engaged time one event reports (the native time event's limit).
const MAX_ENGAGED_MS: u64 = 1_800_000;

/// What ingest remembers of a visitor of a site.
#[derive(Clone, Debug)]
struct Visit {
    session_id: String,
    last_ms: i64,
    /// A pageview of the session was seen: the next one is not its entry.
    entered: bool,
    page_id: String,
    page_url: String,
    /// The deepest scroll reported on the current page, percent.
    scroll: u64,
}

static VISITS: LazyLock<quick_cache::sync::Cache<String, Visit>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(MAX_VISITS));

/// Answers 202 `ok` as Plausible does, or the batch route's errors.
pub async fn post_event(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    match accept(&state, peer, &parts.headers, body).await {
        Ok(()) => {
            let mut res = (StatusCode::ACCEPTED, "ok").into_response();
            res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            res
        }
        Err(e) => {
            state.metrics.batches_rejected.with_label_values(&[e.code().as_str()]).inc();
            e.into_response()
        }
    }
}

fn invalid(why: impl Into<String>) -> IngestError {
    IngestError::InvalidBatch(why.into())
}

/// A field by either of its names.
fn field<'a>(body: &'a Map<String, Value>, long: &str, short: &str) -> Option<&'a Value> {
    body.get(long).or_else(|| body.get(short)).filter(|v| !v.is_null())
}

/// Plausible's event, checked.
struct Event {
    name: String,
    url: String,
    domains: Vec<String>,
    referrer: Option<String>,
    props: Option<Map<String, Value>>,
    revenue: Option<(Value, String)>,
    scroll: Option<u64>,
    engaged_ms: Option<u64>,
}

fn parse(bytes: &[u8]) -> Result<Event, IngestError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| invalid(format!("body: not JSON: {e}")))?;
    let Value::Object(body) = value else { return Err(invalid("body: must be a JSON object")) };
    let text = |long: &str, short: &str, max: usize| -> Result<Option<String>, IngestError> {
        match field(&body, long, short) {
            None => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(invalid(format!("{long}: at most {max} characters"))),
            Some(_) => Err(invalid(format!("{long}: must be a string"))),
        }
    };
    let name =
        text("name", "n", MAX_EVENT_NAME_CHARS)?.filter(|n| !n.is_empty()).ok_or_else(|| invalid("name: required"))?;
    let url = text("url", "u", MAX_URL_CHARS)?.ok_or_else(|| invalid("url: required"))?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(invalid("url: must be an http(s) URL"));
    }
    let domains: Vec<String> = text("domain", "d", 1000)?
        .ok_or_else(|| invalid("domain: required"))?
        .split(',')
        .filter_map(shared::site::parse_domain)
        .take(10)
        .collect();
    if domains.is_empty() {
        return Err(invalid("domain: must name the site's domain"));
    }
    let referrer = text("referrer", "r", MAX_URL_CHARS)?;
    let props = match field(&body, "props", "p") {
        None => None,
        Some(Value::Object(m)) => Some(m.clone()),
        // Older trackers send the props as a JSON string.
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => Some(m),
            _ => return Err(invalid("props: must be an object")),
        },
        Some(_) => return Err(invalid("props: must be an object")),
    };
    let revenue = match field(&body, "revenue", "$") {
        None => None,
        Some(Value::Object(r)) => {
            let amount = match r.get("amount") {
                Some(Value::Number(n)) => Value::Number(n.clone()),
                Some(Value::String(s)) => match s.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                    Some(n) => Value::Number(n),
                    None => return Err(invalid("revenue.amount: must be a number")),
                },
                _ => return Err(invalid("revenue.amount: must be a number")),
            };
            match r.get("currency") {
                Some(Value::String(c)) => Some((amount, c.clone())),
                _ => return Err(invalid("revenue.currency: must be an ISO 4217 currency code such as USD")),
            }
        }
        Some(_) => return Err(invalid("revenue: must be {amount, currency}")),
    };
    let count = |long: &str, short: &str, max: u64| -> Result<Option<u64>, IngestError> {
        match field(&body, long, short) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(n) if (0.0..=max as f64).contains(&n) => Ok(Some(n.round() as u64)),
                _ => Err(invalid(format!("{long}: must be a number from 0 to {max}"))),
            },
        }
    };
    let scroll = count("scroll_depth", "sd", 100)?;
    let engaged_ms = count("engagement_time", "e", 86_400_000)?;
    Ok(Event { name, url, domains, referrer, props, revenue, scroll, engaged_ms })
}

fn id_of(prefix: &str, parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    format!("{prefix}{}", &hex::encode(h.finalize())[..40])
}

/// Renames the native batch's fields in a refusal to Plausible's.
fn as_plausible(e: IngestError) -> IngestError {
    match e {
        IngestError::InvalidBatch(m) => {
            let m = m
                .split_once("events[")
                .and_then(|(_, rest)| rest.split_once("]."))
                .map_or(m.clone(), |(_, f)| f.to_string());
            IngestError::InvalidBatch(
                m.replace("props.revenue", "revenue.amount").replace("props.currency", "revenue.currency"),
            )
        }
        other => other,
    }
}

async fn accept(state: &AppState, peer: IpAddr, headers: &HeaderMap, body: Body) -> Result<(), IngestError> {
    let ip = client_ip_from_headers(peer, headers, &state.trusted);
    state
        .ip_limiter
        .check(&client_net(ip), state.clock.instant())
        .map_err(|retry_after| IngestError::RateLimited { retry_after })?;
    let bytes = read_limited(body).await?;
    let ev = parse(&bytes)?;
    let (key, site) = ev
        .domains
        .iter()
        .find_map(|d| state.sites.lookup_domain(d))
        .ok_or_else(|| invalid(format!("domain: no site takes Plausible's events for {}", ev.domains.join(","))))?;

    let now = state.clock.now_ms();
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let salt =
        state.salts.salt_at(now).await.map_err(|_| IngestError::Unavailable { retry_after: UNAVAILABLE_RETRY_SECS })?;
    let visitor = visitor::visitor_id(&salt, &site.entry.site_id, ip, user_agent);
    let visitor = visitor.as_str();
    let cache_key = format!("{}|{visitor}", site.entry.site_id);

    // The visitor's session and page, as this event leaves them.
    let mut visit = VISITS.get(&cache_key).filter(|v| now - v.last_ms <= SESSION_IDLE_MS).unwrap_or_else(|| Visit {
        session_id: id_of("pls_", &[visitor.as_bytes(), &now.to_le_bytes()]),
        last_ms: now,
        entered: false,
        page_id: String::new(),
        page_url: String::new(),
        scroll: 0,
    });
    visit.last_ms = now;
    let mut events: Vec<Value> = Vec::new();
    let base = |page_id: &str| json!({"ts": now, "page_id": page_id, "url": ev.url});
    if ev.name == "pageview" {
        visit.page_id = id_of("plp_", &[visitor.as_bytes(), &now.to_le_bytes(), ev.url.as_bytes()]);
        visit.page_url = ev.url.clone();
        visit.scroll = 0;
        let mut pv = base(&visit.page_id);
        pv["type"] = json!("pageview");
        pv["referrer"] = json!(ev.referrer.clone().unwrap_or_default());
        pv["new_session"] = json!(!visit.entered);
        visit.entered = true;
        events.push(pv);
    } else {
        if visit.page_url != ev.url {
            // An event on a page whose pageview this ingest did not see.
            visit.page_id = id_of("plp_", &[visitor.as_bytes(), ev.url.as_bytes()]);
            visit.page_url = ev.url.clone();
            visit.scroll = 0;
        }
        if ev.name == "engagement" {
            if let Some(depth) = ev.scroll.filter(|d| *d > visit.scroll) {
                let mut s = base(&visit.page_id);
                s["type"] = json!("scroll");
                s["depth"] = json!(depth);
                s["prev"] = json!(visit.scroll);
                visit.scroll = depth;
                events.push(s);
            }
            if let Some(ms) = ev.engaged_ms.filter(|ms| *ms > 0) {
                let mut t = base(&visit.page_id);
                t["type"] = json!("time");
                t["seconds"] = json!(ms.min(MAX_ENGAGED_MS) as f64 / 1000.0);
                events.push(t);
            }
        } else {
            let mut c = base(&visit.page_id);
            c["type"] = json!("event");
            c["name"] = json!(ev.name);
            let mut props = ev.props.clone().unwrap_or_default();
            if let Some((amount, currency)) = &ev.revenue {
                props.insert("revenue".into(), amount.clone());
                props.insert("currency".into(), json!(currency));
            }
            if !props.is_empty() {
                c["props"] = Value::Object(props);
            }
            events.push(c);
        }
    }
    VISITS.insert(cache_key, visit.clone());
    if events.is_empty() {
        // An engagement that reports nothing new.
        return Ok(());
    }
    let window = now.div_euclid(RETRY_WINDOW_MS);
    let batch_id = id_of("plb_", &[site.entry.site_id.as_bytes(), visitor.as_bytes(), &bytes, &window.to_le_bytes()]);
    let native =
        serde_json::to_vec(&json!({"key": key, "batch_id": batch_id, "session_id": visit.session_id, "events": events}))
            .map_err(|e| invalid(format!("body: {e}")))?;
    let batch = Batch::parse(&native).map_err(|e| as_plausible(e.into()))?;
    accept_parsed(state, ip, headers, &batch, native.len()).await.map(|_| ()).map_err(as_plausible)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_names_read_alike_and_refusals_name_the_field() {
        let short = parse(
            br#"{"n":"Signup","u":"https://a.com/x","d":"a.com","p":{"plan":"pro"},"$":{"amount":"9.5","currency":"EUR"}}"#,
        )
        .expect("short");
        let long = parse(
            br#"{"name":"Signup","url":"https://a.com/x","domain":"a.com","props":"{\"plan\":\"pro\"}","revenue":{"amount":9.5,"currency":"EUR"}}"#,
        )
        .expect("long");
        for e in [&short, &long] {
            assert_eq!(
                (e.name.as_str(), e.url.as_str(), e.domains.clone()),
                ("Signup", "https://a.com/x", vec!["a.com".to_string()])
            );
            assert_eq!(e.props.as_ref().and_then(|p| p.get("plan")), Some(&json!("pro")));
            assert_eq!(e.revenue.as_ref().map(|r| (r.0.as_f64(), r.1.as_str())), Some((Some(9.5), "EUR")));
        }
        let e = parse(br#"{"n":"engagement","u":"https://a.com/","d":"b.com,a.com","sd":55,"e":1200}"#).expect("engagement");
        assert_eq!((e.scroll, e.engaged_ms, e.domains.len()), (Some(55), Some(1200), 2));
        let refused = |body: &[u8]| match parse(body) {
            Err(IngestError::InvalidBatch(m)) => m,
            other => panic!("{:?}", other.map(|e| e.name)),
        };
        assert_eq!(refused(br#"{"u":"https://a.com/","d":"a.com"}"#), "name: required");
        assert_eq!(refused(br#"{"n":"pageview","u":"ftp://a.com/","d":"a.com"}"#), "url: must be an http(s) URL");
        assert_eq!(refused(br#"{"n":"pageview","u":"https://a.com/","d":"/"}"#), "domain: must name the site's domain");
        assert_eq!(refused(br#"{"n":"x","u":"https://a.com/","d":"a.com","p":[1]}"#), "props: must be an object");
        assert_eq!(
            refused(br#"{"n":"x","u":"https://a.com/","d":"a.com","$":{"amount":"lots","currency":"EUR"}}"#),
            "revenue.amount: must be a number"
        );
        assert_eq!(
            refused(br#"{"n":"engagement","u":"https://a.com/","d":"a.com","sd":101}"#),
            "scroll_depth: must be a number from 0 to 100"
        );
        assert_eq!(refused(b"nope").split(':').next(), Some("body"));
    }

    #[test]
    fn native_field_names_become_plausibles() {
        let e = as_plausible(IngestError::InvalidBatch("events[0].props.currency: must be an ISO 4217 code".into()));
        assert!(matches!(e, IngestError::InvalidBatch(m) if m == "revenue.currency: must be an ISO 4217 code"));
    }
}
