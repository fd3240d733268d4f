//! The weekly report: a site's visitors, pageviews, conversions, conversion rate, revenue and
//! top 5 sources and pages over seven local days, each against the seven days before, in plain
//! text and HTML. The figures are the native stats' own ([`crate::routes::stats::compute`]);
//! only the layout is here.
//!
//! Scheduled: every [`TICK`] one api process (the lease [`LEASE_JOB`]) looks at the sites
//! someone gets the report of; a site whose local time is Monday 08:00 or later, and before
//! Tuesday 08:00, gets the report of the week Monday to Sunday just past, queued per recipient
//! with the outbox id `report:<site>:<monday>:<user>`. So it is queued once per week whoever
//! looks and however often, and a process that was down at 08:00 still sends it that day.

use std::time::Duration;

use chrono::{Datelike, Duration as Days, NaiveDate, Timelike, Weekday};
use chrono_tz::Tz;
use futures::TryStreamExt;
use mongodb::bson::doc;
use shared::{
    store::SiteDoc,
    team::{TeamDoc, team_fields},
    time,
};

use tokio_cron_scheduler::JobScheduler;

use crate::{
    error::ApiError,
    lease::{Lease, Run},
    mail::{Mail, html_escape},
    routes::stats::{StatsQuery, compute},
    state::AppState,
    stats::Stats,
    timeframe::Range,
};

/// The report job's lease in [`shared::names::collections::LEASES`].
pub const LEASE_JOB: &str = "weekly-report";
/// How often the job looks, as a cron expression (seconds first): every five minutes.
pub const TICK: &str = "0 */5 * * * *";
/// The local hour of Monday the report goes out.
pub const SEND_HOUR: u32 = 8;
/// Rows of each top list in a report.
const TOP: usize = 5;

/// What a report shows of one range.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub visitors: i64,
    pub pageviews: i64,
    pub conversions: i64,
    pub conversion_rate: f64,
    /// In the site's currency.
    pub revenue: f64,
    pub sources: Vec<(String, i64)>,
    pub pages: Vec<(String, i64)>,
}

impl Figures {
    fn of(stats: &Stats, currency: &str) -> Self {
        Self {
            visitors: stats.summary.visitors,
            pageviews: stats.summary.pageviews,
            conversions: stats.summary.conversions,
            conversion_rate: stats.summary.conversion_rate,
            revenue: stats.summary.revenue.as_ref().and_then(|r| r.get(currency)).copied().unwrap_or(0.0),
            sources: stats.top_referrers.iter().take(TOP).map(|r| (r.source.clone(), r.visits)).collect(),
            pages: stats.top_pages.iter().take(TOP).map(|p| (p.path.clone(), p.pageviews)).collect(),
        }
    }
}

/// The figures of `site` over local days `from` to `to`.
pub async fn figures(state: &AppState, site: &SiteDoc, from: NaiveDate, to: NaiveDate) -> Result<Figures, ApiError> {
    let query = StatsQuery {
        range: Range::Days { label: "custom".into(), from, to },
        compare: false,
        page: None,
        filter: None,
        segment: None,
        control: None,
    };
    Ok(Figures::of(&compute(state, site, &query).await?, &site.currency))
}

/// `12 (was 10, +20%)`.
pub(crate) fn change(now: f64, before: f64, shown_now: String, shown_before: String) -> String {
    let delta = if before > 0.0 {
        format!("{:+.0}%", (now - before) / before * 100.0)
    } else if now > 0.0 {
        "new".into()
    } else {
        "=".into()
    };
    format!("{shown_now} (was {shown_before}, {delta})")
}

