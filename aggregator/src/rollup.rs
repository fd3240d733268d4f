//! What batches add to the rollups: pure functions from [`BatchMessage`]s (and the session
//! effects of [`crate::sessions`]) to the increments of each rollup document, so the
//! arithmetic is unit-tested apart from MongoDB.
//!
//! Every batch is bucketed by its server receive time in the site's time zone, into a local
//! day and a local hour (and a minute, for the live view), and adds to the series unit and
//! the top-list units of each; all three belong to the site-day of that local day.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use chrono_tz::Tz;
use shared::{
    event::{Event, EventKind, FORM_ABANDON, FORM_START, FORM_SUBMIT, PropValue, ViewKind, revenue_of},
    funnel::FunnelDoc,
    goal::{GoalKind, path_matches},
    imports::{ImportedDay, VisitDim},
    message::BatchMessage,
    rollup::{
        Body, Bucket, Capacity, Counts, Dim, LiveMinute, Part, RollupKey, Series, TopDelta,
        attention::{self, Kind},
        detail, filter_key, filter_kind, funnel_key, page_attr_key, sketch,
        toplist::page_ext,
    },
    site_config::GoalDoc,
    time, urls,
};

use crate::{
    buckets::{Buckets, buckets_of},
    sessions::{Effect, SessionFacts, Start},
};

/// Scroll depths whose reach is counted for the scroll distribution.
pub const MILESTONES: [u8; 4] = [25, 50, 75, 100];
/// A scroll past this depth makes a session not a bounce.
pub const ENGAGING_DEPTH: u8 = 25;

/// How much a top list may hold, for day and for hour buckets.
#[derive(Debug, Clone, Copy)]
pub struct Capacities {
    pub day: Capacity,
    pub hour: Capacity,
}

impl Capacities {
    /// `keys` per list; 512 KiB of keys and texts; fold filters of 32 KiB a day and 16 KiB an
    /// hour, which keep false "folded" answers under 1 % up to about 25,000 and 12,000
    /// folded keys (see `shared::rollup::toplist`).
    pub fn with_keys(day_keys: usize, hour_keys: usize) -> Self {
        Self {
            day: Capacity { keys: day_keys, bytes: 512 * 1024, filter_bits_log2: 18 },
            hour: Capacity { keys: hour_keys, bytes: 512 * 1024, filter_bits_log2: 17 },
        }
    }

    /// The capacity of one list. Page breakdowns and attention hold several keys per page (its
    /// sources, clicks, events, …; its sections, CTAs, forms, map cells), so they get four
    /// times the keys and bytes.
    pub fn of(&self, bucket: &Bucket, part: Part) -> Capacity {
        let base = if bucket.is_day() { self.day } else { self.hour };
        match part {
            Part::Top(Dim::PageAttr | Dim::Attention | Dim::Filter | Dim::Detail) => {
                Capacity { keys: base.keys * 4, bytes: base.bytes * 4, ..base }
            }
            _ => base,
        }
    }
}

/// What a flush adds to one document.
#[derive(Debug, Clone, PartialEq)]
pub enum DocDelta {
    /// Counters, and (hours) the visitors seen.
    Series {
        counters: Series,
        visitors: Vec<u64>,
    },
    Top(BTreeMap<String, TopDelta>),
    Live(LiveMinute),
}

impl DocDelta {
    fn empty(part: Part) -> Self {
        match part {
            Part::Series => Self::Series { counters: Series::default(), visitors: Vec::new() },
            Part::Top(_) => Self::Top(BTreeMap::new()),
            Part::Live => Self::Live(LiveMinute::default()),
        }
    }

    /// Adds this delta to a document's body (of the same part).
    pub fn apply(&self, body: &mut Body, cap: &Capacity) {
        match (self, body) {
            (Self::Series { counters, visitors }, Body::Series { counters: into, visitors: sketch }) => {
                into.add(counters);
                if let Some(sketch) = sketch {
                    visitors.iter().for_each(|&h| sketch.insert(h));
                }
            }
            (Self::Top(deltas), Body::Top(list)) => list.apply(deltas, cap),
            (Self::Live(minute), Body::Live(into)) => into.merge(minute),
            // Keys carry the part, so a delta never meets the body of another part.
            _ => debug_assert!(false, "delta and body of different parts"),
        }
    }
}

/// Everything a flush adds, by unit.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlushDeltas {
    pub docs: BTreeMap<RollupKey, DocDelta>,
}

/// The site-day of a day bucket. (Only day buckets are passed as the day of a pair; an hour or
/// a minute would fall back to its UTC date.)
fn site_day(day: Bucket) -> NaiveDate {
    match day {
        Bucket::Day(d) => d,
        Bucket::Hour(s) | Bucket::Minute(s) => time::local_day(s * 1000, Tz::UTC),
    }
}

fn one(n: u64) -> Counts {
    Counts::of(n)
}

fn ext(i: usize, v: u64) -> Counts {
    let mut c = Counts::default();
    c.ext[i] = v;
    c
}

impl FlushDeltas {
    /// The delta of unit `part` of `bucket`, held by the site-day of the day bucket `day`.
    fn entry(&mut self, site: &str, day: Bucket, bucket: Bucket, part: Part) -> &mut DocDelta {
        self.docs.entry(RollupKey::new(site, site_day(day), bucket, part)).or_insert_with(|| DocDelta::empty(part))
    }

    fn series(&mut self, site: &str, day: Bucket, bucket: Bucket) -> (&mut Series, &mut Vec<u64>) {
        match self.entry(site, day, bucket, Part::Series) {
            DocDelta::Series { counters, visitors } => (counters, visitors),
            _ => unreachable!("series key holds a series delta"),
        }
    }

