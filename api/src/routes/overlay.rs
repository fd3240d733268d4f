//! The attention overlay: `POST /api/sites/{id}/overlay` (the owner) makes a link that opens a
//! page of the site with `?cp_overlay=<token>`; there the tracker sends nothing and loads
//! `/convertpulse-overlay.js`, which reads `GET /api/overlay/{token}` and paints the click map,
//! the scroll map and the sections' view rates over the live page.
//!
//! The token is signed, read-only, names one site and one path, and ends after an hour
//! ([`crate::tokens::OVERLAY_TTL_SECS`]). The page that reads it is the customer's, on another
//! origin: the overlay's answers allow any origin, as the token is all they need.

use std::collections::HashMap;

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use mongodb::bson::doc;
use serde::{Deserialize, Serialize};

use shared::team::Role;

use crate::{
    access::site_for,
    error::ApiError,
    extractors::{ApiJson, AuthUser, ClientIp},
    routes::stats::{page_path, page_view},
    state::AppState,
    throttle,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sites/{id}/overlay", post(create))
        .route("/api/overlay/{token}", get(read))
        .route("/convertpulse-overlay.js", get(script))
}

#[derive(Deserialize)]
struct CreateBody {
    path: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct OverlayLink {
    url: String,
}

async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Json<OverlayLink>, ApiError> {
    let site = site_for(&state, &auth, &id, Role::Admin).await?.site;
    let raw = match &body.path {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(p)) => Some(p.as_str()),
        Some(_) => return Err(ApiError::InvalidRequest("path: must be a string".into())),
    };
    let path = page_path(raw)?;
    let token = state.tokens.issue_overlay(&site.id, &path)?;
    Ok(Json(OverlayLink { url: overlay_url(&site.domain, &path, &token)? }))
}

/// `https://<domain><path>?cp_overlay=<token>`, the path percent-encoded where a URL needs it
/// (a path from the page list is already; one typed by hand may not be).
fn overlay_url(domain: &str, path: &str, token: &str) -> Result<String, ApiError> {
    let mut url = url::Url::parse(&format!("https://{domain}/"))
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("site domain {domain:?} makes no URL: {e}")))?;
    url.set_path(&encode_path(path));
    url.query_pairs_mut().append_pair("cp_overlay", token);
    Ok(url.into())
}

/// `path` written with only what RFC 3986 allows in a path: unreserved characters, sub-delims,
/// `:`, `@`, `/` and escapes kept; every other byte (a `%` that starts no escape, `[`, `|`,
/// a control or non-ASCII character) percent-encoded. A URL parser keeps some of those as they
/// are, which makes the URL invalid.
fn encode_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    for (i, &b) in bytes.iter().enumerate() {
        let escape_start =
            b == b'%' && bytes.len() > i + 2 && bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit();
        let allowed = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) || escape_start;
        if allowed { out.push(b as char) } else { out.push_str(&format!("%{b:02X}")) }
    }
    out
}

/// The answer to another origin's page: readable there, never cached.
fn cross_origin(mut res: Response) -> Response {
    res.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    res
}

async fn read(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Path(token): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let answer = async {
        state
            .public_throttle
            .admit(vec![throttle::ip_key(ip)], std::time::Instant::now())
            .map_err(|retry_after| ApiError::RateLimited { retry_after })?
            .keep();
        let (site_id, path) = state.tokens.verify_overlay(&token)?;
        // A site deleted since the link was made opens nothing.
        shared::http::record_site(&site_id);
        let site = state.sites.find_one(doc! {"_id": &site_id}).await?.ok_or(ApiError::NotFound)?;
        Ok::<_, ApiError>(Json(page_view(&state, &site, &path, &params).await?))
    };
    cross_origin(answer.await.into_response())
}

/// The overlay script, served like the snippet but never counted in its size.
async fn script(State(state): State<AppState>) -> Response {
    crate::routes::web::tracker_script(&state, "convertpulse-overlay.min.js", "overlay.js", "public, max-age=3600").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_urls_are_urls_whatever_the_path() {
        assert_eq!(
            overlay_url("example.com", "/pricing", "t.k").expect("url"),
            "https://example.com/pricing?cp_overlay=t.k"
        );
        assert_eq!(
            overlay_url("example.com", "/caf\u{e9} menu/%41", "t").expect("url"),
            "https://example.com/caf%C3%A9%20menu/%41?cp_overlay=t"
        );
        assert_eq!(
            overlay_url("example.com", "/100%/%F2%A7%8x/%", "t").expect("url"),
            "https://example.com/100%25/%F2%A7%258x/%25?cp_overlay=t",
            "a % that starts no escape is one"
        );
        assert_eq!(
            overlay_url("example.com", "/a[W:]|^\\\r", "t").expect("url"),
            "https://example.com/a%5BW:%5D%7C%5E%5C%0D?cp_overlay=t"
        );
    }
}
