//! Request extractors: JSON bodies with our error envelope, and the authenticated user.

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{header, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::{error::ApiError, router::AppState};

/// `axum::Json` whose rejections answer with the envelope (400 `invalid_request`).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(ApiError::InvalidRequest(match rejection {
                JsonRejection::MissingJsonContentType(_) => "body: Content-Type must be application/json".to_string(),
                other => format!("body: {}", other.body_text()),
            })),
        }
    }
}

/// The user a valid bearer token names.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: String,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
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
        let user_id = state.tokens.verify(token.trim())?;
        Ok(Self { user_id })
    }
}