    /// Adds `counts` (and a text) to `key` of a dimension's list, in both stats buckets (a day
    /// and one of its hours).
    fn top(&mut self, site: &str, buckets: [Bucket; 2], dim: Dim, key: &str, counts: Counts, text: Option<&str>) {
        for bucket in buckets {
            match self.entry(site, buckets[0], bucket, Part::Top(dim)) {
                DocDelta::Top(t) => t.entry(key.to_string()).or_default().add(counts, text),
                _ => unreachable!("top key holds a top delta"),
            }
        }
    }

    fn page_attr(
        &mut self,
        site: &str,
        buckets: [Bucket; 2],
        path: &str,
        (kind, name): (Dim, &str),
        counts: Counts,
        text: Option<&str>,
    ) {
        self.top(site, buckets, Dim::PageAttr, &page_attr_key(path, kind, name), counts, text);
    }

    /// Adds `counts` (and a text) to the attention entry `kind` `name` of the page `path`.
    fn attention(
        &mut self,
        site: &str,
        buckets: [Bucket; 2],
        path: &str,
        (kind, name): (Kind, &str),
        counts: Counts,
        text: Option<&str>,
    ) {
        self.top(site, buckets, Dim::Attention, &attention::key(path, kind, name), counts, text);
    }

    /// Adds what `msg` says by itself (its day's and pages' new visitors excluded: see
    /// [`Self::add_new_visitor`], [`Self::add_page_visitor`]); returns what its session learns
    /// from it, for [`crate::sessions`]. `goals` are the site's goals.
    pub fn add_batch(&mut self, msg: &BatchMessage, goals: &[&GoalDoc]) -> SessionFacts {
        self.add_batch_with(msg, goals, &[])
    }

    /// [`Self::add_batch`], with the site's funnels too: the facts then say which events
    /// matched which steps of the funnels that apply to the batch.
    pub fn add_batch_with(&mut self, msg: &BatchMessage, goals: &[&GoalDoc], funnels: &[&FunnelDoc]) -> SessionFacts {
        let b = buckets_of(msg);
        let site = msg.site_id.as_str();
        let visitor = sketch::visitor_hash64(&msg.visitor);
        let mut counters = Series::default();
        let mut facts = SessionFacts::new(msg, b);
        for ev in &msg.events {
            let path = urls::page_path(&ev.url);
            if !matches!(ev.kind, EventKind::Pageview { .. })
                && let DocDelta::Live(m) = self.entry(site, b.day, b.minute, Part::Live)
            {
                m.add_visit(&path, visitor);
            }
            match &ev.kind {
                EventKind::Pageview { referrer, new_session, variant, .. } => {
                    counters.pageviews += 1;
                    facts.pageviews += 1;
                    facts.add_page(&path, ev.ts);
                    self.top(site, b.stats(), Dim::Page, &path, one(1), None);
                    if let DocDelta::Live(m) = self.entry(site, b.day, b.minute, Part::Live) {
                        m.add_pageview(&path, visitor);
                    }
                    if *new_session {
                        counters.sessions += 1;
                        counters.started += 1;
                        let start = self.add_session_start(msg, b, ev, &path, referrer, variant.as_deref());
                        facts.start.get_or_insert(start);
                    }
                }
                EventKind::Scroll { depth, prev } => {
                    let mut page = ext(page_ext::SCROLL_SUM, u64::from(depth - prev));
                    counters.scroll_sum += i64::from(depth - prev);
                    for (slot, m) in MILESTONES.iter().enumerate() {
                        if prev < m && m <= depth {
                            counters.reached[slot] += 1;
                            page.ext[page_ext::REACHED + slot] += 1;
                        }
                    }
                    self.top(site, b.stats(), Dim::Page, &path, page, None);
                    facts.interacted |= *depth > ENGAGING_DEPTH;
                    let mut halves = [Counts::default(); 2];
                    for bin in attention::bins_reached(*prev, *depth) {
                        let half = &mut halves[bin / attention::BINS_PER_ENTRY];
                        half.n += 1;
                        half.ext[bin % attention::BINS_PER_ENTRY] += 1;
                    }
                    for (i, half) in halves.into_iter().enumerate().filter(|(_, h)| h.n > 0) {
                        self.attention(site, b.stats(), &path, (Kind::Scroll, ["0", "1"][i]), half, None);
                    }
                }
                EventKind::Click { selector, text, marks, .. } => {
                    counters.clicks += 1;
                    let text = Some(text.trim());
                    self.top(site, b.stats(), Dim::Click, selector, one(1), text);
                    self.top(site, b.stats(), Dim::Page, &path, ext(page_ext::CLICKS, 1), None);
                    self.page_attr(site, b.stats(), &path, (Dim::Click, selector), one(1), text);
                    facts.interacted = true;
                    facts.add_click(ev.page_id.as_str(), &path, selector, text.filter(|t| !t.is_empty()));
                    if let (Some(x), Some(y)) = (marks.x, marks.y) {
                        let (col, row) = attention::cell_of(x, y);
                        self.attention(site, b.stats(), &path, (Kind::Cell, &attention::cell_name(col, row)), one(1), None);
                    }
                    for (flag, kind) in [(marks.rage, Kind::Rage), (marks.dead, Kind::Dead)] {
                        if flag {
                            self.attention(site, b.stats(), &path, (kind, selector), one(1), None);
                        }
                    }
                }
                EventKind::Time { seconds } => {
                    counters.time_sum += seconds;
                    self.top(
                        site,
                        b.stats(),
                        Dim::Page,
                        &path,
                        ext(page_ext::TIME_MS, (seconds * 1000.0).round() as u64),
                        None,
                    );
                }
                EventKind::Event { name, props } => {
                    self.top(site, b.stats(), Dim::Event, name, one(1), None);
                    self.page_attr(site, b.stats(), &path, (Dim::Event, name), one(1), None);
                    facts.interacted = true;
                    self.add_form_event(site, b.stats(), &path, name, props);
                    self.add_props(site, b.stats(), name, props);
                    if let Some((currency, milli)) = revenue_of(props, &msg.currency) {
                        let key = detail::key(detail::REVENUE, detail::ALL, "", currency);
                        self.top(site, b.stats(), Dim::Detail, &key, one(milli), None);
                        for goal in goals.iter().filter(|g| g.applies_at(msg.received_at) && matches_goal(g, ev, &path)) {
                            let key = detail::key(detail::REVENUE, detail::GOAL, &goal.id, currency);
                            self.top(site, b.stats(), Dim::Detail, &key, one(milli), None);
                        }
                        facts.add_revenue(currency, milli);
                    }
                }
                // Seeing is not engaging: a view changes no counter of v2, only the page's
                // attention.
                EventKind::View { kind: ViewKind::Section, name, order, seen, ms } => {
                    let mut c = ext(attention::VISIBLE_MS, u64::from(*ms));
                    c.n = u64::from(*seen);
                    // Zero-padded, so the greatest text a merge keeps is the highest order.
                    let order = order.map(|o| format!("{o:02}"));
                    self.attention(site, b.stats(), &path, (Kind::Section, name), c, order.as_deref());
                }
                EventKind::View { kind: ViewKind::Cta, name, seen, .. } => {
                    if *seen {
                        let mut c = ext(attention::VIEWERS, 1);
                        c.n = 1;
                        self.attention(site, b.stats(), &path, (Kind::Cta, name), c, None);
                    }
                }
            }
            for goal in goals.iter().filter(|g| g.applies_at(msg.received_at) && matches_goal(g, ev, &path)) {
                if !facts.goals.contains(&goal.id) {
                    facts.goals.push(goal.id.clone());
                }
                facts.goal_ts = Some(facts.goal_ts.map_or(ev.ts, |t| t.min(ev.ts)));
            }
            for funnel in funnels.iter().filter(|f| f.applies_at(msg.received_at)) {
                let mask = funnel
                    .steps
                    .iter()
                    .enumerate()
                    .filter(|(_, step)| matches_rule(step.kind, &step.matcher, ev, &path))
                    .fold(0u8, |m, (i, _)| m | (1 << i));
                if mask != 0 {
                    facts.add_funnel_hit(funnel, mask, ev.ts);
                }
            }
        }
        for bucket in b.stats() {
            let (series, visitors) = self.series(site, b.day, bucket);
            series.add(&counters);
            if !bucket.is_day() {
                visitors.push(visitor);
            }
        }
        facts
    }

