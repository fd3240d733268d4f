//! `/api/sites*`: a user's sites and their keys. Another user's site is 404, never 403, so
//! ids cannot be probed. Key writes follow the rules in [`crate::keys`].

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use futures::TryStreamExt;
use mongodb::{
    bson::{DateTime, doc},
    options::ReturnDocument,
};
use serde::{Deserialize, Serialize};
use shared::{
    ids::SiteKey,
    site::parse_domain,
    store::{MAX_KEY_ROTATIONS_PER_HOUR, SiteDoc, SiteKeys, site_fields},
    time::parse_tz,
};
use shared::{money, telemetry::Chain};
use tower_http::set_header::SetResponseHeaderLayer;

use shared::team::Role;

use crate::{
    access::site_for,
    error::ApiError,
    extractors::Reader,
    extractors::{ApiJson, AuthUser},
    keys, plausible_domains,
    quota::{self, SiteSlots},
    routes::auth::rfc3339,
    state::AppState,
};

/// Every answer here may carry a site key: no cache may keep it.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sites", get(list).post(create))
        .route("/api/sites/{id}", get(read).patch(update).delete(remove))
        .route("/api/sites/{id}/rotate-key", post(rotate))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
}

/// `site` as the API shows it.
#[derive(Debug, Serialize)]
pub struct SiteView {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub timezone: String,
    /// The currency of revenue that names none (v3).
    pub currency: String,
    pub api_key: SiteKey,
    pub created_at: String,
    /// The caller's role on the site (teams): `owner`, `admin` or `viewer`.
    pub role: Role,
    /// Takes Plausible's Events API at ingest's `POST /api/event` (v3).
    pub plausible_compatible: bool,
}

impl SiteView {
    pub fn with_role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }
}

impl From<&SiteDoc> for SiteView {
    fn from(s: &SiteDoc) -> Self {
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            domain: s.domain.clone(),
            timezone: s.timezone.clone(),
            currency: s.currency.clone(),
            api_key: s.api_key.clone(),
            created_at: rfc3339(s.created_at),
            role: Role::Owner,
            plausible_compatible: s.plausible_compatible,
        }
    }
}

/// Longest site name, in characters.
pub const MAX_SITE_NAME_CHARS: usize = 100;

/// 1 to 100 characters as sent, not only white space, no control characters once trimmed;
/// stored trimmed. (docs/openapi.yaml's `SiteName` pattern says the same.)
fn parse_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || raw.chars().count() > MAX_SITE_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::InvalidSite(
            "name: must be 1 to 100 characters, not only spaces, without control characters".into(),
        ));
    }
    Ok(name.to_string())
}

fn parse_site_domain(raw: &str) -> Result<String, ApiError> {
    parse_domain(raw).ok_or_else(|| {
        ApiError::InvalidSite("domain: must be a bare host name like example.com (no scheme, port or path)".into())
    })
}

/// An IANA name exactly as the database spells it (`Europe/Berlin`).
fn parse_timezone(raw: &str) -> Result<String, ApiError> {
    parse_tz(raw)
        .map(|tz| tz.name().to_string())
        .ok_or_else(|| ApiError::InvalidSite("timezone: must be an IANA time zone such as Europe/Berlin".into()))
}

/// An ISO 4217 code (v3): the currency of revenue that names none.
fn parse_currency(raw: &str) -> Result<String, ApiError> {
    if money::is_currency(raw) {
        Ok(raw.to_string())
    } else {
        Err(ApiError::InvalidSite("currency: must be an ISO 4217 currency code such as USD or EUR".into()))
    }
}

