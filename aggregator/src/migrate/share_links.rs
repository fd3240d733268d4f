//! The one-off creation of the share-link documents (`share_links`, `_id` = the SHA-256 of a
//! link's token) of the links that existed before them, when a site held only the hash: the api
//! now finds a link by that `_id`, never by a filter on the sites.
//!
//! Each link document is inserted only if absent; links created since already have theirs.

use futures::TryStreamExt;
use mongodb::{
    Database,
    bson::{Document, doc},
};
use shared::{names::collections as c, store::site_fields};

use crate::writer::{self, Cost};

/// This migration's id in [`c::MIGRATIONS`].
pub const ID: &str = "share-links-v1";

pub(super) async fn migrate(db: &Database) -> anyhow::Result<()> {
    let mut cursor = db
        .collection::<Document>(c::SITES)
        .find(doc! {site_fields::SHARE_HASH: {"$exists": true}})
        .projection(doc! {site_fields::SHARE_HASH: 1})
        .await?;
    let mut links = Vec::new();
    while let Some(site) = cursor.try_next().await? {
        if let (Ok(id), Ok(hash)) = (site.get_str("_id"), site.get_str(site_fields::SHARE_HASH)) {
            links.push(doc! {"_id": hash, "site_id": id});
        }
    }
    if !links.is_empty() {
        tracing::warn!(links = links.len(), "indexing share links by their token's hash (one-off)");
        writer::insert_unordered(db, c::SHARE_LINKS, links, &mut Cost::default()).await?;
    }
    Ok(())
}
