//! Stats API keys (v3): read-only keys a user makes for scripts and dashboards of their own.
//!
//! A key is `cps_<user id>_<key id>_<secret>`: the user id finds the user's one key document
//! (`stats_keys`, `_id` = the user, read by `_id`), the key id the entry, and the entry holds
//! only the SHA-256 of the whole key, so the key is shown once, when made, and never stored.
//!
//! - **Read-only.** A key passes [`crate::extractors::Reader`], which the stats reads take
//!   (stats, realtime, export, page, funnels, event properties); every route that takes
//!   [`crate::extractors::AuthUser`] answers a key 403 `read_only`.
//! - **Scoped.** A key reads the sites it names, or `*`: every site of its user, present and
//!   future; any other site is 404, as someone else's is.
//! - **Revoked at once.** Every request a key makes reads its entry: a deleted key is refused
//!   by the next request (the contract allows 5 s).
//! - **At most [`MAX_KEYS_PER_USER`].** Creates and deletes change the document by a
//!   compare-and-set on `rev`, so racing creates cannot pass the limit.

use mongodb::bson::doc;
use serde::Serialize;
use sha2::{Digest, Sha256};
use shared::{
    names::collections as c,
    store::{StatsKeyEntry, StatsKeysDoc, is_duplicate_key},
};

use crate::{error::ApiError, state::AppState};

/// The most keys a user holds.
pub const MAX_KEYS_PER_USER: usize = 20;
/// What every Stats API key starts with (login tokens are JWTs, which never do).
pub const PREFIX: &str = "cps_";
/// The scope that reads every site of the user.
pub const ALL_SITES: &str = "*";
/// The most sites a key names one by one.
pub const MAX_KEY_SITES: usize = 100;
/// Compare-and-set rounds of one change: each lost is another change of the same user's keys.
const TRIES: usize = 16;

/// True for a bearer token that is a Stats API key.
pub fn is_stats_key(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// `(user id, key id)` of a key, or `None` when it cannot be one.
fn parse(key: &str) -> Option<(&str, &str)> {
    let mut parts = key.strip_prefix(PREFIX)?.splitn(3, '_');
    let (user, id, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(user) && hex(id) && (32..=64).contains(&secret.len())).then_some((user, id))
}

fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// What a key reads: the user's sites, all or these.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyScope {
    pub user_id: String,
    /// `None`: every site of the user.
    pub sites: Option<Vec<String>>,
}

impl KeyScope {
    pub fn allows(&self, site_id: &str) -> bool {
        self.sites.as_ref().is_none_or(|s| s.iter().any(|id| id == site_id))
    }
}

/// The scope of a live key; `None` for a key that is not (unknown, deleted, malformed).
pub async fn resolve(state: &AppState, key: &str) -> Result<Option<KeyScope>, ApiError> {
    let Some((user, id)) = parse(key) else { return Ok(None) };
    let doc = state.db.collection::<StatsKeysDoc>(c::STATS_KEYS).find_one(doc! {"_id": user}).await?;
    let want = hash(key);
    Ok(doc
        .and_then(|d| d.keys.into_iter().find(|k| k.id == id && k.hash == want))
        .map(|k| KeyScope { user_id: user.to_string(), sites: (k.sites.iter().all(|s| s != ALL_SITES)).then_some(k.sites) }))
}

/// A key as listed: never the key or its hash.
#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    /// The site ids, or `"*"`.
    pub sites: serde_json::Value,
    pub created_at: String,
}

impl From<&StatsKeyEntry> for KeyView {
    fn from(k: &StatsKeyEntry) -> Self {
        let sites = if k.sites.iter().any(|s| s == ALL_SITES) {
            serde_json::Value::String(ALL_SITES.into())
        } else {
            serde_json::json!(k.sites)
        };
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            sites,
            created_at: crate::routes::auth::rfc3339(mongodb::bson::DateTime::from_millis(k.created_ms)),
        }
    }
}

/// The user's keys, oldest first.
pub async fn list(state: &AppState, user_id: &str) -> Result<Vec<StatsKeyEntry>, ApiError> {
    let doc = state.db.collection::<StatsKeysDoc>(c::STATS_KEYS).find_one(doc! {"_id": user_id}).await?;
    Ok(doc.map(|d| d.keys).unwrap_or_default())
}

