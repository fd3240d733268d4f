//! What a session is known to have done, across batches, flushes and aggregators: the state
//! behind conversions, their attribution and bounces.
//!
//! The contract attributes a session to the source, campaign, medium and variant of its first
//! pageview, counts a session's goal completions once per day, and calls a session a bounce
//! when it has exactly one pageview and no click, custom event or scroll past 25 %. Those facts
//! span batches, so each session has a document, `site|session_id`, holding its [`SessionState`].
//! A flush turns the batches of each session into [`SessionFacts`], and [`transition`] turns the
//! state and the facts into the next state and the [`Effect`]s on the rollups:
//!
//! - `Engaged`: the session is no bounce. Counted once, on its start day, once its start is
//!   known (out of order, a start may arrive after the click that engaged it).
//! - `Converted`: the session completed its first goal of a day.
//! - `Attributed`: that conversion counted for the session's source, campaign, medium, variant
//!   and entry page — when its start is known, else as soon as the start arrives.
//! - `Goal`: the session completed this goal for the first time that day; `GoalEntry` counts
//!   it for the entry page when the start arrives after the completion.
//!
//! Session documents follow the rollup documents' protocol (revision-checked writes, per-instance
//! watermarks; see [`crate::flush`]) and also keep the effects of each instance's latest flush:
//! a flush finished by recovery after its session documents were written takes their effects
//! from there instead of computing them again from a state that already includes them.

use std::collections::BTreeMap;

use chrono::Datelike;
use mongodb::bson::DateTime;
use serde::{Deserialize, Serialize};
use shared::{
    funnel::{FunnelDoc, Progress},
    message::BatchMessage,
    rollup::{Bucket, Dim, Watermark},
};

use crate::buckets::Buckets;

/// How many conversion days and goal completions a session remembers (a session rarely spans
/// more than a day; these only bound a document that page code could try to grow).
const MAX_DAYS: usize = 31;
const MAX_GOALS: usize = 200;
/// Funnels a session keeps progress of (a site has at most 10 live ones, and keeps deleted
/// ones two days).
const MAX_FUNNELS: usize = 32;
/// Hits a session keeps per funnel while that funnel's backfill runs (see [`FunnelState`]).
const MAX_PENDING: usize = 64;
/// How many (pageview, element) pairs a session remembers as clicked: the latest ones. A page
/// has at most 30 CTAs, and clicks on a pageview's elements come before the next pageview's.
const MAX_CLICKED: usize = 64;

/// The first pageview of a session: what its visits and conversions are attributed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Start {
    #[serde(with = "bucket_serde::day")]
    pub day: Bucket,
    #[serde(with = "bucket_serde::hour")]
    pub hour: Bucket,
    /// The entry page.
    pub path: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Device, browser, OS and country of the first pageview's batch (v3; empty in documents
    /// written before).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub browser: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub country: String,
    /// Event time (ms) of the first pageview, what a time to conversion runs from (v3; absent
    /// in documents written before, whose sessions count no time to conversion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
}

impl Start {
    /// The session's value of each filter dimension ([`shared::rollup::FILTER_DIMS`]) it has.
    pub fn filter_values(&self) -> Vec<(&'static str, &str)> {
        let all = [
            ("source", Some(self.source.as_str())),
            ("campaign", self.campaign.as_deref()),
            ("medium", self.medium.as_deref()),
            ("variant", self.variant.as_deref()),
            ("country", Some(self.country.as_str())),
            ("device", Some(self.device.as_str())),
            ("browser", Some(self.browser.as_str())),
            ("os", Some(self.os.as_str())),
            ("entry_page", Some(self.path.as_str())),
        ];
        all.into_iter().filter_map(|(d, v)| v.filter(|v| !v.is_empty()).map(|v| (d, v))).collect()
    }

    /// The dimensions a session's conversions are attributed to, with its values (only those
    /// it has: a session without a campaign is listed under no campaign).
    pub fn attributes(&self) -> Vec<(Dim, &str)> {
        let mut out = vec![(Dim::Source, self.source.as_str())];
        let optional = [(Dim::Campaign, &self.campaign), (Dim::Medium, &self.medium), (Dim::Variant, &self.variant)];
        out.extend(optional.into_iter().filter_map(|(dim, v)| v.as_deref().map(|v| (dim, v))));
        out
    }
}

