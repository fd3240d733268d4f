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
    /// Raised by logging out and by a password change: a token issued at a lower version is
    /// over. Accounts created before versions existed have none stored, which reads as 0, the
    /// version their tokens (which carry none) read as too.
    #[serde(default)]
    pub token_version: i64,
}

/// Field names of [`UserDoc`] used in filters and updates.
pub mod user_fields {
    pub const PASSWORD_HASH: &str = "password_hash";
    pub const TOKEN_VERSION: &str = "token_version";
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
}

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

/// A flag that reads back whether stored as a boolean or as an integer: the MongoDB-wire
/// stand-in our tests use stores a boolean `$set` on an existing document as 0 or 1.
pub mod flag {
    use mongodb::bson::Bson;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        let v = Bson::deserialize(d)?;
        read(&v).ok_or_else(|| D::Error::custom(format!("{v:?} is not a flag")))
    }

    /// A stored flag, or `None` when the value is not one.
    pub fn read(v: &Bson) -> Option<bool> {
        match v {
            Bson::Boolean(b) => Some(*b),
            Bson::Int32(0) | Bson::Int64(0) => Some(false),
            Bson::Int32(1) | Bson::Int64(1) => Some(true),
            _ => None,
        }
    }
}

/// True when `e` is MongoDB's duplicate-key error (11000): how an insert of an existing `_id`,
/// or a conditional upsert that lost a race, fails.
pub fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => e.to_string().contains("11000") || e.to_string().contains("UNIQUE constraint"),
    }
}

/// Connects to MongoDB with short timeouts: a dead database must surface as an error the
/// caller handles (503, nak), never as a hang.
///
/// When `CP_MONGO_COMMAND_LOG` names a file (tests and diagnostics only), the shape of every
/// command sent is appended to it ([`crate::command_log`]); a file that cannot be opened fails
/// the start.
pub async fn connect(uri: &str, db: &str, app: &str) -> anyhow::Result<Database> {
    let mut options = ClientOptions::parse(uri).await.with_context(|| "parsing MONGODB_URI".to_string())?;
    options.app_name = Some(app.to_string());
    options.server_selection_timeout = Some(Duration::from_secs(3));
    options.connect_timeout = Some(Duration::from_secs(3));
    if let Some(path) = std::env::var_os(crate::command_log::ENV).filter(|p| !p.is_empty()) {
        let path = std::path::PathBuf::from(path);
        crate::command_log::install(&mut options, &path, app).with_context(|| format!("opening {} ({})", crate::command_log::ENV, path.display()))?;
    }
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
        (c::SITES, vec![index(doc! {"api_key": 1}, unique()), index(doc! {"owner_id": 1}, None)]),
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
