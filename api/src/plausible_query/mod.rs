//! Plausible's Stats API v2 query (`POST /api/v2/query`, issue 23), the subset ConvertPulse
//! answers from its rollups: the request parsed into types ([`parse`]), which combinations the
//! rollups answer exactly ([`Query::check_support`]), the answer shaped as Plausible shapes it
//! ([`answer`]), and request values shown in messages as Plausible shows them ([`inspect`]).
//! Pure: `routes/plausible_query.rs` reads the rollups and hands rows here.
//!
//! # The subset
//!
//! A query has one *scope* (its filter, at most one: none, a page, a visit property, or a goal)
//! and at most one dimension. The rows of each come from what the native stats already read,
//! so every figure is the one `GET /api/stats/{id}` shows for the same range and filter:
//!
//! | scope \ dimension | none, `time:day` | `event:page` | `visit:*` | `event:goal` |
//! |---|---|---|---|---|
//! | site | the summary, the series | `?page=` of each page | `?filter=` of each value | each goal's conversions |
//! | `event:page` is P | `?page=P` | — | — | — |
//! | `visit:*` is V | `?filter=dim:V` | — | — | its goals |
//! | `event:goal` is G | G's conversions (no `time:day`) | — | G's conversions per value | G's row |
//!
//! Within a cell, a metric is answered only where the rollups hold it exactly
//! ([`Query::check_support`] says why otherwise): visits by a visit property count sessions,
//! not distinct visitors; a page's sessions are those that entered on it (Plausible's own
//! bounce rate of a page is the same); custom events are counted for the whole site; goal
//! completions are counted per visit, so a goal row has `visits` and `conversion_rate` only.
//!
//! # Words
//!
//! Errors are `{"error": "<message>"}` worded as Plausible words them: its JSON-schema
//! messages (`#/metrics/0: Invalid metric "foo"`) for what Plausible itself refuses, and the
//! same form with `Unsupported` for what Plausible answers and ConvertPulse does not.

mod answer;
mod inspect;
mod parse;

use chrono::NaiveDate;
use serde_json::Value;

pub use answer::{Answer, Row, Source, answer, day_rows};
pub use inspect::inspect;
pub use parse::{MAX_LIMIT, parse};

/// A request Plausible's API would refuse, or ConvertPulse cannot answer: 400 with
/// `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl QueryError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// A metric of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Visitors,
    Visits,
    Pageviews,
    BounceRate,
    Events,
    ConversionRate,
    ScrollDepth,
}

impl Metric {
    const ALL: [Metric; 7] = [
        Metric::Visitors,
        Metric::Visits,
        Metric::Pageviews,
        Metric::BounceRate,
        Metric::Events,
        Metric::ConversionRate,
        Metric::ScrollDepth,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Visitors => "visitors",
            Self::Visits => "visits",
            Self::Pageviews => "pageviews",
            Self::BounceRate => "bounce_rate",
            Self::Events => "events",
            Self::ConversionRate => "conversion_rate",
            Self::ScrollDepth => "scroll_depth",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == raw)
    }
}

/// A visit property: a dimension and a filter, each one of the native one-click filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitDim {
    Source,
    Campaign,
    Medium,
    Country,
    Device,
    Browser,
    Os,
    EntryPage,
}

/// What Plausible calls a visit without a referrer.
const PLAUSIBLE_DIRECT: &str = "Direct / None";
/// What ConvertPulse calls it.
const DIRECT: &str = "(direct)";

impl VisitDim {
    const ALL: [VisitDim; 8] = [
        VisitDim::Source,
        VisitDim::Campaign,
        VisitDim::Medium,
        VisitDim::Country,
        VisitDim::Device,
        VisitDim::Browser,
        VisitDim::Os,
        VisitDim::EntryPage,
    ];