/// What one batch tells about its session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFacts {
    pub site_id: String,
    pub session_id: String,
    pub received_at: i64,
    pub buckets: Buckets,
    /// From a pageview with `new_session` true.
    pub start: Option<Start>,
    pub pageviews: u32,
    /// A click, a custom event or a scroll past 25 %.
    pub interacted: bool,
    /// Goals completed (ids), each once.
    pub goals: Vec<String>,
    /// Clicks, in order: what makes a pageview one of an element's clickers.
    pub clicks: Vec<Click>,
    /// Events matching steps of the funnels that apply to the batch, per funnel.
    pub funnels: Vec<FunnelFacts>,
    /// The paths and event times of its pageviews (v3: what makes a page not the session's
    /// exit).
    pub pages: Vec<(String, i64)>,
    /// The earliest event time of an event completing a goal (v3: time to conversion).
    pub goal_ts: Option<i64>,
    /// Revenue carried by its events, per currency in thousandths (v3).
    pub revenue: Vec<(String, u64)>,
}

/// The events of one batch that match steps of one funnel.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelFacts {
    pub id: String,
    pub steps: usize,
    /// The funnel's creation: a session first seen before it straddles it.
    pub created_ms: i64,
    /// The funnel's backfill still runs.
    pub backfilling: bool,
    pub hits: Vec<Hit>,
}

/// An event matching steps of a funnel: which (`m`, bit i = step i + 1), when (`ts`, event
/// time), and the buckets of its batch (`d`: days since the common era, `h`: epoch seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    pub m: i32,
    pub ts: i64,
    pub d: i32,
    pub h: i64,
}

/// A session's progress along one funnel.
///
/// A funnel created while the session runs (the session was first seen before it) needs the
/// session's events from before the creation, which only the backfill reads (from the raw
/// batches). Until the backfill has merged them (`resolved`), the live path keeps the
/// session's hits in `pending` and counts nothing; the backfill then continues the progress
/// it computed over those hits. Every other session is resolved from the start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelState {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<Progress>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Hit>,
    #[serde(default)]
    pub resolved: bool,
}

impl FunnelState {
    /// Advances along a funnel of `steps` steps with `hits`; the steps reached, as effects.
    pub fn advance(&mut self, steps: usize, hits: &[Hit], effects: &mut Vec<Effect>) {
        for hit in hits {
            if let Some(step) = Progress::advance(&mut self.p, steps, |i| hit.m & (1 << i) != 0, hit.ts, hit.d, hit.h) {
                effects.push(self.step_effect(step));
            }
        }
    }

    /// The effect of reaching `step`, in the buckets of the first step.
    pub fn step_effect(&self, step: usize) -> Effect {
        let p = self.p.expect("a step reached has progress");
        Effect::FunnelStep { day: day_bucket(p.day), hour: Bucket::Hour(p.hour), funnel: self.id.clone(), step: step as u8 }
    }
}

/// A day bucket's number: days since the common era.
pub fn day_number(b: Bucket) -> i32 {
    match b {
        Bucket::Day(d) => d.num_days_from_ce(),
        _ => 0,
    }
}

fn day_bucket(n: i32) -> Bucket {
    Bucket::Day(chrono::NaiveDate::from_num_days_from_ce_opt(n).unwrap_or_default())
}

fn hour_number(b: Bucket) -> i64 {
    match b {
        Bucket::Hour(h) => h,
        _ => 0,
    }
}

/// A click, as [`SessionFacts`] keep it.
#[derive(Debug, Clone, PartialEq)]
pub struct Click {
    /// Which pageview, and which element in it (a hash of `page_id` and selector).
    pub mark: u64,
    pub path: String,
    pub selector: String,
    pub text: Option<String>,
}

impl SessionFacts {
    pub fn new(msg: &BatchMessage, buckets: Buckets) -> Self {
        Self {
            site_id: msg.site_id.clone(),
            session_id: msg.session_id.clone(),
            received_at: msg.received_at,
            buckets,
            start: None,
            pageviews: 0,
            interacted: false,
            goals: Vec::new(),
            clicks: Vec::new(),
            funnels: Vec::new(),
            pages: Vec::new(),
            goal_ts: None,
            revenue: Vec::new(),
        }
    }

    /// A pageview of `path` at event time `ts`.
    pub fn add_page(&mut self, path: &str, ts: i64) {
        if self.pages.len() < MAX_BATCH_PAGES {
            self.pages.push((path.to_string(), ts));
        }
    }

    /// `milli` thousandths of `currency` carried by an event.
    pub fn add_revenue(&mut self, currency: &str, milli: u64) {
        match self.revenue.iter_mut().find(|(c, _)| c == currency) {
            Some((_, sum)) => *sum += milli,
            None => self.revenue.push((currency.to_string(), milli)),
        }
    }

