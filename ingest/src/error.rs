//! Every way an ingest request fails, and the status each answers with.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use shared::{error::ErrorCode, event::BatchError, http::error_response};

use crate::publisher::PublishFailure;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// 400: malformed JSON, schema or bounds violation; the message names the field.
    #[error("{0}")]
    InvalidBatch(String),
    /// 401: unknown, rotated or deleted key.
    #[error("key: unknown, rotated or deleted site key")]
    InvalidKey,
    /// 403: the Origin is not the site's domain or a subdomain of it.
    #[error("origin: {0:?} is not the site's domain or a subdomain of it")]
    OriginNotAllowed(String),
    /// 413: body over 64 KiB.
    #[error("body: larger than 64 KiB")]
    PayloadTooLarge,
    /// 429 with `Retry-After`: the client's or the key's rate limit, or the site holds its whole
    /// share of the event stream.
    #[error("too many batches; retry later")]
    RateLimited { retry_after: u64 },
    /// 503 with `Retry-After`: the event stream cannot take the batch now.
    #[error("the event stream is unavailable; retry later")]
    Unavailable { retry_after: u64 },
}

/// `Retry-After` for a 503: long enough for NATS to come back, short enough to lose no visitor.
pub const UNAVAILABLE_RETRY_SECS: u64 = 2;
/// `Retry-After` for a site over its share of the event stream: a second or two is what the
/// aggregator takes to ack a share's worth while it keeps up; while it is down, the tracker's
/// own backoff (1 s doubling to 60 s) spaces the retries.
pub const SITE_SHARE_RETRY_SECS: u64 = 2;

impl From<PublishFailure> for IngestError {
    /// A site over its share is refused like a site over its rate (429), for its own batches
    /// only; anything else the stream cannot take is 503 for whoever sent it.
    fn from(failure: PublishFailure) -> Self {
        match failure {
            PublishFailure::SiteShareFull => Self::RateLimited { retry_after: SITE_SHARE_RETRY_SECS },
            PublishFailure::Timeout(_) | PublishFailure::Refused(_) | PublishFailure::Backlog(_) => {
                Self::Unavailable { retry_after: UNAVAILABLE_RETRY_SECS }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::to_bytes;

    use super::*;

    #[tokio::test]
    async fn a_site_over_its_share_gets_429_and_a_stream_that_cannot_take_it_503() {
        let cases = [
            ("site over its share", PublishFailure::SiteShareFull, StatusCode::TOO_MANY_REQUESTS, "rate_limited", "2"),
            (
                "no ack in time",
                PublishFailure::Timeout(Duration::from_millis(1500)),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "2",
            ),
            (
                "stream full",
                PublishFailure::Refused("maximum bytes exceeded".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "2",
            ),
            ("queue full", PublishFailure::Backlog(8192), StatusCode::SERVICE_UNAVAILABLE, "unavailable", "2"),
        ];
        for (case, failure, status, code, retry_after) in cases {
            let res = IngestError::from(failure).into_response();
            assert_eq!(res.status(), status, "case {case}");
            assert_eq!(
                res.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()),
                Some(retry_after),
                "case {case}"
            );
            let body = to_bytes(res.into_body(), 4096).await.expect("body");
            let body: serde_json::Value = serde_json::from_slice(&body).expect("json body");
            assert_eq!(body["error"], code, "case {case}: {body}");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "case {case}: {body}");
        }
    }
}
