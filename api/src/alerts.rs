//! Alerts: a mail to a site's owner and admins when a metric (visitors, conversions,
//! conversion rate) of the last full window dropped or rose by at least the alert's percent
//! against the same hours a week before.
//!
//! **Windows.** An alert of `window_hours` looks at the last full window: the `window_hours`
//! local hours ending where the current local hour begins. Its baseline is the same hours
//! exactly one week (168 hours) earlier. Both are read from the hours' counters and visitor
//! sketches ([`stats_store::load_series`]), which are kept
//! [`shared::rollup::HOURLY_SERIES_KEEP`] for this, and summed by [`stats::summarize`], the
//! stats' own arithmetic: visitors are the distinct visitors of the window's merged sketches.
//!
//! **When it mails.** With the window at `now` and the baseline at `before`, a drop alerts when
//! `(before - now) / before ≥ percent / 100`, a spike when `(now - before) / before ≥ percent /
//! 100`, compared exactly on whole numbers (the conversion rate as conversions over sessions).
//! A baseline of 0 never alerts: no percentage of nothing exists. A conversion rate of a
//! window without sessions is 0.
//!
//! **Once.** Every [`TICK`] one api process (the lease [`LEASE_JOB`]) looks at the sites with
//! alerts ([`shared::team::TeamDoc::alerting`]):
//!
//! 1. An alert whose last full window ended at least [`SETTLE_MS`] ago (so the batches of its
//!    last minutes are counted) and was not evaluated yet (`checked_until` before its end) is
//!    evaluated.
//! 2. When it alerts and its window does not overlap the last one that mailed
//!    (`fired_until`), the mail is queued per recipient with the outbox id
//!    `alert:<site>:<alert>:<window start>:<user>`: one mail per window and recipient, however
//!    many processes queue it (`crate::mail::outbox`, step 1).
//! 3. The site's team records `checked_until` (and `fired_until` when it mailed) for each
//!    alert evaluated, by compare-and-set.
//!
//! A process that dies between 2 and 3 leaves the window to be evaluated again: its mails are
//! queued again under the same ids, which sends nothing twice. A change that lasts mails once
//! per `window_hours`, not every hour.

use std::{collections::HashMap, time::Duration};

use chrono_tz::Tz;
use futures::TryStreamExt;
use mongodb::bson::doc;
use shared::{
    store::SiteDoc,
    team::{AlertChange, AlertEntry, AlertMetric, Role, TeamDoc, team_fields},
    telemetry::Chain,
    time,
};
use tokio_cron_scheduler::JobScheduler;

use crate::{
    access::change_team,
    error::ApiError,
    lease::{Lease, Run},
    mail::{Mail, html_escape},
    reports::change,
    state::AppState,
    stats::{self, Summary},
    stats_store::{self, Scope},
    timeframe::Range,
};

/// The alert job's lease in [`shared::names::collections::LEASES`].
pub const LEASE_JOB: &str = "alerts";
/// How often the job looks, as a cron expression (seconds first): every five minutes.
pub const TICK: &str = "0 */5 * * * *";
/// How long after a window ends it is evaluated: the batches of its last minutes reach the
/// rollups within seconds (ingest, then the aggregator's flush).
pub const SETTLE_MS: i64 = 5 * 60_000;
/// How long the job's lease is taken for; a run is cut off after half of it.
pub const LEASE_TTL: Duration = Duration::from_secs(600);
const WEEK_SECS: i64 = 7 * 24 * 3600;

/// Hours of a window: the starts of its local hours, oldest first, and its end (epoch seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub hours: Vec<i64>,
    pub end: i64,
}

impl Window {
    /// The last full window of `window_hours` at `now_ms` in `tz`: the hours ending where the
    /// current local hour begins.
    pub fn last(now_ms: i64, tz: Tz, window_hours: u32) -> Self {
        let end = time::hour_start(now_ms, tz);
        Self { hours: time::last_hours(end * 1000 - 1, tz, window_hours as usize), end }
    }

    /// The same hours one week earlier.
    pub fn week_before(&self) -> Self {
        Self { hours: self.hours.iter().map(|h| h - WEEK_SECS).collect(), end: self.end - WEEK_SECS }
    }

    pub fn start(&self) -> i64 {
        self.hours.first().copied().unwrap_or(self.end)
    }
}