    /// An event of this batch, at event time `ts`, matches the steps `mask` of `funnel`.
    pub fn add_funnel_hit(&mut self, funnel: &FunnelDoc, mask: u8, ts: i64) {
        let hit = Hit { m: i32::from(mask), ts, d: day_number(self.buckets.day), h: hour_number(self.buckets.hour) };
        match self.funnels.iter_mut().find(|f| f.id == funnel.id) {
            Some(f) => f.hits.push(hit),
            None => self.funnels.push(FunnelFacts {
                id: funnel.id.clone(),
                steps: funnel.steps.len(),
                created_ms: funnel.created_ms,
                backfilling: funnel.backfilling,
                hits: vec![hit],
            }),
        }
    }

    /// A click on `selector` in the pageview `page_id` of `path`.
    pub fn add_click(&mut self, page_id: &str, path: &str, selector: &str, text: Option<&str>) {
        let mark = shared::rollup::sketch::visitor_hash64(&format!("{page_id}\u{1f}{selector}"));
        if self.clicks.iter().any(|c| c.mark == mark) {
            return;
        }
        self.clicks.push(Click { mark, path: path.into(), selector: selector.into(), text: text.map(str::to_string) });
    }

    /// True when these facts cannot change any session (nothing to read or write).
    pub fn is_empty(&self) -> bool {
        self.start.is_none()
            && self.pageviews == 0
            && !self.interacted
            && self.goals.is_empty()
            && self.clicks.is_empty()
            && self.funnels.is_empty()
            && self.revenue.is_empty()
    }
}

/// The most pageviews of one batch whose paths the facts keep (a batch holds at most 50 events).
const MAX_BATCH_PAGES: usize = 50;
/// Revenue a session keeps while its first pageview is unknown (its attribution).
const MAX_PENDING_REVENUE: usize = 16;

/// A session's state change, as it counts in the rollups (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum Effect {
    Engaged {
        start: Start,
    },
    Converted {
        #[serde(with = "bucket_serde::day")]
        day: Bucket,
        #[serde(with = "bucket_serde::hour")]
        hour: Bucket,
    },
    Attributed {
        #[serde(with = "bucket_serde::day")]
        day: Bucket,
        #[serde(with = "bucket_serde::hour")]
        hour: Bucket,
        start: Start,
    },
    Goal {
        #[serde(with = "bucket_serde::day")]
        day: Bucket,
        #[serde(with = "bucket_serde::hour")]
        hour: Bucket,
        goal: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entry: Option<String>,
    },
    GoalEntry {
        #[serde(with = "bucket_serde::day")]
        day: Bucket,
        #[serde(with = "bucket_serde::hour")]
        hour: Bucket,
        goal: String,
        entry: String,
    },
    /// The pageview's first click on `selector` (v3): one more clicker of it.
    Clicker {
        #[serde(with = "bucket_serde::day")]
        day: Bucket,
        #[serde(with = "bucket_serde::hour")]
        hour: Bucket,
        path: String,
        selector: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// The session reached `step` (from 1) of `funnel`; counted in the buckets of its first
    /// step.
    FunnelStep {
        #[serde(with = "bucket_serde::day")]
        day: Bucket,
        #[serde(with = "bucket_serde::hour")]
        hour: Bucket,
        funnel: String,
        step: u8,
    },
    /// Revenue of the session's events (v3), for its source, campaign, medium and variant.
    Revenue {
        #[serde(with = "bucket_serde::day")]
        day: Bucket,
        #[serde(with = "bucket_serde::hour")]
        hour: Bucket,
        start: Start,
        currency: String,
        milli: u64,
    },
    /// The session's first goal completion came `bucket` ([`shared::rollup::detail::TTC_BUCKETS`])
    /// after its first pageview (v3).
    TimeToConversion {
        #[serde(with = "bucket_serde::day")]
        day: Bucket,
        #[serde(with = "bucket_serde::hour")]
        hour: Bucket,
        start: Start,
        bucket: u8,
    },
    /// A pageview of `path` was followed by another of its session: not an exit (v3).
    Continued {
        #[serde(with = "bucket_serde::day")]
        day: Bucket,
        #[serde(with = "bucket_serde::hour")]
        hour: Bucket,
        path: String,
    },
}

/// The session's first goal completion (v3), kept until its time to conversion is counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirstGoal {
    pub ts: i64,
    #[serde(with = "bucket_serde::day")]
    pub day: Bucket,
    #[serde(with = "bucket_serde::hour")]
    pub hour: Bucket,
    pub counted: bool,
}

