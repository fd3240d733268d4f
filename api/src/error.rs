//! Every way an API request fails, and the status each answers with.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use shared::telemetry::Chain;
use shared::{error::ErrorCode, http::error_response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_email`.
    #[error("email: {0}")]
    InvalidEmail(&'static str),
    /// 400 `weak_password`.
    #[error("password: {0}")]
    WeakPassword(&'static str),
    /// 409 `email_taken`.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// 401 `invalid_credentials`: the same for an unknown email and a wrong password.
    #[error("email or password is wrong")]
    InvalidCredentials,
    /// 429 `rate_limited` with `Retry-After`.
    #[error("too many attempts; try again later")]
    RateLimited { retry_after: u64 },
    /// 429 `rate_limited` with `Retry-After`: a site's key was rotated
    /// [`MAX_KEY_ROTATIONS_PER_HOUR`](shared::store::MAX_KEY_ROTATIONS_PER_HOUR) times in the
    /// last hour.
    #[error(
        "a site's key can be rotated {} times an hour; try again in {retry_after} s",
        shared::store::MAX_KEY_ROTATIONS_PER_HOUR
    )]
    RotationLimit { retry_after: u64 },
    /// 403 `site_limit`: the account holds `CP_MAX_SITES_PER_ACCOUNT` sites.
    #[error("this account has reached its limit of {max} sites; delete one to add another")]
    SiteLimit { max: u32 },
    /// 401 `unauthorized`: missing, malformed, expired or forged token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 400 `invalid_site`; the message names the field.
    #[error("{0}")]
    InvalidSite(String),
    /// 400 `invalid_timeframe`.
    #[error("{0}")]
    InvalidTimeframe(String),
    /// 400 `invalid_goal`; the message names the field.
    #[error("{0}")]
    InvalidGoal(String),
    /// 400 `invalid_funnel`; the message names the field.
    #[error("{0}")]
    InvalidFunnel(String),
    /// 400 `invalid_segment`; the message names the field.
    #[error("{0}")]
    InvalidSegment(String),
    /// 400 `invalid_request`: a body that is not the JSON the route takes.
    #[error("{0}")]
    InvalidRequest(String),
    /// 413 `payload_too_large`: a body over the api's limit (16 KiB).
    #[error("body is larger than 16 KiB")]
    PayloadTooLarge,
    /// 413 `payload_too_large`: an upload past its own limit (an import's zip), named.
    #[error("{0}")]
    UploadTooLarge(String),
    /// 404 `not_found`: absent or someone else's.
    #[error("not found")]
    NotFound,
    /// 503 `unavailable` with `Retry-After`: every bcrypt slot is taken. Not logged: it is
    /// what a flood looks like, and the flood must not fill the log too.
    #[error("the server is busy; retry shortly")]
    Busy,
    /// 503 `unavailable`: a dependency did not answer.
    #[error("a dependency is unavailable; retry shortly")]
    Unavailable(#[source] anyhow::Error),
    /// 500 `internal`: the cause goes to the log, not the client.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
    /// 400 `invalid_password`: a password change's new password breaks the registration rules.
    #[error("new_password: {0}")]
    InvalidPassword(&'static str),
    /// 403 `read_only`: a Stats API key on a route other than its reads (v3).
    #[error("a Stats API key only reads stats; this route needs a login token")]
    ReadOnly,
    /// 403 `forbidden`: a member of the site going past its role; the message says which
    /// role the route needs.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 400 `invalid_member`; the message names the field.
    #[error("{0}")]
    InvalidMember(String),
    /// 409 `invalid_member`: the email is in the team already, or the team is full.
    #[error("{0}")]
    MemberConflict(String),
    /// 400 `invalid_alert`; the message names the field.
    #[error("{0}")]
    InvalidAlert(String),
    /// 409 `domain_taken`: another site takes Plausible's Events API for this domain (v3).
    #[error("{0}")]
    DomainTaken(String),
    /// 409 `invalid_alert`: the site has as many alerts as it may.
    #[error("{0}")]
    AlertConflict(String),
    /// 409 `mail_not_configured`: the route sends mail and `CP_SMTP_URL` is not set.
    #[error("mail is not set up on this server (CP_SMTP_URL, CP_MAIL_FROM; see docs/mail.md)")]
    MailNotConfigured,
    /// 400 or 401 in Plausible's shape, `{"error": message}`: the v2 query speaks Plausible's
    /// API (issue 23), whose clients read its messages there.
    #[error("{message}")]
    Plausible { status: StatusCode, message: String },
}

impl From<mongodb::error::Error> for ApiError {
    fn from(e: mongodb::error::Error) -> Self {
        Self::Unavailable(e.into())
    }
}

impl ApiError {
    fn parts(&self) -> (StatusCode, ErrorCode) {
        match self {
            Self::InvalidEmail(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidEmail),
            Self::WeakPassword(_) => (StatusCode::BAD_REQUEST, ErrorCode::WeakPassword),
            Self::EmailTaken => (StatusCode::CONFLICT, ErrorCode::EmailTaken),
            Self::InvalidCredentials => (StatusCode::UNAUTHORIZED, ErrorCode::InvalidCredentials),
            Self::RateLimited { .. } | Self::RotationLimit { .. } => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited),
            Self::SiteLimit { .. } => (StatusCode::FORBIDDEN, ErrorCode::SiteLimit),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            Self::InvalidSite(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidSite),
            Self::InvalidTimeframe(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidTimeframe),
            Self::InvalidGoal(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidGoal),
            Self::InvalidFunnel(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidFunnel),
            Self::InvalidSegment(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidSegment),
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
            Self::PayloadTooLarge | Self::UploadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::PayloadTooLarge),
            Self::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            Self::Busy | Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
            Self::InvalidPassword(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidPassword),
            Self::ReadOnly => (StatusCode::FORBIDDEN, ErrorCode::ReadOnly),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
            Self::InvalidMember(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidMember),
            Self::MemberConflict(_) => (StatusCode::CONFLICT, ErrorCode::InvalidMember),
            Self::InvalidAlert(_) => (StatusCode::BAD_REQUEST, ErrorCode::InvalidAlert),
            Self::AlertConflict(_) => (StatusCode::CONFLICT, ErrorCode::InvalidAlert),
            Self::MailNotConfigured => (StatusCode::CONFLICT, ErrorCode::MailNotConfigured),
            Self::DomainTaken(_) => (StatusCode::CONFLICT, ErrorCode::DomainTaken),
            // Answered in Plausible's shape by `into_response`; the code names the status.
            Self::Plausible { status, .. } if *status == StatusCode::UNAUTHORIZED => (*status, ErrorCode::Unauthorized),
            Self::Plausible { status, .. } => (*status, ErrorCode::InvalidRequest),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Unavailable(e) | Self::Internal(e) = &self {
            tracing::error!(error = %Chain(e.as_ref()), "request failed");
        }
        if let Self::Plausible { status, message } = self {
            return (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
        }
        let (status, code) = self.parts();
        let mut res = error_response(status, code, self.to_string());
        match self {
            Self::RateLimited { retry_after } | Self::RotationLimit { retry_after } => {
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Self::Busy => {
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::Unavailable(_) => {
                res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            Self::PayloadTooLarge | Self::UploadTooLarge(_) => {
                // The rest of the body is still unread: do not reuse the connection.
                res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        res
    }
}