/// A metric of a window as a fraction, so that thresholds compare exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Value {
    num: i64,
    den: i64,
}

fn value(metric: AlertMetric, s: &Summary) -> Value {
    match metric {
        AlertMetric::Visitors => Value { num: s.visitors, den: 1 },
        AlertMetric::Conversions => Value { num: s.conversions, den: 1 },
        AlertMetric::ConversionRate if s.sessions > 0 => Value { num: s.conversions, den: s.sessions },
        AlertMetric::ConversionRate => Value { num: 0, den: 1 },
    }
}

/// Whether going from `before` to `now` is a `change` of at least `percent`.
pub fn alerts(change: AlertChange, percent: u32, now: &Summary, before: &Summary, metric: AlertMetric) -> bool {
    let (n, b) = (value(metric, now), value(metric, before));
    if b.num <= 0 {
        return false;
    }
    // n = nn/nd, b = bn/bd: (b - n)/b ≥ p/100  ⇔  100·(bn·nd − nn·bd) ≥ p·bn·nd.
    let (nn, nd, bn, bd) = (i128::from(n.num), i128::from(n.den), i128::from(b.num), i128::from(b.den));
    let moved = match change {
        AlertChange::Drop => bn * nd - nn * bd,
        AlertChange::Spike => nn * bd - bn * nd,
    };
    100 * moved >= i128::from(percent) * bn * nd
}

/// `figure` as the mail shows it.
fn shown(metric: AlertMetric, s: &Summary) -> (f64, String) {
    match metric {
        AlertMetric::Visitors => (s.visitors as f64, s.visitors.to_string()),
        AlertMetric::Conversions => (s.conversions as f64, s.conversions.to_string()),
        AlertMetric::ConversionRate => (s.conversion_rate, format!("{:.2}%", s.conversion_rate * 100.0)),
    }
}

/// `2026-11-25 09:00`.
fn hour_shown(start: i64, tz: Tz) -> String {
    time::hour_label(start, tz).replace('T', " ")
}

/// The alert's mail to `to` (outbox id `id`): subject, plain text and HTML.
#[allow(clippy::too_many_arguments)]
pub fn mail(
    state: &AppState,
    site: &SiteDoc,
    alert: &AlertEntry,
    window: &Window,
    now: &Summary,
    before: &Summary,
    id: String,
    to: &str,
) -> Mail {
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let (now_v, now_s) = shown(alert.metric, now);
    let (before_v, before_s) = shown(alert.metric, before);
    let moved = if before_v > 0.0 { ((now_v - before_v) / before_v * 100.0).abs() } else { 0.0 };
    let (verb, kind) = match alert.change {
        AlertChange::Drop => ("dropped", "drop"),
        AlertChange::Spike => ("rose", "spike"),
    };
    let metric = alert.metric.label();
    let hours = if alert.window_hours == 1 { "1 hour".to_string() } else { format!("{} hours", alert.window_hours) };
    let period = format!("{} to {} ({})", hour_shown(window.start(), tz), hour_shown(window.end, tz), site.timezone);
    let subject = format!("{}: {metric} {verb} {moved:.0}% in the last {hours}", site.name);
    let figure = change(now_v, before_v, now_s, before_s);
    let mut label = metric.to_string();
    label[..1].make_ascii_uppercase();
    let rule = format!("a {kind} of at least {}% in {metric} over {hours}", alert.percent);
    let link = format!("{}/dashboard", state.config.public_url);
    let text = format!(
        "{name} ({domain}): {metric} {verb} {moved:.0}% from {period}, against the same hours a week before.\n\n\
         {label}: {figure}\n\nThis alert: {rule}.\n{link}\n",
        name = site.name,
        domain = site.domain,
    );
    let html = format!(
        "<p><b>{name}</b> ({domain}): {metric} {verb} {moved:.0}% from {period}, against the same hours a week \
         before.</p>\n<table>\n<tr><th>{label}</th><td>{figure}</td></tr>\n</table>\n\
         <p>This alert: {rule}.<br><a href=\"{link}\">{link}</a></p>\n",
        name = html_escape(&site.name),
        domain = html_escape(&site.domain),
        period = html_escape(&period),
        figure = html_escape(&figure),
        link = html_escape(&link),
    );
    Mail { id, to: to.to_string(), subject, text, html }
}

