//! `/api/auth/*`: register, log in, who am I, log out, change the password.
//!
//! Logging out and changing the password end every token the user held before, on every
//! device: each raises the user's token version (`revocation`). A password change answers 204
//! without a new token; the dashboard logs in again with the new password.

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use chrono::{SecondsFormat, Utc};
use mongodb::{
    bson::{DateTime, doc},
    options::ReturnDocument,
};
use serde::{Deserialize, Serialize};
use shared::{
    ids::Email,
    store::{UserDoc, user_fields as f},
};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::{
    error::ApiError,
    extractors::{ApiJson, AuthUser, ClientIp},
    keys, passwords,
    state::AppState,
    throttle::ip_key,
};

/// Every answer here may carry a token: no cache may keep it.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/me", get(me))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/password", post(change_password))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
}

/// `user` as the API shows it.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub id: String,
    pub email: Email,
    pub name: String,
    pub created_at: String,
}

impl From<&UserDoc> for UserView {
    fn from(u: &UserDoc) -> Self {
        Self { id: u.id.clone(), email: u.email.clone(), name: u.name.clone(), created_at: rfc3339(u.created_at) }
    }
}

pub fn rfc3339(t: DateTime) -> String {
    chrono::DateTime::<Utc>::from_timestamp_millis(t.timestamp_millis())
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Serialize)]
struct Session {
    token: String,
    user: UserView,
}

#[derive(Deserialize)]
struct RegisterBody {
    email: Option<String>,
    password: Option<String>,
    name: Option<String>,
}

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

fn parse_user_name(raw: Option<&str>) -> Result<String, ApiError> {
    let raw = raw.unwrap_or_default();
    if raw.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::InvalidRequest("name: must be at most 100 characters".into()));
    }
    Ok(raw.trim().to_string())
}

/// Validation first (free), then the per-IP registration limit, then a bcrypt slot: a flood
/// of sign-ups is refused before it costs a hash.
async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<impl IntoResponse, ApiError> {
    let email = passwords::parse_email(body.email.as_deref().unwrap_or_default())?;
    let password = body.password.unwrap_or_default();
    passwords::check_strength(&password)?;
    let name = parse_user_name(body.name.as_deref())?;
    let attempt = state
        .register_throttle
        .admit(vec![ip_key(ip)], state.clock.instant())
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let password_hash = state.hasher.hash_new(password).await?;
    let user = UserDoc { id: keys::new_id()?, email, name, password_hash, created_at: DateTime::now(), token_version: 0 };
    let inserted = state.users.insert_one(&user).await;
    // A taken email counts too: it answers whether an account exists.
    match inserted {
        Ok(_) => attempt.keep(),
        Err(e) if is_duplicate(&e) => {
            attempt.keep();
            return Err(ApiError::EmailTaken);
        }
        Err(e) => return Err(e.into()),
    }
    let token = state.tokens.issue(&user.id, user.token_version)?;
    Ok((StatusCode::CREATED, Json(Session { token, user: (&user).into() })))
}

#[derive(Deserialize)]
struct LoginBody {
    email: Option<String>,
    password: Option<String>,
}

/// The attempt is counted against (email, client address) and the client address before
/// bcrypt runs (see `throttle`). A malformed email cannot belong to an account: it fails at
/// once and counts nowhere, since it costs nothing and tells nothing, so it can neither become
/// a limiter key nor fill the limiter.
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<impl IntoResponse, ApiError> {
    let password = body.password.unwrap_or_default();
    let Ok(email) = passwords::parse_email(body.email.as_deref().unwrap_or_default()) else {
        return Err(ApiError::InvalidCredentials);
    };
    let attempt = state
        .login_throttle
        .admit(&email, ip, state.clock.instant())
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;

    let user = state.users.find_one(doc! {f::EMAIL: &email}).await?;
    // Verify against a dummy hash for unknown emails so both failures take as long; a password
    // bcrypt would truncate cannot be right and is not hashed at all.
    let hash = user.as_ref().map_or_else(|| state.dummy_hash.as_ref().clone(), |u| u.password_hash.clone());
    let password_ok = password.len() <= passwords::MAX_PASSWORD_BYTES && state.hasher.verify(password, hash).await?;
    match user {
        Some(user) if password_ok => {
            attempt.succeeded();
            let token = state.tokens.issue(&user.id, user.token_version)?;
            Ok(Json(Session { token, user: (&user).into() }))
        }
        _ => {
            attempt.failed();
            Err(ApiError::InvalidCredentials)
        }
    }
}

async fn me(State(state): State<AppState>, auth: AuthUser) -> Result<Json<UserView>, ApiError> {
    let user = state
        .users
        .find_one(doc! {"_id": &auth.user_id})
        .await?
        .ok_or(ApiError::Unauthorized("the account no longer exists"))?;
    Ok(Json((&user).into()))
}

/// Ends every token of the caller, this one included.
async fn logout(State(state): State<AppState>, auth: AuthUser) -> Result<StatusCode, ApiError> {
    let user = state
        .users
        .find_one_and_update(doc! {"_id": &auth.user_id}, doc! {"$inc": {f::TOKEN_VERSION: 1}})
        .return_document(ReturnDocument::After)
        .await?
        .ok_or(ApiError::Unauthorized("the account no longer exists"))?;
    state.token_versions.ended(&user.id, user.token_version);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct PasswordBody {
    current_password: Option<String>,
    new_password: Option<String>,
}

/// The new password is checked first (free); the current one is verified like a login's,
/// counted against (email, client address) first, so a stolen token cannot guess it faster
/// than the login form could. The write swaps the hash only if it is still the one verified:
/// of two changes racing with the same current password, one wins and the other answers 401.
async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    auth: AuthUser,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    let new_password = body.new_password.unwrap_or_default();
    passwords::check_strength(&new_password).map_err(|e| match e {
        ApiError::WeakPassword(why) => ApiError::InvalidPassword(why),
        other => other,
    })?;
    let current = body.current_password.unwrap_or_default();
    let user = state
        .users
        .find_one(doc! {"_id": &auth.user_id})
        .await?
        .ok_or(ApiError::Unauthorized("the account no longer exists"))?;
    let attempt = state
        .login_throttle
        .admit(&user.email, ip, state.clock.instant())
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let current_ok =
        current.len() <= passwords::MAX_PASSWORD_BYTES && state.hasher.verify(current, user.password_hash.clone()).await?;
    if !current_ok {
        attempt.failed();
        return Err(ApiError::InvalidCredentials);
    }
    let new_hash = state.hasher.hash_new(new_password).await?;
    let changed = state
        .users
        .find_one_and_update(
            doc! {"_id": &user.id, f::PASSWORD_HASH: &user.password_hash},
            doc! {"$set": {f::PASSWORD_HASH: new_hash}, "$inc": {f::TOKEN_VERSION: 1}},
        )
        .return_document(ReturnDocument::After)
        .await?;
    // The password was right when verified; one changed meanwhile by another request is not
    // this caller's to replace.
    let Some(changed) = changed else { return Err(ApiError::InvalidCredentials) };
    attempt.succeeded();
    state.token_versions.ended(&changed.id, changed.token_version);
    Ok(StatusCode::NO_CONTENT)
}

pub fn is_duplicate(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}
