//! A site's team as stored: who besides the owner may see or manage it, the invitations not yet
//! taken, who gets the weekly report, and the site's alerts. One document per site in
//! [`crate::names::collections::SITE_TEAMS`] (`_id` = the site id), changed by compare-and-set
//! on `rev` like a site's config, so "at most [`MAX_MEMBERS_PER_SITE`] members and invitations"
//! and "at most [`MAX_ALERTS_PER_SITE`] alerts" hold however many requests race, and the role
//! check of every request reads one document by `_id`.
//!
//! The team document is the truth. [`MembershipDoc`]s only let `GET /api/sites` find the sites
//! a user is a member of; each one found is checked against its team document, so a membership
//! left behind by a removal that failed half-way grants nothing.

use mongodb::bson::{Document, doc};
use serde::{Deserialize, Serialize};

/// Members and pending invitations of one site, at most.
pub const MAX_MEMBERS_PER_SITE: usize = 50;
/// Alerts of one site, at most.
pub const MAX_ALERTS_PER_SITE: usize = 10;
/// How long an invitation link is good for.
pub const INVITE_TTL_MS: i64 = 7 * 24 * 3_600_000;

/// What a member may do; ordered: each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads stats and the page, funnel and event views.
    Viewer,
    /// Also manages goals, funnels, segments, sharing, overlay links and alerts.
    Admin,
    /// Also changes the site, its key and its members, or deletes it. Never stored: the
    /// site's `owner_id` is its owner.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }
}

/// A member, or an invitation not yet accepted (`user_id` none, `invite_hash` some).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberEntry {
    /// The id the API shows (`DELETE .../members/{member_id}`).
    pub member_id: String,
    /// The invited address, as [`crate::ids::Email::parse`] keeps it.
    pub email: String,
    pub role: Role,
    /// The account, once the invitation was accepted.
    #[serde(default)]
    pub user_id: Option<String>,
    /// SHA-256 (hex) of the invitation's secret, until it is accepted.
    #[serde(default)]
    pub invite_hash: Option<String>,
    /// When the invitation ends (ms since the epoch).
    #[serde(default)]
    pub invite_expires_ms: Option<i64>,
    /// Opted in to the weekly report.
    #[serde(default, with = "crate::store::flag")]
    pub weekly: bool,
    pub created_ms: i64,
}

impl MemberEntry {
    /// A member, or an invitation still good at `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.user_id.is_some() || self.invite_expires_ms.is_some_and(|t| t > now_ms)
    }
}

/// The metric an alert watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertMetric {
    Visitors,
    Conversions,
    ConversionRate,
}

impl AlertMetric {
    /// As in the API and in mail: `visitors`, `conversions`, `conversion rate`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Visitors => "visitors",
            Self::Conversions => "conversions",
            Self::ConversionRate => "conversion rate",
        }
    }
}

/// Which way a change must go to alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertChange {
    Drop,
    Spike,
}

/// Least and most `percent` of an alert.
pub const ALERT_PERCENT: (u32, u32) = (10, 1000);
/// Least and most `window_hours` of an alert: at most a week, so that the window and the
/// same hours a week before are within the hours' series keep
/// ([`crate::rollup::HOURLY_SERIES_KEEP`]).
pub const ALERT_WINDOW_HOURS: (u32, u32) = (1, 168);

/// What an alert watches, as `POST /api/sites/{id}/alerts` asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertSpec {
    pub metric: AlertMetric,
    pub change: AlertChange,
    /// [`ALERT_PERCENT`].
    pub percent: u32,
    /// [`ALERT_WINDOW_HOURS`].
    pub window_hours: u32,
}

