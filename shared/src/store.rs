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

use crate::{message::BatchMessage, names::collections as c};

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
    /// SHA-256 (hex) of the site's public share token, while a share link exists. The token
    /// itself is shown once, when created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_hash: Option<String>,
    /// When the key was rotated (ms since the epoch) within the last hour, oldest first: at
    /// most [`MAX_KEY_ROTATIONS_PER_HOUR`] entries. Written together with `api_key`, by one
    /// compare-and-set on the key (`api/src/routes/sites.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_rotations: Vec<i64>,
}

/// Rotations of one site's key in any hour (the contract's "more than 10 times an hour").
pub const MAX_KEY_ROTATIONS_PER_HOUR: usize = 10;

/// Field names of [`SiteDoc`] used in filters, updates and projections.
pub mod site_fields {
    pub const ID: &str = "_id";
    pub const OWNER_ID: &str = "owner_id";
    pub const DOMAIN: &str = "domain";
    pub const TIMEZONE: &str = "timezone";
    pub const API_KEY: &str = "api_key";
    pub const KEY_ROTATIONS: &str = "key_rotations";
}

/// The fields of a [`SiteDoc`] its key-value entry is made of: what the api's reconcile lists
/// (a projection keeps a listing of 10,000 sites small).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteKeys {
    #[serde(rename = "_id")]
    pub id: String,
    pub api_key: String,
    pub domain: String,
    pub timezone: String,
}

impl SiteKeys {
    /// The projection that reads a [`SiteDoc`] as a [`SiteKeys`].
    pub fn projection() -> mongodb::bson::Document {
        use site_fields as f;
        doc! {f::ID: 1, f::API_KEY: 1, f::DOMAIN: 1, f::TIMEZONE: 1}
    }
}

impl From<&SiteDoc> for SiteKeys {
    fn from(s: &SiteDoc) -> Self {
        Self { id: s.id.clone(), api_key: s.api_key.clone(), domain: s.domain.clone(), timezone: s.timezone.clone() }
    }
}

/// How many sites an account holds or is creating, `_id` = the owner's id. `CP_MAX_SITES_PER_ACCOUNT`
/// is enforced on it with a conditional `$inc` (`api/src/quota.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteCountDoc {
    #[serde(rename = "_id")]
    pub owner_id: String,
    pub n: i64,
}

/// Field names of [`SiteCountDoc`] used in filters and updates.
pub mod site_count_fields {
    pub const N: &str = "n";
}

/// A lease on a job, `_id` = the job's name: `holder` may run it until `until` (ms since the
/// epoch, by the holder's clock; `api/src/lease.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub holder: String,
    pub until: i64,
}

/// Field names of [`LeaseDoc`] used in filters and updates.
pub mod lease_fields {
    pub const HOLDER: &str = "holder";
    pub const UNTIL: &str = "until";
}

/// True when a write failed on a unique index (`_id` included): code 11000.
pub fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

/// A goal of a site. Deleting one sets `deleted_at` (the database's clock): the aggregator
/// keeps matching it against batches received before the deletion, so that replaying a flush
/// counts what the first attempt counted; a TTL index purges it [`DELETED_GOAL_KEEP`] later.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GoalDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub site_id: String,
    pub name: String,
    pub kind: crate::goal::GoalKind,
    #[serde(rename = "match")]
    pub matcher: String,
    pub created_at: DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime>,
}

impl GoalDoc {
    /// True when the goal applies to a batch received at `received_ms`.
    pub fn applies_at(&self, received_ms: i64) -> bool {
        self.created_at.timestamp_millis() <= received_ms && self.deleted_at.is_none_or(|d| received_ms < d.timestamp_millis())
    }
}

/// Field names of [`GoalDoc`] used in filters.
pub mod goal_fields {
    pub const SITE_ID: &str = "site_id";
    pub const DELETED_AT: &str = "deleted_at";
    pub const CREATED_AT: &str = "created_at";
}

/// How long a deleted goal is kept for the aggregator.
pub const DELETED_GOAL_KEEP: Duration = Duration::from_secs(2 * 24 * 3600);

/// The raw document of one accepted batch, `_id` = `site:batch_id` (a batch is stored once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawBatchDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(flatten)]
    pub msg: BatchMessage,
    /// Receive time as a date, for the retention TTL index.
    pub received: DateTime,
    /// The flush that claimed the batch (see [`FlushRecord`]).
    pub flush: String,
}

/// One visitor seen on one local day of a site: inserting it tells whether the visitor is new
/// that day. `_id` = `site|d|YYYY-MM-DD|visitor`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VisitorMarkDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub site_id: String,
    pub day: String,
    pub v: String,
    /// The flush that inserted it.
    pub f: String,
    /// Marks are needed only while their day can still receive batches.
    pub expire_at: DateTime,
}

