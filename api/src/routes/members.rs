//! `/api/sites/{id}/members` and `/invite/{token}`: a site's team. The owner invites by
//! email with a role (viewer or admin); the invitation is a link good for
//! [`INVITE_TTL_MS`], mailed when mail is on; the invitee, logged in with an account of that
//! email, accepts it. Members and invitations live in the site's team document
//! ([`shared::team`]), at most [`MAX_MEMBERS_PER_SITE`] together.
//!
//! An invitation token is `<site id>.<secret>`: the site id finds the team document by `_id`,
//! and only the SHA-256 of the secret is stored, so a database reader cannot accept one.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{delete, get},
};
use futures::TryStreamExt;
use mongodb::bson::doc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::{
    ids::Email,
    names::collections as c,
    store::SiteDoc,
    team::{INVITE_TTL_MS, MAX_MEMBERS_PER_SITE, MemberEntry, MembershipDoc, Role, TeamDoc, membership_fields as mf},
};

use crate::{
    access::{change_team, read_team, role_of, site_for},
    error::ApiError,
    extractors::{ApiJson, AuthUser},
    keys,
    mail::Mail,
    routes::{auth::rfc3339, sites::SiteView},
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sites/{id}/members", get(list).post(invite))
        .route("/api/sites/{id}/members/{member_id}", delete(remove))
        .route("/invite/{token}", axum::routing::post(accept))
}

/// Most member sites `GET /api/sites` lists for one user.
const MAX_MEMBER_SITES: i64 = 500;

/// A member or an invitation as the API shows it.
#[derive(Debug, Serialize)]
pub struct MemberView {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// `active` once accepted, `invited` before.
    pub status: &'static str,
    /// When the invitation ends (invited only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Only in the answer to the invitation itself: the secret is not kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invite_url: Option<String>,
}

impl From<&MemberEntry> for MemberView {
    fn from(m: &MemberEntry) -> Self {
        Self {
            id: m.member_id.clone(),
            email: m.email.clone(),
            role: m.role,
            status: if m.user_id.is_some() { "active" } else { "invited" },
            expires_at: m
                .invite_expires_ms
                .filter(|_| m.user_id.is_none())
                .map(|t| rfc3339(mongodb::bson::DateTime::from_millis(t))),
            invite_url: None,
        }
    }
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Owner).await?.site;
    let now = state.clock.now_ms();
    let team = read_team(&state, &site.id).await?.unwrap_or_else(|| TeamDoc::empty(&site.id));
    Ok(Json(team.members.iter().filter(|m| m.is_live(now)).map(MemberView::from).collect()))
}

#[derive(Deserialize)]
struct InviteBody {
    email: Option<serde_json::Value>,
    role: Option<serde_json::Value>,
}

fn parse_role(v: Option<&serde_json::Value>) -> Result<Role, ApiError> {
    match v.and_then(|v| v.as_str()) {
        Some("viewer") => Ok(Role::Viewer),
        Some("admin") => Ok(Role::Admin),
        _ => Err(ApiError::InvalidMember("role: must be viewer or admin".into())),
    }
}

async fn invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<InviteBody>,
) -> Result<impl IntoResponse, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Owner).await?.site;
    let email = body
        .email
        .as_ref()
        .and_then(|v| v.as_str())
        .and_then(|e| Email::parse(e).ok())
        .ok_or_else(|| ApiError::InvalidMember("email: must be an email address".into()))?;
    let role = parse_role(body.role.as_ref())?;
    let owner = state.users.find_one(doc! {"_id": &site.owner_id}).await?;
    if owner.is_some_and(|o| o.email == email) {
        return Err(ApiError::MemberConflict("email: the owner of the site".into()));
    }
    let secret = keys::new_id()? + &keys::new_id()?;
    let now = state.clock.now_ms();
    let entry = MemberEntry {
        member_id: keys::new_id()?,
        email: email.as_str().to_string(),
        role,
        user_id: None,
        invite_hash: Some(hash(&secret)),
        invite_expires_ms: Some(now + INVITE_TTL_MS),
        weekly: false,
        created_ms: now,
    };
    change_team(&state, &site.id, |team| {
        if team.members.iter().any(|m| m.email == entry.email) {
            return Err(ApiError::MemberConflict("email: already a member or invited".into()));
        }
        if team.members.len() >= MAX_MEMBERS_PER_SITE {
            return Err(ApiError::MemberConflict(format!(
                "members: a site has at most {MAX_MEMBERS_PER_SITE} members and invitations; remove one first"
            )));
        }
        team.members.push(entry.clone());
        Ok(())
    })
    .await?;
    let url = format!("{}/invite/{}.{secret}", state.config.public_url, site.id);
    if state.mailer.enabled() {
        let mail = invitation_mail(&site, &entry, &url);
        // The invitation stands without its mail: the owner has the link to pass on.
        if let Err(e) = state.mailer.queue(mail).await {
            tracing::warn!(error = %shared::telemetry::Chain(&e), "invitation mail not queued");
        }
    }
    let mut view = MemberView::from(&entry);
    view.invite_url = Some(url);
    Ok((StatusCode::CREATED, Json(view)))
}

