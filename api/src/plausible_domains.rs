//! One site per domain takes Plausible's Events API (v3): a site turning
//! `plausible_compatible` on claims its domain in `plausible_domains` (`_id` = the domain), so
//! two sites racing for one domain get one claim and one 409 `domain_taken`. Ingest finds the
//! site by domain through the sites bucket, whose entries carry the flag.

use mongodb::bson::{Document, doc};
use shared::names::collections as c;

use crate::{error::ApiError, state::AppState};

/// Claims `domain` for `site_id`: done when it is free or the site's already; 409
/// `domain_taken` when another site holds it.
pub async fn claim(state: &AppState, domain: &str, site_id: &str) -> Result<(), ApiError> {
    let claims = state.db.collection::<Document>(c::PLAUSIBLE_DOMAINS);
    match claims.insert_one(doc! {"_id": domain, "site_id": site_id}).await {
        Ok(_) => Ok(()),
        Err(e) if shared::store::is_duplicate_key(&e) => {
            let holder = claims.find_one(doc! {"_id": domain}).await?;
            if holder.as_ref().and_then(|d| d.get_str("site_id").ok()) == Some(site_id) {
                Ok(())
            } else {
                Err(ApiError::DomainTaken(format!(
                    "plausible_compatible: another site already takes Plausible's events for {domain}"
                )))
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Gives `domain` up, if `site_id` holds it.
pub async fn release(state: &AppState, domain: &str, site_id: &str) -> Result<(), ApiError> {
    state.db.collection::<Document>(c::PLAUSIBLE_DOMAINS).delete_one(doc! {"_id": domain, "site_id": site_id}).await?;
    Ok(())
}
