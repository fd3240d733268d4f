//! Every way an ingest request fails, and the status each answers with.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use shared::{error::ErrorCode, event::BatchError, http::error_response};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// 400: malformed JSON, schema or bounds violation; the message names the field.
    #[error("{0}")]
    InvalidBatch(String),
    /// 401: unknown, rotated or deleted key.
    #[error("unknown, rotated or deleted site key")]
    InvalidKey,
    /// 403: the Origin is not the site's domain or a subdomain of it.
    #[error("origin {0:?} is not allowed for this site")]
    OriginNotAllowed(String),
    /// 413: body over 64 KiB.
    #[error("body is larger than 64 KiB")]
    PayloadTooLarge,
    /// 429 with `Retry-After`.
    #[error("too many batches; retry later")]
    RateLimited { retry_after: u64 },
    /// 503 with `Retry-After`: the event stream cannot take the batch now.
    #[error("the event stream is unavailable; retry later")]
    Unavailable { retry_after: u64 },
}

impl From<BatchError> for IngestError {
    fn from(e: BatchError) -> Self {
        Self::InvalidBatch(e.to_string())
    }
}

impl IngestError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidBatch(_) => ErrorCode::InvalidBatch,
            Self::InvalidKey => ErrorCode::InvalidKey,
            Self::OriginNotAllowed(_) => ErrorCode::OriginNotAllowed,
            Self::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable { .. } => ErrorCode::Unavailable,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidBatch(_) => StatusCode::BAD_REQUEST,
            Self::InvalidKey => StatusCode::UNAUTHORIZED,
            Self::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            Self::RateLimited { retry_after } | Self::Unavailable { retry_after } => Some(*retry_after),
            _ => None,
        };
        let too_large = matches!(self, Self::PayloadTooLarge);
        let mut res = error_response(self.status(), self.code(), self.to_string());
        if too_large {
            // The rest of an oversized body may still be on its way: do not reuse the connection.
            res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
