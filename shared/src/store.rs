//! MongoDB document types (index setup is in [`crate::indexes`]).
//!
//! Raw events are stored one document per accepted batch (the bucket pattern), with `_id` =
//! `site:batch_id` so that a redelivered batch cannot be stored twice. Stats are read only from
//! the rollup collections.

use std::time::Duration;

use anyhow::Context as _;
use mongodb::{
    Database,
    bson::{DateTime, doc},
    options::ClientOptions,
};
use serde::{Deserialize, Serialize};

use crate::{
    ids::{Email, SiteKey},
    message::BatchMessage,
};

/// An account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub email: Email,
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
    pub const EMAIL: &str = "email";
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
    /// The currency of revenue that names none (v3; `USD` for sites created before).
    #[serde(default = "crate::money::default_currency")]
    pub currency: String,
    pub api_key: SiteKey,
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
    /// Imports of Plausible's export (v3), at most [`crate::imports::MAX_IMPORTS`], changed by
    /// a compare-and-set on `imports_rev`. Stats read the days of those `done`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<crate::imports::ImportEntry>,
    #[serde(default)]
    pub imports_rev: i64,
    /// Takes Plausible's Events API (v3), found by `domain`: while set, the site holds its
    /// domain's claim in `plausible_domains` (one site per domain).
    #[serde(default, skip_serializing_if = "std::ops::Not::not", deserialize_with = "flag")]
    pub plausible_compatible: bool,
}

/// A flag as stored: `true`/`false`, or 1/0 where a `$set` of a boolean was stored as an
/// integer (the MongoDB-wire stand-in over SQLite does so); MongoDB itself keeps booleans.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Int(i64),
    }
    Ok(match Flag::deserialize(d)? {
        Flag::Bool(b) => b,
        Flag::Int(n) => n != 0,
    })
}

/// Rotations of one site's key in any hour (the contract's "more than 10 times an hour").
pub const MAX_KEY_ROTATIONS_PER_HOUR: usize = 10;

/// Field names of [`SiteDoc`] used in filters, updates and projections.
pub mod site_fields {
    pub const ID: &str = "_id";
    pub const OWNER_ID: &str = "owner_id";
    pub const DOMAIN: &str = "domain";
    pub const TIMEZONE: &str = "timezone";
    pub const CURRENCY: &str = "currency";
    pub const API_KEY: &str = "api_key";
    pub const KEY_ROTATIONS: &str = "key_rotations";
    pub const CREATED_AT: &str = "created_at";
    pub const SHARE_HASH: &str = "share_hash";
    pub const IMPORTS: &str = "imports";
    pub const IMPORTS_REV: &str = "imports_rev";
    pub const PLAUSIBLE: &str = "plausible_compatible";
}

/// The fields of a [`SiteDoc`] its key-value entry is made of: what the api's reconcile lists
/// (a projection keeps a listing of 10,000 sites small).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteKeys {
    #[serde(rename = "_id")]
    pub id: String,
    pub api_key: SiteKey,
    pub domain: String,
    pub timezone: String,
    #[serde(default = "crate::money::default_currency")]
    pub currency: String,
    #[serde(default, deserialize_with = "flag")]
    pub plausible_compatible: bool,
}

impl SiteKeys {
    /// The projection that reads a [`SiteDoc`] as a [`SiteKeys`].
    pub fn projection() -> mongodb::bson::Document {
        use site_fields as f;
        doc! {f::ID: 1, f::API_KEY: 1, f::DOMAIN: 1, f::TIMEZONE: 1, f::CURRENCY: 1, f::PLAUSIBLE: 1}
    }
}

/// The filter that holds a write of a site's imports to the revision `rev` it read (a site
/// from before imports has no `imports_rev`: revision 0).
pub fn imports_rev_filter(site_id: &str, rev: i64) -> mongodb::bson::Document {
    use site_fields as f;
    if rev == 0 {
        doc! {f::ID: site_id, "$or": [{f::IMPORTS_REV: 0_i64}, {f::IMPORTS_REV: {"$exists": false}}]}
    } else {
        doc! {f::ID: site_id, f::IMPORTS_REV: rev}
    }
}

impl From<&SiteDoc> for SiteKeys {
    fn from(s: &SiteDoc) -> Self {
        Self {
            id: s.id.clone(),
            api_key: s.api_key.clone(),
            domain: s.domain.clone(),
            timezone: s.timezone.clone(),
            currency: s.currency.clone(),
            plausible_compatible: s.plausible_compatible,
        }
    }
}

/// A user's Stats API keys (v3), `_id` = the user's id: read by `_id` on every request a key
/// makes, changed by a compare-and-set on `rev` (`api/src/stats_keys.rs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatsKeysDoc {
    #[serde(rename = "_id")]
    pub user_id: String,
    pub rev: i64,
    #[serde(default)]
    pub keys: Vec<StatsKeyEntry>,
}

/// One Stats API key: never the key itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsKeyEntry {
    pub id: String,
    pub name: String,
    /// The site ids it reads, or `["*"]`: every site of the user, present and future.
    pub sites: Vec<String>,
    /// SHA-256 of the whole key, hex.
    pub hash: String,
    pub created_ms: i64,
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

/// True when a write failed on a unique index (`_id` included): code 11000 — how an insert of
/// an existing `_id`, or a conditional upsert that lost a race, fails. (The MongoDB-wire
/// stand-in may report it only in its message.)
pub fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => e.to_string().contains("E11000") || e.to_string().contains("UNIQUE constraint"),
    }
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
pub fn revisioned_write(
    doc: &impl Serialize,
    id: &str,
    read_rev: i64,
) -> Result<mongodb::bson::Document, mongodb::bson::ser::Error> {
    let mut fields = mongodb::bson::to_document(doc)?;
    fields.remove("_id");
    let expire_at = fields.remove("expire_at").unwrap_or(mongodb::bson::Bson::Null);
    Ok(
        doc! {"q": {"_id": id, "rev": read_rev}, "u": {"$set": fields, "$setOnInsert": {"expire_at": expire_at}}, "upsert": true},
    )
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
        crate::command_log::install(&mut options, &path, app)
            .with_context(|| format!("opening {} ({})", crate::command_log::ENV, path.display()))?;
    }
    let client = mongodb::Client::with_options(options).context("building MongoDB client")?;
    Ok(client.database(db))
}

/// True when MongoDB answers a ping.
pub async fn ping(db: &Database) -> bool {
    db.run_command(doc! {"ping": 1}).await.is_ok()
}
