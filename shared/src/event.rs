//! The tracker batch as it arrives on `POST /api/events/batch`, its validation, and the owned
//! event types the event stream carries to the aggregator.
//!
//! Parsing is typed and borrowing, in two passes:
//! 1. serde reads the body into the structs of [`raw`], whose fields take any JSON type and
//!    borrow their strings from the body (no `serde_json::Value`, no copy of a string without
//!    escapes);
//! 2. validation turns those into a [`Batch`] of [`EventRef`]s, still borrowing the body, or
//!    refuses the batch naming the first offending field exactly (`events[3].depth`,
//!    `events[2].props.plan`), which is what tracker authors debug by.
//!
//! A field's path is only formatted when the batch is refused, so an accepted batch costs no
//! string building. Ingest serializes the borrowed events straight into the stream message
//! ([`crate::message::BatchMessageRef`]); the aggregator reads them back as [`Event`]s.
//!
//! Page URLs are stored without their `#fragment` (reset and sign-in tokens live there), and so
//! are referrers.

mod raw;

use std::{borrow::Cow, collections::BTreeMap, fmt};

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, Visitor},
    ser::SerializeMap,
};
use serde_json::Number;

use crate::money;
use raw::{Any, ListOr, ObjectOr, PairsOr, RawBatch, RawEvent};

/// Most events in one batch.
pub const MAX_EVENTS: usize = 50;
/// Largest accepted batch body, in bytes (the contract's 64 KiB).
pub const MAX_BODY: usize = 64 * 1024;
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
/// Longest custom event name, in characters.
pub const MAX_EVENT_NAME_CHARS: usize = 64;
/// Most properties on one custom event.
pub const MAX_PROPS: usize = 10;
/// Longest property name, in characters (of `[A-Za-z0-9_.-]`).
pub const MAX_PROP_KEY_CHARS: usize = 40;
/// Longest string property value, in characters.
pub const MAX_PROP_VALUE_CHARS: usize = 200;
/// Longest pageview variant, in characters (of `[A-Za-z0-9 _.-]`).
pub const MAX_VARIANT_CHARS: usize = 64;
/// Longest site key.
const MAX_KEY_BYTES: usize = 128;

/// Most tracked sections a page reports (`order` 0 to 49).
pub const MAX_SECTIONS: u8 = 50;
/// Longest section name (`data-cp-section` value or `id`), in characters.
pub const MAX_SECTION_NAME_CHARS: usize = 64;
/// Most visible time one `view` event may add, in ms.
pub const MAX_VIEW_MS: u64 = 600_000;
/// The reserved custom event a form's first focus sends: `props.form` names the form.
pub const FORM_START: &str = "form_start";
/// The custom event the tracker sends when a form is submitted (v2): `props.form` names it.
pub const FORM_SUBMIT: &str = "form_submit";
/// The reserved custom event a page left with a started, unsubmitted form sends: `props.form`
/// and `props.field`, the last focused field's name or selector.
pub const FORM_ABANDON: &str = "form_abandon";

/// The event types, in the order of [`EventKindRef::index`].
pub const EVENT_TYPES: [&str; 6] = ["pageview", "scroll", "click", "time", "event", "view"];

