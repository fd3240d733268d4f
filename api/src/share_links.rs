//! Share links as stored: one document per link in [`c::SHARE_LINKS`], `_id` = the SHA-256
//! of its token, naming its site; the site holds the same hash in `share_hash`. A token is
//! looked up by that `_id`, then the site by its `_id` holding that hash, so a replaced or
//! revoked link opens nothing and no lookup scans.

use mongodb::bson::doc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::{
    names::collections as c,
    store::{SiteDoc, site_fields},
};

use crate::{error::ApiError, state::AppState};

/// Longest token accepted (ours are 43 characters).
const MAX_TOKEN: usize = 128;

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A share link: the hash of its token, and the site it opens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShareLinkDoc {
    /// SHA-256 (hex) of the token.
    #[serde(rename = "_id")]
    pub id: String,
    pub site_id: String,
}

pub fn links(state: &AppState) -> mongodb::Collection<ShareLinkDoc> {
    state.db.collection(c::SHARE_LINKS)
}

/// The site a share token opens, if the link is live.
pub async fn site_by_token(state: &AppState, token: &str) -> Result<Option<SiteDoc>, ApiError> {
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Ok(None);
    }
    let hash = token_hash(token);
    let Some(link) = links(state).find_one(doc! {"_id": &hash}).await? else { return Ok(None) };
    shared::http::record_site(&link.site_id);
    // The site must still hold this link: a link replaced or revoked meanwhile opens nothing.
    Ok(state.sites.find_one(doc! {"_id": &link.site_id, site_fields::SHARE_HASH: &hash}).await?)
}

/// Deletes the link document of a hash the site no longer holds.
pub async fn forget_link(state: &AppState, hash: Option<String>) -> Result<(), ApiError> {
    if let Some(hash) = hash {
        links(state).delete_one(doc! {"_id": hash}).await?;
    }
    Ok(())
}