/// The summary of `window`'s hours of `site`.
async fn summary(state: &AppState, site: &SiteDoc, tz: Tz, window: &Window) -> Result<Summary, ApiError> {
    let range = Range::Hours { label: "alert".into(), hours: window.hours.clone() };
    let loaded = stats_store::load_series(&state.db, &Scope::of_site(site), &range, tz).await?;
    Ok(stats::summarize(&loaded.inputs.points, loaded.inputs.distinct_visitors))
}

/// Who gets a site's alerts: its owner and its admins, `(user id, email)`.
async fn recipients(state: &AppState, site: &SiteDoc, team: &TeamDoc) -> Result<Vec<(String, String)>, ApiError> {
    let admins = team.members.iter().filter(|m| m.role == Role::Admin).filter_map(|m| m.user_id.as_deref());
    let mut out = Vec::new();
    for user in std::iter::once(site.owner_id.as_str()).chain(admins) {
        if let Some(u) = state.users.find_one(doc! {"_id": user}).await? {
            out.push((u.id, u.email.as_str().to_string()));
        }
    }
    Ok(out)
}

/// Steps 1 to 3 for one site's team at `now_ms`; returns how many mails this call queued.
async fn run_site(state: &AppState, team: &TeamDoc, now_ms: i64) -> Result<usize, ApiError> {
    let Some(site) = state.sites.find_one(doc! {"_id": &team.id}).await? else { return Ok(0) };
    let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
    let due: Vec<(&AlertEntry, Window)> = team
        .alerts
        .iter()
        .map(|a| (a, Window::last(now_ms, tz, a.window_hours)))
        .filter(|(a, w)| a.checked_until.is_none_or(|c| c < w.end) && now_ms >= w.end * 1000 + SETTLE_MS)
        .collect();
    if due.is_empty() {
        return Ok(0);
    }
    // Alerts of one length share their window and its reads.
    let mut read: HashMap<u32, (Summary, Summary)> = HashMap::new();
    let mut people: Option<Vec<(String, String)>> = None;
    let (mut queued, mut done) = (0, Vec::new());
    for (alert, window) in due {
        let (now, before) = match read.get(&alert.window_hours) {
            Some(pair) => pair.clone(),
            None => {
                let pair =
                    (summary(state, &site, tz, &window).await?, summary(state, &site, tz, &window.week_before()).await?);
                read.insert(alert.window_hours, pair.clone());
                pair
            }
        };
        let fires = alerts(alert.change, alert.percent, &now, &before, alert.metric)
            && alert.fired_until.is_none_or(|f| window.start() >= f);
        if fires {
            if people.is_none() {
                people = Some(recipients(state, &site, team).await?);
            }
            for (user, email) in people.iter().flatten() {
                let id = format!("alert:{}:{}:{}:{user}", site.id, alert.id, window.start());
                if state.mailer.queue(mail(state, &site, alert, &window, &now, &before, id, email)).await? {
                    queued += 1;
                }
            }
        }
        done.push((alert.id.clone(), window.end, fires));
    }
    change_team(state, &site.id, |t| {
        for (id, end, fired) in &done {
            // Deleted meanwhile: nothing to record.
            if let Some(a) = t.alerts.iter_mut().find(|a| a.id == *id) {
                a.checked_until = Some(*end);
                if *fired {
                    a.fired_until = Some(*end);
                }
            }
        }
        Ok(())
    })
    .await?;
    Ok(queued)
}

/// One look at every site with alerts; returns how many mails this call queued. Nothing
/// without mail: an alert no one can get is not evaluated (nor marked evaluated). A site that
/// fails is logged and left to the next tick; the others go on.
pub async fn run_due(state: &AppState) -> Result<usize, ApiError> {
    if !state.mailer.enabled() {
        return Ok(0);
    }
    let now = state.clock.now_ms();
    let mut teams = state.teams.find(doc! {team_fields::ALERTING: 1}).await?;
    let mut queued = 0;
    while let Some(team) = teams.try_next().await? {
        match run_site(state, &team, now).await {
            Ok(n) => queued += n,
            Err(e) => tracing::warn!(site = %team.id, error = %Chain(&e), "alerts of a site not evaluated"),
        }
    }
    Ok(queued)
}