/// Revenue that arrived before the session's first pageview, kept until its attribution is
/// known (v3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRevenue {
    #[serde(with = "bucket_serde::day")]
    pub day: Bucket,
    #[serde(with = "bucket_serde::hour")]
    pub hour: Bucket,
    pub currency: String,
    pub milli: u64,
}

/// A goal the session completed on a day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoalDone {
    #[serde(with = "bucket_serde::day")]
    pub day: Bucket,
    #[serde(with = "bucket_serde::hour")]
    pub hour: Bucket,
    pub goal: String,
    /// Counted for the entry page yet (false while the start is unknown).
    pub attributed: bool,
}

/// A day on which the session converted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversion {
    #[serde(with = "bucket_serde::day")]
    pub day: Bucket,
    #[serde(with = "bucket_serde::hour")]
    pub hour: Bucket,
    /// Counted for the session's attributes yet (false while its start is unknown).
    pub attributed: bool,
}

/// What is known of a session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Start>,
    /// Pageviews seen, up to 2 (more change nothing).
    pub pageviews: u32,
    /// No bounce.
    pub engaged: bool,
    /// The engagement counted in the rollups (needs the start).
    pub engaged_counted: bool,
    pub conversions: Vec<Conversion>,
    /// Goal completions counted, at most one per goal and day.
    pub goals: Vec<GoalDone>,
    /// The latest [`MAX_CLICKED`] (pageview, element) pairs clicked (v3; [`Click::mark`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clicked: Vec<i64>,
    /// Receive time (ms) of the session's first batch; absent on documents written before
    /// funnels, which count as first seen before any funnel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_ms: Option<i64>,
    /// Progress along funnels (v3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub funnels: Vec<FunnelState>,
    /// The path of the latest pageview: the session's exit page so far (v3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_path: Option<String>,
    /// Its event time (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ts: Option<i64>,
    /// The first goal completion (v3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_goal: Option<FirstGoal>,
    /// Revenue waiting for the start (v3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_revenue: Vec<PendingRevenue>,
}

/// The time-to-conversion effect of the first goal completion, once the start is known.
fn time_to_conversion(state: &mut SessionState, effects: &mut Vec<Effect>) {
    let (Some(start), Some(first)) = (&state.start, &mut state.first_goal) else { return };
    let Some(from) = start.ts else { return };
    if first.counted {
        return;
    }
    first.counted = true;
    let bucket = shared::rollup::detail::ttc_bucket(first.ts - from) as u8;
    effects.push(Effect::TimeToConversion { day: first.day, hour: first.hour, start: start.clone(), bucket });
}