/// A client-generated id (`batch_id`, `session_id`, `page_id`): 8 to 64 chars of `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    const RULE: &'static str = "must be 8 to 64 characters of A-Z, a-z, 0-9, '_' or '-'";

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if Self::is_valid(raw) { Ok(Self(raw.to_string())) } else { Err(Self::RULE) }
    }

    /// True when `raw` follows the id rule.
    pub fn is_valid(raw: &str) -> bool {
        (8..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
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

/// A custom event property value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PropValue {
    String(String),
    Number(Number),
    Bool(bool),
}

impl<'de> Deserialize<'de> for PropValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PropVisitor;
        impl Visitor<'_> for PropVisitor {
            type Value = PropValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_bool<E>(self, v: bool) -> Result<PropValue, E> {
                Ok(PropValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<PropValue, E> {
                Ok(PropValue::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<PropValue, E> {
                Ok(PropValue::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<PropValue, E> {
                Number::from_f64(v).map(PropValue::Number).ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E>(self, v: &str) -> Result<PropValue, E> {
                Ok(PropValue::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<PropValue, E> {
                Ok(PropValue::String(v))
            }
        }
        d.deserialize_any(PropVisitor)
    }
}

/// What a `view` event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ViewKind {
    /// A tracked section of the page (`data-cp-section`, `<section>`, ...).
    Section,
    /// A call to action (`data-cp-cta`, `data-cp-event`, a button, ...).
    Cta,
}

/// Where a click landed and what it was like (v3, all optional): the position as fractions of
/// the document's width and height (3 decimals), and the rage and dead flags.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ClickMarks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<f64>,
    /// The third click within 700 ms and 30 px of the first; once per burst.
    #[serde(default, skip_serializing_if = "is_false")]
    pub rage: bool,
    /// A click on something that does not act, after which nothing happened for 1 s.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dead: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What an event says, by type, as the event stream carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EventKind {
    Pageview {
        referrer: String,
        title: String,
        new_session: bool,
        /// The A/B variant the page was marked with (v2), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<String>,
    },
    Scroll {
        depth: u8,
        prev: u8,
    },
    Click {
        selector: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        href: Option<String>,
        #[serde(flatten)]
        marks: ClickMarks,
    },
    Time {
        seconds: f64,
    },
    /// A custom event (v2): page code, a `data-cp-event` click, `form_submit`, `outbound`,
    /// and (v3) [`FORM_START`] and [`FORM_ABANDON`].
    Event {
        name: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        props: BTreeMap<String, PropValue>,
    },
    /// A section or call to action of the page was seen (v3).
    View {
        kind: ViewKind,
        /// The section's name, or the CTA's selector as a click on it reports it.
        name: String,
        /// Sections only: position among the page's tracked sections, in document order.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        order: Option<u8>,
        /// The first report of this element in its pageview.
        #[serde(default)]
        seen: bool,
        /// Visible time added since the element's last report in its pageview.
        #[serde(default)]
        ms: u32,
    },
}

/// One validated tracker event, as the event stream carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Client time, ms since the epoch.
    pub ts: i64,
    pub page_id: ClientId,
    /// The page URL, without its fragment.
    pub url: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// A validated batch, borrowing the request body, still carrying the site key it must be
/// checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch<'a> {
    pub key: Cow<'a, str>,
    pub batch_id: Cow<'a, str>,
    pub session_id: Cow<'a, str>,
    pub events: Vec<EventRef<'a>>,
}

/// One validated event, borrowing the request body. Serializes exactly as [`Event`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRef<'a> {
    pub ts: i64,
    pub page_id: Cow<'a, str>,
    /// The page URL, without its fragment.
    pub url: Cow<'a, str>,
    #[serde(flatten)]
    pub kind: EventKindRef<'a>,
}

/// What a validated event says, borrowing the request body. Serializes exactly as [`EventKind`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EventKindRef<'a> {
    Pageview {
        referrer: Cow<'a, str>,
        title: Cow<'a, str>,
        new_session: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        variant: Option<Cow<'a, str>>,
    },
    Scroll {
        depth: u8,
        prev: u8,
    },
    Click {
        selector: Cow<'a, str>,
        text: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        href: Option<Cow<'a, str>>,
        #[serde(flatten)]
        marks: ClickMarks,
    },
    Time {
        seconds: f64,
    },
    Event {
        name: Cow<'a, str>,
        #[serde(skip_serializing_if = "PropsRef::is_empty")]
        props: PropsRef<'a>,
    },
    View {
        kind: ViewKind,
        name: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        order: Option<u8>,
        seen: bool,
        ms: u32,
    },
}

impl EventKindRef<'_> {
    /// This event's position in [`EVENT_TYPES`].
    pub fn index(&self) -> usize {
        match self {
            Self::Pageview { .. } => 0,
            Self::Scroll { .. } => 1,
            Self::Click { .. } => 2,
            Self::Time { .. } => 3,
            Self::Event { .. } => 4,
            Self::View { .. } => 5,
        }
    }
}

/// A custom event's properties, distinct names, in the order sent; serialized as an object.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PropsRef<'a>(pub Vec<(Cow<'a, str>, PropValueRef<'a>)>);

impl PropsRef<'_> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for PropsRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A property value, borrowing the request body. Serializes exactly as [`PropValue`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PropValueRef<'a> {
    String(Cow<'a, str>),
    Number(Number),
    Bool(bool),
}

impl EventRef<'_> {
    /// The owned form, as the aggregator reads it back.
    pub fn to_owned_event(&self) -> Event {
        let s = |c: &Cow<'_, str>| c.to_string();
        let kind = match &self.kind {
            EventKindRef::Pageview { referrer, title, new_session, variant } => EventKind::Pageview {
                referrer: s(referrer),
                title: s(title),
                new_session: *new_session,
                variant: variant.as_ref().map(s),
            },
            EventKindRef::Scroll { depth, prev } => EventKind::Scroll { depth: *depth, prev: *prev },
            EventKindRef::Click { selector, text, href, marks } => {
                EventKind::Click { selector: s(selector), text: s(text), href: href.as_ref().map(s), marks: *marks }
            }
            EventKindRef::View { kind, name, order, seen, ms } => {
                EventKind::View { kind: *kind, name: s(name), order: *order, seen: *seen, ms: *ms }
            }
            EventKindRef::Time { seconds } => EventKind::Time { seconds: *seconds },
            EventKindRef::Event { name, props } => EventKind::Event {
                name: s(name),
                props: props
                    .0
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            PropValueRef::String(t) => PropValue::String(s(t)),
                            PropValueRef::Number(n) => PropValue::Number(n.clone()),
                            PropValueRef::Bool(b) => PropValue::Bool(*b),
                        };
                        (s(k), v)
                    })
                    .collect(),
            },
        };
        Event { ts: self.ts, page_id: ClientId(s(&self.page_id)), url: s(&self.url), kind }
    }
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

/// What is wrong with one value; its field path is added by the caller, on refusal only.
type Reason = Cow<'static, str>;

impl<'a> Batch<'a> {
    /// Parses and validates a request body. The whole batch is accepted or refused.
    pub fn parse(body: &'a [u8]) -> Result<Self, BatchError> {
        let raw: ObjectOr<RawBatch<'a>> =
            serde_json::from_slice(body).map_err(|e| BatchError::new("body", format!("malformed JSON ({e})")))?;
        let ObjectOr::Object(raw) = raw else {
            return Err(BatchError::new("body", "must be a JSON object"));
        };
        let key = req_str(raw.key).map_err(|r| BatchError::new("key", r))?;
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(BatchError::new("key", "must be a site API key"));
        }
        let batch_id = client_id(raw.batch_id).map_err(|r| BatchError::new("batch_id", r))?;
        let session_id = client_id(raw.session_id).map_err(|r| BatchError::new("session_id", r))?;
        let (items, total) = match raw.events {
            None => return Err(BatchError::new("events", "is required")),
            Some(ListOr::NotList) => return Err(BatchError::new("events", "must be an array")),
            Some(ListOr::List { items, total }) => (items, total),
        };
        if total == 0 || total > MAX_EVENTS {
            return Err(BatchError::new("events", format!("must hold 1 to {MAX_EVENTS} events")));
        }
        let mut events = Vec::with_capacity(items.len());
        // The events of one page share its URL: check each distinct URL once.
        let mut last_valid_url: Option<Cow<'a, str>> = None;
        for (i, item) in items.into_iter().enumerate() {
            let ObjectOr::Object(ev) = item else {
                return Err(BatchError::new(format!("events[{i}]"), "must be an object"));
            };
            events.push(parse_event(ev, &mut last_valid_url).map_err(|(field, reason)| field.error(i, reason))?);
        }
        Ok(Self { key, batch_id, session_id, events })
    }
}

