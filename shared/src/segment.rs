//! Saved segments: sessions selected by their attribution (contract v3, "Funnels, segments,
//! filters"). The api validates and stores them in the site's config; the aggregator counts
//! the batches and session changes of matching sessions once more, under the segment's own
//! site id ([`lens_site`]), so that `?segment=` answers the whole stats response from rollups
//! exactly like the site's.

use serde::{Deserialize, Serialize};

use crate::{goal::MAX_NAME_CHARS, rollup::FILTER_DIMS};

/// Most live segments a site may have.
pub const MAX_SEGMENTS_PER_SITE: usize = 10;
/// Fewest and most conditions of a segment.
pub const MAX_FILTERS: usize = 5;
/// Longest value of a condition, in characters.
pub const MAX_VALUE_CHARS: usize = 2048;

/// How a condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Is,
    IsNot,
    /// Case-insensitive substring.
    Contains,
}

/// One condition on the session's attribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentFilter {
    pub dimension: String,
    pub op: Op,
    pub value: String,
}

impl SegmentFilter {
    /// True when a session whose attribution is `values` ((dimension, value) for each it has)
    /// meets the condition. A session without the dimension (no campaign) is not it, and
    /// contains nothing.
    pub fn holds(&self, values: &[(&str, &str)]) -> bool {
        let v = values.iter().find(|(d, _)| *d == self.dimension).map(|(_, v)| *v);
        match (self.op, v) {
            (Op::Is, Some(v)) => v == self.value,
            (Op::IsNot, Some(v)) => v != self.value,
            (Op::IsNot, None) => true,
            (Op::Contains, Some(v)) => v.to_lowercase().contains(&self.value.to_lowercase()),
            (Op::Is | Op::Contains, None) => false,
        }
    }
}

/// A refused segment: the field (`name`, `filters`, `filters[1].op`, …) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SegmentError {
    pub field: String,
    pub reason: String,
}

/// A validated segment definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentSpec {
    pub name: String,
    pub filters: Vec<SegmentFilter>,
}

impl SegmentSpec {
    /// Validates a segment as the api receives it (`filters` as sent, any JSON).
    pub fn parse(name: Option<&serde_json::Value>, filters: Option<&serde_json::Value>) -> Result<Self, SegmentError> {
        let e = |field: String, reason: String| SegmentError { field, reason };
        let name = match name {
            Some(serde_json::Value::String(s)) => {
                crate::goal::parse_name(Some(s)).map_err(|g| e(g.field.into(), g.reason))?
            }
            _ => return Err(e("name".into(), format!("must be 1 to {MAX_NAME_CHARS} characters"))),
        };
        let Some(serde_json::Value::Array(list)) = filters else {
            return Err(e("filters".into(), "must be a list of conditions".into()));
        };
        if list.is_empty() || list.len() > MAX_FILTERS {
            return Err(e("filters".into(), format!("must hold 1 to {MAX_FILTERS} conditions, not {}", list.len())));
        }
        let mut out = Vec::with_capacity(list.len());
        for (i, f) in list.iter().enumerate() {
            let at = |k: &str| format!("filters[{i}].{k}");
            let Some(obj) = f.as_object() else {
                return Err(e(format!("filters[{i}]"), "must be an object {dimension, op, value}".into()));
            };
            let text = |k: &str| obj.get(k).and_then(|v| v.as_str());
            let dimension = text("dimension")
                .filter(|d| FILTER_DIMS.contains(d))
                .ok_or_else(|| e(at("dimension"), format!("must be one of {}", FILTER_DIMS.join(", "))))?;
            let op = match text("op") {
                Some("is") => Op::Is,
                Some("is_not") => Op::IsNot,
                Some("contains") => Op::Contains,
                _ => return Err(e(at("op"), "must be one of is, is_not, contains".into())),
            };
            let value = text("value")
                .filter(|v| !v.is_empty() && v.chars().count() <= MAX_VALUE_CHARS && !v.chars().any(char::is_control))
                .ok_or_else(|| {
                    e(at("value"), format!("must be 1 to {MAX_VALUE_CHARS} characters, without control characters"))
                })?;
            out.push(SegmentFilter { dimension: dimension.to_string(), op, value: value.to_string() });
        }
        Ok(Self { name, filters: out })
    }
}

/// A segment of a site, as its config stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentDoc {
    pub id: String,
    pub name: String,
    pub filters: Vec<SegmentFilter>,
    /// When it was created (epoch ms): the live path counts batches received from then on,
    /// the backfill those received before.
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_ms: Option<i64>,
    #[serde(default)]
    pub backfilling: bool,
}

impl SegmentDoc {
    pub fn applies_at(&self, received_ms: i64) -> bool {
        self.created_ms <= received_ms && self.deleted_ms.is_none_or(|d| received_ms < d)
    }

    pub fn is_live(&self) -> bool {
        self.deleted_ms.is_none()
    }

    /// True when a session with this attribution is in the segment: every condition holds.
    pub fn matches(&self, values: &[(&str, &str)]) -> bool {
        self.filters.iter().all(|f| f.holds(values))
    }
}

/// Separates a site id from a segment id in [`lens_site`] (no site id holds it).
pub const LENS_SEP: char = '~';

/// The site id a segment's rollups are written and read under: `site~segment`.
pub fn lens_site(site_id: &str, segment_id: &str) -> String {
    format!("{site_id}{LENS_SEP}{segment_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_refusal_names_its_field() {
        let ok = json!({"dimension": "source", "op": "is", "value": "google.com"});
        let cases = [
            (json!(null), json!([ok]), "name"),
            (json!("S"), json!(null), "filters"),
            (json!("S"), json!([]), "filters"),
            (json!("S"), json!(vec![ok.clone(); 6]), "filters"),
            (json!("S"), json!([ok, 1]), "filters[1]"),
            (json!("S"), json!([{"dimension": "planet", "op": "is", "value": "x"}]), "filters[0].dimension"),
            (json!("S"), json!([{"dimension": "source", "op": "like", "value": "x"}]), "filters[0].op"),
            (json!("S"), json!([ok, {"dimension": "source", "op": "is", "value": ""}]), "filters[1].value"),
        ];
        for (name, filters, field) in cases {
            let err = SegmentSpec::parse(Some(&name), Some(&filters)).expect_err(field);
            assert_eq!(err.field, field, "case {name} {filters}: {err}");
        }
        assert_eq!(SegmentSpec::parse(Some(&json!("S")), Some(&json!(vec![ok; 5]))).expect("valid").filters.len(), 5);
    }

    #[test]
    fn conditions_hold_on_the_attribution_a_session_has() {
        let values = [("source", "Google.com"), ("device", "mobile")];
        let f = |d: &str, op, v: &str| SegmentFilter { dimension: d.into(), op, value: v.into() };
        assert!(f("source", Op::Is, "Google.com").holds(&values));
        assert!(!f("source", Op::Is, "google.com").holds(&values), "is is exact");
        assert!(f("source", Op::Contains, "google").holds(&values), "contains ignores case");
        assert!(f("campaign", Op::IsNot, "spring").holds(&values), "no campaign is not spring");
        assert!(!f("campaign", Op::Is, "spring").holds(&values));
        assert!(!f("campaign", Op::Contains, "").holds(&values));
        let seg = SegmentDoc {
            id: "s".into(),
            name: "S".into(),
            filters: vec![f("source", Op::Contains, "google"), f("device", Op::Is, "desktop")],
            created_ms: 0,
            deleted_ms: None,
            backfilling: false,
        };
        assert!(!seg.matches(&values), "all must hold");
    }
}