/// Applies the facts of a session's batches (oldest first) to its state; returns the effects.
pub fn transition(state: &mut SessionState, facts: &[&SessionFacts]) -> Vec<Effect> {
    let mut effects = Vec::new();
    for f in facts {
        if state.start.is_none()
            && let Some(start) = &f.start
        {
            state.start = Some(start.clone());
            for c in state.conversions.iter_mut().filter(|c| !c.attributed) {
                c.attributed = true;
                effects.push(Effect::Attributed { day: c.day, hour: c.hour, start: start.clone() });
            }
            for g in state.goals.iter_mut().filter(|g| !g.attributed) {
                g.attributed = true;
                effects.push(Effect::GoalEntry {
                    day: g.day,
                    hour: g.hour,
                    goal: g.goal.clone(),
                    entry: start.path.clone(),
                });
            }
            for r in std::mem::take(&mut state.pending_revenue) {
                effects.push(Effect::Revenue {
                    day: r.day,
                    hour: r.hour,
                    start: start.clone(),
                    currency: r.currency,
                    milli: r.milli,
                });
            }
            time_to_conversion(state, &mut effects);
        }
        state.pageviews = (state.pageviews + f.pageviews).min(2);
        state.engaged |= f.interacted || state.pageviews >= 2;
        if state.engaged
            && !state.engaged_counted
            && let Some(start) = &state.start
        {
            state.engaged_counted = true;
            effects.push(Effect::Engaged { start: start.clone() });
        }
        let (day, hour) = (f.buckets.day, f.buckets.hour);
        // Every pageview but the latest by event time was followed by another: each is
        // counted `Continued` once, when a later one arrives or, arriving late, at once.
        for (path, ts) in &f.pages {
            let continued = match (&state.last_path, state.last_ts) {
                (Some(_), Some(last)) if *ts < last => path.clone(),
                (Some(prev), _) => {
                    let prev = prev.clone();
                    state.last_path = Some(path.clone());
                    state.last_ts = Some(*ts);
                    prev
                }
                (None, _) => {
                    state.last_path = Some(path.clone());
                    state.last_ts = Some(*ts);
                    continue;
                }
            };
            effects.push(Effect::Continued { day, hour, path: continued });
        }
        for (currency, milli) in &f.revenue {
            match &state.start {
                Some(start) => effects.push(Effect::Revenue {
                    day,
                    hour,
                    start: start.clone(),
                    currency: currency.clone(),
                    milli: *milli,
                }),
                None if state.pending_revenue.len() < MAX_PENDING_REVENUE => {
                    state.pending_revenue.push(PendingRevenue { day, hour, currency: currency.clone(), milli: *milli });
                }
                None => {}
            }
        }
        if let (None, Some(ts)) = (&state.first_goal, f.goal_ts) {
            state.first_goal = Some(FirstGoal { ts, day, hour, counted: false });
            time_to_conversion(state, &mut effects);
        }
        for c in &f.clicks {
            // Stored as i64: BSON has no unsigned integers.
            let mark = c.mark as i64;
            if state.clicked.contains(&mark) {
                continue;
            }
            if state.clicked.len() >= MAX_CLICKED {
                state.clicked.remove(0);
            }
            state.clicked.push(mark);
            effects.push(Effect::Clicker {
                day,
                hour,
                path: c.path.clone(),
                selector: c.selector.clone(),
                text: c.text.clone(),
            });
        }
        for ff in &f.funnels {
            advance_funnel(state, ff, &mut effects);
        }
        for goal in &f.goals {
            if state.goals.iter().any(|g| g.day == day && g.goal == *goal) || state.goals.len() >= MAX_GOALS {
                continue;
            }
            let entry = state.start.as_ref().map(|s| s.path.clone());
            state.goals.push(GoalDone { day, hour, goal: goal.clone(), attributed: entry.is_some() });
            effects.push(Effect::Goal { day, hour, goal: goal.clone(), entry });
            if !state.conversions.iter().any(|c| c.day == day) && state.conversions.len() < MAX_DAYS {
                let attributed = state.start.is_some();
                state.conversions.push(Conversion { day, hour, attributed });
                effects.push(Effect::Converted { day, hour });
                if let Some(start) = &state.start {
                    effects.push(Effect::Attributed { day, hour, start: start.clone() });
                }
            }
        }
    }
    effects
}

/// One batch's hits of one funnel: counted, or kept pending while the funnel's backfill still
/// has to merge the session's events from before the funnel existed ([`FunnelState`]).
fn advance_funnel(state: &mut SessionState, ff: &FunnelFacts, effects: &mut Vec<Effect>) {
    let straddles = state.first_ms.unwrap_or(0) < ff.created_ms;
    let at = match state.funnels.iter().position(|s| s.id == ff.id) {
        Some(at) => at,
        None if state.funnels.len() >= MAX_FUNNELS => return,
        None => {
            state.funnels.push(FunnelState { id: ff.id.clone(), p: None, pending: Vec::new(), resolved: !straddles });
            state.funnels.len() - 1
        }
    };
    let st = &mut state.funnels[at];
    if !st.resolved {
        if ff.backfilling {
            let room = MAX_PENDING.saturating_sub(st.pending.len());
            st.pending.extend(ff.hits.iter().take(room));
            return;
        }
        // The backfill is over and did not resolve this session: it had no step before the
        // funnel existed, so what was kept pending starts from nothing.
        st.resolved = true;
        let pending = std::mem::take(&mut st.pending);
        st.advance(ff.steps, &pending, effects);
    }
    st.advance(ff.steps, &ff.hits, effects);
}

/// A session's document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionDoc {
    /// `site|session_id`.
    #[serde(rename = "_id")]
    pub id: String,
    pub site_id: String,
    pub rev: i64,
    pub applied: BTreeMap<String, Watermark>,
    /// The effects of each instance's latest flush here (the one its watermark names).
    pub effects: BTreeMap<String, Vec<Effect>>,
    /// Two days after the session was first seen.
    pub expire_at: DateTime,
    pub state: SessionState,
}

impl SessionDoc {
    pub fn id_of(site_id: &str, session_id: &str) -> String {
        format!("{site_id}|{session_id}")
    }
}

/// Serde forms of day and hour buckets: `YYYY-MM-DD`, epoch seconds.
mod bucket_serde {
    pub mod day {
        use serde::{Deserialize, Deserializer, Serializer, de::Error};
        use shared::{rollup::Bucket, time};