/// The field of an event a refusal is about: a name, or a property of `props`.
enum EventField<'a> {
    Name(&'static str),
    Prop(Cow<'a, str>),
}

impl EventField<'_> {
    fn error(self, i: usize, reason: Reason) -> BatchError {
        match self {
            Self::Name(name) => BatchError::new(format!("events[{i}].{name}"), reason),
            Self::Prop(key) => BatchError::new(format!("events[{i}].props.{key}"), reason),
        }
    }
}

type EventResult<'a, T> = Result<T, (EventField<'a>, Reason)>;

/// Tags a value's refusal with the field it is about.
fn at<'a, T>(name: &'static str, r: Result<T, Reason>) -> EventResult<'a, T> {
    r.map_err(|reason| (EventField::Name(name), reason))
}

fn parse_event<'a>(ev: RawEvent<'a>, last_valid_url: &mut Option<Cow<'a, str>>) -> EventResult<'a, EventRef<'a>> {
    let kind_name = at("type", req_str(ev.kind))?;
    let ts = at("ts", timestamp(ev.ts))?;
    let page_id = at("page_id", client_id(ev.page_id))?;
    let url = at("url", req_str(ev.url))?;
    at("url", max_chars(&url, MAX_URL_CHARS))?;
    let url = without_overlay(without_fragment(url));
    if last_valid_url.as_deref() != Some(&*url) {
        if !crate::urls::is_http_url(&url) {
            return at("url", Err("must be an absolute http or https URL".into()));
        }
        *last_valid_url = Some(url.clone());
    }
    let kind = match &*kind_name {
        "pageview" => {
            let referrer = at("referrer", opt_str(ev.referrer))?.unwrap_or_default();
            at("referrer", max_chars(&referrer, MAX_URL_CHARS))?;
            let title = at("title", opt_str(ev.title))?.unwrap_or_default();
            at("title", max_chars(&title, MAX_TITLE_CHARS))?;
            let new_session = match ev.new_session {
                None => false,
                Some(Any::Bool(b)) => b,
                Some(_) => return at("new_session", Err("must be true or false".into())),
            };
            let variant = at("variant", opt_str(ev.variant))?;
            if let Some(v) = &variant {
                at("variant", variant_rule(v))?;
            }
            EventKindRef::Pageview { referrer: without_overlay(without_fragment(referrer)), title, new_session, variant }
        }
        "scroll" => {
            let depth = at("depth", int_in(ev.depth, 1, 100))?;
            let prev = match ev.prev {
                None => 0,
                some => at("prev", int_in(some, 0, 99))?,
            };
            if prev >= depth {
                return at("prev", Err("must be below depth".into()));
            }
            EventKindRef::Scroll { depth, prev }
        }
        "click" => {
            let selector = at("selector", req_str(ev.selector))?;
            at("selector", max_chars(&selector, MAX_SELECTOR_CHARS))?;
            let text = at("text", opt_str(ev.text))?.unwrap_or_default();
            at("text", max_chars(&text, MAX_TEXT_CHARS))?;
            let href = at("href", opt_str(ev.href))?;
            if let Some(href) = &href {
                at("href", max_chars(href, MAX_URL_CHARS))?;
            }
            let x = at("x", opt_fraction(ev.x))?;
            let y = at("y", opt_fraction(ev.y))?;
            match (x, y) {
                (Some(_), None) => return at("y", Err("is required with x".into())),
                (None, Some(_)) => return at("x", Err("is required with y".into())),
                _ => {}
            }
            let marks = ClickMarks { x, y, rage: at("rage", opt_bool(ev.rage))?, dead: at("dead", opt_bool(ev.dead))? };
            EventKindRef::Click { selector, text, href, marks }
        }
        "time" => {
            let seconds = match ev.seconds {
                None => return at("seconds", Err("is required".into())),
                Some(Any::Num(n)) => n.as_f64().unwrap_or(f64::NAN),
                Some(_) => return at("seconds", Err("must be a number".into())),
            };
            if !(seconds > 0.0 && seconds <= MAX_TIME_SECONDS) {
                return at("seconds", Err("must be above 0 and at most 1800".into()));
            }
            EventKindRef::Time { seconds }
        }
        "event" => {
            let name = at("name", req_str(ev.name))?;
            if name.is_empty() || name.len() > MAX_EVENT_NAME_CHARS && name.chars().count() > MAX_EVENT_NAME_CHARS {
                return at("name", Err("must be 1 to 64 characters".into()));
            }
            let props = props(ev.props)?;
            reserved_props(&name, &props)?;
            revenue_props(&props)?;
            EventKindRef::Event { name, props }
        }
        "view" => {
            let kind = match at("kind", req_str(ev.view_kind))?.as_ref() {
                "section" => ViewKind::Section,
                "cta" => ViewKind::Cta,
                _ => return at("kind", Err("must be section or cta".into())),
            };
            let name = at("name", req_str(ev.name))?;
            let max = if kind == ViewKind::Section { MAX_SECTION_NAME_CHARS } else { MAX_SELECTOR_CHARS };
            if name.is_empty() {
                return at("name", Err(format!("must be 1 to {max} characters").into()));
            }
            at("name", max_chars(&name, max))?;
            // A CTA has no place among the sections: an order sent with one is not kept.
            let order = match kind {
                ViewKind::Section => Some(at("order", int_in(ev.order, 0, MAX_SECTIONS - 1))?),
                ViewKind::Cta => None,
            };
            let seen = at("seen", opt_bool(ev.seen))?;
            // A measurement: a fraction of a millisecond is rounded, not refused.
            let ms = match ev.ms {
                None => 0,
                Some(Any::Num(n)) => match n.as_f64().filter(|ms| (0.0..=MAX_VIEW_MS as f64).contains(ms)) {
                    Some(ms) => ms.round() as u32,
                    None => return at("ms", Err("must be a number from 0 to 600000".into())),
                },
                Some(_) => return at("ms", Err("must be a number from 0 to 600000".into())),
            };
            EventKindRef::View { kind, name, order, seen, ms }
        }
        _ => return at("type", Err("must be one of pageview, scroll, click, time, event, view".into())),
    };
    Ok(EventRef { ts, page_id, url, kind })
}