/// The site on `domain` the reader may read (the v2 query names a site by its domain, issue
/// 23), or `None`. A user may hold several sites on one domain: the oldest readable one answers
/// (the earliest `created_at`, then the smallest id), so the choice never depends on the order
/// the database returns them in. Reads the user's sites through the owner index: at most
/// `CP_MAX_SITES_PER_ACCOUNT` documents. Sites the user is a member of are not looked at.
pub async fn readable_site_by_domain(state: &AppState, reader: &Reader, domain: &str) -> Result<Option<SiteDoc>, ApiError> {
    let sites: Vec<SiteDoc> =
        state.sites.find(doc! {site_fields::OWNER_ID: &reader.user.user_id}).await?.try_collect().await?;
    let site = sites
        .into_iter()
        .filter(|s| s.domain == domain && reader.allows(&s.id))
        .min_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    if let Some(s) = &site {
        shared::http::record_site(&s.id);
    }
    Ok(site)
}

async fn list(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Vec<SiteView>>, ApiError> {
    let sites: Vec<SiteDoc> = state
        .sites
        .find(doc! {site_fields::OWNER_ID: &auth.user_id})
        .sort(doc! {site_fields::CREATED_AT: 1})
        .await?
        .try_collect()
        .await?;
    let mut views: Vec<SiteView> = sites.iter().map(SiteView::from).collect();
    views.extend(crate::routes::members::member_sites(&state, &auth.user_id).await?);
    Ok(Json(views))
}

#[derive(Deserialize)]
struct CreateBody {
    name: Option<String>,
    domain: Option<String>,
    timezone: Option<String>,
    currency: Option<String>,
    plausible_compatible: Option<bool>,
}

async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    let site = SiteDoc {
        id: keys::new_id()?,
        owner_id: auth.user_id,
        name: parse_name(body.name.as_deref().unwrap_or_default())?,
        domain: parse_site_domain(body.domain.as_deref().unwrap_or_default())?,
        timezone: parse_timezone(body.timezone.as_deref().unwrap_or("UTC"))?,
        currency: parse_currency(body.currency.as_deref().unwrap_or(money::DEFAULT_CURRENCY))?,
        api_key: keys::new_site_key()?,
        created_at: DateTime::now(),
        share_hash: None,
        key_rotations: Vec::new(),
        imports: Vec::new(),
        imports_rev: 0,
        plausible_compatible: body.plausible_compatible.unwrap_or(false),
    };
    if site.plausible_compatible {
        plausible_domains::claim(&state, &site.domain, &site.id).await?;
    }
    // A task of its own: a client that goes away must not leave a slot taken and no site.
    let created =
        tokio::spawn(create_with_slot(state.clone(), site.clone())).await.map_err(|e| ApiError::Internal(e.into()))?;
    let site = match created {
        Ok(site) => site,
        Err(e) => {
            if site.plausible_compatible {
                plausible_domains::release(&state, &site.domain, &site.id).await?;
            }
            return Err(e);
        }
    };
    Ok((StatusCode::CREATED, Json(SiteView::from(&site))))
}

/// Takes one of the owner's site slots, stores the site and publishes its key; gives the slot
/// back when that fails (`quota` steps 1 to 3).
async fn create_with_slot(state: AppState, site: SiteDoc) -> Result<SiteDoc, ApiError> {
    let slots = SiteSlots::new(&state.db, state.config.max_sites_per_account);
    slots.take(&site.owner_id).await?;
    if let Err(e) = state.sites.insert_one(&site).await {
        give_back(&slots, &site.owner_id).await;
        return Err(e.into());
    }
    if let Err(e) = state.keys.publish_new(&SiteKeys::from(&site)).await {
        // Keep MongoDB and the bucket consistent: no site without a live key. The publish may
        // have landed although it failed here, so revoke too (best effort; the reconcile
        // catches what is left).
        let _ = state.sites.delete_one(doc! {"_id": &site.id}).await;
        let _ = state.keys.revoke(&site.api_key).await;
        give_back(&slots, &site.owner_id).await;
        return Err(e);
    }
    Ok(site)
}

/// Gives a slot back; a failure only costs the account a slot, so it is logged, not answered.
async fn give_back(slots: &SiteSlots, owner: &str) {
    if let Err(e) = slots.give_back(owner).await {
        tracing::error!(error = %Chain(&e), "a site slot could not be given back; the account's counter runs one high");
    }
}

