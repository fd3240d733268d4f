//! The closed set of error codes and the JSON error envelope every service answers with.

use serde::{Deserialize, Serialize};

/// Every error code a client can see. The wire form is the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidBatch,
    InvalidKey,
    OriginNotAllowed,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    InvalidEmail,
    WeakPassword,
    EmailTaken,
    InvalidCredentials,
    Unauthorized,
    InvalidSite,
    /// 403: an account at `CP_MAX_SITES_PER_ACCOUNT` tried to add a site.
    SiteLimit,
    InvalidTimeframe,
    InvalidGoal,
    InvalidRequest,
    NotFound,
    MethodNotAllowed,
    Internal,
    /// A new password (password change) outside the registration rules.
    InvalidPassword,
}

impl ErrorCode {
    /// The wire form, e.g. `invalid_batch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidBatch => "invalid_batch",
            Self::InvalidKey => "invalid_key",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::InvalidEmail => "invalid_email",
            Self::WeakPassword => "weak_password",
            Self::EmailTaken => "email_taken",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Unauthorized => "unauthorized",
            Self::InvalidSite => "invalid_site",
            Self::SiteLimit => "site_limit",
            Self::InvalidTimeframe => "invalid_timeframe",
            Self::InvalidGoal => "invalid_goal",
            Self::InvalidRequest => "invalid_request",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Internal => "internal",
            Self::InvalidPassword => "invalid_password",
        }
    }
}

/// `{"error": code, "message": text}`: the body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Self {
        Self { error, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_matches_as_str() {
        for code in [
            ErrorCode::InvalidBatch,
            ErrorCode::OriginNotAllowed,
            ErrorCode::SiteLimit,
            ErrorCode::Internal,
            ErrorCode::InvalidPassword,
        ] {
            let json = serde_json::to_string(&code).expect("serializes");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
