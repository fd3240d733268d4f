//! `/api/auth/*`: register, log in, who am I.

use std::{net::SocketAddr, time::Instant};

use axum::{
    Json, Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use chrono::{SecondsFormat, Utc};
use mongodb::bson::{DateTime, doc};
use serde::{Deserialize, Serialize};
use shared::{client_ip::client_ip, store::UserDoc};

use crate::{
    error::ApiError,
    extractors::{ApiJson, AuthUser},
    keys, passwords,
    router::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/me", get(me))
}

/// `user` as the API shows it.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub id: String,
    pub email: String,
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

async fn register(State(state): State<AppState>, ApiJson(body): ApiJson<RegisterBody>) -> Result<impl IntoResponse, ApiError> {
    let email = passwords::parse_email(body.email.as_deref().unwrap_or_default())?;
    let password = body.password.unwrap_or_default();
    passwords::check_strength(&password)?;
    let name: String = body.name.unwrap_or_default().trim().chars().take(100).collect();
    let password_hash = passwords::hash(password, state.config.bcrypt_cost).await?;
    let user = UserDoc { id: keys::new_id()?, email, name, password_hash, created_at: DateTime::now() };
    match state.users.insert_one(&user).await {
        Ok(_) => {}
        Err(e) if is_duplicate(&e) => return Err(ApiError::EmailTaken),
        Err(e) => return Err(e.into()),
    }
    let token = state.tokens.issue(&user.id, Utc::now().timestamp())?;
    Ok((StatusCode::CREATED, Json(Session { token, user: (&user).into() })))
}

#[derive(Deserialize)]
struct LoginBody {
    email: Option<String>,
    password: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<impl IntoResponse, ApiError> {
    let email = body.email.unwrap_or_default().trim().to_ascii_lowercase();
    let password = body.password.unwrap_or_default();
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let ip = client_ip(peer.ip(), forwarded, &state.config.trusted_proxies);
    let throttle_keys = [format!("email:{email}"), format!("ip:{ip}")];
    state.throttle.check(&throttle_keys, Instant::now()).map_err(|retry_after| ApiError::RateLimited { retry_after })?;

    let user = state.users.find_one(doc! {"email": &email}).await?;
    // Verify against a dummy hash for unknown emails so both failures take as long.
    let hash = user.as_ref().map_or_else(|| state.dummy_hash.as_ref().clone(), |u| u.password_hash.clone());
    let password_ok = password.len() <= passwords::MAX_PASSWORD_BYTES && passwords::verify(password, hash).await?;
    match user {
        Some(user) if password_ok => {
            state.throttle.clear(&throttle_keys[0]);
            let token = state.tokens.issue(&user.id, Utc::now().timestamp())?;
            Ok(Json(Session { token, user: (&user).into() }))
        }
        _ => {
            state.throttle.record_failure(&throttle_keys, Instant::now());
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

pub fn is_duplicate(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}
