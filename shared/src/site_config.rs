//! What a site is configured to count: one document per site in
//! [`crate::names::collections::SITE_CONFIG`] (`_id` = the site id), holding its goals.
//!
//! The aggregator's flush reads the configs of the sites it flushes and the api's stats read
//! the config of the site asked for, both by `_id`: a filter on a goals collection would be a
//! scan on engines that do not plan it by index, and would grow with every site.
//!
//! Writers change a config with a compare-and-set on `rev` ([`SiteConfigDoc::write_statement`]):
//! read it, change the goals, write it only if `rev` is unchanged, else read again. So "at most
//! [`MAX_GOALS_PER_SITE`] live goals" holds however many requests race.
//!
//! A deleted goal is kept, marked with the time of its deletion, for [`DELETED_GOAL_KEEP`]: the
//! aggregator keeps matching it against batches received before the deletion, so that a flush
//! finished by recovery counts what its first attempt counted. Times are epoch milliseconds,
//! not dates: the MongoDB-wire stand-in our tests use stores a date given in an update as a
//! string.

use std::time::Duration;

use mongodb::bson::{DateTime, Document, doc};
use serde::{Deserialize, Serialize};

use crate::{
    funnel::{FunnelDoc, MAX_FUNNELS_PER_SITE},
    goal::{GoalKind, MAX_GOALS_PER_SITE},
    segment::{MAX_SEGMENTS_PER_SITE, SegmentDoc},
};

/// How long a deleted goal is kept for the aggregator.
pub const DELETED_GOAL_KEEP: Duration = Duration::from_secs(2 * 24 * 3600);
/// Most deleted goals kept (the most recent), whatever their age: a site that creates and
/// deletes goals in a loop must not grow its config.
pub const MAX_DELETED_GOALS: usize = 100;

/// A goal of a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoalDoc {
    pub id: String,
    pub name: String,
    pub kind: GoalKind,
    #[serde(rename = "match")]
    pub matcher: String,
    /// When it was created (epoch ms): it counts batches received from then on.
    pub created_ms: i64,
    /// When it was deleted (epoch ms): it counts no batch received from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_ms: Option<i64>,
    /// True until the backfill has counted the raw batches received before its creation
    /// (goals created before backfills existed have none: false).
    #[serde(default)]
    pub backfilling: bool,
}

impl GoalDoc {
    /// True when the goal applies to a batch received at `received_ms`.
    pub fn applies_at(&self, received_ms: i64) -> bool {
        self.created_ms <= received_ms && self.deleted_ms.is_none_or(|d| received_ms < d)
    }

    pub fn is_live(&self) -> bool {
        self.deleted_ms.is_none()
    }

    pub fn created_at(&self) -> DateTime {
        DateTime::from_millis(self.created_ms)
    }
}

/// One site's configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteConfigDoc {
    /// The site id.
    #[serde(rename = "_id")]
    pub id: String,
    /// Bumped by every write; 0 for a config not stored yet.
    pub rev: i64,
    /// Live goals, and deleted ones for [`DELETED_GOAL_KEEP`], oldest first.
    #[serde(default)]
    pub goals: Vec<GoalDoc>,
    /// Live funnels, and deleted ones for [`DELETED_GOAL_KEEP`], oldest first.
    #[serde(default)]
    pub funnels: Vec<FunnelDoc>,
    /// Live segments, and deleted ones for [`DELETED_GOAL_KEEP`], oldest first.
    #[serde(default)]
    pub segments: Vec<SegmentDoc>,
}

/// Why a goal cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoalLimit {
    #[error("goals: a site has at most {MAX_GOALS_PER_SITE} goals; delete one first")]
    Full,
    #[error("funnels: a site has at most {MAX_FUNNELS_PER_SITE} funnels; delete one first")]
    FunnelsFull,
    #[error("segments: a site has at most {MAX_SEGMENTS_PER_SITE} segments; delete one first")]
    SegmentsFull,
}

impl SiteConfigDoc {
    /// An empty config of `site_id`, not stored yet.
    pub fn empty(site_id: &str) -> Self {
        Self { id: site_id.to_string(), ..Self::default() }
    }

    /// The live goals, oldest first.
    pub fn live_goals(&self) -> impl Iterator<Item = &GoalDoc> {
        self.goals.iter().filter(|g| g.is_live())
    }

