//! MongoDB document types and index setup.
//!
//! Raw events are stored one document per accepted batch (the bucket pattern), with `_id` =
//! `site:batch_id` so that a redelivered batch cannot be stored twice. Stats are read only from
//! the rollup collections.

use std::time::Duration;

use anyhow::Context as _;
use mongodb::{
    Database, IndexModel,
    bson::{DateTime, doc},
    options::{ClientOptions, IndexOptions},
};
use serde::{Deserialize, Serialize};

use crate::names::collections as c;

/// An account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub created_at: DateTime,
}

/// A tracked site.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub domain: String,
    pub timezone: String,
    pub api_key: String,
    pub created_at: DateTime,
}

/// Connects to MongoDB with short timeouts: a dead database must surface as an error the
/// caller handles (503, nak), never as a hang.
pub async fn connect(uri: &str, db: &str, app: &str) -> anyhow::Result<Database> {
    let mut options = ClientOptions::parse(uri).await.with_context(|| "parsing MONGODB_URI".to_string())?;
    options.app_name = Some(app.to_string());
    options.server_selection_timeout = Some(Duration::from_secs(3));
    options.connect_timeout = Some(Duration::from_secs(3));
    let client = mongodb::Client::with_options(options).context("building MongoDB client")?;
    Ok(client.database(db))
}

/// True when MongoDB answers a ping.
pub async fn ping(db: &Database) -> bool {
    db.run_command(doc! {"ping": 1}).await.is_ok()
}

fn index(keys: mongodb::bson::Document, options: Option<IndexOptions>) -> IndexModel {
    IndexModel::builder().keys(keys).options(options).build()
}

fn unique() -> Option<IndexOptions> {
    Some(IndexOptions::builder().unique(true).build())
}

fn ttl(after: Duration) -> Option<IndexOptions> {
    Some(IndexOptions::builder().expire_after(after).build())
}

/// Creates every index the services rely on. Idempotent.
///
/// `raw_retention` is the aggregator's (`CP_RAW_RETENTION_DAYS`); other services pass `None`
/// and leave the raw-batch indexes to it, so two services never ask for one TTL index with
/// different options (which MongoDB refuses). Changing the retention of an existing deployment
/// needs a `collMod` of that index.
pub async fn ensure_indexes(db: &Database, raw_retention: Option<Duration>) -> anyhow::Result<()> {
    type Doc = mongodb::bson::Document;
    let mut plan: Vec<(&str, Vec<IndexModel>)> = vec![
        (c::USERS, vec![index(doc! {"email": 1}, unique())]),
        (c::SITES, vec![index(doc! {"api_key": 1}, unique()), index(doc! {"owner_id": 1}, None)]),
        (
            c::VISITOR_MARKS,
            vec![index(doc! {"site_id": 1, "hour": 1}, None), index(doc! {"expire_at": 1}, ttl(Duration::ZERO))],
        ),
        (
            c::ROLLUPS,
            vec![
                index(doc! {"site_id": 1, "day": 1}, None),
                index(doc! {"site_id": 1, "hour": 1}, None),
                index(doc! {"expire_at": 1}, ttl(Duration::ZERO)),
            ],
        ),
        (
            c::TOP_ROLLUPS,
            vec![
                index(doc! {"site_id": 1, "dim": 1, "day": 1}, None),
                index(doc! {"site_id": 1, "dim": 1, "hour": 1}, None),
                index(doc! {"expire_at": 1}, ttl(Duration::ZERO)),
            ],
        ),
        (c::RECOVERIES, vec![index(doc! {"until": 1}, ttl(Duration::from_secs(24 * 3600)))]),
    ];
    if let Some(retention) = raw_retention {
        plan.push((
            c::RAW_BATCHES,
            vec![
                index(doc! {"flush": 1}, None),
                index(doc! {"applied": 1, "claimed_at": 1}, None),
                index(doc! {"received": 1}, ttl(retention)),
            ],
        ));
    }
    for (name, models) in plan {
        db.collection::<Doc>(name)
            .create_indexes(models)
            .await
            .with_context(|| format!("creating indexes on {name}"))?;
    }
    Ok(())
}
