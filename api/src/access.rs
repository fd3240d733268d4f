//! Who may do what with a site: the one place every per-site route asks.
//!
//! A site's owner is its `owner_id`; anyone else is what the site's team document says
//! ([`shared::team`]): a viewer, an admin, or nobody. Each route names the least role it needs
//! ([`Role`]); a member below it gets 403 `forbidden`, and anyone who is not a member gets
//! 404, as if the site did not exist, so ids cannot be probed. Both reads are by `_id` and
//! nothing is cached: a removed member loses access with the write that removed it.

use mongodb::bson::doc;
use shared::{
    store::SiteDoc,
    team::{Role, TeamDoc},
};

use crate::{
    error::ApiError,
    extractors::{AuthUser, Reader},
    state::AppState,
};

/// Compare-and-set rounds a team change tries before answering 503.
const TEAM_TRIES: usize = 20;

/// A site and the caller's role on it.
#[derive(Debug, Clone)]
pub struct SiteAccess {
    pub site: SiteDoc,
    pub role: Role,
}

/// The role `user_id` has on `site`, if any (`team`: the site's team document, if read).
pub fn role_of(site: &SiteDoc, team: Option<&TeamDoc>, user_id: &str) -> Option<Role> {
    if site.owner_id == user_id {
        return Some(Role::Owner);
    }
    team.and_then(|t| t.member(user_id)).map(|m| m.role)
}

/// Site `id` for `user`, who must hold at least `need` on it.
pub async fn site_for(state: &AppState, user: &AuthUser, id: &str, need: Role) -> Result<SiteAccess, ApiError> {
    shared::http::record_site(id);
    let site = state.sites.find_one(doc! {"_id": id}).await?.ok_or(ApiError::NotFound)?;
    let role = if site.owner_id == user.user_id {
        Role::Owner
    } else {
        let team = read_team(state, id).await?;
        role_of(&site, team.as_ref(), &user.user_id).ok_or(ApiError::NotFound)?
    };
    if role < need {
        return Err(ApiError::Forbidden(match need {
            Role::Owner => "only the site's owner may do this",
            Role::Admin => "this needs the admin role on the site",
            Role::Viewer => "this needs a role on the site",
        }));
    }
    Ok(SiteAccess { site, role })
}

/// A site `id` the reader may read stats of: a viewer or more, and within a Stats API key's
/// scope; else 404.
pub async fn readable_site(state: &AppState, reader: &Reader, id: &str) -> Result<SiteDoc, ApiError> {
    if !reader.allows(id) {
        return Err(ApiError::NotFound);
    }
    Ok(site_for(state, &reader.user, id, Role::Viewer).await?.site)
}

/// The stored team of a site, by `_id`; `None` when it has none yet.
pub async fn read_team(state: &AppState, site_id: &str) -> Result<Option<TeamDoc>, ApiError> {
    Ok(state.teams.find_one(doc! {"_id": site_id}).await?)
}

/// Changes a site's team with `change` (which may refuse), by compare-and-set on its revision:
/// a lost race reads again and retries.
pub async fn change_team<T>(
    state: &AppState,
    site_id: &str,
    mut change: impl FnMut(&mut TeamDoc) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    for _ in 0..TEAM_TRIES {
        let mut team = read_team(state, site_id).await?.unwrap_or_else(|| TeamDoc::empty(site_id));
        let read_rev = team.rev;
        team.forget_expired(state.clock.now_ms());
        let out = change(&mut team)?;
        let (filter, update) = team.write_statement(read_rev).map_err(|e| ApiError::Internal(e.into()))?;
        match state.teams.update_one(filter, update).upsert(true).await {
            Ok(_) => return Ok(out),
            Err(e) if shared::store::is_duplicate_key(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Unavailable(anyhow::anyhow!("site team {site_id}: writes kept losing races")))
}