    /// Adds `goal`, unless the site has [`MAX_GOALS_PER_SITE`] live goals; drops deleted goals
    /// past their keep (at `now_ms`) on the way.
    pub fn add_goal(&mut self, goal: GoalDoc, now_ms: i64) -> Result<(), GoalLimit> {
        if self.live_goals().count() >= MAX_GOALS_PER_SITE {
            return Err(GoalLimit::Full);
        }
        self.forget_deleted(now_ms);
        self.goals.push(goal);
        Ok(())
    }

    /// Marks the live goal `goal_id` deleted at `now_ms`; false when there is none.
    pub fn delete_goal(&mut self, goal_id: &str, now_ms: i64) -> bool {
        let Some(g) = self.goals.iter_mut().find(|g| g.id == goal_id && g.is_live()) else { return false };
        g.deleted_ms = Some(now_ms);
        self.forget_deleted(now_ms);
        true
    }

    /// The live funnels, oldest first.
    pub fn live_funnels(&self) -> impl Iterator<Item = &FunnelDoc> {
        self.funnels.iter().filter(|f| f.is_live())
    }

    /// Adds `funnel`, unless the site has [`MAX_FUNNELS_PER_SITE`] live funnels.
    pub fn add_funnel(&mut self, funnel: FunnelDoc, now_ms: i64) -> Result<(), GoalLimit> {
        if self.live_funnels().count() >= MAX_FUNNELS_PER_SITE {
            return Err(GoalLimit::FunnelsFull);
        }
        self.forget_deleted(now_ms);
        self.funnels.push(funnel);
        Ok(())
    }

    /// Marks the live funnel `funnel_id` deleted at `now_ms`; false when there is none.
    pub fn delete_funnel(&mut self, funnel_id: &str, now_ms: i64) -> bool {
        let Some(f) = self.funnels.iter_mut().find(|f| f.id == funnel_id && f.is_live()) else { return false };
        f.deleted_ms = Some(now_ms);
        self.forget_deleted(now_ms);
        true
    }

    /// The live segments, oldest first.
    pub fn live_segments(&self) -> impl Iterator<Item = &SegmentDoc> {
        self.segments.iter().filter(|s| s.is_live())
    }

    /// Adds `segment`, unless the site has [`MAX_SEGMENTS_PER_SITE`] live segments.
    pub fn add_segment(&mut self, segment: SegmentDoc, now_ms: i64) -> Result<(), GoalLimit> {
        if self.live_segments().count() >= MAX_SEGMENTS_PER_SITE {
            return Err(GoalLimit::SegmentsFull);
        }
        self.forget_deleted(now_ms);
        self.segments.push(segment);
        Ok(())
    }

    /// Marks the live segment `segment_id` deleted at `now_ms`; false when there is none.
    pub fn delete_segment(&mut self, segment_id: &str, now_ms: i64) -> bool {
        let Some(s) = self.segments.iter_mut().find(|s| s.id == segment_id && s.is_live()) else { return false };
        s.deleted_ms = Some(now_ms);
        self.forget_deleted(now_ms);
        true
    }

    /// Ends the backfill of goal or funnel `item_id`; false when there is no such item.
    pub fn end_backfill(&mut self, item_id: &str) -> bool {
        let goal = self.goals.iter_mut().find(|g| g.id == item_id).map(|g| &mut g.backfilling);
        let funnel = self.funnels.iter_mut().find(|f| f.id == item_id).map(|f| &mut f.backfilling);
        let segment = self.segments.iter_mut().find(|s| s.id == item_id).map(|s| &mut s.backfilling);
        match goal.or(funnel).or(segment) {
            Some(flag) => {
                *flag = false;
                true
            }
            None => false,
        }
    }

    /// Drops deleted goals and funnels older than [`DELETED_GOAL_KEEP`], and all but the most
    /// recent [`MAX_DELETED_GOALS`] of each.
    fn forget_deleted(&mut self, now_ms: i64) {
        forget(&mut self.goals, |g| g.deleted_ms, now_ms);
        forget(&mut self.funnels, |f| f.deleted_ms, now_ms);
        forget(&mut self.segments, |s| s.deleted_ms, now_ms);
    }