        pub fn serialize<S: Serializer>(b: &Bucket, s: S) -> Result<S::Ok, S::Error> {
            match b {
                Bucket::Day(d) => s.serialize_str(&time::day_string(*d)),
                other => Err(serde::ser::Error::custom(format!("{other:?} is not a day"))),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bucket, D::Error> {
            let raw = String::deserialize(d)?;
            time::parse_day(&raw).map(Bucket::Day).ok_or_else(|| D::Error::custom(format!("{raw:?} is not a day")))
        }
    }

    pub mod hour {
        use serde::{Deserialize, Deserializer, Serializer};
        use shared::rollup::Bucket;

        pub fn serialize<S: Serializer>(b: &Bucket, s: S) -> Result<S::Ok, S::Error> {
            match b {
                Bucket::Hour(h) => s.serialize_i64(*h),
                other => Err(serde::ser::Error::custom(format!("{other:?} is not an hour"))),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bucket, D::Error> {
            i64::deserialize(d).map(Bucket::Hour)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::time;

    fn buckets(day: &str, hour: i64) -> Buckets {
        Buckets {
            day: Bucket::Day(time::parse_day(day).expect("day")),
            hour: Bucket::Hour(hour),
            minute: Bucket::Minute(hour),
        }
    }

    fn start(day: &str) -> Start {
        Start {
            day: Bucket::Day(time::parse_day(day).expect("day")),
            hour: Bucket::Hour(10),
            path: "/".into(),
            source: "google.com".into(),
            campaign: Some("spring".into()),
            medium: None,
            variant: None,
            device: String::new(),
            browser: String::new(),
            os: String::new(),
            country: String::new(),
            ts: Some(0),
        }
    }

    fn facts(day: &str, start_: Option<Start>, pageviews: u32, interacted: bool, goals: &[&str]) -> SessionFacts {
        SessionFacts {
            site_id: "s".into(),
            session_id: "sess".into(),
            received_at: 0,
            buckets: buckets(day, 10),
            start: start_,
            pageviews,
            interacted,
            goals: goals.iter().map(|g| g.to_string()).collect(),
            clicks: Vec::new(),
            funnels: Vec::new(),
            pages: Vec::new(),
            goal_ts: None,
            revenue: Vec::new(),
        }
    }

    fn kinds(effects: &[Effect]) -> Vec<&'static str> {
        effects
            .iter()
            .map(|e| match e {
                Effect::Engaged { .. } => "engaged",
                Effect::Converted { .. } => "converted",
                Effect::Attributed { .. } => "attributed",
                Effect::Goal { .. } => "goal",
                Effect::GoalEntry { .. } => "goal entry",
                Effect::Clicker { .. } => "clicker",
                Effect::FunnelStep { .. } => "funnel step",
                Effect::Revenue { .. } => "revenue",
                Effect::TimeToConversion { .. } => "time to conversion",
                Effect::Continued { .. } => "continued",
            })
            .collect()
    }

    #[test]
    fn a_pageview_clicks_an_element_once_across_batches() {
        let mut state = SessionState::default();
        let mut first = facts("2025-11-25", None, 1, true, &[]);
        first.add_click("page_1", "/", "a#buy", Some("Buy"));
        first.add_click("page_1", "/", "a#buy", Some("Buy"));
        first.add_click("page_1", "/", "a#faq", None);
        assert_eq!(first.clicks.len(), 2, "a batch keeps each pair once");
        let mut again = facts("2025-11-25", None, 0, true, &[]);
        again.add_click("page_1", "/", "a#buy", None);
        again.add_click("page_2", "/", "a#buy", None);
        let effects = transition(&mut state, &[&first, &again]);
        let clicked: Vec<(&str, &str)> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Clicker { path, selector, .. } => Some((path.as_str(), selector.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(clicked, vec![("/", "a#buy"), ("/", "a#faq"), ("/", "a#buy")]);
        assert!(transition(&mut state, &[&again]).iter().all(|e| !matches!(e, Effect::Clicker { .. })), "already counted");

        // The session remembers the latest pairs only, so its document stays bounded.
        let mut many = facts("2025-11-25", None, 0, true, &[]);
        (0..200).for_each(|i| many.add_click(&format!("later_{i}"), "/", "a#buy", None));
        assert_eq!(transition(&mut state, &[&many]).len(), 200);
        assert_eq!(state.clicked.len(), MAX_CLICKED);
    }

    #[test]
    fn bounce_rule_one_pageview_and_nothing_else() {
        let cases: [(&str, Vec<SessionFacts>, bool); 5] = [
            ("one pageview", vec![facts("2026-11-25", Some(start("2026-11-25")), 1, false, &[])], false),
            ("two pageviews in one batch", vec![facts("2026-11-25", Some(start("2026-11-25")), 2, false, &[])], true),
            (
                "a second pageview later",
                vec![
                    facts("2026-11-25", Some(start("2026-11-25")), 1, false, &[]),
                    facts("2026-11-25", None, 1, false, &[]),
                ],
                true,
            ),
            ("a click", vec![facts("2026-11-25", Some(start("2026-11-25")), 1, true, &[])], true),
            (
                "engaged before the start arrived",
                vec![facts("2026-11-25", None, 0, true, &[]), facts("2026-11-25", Some(start("2026-11-25")), 1, false, &[])],
                true,
            ),
        ];
        for (case, batches, engaged) in cases {
            let mut state = SessionState::default();
            let refs: Vec<&SessionFacts> = batches.iter().collect();
            let effects = transition(&mut state, &refs);
            assert_eq!(kinds(&effects).contains(&"engaged"), engaged, "case {case}");
            if engaged {
                // More batches never count the engagement twice.
                let again = transition(&mut state, &refs);
                assert!(!kinds(&again).contains(&"engaged"), "case {case}: once");
            }
        }
    }

    #[test]
    fn a_goal_converts_once_per_day_attributed_to_the_first_pageview() {
        let mut state = SessionState::default();
        let first = facts("2026-11-25", Some(start("2026-11-25")), 1, false, &["g1"]);
        let effects = transition(&mut state, &[&first]);
        assert_eq!(kinds(&effects), vec!["goal", "converted", "attributed"]);
        // The same goal again that day, and a later landing with another source: nothing new.
        let mut other_source = start("2026-11-25");
        other_source.source = "bing.com".into();
        let again = facts("2026-11-25", Some(other_source), 1, false, &["g1"]);
        assert_eq!(kinds(&transition(&mut state, &[&again])), vec!["engaged"]);
        // A second goal the same day: a goal, no second conversion.
        assert_eq!(kinds(&transition(&mut state, &[&facts("2026-11-25", None, 0, false, &["g2"])])), vec!["goal"]);
        // The next day converts again, still for the first source.
        let next = transition(&mut state, &[&facts("2026-11-26", None, 0, false, &["g1"])]);
        assert_eq!(kinds(&next), vec!["goal", "converted", "attributed"]);
        match &next[2] {
            Effect::Attributed { start, .. } => assert_eq!(start.source, "google.com"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_conversion_before_the_start_is_attributed_when_the_start_arrives() {
        let mut state = SessionState::default();
        let early = transition(&mut state, &[&facts("2026-11-25", None, 0, true, &["g1"])]);
        assert_eq!(kinds(&early), vec!["goal", "converted"], "no attribution yet, no engagement without a start");
        let late = transition(&mut state, &[&facts("2026-11-25", Some(start("2026-11-25")), 1, false, &[])]);
        assert_eq!(kinds(&late), vec!["attributed", "goal entry", "engaged"]);
        assert!(transition(&mut state, &[&facts("2026-11-25", Some(start("2026-11-25")), 1, false, &[])]).is_empty());
    }

    fn hits(f: &mut SessionFacts, created_ms: i64, backfilling: bool, masks: &[(u8, i64)]) {
        let funnel = FunnelDoc {
            id: "f1".into(),
            name: "F".into(),
            steps: vec![shared::funnel::FunnelStep { kind: shared::goal::GoalKind::Event, matcher: "a".into() }; 3],
            created_ms,
            deleted_ms: None,
            backfilling,
        };
        for (mask, ts) in masks {
            f.add_funnel_hit(&funnel, *mask, *ts);
        }
    }

    fn steps(effects: &[Effect]) -> Vec<u8> {
        effects.iter().filter_map(|e| if let Effect::FunnelStep { step, .. } = e { Some(*step) } else { None }).collect()
    }

    #[test]
    fn a_session_advances_along_a_funnel_once_across_batches() {
        let mut state = SessionState { first_ms: Some(100), ..SessionState::default() };
        let mut a = facts("2026-11-25", None, 1, false, &[]);
        // Step 2 before step 1 counts nothing; then 1 and 2.
        hits(&mut a, 50, false, &[(0b010, 1), (0b001, 2), (0b010, 3)]);
        assert_eq!(steps(&transition(&mut state, &[&a])), vec![1, 2]);
        let mut b = facts("2026-11-26", None, 1, false, &[]);
        hits(&mut b, 50, false, &[(0b001, 4), (0b100, 5), (0b100, 6)]);
        let fx = transition(&mut state, &[&b]);
        assert_eq!(steps(&fx), vec![3]);
        match &fx[0] {
            Effect::FunnelStep { day, .. } => assert_eq!(*day, Bucket::Day(time::parse_day("2026-11-25").expect("day"))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_session_older_than_a_backfilling_funnel_keeps_its_hits_pending() {
        let mut state = SessionState { first_ms: Some(100), ..SessionState::default() };
        let mut during = facts("2026-11-25", None, 1, false, &[]);
        hits(&mut during, 200, true, &[(0b001, 1), (0b010, 2)]);
        assert!(steps(&transition(&mut state, &[&during])).is_empty(), "the backfill counts it");
        assert_eq!(state.funnels[0].pending.len(), 2);
        assert!(!state.funnels[0].resolved);
        // The backfill ended without resolving this session (nothing before the funnel): the
        // pending hits count with the next batch.
        let mut after = facts("2026-11-25", None, 1, false, &[]);
        hits(&mut after, 200, false, &[(0b100, 3)]);
        assert_eq!(steps(&transition(&mut state, &[&after])), vec![1, 2, 3]);
        assert!(state.funnels[0].resolved && state.funnels[0].pending.is_empty());

        // A session first seen after the funnel counts at once.
        let mut young = SessionState { first_ms: Some(300), ..SessionState::default() };
        let mut f = facts("2026-11-25", None, 1, false, &[]);
        hits(&mut f, 200, true, &[(0b001, 1)]);
        assert_eq!(steps(&transition(&mut young, &[&f])), vec![1]);
    }

    #[test]
    fn revenue_waits_for_the_start_and_the_first_goal_times_the_conversion() {
        let mut state = SessionState::default();
        // Out of order: the purchase (goal at 95 s, 12.5 EUR) arrives before the first pageview.
        let mut buy = facts("2026-11-25", None, 1, true, &["g1"]);
        buy.goal_ts = Some(95_000);
        buy.revenue = vec![("EUR".into(), 12_500)];
        buy.pages = vec![("/checkout".into(), 90_000)];
        let fx = transition(&mut state, &[&buy]);
        assert!(!kinds(&fx).contains(&"revenue") && !kinds(&fx).contains(&"time to conversion"), "{fx:?}");
        assert_eq!(state.pending_revenue.len(), 1);

        let mut first = facts("2026-11-25", Some(start("2026-11-25")), 1, false, &[]);
        first.pages = vec![("/".into(), 0), ("/pricing".into(), 100_000)];
        let fx = transition(&mut state, &[&first]);
        let revenue: Vec<(&str, u64)> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::Revenue { currency, milli, .. } => Some((currency.as_str(), *milli)),
                _ => None,
            })
            .collect();
        assert_eq!(revenue, vec![("EUR", 12_500)]);
        let ttc: Vec<u8> = fx
            .iter()
            .filter_map(|e| if let Effect::TimeToConversion { bucket, .. } = e { Some(*bucket) } else { None })
            .collect();
        assert_eq!(ttc, vec![3], "95 s after the first pageview (ts 0): 1-5m");
        // By event time: / (0 s, arriving late) was followed by /checkout (90 s), which was
        // followed by /pricing (100 s), the exit.
        let continued: Vec<&str> = fx
            .iter()
            .filter_map(|e| if let Effect::Continued { path, .. } = e { Some(path.as_str()) } else { None })
            .collect();
        assert_eq!(continued, vec!["/", "/checkout"]);
        assert_eq!(state.last_path.as_deref(), Some("/pricing"));

        // A second goal later counts no second time to conversion.
        let mut again = facts("2026-11-25", None, 0, true, &["g2"]);
        again.goal_ts = Some(500_000);
        assert!(!kinds(&transition(&mut state, &[&again])).contains(&"time to conversion"));
    }

    #[test]
    fn state_and_effects_round_trip_through_bson() {
        let mut state = SessionState::default();
        let effects = transition(&mut state, &[&facts("2026-11-25", Some(start("2026-11-25")), 2, false, &["g1"])]);
        let doc = SessionDoc {
            id: SessionDoc::id_of("s", "sess"),
            site_id: "s".into(),
            rev: 1,
            applied: BTreeMap::new(),
            effects: [("inst".to_string(), effects)].into(),
            expire_at: DateTime::from_millis(0),
            state,
        };
        let back: SessionDoc = mongodb::bson::from_document(mongodb::bson::to_document(&doc).expect("bson")).expect("reads");
        assert_eq!(back, doc);
    }
}
