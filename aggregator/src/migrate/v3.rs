//! The one-off move of the second layout (`rollups_v2`: one document per unit) into site-days
//! (`rollups_v3`; see `shared::rollup::siteday`).
//!
//! Every old document becomes the unit document of a **split** site-day, its revision and
//! watermarks unchanged. An old flush left half done (its record still applying) is then
//! finished by the usual recovery unit by unit, exactly as before: merging old units into one
//! compact site-day would mix per-unit watermarks, which such a flush relies on. Days that
//! begin after the move start compact.
//!
//! The site-day of a day unit is its day; of an hour or a minute, its local day in the site's
//! time zone now (UTC for a site deleted since).
//!
//! 1. Read the sites' time zones (one listing).
//! 2. For each old document, insert its unit document and its site-day marked split, each only
//!    if absent: a second run, or a second process after the lease passed, never overwrites a
//!    document a flush has written since.
//! 3. Drop `rollups_v2`.

use std::collections::{HashMap, HashSet};

use anyhow::Context as _;
use chrono_tz::Tz;
use futures::TryStreamExt;
use mongodb::{
    Database,
    bson::{self, Document, doc},
};
use shared::{
    clock::Clock,
    names::collections as c,
    rollup::{Rollup, RollupDoc, SiteDayRollup},
    store::SiteDoc,
    time,
};

use crate::{
    flush::Settings,
    writer::{self, Cost},
};

/// This migration's id in [`c::MIGRATIONS`].
pub const ID: &str = "rollups-v3";
/// Documents inserted per command.
const CHUNK: usize = 500;
/// Site-days remembered as marked; past it the memory starts over (a marker inserted twice is
/// refused as a duplicate, harmlessly).
const MARKED_MEMORY: usize = 100_000;

/// Moves `rollups_v2`, if present, into site-days (the caller holds the lease).
pub(super) async fn migrate(db: &Database, settings: &Settings, clock: &dyn Clock) -> anyhow::Result<()> {
    let old = db.collection::<Document>(c::LEGACY_V2_ROLLUPS);
    if old.find_one(doc! {}).await?.is_none() {
        return Ok(());
    }
    tracing::warn!("moving rollups into site-days (one-off)");
    let mut zones: HashMap<String, Tz> = HashMap::new();
    let mut sites = db.collection::<SiteDoc>(c::SITES).find(doc! {}).await?;
    while let Some(site) = sites.try_next().await? {
        zones.insert(site.id.clone(), time::parse_tz(&site.timezone).unwrap_or(Tz::UTC));
    }
    let mut cursor = old.find(doc! {}).await?;
    let (mut units, mut markers) = (Vec::new(), Vec::new());
    let mut marked: HashSet<String> = HashSet::new();
    let mut cost = Cost::default();
    let mut moved = 0_u64;
    while let Some(raw) = cursor.try_next().await? {
        let doc: RollupDoc = bson::from_document(raw).context("reading a rollups_v2 document")?;
        let tz = zones.get(&doc.site_id).copied().unwrap_or(Tz::UTC);
        let site_day = match (&doc.day, doc.hour, doc.minute) {
            (Some(day), _, _) => time::parse_day(day).with_context(|| format!("{}: day {day:?}", doc.id))?,
            (None, Some(start), _) | (None, None, Some(start)) => time::local_day(start * 1000, tz),
            (None, None, None) => anyhow::bail!("{}: no bucket", doc.id),
        };
        let unit = Rollup::from_legacy_doc(doc, site_day).context("reading a rollups_v2 document")?;
        units.push(bson::to_document(&unit.to_doc(settings.day_retention))?);
        let sd = unit.key.site_day();
        if marked.len() >= MARKED_MEMORY {
            marked.clear();
        }
        if marked.insert(sd.id()) {
            let marker = SiteDayRollup { rev: 1, split: true, ..SiteDayRollup::empty(sd) };
            markers.push(bson::to_document(&marker.to_doc(settings.day_retention))?);
        }
        if units.len() >= CHUNK {
            moved += units.len() as u64;
            insert_absent(db, std::mem::take(&mut units), std::mem::take(&mut markers), &mut cost).await?;
            super::renew(db, ID, clock).await?;
        }
    }
    moved += units.len() as u64;
    insert_absent(db, units, markers, &mut cost).await?;
    old.drop().await?;
    tracing::warn!(documents = moved, "rollups moved into site-days");
    Ok(())
}

/// Inserts unit documents, then their site-day markers, skipping those that exist.
async fn insert_absent(db: &Database, units: Vec<Document>, markers: Vec<Document>, cost: &mut Cost) -> anyhow::Result<()> {
    // Units first: a site-day marked split must never lack a unit it had.
    writer::insert_unordered(db, c::ROLLUPS, units, cost).await?;
    writer::insert_unordered(db, c::ROLLUPS, markers, cost).await?;
    Ok(())
}
