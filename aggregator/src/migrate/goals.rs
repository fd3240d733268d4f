//! The one-off move of goals from their own collection (`goals`, one document per goal) into
//! the sites' configs (`site_config`, one document per site, read by `_id`; see
//! `shared::site_config`).
//!
//! 1. Read every old goal, grouped by site.
//! 2. Insert each site's config holding its goals, only if the site has none: the api, asked
//!    to change the goals of a site without a config, builds it from the old goals itself, and
//!    that config (maybe changed since) wins.
//! 3. Drop `goals`.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use mongodb::{
    Database,
    bson::{self, Document, doc},
};
use shared::{
    names::collections as c,
    site_config::{self, SiteConfigDoc},
};

use crate::writer::{self, Cost};

/// This migration's id in [`c::MIGRATIONS`].
pub const ID: &str = "site-config-v1";

/// Moves the old goals, if any, into site configs (the caller holds the lease).
pub(super) async fn migrate(db: &Database) -> anyhow::Result<()> {
    let old = db.collection::<Document>(c::LEGACY_GOALS);
    let mut by_site: BTreeMap<String, SiteConfigDoc> = BTreeMap::new();
    let mut cursor = old.find(doc! {}).await?;
    while let Some(d) = cursor.try_next().await? {
        let (Ok(site), Some(goal)) = (d.get_str("site_id"), site_config::legacy_goal(&d)) else {
            tracing::warn!(goal = %d.get_str("_id").unwrap_or("?"), "an old goal that does not read is left out");
            continue;
        };
        by_site
            .entry(site.to_string())
            .or_insert_with(|| SiteConfigDoc { rev: 1, ..SiteConfigDoc::empty(site) })
            .goals
            .push(goal);
    }
    if by_site.is_empty() {
        return Ok(());
    }
    tracing::warn!(sites = by_site.len(), "moving goals into site configs (one-off)");
    let mut configs = Vec::with_capacity(by_site.len());
    for mut config in by_site.into_values() {
        config.goals.sort_by_key(|g| g.created_ms);
        configs.push(bson::to_document(&config)?);
    }
    writer::insert_unordered(db, c::SITE_CONFIG, configs, &mut Cost::default()).await?;
    old.drop().await?;
    Ok(())
}