    /// The write of this config if the stored one is still at `read_rev` (0: none stored),
    /// as `(filter, update)` for an upsert; it bumps `rev`. A lost race fails with a
    /// duplicate-key error (the filter finds nothing, and the insert collides on `_id`).
    pub fn write_statement(&self, read_rev: i64) -> Result<(Document, Document), mongodb::bson::ser::Error> {
        let goals = mongodb::bson::to_bson(&self.goals)?;
        let funnels = mongodb::bson::to_bson(&self.funnels)?;
        let segments = mongodb::bson::to_bson(&self.segments)?;
        let set = doc! {"rev": read_rev + 1, "goals": goals, "funnels": funnels, "segments": segments};
        Ok((doc! {"_id": &self.id, "rev": read_rev}, doc! {"$set": set}))
    }
}

fn forget<T>(items: &mut Vec<T>, deleted_ms: impl Fn(&T) -> Option<i64>, now_ms: i64) {
    let keep_from = now_ms - DELETED_GOAL_KEEP.as_millis() as i64;
    items.retain(|i| deleted_ms(i).is_none_or(|d| d >= keep_from));
    let mut deleted: Vec<i64> = items.iter().filter_map(&deleted_ms).collect();
    if deleted.len() > MAX_DELETED_GOALS {
        deleted.sort_unstable();
        let cutoff = deleted[deleted.len() - MAX_DELETED_GOALS];
        items.retain(|i| deleted_ms(i).is_none_or(|d| d >= cutoff));
    }
}

/// A goal as the collection before site configs stored it (one document per goal, dates as
/// dates), or `None` when the document does not read as one.
pub fn legacy_goal(d: &Document) -> Option<GoalDoc> {
    let ms = |k: &str| d.get_datetime(k).ok().map(|t| t.timestamp_millis());
    Some(GoalDoc {
        id: d.get_str("_id").ok()?.to_string(),
        name: d.get_str("name").ok()?.to_string(),
        kind: mongodb::bson::from_bson(d.get("kind")?.clone()).ok()?,
        matcher: d.get_str("match").ok()?.to_string(),
        created_ms: ms("created_at")?,
        deleted_ms: ms("deleted_at"),
        backfilling: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal(id: &str, created_ms: i64) -> GoalDoc {
        GoalDoc {
            id: id.into(),
            name: id.into(),
            kind: GoalKind::Event,
            matcher: "Signup".into(),
            created_ms,
            deleted_ms: None,
            backfilling: false,
        }
    }

    #[test]
    fn at_most_the_limit_of_live_goals_and_deleted_ones_do_not_count() {
        let mut c = SiteConfigDoc::empty("s");
        for i in 0..MAX_GOALS_PER_SITE {
            c.add_goal(goal(&format!("g{i}"), 1), 1).expect("room");
        }
        assert_eq!(c.add_goal(goal("x", 1), 1), Err(GoalLimit::Full));
        assert!(c.delete_goal("g0", 5));
        assert!(!c.delete_goal("g0", 6), "deleted already");
        c.add_goal(goal("x", 7), 7).expect("a slot freed");
        assert_eq!(c.live_goals().count(), MAX_GOALS_PER_SITE);
        assert_eq!(c.goals.len(), MAX_GOALS_PER_SITE + 1, "the deleted goal is kept for replays");
    }

    #[test]
    fn deleted_goals_are_kept_two_days_and_at_most_a_hundred() {
        let mut c = SiteConfigDoc::empty("s");
        for i in 0..150 {
            c.add_goal(goal(&format!("g{i}"), i), i).expect("room");
            assert!(c.delete_goal(&format!("g{i}"), i));
        }
        assert_eq!(c.goals.len(), MAX_DELETED_GOALS);
        assert_eq!(c.goals[0].id, "g50", "the oldest deleted go first");
        let later = 149 + DELETED_GOAL_KEEP.as_millis() as i64 + 1;
        c.add_goal(goal("new", later), later).expect("room");
        assert_eq!(c.goals.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), vec!["new"]);
    }

    #[test]
    fn a_goal_applies_from_its_creation_until_its_deletion() {
        let mut g = goal("g", 10);
        g.deleted_ms = Some(20);
        assert_eq!([9, 10, 19, 20].map(|t| g.applies_at(t)), [false, true, true, false]);
    }
}
