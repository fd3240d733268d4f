//! Index setup, and what expires: the indexes every service relies on (created at start,
//! idempotently) and the expiry plan the aggregator's job carries out. Kept apart from the
//! document types ([`crate::store`], [`crate::rollup`]), which it only names.

use std::time::Duration;

use anyhow::Context as _;
use mongodb::{Database, IndexModel, bson::doc, options::IndexOptions};

use crate::telemetry::Chain;
use crate::{
    imports,
    mail::outbox_fields,
    names::collections as c,
    store::{DONE_FLUSH_KEEP, flush_fields, raw_fields, site_fields, user_fields},
    team::{membership_fields, team_fields},
};

fn index(keys: mongodb::bson::Document, options: Option<IndexOptions>) -> IndexModel {
    IndexModel::builder().keys(keys).options(options).build()
}

fn unique() -> Option<IndexOptions> {
    Some(IndexOptions::builder().unique(true).build())
}

/// What expires: documents of `collection` whose date in `field` is more than `after` in the
/// past. The aggregator's expiry job removes them (`aggregator/src/expiry.rs`), with a plain
/// index on `field` to find them.
///
/// Not TTL indexes: engines that speak MongoDB's protocol do not all run TTL in the background
/// (the MongoDB-wire stand-in our tests use purges expired documents before every read of the
/// collection, so every read paid for the whole collection), and some have none. A job of our
/// own removes the same documents, within a minute, on every engine, off the paths that read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub collection: &'static str,
    pub field: &'static str,
    pub after: Duration,
}

/// Everything that expires; raw batches after `raw_retention` (`CP_RAW_RETENTION_DAYS`).
pub fn expiries(raw_retention: Duration) -> Vec<Expiry> {
    let e = |collection, field, after| Expiry { collection, field, after };
    vec![
        e(c::ROLLUPS, "expire_at", Duration::ZERO),
        e(c::SESSIONS, "expire_at", Duration::ZERO),
        e(c::VISITOR_MARKS, "expire_at", Duration::ZERO),
        e(c::FLUSHES, flush_fields::DONE_AT, DONE_FLUSH_KEEP),
        e(c::RECOVERIES, "until", Duration::from_secs(24 * 3600)),
        e(c::RAW_BATCHES, "received", raw_retention),
        e(c::OUTBOX, outbox_fields::EXPIRE_AT, Duration::ZERO),
        e(c::IMPORT_CHUNKS, imports::CHUNK_STORED, imports::CHUNK_KEEP),
    ]
}

/// Creates every index the services rely on, and drops the TTL indexes of earlier releases
/// (see [`Expiry`]). Idempotent.
///
/// `raw_retention` is the aggregator's (`CP_RAW_RETENTION_DAYS`); other services pass `None`
/// and leave the raw-batch indexes to it.
pub async fn ensure_indexes(db: &Database, raw_retention: Option<Duration>) -> anyhow::Result<()> {
    use flush_fields as f;
    type Doc = mongodb::bson::Document;
    let mut plan: Vec<(&str, Vec<IndexModel>)> = vec![
        (c::USERS, vec![index(doc! {user_fields::EMAIL: 1}, unique())]),
        (c::SITES, vec![index(doc! {site_fields::API_KEY: 1}, unique()), index(doc! {site_fields::OWNER_ID: 1}, None)]),
        (c::VISITOR_MARKS, vec![index(doc! {"expire_at": 1}, None)]),
        (c::SESSIONS, vec![index(doc! {"expire_at": 1}, None)]),
        (c::ROLLUPS, crate::rollup::indexes()),
        (
            c::FLUSHES,
            vec![
                index(doc! {f::STATE: 1, f::CLAIMED_AT: 1}, None),
                index(doc! {f::INST: 1, f::STATE: 1}, None),
                index(doc! {f::DONE_AT: 1}, None),
            ],
        ),
        (c::RECOVERIES, vec![index(doc! {"until": 1}, None)]),
        (c::IMPORT_CHUNKS, vec![index(doc! {imports::CHUNK_STORED: 1}, None)]),
        (c::SITE_TEAMS, vec![index(doc! {team_fields::WEEKLY: 1}, None), index(doc! {team_fields::ALERTING: 1}, None)]),
        (
            c::MEMBERSHIPS,
            vec![index(doc! {membership_fields::USER_ID: 1}, None), index(doc! {membership_fields::SITE_ID: 1}, None)],
        ),
        (
            c::OUTBOX,
            vec![
                index(doc! {outbox_fields::STATE: 1, outbox_fields::DUE_AT: 1}, None),
                index(doc! {outbox_fields::EXPIRE_AT: 1}, None),
            ],
        ),
    ];
    if raw_retention.is_some() {
        plan.push((
            c::RAW_BATCHES,
            vec![
                index(doc! {raw_fields::FLUSH: 1}, None),
                index(doc! {"received": 1}, None),
                // A backfill reads one site's batches in receive order.
                index(doc! {"site_id": 1, "received_at": 1}, None),
            ],
        ));
        plan.push((c::BACKFILLS, vec![index(doc! {"lease_until_ms": 1}, None)]));
    }
    for (name, models) in plan {
        let collection = db.collection::<Doc>(name);
        drop_ttl_indexes(&collection).await.with_context(|| format!("dropping TTL indexes on {name}"))?;
        collection.create_indexes(models).await.with_context(|| format!("creating indexes on {name}"))?;
    }
    Ok(())
}

/// Drops the TTL indexes an earlier release created: an index on the same field with other
/// options would be refused, and the expiry job does their work now.
async fn drop_ttl_indexes(collection: &mongodb::Collection<mongodb::bson::Document>) -> anyhow::Result<()> {
    use futures::TryStreamExt;
    let existing: Vec<IndexModel> = match collection.list_indexes().await {
        Ok(cursor) => cursor.try_collect().await?,
        // A collection that does not exist yet has no indexes.
        Err(_) => return Ok(()),
    };
    for model in existing {
        let Some(options) = model.options.filter(|o| o.expire_after.is_some()) else { continue };
        let Some(name) = options.name else { continue };
        // Another service may drop it at the same moment: what matters is that it is gone.
        if let Err(e) = collection.drop_index(name.as_str()).await {
            tracing::debug!(index = %name, error = %Chain(&e), "dropping a TTL index failed (gone already?)");
        }
    }
    Ok(())
}