fn props<'a>(raw: Option<PairsOr<'a, MAX_PROPS>>) -> EventResult<'a, PropsRef<'a>> {
    let (pairs, total) = match raw {
        None => return Ok(PropsRef::default()),
        Some(PairsOr::NotObject) => return at("props", Err("must be an object".into())),
        Some(PairsOr::Pairs { pairs, total }) => (pairs, total),
    };
    if total > MAX_PROPS {
        return at("props", Err(format!("must have at most {MAX_PROPS} keys").into()));
    }
    let mut out: Vec<(Cow<'a, str>, PropValueRef<'a>)> = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        let key_ok = (1..=MAX_PROP_KEY_CHARS).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !key_ok {
            return at("props", Err("keys must be 1 to 40 characters of A-Z, a-z, 0-9, '_', '.' or '-'".into()));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err((EventField::Prop(key), "is repeated".into()));
        }
        let value = match value {
            Some(Any::Str(s)) => match max_chars(&s, MAX_PROP_VALUE_CHARS) {
                Ok(()) => PropValueRef::String(s),
                Err(reason) => return Err((EventField::Prop(key), reason)),
            },
            Some(Any::Num(n)) => PropValueRef::Number(n),
            Some(Any::Bool(b)) => PropValueRef::Bool(b),
            None | Some(Any::Compound) => {
                return Err((EventField::Prop(key), "must be a string, a number or a boolean".into()));
            }
        };
        out.push((key, value));
    }
    Ok(PropsRef(out))
}

/// The props the reserved form events must carry: `form` (both) and `field` (abandon), strings.
fn reserved_props<'a>(name: &str, props: &PropsRef<'a>) -> EventResult<'a, ()> {
    let required: &[&'static str] = match name {
        FORM_START => &["form"],
        FORM_ABANDON => &["form", "field"],
        _ => return Ok(()),
    };
    for key in required {
        match props.0.iter().find(|(k, _)| k == key) {
            Some((_, PropValueRef::String(v))) if !v.is_empty() => {}
            Some(_) => return Err((EventField::Prop(Cow::Borrowed(key)), "must be a non-empty string".into())),
            None => return Err((EventField::Prop(Cow::Borrowed(key)), format!("is required for {name}").into())),
        }
    }
    Ok(())
}

/// Revenue (v3): `props.revenue` a number from 0 to 1e9, `props.currency` an ISO 4217 code.
fn revenue_props<'a>(props: &PropsRef<'a>) -> EventResult<'a, ()> {
    for (key, value) in &props.0 {
        let ok = match (key.as_ref(), value) {
            (money::REVENUE_PROP, PropValueRef::Number(n)) => {
                n.as_f64().is_some_and(|v| (0.0..=money::MAX_REVENUE).contains(&v))
            }
            (money::REVENUE_PROP, _) => false,
            (money::CURRENCY_PROP, PropValueRef::String(c)) => money::is_currency(c),
            (money::CURRENCY_PROP, _) => false,
            _ => true,
        };
        if !ok {
            let reason = if key == money::REVENUE_PROP {
                "must be a number from 0 to 1000000000"
            } else {
                "must be an ISO 4217 currency code such as USD or EUR"
            };
            return Err((EventField::Prop(key.clone()), reason.into()));
        }
    }
    Ok(())
}

/// The revenue an event carries, with its currency (`default` when it names none).
pub fn revenue_of<'p>(props: &'p BTreeMap<String, PropValue>, default: &'p str) -> Option<(&'p str, u64)> {
    let amount = match props.get(money::REVENUE_PROP) {
        Some(PropValue::Number(n)) => n.as_f64()?,
        _ => return None,
    };
    let currency = match props.get(money::CURRENCY_PROP) {
        Some(PropValue::String(c)) if money::is_currency(c) => c.as_str(),
        _ => default,
    };
    Some((currency, money::to_milli(amount)))
}

fn opt_bool(v: Option<Any<'_>>) -> Result<bool, Reason> {
    match v {
        None => Ok(false),
        Some(Any::Bool(b)) => Ok(b),
        Some(_) => Err("must be true or false".into()),
    }
}

/// An optional fraction 0 to 1, kept to 3 decimals.
fn opt_fraction(v: Option<Any<'_>>) -> Result<Option<f64>, Reason> {
    match v {
        None => Ok(None),
        Some(Any::Num(n)) => match n.as_f64().filter(|f| (0.0..=1.0).contains(f)) {
            Some(f) => Ok(Some((f * 1000.0).round() / 1000.0)),
            None => Err("must be a number from 0 to 1".into()),
        },
        Some(_) => Err("must be a number from 0 to 1".into()),
    }
}