/// Makes a key named `name` for `sites` (ids already checked, or `["*"]`); returns its entry
/// and the key, which exists nowhere else.
pub async fn create(
    state: &AppState,
    user_id: &str,
    name: String,
    sites: Vec<String>,
) -> Result<(StatsKeyEntry, String), ApiError> {
    let id = crate::keys::new_id()?;
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| ApiError::Internal(anyhow::anyhow!("no randomness: {e}")))?;
    use base64::Engine as _;
    let key = format!("{PREFIX}{user_id}_{id}_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret));
    let entry = StatsKeyEntry { id, name, sites, hash: hash(&key), created_ms: state.clock.now_ms() };
    change(state, user_id, |keys| {
        if keys.len() >= MAX_KEYS_PER_USER {
            return Err(ApiError::InvalidRequest(format!(
                "a user has at most {MAX_KEYS_PER_USER} Stats API keys; delete one to add another"
            )));
        }
        keys.push(entry.clone());
        Ok(())
    })
    .await?;
    Ok((entry, key))
}

/// Deletes key `id` of the user; `NotFound` when there is none.
pub async fn delete(state: &AppState, user_id: &str, id: &str) -> Result<(), ApiError> {
    change(state, user_id, |keys| {
        let before = keys.len();
        keys.retain(|k| k.id != id);
        if keys.len() == before { Err(ApiError::NotFound) } else { Ok(()) }
    })
    .await
}

/// Applies `edit` to the user's keys by a compare-and-set on `rev` (an insert for a user
/// without keys yet), again from a fresh read when another change came first.
async fn change(
    state: &AppState,
    user_id: &str,
    mut edit: impl FnMut(&mut Vec<StatsKeyEntry>) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let coll = state.db.collection::<StatsKeysDoc>(c::STATS_KEYS);
    for _ in 0..TRIES {
        let current = coll.find_one(doc! {"_id": user_id}).await?;
        let mut next =
            current.clone().unwrap_or_else(|| StatsKeysDoc { user_id: user_id.to_string(), ..Default::default() });
        edit(&mut next.keys)?;
        next.rev += 1;
        let written = match current {
            None => match coll.insert_one(&next).await {
                Ok(_) => true,
                Err(e) if is_duplicate_key(&e) => false,
                Err(e) => return Err(e.into()),
            },
            Some(cur) => {
                let keys = mongodb::bson::to_bson(&next.keys).map_err(|e| ApiError::Internal(e.into()))?;
                let res = coll
                    .update_one(doc! {"_id": user_id, "rev": cur.rev}, doc! {"$set": {"keys": keys, "rev": next.rev}})
                    .await?;
                res.matched_count == 1
            }
        };
        if written {
            return Ok(());
        }
    }
    Err(ApiError::Unavailable(anyhow::anyhow!("Stats API keys kept changing under the write")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_into_user_and_id_only_when_well_formed() {
        let secret = "A".repeat(43);
        let key = format!("cps_0123abcd_89ef_{secret}");
        assert_eq!(parse(&key), Some(("0123abcd", "89ef")));
        // A secret may hold the separator: it is the rest.
        let odd = format!("cps_0123abcd_89ef_{}_x", "B".repeat(40));
        assert_eq!(parse(&odd), Some(("0123abcd", "89ef")));
        for bad in [
            "",
            "cps_",
            "cps_zz_89ef_x",
            &format!("cps__89ef_{secret}"),
            &format!("cps_01_89ef_{}", "C".repeat(8)),
            "eyJhbGciOi.x.y",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert!(is_stats_key(&key) && !is_stats_key("eyJhbGciOiJIUzI1NiJ9.e30.x"));
    }

    #[test]
    fn a_scope_of_all_sites_allows_any_and_a_list_only_its_own() {
        let all = KeyScope { user_id: "u".into(), sites: None };
        let some = KeyScope { user_id: "u".into(), sites: Some(vec!["a".into()]) };
        assert!(all.allows("x") && some.allows("a") && !some.allows("b"));
    }
}
