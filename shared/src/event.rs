//! The tracker batch as it arrives on `POST /api/events/batch`, and its validation.
//!
//! Parsing walks the JSON by hand rather than through serde derive so that a rejection can name
//! the first offending field exactly (`events[3].depth`), which is what tracker authors debug by.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most events in one batch.
pub const MAX_EVENTS: usize = 50;
/// Longest page URL, referrer or link target, in characters.
pub const MAX_URL_CHARS: usize = 2048;
/// Longest page title, in characters.
pub const MAX_TITLE_CHARS: usize = 512;
/// Longest click selector, in characters.
pub const MAX_SELECTOR_CHARS: usize = 256;
/// Longest click text, in characters.
pub const MAX_TEXT_CHARS: usize = 128;
/// Most engaged seconds one `time` event may carry.
pub const MAX_TIME_SECONDS: f64 = 1800.0;

/// A client-generated id (`batch_id`, `session_id`, `page_id`): 8 to 64 chars of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let ok_len = (8..=64).contains(&raw.len());
        let ok_chars = raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok_len && ok_chars {
            Ok(Self(raw.to_string()))
        } else {
            Err("must be 8 to 64 characters of A-Z, a-z, 0-9, '_' or '-'")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A maximum scroll depth in percent, 1..=100, with the previously reported maximum below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrollDepth {
    pub depth: u8,
    pub prev: u8,
}

/// What an event says, by type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EventKind {
    Pageview { referrer: String, title: String, new_session: bool },
    Scroll { depth: u8, prev: u8 },
    Click { selector: String, text: String, #[serde(default, skip_serializing_if = "Option::is_none")] href: Option<String> },
    Time { seconds: f64 },
}

/// One validated tracker event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Client time, ms since the epoch.
    pub ts: i64,
    pub page_id: ClientId,
    pub url: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A validated batch, still carrying the site key it must be checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub key: String,
    pub batch_id: ClientId,
    pub session_id: ClientId,
    pub events: Vec<Event>,
}

/// Why a batch was refused: the first offending field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct BatchError {
    pub field: String,
    pub reason: String,
}

impl BatchError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

impl Batch {
    /// Parses and validates a request body. The whole batch is accepted or refused.
    pub fn parse(body: &[u8]) -> Result<Self, BatchError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| BatchError::new("body", format!("malformed JSON ({e})")))?;
        let Value::Object(obj) = value else {
            return Err(BatchError::new("body", "must be a JSON object"));
        };
        let key = req_str(&obj, "key", "key")?;
        if key.is_empty() || key.len() > 128 {
            return Err(BatchError::new("key", "must be a site API key"));
        }
        let batch_id = req_id(&obj, "batch_id", "batch_id")?;
        let session_id = req_id(&obj, "session_id", "session_id")?;
        let events = match obj.get("events") {
            None | Some(Value::Null) => return Err(BatchError::new("events", "is required")),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(BatchError::new("events", "must be an array")),
        };
        if events.is_empty() || events.len() > MAX_EVENTS {
            return Err(BatchError::new("events", format!("must hold 1 to {MAX_EVENTS} events")));
        }
        // The events of one page share its URL: check each distinct URL once.
        let mut last_valid_url: Option<&str> = None;
        let events = events
            .iter()
            .enumerate()
            .map(|(i, ev)| parse_event(ev, &format!("events[{i}]"), &mut last_valid_url))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { key: key.to_string(), batch_id, session_id, events })
    }
}