    /// A session starts: its source, campaign, medium, variant, device, browser, OS and
    /// country each count a visit, for the site and for its entry page.
    fn add_session_start(
        &mut self,
        msg: &BatchMessage,
        b: Buckets,
        ev: &Event,
        path: &str,
        referrer: &str,
        variant: Option<&str>,
    ) -> Start {
        let site = msg.site_id.as_str();
        let start = Start {
            day: b.day,
            hour: b.hour,
            path: path.to_string(),
            source: urls::referrer_source(&ev.url, referrer, &msg.domain),
            campaign: urls::utm(&ev.url, "utm_campaign"),
            medium: urls::utm(&ev.url, "utm_medium"),
            variant: variant.map(str::to_string),
            device: msg.device.as_str().to_string(),
            browser: msg.browser.as_str().to_string(),
            os: msg.os.as_str().to_string(),
            country: msg.country.as_str().to_string(),
            ts: Some(ev.ts),
        };
        self.top(site, b.stats(), Dim::Page, path, ext(page_ext::ENTRIES, 1), None);
        let audience = [
            (Dim::Device, msg.device.as_str()),
            (Dim::Browser, msg.browser.as_str()),
            (Dim::Os, msg.os.as_str()),
            (Dim::Country, msg.country.as_str()),
        ];
        for (dim, name) in start.attributes().into_iter().chain(audience) {
            self.top(site, b.stats(), dim, name, one(1), None);
            self.page_attr(site, b.stats(), path, (dim, name), one(1), None);
        }
        start
    }

    /// A form's start, submit or abandon (the reserved events `form_start`, `form_submit` and
    /// `form_abandon`, which name their form in `props.form`).
    fn add_form_event(
        &mut self,
        site: &str,
        buckets: [Bucket; 2],
        path: &str,
        name: &str,
        props: &BTreeMap<String, PropValue>,
    ) {
        let prop = |k: &str| match props.get(k) {
            Some(PropValue::String(v)) if !v.is_empty() => Some(v.as_str()),
            _ => None,
        };
        let slot = match name {
            FORM_START => attention::STARTS,
            FORM_SUBMIT => attention::SUBMITS,
            FORM_ABANDON => attention::ABANDONS,
            _ => return,
        };
        let Some(form) = prop("form") else { return };
        let mut c = ext(slot, 1);
        c.n = 1;
        self.attention(site, buckets, path, (Kind::Form, form), c, None);
        if name == FORM_ABANDON
            && let Some(field) = prop("field")
        {
            self.attention(site, buckets, path, (Kind::Abandon, &attention::abandon_name(form, field)), one(1), None);
        }
    }