impl AlertSpec {
    /// Parses a request body; a refusal names its field.
    pub fn parse(body: &serde_json::Value) -> Result<Self, String> {
        let obj = body.as_object().ok_or("body: must be a JSON object")?;
        let metric = match obj.get("metric").and_then(|v| v.as_str()) {
            Some("visitors") => AlertMetric::Visitors,
            Some("conversions") => AlertMetric::Conversions,
            Some("conversion_rate") => AlertMetric::ConversionRate,
            _ => return Err("metric: must be visitors, conversions or conversion_rate".into()),
        };
        let change = match obj.get("change").and_then(|v| v.as_str()) {
            Some("drop") => AlertChange::Drop,
            Some("spike") => AlertChange::Spike,
            _ => return Err("change: must be drop or spike".into()),
        };
        let whole = |field: &str, (lo, hi): (u32, u32)| {
            // 50.0 is a whole number too, as JSON Schema counts.
            obj.get(field)
                .and_then(|v| v.as_u64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64)))
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| format!("{field}: must be a whole number from {lo} to {hi}"))
        };
        let percent = whole("percent", ALERT_PERCENT)?;
        let window_hours = whole("window_hours", ALERT_WINDOW_HOURS)?;
        Ok(Self { metric, change, percent, window_hours })
    }
}

/// An alert of a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEntry {
    pub id: String,
    pub metric: AlertMetric,
    pub change: AlertChange,
    /// 10 to 1000.
    pub percent: u32,
    /// 1 to 168.
    pub window_hours: u32,
    pub created_ms: i64,
    /// The end (epoch seconds) of the last window the alert job evaluated: each window is
    /// looked at once.
    #[serde(default)]
    pub checked_until: Option<i64>,
    /// The end (epoch seconds) of the last window that mailed: a window overlapping it does not
    /// mail again, so a change that lasts mails once per `window_hours`, not every hour.
    #[serde(default)]
    pub fired_until: Option<i64>,
}

impl AlertEntry {
    pub fn new(id: String, spec: AlertSpec, created_ms: i64) -> Self {
        let AlertSpec { metric, change, percent, window_hours } = spec;
        Self { id, metric, change, percent, window_hours, created_ms, checked_until: None, fired_until: None }
    }
}

/// One site's team.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TeamDoc {
    /// The site id.
    #[serde(rename = "_id")]
    pub id: String,
    /// Bumped by every write; 0 for a team not stored yet.
    pub rev: i64,
    #[serde(default)]
    pub members: Vec<MemberEntry>,
    /// The owner opted in to the weekly report.
    #[serde(default, with = "crate::store::flag")]
    pub owner_weekly: bool,
    #[serde(default)]
    pub alerts: Vec<AlertEntry>,
    /// 1 when someone gets the weekly report, else 0: what the report job looks for (an
    /// integer, which every engine filters alike; the stand-in stores a boolean as 0 or 1).
    #[serde(default)]
    pub weekly: i32,
    /// 1 when the site has alerts, else 0: what the alert job looks for.
    #[serde(default)]
    pub alerting: i32,
}

/// Field names of [`TeamDoc`] used in filters.
pub mod team_fields {
    pub const WEEKLY: &str = "weekly";
    pub const ALERTING: &str = "alerting";
}

impl TeamDoc {
    pub fn empty(site_id: &str) -> Self {
        Self { id: site_id.to_string(), ..Self::default() }
    }

    /// The accepted member `user_id`.
    pub fn member(&self, user_id: &str) -> Option<&MemberEntry> {
        self.members.iter().find(|m| m.user_id.as_deref() == Some(user_id))
    }

    /// Drops invitations that ended before `now_ms`.
    pub fn forget_expired(&mut self, now_ms: i64) {
        self.members.retain(|m| m.is_live(now_ms));
    }

    /// The write of this team if the stored one is still at `read_rev` (0: none stored), as
    /// `(filter, update)` for an upsert; it bumps `rev` and sets the job flags. A lost race
    /// fails with a duplicate-key error.
    pub fn write_statement(&self, read_rev: i64) -> Result<(Document, Document), mongodb::bson::ser::Error> {
        let members = mongodb::bson::to_bson(&self.members)?;
        let alerts = mongodb::bson::to_bson(&self.alerts)?;
        let weekly = self.owner_weekly || self.members.iter().any(|m| m.weekly && m.user_id.is_some());
        let set = doc! {
            "rev": read_rev + 1,
            "members": members,
            "owner_weekly": self.owner_weekly,
            "alerts": alerts,
            team_fields::WEEKLY: i32::from(weekly),
            team_fields::ALERTING: i32::from(!self.alerts.is_empty()),
        };
        Ok((doc! {"_id": &self.id, "rev": read_rev}, doc! {"$set": set}))
    }
}