fn parse_event<'v>(value: &'v Value, path: &str, last_valid_url: &mut Option<&'v str>) -> Result<Event, BatchError> {
    let Value::Object(obj) = value else {
        return Err(BatchError::new(path, "must be an object"));
    };
    let field = |name: &str| format!("{path}.{name}");
    let kind_name = req_str(obj, "type", &field("type"))?;
    let ts = match obj.get("ts") {
        None | Some(Value::Null) => return Err(BatchError::new(field("ts"), "is required")),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .filter(|t| *t >= 0)
            .ok_or_else(|| BatchError::new(field("ts"), "must be a non-negative number of ms since the epoch"))?,
    };
    let page_id = req_id(obj, "page_id", &field("page_id"))?;
    let url = req_str(obj, "url", &field("url"))?;
    check_len(url, MAX_URL_CHARS, &field("url"))?;
    if *last_valid_url != Some(url) {
        if !crate::urls::is_http_url(url) {
            return Err(BatchError::new(field("url"), "must be an absolute http or https URL"));
        }
        *last_valid_url = Some(url);
    }
    let kind = match kind_name {
        "pageview" => {
            let referrer = opt_str(obj, "referrer", &field("referrer"))?.unwrap_or("");
            check_len(referrer, MAX_URL_CHARS, &field("referrer"))?;
            let title = opt_str(obj, "title", &field("title"))?.unwrap_or("");
            check_len(title, MAX_TITLE_CHARS, &field("title"))?;
            let new_session = match obj.get("new_session") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(BatchError::new(field("new_session"), "must be true or false")),
            };
            EventKind::Pageview { referrer: referrer.to_string(), title: title.to_string(), new_session }
        }
        "scroll" => {
            let depth = req_int(obj, "depth", &field("depth"), 1, 100)?;
            let prev = match obj.get("prev") {
                None | Some(Value::Null) => 0,
                Some(_) => req_int(obj, "prev", &field("prev"), 0, 99)?,
            };
            if prev >= depth {
                return Err(BatchError::new(field("prev"), "must be below depth"));
            }
            EventKind::Scroll { depth, prev }
        }
        "click" => {
            let selector = req_str(obj, "selector", &field("selector"))?;
            check_len(selector, MAX_SELECTOR_CHARS, &field("selector"))?;
            let text = opt_str(obj, "text", &field("text"))?.unwrap_or("");
            check_len(text, MAX_TEXT_CHARS, &field("text"))?;
            let href = opt_str(obj, "href", &field("href"))?;
            if let Some(href) = href {
                check_len(href, MAX_URL_CHARS, &field("href"))?;
            }
            EventKind::Click {
                selector: selector.to_string(),
                text: text.to_string(),
                href: href.map(str::to_string),
            }
        }
        "time" => {
            let seconds = match obj.get("seconds") {
                None | Some(Value::Null) => return Err(BatchError::new(field("seconds"), "is required")),
                Some(v) => v.as_f64().ok_or_else(|| BatchError::new(field("seconds"), "must be a number"))?,
            };
            if !(seconds > 0.0 && seconds <= MAX_TIME_SECONDS) {
                return Err(BatchError::new(field("seconds"), "must be above 0 and at most 1800"));
            }
            EventKind::Time { seconds }
        }
        _ => return Err(BatchError::new(field("type"), "must be one of pageview, scroll, click, time")),
    };
    Ok(Event { ts, page_id, url: url.to_string(), kind })
}

fn req_str<'a>(obj: &'a Map<String, Value>, name: &str, path: &str) -> Result<&'a str, BatchError> {
    opt_str(obj, name, path)?.ok_or_else(|| BatchError::new(path, "is required"))
}

fn opt_str<'a>(obj: &'a Map<String, Value>, name: &str, path: &str) -> Result<Option<&'a str>, BatchError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(BatchError::new(path, "must be a string")),
    }
}

fn req_id(obj: &Map<String, Value>, name: &str, path: &str) -> Result<ClientId, BatchError> {
    ClientId::parse(req_str(obj, name, path)?).map_err(|reason| BatchError::new(path, reason))
}

fn req_int(obj: &Map<String, Value>, name: &str, path: &str, min: u8, max: u8) -> Result<u8, BatchError> {
    let value = obj.get(name).filter(|v| !v.is_null()).ok_or_else(|| BatchError::new(path, "is required"))?;
    value
        .as_u64()
        .filter(|n| (u64::from(min)..=u64::from(max)).contains(n))
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| BatchError::new(path, format!("must be an integer from {min} to {max}")))
}