    /// A custom event's properties (v3): one entry per key and value, read by
    /// `GET /api/stats/{id}/events/{name}`. Numbers and booleans as their JSON text.
    fn add_props(&mut self, site: &str, buckets: [Bucket; 2], name: &str, props: &BTreeMap<String, PropValue>) {
        for (key, value) in props {
            let text = match value {
                PropValue::String(s) => s.clone(),
                PropValue::Number(n) => n.to_string(),
                PropValue::Bool(b) => b.to_string(),
            };
            self.top(site, buckets, Dim::Detail, &detail::key(detail::PROP, name, key, &text), one(1), None);
        }
    }

    /// Adds `milli` of `currency` to each attribute of a session (`start`) and a time to
    /// conversion to the site and those attributes: the [`Dim::Detail`] entries of effects.
    fn add_detail(&mut self, buckets: [Bucket; 2], site: &str, start: &Start, kind: &str, last: &str, n: u64) {
        let mut scopes = vec![(detail::ALL, "")];
        scopes.extend(start.attributes().into_iter().map(|(dim, v)| (dim.as_str(), v)));
        for (scope, name) in scopes {
            // The site's revenue is counted from the events themselves (`add_batch`).
            if kind == detail::REVENUE && scope == detail::ALL {
                continue;
            }
            self.top(site, buckets, Dim::Detail, &detail::key(kind, scope, name, last), one(n), None);
        }
    }

    /// Adds an imported day (`shared::imports`) to the day units of `site` (the import's own
    /// site id): the series, the page list with each page's counters, and the lists of visits
    /// by source, campaign, medium, country, device, browser and OS, and of custom events.
    pub fn add_imported_day(&mut self, site: &str, date: NaiveDate, d: &ImportedDay) {
        let day = Bucket::Day(date);
        self.add_imported_series(site, day, date, d);
        self.add_imported_lists(site, day, d);
    }

    /// An imported day's series as an entry of the series list (`shared::imports::SERIES_DIM`)
    /// of its month unit (under the import's month site id, on the month's first day) or of a
    /// month suffix (under its suffix site id, on the suffix's first day): a long range reads
    /// a month's series in one list.
    pub fn add_imported_month_series(&mut self, site: &str, month: Bucket, d: &ImportedDay) {
        match self.entry(site, month, month, Part::Top(shared::imports::SERIES_DIM)) {
            DocDelta::Top(t) => t.entry(d.date.clone()).or_default().add(shared::imports::series_counts(d), None),
            _ => unreachable!("top key holds a top delta"),
        }
    }

    /// The series of an imported day `date` of `site`.
    fn add_imported_series(&mut self, site: &str, home: Bucket, date: NaiveDate, d: &ImportedDay) {
        let scroll: u64 = d.pages.iter().map(|p| p.scroll).sum();
        let s = self.series(site, home, Bucket::Day(date)).0;
        let n = |v: u64| v as i64;
        s.pageviews += n(d.pageviews);
        s.sessions += n(d.visits);
        s.started += n(d.visits);
        s.engaged += n(d.visits.saturating_sub(d.bounces));
        s.visitors += n(d.visitors);
        s.time_sum += d.visit_duration as f64;
        s.scroll_sum += n(scroll);
    }

    /// The lists of an imported day, added to the day unit `day` of `site`: the day's own,
    /// (under the import's month site id, on the month's first day) the whole month's, or
    /// (under its suffix site id) those of the month's days from `day` on.
    pub fn add_imported_lists(&mut self, site: &str, day: Bucket, d: &ImportedDay) {
        let mut list = |dim: Dim, key: &str, counts: Counts| match self.entry(site, day, day, Part::Top(dim)) {
            DocDelta::Top(t) => t.entry(key.to_string()).or_default().add(counts, None),
            _ => unreachable!("top key holds a top delta"),
        };
        for p in &d.pages {
            let mut c = Counts::of(p.pageviews);
            c.ext[page_ext::VISITORS] = p.visitors;
            c.ext[page_ext::SCROLL_SUM] = p.scroll;
            c.ext[page_ext::ENTRIES] = p.entrances;
            c.ext[page_ext::ENGAGED] = p.entrances.saturating_sub(p.bounces);
            c.ext[page_ext::CONTINUED] = p.pageviews.saturating_sub(p.exits);
            list(Dim::Page, &p.path, c);
        }
        for r in &d.named {
            let dim = match r.dim {
                VisitDim::Source => Dim::Source,
                VisitDim::Campaign => Dim::Campaign,
                VisitDim::Medium => Dim::Medium,
                VisitDim::Country => Dim::Country,
                VisitDim::Device => Dim::Device,
                VisitDim::Browser => Dim::Browser,
                VisitDim::Os => Dim::Os,
            };
            list(dim, &r.name, Counts::of(r.visits));
        }
        for (name, count) in &d.events {
            list(Dim::Event, name, Counts::of(*count));
        }
    }

    /// Counts one new distinct visitor of `site` on `day`.
    pub fn add_new_visitor(&mut self, site: &str, day: Bucket) {
        self.series(site, day, day).0.visitors += 1;
    }

    /// Counts one new distinct visitor of the page `path` in `bucket` (the day bucket `day` or
    /// one of its hours).
    pub fn add_page_visitor(&mut self, site: &str, day: Bucket, bucket: Bucket, path: &str) {
        match self.entry(site, day, bucket, Part::Top(Dim::Page)) {
            DocDelta::Top(t) => t.entry(path.to_string()).or_default().add(ext(page_ext::VISITORS, 1), None),
            _ => unreachable!("top key holds a top delta"),
        }
    }