/// The invitation's mail: who invites, to which site, the role, the link and its end.
pub fn invitation_mail(site: &SiteDoc, entry: &MemberEntry, url: &str) -> Mail {
    let role = entry.role.as_str();
    let text = format!(
        "You are invited to see {name} ({domain}) on ConvertPulse as {role}.\n\n\
         Accept with the account of {email}:\n{url}\n\nThe link is good for 7 days.\n",
        name = site.name,
        domain = site.domain,
        email = entry.email,
    );
    let html = format!(
        "<p>You are invited to see <b>{name}</b> ({domain}) on ConvertPulse as {role}.</p>\n\
         <p>Accept with the account of {email}:<br><a href=\"{url}\">{url}</a></p>\n\
         <p>The link is good for 7 days.</p>\n",
        name = crate::mail::html_escape(&site.name),
        domain = crate::mail::html_escape(&site.domain),
        email = crate::mail::html_escape(&entry.email),
        url = crate::mail::html_escape(url),
    );
    Mail {
        id: format!("invite:{}", entry.member_id),
        to: entry.email.clone(),
        subject: format!("Invitation to {} on ConvertPulse", site.name),
        text,
        html,
    }
}

async fn remove(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, member_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Owner).await?.site;
    let removed = change_team(&state, &site.id, |team| {
        let at = team.members.iter().position(|m| m.member_id == member_id).ok_or(ApiError::NotFound)?;
        Ok(team.members.remove(at))
    })
    .await?;
    if let Some(user) = removed.user_id {
        // The team write above already ended the access; this only stops listing the site.
        state
            .db
            .collection::<MembershipDoc>(c::MEMBERSHIPS)
            .delete_one(doc! {"_id": MembershipDoc::new(&site.id, &user).id})
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /invite/{token}`: the logged-in invitee takes the invitation. 404 when the token is
/// unknown, used or past its end; 403 when the account's email is not the one invited.
async fn accept(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(token): Path<String>,
) -> Result<Json<SiteView>, ApiError> {
    let (site_id, secret) = token.split_once('.').ok_or(ApiError::NotFound)?;
    if site_id.len() > 64 || secret.len() > 128 {
        return Err(ApiError::NotFound);
    }
    let wanted = hash(secret);
    let user = state.users.find_one(doc! {"_id": &auth.user_id}).await?.ok_or(ApiError::NotFound)?;
    let now = state.clock.now_ms();
    let role = change_team(&state, site_id, |team| {
        let m = team
            .members
            .iter_mut()
            .find(|m| m.invite_hash.as_deref() == Some(wanted.as_str()) && m.is_live(now))
            .ok_or(ApiError::NotFound)?;
        if m.email != user.email.as_str() {
            return Err(ApiError::Forbidden("this invitation is for another email address"));
        }
        (m.user_id, m.invite_hash, m.invite_expires_ms) = (Some(auth.user_id.clone()), None, None);
        Ok(m.role)
    })
    .await?;
    let membership = MembershipDoc::new(site_id, &auth.user_id);
    state
        .db
        .collection::<MembershipDoc>(c::MEMBERSHIPS)
        .update_one(doc! {"_id": &membership.id}, doc! {"$setOnInsert": {mf::SITE_ID: site_id, mf::USER_ID: &auth.user_id}})
        .upsert(true)
        .await?;
    let site = state.sites.find_one(doc! {"_id": site_id}).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(SiteView::from(&site).with_role(role)))
}

/// The sites `user_id` is a member of (not the owner), each checked against its team, oldest
/// first.
pub async fn member_sites(state: &AppState, user_id: &str) -> Result<Vec<SiteView>, ApiError> {
    let memberships: Vec<MembershipDoc> = state
        .db
        .collection::<MembershipDoc>(c::MEMBERSHIPS)
        .find(doc! {mf::USER_ID: user_id})
        .limit(MAX_MEMBER_SITES)
        .await?
        .try_collect()
        .await?;
    if memberships.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = memberships.iter().map(|m| m.site_id.as_str()).collect();
    let teams: Vec<TeamDoc> = state.teams.find(doc! {"_id": {"$in": &ids}}).await?.try_collect().await?;
    let mut sites: Vec<SiteDoc> = state.sites.find(doc! {"_id": {"$in": &ids}}).await?.try_collect().await?;
    sites.sort_by_key(|s| s.created_at);
    Ok(sites
        .iter()
        .filter(|s| s.owner_id != user_id)
        .filter_map(|s| {
            let team = teams.iter().find(|t| t.id == s.id);
            role_of(s, team, user_id).map(|role| SiteView::from(s).with_role(role))
        })
        .collect())
}

/// A deleted site's team and memberships.
pub async fn forget_team(state: &AppState, site_id: &str) -> Result<(), ApiError> {
    state.teams.delete_one(doc! {"_id": site_id}).await?;
    state.db.collection::<MembershipDoc>(c::MEMBERSHIPS).delete_many(doc! {mf::SITE_ID: site_id}).await?;
    Ok(())
}