async fn read(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<Json<SiteView>, ApiError> {
    let access = site_for(&state, &auth, &id, Role::Viewer).await?;
    Ok(Json(SiteView::from(&access.site).with_role(access.role)))
}

#[derive(Deserialize)]
struct UpdateBody {
    name: Option<String>,
    domain: Option<String>,
    timezone: Option<String>,
    currency: Option<String>,
    plausible_compatible: Option<bool>,
}

async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<SiteView>, ApiError> {
    let mut set = mongodb::bson::Document::new();
    if let Some(name) = &body.name {
        set.insert("name", parse_name(name)?);
    }
    if let Some(domain) = &body.domain {
        set.insert("domain", parse_site_domain(domain)?);
    }
    if let Some(tz) = &body.timezone {
        set.insert("timezone", parse_timezone(tz)?);
    }
    if let Some(cur) = &body.currency {
        set.insert(site_fields::CURRENCY, parse_currency(cur)?);
    }
    let before = site_for(&state, &auth, &id, Role::Owner).await?.site;
    // Plausible's Events API: the domain it will have is claimed before the write, the one it
    // had given up after it.
    let domain = set.get_str("domain").map(str::to_string).unwrap_or_else(|_| before.domain.clone());
    let plausible = body.plausible_compatible.unwrap_or(before.plausible_compatible);
    if plausible {
        plausible_domains::claim(&state, &domain, &id).await?;
    }
    if let Some(on) = body.plausible_compatible {
        set.insert(site_fields::PLAUSIBLE, on);
    }
    let filter = doc! {"_id": &id, site_fields::OWNER_ID: &auth.user_id};
    let site = if set.is_empty() {
        state.sites.find_one(filter).await?
    } else {
        state.sites.find_one_and_update(filter, doc! {"$set": set}).return_document(ReturnDocument::After).await?
    }
    .ok_or(ApiError::NotFound)?;
    if before.plausible_compatible && (!site.plausible_compatible || site.domain != before.domain) {
        plausible_domains::release(&state, &before.domain, &id).await?;
    }
    if body.domain.is_some() || body.timezone.is_some() || body.currency.is_some() || body.plausible_compatible.is_some() {
        // Publishes whatever key the site holds now, never a key a rotate revoked meanwhile.
        state.keys.refresh(&site.id, &site.api_key).await?;
    }
    Ok(Json(SiteView::from(&site)))
}

/// Revokes the key the deleted document held, so a rotate that swapped just before loses its
/// new key too, and gives the owner's site slot back.
async fn remove(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    site_for(&state, &auth, &id, Role::Owner).await?;
    // A task of its own: once the document is gone, the slot, the key, the share link and the
    // team must follow.
    tokio::spawn(async move {
        let site = state
            .sites
            .find_one_and_delete(doc! {"_id": &id, site_fields::OWNER_ID: &auth.user_id})
            .await?
            .ok_or(ApiError::NotFound)?;
        give_back(&SiteSlots::new(&state.db, state.config.max_sites_per_account), &site.owner_id).await;
        state.keys.revoke(&site.api_key).await?;
        if site.plausible_compatible {
            plausible_domains::release(&state, &site.domain, &site.id).await?;
        }
        crate::routes::members::forget_team(&state, &site.id).await?;
        crate::share_links::forget_link(&state, site.share_hash).await
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))??;
    Ok(StatusCode::NO_CONTENT)
}

/// Most compare-and-set rounds of one rotate. Each round it loses is a rotation that another
/// request made, so within [`MAX_KEY_ROTATIONS_PER_HOUR`] lost rounds the limit answers.
const ROTATE_ROUNDS: usize = MAX_KEY_ROTATIONS_PER_HOUR + 2;

/// Rotate, race-free (`keys` rule 4) and at most 10 times an hour (`quota`): publish the new
/// key, swap it in only if the site still holds the key read here, writing the rotation's
/// time with it, then revoke the old one. A rotate that loses the swap to another revokes the
/// key it published and starts over from the site as it is now, so every 200 is a rotation of
/// its own, and of 40 racing rotates 10 get 200 and 30 get 429.
async fn rotate(State(state): State<AppState>, auth: AuthUser, Path(id): Path<String>) -> Result<Json<SiteView>, ApiError> {
    for _ in 0..ROTATE_ROUNDS {
        let site = site_for(&state, &auth, &id, Role::Owner).await?.site;
        let rotations = quota::next_rotations(&site.key_rotations, state.clock.now_ms())
            .map_err(|retry_after| ApiError::RotationLimit { retry_after })?;
        let next = SiteDoc { api_key: keys::new_site_key()?, ..site.clone() };
        state.keys.publish_new(&SiteKeys::from(&next)).await?;
        let swapped = state
            .sites
            .find_one_and_update(
                doc! {"_id": &site.id, site_fields::OWNER_ID: &site.owner_id, site_fields::API_KEY: &site.api_key},
                doc! {"$set": {site_fields::API_KEY: &next.api_key, site_fields::KEY_ROTATIONS: rotations}},
            )
            .return_document(ReturnDocument::After)
            .await?;
        let Some(current) = swapped else {
            state.keys.revoke(&next.api_key).await?;
            continue;
        };
        if current.domain != next.domain || current.timezone != next.timezone || current.currency != next.currency {
            // A domain change landed between the read and the swap: publish what the site says now.
            state.keys.refresh(&current.id, &current.api_key).await?;
        }
        state.keys.revoke(&site.api_key).await?;
        return Ok(Json(SiteView::from(&current)));
    }
    Err(ApiError::Unavailable(anyhow::anyhow!("rotate kept losing the swap")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_bound_their_characters_not_their_trimmed_form() {
        let ok = [
            ("Landing", "Landing"),
            ("  Pricing page ", "Pricing page"),
            ("\u{a0}Ünïcode\u{3000}", "Ünïcode"),
            ("x\n", "x"),
        ];
        for (raw, want) in ok {
            assert_eq!(parse_name(raw).expect(raw), want, "case {raw:?}");
        }
        let too_long = "n".repeat(101);
        let long_with_spaces = format!(" {} ", "n".repeat(99));
        for bad in ["", "   ", "\t\n", "a\u{7}b", "tab\tinside", "\u{1c}x", too_long.as_str(), long_with_spaces.as_str()] {
            assert!(parse_name(bad).is_err(), "case {bad:?}");
        }
        assert!(parse_name(&"n".repeat(100)).is_ok());
    }

    #[test]
    fn time_zones_are_exact_iana_names() {
        assert_eq!(parse_timezone("Europe/Berlin").expect("valid"), "Europe/Berlin");
        for bad in ["europe/berlin", " UTC", "Mars/Olympus", ""] {
            assert!(parse_timezone(bad).is_err(), "case {bad:?}");
        }
    }

    /// The OpenAPI document lists every time zone the server accepts, so a client (and
    /// schemathesis) can know them. On a chrono-tz upgrade this prints the new list.
    #[test]
    fn openapi_lists_exactly_the_accepted_time_zones() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.yaml");
        let doc = std::fs::read_to_string(&path).expect("docs/openapi.yaml");
        let listed: Vec<&str> = doc
            .split_once("    Timezone:")
            .and_then(|(_, rest)| rest.split_once("enum: [")?.1.split_once(']'))
            .map(|(list, _)| list.split(',').map(|n| n.trim().trim_matches('"')).filter(|n| !n.is_empty()).collect())
            .unwrap_or_default();
        let names: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
        if listed != names {
            let mut lines = vec![String::new()];
            for name in &names {
                let item = format!("\"{name}\", ");
                if lines.last().is_some_and(|l| l.len() + item.len() > 100) {
                    lines.push(String::new());
                }
                if let Some(line) = lines.last_mut() {
                    line.push_str(&item);
                }
            }
            panic!("the Timezone enum of docs/openapi.yaml should list:\n{}", lines.join("\n"));
        }
    }
}
