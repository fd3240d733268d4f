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
    /// A funnel definition refused; the message names the field.
    InvalidFunnel,
    /// A segment definition refused; the message names the field.
    InvalidSegment,
    /// 403: a Stats API key on a route that is not one of its reads (v3).
    ReadOnly,
    /// 403: a site's member went past its role (teams).
    Forbidden,
    /// A member or invitation refused; the message names the field.
    InvalidMember,
    /// An alert refused; the message names the field.
    InvalidAlert,
    /// 409: a route that sends mail on a server where mail is not set up (`CP_SMTP_URL`).
    MailNotConfigured,
    DomainTaken,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 28] = [
        Self::InvalidBatch,
        Self::InvalidKey,
        Self::OriginNotAllowed,
        Self::PayloadTooLarge,
        Self::RateLimited,
        Self::Unavailable,
        Self::InvalidEmail,
        Self::WeakPassword,
        Self::EmailTaken,
        Self::InvalidCredentials,
        Self::Unauthorized,
        Self::InvalidSite,
        Self::SiteLimit,
        Self::InvalidTimeframe,
        Self::InvalidGoal,
        Self::InvalidRequest,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Internal,
        Self::InvalidPassword,
        Self::InvalidFunnel,
        Self::InvalidSegment,
        Self::ReadOnly,
        Self::Forbidden,
        Self::InvalidMember,
        Self::InvalidAlert,
        Self::MailNotConfigured,
        Self::DomainTaken,
    ];

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
            Self::InvalidFunnel => "invalid_funnel",
            Self::InvalidSegment => "invalid_segment",
            Self::ReadOnly => "read_only",
            Self::Forbidden => "forbidden",
            Self::InvalidMember => "invalid_member",
            Self::InvalidAlert => "invalid_alert",
            Self::MailNotConfigured => "mail_not_configured",
            Self::DomainTaken => "domain_taken",
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
    use std::collections::HashSet;

    use super::*;

    /// The position of `code` in [`ErrorCode::ALL`]. The match has no wildcard, so a new code
    /// does not compile until it is given a place here, and the test below then holds it to one
    /// in `ALL`.
    fn position(code: ErrorCode) -> usize {
        use ErrorCode::*;
        match code {
            InvalidBatch => 0,
            InvalidKey => 1,
            OriginNotAllowed => 2,
            PayloadTooLarge => 3,
            RateLimited => 4,
            Unavailable => 5,
            InvalidEmail => 6,
            WeakPassword => 7,
            EmailTaken => 8,
            InvalidCredentials => 9,
            Unauthorized => 10,
            InvalidSite => 11,
            SiteLimit => 12,
            InvalidTimeframe => 13,
            InvalidGoal => 14,
            InvalidRequest => 15,
            NotFound => 16,
            MethodNotAllowed => 17,
            Internal => 18,
            InvalidPassword => 19,
            InvalidFunnel => 20,
            InvalidSegment => 21,
            ReadOnly => 22,
            Forbidden => 23,
            InvalidMember => 24,
            InvalidAlert => 25,
            MailNotConfigured => 26,
            DomainTaken => 27,
        }
    }

    #[test]
    fn every_code_is_listed_once_and_its_wire_form_is_as_str_both_ways() {
        let mut seen = HashSet::new();
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(position(code), i, "{code:?} is out of place in ALL");
            assert!(seen.insert(code.as_str()), "{} is spelled twice", code.as_str());
            let json = serde_json::to_string(&code).expect("serializes");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).expect("parses"), code);
        }
        assert!(serde_json::from_str::<ErrorCode>("\"no_such_code\"").is_err());
    }

    #[test]
    fn the_openapi_error_enum_is_exactly_the_closed_set() {
        let yaml = include_str!("../../docs/openapi.yaml");
        let start = yaml.find("    Error:\n").expect("an Error schema");
        let rest = &yaml[start..];
        let open = rest.find("enum: [").expect("an enum of codes") + "enum: [".len();
        let close = open + rest[open..].find(']').expect("the enum closes");
        let listed: Vec<&str> = rest[open..close].split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let ours: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, ours);
    }
}