fn opt_str(v: Option<Any<'_>>) -> Result<Option<Cow<'_, str>>, Reason> {
    match v {
        None => Ok(None),
        Some(Any::Str(s)) => Ok(Some(s)),
        Some(_) => Err("must be a string".into()),
    }
}

fn req_str(v: Option<Any<'_>>) -> Result<Cow<'_, str>, Reason> {
    opt_str(v)?.ok_or(Cow::Borrowed("is required"))
}

fn client_id(v: Option<Any<'_>>) -> Result<Cow<'_, str>, Reason> {
    let id = req_str(v)?;
    if ClientId::is_valid(&id) { Ok(id) } else { Err(ClientId::RULE.into()) }
}

fn timestamp(v: Option<Any<'_>>) -> Result<i64, Reason> {
    let n = match v {
        None => return Err("is required".into()),
        Some(Any::Num(n)) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Some(_) => None,
    };
    n.filter(|t| *t >= 0).ok_or(Cow::Borrowed("must be a non-negative number of ms since the epoch"))
}

fn int_in(v: Option<Any<'_>>, min: u8, max: u8) -> Result<u8, Reason> {
    let n = match v {
        None => return Err("is required".into()),
        Some(Any::Num(n)) => n.as_u64(),
        Some(_) => None,
    };
    n.filter(|n| (u64::from(min)..=u64::from(max)).contains(n))
        .and_then(|n| u8::try_from(n).ok())
        .ok_or_else(|| format!("must be an integer from {min} to {max}").into())
}

fn variant_rule(v: &str) -> Result<(), Reason> {
    let ok = (1..=MAX_VARIANT_CHARS).contains(&v.len())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'_' | b'.' | b'-'));
    if ok { Ok(()) } else { Err("must be 1 to 64 characters of A-Z, a-z, 0-9, ' ', '_', '.' or '-'".into()) }
}

fn max_chars(value: &str, max: usize) -> Result<(), Reason> {
    // Cheap byte check first: a string of at most `max` bytes has at most `max` chars.
    if value.len() > max && value.chars().count() > max {
        return Err(format!("must be at most {max} characters").into());
    }
    Ok(())
}

/// The query parameter of an overlay link (v3): its token opens a page's attention, so it never
/// leaves in an event.
const OVERLAY_PARAM: &str = "cp_overlay";

/// `value` without any `cp_overlay` query parameter (and without the `?` when nothing else is
/// left), borrowing when there is none.
fn without_overlay(value: Cow<'_, str>) -> Cow<'_, str> {
    let Some(q) = value.find('?').filter(|_| value.contains(OVERLAY_PARAM)) else { return value };
    let kept: Vec<&str> = value[q + 1..].split('&').filter(|p| p.split('=').next() != Some(OVERLAY_PARAM)).collect();
    let mut out = value[..q].to_string();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    Cow::Owned(out)
}

/// `value` up to its first `#`, borrowing when it borrowed.
fn without_fragment(value: Cow<'_, str>) -> Cow<'_, str> {
    match value.find('#') {
        None => value,
        Some(at) => match value {
            Cow::Borrowed(s) => Cow::Borrowed(&s[..at]),
            Cow::Owned(mut s) => {
                s.truncate(at);
                Cow::Owned(s)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

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
                {"type": "time", "ts": 4, "page_id": "page_0001", "url": "https://example.com/a", "seconds": 2.5},
                {"type": "event", "ts": 5, "page_id": "page_0001", "url": "https://example.com/a", "name": "Signup",
                 "props": {"plan": "pro", "seats": 3, "trial": true}}
            ]
        })
    }

    fn parse_owned(v: &Value) -> Result<Vec<Event>, BatchError> {
        let body = serde_json::to_vec(v).expect("serializes");
        Batch::parse(&body).map(|b| b.events.iter().map(EventRef::to_owned_event).collect())
    }

    fn refusal(v: &Value) -> Option<BatchError> {
        let body = serde_json::to_vec(v).expect("serializes");
        Batch::parse(&body).err()
    }

    #[test]
    fn valid_batch_parses_every_event_kind() {
        let events = parse_owned(&valid()).expect("valid batch");
        assert_eq!(events.len(), 5);
        assert_eq!(events[1].kind, EventKind::Scroll { depth: 40, prev: 0 });
        assert_eq!(events[3].kind, EventKind::Time { seconds: 2.5 });
        let EventKind::Event { name, props } = &events[4].kind else { panic!("custom event: {:?}", events[4]) };
        assert_eq!(name, "Signup");
        assert_eq!(props.get("plan"), Some(&PropValue::String("pro".into())));
        assert_eq!(props.get("seats"), Some(&PropValue::Number(3.into())));
        assert_eq!(props.get("trial"), Some(&PropValue::Bool(true)));
    }

    fn view(extra: Value) -> Value {
        let mut v = valid();
        let mut ev = json!({"type": "view", "ts": 6, "page_id": "page_0001", "url": "https://example.com/a"});
        for (k, val) in extra.as_object().expect("obj") {
            ev[k] = val.clone();
        }
        v["events"] = json!([ev]);
        v
    }

    #[test]
    fn views_and_click_marks_parse_as_sent() {
        let events = parse_owned(&view(json!({"kind": "section", "name": "pricing", "order": 3, "seen": true, "ms": 1200})))
            .expect("section view");
        assert_eq!(
            events[0].kind,
            EventKind::View { kind: ViewKind::Section, name: "pricing".into(), order: Some(3), seen: true, ms: 1200 }
        );
        // A CTA's order is not kept; seen and ms default to false and 0.
        let events = parse_owned(&view(json!({"kind": "cta", "name": "a#buy", "order": 4}))).expect("cta view");
        assert_eq!(
            events[0].kind,
            EventKind::View { kind: ViewKind::Cta, name: "a#buy".into(), order: None, seen: false, ms: 0 }
        );

        let mut v = valid();
        v["events"][2]["x"] = json!(0.12345);
        v["events"][2]["y"] = json!(1);
        v["events"][2]["rage"] = json!(true);
        let events = parse_owned(&v).expect("click with marks");
        let EventKind::Click { marks, .. } = &events[2].kind else { panic!("click") };
        assert_eq!(*marks, ClickMarks { x: Some(0.123), y: Some(1.0), rage: true, dead: false });
        // The stream carries the marks flat on the click and reads them back the same.
        let wire = serde_json::to_value(&events[2]).expect("serializes");
        assert_eq!((wire["x"].clone(), wire["rage"].clone(), wire.get("dead")), (json!(0.123), json!(true), None));
        assert_eq!(serde_json::from_value::<Event>(wire).expect("reads back"), events[2]);

        let mut v = valid();
        v["events"][4] = json!({"type": "event", "ts": 5, "page_id": "page_0001", "url": "https://example.com/a",
            "name": "form_abandon", "props": {"form": "form#signup", "field": "email"}});
        assert!(parse_owned(&v).is_ok(), "{:?}", parse_owned(&v));
    }

    #[test]
    fn view_click_and_form_bounds_name_the_field() {
        let cases: Vec<(Value, &str)> = vec![
            (view(json!({"name": "pricing", "order": 0})), "events[0].kind"),
            (view(json!({"kind": "banner", "name": "pricing", "order": 0})), "events[0].kind"),
            (view(json!({"kind": "section", "order": 0})), "events[0].name"),
            (view(json!({"kind": "section", "name": "", "order": 0})), "events[0].name"),
            (view(json!({"kind": "section", "name": "x".repeat(65), "order": 0})), "events[0].name"),
            (view(json!({"kind": "section", "name": "pricing"})), "events[0].order"),
            (view(json!({"kind": "section", "name": "pricing", "order": 50})), "events[0].order"),
            (view(json!({"kind": "section", "name": "pricing", "order": 0, "seen": "yes"})), "events[0].seen"),
            (view(json!({"kind": "section", "name": "pricing", "order": 0, "ms": 600_001})), "events[0].ms"),
            (view(json!({"kind": "section", "name": "pricing", "order": 0, "ms": -1})), "events[0].ms"),
            (view(json!({"kind": "cta", "name": "a#buy", "ms": "5"})), "events[0].ms"),
        ];
        for (v, field) in cases {
            assert_eq!(refusal(&v).map(|e| e.field), Some(field.to_string()), "{v}");
        }
        let click = |marks: Value, field: &str| {
            let mut v = valid();
            for (k, val) in marks.as_object().expect("obj") {
                v["events"][2][k] = val.clone();
            }
            assert_eq!(refusal(&v).map(|e| e.field), Some(field.to_string()), "{marks}");
        };
        click(json!({"x": 1.01, "y": 0.5}), "events[2].x");
        click(json!({"x": 0.5, "y": -0.1}), "events[2].y");
        click(json!({"x": 0.5}), "events[2].y");
        click(json!({"y": 0.5}), "events[2].x");
        click(json!({"rage": 1}), "events[2].rage");
        click(json!({"dead": "true"}), "events[2].dead");
        let form = |name: &str, props: Value, field: &str| {
            let mut v = valid();
            v["events"][4]["name"] = json!(name);
            v["events"][4]["props"] = props.clone();
            assert_eq!(refusal(&v).map(|e| e.field), Some(field.to_string()), "{name} {props}");
        };
        form("form_start", json!({}), "events[4].props.form");
        form("form_start", json!({"form": 3}), "events[4].props.form");
        form("form_abandon", json!({"form": "form#a"}), "events[4].props.field");
        form("form_abandon", json!({"form": "", "field": "email"}), "events[4].props.form");
    }

    #[test]
    fn strings_borrow_from_the_body_unless_escaped() {
        let body = br#"{"key":"k_abcdefgh","batch_id":"batch_0001","session_id":"sess_0001","events":[
            {"type":"click","ts":1,"page_id":"page_0001","url":"https://example.com/a","selector":"a#x","text":"say \"hi\""}]}"#;
        let batch = Batch::parse(body).expect("valid");
        assert!(matches!(batch.key, Cow::Borrowed(_)));
        let EventKindRef::Click { selector, text, .. } = &batch.events[0].kind else { panic!("click") };
        assert!(matches!(selector, Cow::Borrowed("a#x")));
        assert_eq!(text, "say \"hi\"");
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut v = valid();
        v["extra"] = json!({"nested": [1, 2, {"deep": null}]});
        v["events"][0]["whatever"] = json!("x");
        v["events"][1]["selector"] = json!(["not", "a", "click"]);
        assert!(parse_owned(&v).is_ok(), "{:?}", parse_owned(&v));
    }

    #[test]
    fn null_reads_as_absent() {
        let mut v = valid();
        v["events"][0]["referrer"] = Value::Null;
        v["events"][0]["new_session"] = Value::Null;
        v["events"][1]["prev"] = Value::Null;
        v["events"][2]["href"] = Value::Null;
        v["events"][4]["props"] = Value::Null;
        let events = parse_owned(&v).expect("nulls are absent values");
        assert_eq!(events[1].kind, EventKind::Scroll { depth: 40, prev: 0 });
        assert!(matches!(&events[4].kind, EventKind::Event { props, .. } if props.is_empty()));
        v["key"] = Value::Null;
        assert_eq!(refusal(&v).expect("key is required").field, "key");
    }

    #[test]
    fn each_bound_names_the_offending_field() {
        let long = |n: usize| "x".repeat(n);
        let url_of = |n: usize| format!("https://example.com/{}", "p".repeat(n - 20));
        let props_of = |n: usize| Value::Object((0..n).map(|i| (format!("k{i}"), json!(i))).collect());
        type Case = (&'static str, Box<dyn Fn(&mut Value)>, &'static str);
        let cases: Vec<Case> = vec![
            (
                "missing key",
                Box::new(|v| {
                    v.as_object_mut().expect("obj").remove("key");
                }),
                "key",
            ),
            ("empty key", Box::new(|v| v["key"] = json!("")), "key"),
            ("key too long", Box::new(move |v| v["key"] = json!(long(129))), "key"),
            ("key not a string", Box::new(|v| v["key"] = json!({"k": 1})), "key"),
            ("short batch id", Box::new(|v| v["batch_id"] = json!("short")), "batch_id"),
            ("long batch id", Box::new(move |v| v["batch_id"] = json!(long(65))), "batch_id"),
            ("bad batch id char", Box::new(|v| v["batch_id"] = json!("batch.0001")), "batch_id"),
            ("session id type", Box::new(|v| v["session_id"] = json!(12345678)), "session_id"),
            (
                "events missing",
                Box::new(|v| {
                    v.as_object_mut().expect("obj").remove("events");
                }),
                "events",
            ),
            ("events not array", Box::new(|v| v["events"] = json!({"0": {}})), "events"),
            ("events empty", Box::new(|v| v["events"] = json!([])), "events"),
            (
                "events over 50",
                Box::new(|v| {
                    let e = v["events"][0].clone();
                    v["events"] = json!(vec![e; 51]);
                }),
                "events",
            ),
            ("event not object", Box::new(|v| v["events"][2] = json!(3)), "events[2]"),
            ("event null", Box::new(|v| v["events"][1] = Value::Null), "events[1]"),
            ("unknown type", Box::new(|v| v["events"][0]["type"] = json!("hover")), "events[0].type"),
            ("type not a string", Box::new(|v| v["events"][0]["type"] = json!(1)), "events[0].type"),
            (
                "ts missing",
                Box::new(|v| {
                    v["events"][1].as_object_mut().expect("obj").remove("ts");
                }),
                "events[1].ts",
            ),
            ("ts negative", Box::new(|v| v["events"][1]["ts"] = json!(-1)), "events[1].ts"),
            ("ts string", Box::new(|v| v["events"][1]["ts"] = json!("1")), "events[1].ts"),
            ("page id short", Box::new(|v| v["events"][3]["page_id"] = json!("p")), "events[3].page_id"),
            ("url not http", Box::new(|v| v["events"][0]["url"] = json!("ftp://example.com/")), "events[0].url"),
            ("url relative", Box::new(|v| v["events"][0]["url"] = json!("/a")), "events[0].url"),
            ("url only a fragment", Box::new(|v| v["events"][0]["url"] = json!("#https://example.com/")), "events[0].url"),
            ("url too long", Box::new(move |v| v["events"][0]["url"] = json!(url_of(2049))), "events[0].url"),
            ("later url bad", Box::new(|v| v["events"][3]["url"] = json!("javascript:alert(1)")), "events[3].url"),
            ("referrer too long", Box::new(move |v| v["events"][0]["referrer"] = json!(long(2049))), "events[0].referrer"),
            ("referrer number", Box::new(|v| v["events"][0]["referrer"] = json!(5)), "events[0].referrer"),
            ("title too long", Box::new(move |v| v["events"][0]["title"] = json!(long(513))), "events[0].title"),
            ("new_session not bool", Box::new(|v| v["events"][0]["new_session"] = json!("yes")), "events[0].new_session"),
            ("variant empty", Box::new(|v| v["events"][0]["variant"] = json!("")), "events[0].variant"),
            ("variant too long", Box::new(move |v| v["events"][0]["variant"] = json!(long(65))), "events[0].variant"),
            ("variant markup", Box::new(|v| v["events"][0]["variant"] = json!("<b>B</b>")), "events[0].variant"),
            ("variant number", Box::new(|v| v["events"][0]["variant"] = json!(2)), "events[0].variant"),
            ("depth zero", Box::new(|v| v["events"][1]["depth"] = json!(0)), "events[1].depth"),
            ("depth over 100", Box::new(|v| v["events"][1]["depth"] = json!(101)), "events[1].depth"),
            ("depth fractional", Box::new(|v| v["events"][1]["depth"] = json!(40.5)), "events[1].depth"),
            (
                "depth missing",
                Box::new(|v| {
                    v["events"][1].as_object_mut().expect("obj").remove("depth");
                }),
                "events[1].depth",
            ),
            (
                "prev over 99",
                Box::new(|v| {
                    v["events"][1]["depth"] = json!(100);
                    v["events"][1]["prev"] = json!(100);
                }),
                "events[1].prev",
            ),
            ("prev not below depth", Box::new(|v| v["events"][1]["prev"] = json!(40)), "events[1].prev"),
            (
                "selector missing",
                Box::new(|v| {
                    v["events"][2].as_object_mut().expect("obj").remove("selector");
                }),
                "events[2].selector",
            ),
            ("selector too long", Box::new(move |v| v["events"][2]["selector"] = json!(long(257))), "events[2].selector"),
            ("text too long", Box::new(move |v| v["events"][2]["text"] = json!(long(129))), "events[2].text"),
            ("href too long", Box::new(move |v| v["events"][2]["href"] = json!(long(2049))), "events[2].href"),
            ("seconds zero", Box::new(|v| v["events"][3]["seconds"] = json!(0)), "events[3].seconds"),
            ("seconds over 1800", Box::new(|v| v["events"][3]["seconds"] = json!(1800.5)), "events[3].seconds"),
            ("seconds string", Box::new(|v| v["events"][3]["seconds"] = json!("3")), "events[3].seconds"),
            (
                "seconds missing",
                Box::new(|v| {
                    v["events"][3].as_object_mut().expect("obj").remove("seconds");
                }),
                "events[3].seconds",
            ),
            (
                "event name missing",
                Box::new(|v| {
                    v["events"][4].as_object_mut().expect("obj").remove("name");
                }),
                "events[4].name",
            ),
            ("event name empty", Box::new(|v| v["events"][4]["name"] = json!("")), "events[4].name"),
            ("event name too long", Box::new(move |v| v["events"][4]["name"] = json!(long(65))), "events[4].name"),
            ("event name not a string", Box::new(|v| v["events"][4]["name"] = json!(true)), "events[4].name"),
            ("props not an object", Box::new(|v| v["events"][4]["props"] = json!(["plan"])), "events[4].props"),
            ("props a string", Box::new(|v| v["events"][4]["props"] = json!("plan=pro")), "events[4].props"),
            ("props over 10 keys", Box::new(move |v| v["events"][4]["props"] = props_of(11)), "events[4].props"),
            ("prop key empty", Box::new(|v| v["events"][4]["props"] = json!({"": 1})), "events[4].props"),
            ("prop key too long", Box::new(move |v| v["events"][4]["props"] = json!({long(41): 1})), "events[4].props"),
            ("prop key bad char", Box::new(|v| v["events"][4]["props"] = json!({"pl an": 1})), "events[4].props"),
            (
                "prop value too long",
                Box::new(move |v| v["events"][4]["props"]["plan"] = json!(long(201))),
                "events[4].props.plan",
            ),
            ("prop value null", Box::new(|v| v["events"][4]["props"]["plan"] = Value::Null), "events[4].props.plan"),
            (
                "prop value object",
                Box::new(|v| v["events"][4]["props"]["plan"] = json!({"tier": 1})),
                "events[4].props.plan",
            ),
            ("prop value array", Box::new(|v| v["events"][4]["props"]["seats"] = json!([1])), "events[4].props.seats"),
        ];
        for (case, mutate, field) in cases {
            let mut v = valid();
            mutate(&mut v);
            let err = refusal(&v).unwrap_or_else(|| panic!("case {case}: accepted"));
            assert_eq!(err.field, field, "case {case}: {err}");
        }
    }

    #[test]
    fn repeated_prop_names_are_refused() {
        let body = br#"{"key":"k_abcdefgh","batch_id":"batch_0001","session_id":"sess_0001","events":[
            {"type":"event","ts":1,"page_id":"page_0001","url":"https://example.com/","name":"Signup","props":{"plan":"a","plan":"b"}}]}"#;
        assert_eq!(Batch::parse(body).expect_err("repeated").field, "events[0].props.plan");
    }

    #[test]
    fn bounds_are_inclusive() {
        let mut v = valid();
        v["batch_id"] = json!("b".repeat(64));
        v["events"][0]["title"] = json!("é".repeat(512));
        v["events"][0]["variant"] = json!(format!("Variant B.2_{}", "x".repeat(52)));
        v["events"][1]["depth"] = json!(100);
        v["events"][1]["prev"] = json!(99);
        v["events"][2]["selector"] = json!("s".repeat(256));
        v["events"][2]["text"] = json!("");
        v["events"][3]["seconds"] = json!(1800);
        v["events"][4]["name"] = json!("é".repeat(64));
        v["events"][4]["props"] =
            Value::Object((0..10).map(|i| (format!("{i}{}", "k".repeat(39)), json!("v".repeat(200)))).collect());
        assert!(parse_owned(&v).is_ok(), "{:?}", parse_owned(&v));
        let one = v["events"][0].clone();
        v["events"] = json!(vec![one; 50]);
        assert!(parse_owned(&v).is_ok());
    }

    #[test]
    fn fragments_are_dropped_from_urls_and_referrers() {
        let cases = [
            ("https://example.com/reset#token=secret", "https://example.com/reset"),
            ("https://example.com/a?x=1#", "https://example.com/a?x=1"),
            ("https://example.com/plain", "https://example.com/plain"),
            ("https://example.com/p?cp_overlay=tok#x", "https://example.com/p"),
            ("https://example.com/p?a=1&cp_overlay=tok&b=2", "https://example.com/p?a=1&b=2"),
            ("https://example.com/p?cp_overlay_x=1", "https://example.com/p?cp_overlay_x=1"),
        ];
        for (url, want) in cases {
            let mut v = valid();
            for ev in v["events"].as_array_mut().expect("events") {
                ev["url"] = json!(url);
            }
            v["events"][0]["referrer"] = json!(format!("{url}"));
            let events = parse_owned(&v).unwrap_or_else(|e| panic!("case {url}: {e}"));
            assert!(events.iter().all(|e| e.url == want), "case {url}: {events:?}");
            let EventKind::Pageview { referrer, .. } = &events[0].kind else { panic!("pageview") };
            assert_eq!(referrer, want, "case {url}: referrer");
        }
    }

    #[test]
    fn malformed_json_and_non_objects_name_the_body() {
        for (case, body) in [
            ("malformed", &b"{not json"[..]),
            ("array", b"[1,2]"),
            ("string", b"\"batch\""),
            ("null", b"null"),
            ("trailing", b"{\"key\":\"k\"} x"),
            ("empty", b""),
        ] {
            assert_eq!(Batch::parse(body).expect_err(case).field, "body", "case {case}");
        }
    }

    #[test]
    fn borrowed_events_serialize_as_the_owned_events() {
        let mut v = valid();
        v["events"][0]["variant"] = json!("B");
        let body = serde_json::to_vec(&v).expect("serializes");
        let batch = Batch::parse(&body).expect("valid");
        let json = serde_json::to_string(&batch.events).expect("serializes");
        let back: Vec<Event> = serde_json::from_str(&json).expect("deserializes as owned events");
        let owned: Vec<Event> = batch.events.iter().map(EventRef::to_owned_event).collect();
        assert_eq!(back, owned);
        assert_eq!(serde_json::to_string(&owned).expect("serializes"), json, "same JSON both ways");
    }

    #[test]
    fn v1_events_without_v2_fields_still_read() {
        let old = r#"{"ts":1,"page_id":"page_0001","url":"https://example.com/","type":"pageview","referrer":"","title":"","new_session":true}"#;
        let ev: Event = serde_json::from_str(old).expect("v1 pageview");
        assert_eq!(
            ev.kind,
            EventKind::Pageview { referrer: String::new(), title: String::new(), new_session: true, variant: None }
        );
        let custom = r#"{"ts":1,"page_id":"page_0001","url":"https://example.com/","type":"event","name":"Signup"}"#;
        let ev: Event = serde_json::from_str(custom).expect("event without props");
        assert_eq!(ev.kind, EventKind::Event { name: "Signup".into(), props: BTreeMap::new() });
    }
}