    /// Plausible's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Source => "visit:source",
            Self::Campaign => "visit:utm_campaign",
            Self::Medium => "visit:utm_medium",
            Self::Country => "visit:country",
            Self::Device => "visit:device",
            Self::Browser => "visit:browser",
            Self::Os => "visit:os",
            Self::EntryPage => "visit:entry_page",
        }
    }

    /// The native one-click filter's name (`shared::rollup::FILTER_DIMS`).
    pub fn filter_dim(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Campaign => "campaign",
            Self::Medium => "medium",
            Self::Country => "country",
            Self::Device => "device",
            Self::Browser => "browser",
            Self::Os => "os",
            Self::EntryPage => "entry_page",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == raw)
    }

    /// A stored value as Plausible spells it: `Direct / None` for a visit without a referrer,
    /// devices capitalized (`Desktop`); every other value as stored.
    pub fn to_plausible(self, value: &str) -> String {
        match (self, value) {
            (Self::Source, DIRECT) => PLAUSIBLE_DIRECT.to_string(),
            (Self::Device, v) => {
                let mut chars = v.chars();
                chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
            }
            (_, v) => v.to_string(),
        }
    }

    /// A filter value as stored: the reverse of [`Self::to_plausible`] (devices in any case).
    pub fn from_plausible(self, value: &str) -> String {
        match (self, value) {
            (Self::Source, PLAUSIBLE_DIRECT) => DIRECT.to_string(),
            (Self::Device, v) => v.to_lowercase(),
            (_, v) => v.to_string(),
        }
    }
}

/// A dimension of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Day,
    Page,
    Visit(VisitDim),
    Goal,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Self::Day => "time:day",
            Self::Page => "event:page",
            Self::Visit(d) => d.name(),
            Self::Goal => "event:goal",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "time:day" => Some(Self::Day),
            "event:page" => Some(Self::Page),
            "event:goal" => Some(Self::Goal),
            other => VisitDim::parse(other).map(Self::Visit),
        }
    }
}

/// What a query's filter selects: the whole site, or the part one filter keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Site,
    /// `["is", "event:page", [path]]`: the native page filter.
    Page(String),
    /// `["is", "visit:…", [value]]`: the native one-click filter, the value as stored.
    Visit(VisitDim, String),
    /// `["is", "event:goal", [name]]`: the sessions that completed the goal of that name.
    Goal(String),
}

impl Scope {
    fn dimension_name(&self) -> &'static str {
        match self {
            Self::Site => "",
            Self::Page(_) => "event:page",
            Self::Visit(d, _) => d.name(),
            Self::Goal(_) => "event:goal",
        }
    }
}

/// The id of the live goal called `name` (a goal filter names a goal as Plausible does, by
/// its name). Refused as Plausible refuses a goal it does not know, or when several live goals
/// share the name (their visits would count twice).
pub fn goal_id<'a>(goals: &'a [(String, String)], name: &str) -> Result<&'a str, QueryError> {
    let mut named = goals.iter().filter(|(_, n)| n == name);
    match (named.next(), named.next()) {
        (Some((id, _)), None) => Ok(id),
        (None, _) => Err(QueryError::new(format!(
            "The goal `{name}` is not configured for this site. Find out how to configure goals here: https://plausible.io/docs/stats-api#filtering-by-goals"
        ))),
        (Some(_), Some(_)) => Err(QueryError::new(format!(
            "Several goals of this site are named `{name}`: ConvertPulse filters on a goal whose name is its own."
        ))),
    }
}

/// What a row is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKey {
    Metric(Metric),
    Dimension(Dimension),
}

/// `include` of the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Include {
    /// Every bucket of the range under `meta.time_labels` (needs `time:day`).
    pub time_labels: bool,
    /// The rows before pagination under `meta.total_rows`.
    pub total_rows: bool,
    /// Accepted and echoed; ConvertPulse has no imported data to add.
    pub imports: bool,
}