/// One tick of the schedule: [`run_due`] if this process takes the lease.
pub async fn run_leased(state: &AppState, lease: &Lease) -> Run<Result<usize, ApiError>> {
    crate::scheduled::run_leased(lease, run_due(state)).await
}

/// The alert job's lease for `holder` (unique per process).
pub fn lease(state: &AppState, holder: String) -> Lease {
    Lease::new(&state.db, LEASE_JOB, holder, LEASE_TTL, state.clock.clone())
}

/// Adds the alert job to `scheduler`: every [`TICK`], [`run_due`] under the lease.
pub async fn schedule(scheduler: &JobScheduler, state: AppState, holder: String) -> anyhow::Result<()> {
    let lease = lease(&state, holder);
    crate::scheduled::add(scheduler, TICK, lease, state, |state| async move { run_due(&state).await }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(visitors: i64, sessions: i64, conversions: i64) -> Summary {
        Summary {
            visitors,
            sessions,
            conversions,
            conversion_rate: stats::rate(conversions, sessions),
            ..Summary::default()
        }
    }

    #[test]
    fn thresholds_compare_exactly_and_a_baseline_of_nothing_never_alerts() {
        use AlertChange::*;
        use AlertMetric::*;
        // (case, change, percent, metric, now, before, alerts)
        let cases = [
            ("drop of exactly 50%", Drop, 50, Visitors, summary(5, 5, 0), summary(10, 10, 0), true),
            ("drop of 49%", Drop, 50, Visitors, summary(51, 51, 0), summary(100, 100, 0), false),
            ("a rise is no drop", Drop, 10, Visitors, summary(20, 20, 0), summary(10, 10, 0), false),
            ("spike of exactly 100%", Spike, 100, Conversions, summary(9, 9, 4), summary(9, 9, 2), true),
            ("spike of 99.9%", Spike, 100, Conversions, summary(9, 9, 1999), summary(9, 9, 1000), false),
            ("spike of 500%", Spike, 500, Visitors, summary(60, 60, 0), summary(10, 10, 0), true),
            ("nothing before: no drop", Drop, 10, Visitors, summary(0, 0, 0), summary(0, 0, 0), false),
            ("nothing before: no spike", Spike, 10, Visitors, summary(50, 50, 0), summary(0, 0, 0), false),
            // 2/10 against 5/10: the rate fell 60 %, though sessions did not move.
            ("rate drop of 60%", Drop, 60, ConversionRate, summary(10, 10, 2), summary(10, 10, 5), true),
            ("rate drop of 60% < 61%", Drop, 61, ConversionRate, summary(10, 10, 2), summary(10, 10, 5), false),
            // 1/3 against 1/4: +33.3 %, not a rounded +33.33 %.
            ("rate rise of a third", Spike, 33, ConversionRate, summary(3, 3, 1), summary(4, 4, 1), true),
            ("rate rise of a third < 34%", Spike, 34, ConversionRate, summary(3, 3, 1), summary(4, 4, 1), false),
            ("no sessions: the rate is 0", Drop, 100, ConversionRate, summary(0, 0, 0), summary(4, 4, 1), true),
        ];
        for (case, change, percent, metric, now, before, want) in cases {
            assert_eq!(alerts(change, percent, &now, &before, metric), want, "case {case}");
        }
    }

    #[test]
    fn the_last_full_window_ends_where_the_local_hour_begins() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).expect("time").timestamp_millis();
        let kolkata: Tz = "Asia/Kolkata".parse().expect("tz");
        // 10:40 in Kolkata (UTC+5:30): the window of 3 hours is 07:00 to 10:00 local.
        let w = Window::last(at("2026-11-25T05:10:00Z"), kolkata, 3);
        let starts: Vec<String> = w.hours.iter().map(|h| time::hour_label(*h, kolkata)).collect();
        assert_eq!(starts, ["2026-11-25T07:00", "2026-11-25T08:00", "2026-11-25T09:00"]);
        assert_eq!(w.end * 1000, at("2026-11-25T04:30:00Z"));
        let before = w.week_before();
        assert_eq!((before.start(), before.end), (w.start() - WEEK_SECS, w.end - WEEK_SECS));
        assert_eq!(before.hours.len(), 3);
    }
}