    /// What `msg` adds under each filter value of its session (`start`, known once the
    /// session's first pageview is): its pageviews, clicks, scroll and time, its session start,
    /// and its pages.
    pub fn add_filtered(&mut self, msg: &BatchMessage, start: &Start) {
        let b = buckets_of(msg);
        let site = msg.site_id.as_str();
        let values = start.filter_values();
        // The batch's events summed first: one entry per value, whatever the batch holds.
        let mut all = Counts::default();
        let mut pages: Vec<String> = Vec::new();
        for ev in &msg.events {
            match &ev.kind {
                EventKind::Pageview { new_session, .. } => {
                    all.n += 1;
                    all.ext[page_ext::ENTRIES] += u64::from(*new_session);
                    // A session's visitor, once per session: what a filtered view calls
                    // visitors.
                    all.ext[page_ext::VISITORS] += u64::from(*new_session);
                    pages.push(urls::page_path(&ev.url));
                }
                EventKind::Click { .. } => all.ext[page_ext::CLICKS] += 1,
                EventKind::Scroll { depth, prev } => {
                    all.ext[page_ext::SCROLL_SUM] += u64::from(depth - prev);
                    for (slot, m) in MILESTONES.iter().enumerate() {
                        if prev < m && m <= depth {
                            all.ext[page_ext::REACHED + slot] += 1;
                        }
                    }
                }
                EventKind::Time { seconds } => all.ext[page_ext::TIME_MS] += (seconds * 1000.0).round() as u64,
                _ => {}
            }
        }
        if all == Counts::default() {
            return;
        }
        for (dim, value) in &values {
            self.top(site, b.stats(), Dim::Filter, &filter_key(dim, value, filter_kind::ALL, ""), all, None);
            for path in &pages {
                self.top(site, b.stats(), Dim::Filter, &filter_key(dim, value, filter_kind::PAGE, path), one(1), None);
            }
        }
    }

    /// What a session effect adds under the session's filter values (`start`).
    pub fn add_effect_filtered(&mut self, site: &str, start: &Start, effect: &Effect) {
        let (buckets, kind, name, counts) = match effect {
            Effect::Engaged { start } => ([start.day, start.hour], filter_kind::ALL, "", ext(page_ext::ENGAGED, 1)),
            Effect::Attributed { day, hour, .. } => {
                ([*day, *hour], filter_kind::ALL, "", Counts { conv: 1, ..Counts::default() })
            }
            Effect::Goal { day, hour, goal, entry: Some(_) } | Effect::GoalEntry { day, hour, goal, .. } => {
                ([*day, *hour], filter_kind::GOAL, goal.as_str(), one(1))
            }
            _ => return,
        };
        for (dim, value) in start.filter_values() {
            self.top(site, buckets, Dim::Filter, &filter_key(dim, value, kind, name), counts, None);
        }
    }

    /// Adds what a session's state change means for the rollups.
    pub fn add_effect(&mut self, site: &str, effect: &Effect) {
        match effect {
            Effect::Engaged { start } => {
                let buckets = [start.day, start.hour];
                for bucket in buckets {
                    self.series(site, start.day, bucket).0.engaged += 1;
                }
                self.top(site, buckets, Dim::Page, &start.path, ext(page_ext::ENGAGED, 1), None);
            }
            Effect::Converted { day, hour } => {
                for bucket in [*day, *hour] {
                    self.series(site, *day, bucket).0.conversions += 1;
                }
            }
            Effect::Attributed { day, hour, start } => {
                let conv = Counts { conv: 1, ..Counts::default() };
                let buckets = [*day, *hour];
                self.top(site, buckets, Dim::Page, &start.path, conv, None);
                for (dim, name) in start.attributes() {
                    self.top(site, buckets, dim, name, conv, None);
                    self.page_attr(site, buckets, &start.path, (dim, name), conv, None);
                }
            }
            Effect::Goal { day, hour, goal, entry } => {
                let buckets = [*day, *hour];
                self.top(site, buckets, Dim::Goal, goal, one(1), None);
                if let Some(path) = entry {
                    self.page_attr(site, buckets, path, (Dim::Goal, goal), one(1), None);
                }
            }
            Effect::GoalEntry { day, hour, goal, entry } => {
                self.page_attr(site, [*day, *hour], entry, (Dim::Goal, goal), one(1), None);
            }
            Effect::Clicker { day, hour, path, selector, text } => {
                let mut c = ext(attention::CLICKERS, 1);
                c.n = 1;
                self.attention(site, [*day, *hour], path, (Kind::Cta, selector), c, text.as_deref());
            }
            Effect::FunnelStep { day, hour, funnel, step } => {
                self.top(site, [*day, *hour], Dim::Funnel, &funnel_key(funnel, *step as usize), one(1), None);
            }
            Effect::Revenue { day, hour, start, currency, milli } => {
                self.add_detail([*day, *hour], site, start, detail::REVENUE, currency, *milli);
            }
            Effect::TimeToConversion { day, hour, start, bucket } => {
                let name = detail::TTC_BUCKETS.get(*bucket as usize).copied().unwrap_or(">2h");
                self.add_detail([*day, *hour], site, start, detail::TTC, name, 1);
            }
            Effect::Continued { day, hour, path } => {
                self.top(site, [*day, *hour], Dim::Page, path, ext(page_ext::CONTINUED, 1), None);
            }
        }
    }
}

/// True when event `ev` (on page `path`) completes `goal`.
pub fn matches_goal(goal: &GoalDoc, ev: &Event, path: &str) -> bool {
    matches_rule(goal.kind, &goal.matcher, ev, path)
}