/// A parsed query, within the subset and answerable.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub metrics: Vec<Metric>,
    /// Local days of the site, inclusive.
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub dimension: Option<Dimension>,
    pub scope: Scope,
    /// With Plausible's default when absent: the time dimension ascending, then the first
    /// metric descending.
    pub order_by: Vec<(OrderKey, bool)>,
    pub limit: usize,
    pub offset: usize,
    pub include: Include,
    /// The filters as sent, echoed under `query.filters`.
    pub filters: Value,
}

impl Query {
    /// Refuses what the rollups cannot answer exactly (see the module doc), naming the metric,
    /// the filter and the dimension, and why.
    pub fn check_support(&self) -> Result<(), QueryError> {
        let dim = self.dimension;
        let combined = matches!(
            (&self.scope, dim),
            (_, None)
                | (Scope::Site, _)
                | (Scope::Page(_) | Scope::Visit(..), Some(Dimension::Day))
                | (Scope::Visit(..) | Scope::Goal(_), Some(Dimension::Goal))
                | (Scope::Goal(_), Some(Dimension::Visit(_)))
        );
        if let (false, Some(d)) = (combined, dim) {
            return Err(QueryError::new(format!(
                "Filtering on `{}` cannot be combined with the `{}` dimension in ConvertPulse.",
                self.scope.dimension_name(),
                d.name()
            )));
        }
        let goal_rows = matches!(self.scope, Scope::Goal(_)) || dim == Some(Dimension::Goal);
        let pages = matches!(self.scope, Scope::Page(_)) || dim == Some(Dimension::Page);
        let by_visit = matches!(self.scope, Scope::Visit(..)) || matches!(dim, Some(Dimension::Visit(_)));
        for &m in &self.metrics {
            let why = if goal_rows {
                (!matches!(m, Metric::Visits | Metric::ConversionRate)).then_some(
                    "goal completions are counted per visit: ask for `visits` (visits that completed the goal) or `conversion_rate`",
                )
            } else {
                match m {
                    Metric::Visitors if by_visit => {
                        Some("visits are counted by visit property, distinct visitors are not: ask for `visits`")
                    }
                    Metric::Visits if pages => {
                        Some("a page's visits are counted by the page they entered on: ask for `visit:entry_page`")
                    }
                    Metric::Events if pages || by_visit => Some("custom events are counted for the whole site only"),
                    _ => None,
                }
            };
            if let Some(why) = why {
                return Err(QueryError::new(format!(
                    "Metric `{}` cannot be queried {} in ConvertPulse: {why}.",
                    m.name(),
                    self.describe_scope()
                )));
            }
        }
        Ok(())
    }

    /// "with a filter on `event:goal` and the `visit:source` dimension", for messages.
    fn describe_scope(&self) -> String {
        let filter = (self.scope != Scope::Site).then(|| format!("a filter on `{}`", self.scope.dimension_name()));
        let dim = self.dimension.map(|d| format!("the `{}` dimension", d.name()));
        match (filter, dim) {
            (Some(f), Some(d)) => format!("with {f} and {d}"),
            (Some(one), None) | (None, Some(one)) => format!("with {one}"),
            (None, None) => "on the whole site".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_goal_filter_names_one_live_goal() {
        let goals = vec![
            ("g1".to_string(), "Signup".to_string()),
            ("g2".to_string(), "Buy".to_string()),
            ("g3".to_string(), "Buy".to_string()),
        ];
        assert_eq!(goal_id(&goals, "Signup"), Ok("g1"));
        assert_eq!(
            goal_id(&goals, "Trial"),
            Err(QueryError::new(
                "The goal `Trial` is not configured for this site. Find out how to configure goals here: https://plausible.io/docs/stats-api#filtering-by-goals"
            ))
        );
        assert_eq!(
            goal_id(&goals, "Buy"),
            Err(QueryError::new(
                "Several goals of this site are named `Buy`: ConvertPulse filters on a goal whose name is its own."
            ))
        );
    }
}