/// The report's subject, plain text and HTML.
pub fn render(site: &SiteDoc, from: NaiveDate, to: NaiveDate, now: &Figures, before: &Figures) -> (String, String, String) {
    let money = |v: f64| format!("{v:.2} {}", site.currency);
    let rate = |v: f64| format!("{:.2}%", v * 100.0);
    let rows: Vec<(&str, String)> = vec![
        (
            "Visitors",
            change(now.visitors as f64, before.visitors as f64, now.visitors.to_string(), before.visitors.to_string()),
        ),
        (
            "Pageviews",
            change(now.pageviews as f64, before.pageviews as f64, now.pageviews.to_string(), before.pageviews.to_string()),
        ),
        (
            "Conversions",
            change(
                now.conversions as f64,
                before.conversions as f64,
                now.conversions.to_string(),
                before.conversions.to_string(),
            ),
        ),
        (
            "Conversion rate",
            change(now.conversion_rate, before.conversion_rate, rate(now.conversion_rate), rate(before.conversion_rate)),
        ),
        ("Revenue", change(now.revenue, before.revenue, money(now.revenue), money(before.revenue))),
    ];
    let tops = |title: &'static str, now: &[(String, i64)], before: &[(String, i64)]| {
        let lines: Vec<(String, String)> = now
            .iter()
            .map(|(key, n)| {
                let was = before.iter().find(|(k, _)| k == key).map_or(0, |(_, b)| *b);
                (key.clone(), change(*n as f64, was as f64, n.to_string(), was.to_string()))
            })
            .collect();
        (title, lines)
    };
    let lists = [tops("Top sources", &now.sources, &before.sources), tops("Top pages", &now.pages, &before.pages)];
    let period = format!("{} to {}", time::day_string(from), time::day_string(to));
    let subject = format!("{}: {} visitors, {} conversions ({period})", site.name, now.visitors, now.conversions);

    let mut text = format!("{} ({}), {period}, against the 7 days before\n\n", site.name, site.domain);
    for (label, value) in &rows {
        text.push_str(&format!("{label}: {value}\n"));
    }
    for (title, lines) in &lists {
        text.push_str(&format!("\n{title}\n"));
        if lines.is_empty() {
            text.push_str("  none\n");
        }
        for (key, value) in lines {
            text.push_str(&format!("  {key}: {value}\n"));
        }
    }
    let mut html = format!(
        "<h1>{} ({})</h1>\n<p>{period}, against the 7 days before</p>\n<table>\n",
        html_escape(&site.name),
        html_escape(&site.domain)
    );
    for (label, value) in &rows {
        html.push_str(&format!("<tr><th>{label}</th><td>{}</td></tr>\n", html_escape(value)));
    }
    html.push_str("</table>\n");
    for (title, lines) in &lists {
        html.push_str(&format!("<h2>{title}</h2>\n<ul>\n"));
        if lines.is_empty() {
            html.push_str("<li>none</li>\n");
        }
        for (key, value) in lines {
            html.push_str(&format!("<li>{}: {}</li>\n", html_escape(key), html_escape(value)));
        }
        html.push_str("</ul>\n");
    }
    (subject, text, html)
}

/// The report of `site` over `from`..`to` against the 7 days before, as a mail to `to_email`
/// with outbox id `id`.
pub async fn mail(
    state: &AppState,
    site: &SiteDoc,
    from: NaiveDate,
    to: NaiveDate,
    id: String,
    to_email: &str,
) -> Result<Mail, ApiError> {
    let now = figures(state, site, from, to).await?;
    let before = figures(state, site, from - Days::days(7), to - Days::days(7)).await?;
    let (subject, text, html) = render(site, from, to, &now, &before);
    Ok(Mail { id, to: to_email.to_string(), subject, text, html })
}

/// The week a report due at `now_ms` in `tz` covers (Monday to Sunday just past): `Some` from
/// Monday 08:00 local to Tuesday 08:00.
pub fn due_week(now_ms: i64, tz: Tz) -> Option<(NaiveDate, NaiveDate)> {
    let local = chrono::DateTime::from_timestamp_millis(now_ms)?.with_timezone(&tz);
    let day = local.date_naive();
    let monday = match (local.weekday(), local.hour() >= SEND_HOUR) {
        (Weekday::Mon, true) => day,
        (Weekday::Tue, false) => day - Days::days(1),
        _ => return None,
    };
    Some((monday - Days::days(7), monday - Days::days(1)))
}