impl VisitorMarkDoc {
    pub fn id_of(site_id: &str, day: &str, visitor: &str) -> String {
        format!("{site_id}|d|{day}|{visitor}")
    }
}

/// Field names of [`VisitorMarkDoc`] used in filters.
pub mod mark_fields {
    pub const FLUSH: &str = "f";
}

/// Where a flush stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushState {
    /// Claimed batches; its rollup writes may be partly done.
    Applying,
    /// Every rollup write done; its batches' messages may be acked.
    Done,
}

/// One flush of the aggregator: the unit of its exactly-once protocol.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlushRecord {
    /// `<instance>:<sequence>`.
    #[serde(rename = "_id")]
    pub id: String,
    /// The aggregator instance that ran it.
    pub inst: String,
    pub seq: i64,
    pub state: FlushState,
    pub claimed_at: DateTime,
    /// Set (by the server's clock) when done: the record is then kept [`DONE_FLUSH_KEEP`],
    /// well past any redelivery of its messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<DateTime>,
}

/// How long a done flush record is kept.
pub const DONE_FLUSH_KEEP: Duration = Duration::from_secs(24 * 3600);

/// Field names of [`FlushRecord`] used in filters.
pub mod flush_fields {
    pub const INST: &str = "inst";
    pub const STATE: &str = "state";
    pub const CLAIMED_AT: &str = "claimed_at";
    pub const DONE_AT: &str = "done_at";
    pub const APPLYING: &str = "applying";
    pub const DONE: &str = "done";
}

/// Field names of [`RawBatchDoc`] used in filters.
pub mod raw_fields {
    pub const FLUSH: &str = "flush";
}

/// A write of `doc` (whose `_id` is `id`) that succeeds only if the stored document still has
/// revision `read_rev` (0: not stored yet, then it is inserted). A concurrent write makes it
/// fail with a duplicate-key error: the upsert finds no match and the insert collides on `_id`.
///
/// Written as `$set` of every field rather than as a replacement document: the same effect
/// (these documents' fields never change set), and the MongoDB-wire stand-in our tests run on
/// cannot replace a document holding binary fields. `expire_at` never changes and goes in
/// `$setOnInsert`: the stand-in turns a date set on an existing document into a string.
pub fn revisioned_write(doc: &impl Serialize, id: &str, read_rev: i64) -> Result<mongodb::bson::Document, mongodb::bson::ser::Error> {
    let mut fields = mongodb::bson::to_document(doc)?;
    fields.remove("_id");
    let expire_at = fields.remove("expire_at").unwrap_or(mongodb::bson::Bson::Null);
    Ok(doc! {"q": {"_id": id, "rev": read_rev}, "u": {"$set": fields, "$setOnInsert": {"expire_at": expire_at}}, "upsert": true})
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
    use flush_fields as f;
    type Doc = mongodb::bson::Document;
    let mut plan: Vec<(&str, Vec<IndexModel>)> = vec![
        (c::USERS, vec![index(doc! {"email": 1}, unique())]),
        (c::SITES, vec![index(doc! {"api_key": 1}, unique()), index(doc! {"owner_id": 1}, None), index(doc! {"share_hash": 1}, None)]),
        (
            c::GOALS,
            vec![index(doc! {goal_fields::SITE_ID: 1, goal_fields::CREATED_AT: 1}, None), index(doc! {goal_fields::DELETED_AT: 1}, ttl(DELETED_GOAL_KEEP))],
        ),
        (c::VISITOR_MARKS, vec![index(doc! {"expire_at": 1}, ttl(Duration::ZERO))]),
        (c::SESSIONS, vec![index(doc! {"expire_at": 1}, ttl(Duration::ZERO))]),
        (c::ROLLUPS, crate::rollup::indexes()),
        (
            c::FLUSHES,
            vec![
                index(doc! {f::STATE: 1, f::CLAIMED_AT: 1}, None),
                index(doc! {f::INST: 1, f::STATE: 1}, None),
                index(doc! {f::DONE_AT: 1}, ttl(DONE_FLUSH_KEEP)),
            ],
        ),
        (c::RECOVERIES, vec![index(doc! {"until": 1}, ttl(Duration::from_secs(24 * 3600)))]),
    ];
    if let Some(retention) = raw_retention {
        plan.push((c::RAW_BATCHES, vec![index(doc! {raw_fields::FLUSH: 1}, None), index(doc! {"received": 1}, ttl(retention))]));
    }
    for (name, models) in plan {
        db.collection::<Doc>(name)
            .create_indexes(models)
            .await
            .with_context(|| format!("creating indexes on {name}"))?;
    }
    Ok(())
}
