//! Request extractors: JSON bodies with our error envelope, the authenticated user, and the
//! client's address.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;
use shared::client_ip::TrustedProxies;

use crate::{error::ApiError, state::AppState};

/// `axum::Json` whose rejections answer with the envelope (400 `invalid_request`).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::PayloadTooLarge),
            Err(rejection) => Err(ApiError::InvalidRequest(match rejection {
                JsonRejection::MissingJsonContentType(_) => "body: Content-Type must be application/json".to_string(),
                other => format!("body: {}", other.body_text()),
            })),
        }
    }
}

/// The user a valid bearer token names, while the token's version is the user's current one.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: String,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        if crate::stats_keys::is_stats_key(token) {
            return Err(ApiError::ReadOnly);
        }
        let (user_id, version) = state.tokens.verify(token)?;
        // A logout or a password change raised the user's version: older tokens are over.
        match state.token_versions.current(&user_id).await? {
            Some(current) if current == version => Ok(Self { user_id }),
            Some(_) => Err(ApiError::Unauthorized("token ended by a logout or a password change")),
            None => Err(ApiError::Unauthorized("the account no longer exists")),
        }
    }
}

/// The bearer token of a request, trimmed.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("missing bearer token"))?
        .to_str()
        .map_err(|_| ApiError::Unauthorized("malformed Authorization header"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(ApiError::Unauthorized("Authorization must be 'Bearer <token>'"))?;
    Ok(token.trim())
}

/// Who reads stats (v3): a logged-in user, or a Stats API key of one with its scope. The
/// stats reads take it; [`AuthUser`] refuses a key everywhere else (403 `read_only`).
#[derive(Debug, Clone)]
pub struct Reader {
    pub user: AuthUser,
    /// `Some` for a Stats API key.
    pub key: Option<crate::stats_keys::KeyScope>,
}

impl Reader {
    /// True when this reader may read `site_id` of its user.
    pub fn allows(&self, site_id: &str) -> bool {
        self.key.as_ref().is_none_or(|k| k.allows(site_id))
    }
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        if !crate::stats_keys::is_stats_key(token) {
            return Ok(Self { user: AuthUser::from_request_parts(parts, state).await?, key: None });
        }
        let scope = crate::stats_keys::resolve(state, token)
            .await?
            .ok_or(ApiError::Unauthorized("unknown or deleted Stats API key"))?;
        Ok(Self { user: AuthUser { user_id: scope.user_id.clone() }, key: Some(scope) })
    }
}

/// The client's address: the peer, or what trusted proxies say they forwarded for.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        client_ip(parts, &state.config.trusted_proxies).map(Self)
    }
}

/// The peer, or — from a trusted proxy — the client that every `X-Forwarded-For` line, read
/// as ingest reads them, names: a line the client wrote itself cannot choose its address.
fn client_ip(parts: &Parts, trusted: &TrustedProxies) -> Result<IpAddr, ApiError> {
    let ConnectInfo(peer) = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no peer address on the request")))?;
    Ok(shared::client_ip::client_ip_from_headers(peer.ip(), &parts.headers, trusted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(peer: &str, lines: &[&str]) -> Parts {
        let mut req = axum::http::Request::builder().uri("/api/auth/login");
        for line in lines {
            req = req.header("x-forwarded-for", *line);
        }
        let (mut parts, ()) = req.body(()).expect("request").into_parts();
        parts.extensions.insert(ConnectInfo(peer.parse::<SocketAddr>().expect("peer")));
        parts
    }

    #[test]
    fn the_client_address_reads_every_forwarded_for_line_from_the_right() {
        let trusted = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").expect("proxies");
        // (case, peer, X-Forwarded-For lines in order, the client)
        let cases: [(&str, &str, &[&str], &str); 6] = [
            ("a line the client wrote, then the proxy's", "127.0.0.1:5000", &["6.6.6.6", "198.51.100.1"], "198.51.100.1"),
            (
                "forged hops left of the proxy's own",
                "127.0.0.1:5000",
                &["1.1.1.1, 2.2.2.2", "198.51.100.2, 10.0.0.5"],
                "198.51.100.2",
            ),
            ("one line", "127.0.0.1:5000", &["198.51.100.3"], "198.51.100.3"),
            ("no line", "127.0.0.1:5000", &[], "127.0.0.1"),
            (
                "an untrusted peer is the client, whatever it writes",
                "203.0.113.9:5000",
                &["198.51.100.4", "198.51.100.5"],
                "203.0.113.9",
            ),
            (
                "a trusted IPv6 peer given as mapped IPv4",
                "[::ffff:127.0.0.1]:5000",
                &["6.6.6.6", "198.51.100.6"],
                "198.51.100.6",
            ),
        ];
        for (case, peer, lines, want) in cases {
            let got = client_ip(&parts(peer, lines), &trusted).expect("an address");
            assert_eq!(got, want.parse::<IpAddr>().expect("ip"), "case {case}");
        }
    }

    #[test]
    fn many_first_lines_one_client() {
        // A client behind a trusted proxy writing a new first line every time stays one address.
        let trusted = TrustedProxies::parse("127.0.0.1").expect("proxies");
        let seen: std::collections::HashSet<IpAddr> = (0..50)
            .map(|i| {
                client_ip(&parts("127.0.0.1:5000", &[&format!("198.18.0.{i}"), "203.0.113.50"]), &trusted)
                    .expect("an address")
            })
            .collect();
        assert_eq!(seen.len(), 1, "{seen:?}");
    }
}