/// The emails of who gets `team`'s weekly report: `(user id, email)`.
async fn recipients(state: &AppState, site: &SiteDoc, team: &TeamDoc) -> Result<Vec<(String, String)>, ApiError> {
    let mut users: Vec<&str> = team.members.iter().filter(|m| m.weekly).filter_map(|m| m.user_id.as_deref()).collect();
    if team.owner_weekly {
        users.push(&site.owner_id);
    }
    let mut out = Vec::new();
    for user in users {
        if let Some(u) = state.users.find_one(doc! {"_id": user}).await? {
            out.push((u.id, u.email.as_str().to_string()));
        }
    }
    Ok(out)
}

/// One look: queues the report of every site whose report is due now. Returns how many mails
/// this call queued (0 for those queued before).
pub async fn run_due(state: &AppState) -> Result<usize, ApiError> {
    let teams: Vec<TeamDoc> = state.teams.find(doc! {team_fields::WEEKLY: 1}).await?.try_collect().await?;
    let now = state.clock.now_ms();
    let mut queued = 0;
    for team in teams {
        let Some(site) = state.sites.find_one(doc! {"_id": &team.id}).await? else { continue };
        let tz: Tz = time::parse_tz(&site.timezone).unwrap_or(Tz::UTC);
        let Some((from, to)) = due_week(now, tz) else { continue };
        let monday = time::day_string(to + Days::days(1));
        for (user, email) in recipients(state, &site, &team).await? {
            let m = mail(state, &site, from, to, format!("report:{}:{monday}:{user}", site.id), &email).await?;
            if state.mailer.queue(m).await? {
                queued += 1;
            }
        }
    }
    Ok(queued)
}

/// How long the report job's lease is taken for; a run is cut off after half of it.
pub const LEASE_TTL: Duration = Duration::from_secs(600);

/// The report job's lease for `holder` (unique per process).
pub fn lease(state: &AppState, holder: String) -> Lease {
    Lease::new(&state.db, LEASE_JOB, holder, LEASE_TTL, state.clock.clone())
}

/// One tick of the schedule: [`run_due`] if this process takes the lease (what every api
/// replica does every [`TICK`]; of several, one runs it).
pub async fn run_leased(state: &AppState, lease: &Lease) -> Run<Result<usize, ApiError>> {
    crate::scheduled::run_leased(lease, run_due(state)).await
}

/// Adds the report job to `scheduler`: every [`TICK`], [`run_due`] under the lease.
pub async fn schedule(scheduler: &JobScheduler, state: AppState, holder: String) -> anyhow::Result<()> {
    let lease = lease(&state, holder);
    crate::scheduled::add(scheduler, TICK, lease, state, |state| async move { run_due(&state).await }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc3339).expect("time").timestamp_millis()
    }

    #[test]
    fn a_report_is_due_from_monday_eight_to_tuesday_eight_local() {
        let berlin: Tz = "Europe/Berlin".parse().expect("tz");
        let week = Some((time::parse_day("2026-11-23").expect("day"), time::parse_day("2026-11-29").expect("day")));
        // (case, instant, due week)
        let cases = [
            ("Monday 07:59 Berlin", "2026-11-30T06:59:00Z", None),
            ("Monday 08:00 Berlin", "2026-11-30T07:00:00Z", week),
            ("Tuesday 07:59 Berlin", "2026-12-01T06:59:00Z", week),
            ("Tuesday 08:00 Berlin", "2026-12-01T07:00:00Z", None),
            ("Sunday", "2026-11-29T12:00:00Z", None),
        ];
        for (case, instant, want) in cases {
            assert_eq!(due_week(at(instant), berlin), want, "case {case}");
        }
    }

    #[test]
    fn changes_read_against_the_week_before() {
        assert_eq!(change(12.0, 10.0, "12".into(), "10".into()), "12 (was 10, +20%)");
        assert_eq!(change(5.0, 0.0, "5".into(), "0".into()), "5 (was 0, new)");
        assert_eq!(change(0.0, 0.0, "0".into(), "0".into()), "0 (was 0, =)");
        assert_eq!(change(1.0, 4.0, "1".into(), "4".into()), "1 (was 4, -75%)");
    }
}