fn check_len(value: &str, max: usize, path: &str) -> Result<(), BatchError> {
    // Cheap byte check first: a string of at most `max` bytes has at most `max` chars.
    if value.len() > max && value.chars().count() > max {
        return Err(BatchError::new(path, format!("must be at most {max} characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "key": "k_abcdefgh",
            "batch_id": "batch_0001",
            "session_id": "sess_0001",
            "events": [
                {"type": "pageview", "ts": 1, "page_id": "page_0001", "url": "https://example.com/a",
                 "referrer": "", "title": "A", "new_session": true},
                {"type": "scroll", "ts": 2, "page_id": "page_0001", "url": "https://example.com/a", "depth": 40, "prev": 0},
                {"type": "click", "ts": 3, "page_id": "page_0001", "url": "https://example.com/a", "selector": "a#x", "text": "Go", "href": "/b"},
                {"type": "time", "ts": 4, "page_id": "page_0001", "url": "https://example.com/a", "seconds": 2.5}
            ]
        })
    }

    fn parse(v: &Value) -> Result<Batch, BatchError> {
        Batch::parse(serde_json::to_vec(v).expect("serializes").as_slice())
    }

    #[test]
    fn valid_batch_parses_every_event_kind() {
        let batch = parse(&valid()).expect("valid batch");
        assert_eq!(batch.events.len(), 4);
        assert_eq!(batch.events[1].kind, EventKind::Scroll { depth: 40, prev: 0 });
        assert_eq!(batch.events[3].kind, EventKind::Time { seconds: 2.5 });
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut v = valid();
        v["extra"] = json!(1);
        v["events"][0]["whatever"] = json!("x");
        assert!(parse(&v).is_ok());
    }

    #[test]
    fn each_bound_names_the_offending_field() {
        let long = |n: usize| "x".repeat(n);
        let url_of = |n: usize| format!("https://example.com/{}", "p".repeat(n - 20));
        let cases: Vec<(&str, Box<dyn Fn(&mut Value)>, &str)> = vec![
            ("missing key", Box::new(|v| { v.as_object_mut().expect("obj").remove("key"); }), "key"),
            ("empty key", Box::new(|v| v["key"] = json!("")), "key"),
            ("short batch id", Box::new(|v| v["batch_id"] = json!("short")), "batch_id"),
            ("long batch id", Box::new(move |v| v["batch_id"] = json!(long(65))), "batch_id"),
            ("bad batch id char", Box::new(|v| v["batch_id"] = json!("batch.0001")), "batch_id"),
            ("session id type", Box::new(|v| v["session_id"] = json!(12345678)), "session_id"),
            ("events missing", Box::new(|v| { v.as_object_mut().expect("obj").remove("events"); }), "events"),
            ("events empty", Box::new(|v| v["events"] = json!([])), "events"),
            ("events over 50", Box::new(|v| { let e = v["events"][0].clone(); v["events"] = json!(vec![e; 51]); }), "events"),
            ("event not object", Box::new(|v| v["events"][2] = json!(3)), "events[2]"),
            ("unknown type", Box::new(|v| v["events"][0]["type"] = json!("hover")), "events[0].type"),
            ("ts missing", Box::new(|v| { v["events"][1].as_object_mut().expect("obj").remove("ts"); }), "events[1].ts"),
            ("ts negative", Box::new(|v| v["events"][1]["ts"] = json!(-1)), "events[1].ts"),
            ("page id short", Box::new(|v| v["events"][3]["page_id"] = json!("p")), "events[3].page_id"),
            ("url not http", Box::new(|v| v["events"][0]["url"] = json!("ftp://example.com/")), "events[0].url"),
            ("url relative", Box::new(|v| v["events"][0]["url"] = json!("/a")), "events[0].url"),
            ("url too long", Box::new(move |v| v["events"][0]["url"] = json!(url_of(2049))), "events[0].url"),
            ("referrer too long", Box::new(move |v| v["events"][0]["referrer"] = json!(long(2049))), "events[0].referrer"),
            ("title too long", Box::new(move |v| v["events"][0]["title"] = json!(long(513))), "events[0].title"),
            ("new_session not bool", Box::new(|v| v["events"][0]["new_session"] = json!("yes")), "events[0].new_session"),
            ("depth zero", Box::new(|v| v["events"][1]["depth"] = json!(0)), "events[1].depth"),
            ("depth over 100", Box::new(|v| v["events"][1]["depth"] = json!(101)), "events[1].depth"),
            ("depth fractional", Box::new(|v| v["events"][1]["depth"] = json!(40.5)), "events[1].depth"),
            ("depth missing", Box::new(|v| { v["events"][1].as_object_mut().expect("obj").remove("depth"); }), "events[1].depth"),
            ("prev over 99", Box::new(|v| { v["events"][1]["depth"] = json!(100); v["events"][1]["prev"] = json!(100); }), "events[1].prev"),
            ("prev not below depth", Box::new(|v| v["events"][1]["prev"] = json!(40)), "events[1].prev"),
            ("selector missing", Box::new(|v| { v["events"][2].as_object_mut().expect("obj").remove("selector"); }), "events[2].selector"),
            ("selector too long", Box::new(move |v| v["events"][2]["selector"] = json!(long(257))), "events[2].selector"),
            ("text too long", Box::new(move |v| v["events"][2]["text"] = json!(long(129))), "events[2].text"),
            ("href too long", Box::new(move |v| v["events"][2]["href"] = json!(long(2049))), "events[2].href"),
            ("seconds zero", Box::new(|v| v["events"][3]["seconds"] = json!(0)), "events[3].seconds"),
            ("seconds over 1800", Box::new(|v| v["events"][3]["seconds"] = json!(1800.5)), "events[3].seconds"),
            ("seconds string", Box::new(|v| v["events"][3]["seconds"] = json!("3")), "events[3].seconds"),
        ];
        for (case, mutate, field) in cases {
            let mut v = valid();
            mutate(&mut v);
            let err = parse(&v).expect_err(case);
            assert_eq!(err.field, field, "case {case}: {err}");
        }
    }

    #[test]
    fn bounds_are_inclusive() {
        let mut v = valid();
        v["batch_id"] = json!("b".repeat(64));
        v["events"][0]["title"] = json!("é".repeat(512));
        v["events"][1]["depth"] = json!(100);
        v["events"][1]["prev"] = json!(99);
        v["events"][2]["selector"] = json!("s".repeat(256));
        v["events"][2]["text"] = json!("");
        v["events"][3]["seconds"] = json!(1800);
        assert!(parse(&v).is_ok(), "{:?}", parse(&v));
        let one = v["events"][0].clone();
        v["events"] = json!(vec![one; 50]);
        assert!(parse(&v).is_ok());
    }

    #[test]
    fn malformed_json_and_non_objects_name_the_body() {
        assert_eq!(Batch::parse(b"{not json").expect_err("malformed").field, "body");
        assert_eq!(Batch::parse(b"[1,2]").expect_err("array").field, "body");
    }

    #[test]
    fn event_round_trips_through_json() {
        let batch = parse(&valid()).expect("valid");
        let json = serde_json::to_string(&batch.events).expect("serializes");
        let back: Vec<Event> = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, batch.events);
    }
}
