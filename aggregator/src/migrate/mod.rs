//! One-off data migrations, run by the aggregator at start, before it consumes anything, so
//! that stats never mix two layouts: [`v2`] (the first rollup layout to one document per
//! unit), [`v3`] (units into site-days), [`goals`] (goals into site configs), then
//! [`share_links`] (share links addressed by their hash).
//!
//! Each runs once per database under a lease in [`c::MIGRATIONS`] (`_id` = its id): one
//! aggregator migrates while the others wait for its `done`; a migration whose process died
//! is taken over once the lease has passed, and runs again from the start, which every
//! migration here is written to allow.

pub mod goals;
pub mod share_links;
pub mod v2;
pub mod v3;

use std::time::Duration;

use anyhow::Context as _;
use mongodb::{
    Database,
    bson::{Document, doc},
};
use shared::{clock::Clock, names::collections as c};

use crate::flush::Settings;

/// Every migration, in the order they run.
pub const IDS: [&str; 4] = [v2::ID, v3::ID, goals::ID, share_links::ID];

/// How long a migrating process holds the lease without renewing it.
const LEASE: Duration = Duration::from_secs(120);

/// Runs every migration not run yet, in order; waits while another process runs one.
pub async fn run(db: &Database, settings: &Settings, clock: &dyn Clock) -> anyhow::Result<()> {
    if run_once(db, v2::ID, clock).await? {
        v2::migrate(db, settings, clock).await?;
        mark_done(db, v2::ID).await?;
    }
    if run_once(db, v3::ID, clock).await? {
        v3::migrate(db, settings, clock).await?;
        mark_done(db, v3::ID).await?;
    }
    if run_once(db, goals::ID, clock).await? {
        goals::migrate(db).await?;
        mark_done(db, goals::ID).await?;
    }
    if run_once(db, share_links::ID, clock).await? {
        share_links::migrate(db).await?;
        mark_done(db, share_links::ID).await?;
    }
    Ok(())
}

/// Takes the lease of migration `id`: `true` when this process must run it now, `false`
/// when it is done already (waiting while another process holds the lease).
async fn run_once(db: &Database, id: &str, clock: &dyn Clock) -> anyhow::Result<bool> {
    let migrations = db.collection::<Document>(c::MIGRATIONS);
    loop {
        if migrations.find_one(doc! {"_id": id, "state": "done"}).await?.is_some() {
            return Ok(false);
        }
        let now = clock.now_ms();
        // Epoch milliseconds, not a date: the MongoDB-wire stand-in stores a date set on an
        // existing document as a string, which would never compare as expired.
        let taken = migrations
            .update_one(
                doc! {"_id": id, "state": "running", "until_ms": {"$lt": now}},
                doc! {"$set": {"until_ms": now + LEASE.as_millis() as i64}},
            )
            .upsert(true)
            .await;
        match taken {
            Ok(_) => return Ok(true),
            Err(e) if shared::store::is_duplicate_key(&e) => {
                tracing::info!(migration = id, "another aggregator is migrating; waiting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("taking the lease of migration {id}")),
        }
    }
}

/// Extends the lease of migration `id` while it runs.
pub(crate) async fn renew(db: &Database, id: &str, clock: &dyn Clock) -> anyhow::Result<()> {
    let until = clock.now_ms() + LEASE.as_millis() as i64;
    db.collection::<Document>(c::MIGRATIONS)
        .update_one(doc! {"_id": id, "state": "running"}, doc! {"$set": {"until_ms": until}})
        .await?;
    Ok(())
}

async fn mark_done(db: &Database, id: &str) -> anyhow::Result<()> {
    db.collection::<Document>(c::MIGRATIONS).update_one(doc! {"_id": id}, doc! {"$set": {"state": "done"}}).await?;
    Ok(())
}
