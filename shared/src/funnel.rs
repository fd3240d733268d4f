//! Funnels: ordered steps a session goes through (contract v3, "Funnels, segments, filters").
//! The api validates and stores them in the site's config ([`crate::site_config`]); the
//! aggregator advances each session along them ([`Progress`]) and counts the steps reached.
//!
//! A session reaches step k when it has events matching steps 1..k in that order of event
//! time, one event per step. Steps match as goals do ([`crate::goal`]). A session counts once
//! per funnel, in the day and hour of the batch in which it reached the first step, so over
//! any range each step counts at most the sessions of the step before.

use serde::{Deserialize, Serialize};

use crate::goal::{GoalError, GoalKind, parse_matcher, parse_name};

/// Most live funnels a site may have.
pub const MAX_FUNNELS_PER_SITE: usize = 10;
/// Fewest and most steps of a funnel.
pub const MIN_STEPS: usize = 2;
pub const MAX_STEPS: usize = 8;

/// One step: what an event must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunnelStep {
    pub kind: GoalKind,
    #[serde(rename = "match")]
    pub matcher: String,
}

/// A refused funnel: the field (`name`, `steps`, `steps[2].match`, …) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FunnelError {
    pub field: String,
    pub reason: String,
}

impl FunnelError {
    fn at(prefix: &str, e: GoalError) -> Self {
        Self { field: format!("{prefix}{}", e.field), reason: e.reason }
    }
}

/// A validated funnel definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunnelSpec {
    pub name: String,
    pub steps: Vec<FunnelStep>,
}

impl FunnelSpec {
    /// Validates a funnel as the api receives it (`steps` as sent, any JSON).
    pub fn parse(name: Option<&serde_json::Value>, steps: Option<&serde_json::Value>) -> Result<Self, FunnelError> {
        let text = |v: Option<&serde_json::Value>, field: String| match v {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(FunnelError { field, reason: "must be a string".into() }),
        };
        let name = parse_name(text(name, "name".into())?.as_deref()).map_err(|e| FunnelError::at("", e))?;
        let list = match steps {
            Some(serde_json::Value::Array(list)) => list,
            _ => return Err(FunnelError { field: "steps".into(), reason: "must be a list of steps".into() }),
        };
        if !(MIN_STEPS..=MAX_STEPS).contains(&list.len()) {
            return Err(FunnelError {
                field: "steps".into(),
                reason: format!("must hold {MIN_STEPS} to {MAX_STEPS} steps, not {}", list.len()),
            });
        }
        let mut out = Vec::with_capacity(list.len());
        for (i, step) in list.iter().enumerate() {
            let prefix = format!("steps[{i}].");
            let Some(obj) = step.as_object() else {
                return Err(FunnelError { field: format!("steps[{i}]"), reason: "must be an object {kind, match}".into() });
            };
            let kind = text(obj.get("kind"), format!("{prefix}kind"))?;
            let matcher = text(obj.get("match"), format!("{prefix}match"))?;
            let (kind, matcher) =
                parse_matcher(kind.as_deref(), matcher.as_deref()).map_err(|e| FunnelError::at(&prefix, e))?;
            out.push(FunnelStep { kind, matcher });
        }
        Ok(Self { name, steps: out })
    }
}

/// A funnel of a site, as its config stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelDoc {
    pub id: String,
    pub name: String,
    pub steps: Vec<FunnelStep>,
    /// When it was created (epoch ms): the live path counts batches received from then on,
    /// the backfill those received before.
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_ms: Option<i64>,
    /// True until the backfill has counted the raw batches received before its creation.
    #[serde(default)]
    pub backfilling: bool,
}

impl FunnelDoc {
    /// True when the funnel applies to a batch received at `received_ms`.
    pub fn applies_at(&self, received_ms: i64) -> bool {
        self.created_ms <= received_ms && self.deleted_ms.is_none_or(|d| received_ms < d)
    }

    pub fn is_live(&self) -> bool {
        self.deleted_ms.is_none()
    }
}

/// How far a session went along one funnel: the steps reached, the event time of the last one,
/// and the buckets the session counts in (those of its first step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Steps reached, 0 to the funnel's length.
    pub reached: u8,
    /// Event time (ms) of the last step reached: a next step must not be earlier.
    pub at: i64,
    /// The local day (days since the epoch) and hour (epoch seconds) of the first step.
    pub day: i32,
    pub hour: i64,
}

impl Progress {
    /// Advances along `steps` with one event at `ts` that matches the steps `matches` says;
    /// returns the step reached (1-based) if the event made the session reach one. One event
    /// reaches at most one step; `day`/`hour` are the event's buckets, kept from the first
    /// step.
    pub fn advance(
        this: &mut Option<Progress>,
        steps: usize,
        matches: impl Fn(usize) -> bool,
        ts: i64,
        day: i32,
        hour: i64,
    ) -> Option<usize> {
        let next = this.map_or(0, |p| p.reached as usize);
        if next >= steps || !matches(next) || this.is_some_and(|p| ts < p.at) {
            return None;
        }
        let p = this.get_or_insert(Progress { reached: 0, at: ts, day, hour });
        p.reached += 1;
        p.at = ts;
        Some(p.reached as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_refusal_names_its_field() {
        let step = json!({"kind": "pageview", "match": "/"});
        let cases = [
            (json!(null), json!([step, step]), "name"),
            (json!(5), json!([step, step]), "name"),
            (json!("F"), json!(null), "steps"),
            (json!("F"), json!([step]), "steps"),
            (json!("F"), json!(vec![step.clone(); 9]), "steps"),
            (json!("F"), json!([step, 3]), "steps[1]"),
            (json!("F"), json!([step, {"kind": "hover", "match": "x"}]), "steps[1].kind"),
            (json!("F"), json!([step, {"kind": "event"}]), "steps[1].match"),
            (json!("F"), json!([{"kind": "pageview", "match": "pricing"}, step]), "steps[0].match"),
            (json!("F"), json!([step, {"kind": "event", "match": 7}]), "steps[1].match"),
        ];
        for (name, steps, field) in cases {
            let e = FunnelSpec::parse(Some(&name), Some(&steps)).expect_err(field);
            assert_eq!(e.field, field, "case {name} {steps}: {e}");
        }
        let ok = FunnelSpec::parse(Some(&json!(" Signup ")), Some(&json!(vec![step.clone(); 8]))).expect("valid");
        assert_eq!((ok.name.as_str(), ok.steps.len()), ("Signup", 8));
    }

    #[test]
    fn steps_are_reached_in_order_of_event_time_one_event_each() {
        // Steps: A, B, A.
        let steps = ["a", "b", "a"];
        let mut p = None;
        let go = |p: &mut Option<Progress>, ev: &str, ts: i64| Progress::advance(p, 3, |i| steps[i] == ev, ts, 1, 10);
        assert_eq!(go(&mut p, "b", 1), None, "B before A does not count");
        assert_eq!(go(&mut p, "a", 5), Some(1));
        assert_eq!(go(&mut p, "b", 4), None, "earlier than the step before");
        assert_eq!(go(&mut p, "b", 5), Some(2), "same time is in order");
        assert_eq!(go(&mut p, "a", 6), Some(3));
        assert_eq!(go(&mut p, "a", 7), None, "done");
        assert_eq!(p, Some(Progress { reached: 3, at: 6, day: 1, hour: 10 }));
    }
}