/// True when event `ev` (on page `path`) matches a goal's or a funnel step's `kind` and
/// `matcher`.
pub fn matches_rule(kind: GoalKind, matcher: &str, ev: &Event, path: &str) -> bool {
    match (kind, &ev.kind) {
        (GoalKind::Pageview, EventKind::Pageview { .. }) => path_matches(matcher, path),
        (GoalKind::Click, EventKind::Click { selector, .. }) => *selector == matcher,
        (GoalKind::Event, EventKind::Event { name, .. }) => *name == matcher,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::event::ClientId;

    fn ev(kind: EventKind, url: &str) -> Event {
        Event { ts: 0, page_id: ClientId::parse("page_0001").expect("id"), url: url.to_string(), kind }
    }

    fn pv(referrer: &str, new_session: bool, variant: Option<&str>, url: &str) -> Event {
        ev(
            EventKind::Pageview {
                referrer: referrer.into(),
                title: "P".into(),
                new_session,
                variant: variant.map(str::to_string),
            },
            url,
        )
    }

    fn msg(events: Vec<Event>, tz: &str, received_at: i64) -> BatchMessage {
        BatchMessage {
            site_id: "s1".into(),
            batch_id: shared::ids::BatchId::new("b1234567"),
            session_id: "sess1234".into(),
            received_at,
            visitor: "00000000000000ff".into(),
            timezone: tz.into(),
            domain: "example.com".into(),
            device: Default::default(),
            browser: Default::default(),
            os: Default::default(),
            country: Default::default(),
            currency: "USD".into(),
            events,
        }
    }

    fn key(bucket: Bucket, part: Part) -> RollupKey {
        let day = match bucket {
            Bucket::Day(d) => d,
            Bucket::Hour(s) | Bucket::Minute(s) => time::local_day(s * 1000, Tz::UTC),
        };
        RollupKey::new("s1", day, bucket, part)
    }

    fn day(s: &str) -> Bucket {
        Bucket::Day(time::parse_day(s).expect("day"))
    }

    fn top(d: &FlushDeltas, bucket: Bucket, dim: Dim) -> BTreeMap<String, TopDelta> {
        match d.docs.get(&key(bucket, Part::Top(dim))) {
            Some(DocDelta::Top(t)) => t.clone(),
            other => panic!("no {dim:?} delta: {other:?}"),
        }
    }

    fn goal(kind: GoalKind, matcher: &str, created_ms: i64) -> GoalDoc {
        GoalDoc {
            id: format!("g-{matcher}"),
            name: "G".into(),
            kind,
            matcher: matcher.into(),
            created_ms,
            deleted_ms: None,
            backfilling: false,
        }
    }

    const T: i64 = 1_764_064_800_000; // 2025-11-25T10:00:00Z

    #[test]
    fn attention_counts_views_marks_scroll_and_forms_per_page() {
        use shared::event::{ClickMarks, PropValue, ViewKind};
        let url = "https://example.com/landing";
        let view = |kind, name: &str, order, seen, ms| ev(EventKind::View { kind, name: name.into(), order, seen, ms }, url);
        let click = |selector: &str, marks: ClickMarks| {
            ev(EventKind::Click { selector: selector.into(), text: "Buy".into(), href: None, marks }, url)
        };
        let form = |name: &str, props: &[(&str, &str)]| {
            let props = props.iter().map(|(k, v)| (k.to_string(), PropValue::String(v.to_string()))).collect();
            ev(EventKind::Event { name: name.into(), props }, url)
        };
        let m = msg(
            vec![
                view(ViewKind::Section, "pricing", Some(3), true, 1200),
                view(ViewKind::Section, "pricing", Some(3), false, 800),
                view(ViewKind::Cta, "a#buy", None, true, 0),
                click("a#buy", ClickMarks { x: Some(0.5), y: Some(0.999), rage: false, dead: false }),
                click("a#buy", ClickMarks { x: Some(0.5), y: Some(0.999), rage: true, dead: false }),
                click("div.price", ClickMarks { x: Some(0.0), y: Some(0.0), rage: false, dead: true }),
                ev(EventKind::Scroll { depth: 12, prev: 0 }, url),
                ev(EventKind::Scroll { depth: 55, prev: 12 }, url),
                form("form_start", &[("form", "form#signup")]),
                form("form_abandon", &[("form", "form#signup"), ("field", "email")]),
                form("form_submit", &[("form", "form#signup")]),
                // A start without its form is an ordinary event.
                form("form_start", &[]),
            ],
            "UTC",
            T,
        );
        let mut d = FlushDeltas::default();
        let facts = d.add_batch(&m, &[]);
        let list = top(&d, day("2025-11-25"), Dim::Attention);
        let at = |kind, name: &str| list.get(&attention::key("/landing", kind, name)).map(|t| t.counts).unwrap_or_default();
        let section = at(Kind::Section, "pricing");
        assert_eq!((section.n, section.ext[attention::VISIBLE_MS]), (1, 2000));
        assert_eq!(list[&attention::key("/landing", Kind::Section, "pricing")].text.as_deref(), Some("03"));
        let cta = at(Kind::Cta, "a#buy");
        assert_eq!((cta.ext[attention::VIEWERS], cta.ext[attention::CLICKERS]), (1, 0), "clickers come from the session");
        assert_eq!(at(Kind::Rage, "a#buy").n, 1);
        assert_eq!(at(Kind::Dead, "div.price").n, 1);
        assert_eq!(at(Kind::Cell, "10.49").n, 2);
        assert_eq!(at(Kind::Cell, "0.0").n, 1);
        let f = at(Kind::Form, "form#signup");
        assert_eq!((f.ext[attention::STARTS], f.ext[attention::SUBMITS], f.ext[attention::ABANDONS]), (1, 1, 1));
        assert_eq!(at(Kind::Abandon, &attention::abandon_name("form#signup", "email")).n, 1);
        let (low, high) = (at(Kind::Scroll, "0"), at(Kind::Scroll, "1"));
        assert_eq!(low.ext[..10], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "5 % to 50 %");
        assert_eq!((high.ext[0], high.ext[1]), (1, 0), "55 %, not 60 %");
        // Two clicks on a#buy and one on div.price: the session turns them into clickers.
        let pairs: Vec<&str> = facts.clicks.iter().map(|c| c.selector.as_str()).collect();
        assert_eq!(pairs, vec!["a#buy", "div.price"]);
        // Views change no v2 counter.
        assert_eq!(top(&d, day("2025-11-25"), Dim::Page)["/landing"].counts.n, 0);
    }

    #[test]
    fn counts_every_event_kind() {
        let url = "https://example.com/pricing?x=1&utm_campaign=spring&utm_medium=email";
        let m = msg(
            vec![
                pv("https://www.google.com/", true, Some("B"), url),
                pv("", false, None, "https://example.com/"),
                ev(EventKind::Scroll { depth: 30, prev: 0 }, url),
                ev(EventKind::Scroll { depth: 100, prev: 30 }, url),
                ev(
                    EventKind::Click {
                        selector: "button#cta".into(),
                        text: "Buy".into(),
                        href: None,
                        marks: Default::default(),
                    },
                    url,
                ),
                ev(
                    EventKind::Click {
                        selector: "button#cta".into(),
                        text: "".into(),
                        href: None,
                        marks: Default::default(),
                    },
                    url,
                ),
                ev(EventKind::Time { seconds: 2.5 }, url),
                ev(EventKind::Time { seconds: 1.0 }, url),
                ev(EventKind::Event { name: "Signup".into(), props: Default::default() }, url),
            ],
            "UTC",
            T,
        );
        let mut d = FlushDeltas::default();
        let facts = d.add_batch(&m, &[]);
        let want = Series {
            pageviews: 2,
            sessions: 1,
            started: 1,
            clicks: 2,
            scroll_sum: 100,
            time_sum: 3.5,
            reached: [1, 1, 1, 1],
            ..Default::default()
        };
        assert_eq!(
            d.docs.get(&key(day("2025-11-25"), Part::Series)),
            Some(&DocDelta::Series { counters: want.clone(), visitors: vec![] })
        );
        assert_eq!(
            d.docs.get(&key(Bucket::Hour(T / 1000), Part::Series)),
            Some(&DocDelta::Series { counters: want, visitors: vec![sketch::visitor_hash64("00000000000000ff")] }),
            "hours carry the visitor for their sketch"
        );
        let clicks = top(&d, day("2025-11-25"), Dim::Click);
        assert_eq!(clicks["button#cta"], TopDelta { counts: Counts::of(2), text: Some("Buy".into()) });
        let pages = top(&d, day("2025-11-25"), Dim::Page);
        let pricing = pages["/pricing"].counts;
        assert_eq!((pricing.n, pages["/"].counts.n), (1, 1));
        assert_eq!(pricing.ext[page_ext::SCROLL_SUM], 100);
        assert_eq!(pricing.ext[page_ext::CLICKS], 2);
        assert_eq!(pricing.ext[page_ext::TIME_MS], 3500);
        assert_eq!(pricing.ext[page_ext::ENTRIES], 1);
        assert_eq!(&pricing.ext[page_ext::REACHED..page_ext::REACHED + 4], &[1, 1, 1, 1]);
        for (dim, name) in [
            (Dim::Source, "google.com"),
            (Dim::Campaign, "spring"),
            (Dim::Medium, "email"),
            (Dim::Variant, "B"),
            (Dim::Device, "desktop"),
            (Dim::Browser, "Other"),
            (Dim::Os, "Other"),
            (Dim::Country, "(unknown)"),
        ] {
            let t = top(&d, Bucket::Hour(T / 1000), dim);
            assert_eq!(t.keys().collect::<Vec<_>>(), vec![name], "{dim:?}: only the session start counts a visit");
            let attrs = top(&d, day("2025-11-25"), Dim::PageAttr);
            assert_eq!(attrs[&page_attr_key("/pricing", dim, name)].counts.n, 1, "{dim:?} of the entry page");
        }
        assert_eq!(top(&d, day("2025-11-25"), Dim::Event)["Signup"].counts.n, 1);
        assert_eq!(
            (facts.pageviews, facts.interacted, facts.start.as_ref().map(|s| s.path.as_str())),
            (2, true, Some("/pricing"))
        );
        let live = match d.docs.get(&key(Bucket::Minute(T / 1000), Part::Live)) {
            Some(DocDelta::Live(m)) => m.clone(),
            other => panic!("live: {other:?}"),
        };
        assert_eq!((live.pageviews, live.pages.len()), (2, 2));
    }

    #[test]
    fn scroll_reach_counts_milestones_crossed() {
        let cases: [(u8, u8, [i64; 4]); 6] = [
            (24, 0, [0, 0, 0, 0]),
            (25, 0, [1, 0, 0, 0]),
            (50, 25, [0, 1, 0, 0]),
            (99, 10, [1, 1, 1, 0]),
            (100, 99, [0, 0, 0, 1]),
            (100, 0, [1, 1, 1, 1]),
        ];
        for (depth, prev, want) in cases {
            let mut d = FlushDeltas::default();
            let facts =
                d.add_batch(&msg(vec![ev(EventKind::Scroll { depth, prev }, "https://example.com/")], "UTC", 0), &[]);
            let Some(DocDelta::Series { counters, .. }) = d.docs.get(&key(day("1970-01-01"), Part::Series)) else {
                panic!("series")
            };
            assert_eq!(counters.reached, want, "case depth {depth} prev {prev}");
            assert_eq!(counters.scroll_sum, i64::from(depth - prev), "case depth {depth} prev {prev}");
            assert_eq!(facts.interacted, depth > 25, "case depth {depth}: a scroll past 25 % engages");
        }
    }

    #[test]
    fn buckets_use_the_site_time_zone() {
        // 2025-11-25T03:00Z is 2025-11-24 22:00 in New York.
        let b = buckets_of(&msg(vec![], "America/New_York", 1_764_039_600_000));
        assert_eq!(
            (b.day, b.hour, b.minute),
            (day("2025-11-24"), Bucket::Hour(1_764_039_600), Bucket::Minute(1_764_039_600))
        );
    }

    #[test]
    fn goals_match_by_kind_from_their_creation_on() {
        let goals = [
            goal(GoalKind::Pageview, "/thank-you*", T - 1),
            goal(GoalKind::Click, "button#cta", T - 1),
            goal(GoalKind::Event, "Signup", T - 1),
            goal(GoalKind::Event, "Later", T + 1),
            goal(GoalKind::Click, "a#other", T - 1),
        ];
        let refs: Vec<&GoalDoc> = goals.iter().collect();
        let m = msg(
            vec![
                pv("", false, None, "https://example.com/thank-you/pro"),
                ev(
                    EventKind::Click {
                        selector: "button#cta".into(),
                        text: "".into(),
                        href: None,
                        marks: Default::default(),
                    },
                    "https://example.com/",
                ),
                ev(
                    EventKind::Click {
                        selector: "button#cta".into(),
                        text: "".into(),
                        href: None,
                        marks: Default::default(),
                    },
                    "https://example.com/",
                ),
                ev(EventKind::Event { name: "Signup".into(), props: Default::default() }, "https://example.com/"),
                ev(EventKind::Event { name: "Later".into(), props: Default::default() }, "https://example.com/"),
            ],
            "UTC",
            T,
        );
        let facts = FlushDeltas::default().add_batch(&m, &refs);
        assert_eq!(
            facts.goals,
            vec!["g-/thank-you*", "g-button#cta", "g-Signup"],
            "each goal once; not the one created after"
        );
        let mut deleted = goal(GoalKind::Event, "Signup", T - 10);
        deleted.deleted_ms = Some(T - 5);
        assert!(FlushDeltas::default().add_batch(&m, &[&deleted]).goals.is_empty(), "deleted before the batch arrived");
    }

    #[test]
    fn session_effects_land_on_their_buckets_and_attributes() {
        let start = Start {
            day: day("2025-11-24"),
            hour: Bucket::Hour(1),
            path: "/landing".into(),
            source: "google.com".into(),
            campaign: Some("spring".into()),
            medium: None,
            variant: Some("B".into()),
            device: "mobile".into(),
            browser: "Firefox".into(),
            os: "Android".into(),
            country: "DE".into(),
            ts: None,
        };
        let mut d = FlushDeltas::default();
        d.add_effect("s1", &Effect::Engaged { start: start.clone() });
        d.add_effect("s1", &Effect::Converted { day: day("2025-11-25"), hour: Bucket::Hour(2) });
        d.add_effect("s1", &Effect::Attributed { day: day("2025-11-25"), hour: Bucket::Hour(2), start: start.clone() });
        d.add_effect(
            "s1",
            &Effect::Goal {
                day: day("2025-11-25"),
                hour: Bucket::Hour(2),
                goal: "g1".into(),
                entry: Some("/landing".into()),
            },
        );
        let Some(DocDelta::Series { counters, .. }) = d.docs.get(&key(day("2025-11-24"), Part::Series)) else {
            panic!("start day")
        };
        assert_eq!((counters.engaged, counters.conversions), (1, 0));
        let Some(DocDelta::Series { counters, .. }) = d.docs.get(&key(day("2025-11-25"), Part::Series)) else {
            panic!("conversion day")
        };
        assert_eq!((counters.engaged, counters.conversions), (0, 1));
        assert_eq!(top(&d, day("2025-11-25"), Dim::Source)["google.com"].counts, Counts { conv: 1, ..Counts::default() });
        assert_eq!(top(&d, day("2025-11-25"), Dim::Variant)["B"].counts.conv, 1);
        assert!(!d.docs.contains_key(&key(day("2025-11-25"), Part::Top(Dim::Medium))), "no medium, no row");
        assert_eq!(top(&d, day("2025-11-25"), Dim::Goal)["g1"].counts.n, 1);
        assert_eq!(top(&d, day("2025-11-25"), Dim::Page)["/landing"].counts.conv, 1);
        assert_eq!(top(&d, day("2025-11-24"), Dim::Page)["/landing"].counts.ext[page_ext::ENGAGED], 1);
        assert_eq!(top(&d, day("2025-11-25"), Dim::PageAttr)[&page_attr_key("/landing", Dim::Goal, "g1")].counts.n, 1);
    }

    #[test]
    fn new_visitors_count_on_the_day_series_and_the_page() {
        let mut d = FlushDeltas::default();
        d.add_new_visitor("s1", day("2025-11-24"));
        d.add_new_visitor("s1", day("2025-11-24"));
        d.add_page_visitor("s1", day("2025-11-24"), day("2025-11-24"), "/");
        let Some(DocDelta::Series { counters, .. }) = d.docs.get(&key(day("2025-11-24"), Part::Series)) else {
            panic!("series")
        };
        assert_eq!(counters.visitors, 2);
        assert_eq!(top(&d, day("2025-11-24"), Dim::Page)["/"].counts.ext[page_ext::VISITORS], 1);
    }
}