/// That user `user_id` is a member of site `site_id`, `_id` = `<site_id>:<user_id>`, in
/// [`crate::names::collections::MEMBERSHIPS`]: how `GET /api/sites` finds a member's sites.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub site_id: String,
    pub user_id: String,
}

impl MembershipDoc {
    pub fn new(site_id: &str, user_id: &str) -> Self {
        Self { id: format!("{site_id}:{user_id}"), site_id: site_id.into(), user_id: user_id.into() }
    }
}

/// Field names of [`MembershipDoc`] used in filters.
pub mod membership_fields {
    pub const SITE_ID: &str = "site_id";
    pub const USER_ID: &str = "user_id";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_what_they_may_do() {
        assert!(Role::Viewer < Role::Admin && Role::Admin < Role::Owner);
        assert_eq!(serde_json::to_string(&Role::Admin).expect("json"), "\"admin\"");
    }

    #[test]
    fn alert_bodies_are_parsed_and_each_refusal_names_its_field() {
        let good = serde_json::json!({"metric": "conversion_rate", "change": "drop", "percent": 10, "window_hours": 168});
        assert_eq!(
            AlertSpec::parse(&good),
            Ok(AlertSpec { metric: AlertMetric::ConversionRate, change: AlertChange::Drop, percent: 10, window_hours: 168 })
        );
        let with = |field: &str, v: serde_json::Value| {
            let mut b = good.clone();
            b[field] = v;
            b
        };
        let percent = "percent: must be a whole number from 10 to 1000";
        let window = "window_hours: must be a whole number from 1 to 168";
        // (case, body, refusal)
        let cases = [
            ("not an object", serde_json::json!([1]), "body: must be a JSON object"),
            (
                "no metric",
                with("metric", serde_json::Value::Null),
                "metric: must be visitors, conversions or conversion_rate",
            ),
            (
                "unknown metric",
                with("metric", "pageviews".into()),
                "metric: must be visitors, conversions or conversion_rate",
            ),
            ("unknown change", with("change", "rise".into()), "change: must be drop or spike"),
            ("percent 9", with("percent", 9.into()), percent),
            ("percent 1001", with("percent", 1001.into()), percent),
            ("percent 12.5", with("percent", serde_json::json!(12.5)), percent),
            ("percent text", with("percent", "20".into()), percent),
            ("percent huge", with("percent", serde_json::json!(u64::MAX)), percent),
            ("window 0", with("window_hours", 0.into()), window),
            ("window 169", with("window_hours", 169.into()), window),
            ("window negative", with("window_hours", (-1).into()), window),
        ];
        for (case, body, want) in cases {
            assert_eq!(AlertSpec::parse(&body), Err(want.to_string()), "case {case}");
        }
        assert!(AlertSpec::parse(&with("percent", 1000.into())).is_ok(), "1000 is allowed");
        assert!(AlertSpec::parse(&with("window_hours", 1.into())).is_ok(), "1 is allowed");
        assert_eq!(AlertSpec::parse(&with("percent", serde_json::json!(50.0))).map(|s| s.percent), Ok(50), "50.0 is 50");
    }

    #[test]
    fn expired_invitations_are_forgotten_members_kept() {
        let entry = |id: &str, user: Option<&str>, expires: Option<i64>| MemberEntry {
            member_id: id.into(),
            email: format!("{id}@x.org"),
            role: Role::Viewer,
            user_id: user.map(str::to_string),
            invite_hash: expires.map(|_| "h".into()),
            invite_expires_ms: expires,
            weekly: false,
            created_ms: 0,
        };
        let mut team = TeamDoc::empty("s1");
        team.members = vec![entry("a", Some("u1"), None), entry("b", None, Some(1000)), entry("c", None, Some(999))];
        team.forget_expired(999);
        let left: Vec<&str> = team.members.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(left, ["a", "b"]);
        assert_eq!(team.member("u1").map(|m| m.member_id.as_str()), Some("a"));
    }
}
